//! A Node object left behind by the machine this one replaces (same name).
//!
//! kubeadm refuses a same-name join only while the old Node is Ready; a NotReady
//! one is silently taken over, labels, taints, annotations and all. The joining
//! control plane deletes it instead, once it has been silent for the grace period.

use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Node;
use serde::Serialize;

use crate::node::ready_condition;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum NodeDecision {
    /// No Node has this name.
    Absent,
    /// The Node is stale: delete it before joining.
    Delete { why: String },
    /// Not Ready, but heard from within the grace period: ask again after `wait`.
    Wait {
        #[serde(with = "seconds")]
        wait: Duration,
        why: String,
    },
    /// Ready: another live machine has this name.
    Refuse { why: String },
}

mod seconds {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
}

/// A Node as seen before a replacement, with its kubelet's Lease.
#[derive(Debug, Clone)]
pub struct Seen {
    pub node: Node,
    /// `kube-node-lease/<name>`'s renewTime: the kubelet renews it every 10 s
    /// while it runs, whereas it posts an unchanged Node status only every 5 min.
    pub lease_renewed: Option<DateTime<Utc>>,
}

/// The Node named `name` and its kubelet's Lease (absent Lease: None).
pub async fn observe(admin: &kube::Client, name: &str) -> Result<Option<Seen>, String> {
    use k8s_openapi::api::coordination::v1::Lease;
    let nodes: kube::Api<Node> = kube::Api::all(admin.clone());
    let Some(node) = nodes
        .get_opt(name)
        .await
        .map_err(|e| format!("read Node {name}: {}", crate::client::describe(&e)))?
    else {
        return Ok(None);
    };
    let leases: kube::Api<Lease> = kube::Api::namespaced(admin.clone(), "kube-node-lease");
    let lease = leases.get_opt(name).await.map_err(|e| {
        format!(
            "read Lease kube-node-lease/{name}: {}",
            crate::client::describe(&e)
        )
    })?;
    let lease_renewed = lease
        .and_then(|l| l.spec)
        .and_then(|s| s.renew_time)
        .and_then(|t| utc(&t.0));
    Ok(Some(Seen {
        node,
        lease_renewed,
    }))
}

/// A Kubernetes timestamp (Time, MicroTime) as chrono's.
fn utc(t: &k8s_openapi::jiff::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(t.as_microsecond())
}

/// When the kubelet was last heard from: the later of its Lease's renewal and the
/// Ready condition's heartbeat (or transition), else the Node's creation.
fn last_heard(seen: &Seen) -> Option<DateTime<Utc>> {
    let node = &seen.node;
    let condition = ready_condition(node)
        .and_then(|c| {
            c.last_heartbeat_time
                .as_ref()
                .or(c.last_transition_time.as_ref())
        })
        .and_then(|t| utc(&t.0));
    match (condition, seen.lease_renewed) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
    .or_else(|| {
        node.metadata
            .creation_timestamp
            .as_ref()
            .and_then(|t| utc(&t.0))
    })
}

/// Decide about the Node named like this node, `now`, with `grace` of silence required.
pub fn decide(seen: Option<&Seen>, now: DateTime<Utc>, grace: Duration) -> NodeDecision {
    let Some(seen) = seen else {
        return NodeDecision::Absent;
    };
    let node = &seen.node;
    let name = node.metadata.name.as_deref().unwrap_or("?");
    if ready_condition(node).is_some_and(|c| c.status == "True") {
        return NodeDecision::Refuse {
            why: format!(
                "a Ready Node named {name} exists: the machine this node replaces is still running \
                 (or another machine has this name); stop it, or give this node another name"
            ),
        };
    }
    let silent = last_heard(seen)
        .map(|t| (now - t).to_std().unwrap_or_default())
        .unwrap_or(grace);
    if silent >= grace {
        NodeDecision::Delete {
            why: format!(
                "Node {name} is not Ready and its kubelet has been silent for {} s (grace {} s): \
                 it belonged to the machine this node replaces",
                silent.as_secs(),
                grace.as_secs()
            ),
        }
    } else {
        NodeDecision::Wait {
            wait: grace - silent,
            why: format!(
                "Node {name} is not Ready; its kubelet was heard {} s ago, within the {} s grace period",
                silent.as_secs(),
                grace.as_secs()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn time(t: DateTime<Utc>) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_microsecond(t.timestamp_micros()).unwrap())
    }

    fn node(ready: Option<(&str, DateTime<Utc>)>, created: DateTime<Utc>) -> Seen {
        let mut n = Node::default();
        n.metadata.name = Some("cp-2".into());
        n.metadata.creation_timestamp = Some(time(created));
        if let Some((status, heard)) = ready {
            n.status = Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: status.into(),
                    last_heartbeat_time: Some(time(heard)),
                    ..Default::default()
                }]),
                ..Default::default()
            });
        }
        Seen {
            node: n,
            lease_renewed: None,
        }
    }

    #[test]
    fn ready_refuses_silent_deletes_recent_waits() {
        let now = Utc::now();
        let grace = Duration::from_secs(300);
        let long_ago = now - chrono::Duration::seconds(3600);
        assert_eq!(decide(None, now, grace), NodeDecision::Absent);
        match decide(Some(&node(Some(("True", now)), long_ago)), now, grace) {
            NodeDecision::Refuse { why } => assert!(why.contains("still running"), "{why}"),
            d => panic!("{d:?}"),
        }
        match decide(
            Some(&node(Some(("Unknown", long_ago)), long_ago)),
            now,
            grace,
        ) {
            NodeDecision::Delete { why } => assert!(why.contains("silent for 3600 s"), "{why}"),
            d => panic!("{d:?}"),
        }
        let recent = now - chrono::Duration::seconds(100);
        match decide(Some(&node(Some(("False", recent)), long_ago)), now, grace) {
            NodeDecision::Wait { wait, .. } => {
                assert!((199..=200).contains(&wait.as_secs()), "{wait:?}")
            }
            d => panic!("{d:?}"),
        }
        // Never reported at all: its age counts.
        assert!(matches!(
            decide(Some(&node(None, long_ago)), now, grace),
            NodeDecision::Delete { .. }
        ));
        assert!(matches!(
            decide(Some(&node(None, now)), now, grace),
            NodeDecision::Wait { .. }
        ));
    }

    /// A live kubelet of a NotReady Node posts its unchanged status only every
    /// 5 min but renews its Lease every 10 s: the Lease keeps it from looking dead.
    #[test]
    fn a_fresh_lease_is_a_live_kubelet_whatever_the_status_says() {
        let now = Utc::now();
        let grace = Duration::from_secs(300);
        let stale_status = now - chrono::Duration::seconds(290 + 60);
        let mut seen = node(Some(("False", stale_status)), stale_status);
        assert!(matches!(
            decide(Some(&seen), now, grace),
            NodeDecision::Delete { .. }
        ));
        seen.lease_renewed = Some(now - chrono::Duration::seconds(8));
        match decide(Some(&seen), now, grace) {
            NodeDecision::Wait { wait, why } => {
                assert!((291..=292).contains(&wait.as_secs()), "{wait:?}");
                assert!(why.contains("heard 8 s ago"), "{why}");
            }
            d => panic!("{d:?}"),
        }
        // An old Lease does not make a newer status older.
        seen.lease_renewed = Some(now - chrono::Duration::seconds(3600));
        seen.node
            .status
            .as_mut()
            .unwrap()
            .conditions
            .as_mut()
            .unwrap()[0]
            .last_heartbeat_time = Some(time(now - chrono::Duration::seconds(20)));
        assert!(matches!(
            decide(Some(&seen), now, grace),
            NodeDecision::Wait { .. }
        ));
    }
}
