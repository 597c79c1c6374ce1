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
        ("v1.34.2", format!("{JOIN_V4}timeouts:\n  tlsBootstrapTimeout: 5m0s\n"), "unknown field \"timeouts.tlsBootstrapTimeout\""),
        ("v1.34.2", format!("{JOIN_V4}timeouts:\n  tlsBootstrap: 300\n"), "timeouts.tlsBootstrap: expected a string"),
        ("v1.30.4", JOIN_V4.replace("v1beta4", "v1beta3") + "timeouts:\n  discovery: 5m0s\n", "unknown field \"timeouts\""),
        ("v1.34.2", JOIN_V4.replace("caCertHashes:", "timeout: 5m0s\n    caCertHashes:"), "unknown field \"discovery.bootstrapToken.timeout\""),
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
        // Each as written, and as `bundle new --slow-host` tunes it (v1beta4 `timeouts`
        // in init and both joins).
        let written = std::fs::read_to_string(&path).unwrap();
        let slow_doc = format!("{written}\n[kubeadm]\ncontrol_plane_timeout_seconds = 1500\n");
        let slow = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(slow.path(), &slow_doc).unwrap();
        for (version, doc) in [
            ("v1.30.4", path.as_path()),
            ("v1.34.2", path.as_path()),
            ("v1.30.4", slow.path()),
            ("v1.34.2", slow.path()),
        ] {
            let out = Command::new(env!("CARGO_BIN_EXE_kubeboot-under-test"))
                .args([
                    "render",
                    "--show-secrets",
                    "--kubeadm-version",
                    version,
                    "--document",
                ])
                .arg(doc)
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
                doc.display(),
                text(&v)
            );
            n += 1;
        }
    }
    assert_eq!(n, 16);
}

/// The double's v1beta4 schema (what it accepts, and so what the agent may render)
/// is exactly the released upstream types: tests/vectors/kubeadm_v1beta4_fields.json,
/// transcribed from kubeadm's types.go at the commit it names. A field the double
/// invents, or one upstream has that it lacks, fails here.
#[test]
fn the_doubles_v1beta4_schema_is_the_released_upstream_one() {
    use crate::kubeadm_schema::{self as schema, Api};
    use std::collections::BTreeSet;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("vectors/kubeadm_v1beta4_fields.json");
    let vector: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let shapes = [
        (
            "InitConfiguration",
            schema::init_configuration(Api::V1Beta4),
        ),
        (
            "ClusterConfiguration",
            schema::cluster_configuration(Api::V1Beta4),
        ),
        (
            "JoinConfiguration",
            schema::join_configuration(Api::V1Beta4),
        ),
    ];
    for (kind, shape) in shapes {
        let ours: BTreeSet<String> = schema::field_paths(&shape)
            .into_iter()
            // core/v1 EnvVarSource: not kubeadm's, not in the vector.
            .filter(|p| !p.contains(".valueFrom."))
            .collect();
        let upstream: BTreeSet<String> = vector["kinds"][kind]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .collect();
        let invented: Vec<_> = ours.difference(&upstream).collect();
        let missing: Vec<_> = upstream.difference(&ours).collect();
        assert!(
            invented.is_empty() && missing.is_empty(),
            "{kind}: not upstream {invented:?}, missing {missing:?}"
        );
    }
    // The timeouts, by name, where upstream has them; v1beta3 has none of them.
    let timeouts: Vec<&str> = vector["timeouts_fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(timeouts.contains(&"tlsBootstrap") && timeouts.contains(&"etcdAPICall"));
    for shape in [
        schema::init_configuration(Api::V1Beta4),
        schema::join_configuration(Api::V1Beta4),
    ] {
        let paths = schema::field_paths(&shape);
        for t in &timeouts {
            assert!(paths.contains(&format!("timeouts.{t}")), "timeouts.{t}");
        }
    }
    for shape in [
        schema::init_configuration(Api::V1Beta3),
        schema::cluster_configuration(Api::V1Beta3),
        schema::join_configuration(Api::V1Beta3),
    ] {
        assert!(!schema::field_paths(&shape)
            .iter()
            .any(|p| p.starts_with("timeouts")));
    }
}
