//! `kubeboot serve election show|reset`: the init election's record in serve's store.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::DEFAULT_DATA_DIR;
use crate::Output;
use kubeboot_serve::election::{self, Elected};
use kubeboot_serve::journal::{Action, ActionKind, ServeEvent};
use kubeboot_serve::Store;

#[derive(Subcommand, Debug)]
pub(super) enum ElectionCommand {
    /// Who was elected to run `kubeadm init`, in which term, and whether the
    /// cluster is known to be initialised (then nobody is ever elected again).
    Show(ElectionArgs),
    /// Forget the election, so that the next control plane to ask while nothing
    /// answers at the endpoint runs `kubeadm init` again. Only to rebuild a cluster
    /// on purpose, after every machine of the old one is stopped: otherwise it makes
    /// a second cluster under the same CA. Stop serve first (it holds the store).
    /// Recorded in serve's own events.
    #[command(
        after_help = "Exit codes: 0 reset (or nothing to reset), 1 the store could not be \
        opened or written (is serve still running?), 2 without --yes."
    )]
    Reset {
        #[command(flatten)]
        args: ElectionArgs,
        /// Yes, reset it: the cluster is being rebuilt on purpose.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Args, Debug)]
pub(super) struct ElectionArgs {
    /// serve's data directory (its store).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DATA_DIR)]
    data: PathBuf,
    /// Output format: text for people, json for scripts.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

pub(super) fn run(cmd: ElectionCommand) -> u8 {
    match cmd {
        ElectionCommand::Show(a) => report(show(&a), &a, ""),
        ElectionCommand::Reset { args, yes: false } => {
            eprintln!(
                "error: `serve election reset` forgets that the cluster behind {} was \
                 initialised, so the next control plane may run kubeadm init again; nothing was \
                 changed. Stop every machine of the old cluster and serve, then run it with --yes",
                args.data.display()
            );
            2
        }
        ElectionCommand::Reset { args, yes: true } => {
            report(reset(&args), &args, "reset; the record was:\n")
        }
    }
}

fn open(data: &std::path::Path) -> Result<Store, String> {
    Store::open(data).map(|(store, _)| store).map_err(|e| {
        format!(
            "{e} (is kubeboot serve still running on {}? stop it first)",
            data.display()
        )
    })
}

fn show(a: &ElectionArgs) -> Result<Option<Elected>, String> {
    election::recorded(&open(&a.data)?)
}

fn reset(a: &ElectionArgs) -> Result<Option<Elected>, String> {
    let store = open(&a.data)?;
    let before = election::reset(&store)?;
    if let Some(e) = &before {
        let message = format!(
            "init election reset by the operator (was: {} term {}, initialised {})",
            e.node,
            e.term,
            e.initialised_at.map_or("no".into(), |t| t
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        );
        tracing::warn!("{message}");
        let mut events = ServeEvent::for_request(
            &[Action::new(ActionKind::ElectionReset, message)],
            "kubeboot serve election reset --yes",
            None,
            chrono::Utc::now(),
        );
        store
            .append_serve_events(&mut events)
            .map_err(|e| e.to_string())?;
    }
    Ok(before)
}

fn report(result: Result<Option<Elected>, String>, a: &ElectionArgs, label: &str) -> u8 {
    let record = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    match a.output {
        Output::Json => println!("{}", serde_json::json!({ "election": record })),
        Output::Text => match &record {
            None => println!("no init election recorded"),
            Some(e) => println!(
                "{label}term {}: {} (machine {}) elected at {}: {}\ninitialised: {}",
                e.term,
                e.node,
                e.machine_id,
                e.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                e.why,
                e.initialised_at.map_or("not known".into(), |t| format!(
                    "{} (nobody is elected again)",
                    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ))
            ),
        },
    }
    0
}
