//! Snapshot tests of the rendered kubeadm configuration: each role × API
//! version, from the example documents in cloud-init/examples/.

use super::*;
use crate::document;

fn render_example(text: &str, api: ApiVersion) -> String {
    let doc = document::load(text).expect("example documents are valid");
    render(&doc, api, &ConfigPaths::default(), &NodeImage::unknown())
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

/// An example as `bundle new --slow-host` tunes every role's kubeadm wait.
fn slow(text: &str) -> String {
    format!("{text}\n[kubeadm]\ncontrol_plane_timeout_seconds = 1500\n")
}

snapshot!(slow_init_v1beta4, &slow(INIT), ApiVersion::V1Beta4);
snapshot!(
    slow_control_plane_v1beta4,
    &slow(CONTROL_PLANE),
    ApiVersion::V1Beta4
);
snapshot!(
    slow_control_plane_v1beta3,
    &slow(CONTROL_PLANE),
    ApiVersion::V1Beta3
);
snapshot!(slow_worker_v1beta4, &slow(WORKER), ApiVersion::V1Beta4);
snapshot!(slow_worker_v1beta3, &slow(WORKER), ApiVersion::V1Beta3);

/// v1beta4 joins get the timeouts their role waits on, all from the one setting;
/// v1beta3 has no `timeouts` (nor an equivalent for joins) and gets none.
#[test]
fn joins_get_v1beta4_timeouts_sized_by_the_document() {
    let timeouts = |text: &str, api| -> serde_json::Value {
        let v: serde_json::Value = serde_yaml_ng::from_str(&render_example(text, api)).unwrap();
        v["timeouts"].clone()
    };
    let worker = timeouts(&slow(WORKER), ApiVersion::V1Beta4);
    assert_eq!(
        worker,
        serde_json::json!({ "kubeletHealthCheck": "1500s", "tlsBootstrap": "1500s" })
    );
    let cp = timeouts(&slow(CONTROL_PLANE), ApiVersion::V1Beta4);
    for name in [
        "controlPlaneComponentHealthCheck",
        "kubeletHealthCheck",
        "tlsBootstrap",
        "etcdAPICall",
    ] {
        assert_eq!(cp[name], "1500s", "{name}: {cp}");
    }
    // kubeadm's own discovery timeout stays: the agent waited for the endpoint already.
    assert!(cp.get("discovery").is_none(), "{cp}");
    for text in [slow(WORKER), slow(CONTROL_PLANE)] {
        let v3 = render_example(&text, ApiVersion::V1Beta3);
        assert!(!v3.contains("timeout"), "{v3}");
    }
    // Without the setting kubeadm's defaults stand, in both versions.
    assert!(timeouts(WORKER, ApiVersion::V1Beta4).is_null());
    assert!(timeouts(CONTROL_PLANE, ApiVersion::V1Beta4).is_null());
}

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

/// One patch with extraArgs as a table serves both API versions: a map for v1beta3,
/// `{name, value}` items merged by name into v1beta4's lists (kubeboot's own
/// node-labels survive; a patched name replaces kubeboot's value).
#[test]
fn extra_args_patches_serve_both_api_versions() {
    let text = format!(
        "{WORKER}\n[kubeadm.patch.join_configuration.nodeRegistration.kubeletExtraArgs]\n\
         max-pods = \"50\"\nnode-labels = \"a=b\"\n"
    );
    let v4: serde_json::Value =
        serde_yaml_ng::from_str(&render_example(&text, ApiVersion::V1Beta4)).unwrap();
    let args = v4["nodeRegistration"]["kubeletExtraArgs"]
        .as_array()
        .unwrap();
    let names: Vec<&str> = args.iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["node-labels", "max-pods"], "{args:?}");
    assert_eq!(args[0]["value"], "a=b");
    assert_eq!(args[1]["value"], "50");
    let v3: serde_json::Value =
        serde_yaml_ng::from_str(&render_example(&text, ApiVersion::V1Beta3)).unwrap();
    assert_eq!(v3["nodeRegistration"]["kubeletExtraArgs"]["max-pods"], "50");
    assert_eq!(
        v3["nodeRegistration"]["kubeletExtraArgs"]["node-labels"],
        "a=b"
    );
    let init = format!(
        "{INIT}\n[kubeadm.patch.cluster_configuration.etcd.local.extraArgs]\nheartbeat-interval = \"500\"\n"
    );
    let cluster = |api| -> serde_json::Value {
        let yaml = render_example(&init, api);
        serde_yaml_ng::from_str(yaml.split("---\n").nth(1).unwrap()).unwrap()
    };
    assert_eq!(
        cluster(ApiVersion::V1Beta4)["etcd"]["local"]["extraArgs"],
        serde_json::json!([{ "name": "heartbeat-interval", "value": "500" }])
    );
    assert_eq!(
        cluster(ApiVersion::V1Beta3)["etcd"]["local"]["extraArgs"]["heartbeat-interval"],
        "500"
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
    let r = render(
        &doc,
        ApiVersion::V1Beta4,
        &ConfigPaths::default(),
        &NodeImage::unknown(),
    )
    .unwrap();
    assert!(!format!("{r:?}").contains("abcdef"));
}

fn air_gapped() -> NodeImage {
    NodeImage {
        kubernetes_version: Some("v1.28.7".into()),
        offline: true,
        image_repository: "registry.k8s.io".into(),
        etcd_tag: Some("3.5.16-0".into()),
        pause_tag: Some("3.9".into()),
        coredns: false,
    }
}

fn render_with(text: &str, image: &NodeImage) -> serde_json::Value {
    let doc = document::load(text).unwrap();
    let r = render(&doc, ApiVersion::V1Beta3, &ConfigPaths::default(), image).unwrap();
    let docs: Vec<serde_json::Value> = serde_yaml_ng::Deserializer::from_str(r.expose())
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    serde_json::Value::Array(docs)
}

#[test]
fn an_air_gapped_image_never_pulls_and_names_its_own_images() {
    let init = render_with(INIT, &air_gapped());
    assert_eq!(init[0]["nodeRegistration"]["imagePullPolicy"], "Never");
    assert_eq!(init[0]["skipPhases"], serde_json::json!(["addon/coredns"]));
    assert_eq!(init[1]["etcd"]["local"]["imageTag"], "3.5.16-0");
    // The document's own version wins over the image's.
    let doc_version = document::load(INIT)
        .unwrap()
        .cluster
        .kubernetes_version
        .clone();
    assert_eq!(
        init[1]["kubernetesVersion"].as_str(),
        doc_version.as_deref().or(Some("v1.28.7"))
    );
    let worker = render_with(WORKER, &air_gapped());
    assert_eq!(worker[0]["nodeRegistration"]["imagePullPolicy"], "Never");
    assert!(worker[0].get("skipPhases").is_none(), "{worker}");
    // An image that says nothing changes nothing.
    let plain = render_with(INIT, &NodeImage::unknown());
    assert!(plain[0]["nodeRegistration"]
        .get("imagePullPolicy")
        .is_none());
    assert!(plain[1].get("etcd").is_none());
}

#[test]
fn an_air_gapped_image_gives_its_version_when_the_document_has_none() {
    let text: String = INIT
        .lines()
        .filter(|l| !l.starts_with("kubernetes_version"))
        .collect::<Vec<_>>()
        .join("\n");
    let init = render_with(&text, &air_gapped());
    assert_eq!(init[1]["kubernetesVersion"], "v1.28.7");
    // External etcd keeps its own table; the image's etcd tag does not apply.
    let ext = render_with(EXTERNAL_ETCD, &air_gapped());
    assert!(ext[1]["etcd"].get("local").is_none(), "{ext}");
}

#[test]
fn the_control_plane_timeout_goes_where_each_api_version_keeps_it() {
    let text = format!("{INIT}\n").replace(
        "[kubeadm]",
        "[kubeadm]\ncontrol_plane_timeout_seconds = 1200",
    );
    let text = if text.contains("control_plane_timeout_seconds") {
        text
    } else {
        format!("{INIT}\n[kubeadm]\ncontrol_plane_timeout_seconds = 1200\n")
    };
    let doc = document::load(&text).unwrap();
    let yaml = |api| {
        render(&doc, api, &ConfigPaths::default(), &NodeImage::unknown())
            .unwrap()
            .expose()
            .to_string()
    };
    let v3 = yaml(ApiVersion::V1Beta3);
    assert!(v3.contains("timeoutForControlPlane: 1200s"), "{v3}");
    let v4 = yaml(ApiVersion::V1Beta4);
    assert!(
        v4.contains("controlPlaneComponentHealthCheck: 1200s"),
        "{v4}"
    );
    assert!(!v4.contains("timeoutForControlPlane"), "{v4}");
}

#[test]
fn static_pod_startup_seconds_become_kubeadm_patches() {
    let doc = document::load(&format!(
        "{INIT}\n[kubeadm]\nstatic_pod_startup_seconds = 1200\n"
    ))
    .unwrap();
    let yaml = render(
        &doc,
        ApiVersion::V1Beta3,
        &ConfigPaths::default(),
        &NodeImage::unknown(),
    )
    .unwrap()
    .expose()
    .to_string();
    assert!(
        yaml.contains(&format!("patches:\n  directory: {STARTUP_PATCHES_DIR}")),
        "{yaml}"
    );
    let patches = startup_patches(&doc);
    let names: Vec<&str> = patches.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "etcd+strategic.yaml",
            "kube-apiserver+strategic.yaml",
            "kube-controller-manager+strategic.yaml",
            "kube-scheduler+strategic.yaml"
        ]
    );
    let api: serde_yaml_ng::Value = serde_yaml_ng::from_str(&patches[1].1).unwrap();
    assert_eq!(api["spec"]["containers"][0]["name"], "kube-apiserver");
    // 10 s delay + 119 probes 10 s apart ≥ 1200 s.
    assert_eq!(
        api["spec"]["containers"][0]["startupProbe"]["failureThreshold"],
        119
    );
    assert!(api["spec"]["containers"][0]["livenessProbe"].is_null());
    // The liveness setting alone: livenessProbe only, in the same directory.
    let live = document::load(&format!(
        "{INIT}\n[kubeadm]\nstatic_pod_liveness_seconds = 95\n"
    ))
    .unwrap();
    let patches = startup_patches(&live);
    let etcd: serde_yaml_ng::Value = serde_yaml_ng::from_str(&patches[0].1).unwrap();
    let c = &etcd["spec"]["containers"][0];
    assert_eq!(c["name"], "etcd");
    assert_eq!(c["livenessProbe"]["failureThreshold"], 10);
    assert_eq!(c["livenessProbe"]["timeoutSeconds"], 30);
    assert!(c["startupProbe"].is_null());
    let yaml = render(
        &live,
        ApiVersion::V1Beta3,
        &ConfigPaths::default(),
        &NodeImage::unknown(),
    )
    .unwrap()
    .expose()
    .to_string();
    assert!(yaml.contains(STARTUP_PATCHES_DIR), "{yaml}");
    let err = document::load(&format!(
        "{INIT}\n[kubeadm]\nstatic_pod_liveness_seconds = 30\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("kubeadm.static_pod_liveness_seconds") && err.contains("out of range"),
        "{err}"
    );
    // Without the setting: no patches, no directory.
    let plain = document::load(INIT).unwrap();
    assert!(startup_patches(&plain).is_empty());
    // With the operator's own patches directory: refused, naming the field.
    let both = format!(
        "{INIT}\n[kubeadm]\nstatic_pod_startup_seconds = 1200\npatches_directory = \"/etc/p\"\n"
    );
    let err = document::load(&both).unwrap_err().to_string();
    assert!(
        err.contains("kubeadm.static_pod_startup_seconds") && err.contains("patches_directory"),
        "{err}"
    );
}

#[test]
fn the_service_range_family_is_its_first_ranges() {
    let with = |subnet: Option<&str>| {
        let text = WORKER.replace("[cluster]\n", "[cluster]\nservice_subnet = \"SUBNET\"\n");
        let text = match subnet {
            Some(s) => text.replace("SUBNET", s),
            None => WORKER.to_string(),
        };
        service_range_is_ipv4(&document::load(&text).unwrap())
    };
    assert!(with(None), "kubeadm's default 10.96.0.0/12");
    assert!(with(Some("10.100.0.0/16")));
    assert!(with(Some("10.100.0.0/16,fd00:10:96::/112")));
    assert!(!with(Some("fd00:10:96::/112")));
    assert!(!with(Some("fd00:10:96::/112,10.100.0.0/16")));
}
