//! The agent's run (docs/design.md §3): a persisted state machine over the phases
//! `source → validate → preflight → prepare → discover → kubeadm → ready → done`.
//!
//! Each phase is recorded as started before its side effects and as succeeded
//! (or failed) after them, atomically, so a crash or reboot resumes at the
//! first phase that has not succeeded, and a finished node never runs kubeadm
//! again. Every change of phase is one status event sent to every sink.

mod cluster_report;
mod completion;
mod crash;
mod draft;
mod forget;
mod images;
mod phases;
pub mod plan;
pub mod state;

use std::path::PathBuf;

use chrono::Utc;
use sha2::{Digest, Sha256};

use crate::kubeadm;
use crate::source::{self, FetchOptions};
use draft::Draft;
use kubeboot_core::document::{self, InvalidDocument, Role, ValidDocument};
use kubeboot_core::host::{Facts, Host};
use kubeboot_core::kubeadm::ApiVersion;
use kubeboot_core::redact::Redactor;
use kubeboot_core::status::{
    ErrorKind, ErrorReport, Phase, PhaseState, StatusEvent, StatusSink, LOG_TAIL_MAX_LINES,
};
use state::{AgentState, Outcome, StateStore};

pub use phases::minimums;
pub use state::DEFAULT_STATE_DIR;

#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// `--document`: use this file instead of searching the node's sources.
    pub document: Option<PathBuf>,
    /// State dir as a node path (under the host root).
    pub state_dir: String,
    /// Overrides `kubeadm version -o short` when choosing the config API version.
    pub kubeadm_version: Option<String>,
    pub fetch: FetchOptions,
    /// How often a `running` event is sent while kubeadm runs (the init
    /// election's lease is kept by them).
    pub heartbeat: std::time::Duration,
}

impl Default for AgentOptions {
    fn default() -> Self {
        AgentOptions {
            document: None,
            state_dir: DEFAULT_STATE_DIR.into(),
            kubeadm_version: None,
            fetch: FetchOptions::default(),
            heartbeat: kubeboot_core::status::HEARTBEAT,
        }
    }
}

/// A phase failed. The message is free of secrets.
#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: ErrorKind,
    pub message: String,
    pub log_tail: Vec<String>,
}

impl Failure {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
            log_tail: Vec::new(),
        }
    }
    fn report(&self) -> ErrorReport {
        ErrorReport {
            kind: self.kind,
            message: self.message.clone(),
        }
    }
}

/// How a run ended.
#[derive(Debug)]
pub enum Finish {
    /// This run took the node to `done`.
    Done,
    /// The node was already done: nothing ran.
    AlreadyDone,
    /// Terminal failure (now, or recorded by an earlier run).
    Failed { phase: Phase, error: ErrorReport },
    /// The document is unusable: nothing on the host was changed.
    Invalid(InvalidDocument),
}

impl Finish {
    pub fn exit_code(&self) -> u8 {
        match self {
            Finish::Done | Finish::AlreadyDone => 0,
            Finish::Failed { .. } => 1,
            Finish::Invalid(_) => 2,
        }
    }
}

pub struct Agent {
    host: Host,
    opts: AgentOptions,
    store: StateStore,
    sinks: Vec<Box<dyn StatusSink>>,
    identity: Identity,
    redactor: Redactor,
    facts: Option<Facts>,
    /// What a phase wants the operator to know about its success (sent as the
    /// succeeded event's log tail), e.g. that init skipped CoreDNS.
    notes: Vec<String>,
    /// Publishes the boot story into the cluster, off the critical path.
    cluster: cluster_report::ClusterReporter,
}

struct Identity {
    node: String,
    role: Option<Role>,
    machine_id: String,
    boot_id: String,
}

const SEQ_FILE: &str = "/run/kubeboot/seq";
/// The longest wait for the network, the clock and containerd (`wait_for_boot`).
const BOOT_WAIT: std::time::Duration = std::time::Duration::from_secs(900);

impl Agent {
    pub fn new(host: Host, opts: AgentOptions, sinks: Vec<Box<dyn StatusSink>>) -> Agent {
        let store = StateStore::new(host.clone(), opts.state_dir.clone());
        let identity = Identity {
            node: host.hostname(),
            role: None,
            machine_id: host.machine_id(),
            boot_id: host.boot_id(),
        };
        Agent {
            host,
            opts,
            store,
            sinks,
            identity,
            redactor: Redactor::default(),
            facts: None,
            notes: Vec::new(),
            cluster: Default::default(),
        }
    }

    pub fn run(&mut self) -> Finish {
        let finish = self.run_phases();
        for sink in &mut self.sinks {
            sink.close();
        }
        finish
    }

    fn run_phases(&mut self) -> Finish {
        let mut state = match self.store.load() {
            Ok(Some(state)) => state,
            Ok(None) => match self.start_fresh() {
                Ok(state) => state,
                Err(finish) => return finish,
            },
            Err(message) => {
                let error = ErrorReport {
                    kind: ErrorKind::StateCorrupt,
                    message,
                };
                self.emit(Draft::failed(Phase::Source, error.clone()));
                return Finish::Failed {
                    phase: Phase::Source,
                    error,
                };
            }
        };
        self.identity.node = state.node.clone();
        self.identity.role = Some(state.role);
        match state.outcome {
            Outcome::Done => {
                tracing::info!(node = %state.node, "node already bootstrapped: nothing to do");
                self.forget_cloud_init_copies();
                return Finish::AlreadyDone;
            }
            Outcome::Failed => {
                let phase = state.failed_phase.unwrap_or(Phase::Source);
                let error = state.last_error.clone().unwrap_or(ErrorReport {
                    kind: ErrorKind::StateCorrupt,
                    message: "failed earlier without a recorded reason".into(),
                });
                tracing::error!(
                    node = %state.node,
                    "this node failed earlier in {phase} and kubeboot does not retry a failed node: replace it \
                     (or remove {} to try again)",
                    self.opts.state_dir
                );
                return Finish::Failed { phase, error };
            }
            Outcome::Running => {}
        }
        self.resume(&mut state)
    }

    /// First run on this node: find and validate the document, then persist it
    /// and the first records. Nothing is written to the host before validation.
    fn start_fresh(&mut self) -> Result<AgentState, Finish> {
        // The source phase starts before the search: a fetch that waits for serve
        // (Retry-After, the network) is the source phase's time.
        let source_started = Utc::now();
        let clock = std::time::Instant::now();
        self.emit(Draft::started(Phase::Source));
        let loaded = match source::resolve(&self.host, self.opts.document.clone(), &self.opts.fetch)
        {
            Ok(l) => l,
            Err(e) => {
                let phase = if e.invalid.is_some() {
                    Phase::Validate
                } else {
                    Phase::Source
                };
                let error = ErrorReport {
                    kind: e.kind,
                    message: document::scrub(&e.message),
                };
                self.emit(Draft::failed(phase, error.clone()));
                return Err(match e.invalid {
                    Some(invalid) => Finish::Invalid(invalid),
                    None => Finish::Failed { phase, error },
                });
            }
        };
        let validate_started = Utc::now();
        self.emit(
            Draft::succeeded(Phase::Source)
                .took(clock.elapsed().as_millis() as u64)
                .log_tail(vec![format!("document from {}", loaded.origin)]),
        );
        self.emit(Draft::started(Phase::Validate));
        let doc = match kubeboot_core::kubeadm::validate_fully(&loaded.text) {
            Ok(doc) => doc,
            Err(invalid) => {
                let error = ErrorReport {
                    kind: ErrorKind::InvalidDocument,
                    message: invalid.to_string(),
                };
                self.emit(Draft::failed(Phase::Validate, error));
                return Err(Finish::Invalid(invalid));
            }
        };
        if doc.node_name().is_none() {
            if let Some(name) = &loaded.hostname {
                self.take_seed_hostname(name);
            }
        }
        self.adopt(&doc);
        let sha = hex::encode(Sha256::digest(loaded.text.as_bytes()));
        let mut state = AgentState::new(
            self.identity.node.clone(),
            doc.role,
            loaded.origin.clone(),
            sha,
        );
        for (phase, started) in [
            (Phase::Source, source_started),
            (Phase::Validate, validate_started),
        ] {
            state.start(phase);
            state.phases.get_mut(&phase).expect("started").started_at = started;
            state.finish(phase, PhaseState::Succeeded, None);
        }
        let saved = self
            .store
            .save_document(&loaded.text)
            .and_then(|_| self.store.save(&mut state));
        if let Err(e) = saved {
            let error = ErrorReport {
                kind: ErrorKind::HostIo,
                message: e.to_string(),
            };
            self.emit(Draft::failed(Phase::Validate, error.clone()));
            return Err(Finish::Failed {
                phase: Phase::Validate,
                error,
            });
        }
        self.emit(Draft::succeeded(Phase::Validate));
        crash::point(Phase::Validate, "after-record");
        Ok(state)
    }

    /// The document names no node; the seed it came from names the machine
    /// (NoCloud `local-hostname`). The agent reads the seed before cloud-init sets
    /// that name (and without cloud-init nothing else would), so it sets it: kubeadm
    /// and the kubelet register the node under the host name.
    fn take_seed_hostname(&mut self, name: &str) {
        if self.host.hostname() != name {
            match self.host.set_hostname(name) {
                Ok(()) => tracing::info!("host name set to {name} (the seed's local-hostname)"),
                Err(e) => tracing::warn!("could not set the host name to {name}: {e}"),
            }
        }
        self.identity.node = name.to_string();
    }

    fn adopt(&mut self, doc: &ValidDocument) {
        self.redactor = Redactor::for_document(&doc.doc);
        self.identity.role = Some(doc.role);
        if let Some(name) = doc.node_name() {
            self.identity.node = name.to_string();
        }
        for sink in &mut self.sinks {
            sink.adopt(&doc.doc, &self.identity.node);
        }
    }

    fn resume(&mut self, state: &mut AgentState) -> Finish {
        let mut doc: Option<ValidDocument> = None;
        let mut booted = false;
        while let Some(phase) = state.next_phase() {
            if !booted && (Phase::Preflight..Phase::Done).contains(&phase) {
                self.wait_for_boot();
                booted = true;
            }
            if doc.is_none() && phase < Phase::Done {
                match self.load_saved_document() {
                    Ok(d) => {
                        self.adopt(&d);
                        doc = Some(d);
                    }
                    Err(f) => return self.fail_now(state, phase, f),
                }
            }
            if let Err(f) = self.step(state, phase, doc.as_ref()) {
                return Finish::Failed {
                    phase,
                    error: f.report(),
                };
            }
        }
        Finish::Done
    }

    /// The agent starts before the network (its first events come seconds into
    /// the boot); the host checks and every step after them need the network, the
    /// clock and containerd. Waited for once, bounded; what is still missing then
    /// is the host checks' to report.
    fn wait_for_boot(&self) {
        let units = kubeboot_core::host::HOST_STEP_UNITS;
        tracing::info!("waiting for {}", units.join(", "));
        if let Err(e) = self.host.wait_for_units(units, BOOT_WAIT) {
            tracing::warn!("{e}; going on: the host checks report what is missing");
        }
    }

    pub(super) fn load_saved_document(&self) -> Result<ValidDocument, Failure> {
        let text = self.store.read_document().map_err(|e| {
            Failure::new(
                ErrorKind::StateCorrupt,
                format!("the saved node document is gone ({e}); replace the node"),
            )
        })?;
        document::load(&text).map_err(|e| {
            Failure::new(
                ErrorKind::StateCorrupt,
                format!("the saved node document: {e}"),
            )
        })
    }

    fn fail_now(&mut self, state: &mut AgentState, phase: Phase, f: Failure) -> Finish {
        let attempt = state.start(phase);
        state.finish(phase, PhaseState::Failed, Some(f.report()));
        let _ = self.store.save(state);
        self.emit(
            Draft::failed(phase, f.report())
                .attempt(attempt)
                .log_tail(f.log_tail.clone()),
        );
        Finish::Failed {
            phase,
            error: f.report(),
        }
    }

    /// Run one phase: record start, do it, record the result.
    fn step(
        &mut self,
        state: &mut AgentState,
        phase: Phase,
        doc: Option<&ValidDocument>,
    ) -> Result<(), Failure> {
        let interrupted = state.phases.get(&phase).map(|r| r.state);
        let attempt = state.start(phase);
        self.save(state)?;
        self.emit(Draft::started(phase).attempt(attempt));
        crash::point(phase, "after-start");
        let result = match (phase, doc) {
            (Phase::Source | Phase::Validate, _) => Ok(()),
            (Phase::Preflight, Some(d)) => self.preflight(d),
            (Phase::Prepare, Some(d)) => self.prepare(d),
            (Phase::Discover, Some(d)) => self.discover(d),
            (Phase::Kubeadm, Some(d)) => self.kubeadm(state, d, interrupted),
            (Phase::Ready, Some(d)) => self.ready(d),
            (Phase::Done, _) => self.done(),
            (_, None) => Err(Failure::new(
                ErrorKind::StateCorrupt,
                "no node document to run this phase with",
            )),
        };
        crash::point(phase, "after-effect");
        let attempt = state.attempt(phase);
        match result {
            Ok(()) => {
                let ms = state.finish(phase, PhaseState::Succeeded, None);
                self.save(state)?;
                let facts = if phase == Phase::Preflight {
                    self.facts.clone()
                } else {
                    None
                };
                if let Some(dropped) = self.tell_cluster(state, phase, PhaseState::Succeeded) {
                    self.notes.push(dropped);
                }
                let notes = std::mem::take(&mut self.notes);
                self.emit(
                    Draft::succeeded(phase)
                        .attempt(attempt)
                        .took(ms)
                        .log_tail(notes)
                        .facts(facts),
                );
                crash::point(phase, "after-record");
                Ok(())
            }
            Err(f) => {
                let f = Failure {
                    message: self.redactor.redact(&f.message),
                    ..f
                };
                let ms = state.finish(phase, PhaseState::Failed, Some(f.report()));
                state.log_tail = f.log_tail.clone();
                let _ = self.save(state);
                let mut f = f;
                if let Some(dropped) = self.tell_cluster(state, phase, PhaseState::Failed) {
                    f.log_tail.push(dropped);
                }
                self.emit(
                    Draft::failed(phase, f.report())
                        .attempt(attempt)
                        .took(ms)
                        .log_tail(f.log_tail.clone()),
                );
                Err(f)
            }
        }
    }

    fn save(&self, state: &mut AgentState) -> Result<(), Failure> {
        self.store
            .save(state)
            .map_err(|e| Failure::new(ErrorKind::HostIo, format!("recording progress: {e}")))
    }

    /// Stamp a draft with this node's identity, sequence number, time and
    /// redaction, and send it to every channel.
    fn emit(&mut self, draft: Draft) {
        let Draft {
            phase,
            state,
            attempt,
            duration_ms,
            error,
            mut log_tail,
            facts,
        } = draft;
        if log_tail.len() > LOG_TAIL_MAX_LINES {
            log_tail.drain(..log_tail.len() - LOG_TAIL_MAX_LINES);
        }
        let event = StatusEvent {
            node: self.identity.node.clone(),
            machine_id: self.identity.machine_id.clone(),
            boot_id: self.identity.boot_id.clone(),
            seq: self.next_seq(),
            role: self.identity.role,
            phase,
            state,
            attempt,
            at: Utc::now(),
            duration_ms,
            error: error.map(|e| ErrorReport {
                message: self.redactor.redact(&e.message),
                ..e
            }),
            log_tail: log_tail.iter().map(|l| self.redactor.redact(l)).collect(),
            facts,
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        for sink in &mut self.sinks {
            sink.emit(&event);
        }
    }

    /// Per-boot sequence number, kept in /run so it restarts with each boot.
    fn next_seq(&self) -> u64 {
        let seq = self
            .host
            .read_to_string(SEQ_FILE)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        if let Err(e) = self
            .host
            .write_atomic(SEQ_FILE, seq.to_string().as_bytes(), 0o644)
        {
            tracing::warn!("could not persist the status sequence number: {e}");
        }
        seq
    }

    fn kubeadm_version(&self) -> Option<String> {
        kubeadm::version_to_use(&self.host, self.opts.kubeadm_version.as_deref())
    }

    fn api_version(&self) -> Result<ApiVersion, Failure> {
        ApiVersion::for_version(self.kubeadm_version().as_deref())
            .map_err(|m| Failure::new(ErrorKind::VersionSkew, m))
    }
}
