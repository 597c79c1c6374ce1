//! `kubeboot serve group add|list|revoke`: node groups (one user-data for a fleet).

use std::path::Path;

use clap::{Args, Subcommand};

use super::token::open;
use super::TokenFileArgs;
use crate::Output;
use kubeboot_serve::groups::{self, AddGroupError, GroupFile, NewGroup};

#[derive(Subcommand, Debug)]
pub(super) enum GroupCommand {
    /// Make a group and print its user-data (shown only now: it holds the group's
    /// enrollment credential).
    #[command(after_help = "\
The user-data is a pointer document: [source] url = \"URL/v1/groups/NAME/document\", serve's CA \
pin and the group's credential. Each machine booting with it asks serve (which must run with \
--bundle DIR --fresh-credentials) and gets a document made for it: a bootstrap token minted \
for it (valid 1 h), for control planes a fresh certificate key, the group's --label values, \
and a [report] table so it reports to serve. A control-plane group into a cluster that does \
not answer yet elects one machine to run kubeadm init; the others wait, then join.

Limits: --max-nodes distinct machines (a machine asking again is not counted twice), \
--per-minute documents; beyond them serve answers 403 or 429 and mints nothing.

Exit codes: 0, 1 the files could not be written, 2 bad arguments.")]
    Add(GroupAddArgs),
    /// The groups: role, limits, machines enrolled, revoked (never a credential).
    List(TokenFileArgs),
    /// Refuse the group's credential from the next request (joined machines stay).
    Revoke {
        #[command(flatten)]
        file: TokenFileArgs,
        /// The group's name.
        name: String,
    },
}

#[derive(Args, Debug)]
pub(super) struct GroupAddArgs {
    #[command(flatten)]
    file: TokenFileArgs,
    /// The group's name (lowercase letters, digits, '-').
    name: String,
    /// The role of every machine in the group.
    #[arg(long, value_parser = ["worker", "control-plane"])]
    role: String,
    /// serve as the machines reach it, https://HOST:PORT.
    #[arg(long, value_name = "URL")]
    url: String,
    /// The pin of serve's CA. Default: the CA serve made in DATA/tls (start serve once first).
    #[arg(long, value_name = "sha256:HEX")]
    ca_cert_hash: Option<String>,
    /// At most this many distinct machines get documents.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_nodes: Option<u32>,
    /// At most this many documents per minute.
    #[arg(long, value_name = "N", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    per_minute: u32,
    /// A label for every Node of the group, KEY=VALUE (repeatable; ones the kubelet may set).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// cloud-config (write_files /etc/kubeboot/node.toml) or the bare TOML document.
    #[arg(long, value_parser = ["cloud-config", "toml"], default_value = "cloud-config")]
    format: String,
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| "use KEY=VALUE".to_string())
}

pub(super) fn run(cmd: GroupCommand) -> u8 {
    let result = match cmd {
        GroupCommand::Add(a) => group_add(a),
        GroupCommand::List(f) => group_list(f),
        GroupCommand::Revoke { file, name } => group_revoke(file, &name),
    };
    match result {
        Ok(()) => 0,
        Err((code, e)) => {
            eprintln!("error: {e}");
            code
        }
    }
}

fn group_file(f: &TokenFileArgs) -> GroupFile {
    GroupFile::new(f.data.join(groups::FILE))
}

fn group_add(a: GroupAddArgs) -> Result<(), (u8, String)> {
    let ca_cert_hash = match a.ca_cert_hash {
        Some(h) => h,
        None => serve_ca_hash(&a.file.data).map_err(|e| (2, e))?,
    };
    let req = NewGroup {
        name: a.name.clone(),
        role: a.role.parse().map_err(|e: String| (2, e))?,
        url: a.url,
        ca_cert_hash,
        max_nodes: a.max_nodes,
        per_minute: a.per_minute,
        labels: a.labels.into_iter().collect(),
    };
    let tokens = open(&a.file);
    let (credential, group) = group_file(&a.file)
        .add(&req, &tokens)
        .map_err(|e| match e {
            AddGroupError::Invalid(e) => (2, e),
            AddGroupError::Files(e) => (1, e.to_string()),
        })?;
    let pointer = groups::pointer_document(&a.name, &group, &credential);
    let user_data = match a.format.as_str() {
        "toml" => pointer,
        _ => kubeboot_serve::userdata::cloud_config(&pointer),
    };
    match a.file.output {
        Output::Json => println!(
            "{}",
            serde_json::json!({
                "group": a.name, "role": group.role.as_str(), "user_data": user_data,
                "document_url": format!("{}/v1/groups/{}/document", group.url, a.name),
                "report_token_id": group.report_token_id,
            })
        ),
        Output::Text => {
            print!("{user_data}");
            eprintln!(
                "kubeboot: made node group {} ({}); the user-data above holds its credential and is \
                 shown only now. Machines get documents from {}/v1/groups/{}/document while serve \
                 runs with --bundle DIR --fresh-credentials --data {}",
                a.name,
                group.role,
                group.url,
                a.name,
                a.file.data.display()
            );
        }
    }
    Ok(())
}

/// The pin of the CA `serve --self-signed` made in DATA/tls.
fn serve_ca_hash(data: &Path) -> Result<String, String> {
    let ca = data.join("tls").join("ca.crt");
    let pem = std::fs::read(&ca).map_err(|e| {
        format!(
            "{}: {e}: start serve once to make its CA, or give --ca-cert-hash (the hash of the CA of serve's certificate)",
            ca.display()
        )
    })?;
    let der = kubeboot_core::tls::first_pem_certificate(&pem)?;
    kubeboot_core::tls::ca_hash_of_der(&der)
}

fn group_list(f: TokenFileArgs) -> Result<(), (u8, String)> {
    let file = group_file(&f);
    let all = file.load().map_err(|e| (1, e.to_string()))?;
    let mut rows = Vec::new();
    for (name, g) in &all {
        let enrolled = groups::enrolled_count(&f.data, name).map_err(|e| (1, e.to_string()))?;
        rows.push((name, g, enrolled));
    }
    match f.output {
        Output::Json => {
            let rows: Vec<_> = rows
                .iter()
                .map(|(name, g, enrolled)| {
                    serde_json::json!({
                        "name": name, "role": g.role.as_str(), "url": g.url,
                        "max_nodes": g.max_nodes, "per_minute": g.per_minute,
                        "labels": g.labels, "enrolled": enrolled, "created": g.created,
                        "revoked": g.revoked, "report_token_id": g.report_token_id,
                    })
                })
                .collect();
            println!("{}", serde_json::Value::Array(rows));
        }
        Output::Text => {
            println!(
                "{:<16}  {:<13}  {:>8}  {:>10}  {:<21}  labels",
                "group", "role", "enrolled", "per minute", "revoked"
            );
            for (name, g, enrolled) in &rows {
                let count = match g.max_nodes {
                    Some(m) => format!("{enrolled}/{m}"),
                    None => enrolled.to_string(),
                };
                let labels: Vec<String> =
                    g.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!(
                    "{:<16}  {:<13}  {:>8}  {:>10}  {:<21}  {}",
                    name,
                    g.role.as_str(),
                    count,
                    g.per_minute,
                    g.revoked.as_deref().unwrap_or("-"),
                    labels.join(",")
                );
            }
        }
    }
    Ok(())
}

fn group_revoke(f: TokenFileArgs, name: &str) -> Result<(), (u8, String)> {
    let g = group_file(&f)
        .revoke(name)
        .map_err(|e| (1, e.to_string()))?;
    eprintln!(
        "kubeboot: revoked node group {name}: serve refuses its credential from the next request. \
         Its report token (id {}) still works, so joined machines keep reporting; \
         `kubeboot serve token revoke {}` ends that too",
        g.report_token_id, g.report_token_id
    );
    Ok(())
}
