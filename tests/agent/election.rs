//! "One cluster, one init" through a real `kubeboot serve`, the real agent and
//! the kubeadm test double: who may get the init document, what keeps and what
//! ends the elected node's lease, and that nothing elects once the cluster was
//! initialised or while anything answers at its endpoint.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;
use crate::receiver::{bundle_for, claim_of, nothing_listens, Receiver};

const CP: &str = "/v1/documents/control-plane";

fn kb(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kubeboot-under-test"))
        .args(args)
        .output()
        .unwrap()
}

fn machine(i: usize) -> String {
    format!("{i:032x}")
}

/// serve with fresh credentials for a bundle whose endpoint nothing answers at.
fn serve(lease: u64, extra: &[&str]) -> (tempfile::TempDir, Receiver) {
    let bundle = bundle_for(&nothing_listens());
    let dir = bundle.path().join("b");
    let lease = lease.to_string();
    let mut args = vec![
        "--bundle",
        dir.to_str().unwrap(),
        "--fresh-credentials",
        "--init-lease",
        &lease,
    ];
    args.extend_from_slice(extra);
    let r = Receiver::start_with(&args);
    (bundle, r)
}

/// Give the bundle's init document a `[report]` table to this serve (with its
/// shared report token, which serve replaces by the elected node's own).
fn init_reports_to(bundle: &tempfile::TempDir, r: &Receiver, extra: &str) {
    let path = bundle.path().join("b/nodes/init.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{text}{}{extra}", r.report_toml(2))).unwrap();
}

/// `kubeboot serve election show --output json` on this serve's data.
fn election_show(r: &Receiver) -> std::process::Output {
    let data = r.data.path().to_str().unwrap();
    kb(&[
        "serve", "election", "show", "--data", data, "--output", "json",
    ])
}

fn is_init(body: &str) -> bool {
    body.contains("role = \"init\"")
}

fn elections(r: &Receiver) -> Vec<String> {
    let journal = r.get_json("/v1/serve/events");
    journal["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "init_elected")
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect()
}

fn report_token(doc: &str) -> String {
    let t: toml::Table = doc.parse().unwrap();
    t["report"]["token"].as_str().unwrap().to_string()
}

fn event(node: &str, machine_id: &str, seq: u64, state: &str) -> Vec<u8> {
    let mut v = serde_json::json!({
        "node": node, "machine_id": machine_id, "boot_id": "b-1", "seq": seq,
        "role": "control-plane", "phase": "kubeadm", "state": state, "attempt": 1,
        "at": "2099-01-01T00:00:00Z", "agent_version": "0.1.0"
    });
    if state == "failed" {
        v["error"] = serde_json::json!({"kind": "kubeadm_failed", "message": "forged"});
    }
    serde_json::to_vec(&v).unwrap()
}

/// The CA keys go to one machine: admin tokens never take part; a control-plane
/// token, a group credential or an init token replaying the winner's machine id
/// (public at /v1/nodes) without its claim get no init document; the winner
/// retrying with its claim does.
#[test]
fn only_the_elected_requester_gets_the_init_document() {
    let (_bundle, r) = serve(600, &[]);
    let admin = r.mint(&["--scope", "admin"]);
    let cp = r.mint(&["--scope", "documents:control-plane"]);
    let init = r.mint(&["--scope", "documents:init"]);
    let data = r.data.path().to_str().unwrap().to_string();
    let url = r.url();
    let out = kb(&[
        "serve",
        "group",
        "add",
        "cps",
        "--data",
        &data,
        "--role",
        "control-plane",
        "--url",
        &url,
        "--format",
        "toml",
    ]);
    assert_exit(&out, 0);
    let pointer: toml::Table = String::from_utf8_lossy(&out.stdout).parse().unwrap();
    let group = pointer["source"]["token"].as_str().unwrap().to_string();
    let group_path = "/v1/groups/cps/document";

    // Admin: never elected, nothing recorded.
    let (status, body) = r.get_as_node(CP, &admin, "cp-9", &machine(9));
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("admin token never takes part"), "{body}");
    assert!(elections(&r).is_empty());

    let (status, body) = r.get_as_node(CP, &cp, "cp-1", &machine(1));
    assert_eq!(status, 200, "{body}");
    assert!(is_init(&body));

    let winner = machine(1);
    let replays: [(&str, &str, Option<String>); 6] = [
        (CP, cp.as_str(), None),
        (CP, cp.as_str(), Some("a-guessed-claim-000".into())),
        (CP, admin.as_str(), Some(claim_of(&winner))),
        (group_path, group.as_str(), None),
        ("/v1/documents/init", init.as_str(), None),
        (
            "/v1/documents/init",
            init.as_str(),
            Some("another-claim-0000".into()),
        ),
    ];
    for (path, token, claim) in &replays {
        let (status, body) = r.get_claiming(path, token, "cp-1", &winner, claim.as_deref());
        assert_ne!(status, 200, "{path} {claim:?}: {body}");
        assert!(!is_init(&body), "{path} {claim:?}: {body}");
        assert!(!body.contains("ca_key"), "{body}");
    }
    // Other machines, whatever their credential, wait for the winner.
    for (path, token) in [
        (CP, &cp),
        (group_path, &group),
        ("/v1/documents/init", &init),
    ] {
        let (status, body) = r.get_as_node(path, token, "cp-5", &machine(5));
        assert_eq!(status, 503, "{path}: {body}");
        assert!(body.contains("cp-1 was chosen"), "{path}: {body}");
    }
    // The init token was not spent by its refusals: it still gets 503, not 410.
    let (status, body) = r.get_as_node("/v1/documents/init", &init, "cp-6", &machine(6));
    assert_eq!(status, 503, "{body}");
    // The winner itself, retrying with its claim (a crash before it saved its
    // state): the init document again, and still one election.
    let (status, body) = r.get_as_node(CP, &cp, "cp-1", &winner);
    assert_eq!(status, 200, "{body}");
    assert!(is_init(&body));
    assert_eq!(elections(&r).len(), 1, "{:?}", elections(&r));
}

/// A once token survives 503 (waiting for the election) and 429 (over the
/// minting budget), and is spent only by the 200 that carries a document.
#[test]
fn a_once_token_survives_503_and_429_and_is_spent_by_the_200() {
    // 429: a worker once token over a budget of 1 per minute (the first request
    // is 503: the cluster cannot mint), never spent.
    let (_bundle, limited) = serve(600, &["--mint-per-minute", "1"]);
    let worker = limited.mint(&["--scope", "documents:worker", "--once"]);
    let ask = || {
        limited
            .get_as_node("/v1/documents/worker", &worker, "w-1", &machine(11))
            .0
    };
    let got_429 = (0..3).any(|_| {
        let (first, second) = (ask(), ask());
        assert!(first != 410 && second != 410, "{first} {second}");
        first == 503 && second == 429
    });
    assert!(got_429, "the budget of 1 per minute answers 429");
    let status = ask();
    assert!(status == 503 || status == 429, "{status}");

    // 503 while another machine holds the election, then the 200 spends it.
    let (_bundle, r) = serve(3, &[]);
    let cp = r.mint(&["--scope", "documents:control-plane"]);
    let pxe = r.mint(&["--scope", "documents:control-plane", "--once"]);
    assert_eq!(r.get_as_node(CP, &cp, "cp-1", &machine(1)).0, 200);
    for _ in 0..2 {
        let (status, body) = r.get_as_node(CP, &pxe, "cp-2", &machine(2));
        assert_eq!(status, 503, "{body}");
    }
    // cp-1 goes silent past the 3 s lease: the once token's holder is elected,
    // which spends it; asking again with it is 410.
    std::thread::sleep(Duration::from_secs(4));
    let (status, body) = r.get_as_node(CP, &pxe, "cp-2", &machine(2));
    assert_eq!(status, 200, "{body}");
    assert!(is_init(&body));
    let (status, body) = r.get_as_node(CP, &pxe, "cp-2", &machine(2));
    assert_eq!(status, 410, "{body}");
}

/// A report credential posts events for its own node only: a forged `failed`
/// event for the winner is 403 with another node's credential, and stored but
/// ignored by the election with a shared report token; the winner's own
/// `failed` hands the election on.
#[test]
fn a_forged_failed_event_is_refused_and_elects_nobody() {
    let (bundle, r) = serve(3, &[]);
    init_reports_to(&bundle, &r, "");
    let cp = r.mint(&["--scope", "documents:control-plane"]);
    let (status, first) = r.get_as_node(CP, &cp, "cp-1", &machine(1));
    assert_eq!(status, 200, "{first}");
    let t1 = report_token(&first);
    assert!(t1.starts_with("kbn1."), "the winner's own credential: {t1}");
    assert_ne!(t1, r.token);
    std::thread::sleep(Duration::from_secs(4));
    let (status, second) = r.get_as_node(CP, &cp, "cp-2", &machine(2));
    assert_eq!(status, 200, "{second}");
    let t2 = report_token(&second);
    assert_ne!(t1, t2);

    // cp-1's credential, an event naming cp-2: 403.
    let forged = event("cp-2", &machine(2), 1, "failed");
    let (status, body) = r.post("/v1/nodes/cp-2/events", Some(&t1), forged.clone());
    assert_eq!(status, 403, "{body}");
    // Its own name with cp-2's machine id: 403 as well.
    let (status, body) = r.post(
        "/v1/nodes/cp-1/events",
        Some(&t1),
        event("cp-1", &machine(2), 1, "failed"),
    );
    assert_eq!(status, 403, "{body}");
    // The shared report token: stored (the dashboard shows it), no effect.
    let (status, body) = r.post("/v1/nodes/cp-2/events", Some(&r.token), forged);
    assert_eq!(status, 201, "{body}");
    let (status, body) = r.get_as_node(CP, &cp, "cp-3", &machine(3));
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("cp-2 was chosen"), "{body}");
    // cp-2's own credential reports running (a heartbeat), then failed: the
    // election moves on, once.
    let (status, body) = r.post(
        "/v1/nodes/cp-2/events",
        Some(&t2),
        event("cp-2", &machine(2), 2, "running"),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = r.post(
        "/v1/nodes/cp-2/events",
        Some(&t2),
        event("cp-2", &machine(2), 3, "failed"),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = r.get_as_node(CP, &cp, "cp-3", &machine(3));
    assert_eq!(status, 200, "{body}");
    let all = elections(&r);
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(all[2].contains("cp-2 failed in kubeadm"), "{all:?}");
}

/// The winner's kubeadm takes more than twice the lease; its agent heartbeats
/// and serve restarts meanwhile: nobody else is elected. Its init succeeded:
/// long past the lease, after another restart, with nothing answering, still
/// nobody.
/// The document an identical control plane gets when elected: the test node's
/// init document (kubeadm test double), reporting to serve, its ready phase
/// giving up after 1 s (nothing answers at the endpoint).
fn elected_node_runs_the_double(bundle: &tempfile::TempDir, r: &Receiver) {
    let path = bundle.path().join("b/nodes/init.toml");
    let endpoint = {
        let t: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
        t["cluster"]["endpoint"].as_str().unwrap().to_string()
    };
    let doc = init_doc()
        .replace("ENDPOINT", &endpoint)
        .replace("[node]\nname = \"cp-1\"\n", "")
        + &r.report_toml(5)
        + "\n[ready]\ntimeout_seconds = 1\n";
    std::fs::write(path, doc).unwrap();
}

/// A test node (machine `i`, named test-node) whose kernel command line points
/// at serve's control-plane document with token `cp`.
fn agent_node(r: &Receiver, cp: &str, i: usize, env: &[(&str, &str)]) -> TestNode {
    let mut node = TestNode::new(WORKER);
    for (k, v) in env {
        node = node.with_env(k, v);
    }
    write(&node.path("/etc/machine-id"), &format!("{}\n", machine(i)));
    write(
        &node.path("/proc/cmdline"),
        &format!(
            "console=ttyS0 kubeboot.url={}{CP} kubeboot.ca_hash={} kubeboot.token={cp}\n",
            r.url(),
            r.ca_hash
        ),
    );
    node
}

/// A control plane told to wait is told when the winner's lease would end (not
/// a fixed 30 s), and its wait is the source phase's time (in its state and its
/// events), not zero.
#[test]
fn a_waiting_control_plane_asks_again_when_the_lease_ends_and_the_wait_is_timed() {
    let lease = 3;
    let (bundle, r) = serve(lease, &[]);
    elected_node_runs_the_double(&bundle, &r);
    let cp = r.mint(&["--scope", "documents:control-plane"]);
    assert_eq!(r.get_as_node(CP, &cp, "cp-9", &machine(9)).0, 200);
    let headers = [
        ("Kubeboot-Node", "cp-8".to_string()),
        ("Kubeboot-Machine-Id", machine(8)),
    ];
    let resp = r.request(CP, Some(&cp), &headers);
    assert_eq!(resp.status().as_u16(), 503);
    let wait: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=lease + 1).contains(&wait),
        "Retry-After {wait} for a {lease} s lease"
    );

    let node = agent_node(&r, &cp, 1, &[]);
    let started = Instant::now();
    let out = node
        .kubeboot(&["agent", "--source-wait", "60"])
        .output()
        .unwrap();
    let took = started.elapsed();
    let log = text(&out);
    assert!(log.contains("the server says to wait"), "{log}");
    assert_eq!(
        node.kubeadm_subcommands(),
        ["init"],
        "elected after cp-9's lease: {log}"
    );
    assert!(
        took < Duration::from_secs(30),
        "asked again at the lease's end, not after 30 s: {took:?}"
    );
    let state = node.state_json();
    let source_ms = state["phases"]["source"]["duration_ms"].as_u64().unwrap();
    assert!(source_ms >= 1000, "the source phase waited: {state}");
    let history = r.history("test-node");
    assert!(
        history
            .iter()
            .any(|h| h.2 == "source" && h.3 == "succeeded"),
        "{history:?}"
    );
    let detail = r.get_json("/v1/nodes/test-node");
    let event_ms = detail["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["phase"] == "source" && e["state"] == "succeeded")
        .and_then(|e| e["duration_ms"].as_u64())
        .unwrap();
    assert!(event_ms >= 1000, "{detail}");
}

#[test]
fn a_heartbeating_winner_keeps_the_lease_and_its_init_is_forever() {
    let lease = 5;
    let (bundle, mut r) = serve(lease, &[]);
    elected_node_runs_the_double(&bundle, &r);
    let cp = r.mint(&["--scope", "documents:control-plane"]);
    let node = agent_node(
        &r,
        &cp,
        1,
        &[("KUBEADM_TEST_DOUBLE_SECONDS", &(3 * lease).to_string())],
    );
    let mut agent = node
        .kubeboot(&["agent", "--heartbeat", "1", "--source-attempts", "2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(node.path("/agent.log")).unwrap())
        .spawn()
        .unwrap();
    // The agent asks first and is elected.
    let deadline = Instant::now() + Duration::from_secs(20 * lease);
    while elections(&r).is_empty() {
        assert!(Instant::now() < deadline, "the agent was not elected");
        assert!(
            agent.try_wait().unwrap().is_none(),
            "the agent stopped early"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        elections(&r)[0].starts_with("elected test-node"),
        "{:?}",
        elections(&r)
    );
    // Until the agent's kubeadm ends: others always wait; serve restarts once.
    let mut restarted = false;
    let mut asked = 0;
    let outcome = loop {
        assert!(Instant::now() < deadline, "the agent did not finish");
        if let Some(status) = agent.try_wait().unwrap() {
            break status;
        }
        let (status, body) = r.get_as_node(CP, &cp, "cp-2", &machine(2));
        assert!(
            !is_init(&body) && elections(&r).len() == 1,
            "while the winner runs kubeadm: {status} {body}"
        );
        asked += 1;
        if asked == 3 && !restarted {
            r.restart();
            restarted = true;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let log = std::fs::read_to_string(node.path("/agent.log")).unwrap();
    assert!(
        !outcome.success(),
        "ready cannot succeed: nothing answers; {log}"
    );
    assert!(
        restarted && asked >= 2 * lease as usize,
        "asked {asked} times; {log}"
    );
    assert_eq!(node.kubeadm_subcommands(), ["init"], "{log}");
    let history = r.history("test-node");
    let running = history.iter().filter(|h| h.3 == "running").count();
    assert!(running >= lease as usize, "{history:?}");
    assert!(
        history
            .iter()
            .any(|h| h.2 == "kubeadm" && h.3 == "succeeded"),
        "{history:?}"
    );
    assert_eq!(elections(&r).len(), 1);

    // Silent past the lease, its ready failed, serve restarted: nobody.
    std::thread::sleep(Duration::from_secs(lease + 1));
    r.restart();
    std::thread::sleep(Duration::from_secs(lease + 1));
    for i in 2..5 {
        let (status, body) = r.get_as_node(CP, &cp, &format!("cp-{i}"), &machine(i));
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("the cluster was initialised"), "{body}");
    }
    assert_eq!(elections(&r).len(), 1);
    let show = election_show(&r);
    // serve holds the store while it runs: show says to stop it.
    assert_exit(&show, 1);
    assert!(text(&show).contains("stop it first"), "{}", text(&show));
    r.stop();
    let show = election_show(&r);
    assert_exit(&show, 0);
    let v: Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(v["election"]["node"], "test-node", "{v}");
    assert!(v["election"]["initialised_at"].is_string(), "{v}");
    assert!(
        !String::from_utf8_lossy(&show.stdout).contains("claim-of"),
        "no secret shown"
    );
}

/// Elect only when nothing answers: an endpoint serving TLS under the bundle's
/// CA (while serve cannot mint there) closes the election for good; one serving
/// another CA is a 503 and no election, not recorded.
#[test]
fn nothing_is_elected_while_anything_answers_at_the_endpoint() {
    let endpoint = nothing_listens();
    let bundle = bundle_for(&endpoint);
    let pki = bundle.path().join("b/pki");
    let ca = std::fs::read_to_string(pki.join("ca.crt")).unwrap();
    let key = std::fs::read_to_string(pki.join("ca.key")).unwrap();
    // Under the bundle's CA, but no API server: serve's mint fails (404).
    let ours = crate::tls_server::pki_from_ca_for(&ca, &key, &["127.0.0.1"]);
    crate::tls_server::serve_at(&ours, &endpoint, "/nothing-here", "{}", None, 1000);
    let dir = bundle.path().join("b");
    let mut r = Receiver::start_with(&["--bundle", dir.to_str().unwrap(), "--fresh-credentials"]);
    let cp = r.mint(&["--scope", "documents:control-plane"]);
    let (status, body) = r.get_as_node(CP, &cp, "cp-1", &machine(1));
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("no init election"), "{body}");
    assert!(body.contains("under this cluster's CA"), "{body}");
    assert!(elections(&r).is_empty());
    r.stop();
    let show = election_show(&r);
    let v: Value = serde_json::from_slice(&show.stdout).unwrap();
    assert!(v["election"]["initialised_at"].is_string(), "{v}");
    // reset without --yes changes nothing (exit 2); with it, the record is gone.
    let data = r.data.path().to_str().unwrap().to_string();
    assert_exit(&kb(&["serve", "election", "reset", "--data", &data]), 2);
    let v: Value = serde_json::from_slice(&election_show(&r).stdout).unwrap();
    assert!(v["election"]["initialised_at"].is_string(), "{v}");
    let reset = kb(&["serve", "election", "reset", "--data", &data, "--yes"]);
    assert_exit(&reset, 0);
    assert!(
        text(&reset).contains("reset; the record was:"),
        "{}",
        text(&reset)
    );
    let v: Value = serde_json::from_slice(&election_show(&r).stdout).unwrap();
    assert!(v["election"].is_null(), "{v}");

    // Another CA answers: 503, no election, nothing latched.
    let bundle = bundle_for(&{
        let foreign = crate::tls_server::make_pki();
        crate::tls_server::serve(&foreign, "/nothing-here", "{}", None, 1000).to_string()
    });
    let dir = bundle.path().join("b");
    let mut r = Receiver::start_with(&["--bundle", dir.to_str().unwrap(), "--fresh-credentials"]);
    let cp = r.mint(&["--scope", "documents:control-plane"]);
    for i in 0..3 {
        let (status, body) = r.get_as_node(CP, &cp, &format!("cp-{i}"), &machine(i));
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("something answers"), "{body}");
    }
    assert!(elections(&r).is_empty());
    r.stop();
    let show = election_show(&r);
    let v: Value = serde_json::from_slice(&show.stdout).unwrap();
    assert!(v["election"].is_null(), "{v}");
}
