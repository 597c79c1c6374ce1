//! Small operator tools: `ca-hash` and `userdata`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::tls::ca_hash_of_der;

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
    let mut reader = pem.as_slice();
    let mut certs = rustls_pemfile::certs(&mut reader);
    let der = match certs.next() {
        Some(Ok(der)) => der,
        Some(Err(e)) => {
            eprintln!(
                "error: {}: malformed PEM certificate: {e}",
                args.cert.display()
            );
            return 2;
        }
        None => {
            eprintln!(
                "error: {}: no PEM CERTIFICATE block found (is it a key or a truncated file?)",
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
    /// The node document itself as raw user-data (the agent reads it from cloud-init's instance data).
    Toml,
}

#[derive(Args, Debug)]
pub struct UserDataArgs {
    /// The node document.
    #[arg(long, value_name = "PATH")]
    document: PathBuf,
    #[arg(long, value_enum, default_value_t)]
    format: UserDataFormat,
}

/// Render cloud-init user-data for a node document (validated first).
pub fn userdata(args: UserDataArgs) -> u8 {
    let text = match std::fs::read_to_string(&args.document) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: --document {}: {e}", args.document.display());
            return 2;
        }
    };
    if let Err(e) = crate::agent::validate_fully(&text) {
        super::print_invalid(&e);
        return 2;
    }
    match args.format {
        UserDataFormat::CloudConfig => print!("{}", crate::userdata::cloud_config(&text)),
        UserDataFormat::Toml => print!("{text}"),
    }
    0
}
