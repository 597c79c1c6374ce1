//! Against a real Kubernetes v1.28.7 control plane on loopback (control_plane.rs):
//! discovery verifies the real, bootstrapsigner-signed cluster-info; the `ready`
//! wait reads a real Node with node credentials (the Node authorizer and
//! NodeRestriction as on a real cluster) and follows its Ready condition; the
//! pod network's configuration follows the podCIDR the real controller-manager
//! allocates.

use std::time::Duration;

use crate::control_plane::{shared, ControlPlane, TOKEN};
use crate::harness::{assert_exit, text};

/// A worker document for `cp` with this token and pin; discovery waits `timeout` s.
pub fn worker_doc(
    cp: &ControlPlane,
    token: &str,
    hash: &str,
    timeout: u64,
) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        f.path(),
        format!(
            "version = 1\nrole = \"worker\"\n[cluster]\nendpoint = \"{}\"\n\
             [discovery]\ntoken = \"{token}\"\nca_cert_hashes = [\"{hash}\"]\ntimeout_seconds = {timeout}\n",
            cp.endpoint
        ),
    )
    .unwrap();
    f
}

/// `kubeboot discover --output json` on `doc`, bounded at `timeout` s.
pub fn discover(doc: &tempfile::NamedTempFile, timeout: u64) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_kubeboot-under-test"))
        .args([
            "discover",
            "--timeout",
            &timeout.to_string(),
            "--output",
            "json",
            "--document",
        ])
        .arg(doc.path())
        .output()
        .unwrap()
}

#[test]
#[ignore = "needs real Kubernetes: KUBEBOOT_KUBERNETES (docs/real-kubernetes.md)"]
fn discover_verifies_the_real_cluster_info() {
    let cp = shared();
    let out = discover(&worker_doc(cp, TOKEN, &cp.ca_hash, 3), 5);
    assert_exit(&out, 0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verified"], true, "{v}");
    assert_eq!(v["ca_hash"], cp.ca_hash.as_str());
    assert_eq!(v["ca_subject"], "CN=kubernetes");
}

#[test]
#[ignore = "needs real Kubernetes: KUBEBOOT_KUBERNETES (docs/real-kubernetes.md)"]
fn a_wrong_ca_hash_is_refused_by_the_real_cluster() {
    let cp = shared();
    let wrong = format!("sha256:{}", "ab".repeat(32));
    let out = discover(&worker_doc(cp, TOKEN, &wrong, 3), 5);
    assert_exit(&out, 1);
    assert!(
        text(&out).contains("discovery_ca_mismatch"),
        "{}",
        text(&out)
    );
}

#[test]
#[ignore = "needs real Kubernetes: KUBEBOOT_KUBERNETES (docs/real-kubernetes.md)"]
fn a_wrong_token_secret_does_not_verify_the_real_signature() {
    let cp = shared();
    let id = TOKEN.split('.').next().unwrap();
    let out = discover(
        &worker_doc(cp, &format!("{id}.ffffffffffffffff"), &cp.ca_hash, 3),
        5,
    );
    assert_exit(&out, 1);
    assert!(
        text(&out).contains("discovery_signature_mismatch"),
        "{}",
        text(&out)
    );
    assert!(
        !text(&out).contains("ffffffffffffffff"),
        "the secret leaked: {}",
        text(&out)
    );
}

#[test]
#[ignore = "needs real Kubernetes: KUBEBOOT_KUBERNETES (docs/real-kubernetes.md)"]
fn a_token_the_cluster_never_issued_is_unknown() {
    let cp = shared();
    let out = discover(
        &worker_doc(cp, "zzzzzz.0123456789abcdef", &cp.ca_hash, 3),
        5,
    );
    assert_exit(&out, 1);
    assert!(
        text(&out).contains("discovery_token_unknown"),
        "{}",
        text(&out)
    );
    // The advice is what works against a running cluster.
    assert!(
        text(&out).contains("kubeadm token create"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("0123456789abcdef"), "{}", text(&out));
}

fn node_manifest(name: &str) -> String {
    format!("{{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{{\"name\":\"{name}\"}}}}")
}

fn set_ready(cp: &ControlPlane, name: &str, status: &str, reason: &str) {
    let patch = format!(
        "{{\"status\":{{\"conditions\":[{{\"type\":\"Ready\",\"status\":\"{status}\",\"reason\":\"{reason}\",\
         \"message\":\"set by the test\",\"lastHeartbeatTime\":null,\"lastTransitionTime\":\"2026-01-01T00:00:00Z\"}}]}}}}"
    );
    cp.kubectl_ok(&[
        "patch",
        "node",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch,
    ]);
}

/// The ready wait with the node's own credentials: NotReady (with the kubelet's
/// reason) times out naming it; Ready ends the wait; the podCIDR that the real
/// controller-manager allocated becomes the bridge network's subnet.
#[test]
#[ignore = "needs real Kubernetes: KUBEBOOT_KUBERNETES (docs/real-kubernetes.md)"]
fn ready_follows_the_real_node_with_node_credentials() {
    let cp = shared();
    let name = "ready-node-1";
    let manifest = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(manifest.path(), node_manifest(name)).unwrap();
    cp.kubectl_ok(&["apply", "-f", manifest.path().to_str().unwrap()]);
    set_ready(cp, name, "False", "KubeletNotReady");
    let kubeconfig = cp.kubeconfig_for(&format!("system:node:{name}"), &["system:nodes"]);
    let root = tempfile::tempdir().unwrap();
    let host = kubeboot_core::host::Host::system_at(root.path());
    let wait = |limit| {
        kubeboot_kube::client::block_on(kubeboot_agent::cluster::wait_ready(
            &host,
            &kubeconfig,
            name,
            Duration::from_secs(limit),
        ))
    };
    let err = wait(4).unwrap_err();
    assert!(err.contains("KubeletNotReady"), "{err}");
    // The controller-manager's node IPAM gave the Node a /24 of the pod subnet.
    let cidr = cp.kubectl_ok(&["get", "node", name, "-o", "jsonpath={.spec.podCIDR}"]);
    assert!(cidr.starts_with("10.244."), "podCIDR {cidr:?}");
    let conf =
        std::fs::read_to_string(host.path(kubeboot_agent::cluster::pod_network::CONFIG_FILE))
            .expect("the bridge configuration is written once the Node has a podCIDR");
    assert!(conf.contains(&cidr), "{conf}");

    set_ready(cp, name, "True", "KubeletReady");
    wait(20).expect("Ready ends the wait");
}

/// A node's credentials cannot read another cluster's view: an unknown user is refused,
/// and the wait reports the API server's answer instead of hanging.
#[test]
#[ignore = "needs real Kubernetes: KUBEBOOT_KUBERNETES (docs/real-kubernetes.md)"]
fn ready_with_credentials_the_cluster_rejects_says_so() {
    let cp = shared();
    let other_ca = tempfile::tempdir().unwrap();
    // A client certificate from a CA this cluster does not trust.
    let ca = kubeboot_core::pki::new_ca("not-this-cluster").unwrap();
    let (cert, key) = kubeboot_core::pki::issue_client_cert(
        &ca.cert_pem,
        &ca.key_pem,
        "system:node:stranger",
        &["system:nodes".into()],
        std::time::Duration::from_secs(3600),
    )
    .unwrap();
    let d = other_ca.path();
    std::fs::write(d.join("client.crt"), cert).unwrap();
    std::fs::write(d.join("client.key"), key).unwrap();
    let kubeconfig = d.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: k\n  cluster:\n    server: https://{}\n    certificate-authority: {}\n\
             users:\n- name: u\n  user:\n    client-certificate: {}\n    client-key: {}\n\
             contexts:\n- name: c\n  context: {{cluster: k, user: u}}\ncurrent-context: c\n",
            cp.endpoint,
            cp.pki("ca.crt").display(),
            d.join("client.crt").display(),
            d.join("client.key").display()
        ),
    )
    .unwrap();
    let host = kubeboot_core::host::Host::system_at(d);
    let err = kubeboot_kube::client::block_on(kubeboot_agent::cluster::wait_ready(
        &host,
        &kubeconfig,
        "stranger",
        Duration::from_secs(3),
    ))
    .unwrap_err();
    assert!(
        err.contains("401") || err.to_lowercase().contains("unauthorized"),
        "{err}"
    );
}

fn story(node: &str) -> kubeboot_kube::boot::BootStory {
    use kubeboot_core::status::{Phase, PhaseState};
    use kubeboot_kube::boot::{BootStory, PhaseResult};
    let at = chrono::Utc::now() - chrono::Duration::minutes(5);
    let result = |phase, state, ms| PhaseResult {
        phase,
        state,
        attempt: 1,
        at,
        duration_ms: Some(ms),
        error: (state == PhaseState::Failed).then(|| {
            (
                "node_not_ready".to_string(),
                "the kubelet never posted Ready".to_string(),
            )
        }),
    };
    BootStory {
        node: node.into(),
        boot_id: "boot-1".into(),
        machine_id: "machine-1".into(),
        agent_version: "0.1.0".into(),
        phase: Phase::Ready,
        state: PhaseState::Failed,
        results: vec![
            result(Phase::Source, PhaseState::Succeeded, 100),
            result(Phase::Discover, PhaseState::Succeeded, 2_000),
            result(Phase::Kubeadm, PhaseState::Succeeded, 60_000),
            result(Phase::Ready, PhaseState::Failed, 900_000),
        ],
    }
}

/// The boot story told with the node's own credentials, as the Node authorizer and
/// NodeRestriction allow it: annotations on its own Node, one Event per phase result
/// (each once), a Warning for the failure; another Node's annotations are refused;
/// `kubeboot nodes` reads it all back, and lists a Node without annotations as such.
#[test]
#[ignore = "needs real Kubernetes: KUBEBOOT_KUBERNETES (docs/real-kubernetes.md)"]
fn the_boot_story_reaches_the_cluster_with_node_credentials() {
    use kubeboot_kube::boot as report;
    let cp = shared();
    let (mine, other) = ("story-node-1", "story-node-2");
    for name in [mine, other] {
        let manifest = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(manifest.path(), node_manifest(name)).unwrap();
        cp.kubectl_ok(&["apply", "-f", manifest.path().to_str().unwrap()]);
    }
    let kubeconfig = cp.kubeconfig_for(&format!("system:node:{mine}"), &["system:nodes"]);
    let publish = |story: &report::BootStory, already: &std::collections::BTreeSet<String>| {
        kubeboot_kube::client::block_on(async {
            let client = kubeboot_kube::client::client(&kubeconfig).await.unwrap();
            report::publish(&client, story, already).await
        })
    };
    let s = story(mine);
    let first = publish(&s, &Default::default()).unwrap_or_else(|(_, e)| panic!("{e}"));
    assert_eq!(first.events_sent.len(), 4, "{first:?}");
    assert!(first.annotated);
    let already = first.events_sent.iter().cloned().collect();
    let again = publish(&s, &already).unwrap_or_else(|(_, e)| panic!("{e}"));
    assert!(again.events_sent.is_empty(), "sent twice: {again:?}");

    let phase = cp.kubectl_ok(&[
        "get",
        "node",
        mine,
        "-o",
        "jsonpath={.metadata.annotations.kubeboot\\.io/phase}",
    ]);
    assert_eq!(phase, "ready");
    let durations = cp.kubectl_ok(&[
        "get",
        "node",
        mine,
        "-o",
        "jsonpath={.metadata.annotations.kubeboot\\.io/phase-durations}",
    ]);
    assert_eq!(
        durations,
        r#"{"discover":2000,"kubeadm":60000,"source":100}"#
    );
    let events: serde_json::Value = serde_json::from_str(&cp.kubectl_ok(&[
        "get",
        "events",
        "-n",
        "default",
        "--field-selector",
        &format!("involvedObject.kind=Node,involvedObject.name={mine}"),
        "-o",
        "json",
    ]))
    .unwrap();
    // Only kubeboot's: the controller manager posts its own (RegisteredNode) for new Nodes.
    let items: Vec<&serde_json::Value> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("Kubeboot"))
        })
        .collect();
    assert_eq!(items.len(), 4, "{events}");
    let warnings: Vec<_> = items.iter().filter(|e| e["type"] == "Warning").collect();
    assert_eq!(warnings.len(), 1, "{events}");
    assert_eq!(warnings[0]["reason"], "KubebootPhaseFailed");
    assert!(warnings[0]["message"]
        .as_str()
        .unwrap()
        .contains("node_not_ready"));
    assert!(items
        .iter()
        .all(|e| e["reportingComponent"] == "kubeboot.io/agent" && e["reportingInstance"] == mine));

    // NodeRestriction: this node may not annotate another Node.
    let (_, err) = publish(&story(other), &already).expect_err("another Node's annotations");
    assert!(err.contains(&format!("annotating Node {other}")), "{err}");
    assert!(
        err.to_lowercase().contains("forbidden") || err.contains("not allowed"),
        "{err}"
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubeboot-under-test"))
        .args(["nodes", "--output", "json", "--kubeconfig"])
        .arg(cp.admin_conf())
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let find = |n: &str| {
        v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == n)
            .cloned()
            .unwrap()
    };
    assert_eq!(find(mine)["phase"], "ready");
    assert_eq!(find(mine)["state"], "failed");
    assert!(find(mine)["last_failure"]
        .as_str()
        .unwrap()
        .contains("never posted Ready"));
    assert!(find(other)["phase"].is_null(), "{v}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubeboot-under-test"))
        .args(["nodes", "--kubeconfig"])
        .arg(cp.admin_conf())
        .output()
        .unwrap();
    let t = text(&out);
    assert!(
        t.lines()
            .any(|l| l.starts_with(mine) && l.contains("ready") && l.contains("failed")),
        "{t}"
    );
    assert!(
        t.lines().any(|l| l.starts_with(other) && l.contains(" - ")),
        "{t}"
    );
}
