use crate::harness::*;

/// Each bad document: one clear error naming the field, exit 2, host untouched.
#[test]
fn invalid_documents_are_refused_before_touching_the_host() {
    let cases: Vec<(String, &str)> = vec![
        (
            "version = 1\nrole = \"worker\"\n[cluster\nendpoint = 1".into(),
            "line",
        ),
        (
            WORKER.replace("[node]", "[node]\nnmae = \"x\""),
            "unknown field `nmae`",
        ),
        (
            WORKER.replace("timeout_seconds = 5", "timeout_seconds = \"five\""),
            "discovery.timeout_seconds",
        ),
        (
            WORKER.replace(TOKEN, "abcdef.0123456789ABCDEF"),
            "discovery.token",
        ),
        (
            WORKER.replace(TOKEN, "abcdef0123456789abcdef"),
            "discovery.token",
        ),
        (
            WORKER.replace(CA_HASH, "sha256:1234"),
            "discovery.ca_cert_hashes[0]",
        ),
        (
            WORKER.replace(CA_HASH, &CA_HASH.replace("sha256:", "md5:")),
            "discovery.ca_cert_hashes[0]",
        ),
        (
            CONTROL_PLANE.replace(CERT_KEY, "not-hex"),
            "discovery.certificate_key",
        ),
        (
            CONTROL_PLANE.replace(&format!("certificate_key = \"{CERT_KEY}\"\n"), ""),
            "discovery.certificate_key",
        ),
        (
            WORKER.replace("endpoint = \"ENDPOINT\"", "endpoint = \"k8s-api.example\""),
            "cluster.endpoint",
        ),
        (
            init_doc().replace("endpoint = \"ENDPOINT\"\n", ""),
            "missing field `endpoint`",
        ),
        (
            WORKER.replace("role = \"worker\"", "role = \"master\""),
            "role: unknown value, expected one of `init`",
        ),
        (WORKER.replace("role = \"worker\"\n", ""), "role"),
        (WORKER.replace("version = 1", "version = 2"), "version"),
        (
            WORKER.replace("ca_cert_hashes = [\"", "ca_cert_hashes = [] #"),
            "discovery.ca_cert_hashes",
        ),
        (
            WORKER.replace(
                "\"node.kubernetes.io/pool\"",
                "\"node-role.kubernetes.io/worker\"",
            ),
            "node.labels",
        ),
        (
            WORKER.replace("v1.34.2", "1.34"),
            "cluster.kubernetes_version",
        ),
        (
            format!("{WORKER}\n[report]\nurl = \"http://plain\"\n"),
            "report.url",
        ),
        (
            init_doc().replace("ca_key = \"\"\"", "#ca_key = \"\"\""),
            "pki",
        ),
        (
            format!("{WORKER}\n[kubeadm.patch]\njoin_configuration = {{ kind = \"X\" }}\n"),
            "kubeadm.patch",
        ),
    ];
    let mut cases = cases;
    let (ca, key) = test_ca();
    // A key from another CA.
    let other = crate::tls_server::make_pki();
    cases.push((
        init_doc().replace(key.as_str(), &other.ca_key_pem),
        "pki.ca_key",
    ));
    // A certificate that is not a CA (a self-signed leaf) with its own key.
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["node".to_string()])
        .unwrap()
        .self_signed(&leaf_key)
        .unwrap();
    cases.push((
        init_doc()
            .replace(ca.as_str(), &leaf.pem())
            .replace(key.as_str(), &leaf_key.serialize_pem()),
        "not a CA",
    ));
    // A truncated certificate.
    let lines: Vec<&str> = ca.lines().collect();
    let truncated = format!("{}\n{}\n-----END CERTIFICATE-----\n", lines[0], lines[1]);
    cases.push((init_doc().replace(ca.as_str(), &truncated), "pki.ca_cert"));
    for (doc, field) in cases {
        // The broken init doc has a commented-out PEM: keep the TOML valid.
        let doc = if doc.contains("#ca_key") {
            doc.replace("#ca_key = \"\"\"", "ca_key_x = \"\"\"")
        } else {
            doc
        };
        let node = TestNode::new(&doc);
        let before = node.tree();
        let out = node.agent(&[]);
        let msg = text(&out);
        assert_eq!(
            out.status.code(),
            Some(2),
            "doc should be refused ({field}):\n{msg}"
        );
        assert!(msg.contains(field), "error should name {field:?}:\n{msg}");
        assert!(
            msg.contains("fix"),
            "error should say how to fix it:\n{msg}"
        );
        assert!(
            !msg.contains(TOKEN_SECRET) && !msg.contains(CERT_KEY),
            "secret leaked:\n{msg}"
        );
        assert_eq!(
            node.tree(),
            before,
            "the host changed for a bad document ({field})"
        );
        assert!(node.kubeadm_calls().is_empty());
        // The failure is still reported on the status channels.
        assert_eq!(node.status_json()["state"], "failed");
        assert_eq!(node.status_json()["error"]["kind"], "invalid_document");
    }
}

#[test]
fn kubeadm_failures_are_retried_with_reset_then_succeed() {
    let node = TestNode::new(WORKER).with_env("KUBEADM_TEST_DOUBLE_FAIL_TIMES", "2");
    assert_exit(&node.agent(&[]), 0);
    assert_eq!(
        node.kubeadm_subcommands(),
        ["join", "reset", "join", "reset", "join"]
    );
    let retrying: Vec<String> = node
        .console()
        .into_iter()
        .filter(|l| l.contains("retrying"))
        .collect();
    assert_eq!(retrying.len(), 2, "{retrying:?}");
    assert!(retrying[0].contains("kubeadm_failed") && retrying[0].contains("injected failure"));
    assert_eq!(node.state_json()["phases"]["kubeadm"]["attempt"], 3);
    assert_eq!(node.state_json()["kubeadm_runs"], 3);
}

#[test]
fn kubeadm_failing_every_attempt_ends_failed_with_reason_and_log_tail() {
    let node = TestNode::new(&WORKER.replace("[kubeadm]", "[kubeadm]\nattempts = 2"))
        .with_env("KUBEADM_TEST_DOUBLE_FAIL_TIMES", "10");
    let out = node.agent(&[]);
    assert_exit(&out, 1);
    assert!(
        text(&out).contains("kubeadm failed (kubeadm_failed)"),
        "{}",
        text(&out)
    );
    assert_eq!(node.kubeadm_subcommands(), ["join", "reset", "join"]);
    let st = node.status_json();
    assert_eq!(
        (st["phase"].as_str(), st["state"].as_str()),
        (Some("kubeadm"), Some("failed"))
    );
    assert!(st["error"]["message"]
        .as_str()
        .unwrap()
        .contains("attempt 2 of 2"));
    let tail = st["log_tail"].as_array().unwrap();
    assert!(
        tail.iter()
            .any(|l| l.as_str().unwrap().contains("wait-control-plane")),
        "{tail:?}"
    );

    // A failed node is not retried on the next boot: it is replaced.
    let again = node.agent(&[]);
    assert_exit(&again, 1);
    assert_eq!(node.kubeadm_subcommands().len(), 3);
    let status = node.kubeboot(&["status"]).output().unwrap();
    assert_exit(&status, 1);
    assert!(String::from_utf8_lossy(&status.stdout).contains("FAILED in kubeadm"));
}

#[test]
fn unreachable_endpoint_fails_discover_before_kubeadm() {
    let node = TestNode::new(&WORKER.replace("timeout_seconds = 5", "timeout_seconds = 1"));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    node.set_doc(
        &WORKER
            .replace("ENDPOINT", &closed)
            .replace("timeout_seconds = 5", "timeout_seconds = 1"),
    );
    let out = node.agent(&[]);
    assert_exit(&out, 1);
    let st = node.status_json();
    assert_eq!(st["phase"], "discover");
    assert_eq!(st["error"]["kind"], "discovery_endpoint_unreachable");
    assert!(st["error"]["message"].as_str().unwrap().contains(&closed));
    assert!(node.kubeadm_calls().is_empty());
}

#[test]
fn missing_container_runtime_fails_prepare() {
    let node = TestNode::new(WORKER);
    std::fs::remove_file(node.path("/run/containerd/containerd.sock")).unwrap();
    assert_exit(&node.agent(&[]), 1);
    assert_eq!(
        node.status_json()["error"]["kind"],
        "container_runtime_unavailable"
    );
}

#[test]
fn unsynchronised_clock_is_a_warning_unless_required() {
    let node = TestNode::new(WORKER);
    std::fs::remove_file(node.path("/run/systemd/timesync/synchronized")).unwrap();
    let out = node.agent(&[]);
    assert_exit(&out, 0);
    assert!(text(&out).contains("clock is not synchronised"));

    let node =
        TestNode::new(&WORKER.replace("[preflight]", "[preflight]\nrequire_clock_sync = true"));
    std::fs::remove_file(node.path("/run/systemd/timesync/synchronized")).unwrap();
    assert_exit(&node.agent(&[]), 1);
    assert_eq!(node.status_json()["error"]["kind"], "clock_unsynchronized");
}

#[test]
fn missing_kubeadm_is_reported_in_preflight() {
    let node = TestNode::new(WORKER);
    let out = node
        .kubeboot(&["agent", "--document", node.doc.to_str().unwrap()])
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert_exit(&out, 1);
    assert_eq!(node.status_json()["phase"], "preflight");
    assert_eq!(node.status_json()["error"]["kind"], "missing_binary");
}
