//! The cluster as this node sees it, with its own credentials (the kubelet's
//! kubeconfig), through kube-rs: waiting for the Node to be Ready, and the pod
//! network (a CNI bridge on this node's podCIDR, routes to the other nodes').
//!
//! The agent is synchronous; each call here runs on a small current-thread
//! tokio runtime of its own ([`block_on`]) and is bounded in time.

pub mod node;
pub mod pod_network;
pub mod report;

use std::path::Path;
use std::time::Duration;

/// A client authenticated as in `kubeconfig` (e.g. /etc/kubernetes/kubelet.conf).
pub async fn client(kubeconfig: &Path) -> Result<kube::Client, String> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)
        .map_err(|e| format!("{}: {e}", kubeconfig.display()))?;
    let options = kube::config::KubeConfigOptions::default();
    let mut config = kube::Config::from_custom_kubeconfig(kc, &options)
        .await
        .map_err(|e| format!("{}: {e}", kubeconfig.display()))?;
    config.connect_timeout = Some(Duration::from_secs(10));
    config.read_timeout = Some(Duration::from_secs(30));
    kube::Client::try_from(config).map_err(|e| format!("{}: {e}", kubeconfig.display()))
}

/// Run a future to completion on a current-thread runtime.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(future)
}

/// kube's errors, shortened to what an operator can act on; transport errors with
/// their causes ("client error (Connect): tcp connect error: Connection refused").
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({} {})", s.message, s.code, s.reason),
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(cause) = source {
                let c = cause.to_string();
                if !text.contains(&c) {
                    text.push_str(": ");
                    text.push_str(&c);
                }
                source = cause.source();
            }
            text
        }
    }
}
