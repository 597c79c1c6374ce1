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

/// Poll this Node (every 2 s, bounded by `limit`) until Ready; write the pod
/// network's configuration once the Node has its podCIDR. The error says what
/// the Node last reported.
pub async fn wait_ready(
    host: &kubeboot_core::host::Host,
    kubeconfig: &std::path::Path,
    name: &str,
    limit: std::time::Duration,
) -> Result<(), String> {
    use super::pod_network;
    let deadline = tokio::time::Instant::now() + limit;
    let mut last = String::from("no answer from the API server yet");
    let mut client = None;
    loop {
        if client.is_none() {
            match super::client(kubeconfig).await {
                Ok(c) => client = Some(c),
                Err(e) => last = e,
            }
        }
        if let Some(c) = &client {
            match state(c, name).await {
                Ok(NodeState::NotRegistered) => {
                    last = "the kubelet has not registered the Node yet".into()
                }
                Ok(NodeState::Registered {
                    pod_cidr,
                    ready,
                    reason,
                }) => {
                    if let Some(cidr) = &pod_cidr {
                        match pod_network::ensure(host, cidr) {
                            Ok(true) => tracing::info!(
                                "pod network: bridge {} on {cidr} ({})",
                                pod_network::BRIDGE,
                                pod_network::CONFIG_FILE
                            ),
                            Ok(false) => {}
                            Err(e) => return Err(format!("pod network: {e}")),
                        }
                    }
                    if ready {
                        return Ok(());
                    }
                    last = match (&pod_cidr, pod_network::configured(host)) {
                        (None, false) => format!(
                            "{reason} (the Node has no podCIDR: set [cluster] pod_subnet on the init node, \
                             or install a network add-on)"
                        ),
                        _ => reason,
                    };
                }
                Err(e) => last = super::describe(&e),
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(last);
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}
