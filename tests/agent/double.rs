//! The kubeadm test double must be able to fail: it rejects what real kubeadm rejects.

use std::process::Command;

use crate::harness::*;

fn run_double(version: &str, args: &[&str], config: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("kubeadm.yaml");
    std::fs::write(&cfg, config).unwrap();
    let mut argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    argv.extend(["--config".to_string(), cfg.to_string_lossy().to_string()]);
    let out = Command::new(env!("CARGO_BIN_EXE_kubeadm-test-double"))
        .args(&argv)
        .env("KUBEADM_TEST_DOUBLE_ROOT", dir.path())
        .env("KUBEADM_TEST_DOUBLE_VERSION", version)
        .output()
        .unwrap();
    (out.status.success(), text(&out))
}

const JOIN_V4: &str = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    token: abcdef.0123456789abcdef\n    apiServerEndpoint: 10.0.0.1:6443\n    caCertHashes:\n    - sha256:7d4b6c7a2e3f0c1b9a8d5e6f4c3b2a1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b\n";

#[test]
fn accepts_a_valid_join() {
    let (ok, out) = run_double("v1.34.2", &["join"], JOIN_V4);
    assert!(ok, "{out}");
}

#[test]
fn rejects_unknown_fields_wrong_types_and_versions() {
    let cases = [
        ("v1.34.2", JOIN_V4.replace("discovery:", "discovry: {}\ndiscovery:"), "unknown field \"discovry\""),
        ("v1.34.2", format!("{JOIN_V4}nodeRegistration:\n  kubeletExtraArgs:\n    node-ip: 10.0.0.1\n"), "expected a list"),
        ("v1.30.4", JOIN_V4.to_string(), "no kind \"JoinConfiguration\" is registered for version \"kubeadm.k8s.io/v1beta4\""),
        ("v1.34.2", JOIN_V4.replace("abcdef.0123456789abcdef", "abcdef.0123"), "the bootstrap token is invalid"),
        ("v1.34.2", JOIN_V4.replace("sha256:7d", "sha1:7d"), "invalid hash"),
        ("v1.34.2", JOIN_V4.replace("    caCertHashes:\n    - sha256:7d4b6c7a2e3f0c1b9a8d5e6f4c3b2a1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b\n", ""), "caCertHashes"),
        ("v1.34.2", format!("{JOIN_V4}skipPhases: [unclosed\n"), "couldn't parse"),
        ("v1.30.4", JOIN_V4.replace("v1beta4", "v1beta3") + "dryRun: true\n", "unknown field \"dryRun\""),
    ];
    for (version, config, want) in cases {
        let (ok, out) = run_double(version, &["join"], &config);
        assert!(!ok, "the double accepted a bad config ({want}):\n{config}");
        assert!(out.contains(want), "expected {want:?} in:\n{out}");
    }
}

#[test]
fn rejects_flags_kubeadm_refuses_with_config() {
    let (ok, out) = run_double(
        "v1.34.2",
        &["join", "--token", "abcdef.0123456789abcdef"],
        JOIN_V4,
    );
    assert!(!ok);
    assert!(
        out.contains("can not mix '--config' with arguments"),
        "{out}"
    );
    let (ok, out) = run_double(
        "v1.34.2",
        &[
            "join",
            "--skip-phases=preflight",
            "--ignore-preflight-errors=all",
        ],
        JOIN_V4,
    );
    assert!(ok, "{out}");
}

#[test]
fn preflight_refuses_a_node_that_was_not_reset() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(&cfg, JOIN_V4).unwrap();
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_kubeadm-test-double"))
            .args(["join", "--config", cfg.to_str().unwrap()])
            .env("KUBEADM_TEST_DOUBLE_ROOT", dir.path())
            .output()
            .unwrap()
    };
    assert!(run().status.success());
    let second = run();
    assert!(!second.status.success());
    assert!(
        text(&second).contains("[ERROR FileAvailable--etc-kubernetes-kubelet.conf]"),
        "{}",
        text(&second)
    );
}

/// Every example document renders to a config the double accepts, for a
/// v1beta3 kubeadm and a v1beta4 kubeadm.
#[test]
fn every_rendered_example_passes_the_doubles_validation() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../cloud-init/examples");
    let mut n = 0;
    for entry in std::fs::read_dir(examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        for version in ["v1.30.4", "v1.34.2"] {
            let out = Command::new(env!("CARGO_BIN_EXE_kubeboot-under-test"))
                .args([
                    "render",
                    "--show-secrets",
                    "--kubeadm-version",
                    version,
                    "--document",
                ])
                .arg(&path)
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", text(&out));
            let config = String::from_utf8(out.stdout).unwrap();
            let dir = tempfile::tempdir().unwrap();
            let cfg = dir.path().join("c.yaml");
            std::fs::write(&cfg, &config).unwrap();
            let v = Command::new(env!("CARGO_BIN_EXE_kubeadm-test-double"))
                .args(["config", "validate", "--config", cfg.to_str().unwrap()])
                .env("KUBEADM_TEST_DOUBLE_VERSION", version)
                .output()
                .unwrap();
            assert!(
                v.status.success(),
                "{} for kubeadm {version}:\n{config}\n{}",
                path.display(),
                text(&v)
            );
            n += 1;
        }
    }
    assert_eq!(n, 8);
}
