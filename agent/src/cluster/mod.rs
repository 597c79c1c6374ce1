//! The cluster as this node sees it, with its own credentials (the kubelet's
//! kubeconfig): waiting for the Node to be Ready, and the pod network (a CNI
//! bridge on this node's podCIDR, routes to the other nodes'). The API calls
//! themselves are in `kubeboot-kube`.

pub mod pod_network;
pub mod routes_from_serve;

use kubeboot_kube::client::{self, describe};
use kubeboot_kube::node::{state, NodeState};

/// Poll this Node (every 2 s, bounded by `limit`) until Ready; write the pod
/// network's configuration once the Node has its podCIDR. The error says what
/// the Node last reported.
pub async fn wait_ready(
    host: &kubeboot_core::host::Host,
    kubeconfig: &std::path::Path,
    name: &str,
    limit: std::time::Duration,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut last = String::from("no answer from the API server yet");
    let mut client = None;
    loop {
        if client.is_none() {
            match client::client(kubeconfig).await {
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
                Err(e) => last = describe(&e),
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(last);
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}
