//! Small operator tools: `ca-hash` and `userdata`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use kubeboot_core::tls::ca_hash_of_der;

#[derive(Args, Debug)]
pub struct CaHashArgs {
    /// A PEM certificate (the cluster CA, usually /etc/kubernetes/pki/ca.crt).
    cert: PathBuf,
}

/// Print `sha256:<hex>` of the certificate's DER SubjectPublicKeyInfo, as kubeadm computes it.
pub fn ca_hash(args: CaHashArgs) -> u8 {
    let pem = match std::fs::read(&args.cert) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {}: {e}", args.cert.display());
            return 2;
        }
    };
    let der = match kubeboot_core::tls::first_pem_certificate(&pem) {
        Ok(der) => der,
        Err(e) => {
            eprintln!(
                "error: {}: {e} (is it a key or a truncated file?)",
                args.cert.display()
            );
            return 2;
        }
    };
    match ca_hash_of_der(&der) {
        Ok(h) => {
            println!("{h}");
            0
        }
        Err(e) => {
            eprintln!("error: {}: {e}", args.cert.display());
            2
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, Default)]
pub enum UserDataFormat {
    /// `#cloud-config` writing the document to /etc/kubeboot/node.toml (0600).
    #[default]
    CloudConfig,
    /// MIME multipart with the document as a `text/x-kubeboot` part (add your own parts beside it).
    Mime,
    /// The node document itself as raw user-data (the agent reads it from cloud-init's instance data).
    Toml,
}

#[derive(Args, Debug)]
pub struct UserDataArgs {
    /// The node document, or a pointer document (`[source]` only).
    #[arg(long, value_name = "PATH")]
    document: PathBuf,
    /// Output format: text for people, json for scripts.
    #[arg(long, value_enum, default_value_t)]
    format: UserDataFormat,
}

/// Render cloud-init user-data for a node document (validated first).
pub fn userdata(args: UserDataArgs) -> u8 {
    let text = match super::read_deliverable(&args.document) {
        Ok((text, _)) => text,
        Err(code) => return code,
    };
    match args.format {
        UserDataFormat::CloudConfig => print!("{}", kubeboot_serve::userdata::cloud_config(&text)),
        UserDataFormat::Mime => print!("{}", kubeboot_serve::userdata::mime(&text)),
        UserDataFormat::Toml => print!("{text}"),
    }
    0
}

#[derive(Args, Debug)]
pub struct SeedArgs {
    /// The node document, or a pointer document (`[source]` only, e.g. a node
    /// group's user-data from `kubeboot serve group add --format toml`).
    #[arg(long, value_name = "PATH")]
    document: PathBuf,
    /// Use this file as meta-data instead of generating one.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["instance_id", "hostname"])]
    meta_data: Option<PathBuf>,
    /// instance-id for the generated meta-data (default: derived from the document and time).
    #[arg(long)]
    instance_id: Option<String>,
    /// local-hostname for the generated meta-data (default: the document's node.name).
    #[arg(long)]
    hostname: Option<String>,
    /// A network-config file (cloud-init network config v1 or v2) to include.
    #[arg(long, value_name = "FILE")]
    network_config: Option<PathBuf>,
    /// Where to write the ISO.
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
}

/// Make a NoCloud seed ISO (label cidata) whose user-data delivers the document.
pub fn seed(args: SeedArgs) -> u8 {
    let read = |p: &PathBuf, what: &str| {
        std::fs::read_to_string(p).map_err(|e| format!("{what} {}: {e}", p.display()))
    };
    let run = || -> Result<u8, String> {
        let (text, what) = match super::read_deliverable(&args.document) {
            Ok(read) => read,
            Err(code) => return Ok(code),
        };
        let (role, name) = match &what {
            super::Deliverable::Document(doc) => (doc.role.to_string(), doc.node_name()),
            super::Deliverable::Pointer => ("node".to_string(), None),
        };
        let meta = match &args.meta_data {
            Some(p) => read(p, "--meta-data")?,
            None => {
                let id = args.instance_id.clone().unwrap_or_else(|| {
                    format!(
                        "kubeboot-{role}-{}",
                        chrono::Utc::now().format("%Y%m%d%H%M%S")
                    )
                });
                let host = args.hostname.as_deref().or(name);
                kubeboot_serve::userdata::meta_data(&id, host)
            }
        };
        let network = args
            .network_config
            .as_ref()
            .map(|p| read(p, "--network-config"))
            .transpose()?;
        kubeboot_serve::userdata::write_seed(
            &kubeboot_serve::userdata::cloud_config(&text),
            &meta,
            network.as_deref(),
            &args.out,
        )?;
        eprintln!(
            "kubeboot: wrote NoCloud seed {} (label cidata, mode 0600) for {}",
            args.out.display(),
            match what {
                super::Deliverable::Document(_) => format!("the role {role}"),
                super::Deliverable::Pointer =>
                    "a pointer document (the role comes from its server)".into(),
            }
        );
        Ok(0)
    };
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}
