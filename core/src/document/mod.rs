//! The node document (docs/design.md §2): one TOML file that tells a node everything.
//!
//! Parsing is strict (unknown keys are errors) and never echoes secret values;
//! [`validate`] then checks meaning (formats, role vs. fields) before anything on
//! the host changes.

pub mod formats;
pub mod user_data;
mod validate;
pub mod writer;

use std::collections::BTreeMap;
use std::net::IpAddr;

use secrecy::SecretString;
use serde::Deserialize;

pub use validate::{label_problems, validate_pointer, FieldError, InvalidDocument};

/// The document format version this agent understands.
pub const DOCUMENT_VERSION: u32 = 1;

/// The default CRI socket: containerd, as installed in the kubeboot image.
pub const DEFAULT_CRI_SOCKET: &str = "unix:///run/containerd/containerd.sock";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The first control plane: `kubeadm init`.
    Init,
    /// Another control plane: `kubeadm join --control-plane`.
    ControlPlane,
    /// A worker: `kubeadm join`.
    Worker,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Init => "init",
            Role::ControlPlane => "control-plane",
            Role::Worker => "worker",
        }
    }
    pub fn is_control_plane(self) -> bool {
        matches!(self, Role::Init | Role::ControlPlane)
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        [Role::Init, Role::ControlPlane, Role::Worker]
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| "unknown role: use init, control-plane or worker".to_string())
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The document as written. Every optional table defaults to empty.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeDocument {
    pub version: u32,
    pub role: Option<Role>,
    pub cluster: Option<Cluster>,
    #[serde(default)]
    pub discovery: Discovery,
    #[serde(default)]
    pub node: Node,
    pub pki: Option<Pki>,
    pub report: Option<Report>,
    #[serde(default)]
    pub kubeadm: KubeadmOptions,
    #[serde(default)]
    pub preflight: PreflightOptions,
    #[serde(default)]
    pub ready: ReadyOptions,
    #[serde(default)]
    pub replace: ReplaceOptions,
    /// A pointer document: fetch the real document from here.
    pub source: Option<Source>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// The shared controlPlaneEndpoint, `HOST:PORT`.
    pub endpoint: String,
    pub kubernetes_version: Option<String>,
    pub pod_subnet: Option<String>,
    pub service_subnet: Option<String>,
    pub name: Option<String>,
    pub etcd: Option<ExternalEtcd>,
}

/// External etcd (the second HA topology). Credentials as paths on the node, or as PEM.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalEtcd {
    pub external_endpoints: Vec<String>,
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub ca_cert: Option<String>,
    pub cert: Option<String>,
    pub key: Option<SecretString>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Discovery {
    pub token: Option<SecretString>,
    #[serde(default)]
    pub ca_cert_hashes: Vec<String>,
    pub certificate_key: Option<SecretString>,
    /// kubeadm's discovery file: a path on the node or an https URL of a kubeconfig.
    pub file: Option<String>,
    /// Lifetime of the bootstrap token `kubeadm init` creates, as a Go duration ("24h0m0s", "0" = never).
    pub token_ttl: Option<String>,
    /// How long a joining node waits for the API endpoint to answer (default 300 s).
    pub timeout_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub name: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `None`: kubeadm's default (control planes get the control-plane taint); `Some([])`: no taints.
    pub taints: Option<Vec<Taint>>,
    pub advertise_address: Option<IpAddr>,
    pub cri_socket: Option<String>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Taint {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub effect: TaintEffect,
}

#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

/// Pre-generated CA material (PEM) for `init`, so the CA hash is known before the cluster exists.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pki {
    pub ca_cert: Option<String>,
    pub ca_key: Option<SecretString>,
    pub front_proxy_ca_cert: Option<String>,
    pub front_proxy_ca_key: Option<SecretString>,
    pub etcd_ca_cert: Option<String>,
    pub etcd_ca_key: Option<SecretString>,
    pub sa_key: Option<SecretString>,
    pub sa_pub: Option<String>,
}

/// One `[pki]` pair: its document keys, kubeadm's file names under the
/// certificates dir, and the PEM label of the public half.
pub struct PkiPairSpec {
    pub cert_key: &'static str,
    pub cert_file: &'static str,
    pub key_key: &'static str,
    pub key_file: &'static str,
    pub cert_label: &'static str,
}

/// Every `[pki]` pair, in the order of [`Pki::values`].
pub const PKI_PAIRS: [PkiPairSpec; 4] = [
    PkiPairSpec {
        cert_key: "ca_cert",
        cert_file: "ca.crt",
        key_key: "ca_key",
        key_file: "ca.key",
        cert_label: "CERTIFICATE",
    },
    PkiPairSpec {
        cert_key: "front_proxy_ca_cert",
        cert_file: "front-proxy-ca.crt",
        key_key: "front_proxy_ca_key",
        key_file: "front-proxy-ca.key",
        cert_label: "CERTIFICATE",
    },
    PkiPairSpec {
        cert_key: "etcd_ca_cert",
        cert_file: "etcd/ca.crt",
        key_key: "etcd_ca_key",
        key_file: "etcd/ca.key",
        cert_label: "CERTIFICATE",
    },
    PkiPairSpec {
        cert_key: "sa_pub",
        cert_file: "sa.pub",
        key_key: "sa_key",
        key_file: "sa.key",
        cert_label: "PUBLIC KEY",
    },
];

impl Pki {
    /// (public half, private key) of each pair, in [`PKI_PAIRS`] order.
    pub fn values(&self) -> [(Option<&str>, Option<&SecretString>); 4] {
        [
            (self.ca_cert.as_deref(), self.ca_key.as_ref()),
            (
                self.front_proxy_ca_cert.as_deref(),
                self.front_proxy_ca_key.as_ref(),
            ),
            (self.etcd_ca_cert.as_deref(), self.etcd_ca_key.as_ref()),
            (self.sa_pub.as_deref(), self.sa_key.as_ref()),
        ]
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// The receiver's API base, e.g. `https://10.0.0.2:8443/v1`; events go to
    /// `{url}/nodes/{name}/events`.
    pub url: String,
    /// Bearer token the receiver accepts (`kubeboot serve --token-file`).
    pub token: Option<SecretString>,
    /// Trust exactly the CA with this public-key hash (as `kubeboot serve` prints).
    pub ca_cert_hash: Option<String>,
    /// Or trust the CA certificates in this PEM file on the node. With neither, the system roots.
    pub ca_file: Option<String>,
    /// How long the agent waits, when it has finished, for queued events to go
    /// out before it exits (they stay queued for the next run). Default 30.
    pub drain_seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub url: String,
    pub ca_cert_hash: Option<String>,
    pub token: Option<SecretString>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeadmOptions {
    #[serde(default)]
    pub ignore_preflight_errors: Vec<String>,
    #[serde(default)]
    pub skip_phases: Vec<String>,
    /// How many times `kubeadm init/join` is tried before the node is `failed`.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Base of the jittered exponential backoff between attempts, in seconds.
    #[serde(default = "default_backoff")]
    pub retry_backoff_seconds: f64,
    /// kubeadm's own `patches.directory` for the components it deploys.
    pub patches_directory: Option<String>,
    /// How long `kubeadm init` waits for the control plane to come up (kubeadm's
    /// default: 240). Slow machines (emulated VMs) need more. With kubeadm ≥ 1.31
    /// (v1beta4 `timeouts`) it also bounds kubeadm's other waits on this node, for
    /// every role: the kubelet's health check, a join's TLS bootstrap, and a
    /// control-plane join's local control plane and etcd calls.
    pub control_plane_timeout_seconds: Option<u64>,
    /// How long the kubelet lets each control-plane component (etcd, kube-apiserver,
    /// kube-controller-manager, kube-scheduler) start before restarting it. kubeadm's
    /// manifests allow about 250 s; an emulated VM can need more. Applied as kubeadm
    /// patches (startupProbe.failureThreshold) the agent writes; not with patches_directory.
    pub static_pod_startup_seconds: Option<u64>,
    /// How long a running control-plane component may fail its liveness probe before
    /// the kubelet restarts it. kubeadm's manifests allow 80 s with 15 s per probe; on
    /// an overloaded host a restart costs minutes and makes the overload worse. Applied
    /// like static_pod_startup_seconds (livenessProbe.failureThreshold, timeoutSeconds 30).
    pub static_pod_liveness_seconds: Option<u64>,
    /// Deep-merged into the generated configuration documents (kubeadm's field names).
    #[serde(default)]
    pub patch: ConfigPatches,
}

impl Default for KubeadmOptions {
    fn default() -> Self {
        KubeadmOptions {
            control_plane_timeout_seconds: None,
            static_pod_startup_seconds: None,
            static_pod_liveness_seconds: None,
            ignore_preflight_errors: Vec::new(),
            skip_phases: Vec::new(),
            attempts: default_attempts(),
            retry_backoff_seconds: default_backoff(),
            patches_directory: None,
            patch: ConfigPatches::default(),
        }
    }
}

fn default_attempts() -> u32 {
    3
}
fn default_backoff() -> f64 {
    10.0
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigPatches {
    pub init_configuration: Option<toml::Table>,
    pub cluster_configuration: Option<toml::Table>,
    pub join_configuration: Option<toml::Table>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreflightOptions {
    /// How long to wait for the clock to be synchronised (NTP) before going on.
    #[serde(default = "default_clock_wait")]
    pub clock_sync_timeout_seconds: u64,
    /// Fail instead of warning when the clock is still not synchronised.
    #[serde(default)]
    pub require_clock_sync: bool,
    /// How long to wait for the container runtime socket.
    #[serde(default = "default_cri_wait")]
    pub cri_timeout_seconds: u64,
}

/// The `ready` phase: how long this Node may take to report Ready after kubeadm.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadyOptions {
    #[serde(default = "default_ready_wait")]
    pub timeout_seconds: u64,
}

impl Default for ReadyOptions {
    fn default() -> Self {
        ReadyOptions {
            timeout_seconds: default_ready_wait(),
        }
    }
}

fn default_ready_wait() -> u64 {
    600
}

/// A control-plane join cleans up after the machine it replaces (see `replace`):
/// the stale same-name Node and at most one dead etcd member.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplaceOptions {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How long a member or Node must stay silent to be taken for dead (a rebooting
    /// control plane is not a dead one). A member with this node's own name needs
    /// only a few probes.
    #[serde(default = "default_replace_grace")]
    pub grace_seconds: u64,
}

impl Default for ReplaceOptions {
    fn default() -> Self {
        ReplaceOptions {
            enabled: true,
            grace_seconds: default_replace_grace(),
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_replace_grace() -> u64 {
    300
}

impl Default for PreflightOptions {
    fn default() -> Self {
        PreflightOptions {
            clock_sync_timeout_seconds: default_clock_wait(),
            require_clock_sync: false,
            cri_timeout_seconds: default_cri_wait(),
        }
    }
}

fn default_clock_wait() -> u64 {
    60
}
fn default_cri_wait() -> u64 {
    60
}

impl NodeDocument {
    pub fn discovery_timeout_seconds(&self) -> u64 {
        self.discovery.timeout_seconds.unwrap_or(300)
    }
}

/// A document that passed [`validate`]: role and cluster are present and every field is well-formed.
#[derive(Debug)]
pub struct ValidDocument {
    pub role: Role,
    pub cluster: Cluster,
    pub endpoint: formats::Endpoint,
    pub doc: NodeDocument,
}

impl ValidDocument {
    pub fn node_name(&self) -> Option<&str> {
        self.doc.node.name.as_deref()
    }
    pub fn cri_socket(&self) -> &str {
        self.doc
            .node
            .cri_socket
            .as_deref()
            .unwrap_or(DEFAULT_CRI_SOCKET)
    }
}

/// Parse TOML into a document. Errors name the line and the key path, never a value.
pub fn parse(text: &str) -> Result<NodeDocument, InvalidDocument> {
    let de = toml::Deserializer::parse(text).map_err(|e| syntax_error(text, &e))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let mut err = syntax_error(text, &inner);
        if path != "." && !path.is_empty() {
            err.errors[0].field = path;
        }
        err
    })
}

fn syntax_error(text: &str, e: &toml::de::Error) -> InvalidDocument {
    let location = e
        .span()
        .map(|span| format!(" (line {})", line_of(text, span.start)))
        .unwrap_or_default();
    InvalidDocument::single(
        "document",
        format!("{}{location}", scrub(&without_values(e.message().trim()))),
        "fix the TOML syntax or the key named here; see cloud-init/examples/ for complete documents",
    )
}

/// The 1-based line holding byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// serde's type and variant errors quote the value they found
/// (`invalid type: string "…", expected u32`); keep the kind and what was
/// expected, drop the value. A secret typed into the wrong field must not
/// travel into logs and status reports. What leads up to the error, such as
/// the path serde_yaml puts first (`clusters[0]: invalid type: …`), stays
/// when it quotes nothing itself.
pub fn without_values(message: &str) -> String {
    let expected = |rest: &str| {
        rest.rsplit_once(", expected ")
            .map(|(_, e)| format!(", expected {e}"))
            .unwrap_or_default()
    };
    let split = |marker: &str| {
        let i = message.find(marker)?;
        let head = &message[..i];
        let head = if head.contains(['"', '`', '\'']) {
            ""
        } else {
            head
        };
        Some((head, &message[i + marker.len()..]))
    };
    for (marker, what) in [
        ("invalid type: ", "wrong type"),
        ("invalid value: ", "invalid value"),
    ] {
        if let Some((head, rest)) = split(marker) {
            let kind = rest.split(['"', '`', ',']).next().unwrap_or("").trim();
            return format!("{head}{what}: found {kind}{}", expected(rest));
        }
    }
    if let Some((head, rest)) = split("unknown variant ") {
        return format!("{head}unknown value{}", expected(rest));
    }
    message.to_string()
}

/// Parse and validate in one step.
pub fn load(text: &str) -> Result<ValidDocument, InvalidDocument> {
    validate::validate(parse(text)?)
}

/// Defence in depth for messages that may quote document text: blank out
/// anything shaped like a bootstrap token or a 64-hex key.
pub fn scrub(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let looks_secret = formats::check_bootstrap_token(word).is_ok()
            || (word.len() >= 32 && word.chars().all(|c| c.is_ascii_hexdigit()));
        out.push_str(if looks_secret { "<redacted>" } else { word });
        word.clear();
    };
    for c in message.chars() {
        if c.is_ascii_alphanumeric() || c == '.' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORKER: &str = include_str!("../../../cloud-init/examples/worker.toml");
    const MARK: &str = "zqx.MARK";

    /// The worker example with `key = value` put into `[table]` (or at the top).
    fn with(table: &str, key_value: &str) -> String {
        let mut doc = WORKER.replace("\n[", "\n#\n[");
        if table.is_empty() {
            doc.insert_str(0, &format!("{key_value}\n"));
        } else if doc.contains(&format!("\n[{table}]\n")) {
            doc = doc.replace(
                &format!("\n[{table}]\n"),
                &format!("\n[{table}]\n{key_value}\n"),
            );
        } else {
            doc.push_str(&format!("\n[{table}]\n{key_value}\n"));
        }
        doc
    }

    #[test]
    fn errors_never_quote_the_value() {
        let m = format!("\"{MARK}\"");
        let cases = [
            ("", format!("drain_seconds_typo = {m}")),
            (
                "report",
                format!("url = \"https://r.example:8443\"\ndrain_seconds = {m}"),
            ),
            ("replace", format!("grace_seconds = {m}")),
            ("kubeadm", format!("attempts = {m}")),
            ("", format!("version2 = 1\nrole2 = {m}")),
            ("cluster", format!("pod_subnet = {m}")),
            ("cluster", format!("service_subnet = {m}")),
            ("cluster", format!("name = \"{MARK}!\"")),
            ("discovery", format!("token_ttl = {m}")),
            ("discovery", format!("file = {m}")),
            ("node", format!("name = \"{MARK}!\"")),
            ("node", format!("cri_socket = {m}")),
            ("node", format!("advertise_address = {m}")),
            ("source", format!("url = {m}")),
        ];
        for (table, kv) in cases {
            let text = with(table, &kv);
            let err = load(&text).expect_err(&text).to_string();
            assert!(!err.contains("zqx"), "{kv} leaked its value: {err}");
        }
        // A wrong variant and a wrong type in fields parse rejects.
        let text = WORKER.replace("role = \"worker\"", &format!("role = {m}"));
        let err = load(&text).unwrap_err().to_string();
        assert!(
            err.contains("role") && err.contains("expected one of"),
            "{err}"
        );
        assert!(!err.contains("zqx"), "{err}");
        let text = WORKER.replace("endpoint = \"k8s", &format!("endpoint = \"{MARK}\"\n#"));
        let err = load(&text).unwrap_err().to_string();
        assert!(
            err.contains("cluster.endpoint") && !err.contains("zqx"),
            "{err}"
        );
        let text = WORKER.replace("version = 1", &format!("version = {m}"));
        let err = load(&text).unwrap_err().to_string();
        assert!(
            err.contains("wrong type: found string, expected u32"),
            "{err}"
        );
        assert!(!err.contains("zqx"), "{err}");
    }

    #[test]
    fn syntax_errors_name_the_right_line() {
        let text = "version = 1\nrole = \"worker\"\nthis is not toml\n";
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains("(line 3)"), "{err}");
        let text = "version = 1\n\nrole = 7\n";
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains("(line 3)") && err.contains("role"), "{err}");
    }

    #[test]
    fn serde_messages_lose_their_values() {
        assert_eq!(
            without_values("invalid type: string \"a, expected b\", expected u64"),
            "wrong type: found string, expected u64"
        );
        assert_eq!(
            without_values("unknown variant `s3cret`, expected one of `init`, `worker`"),
            "unknown value, expected one of `init`, `worker`"
        );
        assert_eq!(
            without_values(
                "clusters[0]: invalid type: string \"token: s3cret\", expected struct NamedCluster at line 4 column 3"
            ),
            "clusters[0]: wrong type: found string, expected struct NamedCluster at line 4 column 3"
        );
        assert_eq!(
            without_values("unknown field `s3cret`, invalid type: string \"x\", expected u8"),
            "wrong type: found string, expected u8"
        );
        assert_eq!(
            without_values("missing field `endpoint`"),
            "missing field `endpoint`"
        );
    }

    mod fuzz {
        use super::*;
        use crate::fuzz::{apply, config, edits, quotes};
        use proptest::prelude::*;

        const INIT: &str = include_str!("../../../cloud-init/examples/init.toml");
        const CONTROL_PLANE: &str = include_str!("../../../cloud-init/examples/control-plane.toml");
        /// The secret half of the examples' bootstrap token.
        const SECRET: &str = "0123456789abcdef";
        /// The examples' certificate key (kubeadm's uploaded-certs key).
        const CERTIFICATE_KEY: &str =
            "e6a2eb8581237ab72a4f494f30285ec12a9694d750b9785706a83bfcbbbd2204";
        const REPORT_TOKEN: &str = "Zq8vX2mKpR4tY7wB1nC5dF9gH3jL6sV0";

        /// A joining control plane with every secret a document carries: the
        /// bootstrap token, the certificate key and a report token.
        fn control_plane() -> String {
            format!(
                "{CONTROL_PLANE}\n[report]\nurl = \"https://10.0.0.2:8443/v1\"\ntoken = \"{REPORT_TOKEN}\"\nca_cert_hash = \"sha256:{}\"\n",
                "ab".repeat(32)
            )
        }

        #[test]
        fn the_seeds_are_valid() {
            for seed in [WORKER, INIT, &control_plane()] {
                load(seed).unwrap();
            }
        }

        proptest! {
            #![proptest_config(config())]

            /// A mutated document never panics the parser or the checks. An
            /// error names a field and quotes no piece of a secret (token,
            /// certificate key, report token), even one the edits changed; a
            /// document that loads passed validation and keeps its secrets out
            /// of Debug.
            #[test]
            fn mutated_documents_fail_cleanly(doc in 0..3usize, e in edits()) {
                let cp = control_plane();
                let seed = [WORKER, INIT, cp.as_str()][doc];
                let text = String::from_utf8_lossy(&apply(seed.as_bytes(), &e)).into_owned();
                let shown = match load(&text) {
                    Ok(valid) => format!("{valid:?}"),
                    Err(err) => {
                        prop_assert!(!err.errors.is_empty());
                        prop_assert!(err.errors.iter().all(|f| !f.field.is_empty()), "{}", err);
                        err.to_string()
                    }
                };
                for (secret, window) in [(SECRET, 8), (CERTIFICATE_KEY, 12), (REPORT_TOKEN, 8)] {
                    prop_assert!(!quotes(&shown, secret, window), "{}", shown);
                }
            }
        }
    }
}
