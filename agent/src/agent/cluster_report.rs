//! Telling the cluster (cluster/report.rs) from the agent: once kubeadm has
//! given this node credentials, after every phase result from `kubeadm` on.
//! Never blocks or fails the boot: a few bounded tries, then a warning and a
//! note that rides on the status event to the HTTPS receiver.

use std::time::Duration;

use kubeboot_core::status::{Phase, PhaseState};
use kubeboot_kube::boot::{self as report, BootStory, PhaseResult};

use super::completion::KUBELET_CONF;
use super::state::AgentState;
use super::Agent;

const TRIES: u32 = 3;

impl Agent {
    /// Publish the boot story; `Some(note)` when the report was dropped.
    pub(super) fn tell_cluster(
        &mut self,
        state: &mut AgentState,
        phase: Phase,
        now: PhaseState,
    ) -> Option<String> {
        if phase < Phase::Kubeadm || !self.host.exists(KUBELET_CONF) {
            return None;
        }
        let story = BootStory {
            node: self.identity.node.clone(),
            boot_id: self.identity.boot_id.clone(),
            machine_id: self.identity.machine_id.clone(),
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            phase,
            state: now,
            results: results(state),
        };
        let kubeconfig = self.host.path(KUBELET_CONF);
        let mut why = String::new();
        for attempt in 1..=TRIES {
            let outcome = kubeboot_kube::client::block_on(async {
                let client = kubeboot_kube::client::client(&kubeconfig)
                    .await
                    .map_err(|e| (report::Published::default(), e))?;
                report::publish(&client, &story, &state.cluster_events).await
            });
            let (published, error) = match outcome {
                Ok(p) => (p, None),
                Err((p, e)) => (p, Some(e)),
            };
            let sent = !published.events_sent.is_empty();
            state.cluster_events.extend(published.events_sent);
            if sent {
                let _ = self.save(state);
            }
            match error {
                None => {
                    if !published.annotated {
                        tracing::debug!("Node not registered yet: its annotations wait");
                    }
                    return None;
                }
                Some(e) => why = self.redactor.redact(&e),
            }
            if attempt < TRIES {
                std::thread::sleep(Duration::from_secs(u64::from(attempt)));
            }
        }
        let note = format!(
            "kubeboot: the report into the cluster (Node annotations, Events) was dropped after {TRIES} tries: {why}"
        );
        tracing::warn!("{note}");
        Some(note)
    }
}

/// Every finished phase in the local record, in phase order.
fn results(state: &AgentState) -> Vec<PhaseResult> {
    Phase::ALL
        .iter()
        .filter_map(|p| {
            let r = state.phases.get(p)?;
            if !matches!(r.state, PhaseState::Succeeded | PhaseState::Failed) {
                return None;
            }
            Some(PhaseResult {
                phase: *p,
                state: r.state,
                attempt: r.attempt,
                at: r.finished_at.unwrap_or(r.started_at),
                duration_ms: r.duration_ms,
                error: r
                    .error
                    .as_ref()
                    .map(|e| (e.kind.as_str().to_string(), e.message.clone())),
            })
        })
        .collect()
}
