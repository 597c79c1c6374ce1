use std::os::unix::process::ExitStatusExt;

use crate::harness::*;

/// Kill the agent (SIGKILL) at every recorded point of every phase, start it
/// again, and check it finishes with kubeadm having succeeded exactly once.
#[test]
fn a_crash_anywhere_resumes_and_never_runs_kubeadm_twice() {
    let mut points = vec!["validate:after-record".to_string()];
    // Every phase after the document is saved (validate:after-record is its only point).
    for phase in &kubeboot_core::status::Phase::ALL[2..] {
        for point in ["after-start", "after-effect", "after-record"] {
            points.push(format!("{phase}:{point}"));
        }
    }
    for point in &points {
        for doc in [WORKER.to_string(), init_doc()] {
            let node = TestNode::new(&doc);
            let crashed = node.agent_env(&[("KUBEBOOT_TEST_CRASH", point)]);
            assert_eq!(
                crashed.status.signal(),
                Some(9),
                "{point}: the agent should have been killed:\n{}",
                text(&crashed)
            );

            let resumed = node.agent(&[]);
            assert_exit(&resumed, 0);
            let subcommands = node.kubeadm_subcommands();
            let runs = subcommands
                .iter()
                .filter(|s| *s == "init" || *s == "join")
                .count();
            assert_eq!(runs, 1, "{point}: kubeadm calls {subcommands:?}");
            let state = node.state_json();
            assert_eq!(state["outcome"], "done", "{point}");
            assert!(
                !node.path("/var/lib/kubeboot/kubeadm.yaml").exists(),
                "{point}"
            );
            assert!(
                !node.path("/var/lib/kubeboot/node.toml").exists(),
                "{point}"
            );
            assert_eq!(node.status_json()["phase"], "done");
        }
    }
}

/// A crash while kubeadm is running (before it finished) resets the node and runs it again.
#[test]
fn an_interrupted_kubeadm_run_is_reset_and_retried() {
    let node = TestNode::new(WORKER);
    // Simulate: the agent recorded the kubeadm start, kubeadm wrote part of its files, then power was lost.
    let crashed = node.agent_env(&[("KUBEBOOT_TEST_CRASH", "kubeadm:after-start")]);
    assert_eq!(crashed.status.signal(), Some(9));
    write(
        &node.path("/etc/kubernetes/manifests/etcd.yaml"),
        "partial\n",
    );
    assert_exit(&node.agent(&[]), 0);
    assert_eq!(node.kubeadm_subcommands(), ["reset", "join"]);
    let state = node.state_json();
    assert_eq!(state["phases"]["kubeadm"]["attempt"], 2);
}

/// Resumed runs keep the document the node started with, even if the source changed.
#[test]
fn resume_uses_the_saved_document() {
    let node = TestNode::new(WORKER);
    let crashed = node.agent_env(&[("KUBEBOOT_TEST_CRASH", "prepare:after-record")]);
    assert_eq!(crashed.status.signal(), Some(9));
    node.set_doc("this is not toml");
    assert_exit(&node.agent(&[]), 0);
    assert_eq!(node.status_json()["node"], "worker-7");
}
