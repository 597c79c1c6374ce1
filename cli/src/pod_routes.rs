//! `kubeboot pod-routes`: keep one route per other node's pod subnet
//! (`podCIDR via InternalIP`), read from `kubeboot serve` when the node's
//! document came from there, else with the kubelet's credentials (up to
//! Kubernetes 1.31; from 1.32 those read only their own Node, see `--kubeconfig`).
//! What kubeboot-pod-routes.service runs on every node of the bridge pod network.

use std::path::Path;
use std::time::Duration;

use clap::Args;

use kubeboot_agent::agent::state::StateStore;
use kubeboot_agent::agent::DEFAULT_STATE_DIR;
use kubeboot_agent::cluster::pod_network;
use kubeboot_agent::cluster::routes_from_serve::ServeRoutes;
use kubeboot_core::host::Host;
use kubeboot_kube::client::block_on;
use kubeboot_kube::pod_routes::{self, PodRoute};

#[derive(Args, Debug)]
#[command(after_help = "\
Runs until stopped (or once with --once). Each round reads every Node's pod \
subnet and InternalIP and runs `ip route replace CIDR via IP` for every other Node.

Where from: a node whose document came from `kubeboot serve` asks serve \
(`GET /v1/pod-routes`, with the report credential serve bound to this node; the \
agent keeps it in /var/lib/kubeboot/pod-routes.json once the node is Ready). Else \
it lists the Nodes with --kubeconfig: the kubelet's credentials may do so up to \
Kubernetes 1.31; from 1.32 (AuthorizeNodeWithSelectors) they read only their own \
Node, so give credentials that may list Nodes. --kubeconfig given explicitly wins.

Exit codes: 0 --once succeeded, 1 it failed (the error names what).")]
pub struct PodRoutesArgs {
    /// Credentials to list the Nodes with (default: the kubelet's, when serve is not the source).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<String>,
    /// This node's name (default: the one the agent registered, else the hostname).
    #[arg(long)]
    node_name: Option<String>,
    /// Seconds between rounds.
    #[arg(long, default_value_t = 10)]
    interval: u64,
    /// One round, then exit.
    #[arg(long)]
    once: bool,
    /// Print the routes, change nothing.
    #[arg(long)]
    dry_run: bool,
}

const KUBELET_CONF: &str = "/etc/kubernetes/kubelet.conf";

/// Where the routes are read.
enum Source {
    Serve(ServeRoutes),
    Cluster(std::path::PathBuf),
}

impl Source {
    fn pick(host: &Host, a: &PodRoutesArgs) -> Result<Source, String> {
        if let Some(k) = &a.kubeconfig {
            return Ok(Source::Cluster(host.path(k)));
        }
        Ok(match ServeRoutes::load(host, DEFAULT_STATE_DIR)? {
            Some(s) => Source::Serve(s),
            None => Source::Cluster(host.path(KUBELET_CONF)),
        })
    }

    fn routes(&self, host: &Host) -> Result<Vec<PodRoute>, String> {
        match self {
            Source::Serve(s) => s.fetch(host),
            Source::Cluster(kubeconfig) => block_on(async {
                let client = kubeboot_kube::client::client(kubeconfig).await?;
                pod_routes::list_routes(&client).await
            }),
        }
    }
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
    let mut known: Vec<String> = Vec::new();
    let mut from_serve = false;
    loop {
        // Picked each round: the agent keeps serve's address once the node is Ready.
        let round = Source::pick(&host, &a).and_then(|source| {
            let serve = matches!(source, Source::Serve(_));
            if serve && !from_serve {
                if let Source::Serve(s) = &source {
                    eprintln!(
                        "pod-routes: reading the routes from kubeboot serve at {}",
                        s.url
                    );
                }
            }
            from_serve = serve;
            let routes = source.routes(&host)?;
            pod_network::apply_routes(&routes, &name, a.dry_run)
        });
        match round {
            Ok(routes) => {
                if a.dry_run {
                    for r in &routes {
                        println!("{r}");
                    }
                }
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
