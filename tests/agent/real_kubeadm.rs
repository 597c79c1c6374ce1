//! Against the real kubeadm, when one is given: `KUBEBOOT_TEST_KUBEADM=/path/to/kubeadm`.
//! Every rendered config (each role, both API versions) must pass
//! `kubeadm config validate`. Skipped, saying so, when the variable is unset.

use std::process::Command;

use crate::harness::*;

#[test]
fn real_kubeadm_accepts_every_rendered_config() {
    let Some(kubeadm) = std::env::var_os("KUBEBOOT_TEST_KUBEADM") else {
        eprintln!("SKIPPED real_kubeadm_accepts_every_rendered_config: set KUBEBOOT_TEST_KUBEADM=/path/to/kubeadm to run it");
        return;
    };
    let version = Command::new(&kubeadm)
        .args(["version", "-o", "short"])
        .output()
        .expect("run kubeadm");
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    for doc in [init_doc(), CONTROL_PLANE.to_string(), WORKER.to_string()] {
        let node = TestNode::new(&doc);
        let out = node
            .kubeboot(&[
                "render",
                "--document",
                node.doc.to_str().unwrap(),
                "--kubeadm-version",
                &version,
                "--show-secrets",
            ])
            .output()
            .unwrap();
        assert_exit(&out, 0);
        let cfg = node.path("/kubeadm.yaml");
        std::fs::write(&cfg, &out.stdout).unwrap();
        let v = Command::new(&kubeadm)
            .args(["config", "validate", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(
            v.status.success(),
            "kubeadm {version} rejected:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            text(&v)
        );
    }
}

/// `kubeadm init phase certs all` with a bundle's PKI in the certificates dir
/// must keep the bundle's CA (same hash) and issue the rest from it.
#[test]
fn real_kubeadm_keeps_the_bundles_ca() {
    let Some(kubeadm) = std::env::var_os("KUBEBOOT_TEST_KUBEADM") else {
        eprintln!("SKIPPED real_kubeadm_keeps_the_bundles_ca: set KUBEBOOT_TEST_KUBEADM=/path/to/kubeadm to run it");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("b");
    let out = Command::new(env!("CARGO_BIN_EXE_kubeboot-under-test"))
        .args(["bundle", "new", "--endpoint", "127.0.0.1:6443", "--out"])
        .arg(&bundle)
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let pin = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let certs = tmp.path().join("pki");
    let copy = Command::new("cp")
        .arg("-r")
        .arg(bundle.join("pki"))
        .arg(&certs)
        .status()
        .unwrap();
    assert!(copy.success());
    let run = Command::new(&kubeadm)
        .args(["init", "phase", "certs", "all", "--cert-dir"])
        .arg(&certs)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run));
    let hash = Command::new(env!("CARGO_BIN_EXE_kubeboot-under-test"))
        .arg("ca-hash")
        .arg(certs.join("ca.crt"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&hash.stdout).trim(), pin);
    let verify = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(certs.join("ca.crt"))
        .arg(certs.join("apiserver.crt"))
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "apiserver.crt must be issued by the bundle's CA: {}",
        text(&verify)
    );
}
