//! A real etcd cluster on loopback, from Debian's etcd-server (scripts/setup.sh): members
//! with TLS client URLs (client certificates required, as kubeadm's stacked etcd
//! does) and plain peer URLs, each its own process that dies with the test
//! process (PR_SET_PDEATHSIG) and that a test may kill.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kubeboot_kube::replace::etcd::EtcdAccess;
use secrecy::SecretString;

pub struct EtcdMember {
    pub name: String,
    pub client_url: String,
    pub peer_url: String,
    /// How it was first started (`--initial-cluster`, `--initial-cluster-state`).
    initial: (String, String),
    child: Option<Child>,
}

pub struct EtcdCluster {
    pub dir: tempfile::TempDir,
    pub ca_pem: String,
    ca_key_pem: String,
    server_cert: PathBuf,
    server_key: PathBuf,
    pub members: Vec<EtcdMember>,
}

fn port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl EtcdCluster {
    /// `names.len()` members, started together; returns once every one answers.
    pub fn start(names: &[&str]) -> EtcdCluster {
        let dir = tempfile::tempdir().unwrap();
        let ca = kubeboot_core::pki::new_ca("etcd-ca").unwrap();
        let (cert, key) =
            kubeboot_core::pki::issue_server_cert(&ca, &ca.key_pem, &["127.0.0.1".to_string()])
                .unwrap();
        let server_cert = dir.path().join("server.crt");
        let server_key = dir.path().join("server.key");
        std::fs::write(&server_cert, cert).unwrap();
        std::fs::write(&server_key, key).unwrap();
        std::fs::write(dir.path().join("ca.crt"), &ca.cert_pem).unwrap();
        let mut cluster = EtcdCluster {
            dir,
            ca_pem: ca.cert_pem.clone(),
            ca_key_pem: ca.key_pem.clone(),
            server_cert,
            server_key,
            members: names
                .iter()
                .map(|n| EtcdMember {
                    name: n.to_string(),
                    client_url: format!("https://127.0.0.1:{}", port()),
                    peer_url: format!("http://127.0.0.1:{}", port()),
                    initial: Default::default(),
                    child: None,
                })
                .collect(),
        };
        let initial: Vec<String> = cluster
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url))
            .collect();
        for i in 0..cluster.members.len() {
            cluster.spawn(i, &initial.join(","), "new");
        }
        for i in 0..cluster.members.len() {
            cluster.wait_answers(i);
        }
        cluster
    }

    fn spawn(&mut self, i: usize, initial_cluster: &str, state: &str) {
        let bin = crate::control_plane::etcd_program();
        self.members[i].initial = (initial_cluster.to_string(), state.to_string());
        let m = &self.members[i];
        let data = self.dir.path().join(format!("{}-{}", m.name, i));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{}-{i}.log", m.name)))
            .unwrap();
        let mut c = Command::new(bin);
        c.args(["--name", &m.name, "--data-dir"])
            .arg(&data)
            .args(["--listen-client-urls", &m.client_url])
            .args(["--advertise-client-urls", &m.client_url])
            .args(["--listen-peer-urls", &m.peer_url])
            .args(["--initial-advertise-peer-urls", &m.peer_url])
            .args(["--initial-cluster", initial_cluster])
            .args(["--initial-cluster-state", state])
            .args(["--initial-cluster-token", "kubeboot-test"])
            .arg("--cert-file")
            .arg(&self.server_cert)
            .arg("--key-file")
            .arg(&self.server_key)
            .arg("--client-cert-auth")
            .arg("--trusted-ca-file")
            .arg(self.dir.path().join("ca.crt"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        // SAFETY: prctl only, between fork and exec.
        unsafe {
            c.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        self.members[i].child = Some(c.spawn().expect("start etcd"));
    }

    /// Wait (bounded) until member `i` answers etcd's Status.
    pub fn wait_answers(&self, i: usize) {
        let access = self.access();
        let url = self.members[i].client_url.clone();
        // Bounded, not timed: a member joining a 2-member cluster took over 60 s
        // once while VMs shared the 2 cores; alone it answers within seconds.
        let deadline = Instant::now() + Duration::from_secs(180);
        kubeboot_kube::client::block_on(async {
            loop {
                let ok = async {
                    let mut c = kubeboot_kube::replace::etcd::connect(&access, &url)
                        .await
                        .ok()?;
                    c.status().await.ok()
                }
                .await;
                if ok.is_some() {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "etcd {url} did not answer in 180 s; logs in {}",
                    self.dir.path().display()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    }

    /// A client identity from this cluster's CA (as the replacement logic mints one).
    pub fn access(&self) -> EtcdAccess {
        let (cert, key) = kubeboot_core::pki::issue_client_cert(
            &self.ca_pem,
            &self.ca_key_pem,
            "test-client",
            &[],
            std::time::Duration::from_secs(10 * 60),
        )
        .unwrap();
        EtcdAccess {
            ca_pem: self.ca_pem.clone(),
            cert_pem: cert,
            key_pem: SecretString::from(key),
            timeout: Duration::from_secs(2),
        }
    }

    pub fn client_urls(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    /// SIGKILL member `i` (a machine that died).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGSTOP member `i` (a member that is slow, not dead: its kernel still
    /// accepts connections).
    pub fn pause(&self, i: usize) {
        self.signal(i, nix::sys::signal::Signal::SIGSTOP);
    }

    /// SIGCONT member `i`.
    pub fn resume(&self, i: usize) {
        self.signal(i, nix::sys::signal::Signal::SIGCONT);
    }

    fn signal(&self, i: usize, sig: nix::sys::signal::Signal) {
        let child = self.members[i].child.as_ref().expect("a running member");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
    }

    /// Start member `i` again on its own data (a machine that rebooted); does not wait.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        let (initial, state) = self.members[i].initial.clone();
        self.spawn(i, &initial, &state);
    }

    /// What `kubeadm join --control-plane` does for etcd: add the member through a
    /// live one, then start it with `--initial-cluster-state existing`.
    pub fn join(&mut self, name: &str, through: &str) -> usize {
        let m = EtcdMember {
            name: name.to_string(),
            client_url: format!("https://127.0.0.1:{}", port()),
            peer_url: format!("http://127.0.0.1:{}", port()),
            initial: Default::default(),
            child: None,
        };
        let access = self.access();
        let peer = m.peer_url.clone();
        let through = through.to_string();
        let listed = kubeboot_kube::client::block_on(async move {
            let mut c = kubeboot_kube::replace::etcd::connect(&access, &through)
                .await
                .unwrap();
            // etcd refuses to add a member until the cluster has been healthy for a few
            // seconds (strict reconfiguration check); kubeadm retries the same way.
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                match c.member_add([peer.clone()], None).await {
                    Ok(added) => break added.member_list().to_vec(),
                    Err(e) if Instant::now() < deadline => {
                        eprintln!("member add: {e}; trying again");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    Err(e) => panic!("member add: {e}"),
                }
            }
        });
        let mut initial: Vec<String> = listed
            .iter()
            .filter(|x| !x.name().is_empty())
            .flat_map(|x| {
                x.peer_urls()
                    .iter()
                    .map(move |u| format!("{}={u}", x.name()))
            })
            .collect();
        initial.push(format!("{name}={}", m.peer_url));
        self.members.push(m);
        let i = self.members.len() - 1;
        self.spawn(i, &initial.join(","), "existing");
        self.wait_answers(i);
        i
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}
