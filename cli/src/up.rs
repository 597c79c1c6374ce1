//! `kubeboot up`: a local cluster of VMs from the node image, end to end —
//! image, bundle, receiver, one NoCloud seed per node, qemu boots, live status.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};

use kubeboot_core::document::Role;
use kubeboot_image::segment::{self, Port, Segment};
use kubeboot_image::{build::Manifest, vm, Profile};
use kubeboot_serve::bundle::{self, NewBundle};
use kubeboot_serve::{self as serve, tls::TlsSource, NodeSummary, ServeOptions};

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpProfile {
    /// production if Kubernetes is at hand (--kubernetes, KUBEBOOT_KUBERNETES, ../shared/k8s, --packages), else test.
    Auto,
    Production,
    Test,
}

/// Where a production cluster's etcd runs (`--etcd`).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EtcdTopology {
    External,
    Stacked,
}

#[derive(Args, Debug)]
#[command(after_help = "\
Everything lives in --work (default out/up): the image, the bundle, the receiver's data, \
seeds, VM disks and serial logs.

Production (real Kubernetes, air-gapped image from --kubernetes, KUBEBOOT_KUBERNETES or ../shared/k8s): \
--control-planes N (cp-1 runs kubeadm init --upload-certs, cp-2… join with the certificate key) and \
--workers N, on a \
private network namespace made for the run (bridge 10.88.0.0/24, no route out; needs root) with \
haproxy on 10.88.0.2:6443 as the control-plane endpoint and, with joining control planes, one \
external etcd on 10.88.0.1:2379 (--etcd). Nodes boot in stages: cp-1, then each \
joining control plane, then the workers, each once the one before is done. When every node is done, up prints the \
admin kubeconfig and waits; Ctrl-C tears everything down. With --same-user-data every node of a role \
boots from one node group's user-data (as in an autoscaling group): the control planes boot together and \
the receiver elects the one that runs kubeadm init.

Test: kubeadm is tests/'s test double; VMs use qemu user networking with restrict=on and reach \
only the receiver and the cluster endpoint on 10.0.2.100.

Exit codes: 0 every node reached done, 1 a node failed or --timeout passed, 2 bad arguments.")]
pub struct UpArgs {
    /// Worker nodes.
    #[arg(long, default_value_t = 1)]
    workers: u32,
    /// Control-plane nodes in all. Production: the first runs `kubeadm init`, the
    /// others join with the certificate key (default 1). Test: all of them join (default 0).
    #[arg(long, value_name = "N")]
    control_planes: Option<u32>,
    #[arg(long, value_enum, default_value = "auto")]
    profile: UpProfile,
    /// A directory of Kubernetes .deb packages for an air-gapped production image.
    #[arg(long, value_name = "DIR")]
    packages: Option<PathBuf>,
    /// An archive or directory of Kubernetes binaries with SHA256SUMS (air-gapped production image).
    #[arg(long, value_name = "ARCHIVE|DIR", env = "KUBEBOOT_KUBERNETES")]
    kubernetes: Option<PathBuf>,
    #[arg(long, value_name = "DIR", default_value = "out/up")]
    work: PathBuf,
    /// Production: where the cluster's etcd runs. `external`: one etcd on the
    /// segment (10.88.0.1:2379, certificates made by up), kubeadm's external-etcd
    /// topology; the default with more than one control plane, because a stacked
    /// control-plane join gives each etcd member-add call 2 s, which an emulated
    /// (TCG) control plane can miss. `stacked`: etcd inside each control plane.
    #[arg(long, value_enum)]
    etcd: Option<EtcdTopology>,
    /// Production: every node of a role boots from one user-data, as in a cloud
    /// autoscaling group: a node group per role (`serve group add`), whose pointer
    /// document is every node's seed. The receiver (`--fresh-credentials`) mints
    /// each machine's credentials; the control planes boot together and the
    /// receiver elects the one that runs `kubeadm init`, the others join once it is done.
    #[arg(long)]
    same_user_data: bool,
    /// Rebuild the image even if one for this profile exists.
    #[arg(long)]
    rebuild: bool,
    /// Give up after this many seconds (bootstrap only). A production cluster boots
    /// its nodes one stage at a time; under qemu TCG each control plane takes 10–15 min.
    #[arg(long, default_value_t = 5400)]
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
            if a.packages.is_some() || a.kubernetes.is_some() {
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
                "up: booting the TEST profile: no Kubernetes binaries (--kubernetes, KUBEBOOT_KUBERNETES or \
                 ../shared/k8s) and no --packages directory of .deb files were found. In the test profile kubeadm \
                 is tests/'s kubeadm-test-double and cluster-info comes from tests/'s apiserver-double: the whole \
                 boot path runs, but no real cluster is made."
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
            kubernetes: match (&a.kubernetes, &a.packages) {
                (Some(k), _) => Some(k.clone()),
                (None, None) => kubeboot_image::kubernetes::find_local(),
                (None, Some(_)) => None,
            },
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

    // Production: a real cluster needs its VMs on one network (segment.rs).
    let stop = super::image::stop_on_signals();
    let mut segment = if profile == Profile::Production {
        let name = format!("kubeboot-up-{}", std::process::id());
        eprintln!(
            "up: creating network namespace {name} (bridge br0, {}.0/24, no route out) for the VMs, \
             haproxy on {}:6443 and the receiver; it is deleted when up ends",
            segment::PREFIX,
            segment::ENDPOINT
        );
        Some(Segment::create(&name)?)
    } else {
        None
    };
    let (endpoint, receiver_host) = match &segment {
        Some(_) => (format!("{}:6443", segment::ENDPOINT), segment::OPERATOR),
        None => (format!("{}:6443", vm::HOST_ALIAS), vm::HOST_ALIAS),
    };

    // 2. The external etcd (production, by default with joining control planes).
    let control_planes = a.control_planes.unwrap_or(1);
    let etcd = match (segment.as_mut(), a.etcd) {
        (None, _) | (Some(_), Some(EtcdTopology::Stacked)) => None,
        (Some(_), None) if control_planes < 2 => None,
        (Some(seg), _) => Some(start_external_etcd(seg, &a, work)?),
    };

    // 3. The bundle (the cluster endpoint as the VMs see it).
    let bundle_dir = work.join("bundle");
    bundle::create(
        &NewBundle {
            endpoint,
            name: None,
            kubernetes_version: None,
            pod_subnet: segment.as_ref().map(|_| "10.244.0.0/16".to_string()),
            external_etcd: etcd.iter().map(|e| e.url.clone()).collect(),
            external_etcd_client: etcd.map(|e| e.client),
            slow_host: segment.is_some(),
        },
        &bundle_dir,
        true,
    )?;

    // 4. The receiver, in this process.
    let data = work.join("serve");
    // Every run starts with an empty receiver: nodes of an earlier run must not
    // count as this run's (the image is the only thing reused).
    if data.exists() {
        std::fs::remove_dir_all(&data).map_err(|e| {
            format!(
                "clearing the previous run's receiver data {}: {e}",
                data.display()
            )
        })?;
    }
    let group_mode = a.same_user_data && segment.is_some();
    if a.same_user_data && !group_mode {
        eprintln!("up: --same-user-data needs the production profile (a real cluster); ignored");
    }
    let tokens = data.join("tokens");
    // The VMs' [report] token: it posts events and reads no document.
    let (token, _) = kubeboot_serve::tokens::TokenFile::new(&tokens).add(
        kubeboot_serve::tokens::Scope::Report,
        false,
        "kubeboot up: the VMs' [report] token",
    )?;
    let (tx, rx) = std::sync::mpsc::channel();
    let listen = match &segment {
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
        bundle: Some(bundle_dir.clone()),
        fresh_credentials: group_mode,
        init_lease: serve::election::DEFAULT_LEASE,
        mint_per_minute: 60,
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
    let user_data = if group_mode {
        Some(GroupUserData::make(
            &data,
            &format!("https://{receiver_host}:8443"),
            &ca_hash,
        )?)
    } else {
        None
    };

    let mut procs = Procs(Vec::new());
    // 5. The cluster endpoint.
    let api_port = if profile == Profile::Test {
        let port = free_port()?;
        let mut double = Command::new(sibling("apiserver-double")?);
        vm::die_with_parent(&mut double);
        let child = double
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
        6443
    };

    // 6. The nodes.
    let mut nodes: Vec<(String, Role)> = Vec::new();
    if profile == Profile::Production {
        nodes.push(("cp-1".into(), Role::Init));
        let joins = control_planes.max(1) - 1;
        nodes.extend((2..=joins + 1).map(|i| (format!("cp-{i}"), Role::ControlPlane)));
    } else {
        let joins = a.control_planes.unwrap_or(0);
        nodes.extend((1..=joins).map(|i| (format!("cp-{i}"), Role::ControlPlane)));
    }
    nodes.extend((1..=a.workers).map(|i| (format!("worker-{i}"), Role::Worker)));
    let discovery = bundle::read_discovery(&bundle_dir)?;
    let vms = work.join("vms");
    let _ = std::fs::remove_dir_all(&vms);
    let ports = match &segment {
        Some(_) => Some(segment_ports(&nodes)?),
        None => None,
    };
    if let (Some(seg), Some(ports)) = (segment.as_mut(), &ports) {
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
    }
    let mut vm_logs: Vec<(usize, String, PathBuf)> = Vec::new();
    let mut waiting: std::collections::VecDeque<(String, Role, vm::VmSpec)> = Default::default();
    for (i, (name, role)) in nodes.iter().enumerate() {
        let port = ports.as_ref().map(|p| &p[i]);
        let extra = match port {
            // TCG: the control plane takes many minutes (the bundle is --slow-host);
            // joins wait for it.
            Some(p) => format!(
                "advertise_address = \"{}\"\n\n[ready]\ntimeout_seconds = 1800\n",
                p.address,
            ),
            None => String::new(),
        };
        let doc = match &user_data {
            Some(u) => u.for_role(*role).to_string(),
            None => {
                let mut doc = format!(
                    "{}\n[node]\nname = \"{name}\"\n{extra}\n[preflight]\nclock_sync_timeout_seconds = 2\n\n[report]\nurl = \"https://{receiver_host}:8443/v1\"\ntoken = \"{token}\"\nca_cert_hash = \"{ca_hash}\"\n",
                    bundle::node_document(*role, &discovery, &bundle_dir)?,
                );
                if port.is_some() && *role != Role::Init {
                    doc = doc.replacen("[discovery]\n", "[discovery]\ntimeout_seconds = 2400\n", 1);
                }
                kubeboot_agent::agent::validate_fully(&doc).map_err(|e| format!("{name}: {e}"))?;
                doc
            }
        };
        let seed = work.join(format!("{name}.seed.iso"));
        kubeboot_serve::userdata::write_seed(
            &kubeboot_serve::userdata::cloud_config(&doc),
            &kubeboot_serve::userdata::meta_data(
                &format!("{name}-{}", std::process::id()),
                Some(name),
            ),
            port.map(Port::network_config).as_deref(),
            &seed,
        )?;
        let forwards = match port {
            Some(_) => vec![],
            None => vec![
                vm::Forward {
                    guest_port: 8443,
                    host_port: serve_port,
                },
                vm::Forward {
                    guest_port: 6443,
                    host_port: api_port,
                },
            ],
        };
        let mut spec =
            super::image::spec_for(&image_dir, name, vms.clone(), Some(seed), None, forwards)?;
        if let (Some(seg), Some(p)) = (&segment, port) {
            seg.add_tap(p)?;
            spec.tap = Some(vm::Tap {
                ifname: p.tap.clone(),
                mac: p.mac.clone(),
            });
            spec.memory_mib = if *role == Role::Worker { 2048 } else { 3072 };
            // Under TCG the control planes must keep CPU while workers boot. (Not
            // joining control planes: kubeadm's etcd member add allows 2 s per call.)
            if *role == Role::Worker {
                spec.nice = 10;
            }
        }
        waiting.push_back((name.clone(), *role, spec));
    }
    let one_by_one = segment.is_some();
    let mut booted: Vec<String> = Vec::new();
    let admin = match &segment {
        Some(_) => {
            let path = work.join("admin.conf");
            let conf = bundle::kubeconfig(
                &bundle_dir,
                "kubernetes-admin",
                &["system:masters".to_string()],
                24,
                None,
            )?;
            kubeboot_core::host::Host::system()
                .write_atomic(&path, conf.as_bytes(), 0o600)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Some(path)
        }
        None => None,
    };

    // 7. Live status until every node is done or failed.
    let client = kubeboot_core::tls::https_client(
        kubeboot_core::tls::client_config(Some(&ca_hash))?,
        Duration::from_secs(10),
    )
    .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut shown = String::new();
    let mut quiet_since = 0u64;
    loop {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            eprintln!("up: stopped; shutting the VMs down");
            return Ok(false);
        }
        // A VM never powers off by itself here: qemu exiting is a failure to show.
        for (i, name, log) in &vm_logs {
            if let Some((status, err)) = vm::exited(&mut procs.0[*i])? {
                return Err(format!(
                    "the VM of {name} exited ({status}); qemu said: {}\n  last lines of its console ({}):\n{}",
                    if err.is_empty() { "nothing" } else { &err },
                    log.display(),
                    vm::serial_tail(log, 15)
                ));
            }
        }
        let list: Vec<NodeSummary> = client
            .get(format!("{}/nodes", kubeboot_agent::report::api_root(&url)))
            .send()
            .ok()
            .and_then(|r| r.bytes().ok())
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| serde_json::from_value(v["nodes"].clone()).ok())
            .unwrap_or_default();
        // Production boots the init node, then each joining control plane, then
        // the workers, each stage once the one before is done: under TCG on a
        // small host, a control plane starting next to others missed its probes.
        let all_done = booted
            .iter()
            .all(|n| list.iter().any(|x| &x.name == n && x.done()));
        if !waiting.is_empty() && (booted.is_empty() || !one_by_one || all_done) {
            for (name, role, spec) in next_stage(&mut waiting, one_by_one, group_mode) {
                eprintln!(
                    "up: booting {name} ({}) — serial console {}",
                    match (group_mode, role) {
                        (true, Role::Init | Role::ControlPlane) => {
                            "control plane; the receiver elects the init node"
                        }
                        _ => role.as_str(),
                    },
                    spec.serial_log().display()
                );
                procs.0.push(vm::start(&spec)?);
                vm_logs.push((procs.0.len() - 1, name.clone(), spec.serial_log()));
                booted.push(name);
            }
        }
        let stuck = list.iter().any(|n| n.failed()) && !waiting.is_empty();
        let table = super::watch::table(&list);
        let elapsed = started.elapsed().as_secs();
        if table != shown {
            eprintln!("\n[{elapsed:>4}s] {table}");
            shown = table;
            quiet_since = elapsed;
        } else if elapsed >= quiet_since + 30 {
            // Booting under TCG takes minutes with nothing new to show: say so.
            let booted = list.len();
            eprintln!(
                "[{elapsed:>4}s] {booted} of {} nodes reporting; VMs still working (consoles: {}; dashboard {url}/)",
                nodes.len(),
                vms.display()
            );
            quiet_since = elapsed;
        }
        if stuck && list.iter().all(NodeSummary::settled) {
            eprintln!(
                "up: a node failed; {} node(s) were not booted",
                waiting.len()
            );
            return Ok(false);
        }
        if list.len() >= nodes.len() && list.iter().all(NodeSummary::settled) {
            let ok = list.iter().all(|n| !n.failed());
            let done = list.iter().filter(|n| n.done()).count();
            println!(
                "\nup: {done} of {} nodes reached done in {:.0} s.",
                nodes.len(),
                started.elapsed().as_secs_f64()
            );
            println!(
                "up: events, timings and log tails are kept in {} (`kubeboot serve --data {}` shows them again)",
                data.display(),
                data.display()
            );
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
                (None, _) => println!("up: test profile: each node ran the whole boot path (kubeadm was the test double); no cluster to use."),
            }
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

/// One etcd on the segment for the cluster, from the Kubernetes binaries the
/// production image is built from.
fn start_external_etcd(
    seg: &mut Segment,
    a: &UpArgs,
    work: &Path,
) -> Result<segment::ExternalEtcd, String> {
    let source = a
        .kubernetes
        .clone()
        .or_else(kubeboot_image::kubernetes::find_local)
        .ok_or("--etcd external needs the Kubernetes binaries (its etcd): give --kubernetes ARCHIVE|DIR, or --etcd stacked")?;
    let binaries = kubeboot_image::kubernetes::prepare(&source)?;
    let etcd = seg.start_etcd(&binaries.bin.join("etcd"), work)?;
    eprintln!(
        "up: external etcd on {} (kubeadm's external-etcd topology; certificates in {}, log {})",
        etcd.url,
        work.join("etcd-pki").display(),
        work.join("etcd.log").display()
    );
    Ok(etcd)
}

/// The VMs to boot next: everything at once, or (one by one) the next control
/// plane alone — or, with `control_planes_together` (they elect their init node),
/// all control planes — then all the workers together.
fn next_stage(
    waiting: &mut std::collections::VecDeque<(String, Role, vm::VmSpec)>,
    one_by_one: bool,
    control_planes_together: bool,
) -> Vec<(String, Role, vm::VmSpec)> {
    if !one_by_one {
        return waiting.drain(..).collect();
    }
    match waiting.front() {
        Some((_, Role::Worker, _)) => waiting.drain(..).collect(),
        Some(_) if control_planes_together => {
            let workers = waiting
                .iter()
                .position(|(_, role, _)| *role == Role::Worker)
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
        let tokens = kubeboot_serve::tokens::TokenFile::new(data.join("tokens"));
        let make = |name: &str, role: Role| -> Result<String, String> {
            let (credential, group) = file.add(
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
            )?;
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

fn wait_for_stop(stop: &std::sync::atomic::AtomicBool) {
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}
