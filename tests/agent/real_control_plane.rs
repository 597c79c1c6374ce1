//! Against a real Kubernetes v1.28.7 control plane on loopback (control_plane.rs):
//! discovery verifies the real, bootstrapsigner-signed cluster-info; the `ready`
//! wait reads a real Node with node credentials (the Node authorizer and
//! NodeRestriction as on a real cluster) and follows its Ready condition; the
//! pod network's configuration follows the podCIDR the real controller-manager
//! allocates.

use std::time::Duration;

use crate::control_plane::{shared, ControlPlane, TOKEN};
use crate::harness::{assert_exit, text};

fn worker_doc(cp: &ControlPlane, token: &str, hash: &str) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        f.path(),
        format!(
            "version = 1\nrole = \"worker\"\n[cluster]\nendpoint = \"{}\"\n\
             [discovery]\ntoken = \"{token}\"\nca_cert_hashes = [\"{hash}\"]\ntimeout_seconds = 3\n",
            cp.endpoint
        ),
    )
    .unwrap();
    f
}

fn discover(doc: &tempfile::NamedTempFile) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_kubeboot-under-test"))
        .args([
            "discover",
            "--timeout",
            "5",
            "--output",
            "json",
            "--document",
        ])
        .arg(doc.path())
        .output()
        .unwrap()
}

#[test]
fn discover_verifies_the_real_cluster_info() {
    let cp = shared();
    let out = discover(&worker_doc(cp, TOKEN, &cp.ca_hash));
    assert_exit(&out, 0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verified"], true, "{v}");
    assert_eq!(v["ca_hash"], cp.ca_hash.as_str());
    assert_eq!(v["ca_subject"], "CN=kubernetes");
}

#[test]
fn a_wrong_ca_hash_is_refused_by_the_real_cluster() {
    let cp = shared();
    let wrong = format!("sha256:{}", "ab".repeat(32));
    let out = discover(&worker_doc(cp, TOKEN, &wrong));
    assert_exit(&out, 1);
    assert!(
        text(&out).contains("discovery_ca_mismatch"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_wrong_token_secret_does_not_verify_the_real_signature() {
    let cp = shared();
    let id = TOKEN.split('.').next().unwrap();
    let out = discover(&worker_doc(
        cp,
        &format!("{id}.ffffffffffffffff"),
        &cp.ca_hash,
    ));
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
fn a_token_the_cluster_never_issued_is_unknown() {
    let cp = shared();
    let out = discover(&worker_doc(cp, "zzzzzz.0123456789abcdef", &cp.ca_hash));
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
fn ready_follows_the_real_node_with_node_credentials() {
    let cp = shared();
    let name = "ready-node-1";
    let manifest = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(manifest.path(), node_manifest(name)).unwrap();
    cp.kubectl_ok(&["apply", "-f", manifest.path().to_str().unwrap()]);
    set_ready(cp, name, "False", "KubeletNotReady");
    let kubeconfig = cp.kubeconfig_for(&format!("system:node:{name}"), &["system:nodes"]);
    let root = tempfile::tempdir().unwrap();
    let host = kubeboot::host::Host::system_at(root.path());
    let wait = |limit| {
        kubeboot::cluster::block_on(kubeboot::cluster::node::wait_ready(
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
    let conf = std::fs::read_to_string(host.path(kubeboot::cluster::pod_network::CONFIG_FILE))
        .expect("the bridge configuration is written once the Node has a podCIDR");
    assert!(conf.contains(&cidr), "{conf}");

    set_ready(cp, name, "True", "KubeletReady");
    wait(20).expect("Ready ends the wait");
}

/// A node's credentials cannot read another cluster's view: an unknown user is refused,
/// and the wait reports the API server's answer instead of hanging.
#[test]
fn ready_with_credentials_the_cluster_rejects_says_so() {
    let cp = shared();
    let other_ca = tempfile::tempdir().unwrap();
    // A client certificate from a CA this cluster does not trust.
    let ca = kubeboot::bundle::pki::new_ca("not-this-cluster").unwrap();
    let (cert, key) = kubeboot::bundle::pki::issue_client_cert(
        &ca.cert_pem,
        &ca.key_pem,
        "system:node:stranger",
        &["system:nodes".into()],
        time::Duration::hours(1),
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
    let host = kubeboot::host::Host::system_at(d);
    let err = kubeboot::cluster::block_on(kubeboot::cluster::node::wait_ready(
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
