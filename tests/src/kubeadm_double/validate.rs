//! What kubeadm checks in a config file before doing anything: the API
//! versions it knows, strict fields, and the values it validates
//! (`ValidateInitConfiguration` / `ValidateJoinConfiguration`).

use serde::Deserialize;
use serde_json::Value;

use crate::schema::{self, Api};

#[derive(Default)]
pub struct Docs {
    pub init: Option<Value>,
    pub cluster: Option<Value>,
    pub join: Option<Value>,
}

pub fn config_for(cmd: &str, text: &str, kubeadm_minor: u32) -> Result<Docs, String> {
    let mut docs = Docs::default();
    let mut errors = Vec::new();
    for de in serde_yaml_ng::Deserializer::from_str(text) {
        let doc =
            Value::deserialize(de).map_err(|e| format!("couldn't parse the config YAML: {e}"))?;
        if doc.is_null() {
            continue;
        }
        let api_version = doc["apiVersion"]
            .as_str()
            .ok_or("a config document has no apiVersion")?
            .to_string();
        let kind = doc["kind"]
            .as_str()
            .ok_or("a config document has no kind")?
            .to_string();
        let api = match api_version.as_str() {
            "kubeadm.k8s.io/v1beta4" if kubeadm_minor >= 31 => Api::V1Beta4,
            "kubeadm.k8s.io/v1beta3" if kubeadm_minor >= 22 => {
                if kubeadm_minor >= 31 {
                    eprintln!("W kubeadm.k8s.io/v1beta3 is deprecated; use kubeadm.k8s.io/v1beta4 (kubeadm config migrate)");
                }
                Api::V1Beta3
            }
            "kubelet.config.k8s.io/v1beta1" | "kubeproxy.config.k8s.io/v1alpha1" => continue,
            other => {
                return Err(format!(
                    "no kind \"{kind}\" is registered for version \"{other}\" in kubeadm v1.{kubeadm_minor}"
                ))
            }
        };
        let shape = match kind.as_str() {
            "InitConfiguration" => schema::init_configuration(api),
            "ClusterConfiguration" => schema::cluster_configuration(api),
            "JoinConfiguration" => schema::join_configuration(api),
            other => return Err(format!("unknown kubeadm configuration kind {other:?}")),
        };
        schema::check(&doc, &shape, "", &mut errors);
        let slot = match kind.as_str() {
            "InitConfiguration" => &mut docs.init,
            "ClusterConfiguration" => &mut docs.cluster,
            _ => &mut docs.join,
        };
        if slot.replace(doc).is_some() {
            errors.push(format!("duplicate {kind} in the config file"));
        }
    }
    match cmd {
        "init" => {
            if docs.join.is_some() {
                errors.push("kubeadm init got a JoinConfiguration".into());
            }
            if let Some(init) = &docs.init {
                check_init(init, &mut errors);
            }
            if let Some(cluster) = &docs.cluster {
                check_cluster(cluster, &mut errors);
            }
        }
        _ => match &docs.join {
            Some(join) => check_join(join, &mut errors),
            None => errors.push("kubeadm join needs a JoinConfiguration in --config".into()),
        },
    }
    if errors.is_empty() {
        Ok(docs)
    } else {
        Err(errors.join("\n"))
    }
}

fn is_token(s: &str) -> bool {
    let ok = |p: &str, n: usize| {
        p.len() == n
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    };
    matches!(s.split_once('.'), Some((id, secret)) if ok(id, 6) && ok(secret, 16))
}

fn is_hex(s: &str, n: usize) -> bool {
    s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit())
}

fn check_init(init: &Value, errors: &mut Vec<String>) {
    for (i, t) in init["bootstrapTokens"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if !is_token(t["token"].as_str().unwrap_or("")) {
            errors.push(format!(
                "bootstrapTokens[{i}].token: Invalid value: the bootstrap token is invalid"
            ));
        }
    }
    if let Some(k) = init["certificateKey"].as_str() {
        if !is_hex(k, 64) {
            errors.push("certificateKey: Invalid value: certificate key must be 64 hex characters (32 bytes AES key)".into());
        }
    }
    check_node_registration(&init["nodeRegistration"], errors);
}

fn check_cluster(cluster: &Value, errors: &mut Vec<String>) {
    if let Some(v) = cluster["kubernetesVersion"].as_str() {
        if !v.starts_with('v') {
            errors.push(format!("kubernetesVersion: Invalid value: {v:?}"));
        }
    }
    let ext = &cluster["etcd"]["external"];
    if !ext.is_null() {
        if !cluster["etcd"]["local"].is_null() {
            errors
                .push("etcd: Invalid value: local and external etcd are mutually exclusive".into());
        }
        if ext["endpoints"].as_array().is_none_or(|e| e.is_empty()) {
            errors.push("etcd.external.endpoints: Required value".into());
        }
        let https = ext["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e.as_str().is_some_and(|s| s.starts_with("https://")));
        for f in ["caFile", "certFile", "keyFile"] {
            let v = ext[f].as_str().unwrap_or("");
            if https && v.is_empty() {
                errors.push(format!(
                    "etcd.external.{f}: Required value: required for https endpoints"
                ));
            } else if !v.is_empty() && !v.starts_with('/') {
                errors.push(format!(
                    "etcd.external.{f}: Invalid value: path is not absolute"
                ));
            }
        }
    }
}

fn check_node_registration(nr: &Value, errors: &mut Vec<String>) {
    if let Some(sock) = nr["criSocket"].as_str() {
        if !sock.starts_with("unix://") {
            errors.push(format!("nodeRegistration.criSocket: Invalid value: {sock:?}: must be a URL with the unix scheme"));
        }
    }
    for (i, t) in nr["taints"].as_array().into_iter().flatten().enumerate() {
        let effect = t["effect"].as_str().unwrap_or("");
        if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
            errors.push(format!(
                "nodeRegistration.taints[{i}].effect: Unsupported value: {effect:?}"
            ));
        }
    }
}

fn check_join(join: &Value, errors: &mut Vec<String>) {
    let d = &join["discovery"];
    let bt = &d["bootstrapToken"];
    let file = &d["file"];
    match (bt.is_null(), file.is_null()) {
        (true, true) => {
            errors.push("discovery: Invalid value: bootstrapToken or file must be set".into())
        }
        (false, false) => errors.push(
            "discovery: Invalid value: bootstrapToken and file are mutually exclusive".into(),
        ),
        _ => {}
    }
    if !bt.is_null() {
        if !is_token(bt["token"].as_str().unwrap_or("")) {
            errors.push(
                "discovery.bootstrapToken.token: Invalid value: the bootstrap token is invalid"
                    .into(),
            );
        }
        if bt["apiServerEndpoint"].as_str().unwrap_or("").is_empty() {
            errors.push("discovery.bootstrapToken.apiServerEndpoint: Required value".into());
        }
        let hashes: Vec<&str> = bt["caCertHashes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h.as_str())
            .collect();
        if hashes.is_empty() && !bt["unsafeSkipCAVerification"].as_bool().unwrap_or(false) {
            errors.push("discovery.bootstrapToken.caCertHashes: Invalid value: using token-based discovery without caCertHashes can be unsafe; set unsafeSkipCAVerification to continue".into());
        }
        for h in hashes {
            if !h.strip_prefix("sha256:").is_some_and(|x| is_hex(x, 64)) {
                errors.push(format!(
                    "discovery.bootstrapToken.caCertHashes: Invalid value: {h:?}: invalid hash"
                ));
            }
        }
    }
    if !file.is_null() && file["kubeConfigPath"].as_str().unwrap_or("").is_empty() {
        errors.push("discovery.file.kubeConfigPath: Required value".into());
    }
    if let Some(t) = d["tlsBootstrapToken"].as_str() {
        if !is_token(t) {
            errors.push(
                "discovery.tlsBootstrapToken: Invalid value: the bootstrap token is invalid".into(),
            );
        }
    }
    let cp = &join["controlPlane"];
    if !cp.is_null() {
        if let Some(k) = cp["certificateKey"].as_str() {
            if !is_hex(k, 64) {
                errors.push(
                    "controlPlane.certificateKey: Invalid value: must be 64 hex characters".into(),
                );
            }
        }
    }
    check_node_registration(&join["nodeRegistration"], errors);
}
