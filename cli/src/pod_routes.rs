//! `kubeboot pod-routes`: keep one route per other node's pod subnet
//! (`podCIDR via InternalIP`), read with this node's own credentials (up to
//! Kubernetes 1.31; from 1.32 those read only their own Node, see `--kubeconfig`).
//! What kubeboot-pod-routes.service runs on every node of the bridge pod network.

use std::path::Path;
use std::time::Duration;

use clap::Args;

use kubeboot_agent::agent::state::StateStore;
use kubeboot_agent::agent::DEFAULT_STATE_DIR;
use kubeboot_agent::cluster::{block_on, pod_network};
use kubeboot_core::host::Host;

#[derive(Args, Debug)]
#[command(after_help = "\
Runs until stopped (or once with --once). Each round lists the Nodes with the \
kubelet's credentials and runs `ip route replace CIDR via IP` for every other Node \
that has a podCIDR and an InternalIP. The Node authorizer allows a node that list \
up to Kubernetes 1.31; from 1.32 (AuthorizeNodeWithSelectors) a node's own \
credentials read only its own Node: give --kubeconfig credentials that may list Nodes.

Exit codes: 0 --once succeeded, 1 it failed (the error names what).")]
pub struct PodRoutesArgs {
    /// Credentials to read the Nodes with.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/etc/kubernetes/kubelet.conf"
    )]
    kubeconfig: String,
    /// This node's name (default: the one the agent registered, else the hostname).
    #[arg(long)]
    node_name: Option<String>,
    /// Seconds between rounds.
    #[arg(long, default_value_t = 10)]
    interval: u64,
    /// One round, then exit.
    #[arg(long)]
    once: bool,
}

pub fn run(root: &Path, a: PodRoutesArgs) -> u8 {
    let host = Host::new(root, Default::default());
    let name = a.node_name.clone().unwrap_or_else(|| {
        StateStore::new(host.clone(), DEFAULT_STATE_DIR)
            .load()
            .ok()
            .flatten()
            .map(|s| s.node)
            .unwrap_or_else(|| host.hostname().to_ascii_lowercase())
    });
    let kubeconfig = host.path(&a.kubeconfig);
    let mut known: Vec<String> = Vec::new();
    loop {
        let round = block_on(async {
            let client = kubeboot_agent::cluster::client(&kubeconfig).await?;
            pod_network::sync_routes(&client, &name).await
        });
        match round {
            Ok(routes) => {
                if routes != known {
                    eprintln!(
                        "pod-routes: {}",
                        if routes.is_empty() {
                            "no other nodes yet".into()
                        } else {
                            routes.join(", ")
                        }
                    );
                    known = routes;
                }
                if a.once {
                    return 0;
                }
            }
            Err(e) => {
                eprintln!("pod-routes: {e}");
                if a.once {
                    return 1;
                }
            }
        }
        std::thread::sleep(Duration::from_secs(a.interval.max(1)));
    }
}
