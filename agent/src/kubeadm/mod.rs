//! Running kubeadm on the node: its version on this host, the command itself
//! (streamed, with a heartbeat), and reading its failures. What is rendered for
//! it is `kubeboot_core::kubeadm`.

pub mod diagnose;
mod run;

pub use run::{detect_version, run_streaming, run_with_heartbeat, RunOutcome};

/// The kubeadm version to render for: `requested` (e.g. `--kubeadm-version`)
/// if given, else what `kubeadm version -o short` on the host's PATH says.
pub fn version_to_use(host: &kubeboot_core::host::Host, requested: Option<&str>) -> Option<String> {
    match requested {
        Some(v) => Some(v.to_string()),
        None => host
            .find_program("kubeadm")
            .and_then(|k| detect_version(&k)),
    }
}
