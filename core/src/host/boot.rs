//! Waiting for the rest of the boot. `kubeboot.service` starts as soon as the
//! local file systems are mounted (no `After=network-online.target`), so its
//! first status event comes seconds after systemd starts. Each step then waits
//! here for what it needs, once: the network before an HTTPS fetch, cloud-init's
//! init stage before reading what cloud-init wrote, and the network, the clock
//! and containerd before the host checks.
//!
//! Only on a booted system: root `/` and systemd as PID 1 (`/run/systemd/system`).
//! Under a test root there is nothing to wait for.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::Host;

/// Units the host checks and everything after them need: an address and a
/// route, a synchronized clock where the image waits for one, the runtime.
pub const HOST_STEP_UNITS: &[&str] = &[
    "network-online.target",
    "time-sync.target",
    "containerd.service",
];

/// The unit whose run writes `/etc/kubeboot/node.toml` (write_files) and the
/// raw user-data: cloud-init's init stage.
pub const CLOUD_INIT_UNIT: &str = "cloud-init.service";

impl Host {
    /// systemd manages this host (root `/`, systemd as PID 1).
    pub fn booted_with_systemd(&self) -> bool {
        self.is_system_root() && Path::new("/run/systemd/system").is_dir()
    }

    /// Start `units` (joining the jobs boot already queued for them) and wait
    /// until they are active or `limit` has passed. `systemctl start` returns
    /// when its jobs are done; a unit that failed is reported, not retried.
    pub fn wait_for_units(&self, units: &[&str], limit: Duration) -> Result<(), String> {
        if !self.booted_with_systemd() {
            return Ok(());
        }
        let mut child = self
            .command("systemctl")
            .args(["start", "--no-ask-password"])
            .args(units)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("systemctl start {}: {e}", units.join(" ")))?;
        let deadline = Instant::now() + limit;
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        use std::io::Read;
                        let _ = e.read_to_string(&mut err);
                    }
                    return Err(format!(
                        "systemctl start {}: {status}: {}",
                        units.join(" "),
                        err.trim()
                    ));
                }
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "{} not reached within {} s",
                        units.join(" "),
                        limit.as_secs()
                    ));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(200)),
                Err(e) => return Err(format!("systemctl start {}: {e}", units.join(" "))),
            }
        }
    }

    /// Wait while `unit` is queued to start or starting, at most `limit`: for a
    /// unit this agent must not start itself (cloud-init's, which its generator
    /// leaves out of the boot when cloud-init is disabled). Returns what the
    /// unit became: `Ran`, `NotInBoot` (not installed, or not part of this
    /// boot), or `StillRunning` when the limit passed.
    pub fn wait_while_starting(&self, unit: &str, limit: Duration) -> UnitWait {
        if !self.booted_with_systemd() {
            return UnitWait::NotInBoot;
        }
        let deadline = Instant::now() + limit;
        loop {
            let jobs = self.systemctl_output(&["list-jobs", "--no-legend", "--plain", unit]);
            let show = self.systemctl_output(&["show", "--property=LoadState,ActiveState", unit]);
            match unit_progress(&jobs, &show) {
                Progress::Pending if Instant::now() >= deadline => return UnitWait::StillRunning,
                Progress::Pending => std::thread::sleep(Duration::from_millis(250)),
                Progress::Ran => return UnitWait::Ran,
                Progress::NotInBoot => return UnitWait::NotInBoot,
            }
        }
    }

    fn systemctl_output(&self, args: &[&str]) -> String {
        self.command("systemctl")
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }
}

/// What `wait_while_starting` saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitWait {
    Ran,
    NotInBoot,
    StillRunning,
}

#[derive(Debug, PartialEq, Eq)]
enum Progress {
    Pending,
    Ran,
    NotInBoot,
}

/// From `systemctl list-jobs --no-legend --plain UNIT` and `systemctl show
/// --property=LoadState,ActiveState UNIT`.
fn unit_progress(jobs: &str, show: &str) -> Progress {
    let prop = |name: &str| {
        show.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or("")
            .trim()
            .to_string()
    };
    if prop("LoadState") == "not-found" {
        return Progress::NotInBoot;
    }
    let queued = jobs.lines().any(|l| !l.trim().is_empty());
    match prop("ActiveState").as_str() {
        "activating" | "deactivating" | "reloading" => Progress::Pending,
        _ if queued => Progress::Pending,
        "active" | "failed" => Progress::Ran,
        _ => Progress::NotInBoot,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_or_starting_unit_is_waited_for_and_a_finished_one_is_not() {
        let job = "1234 cloud-init.service start waiting\n";
        assert_eq!(
            unit_progress(job, "LoadState=loaded\nActiveState=inactive\n"),
            Progress::Pending
        );
        assert_eq!(
            unit_progress("", "LoadState=loaded\nActiveState=activating\n"),
            Progress::Pending
        );
        assert_eq!(
            unit_progress("", "LoadState=loaded\nActiveState=active\n"),
            Progress::Ran
        );
        assert_eq!(
            unit_progress("", "LoadState=loaded\nActiveState=failed\n"),
            Progress::Ran
        );
    }

    #[test]
    fn a_unit_outside_this_boot_is_not_waited_for() {
        // Disabled by its generator: loaded, inactive, no job.
        assert_eq!(
            unit_progress("", "LoadState=loaded\nActiveState=inactive\n"),
            Progress::NotInBoot
        );
        // Not installed.
        assert_eq!(
            unit_progress("", "LoadState=not-found\nActiveState=inactive\n"),
            Progress::NotInBoot
        );
        // systemctl gave nothing (no systemd): nothing to wait for.
        assert_eq!(unit_progress("", ""), Progress::NotInBoot);
    }

    #[test]
    fn off_a_booted_system_nothing_waits() {
        let host = Host::new("/nonexistent-root", "/nonexistent-bin".into());
        assert!(!host.booted_with_systemd());
        assert_eq!(
            host.wait_for_units(&["network-online.target"], Duration::from_secs(1)),
            Ok(())
        );
        assert_eq!(
            host.wait_while_starting(CLOUD_INIT_UNIT, Duration::from_secs(1)),
            UnitWait::NotInBoot
        );
    }
}
