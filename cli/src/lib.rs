//! The `kubeboot` command line. Exit codes: 0 success, 1 failure, 2 bad input
//! (invalid document or arguments; nothing on the host was changed).

mod agent;
mod bundle;
mod discover;
mod document;
mod image;
mod lab;
mod nodes;
mod pod_routes;
mod render;
mod replace;
pub(crate) mod serve;
mod status;
mod tools;
mod up;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "kubeboot",
    version,
    about = "Bootstrap Kubernetes nodes with kubeadm at first boot, and report how it went",
    long_about = "kubeboot turns a node document (TOML: role, cluster endpoint, bootstrap token, CA hash, \
certificate key) into `kubeadm init` or `kubeadm join`, phase by phase \
(source → validate → preflight → prepare → discover → kubeadm → ready → done), \
resuming after a crash or reboot and never running kubeadm twice on a finished node. \
Every phase change is reported to the journal, the console and /run/kubeboot/status.json.",
    after_help = "Exit codes: 0 success, 1 failure, 2 invalid input (nothing on the host was changed).\n\
Examples:\n  kubeboot agent --dry-run --document cloud-init/examples/worker.toml\n  \
kubeboot render --document cloud-init/examples/init.toml --kubeadm-version v1.30.4\n  kubeboot status --output json"
)]
pub struct Cli {
    /// Treat DIR as the node's root file system (tests and chroots); default /.
    /// Given before the command (`kubeboot --root DIR agent …`); used by agent,
    /// render, status and pod-routes.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/",
        hide_default_value = true
    )]
    pub root: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the first-boot agent (what kubeboot.service runs). Idempotent and resumable.
    Agent(agent::AgentArgs),
    /// Print the kubeadm configuration the agent would write for a document.
    Render(render::RenderArgs),
    /// Make and rotate cluster material ahead of time (CAs, token, certificate key, node documents).
    Bundle(bundle::BundleArgs),
    /// Fit a node document to one machine (`set`: keys by path, validated, written 0600).
    Document(document::DocumentArgs),
    /// Print a CA certificate's hash (sha256:…) exactly as kubeadm computes it.
    CaHash(tools::CaHashArgs),
    /// Render cloud-init user-data for a node document.
    Userdata(tools::UserDataArgs),
    /// Make a NoCloud seed ISO (label cidata) that delivers a node document to a VM.
    Seed(tools::SeedArgs),
    /// Verify the cluster a join document points at (cluster-info, token signature, CA pin, TLS chain).
    Discover(discover::DiscoverArgs),
    /// Clean up after the machine a control-plane join replaces: its stale Node and dead etcd member (--dry-run shows what).
    Replace(replace::ReplaceArgs),
    /// Show this node's bootstrap progress: phase, state, attempts, last error, timings.
    Status(status::StatusArgs),
    /// Receive nodes' status reports: HTTPS API, dashboard, metrics, node documents.
    Serve(serve::ServeArgs),
    /// Follow every node's progress from a `kubeboot serve` receiver, in the terminal.
    Watch(watch::WatchArgs),
    /// Build the node image (mkosi), boot it under qemu, write PXE sets.
    Image(image::ImageArgs),
    /// A local cluster of VMs: image, bundle, receiver, seeds, boots, live status.
    Up(up::UpArgs),
    /// Pieces of `up`'s local VM lab for scripts that build their own (haproxy-config).
    Lab(lab::LabArgs),
    /// Every Node of a cluster with its boot state, from the cluster itself (Node annotations).
    Nodes(nodes::NodesArgs),
    /// Keep routes to the other nodes' pod subnets (the bridge pod network; a node service).
    PodRoutes(pod_routes::PodRoutesArgs),
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Output {
    #[default]
    Text,
    Json,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let code = match cli.command {
        Command::Agent(args) => agent::run(&cli.root, args),
        Command::Render(args) => render::run(&cli.root, args),
        Command::Status(args) => status::run(&cli.root, args),
        Command::Discover(args) => discover::run(args),
        Command::Replace(args) => replace::run(args),
        Command::Bundle(args) => bundle::run(args),
        Command::Document(args) => document::run(args),
        Command::CaHash(args) => tools::ca_hash(args),
        Command::Userdata(args) => tools::userdata(args),
        Command::Seed(args) => tools::seed(args),
        Command::Serve(args) => serve::run(args),
        Command::Watch(args) => watch::run(args),
        Command::Image(args) => image::run(args),
        Command::Up(args) => up::run(args),
        Command::Lab(args) => lab::run(args),
        Command::Nodes(args) => nodes::run(args),
        Command::PodRoutes(args) => pod_routes::run(&cli.root, args),
    };
    ExitCode::from(code)
}

/// Journal (structured fields) when running under systemd, else readable stderr.
fn init_logging() {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_env("KUBEBOOT_LOG")
        // kube-rs's HTTP trace layer logs every failed request at ERROR with no
        // context ("failed with error client error (Connect)"), e.g. each time serve
        // asks a cluster that is still being made; kubeboot reports those failures
        // itself, saying what it was doing. KUBEBOOT_LOG overrides.
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("info,kube_client::client::builder=off")
        });
    let under_systemd =
        std::env::var_os("INVOCATION_ID").is_some() || std::env::var_os("JOURNAL_STREAM").is_some();
    let journald = under_systemd
        .then(|| tracing_journald::layer().ok())
        .flatten()
        .map(|l| {
            l.with_field_prefix(Some("KUBEBOOT".into()))
                .with_syslog_identifier("kubeboot".into())
        });
    // On a terminal the message says it all; the structured fields are for the journal.
    let stderr = journald.is_none().then(|| {
        use std::io::IsTerminal;
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
            .fmt_fields(tracing_subscriber::fmt::format::debug_fn(
                |w, field, value| {
                    if field.name() == "message" {
                        write!(w, "{value:?}")
                    } else {
                        Ok(())
                    }
                },
            ))
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(journald)
        .with(stderr)
        .try_init();
}

/// Print a document error the way every command does.
pub(crate) fn print_invalid(e: &kubeboot_core::document::InvalidDocument) {
    eprintln!("error: {e}");
}

/// Read `--document`'s text; on failure print why and give exit code 2.
fn read_document_text(path: &std::path::Path) -> Result<String, u8> {
    std::fs::read_to_string(path).map_err(|e| {
        eprintln!("error: --document {}: {e}", path.display());
        2
    })
}

/// Print a document error and give the exit code for invalid input (2).
fn invalid_input(e: kubeboot_core::document::InvalidDocument) -> u8 {
    print_invalid(&e);
    2
}

/// Read and fully validate `--document`; on failure print why and give exit code 2.
pub(crate) fn read_document(
    path: &std::path::Path,
) -> Result<(String, kubeboot_core::document::ValidDocument), u8> {
    let text = read_document_text(path)?;
    let doc = kubeboot_core::kubeadm::validate_fully(&text).map_err(invalid_input)?;
    Ok((text, doc))
}

/// What `--document` holds for the tools that deliver it to a node (`seed`,
/// `userdata`): a complete node document, or a pointer (`[source]` only, e.g. a
/// node group's user-data from `kubeboot serve group add`).
pub(crate) enum Deliverable {
    Document(Box<kubeboot_core::document::ValidDocument>),
    Pointer,
}

/// Read `--document` for delivery: a pointer is checked as a pointer, anything
/// else fully validated; on failure print why and give exit code 2.
pub(crate) fn read_deliverable(path: &std::path::Path) -> Result<(String, Deliverable), u8> {
    let text = read_document_text(path)?;
    let parsed = kubeboot_core::document::parse(&text).map_err(invalid_input)?;
    if parsed.source.is_some() {
        kubeboot_core::document::validate_pointer(&parsed).map_err(invalid_input)?;
        return Ok((text, Deliverable::Pointer));
    }
    let doc = kubeboot_core::kubeadm::validate_fully(&text).map_err(invalid_input)?;
    Ok((text, Deliverable::Document(Box::new(doc))))
}
