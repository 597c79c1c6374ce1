//! kubeadm as the node document meets it: which config API a kubeadm version
//! speaks, the configuration rendered for it, the command line, and the image
//! manifest (`/usr/share/kubeboot/image.json`) that says which Kubernetes an
//! image carries. No I/O beyond reading that manifest: running kubeadm is the
//! agent's (`kubeboot_agent::kubeadm`).

mod config;
mod image;

pub use config::{
    render, service_range_is_ipv4, startup_patches, ConfigPaths, Rendered, STARTUP_PATCHES_DIR,
};
pub use image::{NodeImage, COREDNS_PHASE};

use crate::document::formats::parse_kubernetes_version;
use crate::document::{self, InvalidDocument, Role, ValidDocument};

/// The kubeadm configuration API group versions kubeboot renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    /// kubeadm 1.22–1.30.
    V1Beta3,
    /// kubeadm ≥ 1.31.
    V1Beta4,
}

impl ApiVersion {
    pub const NEWEST: ApiVersion = ApiVersion::V1Beta4;

    pub fn group_version(self) -> &'static str {
        match self {
            ApiVersion::V1Beta3 => "kubeadm.k8s.io/v1beta3",
            ApiVersion::V1Beta4 => "kubeadm.k8s.io/v1beta4",
        }
    }

    /// The API version for a kubeadm version, or the newest when the version is unknown.
    pub fn for_version(version: Option<&str>) -> Result<ApiVersion, String> {
        version.map_or(Ok(ApiVersion::NEWEST), ApiVersion::for_kubeadm)
    }

    /// The API version a given kubeadm release reads and prefers.
    pub fn for_kubeadm(version: &str) -> Result<ApiVersion, String> {
        let (major, minor, _) = parse_kubernetes_version(version.trim())
            .map_err(|why| format!("kubeadm version {version:?} {why}"))?;
        match (major, minor) {
            (1, m) if m >= 31 => Ok(ApiVersion::V1Beta4),
            (1, 22..=30) => Ok(ApiVersion::V1Beta3),
            _ => Err(format!(
                "kubeadm {version} is too old: kubeboot renders kubeadm.k8s.io/v1beta3 (kubeadm 1.22–1.30) and v1beta4 (≥ 1.31)"
            )),
        }
    }
}

/// The argv for `kubeadm init`/`join` (without the program name). Everything
/// else lives in the config file: kubeadm refuses `--config` mixed with most flags.
pub fn command_line(role: Role, config_path: &str, upload_certs: bool) -> Vec<String> {
    let mut argv = vec![
        match role {
            Role::Init => "init",
            Role::ControlPlane | Role::Worker => "join",
        }
        .to_string(),
        "--config".to_string(),
        config_path.to_string(),
    ];
    if role == Role::Init && upload_certs {
        argv.push("--upload-certs".to_string());
    }
    argv
}

/// A document checked as far as it can be without a host: parsed, validated,
/// and rendered for the newest kubeadm API (so a `[kubeadm] patch` that kubeadm
/// would refuse is refused here, before anything is written).
pub fn validate_fully(text: &str) -> Result<ValidDocument, InvalidDocument> {
    let doc = document::load(text)?;
    render(
        &doc,
        ApiVersion::NEWEST,
        &ConfigPaths::default(),
        &NodeImage::unknown(),
    )
    .map_err(|m| {
        InvalidDocument::single(
            "kubeadm.patch",
            m,
            "patch only fields kubeadm has, never apiVersion/kind",
        )
    })?;
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_version_follows_kubeadm_version() {
        assert_eq!(
            ApiVersion::for_kubeadm("v1.31.0").unwrap(),
            ApiVersion::V1Beta4
        );
        assert_eq!(
            ApiVersion::for_kubeadm("v1.34.2\n").unwrap(),
            ApiVersion::V1Beta4
        );
        assert_eq!(
            ApiVersion::for_kubeadm("v1.30.14").unwrap(),
            ApiVersion::V1Beta3
        );
        assert_eq!(
            ApiVersion::for_kubeadm("v1.22.0").unwrap(),
            ApiVersion::V1Beta3
        );
        assert!(ApiVersion::for_kubeadm("v1.21.9").is_err());
        assert!(ApiVersion::for_kubeadm("1.31").is_err());
    }

    #[test]
    fn command_lines() {
        assert_eq!(
            command_line(Role::Init, "/c.yaml", true),
            ["init", "--config", "/c.yaml", "--upload-certs"]
        );
        assert_eq!(
            command_line(Role::Worker, "/c.yaml", true),
            ["join", "--config", "/c.yaml"]
        );
    }
}
