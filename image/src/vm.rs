//! Booting an image under qemu: one VM per call, on a throwaway copy-on-write
//! overlay of the image, serial console to a log file, and a hard timeout.
//! Networking is either qemu user networking restricted to nothing but the
//! forwards given (`restrict=on` + `guestfwd=…-cmd:socat`, one socat per
//! connection), or a tap device on a bridge inside a network namespace the
//! caller made ([`super::lan`]): several VMs on one L2 segment, no route out.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use crate::disk::DiskError;

/// What kept a VM from starting, or from being watched.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error(
        "no OVMF firmware in /usr/share/OVMF: run scripts/setup-image.sh (Debian package ovmf)"
    )]
    NoOvmf,
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("copy {}: {source}", vars.display())]
    OvmfVars {
        vars: PathBuf,
        source: std::io::Error,
    },
    #[error("{program}: {source}{hint}")]
    Program {
        program: &'static str,
        /// What to do about it, when the program could not be started.
        hint: &'static str,
        source: std::io::Error,
    },
    #[error("{command}: {status}: {stderr}")]
    Failed {
        command: &'static str,
        status: ExitStatus,
        stderr: String,
    },
    #[error("a network boot (PXE) uses qemu's TFTP server: not with a tap device")]
    PxeWithTap,
    #[error(transparent)]
    Disk(#[from] DiskError),
    #[error("{}: no image (run `kubeboot image build` first)", .0.display())]
    NoImage(PathBuf),
    #[error(
        "{}: no iPXE script (write the PXE set with `kubeboot image pxe --out {}`)",
        script.display(),
        dir.display()
    )]
    NoPxeScript { script: PathBuf, dir: PathBuf },
}

impl VmError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> VmError + '_ {
        move |source| VmError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn program(
        program: &'static str,
        hint: &'static str,
    ) -> impl FnOnce(std::io::Error) -> VmError {
        move |source| VmError::Program {
            program,
            hint,
            source,
        }
    }
}

/// The address guests reach the host's services on (qemu user networking).
pub const HOST_ALIAS: &str = "10.0.2.100";

#[derive(Debug, Clone)]
pub struct Forward {
    /// Port on HOST_ALIAS inside the guest.
    pub guest_port: u16,
    /// Port on 127.0.0.1 on the host.
    pub host_port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    /// KVM only when /dev/kvm is there and this is not itself a VM: nested
    /// (paravirtual) KVM makes stock firmware and kernels fault, so TCG is the
    /// safe choice there. `KUBEBOOT_ACCEL=kvm|tcg` overrides.
    pub fn detect() -> Accel {
        match std::env::var("KUBEBOOT_ACCEL").as_deref() {
            Ok("kvm") => return Accel::Kvm,
            Ok("tcg") => return Accel::Tcg,
            _ => {}
        }
        let nested = std::fs::read_to_string("/proc/cpuinfo")
            .map(|c| {
                c.lines()
                    .any(|l| l.starts_with("flags") && l.contains(" hypervisor"))
            })
            .unwrap_or(true);
        let kvm = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok();
        if kvm && !nested {
            Accel::Kvm
        } else {
            Accel::Tcg
        }
    }

    fn args(self) -> [&'static str; 4] {
        match self {
            Accel::Kvm => ["-accel", "kvm", "-cpu", "host"],
            Accel::Tcg => ["-accel", "tcg", "-cpu", "max"],
        }
    }
}

/// Direct kernel boot (the PXE path without the PXE): kernel, initrd, command line.
#[derive(Debug, Clone)]
pub struct DirectBoot {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub cmdline: String,
}

/// A VM's network card on a tap device.
#[derive(Debug, Clone)]
pub struct Tap {
    pub ifname: String,
    pub mac: String,
}

/// The firmware a VM starts with (when it does not boot a kernel directly).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Firmware {
    /// OVMF (UEFI), with the VM's own variable store.
    Uefi,
    /// SeaBIOS, qemu's default.
    Bios,
}

#[derive(Debug, Clone)]
pub struct VmSpec {
    pub name: String,
    /// The image (raw); the VM writes to an overlay in `workdir`. None: diskless.
    pub image: Option<PathBuf>,
    pub seed: Option<PathBuf>,
    pub direct: Option<DirectBoot>,
    /// Network boot: the firmware's iPXE fetches `boot.ipxe` from this directory
    /// over qemu's own TFTP server (user networking only).
    pub pxe: Option<PathBuf>,
    pub firmware: Firmware,
    pub forwards: Vec<Forward>,
    /// A tap device (in the namespace qemu runs in) instead of user networking.
    pub tap: Option<Tap>,
    pub memory_mib: u32,
    pub cpus: u32,
    /// Exit qemu when the guest reboots (tests that want one boot only).
    pub no_reboot: bool,
    pub workdir: PathBuf,
    pub accel: Accel,
    /// Scheduling priority of qemu (and so of every vCPU), `nice` style: under TCG
    /// on a few host cores the VM serving the API keeps CPU when later VMs run at 10.
    pub nice: i32,
}

impl VmSpec {
    /// No disk, seed or boot source yet; UEFI, 2 GiB, 2 vCPUs, nice 0, user networking.
    fn defaults(name: &str, workdir: PathBuf, forwards: Vec<Forward>) -> VmSpec {
        VmSpec {
            name: name.into(),
            image: None,
            seed: None,
            direct: None,
            pxe: None,
            firmware: Firmware::Uefi,
            forwards,
            tap: None,
            memory_mib: 2048,
            cpus: 2,
            no_reboot: false,
            workdir,
            accel: Accel::detect(),
            nice: 0,
        }
    }

    pub fn serial_log(&self) -> PathBuf {
        self.workdir.join(format!("{}.serial.log", self.name))
    }
}

fn find_ovmf() -> Result<(PathBuf, PathBuf), VmError> {
    for (code, vars) in [
        (
            "/usr/share/OVMF/OVMF_CODE_4M.fd",
            "/usr/share/OVMF/OVMF_VARS_4M.fd",
        ),
        (
            "/usr/share/OVMF/OVMF_CODE.fd",
            "/usr/share/OVMF/OVMF_VARS.fd",
        ),
    ] {
        if Path::new(code).exists() && Path::new(vars).exists() {
            return Ok((code.into(), vars.into()));
        }
    }
    Err(VmError::NoOvmf)
}

fn run(cmd: &mut Command, what: &'static str) -> Result<(), VmError> {
    let out = cmd
        .output()
        .map_err(VmError::program(what, " (run scripts/setup-image.sh)"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(VmError::Failed {
            command: what,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// The qemu command line for `spec` (after preparing the overlay and firmware vars).
pub fn command(spec: &VmSpec) -> Result<Command, VmError> {
    std::fs::create_dir_all(&spec.workdir).map_err(VmError::io(&spec.workdir))?;
    let mut c = Command::new("qemu-system-x86_64");
    c.args([
        "-name",
        &spec.name,
        // No PS/2 controller: nodes have a serial console and no keyboard, and
        // under TCG a guest kernel once hung for good in i8042_probe at boot
        // (tests/e2e/run's reboot-worker).
        "-machine",
        "q35,i8042=off",
        "-nographic",
        "-nodefaults",
    ]);
    c.args(spec.accel.args());
    c.args([
        "-smp",
        &spec.cpus.to_string(),
        "-m",
        &spec.memory_mib.to_string(),
    ]);
    c.args(["-device", "virtio-rng-pci"]);
    if spec.no_reboot {
        c.arg("-no-reboot");
    }
    match &spec.direct {
        Some(d) => {
            c.arg("-kernel")
                .arg(&d.kernel)
                .arg("-initrd")
                .arg(&d.initrd);
            c.args(["-append", &d.cmdline]);
        }
        None if spec.firmware == Firmware::Bios => {}
        None => {
            let (code, vars) = find_ovmf()?;
            let my_vars = spec.workdir.join(format!("{}.vars.fd", spec.name));
            if !my_vars.exists() {
                std::fs::copy(&vars, &my_vars).map_err(|source| VmError::OvmfVars {
                    vars: vars.clone(),
                    source,
                })?;
            }
            c.arg("-drive").arg(format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={}",
                code.display()
            ));
            c.arg("-drive").arg(format!(
                "if=pflash,format=raw,unit=1,file={}",
                my_vars.display()
            ));
        }
    }
    if let Some(image) = &spec.image {
        let overlay = spec.workdir.join(format!("{}.qcow2", spec.name));
        if !overlay.exists() {
            let image = std::fs::canonicalize(image).map_err(VmError::io(image))?;
            run(
                Command::new("qemu-img")
                    .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
                    .arg(&image)
                    .arg(&overlay),
                "qemu-img create",
            )?;
        }
        c.arg("-drive")
            .arg(format!("if=virtio,format=qcow2,file={}", overlay.display()));
    }
    if let Some(seed) = &spec.seed {
        // A virtio disk rather than a CD: cloud kernels carry no AHCI/ATA driver,
        // and cloud-init's NoCloud finds the `cidata` label on any block device.
        c.arg("-drive").arg(format!(
            "if=virtio,format=raw,readonly=on,file={}",
            seed.display()
        ));
    }
    if spec.pxe.is_some() {
        if spec.tap.is_some() {
            return Err(VmError::PxeWithTap);
        }
        c.args(["-boot", "n"]);
    }
    match &spec.tap {
        Some(tap) => {
            c.arg("-netdev").arg(format!(
                "tap,id=net0,ifname={},script=no,downscript=no",
                tap.ifname
            ));
            c.arg("-device")
                .arg(format!("virtio-net-pci,netdev=net0,mac={}", tap.mac));
        }
        None => {
            let mut netdev = "user,id=net0,restrict=on".to_string();
            if let Some(dir) = &spec.pxe {
                let dir = std::fs::canonicalize(dir).map_err(VmError::io(dir))?;
                netdev.push_str(&format!(
                    ",tftp={},bootfile={}",
                    dir.display(),
                    crate::pxe::SCRIPT
                ));
            }
            for f in &spec.forwards {
                netdev.push_str(&format!(
                    ",guestfwd=tcp:{HOST_ALIAS}:{}-cmd:socat STDIO TCP:127.0.0.1:{}",
                    f.guest_port, f.host_port
                ));
            }
            c.args(["-netdev", &netdev, "-device", "virtio-net-pci,netdev=net0"]);
        }
    }
    c.arg("-serial")
        .arg(format!("file:{}", spec.serial_log().display()));
    c.args(["-monitor", "none"]);
    Ok(c)
}

/// If qemu has exited: its status and what it wrote to stderr (why it failed:
/// a bad option, missing firmware, no memory).
pub fn exited(child: &mut Child) -> Result<Option<(ExitStatus, String)>, VmError> {
    let Some(status) = child.try_wait().map_err(VmError::program("qemu", ""))? else {
        return Ok(None);
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    Ok(Some((status, err.trim().to_string())))
}

/// Where a guest is in its early boot, from its serial console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EarlyBoot {
    /// Kernel and initrd still at work.
    Running,
    /// The kernel reported a stall (RCU, or a task blocked for 120 s) before
    /// systemd in the initrd reached `initrd-switch-root.target` (a diskless node:
    /// before its root was in RAM): what kind.
    Stalled(&'static str),
    /// The initrd reached `initrd-switch-root.target`, or a diskless node's root is
    /// in RAM: the node's own work may begin, and a stall is never a reason to
    /// start the guest again.
    Over,
}

/// What `/usr/lib/kubeboot/ramroot` prints once a diskless node's root is in its tmpfs.
const RAMROOT_DONE: &str = "kubeboot ramroot: root file system in RAM";

/// Under qemu TCG on a loaded host a guest has hung for good in early boot —
/// waiting for a timer interrupt that never came, idle — twice in tests/e2e/run (in
/// `i8042_probe`, and in the initrd), when nothing of the node (no agent, no
/// kubeadm) had run yet, so a fresh start is safe.
pub fn early_boot(serial: &str) -> EarlyBoot {
    if serial.contains("initrd-switch-root.target") || serial.contains(RAMROOT_DONE) {
        return EarlyBoot::Over;
    }
    [
        ("rcu: INFO: rcu_preempt detected stalls", "an RCU stall"),
        ("rcu: INFO: rcu_sched detected stalls", "an RCU stall"),
        ("blocked for more than", "a task blocked for minutes"),
    ]
    .into_iter()
    .find(|(sign, _)| serial.contains(sign))
    .map_or(EarlyBoot::Running, |(_, what)| EarlyBoot::Stalled(what))
}

/// The last `lines` lines of a serial console log (empty if there is none yet).
pub fn serial_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read(log).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The child gets SIGKILL when the thread that started it ends, so a `kubeboot
/// up` or `image boot` killed with SIGKILL (no chance to clean up) leaves no
/// qemu or helper running. Start such children from a thread that lives as long
/// as they should (the main thread here).
pub fn die_with_parent(c: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        c.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Start the VM in the background.
pub fn start(spec: &VmSpec) -> Result<Child, VmError> {
    let mut c = command(spec)?;
    die_with_parent(&mut c);
    if spec.nice != 0 {
        let nice = spec.nice;
        use std::os::unix::process::CommandExt;
        // SAFETY: setpriority is async-signal-safe; qemu's threads inherit it.
        unsafe {
            c.pre_exec(move || {
                if libc::setpriority(libc::PRIO_PROCESS, 0, nice) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c.spawn().map_err(VmError::program(
        "qemu-system-x86_64",
        " (run scripts/setup-image.sh)",
    ))
}

/// Root partition's PARTUUID of a built disk image (deterministic from mkosi's Seed=).
pub fn root_partuuid(raw: &std::path::Path) -> Result<String, VmError> {
    Ok(crate::disk::root_partition(raw)?.uuid.to_ascii_lowercase())
}

/// A VM of the built image in `image_dir` (kubeboot.raw; with `direct_cmdline`, its
/// kernel and initrd booted directly with that command line added).
pub fn spec_for_image(
    image_dir: &std::path::Path,
    name: &str,
    workdir: PathBuf,
    seed: Option<PathBuf>,
    direct_cmdline: Option<&str>,
    forwards: Vec<Forward>,
) -> Result<VmSpec, VmError> {
    let raw = image_dir.join("kubeboot.raw");
    if !raw.exists() {
        return Err(VmError::NoImage(raw));
    }
    let direct = match direct_cmdline {
        Some(extra) => Some(DirectBoot {
            kernel: image_dir.join("kubeboot.vmlinuz"),
            initrd: image_dir.join("kubeboot.initrd"),
            cmdline: format!(
                "root=PARTUUID={} rw console=ttyS0,115200 systemd.firstboot=off {extra}",
                root_partuuid(&raw)?
            ),
        }),
        None => None,
    };
    Ok(VmSpec {
        image: Some(raw),
        seed,
        direct,
        ..VmSpec::defaults(name, workdir, forwards)
    })
}

/// A diskless VM that boots the PXE set in `pxe_dir` (`kubeboot image pxe`) through
/// its firmware's iPXE and qemu's TFTP server: no disk is attached.
pub fn spec_for_pxe(
    pxe_dir: &std::path::Path,
    name: &str,
    workdir: PathBuf,
    firmware: Firmware,
    forwards: Vec<Forward>,
) -> Result<VmSpec, VmError> {
    let script = pxe_dir.join(crate::pxe::SCRIPT);
    if !script.exists() {
        return Err(VmError::NoPxeScript {
            script,
            dir: pxe_dir.to_path_buf(),
        });
    }
    Ok(VmSpec {
        pxe: Some(pxe_dir.to_path_buf()),
        firmware,
        ..VmSpec::defaults(name, workdir, forwards)
    })
}

/// SIGTERM, SIGINT and SIGHUP set a flag the boot loop checks, so the VM is
/// killed with its `image boot` (scripts and tests stop it that way).
///
/// Registered through signal-hook's registry, the one tokio's signal handling
/// uses too: `up`'s in-process `serve` still sees the same signals (one signal
/// path for the whole process, nothing replaced).
pub fn stop_on_signals() -> &'static std::sync::atomic::AtomicBool {
    static FLAG: std::sync::OnceLock<std::sync::Arc<std::sync::atomic::AtomicBool>> =
        std::sync::OnceLock::new();
    let flag = FLAG.get_or_init(|| {
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        for sig in [
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGHUP,
        ] {
            if let Err(e) = signal_hook::flag::register(sig, flag.clone()) {
                tracing::warn!("cannot watch signal {sig}: {e}");
            }
        }
        flag
    });
    flag.as_ref()
}

#[cfg(test)]
mod tests {
    use super::{early_boot, EarlyBoot};
    use std::process::Command;

    #[test]
    fn a_stall_before_the_root_file_system_is_an_early_boot_hang() {
        // Excerpts of two such hangs' serial logs.
        let in_kernel_init = "[    4.1] i8042: PNP: PS/2 Controller [PNP0303:KBD,PNP0f13:MOU] at 0x60,0x64 irq 1,12\n\
            [  242.6] INFO: task swapper/0:1 blocked for more than 120 seconds.\n\
            [  242.6]  i8042_probe+0x77d/0x850\n";
        let in_initrd = "[    5.1] systemd[1]: Running in initrd.\n\
            [   22.0] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:\n\
            [   22.0] rcu: rcu_preempt kthread timer wakeup didn't happen for 5251 jiffies!\n";
        assert_eq!(
            early_boot(in_kernel_init),
            EarlyBoot::Stalled("a task blocked for minutes")
        );
        assert_eq!(early_boot(in_initrd), EarlyBoot::Stalled("an RCU stall"));
        // After the switch to the root file system the node's own work may have
        // begun: never a reason to restart.
        let later = format!(
            "{in_initrd}[  OK  ] Reached target \u{1b}[0;1;39minitrd-switch-root.target\u{1b}[0m - Switch Root.\n"
        );
        assert_eq!(early_boot(&later), EarlyBoot::Over);
        assert_eq!(
            early_boot("[    5.1] systemd[1]: Running in initrd.\n"),
            EarlyBoot::Running
        );
    }

    #[test]
    fn a_child_dies_with_the_thread_that_started_it() {
        let mut child = std::thread::spawn(|| {
            let mut c = Command::new("sleep");
            c.arg("60");
            super::die_with_parent(&mut c);
            c.spawn().unwrap()
        })
        .join()
        .unwrap();
        // The spawning thread has ended: the kernel sends SIGKILL. Bounded wait.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "sleep outlived its parent thread"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }
}
