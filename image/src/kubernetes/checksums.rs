//! The checksum files Kubernetes artifacts come with: a `SHA256SUMS` list
//! (`<hex>  <file>` lines, as `sha256sum` writes it) and the release download
//! site's per-file `<file>.sha256` / `<file>.sha512` (the hex digest, optionally
//! followed by the file name). Every one present is verified; which ones were is
//! reported, so a user can tell a checked build from an unchecked one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256, Sha512};

use super::KubernetesError;

/// The SHA-256 of a file, hex.
pub fn sha256(path: &Path) -> Result<String, KubernetesError> {
    digest::<Sha256>(path)
}

fn digest<D: Digest + std::io::Write>(path: &Path) -> Result<String, KubernetesError> {
    let mut f = std::fs::File::open(path).map_err(|e| KubernetesError::io(path, e))?;
    let mut h = D::new();
    std::io::copy(&mut f, &mut h).map_err(|e| KubernetesError::io(path, e))?;
    Ok(hex::encode(h.finalize()))
}

/// A `SHA256SUMS` file: file name (as listed, `*` and `./` removed) → hex digest.
pub fn read_sums(path: &Path) -> Result<BTreeMap<String, String>, KubernetesError> {
    let text = std::fs::read_to_string(path).map_err(|e| KubernetesError::io(path, e))?;
    let mut sums = BTreeMap::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let (hash, name) = line
            .split_once(char::is_whitespace)
            .map(|(h, n)| (h, n.trim().trim_start_matches('*').trim_start_matches("./")))
            .filter(|(h, n)| is_hex(h, 64) && !n.is_empty())
            .ok_or_else(|| KubernetesError::ChecksumFormat {
                file: path.to_path_buf(),
                line: n + 1,
                expected: "\"<sha256 hex>  <file>\"",
            })?;
        sums.insert(name.to_string(), hash.to_ascii_lowercase());
    }
    Ok(sums)
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// Check `file` against `want` (hex), naming the list the digest came from.
pub fn check(file: &Path, want: &str, list: &Path) -> Result<(), KubernetesError> {
    let got = if want.len() == 128 {
        digest::<Sha512>(file)?
    } else {
        sha256(file)?
    };
    if !got.eq_ignore_ascii_case(want) {
        return Err(KubernetesError::ChecksumMismatch {
            file: file.to_path_buf(),
            got,
            want: want.to_ascii_lowercase(),
            list: list.to_path_buf(),
        });
    }
    Ok(())
}

/// Verify `file` against every per-file checksum beside it (`FILE.sha256`,
/// `FILE.sha512`); returns the checksum files it was verified against.
pub fn check_beside(file: &Path) -> Result<Vec<PathBuf>, KubernetesError> {
    let mut used = Vec::new();
    for (ext, len) in [("sha256", 64), ("sha512", 128)] {
        let mut name = file.as_os_str().to_owned();
        name.push(format!(".{ext}"));
        let list = PathBuf::from(name);
        let text = match std::fs::read_to_string(&list) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(KubernetesError::io(&list, e)),
        };
        let want = text
            .split_whitespace()
            .next()
            .filter(|h| is_hex(h, len))
            .ok_or_else(|| KubernetesError::ChecksumFormat {
                file: list.clone(),
                line: 1,
                expected: if len == 64 {
                    "the file's SHA-256 in hex"
                } else {
                    "the file's SHA-512 in hex"
                },
            })?;
        check(file, want, &list)?;
        used.push(list);
    }
    Ok(used)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex256(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    #[test]
    fn sums_lines_are_read_with_binary_markers_and_dot_slash() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("SHA256SUMS");
        let h = hex256(b"x");
        std::fs::write(&p, format!("{h}  bin/kubeadm\n{h} *./kubelet\n\n")).unwrap();
        let sums = read_sums(&p).unwrap();
        assert_eq!(sums["bin/kubeadm"], h);
        assert_eq!(sums["kubelet"], h);
        std::fs::write(&p, "nothex  bin/kubeadm\n").unwrap();
        let e = read_sums(&p).unwrap_err().to_string();
        assert!(e.contains("SHA256SUMS line 1"), "{e}");
    }

    #[test]
    fn per_file_checksums_beside_a_file_are_all_verified() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("kubeadm");
        std::fs::write(&f, b"kubeadm").unwrap();
        assert!(check_beside(&f).unwrap().is_empty(), "none beside it");
        // The download site's form: the digest alone.
        std::fs::write(d.path().join("kubeadm.sha256"), hex256(b"kubeadm")).unwrap();
        let sha512 = hex::encode(Sha512::digest(b"kubeadm"));
        std::fs::write(
            d.path().join("kubeadm.sha512"),
            format!("{sha512}  kubeadm\n"),
        )
        .unwrap();
        assert_eq!(check_beside(&f).unwrap().len(), 2);
        std::fs::write(&f, b"not kubeadm").unwrap();
        let e = check_beside(&f).unwrap_err().to_string();
        assert!(
            e.contains("does not match") && e.contains("kubeadm.sha256"),
            "{e}"
        );
    }
}
