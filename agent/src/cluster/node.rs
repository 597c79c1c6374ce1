//! This node's Node object: registered? which podCIDR? Ready?

use k8s_openapi::api::core::v1::Node;
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

pub async fn state(client: &kube::Client, name: &str) -> Result<NodeState, kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let Some(node) = nodes.get_opt(name).await? else {
        return Ok(NodeState::NotRegistered);
    };
    let pod_cidr = node.spec.as_ref().and_then(|s| s.pod_cidr.clone());
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
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

/// (podCIDR, InternalIP) of every Node that has both.
pub async fn pod_routes(
    client: &kube::Client,
) -> Result<Vec<(String, String, String)>, kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let list = nodes.list(&Default::default()).await?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|n| {
            let name = n.metadata.name.clone()?;
            let cidr = n.spec.as_ref()?.pod_cidr.clone()?;
            let ip = n
                .status
                .as_ref()?
                .addresses
                .as_ref()?
                .iter()
                .find(|a| a.type_ == "InternalIP")?
                .address
                .clone();
            Some((name, cidr, ip))
        })
        .collect())
}
