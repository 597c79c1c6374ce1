//! `kubeboot document set`: fit a node document to one machine (its name,
//! address, report receiver, longer waits) through the same writer bundle,
//! serve and up use, so scripts never hand-assemble TOML.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use kubeboot_core::document::writer::{value_from_text, Writer};
use toml::Value;

use super::Output;

#[derive(Args, Debug)]
pub struct DocumentArgs {
    #[command(subcommand)]
    command: DocumentCommand,
}

#[derive(Subcommand, Debug)]
enum DocumentCommand {
    /// Set keys of a node document and write the result, validated as the agent would.
    Set(SetArgs),
}

#[derive(Args, Debug)]
#[command(after_help = "\
Keys are TOML key paths: node.name, discovery.timeout_seconds, node.labels.\"example.com/rack\". \
A value is TOML when it reads as TOML (2400, true, \"text\", [\"a\"]), else the text itself. \
Secrets (tokens, keys) come from a file (--set-file) or an environment variable (--set-env), \
never from the command line, where other users of the machine can read them.

The result is validated as the agent would validate it (kubeadm's configuration included) \
before anything is written; --out is written atomically, mode 0600 (a node document holds secrets). \
The document's leading comment lines are kept.

Example:
  kubeboot document set --document bundle/nodes/worker.toml --out w1.toml \\
    --set node.name=w1 --set report.url=https://10.0.2.100:8443/v1 \\
    --set-env report.token=REPORT_TOKEN --set report.ca_cert_hash=sha256:…

Exit codes: 0 written, 2 bad input (unreadable document, bad key, invalid result; nothing written).")]
struct SetArgs {
    /// The node document to start from (TOML).
    #[arg(long, value_name = "PATH")]
    document: PathBuf,
    /// Where to write the result (may be --document itself).
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
    /// KEY=VALUE: set KEY to VALUE (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// KEY=PATH: set KEY to the contents of the file PATH, trailing newline removed (repeatable).
    #[arg(long = "set-file", value_name = "KEY=PATH")]
    set_file: Vec<String>,
    /// KEY=VAR: set KEY to the environment variable VAR (repeatable).
    #[arg(long = "set-env", value_name = "KEY=VAR")]
    set_env: Vec<String>,
    /// text: one line saying what was written; json: {"document", "keys"}.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

pub fn run(args: DocumentArgs) -> u8 {
    match args.command {
        DocumentCommand::Set(a) => set(a),
    }
}

fn set(a: SetArgs) -> u8 {
    let text = match super::read_document_text(&a.document) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let written = assignments(&a).and_then(|sets| {
        let mut w = Writer::parse(&text).map_err(|e| format!("--document: {e}"))?;
        for (key, value) in &sets {
            w.set_dotted(key, value.clone())
                .map_err(|e| e.to_string())?;
        }
        Ok((
            w.render(),
            sets.into_iter().map(|(k, _)| k).collect::<Vec<_>>(),
        ))
    });
    let (doc, keys) = match written {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    if let Err(e) = kubeboot_core::kubeadm::validate_fully(&doc) {
        eprintln!("error: the result would not be a valid node document; nothing written");
        return super::invalid_input(e);
    }
    if let Err(e) = kubeboot_core::host::write_file_atomic(&a.out, doc.as_bytes(), 0o600) {
        eprintln!("error: --out {}: {e}", a.out.display());
        return 2;
    }
    match a.output {
        Output::Json => println!("{}", serde_json::json!({ "document": a.out, "keys": keys })),
        Output::Text => println!("wrote {} (set {})", a.out.display(), keys.join(", ")),
    }
    0
}

/// Every --set, --set-file and --set-env as (key, value), or the first bad one.
fn assignments(a: &SetArgs) -> Result<Vec<(String, Value)>, String> {
    let split = |flag: &str, arg: &str| -> Result<(String, String), String> {
        let (k, v) = arg
            .split_once('=')
            .ok_or_else(|| format!("{flag} {:?}: expected KEY=…", key_of(arg)))?;
        Ok((k.trim().to_string(), v.to_string()))
    };
    let mut out = Vec::new();
    for arg in &a.set {
        let (k, v) = split("--set", arg)?;
        out.push((k, value_from_text(&v)));
    }
    for arg in &a.set_file {
        let (k, path) = split("--set-file", arg)?;
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("--set-file {k}={path}: {e}"))?;
        out.push((k, Value::String(text.trim_end_matches('\n').to_string())));
    }
    for arg in &a.set_env {
        let (k, var) = split("--set-env", arg)?;
        let v = std::env::var(&var).map_err(|_| {
            format!("--set-env {k}={var}: the environment variable {var} is not set")
        })?;
        out.push((k, Value::String(v)));
    }
    if out.is_empty() {
        return Err("nothing to set: give --set, --set-file or --set-env".into());
    }
    Ok(out)
}

/// The key part of an argument, for errors (never its value: it may be a secret).
fn key_of(arg: &str) -> &str {
    arg.split('=').next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(set: &[&str], file: &[&str], env: &[&str]) -> SetArgs {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        SetArgs {
            document: "in.toml".into(),
            out: "out.toml".into(),
            set: v(set),
            set_file: v(file),
            set_env: v(env),
            output: Output::Text,
        }
    }

    #[test]
    fn assignments_read_values_from_text_files_and_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        std::fs::write(&f, "abcdef.0123456789abcdef\n").unwrap();
        std::env::set_var("KUBEBOOT_TEST_DOCUMENT_SET", "from-env");
        let a = args(
            &["discovery.timeout_seconds=2400", "node.name=w1"],
            &[&format!("report.token={}", f.display())],
            &["report.url=KUBEBOOT_TEST_DOCUMENT_SET"],
        );
        let sets = assignments(&a).unwrap();
        assert_eq!(sets[0].1.as_integer(), Some(2400));
        assert_eq!(sets[1].1.as_str(), Some("w1"));
        assert_eq!(sets[2].1.as_str(), Some("abcdef.0123456789abcdef"));
        assert_eq!(sets[3].1.as_str(), Some("from-env"));
    }

    #[test]
    fn a_bad_assignment_is_named_without_its_value() {
        let err = assignments(&args(&["node.name"], &[], &[])).unwrap_err();
        assert!(err.contains("--set \"node.name\": expected KEY="), "{err}");
        let err =
            assignments(&args(&[], &[], &["report.token=KUBEBOOT_TEST_UNSET_VAR"])).unwrap_err();
        assert!(err.contains("KUBEBOOT_TEST_UNSET_VAR is not set"), "{err}");
        let err = assignments(&args(&[], &[], &[])).unwrap_err();
        assert!(err.contains("nothing to set"), "{err}");
    }
}
