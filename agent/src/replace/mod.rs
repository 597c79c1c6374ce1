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
//! nothing (see README).
//!
//! Rules: [`etcd::decide`] and [`node::decide`]. At most one etcd member and one
//! Node per join; never a member or Node that answers; never without quorum.
//! Without the uploaded certificates (expired, not readable) nothing is cleaned up
//! and the join goes on as kubeadm alone would; a certificate key that does not
//! open them stops the join (kubeadm would fail on it a minute later).

pub mod etcd;
pub mod node;
pub mod uploaded_certs;
pub mod worker;

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::Api;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::cluster::{describe, Credentials};

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
    let events: Api<Event> =
        Api::namespaced(admin.clone(), crate::cluster::report::EVENT_NAMESPACE);
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

/// Clean up after the machine `node_name` replaces, or say why the join must stop.
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
    stale_node(&admin, node_name, opts, &mut report).await?;
    stale_member(&admin, &certs, node_name, opts, &mut report).await?;
    let notes = record_events(&admin, &report.cleanups, node_name).await;
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
    let certs = match uploaded_certs::download(&bootstrap, &access.certificate_key).await {
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
/// "not enough started members"). Only this node's own identity, only when
/// unreachable, and only with a quorum answering; the Node is left to the retry.
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
    let mut members = etcd::members(&etcd_access, &endpoints).await?;
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
    etcd::confirm_unreachable(&etcd_access, &mut members, 3, opts.probe_interval()).await;
    report.etcd_members = members.clone();
    match etcd::decide(&members, node_name, own, None) {
        etcd::Decision::Remove { member, why } if member.is_identity_of(node_name, own) => {
            remove_member(&etcd_access, &members, member, why, opts, &mut report).await?;
            let notes = record_events(&admin, &report.cleanups, node_name).await;
            report.notes.extend(notes);
        }
        etcd::Decision::Refuse { why } => return Err(why),
        _ => report
            .notes
            .push("this node's earlier member answers again: left alone".into()),
    }
    Ok(report)
}

/// The Node named like this node: absent, stale (deleted), or alive (refused).
async fn stale_node(
    admin: &kube::Client,
    node_name: &str,
    opts: &Options,
    report: &mut Report,
) -> Result<(), String> {
    let nodes: Api<Node> = Api::all(admin.clone());
    let get = || node::observe(admin, node_name);
    let mut decision = node::decide(get().await?.as_ref(), chrono::Utc::now(), opts.grace);
    if let node::NodeDecision::Wait { wait, why } = &decision {
        tracing::info!("{why}; asking again in {} s", wait.as_secs());
        tokio::time::sleep(*wait + Duration::from_secs(1)).await;
        decision = node::decide(get().await?.as_ref(), chrono::Utc::now(), opts.grace);
    }
    match decision {
        node::NodeDecision::Absent => {
            report.notes.push(format!("no Node named {node_name}"));
            Ok(())
        }
        node::NodeDecision::Refuse { why } => Err(why),
        node::NodeDecision::Wait { why, .. } => Err(format!(
            "{why}, still after waiting: its kubelet keeps reporting; stop the old machine"
        )),
        node::NodeDecision::Delete { why } => {
            if !opts.dry_run {
                nodes
                    .delete(node_name, &DeleteParams::default())
                    .await
                    .map_err(|e| format!("delete Node {node_name}: {}", describe(&e)))?;
            }
            report.cleanups.push(Cleanup {
                object: "Node".into(),
                name: node_name.into(),
                why,
                removed: !opts.dry_run,
            });
            Ok(())
        }
    }
}

/// The client URLs of the stacked etcd members, from kubeadm's etcd Pods.
async fn etcd_endpoints(admin: &kube::Client) -> Result<Vec<String>, String> {
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "kube-system");
    let list = pods
        .list(&ListParams::default().labels("component=etcd,tier=control-plane"))
        .await
        .map_err(|e| format!("list etcd Pods in kube-system: {}", describe(&e)))?;
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

/// The etcd member of the machine this one replaces (or any dead one), if it is safe to remove.
async fn stale_member(
    admin: &kube::Client,
    certs: &uploaded_certs::UploadedCerts,
    node_name: &str,
    opts: &Options,
    report: &mut Report,
) -> Result<(), String> {
    let Some((access, endpoints)) = etcd_access(admin, certs, node_name, opts, report).await?
    else {
        return Ok(());
    };
    let members = etcd::members(&access, &endpoints).await?;
    remove_stale_member(
        &access,
        members,
        node_name,
        node_names(admin).await?,
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
    let endpoints = etcd_endpoints(admin).await?;
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

async fn node_names(admin: &kube::Client) -> Result<BTreeSet<String>, String> {
    let nodes: Api<Node> = Api::all(admin.clone());
    let list = nodes
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("list Nodes: {}", describe(&e)))?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect())
}

/// Given the members as first seen: confirm the silent ones over the grace period
/// (a few probes when the silent one is this node's own old identity), decide, and
/// remove at most one. Used by [`make_room`] and by the tests against a real etcd.
pub async fn remove_stale_member(
    access: &etcd::EtcdAccess,
    mut members: Vec<etcd::Member>,
    node_name: &str,
    node_names: BTreeSet<String>,
    opts: &Options,
    report: &mut Report,
) -> Result<(), String> {
    let interval = opts.probe_interval();
    let own = opts.own_address.as_deref();
    let own_silent = members
        .iter()
        .any(|m| !m.reachable && m.is_identity_of(node_name, own));
    let probes = if own_silent {
        3
    } else {
        (opts.grace.as_millis() / interval.as_millis()).max(1) as u32
    };
    etcd::confirm_unreachable(access, &mut members, probes, interval).await;
    report.etcd_members = members.clone();
    match etcd::decide(&members, node_name, own, Some(&node_names)) {
        etcd::Decision::Keep { why } => {
            report.notes.push(why);
            Ok(())
        }
        etcd::Decision::Refuse { why } => Err(why),
        etcd::Decision::Remove { member, why } => {
            remove_member(access, &members, member, why, opts, report).await
        }
    }
}

/// Remove one member (unless a dry run) and record the cleanup.
async fn remove_member(
    access: &etcd::EtcdAccess,
    members: &[etcd::Member],
    member: etcd::Member,
    why: String,
    opts: &Options,
    report: &mut Report,
) -> Result<(), String> {
    if !opts.dry_run {
        etcd::remove(access, members, &member).await?;
    }
    report.cleanups.push(Cleanup {
        object: "etcd member".into(),
        name: member.label(),
        why,
        removed: !opts.dry_run,
    });
    Ok(())
}

/// A kube client for the verified server, trusting only the pinned CA.
fn client(
    access: &ClusterAccess,
    credentials: Credentials<'_>,
    opts: &Options,
) -> Result<kube::Client, String> {
    crate::cluster::pinned_client(&access.server, &access.ca_der, credentials, opts.timeout)
}
