//! Which of the three forms of Kubernetes release artifacts a path holds, and
//! where its binaries are:
//!
//! 1. [`Layout::ServerRelease`]: `kubernetes-server-linux-amd64.tar.gz` or its
//!    unpacked tree, binaries under `kubernetes/server/bin/` and beside them the
//!    control-plane images as `docker save` archives (`kube-apiserver.tar`, …).
//! 2. [`Layout::Downloads`]: a directory of per-binary downloads (`kubeadm`,
//!    `kubelet`, …), each optionally with its `<name>.sha256`, as the release
//!    download site serves them.
//! 3. [`Layout::Bundle`]: `bin/…` with a `SHA256SUMS` beside `bin/` (a tree) or
//!    beside the archive (`.tar.xz`).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::KubernetesError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    ServerRelease,
    Downloads,
    Bundle,
}

impl Layout {
    pub fn describe(self) -> &'static str {
        match self {
            Layout::ServerRelease => {
                "the Kubernetes server release (kubernetes-server-linux-amd64.tar.gz layout: \
                 kubernetes/server/bin/ with the control-plane images as docker save archives)"
            }
            Layout::Downloads => {
                "per-binary downloads (kubeadm, kubelet, … each with an optional NAME.sha256)"
            }
            Layout::Bundle => "a bin/ tree with its SHA256SUMS",
        }
    }
}

/// Where a layout's binaries are, found in an (unpacked) tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub layout: Layout,
    pub bin: PathBuf,
    /// The SHA256SUMS of a bundle, and the prefix its lines give the binaries.
    pub sums: Option<(PathBuf, &'static str)>,
}

/// Classify the tree at `root`. `sums_beside` is where a bundle archive's
/// SHA256SUMS is (beside the archive, not inside it).
pub fn classify(root: &Path, sums_beside: Option<&Path>) -> Result<Found, KubernetesError> {
    for server in ["kubernetes/server/bin", "server/bin"] {
        let bin = root.join(server);
        if bin.join("kubeadm").is_file() {
            return Ok(Found {
                layout: Layout::ServerRelease,
                bin,
                sums: None,
            });
        }
    }
    if root.join("bin/kubeadm").is_file() {
        let sums = sums_beside.map_or_else(|| root.join("SHA256SUMS"), Path::to_path_buf);
        return Ok(Found {
            layout: Layout::Bundle,
            bin: root.join("bin"),
            sums: Some((sums, "bin/")),
        });
    }
    if root.join("kubeadm").is_file() {
        let sums = root.join("SHA256SUMS");
        return Ok(Found {
            layout: Layout::Downloads,
            bin: root.to_path_buf(),
            sums: sums.is_file().then_some((sums, "")),
        });
    }
    Err(KubernetesError::UnknownLayout(root.to_path_buf()))
}

/// Unpack a tar archive (any compression GNU tar reads) into `into`.
pub fn unpack(archive: &Path, into: &Path) -> Result<(), KubernetesError> {
    let out = Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(into)
        .output()
        .map_err(|e| KubernetesError::io(Path::new("tar"), e))?;
    if !out.status.success() {
        return Err(KubernetesError::Unpack {
            archive: archive.to_path_buf(),
            why: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// `archive` unpacked once under `cache` and reused: a directory named after the
/// archive's path, size and modification time, made under a temporary name and
/// renamed into place, so concurrent callers (parallel tests) never see a
/// half-unpacked tree. Returns the unpacked tree.
pub fn unpack_cached(archive: &Path, cache: &Path) -> Result<PathBuf, KubernetesError> {
    let meta = std::fs::metadata(archive).map_err(|e| KubernetesError::io(archive, e))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let key = {
        use sha2::Digest;
        let canonical = std::fs::canonicalize(archive).unwrap_or_else(|_| archive.into());
        let id = format!("{}\n{}\n{mtime}", canonical.display(), meta.len());
        hex::encode(&sha2::Sha256::digest(id.as_bytes())[..8])
    };
    let done = cache.join(&key);
    if done.is_dir() {
        return Ok(done);
    }
    std::fs::create_dir_all(cache).map_err(|e| KubernetesError::io(cache, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!("{key}.partial."))
        .tempdir_in(cache)
        .map_err(|e| KubernetesError::io(cache, e))?;
    unpack(archive, tmp.path())?;
    let tmp = tmp.keep();
    if std::fs::rename(&tmp, &done).is_err() {
        // Another caller renamed its copy into place first: use that one.
        let _ = std::fs::remove_dir_all(&tmp);
        if !done.is_dir() {
            return Err(KubernetesError::io(
                &done,
                std::io::Error::other("could not move the unpacked tree into place"),
            ));
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"x").unwrap();
    }

    #[test]
    fn each_layout_is_recognised_by_its_files() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        assert!(matches!(
            classify(r, None),
            Err(KubernetesError::UnknownLayout(_))
        ));
        touch(&r.join("kubeadm"));
        assert_eq!(classify(r, None).unwrap().layout, Layout::Downloads);
        assert_eq!(classify(r, None).unwrap().sums, None);
        touch(&r.join("bin/kubeadm"));
        let f = classify(r, None).unwrap();
        assert_eq!((f.layout, f.bin.clone()), (Layout::Bundle, r.join("bin")));
        assert_eq!(f.sums, Some((r.join("SHA256SUMS"), "bin/")));
        touch(&r.join("kubernetes/server/bin/kubeadm"));
        let f = classify(r, None).unwrap();
        assert_eq!(f.layout, Layout::ServerRelease);
        assert_eq!(f.bin, r.join("kubernetes/server/bin"));
        // The unpacked tree's own `kubernetes/` directory works too.
        assert_eq!(
            classify(&r.join("kubernetes"), None).unwrap().layout,
            Layout::ServerRelease
        );
    }

    #[test]
    fn concurrent_unpacks_of_one_archive_share_one_complete_tree() {
        let d = tempfile::tempdir().unwrap();
        touch(&d.path().join("src/bin/kubeadm"));
        let archive = d.path().join("k.tar");
        let st = Command::new("tar")
            .arg("-cf")
            .arg(&archive)
            .arg("-C")
            .arg(d.path().join("src"))
            .arg("bin")
            .status()
            .unwrap();
        assert!(st.success());
        let cache = d.path().join("cache");
        let trees: Vec<PathBuf> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| s.spawn(|| unpack_cached(&archive, &cache).unwrap()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(trees.windows(2).all(|w| w[0] == w[1]), "{trees:?}");
        assert!(trees[0].join("bin/kubeadm").is_file());
        let left: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
        assert_eq!(left.len(), 1, "no partial trees left behind");
    }
}
