//! A status event as the agent's phases describe it (phase, state, attempt, what
//! went wrong), before `Agent::emit` stamps it with the node's identity, the
//! per-boot sequence number and the time, and redacts it.

use kubeboot_core::host::Facts;
use kubeboot_core::status::{ErrorReport, Phase, PhaseState};

#[derive(Debug)]
#[must_use = "a draft does nothing until it is emitted"]
pub(super) struct Draft {
    pub phase: Phase,
    pub state: PhaseState,
    pub attempt: u32,
    pub duration_ms: Option<u64>,
    pub error: Option<ErrorReport>,
    pub log_tail: Vec<String>,
    pub facts: Option<Facts>,
}

impl Draft {
    /// Attempt 1, no duration, no error, no log tail, no facts.
    pub fn new(phase: Phase, state: PhaseState) -> Draft {
        Draft {
            phase,
            state,
            attempt: 1,
            duration_ms: None,
            error: None,
            log_tail: Vec::new(),
            facts: None,
        }
    }

    pub fn started(phase: Phase) -> Draft {
        Draft::new(phase, PhaseState::Started)
    }

    pub fn succeeded(phase: Phase) -> Draft {
        Draft::new(phase, PhaseState::Succeeded)
    }

    pub fn failed(phase: Phase, error: ErrorReport) -> Draft {
        Draft::new(phase, PhaseState::Failed).error(error)
    }

    pub fn error(self, error: ErrorReport) -> Draft {
        Draft {
            error: Some(error),
            ..self
        }
    }

    pub fn attempt(self, attempt: u32) -> Draft {
        Draft { attempt, ..self }
    }

    pub fn took(self, ms: u64) -> Draft {
        Draft {
            duration_ms: Some(ms),
            ..self
        }
    }

    pub fn log_tail(self, log_tail: Vec<String>) -> Draft {
        Draft { log_tail, ..self }
    }

    pub fn facts(self, facts: Option<Facts>) -> Draft {
        Draft { facts, ..self }
    }
}
