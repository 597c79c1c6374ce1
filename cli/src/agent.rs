use std::path::{Path, PathBuf};

use clap::Args;

use super::Output;
use kubeboot_agent::agent::{self, Agent, AgentOptions, Finish, DEFAULT_STATE_DIR};
use kubeboot_agent::report::Reporter;
use kubeboot_agent::source;
use kubeboot_core::host::Host;
use kubeboot_core::status::LocalChannels;

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// Use this node document instead of searching the kernel command line
    /// (kubeboot.url=), /etc/kubeboot/node.toml and cloud-init user-data.
    #[arg(long, value_name = "PATH")]
    document: Option<PathBuf>,
    /// Where progress is recorded (a path on the node).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STATE_DIR)]
    state_dir: String,
    /// Change nothing: print the plan, the kubeadm config (secrets redacted) and the kubeadm command line.
    #[arg(long)]
    dry_run: bool,
    /// Assume this kubeadm version instead of asking `kubeadm version -o short`.
    #[arg(long, value_name = "vX.Y.Z")]
    kubeadm_version: Option<String>,
    /// How many times to try fetching a document from a URL (kubeboot.url=, [source] url).
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=100))]
    source_attempts: u32,
    /// Timeout of each document fetch, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 15)]
    source_timeout: u64,
    /// How long to keep asking a document server that says "later" (503 with
    /// Retry-After, e.g. kubeboot serve while the first control plane initialises).
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    source_wait: u64,
    /// While kubeadm runs, report that it still runs every SECONDS (serve's init
    /// election keeps the elected node's lease on these reports).
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600))]
    heartbeat: u64,
    /// Output format of --dry-run.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

pub fn run(root: &Path, args: AgentArgs) -> u8 {
    let host = Host::system_at(root);
    // A document the operator names that is not there is bad input, as for every
    // other command (exit 2), caught before the agent records or reports anything.
    // (The path is the operator's, as given: not under --root; source::LocalFile.)
    if let Some(path) = args.document.as_ref().filter(|p| !p.exists()) {
        eprintln!(
            "error: --document {}: no such file; nothing on this host was changed",
            path.display()
        );
        return 2;
    }
    let opts = AgentOptions {
        document: args.document,
        state_dir: args.state_dir,
        kubeadm_version: args.kubeadm_version,
        fetch: source::FetchOptions {
            attempts: args.source_attempts,
            timeout: std::time::Duration::from_secs(args.source_timeout),
            wait_limit: std::time::Duration::from_secs(args.source_wait),
            ..Default::default()
        },
        heartbeat: std::time::Duration::from_secs(args.heartbeat),
    };
    if args.dry_run {
        return dry_run(&host, &opts, args.output);
    }
    let sinks: Vec<Box<dyn kubeboot_core::status::StatusSink>> = vec![
        Box::new(LocalChannels::new(host.clone())),
        Box::new(Reporter::new(host.clone(), &opts.state_dir)),
    ];
    let finish = Agent::new(host, opts, sinks).run();
    match &finish {
        Finish::Done => eprintln!("kubeboot: node bootstrapped"),
        Finish::AlreadyDone => eprintln!("kubeboot: node already bootstrapped; nothing to do"),
        Finish::Failed { phase, error } => {
            eprintln!(
                "error: {phase} failed ({}): {}",
                error.kind.as_str(),
                error.message
            )
        }
        Finish::Invalid(e) => super::print_invalid(e),
    }
    finish.exit_code()
}

fn dry_run(host: &Host, opts: &AgentOptions, output: Output) -> u8 {
    use agent::plan::{DryRun, DryRunError};
    let dry = match DryRun::prepare(host, opts) {
        Ok(d) => d,
        Err(DryRunError::Invalid(invalid)) => {
            super::print_invalid(&invalid);
            return 2;
        }
        Err(DryRunError::Source(e)) => {
            eprintln!("error: {e}");
            return 1;
        }
        Err(e @ DryRunError::Kubeadm(_)) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&dry.to_json()).expect("json")
        ),
        Output::Text => print!("{}", dry.describe()),
    }
    0
}
