//! `kubeboot agent --dry-run`: what each phase would do with this document, in
//! the words an operator reads before letting it loose on a machine.

use kubeboot_core::document::{InvalidDocument, Role, ValidDocument};
use kubeboot_core::host::Host;
use kubeboot_core::redact::Redactor;
use kubeboot_core::status::Phase;

use super::AgentOptions;
use crate::source::{self, SourceError};
use kubeboot_core::kubeadm::{self, ApiVersion, ConfigPaths};

/// Why a dry run could not be prepared; the command line exits 2 for bad input
/// (an invalid document, a kubeadm version or node image it cannot use), 1 when
/// the document could not be found or fetched.
#[derive(Debug, thiserror::Error)]
pub enum DryRunError {
    #[error("{0}")]
    Invalid(InvalidDocument),
    #[error("{0}")]
    Source(SourceError),
    #[error("{0}")]
    Kubeadm(String),
}

/// What `kubeboot agent` would do on this host with this document (secrets redacted).
pub struct DryRun {
    pub origin: String,
    pub doc: ValidDocument,
    pub kubeadm_version: Option<String>,
    /// Where the version came from (--kubeadm-version, the kubeadm on PATH, or none).
    pub version_source: String,
    pub api: ApiVersion,
    pub plan: Vec<(Phase, String)>,
    /// The kubeadm configuration, secrets redacted.
    pub config: String,
    pub config_path: String,
    pub argv: Vec<String>,
}

impl DryRun {
    /// Find, validate and render, changing nothing on the host.
    pub fn prepare(host: &Host, opts: &AgentOptions) -> Result<DryRun, DryRunError> {
        let loaded =
            source::resolve(host, opts.document.clone(), &opts.fetch).map_err(|mut e| {
                match e.invalid.take() {
                    Some(invalid) => DryRunError::Invalid(invalid),
                    None => DryRunError::Source(e),
                }
            })?;
        let doc = kubeadm::validate_fully(&loaded.text).map_err(DryRunError::Invalid)?;
        let kubeadm_version = crate::kubeadm::version_to_use(host, opts.kubeadm_version.as_deref());
        let version_source = match (&opts.kubeadm_version, host.find_program("kubeadm")) {
            (Some(_), _) => "--kubeadm-version".to_string(),
            (None, Some(k)) => k.display().to_string(),
            (None, None) => "kubeadm not on PATH".to_string(),
        };
        let api =
            ApiVersion::for_version(kubeadm_version.as_deref()).map_err(DryRunError::Kubeadm)?;
        let node_image = kubeadm::NodeImage::read(host).map_err(DryRunError::Kubeadm)?;
        let rendered = kubeadm::render(&doc, api, &ConfigPaths::default(), &node_image)
            .map_err(DryRunError::Kubeadm)?;
        let config = Redactor::for_document(&doc.doc).redact(rendered.expose());
        let config_path = format!("{}/kubeadm.yaml", opts.state_dir.trim_end_matches('/'));
        let argv = kubeadm::command_line(
            doc.role,
            &config_path,
            doc.doc.discovery.certificate_key.is_some(),
        );
        let plan = plan(&doc, &opts.state_dir);
        Ok(DryRun {
            origin: loaded.origin,
            doc,
            kubeadm_version,
            version_source,
            api,
            plan,
            config,
            config_path,
            argv,
        })
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "dry_run": true,
            "document_origin": self.origin,
            "role": self.doc.role,
            "node": self.doc.node_name(),
            "kubeadm_version": self.kubeadm_version,
            "kubeadm_api_version": self.api.group_version(),
            "plan": self.plan.iter().map(|(p, what)| serde_json::json!({"phase": p.as_str(), "action": what})).collect::<Vec<_>>(),
            "kubeadm_config": self.config,
            "kubeadm_command": std::iter::once("kubeadm").chain(self.argv.iter().map(String::as_str)).collect::<Vec<_>>(),
        })
    }

    pub fn describe(&self) -> String {
        let mut out =
            String::from("# kubeboot agent --dry-run: nothing on this host is changed.\n");
        out.push_str(&format!(
            "# document: {} (role {}, node {})\n",
            self.origin,
            self.doc.role,
            self.doc.node_name().unwrap_or("<hostname>")
        ));
        out.push_str(&format!(
            "# kubeadm: {} (from {}) -> {}\n",
            self.kubeadm_version
                .as_deref()
                .unwrap_or("unknown, assuming newest"),
            self.version_source,
            self.api.group_version()
        ));
        out.push_str("#\n# plan:\n");
        for (phase, what) in &self.plan {
            out.push_str(&format!("#   {:<10} {what}\n", phase.as_str()));
        }
        out.push_str(&format!(
            "#\n# kubeadm configuration (written 0600 to {}; secrets redacted here):\n",
            self.config_path
        ));
        out.push_str(&self.config);
        out.push_str(&format!(
            "#\n# command:\n#   kubeadm {}\n",
            self.argv.join(" ")
        ));
        out
    }
}

/// One line per phase, in `Phase::ALL` order (a test checks it).
pub fn plan(doc: &ValidDocument, state_dir: &str) -> Vec<(Phase, String)> {
    let role = doc.role;
    let (cpus, mib, disk) = super::minimums(role);
    let pre = &doc.doc.preflight;
    let mut discover = if role == Role::Init {
        "nothing to discover for init".to_string()
    } else if let Some(f) = &doc.doc.discovery.file {
        format!("use kubeadm discovery file {f}")
    } else {
        format!(
            "wait up to {}s for {} to answer",
            doc.doc.discovery_timeout_seconds(),
            doc.endpoint
        )
    };
    let d = &doc.doc.discovery;
    if role == Role::ControlPlane
        && doc.doc.replace.enabled
        && d.file.is_none()
        && d.certificate_key.is_some()
    {
        discover.push_str(&format!(
            "; then clean up after a replaced machine: a same-name Node silent for {}s, at most one dead etcd member, never without quorum (`kubeboot replace --document F --dry-run` shows what)",
            doc.doc.replace.grace_seconds
        ));
    }
    let mut kubeadm_step = format!(
        "write the config, run kubeadm {} (up to {} attempts, `kubeadm reset -f` and jittered backoff between)",
        if role == Role::Init { "init" } else { "join" },
        doc.doc.kubeadm.attempts
    );
    if doc.doc.pki.is_some() {
        kubeadm_step
            .push_str("; first write the [pki] CA material to /etc/kubernetes/pki (keys 0600)");
    }
    vec![
        (Phase::Source, "document found (see above)".to_string()),
        (Phase::Validate, "document valid".to_string()),
        (
            Phase::Preflight,
            format!(
                "need >= {cpus} CPUs, >= {mib} MiB memory, >= {disk} MiB free on /var/lib; kubeadm and kubelet on PATH; wait up to {}s for clock sync",
                pre.clock_sync_timeout_seconds
            ),
        ),
        (
            Phase::Prepare,
            format!(
                "load overlay, br_netfilter; set net.ipv4.ip_forward=1, net.bridge.bridge-nf-call-ip{{,6}}tables=1; swap off; wait up to {}s for {}",
                pre.cri_timeout_seconds,
                doc.cri_socket()
            ),
        ),
        (Phase::Discover, discover),
        (Phase::Kubeadm, kubeadm_step),
        (
            Phase::Ready,
            format!("check /etc/kubernetes/kubelet.conf{}", if role == Role::Init { " and admin.conf" } else { "" }),
        ),
        (
            Phase::Done,
            format!("remove {}/kubeadm.yaml, {}/node.toml and /etc/kubeboot/node.toml (they hold secrets)", state_dir, state_dir),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_has_one_step_per_phase_in_order() {
        for example in [
            include_str!("../../../cloud-init/examples/init.toml"),
            include_str!("../../../cloud-init/examples/control-plane.toml"),
            include_str!("../../../cloud-init/examples/worker.toml"),
        ] {
            let doc = kubeboot_core::document::load(example).unwrap();
            let phases: Vec<Phase> = plan(&doc, "/var/lib/kubeboot")
                .iter()
                .map(|(p, _)| *p)
                .collect();
            assert_eq!(phases, Phase::ALL);
        }
    }
}
