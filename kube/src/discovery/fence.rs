//! The node fences itself: before `kubeadm init` it asks the control-plane
//! endpoint whether a cluster already answers there, whatever told it to init
//! (its document, serve's election, or two serve processes that disagree). A
//! second `kubeadm init` behind a live cluster's endpoint would make a second
//! cluster under the same CA; that is refused here.
//!
//! A cluster answers when the endpoint serves TLS with a certificate chaining to
//! the document's CA, or publishes `kube-public/cluster-info`. Nothing answering
//! at the transport level (refused, timed out, closed during the handshake: a load
//! balancer with no healthy backend) is the one case init may go on. The API
//! server of this very machine (a resumed init: its own `apiserver.crt`) is not
//! another cluster.

use std::time::Duration;

use kubeboot_core::document::formats::Endpoint;
use kubeboot_core::status::ErrorKind;

use super::cluster_info::{chains_to, get_cluster_info};
use super::DiscoveryError;

/// What answers at a control-plane endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Nothing at the transport level: refused, timed out, or closed during the
    /// TLS handshake (a load balancer with no healthy backend).
    Nothing(String),
    /// This machine's own API server (its `apiserver.crt`): a resumed init.
    Own,
    /// This cluster: TLS under its CA, or `cluster-info` published.
    Cluster(String),
    /// Something else answers HTTPS: not this cluster, but not nothing either.
    Other(String),
}

/// Ask the endpoint what answers there (one HTTPS request, bounded by `timeout`).
pub fn look(
    endpoint: &Endpoint,
    ca_der: Option<&[u8]>,
    own_cert_der: Option<&[u8]>,
    timeout: Duration,
) -> Seen {
    let answered = match get_cluster_info(endpoint, timeout) {
        Err(e) => return Seen::Nothing(format!("nothing answers at {endpoint} ({})", e.message)),
        Ok(a) => a,
    };
    let leaf = answered.chain.first().map(|c| c.as_ref());
    if leaf.is_some() && leaf == own_cert_der {
        return Seen::Own;
    }
    if let Some(ca) = ca_der {
        if chains_to(&answered.chain, ca) {
            return Seen::Cluster(format!(
                "{endpoint} serves TLS with a certificate under this cluster's CA"
            ));
        }
    }
    if answered.status.is_success() {
        return Seen::Cluster(format!(
            "{endpoint} publishes kube-public/cluster-info ({} bytes)",
            answered.body.len()
        ));
    }
    Seen::Other(format!(
        "{endpoint} answers HTTPS ({}) with a certificate not under this cluster's CA and no \
         cluster-info",
        answered.status
    ))
}

/// What the endpoint showed, when init may go on (for the phase's log).
pub fn before_init(
    endpoint: &Endpoint,
    ca_der: Option<&[u8]>,
    own_cert_der: Option<&[u8]>,
    timeout: Duration,
) -> Result<String, DiscoveryError> {
    match look(endpoint, ca_der, own_cert_der, timeout) {
        Seen::Nothing(what) => Ok(what),
        Seen::Own => Ok(format!(
            "the API server at {endpoint} is this machine's own (its apiserver.crt): a resumed init"
        )),
        Seen::Other(what) => Ok(format!("{what}: not this cluster")),
        Seen::Cluster(why) => Err(DiscoveryError::new(
            ErrorKind::ClusterExists,
            format!(
                "refusing kubeadm init: {why}. A cluster already runs behind this endpoint, and a \
                 second init would make a second cluster under the same CA. Join it instead (a \
                 control-plane document), or, to rebuild the cluster on purpose, stop every machine \
                 serving {endpoint} first"
            ),
        )),
    }
}
