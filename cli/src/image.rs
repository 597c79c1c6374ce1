use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};

use super::Output;
use kubeboot_image::{build, pxe, vm, Profile};

/// How often `image boot` starts a guest again whose kernel stalled in early boot.
const MAX_RESTARTS: u32 = 2;

#[derive(Args, Debug)]
pub struct ImageArgs {
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(Subcommand, Debug)]
enum ImageCommand {
    /// Build the node image with mkosi (disk image, kernel, initrd, UKI) and describe it in manifest.json.
    Build(BuildArgs),
    /// Boot one VM from a built image under qemu (user networking restricted to the given forwards).
    Boot(BootArgs),
    /// Write the diskless PXE set: kernel, root archive (loaded into RAM) and an iPXE script
    /// passing kubeboot.url= and kubeboot.ca_hash=.
    Pxe(PxeArgs),
    /// Make a container image (OCI archive for `ctr images import`) from local files, reproducibly.
    ///
    /// Used by the production image build to turn the Kubernetes binaries into the
    /// control-plane images kubeadm expects. Same files + same --source-date-epoch = same bytes.
    Oci(OciArgs),
    /// Check Kubernetes release artifacts as `image build --profile production` would, without
    /// building: which layout was found, every checksum verified, the sha256 and version of each
    /// binary, and where each container image kubeadm asks for comes from (or that it is missing).
    Kubernetes(KubernetesArgs),
}

#[derive(Args, Debug)]
struct KubernetesArgs {
    /// The release artifacts (the forms `image build --kubernetes` takes).
    #[arg(long, value_name = "PATH", env = "KUBEBOOT_KUBERNETES")]
    kubernetes: PathBuf,
    /// Container image archives for images the artifacts lack (as `image build --images`).
    #[arg(long, value_name = "DIR")]
    images: Option<PathBuf>,
    /// Unpack an archive here (once; reused while the archive is unchanged) instead of a
    /// temporary directory, and report where its binaries are (`bin` in the JSON output).
    #[arg(long, value_name = "DIR")]
    unpack_into: Option<PathBuf>,
    /// Output format: text for people, json for scripts.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

#[derive(Args, Debug)]
struct OciArgs {
    /// The image reference, e.g. registry.k8s.io/kube-apiserver:v1.28.7.
    #[arg(long)]
    name: String,
    /// The archive to write.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// SRC[=DEST]: a file or directory to put at DEST in the image (default: the same path). Repeatable.
    #[arg(long = "add", value_name = "SRC[=DEST]")]
    add: Vec<String>,
    /// PATH=TARGET: a symbolic link in the image. Repeatable.
    #[arg(long = "link", value_name = "PATH=TARGET")]
    links: Vec<String>,
    /// Also add the shared libraries the added programs need (resolved with ldd on this machine).
    #[arg(long)]
    with_libraries: bool,
    /// The image's entrypoint (repeat for each argument).
    #[arg(long = "entrypoint", value_name = "ARG")]
    entrypoint: Vec<String>,
    /// Every timestamp in the archive.
    #[arg(long, value_name = "SECONDS", env = "SOURCE_DATE_EPOCH")]
    source_date_epoch: u64,
    /// Output format: text for people, json for scripts.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// test: kubeadm is tests/'s double (no real cluster); production: real Kubernetes, air-gapped.
    #[arg(long, value_enum, default_value = "test")]
    pub profile: Profile,
    /// The mkosi definition.
    #[arg(long, value_name = "DIR", default_value = "mkosi")]
    pub mkosi_dir: PathBuf,
    /// Where the outputs go.
    #[arg(long, value_name = "DIR", default_value = "out/image")]
    pub out: PathBuf,
    /// Downloaded packages, shared between builds.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/var/cache/kubeboot/mkosi-packages"
    )]
    pub cache: PathBuf,
    /// The kubeboot binary to install (default: this one).
    #[arg(long, value_name = "PATH")]
    pub kubeboot_bin: Option<PathBuf>,
    /// Test profile: the kubeadm test double (default: kubeadm-test-double next to this binary).
    #[arg(long, value_name = "PATH")]
    pub kubeadm_double: Option<PathBuf>,
    /// Production profile, air-gapped: the official Kubernetes release artifacts of one
    /// version: kubernetes-server-linux-amd64.tar.gz (or its unpacked tree), a directory of
    /// per-binary downloads (kubeadm, kubelet, kubectl, kube-apiserver, … with their .sha256),
    /// or a bin/ tree with its SHA256SUMS (directory or .tar.xz). crictl (cri-tools) goes
    /// beside them. Every checksum file present is verified; the control-plane images are
    /// taken from the release or built from its binaries and preloaded (docs/real-kubernetes.md).
    #[arg(long, value_name = "PATH", env = "KUBEBOOT_KUBERNETES")]
    pub kubernetes: Option<PathBuf>,
    /// With --kubernetes: a directory of container image archives (docker save or OCI, *.tar)
    /// for images the artifacts lack (pause, etcd, CoreDNS, a CNI plugin's); without them
    /// nodes pull those at first boot.
    #[arg(long, value_name = "DIR", env = "KUBEBOOT_IMAGES")]
    pub images: Option<PathBuf>,
    /// Production profile: a directory of kubeadm/kubelet/kubectl/cri-tools/kubernetes-cni .deb files.
    #[arg(long, value_name = "DIR")]
    pub packages: Option<PathBuf>,
    /// Production profile: install the Kubernetes packages from pkgs.k8s.io (needs network access).
    #[arg(long)]
    pub from_repository: bool,
    /// Build timestamp for reproducible output (default: the last git commit's time).
    #[arg(long, value_name = "SECONDS", env = "SOURCE_DATE_EPOCH")]
    pub source_date_epoch: Option<u64>,
    /// Output format: text for people, json for scripts.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Args, Debug)]
struct BootArgs {
    /// A built image directory (with kubeboot.raw).
    #[arg(long, value_name = "DIR", default_value = "out/image")]
    image: PathBuf,
    /// VM name (files in --workdir are named after it).
    #[arg(long, default_value = "node")]
    name: String,
    /// A NoCloud seed ISO (`kubeboot seed`).
    #[arg(long, value_name = "ISO")]
    seed: Option<PathBuf>,
    /// Boot kernel + initrd directly with this extra command line (the PXE path), instead of UEFI from disk.
    #[arg(long, value_name = "ARGS", conflicts_with = "pxe")]
    direct_cmdline: Option<String>,
    /// Boot diskless from this PXE set (`kubeboot image pxe --out DIR`): the firmware's iPXE
    /// fetches boot.ipxe, kernel and root archive from qemu's TFTP server; no disk is attached.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["seed", "tap"])]
    pxe: Option<PathBuf>,
    /// The firmware of a --pxe boot (a disk boot is UEFI, a direct boot qemu's default).
    #[arg(long, value_enum, default_value = "uefi", requires = "pxe")]
    firmware: vm::Firmware,
    /// GUEST_PORT:HOST_PORT: the guest reaches 127.0.0.1:HOST_PORT at 10.0.2.100:GUEST_PORT (repeatable).
    #[arg(long = "forward", value_name = "GUEST:HOST")]
    forwards: Vec<String>,
    /// Put the VM on this tap device (e.g. inside `ip netns exec NS`, on a bridge)
    /// instead of user networking; --forward does not apply then.
    #[arg(
        long,
        value_name = "IFNAME",
        requires = "mac",
        conflicts_with = "forwards"
    )]
    tap: Option<String>,
    /// The VM's MAC address on --tap (what the seed's network-config matches).
    #[arg(long, value_name = "MAC")]
    mac: Option<String>,
    /// Memory of the VM, in MiB.
    #[arg(long, default_value_t = 2048)]
    memory_mib: u32,
    /// Virtual CPUs of the VM.
    #[arg(long, default_value_t = 2)]
    cpus: u32,
    /// Run qemu at this scheduling priority (nice, -20..19): on a host with few cores,
    /// VMs that join later at 10 leave CPU to the one serving the cluster's API.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true, value_parser = clap::value_parser!(i32).range(-20..=19))]
    nice: i32,
    /// End qemu when the guest reboots.
    #[arg(long)]
    no_reboot: bool,
    /// Kill the VM after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Stop when the serial console shows this text (e.g. "node bootstrapped").
    #[arg(long, value_name = "TEXT")]
    until: Option<String>,
    /// Overlay disk, firmware variables and the serial log.
    #[arg(long, value_name = "DIR", default_value = "out/vms")]
    workdir: PathBuf,
}

#[derive(Args, Debug)]
struct PxeArgs {
    /// The built image (kubeboot image build --out).
    #[arg(long, value_name = "DIR", default_value = "out/image")]
    image: PathBuf,
    /// Where to write the PXE set (kernel, root archive, iPXE script).
    #[arg(long, value_name = "DIR", default_value = "out/pxe")]
    out: PathBuf,
    /// Where nodes fetch the kernel and root archive (this directory, served over HTTP or TFTP).
    /// Default: where boot.ipxe itself was fetched from (relative names).
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
    /// The node document URL (kubeboot serve: https://HOST:PORT/v1/documents/ROLE).
    #[arg(long, value_name = "URL")]
    document_url: String,
    /// The document server's CA hash (kubeboot serve prints it).
    #[arg(long, value_name = "sha256:HEX")]
    ca_hash: String,
    /// A file holding a bearer token for the document server. It is visible on the node's
    /// /proc/cmdline to every user: make it once-only (`kubeboot serve token add
    /// --scope documents:ROLE --once`), so it is spent by the node's own fetch.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// More kernel command line for the nodes, e.g. `kubeboot.ramroot_size=75%` (how much of
    /// the RAM the root file system may fill; default 90%).
    #[arg(long, value_name = "ARGS", default_value = "")]
    extra_cmdline: String,
}

pub fn run(args: ImageArgs) -> u8 {
    let result = match args.command {
        ImageCommand::Build(a) => run_build(a).map(|_| ()),
        ImageCommand::Boot(a) => run_boot(a),
        ImageCommand::Pxe(a) => run_pxe(a),
        ImageCommand::Oci(a) => run_oci(a),
        ImageCommand::Kubernetes(a) => run_kubernetes(a),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn run_kubernetes(a: KubernetesArgs) -> Result<(), String> {
    use kubeboot_image::kubernetes;
    let b = kubernetes::prepare_in(&a.kubernetes, a.unpack_into.as_deref())?;
    let plan = b.plan(a.images.as_deref())?;
    let image = plan.node_image(&b.version);
    match a.output {
        Output::Text => {
            for line in b.report().into_iter().chain(plan.report()) {
                println!("{line}");
            }
            println!(
                "air-gapped: {}",
                if image.offline {
                    "yes"
                } else {
                    "no (see NOT IN THE IMAGE above)"
                }
            );
        }
        Output::Json => {
            let v = serde_json::json!({
                "version": b.version,
                "layout": b.layout,
                "bin": b.bin,
                "files": b.archive.iter().chain(&b.used).collect::<Vec<_>>(),
                "images": plan.images,
                "air_gapped": image.offline,
            });
            println!("{v}");
        }
    }
    Ok(())
}

pub fn run_build(a: BuildArgs) -> Result<build::Manifest, String> {
    let kubeboot_bin = match a.kubeboot_bin {
        Some(p) => p,
        None => std::env::current_exe().map_err(|e| e.to_string())?,
    };
    let opts = build::BuildOptions {
        profile: a.profile,
        kubeadm_double: a
            .kubeadm_double
            .or_else(|| kubeboot_image::sibling("kubeadm-test-double")),
        source_date_epoch: a
            .source_date_epoch
            .unwrap_or_else(|| build::default_source_date_epoch(&a.mkosi_dir)),
        mkosi_dir: a.mkosi_dir,
        out_dir: a.out.clone(),
        cache_dir: a.cache,
        kubeboot_bin,
        packages: a.packages,
        kubernetes: if a.profile == Profile::Production {
            a.kubernetes
        } else {
            None
        },
        images: a.images.filter(|_| a.profile == Profile::Production),
        from_repository: a.from_repository,
    };
    let m = build::build(&opts)?;
    match a.output {
        Output::Json => println!("{}", serde_json::to_string(&m).expect("serializes")),
        Output::Text => println!("{}", m.summary(&a.out)),
    }
    Ok(m)
}

pub fn parse_forward(s: &str) -> Result<vm::Forward, String> {
    let (g, h) = s
        .split_once(':')
        .ok_or_else(|| format!("--forward {s:?}: use GUEST_PORT:HOST_PORT"))?;
    Ok(vm::Forward {
        guest_port: g
            .parse()
            .map_err(|_| format!("--forward {s:?}: bad guest port"))?,
        host_port: h
            .parse()
            .map_err(|_| format!("--forward {s:?}: bad host port"))?,
    })
}

fn run_boot(a: BootArgs) -> Result<(), String> {
    let forwards = a
        .forwards
        .iter()
        .map(|f| parse_forward(f))
        .collect::<Result<Vec<_>, _>>()?;
    let mut spec = match &a.pxe {
        Some(dir) => vm::spec_for_pxe(dir, &a.name, a.workdir, a.firmware, forwards)?,
        None => vm::spec_for_image(
            &a.image,
            &a.name,
            a.workdir,
            a.seed,
            a.direct_cmdline.as_deref(),
            forwards,
        )?,
    };
    spec.memory_mib = a.memory_mib;
    spec.cpus = a.cpus;
    spec.nice = a.nice;
    spec.tap = a.tap.map(|ifname| vm::Tap {
        ifname,
        mac: a.mac.unwrap_or_default(),
    });
    spec.no_reboot = a.no_reboot;
    let log = spec.serial_log();
    let _ = std::fs::remove_file(&log);
    eprintln!(
        "image: booting {} ({:?}); serial console: {}",
        spec.name,
        spec.accel,
        log.display()
    );
    let mut child = vm::start(&spec)?;
    let stop = vm::stop_on_signals();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(a.timeout);
    let mut restarts = 0;
    // The console is read only while something is watched for in it: an
    // early-boot stall (until the initrd is done, or no restart is left) or --until.
    let mut watch_early_boot = true;
    loop {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = child.kill();
            let _ = child.wait();
            return Err("stopped by a signal; the VM was shut down".into());
        }
        if let Some((status, err)) = vm::exited(&mut child)? {
            eprintln!(
                "image: qemu exited after {:.0} s ({status}) {err}",
                started.elapsed().as_secs_f64(),
            );
            return if status.success() {
                Ok(())
            } else {
                Err("qemu failed".into())
            };
        }
        let serial = if watch_early_boot || a.until.is_some() {
            String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).into_owned()
        } else {
            String::new()
        };
        if watch_early_boot {
            match vm::early_boot(&serial) {
                vm::EarlyBoot::Running => {}
                vm::EarlyBoot::Over => watch_early_boot = false,
                vm::EarlyBoot::Stalled(what) => {
                    restarts += 1;
                    watch_early_boot = restarts < MAX_RESTARTS;
                    let _ = child.kill();
                    let _ = child.wait();
                    let kept = log.with_extension(format!("stalled-{restarts}.log"));
                    let _ = std::fs::rename(&log, &kept);
                    eprintln!(
                        "image: the guest's kernel reported {what} before reaching its root file system \
                         (serial log kept as {}); nothing of the node ran yet: starting it again ({restarts} of {MAX_RESTARTS})",
                        kept.display()
                    );
                    child = vm::start(&spec)?;
                    continue;
                }
            }
        }
        if let Some(text) = &a.until {
            if serial.contains(text.as_str()) {
                eprintln!(
                    "image: saw {text:?} after {:.0} s; stopping the VM",
                    started.elapsed().as_secs_f64()
                );
                let _ = child.kill();
                let _ = child.wait();
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "timed out after {} s (serial log: {})",
                a.timeout,
                log.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn run_pxe(a: PxeArgs) -> Result<(), String> {
    let token = a.token_file.as_deref().map(read_plain_token).transpose()?;
    pxe::write_set(
        &a.image,
        &a.out,
        &pxe::PxeParams {
            base_url: a.base_url.as_deref(),
            document_url: &a.document_url,
            ca_hash: &a.ca_hash,
            token: token.as_deref(),
            extra_cmdline: &a.extra_cmdline,
        },
    )?;
    println!(
        "pxe: {} ({}, {}, {}): serve the directory over TFTP or HTTP and give DHCP clients {} as their boot file",
        a.out.display(),
        pxe::KERNEL,
        pxe::ROOT_ARCHIVE,
        pxe::SCRIPT,
        pxe::SCRIPT
    );
    Ok(())
}

fn run_oci(a: OciArgs) -> Result<(), String> {
    let files = a
        .add
        .iter()
        .map(|f| match f.split_once('=') {
            Some((src, dest)) => (PathBuf::from(src), dest.to_string()),
            None => (PathBuf::from(f), f.clone()),
        })
        .collect();
    let links = a
        .links
        .iter()
        .map(|l| {
            l.split_once('=')
                .map(|(p, t)| (p.to_string(), t.to_string()))
                .ok_or_else(|| format!("--link {l:?}: use PATH=TARGET"))
        })
        .collect::<Result<_, _>>()?;
    let spec = kubeboot_image::oci::ImageSpec {
        name: a.name,
        files,
        links,
        with_libraries: a.with_libraries,
        entrypoint: a.entrypoint,
        env: Vec::new(),
        mtime: a.source_date_epoch,
    };
    let w = kubeboot_image::oci::write_archive(&spec, &a.out)?;
    match a.output {
        Output::Json => println!("{}", serde_json::to_string(&w).expect("serializes")),
        Output::Text => println!(
            "oci: {} -> {} ({:.1} MiB, manifest {})",
            w.name,
            a.out.display(),
            w.archive_bytes as f64 / 1048576.0,
            w.manifest_digest
        ),
    }
    Ok(())
}

/// The first token line of a file holding one plain token (what
/// `kubeboot serve token add` printed). Errors never quote the file.
fn read_plain_token(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--token-file {}: {e}", path.display()))?;
    let token = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or(format!("--token-file {}: no token in it", path.display()))?;
    if token.len() < 16 || token.contains(char::is_whitespace) {
        return Err(format!(
            "--token-file {}: the first line is not one token of 16 or more characters \
             (make one with kubeboot serve token add --scope documents:ROLE --once)",
            path.display()
        ));
    }
    Ok(token.to_string())
}
