//! Nothing serve mints is left behind: the bootstrap tokens of a request that
//! fails after minting are deleted from the cluster, and `/metrics` counts the
//! live ones. The cluster is the tests' API server stand-in (a real TLS server
//! under the bundle's CA that creates and deletes objects in a directory).

use crate::receiver::{bundle_for, free_port, Receiver};

fn machine(i: usize) -> String {
    format!("{i:032x}")
}

/// The bootstrap token Secrets the stand-in cluster holds.
fn tokens_in(cluster: &std::path::Path) -> Vec<String> {
    let dir = cluster.join("api/v1/namespaces/kube-system/secrets");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with("bootstrap-token-"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn live(r: &Receiver) -> String {
    let (_, metrics) = r.get("/metrics");
    metrics
        .lines()
        .find(|l| l.starts_with("kubeboot_minted_tokens_live "))
        .unwrap_or_else(|| panic!("no kubeboot_minted_tokens_live in:\n{metrics}"))
        .to_string()
}

#[test]
fn a_request_that_fails_after_minting_leaves_no_token_behind() {
    let endpoint = format!("127.0.0.1:{}", free_port());
    let bundle = bundle_for(&endpoint);
    let pki = bundle.path().join("b/pki");
    let ca = std::fs::read_to_string(pki.join("ca.crt")).unwrap();
    let key = std::fs::read_to_string(pki.join("ca.key")).unwrap();
    let ours = crate::tls_server::pki_from_ca_for(&ca, &key, &["127.0.0.1"]);
    let cluster = tempfile::tempdir().unwrap();
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
    let r = Receiver::start_with(&["--bundle", dir.to_str().unwrap(), "--fresh-credentials"]);

    // A worker's document: one token, served, on record as live.
    let worker = r.mint(&["--scope", "documents:worker"]);
    let (status, body) = r.get_as_node("/v1/documents/worker", &worker, "w-1", &machine(1));
    assert_eq!(status, 200, "{body}");
    let served = tokens_in(cluster.path());
    assert_eq!(served.len(), 1, "{served:?}");
    assert_eq!(live(&r), "kubeboot_minted_tokens_live 1");

    // A control plane's: its join token is minted, then the certificate upload
    // fails (the stand-in cannot apply kubeadm-certs). Neither the join token nor
    // the upload's owner token stays.
    let cp = r.mint(&["--scope", "documents:control-plane"]);
    let (status, body) = r.get_as_node("/v1/documents/control-plane", &cp, "cp-2", &machine(2));
    assert_eq!(status, 503, "{body}");
    assert_eq!(tokens_in(cluster.path()), served, "{}", r.log());
    assert_eq!(live(&r), "kubeboot_minted_tokens_live 1");
    let log = r.log();
    assert!(log.contains("withdrew bootstrap token"), "{log}");
    assert!(!log.contains("left for the sweeper"), "{log}");
}
