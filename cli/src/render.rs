use std::path::PathBuf;

use clap::Args;

use kubeboot_core::host::Host;
use kubeboot_core::kubeadm::{self, ApiVersion, ConfigPaths};
use kubeboot_core::redact::Redactor;

#[derive(Args, Debug)]
pub struct RenderArgs {
    /// The node document (TOML).
    #[arg(long, value_name = "PATH")]
    document: PathBuf,
    /// Render for this kubeadm version (v1beta4 for >= 1.31, v1beta3 for 1.22-1.30).
    /// Default: `kubeadm version -o short` on PATH, else the newest API.
    #[arg(long, value_name = "vX.Y.Z")]
    kubeadm_version: Option<String>,
    /// Print the bootstrap token and certificate key instead of <redacted>
    /// (to feed the file to kubeadm yourself; keep the output private).
    #[arg(long)]
    show_secrets: bool,
}

pub fn run(root: &std::path::Path, args: RenderArgs) -> u8 {
    let host = Host::system_at(root);
    let doc = match super::read_document(&args.document) {
        Ok((_, doc)) => doc,
        Err(code) => return code,
    };
    let version = kubeboot_agent::kubeadm::version_to_use(&host, args.kubeadm_version.as_deref());
    let api = match ApiVersion::for_version(version.as_deref()) {
        Ok(a) => a,
        Err(m) => {
            eprintln!("error: --kubeadm-version: {m}");
            return 2;
        }
    };
    let node_image = match kubeadm::NodeImage::read(&host) {
        Ok(i) => i,
        Err(m) => {
            eprintln!("error: {m}");
            return 2;
        }
    };
    match kubeadm::render(&doc, api, &ConfigPaths::default(), &node_image) {
        Ok(r) if args.show_secrets => print!("{}", r.expose()),
        Ok(r) => print!("{}", Redactor::for_document(&doc.doc).redact(r.expose())),
        Err(m) => {
            eprintln!("error: {m}");
            return 2;
        }
    }
    0
}
