//! Telling the cluster (kubeboot_kube::boot) from the agent: once kubeadm has
//! given this node credentials, after every phase result from `kubeadm` on.
//!
//! Off the critical path: the publication runs on a thread of its own (one
//! runtime, a few bounded tries), so a slow or unanswering API server holds up
//! neither the next phase nor the HTTPS status report. Stories queued while one
//! is out are coalesced (each holds every result so far). Only the last phase
//! (done, or a failure) waits for the publication, bounded, so a drop can still
//! ride as a note on that phase's status event. Never blocks the boot beyond
//! that bound, never fails it.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use kubeboot_core::redact::Redactor;
use kubeboot_core::status::{Phase, PhaseState};
use kubeboot_kube::boot::{self as report, BootStory, PhaseResult};

use super::completion::KUBELET_CONF;
use super::state::AgentState;
use super::Agent;

const TRIES: u32 = 3;
/// How long the last phase waits for the cluster to take its story.
const LAST_WAIT: Duration = Duration::from_secs(60);

struct Job {
    kubeconfig: PathBuf,
    story: BootStory,
    already: BTreeSet<String>,
}

/// What the publishing thread has done that the agent has not taken yet.
#[derive(Default)]
struct Outcome {
    /// Keys of results told to the cluster (for the persisted record).
    sent: Vec<String>,
    /// Notes about stories the cluster did not take.
    dropped: Vec<String>,
    /// Jobs handed over and not finished.
    pending: usize,
}

/// The publishing thread, started with the first story.
#[derive(Default)]
pub(super) struct ClusterReporter {
    tx: Option<Sender<Job>>,
    shared: Arc<(Mutex<Outcome>, Condvar)>,
}

impl ClusterReporter {
    fn send(&mut self, job: Job, redactor: Redactor) {
        let tx = self.tx.get_or_insert_with(|| {
            let (tx, rx) = mpsc::channel();
            let shared = self.shared.clone();
            std::thread::spawn(move || publish_all(&rx, &shared, &redactor));
            tx
        });
        self.shared.0.lock().expect("reporter state").pending += 1;
        if tx.send(job).is_err() {
            // The thread is gone (it panicked): the story is dropped, the boot goes on.
            let mut o = self.shared.0.lock().expect("reporter state");
            o.pending -= 1;
            o.dropped.push(
                "kubeboot: the report into the cluster stopped; later stories are dropped".into(),
            );
        }
    }

    /// Wait (at most `limit`) until every handed-over story is done.
    fn settle(&self, limit: Duration) {
        let (lock, done) = &*self.shared;
        let deadline = Instant::now() + limit;
        let mut o = lock.lock().expect("reporter state");
        while o.pending > 0 {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                o.dropped.push(format!(
                    "kubeboot: the report into the cluster did not finish within {} s; left unsent",
                    limit.as_secs()
                ));
                return;
            };
            o = done.wait_timeout(o, left).expect("reporter state").0;
        }
    }

    fn take(&self) -> (Vec<String>, Vec<String>) {
        let mut o = self.shared.0.lock().expect("reporter state");
        (std::mem::take(&mut o.sent), std::mem::take(&mut o.dropped))
    }
}

/// The thread: one runtime for every story; the newest queued story stands for
/// the ones before it.
fn publish_all(rx: &Receiver<Job>, shared: &(Mutex<Outcome>, Condvar), redactor: &Redactor) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut told = BTreeSet::new();
    while let Ok(mut job) = rx.recv() {
        let mut taken = 1;
        while let Ok(newer) = rx.try_recv() {
            job = newer;
            taken += 1;
        }
        told.extend(job.already.iter().cloned());
        let (sent, dropped) = runtime.block_on(publish(&job, &mut told, redactor));
        let mut o = shared.0.lock().expect("reporter state");
        o.sent.extend(sent);
        o.dropped.extend(dropped);
        o.pending -= taken;
        shared.1.notify_all();
    }
}

/// One story, a few bounded tries: the keys of the Events it sent, and
/// `Some(note)` when the cluster did not take it.
async fn publish(
    job: &Job,
    told: &mut BTreeSet<String>,
    redactor: &Redactor,
) -> (Vec<String>, Option<String>) {
    let mut sent = Vec::new();
    let mut why = String::new();
    for attempt in 1..=TRIES {
        let outcome = match kubeboot_kube::client::client(&job.kubeconfig).await {
            Ok(client) => report::publish(&client, &job.story, told).await,
            Err(e) => Err((report::Published::default(), e)),
        };
        let (published, error) = match outcome {
            Ok(p) => (p, None),
            Err((p, e)) => (p, Some(e)),
        };
        told.extend(published.events_sent.iter().cloned());
        sent.extend(published.events_sent);
        match error {
            None => {
                if !published.annotated {
                    tracing::debug!("Node not registered yet: its annotations wait");
                }
                return (sent, None);
            }
            Some(e) => why = redactor.redact(&e),
        }
        if attempt < TRIES {
            tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
        }
    }
    let note = format!(
        "kubeboot: the report into the cluster (Node annotations, Events) was dropped after {TRIES} tries: {why}"
    );
    tracing::warn!("{note}");
    (sent, Some(note))
}

impl Agent {
    /// Hand the boot story to the publishing thread; take in what it has done
    /// since (events sent go into the record). On the last phase (done, or a
    /// failure) wait for it, bounded. `Some(note)` when a story was dropped.
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
        let job = Job {
            kubeconfig: self.host.path(KUBELET_CONF),
            story,
            already: state.cluster_events.clone(),
        };
        self.cluster.send(job, self.redactor.clone());
        if phase == Phase::Done || now == PhaseState::Failed {
            self.cluster.settle(LAST_WAIT);
        }
        let (sent, dropped) = self.cluster.take();
        if !sent.is_empty() {
            state.cluster_events.extend(sent);
            let _ = self.save(state);
        }
        (!dropped.is_empty()).then(|| dropped.join("; "))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn story(phase: Phase) -> BootStory {
        BootStory {
            node: "w1".into(),
            boot_id: "b".into(),
            machine_id: "m".into(),
            agent_version: "0".into(),
            phase,
            state: PhaseState::Succeeded,
            results: Vec::new(),
        }
    }

    /// Stories for a cluster that refuses connections: the thread tries each
    /// coalesced story, every one handed over is accounted for once settled,
    /// and the drops come back as notes.
    #[test]
    fn stories_handed_over_are_settled_and_their_drops_reported() {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let kubeconfig = dir.path().join("kubelet.conf");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{port}\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    token: abcdef.0123456789abcdef\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n"
            ),
        )
        .unwrap();
        let mut reporter = ClusterReporter::default();
        for phase in [Phase::Kubeadm, Phase::Ready, Phase::Done] {
            reporter.send(
                Job {
                    kubeconfig: kubeconfig.clone(),
                    story: story(phase),
                    already: BTreeSet::new(),
                },
                Redactor::default(),
            );
        }
        reporter.settle(Duration::from_secs(60));
        assert_eq!(reporter.shared.0.lock().unwrap().pending, 0);
        let (sent, dropped) = reporter.take();
        assert!(sent.is_empty(), "{sent:?}");
        assert!((1..=3).contains(&dropped.len()), "{dropped:?}");
        assert!(
            dropped.iter().all(|d| d.contains("dropped after 3 tries")),
            "{dropped:?}"
        );
        assert!(
            !dropped.iter().any(|d| d.contains("0123456789abcdef")),
            "{dropped:?}"
        );
        assert_eq!(reporter.take(), (Vec::new(), Vec::new()), "taken once");
    }
}
