//! A worker's replacement, cleaned up by `kubeboot serve` (`--fresh-credentials`).
//!
//! A worker holds only a bootstrap token, which may read Nodes but not delete
//! them, so it cannot clean up after the machine it replaces the way a control
//! plane does ([`super::make_room`]). serve can: it acts as cluster-admin when it
//! renders the worker's document, and the request names the node
//! (`Kubeboot-Node`, `Kubeboot-Machine-Id`). Same rules as for control planes
//! ([`super::node::decide`]): a Ready Node of that name is refused, a NotReady one
//! heard from within the grace period is waited for, a silent one is deleted.
//! A Node carrying this very machine's id (`kubeboot.io/machine-id`) is its own
//! (a document asked for again) and is left alone.

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::DeleteParams;
use kube::Api;

use super::node::{self, NodeDecision};
use super::Cleanup;
use crate::boot::ANNOTATION_MACHINE_ID;
use crate::client::describe;

/// Bound on each whole call to the API server (a read of the Node and its Lease,
/// a delete), on top of the client's own connect and read bounds.
const CALL_BOUND: Duration = Duration::from_secs(30);

/// The label kubeadm puts on every control-plane Node.
pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";
/// The label every node of a serve node group carries (its kubelet sets it
/// from the group's document): the group's name.
pub const GROUP_LABEL: &str = "kubeboot.io/group";

/// Why a worker of `group` (None: not asked through a group) may not replace
/// this Node: only a Node of the same group, or, for a worker outside any
/// group, a Node outside every group.
pub fn group_mismatch(node: &Node, group: Option<&str>) -> Option<String> {
    let name = node.metadata.name.as_deref().unwrap_or("?");
    let of = node
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(GROUP_LABEL))
        .map(String::as_str);
    match (of, group) {
        (a, b) if a == b => None,
        (Some(theirs), Some(ours)) => Some(format!(
            "Node {name} belongs to group {theirs} (label {GROUP_LABEL}), not {ours}: a group \
             replaces only its own nodes; name this machine otherwise"
        )),
        (Some(theirs), None) => Some(format!(
            "Node {name} belongs to group {theirs} (label {GROUP_LABEL}): only that group's \
             machines replace it"
        )),
        (None, Some(ours)) => Some(format!(
            "Node {name} is not a node of group {ours} (no label {GROUP_LABEL}): a group \
             replaces only its own nodes; name this machine otherwise"
        )),
        (None, None) => None,
    }
}

/// Is this Node a control plane (kubeadm's label)? A worker's credential never
/// deletes one.
pub fn is_control_plane(node: &Node) -> bool {
    node.metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(CONTROL_PLANE_LABEL))
}

/// Why the worker may not have its document yet.
#[derive(Debug, PartialEq)]
pub enum NotYet {
    /// A NotReady Node of that name was heard from recently: ask again after the wait.
    Wait(Duration, String),
    /// A Ready Node has that name.
    Refuse(String),
    /// The cluster could not be read or changed.
    Failed(String),
}

/// Delete the stale Node named `name` (unless it is `machine_id`'s own), or say
/// why not now. Only a worker Node of the asking machine's `group`.
pub async fn make_room(
    admin: &kube::Client,
    name: &str,
    machine_id: &str,
    group: Option<&str>,
    grace: Duration,
) -> Result<Option<Cleanup>, NotYet> {
    let found = super::within(CALL_BOUND, "read a Node", node::observe(admin, name))
        .await
        .map_err(NotYet::Failed)?;
    let own = found.as_ref().is_some_and(|seen| {
        seen.node
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_MACHINE_ID))
            .is_some_and(|id| id == machine_id)
    });
    if own {
        return Ok(None);
    }
    if found.as_ref().is_some_and(|s| is_control_plane(&s.node)) {
        return Err(NotYet::Refuse(format!(
            "Node {name} is a control plane (label {CONTROL_PLANE_LABEL}): a worker's document never \
             replaces it; name this worker otherwise, or replace the control plane with a \
             control-plane document"
        )));
    }
    if let Some(why) = found.as_ref().and_then(|s| group_mismatch(&s.node, group)) {
        return Err(NotYet::Refuse(why));
    }
    match node::decide(found.as_ref(), chrono::Utc::now(), grace) {
        NodeDecision::Absent => Ok(None),
        NodeDecision::Refuse { why } => Err(NotYet::Refuse(why)),
        NodeDecision::Wait { wait, why } => Err(NotYet::Wait(wait, why)),
        NodeDecision::Delete { why } => {
            let nodes: Api<Node> = Api::all(admin.clone());
            super::within(CALL_BOUND, "delete a Node", async {
                nodes
                    .delete(name, &DeleteParams::default())
                    .await
                    .map_err(|e| format!("delete Node {name}: {}", describe(&e)))
            })
            .await
            .map_err(NotYet::Failed)?;
            Ok(Some(Cleanup {
                object: "Node".into(),
                name: name.into(),
                why,
                removed: true,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_control_plane_is_known_by_kubeadms_label() {
        let node = |labels: &[(&str, &str)]| {
            let mut n = Node::default();
            n.metadata.labels = Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            );
            n
        };
        assert!(is_control_plane(&node(&[(CONTROL_PLANE_LABEL, "")])));
        assert!(!is_control_plane(&node(&[(
            "node-role.kubernetes.io/worker",
            ""
        )])));
        assert!(!is_control_plane(&Node::default()));
    }

    #[test]
    fn a_group_replaces_only_its_own_nodes() {
        let node = |group: Option<&str>| {
            let mut n = Node::default();
            n.metadata.name = Some("w1".into());
            n.metadata.labels = group.map(|g| [(GROUP_LABEL.to_string(), g.to_string())].into());
            n
        };
        assert_eq!(group_mismatch(&node(Some("blue")), Some("blue")), None);
        assert_eq!(group_mismatch(&node(None), None), None);
        for (theirs, ours) in [
            (Some("blue"), Some("green")),
            (Some("blue"), None),
            (None, Some("blue")),
        ] {
            let why = group_mismatch(&node(theirs), ours).expect("refused");
            assert!(
                why.contains("Node w1") && why.contains(GROUP_LABEL),
                "{why}"
            );
        }
    }
}
