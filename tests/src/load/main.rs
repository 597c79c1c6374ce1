//! Load benchmark for `kubeboot serve` (not a test: it prints figures).
//!
//! Starts a fresh receiver (the given kubeboot binary, its own data directory,
//! self-signed TLS on 127.0.0.1), then simulates NODES nodes, each with its own
//! HTTPS client (own connection and TLS handshake), posting EVENTS status events
//! in order; at most CONCURRENCY nodes are in flight at once. Prints events/s,
//! p50/p99/max request latency and the receiver's peak RSS (VmHWM).
//!
//!   kubeboot-load --kubeboot target/release/kubeboot --nodes 1000 --events 10

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

struct Args {
    kubeboot: String,
    nodes: usize,
    events: u64,
    concurrency: usize,
    json: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        kubeboot: "target/release/kubeboot".into(),
        nodes: 1000,
        events: 10,
        concurrency: 256,
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--kubeboot" => a.kubeboot = value(),
            "--nodes" => {
                a.nodes = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--nodes: a number"))
            }
            "--events" => {
                a.events = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--events: a number"))
            }
            "--concurrency" => {
                a.concurrency = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--concurrency: a number"))
            }
            "--json" => a.json = true,
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    a
}

fn usage(why: &str) -> ! {
    if !why.is_empty() {
        eprintln!("error: {why}");
    }
    eprintln!("usage: kubeboot-load [--kubeboot PATH] [--nodes N] [--events N] [--concurrency N] [--json]");
    std::process::exit(2)
}

use kubeboot_core::status::Phase;

fn event(node: &str, seq: u64) -> Vec<u8> {
    let phase = Phase::ALL[((seq - 1) / 2) as usize % Phase::ALL.len()].as_str();
    let state = if seq % 2 == 1 { "started" } else { "succeeded" };
    serde_json::to_vec(&serde_json::json!({
        "node": node, "machine_id": format!("m-{node}"), "boot_id": "b-1", "seq": seq,
        "role": "worker", "phase": phase, "state": state, "attempt": 1,
        "at": "2026-11-21T10:00:00Z", "agent_version": "load",
        "facts": {"cpus": 2, "memory_bytes": 2147483648u64, "disk_free_bytes": 1u64 << 34,
                  "swap_bytes": 0, "kernel": "6.1.0", "addresses": ["10.0.0.7"]}
    }))
    .unwrap()
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = std::process::Command::new(&args.kubeboot)
        .args([
            "serve",
            "--output",
            "json",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data",
        ])
        .arg(data.path())
        .env("KUBEBOOT_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| usage(&format!("--kubeboot {}: {e}", args.kubeboot)));
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let listening: serde_json::Value = serde_json::from_str(&line).expect("serve start-up line");
    let pin = listening["ca_cert_hash"].as_str().unwrap().to_string();
    let token = kubeboot_serve::tokens::TokenFile::new(data.path().join("tokens"))
        .add(kubeboot_serve::tokens::Scope::Report, false, "load test")
        .expect("a report token")
        .0;
    let url = format!("https://127.0.0.1:{port}/v1");

    let limit = Arc::new(Semaphore::new(args.concurrency));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(args.nodes);
    for n in 0..args.nodes {
        let (limit, pin, token, url) = (limit.clone(), pin.clone(), token.clone(), url.clone());
        let events = args.events;
        tasks.push(tokio::spawn(async move {
            let _slot = limit.acquire_owned().await.unwrap();
            let config = kubeboot_core::tls::client_config(Some(&pin)).unwrap();
            let client = reqwest::Client::builder()
                .use_preconfigured_tls(config)
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap();
            let node = format!("node-{n:05}");
            let mut latencies = Vec::with_capacity(events as usize);
            let mut errors = 0u64;
            for seq in 1..=events {
                let t = Instant::now();
                let ok = client
                    .post(format!("{url}/nodes/{node}/events"))
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(event(&node, seq))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                latencies.push(t.elapsed());
                errors += u64::from(!ok);
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    let rss = peak_rss_kib(server.id());
    let _ = server.kill();
    let _ = server.wait();
    let db = std::fs::metadata(data.path().join("events.redb"))
        .map(|m| m.len())
        .unwrap_or(0);
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let total = latencies.len();
    let figures = serde_json::json!({
        "nodes": args.nodes, "events_per_node": args.events, "concurrency": args.concurrency,
        "events": total, "errors": errors,
        "seconds": elapsed.as_secs_f64(),
        "events_per_second": total as f64 / elapsed.as_secs_f64(),
        "p50_ms": pct(0.50).as_secs_f64() * 1e3, "p99_ms": pct(0.99).as_secs_f64() * 1e3,
        "max_ms": latencies.last().unwrap().as_secs_f64() * 1e3,
        "server_peak_rss_mib": rss as f64 / 1024.0, "store_mib": db as f64 / 1048576.0,
    });
    if args.json {
        println!("{figures}");
    } else {
        println!(
            "{} nodes x {} events ({} in flight): {} events in {:.2} s = {:.0} events/s; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; errors {}; server peak RSS {:.1} MiB; store {:.1} MiB",
            args.nodes, args.events, args.concurrency, total, elapsed.as_secs_f64(),
            figures["events_per_second"].as_f64().unwrap(), figures["p50_ms"].as_f64().unwrap(),
            figures["p99_ms"].as_f64().unwrap(), figures["max_ms"].as_f64().unwrap(), errors,
            figures["server_peak_rss_mib"].as_f64().unwrap(), figures["store_mib"].as_f64().unwrap(),
        );
    }
    if errors > 0 {
        std::process::exit(1);
    }
}
