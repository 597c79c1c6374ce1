use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::document::Role;
use crate::host::Facts;

/// The most log lines an event carries (the reporter bounds payload size with it).
pub const LOG_TAIL_MAX_LINES: usize = 40;

/// How often the agent reports that a long step (kubeadm) still runs.
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(30);

/// The largest event body the reporter sends and the receiver accepts.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

/// The agent's phases, in order (docs/design.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Source,
    Validate,
    Preflight,
    Prepare,
    Discover,
    Kubeadm,
    Ready,
    Done,
}

impl Phase {
    pub const ALL: [Phase; 8] = [
        Phase::Source,
        Phase::Validate,
        Phase::Preflight,
        Phase::Prepare,
        Phase::Discover,
        Phase::Kubeadm,
        Phase::Ready,
        Phase::Done,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Source => "source",
            Phase::Validate => "validate",
            Phase::Preflight => "preflight",
            Phase::Prepare => "prepare",
            Phase::Discover => "discover",
            Phase::Kubeadm => "kubeadm",
            Phase::Ready => "ready",
            Phase::Done => "done",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseState {
    Started,
    /// Still running: a heartbeat while a long step (kubeadm) runs, every
    /// [`HEARTBEAT`] or so.
    Running,
    Succeeded,
    /// An attempt failed; the agent will try again after a backoff.
    Retrying,
    /// Terminal: the agent gave up. The event says why.
    Failed,
}

impl PhaseState {
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseState::Started => "started",
            PhaseState::Running => "running",
            PhaseState::Succeeded => "succeeded",
            PhaseState::Retrying => "retrying",
            PhaseState::Failed => "failed",
        }
    }
}

/// Machine-readable failure kinds. Stable strings: receivers match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    DocumentNotFound,
    DocumentFetch,
    InvalidDocument,
    InsufficientCpu,
    InsufficientMemory,
    InsufficientDisk,
    MissingBinary,
    VersionSkew,
    ClockUnsynchronized,
    ContainerRuntimeUnavailable,
    /// Importing the image's preloaded container images into containerd failed.
    ImageLoad,
    KernelModule,
    Sysctl,
    Swap,
    DiscoveryEndpointUnreachable,
    DiscoveryTlsMismatch,
    DiscoveryCaMismatch,
    DiscoveryTokenUnknown,
    DiscoverySignatureMismatch,
    DiscoveryBadClusterInfo,
    DiscoveryFileMissing,
    /// Told to run `kubeadm init`, the node found a cluster already answering at the
    /// control-plane endpoint (its CA, or a published cluster-info) and refused.
    ClusterExists,
    /// Cleaning up after the replaced machine was unsafe or failed (no quorum, the
    /// old machine still running, uploaded certificates gone): the join stops.
    ReplaceRefused,
    KubeadmFailed,
    KubeadmNotRunnable,
    NodeNotReady,
    HostIo,
    StateCorrupt,
}

impl ErrorKind {
    pub fn as_str(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorReport {
    pub kind: ErrorKind,
    /// Human message, already free of secrets.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusEvent {
    pub node: String,
    pub machine_id: String,
    pub boot_id: String,
    /// Per boot, strictly increasing: lets a receiver order and deduplicate.
    pub seq: u64,
    pub role: Option<Role>,
    pub phase: Phase,
    pub state: PhaseState,
    pub attempt: u32,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log_tail: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts: Option<Facts>,
    pub agent_version: String,
}

impl StatusEvent {
    /// One line an operator watching a serial console can read.
    pub fn console_line(&self) -> String {
        let mut line = format!(
            "kubeboot: [{}] {} {}",
            self.node,
            self.phase,
            self.state.as_str()
        );
        if self.attempt > 1 {
            line.push_str(&format!(" (attempt {})", self.attempt));
        }
        if let Some(d) = self.duration_ms {
            line.push_str(&format!(" in {:.1}s", d as f64 / 1000.0));
        }
        if let Some(e) = &self.error {
            line.push_str(&format!(": {}: {}", e.kind.as_str(), e.message));
        }
        if self.phase == Phase::Done && self.state == PhaseState::Succeeded {
            line.push_str(" — node bootstrapped");
        }
        line
    }
}
