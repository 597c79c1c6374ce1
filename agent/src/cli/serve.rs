use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;

use super::Output;
use crate::host::write_file_atomic;
use crate::serve::{self, tls::TlsSource, Listening, ServeOptions};

pub const DEFAULT_DATA_DIR: &str = "/var/lib/kubeboot-serve";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";

#[derive(Args, Debug)]
#[command(after_help = "\
Nodes report to `[report] url = \"https://ADDR/v1\"` with `token` from the token file and the \
`ca_cert_hash` printed at start-up. With neither --tls-cert nor --plain-http, the receiver \
makes its own CA in DATA/tls (--self-signed) and keeps it, so the hash stays the same.

Routes: POST /v1/nodes/{name}/events (bearer), GET /v1/nodes, GET /v1/nodes/{name}, \
GET /v1/documents/{role} (bearer; needs --bundle), GET / (dashboard), GET /metrics.

Exit codes: 0 stopped by SIGINT/SIGTERM, 1 could not start or serve, 2 bad arguments.")]
pub struct ServeArgs {
    /// Address to listen on. Loopback by default; use 0.0.0.0:8443 to let nodes in.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Where events (one redb file), the generated CA and the generated token live.
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
    /// Bearer tokens nodes must present, one per line. Default: DATA/token, made on first start.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// A `kubeboot bundle` directory: serve its node documents at /v1/documents/{role}.
    #[arg(long, value_name = "DIR")]
    bundle: Option<PathBuf>,
    /// Format of the start-up line (where it listens, the CA hash, the token file).
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

pub fn run(args: ServeArgs) -> u8 {
    let (tokens, token_file) = match tokens(&args) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    if let Some(b) = &args.bundle {
        if !b.join("nodes").is_dir() {
            eprintln!(
                "error: --bundle {}: no nodes/ directory (make one with `kubeboot bundle new`)",
                b.display()
            );
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
        tokens,
        bundle: args.bundle,
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

/// Tokens from --token-file, or DATA/token (made with a random token when missing).
fn tokens(args: &ServeArgs) -> Result<(Vec<String>, PathBuf), String> {
    match &args.token_file {
        Some(path) => Ok((read_tokens(path)?, path.clone())),
        None => {
            ensure_token(&args.data)?;
            let path = args.data.join("token");
            Ok((read_tokens(&path)?, path))
        }
    }
}

/// DATA/token's first token, made (random, 0600) when missing.
pub fn ensure_token(data: &Path) -> Result<String, String> {
    let path = data.join("token");
    if !path.exists() {
        let token = random_token();
        write_file_atomic(&path, format!("{token}\n").as_bytes(), 0o600)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(read_tokens(&path)?.remove(0))
}

pub fn read_tokens(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--token-file {}: {e}", path.display()))?;
    let tokens: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    if tokens.is_empty() {
        return Err(format!(
            "--token-file {}: no token in it (one per line; # starts a comment)",
            path.display()
        ));
    }
    if let Some(short) = tokens.iter().position(|t| t.len() < 16) {
        return Err(format!(
            "--token-file {}: line {} holds a token shorter than 16 characters; use a long random one",
            path.display(),
            short + 1
        ));
    }
    Ok(tokens)
}

fn random_token() -> String {
    use rand::Rng;
    let bytes: [u8; 24] = rand::rng().random();
    hex::encode(bytes)
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
                crate::host::Host::system().hostname(),
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
                "                   [report] token = the token in {}",
                token_file.display()
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
