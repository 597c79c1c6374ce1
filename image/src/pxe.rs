//! Diskless boot: the root file system as one initramfs archive, and the PXE set
//! that boots it with no disk at all (kernel, that archive, an iPXE script that
//! passes the document's location: `kubeboot.url=`, `kubeboot.ca_hash=`,
//! optionally `kubeboot.token=`).
//!
//! `kubeboot image build` writes the archive, `kubeboot.root.cpio.zst`, from the
//! disk image's own root partition, so a diskless node runs the very files a disk
//! node runs: a newc cpio with names in byte order, inode numbers counted from 1
//! (`cpio --reproducible`) and the file system's times (already clamped to
//! SOURCE_DATE_EPOCH), compressed with zstd at level 3. Same image, same bytes.
//!
//! The kernel unpacks it into its initial RAM file system and runs
//! `/usr/lib/kubeboot/ramroot` (`rdinit=`), which copies the tree into a real tmpfs
//! and switch_roots there: on the initial RAM file system itself runc cannot
//! pivot_root and the kubelet does not recognise the file system type.
//! cpio carries no extended attributes: file capabilities are not kept.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use crate::disk::DiskError;

/// The root file system archive, next to the other outputs of an image build.
pub const ROOT_ARCHIVE: &str = "kubeboot.root.cpio.zst";
/// The kernel, as mkosi writes it.
pub const KERNEL: &str = "kubeboot.vmlinuz";
/// The iPXE script of a PXE set (also the DHCP boot file name the tests use).
pub const SCRIPT: &str = "boot.ipxe";
/// The image's first process of a diskless boot (mkosi/mkosi.extra).
pub const RAMROOT_INIT: &str = "/usr/lib/kubeboot/ramroot";

/// What is wrong with a PXE set's values, or what kept it from being written.
/// A token is never part of it.
#[derive(Debug, thiserror::Error)]
pub enum PxeError {
    #[error("--ca-hash: {0} (kubeboot serve prints the hash at start)")]
    CaHash(&'static str),
    #[error(
        "--document-url {0:?}: must be an https:// URL (kubeboot serve: https://HOST:PORT/v1/documents/ROLE)"
    )]
    DocumentUrl(String),
    #[error(
        "{flag}: must not contain spaces or control characters (it goes on the kernel command line)"
    )]
    CommandLine { flag: &'static str },
    #[error(
        "{}: missing (build the image with this kubeboot: `kubeboot image build`)",
        .0.display()
    )]
    Missing(PathBuf),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Disk(#[from] DiskError),
    #[error("{program}: {source}{hint}")]
    Program {
        program: &'static str,
        /// What to do about it, when the program could not be started.
        hint: &'static str,
        source: std::io::Error,
    },
    #[error(
        "mounting the root partition of {} read-only: {stderr} (this needs root and loop devices)",
        raw.display()
    )]
    Mount { raw: PathBuf, stderr: String },
    #[error("find (listing the root file system): {stderr}")]
    Find { stderr: String },
    #[error("{program} (writing {}): {status}: {stderr}", out.display())]
    Archive {
        program: &'static str,
        out: PathBuf,
        status: ExitStatus,
        stderr: String,
    },
}

impl PxeError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PxeError + '_ {
        move |source| PxeError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn program(
        program: &'static str,
        hint: &'static str,
    ) -> impl FnOnce(std::io::Error) -> PxeError {
        move |source| PxeError::Program {
            program,
            hint,
            source,
        }
    }
}

pub struct PxeParams<'a> {
    /// Where the node fetches kernel and root archive; None: the directory the
    /// script itself came from (iPXE resolves relative names against it).
    pub base_url: Option<&'a str>,
    /// The node document URL, e.g. https://10.0.0.2:8443/v1/documents/worker.
    pub document_url: &'a str,
    pub ca_hash: &'a str,
    pub token: Option<&'a str>,
    /// More kernel command line (e.g. `kubeboot.ramroot_size=75%`).
    pub extra_cmdline: &'a str,
}

impl PxeParams<'_> {
    /// One clear error for a value that would only fail on the node, later.
    pub fn check(&self) -> Result<(), PxeError> {
        kubeboot_core::document::formats::check_ca_hash(self.ca_hash).map_err(PxeError::CaHash)?;
        let url = self.document_url;
        if !url.starts_with("https://") || url.len() <= "https://".len() {
            return Err(PxeError::DocumentUrl(url.to_string()));
        }
        for (flag, value) in [
            ("--document-url", url),
            ("--base-url", self.base_url.unwrap_or("")),
            ("--token-file", self.token.unwrap_or("")),
        ] {
            if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(PxeError::CommandLine { flag });
            }
        }
        Ok(())
    }
}

/// The kernel command line for a diskless node.
pub fn cmdline(p: &PxeParams) -> String {
    let mut c = format!(
        "console=ttyS0,115200 systemd.firstboot=off rdinit={RAMROOT_INIT} kubeboot.url={} kubeboot.ca_hash={}",
        p.document_url, p.ca_hash
    );
    if let Some(t) = p.token {
        c.push_str(&format!(" kubeboot.token={t}"));
    }
    if !p.extra_cmdline.is_empty() {
        c.push(' ');
        c.push_str(p.extra_cmdline);
    }
    c
}

pub fn ipxe_script(p: &PxeParams) -> String {
    let at = |file: &str| match p.base_url {
        Some(base) => format!("{}/{file}", base.trim_end_matches('/')),
        None => file.to_string(),
    };
    format!(
        "#!ipxe\n# kubeboot diskless boot. Made by `kubeboot image pxe`.\n\
         # The root file system is loaded into RAM; the node needs no disk.\n\
         dhcp\nkernel {kernel} initrd={ROOT_ARCHIVE} {cmdline}\ninitrd {archive}\nboot\n",
        kernel = at(KERNEL),
        archive = at(ROOT_ARCHIVE),
        cmdline = cmdline(p)
    )
}

/// Copy kernel and root archive from an image build into `dir` and write
/// `boot.ipxe` (0600: it may hold a token).
pub fn write_set(image_dir: &Path, dir: &Path, p: &PxeParams) -> Result<(), PxeError> {
    p.check()?;
    for f in [KERNEL, ROOT_ARCHIVE] {
        if !image_dir.join(f).exists() {
            return Err(PxeError::Missing(image_dir.join(f)));
        }
    }
    std::fs::create_dir_all(dir).map_err(PxeError::io(dir))?;
    for f in [KERNEL, ROOT_ARCHIVE] {
        let from = image_dir.join(f);
        std::fs::copy(&from, dir.join(f)).map_err(PxeError::io(&from))?;
    }
    let script = dir.join(SCRIPT);
    kubeboot_core::host::write_file_atomic(&script, ipxe_script(p).as_bytes(), 0o600)
        .map_err(PxeError::io(&script))
}

/// A read-only loop mount, unmounted when dropped.
struct LoopMount {
    dir: tempfile::TempDir,
}

impl LoopMount {
    fn ext4(raw: &Path, offset: u64, size: u64) -> Result<LoopMount, PxeError> {
        let dir = tempfile::tempdir().map_err(PxeError::io(&std::env::temp_dir()))?;
        let out = Command::new("mount")
            .args(["-t", "ext4", "-o"])
            .arg(format!("loop,ro,noload,offset={offset},sizelimit={size}"))
            .arg(raw)
            .arg(dir.path())
            .output()
            .map_err(PxeError::program("mount", ""))?;
        if !out.status.success() {
            return Err(PxeError::Mount {
                raw: raw.to_path_buf(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(LoopMount { dir })
    }
}

impl Drop for LoopMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Write `out` (a zstd-compressed newc cpio) from the root partition of the disk
/// image `raw`. Returns its size in bytes.
pub fn write_root_archive(raw: &Path, out: &Path) -> Result<u64, PxeError> {
    let root = crate::disk::root_partition(raw)?;
    let mount = LoopMount::ext4(raw, root.offset, root.size)?;
    let names = sorted_names(mount.dir.path())?;
    let partial = PathBuf::from(format!("{}.partial", out.display()));
    let result = archive(mount.dir.path(), &names, &partial);
    drop(mount);
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, out).map_err(PxeError::io(out))?;
    Ok(std::fs::metadata(out).map_err(PxeError::io(out))?.len())
}

/// Every path under `dir` on its file system, `./`-relative, in byte order
/// (what `find . | LC_ALL=C sort` gives), NUL-terminated for `cpio --null`.
fn sorted_names(dir: &Path) -> Result<Vec<u8>, PxeError> {
    let out = Command::new("find")
        .args([".", "-xdev", "-mindepth", "1", "-print0"])
        .current_dir(dir)
        .output()
        .map_err(PxeError::program("find", ""))?;
    if !out.status.success() {
        return Err(PxeError::Find {
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let mut names: Vec<&[u8]> = out
        .stdout
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .collect();
    names.sort_unstable();
    Ok(names
        .iter()
        .flat_map(|n| n.iter().chain([&0u8]))
        .copied()
        .collect())
}

/// cpio (newc, reproducible) of `names` under `dir`, piped through zstd into `out`.
fn archive(dir: &Path, names: &[u8], out: &Path) -> Result<(), PxeError> {
    const SETUP: &str = " (run scripts/setup-image.sh)";
    let mut cpio = Command::new("cpio")
        .args(["-o", "-H", "newc", "--reproducible", "--null", "--quiet"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(PxeError::program("cpio", SETUP))?;
    let zstd = Command::new("zstd")
        .args(["-q", "-f", "-T1", "-3", "-o"])
        .arg(out)
        .stdin(cpio.stdout.take().expect("piped"))
        .stderr(Stdio::piped())
        .spawn()
        .map_err(PxeError::program("zstd", SETUP))?;
    let mut stdin = cpio.stdin.take().expect("piped");
    let written = stdin.write_all(names);
    drop(stdin);
    let cpio_out = cpio
        .wait_with_output()
        .map_err(PxeError::program("cpio", ""))?;
    let zstd_out = zstd
        .wait_with_output()
        .map_err(PxeError::program("zstd", ""))?;
    for (program, o) in [("cpio", cpio_out), ("zstd", zstd_out)] {
        if !o.status.success() {
            return Err(PxeError::Archive {
                program,
                out: out.to_path_buf(),
                status: o.status,
                stderr: String::from_utf8_lossy(&o.stderr).trim().to_string(),
            });
        }
    }
    written.map_err(PxeError::program("cpio", ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(base_url: Option<&'static str>) -> PxeParams<'static> {
        PxeParams {
            base_url,
            document_url: "https://10.0.0.2:8443/v1/documents/worker",
            ca_hash: "sha256:abababababababababababababababababababababababababababababababab",
            token: Some("t0k"),
            extra_cmdline: "",
        }
    }

    #[test]
    fn the_script_boots_the_root_archive_with_the_document_location() {
        let s = ipxe_script(&params(Some("http://10.0.0.2/pxe/")));
        assert!(s.starts_with("#!ipxe\n"));
        assert!(s.contains("kernel http://10.0.0.2/pxe/kubeboot.vmlinuz initrd=kubeboot.root.cpio.zst console=ttyS0,115200"));
        assert!(s.contains(" rdinit=/usr/lib/kubeboot/ramroot "));
        assert!(s.contains(
            "kubeboot.url=https://10.0.0.2:8443/v1/documents/worker kubeboot.ca_hash=sha256:abab"
        ));
        assert!(s.contains(" kubeboot.token=t0k\n"));
        assert!(s.contains("initrd http://10.0.0.2/pxe/kubeboot.root.cpio.zst\nboot\n"));
    }

    #[test]
    fn without_a_base_url_the_names_are_relative_to_the_script() {
        let s = ipxe_script(&params(None));
        assert!(s.contains("\nkernel kubeboot.vmlinuz initrd=kubeboot.root.cpio.zst "));
        assert!(s.contains("\ninitrd kubeboot.root.cpio.zst\n"));
    }

    #[test]
    fn bad_values_are_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("pxe");
        let mut p = params(None);
        p.ca_hash = "sha256:12";
        let e = write_set(dir.path(), &out, &p).unwrap_err().to_string();
        assert!(e.starts_with("--ca-hash: "), "{e}");
        let mut p = params(None);
        p.document_url = "http://10.0.0.2/v1/documents/worker";
        assert!(write_set(dir.path(), &out, &p)
            .unwrap_err()
            .to_string()
            .contains("https://"));
        let mut p = params(None);
        p.token = Some("a b");
        let e = write_set(dir.path(), &out, &p).unwrap_err();
        assert!(
            matches!(
                e,
                PxeError::CommandLine {
                    flag: "--token-file"
                }
            ),
            "{e}"
        );
        assert!(!e.to_string().contains("a b"), "the token stays out: {e}");
        // A good set of values, but no image: still nothing written.
        let e = write_set(dir.path(), &out, &params(None))
            .unwrap_err()
            .to_string();
        assert!(e.contains("kubeboot.vmlinuz: missing"), "{e}");
        assert!(!out.exists());
    }

    #[test]
    fn names_are_in_byte_order_and_nul_terminated() {
        let dir = tempfile::tempdir().unwrap();
        for d in ["usr/lib", "Usr", "a"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        std::fs::write(dir.path().join("usr/lib/x"), "").unwrap();
        let names = sorted_names(dir.path()).unwrap();
        let list: Vec<&str> = names
            .split(|b| *b == 0)
            .filter(|n| !n.is_empty())
            .map(|n| std::str::from_utf8(n).unwrap())
            .collect();
        assert_eq!(list, ["./Usr", "./a", "./usr", "./usr/lib", "./usr/lib/x"]);
        assert_eq!(names.last(), Some(&0));
    }

    /// A small ext4 root in a GPT image, archived twice: the same bytes, and the
    /// archive holds the tree (listed back with cpio). Needs root (loop mount),
    /// util-linux, dosfstools, e2fsprogs, cpio and zstd (scripts/setup.sh).
    #[test]
    fn the_root_archive_holds_the_root_partition_and_is_reproducible() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("usr/lib/kubeboot")).unwrap();
        std::fs::write(tree.join("usr/lib/kubeboot/ramroot"), "#!/bin/sh\n").unwrap();
        std::os::unix::fs::symlink("usr/lib", tree.join("lib")).unwrap();
        let raw = dir.path().join("k.raw");
        crate::disk::test_support::make_image(&raw, &tree, 1_796_004_758);
        let (a, b) = (dir.path().join("a.cpio.zst"), dir.path().join("b.cpio.zst"));
        let size = write_root_archive(&raw, &a).unwrap();
        assert!(size > 0);
        write_root_archive(&raw, &b).unwrap();
        assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap());
        let listed = Command::new("sh")
            .arg("-c")
            .arg(format!("zstd -dc {} | cpio -it --quiet", a.display()))
            .output()
            .unwrap();
        let listed = String::from_utf8(listed.stdout).unwrap();
        let listed: Vec<&str> = listed.lines().collect();
        assert!(listed.contains(&"usr/lib/kubeboot/ramroot"), "{listed:?}");
        assert!(listed.contains(&"lib"), "{listed:?}");
        // Nothing is left mounted: no loop device holds the image any more.
        let loops = Command::new("losetup")
            .arg("-j")
            .arg(&raw)
            .output()
            .unwrap();
        assert!(loops.status.success());
        assert_eq!(String::from_utf8_lossy(&loops.stdout).trim(), "");
    }
}
