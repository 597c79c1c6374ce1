//! kubeboot: the first-boot agent that turns a node document into
//! `kubeadm init` / `kubeadm join`, phase by phase, resumable, reporting its
//! status at every step; plus the operator-side commands.
//!
//! Layout: one folder per concept.
//! - [`document`]: the node document (DESIGN.md §2), parsing and validation
//! - [`source`]: where the document comes from (kernel command line, cloud-init, file, HTTPS)
//! - [`agent`]: the persisted phase machine (DESIGN.md §3)
//! - [`discovery`]: verifying the cluster before trusting it (cluster-info, JWS, CA pin)
//! - [`host`]: the one interface that touches the machine, under a root prefix
//! - [`kubeadm`]: config rendering per API version, running kubeadm
//! - [`status`]: the status event and its local channels (DESIGN.md §4)
//! - [`report`]: the node's HTTPS reporter (durable outbox, ordered delivery)
//! - [`serve`]: the receiver (`kubeboot serve`): store, API, dashboard, metrics
//! - [`bundle`], [`userdata`]: operator-side cluster material and cloud-init user-data
//! - [`cli`]: the `kubeboot` command line

pub mod agent;
pub mod backoff;
pub mod bundle;
pub mod cli;
pub mod cluster;
pub mod discovery;
pub mod document;
pub mod host;
pub mod image;
pub mod kubeadm;
pub mod redact;
pub mod replace;
pub mod report;
pub mod serve;
pub mod source;
pub mod status;
pub mod tls;
pub mod userdata;

/// Finding the real Kubernetes binaries for tests (../shared/k8s or `KUBEBOOT_KUBERNETES`).
#[cfg(test)]
pub(crate) mod test_support {
    /// The real Kubernetes archive or directory. Tests that need it fail without
    /// it (they never pass by skipping): set KUBEBOOT_KUBERNETES to the archive.
    pub fn shared_k8s_archive() -> Option<std::path::PathBuf> {
        let found = crate::image::kubernetes::find_local();
        assert!(
            found.is_some(),
            "the real Kubernetes binaries are needed: set KUBEBOOT_KUBERNETES to \
             kubernetes-v1.28.7-linux-amd64.tar.xz (see ../shared/k8s/README.md)"
        );
        found
    }
}
