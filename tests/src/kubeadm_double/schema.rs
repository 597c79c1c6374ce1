//! The shape of kubeadm's configuration types, per API version, transcribed
//! from upstream `cmd/kubeadm/app/apis/kubeadm/{v1beta3,v1beta4}/types.go` (and
//! `bootstraptoken/v1`). Used to reject unknown fields and wrong types, as
//! `kubeadm config validate` does with strict decoding.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    V1Beta3,
    V1Beta4,
}

pub enum Shape {
    Str,
    Bool,
    Int,
    List(Box<Shape>),
    /// map[string]string (v1beta3 extraArgs) or map[string]bool (featureGates).
    MapOf(Box<Shape>),
    Object(Vec<(&'static str, Shape)>),
}

use Shape::*;

fn list(s: Shape) -> Shape {
    List(Box::new(s))
}
fn obj(fields: Vec<(&'static str, Shape)>) -> Shape {
    Object(fields)
}
fn strs() -> Shape {
    list(Str)
}

fn arg_list(api: Api) -> Shape {
    match api {
        Api::V1Beta3 => MapOf(Box::new(Str)),
        Api::V1Beta4 => list(obj(vec![("name", Str), ("value", Str)])),
    }
}

/// v1beta4's `EnvVar` inlines core/v1 `EnvVar`: a value, or `valueFrom` a source.
fn env_vars() -> Shape {
    let key_ref = || obj(vec![("name", Str), ("key", Str), ("optional", Bool)]);
    list(obj(vec![
        ("name", Str),
        ("value", Str),
        (
            "valueFrom",
            obj(vec![
                (
                    "fieldRef",
                    obj(vec![("apiVersion", Str), ("fieldPath", Str)]),
                ),
                (
                    "resourceFieldRef",
                    obj(vec![
                        ("containerName", Str),
                        ("resource", Str),
                        ("divisor", Str),
                    ]),
                ),
                ("configMapKeyRef", key_ref()),
                ("secretKeyRef", key_ref()),
            ]),
        ),
    ]))
}

fn host_path_mounts() -> Shape {
    list(obj(vec![
        ("name", Str),
        ("hostPath", Str),
        ("mountPath", Str),
        ("readOnly", Bool),
        ("pathType", Str),
    ]))
}

fn api_endpoint() -> Shape {
    obj(vec![("advertiseAddress", Str), ("bindPort", Int)])
}

fn patches() -> Shape {
    obj(vec![("directory", Str)])
}

fn taints() -> Shape {
    list(obj(vec![
        ("key", Str),
        ("value", Str),
        ("effect", Str),
        ("timeAdded", Str),
    ]))
}

fn node_registration(api: Api) -> Shape {
    let mut f = vec![
        ("name", Str),
        ("criSocket", Str),
        ("taints", taints()),
        ("kubeletExtraArgs", arg_list(api)),
        ("ignorePreflightErrors", strs()),
        ("imagePullPolicy", Str),
    ];
    if api == Api::V1Beta4 {
        f.push(("imagePullSerial", Bool));
    }
    obj(f)
}

fn timeouts() -> Shape {
    obj(vec![
        ("controlPlaneComponentHealthCheck", Str),
        ("kubeletHealthCheck", Str),
        ("kubernetesAPICall", Str),
        ("etcdAPICall", Str),
        ("tlsBootstrap", Str),
        ("discovery", Str),
        ("upgradeManifests", Str),
    ])
}

fn bootstrap_token() -> Shape {
    obj(vec![
        ("token", Str),
        ("description", Str),
        ("ttl", Str),
        ("expires", Str),
        ("usages", strs()),
        ("groups", strs()),
    ])
}

fn type_meta() -> Vec<(&'static str, Shape)> {
    vec![("apiVersion", Str), ("kind", Str)]
}

pub fn init_configuration(api: Api) -> Shape {
    let mut f = type_meta();
    f.extend([
        ("bootstrapTokens", list(bootstrap_token())),
        ("nodeRegistration", node_registration(api)),
        ("localAPIEndpoint", api_endpoint()),
        ("certificateKey", Str),
        ("skipPhases", strs()),
        ("patches", patches()),
    ]);
    if api == Api::V1Beta4 {
        f.extend([("dryRun", Bool), ("timeouts", timeouts())]);
    }
    obj(f)
}

fn component(api: Api, extra: Vec<(&'static str, Shape)>) -> Shape {
    let mut f = vec![
        ("extraArgs", arg_list(api)),
        ("extraVolumes", host_path_mounts()),
    ];
    if api == Api::V1Beta4 {
        f.push(("extraEnvs", env_vars()));
    }
    f.extend(extra);
    obj(f)
}

pub fn cluster_configuration(api: Api) -> Shape {
    let mut local = vec![
        ("imageRepository", Str),
        ("imageTag", Str),
        ("dataDir", Str),
        ("extraArgs", arg_list(api)),
        ("serverCertSANs", strs()),
        ("peerCertSANs", strs()),
    ];
    let mut api_server = vec![("certSANs", strs())];
    let mut dns = vec![("imageRepository", Str), ("imageTag", Str)];
    match api {
        Api::V1Beta3 => api_server.push(("timeoutForControlPlane", Str)),
        Api::V1Beta4 => {
            local.push(("extraEnvs", env_vars()));
            dns.push(("disabled", Bool));
        }
    }
    let mut f = type_meta();
    f.extend([
        (
            "etcd",
            obj(vec![
                ("local", obj(local)),
                (
                    "external",
                    obj(vec![
                        ("endpoints", strs()),
                        ("caFile", Str),
                        ("certFile", Str),
                        ("keyFile", Str),
                    ]),
                ),
            ]),
        ),
        (
            "networking",
            obj(vec![
                ("serviceSubnet", Str),
                ("podSubnet", Str),
                ("dnsDomain", Str),
            ]),
        ),
        ("kubernetesVersion", Str),
        ("controlPlaneEndpoint", Str),
        ("apiServer", component(api, api_server)),
        ("controllerManager", component(api, vec![])),
        ("scheduler", component(api, vec![])),
        ("dns", obj(dns)),
        ("certificatesDir", Str),
        ("imageRepository", Str),
        ("featureGates", MapOf(Box::new(Bool))),
        ("clusterName", Str),
    ]);
    if api == Api::V1Beta4 {
        f.extend([
            ("proxy", obj(vec![("disabled", Bool)])),
            ("encryptionAlgorithm", Str),
            ("certificateValidityPeriod", Str),
            ("caCertificateValidityPeriod", Str),
        ]);
    }
    obj(f)
}

pub fn join_configuration(api: Api) -> Shape {
    let mut discovery = vec![
        (
            "bootstrapToken",
            obj(vec![
                ("token", Str),
                ("apiServerEndpoint", Str),
                ("caCertHashes", strs()),
                ("unsafeSkipCAVerification", Bool),
            ]),
        ),
        ("file", obj(vec![("kubeConfigPath", Str)])),
        ("tlsBootstrapToken", Str),
    ];
    if api == Api::V1Beta3 {
        discovery.push(("timeout", Str));
    }
    let mut f = type_meta();
    f.extend([
        ("nodeRegistration", node_registration(api)),
        ("caCertPath", Str),
        ("discovery", obj(discovery)),
        (
            "controlPlane",
            obj(vec![
                ("localAPIEndpoint", api_endpoint()),
                ("certificateKey", Str),
            ]),
        ),
        ("skipPhases", strs()),
        ("patches", patches()),
    ]);
    if api == Api::V1Beta4 {
        f.extend([("dryRun", Bool), ("timeouts", timeouts())]);
    }
    obj(f)
}

/// Every field path of `shape`, dotted (`discovery.bootstrapToken.token`; a list's
/// items add `[]`), in the order the shape lists them. Maps stop the walk.
#[allow(dead_code)] // the known-answer test (tests/agent/double.rs) only
pub fn field_paths(shape: &Shape) -> Vec<String> {
    fn walk(shape: &Shape, prefix: &str, out: &mut Vec<String>) {
        match shape {
            Object(fields) => {
                for (name, s) in fields {
                    let path = join(prefix, name);
                    out.push(path.clone());
                    walk(s, &path, out);
                }
            }
            List(inner) => walk(inner, &format!("{prefix}[]"), out),
            Str | Bool | Int | MapOf(_) => {}
        }
    }
    let mut out = Vec::new();
    walk(shape, "", &mut out);
    out
}

/// Strict decoding: every field known, every value of the right type.
pub fn check(value: &Value, shape: &Shape, path: &str, errors: &mut Vec<String>) {
    match (shape, value) {
        (Str, Value::String(_)) | (Bool, Value::Bool(_)) => {}
        (Int, Value::Number(n)) if n.is_i64() => {}
        (List(inner), Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                check(item, inner, &format!("{path}[{i}]"), errors);
            }
        }
        (MapOf(inner), Value::Object(m)) => {
            for (k, v) in m {
                check(v, inner, &format!("{path}.{k}"), errors);
            }
        }
        (Object(fields), Value::Object(m)) => {
            for (k, v) in m {
                match fields.iter().find(|(name, _)| name == k) {
                    Some((_, s)) => check(v, s, &join(path, k), errors),
                    None => errors.push(format!(
                        "strict decoding error: unknown field \"{}\"",
                        join(path, k)
                    )),
                }
            }
        }
        (_, Value::Null) => {}
        (s, v) => errors.push(format!("{path}: expected {}, got {v}", describe(s))),
    }
}

fn join(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_string()
    } else {
        format!("{path}.{k}")
    }
}

fn describe(s: &Shape) -> &'static str {
    match s {
        Str => "a string",
        Bool => "a boolean",
        Int => "an integer",
        List(_) => "a list",
        MapOf(_) => "a map",
        Object(_) => "an object",
    }
}
