use super::*;

fn candidate(i: usize) -> Candidate {
    Candidate {
        node: format!("cp-{i}"),
        machine_id: format!("{i:032x}"),
    }
}

fn claim(i: usize) -> String {
    format!("claim-of-machine-{i}")
}

fn open(dir: &std::path::Path, lease: Duration) -> Election {
    let (store, _) = Store::open(dir).unwrap();
    Election::load(Arc::new(store), lease).unwrap()
}

/// A status event from machine `i`, with an `at` far in the future: serve's
/// own receive time decides, never the node's clock.
fn event(i: usize, phase: &str, state: &str) -> StatusEvent {
    let mut v = serde_json::json!({
        "node": format!("cp-{i}"), "machine_id": format!("{i:032x}"),
        "boot_id": "b", "seq": 1, "role": "init", "phase": phase, "state": state,
        "attempt": 1, "at": "2099-01-01T00:00:00Z", "agent_version": "0.1.0"
    });
    if state == "failed" {
        v["error"] = serde_json::json!({"kind": "kubeadm_failed", "message": "x"});
    }
    serde_json::from_value(v).unwrap()
}

async fn ask(e: &Election, i: usize) -> Verdict {
    e.ask(&candidate(i), Some(&claim(i))).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_askers_elect_exactly_one_and_a_restart_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let election = Arc::new(open(dir.path(), DEFAULT_LEASE));
    let mut tasks = Vec::new();
    for i in 0..20 {
        let e = election.clone();
        tasks.push(tokio::spawn(async move { ask(&e, i).await }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        if let Verdict::Init(e) = t.await.unwrap() {
            winners.push(e);
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let winner = winners.remove(0);
    assert_eq!(winner.term, 1);
    drop(election);

    // A new serve on the same store: the same winner, nobody else.
    let election = open(dir.path(), DEFAULT_LEASE);
    for i in 0..20 {
        let me = candidate(i).machine_id == winner.machine_id;
        match ask(&election, i).await {
            Verdict::Again(e) => assert!(me && e == winner, "{e:?}"),
            Verdict::Init(e) => panic!("elected twice: {e:?}"),
            Verdict::Wait { why, .. } => {
                assert!(!me);
                assert!(why.contains(&winner.node), "{why}");
            }
        }
    }
}

/// The winner's machine id is public (`/v1/nodes`): replayed without the
/// claim, or with another claim, it gets no init document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_machine_id_without_the_claim_is_not_the_winner() {
    let dir = tempfile::tempdir().unwrap();
    let election = open(dir.path(), DEFAULT_LEASE);
    assert!(matches!(ask(&election, 1).await, Verdict::Init(_)));
    for wrong in [None, Some("guessed"), Some("")] {
        let v = election.ask(&candidate(1), wrong).await.unwrap();
        let Verdict::Wait { why, .. } = v else {
            panic!("claim {wrong:?}: {v:?}");
        };
        assert!(why.contains("Kubeboot-Claim"), "{why}");
    }
    assert!(matches!(ask(&election, 1).await, Verdict::Again(_)));
    // A winner elected without a claim cannot retry at all.
    let dir = tempfile::tempdir().unwrap();
    let election = open(dir.path(), DEFAULT_LEASE);
    let v = election.ask(&candidate(7), None).await.unwrap();
    assert!(matches!(v, Verdict::Init(_)), "{v:?}");
    let v = election.ask(&candidate(7), None).await.unwrap();
    assert!(matches!(v, Verdict::Wait { .. }), "{v:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_or_failed_winner_is_replaced_once() {
    let dir = tempfile::tempdir().unwrap();
    let election = open(dir.path(), Duration::from_millis(300));
    assert!(matches!(ask(&election, 1).await, Verdict::Init(_)));
    assert!(matches!(ask(&election, 2).await, Verdict::Wait { .. }));
    tokio::time::sleep(Duration::from_millis(600)).await;
    // Silent past the lease: the next asker takes over, the one after waits.
    let Verdict::Init(second) = ask(&election, 2).await else {
        panic!("candidate 2 should take over");
    };
    assert_eq!(second.term, 2);
    assert!(second.why.contains("past the"), "{}", second.why);
    assert!(matches!(ask(&election, 2).await, Verdict::Again(_)));
    assert!(matches!(ask(&election, 3).await, Verdict::Wait { .. }));

    // A winner that reports failure loses at once, lease or not.
    let dir = tempfile::tempdir().unwrap();
    let election = open(dir.path(), DEFAULT_LEASE);
    assert!(matches!(ask(&election, 1).await, Verdict::Init(_)));
    // Another machine's failure changes nothing.
    election
        .observe(&event(4, "kubeadm", "failed"))
        .await
        .unwrap();
    assert!(matches!(ask(&election, 5).await, Verdict::Wait { .. }));
    election
        .observe(&event(1, "kubeadm", "failed"))
        .await
        .unwrap();
    let Verdict::Init(next) = ask(&election, 5).await else {
        panic!("a failed winner must be replaced");
    };
    assert_eq!((next.node.as_str(), next.term), ("cp-5", 2));
}

/// Heartbeats keep the lease: a winner whose kubeadm runs for three leases,
/// reporting within each, keeps it; its `at` (2099) plays no part, so once
/// it stops, the lease ends on serve's clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_the_lease_and_serve_s_clock_ends_it() {
    let dir = tempfile::tempdir().unwrap();
    let lease = Duration::from_millis(400);
    let election = open(dir.path(), lease);
    assert!(matches!(ask(&election, 1).await, Verdict::Init(_)));
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        election
            .observe(&event(1, "kubeadm", "running"))
            .await
            .unwrap();
        let v = ask(&election, 2).await;
        assert!(matches!(v, Verdict::Wait { .. }), "{v:?}");
    }
    // Another machine's heartbeats do not keep the winner's lease.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        election
            .observe(&event(3, "kubeadm", "running"))
            .await
            .unwrap();
    }
    let v = ask(&election, 2).await;
    assert!(matches!(v, Verdict::Init(_)), "{v:?}");
}

/// Once the winner's kubeadm init succeeded, neither its later failure, nor
/// its silence past the lease, nor a serve restart elects anyone again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_init_succeeded_nobody_is_ever_elected_again() {
    let dir = tempfile::tempdir().unwrap();
    let lease = Duration::from_millis(200);
    let election = open(dir.path(), lease);
    assert!(matches!(ask(&election, 1).await, Verdict::Init(_)));
    election
        .observe(&event(1, "kubeadm", "succeeded"))
        .await
        .unwrap();
    let Verdict::Wait { why, .. } = ask(&election, 2).await else {
        panic!("a second election after init succeeded");
    };
    assert!(why.contains("initialised (by cp-1"), "{why}");
    // The winner fails later (ready) and then goes silent past the lease.
    election
        .observe(&event(1, "ready", "failed"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    for i in [1, 2, 3] {
        let v = ask(&election, i).await;
        assert!(matches!(v, Verdict::Wait { .. }), "cp-{i}: {v:?}");
    }
    drop(election);
    // A restarted serve: still no election.
    let election = open(dir.path(), lease);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let v = ask(&election, 4).await;
    assert!(matches!(v, Verdict::Wait { .. }), "{v:?}");
    // Only the operator's reset opens it again.
    drop(election);
    let (store, _) = Store::open(dir.path()).unwrap();
    let was = reset(&store).unwrap().unwrap();
    assert!(was.initialised_at.is_some());
    assert_eq!(recorded(&store).unwrap(), None);
    let election = Election::load(Arc::new(store), lease).unwrap();
    assert!(matches!(ask(&election, 4).await, Verdict::Init(_)));
}

/// serve minted in the cluster (it answers): no election, now or after a restart,
/// though no election was ever held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_serve_minted_in_is_never_initialised_again() {
    let dir = tempfile::tempdir().unwrap();
    let lease = Duration::from_millis(100);
    let election = open(dir.path(), lease);
    election.latch("minted a join token").await.unwrap();
    let v = ask(&election, 1).await;
    assert!(matches!(v, Verdict::Wait { .. }), "{v:?}");
    drop(election);
    let election = open(dir.path(), lease);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let Verdict::Wait { why, .. } = ask(&election, 2).await else {
        panic!("elected after a mint");
    };
    assert!(why.contains("minted a join token"), "{why}");
}

#[test]
fn the_default_lease_outlasts_the_slowest_init_the_bundle_renders() {
    use crate::bundle::{slow_host_tuning, SLOW_HOST_CONTROL_PLANE_TIMEOUT};
    use kubeboot_core::document::{writer::Writer, Role};
    let mut w = Writer::new(Role::Init, "");
    slow_host_tuning(&mut w, Role::Init, false).unwrap();
    let timeout = w.get(&["kubeadm", "control_plane_timeout_seconds"]);
    assert_eq!(
        timeout.and_then(|t| t.as_integer()),
        Some(SLOW_HOST_CONTROL_PLANE_TIMEOUT as i64)
    );
    assert!(DEFAULT_LEASE.as_secs() > SLOW_HOST_CONTROL_PLANE_TIMEOUT + 120);
}
