use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;

use super::Output;

use kubeboot_core::document::formats::is_dns_name;
use kubeboot_core::status::{Phase, PhaseState};
use kubeboot_core::tls;
use kubeboot_serve::NodeSummary;

#[derive(Args, Debug)]
#[command(after_help = "\
Exit codes:
  0  with --until-settled: every node shown is done; with --once: none has failed
  1  a node failed (with --until-settled: once every node shown has settled), or, with
     --once, the receiver could not be read
  2  bad arguments
  3  --timeout passed before the nodes settled (--timeout 0: not settled at the first look)

A node has settled when it is done or has failed. With --node, only the named nodes are
shown and counted, and a named node that has not reported yet has not settled, so
`--until-settled --node w1` waits for w1 alone while other nodes boot.

In a script: `kubeboot watch --until-settled --node w1 --timeout 900 --output json --history`
prints one JSON document when w1 settles (or when the 900 s are up), {\"nodes\": [...]} with
each node as GET /v1/nodes/NAME gives it, its events under \"history\"; each change of a
node's phase or state is a line on stderr meanwhile.")]
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
    /// Only this node (repeatable): the others are neither shown nor counted. With
    /// --until-settled, each named node must also have reported.
    #[arg(long = "node", value_name = "NAME", value_parser = node_name)]
    nodes: Vec<String>,
    /// Give up after this many seconds (exit 3); 0 looks once.
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<u64>,
    /// text: a table (redrawn in place on a terminal); json: one JSON document whenever it
    /// changes, or with --until-settled only the last one (the nodes as they settled, or as
    /// they were when --timeout passed) and a line on stderr per change of phase or state.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
    /// With --output json: each node with its events ("history"), as GET /v1/nodes/NAME
    /// gives it (one more request per node each time the output is printed).
    #[arg(long)]
    history: bool,
}

fn node_name(s: &str) -> Result<String, String> {
    if is_dns_name(s) {
        Ok(s.to_string())
    } else {
        Err("a node name is a DNS subdomain (lowercase a-z, 0-9, '-', '.')".into())
    }
}

pub fn run(args: WatchArgs) -> u8 {
    if args.history && args.output != Output::Json {
        eprintln!("error: --history needs --output json");
        return 2;
    }
    let client = match client(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let root = kubeboot_core::status::api_root(&args.server);
    let url = format!("{root}/nodes");
    let deadline = args
        .timeout
        .map(|t| Instant::now() + Duration::from_secs(t));
    let redraw = args.output == Output::Text && std::io::stdout().is_terminal() && !args.once;
    // A script waiting for the nodes reads one document, the last; progress goes to stderr.
    let last_only = args.output == Output::Json && args.until_settled && !args.once;
    let mut last_shown = String::new();
    let mut seen = HashMap::new();
    loop {
        let nodes = match fetch(&client, &url) {
            Ok(n) => only(n, &args.nodes),
            Err(e) if args.once => {
                eprintln!("error: {e}");
                return 1;
            }
            Err(e) => {
                eprintln!("waiting for the receiver: {e}");
                Vec::new()
            }
        };
        let timed_out = deadline.is_some_and(|d| Instant::now() >= d);
        let outcome = settle(&nodes, &args.nodes, args.expect);
        let code = ending(&args, &nodes, outcome, timed_out);
        if last_only {
            for line in changes(&mut seen, &nodes) {
                eprintln!("{line}");
            }
        }
        let missing = not_reported(&nodes, &args.nodes);
        let shown = match args.output {
            Output::Json => document(
                nodes
                    .iter()
                    .map(|n| serde_json::to_value(n).expect("serializable")),
                &missing,
            ),
            Output::Text => {
                let mut t = kubeboot_serve::nodes::table(&nodes);
                if !missing.is_empty() {
                    t.push_str(&format!("\nnot reported yet: {}", missing.join(", ")));
                }
                t
            }
        };
        let print = if last_only {
            code.is_some()
        } else {
            shown != last_shown || redraw
        };
        if print {
            let out = if args.history {
                match with_history(&client, &root, &nodes) {
                    Ok(h) => Some(document(h, &missing)),
                    Err(e) => {
                        eprintln!("waiting for the receiver: {e}");
                        None
                    }
                }
            } else {
                Some(shown.clone())
            };
            match out {
                Some(out) => {
                    if redraw {
                        print!("\x1b[H\x1b[2J");
                    }
                    println!("{out}");
                    let _ = std::io::stdout().flush();
                    last_shown = shown;
                }
                // No history to be had: the nodes as they are when time is up, or look again.
                None if args.once => return 1,
                None if timed_out => println!("{shown}"),
                None => {
                    std::thread::sleep(pause(args.interval, deadline));
                    continue;
                }
            }
        }
        if let Some(code) = code {
            if code == 3 {
                eprintln!("error: --timeout passed before every node was done or failed");
            }
            return code;
        }
        std::thread::sleep(pause(args.interval, deadline));
    }
}

/// Where the nodes stand, for --until-settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settle {
    /// A node is still on its way, a named one has not reported, or fewer than --expect have.
    Pending,
    /// Every node is done.
    Done,
    /// Every node is done or failed, and at least one failed.
    Failed,
}

/// The nodes named by --node (all of them without it), in the receiver's order.
fn only(nodes: Vec<NodeSummary>, names: &[String]) -> Vec<NodeSummary> {
    if names.is_empty() {
        return nodes;
    }
    nodes
        .into_iter()
        .filter(|n| names.contains(&n.name))
        .collect()
}

/// The names given with --node that no node shown carries.
fn not_reported<'a>(nodes: &[NodeSummary], names: &'a [String]) -> Vec<&'a str> {
    names
        .iter()
        .filter(|name| !nodes.iter().any(|n| n.name == **name))
        .map(String::as_str)
        .collect()
}

/// Have the nodes (already narrowed to `names`) settled? At least one node must
/// have reported, at least `expect`, and every one of `names`.
fn settle(nodes: &[NodeSummary], names: &[String], expect: usize) -> Settle {
    if nodes.len() < expect.max(1)
        || !not_reported(nodes, names).is_empty()
        || !nodes.iter().all(NodeSummary::settled)
    {
        Settle::Pending
    } else if nodes.iter().any(NodeSummary::failed) {
        Settle::Failed
    } else {
        Settle::Done
    }
}

/// The exit code if this look ends the watch, or None to look again.
fn ending(args: &WatchArgs, nodes: &[NodeSummary], outcome: Settle, timed_out: bool) -> Option<u8> {
    if args.once {
        return Some(u8::from(nodes.iter().any(NodeSummary::failed)));
    }
    match outcome {
        Settle::Done if args.until_settled => Some(0),
        Settle::Failed if args.until_settled => Some(1),
        _ if timed_out => Some(3),
        _ => None,
    }
}

/// A line for each node that is new or whose phase, state or attempt changed since the
/// last look; `seen` keeps what was last said.
fn changes(
    seen: &mut HashMap<String, (Phase, PhaseState, u32)>,
    nodes: &[NodeSummary],
) -> Vec<String> {
    let mut lines = Vec::new();
    for n in nodes {
        let now = (n.phase, n.state, n.attempt);
        if seen.get(&n.name) == Some(&now) {
            continue;
        }
        seen.insert(n.name.clone(), now);
        let mut line = format!("{}: {} {}", n.name, n.phase, n.state.as_str());
        if n.attempt > 1 {
            line.push_str(&format!(" (attempt {})", n.attempt));
        }
        if n.failed() {
            if let Some(e) = &n.last_error {
                line.push_str(&format!(": {}: {}", e.kind.as_str(), e.message));
            }
        }
        lines.push(line);
    }
    lines
}

/// `{"nodes": [...]}`, with `not_reported` when a named node has not reported.
fn document(nodes: impl IntoIterator<Item = serde_json::Value>, missing: &[&str]) -> String {
    let mut doc = serde_json::json!({ "nodes": nodes.into_iter().collect::<Vec<_>>() });
    if !missing.is_empty() {
        doc["not_reported"] = serde_json::json!(missing);
    }
    doc.to_string()
}

/// The time to the next look: the interval, but not past the deadline.
fn pause(interval: f64, deadline: Option<Instant>) -> Duration {
    let pause = Duration::from_secs_f64(interval.clamp(0.2, 3600.0));
    deadline.map_or(pause, |d| {
        pause.min(d.saturating_duration_since(Instant::now()))
    })
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
    #[derive(serde::Deserialize)]
    struct List {
        nodes: Vec<NodeSummary>,
        #[serde(default)]
        next: Option<String>,
    }
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..1000 {
        let page_url = match &after {
            Some(a) => format!("{url}?after={a}"),
            None => url.to_string(),
        };
        let page: List = get(client, &page_url)?;
        all.extend(page.nodes);
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    Ok(all)
}

/// Each node as `GET /v1/nodes/NAME` gives it: the summary and its history.
fn with_history(
    client: &reqwest::blocking::Client,
    root: &str,
    nodes: &[NodeSummary],
) -> Result<Vec<serde_json::Value>, String> {
    nodes
        .iter()
        .map(|n| get(client, &format!("{root}/nodes/{}", n.name)))
        .collect()
}

fn get<T: serde::de::DeserializeOwned>(
    client: &reqwest::blocking::Client,
    url: &str,
) -> Result<T, String> {
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
    serde_json::from_slice(&body).map_err(|e| format!("{url}: unexpected answer: {e}"))
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn node(name: &str, phase: &str, state: &str) -> NodeSummary {
        serde_json::from_value(serde_json::json!({
            "name": name, "role": "worker", "phase": phase, "state": state, "attempt": 1,
            "machine_id": "m", "boot_id": "b", "boots": 1, "events": 3,
            "first_at": "2024-05-01T10:00:00Z", "last_at": "2024-05-01T10:01:00Z",
            "phases": {}, "agent_version": "0.0.0"
        }))
        .unwrap()
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        watch: WatchArgs,
    }

    fn args(extra: &[&str]) -> WatchArgs {
        Cli::try_parse_from(["watch"].iter().chain(extra))
            .unwrap()
            .watch
    }

    #[test]
    fn only_the_named_nodes_count() {
        let all = vec![
            node("w1", "done", "succeeded"),
            node("w-bad", "discover", "failed"),
            node("w2", "kubeadm", "running"),
        ];
        // Without --node: w2 is on its way.
        assert_eq!(settle(&only(all.clone(), &[]), &[], 0), Settle::Pending);
        // w1 alone is done, whatever the others do.
        let w1 = names(&["w1"]);
        let shown = only(all.clone(), &w1);
        assert_eq!(shown.len(), 1);
        assert_eq!(shown[0].name, "w1");
        assert_eq!(settle(&shown, &w1, 0), Settle::Done);
        // w1 and w-bad: settled, one failed.
        let two = names(&["w-bad", "w1"]);
        assert_eq!(settle(&only(all.clone(), &two), &two, 0), Settle::Failed);
        // w2 is not settled, so neither are w1 and w2 together.
        let w1w2 = names(&["w1", "w2"]);
        assert_eq!(settle(&only(all, &w1w2), &w1w2, 0), Settle::Pending);
    }

    #[test]
    fn a_named_node_that_has_not_reported_has_not_settled() {
        let all = vec![node("w1", "done", "succeeded")];
        let want = names(&["w1", "w3"]);
        let shown = only(all, &want);
        assert_eq!(not_reported(&shown, &want), vec!["w3"]);
        assert_eq!(settle(&shown, &want, 0), Settle::Pending);
        // Nothing reported at all (or the receiver unreadable) is never settled.
        assert_eq!(settle(&[], &[], 0), Settle::Pending);
        assert_eq!(settle(&[], &names(&["w1"]), 0), Settle::Pending);
    }

    #[test]
    fn expect_counts_the_nodes_shown() {
        let all = vec![
            node("a", "done", "succeeded"),
            node("b", "done", "succeeded"),
        ];
        assert_eq!(settle(&all, &[], 2), Settle::Done);
        assert_eq!(settle(&all, &[], 3), Settle::Pending);
        let a = names(&["a"]);
        assert_eq!(settle(&only(all, &a), &a, 2), Settle::Pending);
    }

    #[test]
    fn retrying_is_not_settled() {
        let n = [node("w1", "kubeadm", "retrying")];
        assert_eq!(settle(&n, &[], 0), Settle::Pending);
    }

    #[test]
    fn the_exit_code_follows_the_mode() {
        let done = [node("w1", "done", "succeeded")];
        let failed = [node("w1", "discover", "failed")];
        let going = [node("w1", "kubeadm", "running")];
        let until = args(&["--until-settled"]);
        assert_eq!(ending(&until, &done, settle(&done, &[], 0), false), Some(0));
        assert_eq!(
            ending(&until, &failed, settle(&failed, &[], 0), false),
            Some(1)
        );
        assert_eq!(ending(&until, &going, settle(&going, &[], 0), false), None);
        // Settled when time is up: the outcome, not the timeout.
        assert_eq!(
            ending(&until, &failed, settle(&failed, &[], 0), true),
            Some(1)
        );
        assert_eq!(
            ending(&until, &going, settle(&going, &[], 0), true),
            Some(3)
        );
        // Without --until-settled, settling does not end the watch; --timeout does.
        let follow = args(&[]);
        assert_eq!(ending(&follow, &done, settle(&done, &[], 0), false), None);
        assert_eq!(ending(&follow, &done, settle(&done, &[], 0), true), Some(3));
        // --once: whether a node failed, settled or not.
        let once = args(&["--once"]);
        assert_eq!(
            ending(&once, &going, settle(&going, &[], 0), false),
            Some(0)
        );
        assert_eq!(
            ending(&once, &failed, settle(&failed, &[], 0), false),
            Some(1)
        );
    }

    #[test]
    fn node_names_are_checked_and_repeatable() {
        let a = args(&["--node", "w1", "--node", "cp1.example"]);
        assert_eq!(a.nodes, names(&["w1", "cp1.example"]));
        assert!(Cli::try_parse_from(["watch", "--node", "W1"]).is_err());
        assert!(Cli::try_parse_from(["watch", "--node", ""]).is_err());
    }

    #[test]
    fn changes_are_said_once() {
        let mut seen = HashMap::new();
        let mut w1 = node("w1", "kubeadm", "started");
        assert_eq!(
            changes(&mut seen, &[w1.clone()]),
            vec!["w1: kubeadm started"]
        );
        assert!(changes(&mut seen, &[w1.clone()]).is_empty());
        w1.state = PhaseState::Running;
        let w2 = node("w2", "source", "started");
        assert_eq!(
            changes(&mut seen, &[w1.clone(), w2.clone()]),
            vec!["w1: kubeadm running", "w2: source started"]
        );
        // A heartbeat (same phase, state, attempt) says nothing.
        w1.events += 1;
        assert!(changes(&mut seen, &[w1.clone(), w2]).is_empty());
        w1.attempt = 2;
        w1.state = PhaseState::Started;
        assert_eq!(
            changes(&mut seen, &[w1]),
            vec!["w1: kubeadm started (attempt 2)"]
        );
    }

    #[test]
    fn the_document_names_who_has_not_reported() {
        let n = node("w1", "done", "succeeded");
        let doc: serde_json::Value =
            serde_json::from_str(&document([serde_json::to_value(&n).unwrap()], &["w3"])).unwrap();
        assert_eq!(doc["nodes"][0]["name"], "w1");
        assert_eq!(doc["not_reported"], serde_json::json!(["w3"]));
        let doc: serde_json::Value = serde_json::from_str(&document([], &[])).unwrap();
        assert_eq!(doc, serde_json::json!({ "nodes": [] }));
    }

    #[test]
    fn a_pause_never_runs_past_the_deadline() {
        assert_eq!(pause(2.0, None), Duration::from_secs(2));
        assert_eq!(pause(0.0, None), Duration::from_millis(200));
        assert!(
            pause(2.0, Some(Instant::now() + Duration::from_millis(500)))
                <= Duration::from_millis(500)
        );
        assert_eq!(pause(2.0, Some(Instant::now())), Duration::ZERO);
    }
}
