//! The members of a stacked etcd cluster as a joining control plane sees them,
//! and the one stale member it may remove to take a dead machine's place.
//!
//! Reachability is asked of each member alone (its own client URL, etcd's
//! `Status`, which a member answers even without quorum); the member list is
//! served without linearizability for the same reason. The decision itself
//! ([`decide`]) is a pure function of what was seen.

use std::collections::BTreeSet;
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

/// Decide for the joining control plane `node_name`. `node_names` are the cluster's
/// Node objects, when known: a member whose Node is gone is named as such.
///
/// Rules: a member counts only if it votes (learners do not); with fewer than a
/// quorum of voting members answering nothing can be removed (etcd refuses without
/// quorum, and the join would add a member the cluster cannot afford); a member
/// that answers is never removed, and a member named like this node that answers
/// means the machine this one replaces is still running; otherwise at most one
/// unreachable member is removed: this node's own old identity first (its name, or
/// an unstarted member at `own_address` that an earlier attempt of this join added), then a member
/// whose Node is gone, then any other. Removing one unreachable member of N with a
/// quorum answering keeps a quorum, and so does the join that adds this node back.
pub fn decide(
    members: &[Member],
    node_name: &str,
    own_address: Option<&str>,
    node_names: Option<&BTreeSet<String>>,
) -> Decision {
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
    let unreachable: Vec<&Member> = members.iter().filter(|m| !m.reachable).collect();
    let node_gone = |m: &Member| node_names.is_some_and(|names| !names.contains(&m.name));
    let pick = unreachable
        .iter()
        .find(|m| m.name == node_name)
        .map(|m| {
            (
                m,
                "it is this node's own old identity (same name) and does not answer",
            )
        })
        .or_else(|| {
            unreachable.iter().find(|m| m.is_unstarted_at(own_address)).map(|m| {
                (
                    m,
                    "it is this node's own unfinished join (added, never started, peer URL at this node's address)",
                )
            })
        })
        .or_else(|| {
            unreachable
                .iter()
                .find(|m| node_gone(m))
                .map(|m| (m, "its Node object is gone and it does not answer"))
        })
        .or_else(|| {
            unreachable
                .first()
                .map(|m| (m, "it has not answered for the whole grace period"))
        });
    match pick {
        Some((m, reason)) => Decision::Remove {
            member: (*m).clone(),
            why: format!(
                "{reason}; {answering} of {} voting members answer, so etcd keeps a quorum without it and \
                 while this node joins",
                voting.len()
            ),
        },
        None => Decision::Keep {
            why: format!("all {} etcd members answer", members.len()),
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

/// Ask the unreachable members again, `probes` times `interval` apart: one that
/// answers even once is reachable. Only members that stay silent stay unreachable.
pub async fn confirm_unreachable(
    access: &EtcdAccess,
    members: &mut [Member],
    probes: u32,
    interval: Duration,
) {
    for _ in 0..probes {
        if members.iter().all(|m| m.reachable) {
            return;
        }
        tokio::time::sleep(interval).await;
        for m in members.iter_mut().filter(|m| !m.reachable) {
            m.reachable = answers(access, &m.client_urls).await;
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
            Ok(_) => return Ok(()),
            Err(e) => errors.push(e),
        }
    }
    Err(format!(
        "could not remove etcd member {}: {}",
        member.label(),
        errors.join("; ")
    ))
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
        let (member, why) = removed(decide(&members, "cp3", Some("10.88.0.13"), None));
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
        let d = decide(
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
        let (member, why) = removed(decide(&members, "cp3", None, None));
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
        let nodes: BTreeSet<String> = ["cp1", "cp2", "cp4", "cp5"].map(String::from).into();
        let (member, why) = removed(decide(&members, "cp9", None, Some(&nodes)));
        assert_eq!(member.name, "cp3");
        assert!(why.contains("Node object is gone"), "{why}");
        // Without Node names: the first dead one, after its grace period.
        let (member, why) = removed(decide(&members, "cp9", None, None));
        assert_eq!(member.name, "cp2");
        assert!(why.contains("grace period"), "{why}");
    }

    #[test]
    fn without_quorum_nothing_is_removed() {
        let d = decide(
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
            decide(&[m(1, "cp1", true), m(2, "cp2", false)], "cp2", None, None),
            Decision::Refuse { .. }
        ));
    }

    #[test]
    fn a_live_member_with_this_nodes_name_stops_the_join() {
        let d = decide(
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
        let d = decide(
            &[m(1, "cp1", true), m(2, "cp2", false), learner],
            "cp4",
            None,
            None,
        );
        assert!(matches!(d, Decision::Refuse { .. }), "{d:?}");
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
