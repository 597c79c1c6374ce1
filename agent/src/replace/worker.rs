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
use crate::cluster::describe;
use crate::cluster::report::ANNOTATION_MACHINE_ID;

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

/// Delete the stale Node named `name` (unless it is `machine_id`'s own), or say why not now.
pub async fn make_room(
    admin: &kube::Client,
    name: &str,
    machine_id: &str,
    grace: Duration,
) -> Result<Option<Cleanup>, NotYet> {
    let found = node::observe(admin, name).await.map_err(NotYet::Failed)?;
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
    match node::decide(found.as_ref(), chrono::Utc::now(), grace) {
        NodeDecision::Absent => Ok(None),
        NodeDecision::Refuse { why } => Err(NotYet::Refuse(why)),
        NodeDecision::Wait { wait, why } => Err(NotYet::Wait(wait, why)),
        NodeDecision::Delete { why } => {
            let nodes: Api<Node> = Api::all(admin.clone());
            nodes
                .delete(name, &DeleteParams::default())
                .await
                .map_err(|e| NotYet::Failed(format!("delete Node {name}: {}", describe(&e))))?;
            Ok(Some(Cleanup {
                object: "Node".into(),
                name: name.into(),
                why,
                removed: true,
            }))
        }
    }
}
