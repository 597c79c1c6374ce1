//! Against the real kubeadm: `KUBEBOOT_TEST_KUBEADM=/path/to/kubeadm`, else the
//! real binaries (control_plane::k8s_bin: KUBEBOOT_K8S_BIN or KUBEBOOT_KUBERNETES).
//! Every rendered config must pass `kubeadm config validate`. Ignored by default
//! (they need real Kubernetes); with `-- --include-ignored` and no real kubeadm
//! they fail, they never skip.

use std::process::Command;

use crate::harness::*;

fn real_kubeadm() -> std::path::PathBuf {
    std::env::var_os("KUBEBOOT_TEST_KUBEADM")
        .map(Into::into)
        .unwrap_or_else(|| crate::control_plane::k8s_bin().join("kubeadm"))
}

#[test]
#[ignore = "needs real Kubernetes: KUBEBOOT_KUBERNETES (docs/real-kubernetes.md)"]
fn real_kubeadm_accepts_every_rendered_config() {
    let kubeadm = real_kubeadm();
    let version = Command::new(&kubeadm)
        .args(["version", "-o", "short"])
        .output()
        .expect("run kubeadm");
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    assert!(
        version.starts_with("v1."),
        "{} gave no version: nothing validated",
        kubeadm.display()
    );
    let external_etcd = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../cloud-init/examples/init-external-etcd.toml"),
    )
    .unwrap();
    let plain = [
        ("init", init_doc()),
        ("control-plane join", CONTROL_PLANE.to_string()),
        ("worker join", WORKER.to_string()),
        ("init with external etcd", external_etcd),
    ];
    // Each again as `bundle new --slow-host` tunes it: with kubeadm ≥ 1.31 its
    // v1beta4 `timeouts` (tlsBootstrap, etcdAPICall, ...) must be names kubeadm knows.
    let slow = plain.clone().map(|(what, doc)| {
        let doc = if doc.contains("[kubeadm]\n") {
            doc.replacen(
                "[kubeadm]\n",
                "[kubeadm]\ncontrol_plane_timeout_seconds = 1500\n",
                1,
            )
        } else {
            format!("{doc}\n[kubeadm]\ncontrol_plane_timeout_seconds = 1500\n")
        };
        (what, doc)
    });
    let mut validated = 0;
    for (what, doc) in plain.into_iter().chain(slow) {
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
            "kubeadm {version} rejected the {what} config:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            text(&v)
        );
        validated += 1;
    }
    assert_eq!(validated, 8, "every rendered config went through kubeadm");
}

/// `kubeadm init phase certs all` with a bundle's PKI in the certificates dir
/// must keep the bundle's CA (same hash) and issue the rest from it.
#[test]
#[ignore = "needs real Kubernetes: KUBEBOOT_KUBERNETES (docs/real-kubernetes.md)"]
fn real_kubeadm_keeps_the_bundles_ca() {
    let kubeadm = real_kubeadm();
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

/// The configuration an air-gapped production image renders (image.toml: never
/// pull, etcd's tag, no CoreDNS) is one the real kubeadm accepts, and kubeadm's
/// own image list then names exactly the images the image preloads.
#[test]
#[ignore = "needs real Kubernetes: KUBEBOOT_KUBERNETES (docs/real-kubernetes.md)"]
fn real_kubeadm_accepts_the_air_gapped_rendering_and_lists_our_images() {
    let kubeadm = real_kubeadm();
    let node = TestNode::new(&init_doc().replace("kubernetes_version = \"v1.34.2\"\n", ""));
    let version = crate::control_plane::k8s_version();
    write(
        &node.path("/usr/lib/kubeboot/image.toml"),
        &format!(
            "kubernetes_version = \"{version}\"\noffline = true\nimage_repository = \"registry.k8s.io\"\n\
             etcd_tag = \"3.5.16-0\"\npause_tag = \"3.9\"\ncoredns = false\n"
        ),
    );
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
    let yaml = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(yaml.contains("imagePullPolicy: Never"), "{yaml}");
    assert!(yaml.contains("- addon/coredns"), "{yaml}");
    let v = Command::new(&kubeadm)
        .args(["config", "validate", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        v.status.success(),
        "kubeadm rejected:\n{yaml}\n{}",
        text(&v)
    );
    let list = Command::new(&kubeadm)
        .args(["config", "images", "list", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(list.status.success(), "{}", text(&list));
    let images = String::from_utf8_lossy(&list.stdout);
    for want in [
        &format!("registry.k8s.io/kube-apiserver:{version}"),
        &format!("registry.k8s.io/kube-proxy:{version}"),
        "registry.k8s.io/etcd:3.5.16-0",
        "registry.k8s.io/pause:3.9",
    ] {
        assert!(
            images.lines().any(|l| l == want),
            "{want} not in:\n{images}"
        );
    }
}

/// A `bundle new --slow-host` init document, as the agent renders it, is one the
/// real kubeadm applies: with the probe patches the agent writes
/// (`static_pod_startup_seconds`, `static_pod_liveness_seconds`) its dry-run
/// manifests carry the raised failureThresholds and the liveness timeout and keep
/// the rest of kubeadm's probes; etcd, the controller manager and the scheduler get
/// the slower heartbeats and leases.
#[test]
#[ignore = "needs real Kubernetes: KUBEBOOT_KUBERNETES (docs/real-kubernetes.md)"]
fn real_kubeadm_applies_the_slow_host_tuning() {
    let kubeadm = real_kubeadm();
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("b");
    let out = Command::new(env!("CARGO_BIN_EXE_kubeboot-under-test"))
        .args([
            "bundle",
            "new",
            "--slow-host",
            "--endpoint",
            "k8s-api.test:6443",
            "--out",
        ])
        .arg(&bundle)
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let text_doc = std::fs::read_to_string(bundle.join("nodes/init.toml")).unwrap();
    let doc = kubeboot_core::document::load(&text_doc).expect("document");
    let cfg = write_config_with_patches(tmp.path(), &doc);
    let manifests = dry_run_manifests(
        &kubeadm,
        &cfg,
        &[&["control-plane", "all"], &["etcd", "local"]],
    );
    let mut seen = Vec::new();
    for (name, manifest) in &manifests {
        let pod: serde_yaml_ng::Value = serde_yaml_ng::from_str(manifest).unwrap();
        let c = &pod["spec"]["containers"][0];
        // 10 s delay + 149 probes 10 s apart ≥ 1500 s; 90 failed probes ≥ 900 s.
        assert_eq!(
            c["startupProbe"]["failureThreshold"], 149,
            "{name}: {manifest}"
        );
        assert_eq!(
            c["livenessProbe"]["failureThreshold"], 90,
            "{name}: {manifest}"
        );
        assert_eq!(
            c["livenessProbe"]["timeoutSeconds"], 30,
            "{name}: {manifest}"
        );
        // The patch merges: kubeadm's own probe target stays.
        assert!(
            c["livenessProbe"]["httpGet"]["path"].is_string(),
            "{name}: {manifest}"
        );
        let flags: Vec<&str> = c["command"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(|f| f.as_str())
            .collect();
        let want: &[&str] = match name.as_str() {
            "etcd.yaml" => &["--heartbeat-interval=500", "--election-timeout=5000"],
            "kube-apiserver.yaml" => &[],
            _ => &[
                "--leader-elect-lease-duration=120s",
                "--leader-elect-renew-deadline=100s",
                "--leader-elect-retry-period=10s",
            ],
        };
        for w in want {
            assert!(flags.contains(w), "{name}: {w} not in {flags:?}");
        }
        seen.push(name.clone());
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "etcd.yaml",
            "kube-apiserver.yaml",
            "kube-controller-manager.yaml",
            "kube-scheduler.yaml"
        ]
    );
}

/// The kubeadm configuration the agent renders for `doc`, written to
/// `dir/kubeadm.yaml`, with its startup patches written to `dir/patches` (where
/// the config then points instead of the node's fixed patches folder).
fn write_config_with_patches(
    dir: &std::path::Path,
    doc: &kubeboot_core::document::ValidDocument,
) -> std::path::PathBuf {
    let patches = dir.join("patches");
    std::fs::create_dir(&patches).unwrap();
    for (file, patch) in kubeboot_core::kubeadm::startup_patches(doc) {
        std::fs::write(patches.join(file), patch).unwrap();
    }
    let yaml = kubeboot_core::kubeadm::render(
        doc,
        kubeboot_core::kubeadm::ApiVersion::V1Beta3,
        &kubeboot_core::kubeadm::ConfigPaths::default(),
        &kubeboot_core::kubeadm::NodeImage::unknown(),
    )
    .unwrap()
    .expose()
    .replace(
        kubeboot_core::kubeadm::STARTUP_PATCHES_DIR,
        patches.to_str().unwrap(),
    );
    let cfg = dir.join("kubeadm.yaml");
    std::fs::write(&cfg, &yaml).unwrap();
    cfg
}

/// The static Pod manifests kubeadm's `phases` (e.g. `control-plane all`, `etcd local`)
/// write for `cfg` in their dry runs (each into a fresh
/// /etc/kubernetes/tmp/kubeadm-init-dryrun*, removed here).
fn dry_run_manifests(
    kubeadm: &std::path::Path,
    cfg: &std::path::Path,
    phases: &[&[&str]],
) -> Vec<(String, String)> {
    let dryruns = || -> std::collections::BTreeSet<std::path::PathBuf> {
        std::fs::read_dir("/etc/kubernetes/tmp")
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.to_string_lossy().contains("kubeadm-init-dryrun"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let before = dryruns();
    let run = |phase: &[&str]| {
        Command::new(kubeadm)
            .args(["init", "phase"])
            .args(phase)
            .args(["--dry-run", "--config"])
            .arg(cfg)
            .output()
            .unwrap()
    };
    let outs: Vec<_> = phases.iter().map(|p| run(p)).collect();
    let new: Vec<_> = dryruns().difference(&before).cloned().collect();
    let manifests = new
        .iter()
        .flat_map(|d| std::fs::read_dir(d).unwrap().flatten())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect();
    for d in &new {
        let _ = std::fs::remove_dir_all(d);
    }
    for out in &outs {
        assert!(out.status.success(), "{}", text(out));
        assert!(
            text(out).contains("Applied patch of type \"application/strategic-merge-patch+json\""),
            "{}",
            text(out)
        );
    }
    manifests
}

/// `bundle new --external-etcd … --external-etcd-ca/-cert/-key` (files made by the
/// real kubeadm, as the external-etcd guide makes them): the init document carries
/// the three inline, the agent's config points kubeadm at where the agent writes
/// them, and the real kubeadm's API server manifest uses them; the slow-host
/// tuning leaves out the local-etcd patch (kubeadm refuses local and external together).
#[test]
#[ignore = "needs real Kubernetes: KUBEBOOT_KUBERNETES (docs/real-kubernetes.md)"]
fn real_kubeadm_runs_the_api_server_against_the_bundles_external_etcd() {
    let kubeadm = real_kubeadm();
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("etcd-pki");
    for phase in ["etcd-ca", "apiserver-etcd-client"] {
        let out = Command::new(&kubeadm)
            .args(["init", "phase", "certs", phase, "--cert-dir"])
            .arg(&certs)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    let bundle = tmp.path().join("b");
    let arg = |p: &str| certs.join(p).display().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_kubeboot-under-test"))
        .args([
            "bundle",
            "new",
            "--slow-host",
            "--endpoint",
            "k8s-api.test:6443",
            "--external-etcd",
            "https://10.88.0.1:2379,https://10.88.0.3:2379",
            "--external-etcd-ca",
            &arg("etcd/ca.crt"),
            "--external-etcd-cert",
            &arg("apiserver-etcd-client.crt"),
            "--external-etcd-key",
            &arg("apiserver-etcd-client.key"),
            "--out",
        ])
        .arg(&bundle)
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let mode = |p: &str| {
        std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(bundle.join(p)).unwrap().permissions(),
        ) & 0o777
    };
    assert_eq!(mode("pki/external-etcd.key"), 0o600);
    assert!(
        !bundle.join("pki/etcd/ca.key").exists(),
        "no etcd CA of its own"
    );
    let text_doc = std::fs::read_to_string(bundle.join("nodes/init.toml")).unwrap();
    assert!(!text_doc.contains("etcd.local"), "{text_doc}");
    let doc = kubeboot_core::document::load(&text_doc).expect("document");
    let etcd = doc.cluster.etcd.as_ref().expect("[cluster.etcd]");
    assert_eq!(
        etcd.ca_cert.as_deref(),
        Some(
            std::fs::read_to_string(certs.join("etcd/ca.crt"))
                .unwrap()
                .as_str()
        )
    );
    assert!(etcd.key.is_some() && etcd.key_file.is_none());
    let cfg = write_config_with_patches(tmp.path(), &doc);
    let v = Command::new(&kubeadm)
        .args(["config", "validate", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        v.status.success(),
        "{}\n{}",
        text(&v),
        std::fs::read_to_string(&cfg).unwrap()
    );
    let manifests = dry_run_manifests(&kubeadm, &cfg, &[&["control-plane", "all"]]);
    let manifest = &manifests
        .iter()
        .find(|(name, _)| name == "kube-apiserver.yaml")
        .expect("an API server manifest")
        .1;
    for flag in [
        "--etcd-servers=https://10.88.0.1:2379,https://10.88.0.3:2379",
        "--etcd-cafile=/etc/kubernetes/pki/external-etcd/ca.crt",
        "--etcd-certfile=/etc/kubernetes/pki/external-etcd/client.crt",
        "--etcd-keyfile=/etc/kubernetes/pki/external-etcd/client.key",
    ] {
        assert!(manifest.contains(flag), "{flag} not in:\n{manifest}");
    }
}

/// The CA keys `kubeadm init phase certs` writes (PKCS#1 RSA, `BEGIN RSA PRIVATE
/// KEY`) sign what kubeboot signs with a cluster's CA: serve's admin certificate
/// and the replacement path's client certificates.
#[test]
#[ignore = "needs real Kubernetes: KUBEBOOT_KUBERNETES (docs/real-kubernetes.md)"]
fn the_ca_keys_kubeadm_writes_sign_kubeboots_certificates() {
    let kubeadm = real_kubeadm();
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(&kubeadm)
        .args(["init", "phase", "certs", "ca", "--cert-dir"])
        .arg(tmp.path())
        .output()
        .expect("run kubeadm");
    assert_exit(&out, 0);
    let ca = std::fs::read_to_string(tmp.path().join("ca.crt")).unwrap();
    let key = std::fs::read_to_string(tmp.path().join("ca.key")).unwrap();
    let (cert, _) = kubeboot_core::pki::issue_client_cert(
        &ca,
        &key,
        "kubeboot:test",
        &["system:masters".to_string()],
        std::time::Duration::from_secs(600),
    )
    .unwrap_or_else(|e| {
        panic!(
            "kubeadm's CA key ({}): {e}",
            key.lines().next().unwrap_or("")
        )
    });
    let cert_file = tmp.path().join("client.crt");
    std::fs::write(&cert_file, cert).unwrap();
    let verify = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(tmp.path().join("ca.crt"))
        .arg(&cert_file)
        .output()
        .unwrap();
    assert_exit(&verify, 0);
}
