//! The one small interface through which the agent touches the machine.
//!
//! Every path is resolved under a root directory (`/` on a node, a temporary
//! directory in tests), and programs are found on an explicit PATH, so the
//! tests run every phase against a temp root and a kubeadm test double through
//! exactly the code the node runs.

mod boot;
mod bounded;
mod facts;

use std::ffi::{CString, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

pub use boot::{UnitWait, CLOUD_INIT_UNIT, HOST_STEP_UNITS};
pub use bounded::{run_bounded, BoundedError};
pub use facts::{ClusterIpv4, Facts};

#[derive(Debug, Clone)]
pub struct Host {
    root: PathBuf,
    search_path: OsString,
}

/// A host operation that failed, with what was being done.
#[derive(Debug, thiserror::Error)]
#[error("{action}: {source}")]
pub struct HostError {
    pub action: String,
    #[source]
    pub source: std::io::Error,
}

pub type HostResult<T> = Result<T, HostError>;

fn ctx<T>(r: std::io::Result<T>, action: impl FnOnce() -> String) -> HostResult<T> {
    r.map_err(|source| HostError {
        action: action(),
        source,
    })
}

impl Host {
    pub fn new(root: impl Into<PathBuf>, search_path: OsString) -> Host {
        Host {
            root: root.into(),
            search_path,
        }
    }

    /// The running system: root `/` and the process's PATH.
    pub fn system() -> Host {
        let path = std::env::var_os("PATH").unwrap_or_else(|| {
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()
        });
        Host::new("/", path)
    }

    /// The running system's PATH, with `root` as the file system root.
    pub fn system_at(root: impl Into<PathBuf>) -> Host {
        Host {
            root: root.into(),
            ..Host::system()
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn is_system_root(&self) -> bool {
        self.root == Path::new("/")
    }

    /// Map an absolute node path (e.g. `/etc/kubernetes`) under the root.
    pub fn path(&self, node_path: impl AsRef<Path>) -> PathBuf {
        let p = node_path.as_ref();
        self.root.join(p.strip_prefix("/").unwrap_or(p))
    }

    pub fn exists(&self, node_path: impl AsRef<Path>) -> bool {
        self.path(node_path).exists()
    }

    /// The names in a directory, sorted; none when it is missing or unreadable.
    pub fn dir_names(&self, node_path: impl AsRef<Path>) -> Vec<String> {
        let Ok(entries) = fs::read_dir(self.path(node_path)) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    pub fn read_to_string(&self, node_path: impl AsRef<Path>) -> HostResult<String> {
        let p = self.path(&node_path);
        ctx(fs::read_to_string(&p), || {
            format!("read {}", node_path.as_ref().display())
        })
    }

    /// Write a file atomically: temp file in the same directory, fsync, rename, fsync the directory.
    pub fn write_atomic(
        &self,
        node_path: impl AsRef<Path>,
        data: &[u8],
        mode: u32,
    ) -> HostResult<()> {
        let shown = node_path.as_ref().display().to_string();
        ctx(
            write_file_atomic(&self.path(&node_path), data, mode),
            || format!("write {shown}"),
        )
    }

    /// Append a line to an existing file or device (e.g. `/dev/console`); never creates it.
    pub fn append_line_if_exists(&self, node_path: impl AsRef<Path>, line: &str) -> bool {
        let p = self.path(node_path);
        OpenOptions::new()
            .append(true)
            .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
            .open(p)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()))
            .is_ok()
    }

    pub fn remove_file_if_exists(&self, node_path: impl AsRef<Path>) -> HostResult<bool> {
        match fs::remove_file(self.path(&node_path)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => ctx(Err(e), || {
                format!("remove {}", node_path.as_ref().display())
            }),
        }
    }

    /// Set a kernel parameter through /proc/sys (`net.ipv4.ip_forward` → `/proc/sys/net/ipv4/ip_forward`).
    pub fn set_sysctl(&self, name: &str, value: &str) -> HostResult<()> {
        let node_path = format!("/proc/sys/{}", name.replace('.', "/"));
        let p = self.path(&node_path);
        if let Ok(current) = fs::read_to_string(&p) {
            if current.trim() == value {
                return Ok(());
            }
        }
        ctx(
            OpenOptions::new().write(true).truncate(true).open(&p),
            || format!("open sysctl {name} ({node_path})"),
        )
        .and_then(|mut f| {
            ctx(f.write_all(value.as_bytes()), || {
                format!("set sysctl {name}={value}")
            })
        })
    }

    pub fn module_loaded(&self, name: &str) -> bool {
        self.exists(format!("/sys/module/{name}"))
    }

    /// Load a kernel module unless it is already loaded (or built in).
    pub fn load_module(&self, name: &str) -> HostResult<()> {
        if self.module_loaded(name) {
            return Ok(());
        }
        let modprobe = self.find_program("modprobe").ok_or_else(|| HostError {
            action: format!("load kernel module {name}"),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "modprobe not found on PATH"),
        })?;
        let out = ctx(self.command(&modprobe).arg(name).output(), || {
            format!("run modprobe {name}")
        })?;
        if !out.status.success() || !self.module_loaded(name) {
            return Err(HostError {
                action: format!("load kernel module {name}"),
                source: std::io::Error::other(format!(
                    "modprobe {name} failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )),
            });
        }
        Ok(())
    }

    /// Active swap areas, from /proc/swaps.
    pub fn active_swaps(&self) -> HostResult<Vec<String>> {
        let text = match fs::read_to_string(self.path("/proc/swaps")) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return ctx(Err(e), || "read /proc/swaps".into()),
        };
        Ok(text
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next())
            .map(|dev| dev.replace("\\040", " "))
            .collect())
    }

    /// Turn every active swap area off (swapoff(2)).
    pub fn swap_off(&self) -> HostResult<Vec<String>> {
        let swaps = self.active_swaps()?;
        for dev in &swaps {
            let p = self.path(dev);
            let c = CString::new(p.as_os_str().as_encoded_bytes()).expect("no NUL in path");
            // SAFETY: swapoff takes a NUL-terminated path and has no other preconditions.
            let rc = unsafe { libc::swapoff(c.as_ptr()) };
            if rc != 0 {
                return ctx(Err(std::io::Error::last_os_error()), || {
                    format!("swapoff {dev}")
                });
            }
        }
        Ok(swaps)
    }

    /// Whether the system clock is synchronised: systemd-timesyncd's marker file
    /// under the root, or (on the real root) the kernel's NTP status (adjtimex),
    /// which chrony and timesyncd both maintain.
    pub fn clock_synchronized(&self) -> bool {
        if self.exists("/run/systemd/timesync/synchronized") {
            return true;
        }
        if !self.is_system_root() {
            return false;
        }
        // SAFETY: adjtimex with modes = 0 only reads the kernel's time status.
        let mut tx: libc::timex = unsafe { std::mem::zeroed() };
        let state = unsafe { libc::adjtimex(&mut tx) };
        state >= 0 && state != libc::TIME_ERROR && (tx.status & libc::STA_UNSYNC) == 0
    }

    pub fn machine_id(&self) -> String {
        self.read_to_string("/etc/machine-id")
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    }

    pub fn boot_id(&self) -> String {
        self.read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    }

    pub fn hostname(&self) -> String {
        if self.is_system_root() {
            if let Ok(h) = nix::unistd::gethostname() {
                return h.to_string_lossy().into_owned();
            }
        }
        self.read_to_string("/etc/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "localhost".into())
    }

    /// Name this machine: `/etc/hostname` (kept across reboots) and, on the
    /// running system, the kernel's host name (which the kubelet and kubeadm read).
    pub fn set_hostname(&self, name: &str) -> HostResult<()> {
        self.write_atomic("/etc/hostname", format!("{name}\n").as_bytes(), 0o644)?;
        if self.is_system_root() {
            ctx(
                nix::unistd::sethostname(name).map_err(std::io::Error::from),
                || format!("set the host name to {name}"),
            )?;
        }
        Ok(())
    }

    /// Find an executable on this host's PATH.
    pub fn find_program(&self, name: &str) -> Option<PathBuf> {
        if name.contains('/') {
            let p = PathBuf::from(name);
            return is_executable(&p).then_some(p);
        }
        std::env::split_paths(&self.search_path)
            .map(|dir| dir.join(name))
            .find(|p| is_executable(p))
    }

    /// A command for a program, with this host's PATH.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env("PATH", &self.search_path);
        c
    }

    pub fn facts(&self) -> Facts {
        Facts::gather(self)
    }
}

fn is_executable(p: &Path) -> bool {
    fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Write a file so that readers see the old or the new content, never a mix,
/// and it survives a crash: temp file in the same directory (created with
/// `mode`), fsync, rename, fsync the directory. Parent directories are created.
pub fn write_file_atomic(target: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let step =
        |what: &str, e: std::io::Error| std::io::Error::new(e.kind(), format!("{what}: {e}"));
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| step("create directory", e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".kubeboot-")
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(|e| step("create temporary file", e))?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| step("set mode", e))?;
    tmp.write_all(data).map_err(|e| step("write", e))?;
    tmp.as_file().sync_all().map_err(|e| step("fsync", e))?;
    tmp.persist(target).map_err(|e| step("rename", e.error))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| step("fsync directory", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_host() -> (tempfile::TempDir, Host) {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::new(dir.path(), OsString::new());
        (dir, host)
    }

    #[test]
    fn paths_stay_under_root() {
        let (dir, host) = temp_host();
        assert_eq!(
            host.path("/etc/kubernetes"),
            dir.path().join("etc/kubernetes")
        );
    }

    #[test]
    fn atomic_write_sets_mode() {
        let (_dir, host) = temp_host();
        host.write_atomic("/etc/kubeboot/x", b"secret", 0o600)
            .unwrap();
        let meta = fs::metadata(host.path("/etc/kubeboot/x")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(host.read_to_string("/etc/kubeboot/x").unwrap(), "secret");
    }

    #[test]
    fn sysctl_requires_existing_key() {
        let (_dir, host) = temp_host();
        assert!(host.set_sysctl("net.ipv4.ip_forward", "1").is_err());
        host.write_atomic("/proc/sys/net/ipv4/ip_forward", b"0\n", 0o644)
            .unwrap();
        host.set_sysctl("net.ipv4.ip_forward", "1").unwrap();
        assert_eq!(
            host.read_to_string("/proc/sys/net/ipv4/ip_forward")
                .unwrap(),
            "1"
        );
    }

    #[test]
    fn swaps_are_parsed() {
        let (_dir, host) = temp_host();
        assert!(host.active_swaps().unwrap().is_empty());
        host.write_atomic(
            "/proc/swaps",
            b"Filename\tType\tSize\tUsed\tPriority\n/swap\\040file file 100 0 -2\n",
            0o644,
        )
        .unwrap();
        assert_eq!(host.active_swaps().unwrap(), ["/swap file"]);
        // swapoff on a path that is not a swap area fails with the device named.
        let err = host.swap_off().unwrap_err();
        assert!(err.to_string().contains("swapoff /swap file"), "{err}");
    }

    #[test]
    fn clock_marker_under_temp_root() {
        let (_dir, host) = temp_host();
        assert!(!host.clock_synchronized());
        host.write_atomic("/run/systemd/timesync/synchronized", b"", 0o644)
            .unwrap();
        assert!(host.clock_synchronized());
    }
}
