//! A private L2 segment for a cluster of VMs: a network namespace with no
//! route out, one bridge, one tap per VM, static addresses, and haproxy as the
//! control-plane endpoint in front of the control-plane VMs (as the kubeadm HA
//! guides do it). `kubeboot up --profile production` runs everything it starts
//! (the receiver, haproxy, qemu) inside it; tests/e2e/real-cluster holds the
//! same segment with `kubeboot lab segment` and starts its own processes in it.
//!
//! Layout (10.88.0.0/24 on bridge `br0`):
//!   .1  the operator side: the receiver, kubectl (and the VMs' gateway: the
//!       namespace routes nowhere, so "default via .1" leads nowhere beyond it)
//!   .1:2379 the external etcd, when the cluster uses one (`up --etcd external`)
//!   .2  haproxy, the control-plane endpoint (:6443)
//!   .11 … control planes, .21 … workers

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use kubeboot_serve::bundle::EtcdClientFiles;

pub const PREFIX: &str = "10.88.0";
pub const OPERATOR: &str = "10.88.0.1";
pub const ENDPOINT: &str = "10.88.0.2";
/// The external etcd's client port on OPERATOR (`kubeboot up --etcd external`).
pub const ETCD_PORT: u16 = 2379;

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
/// `GET /readyz` (anonymous on kube-apiserver) against every control plane
/// (name, address). The one load balancer of `kubeboot up` and of
/// tests/e2e/real-cluster (through `kubeboot lab haproxy-config`).
pub fn haproxy_config(control_planes: &[(String, String)]) -> String {
    let mut s = format!(
        "global\n    log stdout format raw local0 info\n\
         defaults\n    mode tcp\n    log global\n    option tcplog\n\
         \x20   # A connection to a dead control plane (its VM stopped: \"No route to host\" once ARP\n\
         \x20   # gives up) is retried on another server at once, and the first failure marks it\n\
         \x20   # down (observe layer4), so no client waits out the health checks.\n\
         \x20   retries 3\n    option redispatch 1\n\
         \x20   timeout connect 3s\n    timeout client 10m\n    timeout server 10m\n    timeout check 20s\n\
         frontend kube-apiserver\n    bind {ENDPOINT}:6443\n    default_backend control-planes\n\
         backend control-planes\n    option httpchk GET /readyz\n    http-check expect status 200\n\
         \x20   default-server inter 10s fall 6 rise 1 check check-ssl verify none observe layer4 \
         error-limit 1 on-error mark-down\n"
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
        let mut haproxy = Command::new("haproxy");
        haproxy.arg("-f").arg(&cfg).arg("-db");
        self.spawn(haproxy, &dir.join("haproxy.log"))
            .map_err(|e| format!("haproxy: {e} (install it: scripts/setup-image.sh)"))
    }

    /// Start one etcd on OPERATOR:2379 (kubeadm's external-etcd topology), with a
    /// CA, server and client certificates made for it in `dir/etcd-pki` (keys
    /// 0600), its data in `dir/etcd-data` and log in `dir/etcd.log`. Returns the
    /// files a bundle needs (`bundle new --external-etcd-ca/-cert/-key`) once
    /// etcd accepts connections (bounded: 30 s).
    pub fn start_etcd(&mut self, etcd: &Path, dir: &Path) -> Result<ExternalEtcd, String> {
        let pki = dir.join("etcd-pki");
        let files = write_etcd_pki(&pki)?;
        let data = dir.join("etcd-data");
        let _ = std::fs::remove_dir_all(&data);
        let log = dir.join("etcd.log");
        let client_url = format!("https://{OPERATOR}:{ETCD_PORT}");
        let mut cmd = Command::new(etcd);
        cmd.arg("--name=external")
            .arg(format!("--data-dir={}", data.display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            // Peers: none (one member), on loopback only.
            .args([
                "--listen-peer-urls=http://127.0.0.1:2380",
                "--initial-advertise-peer-urls=http://127.0.0.1:2380",
                "--initial-cluster=external=http://127.0.0.1:2380",
                "--listen-metrics-urls=",
                "--client-cert-auth",
            ])
            .arg(format!("--cert-file={}", pki.join("server.crt").display()))
            .arg(format!("--key-file={}", pki.join("server.key").display()))
            .arg(format!("--trusted-ca-file={}", files.ca.display()));
        self.spawn(cmd, &log)
            .map_err(|e| format!("{}: {e}", etcd.display()))?;
        let addr: std::net::SocketAddr = format!("{OPERATOR}:{ETCD_PORT}").parse().expect("static");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let child = self.children.last_mut().expect("just started");
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "etcd exited ({status}) at start; its log: {}",
                    log.display()
                ));
            }
            if std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(1))
                .is_ok()
            {
                return Ok(ExternalEtcd {
                    url: client_url,
                    client: files,
                });
            }
            if std::time::Instant::now() > deadline {
                return Err(format!(
                    "etcd did not listen on {addr} within 30 s; its log: {}",
                    log.display()
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    /// Run `cmd` inside the segment (this process's namespace) until the segment
    /// is dropped (and with this process: it dies with its parent), output to `log`.
    fn spawn(&mut self, mut cmd: Command, log_path: &Path) -> Result<PathBuf, String> {
        let log = File::create(log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        kubeboot_image::vm::die_with_parent(&mut cmd);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| e.to_string())?;
        self.children.push(child);
        Ok(log_path.to_path_buf())
    }
}

/// The external etcd's client URL and the files a bundle carries for it.
pub struct ExternalEtcd {
    pub url: String,
    pub client: EtcdClientFiles,
}

/// An etcd CA, a server certificate for OPERATOR and the API servers' client
/// certificate (kubeadm's `apiserver-etcd-client`), written under `pki`.
fn write_etcd_pki(pki: &Path) -> Result<EtcdClientFiles, String> {
    use kubeboot_core::pki;
    let host = kubeboot_core::host::Host::system();
    let ca = pki::new_ca("etcd-ca")?;
    let (server_cert, server_key) =
        pki::issue_server_cert(&ca, &ca.key_pem, &[OPERATOR.to_string()])?;
    let (client_cert, client_key) = pki::issue_client_cert(
        &ca.cert_pem,
        &ca.key_pem,
        "kube-apiserver-etcd-client",
        &[],
        std::time::Duration::from_secs(pki::CA_VALIDITY_DAYS as u64 * 86_400),
    )?;
    std::fs::create_dir_all(pki).map_err(|e| format!("{}: {e}", pki.display()))?;
    for (name, text, mode) in [
        ("ca.crt", &ca.cert_pem, 0o644),
        ("ca.key", &ca.key_pem, 0o600),
        ("server.crt", &server_cert, 0o644),
        ("server.key", &server_key, 0o600),
        ("client.crt", &client_cert, 0o644),
        ("client.key", &client_key, 0o600),
    ] {
        let path = pki.join(name);
        host.write_atomic(&path, text.as_bytes(), mode)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(EtcdClientFiles {
        ca: pki.join("ca.crt"),
        cert: pki.join("client.crt"),
        key: pki.join("client.key"),
    })
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
    fn the_external_etcds_files_are_private_chain_to_its_ca_and_make_a_bundle() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("etcd-pki");
        let files = write_etcd_pki(&pki).unwrap();
        for (name, mode) in [
            ("ca.key", 0o600),
            ("server.key", 0o600),
            ("client.key", 0o600),
            ("ca.crt", 0o644),
        ] {
            let m = std::fs::metadata(pki.join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(m & 0o777, mode, "{name}");
        }
        let der = |path: &Path| {
            let pem = std::fs::read(path).unwrap();
            kubeboot_core::tls::first_pem_certificate(&pem).unwrap()
        };
        let (ca, server, client) = (
            der(&files.ca),
            der(&pki.join("server.crt")),
            der(&files.cert),
        );
        let ca = x509_parser::parse_x509_certificate(&ca).unwrap().1;
        for (what, d) in [("server", &server), ("client", &client)] {
            let c = x509_parser::parse_x509_certificate(d).unwrap().1;
            assert_eq!(c.issuer(), ca.subject(), "{what} certificate's issuer");
            assert_ne!(
                c.subject(),
                ca.subject(),
                "{what} certificate is the CA itself"
            );
        }
        let server = x509_parser::parse_x509_certificate(&server).unwrap().1;
        let sans = format!(
            "{:?}",
            server.subject_alternative_name().unwrap().unwrap().value
        );
        assert!(sans.contains("IPAddress([10, 88, 0, 1])"), "{sans}");
        // The bundle takes them as --external-etcd-ca/-cert/-key would give them.
        let summary = kubeboot_serve::bundle::create(
            &kubeboot_serve::bundle::NewBundle {
                endpoint: format!("{ENDPOINT}:6443"),
                name: None,
                kubernetes_version: None,
                pod_subnet: None,
                external_etcd: vec![format!("https://{OPERATOR}:{ETCD_PORT}")],
                external_etcd_client: Some(files),
                slow_host: true,
            },
            &dir.path().join("bundle"),
            false,
        );
        assert!(summary.is_ok(), "{:?}", summary.err());
        let init = std::fs::read_to_string(dir.path().join("bundle/nodes/init.toml")).unwrap();
        assert!(init.contains("external_endpoints"), "{init}");
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
        assert!(
            cfg.contains("    retries 3\n    option redispatch 1\n"),
            "{cfg}"
        );
        assert!(
            cfg.contains("observe layer4 error-limit 1 on-error mark-down\n"),
            "{cfg}"
        );
    }
}
