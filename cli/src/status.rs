use std::path::Path;

use clap::Args;
use serde_json::json;

use super::Output;
use kubeboot_agent::agent::state::{Outcome, StateStore};
use kubeboot_agent::agent::DEFAULT_STATE_DIR;
use kubeboot_core::host::Host;
use kubeboot_core::status::{Phase, StatusEvent};

#[derive(Args, Debug)]
#[command(
    after_help = "Exit codes: 0 done, 1 failed, 3 in progress, 4 kubeboot has not run on this node."
)]
pub struct StatusArgs {
    /// The agent's state dir (a path on the node).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STATE_DIR)]
    state_dir: String,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

pub fn run(root: &Path, args: StatusArgs) -> u8 {
    let host = Host::new(root, Default::default());
    let store = StateStore::new(host.clone(), args.state_dir.clone());
    let last_event: Option<StatusEvent> = host
        .read_to_string(kubeboot_core::status::STATUS_FILE)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let state = match store.load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let Some(state) = state else {
        match args.output {
            Output::Json => println!(
                "{}",
                json!({"outcome": "not_started", "last_event": last_event})
            ),
            Output::Text => {
                println!(
                    "kubeboot has not recorded any progress in {} on this node.",
                    args.state_dir
                );
                if let Some(ev) = &last_event {
                    println!("last event: {}", ev.console_line());
                }
            }
        }
        return 4;
    };
    match args.output {
        Output::Json => {
            let v = json!({
                "node": state.node,
                "role": state.role,
                "outcome": state.outcome,
                "current_phase": state.next_phase(),
                "failed_phase": state.failed_phase,
                "kubeadm_runs": state.kubeadm_runs,
                "total_ms": state.total_ms(),
                "phases": state.phases,
                "last_error": state.last_error,
                "log_tail": state.log_tail,
                "document_origin": state.document_origin,
                "last_event": last_event,
            });
            println!("{}", serde_json::to_string_pretty(&v).expect("json"));
        }
        Output::Text => {
            let outcome = match state.outcome {
                Outcome::Done => "done".to_string(),
                Outcome::Failed => format!(
                    "FAILED in {}",
                    state.failed_phase.map_or("?", Phase::as_str)
                ),
                Outcome::Running => format!(
                    "in progress ({})",
                    state.next_phase().map_or("?", Phase::as_str)
                ),
            };
            println!("node {} ({}): {outcome}", state.node, state.role);
            println!("document: {}", state.document_origin);
            println!(
                "{:<10} {:<10} {:>7} {:>10}",
                "PHASE", "STATE", "ATTEMPT", "DURATION"
            );
            for phase in Phase::ALL {
                match state.phases.get(&phase) {
                    Some(r) => println!(
                        "{:<10} {:<10} {:>7} {:>10}",
                        phase.as_str(),
                        r.state.as_str(),
                        r.attempt,
                        r.duration_ms
                            .map(|ms| format!("{:.1}s", ms as f64 / 1000.0))
                            .unwrap_or_default()
                    ),
                    None => println!("{:<10} {:<10}", phase.as_str(), "-"),
                }
            }
            if let Some(total) = state.total_ms() {
                println!(
                    "total: {:.1}s; kubeadm ran {} time(s)",
                    total as f64 / 1000.0,
                    state.kubeadm_runs
                );
            }
            if let Some(e) = &state.last_error {
                println!("last error ({}): {}", e.kind.as_str(), e.message);
            }
            if !state.log_tail.is_empty() {
                println!("log tail:");
                for l in &state.log_tail {
                    println!("  {l}");
                }
            }
        }
    }
    match state.outcome {
        Outcome::Done => 0,
        Outcome::Failed => 1,
        Outcome::Running => 3,
    }
}
