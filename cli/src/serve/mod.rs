use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::Output;

mod election;
mod group;
mod token;
use kubeboot_serve::groups::{self, GroupFile};
use kubeboot_serve::tokens::TokenFile;
use kubeboot_serve::{self as serve, tls::TlsSource, Listening, ServeOptions};

pub const DEFAULT_DATA_DIR: &str = "/var/lib/kubeboot-serve";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";

#[derive(Args, Debug)]
#[command(after_help = "\
Nodes report to `[report] url = \"https://ADDR/v1\"` with a report token and the \
`ca_cert_hash` printed at start-up. With neither --tls-cert nor --plain-http, the receiver \
makes its own CA in DATA/tls (--self-signed) and keeps it, so the hash stays the same.

Tokens have scopes and are stored hashed in DATA/tokens; make them with \
`kubeboot serve token add --scope report|documents:ROLE|admin`, which prints the token once. \
A report token reads no document. The init document goes to a documents:init token, once; \
with --fresh-credentials it goes through the init election (`serve election`): to one machine, \
only while nothing answers at the cluster's endpoint, never once the cluster was initialised.

Routes: POST /v1/nodes/{name}/events (report), GET /v1/nodes, GET /v1/nodes/{name}, \
GET /v1/documents/{role} (documents:ROLE; needs --bundle), GET /v1/groups/{name}/document \
(the group's credential; needs --bundle --fresh-credentials; `kubeboot serve group add`), \
GET / (dashboard), GET /metrics.

Exit codes: 0 stopped by SIGINT/SIGTERM, 1 could not start or serve, 2 bad arguments.")]
#[command(args_conflicts_with_subcommands = true)]
pub struct ServeArgs {
    #[command(subcommand)]
    command: Option<ServeCommand>,
    /// Address to listen on. Loopback by default; use 0.0.0.0:8443 to let nodes in.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Where events (one redb file), the generated CA and the tokens file live.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DATA_DIR)]
    data: PathBuf,
    /// Serve this certificate (PEM; the chain, ending with the CA nodes pin).
    #[arg(long, value_name = "FILE", requires = "tls_key", conflicts_with_all = ["self_signed", "plain_http"])]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Make (once) and use a CA and server certificate of the receiver's own, in DATA/tls. The default.
    #[arg(long, conflicts_with = "plain_http")]
    self_signed: bool,
    /// Extra DNS names or IP addresses for the --self-signed server certificate (repeatable).
    #[arg(long = "san", value_name = "NAME")]
    sans: Vec<String>,
    /// Serve plain HTTP (behind a TLS-terminating proxy). Nodes refuse http:// report URLs.
    #[arg(long)]
    plain_http: bool,
    /// The tokens file (scoped, hashed; see `serve token`). Default: DATA/tokens.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// A `kubeboot bundle` directory: serve its node documents at /v1/documents/{role}.
    #[arg(long, value_name = "DIR")]
    bundle: Option<PathBuf>,
    /// With --bundle: every worker and control-plane document carries a bootstrap token
    /// minted in the cluster for that request (valid 1 h) and, for control planes, a
    /// certificate key under which the bundle's certificates were re-uploaded (valid 2 h).
    /// serve reaches the cluster as cluster-admin with a certificate from the bundle's CA.
    /// Until the cluster answers, those documents get 503 with Retry-After.
    #[arg(long, requires = "bundle")]
    fresh_credentials: bool,
    /// With --fresh-credentials, while nothing answers at the cluster's endpoint, the
    /// first control plane to ask is elected to run `kubeadm init` (recorded in DATA,
    /// kept across restarts); the others wait (503). If the elected node reports
    /// failure, or serve receives no report from it (its agent sends one every 30 s
    /// while kubeadm runs) for this long, the next to ask takes over. Once its init
    /// succeeded nobody is ever elected again (`serve election`).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = serve::election::DEFAULT_LEASE.as_secs(),
        requires = "fresh_credentials",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    init_lease: u64,
    /// With --fresh-credentials: at most this many worker (and this many control-plane)
    /// documents per minute; more get 429 with Retry-After, and nothing is minted.
    #[arg(long, value_name = "N", default_value_t = 60, requires = "fresh_credentials",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    mint_per_minute: u32,
    /// At most this many connections at once; one more is closed at once.
    #[arg(long, value_name = "N", default_value_t = serve::limits::Limits::default().max_connections as u64,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections: u64,
    /// A client gets this long for its TLS handshake, its first request and each
    /// request's headers; then its connection is closed (idle and slow clients
    /// cannot hold serve's connections).
    #[arg(long, value_name = "SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    header_timeout: u64,
    /// Format of the start-up line (where it listens, the CA hash, the token file).
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

#[derive(Subcommand, Debug)]
enum ServeCommand {
    /// Make, list and revoke the bearer tokens nodes and operators present.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Node groups: one user-data for every machine of an autoscaling group or PXE
    /// fleet; each machine gets a document of its own with fresh credentials.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// The init election's record: show it, or reset it to rebuild a cluster on purpose.
    #[command(subcommand)]
    Election(election::ElectionCommand),
}

#[derive(Args, Debug)]
struct TokenFileArgs {
    /// serve's data directory; the tokens file is DATA/tokens.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DATA_DIR)]
    data: PathBuf,
    /// The tokens file, when serve runs with --token-file.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Output format: text for people, json for scripts.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

pub fn run(args: ServeArgs) -> u8 {
    match args.command {
        Some(ServeCommand::Token(cmd)) => return token::run(cmd),
        Some(ServeCommand::Group(cmd)) => return group::run(cmd),
        Some(ServeCommand::Election(cmd)) => return election::run(cmd),
        None => {}
    }
    let token_file = token_path(&args.data, &args.token_file);
    if let Err(e) = TokenFile::new(&token_file).load() {
        eprintln!("error: {e}");
        return 2;
    }
    if let Err(e) = GroupFile::new(args.data.join(groups::FILE)).load() {
        eprintln!("error: {e}");
        return 2;
    }
    if let Some(b) = &args.bundle {
        if let Err(e) = serve::documents::check_bundle(b, args.fresh_credentials) {
            eprintln!("error: {e}");
            return 2;
        }
    }
    let tls = match (&args.tls_cert, &args.tls_key, args.plain_http) {
        (Some(cert), Some(key), _) => Some(TlsSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        }),
        (_, _, true) => None,
        _ => Some(TlsSource::SelfSigned {
            names: server_names(&args),
        }),
    };
    let output = args.output;
    let sans = args.sans.clone();
    let opts = ServeOptions {
        listen: args.listen,
        data: args.data,
        tls,
        tokens: token_file.clone(),
        bundle: args.bundle,
        fresh_credentials: args.fresh_credentials,
        init_lease: std::time::Duration::from_secs(args.init_lease),
        mint_per_minute: args.mint_per_minute,
        limits: serve::limits::Limits {
            max_connections: args.max_connections as usize,
            header_timeout: std::time::Duration::from_secs(args.header_timeout),
        },
    };
    let announce = |l: &Listening| {
        let (url, note) = node_facing_url(l, &sans);
        print_listening(l, &url, note.as_deref(), &token_file, output)
    };
    match serve::run(opts, announce) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// The names on a self-signed certificate: loopback, this host, the listen
/// address if specific, and --san.
fn server_names(args: &ServeArgs) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    if let Ok(h) = nix::unistd::gethostname() {
        names.push(h.to_string_lossy().into_owned());
    }
    if !args.listen.ip().is_unspecified() {
        names.push(args.listen.ip().to_string());
    }
    names.extend(args.sans.iter().cloned());
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// The tokens file: --token-file, else DATA/tokens.
fn token_path(data: &Path, token_file: &Option<PathBuf>) -> PathBuf {
    token_file.clone().unwrap_or_else(|| data.join("tokens"))
}

/// The `[report] url` nodes should use. A wildcard listen address is no URL:
/// name the first --san, else this host's name. A loopback one reaches only
/// this machine (and VMs forwarded to it): say so.
fn node_facing_url(l: &Listening, sans: &[String]) -> (String, Option<String>) {
    let Some((scheme_host, port)) = l.url.rsplit_once(':') else {
        return (l.report_url.clone(), None);
    };
    let host = scheme_host.split("://").nth(1).unwrap_or("");
    let scheme = scheme_host.split("://").next().unwrap_or("https");
    let wildcard = host == "0.0.0.0" || host == "[::]";
    let loopback = host.starts_with("127.") || host == "[::1]";
    if wildcard {
        let (name, note) = match sans.first() {
            Some(san) => (san.clone(), None),
            None => (
                kubeboot_core::host::Host::system().hostname(),
                Some(
                    "this host's name: nodes must resolve it; give --san ADDRESS to use an address"
                        .to_string(),
                ),
            ),
        };
        let name = if name.contains(':') {
            format!("[{name}]")
        } else {
            name
        };
        return (format!("{scheme}://{name}:{port}/v1"), note);
    }
    let note = loopback.then(|| {
        "loopback: only this machine (and VMs whose traffic qemu forwards here) reaches it; \
         for nodes on a network listen there: --listen 0.0.0.0:8443 --san ADDRESS"
            .to_string()
    });
    (l.report_url.clone(), note)
}

fn print_listening(
    l: &Listening,
    report_url: &str,
    note: Option<&str>,
    token_file: &Path,
    output: Output,
) {
    match output {
        Output::Json => {
            let mut v = serde_json::to_value(l).expect("serializes");
            v["token_file"] = token_file.display().to_string().into();
            v["report_url"] = report_url.into();
            if let Some(n) = note {
                v["report_url_note"] = n.into();
            }
            println!("{v}");
        }
        Output::Text => {
            println!(
                "kubeboot serve: listening on {} (dashboard {}/)",
                l.url, l.url
            );
            println!("  nodes report to: [report] url = \"{report_url}\"");
            if let Some(n) = note {
                println!("                   ({n})");
            }
            if let Some(h) = &l.ca_cert_hash {
                println!("                   [report] ca_cert_hash = \"{h}\"");
            }
            println!(
                "                   [report] token = a report token: kubeboot serve token add --scope report{}",
                if token_file.ends_with("tokens") && token_file.parent() == Some(l.data.as_path()) {
                    format!(" --data {}", l.data.display())
                } else {
                    format!(" --token-file {}", token_file.display())
                }
            );
            println!(
                "  store: {} ({} events from {} nodes so far)",
                l.data.display(),
                l.events,
                l.nodes
            );
        }
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
}
