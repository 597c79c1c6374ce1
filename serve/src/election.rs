//! Who runs `kubeadm init` when identical control planes boot into a cluster that
//! does not exist yet (`--fresh-credentials`): exactly one, chosen here.
//!
//! A control-plane document request arrives while the cluster cannot mint
//! credentials (it does not answer). The first asker, by its machine id, is
//! elected: the choice is written to serve's store (fsynced) before the answer,
//! so a restarted serve never elects twice, and the elected node gets the init
//! document (again, if it asks again: a reboot before its state was saved).
//! Everyone else waits (503, Retry-After) with the reason.
//!
//! The lease: the elected node stays elected while it reports (its last status
//! event, or the election, is younger than the lease) and has not failed. A
//! node that fails or goes silent past the lease is replaced by the next asker.
//! The cluster is never initialised twice by this: the election is asked only
//! while the cluster does not answer; once the elected node's API server
//! answers, every control plane gets a join document instead. The lease must
//! outlast the elected node's longest silent stretch (kubeadm init reports no
//! event while it runs: about 6 minutes under TCG here), hence 20 minutes by default.
//!
//! Initialised is forever: once the winner reports that its kubeadm init
//! succeeded, that is recorded (fsynced) and the election never runs again,
//! whatever fails later (the winner's Ready wait, its silence, a serve restart).
//! The agent fences itself as well (agent/src/discovery/fence.rs).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::nodes::Nodes;
use super::store::Store;

const RECORD: &str = "init-election";
pub const DEFAULT_LEASE: Duration = Duration::from_secs(20 * 60);

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
    /// When serve learnt that this winner's `kubeadm init` succeeded (its report of
    /// kubeadm succeeded, or a later phase). From then on the election is over for
    /// good: whatever fails later, nobody is elected again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initialised_at: Option<DateTime<Utc>>,
}

#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// This candidate runs `kubeadm init`: elected by this request.
    Init(Elected),
    /// This candidate was elected before and asks again (a reboot, a retry).
    Again(Elected),
    /// Another one does; ask again later.
    Wait { why: String },
}

pub struct Election {
    store: Arc<Store>,
    lease: Duration,
    current: tokio::sync::Mutex<Option<Elected>>,
}

impl Election {
    /// Read back the standing election, if any.
    pub fn load(store: Arc<Store>, lease: Duration) -> Result<Election, String> {
        let current = store.record::<Elected>(RECORD)?;
        Ok(Election {
            store,
            lease,
            current: tokio::sync::Mutex::new(current),
        })
    }

    /// One asker at a time: decide, persist, answer.
    pub async fn ask(
        &self,
        candidate: &Candidate,
        nodes: &std::sync::RwLock<Nodes>,
    ) -> Result<Verdict, String> {
        let mut current = self.current.lock().await;
        if let Some(e) = current.as_mut() {
            if e.initialised_at.is_none() && init_succeeded(e, nodes) {
                e.initialised_at = Some(Utc::now());
                self.store.put_record(RECORD, &*e)?;
                tracing::info!(
                    "init election: {} reported kubeadm init succeeded; no election ever again",
                    e.node
                );
            }
            if let Some(at) = e.initialised_at {
                return Ok(Verdict::Wait {
                    why: format!(
                        "the cluster was initialised by {} (term {}; its kubeadm init succeeded, \
                         known since {}): nobody runs kubeadm init again; control planes join once \
                         the cluster answers",
                        e.node,
                        e.term,
                        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    ),
                });
            }
        }
        let (term, why) = match current.as_ref() {
            Some(e) if e.machine_id == candidate.machine_id => {
                return Ok(Verdict::Again(e.clone()))
            }
            Some(e) => match self.standing(e, nodes) {
                Ok(()) => {
                    return Ok(Verdict::Wait {
                        why: format!(
                            "waiting for the first control plane: {} was chosen to run kubeadm init at {} and the cluster does not answer yet",
                            e.node,
                            e.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                        ),
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
        };
        self.store.put_record(RECORD, &elected)?;
        tracing::info!(
            "init election (term {term}): {} ({}) runs kubeadm init",
            elected.node,
            elected.machine_id
        );
        *current = Some(elected.clone());
        Ok(Verdict::Init(elected))
    }
}

impl Election {
    /// serve itself saw the cluster answer (it minted join credentials there):
    /// the cluster is initialised, so no election may run again. Recorded once.
    pub async fn latch(&self, why: &str) -> Result<(), String> {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|e| e.initialised_at.is_some()) {
            return Ok(());
        }
        let now = Utc::now();
        let record = match current.take() {
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
            },
        };
        let stored = self.store.put_record(RECORD, &record);
        tracing::info!("init election closed for good: {why}");
        *current = Some(record);
        stored
    }
}

/// Has the elected machine reported that its kubeadm init succeeded (or a phase
/// after it)? Phases run in order, so a later phase means kubeadm succeeded.
fn init_succeeded(e: &Elected, nodes: &std::sync::RwLock<Nodes>) -> bool {
    use kubeboot_core::status::{Phase, PhaseState};
    nodes
        .read()
        .expect("nodes lock")
        .summaries()
        .into_iter()
        .filter(|s| s.machine_id == e.machine_id)
        .any(|s| {
            s.phase > Phase::Kubeadm
                || (s.phase == Phase::Kubeadm && s.state == PhaseState::Succeeded)
        })
}

impl Election {
    /// Ok while the elected node holds its lease; else why it lost it.
    fn standing(&self, e: &Elected, nodes: &std::sync::RwLock<Nodes>) -> Result<(), String> {
        let summary = nodes
            .read()
            .expect("nodes lock")
            .summaries()
            .into_iter()
            .filter(|s| s.machine_id == e.machine_id)
            .max_by_key(|s| s.last_at);
        if let Some(s) = &summary {
            if s.failed() {
                return Err(format!("{} failed in {}", e.node, s.phase.as_str()));
            }
        }
        let heard = summary.map_or(e.at, |s| s.last_at.max(e.at));
        let silent = (Utc::now() - heard).to_std().unwrap_or_default();
        if silent > self.lease {
            return Err(format!(
                "{} has been silent for {} s, past the {} s lease",
                e.node,
                silent.as_secs(),
                self.lease.as_secs()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(i: usize) -> Candidate {
        Candidate {
            node: format!("cp-{i}"),
            machine_id: format!("{i:032x}"),
        }
    }

    fn open(dir: &std::path::Path, lease: Duration) -> Election {
        let (store, _) = Store::open(dir).unwrap();
        Election::load(Arc::new(store), lease).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn twenty_concurrent_askers_elect_exactly_one_and_a_restart_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let nodes = Arc::new(std::sync::RwLock::new(Nodes::default()));
        let election = Arc::new(open(dir.path(), DEFAULT_LEASE));
        let mut tasks = Vec::new();
        for i in 0..20 {
            let (e, n) = (election.clone(), nodes.clone());
            tasks.push(tokio::spawn(async move {
                e.ask(&candidate(i), &n).await.unwrap()
            }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            if let Verdict::Init(e) = t.await.unwrap() {
                winners.push(e);
            }
        }
        assert_eq!(winners.len(), 1, "{winners:?}");
        let winner = winners.remove(0);
        assert_eq!(winner.term, 1);
        drop(election);

        // A new serve on the same store: the same winner, nobody else.
        let election = open(dir.path(), DEFAULT_LEASE);
        for i in 0..20 {
            let v = election.ask(&candidate(i), &nodes).await.unwrap();
            let me = candidate(i).machine_id == winner.machine_id;
            match v {
                Verdict::Again(e) => assert!(me && e == winner, "{e:?}"),
                Verdict::Init(e) => panic!("elected twice: {e:?}"),
                Verdict::Wait { why } => {
                    assert!(!me);
                    assert!(why.contains(&winner.node), "{why}");
                }
            }
        }
    }

    #[tokio::test]
    async fn a_silent_or_failed_winner_is_replaced_once() {
        let dir = tempfile::tempdir().unwrap();
        let nodes = std::sync::RwLock::new(Nodes::default());
        let election = open(dir.path(), Duration::from_millis(300));
        assert!(matches!(
            election.ask(&candidate(1), &nodes).await.unwrap(),
            Verdict::Init(_)
        ));
        assert!(matches!(
            election.ask(&candidate(2), &nodes).await.unwrap(),
            Verdict::Wait { .. }
        ));
        tokio::time::sleep(Duration::from_millis(600)).await;
        // Silent past the lease: the next asker takes over, the one after waits.
        let Verdict::Init(second) = election.ask(&candidate(2), &nodes).await.unwrap() else {
            panic!("candidate 2 should take over");
        };
        assert_eq!(second.term, 2);
        assert!(second.why.contains("past the"), "{}", second.why);
        assert!(matches!(
            election.ask(&candidate(2), &nodes).await.unwrap(),
            Verdict::Again(_)
        ));
        assert!(matches!(
            election.ask(&candidate(3), &nodes).await.unwrap(),
            Verdict::Wait { .. }
        ));

        // A winner that reports failure loses at once, lease or not.
        let dir = tempfile::tempdir().unwrap();
        let election = open(dir.path(), DEFAULT_LEASE);
        assert!(matches!(
            election.ask(&candidate(1), &nodes).await.unwrap(),
            Verdict::Init(_)
        ));
        let failed: kubeboot_core::status::StatusEvent =
            serde_json::from_value(serde_json::json!({
                "node": "cp-1", "machine_id": candidate(1).machine_id, "boot_id": "b", "seq": 9,
                "role": "init", "phase": "kubeadm", "state": "failed", "attempt": 1,
                "at": Utc::now(), "agent_version": "0.1.0",
                "error": {"kind": "kubeadm_failed", "message": "x"}
            }))
            .unwrap();
        nodes.write().unwrap().insert(failed);
        let Verdict::Init(next) = election.ask(&candidate(5), &nodes).await.unwrap() else {
            panic!("a failed winner must be replaced");
        };
        assert_eq!((next.node.as_str(), next.term), ("cp-5", 2));
    }
}

#[cfg(test)]
mod initialised {
    use super::*;

    fn event(machine: usize, phase: &str, state: &str) -> kubeboot_core::status::StatusEvent {
        let mut v = serde_json::json!({
            "node": format!("cp-{machine}"), "machine_id": format!("{machine:032x}"),
            "boot_id": "b", "seq": 1, "role": "init", "phase": phase, "state": state,
            "attempt": 1, "at": Utc::now(), "agent_version": "0.1.0"
        });
        if state == "failed" {
            v["error"] = serde_json::json!({"kind": "node_not_ready", "message": "x"});
            v["seq"] = 2.into();
        }
        serde_json::from_value(v).unwrap()
    }

    fn candidate(i: usize) -> Candidate {
        Candidate {
            node: format!("cp-{i}"),
            machine_id: format!("{i:032x}"),
        }
    }

    /// Once the winner's kubeadm init succeeded, neither its later failure, nor
    /// its silence past the lease, nor a serve restart elects anyone again.
    #[tokio::test]
    async fn after_init_succeeded_nobody_is_ever_elected_again() {
        let dir = tempfile::tempdir().unwrap();
        let lease = Duration::from_millis(200);
        let (store, _) = Store::open(dir.path()).unwrap();
        let election = Election::load(Arc::new(store), lease).unwrap();
        let nodes = std::sync::RwLock::new(Nodes::default());
        assert!(matches!(
            election.ask(&candidate(1), &nodes).await.unwrap(),
            Verdict::Init(_)
        ));
        nodes
            .write()
            .unwrap()
            .insert(event(1, "kubeadm", "succeeded"));
        let Verdict::Wait { why } = election.ask(&candidate(2), &nodes).await.unwrap() else {
            panic!("a second election after init succeeded");
        };
        assert!(why.contains("initialised by cp-1"), "{why}");
        // The winner fails later (ready) and then goes silent past the lease.
        nodes.write().unwrap().insert(event(1, "ready", "failed"));
        tokio::time::sleep(Duration::from_millis(400)).await;
        for i in [1, 2, 3] {
            let v = election.ask(&candidate(i), &nodes).await.unwrap();
            assert!(matches!(v, Verdict::Wait { .. }), "cp-{i}: {v:?}");
        }
        drop(election);
        // A restarted serve, its node reports gone: still no election.
        let (store, _) = Store::open(dir.path()).unwrap();
        let election = Election::load(Arc::new(store), lease).unwrap();
        let empty = std::sync::RwLock::new(Nodes::default());
        let v = election.ask(&candidate(4), &empty).await.unwrap();
        assert!(matches!(v, Verdict::Wait { .. }), "{v:?}");
    }

    /// serve minted in the cluster (it answers): no election, now or after a restart,
    /// though no election was ever held.
    #[tokio::test]
    async fn a_cluster_serve_minted_in_is_never_initialised_again() {
        let dir = tempfile::tempdir().unwrap();
        let lease = Duration::from_millis(100);
        let nodes = std::sync::RwLock::new(Nodes::default());
        let (store, _) = Store::open(dir.path()).unwrap();
        let election = Election::load(Arc::new(store), lease).unwrap();
        election.latch("minted a join token").await.unwrap();
        let v = election.ask(&candidate(1), &nodes).await.unwrap();
        assert!(matches!(v, Verdict::Wait { .. }), "{v:?}");
        drop(election);
        let (store, _) = Store::open(dir.path()).unwrap();
        let election = Election::load(Arc::new(store), lease).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let v = election.ask(&candidate(2), &nodes).await.unwrap();
        assert!(matches!(v, Verdict::Wait { .. }), "{v:?}");
    }
}
