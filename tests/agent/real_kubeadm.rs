//! Against the real kubeadm: `KUBEBOOT_TEST_KUBEADM=/path/to/kubeadm`, else the
//! real v1.28.7 binaries (control_plane::k8s_bin: KUBEBOOT_K8S_BIN or
//! ../shared/k8s). Every rendered config must pass `kubeadm config validate`.
//! Without a real kubeadm these tests fail; they never skip.

use std::process::Command;

use crate::harness::*;

fn real_kubeadm() -> std::path::PathBuf {
    std::env::var_os("KUBEBOOT_TEST_KUBEADM")
        .map(Into::into)
        .unwrap_or_else(|| crate::control_plane::k8s_bin().join("kubeadm"))
}

#[test]
fn real_kubeadm_accepts_every_rendered_config() {
    let kubeadm = real_kubeadm();
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
fn real_kubeadm_accepts_the_air_gapped_rendering_and_lists_our_images() {
    let kubeadm = real_kubeadm();
    let node = TestNode::new(&init_doc().replace("kubernetes_version = \"v1.34.2\"\n", ""));
    write(
        &node.path("/usr/lib/kubeboot/image.toml"),
        "kubernetes_version = \"v1.28.7\"\noffline = true\nimage_repository = \"registry.k8s.io\"\n\
         etcd_tag = \"3.5.16-0\"\npause_tag = \"3.9\"\ncoredns = false\n",
    );
    let out = node
        .kubeboot(&[
            "render",
            "--document",
            node.doc.to_str().unwrap(),
            "--kubeadm-version",
            "v1.28.7",
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
        "registry.k8s.io/kube-apiserver:v1.28.7",
        "registry.k8s.io/kube-proxy:v1.28.7",
        "registry.k8s.io/etcd:3.5.16-0",
        "registry.k8s.io/pause:3.9",
    ] {
        assert!(
            images.lines().any(|l| l == want),
            "{want} not in:\n{images}"
        );
    }
}
