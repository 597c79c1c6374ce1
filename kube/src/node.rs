//! This node's Node object: registered? which podCIDR? Ready?

use k8s_openapi::api::core::v1::{Node, NodeCondition};
use kube::Api;

/// What the Node object says right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeState {
    /// No Node of this name yet (the kubelet has not registered).
    NotRegistered,
    Registered {
        pod_cidr: Option<String>,
        ready: bool,
        /// The Ready condition's reason and message (why it is not Ready).
        reason: String,
    },
}

/// The Node's Ready condition, as the kubelet last posted it.
pub fn ready_condition(node: &Node) -> Option<&NodeCondition> {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
}

pub async fn state(client: &kube::Client, name: &str) -> Result<NodeState, kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let Some(node) = nodes.get_opt(name).await? else {
        return Ok(NodeState::NotRegistered);
    };
    let pod_cidr = node.spec.as_ref().and_then(|s| s.pod_cidr.clone());
    let ready = ready_condition(&node);
    Ok(NodeState::Registered {
        pod_cidr,
        ready: ready.is_some_and(|c| c.status == "True"),
        reason: ready
            .map(|c| {
                format!(
                    "{}: {}",
                    c.reason.as_deref().unwrap_or("NoReason"),
                    c.message.as_deref().unwrap_or("")
                )
            })
            .unwrap_or_else(|| "the kubelet has not posted a Ready condition".into()),
    })
}
