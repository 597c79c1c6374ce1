//! `GET /metrics`: derived at scrape time from the stored state, so the figures
//! are the same after a restart. OpenMetrics text via prometheus-client.

use std::sync::atomic::Ordering;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::App;
use kubeboot_core::status::{Phase, PhaseState};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: String,
    state: String,
}

/// Seconds; a TCG VM takes minutes, a cloud node tens of seconds.
const DURATION_BUCKETS: [f64; 10] = [
    10.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1800.0, 3600.0,
];

pub(crate) fn render(app: &App) -> Result<String, String> {
    let mut registry = Registry::default();
    let nodes = Family::<PhaseLabels, Gauge>::default();
    let durations = Histogram::new(DURATION_BUCKETS);
    {
        let view = app.shared.nodes.read().expect("nodes lock");
        // Every phase/state pair is present (at 0), so dashboards can rely on the series.
        for phase in Phase::ALL {
            for state in [
                PhaseState::Started,
                PhaseState::Running,
                PhaseState::Succeeded,
                PhaseState::Retrying,
                PhaseState::Failed,
            ] {
                let _ = nodes.get_or_create(&labels(phase, state));
            }
        }
        for s in view.summaries() {
            nodes.get_or_create(&labels(s.phase, s.state)).inc();
            if let Some(ms) = s.bootstrap_ms {
                durations.observe(ms as f64 / 1000.0);
            }
        }
    }
    registry.register(
        "kubeboot_nodes",
        "Nodes by the phase and state of their latest event",
        nodes,
    );
    registry.register(
        "kubeboot_bootstrap_duration_seconds",
        "From a node's first event to done",
        durations,
    );
    for (name, help, value) in [
        (
            "kubeboot_events_received",
            "Status events stored",
            app.shared.received.load(Ordering::Relaxed),
        ),
        (
            "kubeboot_events_duplicate",
            "Status events received again and ignored",
            app.shared.duplicates.load(Ordering::Relaxed),
        ),
        (
            "kubeboot_events_dropped",
            "Status events serve no longer holds: past the cap per node or in all, oldest first",
            app.shared.nodes.read().expect("nodes lock").dropped(),
        ),
        (
            "kubeboot_credentials_minted",
            "Join credentials minted for documents (bootstrap tokens, certificate uploads)",
            app.minted.load(Ordering::Relaxed),
        ),
        (
            "kubeboot_requests_unauthorized",
            "Requests refused for a missing or wrong bearer token",
            app.rejected.load(Ordering::Relaxed),
        ),
    ] {
        let c: Counter = Counter::default();
        c.inc_by(value);
        registry.register(name, help, c);
    }
    let live: Gauge = Gauge::default();
    live.set(
        crate::blocking(|| super::minted::Ledger::new(&app.store).live(chrono::Utc::now()))
            .map_err(|e| e.to_string())? as i64,
    );
    registry.register(
        "kubeboot_minted_tokens_live",
        "Bootstrap tokens serve minted that still exist in the cluster as far as it knows: \
         served and not expired, or withdrawn and not yet deleted",
        live,
    );
    let mut out = String::new();
    encode(&mut out, &registry).map_err(|e| e.to_string())?;
    Ok(out)
}

fn labels(phase: Phase, state: PhaseState) -> PhaseLabels {
    PhaseLabels {
        phase: phase.as_str().into(),
        state: state.as_str().into(),
    }
}
