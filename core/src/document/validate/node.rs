//! `[node]`: name, addresses, labels the kubelet may set, taints.

use super::super::formats::{self};
use super::super::NodeDocument;
use super::Problems;

/// Labels the kubelet may set on its own Node (`--node-labels`): the NodeRestriction
/// admission plugin refuses other `kubernetes.io`/`k8s.io` labels.
pub(super) fn kubelet_may_set_label(key: &str) -> bool {
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

pub(super) fn is_label_value(v: &str) -> bool {
    v.len() <= 63
        && (v.is_empty()
            || (v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                && v.starts_with(|c: char| c.is_ascii_alphanumeric())
                && v.ends_with(|c: char| c.is_ascii_alphanumeric())))
}

pub(super) fn is_qualified_name(k: &str) -> bool {
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

pub(super) fn check_node(doc: &NodeDocument, p: &mut Problems) {
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
