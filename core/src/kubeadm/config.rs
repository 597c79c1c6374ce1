//! Rendering the kubeadm configuration (InitConfiguration + ClusterConfiguration,
//! or JoinConfiguration) as multi-document YAML for a given API version.

use secrecy::ExposeSecret;
use serde_json::{json, Map, Value};

use super::{ApiVersion, NodeImage, COREDNS_PHASE};
use crate::document::{ConfigPatches, Role, ValidDocument};

/// Where files live on the node, as kubeadm will see them.
#[derive(Debug, Clone)]
pub struct ConfigPaths {
    pub certificates_dir: String,
    /// Where inline external-etcd PEM material is written (if the document carries PEM).
    pub external_etcd_dir: String,
}

impl Default for ConfigPaths {
    fn default() -> Self {
        ConfigPaths {
            certificates_dir: "/etc/kubernetes/pki".into(),
            external_etcd_dir: "/etc/kubernetes/pki/external-etcd".into(),
        }
    }
}

/// The rendered configuration. It holds secrets: write it 0600, print it only redacted.
pub struct Rendered {
    yaml: String,
}

impl Rendered {
    pub fn expose(&self) -> &str {
        &self.yaml
    }
}

impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rendered(<kubeadm config, redacted>)")
    }
}

/// kubeadm's service range when the document names none.
const DEFAULT_SERVICE_SUBNET: &str = "10.96.0.0/12";

/// Whether the cluster's service range is IPv4 (its first range, when dual-stack:
/// kube-apiserver's advertise address must have that family). A document without
/// `[cluster] service_subnet` gets kubeadm's IPv4 default.
pub fn service_range_is_ipv4(doc: &ValidDocument) -> bool {
    let subnets = doc.cluster.service_subnet.as_deref();
    let first = subnets.unwrap_or(DEFAULT_SERVICE_SUBNET).split(',').next();
    !first.unwrap_or_default().contains(':')
}

/// Render for this document, kubeadm API version, file layout and node image
/// (what the image carries: see [`NodeImage`]).
pub fn render(
    doc: &ValidDocument,
    api: ApiVersion,
    paths: &ConfigPaths,
    image: &NodeImage,
) -> Result<Rendered, String> {
    let docs = match doc.role {
        Role::Init => vec![
            patched(
                init_configuration(doc, api, image),
                &doc.doc.kubeadm.patch,
                Kind::Init,
                api,
            )?,
            patched(
                cluster_configuration(doc, api, paths, image),
                &doc.doc.kubeadm.patch,
                Kind::Cluster,
                api,
            )?,
        ],
        Role::ControlPlane | Role::Worker => {
            vec![patched(
                join_configuration(doc, api, image),
                &doc.doc.kubeadm.patch,
                Kind::Join,
                api,
            )?]
        }
    };
    let mut yaml = String::new();
    for (i, d) in docs.iter().enumerate() {
        if i > 0 {
            yaml.push_str("---\n");
        }
        yaml.push_str(&serde_yaml_ng::to_string(d).map_err(|e| e.to_string())?);
    }
    Ok(Rendered { yaml })
}

fn header(api: ApiVersion, kind: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("apiVersion".into(), api.group_version().into());
    m.insert("kind".into(), kind.into());
    m
}

fn init_configuration(doc: &ValidDocument, api: ApiVersion, image: &NodeImage) -> Value {
    let d = &doc.doc.discovery;
    let mut m = header(api, "InitConfiguration");
    if let Some(token) = &d.token {
        m.insert(
            "bootstrapTokens".into(),
            json!([{
                "token": token.expose_secret(),
                "description": "kubeboot: shared bootstrap token for this cluster's nodes",
                "ttl": d.token_ttl.as_deref().unwrap_or("24h0m0s"),
                "usages": ["signing", "authentication"],
                "groups": ["system:bootstrappers:kubeadm:default-node-token"],
            }]),
        );
    }
    if let Some(key) = &d.certificate_key {
        m.insert("certificateKey".into(), key.expose_secret().into());
    }
    if let Some(addr) = doc.doc.node.advertise_address {
        m.insert(
            "localAPIEndpoint".into(),
            json!({ "advertiseAddress": addr.to_string() }),
        );
    }
    m.insert(
        "nodeRegistration".into(),
        node_registration(doc, api, image),
    );
    insert_timeouts(doc, api, &mut m);
    common_tail(doc, image, &mut m);
    Value::Object(m)
}

fn cluster_configuration(
    doc: &ValidDocument,
    api: ApiVersion,
    paths: &ConfigPaths,
    image: &NodeImage,
) -> Value {
    let c = &doc.cluster;
    let mut m = header(api, "ClusterConfiguration");
    if let Some(name) = &c.name {
        m.insert("clusterName".into(), name.as_str().into());
    }
    if let Some(v) = c
        .kubernetes_version
        .as_ref()
        .or(image.kubernetes_version.as_ref())
    {
        m.insert("kubernetesVersion".into(), v.as_str().into());
    }
    m.insert(
        "controlPlaneEndpoint".into(),
        doc.endpoint.to_string().into(),
    );
    m.insert(
        "certificatesDir".into(),
        paths.certificates_dir.as_str().into(),
    );
    let mut networking = Map::new();
    if let Some(s) = &c.pod_subnet {
        networking.insert("podSubnet".into(), s.as_str().into());
    }
    if let Some(s) = &c.service_subnet {
        networking.insert("serviceSubnet".into(), s.as_str().into());
    }
    if !networking.is_empty() {
        m.insert("networking".into(), Value::Object(networking));
    }
    if let (ApiVersion::V1Beta3, Some(t)) = (api, doc.doc.kubeadm.control_plane_timeout_seconds) {
        m.insert(
            "apiServer".into(),
            json!({ "timeoutForControlPlane": format!("{t}s") }),
        );
    }
    if let Some(etcd) = &c.etcd {
        let dir = &paths.external_etcd_dir;
        let pick = |path: &Option<String>, inline: bool, file: &str| {
            path.clone()
                .or_else(|| inline.then(|| format!("{dir}/{file}")))
                .unwrap_or_default()
        };
        m.insert(
            "etcd".into(),
            json!({ "external": {
                "endpoints": etcd.external_endpoints,
                "caFile": pick(&etcd.ca_file, etcd.ca_cert.is_some(), "ca.crt"),
                "certFile": pick(&etcd.cert_file, etcd.cert.is_some(), "client.crt"),
                "keyFile": pick(&etcd.key_file, etcd.key.is_some(), "client.key"),
            }}),
        );
    } else if let Some(tag) = &image.etcd_tag {
        m.insert("etcd".into(), json!({ "local": { "imageTag": tag } }));
    }
    Value::Object(m)
}

fn join_configuration(doc: &ValidDocument, api: ApiVersion, image: &NodeImage) -> Value {
    let d = &doc.doc.discovery;
    let mut m = header(api, "JoinConfiguration");
    let mut discovery = Map::new();
    if let Some(file) = &d.file {
        discovery.insert("file".into(), json!({ "kubeConfigPath": file }));
        if let Some(token) = &d.token {
            discovery.insert("tlsBootstrapToken".into(), token.expose_secret().into());
        }
    } else if let Some(token) = &d.token {
        discovery.insert(
            "bootstrapToken".into(),
            json!({
                "token": token.expose_secret(),
                "apiServerEndpoint": doc.endpoint.to_string(),
                "caCertHashes": d.ca_cert_hashes,
            }),
        );
    }
    m.insert("discovery".into(), Value::Object(discovery));
    if doc.role == Role::ControlPlane {
        let mut cp = Map::new();
        if let Some(addr) = doc.doc.node.advertise_address {
            cp.insert(
                "localAPIEndpoint".into(),
                json!({ "advertiseAddress": addr.to_string() }),
            );
        }
        if let Some(key) = &d.certificate_key {
            cp.insert("certificateKey".into(), key.expose_secret().into());
        }
        m.insert("controlPlane".into(), Value::Object(cp));
    }
    m.insert(
        "nodeRegistration".into(),
        node_registration(doc, api, image),
    );
    insert_timeouts(doc, api, &mut m);
    common_tail(doc, image, &mut m);
    Value::Object(m)
}

/// v1beta4's `timeouts` (InitConfiguration and JoinConfiguration), from
/// `[kubeadm] control_plane_timeout_seconds`: a host slow enough to need longer
/// for its control plane is as slow at everything else kubeadm waits for on it.
/// - every role: the kubelet's health check (kubeadm's default 4 min);
/// - init and control-plane joins: the local control plane's health (4 min);
/// - joins: the kubelet's TLS bootstrap (5 min), which waits for the controller
///   manager to approve its certificate, itself slow on a loaded cluster;
/// - control-plane joins: each etcd call (2 min), adding this member to a slow
///   etcd included.
///
/// `discovery` keeps kubeadm's 5 min: the agent has already waited for the
/// endpoint (`[discovery] timeout_seconds`) before kubeadm runs. v1beta3 has no
/// such struct: there the control-plane wait is `apiServer.timeoutForControlPlane`
/// (ClusterConfiguration) and the others are kubeadm's fixed defaults.
fn insert_timeouts(doc: &ValidDocument, api: ApiVersion, m: &mut Map<String, Value>) {
    let (ApiVersion::V1Beta4, Some(seconds)) = (api, doc.doc.kubeadm.control_plane_timeout_seconds)
    else {
        return;
    };
    let names: &[&str] = match doc.role {
        Role::Init => &["controlPlaneComponentHealthCheck", "kubeletHealthCheck"],
        Role::ControlPlane => &[
            "controlPlaneComponentHealthCheck",
            "kubeletHealthCheck",
            "tlsBootstrap",
            "etcdAPICall",
        ],
        Role::Worker => &["kubeletHealthCheck", "tlsBootstrap"],
    };
    let timeouts: Map<String, Value> = names
        .iter()
        .map(|n| (n.to_string(), format!("{seconds}s").into()))
        .collect();
    m.insert("timeouts".into(), Value::Object(timeouts));
}

/// skipPhases and patches: both exist in InitConfiguration and JoinConfiguration of both versions.
fn common_tail(doc: &ValidDocument, image: &NodeImage, m: &mut Map<String, Value>) {
    let k = &doc.doc.kubeadm;
    let mut skip = k.skip_phases.clone();
    if doc.role == Role::Init && !image.coredns && !skip.iter().any(|p| p == COREDNS_PHASE) {
        skip.push(COREDNS_PHASE.to_string());
    }
    if !skip.is_empty() {
        m.insert("skipPhases".into(), json!(skip));
    }
    if let Some(dir) = &k.patches_directory {
        m.insert("patches".into(), json!({ "directory": dir }));
    } else if k.static_pod_startup_seconds.is_some() || k.static_pod_liveness_seconds.is_some() {
        m.insert(
            "patches".into(),
            json!({ "directory": STARTUP_PATCHES_DIR }),
        );
    }
}

/// Where the agent writes the patches `[kubeadm] static_pod_startup_seconds` and
/// `static_pod_liveness_seconds` ask for.
pub const STARTUP_PATCHES_DIR: &str = "/var/lib/kubeboot/patches";

/// Seconds the kubelet gives one liveness probe when the agent patches livenessProbe
/// (kubeadm's manifests: 15).
pub const LIVENESS_PROBE_TIMEOUT_SECONDS: u64 = 30;

/// kubeadm's control-plane static Pods probe every 10 s: startupProbe with
/// initialDelaySeconds 10 and failureThreshold 24, livenessProbe with failureThreshold
/// 8 and timeoutSeconds 15. These patches (kubeadm's `<component>+strategic.yaml`
/// naming, one file per component) raise failureThreshold so the kubelet waits
/// `static_pod_startup_seconds` before it restarts a component that is still starting,
/// and restarts a running one only after `static_pod_liveness_seconds` of failed probes.
pub fn startup_patches(doc: &ValidDocument) -> Vec<(String, String)> {
    let k = &doc.doc.kubeadm;
    let mut probes = String::new();
    let mut why = Vec::new();
    if let Some(seconds) = k.static_pod_startup_seconds {
        let threshold = seconds.saturating_sub(10).div_ceil(10).max(1);
        probes.push_str(&format!(
            "    startupProbe:\n      failureThreshold: {threshold}\n"
        ));
        why.push(format!("static_pod_startup_seconds = {seconds}"));
    }
    if let Some(seconds) = k.static_pod_liveness_seconds {
        let threshold = seconds.div_ceil(10).max(1);
        probes.push_str(&format!(
            "    livenessProbe:\n      failureThreshold: {threshold}\n      timeoutSeconds: {LIVENESS_PROBE_TIMEOUT_SECONDS}\n"
        ));
        why.push(format!("static_pod_liveness_seconds = {seconds}"));
    }
    if probes.is_empty() {
        return Vec::new();
    }
    let why = why.join(", ");
    [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ]
    .iter()
    .map(|c| {
        (
            format!("{c}+strategic.yaml"),
            format!("# kubeboot: [kubeadm] {why}\nspec:\n  containers:\n  - name: {c}\n{probes}"),
        )
    })
    .collect()
}

fn node_registration(doc: &ValidDocument, api: ApiVersion, image: &NodeImage) -> Value {
    let node = &doc.doc.node;
    let mut m = Map::new();
    if let Some(name) = &node.name {
        m.insert("name".into(), name.as_str().into());
    }
    m.insert("criSocket".into(), doc.cri_socket().into());
    if image.offline {
        // Every image is preloaded: kubeadm must not try a registry (the agent's
        // preflight checks the images are there instead).
        m.insert("imagePullPolicy".into(), "Never".into());
    }
    if let Some(taints) = &node.taints {
        m.insert("taints".into(), json!(taints));
    }
    let mut args: Vec<(&str, String)> = Vec::new();
    if !node.labels.is_empty() {
        let labels: Vec<String> = node
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        args.push(("node-labels", labels.join(",")));
    }
    if let Some(addr) = node.advertise_address {
        args.push(("node-ip", addr.to_string()));
    }
    if !args.is_empty() {
        let rendered = match api {
            ApiVersion::V1Beta3 => Value::Object(
                args.into_iter()
                    .map(|(k, v)| (k.to_string(), v.into()))
                    .collect(),
            ),
            ApiVersion::V1Beta4 => Value::Array(
                args.into_iter()
                    .map(|(k, v)| json!({ "name": k, "value": v }))
                    .collect(),
            ),
        };
        m.insert("kubeletExtraArgs".into(), rendered);
    }
    let ignore = &doc.doc.kubeadm.ignore_preflight_errors;
    if !ignore.is_empty() {
        m.insert("ignorePreflightErrors".into(), json!(ignore));
    }
    Value::Object(m)
}

#[derive(Clone, Copy)]
enum Kind {
    Init,
    Cluster,
    Join,
}

fn patched(
    mut base: Value,
    patches: &ConfigPatches,
    kind: Kind,
    api: ApiVersion,
) -> Result<Value, String> {
    let (patch, name) = match kind {
        Kind::Init => (&patches.init_configuration, "init_configuration"),
        Kind::Cluster => (&patches.cluster_configuration, "cluster_configuration"),
        Kind::Join => (&patches.join_configuration, "join_configuration"),
    };
    if let Some(patch) = patch {
        let mut patch =
            serde_json::to_value(patch).map_err(|e| format!("kubeadm.patch.{name}: {e}"))?;
        if api == ApiVersion::V1Beta4 {
            extra_args_as_lists(&mut patch);
        }
        for key in ["apiVersion", "kind"] {
            if patch.get(key).is_some() {
                return Err(format!("kubeadm.patch.{name}: {key} cannot be patched"));
            }
        }
        merge(&mut base, patch);
    }
    Ok(base)
}

/// v1beta3 writes `extraArgs`/`kubeletExtraArgs` as maps, v1beta4 as lists of
/// `{name, value}`. A patch may use the map form (one TOML table) for either: for
/// v1beta4 each such map becomes the list, so one document serves both versions.
fn extra_args_as_lists(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                if matches!(k.as_str(), "extraArgs" | "kubeletExtraArgs") {
                    if let Value::Object(args) = child {
                        let list = args
                            .iter()
                            .map(|(name, value)| json!({ "name": name, "value": value }))
                            .collect();
                        *child = Value::Array(list);
                        continue;
                    }
                }
                extra_args_as_lists(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(extra_args_as_lists),
        _ => {}
    }
}

/// JSON merge: objects merge key by key; v1beta4 argument lists (`{name, value}`
/// items) merge by name; anything else replaces.
fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (Value::Array(b), Value::Array(p)) if is_arg_list(b) && is_arg_list(&p) => {
            for arg in p {
                match b.iter_mut().find(|a| a["name"] == arg["name"]) {
                    Some(old) => *old = arg,
                    None => b.push(arg),
                }
            }
        }
        (b, p) => *b = p,
    }
}

fn is_arg_list(items: &[Value]) -> bool {
    items.iter().all(|i| {
        i.as_object()
            .is_some_and(|o| o.len() == 2 && o.contains_key("name") && o.contains_key("value"))
    })
}

#[cfg(test)]
mod tests;
