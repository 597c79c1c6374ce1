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
