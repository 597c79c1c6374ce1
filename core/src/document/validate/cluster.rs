//! `[cluster]`: the endpoint, versions, networking, and external etcd's material.

use secrecy::ExposeSecret;

use super::super::formats::{self, Endpoint};
use super::super::NodeDocument;
use super::Problems;

pub(super) fn check_cluster(doc: &NodeDocument, p: &mut Problems) -> Option<Endpoint> {
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

pub(super) fn check_etcd(etcd: &super::super::ExternalEtcd, p: &mut Problems) {
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
pub(super) fn check_pem(field: &str, pem: &str, label_suffix: &str, p: &mut Problems) {
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
