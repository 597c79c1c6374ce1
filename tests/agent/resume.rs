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

/// Power lost right after kubeadm wrote kubelet.conf (init writes it, and
/// admin.conf, minutes before its control plane is up): the resumed agent finds
/// what kubeadm's last phases leave missing, resets the node and runs kubeadm
/// again, in each role; it says so in the kubeadm phase's event.
#[test]
fn a_kubeadm_that_lost_power_after_kubelet_conf_is_reset_and_run_again() {
    for (doc, run) in [
        (init_doc(), "init"),
        (CONTROL_PLANE.to_string(), "join"),
        (WORKER.to_string(), "join"),
    ] {
        let node = TestNode::new(&doc);
        let crashed = node.agent_env(&[("KUBEADM_TEST_DOUBLE_CRASH", "after-kubelet-conf")]);
        assert_eq!(
            crashed.status.signal(),
            Some(9),
            "{run}: the agent should have lost power:\n{}",
            text(&crashed)
        );
        assert!(node.path("/etc/kubernetes/kubelet.conf").exists(), "{run}");

        let resumed = node.agent(&[]);
        assert_exit(&resumed, 0);
        assert_eq!(node.kubeadm_subcommands(), [run, "reset", run], "{doc}");
        let state = node.state_json();
        assert_eq!(state["outcome"], "done", "{run}");
        assert_eq!(state["phases"]["kubeadm"]["attempt"], 2, "{run}");
        assert!(
            text(&resumed).contains("an interrupted kubeadm run had not finished"),
            "{run}: {}",
            text(&resumed)
        );
    }
}

/// A control plane whose interrupted kubeadm cannot be judged (its cluster does
/// not answer) is not reset: it may hold the cluster's only etcd data.
#[test]
fn an_unanswering_cluster_never_gets_a_control_plane_reset() {
    let node = TestNode::new(&format!("{}[ready]\ntimeout_seconds = 3\n", init_doc()));
    let crashed = node.agent_env(&[("KUBEBOOT_TEST_CRASH", "kubeadm:after-effect")]);
    assert_eq!(crashed.status.signal(), Some(9), "{}", text(&crashed));
    // kubeadm init finished, then power was lost and the API server is not back:
    // nothing answers where admin.conf and super-admin.conf point.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let server = format!("server: https://{}", node.endpoint);
    for file in [INIT_GATE, "/etc/kubernetes/super-admin.conf"] {
        let conf = std::fs::read_to_string(node.path(file)).unwrap();
        assert!(conf.contains(&server), "{file}: {conf}");
        let dead_conf = conf.replace(&server, &format!("server: https://{dead_addr}"));
        write(&node.path(file), &dead_conf);
    }
    let resumed = node.agent(&[]);
    assert_ne!(resumed.status.code(), Some(0), "{}", text(&resumed));
    assert_eq!(node.kubeadm_subcommands(), ["init"], "{}", text(&resumed));
    assert!(
        text(&resumed).contains("Not resetting a control plane"),
        "{}",
        text(&resumed)
    );
}
