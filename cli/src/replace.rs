use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use secrecy::ExposeSecret;

use super::Output;
use kubeboot_kube::{discovery, replace};

#[derive(Args, Debug)]
#[command(
    after_help = "What a control-plane join does in its discover phase before kubeadm runs, \
from any machine that reaches the cluster: with the document's bootstrap token and certificate \
key it opens kubeadm's uploaded certificates, then deletes a same-name Node that has been silent \
past the grace period (refuses a Ready one) and removes at most one etcd member: one that a \
quorum of the other members see down for the whole grace period and whose Node is gone or silent, \
never without quorum, one change at a time across the cluster (an etcd lock).\n\n\
Exit codes: 0 nothing to do or cleaned up (or, with --dry-run, would be), 1 refused or failed (the \
message says why and what to do), 2 invalid document or not a control-plane join."
)]
pub struct ReplaceArgs {
    /// A control-plane join document (token discovery, certificate key).
    #[arg(long, value_name = "PATH")]
    document: PathBuf,
    /// Say what would be removed and why; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Override the document's [replace] grace_seconds.
    #[arg(long, value_name = "SECONDS")]
    grace: Option<u64>,
    /// Output format: text for people, json for scripts.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

/// Clean up (or show what would be cleaned up) after the machine a control-plane
/// join document replaces.
pub fn run(args: ReplaceArgs) -> u8 {
    let doc = match super::read_document(&args.document) {
        Ok((_, doc)) => doc,
        Err(code) => return code,
    };
    let d = &doc.doc.discovery;
    let Some(token) = d.token.as_ref().filter(|_| d.file.is_none()) else {
        eprintln!("error: replace needs a document with discovery.token (file discovery carries no bootstrap token)");
        return 2;
    };
    let verified = match discovery::verify_token(
        &doc.endpoint,
        token.expose_secret(),
        &d.ca_cert_hashes,
        Duration::from_secs(doc.doc.discovery_timeout_seconds()),
    ) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {} ({})", e.message, e.kind.as_str());
            return 1;
        }
    };
    let hostname = || {
        nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let Some((access, name)) = replace::for_join(&doc, &verified, hostname) else {
        eprintln!("error: only a control-plane join with discovery.certificate_key and [replace] enabled cleans up after a replaced machine");
        return 2;
    };
    let mut opts = replace::Options::for_document(&doc, args.dry_run);
    if let Some(g) = args.grace {
        opts.grace = Duration::from_secs(g);
    }
    if args.output == Output::Text {
        eprintln!(
            "replace: node {name} joining {} (grace {} s{})",
            verified.endpoint,
            opts.grace.as_secs(),
            if args.dry_run {
                ", dry run: nothing is changed"
            } else {
                ""
            }
        );
    }
    let result = kubeboot_kube::client::block_on(replace::make_room(&access, &name, &opts));
    match (result, args.output) {
        (Ok(report), Output::Json) => {
            let v = serde_json::json!({"node": name, "dry_run": args.dry_run, "refused": null, "report": report});
            println!("{v}");
            0
        }
        (Ok(report), Output::Text) => {
            for m in &report.etcd_members {
                println!(
                    "etcd member {:<28} {}",
                    m.label(),
                    if m.reachable {
                        "answers"
                    } else {
                        "does not answer"
                    }
                );
            }
            for note in &report.notes {
                println!("{note}");
            }
            for c in &report.cleanups {
                println!("{}", c.line());
            }
            0
        }
        (Err(why), Output::Json) => {
            println!(
                "{}",
                serde_json::json!({"node": name, "dry_run": args.dry_run, "refused": why})
            );
            1
        }
        (Err(why), Output::Text) => {
            eprintln!("error: {why}");
            1
        }
    }
}
