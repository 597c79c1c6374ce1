//! Making room for a replacement machine: before a control plane joins, the
//! debris of the machine it replaces is cleaned up, safely.
//!
//! Immutable infrastructure never repairs a node; it boots a fresh one with the
//! same role (often the same name). kubeadm leaves the dead machine's etcd member
//! in the member list (a 3-member etcd with one dead member cannot lose another;
//! a same-name join fails) and its Node object behind (taken over by a same-name
//! join, or NotReady forever).
//!
//! Who cleans up: the joining control plane itself, in `discover`, after the
//! cluster is verified and before kubeadm runs. It already holds what it needs:
//! the bootstrap token and the certificate key open kubeadm's uploaded
//! certificates (`kube-system/kubeadm-certs`, which kubeadm's own control-plane
//! join downloads a minute later). From them it mints, in memory only, two
//! certificates valid for 10 minutes: a cluster-admin client certificate from
//! the cluster CA (the trust kubeadm gives a joining control plane: it writes an
//! admin.conf from the same CA) and an etcd client certificate from the etcd CA.
//! Nothing is written to disk. Workers hold no such credentials and clean up
//! nothing (see docs/replacement.md).
//!
//! Rules: [`etcd::decide`] and [`node::decide`]. At most one etcd member per
//! join, and only one that a quorum of the remaining members see down (their
//! peer connections, not this node's probes) for the whole grace period, whose
//! Node is gone or silent past the grace period; never without quorum; one
//! membership change at a time across the cluster (an etcd lock). Nodes are
//! deleted after the etcd decision: this node's same-name one if stale, and the
//! removed member's.
//! Without the uploaded certificates (expired, not readable) nothing is cleaned up
//! and the join goes on as kubeadm alone would; a certificate key that does not
//! open them stops the join (kubeadm would fail on it a minute later).

pub mod etcd;
pub mod node;
pub mod uploaded_certs;
pub mod worker;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::Api;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::client::{describe, Credentials};

/// The annotation kubeadm puts on each stacked etcd Pod: its client URLs.
pub const ETCD_CLIENT_URLS_ANNOTATION: &str = "kubeadm.kubernetes.io/etcd.advertise-client-urls";

/// The verified cluster and this join's secrets.
pub struct ClusterAccess {
    /// https://HOST:PORT of the API server (the verified endpoint).
    pub server: String,
    /// The cluster CA discovery pinned (DER).
    pub ca_der: Vec<u8>,
    pub token: SecretString,
    pub certificate_key: SecretString,
}

impl std::fmt::Debug for ClusterAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterAccess")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// What a join document gives the cleanup: the cluster discovery verified, the
/// token and certificate key, and the node's name (`hostname` is kubeadm's default,
/// lowercased). None unless this is a control-plane join with token discovery, a
/// certificate key and `[replace] enabled`.
pub fn for_join(
    doc: &kubeboot_core::document::ValidDocument,
    verified: &crate::discovery::Verified,
    hostname: impl FnOnce() -> String,
) -> Option<(ClusterAccess, String)> {
    if !applies_to(doc) {
        return None;
    }
    let d = &doc.doc.discovery;
    let (Some(token), Some(key)) = (&d.token, &d.certificate_key) else {
        return None;
    };
    let name = doc
        .node_name()
        .map(str::to_string)
        .unwrap_or_else(|| hostname().to_lowercase());
    Some((
        ClusterAccess {
            server: verified.server.clone(),
            ca_der: verified.ca_der.clone(),
            token: token.clone(),
            certificate_key: key.clone(),
        },
        name,
    ))
}

/// Whether a join cleans up after the machine it replaces: a control-plane join
/// with a bootstrap token, a certificate key and `[replace] enabled` (what
/// [`for_join`] needs, known before the cluster is verified).
pub fn applies_to(doc: &kubeboot_core::document::ValidDocument) -> bool {
    let d = &doc.doc.discovery;
    doc.role == kubeboot_core::document::Role::ControlPlane
        && doc.doc.replace.enabled
        && d.token.is_some()
        && d.certificate_key.is_some()
}

#[derive(Debug, Clone)]
pub struct Options {
    /// How long a member or Node must stay silent before it is taken for dead.
    pub grace: Duration,
    /// Between two probes of a silent member.
    pub probe_interval: Duration,
    /// Bound on each connection and request.
    pub timeout: Duration,
    /// Decide and say, change nothing.
    pub dry_run: bool,
    /// This node's advertise address: an unstarted etcd member with its peer URL
    /// there is an earlier, unfinished attempt of this node's own join.
    pub own_address: Option<String>,
}

impl Options {
    /// Between two probes of a silent member, at least 100 ms.
    fn probe_interval(&self) -> Duration {
        self.probe_interval.max(Duration::from_millis(100))
    }

    /// The document's `[replace] grace_seconds`; probes every 10 s, 15 s per call.
    pub fn for_document(doc: &kubeboot_core::document::ValidDocument, dry_run: bool) -> Options {
        Options {
            grace: Duration::from_secs(doc.doc.replace.grace_seconds),
            probe_interval: Duration::from_secs(10),
            timeout: Duration::from_secs(15),
            dry_run,
            own_address: doc.doc.node.advertise_address.map(|a| a.to_string()),
        }
    }
}

/// One thing removed (or, in a dry run, that would be).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cleanup {
    /// `etcd member` or `Node`.
    pub object: String,
    pub name: String,
    pub why: String,
    /// false in a dry run.
    pub removed: bool,
}

impl Cleanup {
    pub fn line(&self) -> String {
        format!(
            "{} {} {}: {}",
            if self.removed {
                "removed"
            } else {
                "would remove"
            },
            self.object,
            self.name,
            self.why
        )
    }
}

/// Tell the cluster what was cleaned up: one Event per cleanup in `default`, about
/// the Node (`kubectl get events` shows who removed what and why). Best effort:
/// the cleanup is done either way; a failure comes back as a note.
pub async fn record_events(
    admin: &kube::Client,
    cleanups: &[Cleanup],
    reporter: &str,
) -> Vec<String> {
    use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
    let events: Api<Event> = Api::namespaced(admin.clone(), crate::boot::EVENT_NAMESPACE);
    let mut notes = Vec::new();
    for c in cleanups.iter().filter(|c| c.removed) {
        let now = k8s_openapi::jiff::Timestamp::now();
        let node = match c.object.as_str() {
            "Node" => c.name.clone(),
            _ => reporter.to_string(),
        };
        let event = Event {
            metadata: ObjectMeta {
                generate_name: Some(format!("{node}.kubeboot-cleanup.")),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(node),
                ..ObjectReference::default()
            },
            reason: Some(if c.object == "Node" {
                "KubebootRemovedStaleNode".into()
            } else {
                "KubebootRemovedEtcdMember".into()
            }),
            message: Some(c.line()),
            type_: Some("Normal".into()),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            count: Some(1),
            action: Some("Replace".into()),
            reporting_component: Some("kubeboot.io/replace".into()),
            reporting_instance: Some(reporter.into()),
            source: Some(EventSource {
                component: Some("kubeboot".into()),
                host: Some(reporter.into()),
            }),
            ..Event::default()
        };
        if let Err(e) = events.create(&PostParams::default(), &event).await {
            notes.push(format!(
                "the Event for \"{}\" was not recorded: {}",
                c.line(),
                describe(&e)
            ));
        }
    }
    notes
}

/// What was seen and done.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub cleanups: Vec<Cleanup>,
    /// What was checked and left alone, and why.
    pub notes: Vec<String>,
    /// The members as seen before any removal (empty without stacked etcd).
    pub etcd_members: Vec<etcd::Member>,
}

/// `call` (one or a few Kubernetes requests), bounded as a whole by `bound`: the
/// client's own timeouts bound the connect (TLS handshake included) and each
/// read and write, not a server that trickles its answer.
pub(crate) async fn within<T>(
    bound: Duration,
    what: &str,
    call: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::time::timeout(bound, call).await.unwrap_or_else(|_| {
        Err(format!(
            "{what}: the API server did not answer within {} s",
            bound.as_secs_f64()
        ))
    })
}

/// Clean up after the machine `node_name` replaces, or say why the join must stop.
///
/// Order: the same-name Node is looked at first (a Ready one stops the join
/// before anything changes), then etcd decides and removes at most one member,
/// and only then are Nodes deleted: the same-name one if stale, and the Node of
/// the member removed, if it is another and stale. No Node goes on a refusal.
pub async fn make_room(
    access: &ClusterAccess,
    node_name: &str,
    opts: &Options,
) -> Result<Report, String> {
    let Some((admin, certs)) = admin_client(access, node_name, opts).await? else {
        return Ok(Report {
            notes: vec!["nothing cleaned up: kubeadm's uploaded certificates are not there (kubeadm's own download will say why)".into()],
            ..Report::default()
        });
    };
    let mut report = Report::default();
    let own_node = stale_node(&admin, node_name, opts).await?;
    let removed = stale_member(&admin, &certs, node_name, opts, &mut report).await?;
    match own_node {
        None => report.notes.push(format!("no Node named {node_name}")),
        Some(why) => delete_node(&admin, node_name, why, opts, &mut report).await?,
    }
    if let Some(member) = removed.filter(|m| !m.name.is_empty() && m.name != node_name) {
        let seen = within(
            opts.timeout * 2,
            "read a Node",
            node::observe(&admin, &member.name),
        );
        match node::decide(seen.await?.as_ref(), chrono::Utc::now(), opts.grace) {
            node::NodeDecision::Delete { why } => {
                delete_node(&admin, &member.name, why, opts, &mut report).await?
            }
            node::NodeDecision::Absent => report.notes.push(format!(
                "no Node named {} (its etcd member was)",
                member.name
            )),
            node::NodeDecision::Wait { why, .. } | node::NodeDecision::Refuse { why } => report
                .notes
                .push(format!("Node {} left alone: {why}", member.name)),
        }
    }
    let bound = opts.timeout * (report.cleanups.len() as u32 + 1);
    let notes = within(bound, "record Events", async {
        Ok(record_events(&admin, &report.cleanups, node_name).await)
    })
    .await
    .unwrap_or_else(|e| vec![format!("the cleanup's Events were not recorded: {e}")]);
    report.notes.extend(notes);
    Ok(report)
}

/// cluster-admin for this join, in memory: a client certificate from the cluster
/// CA in kubeadm's uploaded certificates (opened with the certificate key). None
/// when the upload is not there (expired or never made).
async fn admin_client(
    access: &ClusterAccess,
    node_name: &str,
    opts: &Options,
) -> Result<Option<(kube::Client, uploaded_certs::UploadedCerts)>, String> {
    let bootstrap = client(access, Credentials::Token(&access.token), opts)?;
    let downloaded = tokio::time::timeout(
        opts.timeout,
        uploaded_certs::download(&bootstrap, &access.certificate_key),
    )
    .await
    .unwrap_or_else(|_| {
        Err(uploaded_certs::CertsError::Unavailable(format!(
            "read kube-system/{}: the API server did not answer within {} s",
            uploaded_certs::SECRET,
            opts.timeout.as_secs_f64()
        )))
    });
    let certs = match downloaded {
        Ok(certs) => certs,
        Err(uploaded_certs::CertsError::WrongKey(why)) => return Err(why),
        Err(uploaded_certs::CertsError::Unavailable(why)) => {
            tracing::info!("kubeadm's uploaded certificates: {why}");
            return Ok(None);
        }
    };
    let (cert, key) = kubeboot_core::pki::issue_client_cert(
        certs.pem("ca.crt")?.expose_secret(),
        certs.pem("ca.key")?.expose_secret(),
        &format!("kubeboot:replace:{node_name}"),
        &["system:masters".to_string()],
        std::time::Duration::from_secs(10 * 60),
    )?;
    let admin = client(
        access,
        Credentials::Certificate {
            cert: &cert,
            key: &SecretString::from(key),
        },
        opts,
    )?;
    Ok(Some((admin, certs)))
}

/// Before a control-plane join is tried again: remove this node's own etcd member
/// if an earlier attempt left one that never started (kubeadm added it, then the
/// attempt failed before etcd ran; etcd then refuses every further member add,
/// "not enough started members"). Only this node's own identity, only when it
/// does not answer and a quorum of the others see it down, and only with a quorum
/// answering; the Node is left to the retry.
pub async fn forget_unfinished_join(
    access: &ClusterAccess,
    node_name: &str,
    opts: &Options,
) -> Result<Report, String> {
    let mut report = Report::default();
    let Some((admin, certs)) = admin_client(access, node_name, opts).await? else {
        return Ok(report);
    };
    let Some((etcd_access, endpoints)) =
        etcd_access(&admin, &certs, node_name, opts, &mut report).await?
    else {
        return Ok(report);
    };
    let members = etcd::members(&etcd_access, &endpoints).await?;
    let own = opts.own_address.as_deref();
    if !members
        .iter()
        .any(|m| !m.reachable && m.is_identity_of(node_name, own))
    {
        report
            .notes
            .push("no etcd member of an earlier attempt of this join".into());
        return Ok(report);
    }
    remove_stale_member(
        &etcd_access,
        members,
        node_name,
        &Nodes::Unknown,
        opts,
        &mut report,
    )
    .await?;
    let notes = within(opts.timeout * 2, "record Events", async {
        Ok(record_events(&admin, &report.cleanups, node_name).await)
    })
    .await
    .unwrap_or_else(|e| vec![format!("the cleanup's Events were not recorded: {e}")]);
    report.notes.extend(notes);
    Ok(report)
}

/// The Node named like this node: absent (None), stale (Some: why it may be
/// deleted, once etcd has decided), or alive (refused).
async fn stale_node(
    admin: &kube::Client,
    node_name: &str,
    opts: &Options,
) -> Result<Option<String>, String> {
    let get = || {
        within(
            opts.timeout * 2,
            "read a Node",
            node::observe(admin, node_name),
        )
    };
    let mut decision = node::decide(get().await?.as_ref(), chrono::Utc::now(), opts.grace);
    if let node::NodeDecision::Wait { wait, why } = &decision {
        tracing::info!("{why}; asking again in {} s", wait.as_secs());
        tokio::time::sleep(*wait + Duration::from_secs(1)).await;
        decision = node::decide(get().await?.as_ref(), chrono::Utc::now(), opts.grace);
    }
    match decision {
        node::NodeDecision::Absent => Ok(None),
        node::NodeDecision::Refuse { why } => Err(why),
        node::NodeDecision::Wait { why, .. } => Err(format!(
            "{why}, still after waiting: its kubelet keeps reporting; stop the old machine"
        )),
        node::NodeDecision::Delete { why } => Ok(Some(why)),
    }
}

/// Delete the Node `name` (unless a dry run) and record the cleanup.
async fn delete_node(
    admin: &kube::Client,
    name: &str,
    why: String,
    opts: &Options,
    report: &mut Report,
) -> Result<(), String> {
    if !opts.dry_run {
        let nodes: Api<Node> = Api::all(admin.clone());
        within(opts.timeout, &format!("delete Node {name}"), async {
            nodes
                .delete(name, &DeleteParams::default())
                .await
                .map_err(|e| format!("delete Node {name}: {}", describe(&e)))
        })
        .await?;
    }
    report.cleanups.push(Cleanup {
        object: "Node".into(),
        name: name.into(),
        why,
        removed: !opts.dry_run,
    });
    Ok(())
}

/// The client URLs of the stacked etcd members, from kubeadm's etcd Pods.
async fn etcd_endpoints(admin: &kube::Client, opts: &Options) -> Result<Vec<String>, String> {
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "kube-system");
    let list = within(opts.timeout, "list etcd Pods", async {
        pods.list(&ListParams::default().labels("component=etcd,tier=control-plane"))
            .await
            .map_err(|e| format!("list etcd Pods in kube-system: {}", describe(&e)))
    })
    .await?;
    Ok(list
        .items
        .iter()
        .filter_map(|p| {
            p.metadata
                .annotations
                .as_ref()?
                .get(ETCD_CLIENT_URLS_ANNOTATION)
        })
        .flat_map(|urls| urls.split(',').map(|u| u.trim().to_string()))
        .filter(|u| !u.is_empty())
        .collect())
}

/// The etcd member of the machine this one replaces (or another dead one), if it
/// is safe to remove; the one removed (or, in a dry run, that would be).
async fn stale_member(
    admin: &kube::Client,
    certs: &uploaded_certs::UploadedCerts,
    node_name: &str,
    opts: &Options,
    report: &mut Report,
) -> Result<Option<etcd::Member>, String> {
    let Some((access, endpoints)) = etcd_access(admin, certs, node_name, opts, report).await?
    else {
        return Ok(None);
    };
    let members = etcd::members(&access, &endpoints).await?;
    remove_stale_member(
        &access,
        members,
        node_name,
        &Nodes::Cluster(admin),
        opts,
        report,
    )
    .await
}

/// An etcd client certificate (from the uploaded etcd CA, in memory) and the
/// stacked members' client URLs; None with a note when there is no stacked etcd
/// or no etcd CA key to work with.
async fn etcd_access(
    admin: &kube::Client,
    certs: &uploaded_certs::UploadedCerts,
    node_name: &str,
    opts: &Options,
    report: &mut Report,
) -> Result<Option<(etcd::EtcdAccess, Vec<String>)>, String> {
    let endpoints = etcd_endpoints(admin, opts).await?;
    if endpoints.is_empty() {
        report.notes.push(
            "no stacked etcd Pods in kube-system (external etcd?): etcd members left alone".into(),
        );
        return Ok(None);
    }
    let (Ok(ca), Ok(ca_key)) = (certs.pem("etcd/ca.crt"), certs.pem("etcd/ca.key")) else {
        report
            .notes
            .push("the uploaded certificates carry no etcd CA key: etcd members left alone".into());
        return Ok(None);
    };
    let (cert, key) = kubeboot_core::pki::issue_client_cert(
        ca.expose_secret(),
        ca_key.expose_secret(),
        &format!("kubeboot-replace-{node_name}"),
        &[],
        std::time::Duration::from_secs(10 * 60),
    )?;
    let access = etcd::EtcdAccess {
        ca_pem: ca.expose_secret().to_string(),
        cert_pem: cert,
        key_pem: SecretString::from(key),
        timeout: opts.timeout,
    };
    Ok(Some((access, endpoints)))
}

/// Where the state of the Nodes named like members comes from.
pub enum Nodes<'a> {
    /// Read from the cluster (each Node and its kubelet's Lease, [`node::decide`]).
    Cluster(&'a kube::Client),
    /// Given (tests, and callers that already know).
    Given(BTreeMap<String, etcd::NodeState>),
    /// Not known: only this node's own identity can be removed.
    Unknown,
}

impl Nodes<'_> {
    async fn states(
        &self,
        names: &BTreeSet<String>,
        opts: &Options,
    ) -> Result<Option<BTreeMap<String, etcd::NodeState>>, String> {
        match self {
            Nodes::Unknown => Ok(None),
            Nodes::Given(states) => Ok(Some(states.clone())),
            Nodes::Cluster(admin) => {
                let mut out = BTreeMap::new();
                for name in names {
                    let seen =
                        within(opts.timeout * 2, "read a Node", node::observe(admin, name)).await?;
                    let state = match node::decide(seen.as_ref(), chrono::Utc::now(), opts.grace) {
                        node::NodeDecision::Absent => etcd::NodeState::Gone,
                        node::NodeDecision::Delete { .. } => etcd::NodeState::Stale,
                        node::NodeDecision::Wait { why, .. }
                        | node::NodeDecision::Refuse { why } => etcd::NodeState::Heard { why },
                    };
                    out.insert(name.clone(), state);
                }
                Ok(Some(out))
            }
        }
    }
}

/// How long a join holds the membership lock at most: one fresh look at the
/// cluster (member list, probes, the members' views, the Nodes) and one removal,
/// each call bounded by the timeout. The lock is taken after the grace period,
/// not for it (minutes of waiting would stall every other join), and let go once
/// the removal shows in every member's list, not held until this join's kubeadm
/// adds its member: that add comes minutes later from another process, and
/// nothing can confuse it any more. Another join never removes an unstarted member
/// that is not at its own address ([`etcd::decide`]), and etcd itself refuses a
/// member add that would leave fewer started members than a quorum.
fn lock_hold(opts: &Options) -> Duration {
    (opts.timeout * 8).max(Duration::from_secs(60))
}

/// Given the members as first seen: watch the silent ones over the grace period
/// (a few looks when the only silent one is this node's own old identity); then,
/// holding the membership lock ([`etcd::lock`], not in a dry run), look again,
/// decide ([`etcd::decide`]) and remove at most one. Used by [`make_room`],
/// [`forget_unfinished_join`] and the tests against a real etcd. Returns the
/// member removed (in a dry run: that would be).
pub async fn remove_stale_member(
    access: &etcd::EtcdAccess,
    members: Vec<etcd::Member>,
    node_name: &str,
    nodes: &Nodes<'_>,
    opts: &Options,
    report: &mut Report,
) -> Result<Option<etcd::Member>, String> {
    let interval = opts.probe_interval();
    let own = opts.own_address.as_deref();
    let only_own_silent = members
        .iter()
        .filter(|m| !m.reachable)
        .all(|m| m.is_identity_of(node_name, own));
    let rounds = if only_own_silent {
        3
    } else {
        (opts.grace.as_millis().div_ceil(interval.as_millis())).max(1) as u32
    };
    let views = etcd::views(access, &members).await;
    let silent = etcd::silent_throughout(access, &members, &views, rounds, interval).await;
    if silent.is_empty() {
        report.etcd_members = members.clone();
        let look = etcd::Look {
            members: &members,
            views: &views,
            silent_throughout: Some(&silent),
            nodes: None,
        };
        return settle(
            access,
            &members,
            etcd::decide(look, node_name, own),
            opts,
            report,
        )
        .await;
    }
    let endpoints: Vec<String> = members
        .iter()
        .filter(|m| m.reachable)
        .flat_map(|m| m.client_urls.iter().cloned())
        .collect();
    let decide_and_remove = async {
        let members = etcd::members(access, &endpoints).await?;
        let views = etcd::views(access, &members).await;
        let names: BTreeSet<String> = members
            .iter()
            .filter(|m| silent.contains(&m.id) && !m.name.is_empty())
            .map(|m| m.name.clone())
            .collect();
        let states = nodes.states(&names, opts).await?;
        report.etcd_members = members.clone();
        let look = etcd::Look {
            members: &members,
            views: &views,
            silent_throughout: Some(&silent),
            nodes: states.as_ref(),
        };
        let decision = etcd::decide(look, node_name, own);
        settle(access, &members, decision, opts, report).await
    };
    if opts.dry_run {
        return decide_and_remove.await;
    }
    let hold = lock_hold(opts);
    let held = etcd::lock(
        access,
        &endpoints,
        hold + opts.timeout * 2,
        hold + opts.timeout * 3,
    )
    .await?;
    let done = tokio::time::timeout(hold, decide_and_remove).await;
    held.release(access).await;
    done.unwrap_or_else(|_| {
        Err(format!(
            "etcd did not answer a fresh look at its members within {} s while this join held \
             the membership lock; nothing more is removed",
            hold.as_secs()
        ))
    })
}

/// Carry out a decision: a note, a refusal, or one removal (not in a dry run).
async fn settle(
    access: &etcd::EtcdAccess,
    members: &[etcd::Member],
    decision: etcd::Decision,
    opts: &Options,
    report: &mut Report,
) -> Result<Option<etcd::Member>, String> {
    match decision {
        etcd::Decision::Keep { why } => {
            report.notes.push(why);
            Ok(None)
        }
        etcd::Decision::Refuse { why } => Err(why),
        etcd::Decision::Remove { member, why } => {
            if !opts.dry_run {
                etcd::remove(access, members, &member).await?;
            }
            report.cleanups.push(Cleanup {
                object: "etcd member".into(),
                name: member.label(),
                why,
                removed: !opts.dry_run,
            });
            Ok(Some(member))
        }
    }
}

/// A kube client for the verified server, trusting only the pinned CA.
fn client(
    access: &ClusterAccess,
    credentials: Credentials<'_>,
    opts: &Options,
) -> Result<kube::Client, String> {
    crate::client::pinned_client(&access.server, &access.ca_der, credentials, opts.timeout)
}
