//! `kubeboot nodes`: every Node of the cluster with its boot story, read from
//! the cluster itself (the `kubeboot.io/…` annotations each node's agent keeps).

use std::path::PathBuf;

use clap::Args;

use super::Output;
use kubeboot_kube::boot::{self as report, NodeBoot};

#[derive(Args, Debug)]
#[command(after_help = "\
Nodes without kubeboot annotations (joined some other way, or before kubeboot could report) are \
listed with phase \"-\". Exit codes: 0 listed, 1 the cluster could not be read, 2 bad arguments.")]
pub struct NodesArgs {
    /// Credentials that may list Nodes (e.g. the admin kubeconfig).
    #[arg(
        long,
        value_name = "FILE",
        env = "KUBECONFIG",
        default_value = "/etc/kubernetes/admin.conf"
    )]
    kubeconfig: PathBuf,
    /// Output format: text for people, json for scripts.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

pub fn run(args: NodesArgs) -> u8 {
    if !args.kubeconfig.exists() {
        eprintln!(
            "error: --kubeconfig {}: no such file (give the admin kubeconfig, e.g. `kubeboot up` prints it)",
            args.kubeconfig.display()
        );
        return 2;
    }
    let listed = kubeboot_kube::client::block_on(async {
        let client = kubeboot_kube::client::client(&args.kubeconfig).await?;
        report::list(&client).await
    });
    let nodes = match listed {
        Ok(n) => n,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    match args.output {
        Output::Json => println!("{}", serde_json::json!({ "nodes": nodes })),
        Output::Text => print!("{}", table(&nodes)),
    }
    0
}

pub fn table(nodes: &[NodeBoot]) -> String {
    let mut out = format!(
        "{:<24} {:<6} {:<10} {:<10} {:>8}  {}\n",
        "NAME", "READY", "PHASE", "STATE", "BOOT", "LAST FAILURE"
    );
    for n in nodes {
        let dash = || "-".to_string();
        out.push_str(&format!(
            "{:<24} {:<6} {:<10} {:<10} {:>8}  {}\n",
            n.name,
            if n.ready { "yes" } else { "no" },
            n.phase.clone().unwrap_or_else(dash),
            n.state.clone().unwrap_or_else(dash),
            n.boot_seconds
                .map(|s| format!("{s:.1}s"))
                .unwrap_or_else(dash),
            n.last_failure.clone().unwrap_or_default()
        ));
    }
    out
}
