//! Release artifacts in each of the three layouts, made of small shell scripts
//! that answer the version questions the build asks (`kubeadm version -o short`,
//! `kubeadm config images list`, `kubelet --version`, …) like v1.28.7 does, and
//! `docker save` archives named as the release names them.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::Digest;

pub use super::archives::test_support::docker_save;

pub const VERSION: &str = "v1.28.7";

pub const KUBEADM_IMAGES: &str = "registry.k8s.io/kube-apiserver:v1.28.7
registry.k8s.io/kube-controller-manager:v1.28.7
registry.k8s.io/kube-scheduler:v1.28.7
registry.k8s.io/kube-proxy:v1.28.7
registry.k8s.io/pause:3.9
registry.k8s.io/etcd:3.5.10-0
registry.k8s.io/coredns/coredns:v1.10.1
";

fn script(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn binary(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let body = match name {
        "kubeadm" => format!(
            "case \"$1 $2\" in\n\"version -o\") echo {VERSION} ;;\n\
             \"config images\") printf '%s' '{KUBEADM_IMAGES}' ;;\n*) exit 2 ;;\nesac"
        ),
        "kubelet" => format!("echo 'Kubernetes {VERSION}'"),
        "etcd" => "echo 'etcd Version: 3.5.16'; echo 'Git SHA: x'".into(),
        "pause" => "echo 'pause.c v3.9'".into(),
        other => format!("echo {other}"),
    };
    script(&path, &body);
    path
}

pub const SERVER_BINARIES: [&str; 7] = [
    "kubeadm",
    "kubelet",
    "kubectl",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
];
pub const RELEASE_IMAGES: [&str; 4] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
];

/// `kubernetes/server/bin/` as the server tarball unpacks, with crictl beside
/// `kubernetes/` (the release does not ship it). Returns the tree's root.
pub fn server_tree(root: &Path) -> PathBuf {
    let bin = root.join("kubernetes/server/bin");
    for n in SERVER_BINARIES {
        binary(&bin, n);
    }
    for n in RELEASE_IMAGES {
        let name = format!("registry.k8s.io/{n}-amd64:{VERSION}");
        docker_save(&bin.join(format!("{n}.tar")), &name);
        std::fs::write(bin.join(format!("{n}.docker_tag")), VERSION).unwrap();
    }
    binary(root, "crictl");
    root.to_path_buf()
}

/// Per-binary downloads, each with its `.sha256` as the download site serves it.
pub fn downloads(dir: &Path) -> PathBuf {
    for n in SERVER_BINARIES.iter().chain(&["crictl"]) {
        let p = binary(dir, n);
        let h = hex::encode(sha2::Sha256::digest(std::fs::read(&p).unwrap()));
        std::fs::write(dir.join(format!("{n}.sha256")), h).unwrap();
    }
    dir.to_path_buf()
}

/// `bin/` with every binary an image is built from, and its SHA256SUMS.
pub fn bundle(dir: &Path) -> PathBuf {
    let mut sums = String::new();
    let names = SERVER_BINARIES
        .iter()
        .chain(&["crictl", "etcd", "etcdctl", "pause"]);
    for n in names {
        let p = binary(&dir.join("bin"), n);
        let h = hex::encode(sha2::Sha256::digest(std::fs::read(&p).unwrap()));
        sums.push_str(&format!("{h}  bin/{n}\n"));
    }
    std::fs::write(dir.join("SHA256SUMS"), sums).unwrap();
    dir.to_path_buf()
}
