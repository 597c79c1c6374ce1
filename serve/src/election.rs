//! Who runs `kubeadm init` when identical control planes boot into a cluster that
//! does not exist yet (`--fresh-credentials`): exactly one, chosen here.
//!
//! The rules, each held by design rather than by timing:
//! - **Elect only when nothing answers.** serve holds an election only when the
//!   control-plane endpoint does not answer at the transport level (`documents`
//!   looks first: refused, timed out, closed during the TLS handshake). A cluster
//!   that answers but refuses serve's minting is a 503 with the reason, never an
//!   election.
//! - **Initialised is forever.** Once the winner reports that its kubeadm init
//!   succeeded (a bound report, below), or serve minted join credentials in the
//!   cluster, or saw the endpoint serve TLS under the bundle's CA, that is
//!   recorded (fsynced) and nobody is elected again, whatever fails later. Only
//!   `kubeboot serve election reset --yes`, with serve stopped, undoes it.
//! - **One machine, once.** The first asker, by machine id, is elected; the
//!   choice is fsynced before the answer. The winner may fetch the init document
//!   again (a crash, a reboot) only with the claim secret its agent sent with the
//!   first request (`Kubeboot-Claim`); its machine id alone, which `/v1/nodes`
//!   shows, is not enough.
//! - **The lease counts serve's time, and only the winner's own reports.** The
//!   winner keeps its place while serve receives, within the lease, a status
//!   event posted with the report credential bound to the winner's name and
//!   machine id (`report_binding`): the agent heartbeats every 30 s while kubeadm
//!   runs. The clock is serve's monotonic one, taken when the event arrives; the
//!   event's own `at` plays no part. A winner that reports `failed` loses at once.
//!   A restarted serve gives the winner a full lease from the restart.
//!
//! The agent fences itself as well (kube/src/discovery/fence.rs): told to init,
//! it refuses if a cluster under its CA already answers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::store::Store;
use kubeboot_core::status::{Phase, PhaseState, StatusEvent};

const RECORD: &str = "init-election";
/// Longer than the slowest kubeadm init the bundle renders (`bundle new
/// --slow-host`: a 1500 s control-plane timeout), with room for its pulls.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30 * 60);

/// A node as it names itself in its request headers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub node: String,
    pub machine_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Elected {
    pub node: String,
    pub machine_id: String,
    pub at: DateTime<Utc>,
    /// How many elections there were (1 for the first).
    pub term: u32,
    /// Why this election was held: the cluster does not answer, or why the
    /// previous winner lost its lease.
    #[serde(default)]
    pub why: String,
    /// When serve learnt the cluster was initialised (the winner's report of
    /// kubeadm succeeded, a mint, the endpoint under the CA). From then on the
    /// election is over for good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initialised_at: Option<DateTime<Utc>>,
    /// SHA-256 (hex) of the claim secret the winner sent with its first request:
    /// what a retry must present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
}

#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// This candidate runs `kubeadm init`: elected by this request.
    Init(Elected),
    /// This candidate was elected before and proved it with its claim.
    Again(Elected),
    /// Another one does, or the cluster is initialised; ask again after
    /// `retry_after` (when the winner's lease would end, at most 30 s).
    Wait { why: String, retry_after: Duration },
}

pub struct Election {
    store: Arc<Store>,
    lease: Duration,
    state: tokio::sync::Mutex<State>,
}

struct State {
    record: Option<Elected>,
    /// When serve last received a bound report from the winner (or elected it,
    /// or started).
    heard: Instant,
    /// Why the winner lost its place (it reported `failed`).
    lost: Option<String>,
}

/// SHA-256 (hex) of a claim secret.
fn claim_hash(claim: &str) -> String {
    hex::encode(Sha256::digest(claim.trim().as_bytes()))
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Election {
    /// Read back the standing election, if any.
    pub fn load(store: Arc<Store>, lease: Duration) -> Result<Election, String> {
        let record = store.record::<Elected>(RECORD).map_err(|e| e.to_string())?;
        Ok(Election {
            store,
            lease,
            state: tokio::sync::Mutex::new(State {
                record,
                heard: Instant::now(),
                lost: None,
            }),
        })
    }

    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Why nobody is elected any more, once the cluster is known initialised.
    pub async fn initialised(&self) -> Option<String> {
        let state = self.state.lock().await;
        state
            .record
            .as_ref()
            .filter(|e| e.initialised_at.is_some())
            .map(initialised_why)
    }

    /// One asker at a time: decide, persist, answer. Call only when nothing
    /// answers at the endpoint.
    pub async fn ask(&self, candidate: &Candidate, claim: Option<&str>) -> Result<Verdict, String> {
        let mut state = self.state.lock().await;
        let (term, why) = match &state.record {
            Some(e) if e.initialised_at.is_some() => {
                return Ok(Verdict::Wait {
                    why: initialised_why(e),
                    retry_after: RETRY_AFTER,
                })
            }
            Some(e) if e.machine_id == candidate.machine_id && proves(e, claim) => {
                return Ok(Verdict::Again(e.clone()))
            }
            Some(e) => match standing(&state, e, self.lease) {
                Ok(()) if e.machine_id == candidate.machine_id => {
                    return Ok(Verdict::Wait {
                        why: format!(
                            "the init document was served to this machine id ({}, term {}) at {}; \
                             a retry must send the claim its agent sent then (Kubeboot-Claim). \
                             Without it, wait until the lease of {} s without reports ends",
                            e.node,
                            e.term,
                            rfc3339(e.at),
                            self.lease.as_secs()
                        ),
                        retry_after: RETRY_AFTER,
                    })
                }
                Ok(()) => {
                    return Ok(Verdict::Wait {
                        why: format!(
                            "waiting for the first control plane: {} was chosen to run kubeadm init at {} and the cluster does not answer yet",
                            e.node,
                            rfc3339(e.at)
                        ),
                        retry_after: lease_left(&state, self.lease),
                    })
                }
                Err(why) => {
                    tracing::warn!("init election: {why}; {} takes over", candidate.node);
                    (e.term + 1, why)
                }
            },
            None => (1, "the cluster does not answer yet".to_string()),
        };
        let elected = Elected {
            node: candidate.node.clone(),
            machine_id: candidate.machine_id.clone(),
            at: Utc::now(),
            term,
            why,
            initialised_at: None,
            claim: claim.map(claim_hash),
        };
        crate::blocking(|| self.store.put_record(RECORD, &elected)).map_err(|e| e.to_string())?;
        tracing::info!(
            "init election (term {term}): {} ({}) runs kubeadm init",
            elected.node,
            elected.machine_id
        );
        state.record = Some(elected.clone());
        state.heard = Instant::now();
        state.lost = None;
        Ok(Verdict::Init(elected))
    }

    /// A status event serve received and stored, posted with the report
    /// credential bound to its node and machine id. Only such events count.
    pub async fn observe(&self, ev: &StatusEvent) -> Result<(), String> {
        let mut state = self.state.lock().await;
        let Some(e) = state.record.clone() else {
            return Ok(());
        };
        if e.initialised_at.is_some() || e.machine_id != ev.machine_id {
            return Ok(());
        }
        state.heard = Instant::now();
        let succeeded = ev.phase > Phase::Kubeadm
            || (ev.phase == Phase::Kubeadm && ev.state == PhaseState::Succeeded);
        if succeeded {
            let record = Elected {
                initialised_at: Some(Utc::now()),
                ..e
            };
            crate::blocking(|| self.store.put_record(RECORD, &record))
                .map_err(|e| e.to_string())?;
            tracing::info!(
                "init election: {} reported kubeadm init succeeded; no election ever again",
                record.node
            );
            state.record = Some(record);
        } else if ev.state == PhaseState::Failed {
            state.lost = Some(format!("{} failed in {}", e.node, ev.phase.as_str()));
        }
        Ok(())
    }

    /// serve itself saw the cluster answer: the cluster is initialised, so no
    /// election may run again. Recorded once.
    pub async fn latch(&self, why: &str) -> Result<(), String> {
        let mut state = self.state.lock().await;
        if state
            .record
            .as_ref()
            .is_some_and(|e| e.initialised_at.is_some())
        {
            return Ok(());
        }
        let now = Utc::now();
        let record = match state.record.take() {
            Some(e) => Elected {
                initialised_at: Some(now),
                ..e
            },
            None => Elected {
                node: "(a node serve did not elect)".into(),
                machine_id: String::new(),
                at: now,
                term: 0,
                why: why.to_string(),
                initialised_at: Some(now),
                claim: None,
            },
        };
        let stored =
            crate::blocking(|| self.store.put_record(RECORD, &record)).map_err(|e| e.to_string());
        tracing::info!("init election closed for good: {why}");
        state.record = Some(record);
        stored
    }
}

/// The operator rebuilds the cluster on purpose: forget the election (serve
/// stopped; it holds the store). Returns what was recorded.
pub fn reset(store: &Store) -> Result<Option<Elected>, String> {
    let before = store.record::<Elected>(RECORD).map_err(|e| e.to_string())?;
    store.delete_record(RECORD).map_err(|e| e.to_string())?;
    Ok(before)
}

/// The record as it stands (for `serve election show`).
pub fn recorded(store: &Store) -> Result<Option<Elected>, String> {
    store.record::<Elected>(RECORD).map_err(|e| e.to_string())
}

fn initialised_why(e: &Elected) -> String {
    format!(
        "the cluster was initialised ({}; known since {}): nobody runs kubeadm init again; \
         control planes join once the cluster answers (to rebuild it on purpose: stop serve, \
         then `kubeboot serve election reset --yes`)",
        if e.term == 0 {
            e.why.clone()
        } else {
            format!("by {}, term {}", e.node, e.term)
        },
        e.initialised_at.map(rfc3339).unwrap_or_default()
    )
}

/// Does `claim` prove the asker is the winner that sent it first?
fn proves(e: &Elected, claim: Option<&str>) -> bool {
    match (&e.claim, claim) {
        (Some(want), Some(got)) => bool::from(want.as_bytes().ct_eq(claim_hash(got).as_bytes())),
        _ => false,
    }
}

/// How long a waiting control plane waits before it asks again, at most.
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// Until the winner's lease would end if it stays silent, at most
/// [`RETRY_AFTER`]: the next asker is not kept waiting longer.
fn lease_left(state: &State, lease: Duration) -> Duration {
    lease.saturating_sub(state.heard.elapsed()).min(RETRY_AFTER)
}

/// Ok while the elected node holds its lease; else why it lost it.
fn standing(state: &State, e: &Elected, lease: Duration) -> Result<(), String> {
    if let Some(lost) = &state.lost {
        return Err(lost.clone());
    }
    let silent = state.heard.elapsed();
    if silent > lease {
        return Err(format!(
            "{} has sent no report for {} s, past the {} s lease",
            e.node,
            silent.as_secs(),
            lease.as_secs()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
