//! A node in a temporary directory: a root file system with the kernel
//! interfaces the agent touches (/proc/sys, /sys/module, /proc/swaps, the CRI
//! socket, the console), a PATH holding the kubeadm test double and a kubelet
//! stand-in, and helpers to run the real agent binary against it.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub const TOKEN: &str = "abcdef.0123456789abcdef";
pub const TOKEN_SECRET: &str = "0123456789abcdef";
pub const CERT_KEY: &str = "e6a2eb8581237ab72a4f494f30285ec12a9694d750b9785706a83bfcbbbd2204";
pub const CA_HASH: &str = "sha256:7d4b6c7a2e3f0c1b9a8d5e6f4c3b2a1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b";

pub struct TestNode {
    pub root: tempfile::TempDir,
    bin: tempfile::TempDir,
    pub doc: PathBuf,
    /// The "API endpoint": a real TLS server serving a signed cluster-info.
    pub endpoint: std::net::SocketAddr,
    /// The pin of that cluster's CA (replaces CA_HASH in documents).
    pub ca_hash: String,
    pub ca_pem: String,
    pub env: Vec<(String, String)>,
}

/// A cluster-info server for `token` whose CA is `pki`'s, on 127.0.0.1.
pub fn api_server(
    pki: &crate::tls_server::Pki,
    kubeconfig_ca_pem: &str,
    token: Option<&str>,
) -> std::net::SocketAddr {
    // The kubeconfig names the server; the address is known only once bound, so
    // bind first and let the body carry a placeholder address (not checked).
    api_server_gated(pki, kubeconfig_ca_pem, token, None)
}

/// [`api_server`] that answers only once `gate` exists (before, it closes every
/// connection before TLS: nothing answers).
pub fn api_server_gated(
    pki: &crate::tls_server::Pki,
    kubeconfig_ca_pem: &str,
    token: Option<&str>,
    gate: Option<PathBuf>,
) -> std::net::SocketAddr {
    api_server_for_cluster(pki, kubeconfig_ca_pem, token, gate, None)
}

/// [`api_server_gated`] answering from the objects the kubeadm test double stored
/// under `cluster` (its stand-in for the cluster's etcd), see [`CLUSTER_DIR`].
pub fn api_server_for_cluster(
    pki: &crate::tls_server::Pki,
    kubeconfig_ca_pem: &str,
    token: Option<&str>,
    gate: Option<PathBuf>,
    cluster: Option<PathBuf>,
) -> std::net::SocketAddr {
    let body = crate::tls_server::cluster_info_json("127.0.0.1:6443", kubeconfig_ca_pem, token);
    let path = crate::tls_server::CLUSTER_INFO_PATH;
    crate::tls_server::serve_cluster(pki, "127.0.0.1:0", path, &body, None, 1000, gate, cluster)
}

/// Where the kubeadm test double stores the cluster objects its runs create
/// (kubeadm's ConfigMap and RBAC, the Nodes its kubelet would register).
pub const CLUSTER_DIR: &str = "/var/lib/kubeadm-test-double/cluster";

/// Where an init node's API server answers from: once its kubeadm has run.
pub const INIT_GATE: &str = "/etc/kubernetes/admin.conf";

impl TestNode {
    pub fn new(doc_template: &str) -> TestNode {
        let root = tempfile::tempdir().unwrap();
        let bin = tempfile::tempdir().unwrap();
        let pki = crate::tls_server::make_pki();
        // Before an init node's kubeadm has run, nothing answers at its endpoint.
        let gate = doc_template
            .contains("role = \"init\"")
            .then(|| root.path().join(INIT_GATE.trim_start_matches('/')));
        let cluster = root.path().join(CLUSTER_DIR.trim_start_matches('/'));
        let endpoint = api_server_for_cluster(&pki, &pki.ca_pem, Some(TOKEN), gate, Some(cluster));
        let ca_hash = kubeboot_core::tls::ca_hash_of_der(&pki.ca_der).unwrap();
        let r = root.path();
        for (path, content) in [
            ("proc/sys/net/ipv4/ip_forward", "0\n"),
            ("proc/sys/net/bridge/bridge-nf-call-iptables", "0\n"),
            ("proc/sys/net/bridge/bridge-nf-call-ip6tables", "0\n"),
            (
                "proc/sys/kernel/random/boot_id",
                "1b2c3d4e-0000-4000-8000-000000000001\n",
            ),
            (
                "proc/swaps",
                "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n",
            ),
            (
                "proc/cmdline",
                "BOOT_IMAGE=/vmlinuz root=PARTUUID=x console=ttyS0 quiet\n",
            ),
            ("etc/machine-id", "5f4dcc3b5aa765d61d8327deb882cf99\n"),
            ("etc/hostname", "test-node\n"),
            ("run/containerd/containerd.sock", ""),
            ("run/systemd/timesync/synchronized", ""),
            ("dev/console", ""),
        ] {
            write(&r.join(path), content);
        }
        for m in ["overlay", "br_netfilter"] {
            fs::create_dir_all(r.join("sys/module").join(m)).unwrap();
        }
        std::os::unix::fs::symlink(
            env!("CARGO_BIN_EXE_kubeadm-test-double"),
            bin.path().join("kubeadm"),
        )
        .unwrap();
        let kubelet = bin.path().join("kubelet");
        write(&kubelet, "#!/bin/sh\necho Kubernetes v1.34.2\n");
        fs::set_permissions(&kubelet, fs::Permissions::from_mode(0o755)).unwrap();
        let doc = bin.path().join("node.toml");
        let node = TestNode {
            root,
            bin,
            doc,
            endpoint,
            ca_hash,
            ca_pem: pki.ca_pem.clone(),
            env: Vec::new(),
        };
        node.set_doc(doc_template);
        node
    }

    /// Put a real program on this node's PATH under `name`.
    pub fn add_program(&self, name: &str, target: &Path) {
        std::os::unix::fs::symlink(target, self.bin.path().join(name)).unwrap();
    }

    pub fn path(&self, node_path: &str) -> PathBuf {
        self.root.path().join(node_path.trim_start_matches('/'))
    }

    /// Write the document, filling in this node's endpoint and CA pin.
    pub fn set_doc(&self, text: &str) {
        let text = text
            .replace("ENDPOINT", &self.endpoint.to_string())
            .replace(CA_HASH, &self.ca_hash);
        write(&self.doc, &text);
    }

    pub fn with_env(mut self, k: &str, v: &str) -> TestNode {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn kubeboot(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kubeboot-under-test"));
        c.arg("--root").arg(self.root.path()).args(args);
        c.env_clear()
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", self.bin.path().display()),
            )
            .env("KUBEADM_TEST_DOUBLE_ROOT", self.root.path())
            .env("KUBEBOOT_LOG", "info");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// `kubeboot agent --document <doc>` plus extra args.
    pub fn agent(&self, extra: &[&str]) -> Output {
        let doc = self.doc.to_string_lossy().to_string();
        let mut args = vec!["agent", "--document", doc.as_str()];
        args.extend_from_slice(extra);
        self.kubeboot(&args).output().unwrap()
    }

    pub fn agent_env(&self, env: &[(&str, &str)]) -> Output {
        let doc = self.doc.to_string_lossy().to_string();
        let mut c = self.kubeboot(&["agent", "--document", doc.as_str()]);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    }

    /// Every call the kubeadm test double recorded, in order.
    pub fn kubeadm_calls(&self) -> Vec<Value> {
        fs::read_to_string(self.path("/var/log/kubeadm-test-double/calls.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The argv of the `i`-th recorded kubeadm call.
    pub fn kubeadm_argv(&self, i: usize) -> Vec<String> {
        self.kubeadm_calls()[i]["argv"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect()
    }

    /// The kubeadm configuration file the `i`-th recorded kubeadm call was given.
    pub fn kubeadm_config(&self, i: usize) -> String {
        self.kubeadm_calls()[i]["config"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The subcommand of every recorded call (not the double's own events).
    pub fn kubeadm_subcommands(&self) -> Vec<String> {
        self.kubeadm_calls()
            .iter()
            .filter_map(|c| c["argv"][0].as_str().map(str::to_string))
            .collect()
    }

    pub fn console(&self) -> Vec<String> {
        fs::read_to_string(self.path("/dev/console"))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub fn status_json(&self) -> Value {
        serde_json::from_str(&fs::read_to_string(self.path("/run/kubeboot/status.json")).unwrap())
            .unwrap()
    }

    pub fn state_json(&self) -> Value {
        serde_json::from_str(
            &fs::read_to_string(self.path("/var/lib/kubeboot/state.json")).unwrap(),
        )
        .unwrap()
    }

    pub fn read(&self, node_path: &str) -> String {
        fs::read_to_string(self.path(node_path)).unwrap()
    }

    pub fn mode(&self, node_path: &str) -> u32 {
        fs::metadata(self.path(node_path))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    }

    /// Every file under the root with its mode and contents, except the status
    /// channels (`/run/kubeboot`, `/dev/console`), whose job is to change.
    pub fn tree(&self) -> BTreeMap<String, (u32, Vec<u8>)> {
        let mut out = self.full_tree();
        out.retain(|k, _| !k.starts_with("run/kubeboot") && k != "dev/console");
        out
    }

    /// The whole tree, status channels included.
    pub fn full_tree(&self) -> BTreeMap<String, (u32, Vec<u8>)> {
        let mut out = BTreeMap::new();
        walk(self.root.path(), self.root.path(), &mut out);
        out
    }
}

fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, (u32, Vec<u8>)>) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let rel = p.strip_prefix(base).unwrap().to_string_lossy().to_string();
        let meta = fs::symlink_metadata(&p).unwrap();
        if meta.is_dir() {
            out.insert(
                format!("{rel}/"),
                (meta.permissions().mode() & 0o777, vec![]),
            );
            walk(base, &p, out);
        } else {
            out.insert(
                rel,
                (meta.permissions().mode() & 0o777, fs::read(&p).unwrap()),
            );
        }
    }
}

pub fn write(p: &Path, content: &str) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, content).unwrap();
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[track_caller]
pub fn assert_exit(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "unexpected exit; output:\n{}",
        text(o)
    );
}

pub const WORKER: &str = r#"
version = 1
role = "worker"
[cluster]
endpoint = "ENDPOINT"
kubernetes_version = "v1.34.2"
[discovery]
token = "abcdef.0123456789abcdef"
ca_cert_hashes = ["sha256:7d4b6c7a2e3f0c1b9a8d5e6f4c3b2a1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b"]
timeout_seconds = 5
[node]
name = "worker-7"
labels = { "node.kubernetes.io/pool" = "general" }
[kubeadm]
retry_backoff_seconds = 0.0
[preflight]
clock_sync_timeout_seconds = 1
cri_timeout_seconds = 1
"#;

pub const CONTROL_PLANE: &str = r#"
version = 1
role = "control-plane"
[cluster]
endpoint = "ENDPOINT"
[discovery]
token = "abcdef.0123456789abcdef"
ca_cert_hashes = ["sha256:7d4b6c7a2e3f0c1b9a8d5e6f4c3b2a1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b"]
certificate_key = "e6a2eb8581237ab72a4f494f30285ec12a9694d750b9785706a83bfcbbbd2204"
timeout_seconds = 5
[node]
name = "cp-2"
advertise_address = "10.0.0.12"
[kubeadm]
retry_backoff_seconds = 0.0
[preflight]
clock_sync_timeout_seconds = 1
cri_timeout_seconds = 1
"#;

/// A real CA (certificate and key PEM) for init documents, made once per test run.
pub fn test_ca() -> &'static (String, String) {
    static CA: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    CA.get_or_init(|| {
        let pki = crate::tls_server::make_pki();
        (pki.ca_pem, pki.ca_key_pem)
    })
}

pub fn init_doc() -> String {
    format!(
        r#"
version = 1
role = "init"
[cluster]
endpoint = "ENDPOINT"
kubernetes_version = "v1.34.2"
pod_subnet = "10.244.0.0/16"
[discovery]
token = "{TOKEN}"
certificate_key = "{CERT_KEY}"
[node]
name = "cp-1"
[pki]
ca_cert = """{}"""
ca_key = """{}"""
[kubeadm]
retry_backoff_seconds = 0.0
[preflight]
clock_sync_timeout_seconds = 1
cri_timeout_seconds = 1
"#,
        test_ca().0,
        test_ca().1
    )
}
