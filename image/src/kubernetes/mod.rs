//! The Kubernetes of an air-gapped production image, from the user's own copy of
//! the official release artifacts (`--kubernetes PATH`, `KUBEBOOT_KUBERNETES`):
//! the server release tarball or its tree, per-binary downloads, or a `bin/` tree
//! with its `SHA256SUMS` ([`Layout`]). Every checksum file present is verified,
//! and the sha256 and version of what is used are printed.
//!
//! Staged into the image tree:
//! - `/usr/bin/{kubeadm,kubelet,kubectl,crictl}`, as the official packages install them;
//! - `/usr/lib/kubeboot/images/{node,control-plane}/*.tar`: container image archives
//!   given ready-made (the release's control-plane images, renamed to what kubeadm
//!   asks for, and `--images DIR`);
//! - `/usr/lib/kubeboot/stage/`: the binaries the production profile's
//!   post-installation script turns into container images, then deletes;
//! - `/usr/lib/kubeboot/image.toml`: what the image provides ([`NodeImage`]).

mod archives;
mod checksums;
mod layout;
mod plan;

use std::path::{Path, PathBuf};
use std::process::Command;

pub use archives::{inspect, retag, ArchiveInfo, Format};
pub use checksums::sha256;
use kubeboot_core::kubeadm::NodeImage;
pub use layout::{unpack_cached, Layout};
pub use plan::{Group, ImagePlan, PlannedImage, Provider};

/// Installed on the host's PATH, as the kubeadm/kubelet/kubectl/cri-tools packages do.
pub const HOST_BINARIES: [&str; 4] = ["kubeadm", "kubelet", "kubectl", "crictl"];
pub const STAGE_DIR: &str = "usr/lib/kubeboot/stage";
pub const IMAGES_DIR: &str = "usr/lib/kubeboot/images";

/// What is wrong with the Kubernetes artifacts given, and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum KubernetesError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{}: not Kubernetes release artifacts: expected kubernetes/server/bin/kubeadm (the server \
         release, kubernetes-server-linux-amd64.tar.gz), kubeadm (per-binary downloads) or bin/kubeadm \
         with a SHA256SUMS (see docs/real-kubernetes.md)",
        .0.display()
    )]
    UnknownLayout(PathBuf),
    #[error("{}: could not unpack: {why}", archive.display())]
    Unpack { archive: PathBuf, why: String },
    #[error("{} line {line}: expected {expected}", file.display())]
    ChecksumFormat {
        file: PathBuf,
        line: usize,
        expected: &'static str,
    },
    #[error(
        "{}: checksum {got} does not match {want} in {}; the file is damaged or not the one \
         listed: download it again",
        file.display(),
        list.display()
    )]
    ChecksumMismatch {
        file: PathBuf,
        got: String,
        want: String,
        list: PathBuf,
    },
    #[error("{}: no checksum for {name} (a bin/ tree lists every binary in its SHA256SUMS)", list.display())]
    NotListed { list: PathBuf, name: String },
    #[error("{}: missing {name}: {why}", dir.display())]
    Missing {
        dir: PathBuf,
        name: &'static str,
        why: &'static str,
    },
    #[error("{program} {args}: {why}")]
    Version {
        program: String,
        args: String,
        why: String,
    },
    #[error("{}: {why}", file.display())]
    ImageArchive { file: PathBuf, why: String },
}

impl KubernetesError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> KubernetesError {
        KubernetesError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl From<KubernetesError> for String {
    fn from(e: KubernetesError) -> String {
        e.to_string()
    }
}

/// The Kubernetes artifacts named on this machine, if any: `KUBEBOOT_KUBERNETES`.
pub fn find_local() -> Option<PathBuf> {
    std::env::var_os("KUBEBOOT_KUBERNETES")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

/// An etcd on this machine, for an external etcd beside VMs and for the tests:
/// `KUBEBOOT_ETCD`, else Debian's etcd-server (`/usr/bin/etcd`), else the copy
/// `scripts/setup.sh` unpacks.
pub fn local_etcd() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KUBEBOOT_ETCD").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    ["/usr/bin/etcd", "/var/tmp/kubeboot-etcd/usr/bin/etcd"]
        .map(PathBuf::from)
        .into_iter()
        .find(|p| p.is_file())
}

/// Where the binaries are in an artifacts tree (unpacked), whatever its layout.
pub fn bin_dir(root: &Path) -> Result<PathBuf, KubernetesError> {
    layout::classify(root, None).map(|f| f.bin)
}

/// One binary that will be used, and what vouches for it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UsedFile {
    pub name: String,
    pub path: PathBuf,
    pub sha256: String,
    /// The checksum files it was verified against (empty: none came with it).
    pub checked_by: Vec<PathBuf>,
}

/// The artifacts, found, unpacked if needed, and checked.
pub struct Binaries {
    pub layout: Layout,
    pub bin: PathBuf,
    /// Where crictl is (the server release does not carry it).
    crictl: PathBuf,
    /// The archive itself, when one was given, and what vouched for it.
    pub archive: Option<UsedFile>,
    /// The binaries used, each checked.
    pub used: Vec<UsedFile>,
    /// `kubeadm version -o short`.
    pub version: String,
    /// The etcd an etcd image is built from when the artifacts carry none
    /// ([`local_etcd`] when prepared).
    pub local_etcd: Option<PathBuf>,
    /// Holds an unpacked archive while it is needed.
    _unpacked: Option<tempfile::TempDir>,
}

/// Find, unpack (an archive, into a temporary directory) and check the artifacts at `source`.
pub fn prepare(source: &Path) -> Result<Binaries, KubernetesError> {
    prepare_in(source, None)
}

/// [`prepare`], unpacking an archive once into `cache` (kept, reused) when given.
pub fn prepare_in(source: &Path, cache: Option<&Path>) -> Result<Binaries, KubernetesError> {
    let meta = std::fs::metadata(source).map_err(|e| KubernetesError::io(source, e))?;
    let (root, unpacked, archive, sums_beside) = if meta.is_dir() {
        (source.to_path_buf(), None, None, None)
    } else {
        let archive = check_archive(source)?;
        let beside = Some(source.with_file_name("SHA256SUMS"));
        eprintln!("image: unpacking {}", source.display());
        if let Some(cache) = cache {
            (unpack_cached(source, cache)?, None, Some(archive), beside)
        } else {
            let dir = tempfile::Builder::new()
                .prefix("kubeboot-k8s.")
                .tempdir_in("/var/tmp")
                .map_err(|e| KubernetesError::io(Path::new("/var/tmp"), e))?;
            layout::unpack(source, dir.path())?;
            (dir.path().to_path_buf(), Some(dir), Some(archive), beside)
        }
    };
    let found = layout::classify(&root, sums_beside.as_deref())?;
    let mut b = Binaries {
        layout: found.layout,
        crictl: found.bin.join("crictl"),
        bin: found.bin.clone(),
        archive,
        used: Vec::new(),
        version: String::new(),
        local_etcd: local_etcd(),
        _unpacked: unpacked,
    };
    let sums = match &found.sums {
        Some((list, prefix)) if list.is_file() || found.layout == Layout::Bundle => Some((
            list.clone(),
            *prefix,
            checksums::read_sums(list).map_err(|e| with_hint(e, found.layout))?,
        )),
        _ => None,
    };
    if b._unpacked.is_none() && (meta.is_dir() || cache.is_none()) {
        b._unpacked = Some(
            tempfile::Builder::new()
                .prefix("kubeboot-crictl.")
                .tempdir()
                .map_err(|e| KubernetesError::io(Path::new("/tmp"), e))?,
        );
    }
    let scratch = b
        ._unpacked
        .as_ref()
        .map_or(root.clone(), |d| d.path().to_path_buf());
    b.crictl = find_crictl(&found.bin, source, &scratch)?;
    let mut names: Vec<(String, PathBuf)> = HOST_BINARIES
        .iter()
        .map(|n| (n.to_string(), found.bin.join(n)))
        .collect();
    names[3].1 = b.crictl.clone();
    for extra in plan::FROM_BINARIES {
        let path = found.bin.join(extra);
        if path.is_file() {
            names.push((extra.to_string(), path));
        }
    }
    for (name, path) in names {
        if !path.is_file() {
            return Err(KubernetesError::Missing {
                dir: found.bin.clone(),
                name: HOST_BINARIES
                    .iter()
                    .find(|n| **n == name)
                    .copied()
                    .unwrap_or("?"),
                why: "every image carries kubeadm, kubelet and kubectl of one release",
            });
        }
        let listed = found.layout == Layout::Bundle && path.starts_with(&found.bin);
        b.used
            .push(check_binary(&name, &path, sums.as_ref(), listed)?);
    }
    b.version = version_of(&b.bin.join("kubeadm"), &["version", "-o", "short"], |t| {
        Some(t.trim().to_string()).filter(|v| v.starts_with('v'))
    })?;
    let kubelet = version_of(&b.bin.join("kubelet"), &["--version"], |t| {
        t.trim().strip_prefix("Kubernetes ").map(str::to_string)
    })?;
    if kubelet != b.version {
        return Err(KubernetesError::Version {
            program: b.bin.join("kubelet").display().to_string(),
            args: "--version".into(),
            why: format!(
                "kubelet is {kubelet} but kubeadm is {}: give the artifacts of one release",
                b.version
            ),
        });
    }
    Ok(b)
}

fn with_hint(e: KubernetesError, layout: Layout) -> KubernetesError {
    match (e, layout) {
        (KubernetesError::Io { path, source }, Layout::Bundle)
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            KubernetesError::Io {
                path,
                source: std::io::Error::new(
                    source.kind(),
                    "missing: a bin/ tree comes with its SHA256SUMS (sha256sum bin/* > SHA256SUMS)",
                ),
            }
        }
        (e, _) => e,
    }
}

/// An archive: checked against `ARCHIVE.sha256`/`.sha512` beside it and the
/// `SHA256SUMS` beside it, where they list it.
fn check_archive(source: &Path) -> Result<UsedFile, KubernetesError> {
    let mut checked_by = checksums::check_beside(source)?;
    let list = source.with_file_name("SHA256SUMS");
    if list.is_file() {
        let sums = checksums::read_sums(&list)?;
        let name = source.file_name().unwrap_or_default().to_string_lossy();
        if let Some(want) = sums.get(name.as_ref()) {
            checksums::check(source, want, &list)?;
            checked_by.push(list);
        }
    }
    Ok(UsedFile {
        name: source
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
        path: source.to_path_buf(),
        sha256: checksums::sha256(source)?,
        checked_by,
    })
}

fn check_binary(
    name: &str,
    path: &Path,
    sums: Option<&(PathBuf, &str, std::collections::BTreeMap<String, String>)>,
    must_be_listed: bool,
) -> Result<UsedFile, KubernetesError> {
    let mut checked_by = checksums::check_beside(path)?;
    if let Some((list, prefix, sums)) = sums {
        match sums.get(&format!("{prefix}{name}")) {
            Some(want) => {
                checksums::check(path, want, list)?;
                checked_by.push(list.clone());
            }
            // crictl may come from beside a bundle, not from its bin/.
            None if must_be_listed => {
                return Err(KubernetesError::NotListed {
                    list: list.clone(),
                    name: format!("{prefix}{name}"),
                })
            }
            None => {}
        }
    }
    Ok(UsedFile {
        name: name.to_string(),
        path: path.to_path_buf(),
        sha256: checksums::sha256(path)?,
        checked_by,
    })
}

/// crictl: in the binaries' directory, else beside the artifacts (`crictl`, or
/// cri-tools' release archive `crictl-*-linux-amd64.tar.gz`, unpacked into `scratch`).
/// `scratch` is a directory of kubeboot's own (never the user's tree).
fn find_crictl(bin: &Path, source: &Path, scratch: &Path) -> Result<PathBuf, KubernetesError> {
    if bin.join("crictl").is_file() {
        return Ok(bin.join("crictl"));
    }
    let beside = if source.is_dir() {
        source.to_path_buf()
    } else {
        source.parent().unwrap_or(Path::new(".")).to_path_buf()
    };
    if beside.join("crictl").is_file() {
        return Ok(beside.join("crictl"));
    }
    let mut tarballs: Vec<PathBuf> = std::fs::read_dir(&beside)
        .map_err(|e| KubernetesError::io(&beside, e))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap_or_default().to_string_lossy();
            n.starts_with("crictl-") && n.ends_with("-linux-amd64.tar.gz")
        })
        .collect();
    tarballs.sort();
    let Some(tarball) = tarballs.pop() else {
        return Err(KubernetesError::Missing {
            dir: beside,
            name: "crictl",
            why: "kubeadm's preflight needs crictl, and the Kubernetes release does not ship it: \
                  put cri-tools' crictl-<version>-linux-amd64.tar.gz (from \
                  https://github.com/kubernetes-sigs/cri-tools/releases, with its .sha256) or the \
                  crictl binary beside the artifacts",
        });
    };
    checksums::check_beside(&tarball)?;
    let into = scratch.join("crictl-unpacked");
    std::fs::create_dir_all(&into).map_err(|e| KubernetesError::io(&into, e))?;
    layout::unpack(&tarball, &into)?;
    Ok(into.join("crictl"))
}

fn version_of(
    program: &Path,
    args: &[&str],
    pick: impl Fn(&str) -> Option<String>,
) -> Result<String, KubernetesError> {
    let err = |why: String| KubernetesError::Version {
        program: program.display().to_string(),
        args: args.join(" "),
        why,
    };
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| err(format!("{e} (is it a linux-amd64 binary?)")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    pick(&text).ok_or_else(|| err(format!("no version in its output {:?}", text.trim())))
}

impl Binaries {
    /// The lines a build prints about what it uses.
    pub fn report(&self) -> Vec<String> {
        let mut out = vec![format!(
            "image: Kubernetes {}: {}",
            self.version,
            self.layout.describe()
        )];
        for f in self.archive.iter().chain(&self.used) {
            let checked = if f.checked_by.is_empty() {
                "no checksum file came with it: compare with the release's published checksum"
                    .into()
            } else {
                let names: Vec<String> = f
                    .checked_by
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
                format!("checked against {}", names.join(", "))
            };
            out.push(format!(
                "image:   {:<24} sha256 {}  {checked}",
                f.name, f.sha256
            ));
        }
        out
    }

    /// etcd from the artifacts, if they carry it.
    pub fn etcd(&self) -> Option<PathBuf> {
        Some(self.bin.join("etcd")).filter(|p| p.is_file())
    }

    /// The images kubeadm will ask for and where each comes from (`images`: `--images DIR`).
    pub fn plan(&self, images: Option<&Path>) -> Result<ImagePlan, KubernetesError> {
        plan::make(self, images)
    }

    /// Copy into the staged tree.
    pub fn stage(&self, root: &Path, plan: &ImagePlan) -> Result<(), KubernetesError> {
        let copy = |from: &Path, to: PathBuf| -> Result<(), KubernetesError> {
            if let Some(dir) = to.parent() {
                std::fs::create_dir_all(dir).map_err(|e| KubernetesError::io(dir, e))?;
            }
            std::fs::copy(from, &to).map_err(|e| KubernetesError::io(&to, e))?;
            Ok(())
        };
        for name in HOST_BINARIES {
            let from = if name == "crictl" {
                self.crictl.clone()
            } else {
                self.bin.join(name)
            };
            copy(&from, root.join("usr/bin").join(name))?;
        }
        plan.stage(root, &copy)?;
        let image = plan.node_image(&self.version);
        let path = root.join(NodeImage::PATH.trim_start_matches('/'));
        std::fs::write(&path, image.to_toml()).map_err(|e| KubernetesError::io(&path, e))
    }
}

/// Release artifacts made of small scripts, for tests (feature `test-support`:
/// the tests crate turns it on; the product never calls it).
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;

#[cfg(test)]
mod tests;
