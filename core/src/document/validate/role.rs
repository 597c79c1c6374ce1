//! What each role needs and must not carry (init, control-plane, worker).

use super::super::{NodeDocument, Role};
use super::pki::check_pki;
use super::Problems;

pub(super) fn check_role_specific(doc: &NodeDocument, role: Role, p: &mut Problems) {
    let d = &doc.discovery;
    match role {
        Role::Init => {
            if d.token.is_none() {
                p.add(
                    "discovery.token",
                    "missing: init creates the cluster's bootstrap token from it, so joining nodes can use the same one",
                    "copy token from the bundle's discovery.toml (`kubeboot bundle new` makes one)",
                );
            }
            if d.file.is_some() {
                p.add(
                    "discovery.file",
                    "init does not discover a cluster",
                    "remove discovery.file from the init document",
                );
            }
            if let Some(pki) = &doc.pki {
                check_pki(pki, p);
            }
        }
        Role::ControlPlane => {
            if d.certificate_key.is_none() {
                p.add(
                    "discovery.certificate_key",
                    "missing: a control-plane join downloads the shared certificates with it",
                    "copy certificate_key from the bundle's discovery.toml",
                );
            }
        }
        Role::Worker => {
            if d.certificate_key.is_some() {
                p.add(
                    "discovery.certificate_key",
                    "a worker must not carry the control-plane certificate key",
                    "remove certificate_key from worker documents",
                );
            }
        }
    }
    if role != Role::Init {
        if doc.pki.is_some() {
            p.add(
                "pki",
                format!("a {role} must not carry CA material"),
                "remove the [pki] table; only the init node uses it",
            );
        }
        let c = doc.cluster.as_ref();
        if c.and_then(|c| c.pod_subnet.as_ref()).is_some() {
            p.add(
                "cluster.pod_subnet",
                format!("only init sets the cluster's pod subnet; a {role} ignores it"),
                "remove cluster.pod_subnet from join documents",
            );
        }
    }
}
