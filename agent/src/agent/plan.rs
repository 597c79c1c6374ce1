//! `kubeboot agent --dry-run`: what each phase would do with this document, in
//! the words an operator reads before letting it loose on a machine.

use kubeboot_core::document::{Role, ValidDocument};
use kubeboot_core::status::Phase;

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
