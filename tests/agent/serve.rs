//! `kubeboot serve` on its own: bad input, idempotency, crash safety, a full
//! disk, metrics, documents, and `kubeboot watch`.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::harness::{assert_exit, text, TestNode};
use crate::receiver::{event, full_sequence, Receiver};

fn body(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

fn events_path(node: &str) -> String {
    format!("/v1/nodes/{node}/events")
}

#[test]
fn bad_requests_are_refused_with_a_reason_and_store_nothing() {
    let r = Receiver::start();
    let ok = event("w1", "b1", 1, "source", "started");
    let tok = Some(r.token.as_str());

    let (s, b) = r.post(&events_path("w1"), None, body(&ok));
    assert_eq!(s, 401, "{b}");
    assert!(b.contains("Authorization"), "{b}");
    let (s, _) = r.post(
        &events_path("w1"),
        Some("wrong-token-wrong-token"),
        body(&ok),
    );
    assert_eq!(s, 401);

    let (s, b) = r.post(&events_path("w1"), tok, b"{\"node\": \"w1\", ".to_vec());
    assert_eq!(s, 400, "{b}");
    assert!(b.contains("malformed status event"), "{b}");
    let mut bad = ok.clone();
    bad["state"] = json!("exploded");
    let (s, b) = r.post(&events_path("w1"), tok, body(&bad));
    assert_eq!((s, b.contains("field `state`")), (400, true), "{b}");
    let (s, b) = r.post(&events_path("w2"), tok, body(&ok));
    assert_eq!((s, b.contains("field `node`")), (400, true), "{b}");

    for name in ["..%2F..%2Fetc%2Fpasswd", "a%2F..%2F..", "W1", "a_b", "-x"] {
        let (s, b) = r.post(&events_path(name), tok, body(&ok));
        assert_eq!(s, 400, "{name}: {b}");
        assert!(b.contains("not a DNS subdomain"), "{name}: {b}");
    }
    let mut huge = ok.clone();
    huge["log_tail"] = json!(vec!["x".repeat(1000); 80]);
    let (s, _) = r.post(&events_path("w1"), tok, body(&huge));
    assert_eq!(s, 413);

    let (s, b) = r.get("/v1/nodes");
    assert_eq!(
        (s, b.as_str()),
        (200, "{\"nodes\":[],\"next\":null}"),
        "nothing was stored"
    );
    assert_eq!(r.get("/v1/nodes/w1").0, 404);
    assert_eq!(r.get("/v1/nodes/..%2Fx").0, 400);
}

#[test]
fn duplicates_are_acknowledged_once_and_out_of_order_events_are_ordered() {
    let r = Receiver::start();
    let tok = Some(r.token.as_str());
    let seq = full_sequence("w1", "b1");
    // Deliver 5..16 first, then 1..4, then everything again.
    for ev in seq[4..].iter().chain(&seq[..4]) {
        assert_eq!(r.post(&events_path("w1"), tok, body(ev)).0, 201);
    }
    for ev in &seq {
        let (s, b) = r.post(&events_path("w1"), tok, body(ev));
        assert_eq!(s, 200, "{b}");
        assert!(b.contains("\"duplicate\":true"));
    }
    let h = r.history("w1");
    assert_eq!(
        h.iter().map(|e| e.1).collect::<Vec<_>>(),
        (1..=16).collect::<Vec<_>>()
    );
    let detail = r.get_json("/v1/nodes/w1");
    assert_eq!(detail["phase"], "done");
    assert_eq!(detail["state"], "succeeded");
    assert_eq!(detail["bootstrap_ms"], 15_000);
    // A second boot of the same machine comes after the first.
    assert_eq!(
        r.post(
            &events_path("w1"),
            tok,
            body(&event("w1", "b2", 1, "source", "started"))
        )
        .0,
        201
    );
    let h = r.history("w1");
    assert_eq!(h.last().unwrap().0, "b2");
    assert_eq!(r.get_json("/v1/nodes/w1")["boots"], 2);
}

#[test]
fn killed_mid_write_loses_nothing_it_acknowledged() {
    let mut r = Receiver::start();
    let acked: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let config = kubeboot_core::tls::client_config(Some(&r.ca_hash)).unwrap();
    let client =
        kubeboot_core::tls::https_client(config, std::time::Duration::from_secs(5)).unwrap();
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let (acked, stop, client) = (acked.clone(), stop.clone(), client.clone());
            let (url, token) = (r.url(), r.token.clone());
            std::thread::spawn(move || {
                'nodes: for i in 0..200 {
                    let node = format!("n-{t}-{i}");
                    for ev in full_sequence(&node, "b1") {
                        if stop.load(Ordering::Relaxed) {
                            break 'nodes;
                        }
                        let resp = client
                            .post(format!("{url}/v1/nodes/{node}/events"))
                            .bearer_auth(&token)
                            .body(serde_json::to_vec(&ev).unwrap())
                            .send();
                        match resp {
                            Ok(r) if r.status().is_success() => acked
                                .lock()
                                .unwrap()
                                .push((node.clone(), ev["seq"].as_u64().unwrap())),
                            _ => break 'nodes,
                        }
                    }
                }
            })
        })
        .collect();
    for _ in 0..600 {
        if acked.lock().unwrap().len() >= 400 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    r.kill();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 400,
        "only {} acknowledged before the kill",
        acked.len()
    );
    r.restart();
    let nodes = r.get_json("/v1/nodes");
    let stored: std::collections::HashMap<String, u64> = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap().to_string(),
                n["events"].as_u64().unwrap(),
            )
        })
        .collect();
    for (node, seq) in &acked {
        let have = stored.get(node).copied().unwrap_or(0);
        assert!(
            have >= *seq,
            "{node} seq {seq} was acknowledged but the store has {have} events"
        );
    }
}

#[test]
fn a_full_disk_is_a_clear_507_and_what_was_stored_stays_readable() {
    // Never a silent pass: without root this test fails and says why.
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "needs root to mount a small tmpfs in a private mount namespace: run the tests as root, as .ci/run does"
    );
    // kubeboot serve inside its own mount namespace, on a 1 MiB tmpfs.
    let r = Receiver::start();
    let port = crate::receiver::free_port();
    let data = tempfile::tempdir().unwrap();
    let d = data.path().display().to_string();
    let script = format!(
        "mount -t tmpfs -o size=1m kubeboot-test {d} && cp -a {src}/. {d}/ && exec {bin} serve --output json --listen 127.0.0.1:{port} --data {d}",
        src = r.data.path().display(),
        bin = env!("CARGO_BIN_EXE_kubeboot-under-test"),
    );
    let mut child = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.contains("listening") || line.contains("url"), "{line}");
    let mut full = Receiver::adopt(&r);
    full.port = port;
    let tok = Some(r.token.as_str());
    let mut stored = 0;
    let mut refusal = None;
    for i in 0..2000 {
        let mut ev = event("big", "b1", i + 1, "kubeadm", "retrying");
        ev["error"] =
            json!({"kind": "kubeadm_failed", "message": format!("{i}{}", "x".repeat(4000))});
        ev["log_tail"] = json!(vec!["y".repeat(1000); 40]);
        let (s, b) = full.post(&events_path("big"), tok, body(&ev));
        match s {
            201 => stored += 1,
            _ => {
                refusal = Some((s, b));
                break;
            }
        }
    }
    let (status, why) = refusal.expect("1 MiB filled up");
    assert_eq!(status, 507, "{why}");
    assert!(why.contains("disk is full"), "{why}");
    assert!(stored > 0);
    // Still serving what it acknowledged.
    let d = full.get_json("/v1/nodes/big");
    assert_eq!(d["events"].as_u64().unwrap(), stored);
    let _ = child.kill();
    let _ = child.wait();
}

/// A done node and a failed one, as the dashboard and `watch` tests see them.
pub fn seed_two_nodes(r: &Receiver) {
    let tok = Some(r.token.as_str());
    for ev in full_sequence("worker-ok", "b1") {
        assert_eq!(r.post(&events_path("worker-ok"), tok, body(&ev)).0, 201);
    }
    let mut evs: Vec<Value> = full_sequence("worker-bad", "b2")
        .into_iter()
        .take(9)
        .collect();
    let mut failed = event("worker-bad", "b2", 10, "discover", "failed");
    failed["error"] = json!({"kind": "discovery_ca_mismatch", "message": "the cluster's CA does not match any ca_cert_hashes"});
    failed["log_tail"] = json!([
        "fetching cluster-info from https://10.0.0.1:6443",
        "CA pin mismatch: sha256:aa…"
    ]);
    evs.push(failed);
    for ev in evs {
        assert_eq!(r.post(&events_path("worker-bad"), tok, body(&ev)).0, 201);
    }
}

/// `GET /v1/nodes` comes in pages, and without an admin token machine ids
/// appear only as stable fingerprints (they count a group's machines and name
/// the init election's winner); `watch` follows the pages.
#[test]
fn node_listings_are_paged_and_show_machine_ids_to_admins_only() {
    let r = Receiver::start();
    let tok = Some(r.token.as_str());
    for name in ["a1", "b2", "c3"] {
        let ev = event(name, "b1", 1, "source", "started");
        assert_eq!(r.post(&events_path(name), tok, body(&ev)).0, 201);
    }
    let page = r.get_json("/v1/nodes?limit=2");
    let names: Vec<&str> = page["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a1", "b2"], "{page}");
    assert_eq!(page["next"], "b2", "{page}");
    let rest = r.get_json("/v1/nodes?limit=2&after=b2");
    assert_eq!(rest["nodes"].as_array().unwrap().len(), 1, "{rest}");
    assert!(rest["next"].is_null(), "{rest}");
    let shown = page["nodes"][0]["machine_id"].as_str().unwrap().to_string();
    assert_ne!(shown, "m-a1", "the id itself is not shown");
    assert!(shown.starts_with("m-") && shown.len() == 18, "{shown}");
    assert_eq!(
        r.get_json("/v1/nodes")["nodes"][0]["machine_id"],
        shown.as_str(),
        "stable"
    );
    let detail = r.get_json("/v1/nodes/a1");
    assert_eq!(
        detail["history"][0]["machine_id"],
        shown.as_str(),
        "{detail}"
    );
    let (status, body) = r.get_as("/v1/nodes", Some(&r.token));
    assert_eq!(status, 200);
    assert!(
        !body.contains("\"m-a1\""),
        "a report token is no admin: {body}"
    );
    let admin = r.mint(&["--scope", "admin"]);
    let (_, body) = r.get_as("/v1/nodes", Some(&admin));
    assert!(body.contains("\"machine_id\":\"m-a1\""), "{body}");
    let (_, metrics) = r.get("/metrics");
    assert!(
        metrics.contains("kubeboot_events_dropped_total 0"),
        "{metrics}"
    );
    // serve's own events name machines the same way.
    let (bundle, _) = bundle_for_a_cluster_that_does_not_answer();
    let dir = bundle.path().join("b");
    let r = Receiver::start_with(&["--bundle", dir.to_str().unwrap(), "--fresh-credentials"]);
    let cp = r.mint(&["--scope", "documents:control-plane"]);
    let id = "ab".repeat(16);
    assert_eq!(
        r.get_as_node("/v1/documents/control-plane", &cp, "cp-1", &id)
            .0,
        200
    );
    let (_, body) = r.get("/v1/serve/events");
    assert!(
        body.contains("init_elected") && !body.contains(&id),
        "{body}"
    );
    let admin = r.mint(&["--scope", "admin"]);
    let (_, body) = r.get_as("/v1/serve/events", Some(&admin));
    assert!(body.contains(&id), "{body}");
}

#[test]
fn metrics_count_nodes_by_phase_and_bootstrap_time() {
    let r = Receiver::start();
    seed_two_nodes(&r);
    let (s, m) = r.get("/metrics");
    assert_eq!(s, 200);
    for line in [
        "kubeboot_nodes{phase=\"done\",state=\"succeeded\"} 1",
        "kubeboot_nodes{phase=\"discover\",state=\"failed\"} 1",
        "kubeboot_nodes{phase=\"kubeadm\",state=\"started\"} 0",
        "kubeboot_events_received_total 26",
        "kubeboot_bootstrap_duration_seconds_count 1",
        "kubeboot_bootstrap_duration_seconds_sum 15.0",
        "kubeboot_bootstrap_duration_seconds_bucket{le=\"30.0\"} 1",
        "kubeboot_bootstrap_duration_seconds_bucket{le=\"10.0\"} 0",
    ] {
        assert!(m.lines().any(|l| l == line), "missing {line:?} in\n{m}");
    }
}

#[test]
fn watch_shows_the_table_and_json_and_exits_by_outcome() {
    let r = Receiver::start();
    seed_two_nodes(&r);
    let watch = |extra: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kubeboot-under-test"));
        c.args(["watch", "--server", &r.url(), "--ca-cert-hash", &r.ca_hash])
            .args(extra);
        c.output().unwrap()
    };
    let out = watch(&["--once"]);
    assert_exit(&out, 1);
    let t = text(&out);
    assert!(t.contains("2 nodes: 1 done, 1 failed"), "{t}");
    assert!(
        t.lines().any(|l| l.starts_with("worker-bad")
            && l.contains("####X...")
            && l.contains("discovery_ca_mismatch")),
        "{t}"
    );
    assert!(
        t.lines()
            .any(|l| l.starts_with("worker-ok") && l.contains("########")),
        "{t}"
    );
    let out = watch(&["--once", "--output", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["nodes"][0]["name"], "worker-bad");
    assert_eq!(v["nodes"][0]["last_error"]["kind"], "discovery_ca_mismatch");
    // Settled already: returns at once with the failure; --expect 3 waits for a third node, up to --timeout.
    assert_exit(&watch(&["--until-settled", "--interval", "0.2"]), 1);
    assert_exit(
        &watch(&[
            "--until-settled",
            "--expect",
            "3",
            "--interval",
            "0.2",
            "--timeout",
            "1",
        ]),
        3,
    );
    // --node: only the named nodes count. worker-ok alone is done; worker-bad alone failed.
    let out = watch(&["--until-settled", "--node", "worker-ok", "--output", "json"]);
    assert_exit(&out, 0);
    // One document, the last, with the named node only; its progress on stderr.
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["nodes"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["nodes"][0]["name"], "worker-ok");
    assert!(v["nodes"][0].get("history").is_none(), "{v}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("worker-ok: done succeeded"),
        "{}",
        text(&out)
    );
    let out = watch(&[
        "--until-settled",
        "--node",
        "worker-bad",
        "--output",
        "json",
        "--history",
    ]);
    assert_exit(&out, 1);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["nodes"][0]["name"], "worker-bad");
    assert_eq!(
        v["nodes"][0]["history"].as_array().unwrap().len(),
        10,
        "{v}"
    );
    // A named node that has not reported is not settled: --timeout 0 looks once, exit 3.
    let out = watch(&[
        "--until-settled",
        "--node",
        "worker-ok",
        "--node",
        "worker-new",
        "--timeout",
        "0",
        "--output",
        "json",
    ]);
    assert_exit(&out, 3);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["nodes"][0]["name"], "worker-ok");
    assert_eq!(v["not_reported"], json!(["worker-new"]), "{v}");
    let out = watch(&["--once", "--node", "worker-new"]);
    assert_exit(&out, 0);
    assert!(
        text(&out).contains("not reported yet: worker-new"),
        "{}",
        text(&out)
    );
    assert_exit(&watch(&["--once", "--history"]), 2);
    // A wrong pin is refused.
    let out = Command::new(env!("CARGO_BIN_EXE_kubeboot-under-test"))
        .args(["watch", "--once", "--server", &r.url(), "--ca-cert-hash"])
        .arg(format!("sha256:{}", "0".repeat(64)))
        .output()
        .unwrap();
    assert_exit(&out, 1);
    assert!(text(&out).contains("pinned hash"), "{}", text(&out));
    // The server given with its /v1 suffix reaches the same routes.
    let with_v1 = format!("{}/v1/", r.url());
    let out = Command::new(env!("CARGO_BIN_EXE_kubeboot-under-test"))
        .args([
            "watch",
            "--once",
            "--server",
            &with_v1,
            "--ca-cert-hash",
            &r.ca_hash,
        ])
        .output()
        .unwrap();
    assert!(
        text(&out).contains("2 nodes: 1 done, 1 failed"),
        "{}",
        text(&out)
    );
    // No pin, self-signed receiver: the error says how to trust it.
    let out = Command::new(env!("CARGO_BIN_EXE_kubeboot-under-test"))
        .args([
            "watch",
            "--once",
            "--server",
            &r.url(),
            "--ca-file",
            "/etc/ssl/certs/ca-certificates.crt",
        ])
        .env_remove("KUBEBOOT_SERVER_CA_HASH")
        .output()
        .unwrap();
    assert_exit(&out, 1);
    assert!(
        text(&out).contains("hint: the receiver's certificate is not trusted"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("--ca-cert-hash"), "{}", text(&out));
}

#[test]
fn documents_are_served_by_scope_and_fetched_from_the_kernel_command_line() {
    let bundle = tempfile::tempdir().unwrap();
    let dir = bundle.path().join("b");
    let out = Command::new(env!("CARGO_BIN_EXE_kubeboot-under-test"))
        .args(["bundle", "new", "--endpoint", "lb.example:6443", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let mut r = Receiver::start_with(&["--bundle", dir.to_str().unwrap()]);
    let get = |r: &Receiver, path: &str, token: Option<&str>| r.get_as(path, token);
    let worker = r.mint(&["--scope", "documents:worker"]);
    let admin = r.mint(&["--scope", "admin"]);
    let init = r.mint(&["--scope", "documents:init", "--note", "first control plane"]);
    assert_eq!(get(&r, "/v1/documents/worker", None).0, 401);
    assert_eq!(
        get(&r, "/v1/documents/worker", Some("x".repeat(40).as_str())).0,
        401
    );
    assert_eq!(get(&r, "/v1/documents/boss", Some(&worker)).0, 404);
    // The report token every node carries reads no document.
    let (s, why) = get(&r, "/v1/documents/worker", Some(&r.token));
    assert_eq!(s, 403, "{why}");
    assert!(why.contains("documents:worker"), "{why}");
    assert_eq!(get(&r, "/v1/documents/control-plane", Some(&worker)).0, 403);
    let (s, doc) = get(&r, "/v1/documents/worker", Some(&worker));
    assert_eq!(s, 200);
    assert_eq!(
        doc,
        std::fs::read_to_string(dir.join("nodes/worker.toml")).unwrap()
    );
    assert_eq!(get(&r, "/v1/documents/control-plane", Some(&admin)).0, 200);
    // The init document (the cluster's CA keys): only to an init token, once,
    // and a restarted serve does not serve it again.
    assert_eq!(get(&r, "/v1/documents/init", Some(&admin)).0, 403);
    assert_eq!(get(&r, "/v1/documents/init", Some(&r.token)).0, 403);
    let (s, doc) = get(&r, "/v1/documents/init", Some(&init));
    assert_eq!(s, 200);
    assert!(doc.contains("role = \"init\""), "{doc}");
    assert_eq!(get(&r, "/v1/documents/init", Some(&init)).0, 410);
    r.kill();
    r.restart();
    let (s, why) = get(&r, "/v1/documents/init", Some(&init));
    assert_eq!(s, 410, "{why}");
    assert!(why.contains("once-only"), "{why}");
    // No token is stored in clear.
    let file = std::fs::read_to_string(r.data.path().join("tokens")).unwrap();
    for t in [&r.token, &worker, &admin, &init] {
        assert!(!file.contains(t.as_str()));
    }

    // The PXE path: kubeboot.url= + kubeboot.ca_hash= + a once-only kubeboot.token=
    // on the command line, which the node's own fetch spends.
    let pxe = r.mint(&["--scope", "documents:worker", "--once"]);
    let node = TestNode::new(crate::harness::WORKER);
    crate::harness::write(
        &node.path("/proc/cmdline"),
        &format!(
            "console=ttyS0 kubeboot.url={}/v1/documents/worker kubeboot.ca_hash={} kubeboot.token={pxe}\n",
            r.url(),
            r.ca_hash,
        ),
    );
    let out = node
        .kubeboot(&["agent", "--dry-run", "--kubeadm-version", "v1.34.2"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let t = text(&out);
    assert!(t.contains("lb.example:6443"), "{t}");
    assert!(!t.contains(&pxe), "the token stays out of the output");
    assert_eq!(
        get(&r, "/v1/documents/worker", Some(&pxe)).0,
        410,
        "spent by the node's fetch"
    );
}

/// The first line `serve --output json` prints, then the server is stopped.
fn listening_json(listen: &str, extra: &[&str]) -> Value {
    use std::io::BufRead;
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubeboot-under-test"))
        .args(["serve", "--output", "json", "--listen", listen, "--data"])
        .arg(data.path())
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

#[test]
fn serve_prints_the_report_url_nodes_can_use() {
    // A wildcard listen address becomes the first --san.
    let v = listening_json("0.0.0.0:0", &["--san", "192.0.2.10"]);
    let url = v["report_url"].as_str().unwrap();
    assert!(
        url.starts_with("https://192.0.2.10:") && url.ends_with("/v1"),
        "{v}"
    );
    assert!(v.get("report_url_note").is_none(), "{v}");
    // Loopback works only for this machine: said plainly.
    let v = listening_json("127.0.0.1:0", &[]);
    assert!(
        v["report_url"]
            .as_str()
            .unwrap()
            .starts_with("https://127.0.0.1:"),
        "{v}"
    );
    assert!(
        v["report_url_note"]
            .as_str()
            .unwrap()
            .contains("--san ADDRESS"),
        "{v}"
    );
}

/// A bundle (in `TEMP/b`) for an endpoint on loopback where nothing listens.
fn bundle_for_a_cluster_that_does_not_answer() -> (tempfile::TempDir, String) {
    let endpoint = crate::receiver::nothing_listens();
    (crate::receiver::bundle_for(&endpoint), endpoint)
}

/// `--fresh-credentials` before the cluster answers: join documents get 503 with
/// Retry-After and a reason (nodes retry), the init document is served as ever,
/// and the flag without --bundle is a usage error.
#[test]
fn fresh_credentials_wait_for_the_cluster_with_503() {
    let (bundle, endpoint) = bundle_for_a_cluster_that_does_not_answer();
    let dir = bundle.path().join("b");
    let r = Receiver::start_with(&["--bundle", dir.to_str().unwrap(), "--fresh-credentials"]);
    let worker = r.mint(&["--scope", "documents:worker"]);
    let init = r.mint(&["--scope", "documents:init"]);
    let resp = r.request("/v1/documents/worker", Some(&worker), &[]);
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(resp.headers()["retry-after"], "30");
    let body = resp.text().unwrap();
    assert!(body.contains("cannot mint join credentials"), "{body}");
    assert!(
        body.contains(&endpoint) && body.contains("retry later"),
        "{body}"
    );
    // Nothing minted without an authorised request.
    assert_eq!(r.get_as("/v1/documents/worker", None).0, 401);
    // The init document goes through the election, an init token included: a
    // request that does not name its node is refused (and the once token stays
    // usable), the named one is elected (nothing answers at the endpoint).
    let (status, body) = r.get_as("/v1/documents/init", Some(&init));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Kubeboot-Node"), "{body}");
    let (status, body) = r.get_as_node("/v1/documents/init", &init, "cp-0", &format!("{:032x}", 0));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("role = \"init\""), "{body}");

    // Over the minting budget: 429 with Retry-After, before any cluster call. (A
    // pair of requests may straddle a minute boundary: then try the pair again.)
    let limited = Receiver::start_with(&[
        "--bundle",
        dir.to_str().unwrap(),
        "--fresh-credentials",
        "--mint-per-minute",
        "1",
    ]);
    let worker = limited.mint(&["--scope", "documents:worker"]);
    let limited_answer = (0..3).find_map(|_| {
        let first = limited.get_as("/v1/documents/worker", Some(&worker)).0;
        let resp = limited.request("/v1/documents/worker", Some(&worker), &[]);
        (first == 503 && resp.status().as_u16() == 429).then(|| {
            let wait: u64 = resp.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            (wait, resp.text().unwrap())
        })
    });
    let (wait, body) = limited_answer.expect("the second request within a minute gets 429");
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(body.contains("more than 1 worker documents"), "{body}");

    let out = Command::new(env!("CARGO_BIN_EXE_kubeboot-under-test"))
        .args(["serve", "--fresh-credentials"])
        .output()
        .unwrap();
    assert_exit(&out, 2);
    assert!(text(&out).contains("--bundle"), "{}", text(&out));
}

/// The init election through a real serve: identical control planes ask at once
/// while the cluster does not answer; exactly one gets the init document, also
/// after a restart of serve; a silent winner loses its lease to the next asker.
#[test]
fn identical_control_planes_elect_exactly_one_init_across_a_restart() {
    let (bundle, _) = bundle_for_a_cluster_that_does_not_answer();
    let dir = bundle.path().join("b");
    let mut r = Receiver::start_with(&[
        "--bundle",
        dir.to_str().unwrap(),
        "--fresh-credentials",
        "--init-lease",
        "4",
    ]);
    let token = r.mint(&["--scope", "documents:control-plane"]);
    let ask = |r: &Receiver, i: usize| {
        r.get_as_node(
            "/v1/documents/control-plane",
            &token,
            &format!("cp-{i}"),
            &format!("{i:032x}"),
        )
    };
    let is_init = |body: &str| body.contains("role = \"init\"");

    let answers: Vec<(usize, (u16, String))> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let ask = &ask;
                let r = &r;
                s.spawn(move || (i, ask(r, i)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let winners: Vec<usize> = answers
        .iter()
        .filter(|(_, (status, body))| *status == 200 && is_init(body))
        .map(|(i, _)| *i)
        .collect();
    let statuses: Vec<(usize, u16)> = answers.iter().map(|(i, (s, _))| (*i, *s)).collect();
    assert_eq!(winners.len(), 1, "(asker, status): {statuses:?}");
    let winner = winners[0];
    for (i, (status, body)) in &answers {
        if *i != winner {
            assert_eq!(*status, 503, "{body}");
            assert!(
                body.contains("waiting for the first control plane"),
                "{body}"
            );
            assert!(body.contains(&format!("cp-{winner}")), "{body}");
        }
    }
    // Without the node's identity there is no election: a clear 400.
    let (status, body) = r.get_as("/v1/documents/control-plane", Some(&token));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Kubeboot-Node"), "{body}");

    // A restarted serve keeps the choice.
    r.restart();
    let other = (winner + 1) % 20;
    assert_eq!(ask(&r, other).0, 503);
    let (status, body) = ask(&r, winner);
    assert_eq!(status, 200);
    assert!(is_init(&body));

    // The winner stays silent past the 4 s lease: the next asker takes over, once.
    std::thread::sleep(std::time::Duration::from_secs(5));
    let (status, body) = ask(&r, other);
    assert_eq!(status, 200, "{body}");
    assert!(is_init(&body));
    assert_eq!(ask(&r, winner).0, 503);
    assert!(r.log().contains("takes over"), "{}", r.log());
    // serve's own events: one election per term, however often the winners asked
    // (20 concurrent, a restart, asks again), the second saying why.
    let (status, body) = r.get("/v1/serve/events");
    assert_eq!(status, 200, "{body}");
    let journal: serde_json::Value = serde_json::from_str(&body).unwrap();
    let elections: Vec<&str> = journal["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "init_elected")
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(elections.len(), 2, "{body}");
    assert!(
        elections[0].starts_with(&format!("elected cp-{winner} to run kubeadm init (term 1)")),
        "{body}"
    );
    assert!(
        elections[1].starts_with(&format!("elected cp-{other} to run kubeadm init (term 2)"))
            && elections[1].contains("past the 4 s lease"),
        "{body}"
    );

    // The agent names itself in its request: the elected machine gets the init
    // document; another one is told to wait, waits (not counted as an attempt),
    // and with --source-wait 2 gives up saying why.
    let node = |machine: usize| {
        let n = TestNode::new(crate::harness::WORKER);
        crate::harness::write(&n.path("/etc/machine-id"), &format!("{machine:032x}\n"));
        // The claim this machine's agent kept from its first request.
        crate::harness::write(
            &n.path("/var/lib/kubeboot/claim"),
            &crate::receiver::claim_of(&format!("{machine:032x}")),
        );
        crate::harness::write(
            &n.path("/proc/cmdline"),
            &format!(
                "console=ttyS0 kubeboot.url={}/v1/documents/control-plane kubeboot.ca_hash={} kubeboot.token={token}\n",
                r.url(),
                r.ca_hash,
            ),
        );
        n
    };
    let dry_run = |n: &TestNode| {
        n.kubeboot(&[
            "agent",
            "--dry-run",
            "--kubeadm-version",
            "v1.34.2",
            "--source-attempts",
            "1",
            "--source-wait",
            "2",
        ])
        .output()
        .unwrap()
    };
    let elected = dry_run(&node(other));
    assert_exit(&elected, 0);
    assert!(
        text(&elected).contains("kubeadm init"),
        "{}",
        text(&elected)
    );
    let waiting = dry_run(&node(99));
    assert!(!waiting.status.success());
    let t = text(&waiting);
    assert!(t.contains("still says to wait after 2 s"), "{t}");
    assert!(
        t.contains(&format!("cp-{other} was chosen to run kubeadm init")),
        "{t}"
    );
    assert!(!t.contains(&token), "the token stays out of the output");
}
