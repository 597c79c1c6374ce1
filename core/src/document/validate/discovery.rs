//! `[discovery]`: token, CA pins, certificate key or discovery file, per role.

use secrecy::ExposeSecret;

use super::super::formats::{self};
use super::super::{NodeDocument, Role};
use super::Problems;

pub(super) fn check_discovery(doc: &NodeDocument, role: Role, p: &mut Problems) {
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

pub(super) fn is_go_duration(s: &str) -> bool {
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
