//! A node-only binary, for one measurement: what a split of the one `kubeboot`
//! binary (DESIGN §1) would save on the node. It does what
//! `kubeboot agent --dry-run --document FILE --kubeadm-version V` does, linking
//! only kubeboot-agent and kubeboot-core (no serve, image, clap or CLI code).
//! `scripts/measure-binary-split.sh` builds both and compares size and peak RSS.
//! Not shipped, not installed.

use kubeboot_agent::agent::plan::DryRun;
use kubeboot_agent::agent::{AgentOptions, DEFAULT_STATE_DIR};
use kubeboot_agent::source::FetchOptions;
use kubeboot_core::host::Host;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [document, kubeadm_version] = args.as_slice() else {
        eprintln!("usage: agent_only DOCUMENT KUBEADM_VERSION");
        return std::process::ExitCode::from(2);
    };
    let opts = AgentOptions {
        document: Some(document.into()),
        state_dir: DEFAULT_STATE_DIR.to_string(),
        kubeadm_version: Some(kubeadm_version.clone()),
        fetch: FetchOptions::default(),
    };
    match DryRun::prepare(&Host::system(), &opts) {
        Ok(dry) => {
            print!("{}", dry.describe());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
