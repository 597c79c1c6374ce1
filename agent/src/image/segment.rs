//! A private L2 segment for a cluster of VMs: a network namespace with no
//! route out, one bridge, one tap per VM, static addresses, and haproxy as the
//! control-plane endpoint in front of the control-plane VMs (as the kubeadm HA
//! guides do it). `kubeboot up --profile production` runs everything it starts
//! (the receiver, haproxy, qemu) inside it; tests/e2e/real-cluster builds the
//! same layout in shell.
//!
//! Layout (10.88.0.0/24 on bridge `br0`):
//!   .1  the operator side: the receiver, kubectl (and the VMs' gateway: the
//!       namespace routes nowhere, so "default via .1" leads nowhere beyond it)
//!   .2  haproxy, the control-plane endpoint (:6443)
//!   .11 … control planes, .21 … workers

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const PREFIX: &str = "10.88.0";
pub const OPERATOR: &str = "10.88.0.1";
pub const ENDPOINT: &str = "10.88.0.2";

/// One VM's place on the segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub tap: String,
    pub mac: String,
    pub address: String,
}

impl Port {
    /// Control planes from .11, workers from .21 (at most 9 of each).
    pub fn new(control_plane: bool, index: u32) -> Result<Port, String> {
        if !(1..=9).contains(&index) {
            return Err(format!(
                "at most 9 {} on one segment",
                if control_plane {
                    "control planes"
                } else {
                    "workers"
                }
            ));
        }
        let host = if control_plane { 10 } else { 20 } + index;
        Ok(Port {
            tap: format!("tap{host}"),
            mac: format!("52:54:00:88:00:{host:02x}"),
            address: format!("{PREFIX}.{host}"),
        })
    }

    /// cloud-init network-config (v2): this address on the NIC with this MAC.
    pub fn network_config(&self) -> String {
        format!(
            "version: 2\nethernets:\n  lan:\n    match:\n      macaddress: \"{}\"\n    \
             addresses: [{}/24]\n    routes:\n      - to: 0.0.0.0/0\n        via: {OPERATOR}\n",
            self.mac, self.address
        )
    }
}

/// haproxy's configuration: TCP on ENDPOINT:6443, health-checked with
/// `GET /readyz` (anonymous on kube-apiserver) against every control plane.
pub fn haproxy_config(control_planes: &[(String, String)]) -> String {
    let mut s = format!(
        "global\n    log stdout format raw local0 info\ndefaults\n    mode tcp\n    log global\n    \
         option tcplog\n    timeout connect 5s\n    timeout client 10m\n    timeout server 10m\n    timeout check 20s\n\
         frontend kube-apiserver\n    bind {ENDPOINT}:6443\n    default_backend control-planes\n\
         backend control-planes\n    option httpchk GET /readyz\n    http-check expect status 200\n    \
         default-server inter 10s fall 6 rise 1 check check-ssl verify none\n"
    );
    for (name, address) in control_planes {
        s.push_str(&format!("    server {name} {address}:6443\n"));
    }
    // Fail open: when every check fails (a control plane slow under TCG missed
    // its checks), haproxy still tries the first (init) control plane instead of
    // refusing. Only that one: a joining control plane's API server starts before
    // its etcd member exists and answers nothing useful until its join is done.
    if let Some((name, address)) = control_planes.first() {
        s.push_str(&format!(
            "    server {name}-open {address}:6443 backup no-check\n"
        ));
    }
    s
}

/// The namespace; deleted (with everything in it) when dropped.
pub struct Segment {
    pub namespace: String,
    children: Vec<Child>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| {
        format!(
            "ip {}: {e} (install iproute2: scripts/setup-image.sh)",
            args.join(" ")
        )
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Segment {
    /// Create namespace `name` with bridge br0 (.1 and .2) and move this
    /// process into it: the receiver, haproxy and qemu started afterwards run
    /// inside (threads and children inherit the namespace).
    pub fn create(name: &str) -> Result<Segment, String> {
        if !nix::unistd::geteuid().is_root() {
            return Err("a VM network needs root (it creates a network namespace, a bridge and tap devices)".into());
        }
        ip(&["netns", "add", name])?;
        let seg = Segment {
            namespace: name.into(),
            children: Vec::new(),
        };
        let ns = File::open(format!("/run/netns/{name}"))
            .map_err(|e| format!("/run/netns/{name}: {e}"))?;
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("entering network namespace {name}: {e}"))?;
        ip(&["link", "set", "lo", "up"])?;
        ip(&["link", "add", "br0", "type", "bridge"])?;
        ip(&["addr", "add", &format!("{OPERATOR}/24"), "dev", "br0"])?;
        ip(&["addr", "add", &format!("{ENDPOINT}/24"), "dev", "br0"])?;
        ip(&["link", "set", "br0", "up"])?;
        Ok(seg)
    }

    pub fn add_tap(&self, port: &Port) -> Result<(), String> {
        ip(&["tuntap", "add", &port.tap, "mode", "tap"])?;
        ip(&["link", "set", &port.tap, "master", "br0", "up"])
    }

    /// Start haproxy (Debian's) with `config`, its log in `dir/haproxy.log`.
    pub fn start_haproxy(&mut self, config: &str, dir: &Path) -> Result<PathBuf, String> {
        let cfg = dir.join("haproxy.cfg");
        std::fs::write(&cfg, config).map_err(|e| format!("{}: {e}", cfg.display()))?;
        let log_path = dir.join("haproxy.log");
        let log = File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let mut haproxy = Command::new("haproxy");
        super::vm::die_with_parent(&mut haproxy);
        let child = haproxy
            .arg("-f")
            .arg(&cfg)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("haproxy: {e} (install it: scripts/setup-image.sh)"))?;
        self.children.push(child);
        Ok(log_path)
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.namespace])
            .status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_bounded() {
        let cp = Port::new(true, 1).unwrap();
        assert_eq!(
            (cp.tap.as_str(), cp.mac.as_str(), cp.address.as_str()),
            ("tap11", "52:54:00:88:00:0b", "10.88.0.11")
        );
        assert_eq!(Port::new(false, 2).unwrap().address, "10.88.0.22");
        assert!(Port::new(false, 10).is_err());
        assert!(Port::new(true, 0).is_err());
        let nc = cp.network_config();
        assert!(nc.contains("macaddress: \"52:54:00:88:00:0b\""), "{nc}");
        assert!(nc.contains("addresses: [10.88.0.11/24]"), "{nc}");
    }

    #[test]
    fn haproxy_checks_every_control_plane() {
        let cfg = haproxy_config(&[
            ("cp-1".into(), "10.88.0.11".into()),
            ("cp-2".into(), "10.88.0.12".into()),
        ]);
        assert!(cfg.contains("bind 10.88.0.2:6443"));
        assert!(cfg.contains("server cp-1 10.88.0.11:6443\n"));
        assert!(cfg.contains("server cp-2 10.88.0.12:6443\n"));
        assert!(cfg.contains("option httpchk GET /readyz"));
        assert!(cfg.contains("server cp-1-open 10.88.0.11:6443 backup no-check\n"));
        assert!(!cfg.contains("cp-2-open"), "{cfg}");
    }
}
