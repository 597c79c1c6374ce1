//! The optional tables: `[preflight]`, `[kubeadm]`, `[ready]`, `[report]`, `[replace]`, `[source]`.

use super::super::formats::{self};
use super::super::NodeDocument;
use super::Problems;

pub(super) fn check_options(doc: &NodeDocument, p: &mut Problems) {
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
