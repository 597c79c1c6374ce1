//! `kubeboot serve token add|list|revoke`: the bearer tokens nodes and operators present.

use clap::{Args, Subcommand};

use super::{token_path, TokenFileArgs};
use crate::Output;
use kubeboot_serve::tokens::{Scope, TokenFile};

#[derive(Subcommand, Debug)]
pub(super) enum TokenCommand {
    /// Make a token and print it (only this once; the file keeps its hash).
    #[command(after_help = "\
Scopes: report (post status events: the [report] token every node carries), \
documents:worker, documents:control-plane, documents:init (read that role's document; \
init tokens are always once-only), admin (all but the init document).

--once: the token is spent by its first use. Use it for a kernel command line \
(kubeboot.token=, PXE), which every user of the node can read.

Prints the token alone on stdout (--output json: token, id, scope, once). Exit codes: 0, 1 the \
file could not be written, 2 bad arguments.")]
    Add(TokenAddArgs),
    /// The tokens in the file: id, scope, once, used, note (never the token).
    List(TokenFileArgs),
    /// Remove the token whose id starts with ID (6 or more hex digits).
    Revoke {
        #[command(flatten)]
        file: TokenFileArgs,
        /// The token's id, from `serve token list` or `serve token add`.
        id: String,
    },
}

#[derive(Args, Debug)]
pub(super) struct TokenAddArgs {
    #[command(flatten)]
    file: TokenFileArgs,
    /// What the token may do: report, documents:ROLE or admin.
    #[arg(long, value_parser = Scope::parse)]
    scope: Scope,
    /// Spent by its first use.
    #[arg(long)]
    once: bool,
    /// A note kept beside the hash (who or what the token is for).
    #[arg(long, default_value = "")]
    note: String,
}

pub(super) fn run(cmd: TokenCommand) -> u8 {
    let result = match cmd {
        TokenCommand::Add(a) => token_add(a),
        TokenCommand::List(f) => token_list(f),
        TokenCommand::Revoke { file, id } => token_revoke(file, &id),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

pub(super) fn open(f: &TokenFileArgs) -> TokenFile {
    TokenFile::new(token_path(&f.data, &f.token_file))
}

fn token_add(a: TokenAddArgs) -> Result<(), String> {
    let file = open(&a.file);
    let (token, grant) = file
        .add(a.scope, a.once, &a.note)
        .map_err(|e| e.to_string())?;
    match a.file.output {
        Output::Json => println!(
            "{}",
            serde_json::json!({
                "token": token,
                "id": grant.id(),
                "scope": grant.scope.to_string(),
                "once": grant.once,
                "file": file.path(),
            })
        ),
        Output::Text => {
            println!("{token}");
            eprintln!(
                "kubeboot: made a {}{} token, id {}, in {}; it is shown only now",
                grant.scope,
                if grant.once { " once-only" } else { "" },
                grant.id(),
                file.path().display()
            );
        }
    }
    Ok(())
}

fn token_list(f: TokenFileArgs) -> Result<(), String> {
    let file = open(&f);
    let grants = file.load().map_err(|e| e.to_string())?;
    match f.output {
        Output::Json => {
            let rows: Vec<_> = grants
                .iter()
                .map(|g| {
                    serde_json::json!({
                        "id": g.id(), "scope": g.scope.to_string(), "once": g.once,
                        "used": g.used, "note": g.note,
                    })
                })
                .collect();
            println!("{}", serde_json::Value::Array(rows));
        }
        Output::Text => {
            println!("{:<12}  {:<24}  {:<25}  note", "id", "scope", "once/used");
            for g in &grants {
                let once = match (&g.used, g.once) {
                    (Some(at), _) => format!("used {at}"),
                    (None, true) => "once, unused".into(),
                    (None, false) => "-".into(),
                };
                println!(
                    "{:<12}  {:<24}  {:<25}  {}",
                    g.id(),
                    g.scope.to_string(),
                    once,
                    g.note
                );
            }
        }
    }
    Ok(())
}

fn token_revoke(f: TokenFileArgs, id: &str) -> Result<(), String> {
    let file = open(&f);
    match file.revoke(id).map_err(|e| e.to_string())? {
        0 => Err(format!(
            "no token with an id starting {id} in {}",
            file.path().display()
        )),
        n => {
            eprintln!("kubeboot: revoked {n} token(s); serve refuses them from the next request");
            Ok(())
        }
    }
}
