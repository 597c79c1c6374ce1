//! Syntax checks for the values a node document carries. Each returns a short
//! reason on failure; callers attach the field name and the fix.

use std::net::IpAddr;

/// `[a-z0-9]{6}.[a-z0-9]{16}`, as kubeadm's `BootstrapTokenPattern`.
pub fn check_bootstrap_token(token: &str) -> Result<(), &'static str> {
    let (id, secret) = token
        .split_once('.')
        .ok_or("must be <6-char id>.<16-char secret>")?;
    if id.len() != 6 || secret.len() != 16 {
        return Err("must be <6-char id>.<16-char secret>");
    }
    if !id.chars().chain(secret.chars()).all(is_token_char) {
        return Err("may only contain lowercase letters a-z and digits 0-9");
    }
    Ok(())
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// `sha256:` followed by 64 hex digits (RFC 7469 SPKI pin, as kubeadm's pubkeypin).
pub fn check_ca_hash(hash: &str) -> Result<(), &'static str> {
    // kubeadm's pubkeypin compares the type case-insensitively.
    let hex = match hash.split_once(':') {
        Some((kind, hex)) if kind.eq_ignore_ascii_case("sha256") => hex,
        _ => return Err("must start with \"sha256:\" (the only hash type kubeadm supports)"),
    };
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err("must be \"sha256:\" followed by 64 hex digits");
    }
    Ok(())
}

/// 32 bytes as 64 hex digits (kubeadm's AES-256 certificate key).
pub fn check_certificate_key(key: &str) -> Result<(), &'static str> {
    if key.len() != 64 || !key.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err("must be 64 hex digits (32 random bytes)");
    }
    Ok(())
}

/// An API endpoint `HOST:PORT` where HOST is an IP, `[IPv6]`, or a DNS name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

pub fn parse_endpoint(s: &str) -> Result<Endpoint, &'static str> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest
            .split_once("]:")
            .ok_or("must be HOST:PORT, e.g. [fd00::1]:6443")?;
        h.parse::<std::net::Ipv6Addr>()
            .map_err(|_| "the bracketed host is not an IPv6 address")?;
        (h, p)
    } else {
        s.rsplit_once(':')
            .ok_or("must be HOST:PORT with a port, e.g. k8s-api.example.internal:6443")?
    };
    let port: u16 = port
        .parse()
        .map_err(|_| "the port must be a number from 1 to 65535")?;
    if port == 0 {
        return Err("the port must be a number from 1 to 65535");
    }
    if host.parse::<IpAddr>().is_err() && !is_dns_name(host) {
        return Err("the host must be an IP address or a DNS name (RFC 1123)");
    }
    Ok(Endpoint {
        host: host.to_string(),
        port,
    })
}

/// RFC 1123 DNS subdomain: lowercase labels of a-z, 0-9 and '-', at most 253 characters.
pub fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// `v1.34.2` (the leading `v` is required, as kubeadm's kubernetesVersion).
pub fn parse_kubernetes_version(s: &str) -> Result<(u32, u32, u32), &'static str> {
    let rest = s
        .strip_prefix('v')
        .ok_or("must look like v1.34.2 (with the leading v)")?;
    let core = rest.split(['-', '+']).next().unwrap_or(rest);
    let mut parts = core.split('.').map(|p| p.parse::<u32>());
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(Ok(a)), Some(Ok(b)), Some(Ok(c)), None) => Ok((a, b, c)),
        _ => Err("must look like v1.34.2 (major.minor.patch)"),
    }
}

/// An IPv4 or IPv6 CIDR such as `10.244.0.0/16`; comma-separated for dual stack.
pub fn check_cidrs(s: &str) -> Result<(), &'static str> {
    for cidr in s.split(',') {
        let (addr, bits) = cidr
            .split_once('/')
            .ok_or("must be a CIDR like 10.244.0.0/16")?;
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| "the address part is not an IP address")?;
        let bits: u8 = bits
            .parse()
            .map_err(|_| "the prefix length is not a number")?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if bits > max {
            return Err("the prefix length is too long for the address family");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_endpoint("k8s-api.example.internal:6443")
                .unwrap()
                .to_string(),
            "k8s-api.example.internal:6443"
        );
        assert_eq!(parse_endpoint("[fd00::1]:6443").unwrap().host, "fd00::1");
        assert_eq!(parse_endpoint("10.0.0.1:443").unwrap().port, 443);
        for bad in [
            "k8s-api",
            "k8s-api:",
            "k8s-api:0",
            "k8s-api:99999",
            "Bad_Host:6443",
            "[nothex]:6443",
            ":6443",
        ] {
            assert!(parse_endpoint(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn hashes_and_keys() {
        let hex64 = "a".repeat(64);
        assert!(check_ca_hash(&format!("sha256:{hex64}")).is_ok());
        assert!(check_ca_hash(&hex64).is_err());
        assert!(check_ca_hash(&format!("sha1:{hex64}")).is_err());
        assert!(check_ca_hash(&format!("sha256:{}", &hex64[1..])).is_err());
        assert!(check_ca_hash(&format!("sha256:{}g", &hex64[1..])).is_err());
        assert!(check_certificate_key(&hex64).is_ok());
        assert!(check_certificate_key(&hex64[2..]).is_err());
        assert!(check_certificate_key(&"z".repeat(64)).is_err());
    }

    /// Upstream cluster-bootstrap token tables (tests/vectors/bootstrap_token_format.json).
    #[test]
    fn bootstrap_token_vectors() {
        let v: serde_json::Value = serde_json::from_str(include_str!(
            "../../../tests/vectors/bootstrap_token_format.json"
        ))
        .unwrap();
        let cases = v["token_cases"].as_array().unwrap();
        assert!(cases.len() > 10);
        for case in cases {
            let token = case["token"].as_str().unwrap();
            let valid = case["valid"].as_bool().unwrap();
            assert_eq!(check_bootstrap_token(token).is_ok(), valid, "{token:?}");
        }
    }

    /// Upstream pubkeypin parsing rules (tests/vectors/pubkeypin.json).
    #[test]
    fn pubkeypin_format_vectors() {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../../../tests/vectors/pubkeypin.json")).unwrap();
        let sets = &v["set_cases"];
        for bad in sets["allow_rejects"].as_array().unwrap() {
            assert!(check_ca_hash(bad.as_str().unwrap()).is_err(), "{bad}");
        }
        for key in ["allow_accepts_case_insensitive", "allow_accepts_multiple"] {
            for good in sets[key].as_array().unwrap() {
                assert!(check_ca_hash(good.as_str().unwrap()).is_ok(), "{good}");
            }
        }
    }

    #[test]
    fn versions_and_cidrs() {
        assert_eq!(parse_kubernetes_version("v1.34.2").unwrap(), (1, 34, 2));
        assert_eq!(
            parse_kubernetes_version("v1.31.0-rc.1").unwrap(),
            (1, 31, 0)
        );
        assert!(parse_kubernetes_version("1.34.2").is_err());
        assert!(parse_kubernetes_version("v1.34").is_err());
        assert!(check_cidrs("10.244.0.0/16").is_ok());
        assert!(check_cidrs("10.244.0.0/16,fd00:10:244::/56").is_ok());
        assert!(check_cidrs("10.244.0.0").is_err());
        assert!(check_cidrs("10.244.0.0/33").is_err());
    }
}
