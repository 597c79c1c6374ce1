//! The node documents serve hands out at `GET /v1/documents/{role}`.
//!
//! From a `kubeboot bundle` directory. As written by the bundle, or, with
//! `--fresh-credentials`, with join credentials made for each request so a
//! launch template written days ago never hands out an expired token:
//! - every join document carries a bootstrap token minted for it
//!   ([`mint::bootstrap_token`], valid [`TOKEN_TTL`]);
//! - a control-plane document also carries a certificate key under which serve
//!   re-uploaded the cluster certificates from the bundle's `pki/`
//!   ([`mint::upload_certs`], valid [`CERTS_TTL`]). One upload serves every
//!   control plane asking while at least [`CERTS_REUSE_MARGIN`] of it remains:
//!   a new upload replaces the Secret and would strand a join still using the
//!   previous key.
//!
//! serve reaches the cluster as cluster-admin with a client certificate it mints
//! in memory from the bundle's CA for each request (10 minutes), trusting only
//! that CA. The init document is the bundle's: the cluster does not exist yet.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};

use std::sync::Arc;

use super::certificate_key;
use super::election::{Candidate, Election, Verdict};
use super::journal::{Action, ActionKind};
use super::mint::{self, UploadedKey, Usage};
use super::minted::{self, Ledger};
use super::store::Store;
use crate::bundle::{self, Discovery};
use kubeboot_core::document::Role;
use kubeboot_kube::client::Credentials;
use kubeboot_kube::pod_routes::{self, PodRoute};

pub const TOKEN_TTL: Duration = Duration::from_secs(3600);
pub const CERTS_TTL: Duration = Duration::from_secs(2 * 3600);
/// A join runs for minutes; 70 minutes outlives the token handed out with the key.
pub const CERTS_REUSE_MARGIN: Duration = Duration::from_secs(70 * 60);
/// Bound on each call to the cluster.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a node told "later" waits before it asks again, unless serve knows better.
const RETRY_LATER: Duration = Duration::from_secs(30);
/// Bound on serve's look at the endpoint before an election.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Who asks for a document, as far as serve can tell.
#[derive(Clone, Copy)]
pub struct Asker<'a> {
    /// The credential's id (a token's, or `group NAME`), for descriptions.
    pub requester: &'a str,
    /// The node it names (`Kubeboot-Node`, `Kubeboot-Machine-Id`).
    pub candidate: Option<&'a Candidate>,
    /// The claim secret its agent sends (`Kubeboot-Claim`); never logged.
    pub claim: Option<&'a str>,
    /// False for admin tokens: the operator's, never a machine's.
    pub may_elect: bool,
    /// The node group it asked through (`/v1/groups/NAME/document`).
    pub group: Option<&'a str>,
}

pub struct Documents {
    bundle: PathBuf,
    fresh: bool,
    uploaded: tokio::sync::Mutex<Option<UploadedKey>>,
    /// With fresh credentials: who initialises a cluster that does not answer yet.
    election: Option<Election>,
    /// Documents with fresh credentials served in the current minute, by role: a
    /// leaked document token cannot fill kube-system with Secrets.
    budget: std::sync::Mutex<Budget>,
    /// Where the current upload's certificate key is kept (sealed).
    store: Arc<Store>,
}

/// At most `per_minute` minting documents per role per clock minute.
#[derive(Debug)]
pub struct Budget {
    pub per_minute: u32,
    minute: i64,
    used: std::collections::BTreeMap<String, u32>,
}

impl Budget {
    pub fn new(per_minute: u32) -> Budget {
        Budget {
            per_minute,
            minute: 0,
            used: Default::default(),
        }
    }

    /// Take one for `key` (a role, a group) now, or say how many seconds until the next minute.
    pub fn take(&mut self, key: &str, now: chrono::DateTime<Utc>) -> Result<(), u64> {
        let minute = now.timestamp().div_euclid(60);
        if minute != self.minute {
            self.minute = minute;
            self.used.clear();
        }
        let used = self.used.entry(key.to_string()).or_insert(0);
        if *used >= self.per_minute {
            return Err(60 - now.timestamp().rem_euclid(60) as u64);
        }
        *used += 1;
        Ok(())
    }
}

/// Why no document was served.
#[derive(Debug)]
pub enum DocumentError {
    /// 404: no such document in the bundle.
    Missing(String),
    /// 503: the cluster could not mint (not up yet, unreachable): retry later.
    ClusterUnavailable(String),
    /// 503: another control plane was elected to initialise the cluster, or the
    /// machine a worker replaces may still run: ask again after the duration.
    Waiting(String, Duration),
    /// 400: the request lacks what the document needs (the node's identity).
    BadRequest(String),
    /// 429: this role's minting budget for the minute is spent; retry after the seconds.
    TooMany(String, u64),
    /// 409: a live Node already has the name this node asks for.
    Conflict(String),
    /// 500: the bundle is damaged.
    Bundle(String),
}

impl std::fmt::Display for DocumentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DocumentError::Missing(m)
            | DocumentError::ClusterUnavailable(m)
            | DocumentError::Waiting(m, _)
            | DocumentError::BadRequest(m)
            | DocumentError::TooMany(m, _)
            | DocumentError::Conflict(m)
            | DocumentError::Bundle(m) => f.write_str(m),
        }
    }
}

/// A document and what was minted and done for it (serve's own events; no secrets).
pub struct Served {
    pub text: String,
    /// Credentials minted, an election, a stale Node removed.
    pub actions: Vec<Action>,
    /// The ids of the bootstrap tokens minted for it (`minted` ledger): served
    /// with it, or withdrawn when the answer cannot be sent.
    pub tokens: Vec<String>,
}

impl Documents {
    /// The documents of `bundle`; with fresh credentials, the certificate key
    /// of the upload serve made before a restart is read back from `store`.
    pub fn new(
        bundle: PathBuf,
        fresh: bool,
        election: Option<Election>,
        per_minute: u32,
        store: Arc<Store>,
    ) -> Result<Documents, String> {
        let uploaded = if fresh {
            certificate_key::load(&store, &bundle.join("pki"))?
        } else {
            None
        };
        Ok(Documents {
            bundle,
            fresh,
            uploaded: tokio::sync::Mutex::new(uploaded),
            election,
            budget: std::sync::Mutex::new(Budget::new(per_minute)),
            store,
        })
    }

    pub fn fresh(&self) -> bool {
        self.fresh
    }

    /// The document for `role`, for `asker`.
    ///
    /// With fresh credentials, the init document goes only through the election
    /// (an init token included), and the election runs only when nothing answers
    /// at the endpoint (`guard`).
    pub async fn render(&self, role: Role, asker: &Asker<'_>) -> Result<Served, DocumentError> {
        if self.fresh && role == Role::Init {
            let why = "an init document was asked for".to_string();
            return self.elect(why, asker).await;
        }
        match self.render_join(role, asker).await {
            Err(DocumentError::ClusterUnavailable(why)) if role == Role::ControlPlane => {
                self.elect(why, asker).await
            }
            Ok(served) => {
                // Join credentials were minted in the cluster: it exists, for good.
                if let (Some(election), true) = (&self.election, self.fresh) {
                    election
                        .latch(&format!(
                            "serve minted {} join credentials in the cluster",
                            role.as_str()
                        ))
                        .await
                        .map_err(DocumentError::Bundle)?;
                }
                Ok(served)
            }
            other => other,
        }
    }

    /// A status event serve stored, posted with the credential bound to its node.
    pub async fn observe(&self, ev: &kubeboot_core::status::StatusEvent) -> Result<(), String> {
        match &self.election {
            Some(e) => e.observe(ev).await,
            None => Ok(()),
        }
    }

    pub fn lease(&self) -> Option<Duration> {
        self.election.as_ref().map(Election::lease)
    }

    /// No join document could be made (`why`): the init document for the
    /// elected one, if nothing answers at the endpoint.
    async fn elect(&self, why: String, asker: &Asker<'_>) -> Result<Served, DocumentError> {
        let Some(election) = &self.election else {
            return Err(DocumentError::ClusterUnavailable(why));
        };
        if !asker.may_elect {
            return Err(DocumentError::ClusterUnavailable(format!(
                "{why}; an admin token never takes part in the init election (the init document \
                 goes to one machine: a control plane's document token or group credential)"
            )));
        }
        let Some(candidate) = asker.candidate else {
            return Err(DocumentError::BadRequest(format!(
                "{why}; to take part in the init election a request must name its node \
                 (headers Kubeboot-Node and Kubeboot-Machine-Id, as the kubeboot agent sends them)"
            )));
        };
        if let Some(done) = election.initialised().await {
            return Err(DocumentError::Waiting(
                format!("{why}; {done}"),
                RETRY_LATER,
            ));
        }
        self.guard(election, &why).await?;
        match election
            .ask(candidate, asker.claim)
            .await
            .map_err(DocumentError::Bundle)?
        {
            Verdict::Wait { why, retry_after } => Err(DocumentError::Waiting(why, retry_after)),
            Verdict::Init(elected) => {
                let mut served = self.bundle_file(Role::Init).await?;
                served.actions.push(Action::new(
                    ActionKind::InitElected,
                    format!(
                        "elected {} to run kubeadm init (term {}): {}",
                        elected.node, elected.term, elected.why
                    ),
                ));
                Ok(served)
            }
            Verdict::Again(_) => self.bundle_file(Role::Init).await,
        }
    }

    /// Elect only when nothing answers at the endpoint at the transport level. A
    /// cluster under the bundle's CA closes the election for good; anything else
    /// answering is a 503 with the reason.
    async fn guard(&self, election: &Election, why: &str) -> Result<(), DocumentError> {
        use kubeboot_kube::discovery::fence::{look, Seen};
        let discovery = crate::blocking(|| bundle::read_discovery(&self.bundle))
            .map_err(|e| DocumentError::Bundle(e.to_string()))?;
        let endpoint = kubeboot_core::document::formats::parse_endpoint(&discovery.endpoint)
            .map_err(|e| DocumentError::Bundle(format!("the bundle's endpoint: {e}")))?;
        let ca = self.ca_der()?;
        let seen =
            tokio::task::spawn_blocking(move || look(&endpoint, Some(&ca), None, PROBE_TIMEOUT))
                .await
                .map_err(|e| DocumentError::Bundle(e.to_string()))?;
        let answers = match seen {
            Seen::Nothing(_) => return Ok(()),
            Seen::Cluster(what) => {
                election
                    .latch(&format!("serve saw the cluster answer: {what}"))
                    .await
                    .map_err(DocumentError::Bundle)?;
                what
            }
            Seen::Own | Seen::Other(_) => format!("something answers at {}", discovery.endpoint),
        };
        let refusal = format!(
            "{why}; no init election: {answers}. Only an endpoint where nothing answers gets one \
             (check serve's access to the cluster: its admin certificate from the bundle's CA)"
        );
        tracing::warn!("{refusal}");
        Err(DocumentError::Waiting(refusal, RETRY_LATER))
    }

    fn ca_der(&self) -> Result<Vec<u8>, DocumentError> {
        let path = self.bundle.join("pki").join("ca.crt");
        let pem = crate::blocking(|| std::fs::read(&path))
            .map_err(|e| DocumentError::Bundle(format!("{}: {e}", path.display())))?;
        kubeboot_core::tls::first_pem_certificate(&pem)
            .map(|d| d.as_ref().to_vec())
            .map_err(|e| DocumentError::Bundle(format!("{}: {e}", path.display())))
    }

    async fn bundle_file(&self, role: Role) -> Result<Served, DocumentError> {
        let path = self
            .bundle
            .join("nodes")
            .join(format!("{}.toml", role.as_str()));
        match tokio::fs::read_to_string(&path).await {
            Ok(text) => Ok(Served {
                text,
                actions: Vec::new(),
                tokens: Vec::new(),
            }),
            Err(e) => {
                tracing::error!("{}: {e}", path.display());
                Err(DocumentError::Missing(format!(
                    "the bundle has no {} document",
                    role.as_str()
                )))
            }
        }
    }

    async fn render_join(&self, role: Role, asker: &Asker<'_>) -> Result<Served, DocumentError> {
        let (requester, candidate) = (asker.requester, asker.candidate);
        if !self.fresh || role == Role::Init {
            return self.bundle_file(role).await;
        }
        {
            let mut budget = self.budget.lock().expect("budget lock");
            if let Err(seconds) = budget.take(role.as_str(), Utc::now()) {
                return Err(DocumentError::TooMany(
                    format!(
                        "more than {} {role} documents with fresh credentials this minute \
                         (serve --mint-per-minute); retry in {seconds} s",
                        budget.per_minute
                    ),
                    seconds,
                ));
            }
        }
        let discovery = crate::blocking(|| bundle::read_discovery(&self.bundle))
            .map_err(|e| DocumentError::Bundle(e.to_string()))?;
        let admin = self.admin(&discovery)?;
        let mut actions = Vec::new();
        if let (Role::Worker, Some(c)) = (role, candidate) {
            actions = self.replace_worker(&admin, c, asker, &discovery).await?;
        }
        let description = match candidate {
            Some(c) => format!(
                "kubeboot serve: {role} document for {} (token {requester})",
                c.node
            ),
            None => format!("kubeboot serve: {role} document for token {requester}"),
        };
        let (token, _) = mint::bootstrap_token(&admin, TOKEN_TTL, Usage::Join, &description)
            .await
            .map_err(|e| unavailable(&discovery, e))?;
        let id = token.id.clone();
        let recorded = {
            let (store, expires) = (self.store.clone(), token.expires);
            crate::blocking(|| Ledger::new(&store).pending(&id, expires))
        };
        if let Err(e) = recorded {
            self.withdraw_with(&admin, std::slice::from_ref(&id)).await;
            return Err(DocumentError::Bundle(format!(
                "bootstrap token {id} could not be recorded, so it is not served: {e}"
            )));
        }
        match self
            .finish_join(role, &admin, token, discovery, actions)
            .await
        {
            Ok(served) => Ok(served),
            Err(e) => {
                self.withdraw_with(&admin, &[id]).await;
                Err(e)
            }
        }
    }

    /// The join document around a token just minted: its certificate key for a
    /// control plane, then the text.
    async fn finish_join(
        &self,
        role: Role,
        admin: &kube::Client,
        token: mint::MintedToken,
        mut discovery: Discovery,
        mut actions: Vec<Action>,
    ) -> Result<Served, DocumentError> {
        actions.push(Action::minted(format!(
            "bootstrap token {} (expires {})",
            token.id,
            token
                .expires
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )));
        discovery.token = token.token.expose_secret().to_string();
        if role == Role::ControlPlane {
            let (key, note) = self.certificate_key(admin, &discovery).await?;
            discovery.certificate_key = key.expose_secret().to_string();
            actions.extend(note.map(Action::minted));
        }
        let text = bundle::node_document(role, &discovery, &self.bundle)
            .map_err(|e| DocumentError::Bundle(e.to_string()))?;
        Ok(Served {
            text,
            actions,
            tokens: vec![token.id],
        })
    }

    /// The answer carrying these tokens was not sent: delete their Secrets
    /// (each call bounded), or leave them marked for [`Documents::sweep`].
    pub async fn withdraw(&self, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        let admin = crate::blocking(|| bundle::read_discovery(&self.bundle))
            .map_err(|e| e.to_string())
            .and_then(|d| self.admin(&d).map_err(|e| e.to_string()));
        match admin {
            Ok(admin) => self.withdraw_with(&admin, ids).await,
            Err(e) => {
                self.mark(ids, minted::State::Withdraw);
                tracing::warn!(
                    "bootstrap tokens {} are left for the sweeper: {e}",
                    ids.join(", ")
                );
            }
        }
    }

    async fn withdraw_with(&self, admin: &kube::Client, ids: &[String]) {
        self.mark(ids, minted::State::Withdraw);
        for id in ids {
            match tokio::time::timeout(CLUSTER_TIMEOUT, mint::delete_bootstrap_token(admin, id)).await {
                Ok(Ok(())) => {
                    tracing::info!("withdrew bootstrap token {id}: the request it was minted for failed");
                    let store = self.store.clone();
                    if let Err(e) = crate::blocking(|| Ledger::new(&store).forget(id)) {
                        tracing::warn!("bootstrap token {id} is deleted but still on record: {e}");
                    }
                }
                Ok(Err(e)) => tracing::warn!("bootstrap token {id} is left for the sweeper: {e}"),
                Err(_) => tracing::warn!(
                    "bootstrap token {id} is left for the sweeper: the cluster did not answer in {} s",
                    CLUSTER_TIMEOUT.as_secs()
                ),
            }
        }
    }

    /// Record `ids` as `state` (durably).
    pub fn record(&self, ids: &[String], state: minted::State) -> Result<(), String> {
        if ids.is_empty() {
            return Ok(());
        }
        crate::blocking(|| Ledger::new(&self.store).mark(ids, state)).map_err(|e| e.to_string())
    }

    /// [`Documents::record`], a failure logged.
    fn mark(&self, ids: &[String], state: minted::State) {
        if let Err(e) = self.record(ids, state) {
            tracing::warn!(
                "bootstrap tokens {}: could not record them as {state:?}: {e}",
                ids.join(", ")
            );
        }
    }

    /// Delete the Secrets of tokens whose request failed (and, when serve has
    /// just started, of those whose request died with the last process);
    /// forget expired ones. Returns how many were deleted.
    pub async fn sweep(&self, startup: bool) -> usize {
        if !self.fresh {
            return 0;
        }
        let store = self.store.clone();
        let plan = crate::blocking(|| Ledger::new(&store).sweep_plan(Utc::now(), startup));
        let ids = match plan {
            Ok(ids) if ids.is_empty() => return 0,
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!("minted tokens: {e}");
                return 0;
            }
        };
        self.withdraw(&ids).await;
        let store = self.store.clone();
        let left = crate::blocking(|| Ledger::new(&store).entries()).unwrap_or_default();
        ids.iter()
            .filter(|id| !left.iter().any(|(l, _)| l == *id))
            .count()
    }

    /// The worker replaces a machine of the same name: its stale Node goes first
    /// (kubeboot_kube::replace::worker), with an Event saying so.
    async fn replace_worker(
        &self,
        admin: &kube::Client,
        c: &Candidate,
        asker: &Asker<'_>,
        discovery: &Discovery,
    ) -> Result<Vec<Action>, DocumentError> {
        use kubeboot_kube::replace::worker::{self, NotYet};
        let grace = self.worker_grace().await;
        match worker::make_room(admin, &c.node, &c.machine_id, asker.group, grace).await {
            Ok(None) => Ok(Vec::new()),
            Ok(Some(cleanup)) => {
                // Who asked and why, in serve's journal.
                let line = format!(
                    "{} (asked by {} for its worker {})",
                    cleanup.line(),
                    asker.requester,
                    c.node
                );
                let mut actions = vec![Action::new(ActionKind::StaleNodeRemoved, line)];
                let notes =
                    kubeboot_kube::replace::record_events(admin, &[cleanup], "kubeboot-serve")
                        .await;
                actions.extend(notes.into_iter().map(|n| Action::new(ActionKind::Note, n)));
                Ok(actions)
            }
            Err(NotYet::Wait(wait, why)) => Err(DocumentError::Waiting(
                format!("{why}; the machine this one replaces may still be running"),
                wait,
            )),
            Err(NotYet::Refuse(why)) => Err(DocumentError::Conflict(why)),
            Err(NotYet::Failed(why)) => Err(unavailable(discovery, why)),
        }
    }

    /// The bundle's worker document's `[replace] grace_seconds` (300 s if unreadable).
    async fn worker_grace(&self) -> Duration {
        let path = self.bundle.join("nodes").join("worker.toml");
        let seconds = tokio::fs::read_to_string(&path)
            .await
            .ok()
            .and_then(|t| kubeboot_core::document::parse(&t).ok())
            .map_or(300, |d| d.replace.grace_seconds);
        Duration::from_secs(seconds)
    }

    /// The current upload's key while enough of it remains, else a new upload.
    async fn certificate_key(
        &self,
        admin: &kube::Client,
        discovery: &Discovery,
    ) -> Result<(SecretString, Option<String>), DocumentError> {
        let mut current = self.uploaded.lock().await;
        let margin = chrono::Duration::from_std(CERTS_REUSE_MARGIN).expect("small");
        if let Some(u) = current.as_ref().filter(|u| u.expires - Utc::now() > margin) {
            return Ok((u.key.clone(), None));
        }
        let files = crate::blocking(|| mint::read_pki(&self.bundle.join("pki")))
            .map_err(DocumentError::Bundle)?;
        let uploaded = mint::upload_certs(admin, &files, CERTS_TTL)
            .await
            .map_err(|e| unavailable(discovery, e))?;
        let pki = self.bundle.join("pki");
        let (store, kept) = (self.store.clone(), uploaded.clone());
        tokio::task::spawn_blocking(move || certificate_key::keep(&store, &pki, &kept))
            .await
            .map_err(|e| DocumentError::Bundle(e.to_string()))?
            .map_err(DocumentError::Bundle)?;
        let note =
            format!(
            "certificates re-uploaded to kube-system/kubeadm-certs under a new key (expires {})",
            uploaded.expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        let key = uploaded.key.clone();
        *current = Some(uploaded);
        Ok((key, Some(note)))
    }

    /// Every Node's pod route, read as cluster-admin (`GET /v1/pod-routes`: a
    /// node's own credentials may not list Nodes from Kubernetes 1.32).
    pub async fn pod_routes(&self) -> Result<Vec<PodRoute>, DocumentError> {
        let discovery = crate::blocking(|| bundle::read_discovery(&self.bundle))
            .map_err(|e| DocumentError::Bundle(e.to_string()))?;
        let admin = self.admin(&discovery)?;
        match tokio::time::timeout(CLUSTER_TIMEOUT, pod_routes::list_routes(&admin)).await {
            Ok(Ok(routes)) => Ok(routes),
            Ok(Err(why)) => Err(DocumentError::ClusterUnavailable(format!(
                "cannot list the Nodes at {}: {why}",
                discovery.endpoint
            ))),
            Err(_) => Err(DocumentError::ClusterUnavailable(format!(
                "the cluster at {} did not answer in {} s",
                discovery.endpoint,
                CLUSTER_TIMEOUT.as_secs()
            ))),
        }
    }

    /// cluster-admin for this request: a client certificate from the bundle's CA.
    fn admin(&self, discovery: &Discovery) -> Result<kube::Client, DocumentError> {
        let pki = self.bundle.join("pki");
        let read = |name: &str| {
            crate::blocking(|| std::fs::read_to_string(pki.join(name)))
                .map_err(|e| DocumentError::Bundle(format!("{}: {e}", pki.join(name).display())))
        };
        let ca_pem = read("ca.crt")?;
        let ca_key = SecretString::from(read("ca.key")?);
        let ca_der = kubeboot_core::tls::first_pem_certificate(ca_pem.as_bytes())
            .map_err(|e| DocumentError::Bundle(format!("{}: {e}", pki.join("ca.crt").display())))?;
        let (cert, key) = kubeboot_core::pki::issue_client_cert(
            &ca_pem,
            ca_key.expose_secret(),
            "kubeboot:serve",
            &["system:masters".to_string()],
            std::time::Duration::from_secs(10 * 60),
        )
        .map_err(DocumentError::Bundle)?;
        kubeboot_kube::client::pinned_client(
            &format!("https://{}", discovery.endpoint),
            &ca_der,
            Credentials::Certificate {
                cert: &cert,
                key: &SecretString::from(key),
            },
            CLUSTER_TIMEOUT,
        )
        .map_err(|e| unavailable(discovery, e))
    }
}

fn unavailable(discovery: &Discovery, why: String) -> DocumentError {
    DocumentError::ClusterUnavailable(format!(
        "cannot mint join credentials in the cluster at {}: {why}. If the first control plane is \
         still initialising, retry later",
        discovery.endpoint
    ))
}

/// A warning when the init document's kubeadm may wait longer for its control
/// plane than the lease lasts without a report (heartbeats normally keep it).
pub fn lease_warning(bundle: &Path, lease: Duration) -> Option<String> {
    let path = bundle.join("nodes").join("init.toml");
    let text = std::fs::read_to_string(&path).ok()?;
    let doc = kubeboot_core::document::parse(&text).ok()?;
    let timeout = doc.kubeadm.control_plane_timeout_seconds?;
    (timeout + 60 > lease.as_secs()).then(|| {
        format!(
            "--init-lease {} s is not longer than {}'s kubeadm control_plane_timeout_seconds \
             ({timeout} s): an elected node whose reports do not reach serve could lose its \
             lease while kubeadm init still runs; give --init-lease {} or more",
            lease.as_secs(),
            path.display(),
            timeout + 120
        )
    })
}

/// `--fresh-credentials` needs the CA key and the certificates to upload.
pub fn check_bundle(bundle: &Path, fresh: bool) -> Result<(), String> {
    if !bundle.join("nodes").is_dir() {
        return Err(format!(
            "--bundle {}: no nodes/ directory (make one with `kubeboot bundle new`)",
            bundle.display()
        ));
    }
    if fresh {
        bundle::read_discovery(bundle).map_err(|e| e.to_string())?;
        mint::read_pki(&bundle.join("pki")).map_err(|e| {
            format!("--fresh-credentials needs the bundle's pki/ (the CA key signs serve's admin certificate): {e}")
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minting_budget_is_per_role_and_per_minute() {
        let t = |s: i64| chrono::DateTime::<Utc>::from_timestamp(s, 0).unwrap();
        let mut b = Budget::new(2);
        assert!(b.take("worker", t(600)).is_ok());
        assert!(b.take("worker", t(610)).is_ok());
        assert_eq!(b.take("worker", t(615)), Err(45));
        assert!(
            b.take("control-plane", t(615)).is_ok(),
            "another role has its own"
        );
        assert!(b.take("worker", t(660)).is_ok(), "a new minute");
    }
}
