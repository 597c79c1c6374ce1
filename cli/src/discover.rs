use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use secrecy::ExposeSecret;

use super::Output;
use kubeboot_core::document;
use kubeboot_kube::discovery;

#[derive(Args, Debug)]
#[command(
    after_help = "Exit codes: 0 verified, 1 discovery failed (the error kind says why), 2 invalid document."
)]
pub struct DiscoverArgs {
    /// A join document (role control-plane or worker).
    #[arg(long, value_name = "PATH")]
    document: PathBuf,
    /// Give up after this many seconds (default: the document's discovery.timeout_seconds).
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<u64>,
    /// Output format: text for people, json for scripts.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

/// Verify, from this machine, the cluster a join document points at: what the
/// agent's discover phase does before kubeadm runs.
pub fn run(args: DiscoverArgs) -> u8 {
    let doc = match super::read_document(&args.document) {
        Ok((_, doc)) => doc,
        Err(code) => return code,
    };
    if doc.role == document::Role::Init {
        eprintln!("error: an init document has no cluster to discover yet (discover checks join documents)");
        return 2;
    }
    let timeout = Duration::from_secs(
        args.timeout
            .unwrap_or_else(|| doc.doc.discovery_timeout_seconds()),
    );
    let d = &doc.doc.discovery;
    let result = match (&d.file, &d.token) {
        (Some(file), _) if file.starts_with('/') => match std::fs::read_to_string(file) {
            Ok(t) => discovery::verify_file(&t, timeout),
            Err(e) => {
                eprintln!("error: discovery.file {file}: {e}");
                return 1;
            }
        },
        (Some(_), _) => {
            eprintln!("error: `kubeboot discover` reads discovery files from a path; the agent fetches https ones");
            return 2;
        }
        (None, Some(token)) => discovery::verify_token(
            &doc.endpoint,
            token.expose_secret(),
            &d.ca_cert_hashes,
            timeout,
        ),
        (None, None) => unreachable!("validated: joins carry a token or a file"),
    };
    match (result, args.output) {
        (Ok(v), Output::Json) => {
            println!(
                "{}",
                serde_json::json!({"verified": true, "endpoint": v.endpoint, "server": v.server, "ca_subject": v.ca_subject, "ca_hash": v.ca_hash})
            );
            0
        }
        (Ok(v), Output::Text) => {
            println!(
                "verified: {} is the cluster whose CA is {:?} ({})",
                v.endpoint, v.ca_subject, v.ca_hash
            );
            0
        }
        (Err(e), Output::Json) => {
            println!(
                "{}",
                serde_json::json!({"verified": false, "error": {"kind": e.kind, "message": e.message}})
            );
            1
        }
        (Err(e), Output::Text) => {
            eprintln!("error ({}): {}", e.kind.as_str(), e.message);
            1
        }
    }
}
