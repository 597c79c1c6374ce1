//! Meaning checks over a parsed document. All problems are collected so the
//! operator fixes them in one pass; each names the field and the fix.

use secrecy::ExposeSecret;

use super::formats::{self, Endpoint};
use super::{NodeDocument, Role, ValidDocument, DOCUMENT_VERSION};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// Dotted path of the offending key, e.g. `discovery.token`.
    pub field: String,
    pub problem: String,
    pub fix: String,
}

/// The document is unusable. Display lists every problem, one per line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InvalidDocument {
    pub errors: Vec<FieldError>,
}

impl InvalidDocument {
    pub fn single(field: &str, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        InvalidDocument {
            errors: vec![FieldError {
                field: field.to_string(),
                problem: problem.into(),
                fix: fix.into(),
            }],
        }
    }
}

impl std::fmt::Display for InvalidDocument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.errors.len();
        write!(
            f,
            "the node document is invalid ({n} problem{})",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.errors {
            write!(f, "\n  {}: {}; fix: {}", e.field, e.problem, e.fix)?;
        }
        Ok(())
    }
}

impl std::error::Error for InvalidDocument {}

#[derive(Default)]
struct Problems(Vec<FieldError>);

impl Problems {
    fn add(&mut self, field: &str, problem: impl Into<String>, fix: impl Into<String>) {
        self.0.push(FieldError {
            field: field.to_string(),
            problem: problem.into(),
            fix: fix.into(),
        });
    }
}

fn check_version(doc: &NodeDocument, p: &mut Problems) {
    if doc.version != DOCUMENT_VERSION {
        p.add(
            "version",
            format!("unsupported document version {}", doc.version),
            format!("set version = {DOCUMENT_VERSION}"),
        );
    }
}

/// A pointer document (`[source]` only): the version, an https URL and a
/// well-formed CA pin. What the agent checks before it follows one, and what
/// `kubeboot seed`/`userdata` check before they deliver one (a node group's
/// user-data).
pub fn validate_pointer(doc: &NodeDocument) -> Result<(), InvalidDocument> {
    let mut p = Problems::default();
    check_version(doc, &mut p);
    if doc.role.is_some() || doc.cluster.is_some() {
        p.add(
            "source",
            "a document with [source] must only point elsewhere",
            "keep version and [source] only; the server's document carries role, cluster and discovery",
        );
    }
    if let Some(src) = &doc.source {
        if !src.url.starts_with("https://") {
            p.add(
                "source.url",
                format!("{:?} is not an https URL", src.url),
                "node documents carry secrets: serve them over HTTPS (kubeboot serve does)",
            );
        }
        if let Some(Err(why)) = src.ca_cert_hash.as_deref().map(formats::check_ca_hash) {
            p.add(
                "source.ca_cert_hash",
                format!("the value {why}"),
                "give the pin of the CA of the server's certificate (`kubeboot ca-hash ca.crt`)",
            );
        }
    }
    if p.0.is_empty() {
        Ok(())
    } else {
        Err(InvalidDocument { errors: p.0 })
    }
}

pub fn validate(doc: NodeDocument) -> Result<ValidDocument, InvalidDocument> {
    let mut p = Problems::default();
    check_version(&doc, &mut p);
    if doc.source.is_some() {
        p.add(
            "source",
            "a [source] pointer must be resolved before validation",
            "let `kubeboot agent` fetch it, or give the fetched document",
        );
    }
    let Some(role) = doc.role else {
        p.add(
            "role",
            "missing",
            "set role = \"init\", \"control-plane\" or \"worker\"",
        );
        return Err(InvalidDocument { errors: p.0 });
    };
    let endpoint = check_cluster(&doc, &mut p);
    check_discovery(&doc, role, &mut p);
    check_node(&doc, &mut p);
    check_role_specific(&doc, role, &mut p);
    check_options(&doc, &mut p);
    if !p.0.is_empty() {
        return Err(InvalidDocument { errors: p.0 });
    }
    let mut doc = doc;
    let cluster = doc.cluster.take().expect("checked above");
    Ok(ValidDocument {
        role,
        cluster,
        endpoint: endpoint.expect("checked above"),
        doc,
    })
}

fn check_cluster(doc: &NodeDocument, p: &mut Problems) -> Option<Endpoint> {
    let Some(cluster) = &doc.cluster else {
        p.add(
            "cluster",
            "missing",
            "add a [cluster] table with endpoint = \"HOST:PORT\" (the control-plane load balancer)",
        );
        return None;
    };
    let endpoint = match formats::parse_endpoint(&cluster.endpoint) {
        Ok(e) => Some(e),
        Err(why) => {
            p.add(
                "cluster.endpoint",
                format!("the value {why}"),
                "use the load balancer's HOST:PORT, e.g. k8s-api.example.internal:6443",
            );
            None
        }
    };
    if let Some(v) = &cluster.kubernetes_version {
        if let Err(why) = formats::parse_kubernetes_version(v) {
            p.add(
                "cluster.kubernetes_version",
                format!("the value {why}"),
                "e.g. v1.34.2",
            );
        }
    }
    for (field, value) in [
        ("cluster.pod_subnet", &cluster.pod_subnet),
        ("cluster.service_subnet", &cluster.service_subnet),
    ] {
        if let Some(v) = value {
            if let Err(why) = formats::check_cidrs(v) {
                p.add(field, format!("the value {why}"), "e.g. 10.244.0.0/16");
            }
        }
    }
    if let Some(name) = &cluster.name {
        if !formats::is_dns_name(name) {
            p.add(
                "cluster.name",
                "the value is not a DNS-1123 name",
                "use lowercase letters, digits, '-' and '.'",
            );
        }
    }
    if let Some(etcd) = &cluster.etcd {
        check_etcd(etcd, p);
    }
    endpoint
}

fn check_etcd(etcd: &super::ExternalEtcd, p: &mut Problems) {
    if etcd.external_endpoints.is_empty() {
        p.add(
            "cluster.etcd.external_endpoints",
            "empty",
            "list the etcd client URLs, e.g. [\"https://10.0.0.10:2379\"]",
        );
    }
    for (i, url) in etcd.external_endpoints.iter().enumerate() {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            p.add(
                &format!("cluster.etcd.external_endpoints[{i}]"),
                "the value is not a URL",
                "use https://HOST:2379",
            );
        }
    }
    let pairs = [
        ("ca", etcd.ca_file.is_some(), etcd.ca_cert.is_some()),
        ("cert", etcd.cert_file.is_some(), etcd.cert.is_some()),
        ("key", etcd.key_file.is_some(), etcd.key.is_some()),
    ];
    for (what, as_path, as_pem) in pairs {
        let field = format!("cluster.etcd.{what}");
        if as_path && as_pem {
            p.add(
                &field,
                format!("both {what}_file and the inline PEM are set"),
                "give one of them",
            );
        }
    }
    let tls = etcd
        .external_endpoints
        .iter()
        .any(|u| u.starts_with("https://"));
    if tls {
        for (what, as_path, as_pem) in pairs {
            if !as_path && !as_pem {
                let (file_key, pem_key) = match what {
                    "ca" => ("ca_file", "ca_cert"),
                    "cert" => ("cert_file", "cert"),
                    _ => ("key_file", "key"),
                };
                p.add(
                    &format!("cluster.etcd.{file_key}"),
                    "missing for https etcd endpoints",
                    format!("set {file_key} (a path on the node) or {pem_key} (PEM)"),
                );
            }
        }
    }
    for (field, pem) in [
        ("cluster.etcd.ca_cert", etcd.ca_cert.as_deref()),
        ("cluster.etcd.cert", etcd.cert.as_deref()),
    ] {
        if let Some(pem) = pem {
            check_pem(field, pem, "CERTIFICATE", p);
        }
    }
    if let Some(key) = &etcd.key {
        check_pem("cluster.etcd.key", key.expose_secret(), "PRIVATE KEY", p);
    }
    for (field, path) in [
        ("cluster.etcd.ca_file", &etcd.ca_file),
        ("cluster.etcd.cert_file", &etcd.cert_file),
        ("cluster.etcd.key_file", &etcd.key_file),
    ] {
        if let Some(path) = path {
            if !path.starts_with('/') {
                p.add(
                    field,
                    "the value is not an absolute path",
                    "use an absolute path on the node",
                );
            }
        }
    }
}

/// A light PEM shape check; full parsing happens where the material is used.
fn check_pem(field: &str, pem: &str, label_suffix: &str, p: &mut Problems) {
    let trimmed = pem.trim();
    let ok = trimmed.starts_with("-----BEGIN ")
        && trimmed.ends_with("-----")
        && trimmed
            .lines()
            .next()
            .is_some_and(|l| l.contains(label_suffix))
        && trimmed.contains("-----END ");
    if !ok {
        p.add(
            field,
            format!("not a PEM block ending in {label_suffix}"),
            format!("paste the whole PEM, from -----BEGIN ...{label_suffix}----- to the END line"),
        );
    }
}

fn check_discovery(doc: &NodeDocument, role: Role, p: &mut Problems) {
    let d = &doc.discovery;
    if let Some(token) = &d.token {
        if let Err(why) = formats::check_bootstrap_token(token.expose_secret()) {
            p.add(
                "discovery.token",
                format!("the value (redacted) {why}"),
                "generate one with `kubeboot bundle token` or `kubeadm token generate`",
            );
        }
    }
    for (i, hash) in d.ca_cert_hashes.iter().enumerate() {
        if let Err(why) = formats::check_ca_hash(hash) {
            p.add(
                &format!("discovery.ca_cert_hashes[{i}]"),
                format!("the value {why}"),
                "print it with `kubeboot ca-hash ca.crt` or the openssl pipeline in kubeadm's docs",
            );
        }
    }
    if let Some(key) = &d.certificate_key {
        if let Err(why) = formats::check_certificate_key(key.expose_secret()) {
            p.add(
                "discovery.certificate_key",
                format!("the value (redacted) {why}"),
                "generate one with `kubeboot bundle certificate-key` or `kubeadm certs certificate-key`",
            );
        }
    }
    if let Some(ttl) = &d.token_ttl {
        if !is_go_duration(ttl) {
            p.add(
                "discovery.token_ttl",
                "the value is not a duration",
                "use a Go duration such as \"24h0m0s\", \"2h\" or \"0\" (never expires)",
            );
        }
    }
    if let Some(file) = &d.file {
        if !(file.starts_with("https://") || file.starts_with('/')) {
            p.add(
                "discovery.file",
                "the value is neither an absolute path nor an https URL",
                "give the kubeconfig discovery file as /path/on/node or https://…",
            );
        }
    }
    if role != Role::Init {
        let has_token_discovery = d.token.is_some();
        match (has_token_discovery, d.file.is_some()) {
            (false, false) => p.add(
                "discovery.token",
                format!("missing: a {role} needs a bootstrap token (or discovery.file) to join"),
                "copy token and ca_cert_hashes from the bundle's discovery.toml",
            ),
            (true, false) if d.ca_cert_hashes.is_empty() => p.add(
                "discovery.ca_cert_hashes",
                format!("missing: a {role} must pin the cluster CA to trust it"),
                "add ca_cert_hashes = [\"sha256:…\"] (`kubeboot ca-hash ca.crt` prints it)",
            ),
            _ => {}
        }
    }
}

fn is_go_duration(s: &str) -> bool {
    if s == "0" {
        return true;
    }
    let mut rest = s;
    let mut any = false;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let unit = ["ns", "us", "µs", "ms", "h", "m", "s"]
            .into_iter()
            .find(|u| rest.starts_with(u));
        let Some(unit) = unit else { return false };
        rest = &rest[unit.len()..];
        any = true;
    }
    any
}

/// Labels the kubelet may set on its own Node (`--node-labels`): the NodeRestriction
/// admission plugin refuses other `kubernetes.io`/`k8s.io` labels.
fn kubelet_may_set_label(key: &str) -> bool {
    let Some((prefix, _)) = key.rsplit_once('/') else {
        return true;
    };
    let restricted = prefix == "kubernetes.io"
        || prefix == "k8s.io"
        || prefix.ends_with(".kubernetes.io")
        || prefix.ends_with(".k8s.io");
    if !restricted {
        return true;
    }
    const ALLOWED: &[&str] = &[
        "kubernetes.io/hostname",
        "kubernetes.io/instance-type",
        "kubernetes.io/os",
        "kubernetes.io/arch",
        "beta.kubernetes.io/instance-type",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/arch",
        "failure-domain.beta.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "node.kubernetes.io/instance-type",
    ];
    ALLOWED.contains(&key)
        || prefix == "kubelet.kubernetes.io"
        || prefix.ends_with(".kubelet.kubernetes.io")
        || prefix == "node.kubernetes.io"
        || prefix.ends_with(".node.kubernetes.io")
}

fn is_label_value(v: &str) -> bool {
    v.len() <= 63
        && (v.is_empty()
            || (v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                && v.starts_with(|c: char| c.is_ascii_alphanumeric())
                && v.ends_with(|c: char| c.is_ascii_alphanumeric())))
}

fn is_qualified_name(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    prefix.is_none_or(formats::is_dns_name) && !name.is_empty() && is_label_value(name)
}

/// What is wrong with a node label the kubelet is to set (problem, fix); empty if nothing.
pub fn label_problems(key: &str, value: &str) -> Vec<(&'static str, &'static str)> {
    let mut problems = Vec::new();
    if !is_qualified_name(key) {
        problems.push((
            "the key is not a valid label key",
            "use [prefix/]name, e.g. topology.kubernetes.io/zone",
        ));
    } else if !kubelet_may_set_label(key) {
        problems.push((
            "the kubelet is not allowed to set this kubernetes.io label on its own Node",
            "use your own prefix (e.g. example.com/role) or node.kubernetes.io/…; apply node-role labels from the cluster side",
        ));
    }
    if !is_label_value(value) {
        problems.push((
            "the value is not a valid label value",
            "at most 63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric",
        ));
    }
    problems
}

fn check_node(doc: &NodeDocument, p: &mut Problems) {
    let node = &doc.node;
    if let Some(name) = &node.name {
        if !formats::is_dns_name(name) {
            p.add(
                "node.name",
                "the value is not a valid Node name",
                "use lowercase letters, digits, '-' and '.' (RFC 1123), at most 253 characters",
            );
        }
    }
    for (key, value) in &node.labels {
        let field = format!("node.labels.{key:?}");
        for (problem, fix) in label_problems(key, value) {
            p.add(&field, problem, fix);
        }
    }
    for (i, taint) in node.taints.iter().flatten().enumerate() {
        if !is_qualified_name(&taint.key) {
            p.add(
                &format!("node.taints[{i}].key"),
                "the value is not a valid taint key",
                "use [prefix/]name",
            );
        }
        if let Some(v) = &taint.value {
            if !is_label_value(v) {
                p.add(
                    &format!("node.taints[{i}].value"),
                    "the value is not a valid taint value",
                    "at most 63 characters of [A-Za-z0-9-_.]",
                );
            }
        }
    }
    if let Some(sock) = &node.cri_socket {
        if !sock.starts_with("unix:///") {
            p.add(
                "node.cri_socket",
                "the value is not a unix socket URL",
                "e.g. unix:///run/containerd/containerd.sock",
            );
        }
    }
}

fn check_role_specific(doc: &NodeDocument, role: Role, p: &mut Problems) {
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

fn check_pki(pki: &super::Pki, p: &mut Problems) {
    for (spec, (cert, key)) in super::PKI_PAIRS.iter().zip(pki.values()) {
        let cert_field = &format!("pki.{}", spec.cert_key);
        let key_field = &format!("pki.{}", spec.key_key);
        let key = key.map(|k| k.expose_secret());
        match (cert, key) {
            (Some(c), Some(k)) => {
                let before = p.0.len();
                check_pem(cert_field, c, spec.cert_label, p);
                check_pem(key_field, k, "PRIVATE KEY", p);
                if p.0.len() == before {
                    if let Some((field, problem, fix)) = pki_pair_problem(
                        cert_field,
                        spec.cert_label == "CERTIFICATE",
                        c,
                        key_field,
                        k,
                    ) {
                        p.add(field, problem, fix);
                    }
                }
            }
            (None, None) => {}
            (Some(_), None) => p.add(
                key_field,
                format!("missing while {cert_field} is set"),
                "give both halves of the pair",
            ),
            (None, Some(_)) => p.add(
                cert_field,
                format!("missing while {key_field} is set"),
                "give both halves of the pair",
            ),
        }
    }
}

/// A certificate must parse and (for the CAs) be a CA; the key must belong to it.
fn pki_pair_problem<'a>(
    cert_field: &'a str,
    is_certificate: bool,
    cert_pem: &str,
    key_field: &'a str,
    key_pem: &str,
) -> Option<(&'a str, String, String)> {
    let spki = if !is_certificate {
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).ok()?;
        pem.contents
    } else {
        let der = match x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()) {
            Ok((_, pem)) => pem.contents,
            Err(_) => {
                return Some((
                    cert_field,
                    "the PEM does not decode".into(),
                    "paste the complete, untruncated certificate".into(),
                ))
            }
        };
        let cert = match x509_parser::parse_x509_certificate(&der) {
            Ok((_, c)) => c,
            Err(e) => {
                return Some((
                    cert_field,
                    format!("not an X.509 certificate ({e})"),
                    "paste the complete, untruncated certificate".into(),
                ))
            }
        };
        let is_ca = cert
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|bc| bc.value.ca);
        if !is_ca {
            return Some((
                cert_field,
                "the certificate is not a CA certificate (no basicConstraints CA:TRUE)".into(),
                "give the CA certificate itself, e.g. the bundle's pki/ca.crt".into(),
            ));
        }
        cert.tbs_certificate.subject_pki.raw.to_vec()
    };
    // PKCS#8 and SEC1 keys load here; a key format that does not (e.g. PKCS#1 RSA)
    // is left for kubeadm to judge rather than refused.
    let key = rcgen::KeyPair::from_pem(key_pem).ok()?;
    (key.public_key_der() != spki).then(|| {
        (
            key_field,
            format!("the key does not belong to {cert_field}"),
            format!("give the private key that was made with {cert_field}"),
        )
    })
}

fn check_options(doc: &NodeDocument, p: &mut Problems) {
    if doc.replace.grace_seconds > 3600 {
        p.add(
            "replace.grace_seconds",
            "the value is out of range",
            "use 0 to 3600 seconds",
        );
    }
    let k = &doc.kubeadm;
    if k.attempts == 0 || k.attempts > 20 {
        p.add(
            "kubeadm.attempts",
            "the value is out of range",
            "use 1 to 20",
        );
    }
    if !(0.0..=3600.0).contains(&k.retry_backoff_seconds) {
        p.add(
            "kubeadm.retry_backoff_seconds",
            "out of range",
            "use 0 to 3600 seconds",
        );
    }
    if let Some(dir) = &k.patches_directory {
        if !dir.starts_with('/') {
            p.add(
                "kubeadm.patches_directory",
                "the value is not absolute",
                "use an absolute path on the node",
            );
        }
    }
    let probes = [
        (
            "kubeadm.static_pod_startup_seconds",
            k.static_pod_startup_seconds,
            "startupProbe",
        ),
        (
            "kubeadm.static_pod_liveness_seconds",
            k.static_pod_liveness_seconds,
            "livenessProbe",
        ),
    ];
    for (field, seconds, probe) in probes {
        let Some(t) = seconds else { continue };
        if !(60..=7200).contains(&t) {
            p.add(field, "the value is out of range", "use 60 to 7200 seconds");
        }
        if k.patches_directory.is_some() {
            p.add(
                field,
                "cannot be combined with kubeadm.patches_directory",
                format!("drop it and put {probe} patches for the control-plane components in your patches directory"),
            );
        }
    }
    if let Some(r) = &doc.report {
        if !r.url.starts_with("https://") {
            p.add(
                "report.url",
                "the value is not an https URL",
                "status reports go over HTTPS only: use https://…",
            );
        }
        if let Some(h) = &r.ca_cert_hash {
            if let Err(why) = formats::check_ca_hash(h) {
                p.add(
                    "report.ca_cert_hash",
                    format!("the value {why}"),
                    "print it with `kubeboot ca-hash ca.crt`",
                );
            }
        }
        if let Some(f) = &r.ca_file {
            if !f.starts_with('/') {
                p.add(
                    "report.ca_file",
                    "the value is not absolute",
                    "use an absolute path on the node",
                );
            }
            if r.ca_cert_hash.is_some() {
                p.add(
                    "report.ca_file",
                    "is set together with report.ca_cert_hash",
                    "choose one way to trust the receiver",
                );
            }
        }
        if r.drain_seconds.is_some_and(|d| d > 3600) {
            p.add(
                "report.drain_seconds",
                "is more than 3600",
                "the agent should not linger for more than an hour; queued events stay for the next run",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        for ok in ["0", "24h0m0s", "2h", "90m", "1.5h"] {
            assert!(is_go_duration(ok), "{ok}");
        }
        for bad in ["", "h", "24", "1d", "-1h"] {
            assert!(!is_go_duration(bad), "{bad}");
        }
    }

    #[test]
    fn a_pointer_needs_https_a_well_formed_pin_and_nothing_else() {
        let pin = format!("sha256:{}", "ab".repeat(32));
        let ok = format!(
            "version = 1\n[source]\nurl = \"https://serve:8443/v1/groups/g/document\"\nca_cert_hash = \"{pin}\"\ntoken = \"s3cret-credential\"\n"
        );
        assert!(validate_pointer(&super::super::parse(&ok).unwrap()).is_ok());

        let fields = |text: &str| -> Vec<String> {
            let e = validate_pointer(&super::super::parse(text).unwrap()).unwrap_err();
            assert!(!e.to_string().contains("s3cret-credential"), "{e}");
            e.errors.into_iter().map(|f| f.field).collect()
        };
        assert_eq!(fields(&ok.replace("https://", "http://")), ["source.url"]);
        assert_eq!(
            fields(&ok.replace(&pin, "sha256:abc")),
            ["source.ca_cert_hash"]
        );
        assert_eq!(
            fields(&ok.replace("version = 1\n", "version = 1\nrole = \"worker\"\n")),
            ["source"]
        );
        assert_eq!(
            fields(&ok.replace("version = 1", "version = 7")),
            ["version"]
        );
    }

    #[test]
    fn kubelet_label_rules() {
        assert!(kubelet_may_set_label("topology.kubernetes.io/zone"));
        assert!(kubelet_may_set_label("example.com/pool"));
        assert!(kubelet_may_set_label("node.kubernetes.io/pool"));
        assert!(kubelet_may_set_label("plain"));
        assert!(!kubelet_may_set_label("node-role.kubernetes.io/worker"));
        assert!(!kubelet_may_set_label("kubernetes.io/role"));
    }
}
