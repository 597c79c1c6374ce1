use std::path::Path;

use clap::Args;
use serde_json::json;

use super::Output;
use kubeboot_agent::agent::state::{Outcome, StateStore};
use kubeboot_agent::agent::DEFAULT_STATE_DIR;
use kubeboot_core::host::Host;
use kubeboot_core::status::StatusEvent;

#[derive(Args, Debug)]
#[command(
    after_help = "Exit codes: 0 done, 1 failed, 3 in progress, 4 kubeboot has not run on this node."
)]
pub struct StatusArgs {
    /// The agent's state dir (a path on the node).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STATE_DIR)]
    state_dir: String,
    /// Output format: text for people, json for scripts.
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
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&state.to_json(last_event.as_ref())).expect("json")
        ),
        Output::Text => print!("{}", state.describe()),
    }
    match state.outcome {
        Outcome::Done => 0,
        Outcome::Failed => 1,
        Outcome::Running => 3,
    }
}
