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

use super::{run_bounded, BoundedError, Host};

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
        let mut start = self.command("systemctl");
        start.args(["start", "--no-ask-password"]).args(units);
        run_bounded(start, limit).map_err(|e| match e {
            BoundedError::TimedOut(_) => format!(
                "{} not reached within {} s",
                units.join(" "),
                limit.as_secs()
            ),
            e => format!("systemctl start {}: {e}", units.join(" ")),
        })
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
                Some(settled) => return settled,
                None if Instant::now() >= deadline => return UnitWait::StillRunning,
                None => std::thread::sleep(Duration::from_millis(250)),
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

/// From `systemctl list-jobs --no-legend --plain UNIT` and `systemctl show
/// --property=LoadState,ActiveState UNIT`: how the unit settled, or `None`
/// while it is queued or starting.
fn unit_progress(jobs: &str, show: &str) -> Option<UnitWait> {
    let prop = |name: &str| {
        show.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or("")
            .trim()
            .to_string()
    };
    if prop("LoadState") == "not-found" {
        return Some(UnitWait::NotInBoot);
    }
    let queued = jobs.lines().any(|l| !l.trim().is_empty());
    match prop("ActiveState").as_str() {
        "activating" | "deactivating" | "reloading" => None,
        _ if queued => None,
        "active" | "failed" => Some(UnitWait::Ran),
        _ => Some(UnitWait::NotInBoot),
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
            None
        );
        assert_eq!(
            unit_progress("", "LoadState=loaded\nActiveState=activating\n"),
            None
        );
        assert_eq!(
            unit_progress("", "LoadState=loaded\nActiveState=active\n"),
            Some(UnitWait::Ran)
        );
        assert_eq!(
            unit_progress("", "LoadState=loaded\nActiveState=failed\n"),
            Some(UnitWait::Ran)
        );
    }

    #[test]
    fn a_unit_outside_this_boot_is_not_waited_for() {
        // Disabled by its generator: loaded, inactive, no job.
        assert_eq!(
            unit_progress("", "LoadState=loaded\nActiveState=inactive\n"),
            Some(UnitWait::NotInBoot)
        );
        // Not installed.
        assert_eq!(
            unit_progress("", "LoadState=not-found\nActiveState=inactive\n"),
            Some(UnitWait::NotInBoot)
        );
        // systemctl gave nothing (no systemd): nothing to wait for.
        assert_eq!(unit_progress("", ""), Some(UnitWait::NotInBoot));
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
