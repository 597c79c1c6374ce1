//! The boot story, told to the cluster itself with the node's own credentials:
//! annotations on this Node (`kubeboot.io/…`) and one Kubernetes Event per phase
//! result, so `kubectl describe node` and `kubectl get events` show it. Both are
//! what the Node authorizer and NodeRestriction allow a node: patch its own
//! Node, create events.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Event, EventSource, Node, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;

use kubeboot_core::status::{Phase, PhaseState};

pub const ANNOTATION_PHASE: &str = "kubeboot.io/phase";
pub const ANNOTATION_STATE: &str = "kubeboot.io/state";
pub const ANNOTATION_BOOT_ID: &str = "kubeboot.io/boot-id";
pub const ANNOTATION_MACHINE_ID: &str = "kubeboot.io/machine-id";
pub const ANNOTATION_AGENT_VERSION: &str = "kubeboot.io/agent-version";
pub const ANNOTATION_DURATIONS: &str = "kubeboot.io/phase-durations";
pub const ANNOTATION_LAST_FAILURE: &str = "kubeboot.io/last-failure";
pub const REPORTING_CONTROLLER: &str = "kubeboot.io/agent";
/// Events about Nodes live in `default`, as the kubelet's do.
pub const EVENT_NAMESPACE: &str = "default";

/// One finished phase attempt, from the agent's local record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseResult {
    pub phase: Phase,
    pub state: PhaseState,
    pub attempt: u32,
    pub at: DateTime<Utc>,
    pub duration_ms: Option<u64>,
    /// Error kind and message (already redacted) of a failure.
    pub error: Option<(String, String)>,
}

impl PhaseResult {
    /// Identifies the result among those already told to the cluster.
    pub fn key(&self) -> String {
        format!("{}:{}:{}", self.phase, self.state.as_str(), self.attempt)
    }

    fn reason(&self) -> &'static str {
        match self.state {
            PhaseState::Failed => "KubebootPhaseFailed",
            PhaseState::Retrying => "KubebootPhaseRetrying",
            _ => "KubebootPhaseDone",
        }
    }

    fn message(&self) -> String {
        let took = self
            .duration_ms
            .map(|ms| format!(" in {:.1} s", ms as f64 / 1000.0))
            .unwrap_or_default();
        let mut m = format!(
            "kubeboot phase {} {} at {}{took} (attempt {})",
            self.phase,
            self.state.as_str(),
            self.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            self.attempt
        );
        if let Some((kind, message)) = &self.error {
            m.push_str(&format!(": {kind}: {message}"));
        }
        m.chars().take(1000).collect()
    }
}

/// What the node tells the cluster about its boot.
#[derive(Debug, Clone)]
pub struct BootStory {
    pub node: String,
    pub boot_id: String,
    pub machine_id: String,
    pub agent_version: String,
    /// The phase the agent is in (or ended in) and its state.
    pub phase: Phase,
    pub state: PhaseState,
    pub results: Vec<PhaseResult>,
}

impl BootStory {
    pub fn annotations(&self) -> BTreeMap<String, String> {
        let durations: BTreeMap<String, u64> = self
            .results
            .iter()
            .filter(|r| r.state == PhaseState::Succeeded)
            .filter_map(|r| Some((r.phase.to_string(), r.duration_ms?)))
            .collect();
        let mut a = BTreeMap::from([
            (ANNOTATION_PHASE.to_string(), self.phase.to_string()),
            (
                ANNOTATION_STATE.to_string(),
                self.state.as_str().to_string(),
            ),
            (ANNOTATION_BOOT_ID.to_string(), self.boot_id.clone()),
            (ANNOTATION_MACHINE_ID.to_string(), self.machine_id.clone()),
            (
                ANNOTATION_AGENT_VERSION.to_string(),
                self.agent_version.clone(),
            ),
            (
                ANNOTATION_DURATIONS.to_string(),
                serde_json::to_string(&durations).expect("a map of numbers"),
            ),
        ]);
        if let Some(f) = self
            .results
            .iter()
            .rev()
            .find(|r| r.state == PhaseState::Failed)
        {
            a.insert(ANNOTATION_LAST_FAILURE.to_string(), f.message());
        }
        a
    }

    fn event(&self, r: &PhaseResult, node_uid: Option<String>) -> Event {
        let at = k8s_openapi::jiff::Timestamp::from_microsecond(r.at.timestamp_micros())
            .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        let time = Time(at);
        Event {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}.kubeboot-", self.node)),
                namespace: Some(EVENT_NAMESPACE.into()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(self.node.clone()),
                uid: node_uid,
                ..Default::default()
            },
            reason: Some(r.reason().into()),
            message: Some(r.message()),
            type_: Some(
                if r.state == PhaseState::Failed {
                    "Warning"
                } else {
                    "Normal"
                }
                .into(),
            ),
            first_timestamp: Some(time.clone()),
            last_timestamp: Some(time),
            event_time: Some(MicroTime(at)),
            count: Some(1),
            action: Some(format!("Phase{}", capitalised(&r.phase.to_string()))),
            reporting_component: Some(REPORTING_CONTROLLER.into()),
            reporting_instance: Some(self.node.clone()),
            source: Some(EventSource {
                component: Some("kubeboot".into()),
                host: Some(self.node.clone()),
            }),
            ..Default::default()
        }
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// What one publication did.
#[derive(Debug, Default)]
pub struct Published {
    /// Keys of the results now told to the cluster (add them to the record).
    pub events_sent: Vec<String>,
    /// False when the Node is not registered yet (annotations wait for the next call).
    pub annotated: bool,
}

/// Create an Event for every result not in `already`, then annotate the Node.
/// Stops at the first error; what was sent before it is in the error's
/// `Published` too, so nothing is sent twice.
pub async fn publish(
    client: &kube::Client,
    story: &BootStory,
    already: &BTreeSet<String>,
) -> Result<Published, (Published, String)> {
    let nodes: Api<Node> = Api::all(client.clone());
    let events: Api<Event> = Api::namespaced(client.clone(), EVENT_NAMESPACE);
    let mut done = Published::default();
    let node = match nodes.get_opt(&story.node).await {
        Ok(n) => n,
        Err(e) => {
            return Err((
                done,
                format!(
                    "reading Node {}: {}",
                    story.node,
                    crate::client::describe(&e)
                ),
            ))
        }
    };
    let uid = node.as_ref().and_then(|n| n.metadata.uid.clone());
    for r in story.results.iter().filter(|r| !already.contains(&r.key())) {
        if let Err(e) = events
            .create(&PostParams::default(), &story.event(r, uid.clone()))
            .await
        {
            let why = format!(
                "creating the Event for {}: {}",
                r.key(),
                crate::client::describe(&e)
            );
            return Err((done, why));
        }
        done.events_sent.push(r.key());
    }
    if node.is_some() {
        let patch = serde_json::json!({ "metadata": { "annotations": story.annotations() } });
        if let Err(e) = nodes
            .patch(&story.node, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            let why = format!(
                "annotating Node {}: {}",
                story.node,
                crate::client::describe(&e)
            );
            return Err((done, why));
        }
        done.annotated = true;
    }
    Ok(done)
}

/// One Node as `kubeboot nodes` shows it: its boot state from its annotations.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeBoot {
    pub name: String,
    pub ready: bool,
    /// None: the Node carries no kubeboot annotations.
    pub phase: Option<String>,
    pub state: Option<String>,
    /// Sum of the phase durations, seconds.
    pub boot_seconds: Option<f64>,
    pub phase_durations_ms: BTreeMap<String, u64>,
    pub last_failure: Option<String>,
    pub agent_version: Option<String>,
    pub boot_id: Option<String>,
}

pub fn node_boot(node: &Node) -> NodeBoot {
    let empty = BTreeMap::new();
    let a = node.metadata.annotations.as_ref().unwrap_or(&empty);
    let get = |k: &str| a.get(k).cloned();
    let durations: BTreeMap<String, u64> = a
        .get(ANNOTATION_DURATIONS)
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or_default();
    let ready = crate::node::ready_condition(node).is_some_and(|c| c.status == "True");
    NodeBoot {
        name: node.metadata.name.clone().unwrap_or_default(),
        ready,
        phase: get(ANNOTATION_PHASE),
        state: get(ANNOTATION_STATE),
        boot_seconds: (!durations.is_empty())
            .then(|| durations.values().sum::<u64>() as f64 / 1000.0),
        phase_durations_ms: durations,
        last_failure: get(ANNOTATION_LAST_FAILURE),
        agent_version: get(ANNOTATION_AGENT_VERSION),
        boot_id: get(ANNOTATION_BOOT_ID),
    }
}

/// Every Node of the cluster with its boot state, sorted by name.
pub async fn list(client: &kube::Client) -> Result<Vec<NodeBoot>, String> {
    let nodes: Api<Node> = Api::all(client.clone());
    let list = nodes
        .list(&Default::default())
        .await
        .map_err(|e| format!("listing Nodes: {}", crate::client::describe(&e)))?;
    let mut out: Vec<NodeBoot> = list.items.iter().map(node_boot).collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(phase: Phase, state: PhaseState, ms: u64) -> PhaseResult {
        PhaseResult {
            phase,
            state,
            attempt: 1,
            at: DateTime::parse_from_rfc3339("2026-11-28T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            duration_ms: Some(ms),
            error: (state == PhaseState::Failed)
                .then(|| ("node_not_ready".to_string(), "never Ready".to_string())),
        }
    }

    #[test]
    fn annotations_carry_phase_durations_and_the_last_failure() {
        let story = BootStory {
            node: "w1".into(),
            boot_id: "b".into(),
            machine_id: "m".into(),
            agent_version: "0.1.0".into(),
            phase: Phase::Ready,
            state: PhaseState::Failed,
            results: vec![
                result(Phase::Source, PhaseState::Succeeded, 120),
                result(Phase::Kubeadm, PhaseState::Succeeded, 61_000),
                result(Phase::Ready, PhaseState::Failed, 900_000),
            ],
        };
        let a = story.annotations();
        assert_eq!(a[ANNOTATION_PHASE], "ready");
        assert_eq!(a[ANNOTATION_STATE], "failed");
        assert_eq!(a[ANNOTATION_DURATIONS], r#"{"kubeadm":61000,"source":120}"#);
        assert!(a[ANNOTATION_LAST_FAILURE].contains("node_not_ready: never Ready"));
        let e = story.event(&story.results[2], Some("uid-1".into()));
        assert_eq!(e.type_.as_deref(), Some("Warning"));
        assert_eq!(e.reason.as_deref(), Some("KubebootPhaseFailed"));
        assert_eq!(e.action.as_deref(), Some("PhaseReady"));
        assert!(e
            .message
            .unwrap()
            .contains("at 2026-11-28T10:00:00Z in 900.0 s"));
        assert_eq!(story.results[1].key(), "kubeadm:succeeded:1");
    }
}
