//! The agent's own check of the cluster it is about to trust, done before
//! kubeadm runs so that a wrong CA hash, an unknown or expired token, or a
//! dead endpoint is reported precisely (the check kubeadm's token discovery does):
//!
//! 1. fetch `kube-public/cluster-info` anonymously (TLS unverified at first: we
//!    do not know the CA yet, but the served chain is kept);
//! 2. verify the token's detached JWS over the kubeconfig (`jws-kubeconfig-<token-id>`);
//! 3. check that the kubeconfig's CA matches one of the pinned hashes;
//! 4. check that the served certificate chains to that CA for the endpoint's name.

mod cluster_info;
pub mod fence;
pub mod jws;

pub use cluster_info::{verify_file, verify_token, Verified};

use kubeboot_core::status::ErrorKind;

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct DiscoveryError {
    pub kind: ErrorKind,
    pub message: String,
}

impl DiscoveryError {
    fn new(kind: ErrorKind, message: impl Into<String>) -> DiscoveryError {
        DiscoveryError {
            kind,
            message: message.into(),
        }
    }

    /// Errors that can clear up by waiting (the cluster is still coming up,
    /// or the signer has not signed cluster-info for this token yet).
    fn is_transient(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::DiscoveryEndpointUnreachable
                | ErrorKind::DiscoveryTokenUnknown
                | ErrorKind::DiscoveryBadClusterInfo
        )
    }
}
