//! `kubeboot up`: a local cluster of VMs from the node image, end to end —
//! image, bundle, receiver, one NoCloud seed per node, qemu boots, live status.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};

use crate::bundle::{self, NewBundle};
use crate::document::Role;
use crate::image::{build::Manifest, vm, Profile};
use crate::serve::{self, tls::TlsSource, NodeSummary, ServeOptions};

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpProfile {
    /// production if Kubernetes packages are available (--packages or pkgs.k8s.io), else test.
    Auto,
    Production,
    Test,
}

#[derive(Args, Debug)]
#[command(after_help = "\
Everything lives in --work (default image/up): the image, the bundle, the receiver's data, \
seeds, VM disks and serial logs. VMs use qemu user networking with restrict=on: each reaches only \
the receiver and the cluster endpoint on 10.0.2.100, nothing else.

Exit codes: 0 every node reached done, 1 a node failed or --timeout passed, 2 bad arguments.")]
pub struct UpArgs {
    /// Worker nodes.
    #[arg(long, default_value_t = 1)]
    workers: u32,
    /// Control-plane nodes that join (the init node comes on top, with the production profile).
    #[arg(long, default_value_t = 0)]
    control_planes: u32,
    #[arg(long, value_enum, default_value = "auto")]
    profile: UpProfile,
    /// A directory of Kubernetes .deb packages for an air-gapped production image.
    #[arg(long, value_name = "DIR")]
    packages: Option<PathBuf>,
    /// An archive or directory of Kubernetes binaries with SHA256SUMS (air-gapped production image).
    #[arg(long, value_name = "ARCHIVE|DIR", env = "KUBEBOOT_KUBERNETES")]
    kubernetes: Option<PathBuf>,
    #[arg(long, value_name = "DIR", default_value = "image/up")]
    work: PathBuf,
    /// Rebuild the image even if one for this profile exists.
    #[arg(long)]
    rebuild: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 1800)]
    timeout: u64,
}

fn sibling(name: &str) -> Result<PathBuf, String> {
    super::image::sibling(name).ok_or_else(|| {
        format!("{name} not found next to kubeboot: build it with `cargo build --release -p kubeboot-tests` (scripts/up does)")
    })
}

fn choose_profile(a: &UpArgs) -> Profile {
    match a.profile {
        UpProfile::Test => Profile::Test,
        UpProfile::Production => Profile::Production,
        UpProfile::Auto => {
            if a.packages.is_some() {
                return Profile::Production;
            }
            eprintln!(
                "up: booting the TEST profile: no --packages directory of Kubernetes .deb files was given, and \
                 building production from pkgs.k8s.io is not attempted automatically. In the test profile kubeadm \
                 is tests/'s kubeadm-test-double and cluster-info comes from tests/'s apiserver-double: the whole \
                 boot path runs, but no real cluster is made. Use --profile production to build from pkgs.k8s.io."
            );
            Profile::Test
        }
    }
}

struct Procs(Vec<Child>);
impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn run(a: UpArgs) -> u8 {
    match up(a) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn up(a: UpArgs) -> Result<bool, String> {
    let profile = choose_profile(&a);
    if profile == Profile::Production && (a.workers > 0 || a.control_planes > 0) {
        return Err("production `up` boots the init node only for now: VMs on qemu user networking cannot reach each \
                    other, so joining nodes need a shared VM network (not built yet). Use --workers 0 --control-planes 0, \
                    or --profile test"
            .into());
    }
    let work = &a.work;
    std::fs::create_dir_all(work).map_err(|e| format!("{}: {e}", work.display()))?;
    let image_dir = work.join(format!("image-{}", profile.as_str()));

    // 1. The image.
    if a.rebuild || Manifest::read(&image_dir).is_none() {
        super::image::run_build(super::image::BuildArgs {
            profile,
            mkosi_dir: "mkosi".into(),
            out: image_dir.clone(),
            cache: "/var/cache/kubeboot/mkosi-packages".into(),
            kubeboot_bin: None,
            kubeadm_double: None,
            packages: a.packages.clone(),
            kubernetes: a.kubernetes.clone(),
            from_repository: false,
            source_date_epoch: None,
            output: super::Output::Text,
        })?;
    } else {
        eprintln!(
            "up: reusing the {} image in {} (--rebuild to build again)",
            profile.as_str(),
            image_dir.display()
        );
    }

    // 2. The bundle (the cluster endpoint as the VMs see it).
    let bundle_dir = work.join("bundle");
    bundle::create(
        &NewBundle {
            endpoint: format!("{}:6443", vm::HOST_ALIAS),
            name: None,
            kubernetes_version: None,
            pod_subnet: None,
            external_etcd: vec![],
        },
        &bundle_dir,
        true,
    )?;

    // 3. The receiver, in this process.
    let data = work.join("serve");
    let token = super::serve::ensure_token(&data)?;
    let (tx, rx) = std::sync::mpsc::channel();
    let opts = ServeOptions {
        listen: "127.0.0.1:0".parse().expect("static"),
        data: data.clone(),
        tls: Some(TlsSource::SelfSigned {
            names: vec![
                "localhost".into(),
                "127.0.0.1".into(),
                vm::HOST_ALIAS.into(),
            ],
        }),
        tokens: vec![token.clone()],
        bundle: Some(bundle_dir.clone()),
    };
    std::thread::spawn(move || {
        if let Err(e) = serve::run(opts, |l| {
            let _ = tx.send(Ok((
                l.url.clone(),
                l.ca_cert_hash.clone().unwrap_or_default(),
            )));
        }) {
            eprintln!("error: receiver: {e}");
        }
    });
    let (url, ca_hash) = rx
        .recv_timeout(Duration::from_secs(30))
        .map_err(|_| "the receiver did not start".to_string())?
        .map_err(|e: String| e)?;
    let serve_port: u16 = url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or("receiver port")?;
    eprintln!("up: receiver on {url} (dashboard {url}/ , CA {ca_hash})");

    let mut procs = Procs(Vec::new());
    // 4. The cluster endpoint.
    let api_port = if profile == Profile::Test {
        let port = free_port()?;
        let child = Command::new(sibling("apiserver-double")?)
            .arg("--bundle")
            .arg(&bundle_dir)
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--name",
                vm::HOST_ALIAS,
            ])
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("apiserver-double: {e}"))?;
        procs.0.push(child);
        eprintln!("up: test profile: cluster-info for joining nodes comes from tests/'s apiserver-double on 127.0.0.1:{port}");
        port
    } else {
        free_port()?
    };

    // 5. The nodes.
    let mut nodes: Vec<(String, Role)> = Vec::new();
    if profile == Profile::Production {
        nodes.push(("cp-1".into(), Role::Init));
    }
    nodes.extend((1..=a.control_planes).map(|i| (format!("cp-{}", i + 1), Role::ControlPlane)));
    nodes.extend((1..=a.workers).map(|i| (format!("worker-{i}"), Role::Worker)));
    let discovery = bundle::read_discovery(&bundle_dir)?;
    let vms = work.join("vms");
    let _ = std::fs::remove_dir_all(&vms);
    for (name, role) in &nodes {
        let doc = format!(
            "{}\n[node]\nname = \"{name}\"\n\n[preflight]\nclock_sync_timeout_seconds = 2\n\n[report]\nurl = \"https://{}:8443/v1\"\ntoken = \"{token}\"\nca_cert_hash = \"{ca_hash}\"\n",
            bundle::node_document(*role, &discovery, &bundle_dir)?,
            vm::HOST_ALIAS
        );
        crate::agent::validate_fully(&doc).map_err(|e| format!("{name}: {e}"))?;
        let seed = work.join(format!("{name}.seed.iso"));
        crate::userdata::write_seed(
            &crate::userdata::cloud_config(&doc),
            &crate::userdata::meta_data(&format!("{name}-{}", std::process::id()), Some(name)),
            None,
            &seed,
        )?;
        let spec = super::image::spec_for(
            &image_dir,
            name,
            vms.clone(),
            Some(seed),
            None,
            vec![
                vm::Forward {
                    guest_port: 8443,
                    host_port: serve_port,
                },
                vm::Forward {
                    guest_port: 6443,
                    host_port: api_port,
                },
            ],
        )?;
        eprintln!(
            "up: booting {name} ({}) — serial console {}",
            role.as_str(),
            spec.serial_log().display()
        );
        procs.0.push(vm::start(&spec)?);
    }

    // 6. Live status until every node is done or failed.
    let client = crate::tls::https_client(
        crate::tls::client_config(Some(&ca_hash))?,
        Duration::from_secs(10),
    )
    .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut shown = String::new();
    let stop = super::image::stop_on_signals();
    loop {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            eprintln!("up: stopped; shutting the VMs down");
            return Ok(false);
        }
        let list: Vec<NodeSummary> = client
            .get(format!("{url}/v1/nodes"))
            .send()
            .ok()
            .and_then(|r| r.bytes().ok())
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| serde_json::from_value(v["nodes"].clone()).ok())
            .unwrap_or_default();
        let table = super::watch::table(&list);
        if table != shown {
            eprintln!("\n[{:>4.0}s] {table}", started.elapsed().as_secs_f64());
            shown = table;
        }
        if list.len() >= nodes.len() && list.iter().all(NodeSummary::settled) {
            let ok = list.iter().all(|n| !n.failed());
            let done = list.iter().filter(|n| n.done()).count();
            println!(
                "\nup: {done} of {} nodes reached done in {:.0} s.",
                nodes.len(),
                started.elapsed().as_secs_f64()
            );
            if profile == Profile::Test {
                println!("up: test profile: each node ran the whole boot path (kubeadm was the test double); no cluster to use.");
            } else {
                println!("up: the admin kubeconfig is /etc/kubernetes/admin.conf on cp-1 (serial console: {}/cp-1.serial.log)", vms.display());
            }
            println!(
                "up: events, timings and log tails: {url}/ (CA pin {ca_hash}); data in {}",
                data.display()
            );
            return Ok(ok);
        }
        if started.elapsed() > Duration::from_secs(a.timeout) {
            eprintln!(
                "up: --timeout passed; serial consoles are in {}",
                vms.display()
            );
            return Ok(false);
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}
