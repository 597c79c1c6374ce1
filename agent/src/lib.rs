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

/// Fuzzing on stable: byte-level mutations of a known-good input, for the
/// parsers of untrusted input (node documents, user-data, status events).
/// Cases are bounded (PROPTEST_CASES overrides); a failure proptest finds is
/// kept in `proptest-regressions/` and replayed first on every run.
#[cfg(test)]
pub(crate) mod fuzz {
    use proptest::prelude::*;

    /// One edit: replace, insert or delete a byte at a position (taken modulo
    /// the input's length).
    #[derive(Debug, Clone)]
    pub enum Edit {
        Replace(usize, u8),
        Insert(usize, u8),
        Delete(usize),
    }

    pub fn edits() -> impl Strategy<Value = Vec<Edit>> {
        let byte = prop_oneof![
            // TOML, JSON and MIME punctuation more often than noise.
            proptest::sample::select(b"=[]{}\"'#\n.,:-\\ 0aZ".to_vec()),
            any::<u8>(),
        ];
        let edit = prop_oneof![
            (any::<usize>(), byte.clone()).prop_map(|(i, b)| Edit::Replace(i, b)),
            (any::<usize>(), byte).prop_map(|(i, b)| Edit::Insert(i, b)),
            any::<usize>().prop_map(Edit::Delete),
        ];
        proptest::collection::vec(edit, 1..12)
    }

    pub fn apply(seed: &[u8], edits: &[Edit]) -> Vec<u8> {
        let mut out = seed.to_vec();
        for e in edits {
            let n = out.len().max(1);
            match *e {
                Edit::Replace(i, b) if !out.is_empty() => out[i % n] = b,
                Edit::Insert(i, b) => out.insert(i % (out.len() + 1), b),
                Edit::Delete(i) if !out.is_empty() => {
                    out.remove(i % n);
                }
                _ => {}
            }
        }
        out
    }

    pub fn config() -> ProptestConfig {
        ProptestConfig {
            cases: std::env::var("PROPTEST_CASES")
                .ok()
                .and_then(|c| c.parse().ok())
                .unwrap_or(4096),
            ..ProptestConfig::default()
        }
    }
}
