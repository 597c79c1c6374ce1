//! `kubeboot bundle`, `ca-hash`, `userdata`: material made before any node
//! exists, checked against openssl and fed to three nodes at once.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::harness::*;
use crate::tls_server::{cluster_info_json, pki_from_ca, CLUSTER_INFO_PATH};

fn kubeboot(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kubeboot-under-test"))
        .args(args)
        .output()
        .unwrap()
}

fn new_bundle(dir: &Path, endpoint: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "bundle",
        "new",
        "--endpoint",
        endpoint,
        "--out",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = kubeboot(&args);
    assert_exit(&out, 0);
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn openssl_pin(cert: &Path) -> String {
    let script = format!(
        "openssl x509 -pubkey -noout -in {} | openssl pkey -pubin -outform der | openssl dgst -sha256 -hex",
        cert.display()
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("openssl");
    let text = String::from_utf8(out.stdout).unwrap();
    format!("sha256:{}", text.trim().rsplit(' ').next().unwrap())
}

fn openssl_text(cert: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(cert)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn bundle_ca_is_shaped_like_kubeadms_and_its_hash_matches_openssl() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    let printed = new_bundle(
        &dir,
        "k8s-api.example.internal:6443",
        &["--kubernetes-version", "v1.34.2"],
    );
    let ca = dir.join("pki/ca.crt");
    assert_eq!(printed, openssl_pin(&ca));
    let out = kubeboot(&["ca-hash", ca.to_str().unwrap()]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), printed);
    for (file, cn) in [
        ("ca.crt", "kubernetes"),
        ("front-proxy-ca.crt", "front-proxy-ca"),
        ("etcd/ca.crt", "etcd-ca"),
    ] {
        let text = openssl_text(&dir.join("pki").join(file));
        assert!(
            text.contains(&format!("Subject: CN = {cn}")),
            "{file}:\n{text}"
        );
        assert!(
            text.contains("CA:TRUE") && text.contains("Certificate Sign"),
            "{file}:\n{text}"
        );
        let not_after_year: i32 = text
            .lines()
            .find(|l| l.contains("Not After"))
            .and_then(|l| l.split_whitespace().rev().nth(1))
            .unwrap()
            .parse()
            .unwrap();
        let not_before_year: i32 = text
            .lines()
            .find(|l| l.contains("Not Before"))
            .and_then(|l| l.split_whitespace().rev().nth(1))
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (9..=10).contains(&(not_after_year - not_before_year)),
            "{file}: 10-year validity"
        );
    }
    let mode = |p: &str| {
        std::os::unix::fs::PermissionsExt::mode(&fs::metadata(dir.join(p)).unwrap().permissions())
            & 0o777
    };
    for secret in [
        "pki/ca.key",
        "pki/sa.key",
        "pki/etcd/ca.key",
        "discovery.toml",
        "nodes/init.toml",
        "cloud-init/worker.yaml",
    ] {
        assert_eq!(mode(secret), 0o600, "{secret}");
    }
    // The service-account key pair matches.
    let pubkey = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(dir.join("pki/sa.key"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&pubkey.stdout),
        fs::read_to_string(dir.join("pki/sa.pub")).unwrap()
    );
}

#[test]
fn ca_hash_matches_upstream_vectors_and_refuses_non_certificates() {
    let v: serde_json::Value =
        serde_json::from_str(include_str!("../vectors/pubkeypin.json")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for c in v["certificates"].as_array().unwrap() {
        let p = tmp.path().join("c.pem");
        fs::write(&p, c["pem"].as_str().unwrap()).unwrap();
        let out = kubeboot(&["ca-hash", p.to_str().unwrap()]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            c["sha256_pin_openssl"].as_str().unwrap()
        );
        // The RSA-only pipeline from kubeadm's docs agrees too.
        let script = format!("openssl x509 -pubkey -in {} | openssl rsa -pubin -outform der 2>/dev/null | openssl dgst -sha256 -hex", p.display());
        let o = Command::new("sh").args(["-c", &script]).output().unwrap();
        let hex = String::from_utf8(o.stdout)
            .unwrap()
            .trim()
            .rsplit(' ')
            .next()
            .unwrap()
            .to_string();
        assert_eq!(
            format!("sha256:{hex}"),
            c["sha256_pin_openssl"].as_str().unwrap()
        );
    }
    let bad = tmp.path().join("bad.pem");
    for content in [
        "not pem at all",
        "-----BEGIN CERTIFICATE-----\nAAAA\n",
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
    ] {
        fs::write(&bad, content).unwrap();
        let out = kubeboot(&["ca-hash", bad.to_str().unwrap()]);
        assert_exit(&out, 2);
        assert!(text(&out).contains("error:"), "{}", text(&out));
    }
}

#[test]
fn bad_requests_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    let d = dir.to_str().unwrap();
    for (args, mentions) in [
        (vec!["--endpoint", "k8s-api.example.internal"], "--endpoint"),
        (
            vec!["--endpoint", "lb:6443", "--kubernetes-version", "1.34"],
            "--kubernetes-version",
        ),
        (
            vec!["--endpoint", "lb:6443", "--pod-subnet", "10.244.0.0"],
            "--pod-subnet",
        ),
        (
            vec![
                "--endpoint",
                "lb:6443",
                "--external-etcd",
                "http://10.0.0.1:2379",
            ],
            "--external-etcd",
        ),
    ] {
        let mut a = vec!["bundle", "new", "--out", d];
        a.extend(args);
        let out = kubeboot(&a);
        assert_exit(&out, 2);
        assert!(text(&out).contains(mentions), "{}", text(&out));
        assert_eq!(
            fs::read_dir(tmp.path()).unwrap().count(),
            0,
            "something was written"
        );
    }
    new_bundle(&dir, "lb:6443", &[]);
    let before = fs::read(dir.join("pki/ca.crt")).unwrap();
    let out = kubeboot(&["bundle", "new", "--endpoint", "lb:6443", "--out", d]);
    assert_exit(&out, 2);
    assert!(text(&out).contains("already exists"));
    assert_eq!(fs::read(dir.join("pki/ca.crt")).unwrap(), before);
    assert_eq!(
        fs::read_dir(tmp.path()).unwrap().count(),
        1,
        "no temporary directory is left behind"
    );
}

#[test]
fn rotation_keeps_the_ca_and_rewrites_the_documents() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let pin = new_bundle(&dir, "lb:6443", &[]);
    let before = fs::read_to_string(dir.join("discovery.toml")).unwrap();
    let token = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("token"))
            .unwrap()
            .to_string()
    };
    let key = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("certificate_key"))
            .unwrap()
            .to_string()
    };
    assert_exit(
        &kubeboot(&["bundle", "token", "--dir", dir.to_str().unwrap()]),
        0,
    );
    let after = fs::read_to_string(dir.join("discovery.toml")).unwrap();
    assert_ne!(token(&before), token(&after));
    assert_eq!(key(&before), key(&after));
    assert!(fs::read_to_string(dir.join("nodes/worker.toml"))
        .unwrap()
        .contains(&token(&after)));
    assert!(fs::read_to_string(dir.join("cloud-init/worker.yaml"))
        .unwrap()
        .contains(token(&after).split('"').nth(1).unwrap()));
    assert_exit(
        &kubeboot(&["bundle", "certificate-key", "--dir", dir.to_str().unwrap()]),
        0,
    );
    let last = fs::read_to_string(dir.join("discovery.toml")).unwrap();
    assert_ne!(key(&after), key(&last));
    assert_eq!(openssl_pin(&dir.join("pki/ca.crt")), pin);
}

/// One command makes everything three nodes need; they boot "at once" from it.
#[test]
fn three_nodes_from_one_bundle_need_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    // The endpoint must exist before the bundle names it: reserve a port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("127.0.0.1:{port}");
    new_bundle(
        &dir,
        &endpoint,
        &[
            "--kubernetes-version",
            "v1.34.2",
            "--pod-subnet",
            "10.244.0.0/16",
        ],
    );
    let ca_pem = fs::read_to_string(dir.join("pki/ca.crt")).unwrap();
    let ca_key = fs::read_to_string(dir.join("pki/ca.key")).unwrap();
    let discovery: toml::Table = fs::read_to_string(dir.join("discovery.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let token = discovery["token"].as_str().unwrap();

    // The init node.
    let init = TestNode::new(&fs::read_to_string(dir.join("nodes/init.toml")).unwrap());
    // "Its" API server: a certificate from the bundle's CA, cluster-info signed with
    // the bundle's token; it answers once the init node's kubeadm has run (before,
    // the init node's fence finds nothing there), then the Ready wait of every node.
    let pki = pki_from_ca(&ca_pem, &ca_key);
    let body = cluster_info_json(&endpoint, &ca_pem, Some(token));
    let listener_addr = serve_on(&pki, port, &body, init.path(crate::harness::INIT_GATE));
    assert_eq!(listener_addr.port(), port);
    assert_exit(&init.agent(&[]), 0);
    assert_eq!(
        init.read("/etc/kubernetes/pki/ca.crt"),
        ca_pem,
        "kubeadm must keep the bundle's CA"
    );
    assert_eq!(init.kubeadm_subcommands(), ["init"]);

    for role in ["control-plane", "worker"] {
        let node =
            TestNode::new(&fs::read_to_string(dir.join(format!("nodes/{role}.toml"))).unwrap());
        let out = node.agent(&[]);
        assert_exit(&out, 0);
        assert_eq!(node.kubeadm_subcommands(), ["join"], "{role}");
    }
}

fn serve_on(
    pki: &crate::tls_server::Pki,
    port: u16,
    body: &str,
    gate: std::path::PathBuf,
) -> std::net::SocketAddr {
    let bind = format!("127.0.0.1:{port}");
    crate::tls_server::serve_gated(pki, &bind, CLUSTER_INFO_PATH, body, None, 100, Some(gate))
}

#[test]
fn userdata_renders_a_cloud_config_for_a_document() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cloud-init/examples/worker.toml");
    let out = kubeboot(&["userdata", "--document", examples.to_str().unwrap()]);
    assert_exit(&out, 0);
    let cc = String::from_utf8(out.stdout).unwrap();
    assert!(cc.starts_with("#cloud-config\n"));
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&cc).unwrap();
    assert_eq!(
        v["write_files"][0]["content"].as_str().unwrap(),
        fs::read_to_string(&examples).unwrap()
    );
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.toml");
    fs::write(&bad, "version = 1\nrole = \"worker\"\n").unwrap();
    assert_exit(
        &kubeboot(&["userdata", "--document", bad.to_str().unwrap()]),
        2,
    );
}
