use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::Output;
use kubeboot_serve::groups::{self, GroupFile, NewGroup};
use kubeboot_serve::tokens::{Scope, TokenFile};
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
A report token reads no document; the init document goes to a documents:init token, once.

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
    /// With --fresh-credentials, while the cluster does not answer, the first control
    /// plane to ask is elected to run `kubeadm init` (recorded in DATA, kept across
    /// restarts); the others wait (503). If the elected node fails, or sends no status
    /// event for this long, the next to ask takes over.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 1200,
        requires = "fresh_credentials"
    )]
    init_lease: u64,
    /// With --fresh-credentials: at most this many worker (and this many control-plane)
    /// documents per minute; more get 429 with Retry-After, and nothing is minted.
    #[arg(long, value_name = "N", default_value_t = 60, requires = "fresh_credentials",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    mint_per_minute: u32,
    /// Format of the start-up line (where it listens, the CA hash, the token file).
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

#[derive(Subcommand, Debug)]
enum ServeCommand {
    /// Make, list and revoke the bearer tokens nodes and operators present.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Node groups: one user-data for every machine of an autoscaling group or PXE
    /// fleet; each machine gets a document of its own with fresh credentials.
    #[command(subcommand)]
    Group(GroupCommand),
}

#[derive(Subcommand, Debug)]
enum GroupCommand {
    /// Make a group and print its user-data (shown only now: it holds the group's
    /// enrollment credential).
    #[command(after_help = "\
The user-data is a pointer document: [source] url = \"URL/v1/groups/NAME/document\", serve's CA \
pin and the group's credential. Each machine booting with it asks serve (which must run with \
--bundle DIR --fresh-credentials) and gets a document made for it: a bootstrap token minted \
for it (valid 1 h), for control planes a fresh certificate key, the group's --label values, \
and a [report] table so it reports to serve. A control-plane group into a cluster that does \
not answer yet elects one machine to run kubeadm init; the others wait, then join.

Limits: --max-nodes distinct machines (a machine asking again is not counted twice), \
--per-minute documents; beyond them serve answers 403 or 429 and mints nothing.

Exit codes: 0, 1 the files could not be written, 2 bad arguments.")]
    Add(GroupAddArgs),
    /// The groups: role, limits, machines enrolled, revoked (never a credential).
    List(TokenFileArgs),
    /// Refuse the group's credential from the next request (joined machines stay).
    Revoke {
        #[command(flatten)]
        file: TokenFileArgs,
        /// The group's name.
        name: String,
    },
}

#[derive(Args, Debug)]
struct GroupAddArgs {
    #[command(flatten)]
    file: TokenFileArgs,
    /// The group's name (lowercase letters, digits, '-').
    name: String,
    /// The role of every machine in the group.
    #[arg(long, value_parser = ["worker", "control-plane"])]
    role: String,
    /// serve as the machines reach it, https://HOST:PORT.
    #[arg(long, value_name = "URL")]
    url: String,
    /// The pin of serve's CA. Default: the CA serve made in DATA/tls (start serve once first).
    #[arg(long, value_name = "sha256:HEX")]
    ca_cert_hash: Option<String>,
    /// At most this many distinct machines get documents.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_nodes: Option<u32>,
    /// At most this many documents per minute.
    #[arg(long, value_name = "N", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    per_minute: u32,
    /// A label for every Node of the group, KEY=VALUE (repeatable; ones the kubelet may set).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// cloud-config (write_files /etc/kubeboot/node.toml) or the bare TOML document.
    #[arg(long, value_parser = ["cloud-config", "toml"], default_value = "cloud-config")]
    format: String,
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| "use KEY=VALUE".to_string())
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// Make a token and print it (only this once; the file keeps its hash).
    #[command(after_help = "\
Scopes: report (post status events: the [report] token every node carries), \
documents:worker, documents:control-plane, documents:init (read that role's document; \
init tokens are always once-only), admin (all but the init document).

--once: the token is spent by its first use. Use it for a kernel command line \
(kubeboot.token=, PXE), which every user of the node can read.

Prints the token alone on stdout (--output json: token, id, scope, once). Exit codes: 0, 1 the \
file could not be written, 2 bad arguments.")]
    Add(TokenAddArgs),
    /// The tokens in the file: id, scope, once, used, note (never the token).
    List(TokenFileArgs),
    /// Remove the token whose id starts with ID (6 or more hex digits).
    Revoke {
        #[command(flatten)]
        file: TokenFileArgs,
        /// The token's id, from `serve token list` or `serve token add`.
        id: String,
    },
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

#[derive(Args, Debug)]
struct TokenAddArgs {
    #[command(flatten)]
    file: TokenFileArgs,
    /// What the token may do: report, documents:ROLE or admin.
    #[arg(long, value_parser = Scope::parse)]
    scope: Scope,
    /// Spent by its first use.
    #[arg(long)]
    once: bool,
    /// A note kept beside the hash (who or what the token is for).
    #[arg(long, default_value = "")]
    note: String,
}

pub fn run(args: ServeArgs) -> u8 {
    match args.command {
        Some(ServeCommand::Token(cmd)) => return run_token(cmd),
        Some(ServeCommand::Group(cmd)) => return run_group(cmd),
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

fn run_token(cmd: TokenCommand) -> u8 {
    let result = match cmd {
        TokenCommand::Add(a) => token_add(a),
        TokenCommand::List(f) => token_list(f),
        TokenCommand::Revoke { file, id } => token_revoke(file, &id),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn open(f: &TokenFileArgs) -> TokenFile {
    TokenFile::new(token_path(&f.data, &f.token_file))
}

fn token_add(a: TokenAddArgs) -> Result<(), String> {
    let file = open(&a.file);
    let (token, grant) = file.add(a.scope, a.once, &a.note)?;
    match a.file.output {
        Output::Json => println!(
            "{}",
            serde_json::json!({
                "token": token,
                "id": grant.id(),
                "scope": grant.scope.to_string(),
                "once": grant.once,
                "file": file.path(),
            })
        ),
        Output::Text => {
            println!("{token}");
            eprintln!(
                "kubeboot: made a {}{} token, id {}, in {}; it is shown only now",
                grant.scope,
                if grant.once { " once-only" } else { "" },
                grant.id(),
                file.path().display()
            );
        }
    }
    Ok(())
}

fn token_list(f: TokenFileArgs) -> Result<(), String> {
    let file = open(&f);
    let grants = file.load()?;
    match f.output {
        Output::Json => {
            let rows: Vec<_> = grants
                .iter()
                .map(|g| {
                    serde_json::json!({
                        "id": g.id(), "scope": g.scope.to_string(), "once": g.once,
                        "used": g.used, "note": g.note,
                    })
                })
                .collect();
            println!("{}", serde_json::Value::Array(rows));
        }
        Output::Text => {
            println!("{:<12}  {:<24}  {:<25}  note", "id", "scope", "once/used");
            for g in &grants {
                let once = match (&g.used, g.once) {
                    (Some(at), _) => format!("used {at}"),
                    (None, true) => "once, unused".into(),
                    (None, false) => "-".into(),
                };
                println!(
                    "{:<12}  {:<24}  {:<25}  {}",
                    g.id(),
                    g.scope.to_string(),
                    once,
                    g.note
                );
            }
        }
    }
    Ok(())
}

fn token_revoke(f: TokenFileArgs, id: &str) -> Result<(), String> {
    let file = open(&f);
    match file.revoke(id)? {
        0 => Err(format!(
            "no token with an id starting {id} in {}",
            file.path().display()
        )),
        n => {
            eprintln!("kubeboot: revoked {n} token(s); serve refuses them from the next request");
            Ok(())
        }
    }
}

fn run_group(cmd: GroupCommand) -> u8 {
    let result = match cmd {
        GroupCommand::Add(a) => group_add(a),
        GroupCommand::List(f) => group_list(f),
        GroupCommand::Revoke { file, name } => group_revoke(file, &name),
    };
    match result {
        Ok(()) => 0,
        Err((code, e)) => {
            eprintln!("error: {e}");
            code
        }
    }
}

fn group_file(f: &TokenFileArgs) -> GroupFile {
    GroupFile::new(f.data.join(groups::FILE))
}

fn group_add(a: GroupAddArgs) -> Result<(), (u8, String)> {
    let ca_cert_hash = match a.ca_cert_hash {
        Some(h) => h,
        None => serve_ca_hash(&a.file.data).map_err(|e| (2, e))?,
    };
    let req = NewGroup {
        name: a.name.clone(),
        role: a.role.parse().map_err(|e: String| (2, e))?,
        url: a.url,
        ca_cert_hash,
        max_nodes: a.max_nodes,
        per_minute: a.per_minute,
        labels: a.labels.into_iter().collect(),
    };
    let tokens = open(&a.file);
    let (credential, group) = group_file(&a.file).add(&req, &tokens).map_err(|e| {
        let bad_input = e.starts_with("group ") || e.starts_with("--");
        (if bad_input { 2 } else { 1 }, e)
    })?;
    let pointer = groups::pointer_document(&a.name, &group, &credential);
    let user_data = match a.format.as_str() {
        "toml" => pointer,
        _ => kubeboot_serve::userdata::cloud_config(&pointer),
    };
    match a.file.output {
        Output::Json => println!(
            "{}",
            serde_json::json!({
                "group": a.name, "role": group.role.as_str(), "user_data": user_data,
                "document_url": format!("{}/v1/groups/{}/document", group.url, a.name),
                "report_token_id": group.report_token_id,
            })
        ),
        Output::Text => {
            print!("{user_data}");
            eprintln!(
                "kubeboot: made node group {} ({}); the user-data above holds its credential and is \
                 shown only now. Machines get documents from {}/v1/groups/{}/document while serve \
                 runs with --bundle DIR --fresh-credentials --data {}",
                a.name,
                group.role,
                group.url,
                a.name,
                a.file.data.display()
            );
        }
    }
    Ok(())
}

/// The pin of the CA `serve --self-signed` made in DATA/tls.
fn serve_ca_hash(data: &Path) -> Result<String, String> {
    let ca = data.join("tls").join("ca.crt");
    let pem = std::fs::read(&ca).map_err(|e| {
        format!(
            "{}: {e}: start serve once to make its CA, or give --ca-cert-hash (the hash of the CA of serve's certificate)",
            ca.display()
        )
    })?;
    let der = kubeboot_core::tls::first_pem_certificate(&pem)?;
    kubeboot_core::tls::ca_hash_of_der(&der)
}

fn group_list(f: TokenFileArgs) -> Result<(), (u8, String)> {
    let file = group_file(&f);
    let all = file.load().map_err(|e| (1, e))?;
    let mut rows = Vec::new();
    for (name, g) in &all {
        let enrolled = groups::enrolled_count(&f.data, name).map_err(|e| (1, e))?;
        rows.push((name, g, enrolled));
    }
    match f.output {
        Output::Json => {
            let rows: Vec<_> = rows
                .iter()
                .map(|(name, g, enrolled)| {
                    serde_json::json!({
                        "name": name, "role": g.role.as_str(), "url": g.url,
                        "max_nodes": g.max_nodes, "per_minute": g.per_minute,
                        "labels": g.labels, "enrolled": enrolled, "created": g.created,
                        "revoked": g.revoked, "report_token_id": g.report_token_id,
                    })
                })
                .collect();
            println!("{}", serde_json::Value::Array(rows));
        }
        Output::Text => {
            println!(
                "{:<16}  {:<13}  {:>8}  {:>10}  {:<21}  labels",
                "group", "role", "enrolled", "per minute", "revoked"
            );
            for (name, g, enrolled) in &rows {
                let count = match g.max_nodes {
                    Some(m) => format!("{enrolled}/{m}"),
                    None => enrolled.to_string(),
                };
                let labels: Vec<String> =
                    g.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!(
                    "{:<16}  {:<13}  {:>8}  {:>10}  {:<21}  {}",
                    name,
                    g.role.as_str(),
                    count,
                    g.per_minute,
                    g.revoked.as_deref().unwrap_or("-"),
                    labels.join(",")
                );
            }
        }
    }
    Ok(())
}

fn group_revoke(f: TokenFileArgs, name: &str) -> Result<(), (u8, String)> {
    let g = group_file(&f).revoke(name).map_err(|e| (1, e))?;
    eprintln!(
        "kubeboot: revoked node group {name}: serve refuses its credential from the next request. \
         Its report token (id {}) still works, so joined machines keep reporting; \
         `kubeboot serve token revoke {}` ends that too",
        g.report_token_id, g.report_token_id
    );
    Ok(())
}
