//! The agent's persisted state under the state dir (default /var/lib/kubeboot):
//! `state.json` (phase records, no secrets), `node.toml` (the resolved document,
//! 0600, deleted when done) and `kubeadm.yaml` (0600, deleted when done).
//! Every write is atomic (temp, fsync, rename, fsync dir).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use kubeboot_core::document::Role;
use kubeboot_core::host::{Host, HostResult};
use kubeboot_core::status::{ErrorReport, Phase, PhaseState, StatusEvent};

pub const DEFAULT_STATE_DIR: &str = "/var/lib/kubeboot";
const STATE_FORMAT: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Running,
    Done,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseRecord {
    pub state: PhaseState,
    pub attempt: u32,
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentState {
    pub format: u32,
    pub node: String,
    pub role: Role,
    pub document_origin: String,
    pub document_sha256: String,
    pub outcome: Outcome,
    /// How many times `kubeadm init/join` was started on this node, ever.
    pub kubeadm_runs: u32,
    pub phases: BTreeMap<Phase, PhaseRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_phase: Option<Phase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<ErrorReport>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log_tail: Vec<String>,
    /// Phase results already told to the cluster as Kubernetes Events
    /// (`phase:state:attempt`), so each is sent once, across reboots too.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub cluster_events: BTreeSet<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl AgentState {
    pub fn new(node: String, role: Role, origin: String, sha256: String) -> AgentState {
        let now = Utc::now();
        AgentState {
            format: STATE_FORMAT,
            node,
            role,
            document_origin: origin,
            document_sha256: sha256,
            outcome: Outcome::Running,
            kubeadm_runs: 0,
            phases: BTreeMap::new(),
            failed_phase: None,
            last_error: None,
            log_tail: Vec::new(),
            cluster_events: BTreeSet::new(),
            created_at: now,
            updated_at: now,
        }
    }

    /// The first phase that has not succeeded.
    pub fn next_phase(&self) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| {
            self.phases
                .get(p)
                .is_none_or(|r| r.state != PhaseState::Succeeded)
        })
    }

    pub fn attempt(&self, phase: Phase) -> u32 {
        self.phases.get(&phase).map_or(0, |r| r.attempt)
    }

    pub fn start(&mut self, phase: Phase) -> u32 {
        let attempt = self.attempt(phase) + 1;
        self.phases.insert(
            phase,
            PhaseRecord {
                state: PhaseState::Started,
                attempt,
                started_at: Utc::now(),
                finished_at: None,
                duration_ms: None,
                error: None,
            },
        );
        attempt
    }

    /// Mark a phase finished with `state`; returns its duration in ms.
    pub fn finish(&mut self, phase: Phase, state: PhaseState, error: Option<ErrorReport>) -> u64 {
        let now = Utc::now();
        let rec = self.phases.get_mut(&phase).expect("phase was started");
        let ms = (now - rec.started_at).num_milliseconds().max(0) as u64;
        rec.state = state;
        rec.finished_at = Some(now);
        rec.duration_ms = Some(ms);
        rec.error = error.clone();
        if state == PhaseState::Failed {
            self.outcome = Outcome::Failed;
            self.failed_phase = Some(phase);
            self.last_error = error;
        } else if state == PhaseState::Retrying {
            self.last_error = error;
        }
        if phase == Phase::Done && state == PhaseState::Succeeded {
            self.outcome = Outcome::Done;
        }
        ms
    }

    /// Total time from the first phase's start to the last recorded finish.
    pub fn total_ms(&self) -> Option<u64> {
        let start = self.phases.values().map(|r| r.started_at).min()?;
        let end = self.phases.values().filter_map(|r| r.finished_at).max()?;
        Some((end - start).num_milliseconds().max(0) as u64)
    }
}

/// Reads and writes the state dir through the host interface.
#[derive(Debug, Clone)]
pub struct StateStore {
    host: Host,
    dir: String,
}

impl StateStore {
    pub fn new(host: Host, dir: impl Into<String>) -> StateStore {
        StateStore {
            host,
            dir: dir.into(),
        }
    }

    pub fn path(&self, file: &str) -> String {
        format!("{}/{file}", self.dir.trim_end_matches('/'))
    }

    pub fn kubeadm_config_path(&self) -> String {
        self.path("kubeadm.yaml")
    }

    pub fn document_path(&self) -> String {
        self.path("node.toml")
    }

    /// `Ok(None)` when the node has never run; an error when the state is unreadable.
    pub fn load(&self) -> Result<Option<AgentState>, String> {
        let p = self.path("state.json");
        if !self.host.exists(&p) {
            return Ok(None);
        }
        let text = self.host.read_to_string(&p).map_err(|e| e.to_string())?;
        let state: AgentState = serde_json::from_str(&text).map_err(|e| {
            format!("{p} is corrupt ({e}); the node cannot tell what it already did: replace the node, or remove {} to start over", self.dir)
        })?;
        if state.format != STATE_FORMAT {
            return Err(format!(
                "{p} has format {} but this agent reads format {STATE_FORMAT}",
                state.format
            ));
        }
        Ok(Some(state))
    }

    pub fn save(&self, state: &mut AgentState) -> HostResult<()> {
        state.updated_at = Utc::now();
        let json = serde_json::to_vec_pretty(state).expect("state serialises");
        self.ensure_dir()?;
        self.host
            .write_atomic(self.path("state.json"), &json, 0o600)
    }

    pub fn save_document(&self, text: &str) -> HostResult<()> {
        self.ensure_dir()?;
        self.host
            .write_atomic(self.document_path(), text.as_bytes(), 0o600)
    }

    pub fn read_document(&self) -> HostResult<String> {
        self.host.read_to_string(self.document_path())
    }

    fn ensure_dir(&self) -> HostResult<()> {
        use std::os::unix::fs::PermissionsExt;
        let p = self.host.path(&self.dir);
        std::fs::create_dir_all(&p)
            .and_then(|_| std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)))
            .map_err(|source| kubeboot_core::host::HostError {
                action: format!("create state dir {}", self.dir),
                source,
            })
    }
}
/// What `kubeboot status` shows.
impl AgentState {
    /// The JSON of `kubeboot status --output json`.
    pub fn to_json(&self, last_event: Option<&StatusEvent>) -> serde_json::Value {
        serde_json::json!({
            "node": self.node,
            "role": self.role,
            "outcome": self.outcome,
            "current_phase": self.next_phase(),
            "failed_phase": self.failed_phase,
            "kubeadm_runs": self.kubeadm_runs,
            "total_ms": self.total_ms(),
            "phases": self.phases,
            "last_error": self.last_error,
            "log_tail": self.log_tail,
            "document_origin": self.document_origin,
            "last_event": last_event,
        })
    }

    /// The text of `kubeboot status`: outcome, one line per phase, the last error and log tail.
    pub fn describe(&self) -> String {
        use std::fmt::Write;
        let outcome = match self.outcome {
            Outcome::Done => "done".to_string(),
            Outcome::Failed => {
                format!("FAILED in {}", self.failed_phase.map_or("?", Phase::as_str))
            }
            Outcome::Running => format!(
                "in progress ({})",
                self.next_phase().map_or("?", Phase::as_str)
            ),
        };
        let mut out = String::new();
        let _ = writeln!(out, "node {} ({}): {outcome}", self.node, self.role);
        let _ = writeln!(out, "document: {}", self.document_origin);
        let _ = writeln!(
            out,
            "{:<10} {:<10} {:>7} {:>10}",
            "PHASE", "STATE", "ATTEMPT", "DURATION"
        );
        for phase in Phase::ALL {
            let _ = match self.phases.get(&phase) {
                Some(r) => writeln!(
                    out,
                    "{:<10} {:<10} {:>7} {:>10}",
                    phase.as_str(),
                    r.state.as_str(),
                    r.attempt,
                    r.duration_ms
                        .map(|ms| format!("{:.1}s", ms as f64 / 1000.0))
                        .unwrap_or_default()
                ),
                None => writeln!(out, "{:<10} {:<10}", phase.as_str(), "-"),
            };
        }
        if let Some(total) = self.total_ms() {
            let _ = writeln!(
                out,
                "total: {:.1}s; kubeadm ran {} time(s)",
                total as f64 / 1000.0,
                self.kubeadm_runs
            );
        }
        if let Some(e) = &self.last_error {
            let _ = writeln!(out, "last error ({}): {}", e.kind.as_str(), e.message);
        }
        if !self.log_tail.is_empty() {
            out.push_str("log tail:\n");
            for l in &self.log_tail {
                let _ = writeln!(out, "  {l}");
            }
        }
        out
    }
}
