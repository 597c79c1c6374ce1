use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::Output;
use kubeboot_serve::bundle::{self, NewBundle, Rotate, Summary};

#[derive(Args, Debug)]
pub struct BundleArgs {
    #[command(subcommand)]
    command: BundleCommand,
}

#[derive(Subcommand, Debug)]
enum BundleCommand {
    /// Make a cluster's CAs, service-account keys, bootstrap token, certificate key and CA hash,
    /// and one node document and cloud-config per role.
    New(NewArgs),
    /// Give an existing bundle a fresh bootstrap token and rewrite its documents.
    Token(RotateArgs),
    /// Give an existing bundle a fresh certificate key and rewrite its documents.
    CertificateKey(RotateArgs),
    /// Write a kubeconfig signed by the bundle's cluster CA (default: cluster-admin, 24 h).
    ///
    /// The bundle made the cluster CA before any node existed, so the operator can mint
    /// credentials without copying admin.conf off a node. The file holds a private key (0600).
    Kubeconfig(KubeconfigArgs),
}

#[derive(Args, Debug)]
struct KubeconfigArgs {
    /// The bundle directory.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Where to write the kubeconfig (mode 0600).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// The user name (certificate CN).
    #[arg(long, default_value = "kubeboot-admin")]
    user: String,
    /// Groups (certificate O); system:masters is cluster-admin.
    #[arg(long = "group", value_name = "GROUP", default_values_t = ["system:masters".to_string()])]
    groups: Vec<String>,
    /// How long the certificate is valid.
    #[arg(long, value_name = "HOURS", default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=8760))]
    valid_hours: u64,
    /// API server URL (default: https://ENDPOINT from the bundle).
    #[arg(long, value_name = "URL")]
    server: Option<String>,
}

#[derive(Args, Debug)]
struct NewArgs {
    /// The control-plane endpoint every node uses (the load balancer), HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    endpoint: String,
    /// Cluster name (ClusterConfiguration.clusterName).
    #[arg(long)]
    name: Option<String>,
    /// Kubernetes version for ClusterConfiguration (default: the kubeadm the nodes carry decides).
    #[arg(long, value_name = "vX.Y.Z")]
    kubernetes_version: Option<String>,
    /// Pod network CIDR (kubeadm's podSubnet; the CNI's range).
    #[arg(long, value_name = "CIDR")]
    pod_subnet: Option<String>,
    /// External etcd client URLs (the external-etcd topology; no etcd CA is made then).
    #[arg(long, value_name = "URL,...", value_delimiter = ',')]
    external_etcd: Vec<String>,
    /// The external etcd's CA certificate (PEM). With --external-etcd-cert and
    /// --external-etcd-key, the init document carries all three (the key is a
    /// secret) and kubeadm uploads them for control-plane joins; without them,
    /// the init node must hold them at /etc/kubernetes/pki/etcd/ca.crt and
    /// apiserver-etcd-client.{crt,key}.
    #[arg(long, value_name = "PEM", requires_all = ["external_etcd", "external_etcd_cert", "external_etcd_key"])]
    external_etcd_ca: Option<PathBuf>,
    /// The API servers' etcd client certificate (PEM), signed by --external-etcd-ca.
    #[arg(long, value_name = "PEM", requires = "external_etcd_ca")]
    external_etcd_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, value_name = "PEM", requires = "external_etcd_ca")]
    external_etcd_key: Option<PathBuf>,
    /// Tune the node documents for emulated VMs (qemu TCG) or heavily shared hosts:
    /// longer kubeadm and probe waits, relaxed liveness restarts, slower etcd
    /// heartbeats and leader-election leases (README: "Slow hosts").
    #[arg(long)]
    slow_host: bool,
    /// The bundle directory to create.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Replace an existing bundle at --out (its CA is lost: existing clusters no longer match).
    #[arg(long)]
    force: bool,
    /// Output format: text for people, json for scripts.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

#[derive(Args, Debug)]
struct RotateArgs {
    /// The bundle directory.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Output format: text for people, json for scripts.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

pub fn run(args: BundleArgs) -> u8 {
    let (result, output, what) = match args.command {
        BundleCommand::Kubeconfig(a) => return write_kubeconfig(a),
        BundleCommand::New(a) => {
            let req = NewBundle {
                endpoint: a.endpoint,
                name: a.name,
                kubernetes_version: a.kubernetes_version,
                pod_subnet: a.pod_subnet,
                external_etcd: a.external_etcd,
                external_etcd_client: match (
                    a.external_etcd_ca,
                    a.external_etcd_cert,
                    a.external_etcd_key,
                ) {
                    (Some(ca), Some(cert), Some(key)) => {
                        Some(bundle::EtcdClientFiles { ca, cert, key })
                    }
                    _ => None,
                },
                slow_host: a.slow_host,
            };
            (
                bundle::create(&req, &a.out, a.force),
                a.output,
                "new bundle",
            )
        }
        BundleCommand::Token(a) => (
            bundle::rotate(&a.dir, Rotate::Token),
            a.output,
            "new bootstrap token",
        ),
        BundleCommand::CertificateKey(a) => (
            bundle::rotate(&a.dir, Rotate::CertificateKey),
            a.output,
            "new certificate key",
        ),
    };
    match result {
        Ok(s) => {
            print_summary(&s, output, what);
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}

fn print_summary(s: &Summary, output: Output, what: &str) {
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(s).expect("json"));
        return;
    }
    println!("{}", s.ca_cert_hash);
    eprintln!("kubeboot: {what} in {}", s.dir.display());
    eprintln!("  endpoint        {}", s.endpoint);
    eprintln!(
        "  CA hash         {}  (the line above; pin it in every join)",
        s.ca_cert_hash
    );
    eprintln!(
        "  bootstrap token {}.<secret>  (in discovery.toml)",
        s.token_id
    );
    eprintln!("  files (secrets are 0600):");
    for f in &s.files {
        eprintln!("    {f}");
    }
    eprintln!("  next: give nodes/init.toml (or cloud-init/init.yaml) to the first control plane,");
    eprintln!("        control-plane.* and worker.* to the rest; all may boot at once.");
}

fn write_kubeconfig(a: KubeconfigArgs) -> u8 {
    let made = bundle::kubeconfig(
        &a.dir,
        &a.user,
        &a.groups,
        a.valid_hours,
        a.server.as_deref(),
    )
    .map_err(|e| e.to_string())
    .and_then(|yaml| {
        kubeboot_core::host::write_file_atomic(&a.out, yaml.as_bytes(), 0o600)
            .map_err(|e| format!("{}: {e}", a.out.display()))
    });
    match made {
        Ok(()) => {
            println!(
                "kubeconfig: {} ({} in {}, valid {} h; holds a private key, mode 0600)",
                a.out.display(),
                a.user,
                a.groups.join(","),
                a.valid_hours
            );
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}
