use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::json;

use super::Output;
use kubeboot_agent::agent::{self, Agent, AgentOptions, Finish, DEFAULT_STATE_DIR};
use kubeboot_agent::kubeadm::{self, ApiVersion, ConfigPaths};
use kubeboot_agent::report::Reporter;
use kubeboot_agent::source;
use kubeboot_core::host::Host;
use kubeboot_core::redact::Redactor;
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
    /// Output format of --dry-run.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

pub fn run(root: &Path, args: AgentArgs) -> u8 {
    let host = Host::system_at(root);
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
    let loaded = match source::resolve(host, opts.document.clone(), &opts.fetch.from_host(host)) {
        Ok(l) => l,
        Err(e) => {
            match &e.invalid {
                Some(invalid) => super::print_invalid(invalid),
                None => eprintln!("error: {e}"),
            }
            return if e.invalid.is_some() { 2 } else { 1 };
        }
    };
    let doc = match agent::validate_fully(&loaded.text) {
        Ok(d) => d,
        Err(e) => {
            super::print_invalid(&e);
            return 2;
        }
    };
    let version = kubeadm::version_to_use(host, opts.kubeadm_version.as_deref());
    let version_source = match (&opts.kubeadm_version, host.find_program("kubeadm")) {
        (Some(_), _) => "--kubeadm-version".to_string(),
        (None, Some(k)) => k.display().to_string(),
        (None, None) => "kubeadm not on PATH".to_string(),
    };
    let api = match ApiVersion::for_version(version.as_deref()) {
        Ok(a) => a,
        Err(m) => {
            eprintln!("error: {m}");
            return 2;
        }
    };
    let node_image = match kubeadm::NodeImage::read(host) {
        Ok(i) => i,
        Err(m) => {
            eprintln!("error: {m}");
            return 2;
        }
    };
    let rendered = match kubeadm::render(&doc, api, &ConfigPaths::default(), &node_image) {
        Ok(r) => r,
        Err(m) => {
            eprintln!("error: {m}");
            return 2;
        }
    };
    let redactor = Redactor::for_document(&doc.doc);
    let config = redactor.redact(rendered.expose());
    let config_path = format!("{}/kubeadm.yaml", opts.state_dir.trim_end_matches('/'));
    let argv = kubeadm::command_line(
        doc.role,
        &config_path,
        doc.doc.discovery.certificate_key.is_some(),
    );
    let plan = agent::plan::plan(&doc, &opts.state_dir);
    match output {
        Output::Json => {
            let v = json!({
                "dry_run": true,
                "document_origin": loaded.origin,
                "role": doc.role,
                "node": doc.node_name(),
                "kubeadm_version": version,
                "kubeadm_api_version": api.group_version(),
                "plan": plan.iter().map(|(p, what)| json!({"phase": p.as_str(), "action": what})).collect::<Vec<_>>(),
                "kubeadm_config": config,
                "kubeadm_command": std::iter::once("kubeadm".to_string()).chain(argv).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&v).expect("json"));
        }
        Output::Text => {
            println!("# kubeboot agent --dry-run: nothing on this host is changed.");
            println!(
                "# document: {} (role {}, node {})",
                loaded.origin,
                doc.role,
                doc.node_name().unwrap_or("<hostname>")
            );
            println!(
                "# kubeadm: {} (from {version_source}) -> {}",
                version.as_deref().unwrap_or("unknown, assuming newest"),
                api.group_version()
            );
            println!("#\n# plan:");
            for (phase, what) in &plan {
                println!("#   {:<10} {what}", phase.as_str());
            }
            println!("#\n# kubeadm configuration (written 0600 to {config_path}; secrets redacted here):");
            print!("{config}");
            println!("#\n# command:\n#   kubeadm {}", argv.join(" "));
        }
    }
    0
}
