//! Did an interrupted kubeadm run finish? After a crash or a power loss the
//! agent decides from what kubeadm's *last* phases leave, never from
//! `kubelet.conf` alone: `kubeadm init` writes kubelet.conf (and admin.conf) in
//! its kubeconfig phase, minutes before the control plane is up, and a joining
//! node's kubelet writes it in kubelet-start, before a control plane's etcd
//! member and mark-control-plane.
//!
//! - init: the `kube-system/kubeadm-config` ConfigMap (upload-config) and the
//!   bootstrap RBAC (`kubeadm:node-autoapprove-certificate-rotation`, the
//!   bootstrap-token phase), read with super-admin.conf (kubeadm ≥ 1.29) or
//!   admin.conf;
//! - control-plane join: the static Pod manifests (etcd's too when etcd is
//!   stacked), and this Node labelled `node-role.kubernetes.io/control-plane`,
//!   read with admin.conf. mark-control-plane is the join's last phase and runs
//!   only after kubeadm saw this machine's etcd member join the cluster;
//! - worker: the kubelet's rotated client certificate and this Node, read with
//!   kubelet.conf (a node may always read its own Node).

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Node};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::Api;
use kubeboot_core::document::Role;
use kubeboot_core::host::Host;

/// The kubeconfigs kubeadm writes: the kubelet's, and the cluster admin's (control planes).
pub const KUBELET_CONF: &str = "/etc/kubernetes/kubelet.conf";
pub const ADMIN_CONF: &str = "/etc/kubernetes/admin.conf";
/// Where the kubelet keeps its rotated client certificate.
pub const KUBELET_CLIENT_CERT: &str = "/var/lib/kubelet/pki/kubelet-client-current.pem";
/// What kubeadm's upload-config phase creates.
pub const KUBEADM_CONFIG: &str = "kubeadm-config";
/// What kubeadm's bootstrap-token phase creates (its last RBAC object).
pub const BOOTSTRAP_RBAC: &str = "kubeadm:node-autoapprove-certificate-rotation";
pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";

const STATIC_PODS: [&str; 3] = [
    "/etc/kubernetes/manifests/kube-apiserver.yaml",
    "/etc/kubernetes/manifests/kube-controller-manager.yaml",
    "/etc/kubernetes/manifests/kube-scheduler.yaml",
];
const ETCD_POD: &str = "/etc/kubernetes/manifests/etcd.yaml";
const SUPER_ADMIN_CONF: &str = "/etc/kubernetes/super-admin.conf";

/// Between two looks at an API server that does not answer yet.
const RETRY_EVERY: Duration = Duration::from_secs(2);
/// One API call, connect to last byte.
const CALL_LIMIT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// Everything kubeadm's last phase leaves is there.
    Finished,
    /// Something kubeadm leaves is missing: it did not finish.
    Unfinished(String),
    /// The cluster did not answer: whether kubeadm finished cannot be told.
    Unknown(String),
}

/// What this node's kubeadm run should have left.
pub struct Expected<'a> {
    pub role: Role,
    /// The Node's name (kubeadm's nodeRegistration.name).
    pub name: &'a str,
    /// etcd runs as a static Pod here (no external etcd in the document).
    pub stacked_etcd: bool,
}

impl Expected<'_> {
    /// The first file kubeadm would have left that is not there.
    fn missing_file(&self, host: &Host) -> Option<&'static str> {
        let mut files = vec![KUBELET_CONF];
        match self.role {
            Role::Worker => files.push(KUBELET_CLIENT_CERT),
            Role::Init | Role::ControlPlane => {
                files.push(ADMIN_CONF);
                files.extend(STATIC_PODS);
                if self.stacked_etcd {
                    files.push(ETCD_POD);
                }
            }
        }
        files.into_iter().find(|f| !host.exists(f))
    }

    /// The credentials the cluster is asked with. An init node asks with
    /// super-admin.conf where kubeadm (≥ 1.29) wrote one: it is in
    /// `system:masters`, which no RBAC decides, while admin.conf works only once
    /// kubeadm has bound `kubeadm:cluster-admins` (and an API server that has
    /// just restarted may refuse it until its RBAC cache is filled).
    fn kubeconfig(&self, host: &Host) -> &'static str {
        match self.role {
            Role::Worker => KUBELET_CONF,
            Role::Init if host.exists(SUPER_ADMIN_CONF) => SUPER_ADMIN_CONF,
            Role::Init | Role::ControlPlane => ADMIN_CONF,
        }
    }
}

/// Look on disk, then ask the cluster for up to `limit` while it does not answer.
pub fn check(host: &Host, expected: &Expected<'_>, limit: Duration) -> Completion {
    if let Some(file) = expected.missing_file(host) {
        return Completion::Unfinished(format!("{file} is missing"));
    }
    let kubeconfig = host.path(expected.kubeconfig(host));
    kubeboot_kube::client::block_on(async {
        let started = Instant::now();
        loop {
            let why = match in_cluster(&kubeconfig, expected).await {
                Ok(c) => return c,
                Err(why) => why,
            };
            if started.elapsed() + RETRY_EVERY >= limit {
                return Completion::Unknown(format!(
                    "the cluster did not answer in {} s: {why}",
                    limit.as_secs()
                ));
            }
            tokio::time::sleep(RETRY_EVERY).await;
        }
    })
}

/// One look at the cluster: Ok when it answered either way, Err when it did not.
async fn in_cluster(
    kubeconfig: &std::path::Path,
    expected: &Expected<'_>,
) -> Result<Completion, String> {
    let client = kubeboot_kube::client::client(kubeconfig).await?;
    match expected.role {
        Role::Init => {
            let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
            match get(maps.get_opt(KUBEADM_CONFIG)).await {
                Err(why) => return Err(format!("kube-system/kubeadm-config: {why}")),
                Ok(None) => {
                    return Ok(Completion::Unfinished(
                        "the kube-system/kubeadm-config ConfigMap is missing \
                         (upload-config did not run)"
                            .into(),
                    ))
                }
                Ok(Some(_)) => {}
            }
            let bindings: Api<ClusterRoleBinding> = Api::all(client);
            match get(bindings.get_opt(BOOTSTRAP_RBAC)).await {
                Ok(Some(_)) => Ok(Completion::Finished),
                Ok(None) => Ok(Completion::Unfinished(format!(
                    "the ClusterRoleBinding {BOOTSTRAP_RBAC} is missing (bootstrap-token did not run)"
                ))),
                Err(e) => Err(format!("{BOOTSTRAP_RBAC}: {e}")),
            }
        }
        Role::ControlPlane | Role::Worker => {
            let nodes: Api<Node> = Api::all(client);
            let what = format!("Node {}", expected.name);
            let node = match get(nodes.get_opt(expected.name)).await {
                Ok(Some(node)) => node,
                Ok(None) => return Ok(Completion::Unfinished(format!("{what} is not registered"))),
                Err(e) => return Err(format!("{what}: {e}")),
            };
            let labelled = node
                .metadata
                .labels
                .is_some_and(|l| l.contains_key(CONTROL_PLANE_LABEL));
            if expected.role == Role::ControlPlane && !labelled {
                return Ok(Completion::Unfinished(format!(
                    "{what} has no {CONTROL_PLANE_LABEL} label (mark-control-plane did not run)"
                )));
            }
            Ok(Completion::Finished)
        }
    }
}

/// One bounded GET; `None` when the object does not exist. Any error (a 403
/// included: no verdict on what exists) is no answer, and asked again.
async fn get<T>(
    call: impl std::future::Future<Output = Result<Option<T>, kube::Error>>,
) -> Result<Option<T>, String> {
    match tokio::time::timeout(CALL_LIMIT, call).await {
        Err(_) => Err(format!("no answer in {} s", CALL_LIMIT.as_secs())),
        Ok(Err(e)) => Err(kubeboot_kube::client::describe(&e)),
        Ok(Ok(found)) => Ok(found),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_with(files: &[&str]) -> (tempfile::TempDir, Host) {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            let p = dir.path().join(f.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "x").unwrap();
        }
        let host = Host::new(dir.path(), std::ffi::OsString::new());
        (dir, host)
    }

    fn expected(role: Role, stacked_etcd: bool) -> Expected<'static> {
        Expected {
            role,
            name: "n",
            stacked_etcd,
        }
    }

    #[test]
    fn kubelet_conf_alone_is_never_a_finished_kubeadm() {
        // What kubeadm init's kubeconfig phase leaves, minutes before the end.
        let (_d, host) = host_with(&[KUBELET_CONF, ADMIN_CONF]);
        for role in [Role::Init, Role::ControlPlane] {
            assert_eq!(
                expected(role, true).missing_file(&host),
                Some(STATIC_PODS[0]),
                "{role:?}"
            );
        }
        assert_eq!(
            expected(Role::Worker, true).missing_file(&host),
            Some(KUBELET_CLIENT_CERT)
        );
    }

    #[test]
    fn etcds_manifest_is_expected_only_when_etcd_is_stacked() {
        let mut files = vec![KUBELET_CONF, ADMIN_CONF];
        files.extend(STATIC_PODS);
        let (_d, host) = host_with(&files);
        assert_eq!(
            expected(Role::ControlPlane, true).missing_file(&host),
            Some(ETCD_POD)
        );
        assert_eq!(
            expected(Role::ControlPlane, false).missing_file(&host),
            None
        );
    }

    #[test]
    fn a_worker_with_its_rotated_certificate_has_every_file() {
        let (_d, host) = host_with(&[KUBELET_CONF, KUBELET_CLIENT_CERT]);
        assert_eq!(expected(Role::Worker, true).missing_file(&host), None);
        assert_eq!(expected(Role::Worker, true).kubeconfig(&host), KUBELET_CONF);
        assert_eq!(expected(Role::Init, true).kubeconfig(&host), ADMIN_CONF);
        let (_d, with_super) = host_with(&[SUPER_ADMIN_CONF]);
        assert_eq!(
            expected(Role::Init, true).kubeconfig(&with_super),
            SUPER_ADMIN_CONF
        );
        assert_eq!(
            expected(Role::ControlPlane, true).kubeconfig(&with_super),
            ADMIN_CONF
        );
    }

    #[test]
    fn an_unreachable_cluster_is_unknown_within_the_limit() {
        let mut files = vec![KUBELET_CONF, ADMIN_CONF, ETCD_POD];
        files.extend(STATIC_PODS);
        let (dir, host) = host_with(&files);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::write(
            dir.path().join(ADMIN_CONF.trim_start_matches('/')),
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:{port}\n    insecure-skip-tls-verify: true\n\
                 users:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: c\n  context: {{cluster: k, user: u}}\ncurrent-context: c\n"
            ),
        )
        .unwrap();
        let started = Instant::now();
        let got = check(&host, &expected(Role::Init, true), Duration::from_secs(3));
        assert!(
            matches!(&got, Completion::Unknown(why) if why.contains("did not answer in 3 s")),
            "{got:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
    }
}
