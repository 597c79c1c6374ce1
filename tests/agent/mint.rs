//! `kubeboot serve`'s fresh join credentials against a real control plane on
//! loopback (its own: the certificate upload replaces the shared one's key):
//! a minted bootstrap token is what real `kubeadm token list` shows and passes
//! the agent's discovery once the real bootstrapsigner has signed cluster-info;
//! a minted certificate key opens the re-uploaded certificates with real
//! `kubeadm join phase control-plane-prepare download-certs`, and another key does not.

use std::time::Duration;

use kubeboot::cluster::block_on;
use kubeboot::serve::mint::{self, Usage};
use secrecy::ExposeSecret;

use crate::control_plane::{self, ControlPlane};
use crate::harness::{assert_exit, text};

fn kubeadm(cp: &ControlPlane, args: &[&str]) -> std::process::Output {
    std::process::Command::new(cp.bin.join("kubeadm"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn minted_tokens_and_certificate_keys_work_with_real_kubeadm() {
    let cp = control_plane::own();
    // One runtime per call: a kube client lives on the runtime that made it.
    let admin_conf = cp.admin_conf();
    let (token, _) = block_on(async {
        let admin = kubeboot::cluster::client(&admin_conf).await?;
        mint::bootstrap_token(
            &admin,
            Duration::from_secs(3600),
            Usage::Join,
            "kubeboot serve: worker document for w-1",
        )
        .await
    })
    .unwrap();

    // Real kubeadm lists it, with kubeadm's usages and group.
    let list = kubeadm(
        &cp,
        &[
            "token",
            "list",
            "--kubeconfig",
            admin_conf.to_str().unwrap(),
        ],
    );
    assert!(list.status.success(), "{}", text(&list));
    let listed = String::from_utf8_lossy(&list.stdout).into_owned();
    let line = listed
        .lines()
        .find(|l| l.starts_with(&format!("{}.", token.id)))
        .unwrap_or_else(|| panic!("token {} not in kubeadm token list:\n{listed}", token.id));
    assert!(line.contains("authentication,signing"), "{line}");
    assert!(line.contains("worker document for w-1"), "{line}");
    assert!(line.contains(mint::NODE_GROUP), "{line}");

    // The agent's discovery accepts it once the bootstrapsigner has signed for it.
    let doc = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        doc.path(),
        format!(
            "version = 1\nrole = \"worker\"\n[cluster]\nendpoint = \"{}\"\n\
             [discovery]\ntoken = \"{}\"\nca_cert_hashes = [\"{}\"]\ntimeout_seconds = 60\n",
            cp.endpoint,
            token.token.expose_secret(),
            cp.ca_hash
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubeboot-under-test"))
        .args([
            "discover",
            "--timeout",
            "60",
            "--output",
            "json",
            "--document",
        ])
        .arg(doc.path())
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert!(!text(&out).contains(token.token.expose_secret()));

    // Certificates re-uploaded under a fresh key; kubeadm's own download opens them.
    let files = mint::read_pki(&cp.dir.join("pki")).unwrap();
    assert_eq!(files.len(), 8, "{:?}", files.keys());
    let uploaded = block_on(async {
        let admin = kubeboot::cluster::client(&admin_conf).await?;
        mint::upload_certs(&admin, &files, Duration::from_secs(2 * 3600)).await
    })
    .unwrap();
    let owner = cp.kubectl_ok(&[
        "-n",
        "kube-system",
        "get",
        "secret",
        "kubeadm-certs",
        "-o",
        "jsonpath={.metadata.ownerReferences[0].name}",
    ]);
    assert!(owner.starts_with("bootstrap-token-"), "{owner}");
    assert!(
        !owner.contains(&token.id),
        "the certificates get an owner of their own"
    );

    // What kubeadm's `upload-config kubelet` phase makes (that phase also annotates
    // a Node, which this loopback plane has none of): the join reads it first.
    let kubelet_config = cp.dir.join("kubelet-config.yaml");
    std::fs::write(
        &kubelet_config,
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\n",
    )
    .unwrap();
    let ns = ["-n", "kube-system"];
    let from = format!("--from-file=kubelet={}", kubelet_config.display());
    cp.kubectl_ok(&[ns[0], ns[1], "create", "configmap", "kubelet-config", &from]);
    cp.kubectl_ok(&[
        ns[0],
        ns[1],
        "create",
        "role",
        "kubeadm:kubelet-config",
        "--verb=get",
        "--resource=configmaps",
        "--resource-name=kubelet-config",
    ]);
    cp.kubectl_ok(&[
        ns[0],
        ns[1],
        "create",
        "rolebinding",
        "kubeadm:kubelet-config",
        "--role=kubeadm:kubelet-config",
        &format!("--group={}", mint::NODE_GROUP),
    ]);

    let download = |key: &str| {
        kubeadm(
            &cp,
            &[
                "join",
                "phase",
                "control-plane-prepare",
                "download-certs",
                &cp.endpoint,
                "--control-plane",
                "--certificate-key",
                key,
                "--discovery-token",
                token.token.expose_secret(),
                "--discovery-token-ca-cert-hash",
                &cp.ca_hash,
            ],
        )
    };
    // kubeadm writes what it downloads into the cluster's certificatesDir (this
    // control plane's own pki/): a removed key file comes back, byte for byte.
    let probe = cp.pki("front-proxy-ca.key");
    let before = std::fs::read(&probe).unwrap();
    std::fs::remove_file(&probe).unwrap();
    let wrong = crate::harness::CERT_KEY;
    let refused = download(wrong);
    assert!(!refused.status.success(), "a wrong key must not open them");
    let why = text(&refused);
    assert!(
        why.contains("error decoding secret data with provided key"),
        "{why}"
    );
    assert!(!probe.exists());
    let out = download(uploaded.key.expose_secret());
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read(&probe).unwrap(), before);
}
