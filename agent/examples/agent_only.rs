//! A node-only binary, for one measurement: what a split of the one `kubeboot`
//! binary (docs/design.md §1) would save on the node. Linked with kubeboot-agent and
//! kubeboot-core only (no serve, image, clap or CLI code), it carries everything
//! the node runs:
//!
//! - `agent_only DOCUMENT KUBEADM_VERSION`: what
//!   `kubeboot agent --dry-run --document DOCUMENT --kubeadm-version V` does;
//! - `agent_only --run`: what `kubeboot agent` does at boot (changes the host).
//!
//! `scripts/measure-binary-split.sh` builds both binaries and compares size and
//! peak RSS. Not shipped, not installed.

use kubeboot_agent::agent::plan::DryRun;
use kubeboot_agent::agent::{Agent, AgentOptions, DEFAULT_STATE_DIR};
use kubeboot_agent::report::Reporter;
use kubeboot_agent::source::FetchOptions;
use kubeboot_core::host::Host;
use kubeboot_core::status::{LocalChannels, StatusSink};

fn options(document: Option<&str>, kubeadm_version: Option<&str>) -> AgentOptions {
    AgentOptions {
        document: document.map(Into::into),
        state_dir: DEFAULT_STATE_DIR.to_string(),
        kubeadm_version: kubeadm_version.map(str::to_string),
        fetch: FetchOptions::default(),
        ..AgentOptions::default()
    }
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let host = Host::system();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["--run"] => {
            let opts = options(None, None);
            let sinks: Vec<Box<dyn StatusSink>> = vec![
                Box::new(LocalChannels::new(host.clone())),
                Box::new(Reporter::new(host.clone(), &opts.state_dir)),
            ];
            let finish = Agent::new(host, opts, sinks).run();
            std::process::ExitCode::from(finish.exit_code())
        }
        [document, kubeadm_version] => {
            match DryRun::prepare(&host, &options(Some(document), Some(kubeadm_version))) {
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
        _ => {
            eprintln!("usage: agent_only DOCUMENT KUBEADM_VERSION | agent_only --run");
            std::process::ExitCode::from(2)
        }
    }
}
