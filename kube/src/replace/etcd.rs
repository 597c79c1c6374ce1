//! The members of a stacked etcd cluster as a joining control plane sees them,
//! and the one stale member it may remove to take a dead machine's place.
//!
//! Reachability is asked of each member alone (its own client URL, etcd's
//! `Status`, which a member answers even without quorum); the member list is
//! served without linearizability for the same reason. Whether a member is down
//! is not this node's call alone: each member is asked for its own view of its
//! peers ([`views`], etcd's `etcd_network_active_peers` gauges on its client
//! URL), and a quorum of the members that would remain must see it down. Every
//! removal by kubeboot happens under one etcd lock ([`lock`]). The decision itself
//! ([`decide`]) is a pure function of what was seen.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

/// How to reach etcd's client API: the etcd CA and a client identity it signed.
pub struct EtcdAccess {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: SecretString,
    /// Bound on each connection and each request.
    pub timeout: Duration,
}

impl std::fmt::Debug for EtcdAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdAccess")
            .field("timeout", &self.timeout)
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// One etcd member and whether it answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Member {
    pub id: u64,
    pub name: String,
    pub client_urls: Vec<String>,
    pub peer_urls: Vec<String>,
    pub is_learner: bool,
    pub reachable: bool,
}

impl Member {
    /// `name (id hex)`, as etcdctl shows members.
    pub fn label(&self) -> String {
        let name = if self.name.is_empty() {
            "(unstarted)"
        } else {
            &self.name
        };
        format!("{name} ({:x})", self.id)
    }

    /// This node's own identity: a member with its name, or an unstarted one (no
    /// name yet: a join added it and its etcd never started) whose peer URL is at
    /// this node's address: an earlier attempt of this very join.
    pub fn is_identity_of(&self, node_name: &str, own_address: Option<&str>) -> bool {
        self.name == node_name || self.is_unstarted_at(own_address)
    }

    fn is_unstarted_at(&self, own_address: Option<&str>) -> bool {
        let Some(address) = own_address else {
            return false;
        };
        self.name.is_empty() && self.peer_urls.iter().any(|u| url_host(u) == Some(address))
    }
}

/// The host of `scheme://host:port` (brackets of an IPv6 literal removed).
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next()?;
    match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map(|(h, _)| h),
        None => Some(authority.rsplit_once(':').map_or(authority, |(h, _)| h)),
    }
}

/// What one member says about its peers (its `etcd_network_active_peers` gauges):
/// peer id → whether its peer connection to that peer is up. Measured against
/// etcd 3.5: a killed member drops to 0 on every peer within a second (its
/// connections close); a stopped (SIGSTOP) one stays at 1 for as long as it is
/// stopped (its kernel keeps the connections), so a slow member never looks dead
/// to its peers.
pub type PeerView = BTreeMap<u64, bool>;

/// Each member's view of its peers, by viewer id; a member that could not be
/// asked has no entry (and no say).
pub type Views = BTreeMap<u64, PeerView>;

/// What the cluster's Node objects say about the Node named like a member.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "node", rename_all = "snake_case")]
pub enum NodeState {
    /// No Node has that name.
    Gone,
    /// Not Ready, and neither its status nor its kubelet's Lease has been
    /// renewed for the grace period.
    Stale,
    /// Ready, or heard from within the grace period: the machine runs.
    Heard { why: String },
}

/// What a join has seen of the cluster, for [`decide`].
#[derive(Debug, Clone, Copy)]
pub struct Look<'a> {
    /// The members, `reachable` as this node's own probes found them.
    pub members: &'a [Member],
    /// The members' views of one another, asked at the same time.
    pub views: &'a Views,
    /// The members that did not answer and that a quorum of the others saw down
    /// at every look over the grace period (None: this look only counts).
    pub silent_throughout: Option<&'a BTreeSet<u64>>,
    /// The Nodes named like members (None: unknown; only this node's own
    /// identity can then go).
    pub nodes: Option<&'a BTreeMap<String, NodeState>>,
}

/// How many of the members that would remain see `member` down, and how many
/// must (a quorum of them: of the voting members other than it). A viewer sees
/// a peer down when its gauge for it is 0 or absent (never connected: a member
/// that never started).
pub fn peers_see_down(members: &[Member], views: &Views, member: &Member) -> (usize, usize) {
    let remaining: Vec<&Member> = members
        .iter()
        .filter(|m| !m.is_learner && m.id != member.id)
        .collect();
    let needed = remaining.len() / 2 + 1;
    let agree = remaining
        .iter()
        .filter(|v| {
            views
                .get(&v.id)
                .is_some_and(|view| view.get(&member.id) != Some(&true))
        })
        .count();
    (agree, needed)
}

/// Whether `member` is down by every account of one look: it does not answer
/// this node, and a quorum of the remaining members see it down.
pub fn down_by_quorum(members: &[Member], views: &Views, member: &Member) -> bool {
    let (agree, needed) = peers_see_down(members, views, member);
    !member.reachable && agree >= needed
}

/// What a joining control plane does about the member list.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Nothing is stale.
    Keep { why: String },
    /// Remove this one member (unreachable, and quorum survives its removal and the join).
    Remove { member: Member, why: String },
    /// Going on would be unsafe or would fail: the join must stop here.
    Refuse { why: String },
}

/// Decide for the joining control plane `node_name`.
///
/// Rules: a member counts only if it votes (learners do not); with fewer than a
/// quorum of voting members answering nothing can be removed (etcd refuses without
/// quorum, and the join would add a member the cluster cannot afford); a member
/// that answers is never removed, and a member named like this node that answers
/// means the machine this one replaces is still running. A member is removed only
/// when it does not answer this node, a quorum of the remaining members see it
/// down (their peer connections, not this node's probes) at this look and at
/// every look over the grace period, and it is either this node's own old
/// identity (its name, or an unstarted member at `own_address` that an earlier
/// attempt of this join added) or a started member whose Node is gone or stale
/// past the grace period. An unstarted member elsewhere is another join's member
/// in flight and is never removed; nor is a member whose Node was heard from. At
/// most one goes: this node's own old identity first. Removing one dead member of
/// N with a quorum answering keeps a quorum, and so does the join that adds this
/// node back.
pub fn decide(look: Look<'_>, node_name: &str, own_address: Option<&str>) -> Decision {
    let members = look.members;
    let voting: Vec<&Member> = members.iter().filter(|m| !m.is_learner).collect();
    let answering = voting.iter().filter(|m| m.reachable).count();
    let quorum = voting.len() / 2 + 1;
    if answering < quorum {
        let dead: Vec<String> = voting
            .iter()
            .filter(|m| !m.reachable)
            .map(|m| m.label())
            .collect();
        return Decision::Refuse {
            why: format!(
                "etcd has no quorum: {answering} of {} members answer (unreachable: {}); no member can be \
                 removed and no control plane can join. Bring the dead members back, or restore etcd from a \
                 snapshot (etcdutl snapshot restore) on one control plane, before replacing machines",
                voting.len(),
                dead.join(", ")
            ),
        };
    }
    if let Some(own) = voting.iter().find(|m| m.name == node_name && m.reachable) {
        return Decision::Refuse {
            why: format!(
                "etcd member {} answers at {}: the machine this node replaces is still running etcd \
                 (or another machine has this node's name); stop it, or give this node another name",
                own.label(),
                own.client_urls.join(",")
            ),
        };
    }
    let mut left_alone = Vec::new();
    let mut candidates: Vec<(&Member, u8, String)> = Vec::new();
    for m in members.iter().filter(|m| !m.reachable) {
        let (agree, needed) = peers_see_down(members, look.views, m);
        if agree < needed {
            left_alone.push(format!(
                "{} does not answer this node, but only {agree} of the {} other members see it down \
                 ({needed} must): it is slow or cut off from this node, not dead",
                m.label(),
                voting.iter().filter(|v| v.id != m.id).count()
            ));
            continue;
        }
        if look.silent_throughout.is_some_and(|s| !s.contains(&m.id)) {
            left_alone.push(format!(
                "{} answered, or was seen up by its peers, within the grace period",
                m.label()
            ));
            continue;
        }
        let node = look.nodes.and_then(|n| n.get(&m.name));
        let (rank, reason) = if m.name == node_name {
            match node {
                Some(NodeState::Heard { why }) => {
                    left_alone.push(format!("{}: {why}", m.label()));
                    continue;
                }
                _ => (
                    0,
                    "it is this node's own old identity (same name)".to_string(),
                ),
            }
        } else if m.is_unstarted_at(own_address) {
            (
                1,
                "it is this node's own unfinished join (added, never started, peer URL at this node's address)"
                    .to_string(),
            )
        } else if m.name.is_empty() {
            left_alone.push(format!(
                "{} was added and has not started yet, at {}: another join's member in flight",
                m.label(),
                m.peer_urls.join(",")
            ));
            continue;
        } else {
            match node {
                Some(NodeState::Gone) => (2, "its Node object is gone".to_string()),
                Some(NodeState::Stale) => (
                    2,
                    "its Node is not Ready and its kubelet has been silent for the grace period"
                        .to_string(),
                ),
                Some(NodeState::Heard { why }) => {
                    left_alone.push(format!("{}: {why}", m.label()));
                    continue;
                }
                None => {
                    left_alone.push(format!(
                        "{}: its Node is not known here, and a member is removed only with its Node \
                         gone or stale",
                        m.label()
                    ));
                    continue;
                }
            }
        };
        let why = format!(
            "{reason}; it does not answer and {agree} of the {} other members see it down",
            voting.iter().filter(|v| v.id != m.id).count()
        );
        candidates.push((m, rank, why));
    }
    candidates.sort_by_key(|(_, rank, _)| *rank);
    match candidates.into_iter().next() {
        Some((m, _, why)) => Decision::Remove {
            member: m.clone(),
            why: format!(
                "{why}; {answering} of {} voting members answer, so etcd keeps a quorum without it and \
                 while this node joins",
                voting.len()
            ),
        },
        None if left_alone.is_empty() => Decision::Keep {
            why: format!("all {} etcd members answer", members.len()),
        },
        None => Decision::Keep {
            why: format!("no etcd member removed: {}", left_alone.join("; ")),
        },
    }
}

fn options(access: &EtcdAccess) -> ConnectOptions {
    let tls = TlsOptions::new()
        .ca_certificate(Certificate::from_pem(&access.ca_pem))
        .identity(Identity::from_pem(
            &access.cert_pem,
            access.key_pem.expose_secret(),
        ));
    ConnectOptions::new()
        .with_tls(tls)
        .with_connect_timeout(access.timeout)
        .with_timeout(access.timeout)
}

/// A client for one member's client URL.
pub async fn connect(access: &EtcdAccess, url: &str) -> Result<Client, String> {
    Client::connect([url], Some(options(access)))
        .await
        .map_err(|e| format!("etcd at {url}: {e}"))
}

/// `call` (a connect and a request to the member at `url`), bounded as a whole
/// by the access's timeout. The client's own timeouts cover the TCP connect and
/// the request, not the TLS handshake: a stopped (SIGSTOP) or overloaded member
/// whose kernel still accepts connections would otherwise hold the caller until
/// it resumes.
async fn bounded<T>(
    access: &EtcdAccess,
    url: &str,
    what: &str,
    call: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::time::timeout(access.timeout, call)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "etcd at {url}: no answer to {what} within {} s (connect, TLS handshake and request)",
                access.timeout.as_secs_f64()
            ))
        })
}

/// The first of `endpoints` that answers a member list.
async fn member_list(
    access: &EtcdAccess,
    endpoints: &[String],
) -> Result<(String, Vec<etcd_client::Member>), String> {
    let mut errors = Vec::new();
    for url in endpoints {
        let listed = bounded(access, url, "member list", async {
            let mut c = connect(access, url).await?;
            c.member_list()
                .await
                .map_err(|e| format!("etcd at {url}: member list: {e}"))
        })
        .await;
        match listed {
            Ok(r) => return Ok((url.clone(), r.members().to_vec())),
            Err(e) => errors.push(e),
        }
    }
    Err(format!(
        "no etcd endpoint answered a member list: {}",
        errors.join("; ")
    ))
}

/// Whether the member answers etcd's Status on one of its own client URLs.
async fn answers(access: &EtcdAccess, client_urls: &[String]) -> bool {
    for url in client_urls {
        let status = bounded(access, url, "status", async {
            let mut c = connect(access, url).await?;
            c.status().await.map_err(|e| e.to_string())
        })
        .await;
        if status.is_ok() {
            return true;
        }
    }
    false
}

/// The members, each asked once whether it answers.
pub async fn members(access: &EtcdAccess, endpoints: &[String]) -> Result<Vec<Member>, String> {
    let (_, listed) = member_list(access, endpoints).await?;
    let mut out = Vec::new();
    for m in listed {
        let client_urls = m.client_urls().to_vec();
        out.push(Member {
            id: m.id(),
            name: m.name().to_string(),
            reachable: answers(access, &client_urls).await,
            client_urls,
            peer_urls: m.peer_urls().to_vec(),
            is_learner: m.is_learner(),
        });
    }
    Ok(out)
}

/// Ask the members that did not answer again: whether they answer now.
pub async fn probe_silent(access: &EtcdAccess, members: &mut [Member]) {
    for m in members.iter_mut().filter(|m| !m.reachable) {
        m.reachable = answers(access, &m.client_urls).await;
    }
}

/// One member's `etcd_network_active_peers` gauges from its Prometheus text
/// (`etcd_network_active_peers{Local="<hex>",Remote="<hex>"} 1`), the lines
/// whose Local is `viewer`. None when there are none: a view that cannot be read
/// is no view.
pub fn parse_active_peers(text: &str, viewer: u64) -> Option<PeerView> {
    let mut view = PeerView::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("etcd_network_active_peers{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once('}') else {
            continue;
        };
        let label = |name: &str| {
            labels.split(',').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (k.trim() == name).then(|| v.trim().trim_matches('"'))
            })
        };
        let (Some(local), Some(remote)) = (label("Local"), label("Remote")) else {
            continue;
        };
        let (Ok(local), Ok(remote), Ok(value)) = (
            u64::from_str_radix(local, 16),
            u64::from_str_radix(remote, 16),
            value.trim().parse::<f64>(),
        ) else {
            continue;
        };
        if local == viewer {
            view.insert(remote, value >= 1.0);
        }
    }
    (!view.is_empty()).then_some(view)
}

/// An HTTPS client for the members' `/metrics` (on their client URLs, behind the
/// same client-certificate check as the gRPC API), bounded like every etcd call.
fn metrics_client(access: &EtcdAccess) -> Result<reqwest::Client, String> {
    let identity = reqwest::Identity::from_pem(
        format!("{}\n{}", access.cert_pem, access.key_pem.expose_secret()).as_bytes(),
    )
    .map_err(|_| "the etcd client identity is not usable for HTTPS".to_string())?;
    let ca = reqwest::Certificate::from_pem(access.ca_pem.as_bytes())
        .map_err(|e| format!("the etcd CA: {e}"))?;
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .identity(identity)
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(access.timeout)
        .timeout(access.timeout)
        .build()
        .map_err(|e| format!("an HTTPS client for etcd's metrics: {e}"))
}

/// Each member's view of its peers, asked of every member on its own client URLs.
/// A member that does not answer (or whose metrics carry no peer gauges) has no
/// view and so no say.
pub async fn views(access: &EtcdAccess, members: &[Member]) -> Views {
    let mut out = Views::new();
    let client = match metrics_client(access) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("etcd members' views of their peers: {e}");
            return out;
        }
    };
    for m in members {
        for url in &m.client_urls {
            let metrics = format!("{}/metrics", url.trim_end_matches('/'));
            let text = bounded(access, url, "metrics", async {
                let response = client
                    .get(&metrics)
                    .send()
                    .await
                    .and_then(|r| r.error_for_status())
                    .map_err(|e| format!("etcd at {url}: metrics: {e}"))?;
                response
                    .text()
                    .await
                    .map_err(|e| format!("etcd at {url}: metrics: {e}"))
            })
            .await;
            match text.map(|t| parse_active_peers(&t, m.id)) {
                Ok(Some(view)) => {
                    out.insert(m.id, view);
                    break;
                }
                Ok(None) => tracing::info!("etcd at {url}: no peer gauges in its metrics"),
                Err(e) => tracing::info!("{e}"),
            }
        }
    }
    out
}

/// Look at the cluster `rounds` times, `interval` apart: the members that stay
/// down by every account ([`down_by_quorum`]) at every look, starting with the
/// look given. One that answers this node, or that a quorum of its peers sees
/// up, even once, is not among them: a member back within the grace period stays.
pub async fn silent_throughout(
    access: &EtcdAccess,
    members: &[Member],
    views: &Views,
    rounds: u32,
    interval: Duration,
) -> BTreeSet<u64> {
    let mut silent: BTreeSet<u64> = members
        .iter()
        .filter(|m| down_by_quorum(members, views, m))
        .map(|m| m.id)
        .collect();
    let mut now: Vec<Member> = members.to_vec();
    for _ in 0..rounds {
        if silent.is_empty() {
            break;
        }
        tokio::time::sleep(interval).await;
        for m in now.iter_mut() {
            m.reachable = !silent.contains(&m.id) && m.reachable;
        }
        probe_silent(access, &mut now).await;
        let seen = self::views(access, &now).await;
        silent.retain(|id| {
            now.iter()
                .find(|m| m.id == *id)
                .is_some_and(|m| down_by_quorum(&now, &seen, m))
        });
    }
    silent
}

/// The lock every membership change by kubeboot takes (etcd's lock service,
/// attached to a lease), so two joins never decide on the same member list.
pub const MEMBERSHIP_LOCK: &str = "kubeboot.io/etcd-membership-change";

/// The membership lock, held: released by [`Held::release`], or by etcd when
/// its lease runs out (the holder died).
pub struct Held {
    client: Client,
    lease: i64,
    url: String,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held")
            .field("lease", &format_args!("{:x}", self.lease))
            .field("url", &self.url)
            .finish()
    }
}

/// Take the membership lock through the first of `endpoints` that grants a
/// lease of `ttl`, waiting at most `wait` for another holder to let go.
pub async fn lock(
    access: &EtcdAccess,
    endpoints: &[String],
    ttl: Duration,
    wait: Duration,
) -> Result<Held, String> {
    let mut errors = Vec::new();
    for url in endpoints {
        let granted = bounded(access, url, "lease grant", async {
            let mut c = connect(access, url).await?;
            let lease = c
                .lease_grant(ttl.as_secs().max(1) as i64, None)
                .await
                .map_err(|e| format!("etcd at {url}: lease grant: {e}"))?;
            Ok((c, lease.id()))
        })
        .await;
        let (client, lease) = match granted {
            Ok(g) => g,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let mut held = Held {
            client,
            lease,
            url: url.clone(),
        };
        let options = etcd_client::LockOptions::new().with_lease(lease);
        let locked =
            tokio::time::timeout(wait, held.client.lock(MEMBERSHIP_LOCK, Some(options))).await;
        match locked {
            Ok(Ok(_)) => return Ok(held),
            Ok(Err(e)) => {
                errors.push(format!("etcd at {url}: lock: {e}"));
                held.release(access).await;
            }
            Err(_) => {
                held.release(access).await;
                return Err(format!(
                    "another join has been changing the etcd membership for more than {} s \
                     (lock {MEMBERSHIP_LOCK}); nothing removed, try again",
                    wait.as_secs()
                ));
            }
        }
    }
    Err(format!(
        "could not take the etcd membership lock: {}",
        errors.join("; ")
    ))
}

impl Held {
    /// Let go: revoke the lease, which deletes the lock's key with it. Best
    /// effort: if etcd does not answer, the lease runs out on its own.
    pub async fn release(mut self, access: &EtcdAccess) {
        let url = self.url.clone();
        let revoked = bounded(access, &url, "lease revoke", async {
            self.client
                .lease_revoke(self.lease)
                .await
                .map_err(|e| format!("etcd at {url}: lease revoke: {e}"))
        })
        .await;
        if let Err(e) = revoked {
            tracing::warn!("the etcd membership lock: {e}; it expires with its lease");
        }
    }
}

/// Remove `member` through the first reachable other member.
pub async fn remove(
    access: &EtcdAccess,
    members: &[Member],
    member: &Member,
) -> Result<(), String> {
    let through: Vec<String> = members
        .iter()
        .filter(|m| m.reachable && m.id != member.id)
        .flat_map(|m| m.client_urls.iter().cloned())
        .collect();
    let mut errors = Vec::new();
    for url in &through {
        let removed = bounded(access, url, "member remove", async {
            let mut c = connect(access, url).await?;
            c.member_remove(member.id)
                .await
                .map_err(|e| format!("etcd at {url}: member remove {}: {e}", member.label()))
        })
        .await;
        match removed {
            Ok(_) => {
                wait_gone(access, &through, member).await;
                return Ok(());
            }
            Err(e) => errors.push(e),
        }
    }
    Err(format!(
        "could not remove etcd member {}: {}",
        member.label(),
        errors.join("; ")
    ))
}

/// After a removal: until each of `urls` lists the member no more (a few
/// tries), so whoever takes the membership lock next, asking any of them, sees
/// it gone. Member lists are served without a quorum round trip, and a member
/// that lags would still show it.
async fn wait_gone(access: &EtcdAccess, urls: &[String], member: &Member) {
    for url in urls {
        for _ in 0..20 {
            let listed = bounded(access, url, "member list", async {
                let mut c = connect(access, url).await?;
                c.member_list().await.map_err(|e| e.to_string())
            })
            .await;
            match listed {
                Ok(r) if r.members().iter().any(|m| m.id() == member.id) => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                _ => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: u64, name: &str, reachable: bool) -> Member {
        Member {
            id,
            name: name.into(),
            client_urls: vec![format!("https://10.0.0.{id}:2379")],
            peer_urls: vec![format!("https://10.0.0.{id}:2380")],
            is_learner: false,
            reachable,
        }
    }

    /// What the members say of one another when this node's probes are right:
    /// each answering member sees the others as they are.
    fn honest(members: &[Member]) -> Views {
        members
            .iter()
            .filter(|v| v.reachable)
            .map(|v| {
                let view = members
                    .iter()
                    .filter(|p| p.id != v.id && !p.name.is_empty())
                    .map(|p| (p.id, p.reachable))
                    .collect();
                (v.id, view)
            })
            .collect()
    }

    /// Decide on one look where the peers agree with this node's probes.
    fn decide_on(
        members: &[Member],
        node_name: &str,
        own: Option<&str>,
        nodes: Option<&BTreeMap<String, NodeState>>,
    ) -> Decision {
        let views = honest(members);
        decide(
            Look {
                members,
                views: &views,
                silent_throughout: None,
                nodes,
            },
            node_name,
            own,
        )
    }

    fn gone(names: &[&str]) -> BTreeMap<String, NodeState> {
        names
            .iter()
            .map(|n| (n.to_string(), NodeState::Gone))
            .collect()
    }

    /// The member a decision removes and why; any other decision fails the test.
    fn removed(d: Decision) -> (Member, String) {
        match d {
            Decision::Remove { member, why } => (member, why),
            d => panic!("expected a removal, got {d:?}"),
        }
    }

    #[test]
    fn an_unstarted_member_at_this_nodes_address_is_its_own_unfinished_join() {
        let mut unstarted = m(3, "", false);
        unstarted.peer_urls = vec!["https://10.88.0.13:2380".into()];
        let members = [m(1, "cp1", true), m(2, "cp2", true), unstarted.clone()];
        let (member, why) = removed(decide_on(&members, "cp3", Some("10.88.0.13"), None));
        assert_eq!(member.id, 3);
        assert!(why.contains("own unfinished join"), "{why}");
        assert!(unstarted.is_identity_of("cp3", Some("10.88.0.13")));
        assert!(!unstarted.is_identity_of("cp3", Some("10.88.0.1")));
        assert!(!unstarted.is_identity_of("cp3", None));
        assert_eq!(url_host("https://[fd00::13]:2380"), Some("fd00::13"));
        assert_eq!(url_host("https://10.88.0.13:2380"), Some("10.88.0.13"));
    }

    #[test]
    fn all_healthy_keeps_everything() {
        let d = decide_on(
            &[m(1, "cp1", true), m(2, "cp2", true), m(3, "cp3", true)],
            "cp4",
            None,
            None,
        );
        assert!(matches!(d, Decision::Keep { .. }), "{d:?}");
    }

    #[test]
    fn the_own_dead_identity_goes_first() {
        let members = [
            m(1, "cp1", true),
            m(2, "cp2", false),
            m(3, "cp3", false),
            m(4, "cp4", true),
            m(5, "cp5", true),
        ];
        let (member, why) = removed(decide_on(&members, "cp3", None, None));
        assert_eq!(member.name, "cp3");
        assert!(why.contains("own old identity"), "{why}");
    }

    #[test]
    fn a_member_without_its_node_goes_before_another_dead_one() {
        let members = [
            m(1, "cp1", true),
            m(2, "cp2", false),
            m(3, "cp3", false),
            m(4, "cp4", true),
            m(5, "cp5", true),
        ];
        let mut nodes = gone(&["cp3"]);
        nodes.insert(
            "cp2".into(),
            NodeState::Heard {
                why: "its kubelet was heard 5 s ago".into(),
            },
        );
        let (member, why) = removed(decide_on(&members, "cp9", None, Some(&nodes)));
        assert_eq!(member.name, "cp3");
        assert!(why.contains("Node object is gone"), "{why}");
        // A dead member whose Node is heard from, or not known, stays: there is
        // no last-resort removal of any member that does not answer.
        nodes.insert(
            "cp3".into(),
            NodeState::Heard {
                why: "Ready".into(),
            },
        );
        match decide_on(&members, "cp9", None, Some(&nodes)) {
            Decision::Keep { why } => assert!(why.contains("heard 5 s ago"), "{why}"),
            d => panic!("{d:?}"),
        }
        assert!(matches!(
            decide_on(&members, "cp9", None, None),
            Decision::Keep { .. }
        ));
        let stale: BTreeMap<String, NodeState> = [("cp2".to_string(), NodeState::Stale)].into();
        let (member, why) = removed(decide_on(&members, "cp9", None, Some(&stale)));
        assert_eq!(member.name, "cp2");
        assert!(why.contains("silent for the grace period"), "{why}");
    }

    #[test]
    fn without_quorum_nothing_is_removed() {
        let d = decide_on(
            &[m(1, "cp1", true), m(2, "cp2", false), m(3, "cp3", false)],
            "cp2",
            None,
            None,
        );
        match d {
            Decision::Refuse { why } => {
                assert!(why.contains("no quorum: 1 of 3"), "{why}");
                assert!(why.contains("cp2 (2)") && why.contains("cp3 (3)"), "{why}");
            }
            d => panic!("{d:?}"),
        }
        // Two members, one dead: 1 of 2 is no quorum either.
        assert!(matches!(
            decide_on(&[m(1, "cp1", true), m(2, "cp2", false)], "cp2", None, None),
            Decision::Refuse { .. }
        ));
    }

    #[test]
    fn a_live_member_with_this_nodes_name_stops_the_join() {
        let d = decide_on(
            &[m(1, "cp1", true), m(2, "cp2", true), m(3, "cp3", true)],
            "cp2",
            None,
            None,
        );
        match d {
            Decision::Refuse { why } => assert!(why.contains("still running"), "{why}"),
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn learners_do_not_count_toward_quorum() {
        let mut learner = m(3, "cp3", true);
        learner.is_learner = true;
        // Voting: cp1 (answers), cp2 (dead): 1 of 2 is no quorum, whatever the learner says.
        let d = decide_on(
            &[m(1, "cp1", true), m(2, "cp2", false), learner],
            "cp4",
            None,
            None,
        );
        assert!(matches!(d, Decision::Refuse { .. }), "{d:?}");
    }

    /// A member that does not answer this node but that its peers still see up
    /// (a stopped process keeps its connections) is slow, not dead: it stays.
    #[test]
    fn a_member_its_peers_see_up_stays_whatever_this_node_sees() {
        let members = [m(1, "cp1", true), m(2, "cp2", true), m(3, "cp3", false)];
        let nodes = gone(&["cp3"]);
        let on = |views: &Views, silent: Option<&BTreeSet<u64>>| {
            decide(
                Look {
                    members: &members,
                    views,
                    silent_throughout: silent,
                    nodes: Some(&nodes),
                },
                "cp9",
                None,
            )
        };
        let mut views = honest(&members);
        views.get_mut(&1).unwrap().insert(3, true);
        match on(&views, None) {
            Decision::Keep { why } => assert!(why.contains("only 1 of the 2 other"), "{why}"),
            d => panic!("{d:?}"),
        }
        // A viewer that could not be asked has no say either.
        views.remove(&1);
        assert!(matches!(on(&views, None), Decision::Keep { .. }));
        // With both remaining members seeing it down, it goes.
        let views = honest(&members);
        let (member, _) = removed(on(&views, None));
        assert_eq!(member.id, 3);
        // Not if it was seen up (or answered) at some look within the grace period.
        match on(&views, Some(&BTreeSet::new())) {
            Decision::Keep { why } => assert!(why.contains("within the grace period"), "{why}"),
            d => panic!("{d:?}"),
        }
    }

    /// An unstarted member at another address is another join's member in
    /// flight: never removed, whatever else is down.
    #[test]
    fn another_joins_unstarted_member_is_never_removed() {
        let mut unstarted = m(4, "", false);
        unstarted.peer_urls = vec!["https://10.88.0.14:2380".into()];
        let members = [
            m(1, "cp1", true),
            m(2, "cp2", true),
            m(3, "cp3", true),
            unstarted,
        ];
        match decide_on(&members, "cp5", Some("10.88.0.15"), Some(&gone(&[]))) {
            Decision::Keep { why } => assert!(why.contains("another join's member"), "{why}"),
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn active_peers_are_read_from_etcds_metrics() {
        let text =
            "# HELP etcd_network_active_peers The current number of active peer connections.\n\
            # TYPE etcd_network_active_peers gauge\n\
            etcd_network_active_peers{Local=\"bdae9bbc11dd390d\",Remote=\"2943212f5e2cf73\"} 1\n\
            etcd_network_active_peers{Local=\"bdae9bbc11dd390d\",Remote=\"3760a4ec3b84f7fa\"} 0\n\
            etcd_network_active_peers{Local=\"1\",Remote=\"2\"} 1\n\
            etcd_network_peer_sent_failures_total{To=\"3760a4ec3b84f7fa\"} 7\n";
        let view = parse_active_peers(text, 0xbdae9bbc11dd390d).unwrap();
        assert_eq!(
            view,
            [(0x2943212f5e2cf73, true), (0x3760a4ec3b84f7fa, false)].into()
        );
        assert_eq!(parse_active_peers(text, 7), None);
        assert_eq!(parse_active_peers("", 1), None);
    }

    #[test]
    fn access_debug_hides_the_key() {
        let a = EtcdAccess {
            ca_pem: "CA".into(),
            cert_pem: "CERT".into(),
            key_pem: SecretString::from("-----BEGIN PRIVATE KEY-----secret"),
            timeout: Duration::from_secs(1),
        };
        assert!(!format!("{a:?}").contains("secret"));
    }
}
