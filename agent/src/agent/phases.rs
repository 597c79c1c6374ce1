//! The bodies of the phases that touch the host. Each is idempotent: running
//! it again after a crash converges on the same result.

use std::time::{Duration, Instant};

use secrecy::ExposeSecret;

use super::completion::{self, Completion, ADMIN_CONF, KUBELET_CONF};
use super::{Agent, Failure};
use kubeboot_core::backoff::Backoff;
use kubeboot_core::document::formats::parse_kubernetes_version;
use kubeboot_core::document::{Role, ValidDocument, PKI_PAIRS};
use kubeboot_core::host::ClusterIpv4;
use kubeboot_core::kubeadm::{self, ConfigPaths};
use kubeboot_core::status::{ErrorKind, Phase, PhaseState, LOG_TAIL_MAX_LINES};
use kubeboot_kube::discovery;

use super::draft::Draft;
use super::state::AgentState;

const MODULES: [&str; 2] = ["overlay", "br_netfilter"];
const SYSCTLS: [(&str, &str); 3] = [
    ("net.bridge.bridge-nf-call-iptables", "1"),
    ("net.bridge.bridge-nf-call-ip6tables", "1"),
    ("net.ipv4.ip_forward", "1"),
];
/// Set when the kernel has IPv6: kubeadm's preflight (v1.28 measured) requires
/// `net.ipv6.conf.default.forwarding = 1` whenever the node has IPv6 routes.
const IPV6_SYSCTLS: [(&str, &str); 2] = [
    ("net.ipv6.conf.default.forwarding", "1"),
    ("net.ipv6.conf.all.forwarding", "1"),
];
const MIB: u64 = 1024 * 1024;

/// Resource minimums: (cpus, memory MiB, free disk MiB). Control planes follow
/// kubeadm's own checks (2 CPUs, 1700 MB); disk covers images and etcd.
pub fn minimums(role: Role) -> (usize, u64, u64) {
    if role.is_control_plane() {
        (2, 1700, 2048)
    } else {
        (1, 512, 1024)
    }
}

impl Agent {
    pub(super) fn preflight(&mut self, doc: &ValidDocument) -> Result<(), Failure> {
        let facts = self.host.facts();
        let ignored = |name: &str| {
            doc.doc
                .kubeadm
                .ignore_preflight_errors
                .iter()
                .any(|i| i.eq_ignore_ascii_case(name) || i.eq_ignore_ascii_case("all"))
        };
        let (min_cpus, min_mib, min_disk_mib) = minimums(doc.role);
        let check =
            |ok: bool, name: &str, kind: ErrorKind, message: String| -> Result<(), Failure> {
                if ok {
                    return Ok(());
                }
                if ignored(name) {
                    tracing::warn!("preflight {name} ignored: {message}");
                    return Ok(());
                }
                Err(Failure::new(
                    kind,
                    format!(
                    "{message} (add \"{name}\" to kubeadm.ignore_preflight_errors to go on anyway)"
                ),
                ))
            };
        check(
            facts.cpus >= min_cpus,
            "NumCPU",
            ErrorKind::InsufficientCpu,
            format!(
                "a {} needs at least {min_cpus} CPUs, this machine has {}",
                doc.role, facts.cpus
            ),
        )?;
        check(
            facts.memory_bytes >= min_mib * MIB,
            "Mem",
            ErrorKind::InsufficientMemory,
            format!(
                "a {} needs at least {min_mib} MiB of memory, this machine has {} MiB",
                doc.role,
                facts.memory_bytes / MIB
            ),
        )?;
        check(
            facts.disk_free_bytes >= min_disk_mib * MIB,
            "DiskSpace",
            ErrorKind::InsufficientDisk,
            format!(
                "/var/lib needs at least {min_disk_mib} MiB free, it has {} MiB",
                facts.disk_free_bytes / MIB
            ),
        )?;
        self.facts = Some(facts);
        self.check_binaries(doc)?;
        self.wait_for_clock(doc)
    }

    fn check_binaries(&self, doc: &ValidDocument) -> Result<(), Failure> {
        let missing: Vec<&str> = ["kubeadm", "kubelet"]
            .into_iter()
            .filter(|b| self.host.find_program(b).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(Failure::new(
                ErrorKind::MissingBinary,
                format!(
                    "{} not found on PATH: this image lacks the Kubernetes node packages",
                    missing.join(" and ")
                ),
            ));
        }
        let Some(wanted) = &doc.cluster.kubernetes_version else {
            return Ok(());
        };
        let (_, want_minor, _) = parse_kubernetes_version(wanted).expect("validated");
        let kubeadm_version = self.kubeadm_version();
        if let Some(kv) = kubeadm_version {
            if let Ok((_, minor, _)) = parse_kubernetes_version(&kv) {
                // kubeadm deploys its own minor version and the one before it.
                if want_minor > minor || want_minor + 1 < minor {
                    return Err(Failure::new(
                        ErrorKind::VersionSkew,
                        format!("kubeadm {kv} cannot deploy Kubernetes {wanted}: use kubeadm v1.{want_minor}.x or v1.{}.x", want_minor + 1),
                    ));
                }
            }
        }
        if let Some(kubelet) = self.kubelet_version() {
            if let Ok((_, minor, _)) = parse_kubernetes_version(&kubelet) {
                if minor > want_minor {
                    return Err(Failure::new(
                        ErrorKind::VersionSkew,
                        format!("kubelet {kubelet} is newer than the cluster's {wanted}; a kubelet must not be newer than its control plane"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// `kubelet --version` prints `Kubernetes v1.34.2`.
    fn kubelet_version(&self) -> Option<String> {
        let kubelet = self.host.find_program("kubelet")?;
        let out = self.host.command(kubelet).arg("--version").output().ok()?;
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .find(|w| w.starts_with('v'))
            .map(str::to_string)
    }

    fn wait_for_clock(&self, doc: &ValidDocument) -> Result<(), Failure> {
        let opts = &doc.doc.preflight;
        let limit = Duration::from_secs(opts.clock_sync_timeout_seconds);
        if wait_until(limit, Duration::from_millis(500), || {
            self.host.clock_synchronized()
        }) {
            return Ok(());
        }
        let message = format!(
            "the system clock is not synchronised after {}s: certificates may look expired or not yet valid; check NTP (chrony or systemd-timesyncd)",
            limit.as_secs()
        );
        if opts.require_clock_sync {
            return Err(Failure::new(ErrorKind::ClockUnsynchronized, message));
        }
        tracing::warn!("{message}; going on because preflight.require_clock_sync is false");
        Ok(())
    }

    pub(super) fn prepare(&mut self, doc: &ValidDocument) -> Result<(), Failure> {
        for m in MODULES {
            self.host
                .load_module(m)
                .map_err(|e| Failure::new(ErrorKind::KernelModule, e.to_string()))?;
        }
        let ipv6 = self
            .host
            .exists("/proc/sys/net/ipv6/conf/default/forwarding");
        let sysctls: Vec<(&str, &str)> = SYSCTLS
            .iter()
            .chain(IPV6_SYSCTLS.iter().filter(|_| ipv6))
            .copied()
            .collect();
        for (k, v) in &sysctls {
            self.host
                .set_sysctl(k, v)
                .map_err(|e| Failure::new(ErrorKind::Sysctl, e.to_string()))?;
        }
        let persisted = self
            .host
            .write_atomic(
                "/etc/modules-load.d/kubeboot.conf",
                format!("{}\n", MODULES.join("\n")).as_bytes(),
                0o644,
            )
            .and_then(|_| {
                let lines: String = sysctls
                    .iter()
                    .map(|(k, v)| format!("{k} = {v}\n"))
                    .collect();
                self.host
                    .write_atomic("/etc/sysctl.d/90-kubeboot.conf", lines.as_bytes(), 0o644)
            });
        persisted.map_err(|e| Failure::new(ErrorKind::HostIo, e.to_string()))?;
        let swaps = self.host.swap_off().map_err(|e| {
            Failure::new(
                ErrorKind::Swap,
                format!("{e}; the kubelet refuses to run with swap on"),
            )
        })?;
        if !swaps.is_empty() {
            tracing::info!("turned swap off on {}", swaps.join(", "));
        }
        self.wait_for_cri(doc)?;
        let socket = doc.cri_socket().trim_start_matches("unix://");
        let imported = super::images::import(&self.host, doc.role, &self.opts.state_dir, socket)?;
        self.notes.extend(imported);
        Ok(())
    }

    fn wait_for_cri(&self, doc: &ValidDocument) -> Result<(), Failure> {
        let socket = doc.cri_socket().trim_start_matches("unix://").to_string();
        if !self.host.exists(&socket) && self.host.is_system_root() {
            if let Some(systemctl) = self.host.find_program("systemctl") {
                let _ = self
                    .host
                    .command(systemctl)
                    .args(["start", "containerd.service"])
                    .status();
            }
        }
        let limit = Duration::from_secs(doc.doc.preflight.cri_timeout_seconds);
        if wait_until(limit, Duration::from_millis(250), || {
            self.host.exists(&socket)
        }) {
            return Ok(());
        }
        Err(Failure::new(
            ErrorKind::ContainerRuntimeUnavailable,
            format!("the container runtime socket {socket} did not appear within {}s: is containerd installed and enabled?", limit.as_secs()),
        ))
    }

    /// Joins: verify the cluster before kubeadm trusts it (cluster-info, the
    /// token's signature, the CA pin, the served chain), so a wrong hash, an
    /// unknown token or a dead endpoint is reported as exactly that.
    pub(super) fn discover(&mut self, doc: &ValidDocument) -> Result<(), Failure> {
        if doc.role == Role::Init {
            return self.fence_before_init(doc);
        }
        let timeout = Duration::from_secs(doc.doc.discovery_timeout_seconds());
        let d = &doc.doc.discovery;
        let verified = if let Some(file) = &d.file {
            let text = if file.starts_with('/') {
                self.host.read_to_string(file).map_err(|e| {
                    Failure::new(
                        ErrorKind::DiscoveryFileMissing,
                        format!("discovery.file: {e}"),
                    )
                })?
            } else {
                crate::source::fetch_document(file, None, None, &self.opts.fetch)
                    .map_err(|e| {
                        Failure::new(
                            ErrorKind::DiscoveryFileMissing,
                            format!("discovery.file: {e}"),
                        )
                    })?
                    .text
            };
            discovery::verify_file(&text, timeout)
        } else {
            let token = d.token.as_ref().expect("validated: joins carry a token");
            discovery::verify_token(
                &doc.endpoint,
                token.expose_secret(),
                &d.ca_cert_hashes,
                timeout,
            )
        };
        let v = verified.map_err(|e| Failure::new(e.kind, e.message))?;
        tracing::info!(
            "verified the cluster at {}: CA {:?} ({})",
            v.endpoint,
            v.ca_subject,
            v.ca_hash
        );
        self.make_room(doc, &v)
    }

    /// A control-plane join cleans up after the machine it replaces (kubeboot_kube::replace):
    /// each removal rides on discover's succeeded event and goes to the journal; a
    /// refusal fails the phase before kubeadm runs.
    fn make_room(&mut self, doc: &ValidDocument, v: &discovery::Verified) -> Result<(), Failure> {
        let Some((access, name)) =
            kubeboot_kube::replace::for_join(doc, v, || self.host.hostname())
        else {
            return Ok(());
        };
        let opts = self.replace_options(doc);
        let report = kubeboot_kube::client::block_on(kubeboot_kube::replace::make_room(
            &access, &name, &opts,
        ))
        .map_err(|why| Failure::new(ErrorKind::ReplaceRefused, why))?;
        let _ = self.take_report("replace", &report);
        Ok(())
    }

    /// Notes to the journal; each cleanup to the journal and onto the phase's
    /// succeeded event. Returns what it logged, notes then cleanups, each line
    /// prefixed with `context`.
    fn take_report(
        &mut self,
        context: &str,
        report: &kubeboot_kube::replace::Report,
    ) -> Vec<String> {
        let mut logged = Vec::new();
        for note in &report.notes {
            let line = format!("{context}: {note}");
            tracing::info!("{line}");
            logged.push(line);
        }
        for c in &report.cleanups {
            let line = format!("{context}: {}", c.line());
            tracing::warn!("{line}");
            logged.push(line);
            self.notes.push(c.line());
        }
        logged
    }

    /// The document's replacement options, with this node's address (the one it
    /// advertises when `[node] advertise_address` is not set, see
    /// [`Self::default_advertise_address`]).
    fn replace_options(&self, doc: &ValidDocument) -> kubeboot_kube::replace::Options {
        let mut opts = kubeboot_kube::replace::Options::for_document(doc, false);
        if opts.own_address.is_none() {
            opts.own_address = self
                .host
                .cluster_ipv4(&doc.endpoint.to_string())
                .map(|a| a.address().to_string());
        }
        opts
    }

    /// Before a control-plane join is tried again: an earlier attempt may have added
    /// this node's etcd member and failed before its etcd started, and etcd then
    /// refuses every member add ("not enough started members"). The cluster is
    /// verified again (as in discover) and that member removed
    /// (`replace::forget_unfinished_join`). What it found or could not do is returned,
    /// for the next attempt's started event (and logged); the retry says the rest.
    fn forget_unfinished_join(&mut self, doc: &ValidDocument) -> Vec<String> {
        let d = &doc.doc.discovery;
        let (true, Some(token), None) =
            (kubeboot_kube::replace::applies_to(doc), &d.token, &d.file)
        else {
            return Vec::new();
        };
        let verified = discovery::verify_token(
            &doc.endpoint,
            token.expose_secret(),
            &d.ca_cert_hashes,
            Duration::from_secs(120),
        );
        let v = match verified {
            Ok(v) => v,
            Err(e) => {
                let line = format!(
                    "before retrying the join: could not verify the cluster: {}",
                    e.message
                );
                tracing::warn!("{line}");
                return vec![line];
            }
        };
        let Some((access, name)) =
            kubeboot_kube::replace::for_join(doc, &v, || self.host.hostname())
        else {
            return Vec::new();
        };
        let opts = self.replace_options(doc);
        match kubeboot_kube::client::block_on(kubeboot_kube::replace::forget_unfinished_join(
            &access, &name, &opts,
        )) {
            Ok(report) => self.take_report("before retrying the join", &report),
            Err(why) => {
                let line = format!("before retrying the join: {why}");
                tracing::warn!("{line}");
                vec![line]
            }
        }
    }

    pub(super) fn kubeadm(
        &mut self,
        state: &mut AgentState,
        doc: &ValidDocument,
        interrupted: Option<PhaseState>,
    ) -> Result<(), Failure> {
        let kubeadm = self.host.find_program("kubeadm").ok_or_else(|| {
            Failure::new(ErrorKind::KubeadmNotRunnable, "kubeadm not found on PATH")
        })?;
        if interrupted.is_some() && self.resume_kubeadm(doc, &kubeadm)? {
            return Ok(());
        }
        let max = doc.doc.kubeadm.attempts;
        let backoff = Backoff::new(doc.doc.kubeadm.retry_backoff_seconds, 300.0);
        loop {
            let attempt = state.attempt(Phase::Kubeadm);
            if attempt > max {
                return Err(Failure::new(
                    ErrorKind::KubeadmFailed,
                    format!("kubeadm did not complete in {max} attempts (the agent was restarted during an attempt)"),
                ));
            }
            let err = match self.kubeadm_once(state, doc, &kubeadm) {
                Ok(()) => return Ok(()),
                Err(f) => f,
            };
            if attempt >= max {
                return Err(Failure {
                    message: format!("{} (attempt {attempt} of {max}; giving up)", err.message),
                    ..err
                });
            }
            state.finish(Phase::Kubeadm, PhaseState::Retrying, Some(err.report()));
            state.log_tail = err.log_tail.clone();
            self.save(state)?;
            self.emit(
                Draft::new(Phase::Kubeadm, PhaseState::Retrying)
                    .error(err.report())
                    .attempt(attempt)
                    .log_tail(err.log_tail.clone()),
            );
            self.reset(&kubeadm);
            let before = self.forget_unfinished_join(doc);
            let delay = backoff.delay(attempt);
            tracing::info!("retrying kubeadm in {:.1}s", delay.as_secs_f64());
            std::thread::sleep(delay);
            let next = state.start(Phase::Kubeadm);
            self.save(state)?;
            self.emit(
                Draft::started(Phase::Kubeadm)
                    .attempt(next)
                    .log_tail(before),
            );
        }
    }

    fn kubeadm_once(
        &mut self,
        state: &mut AgentState,
        doc: &ValidDocument,
        kubeadm: &std::path::Path,
    ) -> Result<(), Failure> {
        let io = |e: kubeboot_core::host::HostError| Failure::new(ErrorKind::HostIo, e.to_string());
        let paths = ConfigPaths::default();
        self.write_pki(doc, &paths).map_err(io)?;
        let api = self.api_version()?;
        let image =
            kubeadm::NodeImage::read(&self.host).map_err(|m| Failure::new(ErrorKind::HostIo, m))?;
        let defaulted;
        let mut advertised = None;
        let doc = match self.default_advertise_address(doc)? {
            Some((d, note)) => {
                defaulted = d;
                advertised = Some(note);
                &defaulted
            }
            None => doc,
        };
        let rendered = kubeadm::render(doc, api, &paths, &image)
            .map_err(|m| Failure::new(ErrorKind::InvalidDocument, m))?;
        for (file, patch) in kubeadm::startup_patches(doc) {
            let path = std::path::Path::new(kubeadm::STARTUP_PATCHES_DIR).join(file);
            self.host
                .write_atomic(&path, patch.as_bytes(), 0o644)
                .map_err(io)?;
        }
        let config_path = self.store.kubeadm_config_path();
        self.host
            .write_atomic(&config_path, rendered.expose().as_bytes(), 0o600)
            .map_err(io)?;
        let upload = doc.doc.discovery.certificate_key.is_some();
        let argv = kubeadm::command_line(
            doc.role,
            &self.host.path(&config_path).to_string_lossy(),
            upload,
        );
        tracing::info!(command = %format!("kubeadm {}", argv.join(" ")), "running kubeadm ({})", api.group_version());
        state.kubeadm_runs += 1;
        self.save(state)?;
        let mut cmd = self.host.command(kubeadm);
        cmd.args(&argv);
        let redactor = self.redactor.clone();
        let attempt = state.attempt(Phase::Kubeadm);
        let outcome = crate::kubeadm::run_with_heartbeat(
            cmd,
            LOG_TAIL_MAX_LINES,
            |line| tracing::info!(target: "kubeadm", "{}", redactor.redact(line)),
            self.opts.heartbeat,
            |elapsed| {
                self.emit(
                    Draft::new(Phase::Kubeadm, PhaseState::Running)
                        .attempt(attempt)
                        .took(elapsed.as_millis() as u64),
                )
            },
        )
        .map_err(|e| {
            Failure::new(
                ErrorKind::KubeadmNotRunnable,
                format!("could not run {}: {e}", kubeadm.display()),
            )
        })?;
        let mut tail: Vec<String> = outcome
            .tail
            .iter()
            .map(|l| self.redactor.redact(l))
            .collect();
        if outcome.status.success() {
            state.log_tail = tail;
            if let Some(note) = advertised {
                state.log_tail.push(note.clone());
                self.notes.push(note);
            }
            if doc.role == Role::Init && !image.coredns {
                let note = format!(
                    "kubeboot: skipped kubeadm phase {}: this image carries no CoreDNS image; \
                     the cluster has no DNS until one is installed",
                    kubeadm::COREDNS_PHASE
                );
                tracing::warn!("{note}");
                state.log_tail.push(note.clone());
                self.notes.push(note);
            }
            return Ok(());
        }
        // What kubeadm tells the operator to look at, so the report carries it.
        let mut found = Vec::new();
        if let Some(crictl) = self.host.find_program("crictl") {
            found.extend(crate::kubeadm::diagnose::containers(
                &crictl,
                doc.cri_socket(),
            ));
        }
        if let Some(journalctl) = self.host.find_program("journalctl") {
            found.extend(crate::kubeadm::diagnose::kubelet_errors(&journalctl, 6));
        }
        if !found.is_empty() {
            for line in &found {
                tracing::info!(target: "kubeadm", "{}", self.redactor.redact(line));
            }
            let keep = LOG_TAIL_MAX_LINES.saturating_sub(found.len());
            let drop = tail.len().saturating_sub(keep);
            tail.drain(..drop);
            tail.extend(found.iter().map(|l| self.redactor.redact(l)));
        }
        let last = outcome
            .last_error_line
            .as_deref()
            .or_else(|| {
                outcome
                    .tail
                    .iter()
                    .rev()
                    .map(String::as_str)
                    .find(|l| !l.trim().is_empty())
            })
            .map(|l| self.redactor.redact(l))
            .unwrap_or_default();
        Err(Failure {
            kind: ErrorKind::KubeadmFailed,
            message: format!("kubeadm {} exited with {}: {last}", argv[0], outcome.status),
            log_tail: tail,
        })
    }

    /// After a crash or power loss during kubeadm: true when kubeadm had finished
    /// (see [`completion`]), else the node is reset for the next attempt. A
    /// control plane whose cluster does not answer is not reset: it may hold
    /// the cluster's only etcd data. A worker holds nothing; it is reset.
    fn resume_kubeadm(
        &mut self,
        doc: &ValidDocument,
        kubeadm: &std::path::Path,
    ) -> Result<bool, Failure> {
        let name = self.node_name(doc);
        let expected = completion::Expected {
            role: doc.role,
            name: &name,
            stacked_etcd: doc.doc.cluster.as_ref().is_none_or(|c| c.etcd.is_none()),
        };
        let limit = Duration::from_secs(doc.doc.ready.timeout_seconds);
        let why = match completion::check(&self.host, &expected, limit) {
            Completion::Finished => {
                tracing::info!(
                    "kubeadm had finished before the agent was interrupted; not running it again"
                );
                return Ok(true);
            }
            Completion::Unfinished(why) => why,
            Completion::Unknown(why) if doc.role == Role::Worker => why,
            Completion::Unknown(why) => {
                return Err(Failure::new(
                    ErrorKind::KubeadmFailed,
                    format!(
                        "kubeadm {} was interrupted and whether it finished cannot be told: {why}. \
                         Not resetting a control plane that may hold cluster data; once the \
                         cluster answers, restart kubeboot-agent, or reset the node by hand \
                         (kubeadm reset -f) if it never joined",
                        kubeadm::command_line(doc.role, "", false)[0]
                    ),
                ));
            }
        };
        let note = format!(
            "kubeboot: an interrupted kubeadm run had not finished ({why}); \
             the node was reset and kubeadm runs again"
        );
        tracing::warn!("{note}");
        self.notes.push(note);
        self.reset(kubeadm);
        Ok(false)
    }

    /// `kubeadm reset -f`, then what it leaves that would make the next run's
    /// preflight fail or a later resume think it finished (when reset could not
    /// run or stopped early).
    fn reset(&self, kubeadm: &std::path::Path) {
        let mut cmd = self.host.command(kubeadm);
        cmd.args(["reset", "-f"]);
        match crate::kubeadm::run_streaming(
            cmd,
            10,
            |line| tracing::info!(target: "kubeadm", "{line}"),
        ) {
            Ok(o) if o.status.success() => {}
            Ok(o) => tracing::warn!("kubeadm reset -f exited with {}", o.status),
            Err(e) => tracing::warn!("could not run kubeadm reset -f: {e}"),
        }
        for file in [
            KUBELET_CONF,
            "/etc/kubernetes/bootstrap-kubelet.conf",
            completion::KUBELET_CLIENT_CERT,
        ] {
            match self.host.remove_file_if_exists(file) {
                Ok(true) => tracing::info!("removed {file}, left after kubeadm reset"),
                Ok(false) => {}
                Err(e) => tracing::warn!("could not remove {file}: {e}"),
            }
        }
    }

    /// kubeadm's node name: `[node] name`, else the hostname, lowercased.
    fn node_name(&self, doc: &ValidDocument) -> String {
        doc.doc
            .node
            .name
            .clone()
            .unwrap_or_else(|| self.host.hostname().to_ascii_lowercase())
    }

    /// A control plane without `[node] advertise_address`, in a cluster whose
    /// service range is IPv4, advertises the IPv4 address of its default route, as
    /// kubeadm does on an IPv4-only host, or, with no IPv4 default route, the
    /// address it reaches the cluster endpoint from. Left to itself on a host that
    /// also has IPv6, kubeadm may pick the IPv6 default route's address and
    /// kube-apiserver then refuses to start: "service IP family must match public
    /// address family" (seen on a diskless control plane behind qemu's restricted
    /// user network: its DHCP gives no IPv4 gateway, its router advertisements an
    /// IPv6 one).
    ///
    /// Returns the document with the address, and a note saying so for the
    /// kubeadm succeeded event.
    fn default_advertise_address(
        &self,
        doc: &ValidDocument,
    ) -> Result<Option<(ValidDocument, String)>, Failure> {
        if doc.role == Role::Worker
            || doc.doc.node.advertise_address.is_some()
            || !kubeadm::service_range_is_ipv4(doc)
        {
            return Ok(None);
        }
        let (address, how) = match self.host.cluster_ipv4(&doc.endpoint.to_string()) {
            Some(ClusterIpv4::DefaultRoute(a)) => (a, "the IPv4 default route's".to_string()),
            Some(ClusterIpv4::TowardEndpoint(a)) => (
                a,
                format!("no IPv4 default route: the one toward {}", doc.endpoint),
            ),
            None => return Ok(None),
        };
        let note =
            format!("kubeboot: advertising {address} ([node] advertise_address not set; {how})");
        tracing::info!("{note}");
        let mut owned = self.load_saved_document()?;
        owned.doc.node.advertise_address = Some(address.into());
        Ok(Some((owned, note)))
    }

    /// Before `kubeadm init`: refuse if a cluster already answers at the endpoint
    /// (discovery::fence), whoever said this machine should init.
    fn fence_before_init(&mut self, doc: &ValidDocument) -> Result<(), Failure> {
        let pem_der = |pem: &[u8]| {
            kubeboot_core::tls::first_pem_certificate(pem)
                .ok()
                .map(|c| c.to_vec())
        };
        let ca = doc
            .doc
            .pki
            .as_ref()
            .and_then(|p| p.ca_cert.as_deref())
            .and_then(|pem| pem_der(pem.as_bytes()));
        let own_path = format!("{}/apiserver.crt", ConfigPaths::default().certificates_dir);
        let own = self
            .host
            .read_to_string(&own_path)
            .ok()
            .and_then(|pem| pem_der(pem.as_bytes()));
        let timeout = Duration::from_secs(doc.doc.discovery_timeout_seconds().clamp(1, 10));
        let note =
            discovery::fence::before_init(&doc.endpoint, ca.as_deref(), own.as_deref(), timeout)
                .map_err(|e| Failure::new(e.kind, e.message))?;
        tracing::info!("before kubeadm init: {note}");
        Ok(())
    }

    /// Pre-generated CA material (init) and inline external-etcd credentials,
    /// written before every kubeadm attempt (kubeadm reset removes them).
    fn write_pki(
        &self,
        doc: &ValidDocument,
        paths: &ConfigPaths,
    ) -> kubeboot_core::host::HostResult<()> {
        let dir = &paths.certificates_dir;
        if let (Role::Init, Some(pki)) = (doc.role, &doc.doc.pki) {
            for (spec, pair) in PKI_PAIRS.iter().zip(pki.values()) {
                let (cert_name, key_name) = (spec.cert_file, spec.key_file);
                if let (Some(cert), Some(key)) = pair {
                    self.host
                        .write_atomic(format!("{dir}/{cert_name}"), cert.as_bytes(), 0o644)?;
                    self.host.write_atomic(
                        format!("{dir}/{key_name}"),
                        key.expose_secret().as_bytes(),
                        0o600,
                    )?;
                }
            }
        }
        if let Some(etcd) = &doc.cluster.etcd {
            let edir = &paths.external_etcd_dir;
            if let Some(ca) = &etcd.ca_cert {
                self.host
                    .write_atomic(format!("{edir}/ca.crt"), ca.as_bytes(), 0o644)?;
            }
            if let Some(cert) = &etcd.cert {
                self.host
                    .write_atomic(format!("{edir}/client.crt"), cert.as_bytes(), 0o644)?;
            }
            if let Some(key) = &etcd.key {
                self.host.write_atomic(
                    format!("{edir}/client.key"),
                    key.expose_secret().as_bytes(),
                    0o600,
                )?;
            }
        }
        Ok(())
    }

    /// The node's kubelet has its credentials (and init has the admin kubeconfig),
    /// then, with those credentials, this Node reports Ready within
    /// `[ready] timeout_seconds`. On the way, once the Node has a podCIDR, the
    /// pod network's bridge configuration is written (unless the node has one).
    pub(super) fn ready(&mut self, doc: &ValidDocument) -> Result<(), Failure> {
        let mut missing: Vec<&str> = Vec::new();
        if !self.host.exists(KUBELET_CONF) {
            missing.push(KUBELET_CONF);
        }
        if doc.role == Role::Init && !self.host.exists(ADMIN_CONF) {
            missing.push(ADMIN_CONF);
        }
        if !missing.is_empty() {
            return Err(Failure::new(
                ErrorKind::NodeNotReady,
                format!(
                    "kubeadm finished but {} is missing: the kubelet cannot register this node",
                    missing.join(" and ")
                ),
            ));
        }
        let name = self.node_name(doc);
        let limit = Duration::from_secs(doc.doc.ready.timeout_seconds);
        let kubeconfig = self.host.path(KUBELET_CONF);
        let host = self.host.clone();
        let started = Instant::now();
        let outcome = kubeboot_kube::client::block_on(crate::cluster::wait_ready(
            &host,
            &kubeconfig,
            &name,
            limit,
        ));
        match outcome {
            Ok(()) => {
                tracing::info!(
                    "node {name} is Ready ({:.1} s after kubeadm finished)",
                    started.elapsed().as_secs_f64()
                );
                self.keep_serve_for_pod_routes(doc, &name);
                Ok(())
            }
            Err(why) => Err(Failure::new(
                ErrorKind::NodeNotReady,
                format!(
                    "node {name} was not Ready within {} s ([ready] timeout_seconds): {why}",
                    limit.as_secs()
                ),
            )),
        }
    }

    /// A node whose document came from `kubeboot serve` reads the pod routes
    /// there (its own credentials may not list Nodes from Kubernetes 1.32): keep
    /// serve's address and the node-bound report credential for `kubeboot pod-routes`.
    fn keep_serve_for_pod_routes(&self, doc: &ValidDocument, name: &str) {
        use crate::cluster::routes_from_serve::ServeRoutes;
        let Some(report) = &doc.doc.report else {
            return;
        };
        let Some(source) = ServeRoutes::from_report(report, name, &self.identity.machine_id) else {
            return;
        };
        match source.save(&self.host, &self.opts.state_dir) {
            Ok(()) => tracing::info!(
                "pod routes come from kubeboot serve ({}); kept in {}",
                source.url,
                ServeRoutes::path(&self.opts.state_dir)
            ),
            Err(e) => tracing::warn!("could not keep serve's address for the pod routes: {e}"),
        }
    }

    /// Remove every copy of the bootstrap secrets the node no longer needs
    /// (kubeboot's own and cloud-init's), then look for any left and say where.
    pub(super) fn done(&mut self) -> Result<(), Failure> {
        let mut files = vec![
            self.store.kubeadm_config_path(),
            self.store.document_path(),
            kubeboot_core::document::user_data::NODE_FILE.to_string(),
        ];
        files.extend(crate::source::cloud_init_cached_copies(&self.host));
        let target = format!("{}/outbox/target.json", self.opts.state_dir);
        // The node-bound report credential kept for the pod routes: no bootstrap secret.
        let routes = crate::cluster::routes_from_serve::ServeRoutes::path(&self.opts.state_dir);
        let secrets = self.redactor.secrets();
        let found = super::forget::forget(
            &self.host,
            &files,
            &self.opts.state_dir,
            &[target, routes],
            secrets,
        )
        .map_err(|e| Failure::new(ErrorKind::HostIo, e.to_string()))?;
        for path in &found.removed {
            tracing::info!("removed {path} (it held bootstrap secrets)");
        }
        for path in &found.left {
            tracing::warn!("a bootstrap secret is still in {path}; kubeboot did not write it");
        }
        self.notes.extend(found.notes(!secrets.is_empty()));
        Ok(())
    }

    /// A later boot of a done node: cloud-init has written its copies of the
    /// user-data again from its datasource; remove them again.
    pub(super) fn forget_cloud_init_copies(&self) {
        let copies = crate::source::cloud_init_cached_copies(&self.host);
        match super::forget::remove(&self.host, &copies) {
            Ok(removed) if !removed.is_empty() => tracing::info!(
                "removed cloud-init's copies of the user-data again ({}): they hold bootstrap secrets",
                removed.join(", ")
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!("could not remove cloud-init's copies of the user-data: {e}"),
        }
    }
}

fn wait_until(limit: Duration, every: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    loop {
        if ok() {
            return true;
        }
        if started.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(every.min(limit.saturating_sub(started.elapsed())));
    }
}
