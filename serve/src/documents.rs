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

use super::election::{Candidate, Election, Verdict};
use super::journal::{Action, ActionKind};
use super::mint::{self, UploadedKey, Usage};
use super::nodes::Nodes;
use crate::bundle::{self, Discovery};
use kubeboot_agent::cluster::Credentials;
use kubeboot_core::document::Role;

pub const TOKEN_TTL: Duration = Duration::from_secs(3600);
pub const CERTS_TTL: Duration = Duration::from_secs(2 * 3600);
/// A join runs for minutes; 70 minutes outlives the token handed out with the key.
pub const CERTS_REUSE_MARGIN: Duration = Duration::from_secs(70 * 60);
/// Bound on each call to the cluster.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(15);

pub struct Documents {
    bundle: PathBuf,
    fresh: bool,
    uploaded: tokio::sync::Mutex<Option<UploadedKey>>,
    /// With fresh credentials: who initialises a cluster that does not answer yet.
    election: Option<Election>,
    /// Documents with fresh credentials served in the current minute, by role: a
    /// leaked document token cannot fill kube-system with Secrets.
    budget: std::sync::Mutex<Budget>,
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
    /// 503: another control plane was elected to initialise the cluster.
    Waiting(String),
    /// 400: the request lacks what the document needs (the node's identity).
    BadRequest(String),
    /// 429: this role's minting budget for the minute is spent; retry after the seconds.
    TooMany(String, u64),
    /// 409: a live Node already has the name this node asks for.
    Conflict(String),
    /// 500: the bundle is damaged.
    Bundle(String),
}

/// A document and what was minted and done for it (serve's own events; no secrets).
pub struct Served {
    pub text: String,
    /// Credentials minted, an election, a stale Node removed.
    pub actions: Vec<Action>,
}

impl Documents {
    pub fn new(
        bundle: PathBuf,
        fresh: bool,
        election: Option<Election>,
        per_minute: u32,
    ) -> Documents {
        Documents {
            bundle,
            fresh,
            uploaded: tokio::sync::Mutex::new(None),
            election,
            budget: std::sync::Mutex::new(Budget::new(per_minute)),
        }
    }

    pub fn fresh(&self) -> bool {
        self.fresh
    }

    /// The document for `role`, asked for by the holder of token `requester` (its
    /// id), from the node `candidate` says it is (if it said).
    pub async fn render(
        &self,
        role: Role,
        requester: &str,
        candidate: Option<&Candidate>,
        nodes: &std::sync::RwLock<Nodes>,
    ) -> Result<Served, DocumentError> {
        match self.render_join(role, requester, candidate).await {
            Err(DocumentError::ClusterUnavailable(why)) if role == Role::ControlPlane => {
                self.elect(why, candidate, nodes).await
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

    /// The cluster does not answer: the init document for the elected one.
    async fn elect(
        &self,
        why: String,
        candidate: Option<&Candidate>,
        nodes: &std::sync::RwLock<Nodes>,
    ) -> Result<Served, DocumentError> {
        let Some(election) = &self.election else {
            return Err(DocumentError::ClusterUnavailable(why));
        };
        let Some(candidate) = candidate else {
            return Err(DocumentError::BadRequest(format!(
                "{why}; to take part in the init election a request must name its node \
                 (headers Kubeboot-Node and Kubeboot-Machine-Id, as the kubeboot agent sends them)"
            )));
        };
        match election
            .ask(candidate, nodes)
            .await
            .map_err(DocumentError::Bundle)?
        {
            Verdict::Wait { why } => Err(DocumentError::Waiting(why)),
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

    async fn bundle_file(&self, role: Role) -> Result<Served, DocumentError> {
        let path = self
            .bundle
            .join("nodes")
            .join(format!("{}.toml", role.as_str()));
        match tokio::fs::read_to_string(&path).await {
            Ok(text) => Ok(Served {
                text,
                actions: Vec::new(),
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

    async fn render_join(
        &self,
        role: Role,
        requester: &str,
        candidate: Option<&Candidate>,
    ) -> Result<Served, DocumentError> {
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
        let mut discovery = bundle::read_discovery(&self.bundle).map_err(DocumentError::Bundle)?;
        let admin = self.admin(&discovery)?;
        let mut actions = Vec::new();
        if let (Role::Worker, Some(c)) = (role, candidate) {
            actions = self.replace_worker(&admin, c, &discovery).await?;
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
        actions.push(Action::minted(format!(
            "bootstrap token {} (expires {})",
            token.id,
            token
                .expires
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )));
        discovery.token = token.token.expose_secret().to_string();
        if role == Role::ControlPlane {
            let (key, note) = self.certificate_key(&admin, &discovery).await?;
            discovery.certificate_key = key.expose_secret().to_string();
            actions.extend(note.map(Action::minted));
        }
        let text =
            bundle::node_document(role, &discovery, &self.bundle).map_err(DocumentError::Bundle)?;
        Ok(Served { text, actions })
    }

    /// The worker replaces a machine of the same name: its stale Node goes first
    /// (kubeboot_agent::replace::worker), with an Event saying so.
    async fn replace_worker(
        &self,
        admin: &kube::Client,
        c: &Candidate,
        discovery: &Discovery,
    ) -> Result<Vec<Action>, DocumentError> {
        use kubeboot_agent::replace::worker::{self, NotYet};
        let grace = self.worker_grace().await;
        match worker::make_room(admin, &c.node, &c.machine_id, grace).await {
            Ok(None) => Ok(Vec::new()),
            Ok(Some(cleanup)) => {
                let mut actions = vec![Action::new(ActionKind::StaleNodeRemoved, cleanup.line())];
                let notes =
                    kubeboot_agent::replace::record_events(admin, &[cleanup], "kubeboot-serve")
                        .await;
                actions.extend(notes.into_iter().map(|n| Action::new(ActionKind::Note, n)));
                Ok(actions)
            }
            Err(NotYet::Wait(_, why)) => Err(DocumentError::Waiting(format!(
                "{why}; the machine this one replaces may still be running"
            ))),
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
        let files = mint::read_pki(&self.bundle.join("pki")).map_err(DocumentError::Bundle)?;
        let uploaded = mint::upload_certs(admin, &files, CERTS_TTL)
            .await
            .map_err(|e| unavailable(discovery, e))?;
        let note =
            format!(
            "certificates re-uploaded to kube-system/kubeadm-certs under a new key (expires {})",
            uploaded.expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        let key = uploaded.key.clone();
        *current = Some(uploaded);
        Ok((key, Some(note)))
    }

    /// cluster-admin for this request: a client certificate from the bundle's CA.
    fn admin(&self, discovery: &Discovery) -> Result<kube::Client, DocumentError> {
        let pki = self.bundle.join("pki");
        let read = |name: &str| {
            std::fs::read_to_string(pki.join(name))
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
        kubeboot_agent::cluster::pinned_client(
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

/// `--fresh-credentials` needs the CA key and the certificates to upload.
pub fn check_bundle(bundle: &Path, fresh: bool) -> Result<(), String> {
    if !bundle.join("nodes").is_dir() {
        return Err(format!(
            "--bundle {}: no nodes/ directory (make one with `kubeboot bundle new`)",
            bundle.display()
        ));
    }
    if fresh {
        bundle::read_discovery(bundle)?;
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
