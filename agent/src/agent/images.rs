//! Preloaded container images (production image): the image ships OCI archives
//! of what kubeadm runs, and `prepare` imports into containerd's `k8s.io`
//! namespace only what this node's role needs, so nothing is ever pulled.
//!
//! Layout, written by the production profile's postinst:
//! - `/usr/lib/kubeboot/images/node/*.tar`: every node (pause, kube-proxy);
//! - `/usr/lib/kubeboot/images/control-plane/*.tar`: control planes only
//!   (etcd, kube-apiserver, kube-controller-manager, kube-scheduler).
//!
//! Each directory has a `SHA256SUMS`. An archive whose line is in
//! `STATE/images-loaded` was imported already (a resumed agent skips it).
//! Under qemu TCG a worker importing the four control-plane archives it never
//! runs took over 20 minutes (docs/performance.md): hence by role.

use std::process::Command;
use std::time::{Duration, Instant};

use kubeboot_core::document::Role;
use kubeboot_core::host::{BoundedError, Host};
use kubeboot_core::status::ErrorKind;

use super::Failure;

pub const IMAGES_DIR: &str = "/usr/lib/kubeboot/images";
/// containerd's namespace for the CRI plugin: where the kubelet looks.
const NAMESPACE: &str = "k8s.io";
/// One import, bounded: 30 minutes covers a starved TCG guest with room.
const IMPORT_LIMIT: Duration = Duration::from_secs(30 * 60);
const LOADED_FILE: &str = "images-loaded";

/// The directories this role imports, in order.
pub fn groups(role: Role) -> &'static [&'static str] {
    if role.is_control_plane() {
        &["node", "control-plane"]
    } else {
        &["node"]
    }
}

/// One archive to import: its `SHA256SUMS` line (the stamp) and node path.
#[derive(Debug, Clone, PartialEq)]
pub struct Archive {
    pub stamp: String,
    pub path: String,
}

impl Archive {
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}

/// The archives this role needs that are not yet imported. Empty when the
/// image preloads nothing (test image, `--from-repository`).
pub fn pending(host: &Host, role: Role, state_dir: &str) -> Result<Vec<Archive>, Failure> {
    let loaded = host
        .read_to_string(format!("{state_dir}/{LOADED_FILE}"))
        .unwrap_or_default();
    let mut out = Vec::new();
    for group in groups(role) {
        let dir = format!("{IMAGES_DIR}/{group}");
        let sums = format!("{dir}/SHA256SUMS");
        if !host.exists(&sums) {
            continue;
        }
        let text = host
            .read_to_string(&sums)
            .map_err(|e| Failure::new(ErrorKind::ImageLoad, e.to_string()))?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let file = parse_sums_line(line).ok_or_else(|| {
                Failure::new(
                    ErrorKind::ImageLoad,
                    format!(
                        "{sums}: not a sha256sum line: {line:?}; the image is damaged, rebuild it"
                    ),
                )
            })?;
            if loaded.lines().any(|l| l == format!("{group} {line}")) {
                continue;
            }
            out.push(Archive {
                stamp: format!("{group} {line}"),
                path: format!("{dir}/{file}"),
            });
        }
    }
    Ok(out)
}

/// `<64 hex>  ./name.tar` → `name.tar` (a plain file name, nothing else).
fn parse_sums_line(line: &str) -> Option<&str> {
    let (hash, file) = line.split_once(char::is_whitespace)?;
    let file = file.trim_start().trim_start_matches('*');
    let file = file.strip_prefix("./").unwrap_or(file);
    let plain = !file.is_empty() && !file.contains('/') && file != ".." && file.ends_with(".tar");
    (hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) && plain).then_some(file)
}

/// Import every pending archive with `ctr`, recording each as it lands.
/// Returns one line per archive for the phase's succeeded event.
pub fn import(
    host: &Host,
    role: Role,
    state_dir: &str,
    containerd_socket: &str,
) -> Result<Vec<String>, Failure> {
    let pending = pending(host, role, state_dir)?;
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    let ctr = host.find_program("ctr").ok_or_else(|| {
        Failure::new(
            ErrorKind::ImageLoad,
            "ctr (containerd's client) is not on PATH but this image preloads container images: the image is incomplete",
        )
    })?;
    let socket = host.path(containerd_socket);
    let total = pending.len();
    let started = Instant::now();
    for (i, archive) in pending.iter().enumerate() {
        let t = Instant::now();
        let mut cmd = host.command(&ctr);
        cmd.arg("--address")
            .arg(&socket)
            .args(["-n", NAMESPACE, "images", "import"])
            .arg(host.path(&archive.path));
        run_bounded(cmd, IMPORT_LIMIT).map_err(|why| {
            Failure::new(
                ErrorKind::ImageLoad,
                format!(
                    "importing {} into containerd ({NAMESPACE}) failed: {why}; \
                     check containerd (journalctl -u containerd) and, if the archive is damaged, rebuild the image",
                    archive.path
                ),
            )
        })?;
        record(host, state_dir, &archive.stamp)?;
        tracing::info!(
            "imported container image {} ({}/{total}) in {:.1}s",
            archive.name(),
            i + 1,
            t.elapsed().as_secs_f64()
        );
    }
    let names: Vec<&str> = pending.iter().map(Archive::name).collect();
    Ok(vec![format!(
        "imported {total} preloaded container image(s) for the {role} role in {:.1}s: {}",
        started.elapsed().as_secs_f64(),
        names.join(", ")
    )])
}

/// Add a stamp to `STATE/images-loaded`, atomically (a crash keeps the old list).
fn record(host: &Host, state_dir: &str, stamp: &str) -> Result<(), Failure> {
    let file = format!("{state_dir}/{LOADED_FILE}");
    let mut text = host.read_to_string(&file).unwrap_or_default();
    text.push_str(stamp);
    text.push('\n');
    host.write_atomic(&file, text.as_bytes(), 0o644)
        .map_err(|e| Failure::new(ErrorKind::HostIo, e.to_string()))
}

/// Run to completion within `limit`; on failure, the exit and the output's tail.
fn run_bounded(cmd: Command, limit: Duration) -> Result<(), String> {
    kubeboot_core::host::run_bounded(cmd, limit).map_err(|e| match e {
        BoundedError::TimedOut(_) => format!("{e} (is containerd overloaded or stuck?)"),
        e => e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_with(files: &[(&str, &str)]) -> (tempfile::TempDir, Host) {
        let root = tempfile::tempdir().unwrap();
        for (p, text) in files {
            let path = root.path().join(p.trim_start_matches('/'));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let host = Host::new(root.path(), "/usr/bin:/bin".into());
        (root, host)
    }

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn image_tree() -> Vec<(String, String)> {
        vec![
            (
                format!("{IMAGES_DIR}/node/SHA256SUMS"),
                format!("{A}  ./pause.tar\n{B}  ./kube-proxy.tar\n"),
            ),
            (
                format!("{IMAGES_DIR}/control-plane/SHA256SUMS"),
                format!("{A}  ./etcd.tar\n"),
            ),
        ]
    }

    fn names(v: &[Archive]) -> Vec<&str> {
        v.iter().map(Archive::name).collect()
    }

    #[test]
    fn a_worker_needs_only_the_node_images_and_a_control_plane_all() {
        let tree = image_tree();
        let files: Vec<(&str, &str)> = tree.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let (_root, host) = host_with(&files);
        let w = pending(&host, Role::Worker, "/var/lib/kubeboot").unwrap();
        assert_eq!(names(&w), ["pause.tar", "kube-proxy.tar"]);
        assert_eq!(w[0].path, format!("{IMAGES_DIR}/node/pause.tar"));
        for role in [Role::Init, Role::ControlPlane] {
            let c = pending(&host, role, "/var/lib/kubeboot").unwrap();
            assert_eq!(names(&c), ["pause.tar", "kube-proxy.tar", "etcd.tar"]);
            assert_eq!(c[2].path, format!("{IMAGES_DIR}/control-plane/etcd.tar"));
        }
    }

    #[test]
    fn imported_archives_are_skipped_and_a_changed_one_is_not() {
        let mut tree = image_tree();
        tree.push((
            "/var/lib/kubeboot/images-loaded".into(),
            format!("node {A}  ./pause.tar\nnode {A}  ./kube-proxy.tar\n"),
        ));
        let files: Vec<(&str, &str)> = tree.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let (_root, host) = host_with(&files);
        // pause is stamped; kube-proxy's stamp is for other content.
        let w = pending(&host, Role::Worker, "/var/lib/kubeboot").unwrap();
        assert_eq!(names(&w), ["kube-proxy.tar"]);
    }

    #[test]
    fn no_preloaded_images_means_nothing_to_do() {
        let (_root, host) = host_with(&[]);
        assert!(pending(&host, Role::Init, "/var/lib/kubeboot")
            .unwrap()
            .is_empty());
        assert!(import(
            &host,
            Role::Init,
            "/var/lib/kubeboot",
            "/run/containerd/containerd.sock"
        )
        .unwrap()
        .is_empty());
    }

    #[test]
    fn a_damaged_sums_file_is_an_image_load_failure() {
        for bad in [
            "../etc/passwd",
            "x  ./pause.tar",
            &format!("{A}  ../up.tar"),
            &format!("{A}  ./a/b.tar"),
        ] {
            let sums = format!("{IMAGES_DIR}/node/SHA256SUMS");
            let (_root, host) = host_with(&[(&sums, bad)]);
            let e = pending(&host, Role::Worker, "/s").unwrap_err();
            assert_eq!(e.kind, ErrorKind::ImageLoad, "{bad}");
            assert!(e.message.contains("SHA256SUMS"), "{}", e.message);
        }
    }

    #[test]
    fn sums_lines_parse_as_sha256sum_writes_them() {
        assert_eq!(
            parse_sums_line(&format!("{A}  ./pause.tar")),
            Some("pause.tar")
        );
        assert_eq!(parse_sums_line(&format!("{A} *etcd.tar")), Some("etcd.tar"));
        assert_eq!(parse_sums_line(&format!("{A}  etcd.tar")), Some("etcd.tar"));
        assert_eq!(parse_sums_line(&format!("{A}  ./notes.txt")), None);
    }

    #[test]
    fn a_failing_or_hanging_import_says_so_with_its_output() {
        let mut sh = Command::new("sh");
        sh.args(["-c", "echo first; echo 'ctr: no such image' >&2; exit 3"]);
        let e = run_bounded(sh, Duration::from_secs(10)).unwrap_err();
        assert!(e.contains("exit status: 3"), "{e}");
        assert!(e.contains("first | ctr: no such image"), "{e}");
        let mut sleep = Command::new("sleep");
        sleep.arg("30");
        let t = Instant::now();
        let e = run_bounded(sleep, Duration::from_millis(300)).unwrap_err();
        assert!(e.contains("did not finish within"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(10));
    }
}
