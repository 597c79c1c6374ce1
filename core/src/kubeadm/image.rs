//! What the node image provides to kubeadm: `/usr/lib/kubeboot/image.toml`,
//! written by `kubeboot image build` for an air-gapped production image.
//!
//! The image describes itself so the node document stays portable: a document
//! says *which cluster* to join; the image says *which Kubernetes it carries*
//! (version, preloaded container images, whether CoreDNS is among them), and the
//! rendered kubeadm configuration follows it:
//! - `kubernetesVersion` = the image's version when the document names none;
//! - `nodeRegistration.imagePullPolicy: Never` when every image is preloaded
//!   (`offline`), so kubeadm never tries a registry;
//! - `etcd.local.imageTag` = the preloaded etcd's tag;
//! - `skipPhases: [addon/coredns]` on init when the image has no CoreDNS.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeImage {
    /// The Kubernetes version of the binaries in the image (e.g. v1.28.7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    /// Every container image kubeadm needs is preloaded into containerd: never pull.
    #[serde(default)]
    pub offline: bool,
    #[serde(default = "default_repository")]
    pub image_repository: String,
    /// Tag of the preloaded etcd image, if it differs from kubeadm's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_tag: Option<String>,
    /// The image carries CoreDNS (when false, init skips the addon/coredns phase).
    #[serde(default = "yes")]
    pub coredns: bool,
}

fn default_repository() -> String {
    "registry.k8s.io".into()
}
fn yes() -> bool {
    true
}

/// The kubeadm phase init skips when the image has no CoreDNS.
pub const COREDNS_PHASE: &str = "addon/coredns";

impl NodeImage {
    pub const PATH: &'static str = "/usr/lib/kubeboot/image.toml";

    /// An image that says nothing about itself: kubeadm's defaults apply.
    pub fn unknown() -> NodeImage {
        NodeImage {
            image_repository: default_repository(),
            coredns: true,
            ..Default::default()
        }
    }

    pub fn to_toml(&self) -> String {
        format!(
            "# What this node image provides (written by `kubeboot image build`; read by the agent).\n{}",
            toml::to_string(self).expect("serializes")
        )
    }

    /// Read the image's description under `host`'s root; an image without one gets kubeadm's defaults.
    pub fn read(host: &crate::host::Host) -> Result<NodeImage, String> {
        let path = host.path(Self::PATH);
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| {
                format!(
                    "{}: {} (the image is damaged; rebuild it)",
                    Self::PATH,
                    e.message()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(NodeImage::unknown()),
            Err(e) => Err(format!("{}: {e}", Self::PATH)),
        }
    }

    /// The image references kubeadm will use for these, in its own naming.
    pub fn pause_image(&self) -> Option<String> {
        self.pause_tag
            .as_ref()
            .map(|t| format!("{}/pause:{t}", self.image_repository))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_unknown_keys() {
        let img = NodeImage {
            kubernetes_version: Some("v1.28.7".into()),
            offline: true,
            image_repository: "registry.k8s.io".into(),
            etcd_tag: Some("3.5.16-0".into()),
            pause_tag: Some("3.9".into()),
            coredns: false,
        };
        assert_eq!(toml::from_str::<NodeImage>(&img.to_toml()).unwrap(), img);
        assert_eq!(
            img.pause_image().as_deref(),
            Some("registry.k8s.io/pause:3.9")
        );
        assert!(toml::from_str::<NodeImage>("ofline = true").is_err());
        assert_eq!(
            toml::from_str::<NodeImage>("").unwrap(),
            NodeImage::unknown()
        );
    }
}
