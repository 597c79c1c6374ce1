//! The node's HTTPS reporter against a real `kubeboot serve` on 127.0.0.1 with
//! real TLS (pinned CA): late receiver, receiver restarts, agent restarts.

use std::process::{Child, Output};
use std::time::{Duration, Instant};

use crate::harness::{assert_exit, TestNode, WORKER};
use crate::receiver::Receiver;

fn spawn_agent(node: &TestNode) -> Child {
    let doc = node.doc.to_string_lossy().to_string();
    node.kubeboot(&["agent", "--document", &doc])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait(child: Child) -> Output {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut child = child;
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "agent did not finish in 120 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// Poll (bounded) until `cond` holds.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..600 {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

/// Every event the node emitted (its console lines) arrived once, in seq
/// order without gaps, ending with done.
fn assert_complete(node: &TestNode, r: &Receiver, name: &str) {
    let history = r.history(name);
    let console = node.console();
    assert_eq!(
        history.len(),
        console.len(),
        "receiver has {history:?}\nconsole: {console:#?}"
    );
    let seqs: Vec<u64> = history.iter().map(|h| h.1).collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "in order, once, no gaps");
    let last = history.last().unwrap();
    assert_eq!((last.2.as_str(), last.3.as_str()), ("done", "succeeded"));
    for (h, line) in history.iter().zip(&console) {
        assert!(
            line.contains(&format!("{} {}", h.2, h.3)),
            "{line} vs {h:?}"
        );
    }
}

fn outbox_files(node: &TestNode) -> Vec<String> {
    std::fs::read_dir(node.path("/var/lib/kubeboot/outbox"))
        .map(|d| {
            let mut v: Vec<String> = d
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        })
        .unwrap_or_default()
}

#[test]
fn receiver_down_at_first_gets_every_event_in_order_once() {
    let mut r = Receiver::start();
    r.stop();
    let node = TestNode::new(&format!("{WORKER}{}", r.report_toml(60)));
    let agent = spawn_agent(&node);
    // The join goes on without the receiver; bring it up a little later.
    eventually("the agent to finish joining", || {
        node.console().iter().any(|l| l.contains("done succeeded"))
    });
    assert!(!outbox_files(&node).is_empty(), "events are queued on disk");
    r.restart();
    let out = wait(agent);
    assert_exit(&out, 0);
    assert_complete(&node, &r, "worker-7");
    assert!(
        outbox_files(&node).is_empty(),
        "queue and target removed once delivered: {:?}",
        outbox_files(&node)
    );
}

#[test]
fn receiver_restarted_mid_stream_loses_and_duplicates_nothing() {
    let mut r = Receiver::start();
    let node = TestNode::new(&format!(
        "{}{}",
        WORKER.replace("retry_backoff_seconds = 0.0", "retry_backoff_seconds = 1.0"),
        r.report_toml(60)
    ))
    .with_env("KUBEADM_TEST_DOUBLE_FAIL_TIMES", "2");
    let agent = spawn_agent(&node);
    eventually("the first events to arrive", || {
        r.history("worker-7").len() >= 3
    });
    r.kill();
    std::thread::sleep(Duration::from_millis(1500));
    r.restart();
    let out = wait(agent);
    assert_exit(&out, 0);
    assert_complete(&node, &r, "worker-7");
    let retries = r
        .history("worker-7")
        .iter()
        .filter(|h| h.3 == "retrying")
        .count();
    assert_eq!(retries, 2, "the kubeadm retries were reported");
}

#[test]
fn agent_restarted_mid_queue_sends_the_rest_on_its_next_run() {
    let mut r = Receiver::start();
    r.stop();
    let node = TestNode::new(&format!("{WORKER}{}", r.report_toml(0)));
    // Receiver down, no drain time: the node finishes and keeps its events.
    let out = node.agent(&[]);
    assert_exit(&out, 0);
    let queued = outbox_files(&node);
    assert!(queued.len() > 10, "{queued:?}");
    assert!(queued.contains(&"target.json".to_string()));
    assert_eq!(
        node.mode("/var/lib/kubeboot/outbox/target.json") & 0o777,
        0o600
    );
    for f in &queued {
        assert_eq!(
            node.mode(&format!("/var/lib/kubeboot/outbox/{f}")) & 0o077,
            0,
            "{f}"
        );
    }
    // Next run (a reboot, or the unit started again): already done, but the queue goes out.
    r.restart();
    let out = node.agent(&[]);
    assert_exit(&out, 0);
    assert_complete(&node, &r, "worker-7");
    assert!(outbox_files(&node).is_empty());
}

#[test]
fn agent_killed_mid_join_resumes_and_its_report_stays_in_order() {
    let r = Receiver::start();
    let node = TestNode::new(&format!("{WORKER}{}", r.report_toml(30)));
    let out = node.agent_env(&[("KUBEBOOT_TEST_CRASH", "kubeadm:after-start")]);
    assert_eq!(out.status.code(), None, "killed by the crash point");
    let out = node.agent(&[]);
    assert_exit(&out, 0);
    assert_complete(&node, &r, "worker-7");
}

#[test]
fn a_dead_receiver_delays_nothing_but_the_report() {
    // Nothing listens on this port: the node still joins, and exits once drain_seconds is up.
    let r = Receiver::start();
    let port = crate::receiver::free_port();
    let doc = format!("{WORKER}{}", r.report_toml(1))
        .replace(&format!(":{}/v1", r.port), &format!(":{port}/v1"));
    let node = TestNode::new(&doc);
    let out = node.agent(&[]);
    assert_exit(&out, 0);
    assert_eq!(node.status_json()["phase"], "done");
    assert_eq!(node.kubeadm_calls().len(), 1);
    assert!(outbox_files(&node).len() > 10);
}

#[test]
fn a_wrong_token_is_refused_and_the_events_stay_queued() {
    let r = Receiver::start();
    let doc =
        format!("{WORKER}{}", r.report_toml(1)).replace(&r.token, "not-the-receivers-token-at-all");
    let node = TestNode::new(&doc);
    let out = node.agent(&[]);
    assert_exit(&out, 0);
    assert!(r.history("worker-7").is_empty());
    assert!(
        outbox_files(&node).len() > 10,
        "401 is not a reason to drop events"
    );
    let metrics = r.get("/metrics").1;
    let refused: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("kubeboot_requests_unauthorized_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(refused >= 1, "{metrics}");
}

#[test]
fn an_invalid_document_with_a_report_section_leaves_nothing_on_disk() {
    let r = Receiver::start();
    let node = TestNode::new(
        &format!("{WORKER}{}", r.report_toml(1)).replace("role = \"worker\"", "role = \"boss\""),
    );
    let before = node.tree();
    let out = node.agent(&[]);
    assert_exit(&out, 2);
    assert_eq!(before, node.tree());
    assert!(outbox_files(&node).is_empty());
}

/// The cluster refuses the node's Events (a real 403 from the API server's
/// stand-in): the boot still reaches done, and the drop and its reason reach
/// the HTTPS receiver as a note on the status event.
#[test]
fn a_cluster_that_refuses_the_boot_story_does_not_fail_the_boot() {
    let r = Receiver::start();
    let node = TestNode::new(&format!(
        "{}{}",
        WORKER.replace("worker-7", "refuse-events-7"),
        r.report_toml(30)
    ));
    let out = node.agent(&[]);
    assert_exit(&out, 0);
    let v = r.get_json("/v1/nodes/refuse-events-7");
    assert_eq!(
        (v["phase"].as_str(), v["state"].as_str()),
        (Some("done"), Some("succeeded")),
        "{v}"
    );
    let notes: Vec<String> = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["state"] == "succeeded")
        .flat_map(|e| e["log_tail"].as_array().cloned().unwrap_or_default())
        .filter_map(|l| l.as_str().map(str::to_string))
        .filter(|l| l.contains("report into the cluster"))
        .collect();
    assert!(!notes.is_empty(), "no drop note in {v}");
    assert!(notes[0].contains("dropped after 3 tries"), "{notes:?}");
    assert!(notes[0].contains("403"), "{notes:?}");
}
