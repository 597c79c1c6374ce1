use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;

use super::Output;

use kubeboot_core::tls;
use kubeboot_serve::NodeSummary;

#[derive(Args, Debug)]
#[command(after_help = "\
Exit codes: 0 (with --until-settled: every node is done), 1 a node failed or the receiver \
could not be read, 2 bad arguments, 3 --timeout passed before the nodes settled.")]
pub struct WatchArgs {
    /// The receiver (`kubeboot serve`).
    #[arg(
        long,
        value_name = "URL",
        env = "KUBEBOOT_SERVER",
        default_value = "https://127.0.0.1:8443"
    )]
    server: String,
    /// Trust only the CA with this hash (as `kubeboot serve` prints it).
    #[arg(long, value_name = "sha256:HEX", env = "KUBEBOOT_SERVER_CA_HASH")]
    ca_cert_hash: Option<String>,
    /// Trust the CA certificates in this PEM file. Default for https: the
    /// receiver's own CA in /var/lib/kubeboot-serve/tls/ca.crt if present, else the system roots.
    #[arg(long, value_name = "FILE", conflicts_with = "ca_cert_hash")]
    ca_file: Option<PathBuf>,
    /// Seconds between refreshes.
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0)]
    interval: f64,
    /// Print once and exit.
    #[arg(long)]
    once: bool,
    /// Exit when every node is done or failed (0 if all are done, 1 if any failed).
    #[arg(long)]
    until_settled: bool,
    /// With --until-settled: also wait until at least N nodes have reported.
    #[arg(long, value_name = "N", default_value_t = 0)]
    expect: usize,
    /// Give up after this many seconds (exit 3).
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<u64>,
    /// text: a table (redrawn in place on a terminal); json: one JSON document per refresh.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

pub fn run(args: WatchArgs) -> u8 {
    let client = match client(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let url = format!("{}/nodes", kubeboot_core::status::api_root(&args.server));
    let started = Instant::now();
    let redraw = args.output == Output::Text && std::io::stdout().is_terminal() && !args.once;
    let mut last_shown = String::new();
    loop {
        let nodes = match fetch(&client, &url) {
            Ok(n) => n,
            Err(e) if args.once => {
                eprintln!("error: {e}");
                return 1;
            }
            Err(e) => {
                eprintln!("waiting for the receiver: {e}");
                Vec::new()
            }
        };
        let shown = match args.output {
            Output::Json => serde_json::json!({ "nodes": nodes }).to_string(),
            Output::Text => kubeboot_serve::nodes::table(&nodes),
        };
        if shown != last_shown || redraw {
            if redraw {
                print!("\x1b[H\x1b[2J");
            }
            println!("{shown}");
            let _ = std::io::stdout().flush();
            last_shown = shown;
        }
        let settled = nodes.len() >= args.expect.max(1) && nodes.iter().all(NodeSummary::settled);
        if args.once || (args.until_settled && settled) {
            let failed = nodes.iter().any(NodeSummary::failed);
            return u8::from(failed);
        }
        if args
            .timeout
            .is_some_and(|t| started.elapsed() >= Duration::from_secs(t))
        {
            eprintln!("error: --timeout passed before every node was done or failed");
            return 3;
        }
        std::thread::sleep(Duration::from_secs_f64(args.interval.clamp(0.2, 3600.0)));
    }
}

fn client(args: &WatchArgs) -> Result<reqwest::blocking::Client, String> {
    let default_ca = PathBuf::from(super::serve::DEFAULT_DATA_DIR).join("tls/ca.crt");
    // The receiver's own CA, when it runs on this machine with the default data directory.
    let ca_file = args
        .ca_file
        .clone()
        .or_else(|| default_ca.exists().then_some(default_ca));
    let config = tls::client_config_for(
        args.ca_cert_hash.as_deref(),
        ca_file.as_deref(),
        "--ca-file",
    )?;
    tls::https_client(config, Duration::from_secs(10)).map_err(|e| e.to_string())
}

/// Every node, page by page (`next`), at most 1000 pages.
fn fetch(client: &reqwest::blocking::Client, url: &str) -> Result<Vec<NodeSummary>, String> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..1000 {
        let page_url = match &after {
            Some(a) => format!("{url}?after={a}"),
            None => url.to_string(),
        };
        let (nodes, next) = fetch_page(client, &page_url)?;
        all.extend(nodes);
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    Ok(all)
}

fn fetch_page(
    client: &reqwest::blocking::Client,
    url: &str,
) -> Result<(Vec<NodeSummary>, Option<String>), String> {
    #[derive(serde::Deserialize)]
    struct List {
        nodes: Vec<NodeSummary>,
        #[serde(default)]
        next: Option<String>,
    }
    let resp = client.get(url).send().map_err(|e| {
        let error = format!("{url}: {}", tls::describe_http_error(&e));
        match tls::certificate_error(&e) {
            Some(_) => untrusted_hint(error),
            None => error,
        }
    })?;
    if !resp.status().is_success() {
        return Err(format!("{url}: {}", resp.status()));
    }
    let body = resp.bytes().map_err(|e| format!("{url}: {e}"))?;
    serde_json::from_slice::<List>(&body)
        .map(|l| (l.nodes, l.next))
        .map_err(|e| format!("{url}: unexpected answer: {e}"))
}

/// A receiver with a self-signed certificate is not in the system roots: say
/// how to trust it instead of leaving the operator with "UnknownIssuer".
fn untrusted_hint(error: String) -> String {
    format!(
        "{error}\n  hint: the receiver's certificate is not trusted here; pin its CA with \
         --ca-cert-hash sha256:… (`kubeboot serve` prints it at start, as ca_cert_hash with \
         --output json) or give --ca-file DATA/tls/ca.crt from serve's data directory"
    )
}
