//! `kubeboot up`: a local cluster of VMs from the node image, end to end —
//! image, bundle, receiver, one NoCloud seed per node, qemu boots, live status.
//!
//! [`run`] goes through the stages in order; each stage is one function below.
//! Production (real Kubernetes) puts the VMs on a network segment of their own
//! ([`segment`](super::segment)); the test profile uses qemu user networking and tests/'s doubles.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kubeboot_core::document::writer::{WriteError, Writer};
use kubeboot_core::document::Role;
use kubeboot_serve::bundle::{self, NewBundle};
use kubeboot_serve::{self as serve, tls::TlsSource, NodeSummary, ServeOptions};

use kubeboot_image::build::{self, Manifest, Profile};
use kubeboot_image::vm;

use super::segment::{self, Port, Segment};

/// Where a production cluster's etcd runs (`up --etcd`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EtcdTopology {
    External,
    Stacked,
}

/// What `kubeboot up` is asked for.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub profile: Profile,
    pub workers: u32,
    /// Production: all control planes, the first runs init (default 1). Test: joining ones (default 0).
    pub control_planes: Option<u32>,
    pub packages: Option<PathBuf>,
    pub kubernetes: Option<PathBuf>,
    pub work: PathBuf,
    pub etcd: Option<EtcdTopology>,
    pub same_user_data: bool,
    pub rebuild: bool,
    pub timeout: Duration,
    pub mkosi_dir: PathBuf,
}

/// `--profile auto`: production when Kubernetes is at hand, else test (saying which and why).
pub fn auto_profile(packages: Option<&Path>, kubernetes: Option<&Path>) -> Profile {
    if packages.is_some() || kubernetes.is_some() {
        return Profile::Production;
    }
    if let Some(found) = kubeboot_image::kubernetes::find_local() {
        eprintln!(
            "up: booting the PRODUCTION profile: real Kubernetes from {} (a real cluster; \
             under qemu TCG this takes many minutes)",
            found.display()
        );
        return Profile::Production;
    }
    eprintln!(
        "up: booting the TEST profile: no Kubernetes artifacts (--kubernetes or KUBEBOOT_KUBERNETES) \
         and no --packages directory of .deb files were found. In the test profile kubeadm \
         is tests/'s kubeadm-test-double and cluster-info comes from tests/'s apiserver-double: the whole \
         boot path runs, but no real cluster is made."
    );
    Profile::Test
}

/// Child processes (test doubles, VMs) killed when `up` ends, however it ends.
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The receiver `up` runs in this process.
struct Receiver {
    url: String,
    /// Its address as the VMs reach it (the segment's operator address, or qemu's host alias).
    host: &'static str,
    port: u16,
    ca_hash: String,
    data: PathBuf,
    /// The VMs' `[report]` token (posts events, reads no document).
    token: String,
    /// With --same-user-data: each role's group user-data.
    groups: Option<GroupUserData>,
}

/// One VM to boot, and what it is.
struct PlannedVm {
    name: String,
    role: Role,
    spec: vm::VmSpec,
}

/// Bring a cluster up and watch it. Ok(true): every node reached `done` (and,
/// for production, the user stopped the running cluster).
pub fn run(o: &UpOptions) -> Result<bool, String> {
    std::fs::create_dir_all(&o.work).map_err(|e| format!("{}: {e}", o.work.display()))?;
    let image_dir = ensure_image(o)?;
    let stop = vm::stop_on_signals();
    let mut segment = network(o.profile)?;
    let etcd = external_etcd(o, segment.as_mut())?;
    let bundle_dir = make_bundle(o, segment.as_ref(), etcd)?;
    let receiver = start_receiver(o, segment.as_ref(), &bundle_dir)?;
    let mut procs = Procs(Vec::new());
    let api_port = cluster_endpoint(o.profile, &bundle_dir, &mut procs)?;
    let nodes = node_names(o);
    let ports = match &segment {
        Some(_) => Some(segment_ports(&nodes)?),
        None => None,
    };
    if let (Some(seg), Some(ports)) = (segment.as_mut(), &ports) {
        start_load_balancer(seg, &nodes, ports, &o.work)?;
    }
    let vms_dir = o.work.join("vms");
    let _ = std::fs::remove_dir_all(&vms_dir);
    let mut planned = VecDeque::new();
    for (i, (name, role)) in nodes.iter().enumerate() {
        let port = ports.as_ref().map(|p| &p[i]);
        let seed = write_seed(o, &receiver, &bundle_dir, name, *role, port)?;
        let spec = vm_spec(
            &image_dir,
            &vms_dir,
            name,
            *role,
            seed,
            port,
            segment.as_ref(),
            &receiver,
            api_port,
        )?;
        planned.push_back(PlannedVm {
            name: name.clone(),
            role: *role,
            spec,
        });
    }
    let admin = match &segment {
        Some(_) => Some(write_admin_kubeconfig(&o.work, &bundle_dir)?),
        None => None,
    };
    let watch = Watch {
        receiver: &receiver,
        total: nodes.len(),
        vms_dir: &vms_dir,
        one_by_one: segment.is_some(),
        group_mode: receiver.groups.is_some(),
        timeout: o.timeout,
        stop,
    };
    let outcome = watch.until_settled(planned, &mut procs)?;
    let Some(ok) = outcome else {
        return Ok(false);
    };
    match (&segment, &admin) {
        (Some(seg), Some(admin)) if ok => {
            let abs = std::fs::canonicalize(admin).unwrap_or(admin.clone());
            println!(
                "up: the cluster is up. Admin kubeconfig: {}\n    ip netns exec {} kubectl --kubeconfig {} get nodes -o wide\n\
                 up: Ctrl-C tears it down (VMs, haproxy, receiver, namespace).",
                abs.display(),
                seg.namespace,
                abs.display()
            );
            wait_for_stop(stop);
            eprintln!("up: stopping; shutting the VMs down");
        }
        (Some(_), _) => {}
        (None, _) => println!(
            "up: test profile: each node ran the whole boot path (kubeadm was the test double); no cluster to use."
        ),
    }
    Ok(ok)
}

/// Stage 1: The image: built unless one for this profile is there (and --rebuild is not given).
fn ensure_image(o: &UpOptions) -> Result<PathBuf, String> {
    let image_dir = o.work.join(format!("image-{}", o.profile.as_str()));
    if !o.rebuild && Manifest::read(&image_dir).is_some() {
        eprintln!(
            "up: reusing the {} image in {} (--rebuild to build again)",
            o.profile.as_str(),
            image_dir.display()
        );
        return Ok(image_dir);
    }
    let kubernetes = match (&o.kubernetes, &o.packages) {
        (Some(k), _) => Some(k.clone()),
        (None, None) => kubeboot_image::kubernetes::find_local(),
        (None, Some(_)) => None,
    };
    let opts = build::BuildOptions {
        profile: o.profile,
        kubeadm_double: kubeboot_image::sibling("kubeadm-test-double"),
        source_date_epoch: build::default_source_date_epoch(&o.mkosi_dir),
        mkosi_dir: o.mkosi_dir.clone(),
        out_dir: image_dir.clone(),
        cache_dir: "/var/cache/kubeboot/mkosi-packages".into(),
        kubeboot_bin: std::env::current_exe().map_err(|e| e.to_string())?,
        packages: o.packages.clone(),
        kubernetes: (o.profile == Profile::Production)
            .then_some(kubernetes)
            .flatten(),
        images: None,
        from_repository: false,
    };
    let manifest = build::build(&opts)?;
    println!("{}", manifest.summary(&image_dir));
    Ok(image_dir)
}

/// Production: the VMs' own network namespace (bridge, no route out), deleted when up ends.
fn network(profile: Profile) -> Result<Option<Segment>, String> {
    if profile != Profile::Production {
        return Ok(None);
    }
    let name = format!("kubeboot-up-{}", std::process::id());
    eprintln!(
        "up: creating network namespace {name} (bridge br0, {}.0/24, no route out) for the VMs, \
         haproxy on {}:6443 and the receiver; it is deleted when up ends",
        segment::PREFIX,
        segment::ENDPOINT
    );
    Segment::create(&name).map(Some)
}

/// Stage 2: The external etcd (production, by default with joining control planes).
fn external_etcd(
    o: &UpOptions,
    segment: Option<&mut Segment>,
) -> Result<Option<segment::ExternalEtcd>, String> {
    let control_planes = o.control_planes.unwrap_or(1);
    let seg = match (segment, o.etcd) {
        (None, _) | (Some(_), Some(EtcdTopology::Stacked)) => return Ok(None),
        (Some(_), None) if control_planes < 2 => return Ok(None),
        (Some(seg), _) => seg,
    };
    let source = o
        .kubernetes
        .clone()
        .or_else(kubeboot_image::kubernetes::find_local)
        .ok_or("--etcd external needs the Kubernetes artifacts: give --kubernetes PATH, or --etcd stacked")?;
    let binaries = kubeboot_image::kubernetes::prepare(&source)?;
    let program = binaries
        .etcd()
        .or_else(kubeboot_image::kubernetes::local_etcd)
        .ok_or(
        "--etcd external needs an etcd: the artifacts carry none; install Debian's etcd-server \
         (or run scripts/setup.sh), set KUBEBOOT_ETCD, or use --etcd stacked",
    )?;
    let etcd = seg.start_etcd(&program, &o.work)?;
    eprintln!(
        "up: external etcd on {} (kubeadm's external-etcd topology; certificates in {}, log {})",
        etcd.url,
        o.work.join("etcd-pki").display(),
        o.work.join("etcd.log").display()
    );
    Ok(Some(etcd))
}

/// The cluster endpoint as the VMs see it.
fn endpoint_and_receiver_host(segment: Option<&Segment>) -> (String, &'static str) {
    match segment {
        Some(_) => (format!("{}:6443", segment::ENDPOINT), segment::OPERATOR),
        None => (format!("{}:6443", vm::HOST_ALIAS), vm::HOST_ALIAS),
    }
}

/// Stage 3: The bundle.
fn make_bundle(
    o: &UpOptions,
    segment: Option<&Segment>,
    etcd: Option<segment::ExternalEtcd>,
) -> Result<PathBuf, String> {
    let bundle_dir = o.work.join("bundle");
    let (endpoint, _) = endpoint_and_receiver_host(segment);
    bundle::create(
        &NewBundle {
            endpoint,
            name: None,
            kubernetes_version: None,
            pod_subnet: segment.map(|_| "10.244.0.0/16".to_string()),
            external_etcd: etcd.iter().map(|e| e.url.clone()).collect(),
            external_etcd_client: etcd.map(|e| e.client),
            slow_host: segment.is_some(),
        },
        &bundle_dir,
        true,
    )
    .map_err(|e| e.to_string())?;
    Ok(bundle_dir)
}

/// Stage 4: The receiver, in this process, with empty data: nodes of an earlier run
/// must not count as this run's (the image is the only thing reused).
fn start_receiver(
    o: &UpOptions,
    segment: Option<&Segment>,
    bundle_dir: &Path,
) -> Result<Receiver, String> {
    let data = o.work.join("serve");
    if data.exists() {
        std::fs::remove_dir_all(&data).map_err(|e| {
            format!(
                "clearing the previous run's receiver data {}: {e}",
                data.display()
            )
        })?;
    }
    let group_mode = o.same_user_data && segment.is_some();
    if o.same_user_data && !group_mode {
        eprintln!("up: --same-user-data needs the production profile (a real cluster); ignored");
    }
    let (_, receiver_host) = endpoint_and_receiver_host(segment);
    let tokens = data.join("tokens");
    let (token, _) = serve::tokens::TokenFile::new(&tokens)
        .add(
            serve::tokens::Scope::Report,
            false,
            "kubeboot up: the VMs' [report] token",
        )
        .map_err(|e| e.to_string())?;
    let listen = match segment {
        Some(_) => format!("{}:8443", segment::OPERATOR),
        None => "127.0.0.1:0".into(),
    };
    let opts = ServeOptions {
        listen: listen.parse().expect("static"),
        data: data.clone(),
        tls: Some(TlsSource::SelfSigned {
            names: vec!["localhost".into(), "127.0.0.1".into(), receiver_host.into()],
        }),
        tokens,
        bundle: Some(bundle_dir.to_path_buf()),
        fresh_credentials: group_mode,
        init_lease: serve::election::DEFAULT_LEASE,
        mint_per_minute: 60,
        limits: Default::default(),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Err(e) = serve::run(opts, |l| {
            let _ = tx.send((l.url.clone(), l.ca_cert_hash.clone().unwrap_or_default()));
        }) {
            eprintln!("error: receiver: {e}");
        }
    });
    let (url, ca_hash) = rx
        .recv_timeout(Duration::from_secs(30))
        .map_err(|_| "the receiver did not start".to_string())?;
    let port: u16 = url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or("receiver port")?;
    eprintln!("up: receiver on {url} (dashboard {url}/ , CA {ca_hash})");
    let groups = match group_mode {
        true => Some(GroupUserData::make(
            &data,
            &format!("https://{receiver_host}:8443"),
            &ca_hash,
        )?),
        false => None,
    };
    Ok(Receiver {
        url,
        host: receiver_host,
        port,
        ca_hash,
        data,
        token,
        groups,
    })
}

/// Stage 5: The cluster endpoint: haproxy on the segment (production, 6443), or
/// tests/'s apiserver-double serving cluster-info (test profile).
fn cluster_endpoint(profile: Profile, bundle_dir: &Path, procs: &mut Procs) -> Result<u16, String> {
    if profile != Profile::Test {
        return Ok(6443);
    }
    let port = free_port()?;
    let program = kubeboot_image::sibling("apiserver-double").ok_or(
        "apiserver-double not found next to kubeboot: build it with `cargo build --release -p kubeboot-tests` (scripts/up does)",
    )?;
    let mut double = Command::new(program);
    vm::die_with_parent(&mut double);
    let child = double
        .arg("--bundle")
        .arg(bundle_dir)
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
    Ok(port)
}

/// Stage 6: The nodes: production cp-1 (init), cp-2… (join), worker-1…; test: cp-N join, worker-N.
fn node_names(o: &UpOptions) -> Vec<(String, Role)> {
    let mut nodes: Vec<(String, Role)> = Vec::new();
    if o.profile == Profile::Production {
        nodes.push(("cp-1".into(), Role::Init));
        let joins = o.control_planes.unwrap_or(1).max(1) - 1;
        nodes.extend((2..=joins + 1).map(|i| (format!("cp-{i}"), Role::ControlPlane)));
    } else {
        let joins = o.control_planes.unwrap_or(0);
        nodes.extend((1..=joins).map(|i| (format!("cp-{i}"), Role::ControlPlane)));
    }
    nodes.extend((1..=o.workers).map(|i| (format!("worker-{i}"), Role::Worker)));
    nodes
}

fn start_load_balancer(
    seg: &mut Segment,
    nodes: &[(String, Role)],
    ports: &[Port],
    work: &Path,
) -> Result<(), String> {
    let cps: Vec<(String, String)> = nodes
        .iter()
        .zip(ports)
        .filter(|((_, role), _)| *role != Role::Worker)
        .map(|((name, _), p)| (name.clone(), p.address.clone()))
        .collect();
    let log = seg.start_haproxy(&segment::haproxy_config(&cps), work)?;
    eprintln!(
        "up: haproxy on {}:6443 in front of {} control plane(s); log {}",
        segment::ENDPOINT,
        cps.len(),
        log.display()
    );
    Ok(())
}

/// The node's document (its role's from the bundle, or its group's user-data) as a NoCloud seed.
fn write_seed(
    o: &UpOptions,
    receiver: &Receiver,
    bundle_dir: &Path,
    name: &str,
    role: Role,
    port: Option<&Port>,
) -> Result<PathBuf, String> {
    let doc = match &receiver.groups {
        Some(g) => g.for_role(role).to_string(),
        None => node_document(receiver, bundle_dir, name, role, port)?,
    };
    let seed = o.work.join(format!("{name}.seed.iso"));
    serve::userdata::write_seed(
        &serve::userdata::cloud_config(&doc),
        &serve::userdata::meta_data(&format!("{name}-{}", std::process::id()), Some(name)),
        port.map(Port::network_config).as_deref(),
        &seed,
    )?;
    Ok(seed)
}

fn node_document(
    receiver: &Receiver,
    bundle_dir: &Path,
    name: &str,
    role: Role,
    port: Option<&Port>,
) -> Result<String, String> {
    let discovery = bundle::read_discovery(bundle_dir).map_err(|e| e.to_string())?;
    let mut w = bundle::node_writer(role, &discovery, bundle_dir).map_err(|e| e.to_string())?;
    fit_to_vm(&mut w, receiver, name, role, port).map_err(|e| format!("{name}: {e}"))?;
    let doc = w.render();
    kubeboot_core::kubeadm::validate_fully(&doc).map_err(|e| format!("{name}: {e}"))?;
    Ok(doc)
}

/// One VM's document: its name, this receiver for reports, a short clock wait;
/// on a segment (TCG, a --slow-host bundle) its address and long waits for the
/// control plane, which takes many minutes.
fn fit_to_vm(
    w: &mut Writer,
    receiver: &Receiver,
    name: &str,
    role: Role,
    port: Option<&Port>,
) -> Result<(), WriteError> {
    w.set(&["node", "name"], name)?;
    w.set(&["preflight", "clock_sync_timeout_seconds"], 2)?;
    let url = format!("https://{}:8443/v1", receiver.host);
    w.report(&url, &receiver.token, &receiver.ca_hash)?;
    if let Some(p) = port {
        w.set(&["node", "advertise_address"], p.address.to_string())?;
        w.set(&["ready", "timeout_seconds"], 1800)?;
        if role != Role::Init {
            w.set(&["discovery", "timeout_seconds"], 2400)?;
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn vm_spec(
    image_dir: &Path,
    vms_dir: &Path,
    name: &str,
    role: Role,
    seed: PathBuf,
    port: Option<&Port>,
    segment: Option<&Segment>,
    receiver: &Receiver,
    api_port: u16,
) -> Result<vm::VmSpec, String> {
    let forwards = match port {
        Some(_) => vec![],
        None => vec![
            vm::Forward {
                guest_port: 8443,
                host_port: receiver.port,
            },
            vm::Forward {
                guest_port: 6443,
                host_port: api_port,
            },
        ],
    };
    let mut spec = vm::spec_for_image(
        image_dir,
        name,
        vms_dir.to_path_buf(),
        Some(seed),
        None,
        forwards,
    )?;
    if let (Some(seg), Some(p)) = (segment, port) {
        seg.add_tap(p)?;
        spec.tap = Some(vm::Tap {
            ifname: p.tap.clone(),
            mac: p.mac.clone(),
        });
        spec.memory_mib = if role == Role::Worker { 2048 } else { 3072 };
        // Under TCG the control planes must keep CPU while workers boot. (Not
        // joining control planes: kubeadm's etcd member add allows 2 s per call.)
        if role == Role::Worker {
            spec.nice = 10;
        }
    }
    Ok(spec)
}

fn write_admin_kubeconfig(work: &Path, bundle_dir: &Path) -> Result<PathBuf, String> {
    let path = work.join("admin.conf");
    let conf = bundle::kubeconfig(
        bundle_dir,
        "kubernetes-admin",
        &["system:masters".to_string()],
        24,
        None,
    )
    .map_err(|e| e.to_string())?;
    kubeboot_core::host::Host::system()
        .write_atomic(&path, conf.as_bytes(), 0o600)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// Stage 7: Live status: boot the VMs stage by stage, show the receiver's table, stop
/// at the first settled outcome.
struct Watch<'a> {
    receiver: &'a Receiver,
    total: usize,
    vms_dir: &'a Path,
    /// Production boots the init node, then each joining control plane, then the
    /// workers, each stage once the one before is done: under TCG on a small host,
    /// a control plane starting next to others missed its probes.
    one_by_one: bool,
    group_mode: bool,
    timeout: Duration,
    stop: &'a AtomicBool,
}

impl Watch<'_> {
    /// Some(all succeeded) once every node settled; None when stopped, stuck or out of time.
    fn until_settled(
        &self,
        mut waiting: VecDeque<PlannedVm>,
        procs: &mut Procs,
    ) -> Result<Option<bool>, String> {
        let client = kubeboot_core::tls::https_client(
            kubeboot_core::tls::client_config(Some(&self.receiver.ca_hash))?,
            Duration::from_secs(10),
        )
        .map_err(|e| e.to_string())?;
        let started = Instant::now();
        let mut booted: Vec<(usize, String, PathBuf)> = Vec::new();
        let mut shown = String::new();
        let mut quiet_since = 0u64;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                eprintln!("up: stopped; shutting the VMs down");
                return Ok(None);
            }
            check_vms_alive(&booted, procs)?;
            let list = self.nodes(&client);
            let all_done = booted
                .iter()
                .all(|(_, n, _)| list.iter().any(|x| &x.name == n && x.done()));
            if !waiting.is_empty() && (booted.is_empty() || !self.one_by_one || all_done) {
                for v in next_stage(&mut waiting, self.one_by_one, self.group_mode) {
                    self.boot(v, procs, &mut booted)?;
                }
            }
            let elapsed = started.elapsed().as_secs();
            let table = serve::nodes::table(&list);
            if table != shown {
                eprintln!("\n[{elapsed:>4}s] {table}");
                shown = table;
                quiet_since = elapsed;
            } else if elapsed >= quiet_since + 30 {
                // Booting under TCG takes minutes with nothing new to show: say so.
                eprintln!(
                    "[{elapsed:>4}s] {} of {} nodes reporting; VMs still working (consoles: {}; dashboard {}/)",
                    list.len(),
                    self.total,
                    self.vms_dir.display(),
                    self.receiver.url
                );
                quiet_since = elapsed;
            }
            let settled = list.iter().all(NodeSummary::settled);
            if settled && list.iter().any(|n| n.failed()) && !waiting.is_empty() {
                eprintln!(
                    "up: a node failed; {} node(s) were not booted",
                    waiting.len()
                );
                return Ok(None);
            }
            if list.len() >= self.total && settled {
                return Ok(Some(self.summary(&list, started)));
            }
            if started.elapsed() > self.timeout {
                eprintln!(
                    "up: --timeout passed; serial consoles are in {}",
                    self.vms_dir.display()
                );
                return Ok(None);
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    fn nodes(&self, client: &reqwest::blocking::Client) -> Vec<NodeSummary> {
        client
            .get(format!(
                "{}/nodes",
                kubeboot_core::status::api_root(&self.receiver.url)
            ))
            .send()
            .ok()
            .and_then(|r| r.bytes().ok())
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| serde_json::from_value(v["nodes"].clone()).ok())
            .unwrap_or_default()
    }

    fn boot(
        &self,
        v: PlannedVm,
        procs: &mut Procs,
        booted: &mut Vec<(usize, String, PathBuf)>,
    ) -> Result<(), String> {
        let what = match (self.group_mode, v.role) {
            (true, Role::Init | Role::ControlPlane) => {
                "control plane; the receiver elects the init node"
            }
            _ => v.role.as_str(),
        };
        eprintln!(
            "up: booting {} ({what}) — serial console {}",
            v.name,
            v.spec.serial_log().display()
        );
        procs.0.push(vm::start(&v.spec)?);
        booted.push((procs.0.len() - 1, v.name, v.spec.serial_log()));
        Ok(())
    }

    /// Print the outcome; true if no node failed.
    fn summary(&self, list: &[NodeSummary], started: Instant) -> bool {
        let done = list.iter().filter(|n| n.done()).count();
        println!(
            "\nup: {done} of {} nodes reached done in {:.0} s.",
            self.total,
            started.elapsed().as_secs_f64()
        );
        let data = self.receiver.data.display();
        println!(
            "up: events, timings and log tails are kept in {data} (`kubeboot serve --data {data}` shows them again)"
        );
        list.iter().all(|n| !n.failed())
    }
}

/// A VM never powers off by itself here: qemu exiting is a failure to show.
fn check_vms_alive(booted: &[(usize, String, PathBuf)], procs: &mut Procs) -> Result<(), String> {
    for (i, name, log) in booted {
        if let Some((status, err)) = vm::exited(&mut procs.0[*i])? {
            return Err(format!(
                "the VM of {name} exited ({status}); qemu said: {}\n  last lines of its console ({}):\n{}",
                if err.is_empty() { "nothing" } else { &err },
                log.display(),
                vm::serial_tail(log, 15)
            ));
        }
    }
    Ok(())
}

/// The VMs to boot next: everything at once, or (one by one) the next control
/// plane alone — or, with `control_planes_together` (they elect their init node),
/// all control planes — then all the workers together.
fn next_stage(
    waiting: &mut VecDeque<PlannedVm>,
    one_by_one: bool,
    control_planes_together: bool,
) -> Vec<PlannedVm> {
    if !one_by_one {
        return waiting.drain(..).collect();
    }
    match waiting.front().map(|v| v.role) {
        Some(Role::Worker) => waiting.drain(..).collect(),
        Some(_) if control_planes_together => {
            let workers = waiting
                .iter()
                .position(|v| v.role == Role::Worker)
                .unwrap_or(waiting.len());
            waiting.drain(..workers).collect()
        }
        Some(_) => waiting.pop_front().into_iter().collect(),
        None => Vec::new(),
    }
}

/// `--same-user-data`: one node group per role in the receiver's data, and the
/// pointer document (the user-data) every node of that role boots with.
struct GroupUserData {
    control_planes: String,
    workers: String,
}

impl GroupUserData {
    fn make(data: &Path, url: &str, ca_hash: &str) -> Result<GroupUserData, String> {
        use kubeboot_serve::groups::{self, GroupFile, NewGroup};
        let file = GroupFile::new(data.join(groups::FILE));
        let tokens = serve::tokens::TokenFile::new(data.join("tokens"));
        let make = |name: &str, role: Role| -> Result<String, String> {
            let (credential, group) = file
                .add(
                    &NewGroup {
                        name: name.into(),
                        role,
                        url: url.into(),
                        ca_cert_hash: ca_hash.into(),
                        max_nodes: None,
                        per_minute: 30,
                        labels: Default::default(),
                    },
                    &tokens,
                )
                .map_err(|e| e.to_string())?;
            let pointer = groups::pointer_document(name, &group, &credential);
            let parsed = kubeboot_core::document::parse(&pointer).map_err(|e| e.to_string())?;
            kubeboot_core::document::validate_pointer(&parsed).map_err(|e| e.to_string())?;
            Ok(pointer)
        };
        let control_planes = make("control-planes", Role::ControlPlane)?;
        let workers = make("workers", Role::Worker)?;
        eprintln!(
            "up: node groups control-planes and workers: every node of a role boots with the same user-data \
             (a pointer to {url}/v1/groups/NAME/document); the receiver mints each machine's credentials \
             and elects the control plane that runs kubeadm init"
        );
        Ok(GroupUserData {
            control_planes,
            workers,
        })
    }

    fn for_role(&self, role: Role) -> &str {
        match role {
            Role::Worker => &self.workers,
            Role::Init | Role::ControlPlane => &self.control_planes,
        }
    }
}

/// Taps and addresses: the init node and joining control planes from .11, workers from .21.
fn segment_ports(nodes: &[(String, Role)]) -> Result<Vec<Port>, String> {
    let (mut cp, mut w) = (0, 0);
    nodes
        .iter()
        .map(|(_, role)| match role {
            Role::Worker => {
                w += 1;
                Port::new(false, w)
            }
            _ => {
                cp += 1;
                Port::new(true, cp)
            }
        })
        .collect()
}

fn wait_for_stop(stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}
