//! Snapshot tests of the rendered kubeadm configuration: each role × API
//! version, from the example documents in cloud-init/examples/.

use super::*;
use crate::document;

fn render_example(text: &str, api: ApiVersion) -> String {
    let doc = document::load(text).expect("example documents are valid");
    render(&doc, api, &ConfigPaths::default())
        .unwrap()
        .expose()
        .to_string()
}

const INIT: &str = include_str!("../../../../cloud-init/examples/init.toml");
const CONTROL_PLANE: &str = include_str!("../../../../cloud-init/examples/control-plane.toml");
const WORKER: &str = include_str!("../../../../cloud-init/examples/worker.toml");
const EXTERNAL_ETCD: &str = include_str!("../../../../cloud-init/examples/init-external-etcd.toml");

macro_rules! snapshot {
    ($name:ident, $doc:expr, $api:expr) => {
        #[test]
        fn $name() {
            insta::assert_snapshot!(render_example($doc, $api));
        }
    };
}

snapshot!(init_v1beta4, INIT, ApiVersion::V1Beta4);
snapshot!(init_v1beta3, INIT, ApiVersion::V1Beta3);
snapshot!(control_plane_v1beta4, CONTROL_PLANE, ApiVersion::V1Beta4);
snapshot!(control_plane_v1beta3, CONTROL_PLANE, ApiVersion::V1Beta3);
snapshot!(worker_v1beta4, WORKER, ApiVersion::V1Beta4);
snapshot!(worker_v1beta3, WORKER, ApiVersion::V1Beta3);
snapshot!(external_etcd_v1beta4, EXTERNAL_ETCD, ApiVersion::V1Beta4);
snapshot!(external_etcd_v1beta3, EXTERNAL_ETCD, ApiVersion::V1Beta3);

#[test]
fn patches_merge_into_the_generated_config() {
    let text = format!(
        "{WORKER}\n[kubeadm.patch.join_configuration.nodeRegistration]\nimagePullPolicy = \"Never\"\n\
         [kubeadm.patch.join_configuration.discovery.bootstrapToken]\napiServerEndpoint = \"lb2:6443\"\n"
    );
    let yaml = render_example(&text, ApiVersion::V1Beta4);
    assert!(yaml.contains("imagePullPolicy: Never"), "{yaml}");
    assert!(yaml.contains("apiServerEndpoint: lb2:6443"), "{yaml}");
    // Unpatched siblings survive the merge.
    assert!(
        yaml.contains("criSocket: unix:///run/containerd/containerd.sock"),
        "{yaml}"
    );
}

#[test]
fn explicit_empty_taints_are_kept() {
    let text = INIT.replace("[node]", "[node]\ntaints = []");
    let yaml = render_example(&text, ApiVersion::V1Beta4);
    assert!(yaml.contains("taints: []"), "{yaml}");
    assert!(!render_example(INIT, ApiVersion::V1Beta4).contains("taints"));
}

#[test]
fn rendered_debug_redacts() {
    let doc = document::load(WORKER).unwrap();
    let r = render(&doc, ApiVersion::V1Beta4, &ConfigPaths::default()).unwrap();
    assert!(!format!("{r:?}").contains("abcdef"));
}
