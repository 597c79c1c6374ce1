//! The discover phase against real TLS "API servers" on 127.0.0.1: each way
//! the cluster can fail to be the one the document trusts has its own error
//! kind, and kubeadm never runs.

use crate::harness::*;
use crate::tls_server::make_pki;

fn assert_discover_fails(node: &TestNode, kind: &str, mentions: &str) {
    let out = node.agent(&[]);
    assert_exit(&out, 1);
    let st = node.status_json();
    assert_eq!(st["phase"], "discover", "{st}");
    assert_eq!(st["error"]["kind"], kind, "{st}");
    let msg = st["error"]["message"].as_str().unwrap();
    assert!(msg.contains(mentions), "{msg}");
    assert!(!msg.contains(TOKEN_SECRET));
    assert!(
        node.kubeadm_calls().is_empty(),
        "kubeadm must not run after a failed discovery"
    );
}

#[test]
fn wrong_ca_hash_is_a_ca_mismatch() {
    let node = TestNode::new(WORKER);
    let wrong = format!("sha256:{}", "ab".repeat(32));
    node.set_doc(&WORKER.replace(CA_HASH, &wrong));
    assert_discover_fails(&node, "discovery_ca_mismatch", &node.ca_hash);
}

#[test]
fn unknown_token_id_is_reported_as_unknown_or_expired() {
    let node = TestNode::new(
        &WORKER
            .replace(TOKEN, "zzzzzz.0123456789abcdef")
            .replace("timeout_seconds = 5", "timeout_seconds = 1"),
    );
    assert_discover_fails(
        &node,
        "discovery_token_unknown",
        "unknown to this cluster or has expired",
    );
}

#[test]
fn wrong_token_secret_is_a_signature_mismatch() {
    let node = TestNode::new(&WORKER.replace(TOKEN, "abcdef.ffffffffffffffff"));
    assert_discover_fails(&node, "discovery_signature_mismatch", "does not match");
}

#[test]
fn a_server_whose_chain_leads_elsewhere_is_refused() {
    // The server's certificate comes from CA A; the cluster-info it serves names CA B (pinned).
    let node = TestNode::new(WORKER);
    let (a, b) = (make_pki(), make_pki());
    let impostor = api_server(&a, &b.ca_pem, Some(TOKEN));
    let pin_b = kubeboot_core::tls::ca_hash_of_der(&b.ca_der).unwrap();
    node.set_doc(
        &WORKER
            .replace("ENDPOINT", &impostor.to_string())
            .replace(CA_HASH, &pin_b),
    );
    assert_discover_fails(
        &node,
        "discovery_tls_mismatch",
        "does not chain to the cluster CA",
    );
}

#[test]
fn discover_command_verifies_from_the_operators_machine() {
    let node = TestNode::new(WORKER);
    let doc = node.doc.to_str().unwrap();
    let out = node
        .kubeboot(&["discover", "--document", doc, "--output", "json"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verified"], true);
    assert_eq!(v["ca_hash"], node.ca_hash.as_str());
    assert_eq!(v["ca_subject"], "CN=kubeboot-test-ca");

    node.set_doc(&WORKER.replace(CA_HASH, &format!("sha256:{}", "cd".repeat(32))));
    let out = node
        .kubeboot(&["discover", "--document", doc])
        .output()
        .unwrap();
    assert_exit(&out, 1);
    assert!(
        text(&out).contains("discovery_ca_mismatch"),
        "{}",
        text(&out)
    );
}

/// kubeadm's file discovery: a kubeconfig on the node naming the server and its CA.
#[test]
fn discovery_file_is_checked_against_its_server() {
    let node = TestNode::new(WORKER);
    let ca_pem = node.ca_pem.clone();
    let kubeconfig = |ca: &str| {
        use base64::Engine;
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: k\n  cluster:\n    server: https://{}\n    certificate-authority-data: {}\n",
            node.endpoint,
            base64::engine::general_purpose::STANDARD.encode(ca)
        )
    };
    let doc = WORKER.replace("ca_cert_hashes = [\"sha256:7d4b6c7a2e3f0c1b9a8d5e6f4c3b2a1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b\"]", "file = \"/etc/kubeboot/discovery.yaml\"");
    write(
        &node.path("/etc/kubeboot/discovery.yaml"),
        &kubeconfig(&ca_pem),
    );
    node.set_doc(&doc);
    assert_exit(&node.agent(&[]), 0);
    let config = node.kubeadm_config(0);
    assert!(
        config.contains("file:\n    kubeConfigPath: /etc/kubeboot/discovery.yaml"),
        "{config}"
    );
    assert!(
        config.contains(&format!("tlsBootstrapToken: {TOKEN}")),
        "{config}"
    );

    // The same file naming another CA: the served chain does not lead to it.
    let other = TestNode::new(WORKER);
    write(
        &other.path("/etc/kubeboot/discovery.yaml"),
        &kubeconfig(&make_pki().ca_pem),
    );
    let doc = doc.replace(&node.endpoint.to_string(), &other.endpoint.to_string());
    other.set_doc(&doc);
    let out = other.agent(&[]);
    assert_exit(&out, 1);
    assert_eq!(
        other.status_json()["error"]["kind"],
        "discovery_tls_mismatch"
    );
}

/// The node fences itself: told to init while the endpoint already serves TLS
/// under the document's CA (a running cluster, here one that does not publish
/// cluster-info anonymously), it refuses before kubeadm runs.
#[test]
fn init_is_refused_while_a_cluster_under_its_ca_answers_at_the_endpoint() {
    let node = TestNode::new(&init_doc());
    let doc: toml::Table = std::fs::read_to_string(&node.doc).unwrap().parse().unwrap();
    let pki = &doc["pki"];
    let ours = crate::tls_server::pki_from_ca(
        pki["ca_cert"].as_str().unwrap(),
        pki["ca_key"].as_str().unwrap(),
    );
    let cluster = crate::tls_server::serve(&ours, "/healthz", "ok", None, 10);
    node.set_doc(&init_doc().replace("ENDPOINT", &cluster.to_string()));
    assert_discover_fails(
        &node,
        "cluster_exists",
        "serves TLS with a certificate under this cluster's CA",
    );
    let msg = node.status_json()["error"]["message"].to_string();
    assert!(msg.contains("refusing kubeadm init"), "{msg}");
}

/// A cluster under another CA that publishes cluster-info is a cluster too.
#[test]
fn init_is_refused_where_cluster_info_is_published() {
    let node = TestNode::new(&init_doc());
    let other = make_pki();
    let elsewhere = api_server(&other, &other.ca_pem, Some(TOKEN));
    node.set_doc(&init_doc().replace("ENDPOINT", &elsewhere.to_string()));
    assert_discover_fails(
        &node,
        "cluster_exists",
        "publishes kube-public/cluster-info",
    );
}

/// Where nothing answers, init goes on and says what it found.
#[test]
fn init_goes_on_where_nothing_answers_and_says_so() {
    let node = TestNode::new(&init_doc());
    let out = node.agent(&[]);
    assert_exit(&out, 0);
    let log = text(&out);
    assert!(
        log.contains("before kubeadm init: nothing answers at"),
        "{log}"
    );
    assert_eq!(node.kubeadm_calls().len(), 1);
}
