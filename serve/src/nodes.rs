//! What the receiver knows about each node, derived from the events it has
//! stored: current phase and state, attempts, per-phase timings, the last
//! error with its log tail, and the full history. The same types are the JSON
//! of `GET /v1/nodes` and what `kubeboot watch` reads back.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use kubeboot_core::status::{ErrorReport, Phase, PhaseState, StatusEvent};

/// One row of the dashboard / `kubeboot watch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSummary {
    pub name: String,
    pub role: Option<String>,
    pub phase: Phase,
    pub state: PhaseState,
    pub attempt: u32,
    pub machine_id: String,
    pub boot_id: String,
    /// How many boots this node has reported from.
    pub boots: usize,
    pub events: usize,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    /// First event → `done`, once the node is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_ms: Option<u64>,
    pub phases: BTreeMap<Phase, PhaseTiming>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<ErrorReport>,
    /// The log tail that came with the last error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log_tail: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    pub agent_version: String,
}

impl NodeSummary {
    /// Finished one way or the other: nothing more is expected from this node.
    pub fn settled(&self) -> bool {
        self.failed() || self.done()
    }

    pub fn done(&self) -> bool {
        self.phase == Phase::Done && self.state == PhaseState::Succeeded
    }

    pub fn failed(&self) -> bool {
        self.state == PhaseState::Failed
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseTiming {
    pub state: PhaseState,
    pub attempts: u32,
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeDetail {
    #[serde(flatten)]
    pub summary: NodeSummary,
    pub history: Vec<StatusEvent>,
}

/// The most events kept per node: the newest; older ones are dropped (counted).
/// A boot sends about 20, plus one heartbeat per 30 s of kubeadm.
pub const MAX_EVENTS_PER_NODE: usize = 2000;
/// The most events kept in all; past it, the node silent for longest goes.
pub const MAX_EVENTS: usize = 200_000;

/// All nodes' events, ordered per node by (boot in order first seen, seq).
pub struct Nodes {
    nodes: HashMap<String, NodeHistory>,
    total: usize,
    /// Events dropped by the caps.
    dropped: u64,
    per_node: usize,
    max_total: usize,
}

impl Default for Nodes {
    fn default() -> Nodes {
        Nodes::with_caps(MAX_EVENTS_PER_NODE, MAX_EVENTS)
    }
}

#[derive(Default)]
struct NodeHistory {
    boots: Vec<String>,
    events: Vec<StatusEvent>,
}

impl NodeHistory {
    fn boot_index(&self, boot_id: &str) -> usize {
        self.boots
            .iter()
            .position(|b| b == boot_id)
            .unwrap_or(self.boots.len())
    }

    fn insert(&mut self, ev: StatusEvent) {
        if !self.boots.contains(&ev.boot_id) {
            self.boots.push(ev.boot_id.clone());
        }
        let key = (self.boot_index(&ev.boot_id), ev.seq);
        // Events almost always arrive in order: search from the end.
        let pos = self
            .events
            .iter()
            .rposition(|e| (self.boot_index(&e.boot_id), e.seq) <= key)
            .map_or(0, |p| p + 1);
        self.events.insert(pos, ev);
    }
}

impl Nodes {
    /// At most `per_node` events per node and `max_total` in all.
    pub fn with_caps(per_node: usize, max_total: usize) -> Nodes {
        Nodes {
            nodes: HashMap::new(),
            total: 0,
            dropped: 0,
            per_node: per_node.max(1),
            max_total: max_total.max(1),
        }
    }

    pub fn insert(&mut self, ev: StatusEvent) {
        let h = self.nodes.entry(ev.node.clone()).or_default();
        h.insert(ev);
        self.total += 1;
        if h.events.len() > self.per_node {
            let over = h.events.len() - self.per_node;
            h.events.drain(..over);
            self.total -= over;
            self.dropped += over as u64;
        }
        while self.total > self.max_total {
            self.drop_stalest();
        }
    }

    /// Forget the node whose last event is oldest (the dashboard's least useful).
    fn drop_stalest(&mut self) {
        let Some(name) = self
            .nodes
            .iter()
            .min_by_key(|(_, h)| h.events.last().map(|e| e.at))
            .map(|(n, _)| n.clone())
        else {
            return;
        };
        if let Some(h) = self.nodes.remove(&name) {
            self.total -= h.events.len();
            self.dropped += h.events.len() as u64;
        }
    }

    /// Events dropped by the caps (by default [`MAX_EVENTS_PER_NODE`], [`MAX_EVENTS`]).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Events held.
    pub fn events(&self) -> usize {
        self.total
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn summaries(&self) -> Vec<NodeSummary> {
        let mut all: Vec<NodeSummary> = self
            .nodes
            .iter()
            .filter_map(|(name, h)| summarize(name, &h.events, h.boots.len()))
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    pub fn detail(&self, name: &str) -> Option<NodeDetail> {
        let h = self.nodes.get(name)?;
        Some(NodeDetail {
            summary: summarize(name, &h.events, h.boots.len())?,
            history: h.events.clone(),
        })
    }
}

fn summarize(name: &str, events: &[StatusEvent], boots: usize) -> Option<NodeSummary> {
    let first = events.first()?;
    let last = events.last()?;
    let mut phases: BTreeMap<Phase, PhaseTiming> = BTreeMap::new();
    let mut last_error = None;
    let mut log_tail = Vec::new();
    for ev in events {
        let t = phases.entry(ev.phase).or_insert(PhaseTiming {
            state: ev.state,
            attempts: ev.attempt,
            started_at: ev.at,
            duration_ms: None,
        });
        t.state = ev.state;
        t.attempts = t.attempts.max(ev.attempt);
        if ev.state != PhaseState::Started {
            t.duration_ms = ev
                .duration_ms
                .or_else(|| u64::try_from((ev.at - t.started_at).num_milliseconds()).ok());
        }
        if let Some(e) = &ev.error {
            last_error = Some(e.clone());
            log_tail = ev.log_tail.clone();
        }
    }
    let done = last.phase == Phase::Done && last.state == PhaseState::Succeeded;
    let bootstrap_ms = done
        .then(|| u64::try_from((last.at - first.at).num_milliseconds()).ok())
        .flatten();
    let addresses = events
        .iter()
        .rev()
        .find_map(|e| e.facts.as_ref().map(|f| f.addresses.clone()))
        .unwrap_or_default();
    Some(NodeSummary {
        name: name.to_string(),
        role: events
            .iter()
            .rev()
            .find_map(|e| e.role.map(|r| r.as_str().to_string())),
        phase: last.phase,
        state: last.state,
        attempt: last.attempt,
        machine_id: last.machine_id.clone(),
        boot_id: last.boot_id.clone(),
        boots,
        events: events.len(),
        first_at: first.at,
        last_at: last.at,
        bootstrap_ms,
        phases,
        last_error,
        log_tail,
        addresses,
        agent_version: last.agent_version.clone(),
    })
}

/// One line per node: name, role, a bar of the eight phases, state, attempt, time, error.
pub fn table(nodes: &[NodeSummary]) -> String {
    let done = nodes.iter().filter(|n| n.done()).count();
    let failed = nodes.iter().filter(|n| n.failed()).count();
    let mut out = format!(
        "{} nodes: {done} done, {failed} failed, {} in progress\n",
        nodes.len(),
        nodes.len() - done - failed
    );
    let width = nodes.iter().map(|n| n.name.len()).max().unwrap_or(4).max(4);
    out.push_str(&format!(
        "{:width$}  {:13}  {:8}  {:20}  {:>3}  {:>7}  {}\n",
        "NODE", "ROLE", "PHASES", "STATE", "TRY", "TIME", "LAST ERROR"
    ));
    for n in nodes {
        let bar: String = Phase::ALL
            .iter()
            .map(|p| match n.phases.get(p).map(|t| t.state) {
                Some(PhaseState::Succeeded) => '#',
                Some(PhaseState::Failed) => 'X',
                Some(_) => '>',
                None => '.',
            })
            .collect();
        let ms = n
            .bootstrap_ms
            .unwrap_or_else(|| (n.last_at - n.first_at).num_milliseconds().max(0) as u64);
        let err = n
            .last_error
            .as_ref()
            .map(|e| format!("{}: {}", e.kind.as_str(), e.message))
            .unwrap_or_default();
        let err: String = if err.chars().count() > 100 {
            err.chars().take(99).chain(['…']).collect()
        } else {
            err
        };
        out.push_str(&format!(
            "{:width$}  {:13}  {bar}  {:20}  {:>3}  {:>6.1}s  {err}\n",
            n.name,
            n.role.as_deref().unwrap_or("-"),
            format!("{} {}", n.phase, n.state.as_str()),
            n.attempt,
            ms as f64 / 1000.0,
        ));
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn event(
        node: &str,
        boot: &str,
        seq: u64,
        phase: Phase,
        state: PhaseState,
    ) -> StatusEvent {
        StatusEvent {
            node: node.into(),
            machine_id: "m1".into(),
            boot_id: boot.into(),
            seq,
            role: Some(kubeboot_core::document::Role::Worker),
            phase,
            state,
            attempt: 1,
            at: DateTime::from_timestamp(1_700_000_000 + seq as i64, 0).unwrap(),
            duration_ms: None,
            error: None,
            log_tail: vec![],
            facts: None,
            agent_version: "0.1.0".into(),
        }
    }

    #[test]
    fn out_of_order_events_are_placed_by_boot_then_seq() {
        let mut n = Nodes::default();
        n.insert(event("w1", "b1", 2, Phase::Source, PhaseState::Succeeded));
        n.insert(event("w1", "b1", 1, Phase::Source, PhaseState::Started));
        n.insert(event("w1", "b2", 1, Phase::Kubeadm, PhaseState::Started));
        n.insert(event("w1", "b1", 3, Phase::Validate, PhaseState::Started));
        let d = n.detail("w1").unwrap();
        let order: Vec<(String, u64)> = d
            .history
            .iter()
            .map(|e| (e.boot_id.clone(), e.seq))
            .collect();
        assert_eq!(
            order,
            [("b1", 1), ("b1", 2), ("b1", 3), ("b2", 1)].map(|(b, s)| (b.to_string(), s))
        );
        assert_eq!(d.summary.phase, Phase::Kubeadm);
        assert_eq!(d.summary.boots, 2);
    }

    #[test]
    fn summary_keeps_last_error_and_bootstrap_time() {
        let mut n = Nodes::default();
        let mut failed = event("w1", "b1", 1, Phase::Discover, PhaseState::Retrying);
        failed.error = Some(ErrorReport {
            kind: kubeboot_core::status::ErrorKind::DiscoveryEndpointUnreachable,
            message: "connection refused".into(),
        });
        failed.log_tail = vec!["line".into()];
        n.insert(failed);
        n.insert(event("w1", "b1", 2, Phase::Discover, PhaseState::Succeeded));
        n.insert(event("w1", "b1", 9, Phase::Done, PhaseState::Succeeded));
        let s = &n.summaries()[0];
        assert!(s.settled());
        assert_eq!(s.bootstrap_ms, Some(8_000));
        assert_eq!(s.last_error.as_ref().unwrap().message, "connection refused");
        assert_eq!(s.log_tail, ["line"]);
        assert_eq!(s.phases[&Phase::Discover].duration_ms, Some(1_000));
    }

    #[test]
    fn a_node_keeps_its_newest_events_and_counts_the_dropped() {
        let mut n = Nodes::with_caps(10, 25);
        for seq in 1..=15 {
            n.insert(event("w1", "b1", seq, Phase::Kubeadm, PhaseState::Running));
        }
        let d = n.detail("w1").unwrap();
        assert_eq!(d.history.len(), 10);
        assert_eq!(d.history[0].seq, 6, "the oldest went");
        assert_eq!(n.dropped(), 5);
        // Past the total, the node silent for longest goes (w1: seq 15 is its
        // last, and `at` grows with seq).
        for seq in 100..110 {
            n.insert(event("w2", "b1", seq, Phase::Source, PhaseState::Started));
        }
        for seq in 200..206 {
            n.insert(event("w3", "b1", seq, Phase::Source, PhaseState::Started));
        }
        assert!(n.detail("w1").is_none());
        assert_eq!(n.events(), 16);
        assert_eq!(n.dropped(), 15);
        assert!(n.detail("w2").is_some() && n.detail("w3").is_some());
    }
}
