//! kubeboot-core: what the node agent and the operator tools share.
//!
//! - [`document`]: the node document (docs/design.md §2), parsing and validation,
//!   and how it travels in cloud-init user-data
//! - [`status`]: the status event, its local channels and serve's `/v1` API root (docs/design.md §4)
//! - [`host`]: the one interface that touches the machine, under a root prefix
//! - [`kubeadm`]: the kubeadm configuration rendered from a document, per API version
//!   (the agent runs it; `render` and `bundle` show it)
//! - [`tls`]: CA pins (kubeadm's `sha256:` hash), HTTPS clients that check them
//! - [`pki`]: certificates and keys (rcgen): cluster CAs, client certificates
//! - [`backoff`], [`redact`]: jittered retries; secrets kept out of text

pub mod backoff;
pub mod document;
pub mod host;
pub mod kubeadm;
pub mod pki;
pub mod redact;
pub mod status;
pub mod tls;

/// Fuzzing on stable: byte-level mutations of a known-good input, for the
/// parsers of untrusted input (node documents, user-data, status events).
/// Cases are bounded (PROPTEST_CASES overrides); a failure proptest finds is
/// kept in `proptest-regressions/` and replayed first on every run.
#[cfg(any(test, feature = "fuzz"))]
#[doc(hidden)]
pub mod fuzz {
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

    /// Whether `text` holds any `window`-byte piece of `secret`: a secret the
    /// edits changed in one place still leaves long runs of itself to catch.
    pub fn quotes(text: &str, secret: &str, window: usize) -> bool {
        let w = window.min(secret.len()).max(1);
        secret
            .as_bytes()
            .windows(w)
            .any(|piece| std::str::from_utf8(piece).is_ok_and(|p| text.contains(p)))
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
