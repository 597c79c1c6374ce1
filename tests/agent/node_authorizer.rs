//! Kubernetes ≥ 1.32 (the Node authorizer with `AuthorizeNodeWithSelectors`):
//! a node's own credentials, the kubelet's `system:node:NAME` in
//! /etc/kubernetes/kubelet.conf, may read only its own Node. The test API server
//! (tls_server.rs) scopes them that way; what the agent does with them must fit.

use crate::harness::*;
use crate::receiver::Receiver;
use crate::tls_server;

use kubeboot_kube::node::{self, NodeState};
use kubeboot_kube::{client, pod_routes};

/// The drop notes of the in-cluster report, from the receiver's history.
fn report_drop_notes(r: &Receiver, name: &str) -> Vec<String> {
    let v = r.get_json(&format!("/v1/nodes/{name}"));
    assert_eq!(
        (v["phase"].as_str(), v["state"].as_str()),
        (Some("done"), Some("succeeded")),
        "{v}"
    );
    v["history"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["log_tail"].as_array().cloned().unwrap_or_default())
        .filter_map(|l| l.as_str().map(str::to_string))
        .filter(|l| l.contains("report into the cluster"))
        .collect()
}

/// Each role boots to done with node-scoped credentials: the ready phase reads
/// its Node, the in-cluster report reads and annotates it and creates Events, and
/// nothing asks the API server for another Node (the boot-story report would be
/// dropped, or the ready phase fail, and the refusal is recorded either way).
#[test]
fn every_role_boots_and_reports_with_credentials_scoped_to_its_own_node() {
    for (name, doc) in [
        ("cp-1", init_doc()),
        ("cp-2", CONTROL_PLANE.to_string()),
        ("worker-7", WORKER.to_string()),
    ] {
        let r = Receiver::start();
        let node = TestNode::new(&format!("{doc}{}", r.report_toml(30)));
        let out = node.agent(&[]);
        assert_exit(&out, 0);
        // The credentials really are the node's own (else this proves nothing).
        let kubelet_conf =
            std::fs::read_to_string(node.path("/etc/kubernetes/kubelet.conf")).unwrap();
        assert!(
            kubelet_conf.contains(&format!("user: system:node:{name}"))
                && kubelet_conf.contains(&format!("{}{name}", tls_server::NODE_TOKEN_PREFIX)),
            "{kubelet_conf}"
        );
        let refused = tls_server::node_scope_refusals(node.endpoint);
        assert!(refused.is_empty(), "{name} needed other Nodes: {refused:?}");
        let notes = report_drop_notes(&r, name);
        assert!(notes.is_empty(), "{name}: {notes:?}");
    }
}

/// The scoping bites: the same credentials read their own Node, and are refused
/// another one and the list of all Nodes — what `kubeboot pod-routes` asks for
/// with kubelet.conf, so on Kubernetes ≥ 1.32 it needs other credentials.
#[test]
fn node_credentials_read_their_own_node_only() {
    let node = TestNode::new(WORKER);
    assert_exit(&node.agent(&[]), 0);
    let kubeconfig = node.path("/etc/kubernetes/kubelet.conf");
    let (own, other, all) = client::block_on(async {
        let client = client::client(&kubeconfig).await.unwrap();
        (
            node::state(&client, "worker-7").await,
            node::state(&client, "cp-1").await,
            pod_routes::list_routes(&client).await,
        )
    });
    assert!(
        matches!(own, Ok(NodeState::Registered { ready: true, .. })),
        "{own:?}"
    );
    let forbidden = |r: &str| r.contains("403") && r.contains("system:node:worker-7");
    let other = other.expect_err("another Node must be refused");
    assert!(forbidden(&client::describe(&other)), "{other}");
    let all = all.expect_err("the list of all Nodes must be refused");
    assert!(forbidden(&all), "{all}");
    assert_eq!(tls_server::node_scope_refusals(node.endpoint).len(), 2);
    // pod-routes says why, and what to give it instead.
    let out = node
        .kubeboot(&["pod-routes", "--once", "--node-name", "worker-7"])
        .output()
        .unwrap();
    assert_exit(&out, 1);
    assert!(
        text(&out).contains("own Node") && text(&out).contains("--kubeconfig"),
        "{}",
        text(&out)
    );
}
