//! The pod routes from `kubeboot serve` (`GET /v1/pod-routes`), for nodes whose
//! own credentials may not list Nodes (Kubernetes ≥ 1.32: the Node authorizer
//! with selectors lets a node read only its own Node).
//!
//! A node whose document came from serve holds a report credential bound to
//! its name and machine id (`kbn1.…`, serve's `report_binding`): it can post
//! events for itself and read the pod routes, nothing in the cluster. Once the
//! node is Ready the agent keeps it, with serve's address and CA pin, in
//! `STATE_DIR/pod-routes.json` (0600) for `kubeboot pod-routes`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use kubeboot_core::host::{Host, HostResult};
use kubeboot_kube::pod_routes::PodRoute;

/// Where the agent keeps serve's address for `kubeboot pod-routes`, under its state directory.
pub const FILE: &str = "pod-routes.json";
/// The path under serve's API base (`[report] url`).
pub const PATH: &str = "/pod-routes";
/// Bound on one request to serve.
const TIMEOUT: Duration = Duration::from_secs(15);

/// serve's address and this node's credential for it.
#[derive(Clone, Serialize, Deserialize)]
pub struct ServeRoutes {
    /// serve's API base, e.g. `https://10.0.0.2:8443/v1`.
    pub url: String,
    /// The node-bound report credential (`kbn1.…`).
    pub token: String,
    pub ca_cert_hash: Option<String>,
    pub ca_file: Option<String>,
    pub node: String,
    pub machine_id: String,
}

impl std::fmt::Debug for ServeRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeRoutes")
            .field("url", &self.url)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// The serve document's answer.
#[derive(Debug, Deserialize, Serialize)]
pub struct Answer {
    pub routes: Vec<PodRoute>,
}

impl ServeRoutes {
    /// From a document's `[report]`, when its credential is bound to this node
    /// (a shared report token reads no routes).
    pub fn from_report(
        report: &kubeboot_core::document::Report,
        node: &str,
        machine_id: &str,
    ) -> Option<ServeRoutes> {
        use secrecy::ExposeSecret;
        let token = report.token.as_ref()?.expose_secret().to_string();
        token.starts_with("kbn1.").then(|| ServeRoutes {
            url: report.url.trim_end_matches('/').to_string(),
            token,
            ca_cert_hash: report.ca_cert_hash.clone(),
            ca_file: report.ca_file.clone(),
            node: node.to_string(),
            machine_id: machine_id.to_string(),
        })
    }

    pub fn path(state_dir: &str) -> String {
        format!("{}/{FILE}", state_dir.trim_end_matches('/'))
    }

    pub fn save(&self, host: &Host, state_dir: &str) -> HostResult<()> {
        let json = serde_json::to_vec_pretty(self).expect("plain data");
        host.write_atomic(Self::path(state_dir), &json, 0o600)
    }

    /// The saved one, if the agent kept one.
    pub fn load(host: &Host, state_dir: &str) -> Result<Option<ServeRoutes>, String> {
        let path = Self::path(state_dir);
        if !host.exists(&path) {
            return Ok(None);
        }
        let bytes = std::fs::read(host.path(&path)).map_err(|e| format!("{path}: {e}"))?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{path}: not what the agent writes: {e}"))
    }

    /// Ask serve for every Node's pod route.
    pub fn fetch(&self, host: &Host) -> Result<Vec<PodRoute>, String> {
        let ca_file = self.ca_file.as_ref().map(|f| host.path(f));
        let config = kubeboot_core::tls::client_config_for(
            self.ca_cert_hash.as_deref(),
            ca_file.as_deref(),
            "report.ca_file",
        )?;
        let client =
            kubeboot_core::tls::https_client(config, TIMEOUT).map_err(|e| e.to_string())?;
        let url = format!("{}{PATH}", self.url);
        let response = client
            .get(&url)
            .bearer_auth(&self.token)
            .header("Kubeboot-Node", &self.node)
            .header("Kubeboot-Machine-Id", &self.machine_id)
            .send()
            .map_err(|e| format!("{url}: {}", kubeboot_core::tls::describe_http_error(&e)))?;
        let status = response.status();
        let body = response.text().unwrap_or_default();
        if !status.is_success() {
            let why = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or_else(|| body.chars().take(200).collect());
            return Err(format!("{url}: {status}: {why}"));
        }
        serde_json::from_str::<Answer>(&body)
            .map(|a| a.routes)
            .map_err(|e| format!("{url}: not a pod-routes answer: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_node_bound_credential_is_kept_and_debug_hides_it() {
        let report = |token: &str| kubeboot_core::document::Report {
            url: "https://serve:8443/v1/".into(),
            token: Some(token.to_string().into()),
            ca_cert_hash: Some("sha256:ab".into()),
            ca_file: None,
            drain_seconds: None,
        };
        assert!(ServeRoutes::from_report(&report("shared-report-token"), "w1", "aa").is_none());
        let kept = ServeRoutes::from_report(&report("kbn1.00ff"), "w1", "aa").unwrap();
        assert_eq!(kept.url, "https://serve:8443/v1");
        assert!(!format!("{kept:?}").contains("kbn1"));
        let root = tempfile::tempdir().unwrap();
        let host = Host::system_at(root.path());
        kept.save(&host, "/var/lib/kubeboot").unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(host.path("/var/lib/kubeboot/pod-routes.json"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let back = ServeRoutes::load(&host, "/var/lib/kubeboot")
            .unwrap()
            .unwrap();
        assert_eq!(back.token, "kbn1.00ff");
        assert_eq!(back.node, "w1");
    }
}
