//! Pod routes where a node's own credentials may not list Nodes (Kubernetes ≥
//! 1.32): serve lists them as cluster-admin for a node presenting the report
//! credential serve bound to it, and `kubeboot pod-routes` reads them there.
//! The cluster is the tests' API server stand-in under the bundle's CA.

use std::process::Command;

use crate::harness::{assert_exit, text};
use crate::receiver::{bundle_for, free_port, Receiver};

fn node(name: &str, cidr: &str, ip: &str) -> String {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": { "name": name },
        "spec": { "podCIDR": cidr },
        "status": { "addresses": [{ "type": "InternalIP", "address": ip }] }
    })
    .to_string()
}

#[test]
fn a_node_reads_every_pod_route_from_serve_with_its_own_report_credential() {
    let endpoint = format!("127.0.0.1:{}", free_port());
    let bundle = bundle_for(&endpoint);
    let pki = bundle.path().join("b/pki");
    let ca = std::fs::read_to_string(pki.join("ca.crt")).unwrap();
    let key = std::fs::read_to_string(pki.join("ca.key")).unwrap();
    let ours = crate::tls_server::pki_from_ca_for(&ca, &key, &["127.0.0.1"]);
    let cluster = tempfile::tempdir().unwrap();
    let nodes = cluster.path().join("api/v1/nodes");
    std::fs::create_dir_all(&nodes).unwrap();
    for (n, cidr, ip) in [
        ("w-1", "10.244.1.0/24", "10.88.0.11"),
        ("w-2", "10.244.2.0/24", "10.88.0.12"),
    ] {
        std::fs::write(nodes.join(n), node(n, cidr, ip)).unwrap();
    }
    crate::tls_server::serve_cluster(
        &ours,
        &endpoint,
        "/nothing-here",
        "{}",
        None,
        1000,
        None,
        Some(cluster.path().to_path_buf()),
    );
    let dir = bundle.path().join("b");
    let r = Receiver::start_with(&["--bundle", dir.to_str().unwrap()]);

    // w-1's document from serve carries the report credential bound to w-1.
    let worker_doc = dir.join("nodes/worker.toml");
    let mut text_of = std::fs::read_to_string(&worker_doc).unwrap();
    text_of.push_str(&r.report_toml(5));
    std::fs::write(&worker_doc, text_of).unwrap();
    let machine = "1".repeat(32);
    let worker = r.mint(&["--scope", "documents:worker"]);
    let (status, body) = r.get_as_node("/v1/documents/worker", &worker, "w-1", &machine);
    assert_eq!(status, 200, "{body}");
    let doc: toml::Table = body.parse().unwrap();
    let bound = doc["report"]["token"].as_str().unwrap().to_string();
    assert!(bound.starts_with("kbn1."), "{bound}");

    let ask = |token: &str, name: &str, id: &str| {
        let headers = [
            ("Kubeboot-Node", name.to_string()),
            ("Kubeboot-Machine-Id", id.to_string()),
        ];
        let resp = r.request("/v1/pod-routes", Some(token), &headers);
        (resp.status().as_u16(), resp.text().unwrap())
    };
    let (status, body) = ask(&bound, "w-1", &machine);
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    let routes = answer["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 2, "{body}");
    assert!(
        body.contains("\"pod_cidr\":\"10.244.2.0/24\"") && body.contains("\"via\":\"10.88.0.12\"")
    );
    // Not for another node, another machine, a shared token or nobody.
    assert_eq!(ask(&bound, "w-2", &machine).0, 401);
    assert_eq!(ask(&bound, "w-1", &"2".repeat(32)).0, 401);
    assert_eq!(ask(&r.token, "w-1", &machine).0, 401);
    assert_eq!(r.get("/v1/pod-routes").0, 400);

    // `kubeboot pod-routes` on w-1 reads them where the agent kept serve's address.
    let root = tempfile::tempdir().unwrap();
    let kept = root.path().join("var/lib/kubeboot");
    std::fs::create_dir_all(&kept).unwrap();
    std::fs::write(
        kept.join("pod-routes.json"),
        serde_json::json!({
            "url": format!("{}/v1", r.url()), "token": bound, "ca_cert_hash": r.ca_hash,
            "ca_file": null, "node": "w-1", "machine_id": machine
        })
        .to_string(),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kubeboot-under-test"))
        .arg("--root")
        .arg(root.path())
        .args(["pod-routes", "--once", "--dry-run", "--node-name", "w-1"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "10.244.2.0/24 via 10.88.0.12 (w-2)\n",
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("from kubeboot serve"), "{}", text(&out));
}
