//! Container images made from local files, as OCI image-layout archives that
//! `ctr images import` reads: one uncompressed layer, one config, one manifest,
//! an index naming the image (`io.containerd.image.name`).
//!
//! Reproducible by construction: entries sorted by path, every parent directory
//! listed, owner 0:0, no user or group names, every time set to one timestamp
//! (SOURCE_DATE_EPOCH), JSON written with a fixed key order. The same files and
//! timestamp give the same bytes, so the same digests.
//!
//! Used at image build time (mkosi's post-installation script in the production
//! profile) to turn the Kubernetes binaries into the control-plane images kubeadm
//! expects, so a node never pulls an image.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use sha2::{Digest, Sha256};

/// What kept an image archive from being written.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("image name {name:?}: {why}")]
    Name { name: String, why: String },
    #[error("{0:?}: a path in the image must be absolute and must not contain ..")]
    Dest(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: too many levels of symbolic links", .0.display())]
    LinkLoop(PathBuf),
    #[error("ldd {}: {source} (install libc-bin)", file.display())]
    Ldd {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("layer entry {entry}: {source}")]
    Layer {
        entry: String,
        source: std::io::Error,
    },
}

impl OciError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> OciError + '_ {
        move |source| OciError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What goes into one image.
#[derive(Debug, Clone, Default)]
pub struct ImageSpec {
    /// Full reference, e.g. `registry.k8s.io/kube-apiserver:v1.28.7`.
    pub name: String,
    /// (file on this machine, absolute path in the image). Directories are copied whole.
    pub files: Vec<(PathBuf, String)>,
    /// (absolute path in the image, link target).
    pub links: Vec<(String, String)>,
    /// Also add the shared libraries every added ELF file needs (as `ldd` resolves them here).
    pub with_libraries: bool,
    pub entrypoint: Vec<String>,
    pub env: Vec<String>,
    /// Every timestamp in the archive (seconds since the epoch).
    pub mtime: u64,
}

/// What was written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Written {
    pub name: String,
    pub manifest_digest: String,
    pub layer_digest: String,
    pub layer_bytes: u64,
    pub archive_bytes: u64,
}

pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One entry of the layer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Dir,
    File { source: PathBuf, mode: u32 },
    Link(String),
}

/// Check a reference the way kubeadm and containerd will read it: `host/path:tag`.
pub fn validate_name(name: &str) -> Result<(), OciError> {
    let bad = |why: String| OciError::Name {
        name: name.to_string(),
        why,
    };
    let expected = || bad("expected REGISTRY/REPOSITORY:TAG".into());
    let (repo, tag) = name
        .rsplit_once(':')
        .filter(|(repo, _)| !repo.is_empty() && !repo.ends_with('/'))
        .ok_or_else(expected)?;
    if tag.contains('/') || tag.is_empty() {
        return Err(expected());
    }
    if !repo.contains('/') {
        return Err(bad(format!(
            "give the registry too (e.g. registry.k8s.io/{repo}:{tag})"
        )));
    }
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/:".contains(c);
    if !repo.chars().all(ok) {
        return Err(bad(
            "the repository may hold only lower-case letters, digits and . _ - /".into(),
        ));
    }
    Ok(())
}

/// Build the layer's entry list: files, their parent directories, links and libraries.
fn entries(spec: &ImageSpec) -> Result<BTreeMap<String, Entry>, OciError> {
    let mut out = BTreeMap::new();
    let mut elf = Vec::new();
    for (source, dest) in &spec.files {
        add_path(&mut out, source, dest, true, &mut elf)?;
    }
    for (dest, target) in &spec.links {
        check_dest(dest)?;
        out.insert(dest.clone(), Entry::Link(target.clone()));
    }
    if spec.with_libraries {
        for file in elf {
            for lib in libraries_of(&file)? {
                add_library(&mut out, &lib)?;
            }
        }
    }
    let parents: Vec<String> = out.keys().flat_map(|p| parents_of(p)).collect();
    for p in parents {
        out.entry(p).or_insert(Entry::Dir);
    }
    Ok(out)
}

fn check_dest(dest: &str) -> Result<(), OciError> {
    if !dest.starts_with('/') || dest.split('/').any(|c| c == "..") || dest == "/" {
        return Err(OciError::Dest(dest.to_string()));
    }
    Ok(())
}

fn parents_of(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut p = Path::new(path).parent();
    while let Some(dir) = p {
        if dir == Path::new("/") {
            break;
        }
        out.push(dir.to_string_lossy().into_owned());
        p = dir.parent();
    }
    out
}

fn add_path(
    out: &mut BTreeMap<String, Entry>,
    source: &Path,
    dest: &str,
    follow: bool,
    elf: &mut Vec<PathBuf>,
) -> Result<(), OciError> {
    check_dest(dest)?;
    // A path named on the command line is followed; links inside a directory are kept.
    let meta = if follow {
        std::fs::metadata(source)
    } else {
        std::fs::symlink_metadata(source)
    }
    .map_err(OciError::io(source))?;
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(source).map_err(OciError::io(source))?;
        out.insert(
            dest.into(),
            Entry::Link(target.to_string_lossy().into_owned()),
        );
    } else if meta.is_dir() {
        out.insert(dest.into(), Entry::Dir);
        let mut children: Vec<_> = std::fs::read_dir(source)
            .map_err(OciError::io(source))?
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        children.sort();
        for c in children {
            let d = format!("{}/{}", dest.trim_end_matches('/'), c.to_string_lossy());
            add_path(out, &source.join(&c), &d, false, elf)?;
        }
    } else {
        use std::os::unix::fs::PermissionsExt;
        let mode = if meta.permissions().mode() & 0o111 != 0 {
            0o755
        } else {
            0o644
        };
        if is_elf(source) {
            elf.push(source.to_path_buf());
        }
        out.insert(
            dest.into(),
            Entry::File {
                source: source.to_path_buf(),
                mode,
            },
        );
    }
    Ok(())
}

/// A library as the dynamic linker names it (`/lib/x86_64-linux-gnu/libc.so.6`):
/// the real file at its resolved path, and links from every name on the way.
fn add_library(out: &mut BTreeMap<String, Entry>, lib: &Path) -> Result<(), OciError> {
    let mut path = lib.to_path_buf();
    for _ in 0..16 {
        let meta = std::fs::symlink_metadata(&path).map_err(OciError::io(&path))?;
        let dest = path.to_string_lossy().into_owned();
        if !meta.file_type().is_symlink() {
            out.insert(
                dest,
                Entry::File {
                    source: path.clone(),
                    mode: 0o755,
                },
            );
            return Ok(());
        }
        let target = std::fs::read_link(&path).map_err(OciError::io(&path))?;
        out.insert(dest, Entry::Link(target.to_string_lossy().into_owned()));
        path = path.parent().unwrap_or(Path::new("/")).join(target);
    }
    Err(OciError::LinkLoop(lib.to_path_buf()))
}

fn is_elf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

/// The libraries `ldd` resolves for a file (none for a static binary).
fn libraries_of(file: &Path) -> Result<Vec<PathBuf>, OciError> {
    let out = Command::new("ldd")
        .arg(file)
        .output()
        .map_err(|source| OciError::Ldd {
            file: file.to_path_buf(),
            source,
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)".
    Ok(text
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = l.split_once("=>").map(|(_, r)| r.trim()).unwrap_or(l);
            let path = path.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

fn header(mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn layer(entries: &BTreeMap<String, Entry>, mtime: u64) -> Result<Vec<u8>, OciError> {
    let mut b = tar::Builder::new(Vec::new());
    let err = |entry: &str, source| OciError::Layer {
        entry: entry.to_string(),
        source,
    };
    for (path, entry) in entries {
        let name = path.trim_start_matches('/');
        let mut h = header(mtime);
        match entry {
            Entry::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, format!("{name}/"), std::io::empty())
                    .map_err(|e| err(path, e))?;
            }
            Entry::File { source, mode } => {
                let data = std::fs::read(source).map_err(OciError::io(source))?;
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, name, data.as_slice())
                    .map_err(|e| err(path, e))?;
            }
            Entry::Link(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, name, target)
                    .map_err(|e| err(path, e))?;
            }
        }
    }
    b.into_inner().map_err(|e| err("(end of the layer)", e))
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn created(mtime: u64) -> String {
    chrono::DateTime::from_timestamp(mtime as i64, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The archive's directories and `files`, written to `file` and synced.
fn write_tar(
    file: &mut std::fs::File,
    files: &[(String, &[u8])],
    mtime: u64,
) -> std::io::Result<()> {
    let mut b = tar::Builder::new(&mut *file);
    for d in ["blobs/", "blobs/sha256/"] {
        let mut h = header(mtime);
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h, d, std::io::empty())?;
    }
    for (name, data) in files {
        let mut h = header(mtime);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, *data)?;
    }
    let file = b.into_inner()?;
    file.flush()?;
    file.sync_all()
}

/// Write the image as an OCI image-layout tar archive at `out` (atomically).
pub fn write_archive(spec: &ImageSpec, out: &Path) -> Result<Written, OciError> {
    validate_name(&spec.name)?;
    let entries = entries(spec)?;
    let layer = layer(&entries, spec.mtime)?;
    let layer_digest = digest(&layer);
    let env = if spec.env.is_empty() {
        vec![DEFAULT_PATH.to_string()]
    } else {
        spec.env.clone()
    };
    let config = serde_json::to_vec(&json!({
        "created": created(spec.mtime),
        "architecture": "amd64",
        "os": "linux",
        "config": { "Env": env, "Entrypoint": spec.entrypoint },
        "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
        "history": [{ "created": created(spec.mtime), "created_by": "kubeboot image oci" }],
    }))
    .expect("serializes");
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": digest(&config), "size": config.len() },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar",
                     "digest": layer_digest, "size": layer.len() }],
    }))
    .expect("serializes");
    let tag = spec
        .name
        .rsplit_once(':')
        .map(|(_, t)| t)
        .unwrap_or_default();
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest(&manifest), "size": manifest.len(),
            "platform": { "architecture": "amd64", "os": "linux" },
            "annotations": {
                "io.containerd.image.name": spec.name,
                "org.opencontainers.image.ref.name": tag,
            },
        }],
    }))
    .expect("serializes");
    let mut blobs: BTreeMap<String, &[u8]> = BTreeMap::new();
    for b in [&config[..], &manifest[..], &layer[..]] {
        blobs.insert(digest(b).trim_start_matches("sha256:").to_string(), b);
    }
    let mut files: Vec<(String, &[u8])> = vec![
        ("index.json".into(), &index),
        ("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#),
    ];
    files.extend(blobs.iter().map(|(h, b)| (format!("blobs/sha256/{h}"), *b)));
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(OciError::io(dir))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(OciError::io(dir))?;
    let tmp_path = tmp.path().to_path_buf();
    write_tar(tmp.as_file_mut(), &files, spec.mtime).map_err(OciError::io(&tmp_path))?;
    let archive_bytes = tmp.as_file().metadata().map(|m| m.len()).unwrap_or(0);
    std::fs::set_permissions(
        &tmp_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .map_err(OciError::io(&tmp_path))?;
    tmp.persist(out).map_err(|e| OciError::Io {
        path: out.to_path_buf(),
        source: e.error,
    })?;
    Ok(Written {
        name: spec.name.clone(),
        manifest_digest: digest(&manifest),
        layer_digest,
        layer_bytes: layer.len() as u64,
        archive_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("tool"), b"#!/bin/sh\necho hi\n").unwrap();
        std::fs::set_permissions(
            d.path().join("tool"),
            std::os::unix::fs::PermissionsExt::from_mode(0o750),
        )
        .unwrap();
        std::fs::create_dir(d.path().join("ext")).unwrap();
        std::fs::write(d.path().join("ext/b.so"), b"b").unwrap();
        std::fs::write(d.path().join("ext/a.so"), b"a").unwrap();
        d
    }

    fn spec(d: &Path, mtime: u64) -> ImageSpec {
        ImageSpec {
            name: "registry.k8s.io/kube-test:v1.0.0".into(),
            files: vec![
                (d.join("tool"), "/usr/local/bin/tool".into()),
                (d.join("ext"), "/usr/lib/ext".into()),
            ],
            links: vec![("/usr/sbin/t".into(), "../local/bin/tool".into())],
            entrypoint: vec!["/usr/local/bin/tool".into()],
            mtime,
            ..Default::default()
        }
    }

    fn read_tar(path: &Path) -> Vec<(String, Vec<u8>, u64, u32)> {
        let mut a = tar::Archive::new(std::fs::File::open(path).unwrap());
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut data = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut data).unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    data,
                    h.mtime().unwrap(),
                    h.mode().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn same_inputs_give_the_same_bytes_and_another_time_does_not() {
        let d = tree();
        let out = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            out.path().join("a.tar"),
            out.path().join("b.tar"),
            out.path().join("c.tar"),
        );
        let wa = write_archive(&spec(d.path(), 1_700_000_000), &a).unwrap();
        let wb = write_archive(&spec(d.path(), 1_700_000_000), &b).unwrap();
        let wc = write_archive(&spec(d.path(), 1_700_000_001), &c).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert_eq!(wa.manifest_digest, wb.manifest_digest);
        assert_ne!(wa.manifest_digest, wc.manifest_digest);
    }

    #[test]
    fn layout_names_the_image_and_the_blobs_match_their_digests() {
        let d = tree();
        let out = tempfile::tempdir().unwrap();
        let path = out.path().join("img.tar");
        let w = write_archive(&spec(d.path(), 1_700_000_000), &path).unwrap();
        let entries = read_tar(&path);
        let index: serde_json::Value =
            serde_json::from_slice(&entries.iter().find(|e| e.0 == "index.json").unwrap().1)
                .unwrap();
        let m = &index["manifests"][0];
        assert_eq!(
            m["annotations"]["io.containerd.image.name"],
            "registry.k8s.io/kube-test:v1.0.0"
        );
        assert_eq!(m["digest"], w.manifest_digest);
        for (name, data, mtime, _) in &entries {
            assert_eq!(*mtime, 1_700_000_000, "{name}");
            if let Some(hex) = name.strip_prefix("blobs/sha256/").filter(|h| !h.is_empty()) {
                assert_eq!(digest(data), format!("sha256:{hex}"), "{name}");
            }
        }
        // The layer: sorted, parents listed, modes normalised, link kept.
        let layer = out.path().join("layer.tar");
        let hex = w.layer_digest.trim_start_matches("sha256:");
        std::fs::write(
            &layer,
            &entries.iter().find(|e| e.0.ends_with(hex)).unwrap().1,
        )
        .unwrap();
        let names: Vec<(String, u32)> = read_tar(&layer).into_iter().map(|e| (e.0, e.3)).collect();
        let expect = [
            ("usr/", 0o755),
            ("usr/lib/", 0o755),
            ("usr/lib/ext/", 0o755),
            ("usr/lib/ext/a.so", 0o644),
            ("usr/lib/ext/b.so", 0o644),
            ("usr/local/", 0o755),
            ("usr/local/bin/", 0o755),
            ("usr/local/bin/tool", 0o755),
            ("usr/sbin/", 0o755),
            ("usr/sbin/t", 0o777),
        ];
        let expect: Vec<(String, u32)> = expect.iter().map(|(n, m)| (n.to_string(), *m)).collect();
        assert_eq!(names, expect);
    }

    #[test]
    fn libraries_of_a_dynamic_binary_are_added() {
        let out = tempfile::tempdir().unwrap();
        let path = out.path().join("sh.tar");
        let spec = ImageSpec {
            name: "example.org/sh:1".into(),
            files: vec![("/bin/sh".into(), "/bin/sh".into())],
            with_libraries: true,
            mtime: 1,
            ..Default::default()
        };
        let w = write_archive(&spec, &path).unwrap();
        let entries = read_tar(&path);
        let hex = w.layer_digest.trim_start_matches("sha256:");
        let layer = out.path().join("layer.tar");
        std::fs::write(
            &layer,
            &entries.iter().find(|e| e.0.ends_with(hex)).unwrap().1,
        )
        .unwrap();
        let names: Vec<String> = read_tar(&layer).into_iter().map(|e| e.0).collect();
        assert!(names.iter().any(|n| n.contains("libc.so.6")), "{names:?}");
        assert!(
            names.iter().any(|n| n.contains("ld-linux-x86-64.so.2")),
            "{names:?}"
        );
    }

    #[test]
    fn bad_names_and_paths_are_refused() {
        for bad in [
            "kube-apiserver:v1",
            "registry.k8s.io/kube-apiserver",
            "registry.k8s.io/Kube:v1",
            ":v1",
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        let d = tree();
        let mut s = spec(d.path(), 1);
        s.files
            .push((d.path().join("tool"), "relative/tool".into()));
        let err = write_archive(&s, &d.path().join("x.tar")).unwrap_err();
        assert!(matches!(err, OciError::Dest(_)), "{err}");
        assert!(err.to_string().contains("absolute"), "{err}");
        assert!(!d.path().join("x.tar").exists());
    }
}
