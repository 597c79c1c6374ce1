use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::json;

use super::Output;
use crate::agent::{self, Agent, AgentOptions, Finish, DEFAULT_STATE_DIR};
use crate::document::ValidDocument;
use crate::host::Host;
use crate::kubeadm::{self, ApiVersion, ConfigPaths};
use crate::redact::Redactor;
use crate::report::Reporter;
use crate::source;
use crate::status::LocalChannels;

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
    let sinks: Vec<Box<dyn crate::status::StatusSink>> = vec![
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
    let plan = plan(&doc, opts);
    match output {
        Output::Json => {
            let v = json!({
                "dry_run": true,
                "document_origin": loaded.origin,
                "role": doc.role,
                "node": doc.node_name(),
                "kubeadm_version": version,
                "kubeadm_api_version": api.group_version(),
                "plan": plan.iter().map(|(p, what)| json!({"phase": p, "action": what})).collect::<Vec<_>>(),
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
                println!("#   {phase:<10} {what}");
            }
            println!("#\n# kubeadm configuration (written 0600 to {config_path}; secrets redacted here):");
            print!("{config}");
            println!("#\n# command:\n#   kubeadm {}", argv.join(" "));
        }
    }
    0
}

fn plan(doc: &ValidDocument, opts: &AgentOptions) -> Vec<(&'static str, String)> {
    let role = doc.role;
    let (cpus, mib, disk) = agent::minimums(role);
    let pre = &doc.doc.preflight;
    let mut discover = if role == crate::document::Role::Init {
        "nothing to discover for init".to_string()
    } else if let Some(f) = &doc.doc.discovery.file {
        format!("use kubeadm discovery file {f}")
    } else {
        format!(
            "wait up to {}s for {} to answer",
            doc.doc.discovery_timeout_seconds(),
            doc.endpoint
        )
    };
    let d = &doc.doc.discovery;
    if role == crate::document::Role::ControlPlane
        && doc.doc.replace.enabled
        && d.file.is_none()
        && d.certificate_key.is_some()
    {
        discover.push_str(&format!(
            "; then clean up after a replaced machine: a same-name Node silent for {}s, at most one dead etcd member, never without quorum (`kubeboot replace --document F --dry-run` shows what)",
            doc.doc.replace.grace_seconds
        ));
    }
    let mut kubeadm_step = format!(
        "write the config, run kubeadm {} (up to {} attempts, `kubeadm reset -f` and jittered backoff between)",
        if role == crate::document::Role::Init { "init" } else { "join" },
        doc.doc.kubeadm.attempts
    );
    if doc.doc.pki.is_some() {
        kubeadm_step
            .push_str("; first write the [pki] CA material to /etc/kubernetes/pki (keys 0600)");
    }
    vec![
        ("source", "document found (see above)".to_string()),
        ("validate", "document valid".to_string()),
        (
            "preflight",
            format!(
                "need >= {cpus} CPUs, >= {mib} MiB memory, >= {disk} MiB free on /var/lib; kubeadm and kubelet on PATH; wait up to {}s for clock sync",
                pre.clock_sync_timeout_seconds
            ),
        ),
        (
            "prepare",
            format!(
                "load overlay, br_netfilter; set net.ipv4.ip_forward=1, net.bridge.bridge-nf-call-ip{{,6}}tables=1; swap off; wait up to {}s for {}",
                pre.cri_timeout_seconds,
                doc.cri_socket()
            ),
        ),
        ("discover", discover),
        ("kubeadm", kubeadm_step),
        (
            "ready",
            format!("check /etc/kubernetes/kubelet.conf{}", if role == crate::document::Role::Init { " and admin.conf" } else { "" }),
        ),
        (
            "done",
            format!("remove {}/kubeadm.yaml, {}/node.toml and /etc/kubeboot/node.toml (they hold secrets)", opts.state_dir, opts.state_dir),
        ),
    ]
}
