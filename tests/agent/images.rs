//! The preloaded container images against a real containerd (Debian's 1.6, the
//! one the production image ships; `scripts/setup.sh` unpacks it, nothing is
//! installed or started on the host): `prepare` imports what the node's role
//! needs, with the real `ctr`, archives made by `kubeboot image oci` as the
//! image build makes them. Needs root (containerd mounts to unpack layers).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{assert_exit, init_doc, text, write, TestNode, WORKER};

/// Where the containerd binaries are: `KUBEBOOT_CONTAINERD_BIN`, else where
/// `scripts/setup.sh` unpacks Debian's package. Missing is a failure, never a skip.
fn containerd_bin() -> PathBuf {
    let dir = std::env::var_os("KUBEBOOT_CONTAINERD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/kubeboot-containerd/usr/bin"));
    assert!(
        dir.join("containerd").exists() && dir.join("ctr").exists(),
        "containerd and ctr are needed in {} (run scripts/setup.sh, or set KUBEBOOT_CONTAINERD_BIN)",
        dir.display()
    );
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root: containerd mounts overlay file systems to unpack layers"
    );
    dir
}

/// A real containerd listening on `socket`, stopped on drop.
struct Containerd {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Containerd {
    fn start(bin: &Path, socket: &Path) -> Containerd {
        let dir = tempfile::tempdir().unwrap();
        let _ = std::fs::remove_file(socket);
        std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
        let config = dir.path().join("config.toml");
        write(
            &config,
            &format!(
                "version = 2\nroot = \"{root}/root\"\nstate = \"{root}/state\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{sock}\"\n",
                root = dir.path().display(),
                sock = socket.display()
            ),
        );
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = Command::new(bin.join("containerd"))
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let mut c = Containerd { child, _dir: dir };
        let started = Instant::now();
        while !socket.exists() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "containerd did not listen within 30 s"
            );
            assert!(c.child.try_wait().unwrap().is_none(), "containerd exited");
            std::thread::sleep(Duration::from_millis(50));
        }
        c
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Image references in containerd's k8s.io namespace, by the real ctr.
fn image_refs(bin: &Path, socket: &Path) -> Vec<String> {
    let out = Command::new(bin.join("ctr"))
        .arg("--address")
        .arg(socket)
        .args(["-n", "k8s.io", "images", "ls", "-q"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let mut refs: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    refs.sort();
    refs
}

/// Lay out the image's archives as the production postinst does: `group/name.tar`
/// made by `kubeboot image oci`, and a SHA256SUMS per group.
fn preload(node: &TestNode, images: &[(&str, &str)]) {
    for (group, name) in images {
        let dir = node.path(&format!("/usr/lib/kubeboot/images/{group}"));
        std::fs::create_dir_all(&dir).unwrap();
        let file = name.split(['/', ':']).nth(1).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_kubeboot-under-test"))
            .args(["image", "oci", "--source-date-epoch", "0", "--name", name])
            .arg("--out")
            .arg(dir.join(format!("{file}.tar")))
            .args([
                "--add",
                &format!("{}=/bin/{file}", env!("CARGO_BIN_EXE_kubeadm-test-double")),
            ])
            .args(["--entrypoint", &format!("/bin/{file}")])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    for group in ["node", "control-plane"] {
        let dir = node.path(&format!("/usr/lib/kubeboot/images/{group}"));
        if dir.exists() {
            let st = Command::new("sh")
                .arg("-c")
                .arg("sha256sum ./*.tar > SHA256SUMS")
                .current_dir(&dir)
                .status()
                .unwrap();
            assert!(st.success());
        }
    }
}

const IMAGES: [(&str, &str); 3] = [
    ("node", "registry.k8s.io/pause:3.9"),
    ("node", "registry.k8s.io/kube-proxy:v1.28.7"),
    ("control-plane", "registry.k8s.io/etcd:3.5.16-0"),
];

#[test]
fn a_worker_imports_only_what_it_runs_and_a_control_plane_everything() {
    let bin = containerd_bin();
    let ctr_on_path = |node: &TestNode| node.add_program("ctr", &bin.join("ctr"));

    let worker = TestNode::new(WORKER);
    ctr_on_path(&worker);
    preload(&worker, &IMAGES);
    let socket = worker.path("/run/containerd/containerd.sock");
    let _containerd = Containerd::start(&bin, &socket);
    let out = worker.agent(&[]);
    assert_exit(&out, 0);
    assert_eq!(
        image_refs(&bin, &socket),
        [
            "registry.k8s.io/kube-proxy:v1.28.7",
            "registry.k8s.io/pause:3.9"
        ]
    );
    let log = text(&out);
    for name in ["pause.tar", "kube-proxy.tar"] {
        assert!(
            log.contains(&format!("imported container image {name} (")),
            "{log}"
        );
    }
    assert!(log.contains("/2) in"), "{log}");
    assert!(!log.contains("etcd"), "{log}");
    let stamps = worker.read("/var/lib/kubeboot/images-loaded");
    assert_eq!(stamps.lines().count(), 2, "{stamps}");
    assert!(stamps.lines().all(|l| l.starts_with("node ")), "{stamps}");

    let init = TestNode::new(&init_doc());
    ctr_on_path(&init);
    preload(&init, &IMAGES);
    let socket = init.path("/run/containerd/containerd.sock");
    let _containerd = Containerd::start(&bin, &socket);
    assert_exit(&init.agent(&[]), 0);
    assert_eq!(image_refs(&bin, &socket).len(), 3);
}

#[test]
fn an_archive_containerd_refuses_fails_prepare_before_kubeadm() {
    let bin = containerd_bin();
    let node = TestNode::new(WORKER);
    node.add_program("ctr", &bin.join("ctr"));
    preload(&node, &IMAGES[..1]);
    // Damage the archive after its sum was taken: the image is broken.
    write(
        &node.path("/usr/lib/kubeboot/images/node/pause.tar"),
        "not a tar archive",
    );
    let socket = node.path("/run/containerd/containerd.sock");
    let _containerd = Containerd::start(&bin, &socket);
    let out = node.agent(&[]);
    assert_exit(&out, 1);
    let status = node.status_json();
    let status_text = status.to_string();
    assert!(status_text.contains("image_load"), "{status_text}");
    assert!(status_text.contains("pause.tar"), "{status_text}");
    assert!(node.kubeadm_calls().is_empty(), "kubeadm must not run");
    assert!(!node.path("/var/lib/kubeboot/images-loaded").exists());
}

/// The server release's control-plane images are `docker save` archives tagged
/// `registry.k8s.io/<name>-amd64:<tag>`; the image build renames them, and the
/// real containerd imports them under the names kubeadm asks for.
#[test]
fn the_release_archives_the_build_renames_import_under_kubeadms_names() {
    use kubeboot_image::kubernetes::{self, test_support};
    let bin = containerd_bin();
    let release = tempfile::tempdir().unwrap();
    let artifacts = kubernetes::prepare(&test_support::server_tree(release.path())).unwrap();
    let plan = artifacts.plan(None).unwrap();
    let node = TestNode::new(&init_doc());
    node.add_program("ctr", &bin.join("ctr"));
    artifacts.stage(&node.path("/"), &plan).unwrap();
    for group in ["node", "control-plane"] {
        let st = Command::new("sh")
            .arg("-c")
            .arg("sha256sum ./*.tar > SHA256SUMS")
            .current_dir(node.path(&format!("/usr/lib/kubeboot/images/{group}")))
            .status()
            .unwrap();
        assert!(st.success());
    }
    let socket = node.path("/run/containerd/containerd.sock");
    let _containerd = Containerd::start(&bin, &socket);
    assert_exit(&node.agent(&[]), 0);
    let want: Vec<String> = test_support::RELEASE_IMAGES
        .iter()
        .map(|c| format!("registry.k8s.io/{c}:{}", test_support::VERSION))
        .collect();
    let mut want = want;
    want.sort();
    assert_eq!(image_refs(&bin, &socket), want);
}
