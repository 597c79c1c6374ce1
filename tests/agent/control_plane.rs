//! A real Kubernetes control plane on loopback, from the user's real release
//! binaries (`KUBEBOOT_KUBERNETES`) and Debian's etcd: etcd, kube-apiserver and
//! kube-controller-manager started as
//! plain processes, with kubeadm's own phases making everything else — the PKI
//! (`init phase certs all`), the kubeconfigs, the kubeadm-config ConfigMap, the
//! bootstrap token and the signed `cluster-info` (`bootstrap-token`, signed by the
//! controller-manager's bootstrapsigner), and the uploaded certificates.
//!
//! One control plane per test binary, started on first use (≈ 12 s), shared by
//! the tests that read from it. Its processes die with the test process
//! (PR_SET_PDEATHSIG, set from a thread that lives as long as the process).
//!
//! Binaries: `KUBEBOOT_K8S_BIN` (a directory with kube-apiserver, …), else the
//! artifacts in `KUBEBOOT_KUBERNETES`, an archive unpacked into the target
//! directory once. The tests that use them are `#[ignore]`d, so they run only with
//! `-- --include-ignored`; there, missing binaries fail them, never skip them.

use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const TOKEN: &str = "kbtest.0123456789abcdef";
pub const CERT_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
pub const POD_SUBNET: &str = "10.244.0.0/16";

pub struct ControlPlane {
    pub dir: PathBuf,
    pub bin: PathBuf,
    /// 127.0.0.1:PORT, the controlPlaneEndpoint every kubeconfig points at.
    pub endpoint: String,
    /// sha256:… of pki/ca.crt.
    pub ca_hash: String,
}

impl ControlPlane {
    pub fn admin_conf(&self) -> PathBuf {
        self.dir.join("admin.conf")
    }
    pub fn pki(&self, file: &str) -> PathBuf {
        self.dir.join("pki").join(file)
    }

    /// Real kubectl as cluster-admin.
    pub fn kubectl(&self, args: &[&str]) -> std::process::Output {
        Command::new(self.bin.join("kubectl"))
            .arg("--kubeconfig")
            .arg(self.admin_conf())
            .args(args)
            .output()
            .expect("run kubectl")
    }

    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The messages of the Events in `default` about `object` with `reason`.
    pub fn event_messages(&self, object: &str, reason: &str) -> String {
        let selector = format!("involvedObject.name={object},reason={reason}");
        self.kubectl_ok(&[
            "-n",
            "default",
            "get",
            "events",
            "--field-selector",
            &selector,
            "-o",
            "jsonpath={.items[*].message}",
        ])
    }

    /// A kubeconfig for `user` in `groups` (client certificate from this cluster's CA).
    pub fn kubeconfig_for(&self, user: &str, groups: &[&str]) -> PathBuf {
        let ca = std::fs::read_to_string(self.pki("ca.crt")).unwrap();
        let ca_key = std::fs::read_to_string(self.pki("ca.key")).unwrap();
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        let (cert, key) = kubeboot_core::pki::issue_client_cert(
            &ca,
            &ca_key,
            user,
            &groups,
            std::time::Duration::from_secs(3600),
        )
        .unwrap();
        let dir = self.dir.join("users").join(user.replace(':', "_"));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, pem) in [("ca.crt", &ca), ("client.crt", &cert), ("client.key", &key)] {
            std::fs::write(dir.join(name), pem).unwrap();
        }
        let path = dir.join("kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: k\n  cluster:\n    server: https://{}\n    certificate-authority: {}\n\
                 users:\n- name: u\n  user:\n    client-certificate: {}\n    client-key: {}\n\
                 contexts:\n- name: c\n  context: {{cluster: k, user: u}}\ncurrent-context: c\n",
                self.endpoint,
                dir.join("ca.crt").display(),
                dir.join("client.crt").display(),
                dir.join("client.key").display()
            ),
        )
        .unwrap();
        path
    }
}

/// The directory holding the real binaries: `KUBEBOOT_K8S_BIN`, else the
/// user's release artifacts in `KUBEBOOT_KUBERNETES` (any layout the image build
/// takes), an archive unpacked once into the target directory (atomically: tests
/// running in parallel share one complete tree).
pub fn k8s_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(d) = std::env::var_os("KUBEBOOT_K8S_BIN") {
            let d = PathBuf::from(d);
            assert!(
                d.join("kube-apiserver").exists(),
                "KUBEBOOT_K8S_BIN={} has no kube-apiserver",
                d.display()
            );
            return d;
        }
        let source = kubeboot_image::kubernetes::find_local().unwrap_or_else(|| {
            panic!(
                "this test needs real Kubernetes: set KUBEBOOT_KUBERNETES to the release artifacts \
                 (docs/real-kubernetes.md) and run with -- --include-ignored"
            )
        });
        let root = if source.is_dir() {
            source
        } else {
            let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/k8s");
            kubeboot_image::kubernetes::unpack_cached(&source, &cache).unwrap()
        };
        kubeboot_image::kubernetes::bin_dir(&root).unwrap()
    })
    .clone()
}

/// `kubeadm version -o short` of the real binaries.
pub fn k8s_version() -> String {
    let out = Command::new(k8s_bin().join("kubeadm"))
        .args(["version", "-o", "short"])
        .output()
        .expect("run kubeadm version");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The real etcd: Debian's etcd-server as `scripts/setup.sh` provides it (or
/// `KUBEBOOT_ETCD`). Missing is a failure, never a skip.
pub fn etcd_program() -> PathBuf {
    kubeboot_image::kubernetes::local_etcd().unwrap_or_else(|| {
        panic!(
            "the etcd tests need a real etcd: run scripts/setup.sh (Debian's etcd-server, \
             unpacked into /var/tmp/kubeboot-etcd), or set KUBEBOOT_ETCD"
        )
    })
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The machine's own address (kubeadm refuses a loopback advertise address).
fn own_address() -> String {
    let out = Command::new("hostname").arg("-I").output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|a| a.parse::<Ipv4Addr>().is_ok_and(|ip| !ip.is_loopback()))
        .expect("this machine has a non-loopback IPv4 address")
        .to_string()
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Start a server process that dies with this test process.
fn daemon(program: &Path, args: &[String], log: &Path) {
    let log = std::fs::File::create(log).unwrap();
    let mut c = Command::new(program);
    c.args(args)
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
    let child = c
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
    // Held for the life of the test process; PDEATHSIG ends them with it.
    DAEMONS.lock().unwrap().push(child);
}

static DAEMONS: std::sync::Mutex<Vec<std::process::Child>> = std::sync::Mutex::new(Vec::new());

/// Remove the directories of loopback control planes whose test process is gone
/// (they outlive it: its daemons die with it, by PDEATHSIG, but no destructor runs
/// for a process-wide static), so test runs do not fill /var/tmp (123 MB each).
fn sweep_dead_dirs() {
    let Ok(entries) = std::fs::read_dir("/var/tmp") else {
        return;
    };
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().starts_with("kubeboot-cp.") {
            continue;
        }
        let owner = std::fs::read_to_string(e.path().join("owner.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok());
        // No owner yet: maybe one being made right now, by this process's other thread.
        let young = || {
            e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().unwrap_or_default() < Duration::from_secs(600))
        };
        let alive = match owner {
            Some(pid) => Path::new(&format!("/proc/{pid}")).exists(),
            None => young(),
        };
        if !alive {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn start(bin: PathBuf) -> ControlPlane {
    sweep_dead_dirs();
    let dir = tempfile::Builder::new()
        .prefix("kubeboot-cp.")
        .tempdir_in("/var/tmp")
        .unwrap()
        .keep();
    std::fs::write(dir.join("owner.pid"), std::process::id().to_string()).unwrap();
    let (api, etcd, peer, kcm) = (free_port(), free_port(), free_port(), free_port());
    let version = k8s_version();
    let endpoint = format!("127.0.0.1:{api}");
    let addr = own_address();
    let pki = dir.join("pki");
    let p = |f: &str| pki.join(f).display().to_string();
    let config = dir.join("kubeadm.yaml");
    std::fs::write(
        &config,
        format!(
            "apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\n\
             bootstrapTokens:\n- token: {TOKEN}\n  ttl: 2h0m0s\n  usages: [signing, authentication]\n  groups: [system:bootstrappers:kubeadm:default-node-token]\n\
             certificateKey: {CERT_KEY}\nlocalAPIEndpoint:\n  advertiseAddress: {addr}\n  bindPort: {api}\n\
             nodeRegistration:\n  name: loopback-cp\n---\n\
             apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nkubernetesVersion: {version}\n\
             controlPlaneEndpoint: {endpoint}\ncertificatesDir: {}\n\
             apiServer:\n  certSANs: [127.0.0.1]\nnetworking:\n  podSubnet: {POD_SUBNET}\n",
            pki.display()
        ),
    )
    .unwrap();
    let kubeadm = |args: &[&str]| {
        let mut c = Command::new(bin.join("kubeadm"));
        c.args(args).arg("--config").arg(&config);
        run(&mut c, &format!("kubeadm {}", args.join(" ")));
    };
    // The cluster's CAs come from a kubeboot bundle, as on a real init node
    // (`[pki]`): kubeadm keeps existing CAs and issues the rest from them.
    let bundle = dir.join("bundle");
    run(
        Command::new(env!("CARGO_BIN_EXE_kubeboot-under-test"))
            .args(["bundle", "new", "--endpoint", &endpoint, "--out"])
            .arg(&bundle),
        "kubeboot bundle new",
    );
    for f in kubeboot_serve::mint::UPLOADED_FILES {
        if f.starts_with("external-etcd") {
            continue; // the loopback control plane runs a stacked-style etcd
        }
        std::fs::create_dir_all(pki.join("etcd")).unwrap();
        std::fs::copy(bundle.join("pki").join(f), pki.join(f)).unwrap();
    }
    kubeadm(&["init", "phase", "certs", "all"]);
    kubeadm(&[
        "init",
        "phase",
        "kubeconfig",
        "admin",
        "--kubeconfig-dir",
        dir.to_str().unwrap(),
    ]);
    kubeadm(&[
        "init",
        "phase",
        "kubeconfig",
        "controller-manager",
        "--kubeconfig-dir",
        dir.to_str().unwrap(),
    ]);
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    daemon(
        &etcd_program(),
        &s(&[
            "--name=loopback-cp",
            &format!("--data-dir={}", dir.join("etcd").display()),
            &format!("--listen-client-urls=https://127.0.0.1:{etcd}"),
            &format!("--advertise-client-urls=https://127.0.0.1:{etcd}"),
            &format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
            &format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
            &format!("--initial-cluster=loopback-cp=http://127.0.0.1:{peer}"),
            "--listen-metrics-urls=",
            &format!("--cert-file={}", p("etcd/server.crt")),
            &format!("--key-file={}", p("etcd/server.key")),
            &format!("--trusted-ca-file={}", p("etcd/ca.crt")),
            "--client-cert-auth=true",
        ]),
        &dir.join("etcd.log"),
    );
    daemon(
        &bin.join("kube-apiserver"),
        &s(&[
            &format!("--advertise-address={addr}"),
            "--bind-address=127.0.0.1",
            &format!("--secure-port={api}"),
            &format!("--etcd-servers=https://127.0.0.1:{etcd}"),
            &format!("--etcd-cafile={}", p("etcd/ca.crt")),
            &format!("--etcd-certfile={}", p("apiserver-etcd-client.crt")),
            &format!("--etcd-keyfile={}", p("apiserver-etcd-client.key")),
            &format!("--client-ca-file={}", p("ca.crt")),
            &format!("--tls-cert-file={}", p("apiserver.crt")),
            &format!("--tls-private-key-file={}", p("apiserver.key")),
            &format!(
                "--kubelet-client-certificate={}",
                p("apiserver-kubelet-client.crt")
            ),
            &format!("--kubelet-client-key={}", p("apiserver-kubelet-client.key")),
            &format!("--service-account-key-file={}", p("sa.pub")),
            &format!("--service-account-signing-key-file={}", p("sa.key")),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range=10.96.0.0/12",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--enable-bootstrap-token-auth=true",
            "--allow-privileged=true",
        ]),
        &dir.join("kube-apiserver.log"),
    );
    let cp = ControlPlane {
        ca_hash: kubeboot_core::tls::ca_hash_of_der(&x509_der(
            &std::fs::read_to_string(pki.join("ca.crt")).unwrap(),
        ))
        .unwrap(),
        dir,
        bin: bin.clone(),
        endpoint,
    };
    wait_ready(&cp);
    start_controller_manager(&cp, kcm);
    let admin = cp.admin_conf();
    let admin = admin.to_str().unwrap();
    kubeadm(&[
        "init",
        "phase",
        "upload-config",
        "kubeadm",
        "--kubeconfig",
        admin,
    ]);
    kubeadm(&["init", "phase", "bootstrap-token", "--kubeconfig", admin]);
    kubeadm(&[
        "init",
        "phase",
        "upload-certs",
        "--upload-certs",
        "--kubeconfig",
        admin,
    ]);
    wait_signed(&cp);
    cp
}

/// kube-controller-manager, once the API server answers (it exits if it cannot
/// reach it at start); kubeadm's controller-manager.conf names the advertise
/// address, which the loopback API server does not listen on.
fn start_controller_manager(cp: &ControlPlane, kcm: u16) {
    let (dir, bin) = (&cp.dir, &cp.bin);
    let p = |f: &str| cp.pki(f).display().to_string();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let conf = std::fs::read_to_string(dir.join("controller-manager.conf")).unwrap();
    let conf: String = conf
        .lines()
        .map(|l| match l.trim_start().strip_prefix("server: ") {
            Some(_) => format!("    server: https://{}\n", cp.endpoint),
            None => format!("{l}\n"),
        })
        .collect();
    std::fs::write(dir.join("controller-manager.conf"), conf).unwrap();
    let kcm_conf = dir.join("controller-manager.conf");
    daemon(
        &bin.join("kube-controller-manager"),
        &s(&[
            &format!("--kubeconfig={}", kcm_conf.display()),
            &format!("--authentication-kubeconfig={}", kcm_conf.display()),
            &format!("--authorization-kubeconfig={}", kcm_conf.display()),
            "--bind-address=127.0.0.1",
            &format!("--secure-port={kcm}"),
            "--controllers=*,bootstrapsigner,tokencleaner",
            "--use-service-account-credentials=true",
            &format!("--root-ca-file={}", p("ca.crt")),
            &format!("--service-account-private-key-file={}", p("sa.key")),
            &format!("--cluster-signing-cert-file={}", p("ca.crt")),
            &format!("--cluster-signing-key-file={}", p("ca.key")),
            "--allocate-node-cidrs=true",
            &format!("--cluster-cidr={POD_SUBNET}"),
            "--leader-elect=false",
        ]),
        &dir.join("kube-controller-manager.log"),
    );
}

fn x509_der(pem: &str) -> Vec<u8> {
    kubeboot_core::tls::first_pem_certificate(pem.as_bytes())
        .unwrap()
        .to_vec()
}

/// Bounded: the API server answers /readyz for the admin (60 s).
fn wait_ready(cp: &ControlPlane) {
    let started = Instant::now();
    loop {
        let out = cp.kubectl(&["get", "--raw", "/readyz", "--request-timeout=5s"]);
        if out.status.success() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "kube-apiserver not ready after 60 s: {} (logs in {})",
            String::from_utf8_lossy(&out.stderr),
            cp.dir.display()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Bounded: the bootstrapsigner has signed cluster-info for our token (60 s).
fn wait_signed(cp: &ControlPlane) {
    let id = TOKEN.split('.').next().unwrap();
    let started = Instant::now();
    loop {
        let out = cp.kubectl(&[
            "-n",
            "kube-public",
            "get",
            "configmap",
            "cluster-info",
            "-o",
            "jsonpath={.data}",
        ]);
        if String::from_utf8_lossy(&out.stdout).contains(&format!("jws-kubeconfig-{id}")) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "cluster-info was not signed for token {id} within 60 s (logs in {})",
            cp.dir.display()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The shared control plane, started on first use (see [`launch`]).
pub fn shared() -> &'static ControlPlane {
    static CP: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
    // A failed start is recorded once: every test that needs it fails with the same reason.
    match CP.get_or_init(launch) {
        Ok(cp) => cp,
        Err(e) => panic!("{e}"),
    }
}

/// A control plane of the caller's own, for a test that changes what others read
/// (e.g. re-uploads kubeadm-certs under another key).
pub fn own() -> ControlPlane {
    launch().unwrap_or_else(|e| panic!("{e}"))
}

/// Start one from a thread that lives as long as the test process (so
/// PR_SET_PDEATHSIG fires only at its end).
fn launch() -> Result<ControlPlane, String> {
    let bin = k8s_bin();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let cp = std::panic::catch_unwind(move || start(bin));
        let _ = tx.send(cp);
        loop {
            std::thread::park();
        }
    });
    rx.recv().expect("control-plane thread").map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the loopback control plane did not start".into())
    })
}
