//! The Kubernetes binaries of an air-gapped production image: taken from a local
//! archive or directory (`bin/kubeadm`, `bin/kubelet`, … as in ../shared/k8s),
//! checked against its SHA256SUMS, and staged into the image tree:
//!
//! - `/usr/bin/{kubeadm,kubelet,kubectl,crictl}`, as the official packages install them;
//! - `/usr/lib/kubeboot/stage/` — the control-plane binaries, which the profile's
//!   post-installation script turns into container images and then deletes;
//! - `/usr/lib/kubeboot/image.toml` — what the image provides ([`NodeImage`]), which the
//!   agent reads to render a kubeadm configuration that never pulls an image.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::sha256_file;
use kubeboot_agent::kubeadm::NodeImage;

/// Installed on the host's PATH, as the kubeadm/kubelet/kubectl/cri-tools packages do.
pub const HOST_BINARIES: [&str; 4] = ["kubeadm", "kubelet", "kubectl", "crictl"];
/// Turned into container images at build time.
pub const IMAGE_BINARIES: [&str; 7] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
    "etcd",
    "etcdctl",
    "pause",
];
pub const STAGE_DIR: &str = "usr/lib/kubeboot/stage";

/// Where the real Kubernetes binaries are on this machine, if anywhere: the
/// `KUBEBOOT_KUBERNETES` environment variable (archive or directory), else
/// `../shared/k8s/kubernetes-*.tar.xz` next to the repository.
pub fn find_local() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KUBEBOOT_KUBERNETES") {
        return Some(PathBuf::from(p));
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    let shared = repo.parent()?.join("shared/k8s");
    let mut archives: Vec<PathBuf> = std::fs::read_dir(&shared)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap_or_default().to_string_lossy();
            n.starts_with("kubernetes-") && n.ends_with(".tar.xz")
        })
        .collect();
    archives.sort();
    archives.pop()
}

/// The unpacked, checked binaries.
pub struct Binaries {
    pub bin: PathBuf,
    /// Holds the unpacked archive while it is needed.
    _unpacked: Option<tempfile::TempDir>,
}

/// SHA256SUMS lines: "<hex>  <path>".
fn read_sums(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "{}: {e} (the Kubernetes binaries must come with their SHA256SUMS)",
            path.display()
        )
    })?;
    let mut sums = BTreeMap::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let (hash, name) = line
            .split_once(char::is_whitespace)
            .map(|(h, n)| (h, n.trim().trim_start_matches('*')))
            .filter(|(h, _)| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
            .ok_or_else(|| {
                format!(
                    "{} line {}: expected \"<sha256>  <file>\"",
                    path.display(),
                    n + 1
                )
            })?;
        sums.insert(name.to_string(), hash.to_ascii_lowercase());
    }
    Ok(sums)
}

fn check(
    file: &Path,
    name: &str,
    sums: &BTreeMap<String, String>,
    list: &Path,
) -> Result<(), String> {
    let want = sums
        .get(name)
        .ok_or_else(|| format!("{}: no checksum for {name}", list.display()))?;
    let got = sha256_file(file)?;
    if &got != want {
        return Err(format!(
            "{}: SHA-256 {got} does not match {want} in {}; the file is damaged or not the one listed",
            file.display(),
            list.display()
        ));
    }
    Ok(())
}

/// Unpack (if an archive) and check every binary the image needs.
/// `source` is a `.tar.xz`/`.tar.gz`/`.tar` archive with `bin/…`, or a directory
/// holding `bin/…` (or the binaries themselves). SHA256SUMS sits beside the
/// archive, or in the directory.
pub fn prepare(source: &Path) -> Result<Binaries, String> {
    let meta = std::fs::metadata(source).map_err(|e| {
        format!(
            "--kubernetes {}: {e} (give the archive or directory of Kubernetes binaries)",
            source.display()
        )
    })?;
    let (bin, unpacked, sums_path, prefix) = if meta.is_dir() {
        let bin = if source.join("bin/kubeadm").exists() {
            source.join("bin")
        } else {
            source.to_path_buf()
        };
        let prefix = if bin == source { "" } else { "bin/" };
        (bin, None, source.join("SHA256SUMS"), prefix)
    } else {
        let sums_path = source.with_file_name("SHA256SUMS");
        let sums = read_sums(&sums_path)?;
        let name = source
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        check(source, &name, &sums, &sums_path)?;
        let dir = tempfile::Builder::new()
            .prefix("kubeboot-k8s.")
            .tempdir_in("/var/tmp")
            .map_err(|e| e.to_string())?;
        eprintln!(
            "image: unpacking {} (checked against {})",
            source.display(),
            sums_path.display()
        );
        let status = Command::new("tar")
            .arg("-xf")
            .arg(source)
            .arg("-C")
            .arg(dir.path())
            .status()
            .map_err(|e| format!("tar: {e}"))?;
        if !status.success() {
            return Err(format!("{}: could not unpack ({status})", source.display()));
        }
        (dir.path().join("bin"), Some(dir), sums_path, "bin/")
    };
    let sums = read_sums(&sums_path)?;
    for name in HOST_BINARIES.iter().chain(IMAGE_BINARIES.iter()) {
        let file = bin.join(name);
        if !file.exists() {
            return Err(format!(
                "{}: missing {name} (an air-gapped image needs {} and {})",
                bin.display(),
                HOST_BINARIES.join(", "),
                IMAGE_BINARIES.join(", ")
            ));
        }
        check(&file, &format!("{prefix}{name}"), &sums, &sums_path)?;
    }
    Ok(Binaries {
        bin,
        _unpacked: unpacked,
    })
}

fn version_of(
    program: &Path,
    args: &[&str],
    pick: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{}: {e}", program.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    pick(&text).ok_or_else(|| {
        format!(
            "{} {}: no version in {text:?}",
            program.display(),
            args.join(" ")
        )
    })
}

impl Binaries {
    /// What the image will provide, read from the binaries themselves.
    pub fn node_image(&self) -> Result<NodeImage, String> {
        let kubernetes = version_of(
            &self.bin.join("kubeadm"),
            &["version", "-o", "short"],
            |t| Some(t.trim().to_string()).filter(|v| v.starts_with('v')),
        )?;
        let etcd = version_of(&self.bin.join("etcd"), &["--version"], |t| {
            t.lines()
                .find_map(|l| l.strip_prefix("etcd Version:"))
                .map(|v| v.trim().to_string())
        })?;
        let pause = version_of(&self.bin.join("pause"), &["-v"], |t| {
            t.trim().strip_prefix("pause.c v").map(str::to_string)
        })?;
        Ok(NodeImage {
            kubernetes_version: Some(kubernetes),
            offline: true,
            image_repository: "registry.k8s.io".into(),
            // kubeadm's tags for etcd carry a "-N" build suffix; ours is the first build.
            etcd_tag: Some(format!("{etcd}-0")),
            pause_tag: Some(pause),
            coredns: false,
        })
    }

    /// Copy into the staged tree (stripped binaries are not stripped again: they are upstream's).
    pub fn stage(&self, root: &Path, image: &NodeImage) -> Result<(), String> {
        let copy = |name: &str, to: PathBuf| -> Result<(), String> {
            if let Some(dir) = to.parent() {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            std::fs::copy(self.bin.join(name), &to).map_err(|e| format!("stage {name}: {e}"))?;
            Ok(())
        };
        for name in HOST_BINARIES {
            copy(name, root.join("usr/bin").join(name))?;
        }
        for name in IMAGE_BINARIES {
            copy(name, root.join(STAGE_DIR).join(name))?;
        }
        let env = format!(
            "KUBERNETES_VERSION={}\nETCD_TAG={}\nPAUSE_TAG={}\nIMAGE_REPOSITORY={}\n",
            image.kubernetes_version.as_deref().unwrap_or_default(),
            image.etcd_tag.as_deref().unwrap_or_default(),
            image.pause_tag.as_deref().unwrap_or_default(),
            image.image_repository,
        );
        std::fs::write(root.join(STAGE_DIR).join("versions.env"), env)
            .map_err(|e| e.to_string())?;
        let toml = image.to_toml();
        let path = root.join(NodeImage::PATH.trim_start_matches('/'));
        std::fs::write(&path, toml).map_err(|e| format!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("bin")).unwrap();
        let mut sums = String::new();
        for n in HOST_BINARIES.iter().chain(IMAGE_BINARIES.iter()) {
            std::fs::write(d.path().join("bin").join(n), n.as_bytes()).unwrap();
            let h = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(n.as_bytes()));
            sums.push_str(&format!("{h}  bin/{n}\n"));
        }
        std::fs::write(d.path().join("SHA256SUMS"), sums).unwrap();
        d
    }

    #[test]
    fn a_directory_with_matching_sums_is_accepted() {
        let d = fake_dir();
        assert!(prepare(d.path()).is_ok());
    }

    #[test]
    fn a_changed_binary_is_refused_naming_it() {
        let d = fake_dir();
        std::fs::write(d.path().join("bin/kubelet"), b"not the kubelet").unwrap();
        let err = prepare(d.path()).err().unwrap();
        assert!(
            err.contains("kubelet") && err.contains("does not match"),
            "{err}"
        );
    }

    #[test]
    fn missing_sums_and_missing_binaries_are_refused() {
        let d = fake_dir();
        std::fs::remove_file(d.path().join("bin/etcd")).unwrap();
        let err = prepare(d.path()).err().unwrap();
        assert!(err.contains("missing etcd"), "{err}");
        std::fs::remove_file(d.path().join("SHA256SUMS")).unwrap();
        let err = prepare(d.path()).err().unwrap();
        assert!(err.contains("SHA256SUMS"), "{err}");
    }

    /// The real archive from ../shared/k8s, when present: checked, and its versions read.
    #[test]
    fn the_shared_archive_is_checked_and_read() {
        let archive = crate::test_support::shared_k8s_archive().expect("asserted");
        let b = prepare(&archive).unwrap();
        let img = b.node_image().unwrap();
        assert_eq!(img.kubernetes_version.as_deref(), Some("v1.28.7"));
        assert_eq!(img.etcd_tag.as_deref(), Some("3.5.16-0"));
        assert_eq!(img.pause_tag.as_deref(), Some("3.9"));
    }
}
