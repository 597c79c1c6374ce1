use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::{Deserialize, Serialize};

use super::{jws, DiscoveryError};
use kubeboot_core::backoff::Backoff;
use kubeboot_core::document::formats::Endpoint;
use kubeboot_core::status::ErrorKind;
use kubeboot_core::tls::{ca_hash_of_der, normalise_pin, provider};

const CLUSTER_INFO_PATH: &str = "/api/v1/namespaces/kube-public/configmaps/cluster-info";
const MAX_BODY: u64 = 1024 * 1024;

/// What discovery established, for the operator.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    pub endpoint: String,
    pub server: String,
    pub ca_subject: String,
    pub ca_hash: String,
    /// The cluster CA (DER) that `ca_hash` pins: what later calls to the API trust.
    #[serde(skip)]
    pub ca_der: Vec<u8>,
}

/// Token discovery: retried with jittered backoff until `timeout` for errors
/// that can clear up; definitive mismatches fail at once.
pub fn verify_token(
    endpoint: &Endpoint,
    token: &str,
    pins: &[String],
    timeout: Duration,
) -> Result<Verified, DiscoveryError> {
    let (token_id, token_secret) = token.split_once('.').expect("validated token");
    let started = Instant::now();
    let backoff = Backoff::new(0.5, 10.0);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = fetch(
            endpoint,
            Duration::from_secs(10).min(timeout.max(Duration::from_secs(1))),
        )
        .and_then(|(body, chain)| check(endpoint, &body, &chain, token_id, token_secret, pins));
        match result {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && started.elapsed() < timeout => {
                tracing::info!(attempt, "discovery not there yet: {e}");
                let left = timeout.saturating_sub(started.elapsed());
                std::thread::sleep(backoff.delay(attempt).min(left));
            }
            Err(e) if e.is_transient() => {
                return Err(DiscoveryError::new(
                    e.kind,
                    format!("{} (gave up after {}s)", e.message, timeout.as_secs()),
                ))
            }
            Err(e) => return Err(e),
        }
    }
}

fn check(
    endpoint: &Endpoint,
    body: &[u8],
    chain: &[CertificateDer<'static>],
    token_id: &str,
    token_secret: &str,
    pins: &[String],
) -> Result<Verified, DiscoveryError> {
    let bad = |m: String| DiscoveryError::new(ErrorKind::DiscoveryBadClusterInfo, m);
    let cm: ConfigMap = serde_json::from_slice(body).map_err(|e| {
        bad(format!(
            "cluster-info from {endpoint} is not a ConfigMap: {e}"
        ))
    })?;
    let kubeconfig = cm
        .data
        .get("kubeconfig")
        .ok_or_else(|| bad("cluster-info has no kubeconfig".into()))?;
    let sig_key = format!("jws-kubeconfig-{token_id}");
    let signature = cm.data.get(&sig_key).ok_or_else(|| {
        DiscoveryError::new(
            ErrorKind::DiscoveryTokenUnknown,
            format!(
                "cluster-info carries no signature for token id {token_id:?}: the token is unknown to this cluster or has expired; \
                 create one the cluster knows (`kubeadm token create` on a control plane) and put it in [discovery] token; \
                 `kubeboot bundle token` only helps before `kubeadm init`, when the bundle's init document creates it"
            ),
        )
    })?;
    if !jws::is_valid(signature, kubeconfig, token_id, token_secret) {
        return Err(DiscoveryError::new(
            ErrorKind::DiscoverySignatureMismatch,
            format!("the signature of cluster-info for token id {token_id:?} does not match this token's secret: the document's token is wrong (or someone is impersonating the cluster)"),
        ));
    }
    let (server, cas) = parse_kubeconfig(kubeconfig).map_err(bad)?;
    let (ca_der, ca_hash) = match_pin(&cas, pins)?;
    verify_chain(endpoint, chain, &ca_der)?;
    Ok(Verified {
        endpoint: endpoint.to_string(),
        server,
        ca_subject: subject(&ca_der),
        ca_hash,
        ca_der,
    })
}

fn match_pin(cas: &[Vec<u8>], pins: &[String]) -> Result<(Vec<u8>, String), DiscoveryError> {
    let pins: Vec<String> = pins.iter().map(|p| normalise_pin(p)).collect();
    let mut seen = Vec::new();
    for der in cas {
        let hash = ca_hash_of_der(der).map_err(|e| {
            DiscoveryError::new(
                ErrorKind::DiscoveryBadClusterInfo,
                format!("cluster CA: {e}"),
            )
        })?;
        if pins.contains(&hash) {
            return Ok((der.clone(), hash));
        }
        seen.push(hash);
    }
    Err(DiscoveryError::new(
        ErrorKind::DiscoveryCaMismatch,
        format!(
            "the cluster's CA ({}) matches none of discovery.ca_cert_hashes: the document pins another cluster's CA, or this endpoint is not the cluster you meant",
            seen.join(", ")
        ),
    ))
}

/// The served chain must lead to the (pinned) cluster CA for the endpoint's name.
fn verify_chain(
    endpoint: &Endpoint,
    chain: &[CertificateDer<'static>],
    ca_der: &[u8],
) -> Result<(), DiscoveryError> {
    let mismatch = |m: String| DiscoveryError::new(ErrorKind::DiscoveryTlsMismatch, m);
    let (leaf, intermediates) = chain
        .split_first()
        .ok_or_else(|| mismatch("the endpoint presented no certificate".into()))?;
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca_der.to_vec()))
        .map_err(|e| {
            mismatch(format!(
                "the cluster CA is not usable as a trust anchor: {e}"
            ))
        })?;
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| mismatch(e.to_string()))?;
    let name = ServerName::try_from(endpoint.host.clone())
        .map_err(|e| mismatch(format!("{}: {e}", endpoint.host)))?;
    verifier
        .verify_server_cert(leaf, intermediates, &name, &[], UnixTime::now())
        .map(|_| ())
        .map_err(|e| {
            mismatch(format!(
                "the certificate served at {endpoint} does not chain to the cluster CA in cluster-info ({e}): the endpoint is not that cluster's API server"
            ))
        })
}

#[derive(Deserialize)]
struct ConfigMap {
    #[serde(default)]
    data: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Kubeconfig {
    clusters: Vec<NamedCluster>,
}

#[derive(Deserialize)]
struct NamedCluster {
    cluster: ClusterEntry,
}

#[derive(Deserialize)]
struct ClusterEntry {
    server: String,
    #[serde(rename = "certificate-authority-data")]
    ca_data: Option<String>,
}

/// The server URL and the CA certificates (DER) of a kubeconfig's first cluster.
fn parse_kubeconfig(text: &str) -> Result<(String, Vec<Vec<u8>>), String> {
    // serde_yaml quotes the value it could not take, and a kubeconfig handed
    // over for file discovery may hold a user's token or client key.
    let kc: Kubeconfig = serde_yaml_ng::from_str(text).map_err(|e| {
        format!(
            "kubeconfig: {}",
            kubeboot_core::document::without_values(&e.to_string())
        )
    })?;
    let cluster = kc
        .clusters
        .into_iter()
        .next()
        .ok_or("kubeconfig has no clusters")?
        .cluster;
    let data = cluster
        .ca_data
        .ok_or("kubeconfig has no certificate-authority-data")?;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| format!("certificate-authority-data is not base64: {e}"))?;
    let cas: Vec<Vec<u8>> = kubeboot_core::tls::pem_certificates(&pem)
        .map_err(|e| format!("certificate-authority-data: {e}"))?
        .iter()
        .map(|c| c.to_vec())
        .collect();
    if cas.is_empty() {
        return Err("certificate-authority-data holds no certificate".into());
    }
    Ok((cluster.server, cas))
}

fn subject(der: &[u8]) -> String {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, c)| c.subject().to_string())
        .unwrap_or_default()
}

/// kubeadm's file discovery: a kubeconfig (path on the node or https URL)
/// whose server must present a chain to the file's CA.
pub fn verify_file(kubeconfig: &str, timeout: Duration) -> Result<Verified, DiscoveryError> {
    let bad = |m: String| DiscoveryError::new(ErrorKind::DiscoveryBadClusterInfo, m);
    let (server, cas) = parse_kubeconfig(kubeconfig).map_err(bad)?;
    let hostport = server
        .strip_prefix("https://")
        .unwrap_or(&server)
        .trim_end_matches('/');
    let endpoint = kubeboot_core::document::formats::parse_endpoint(hostport)
        .map_err(|why| bad(format!("the kubeconfig's server {server:?}: {why}")))?;
    let (_, chain) = fetch(&endpoint, timeout)?;
    let ca = cas.first().expect("parse_kubeconfig returns at least one");
    verify_chain(&endpoint, &chain, ca)?;
    Ok(Verified {
        endpoint: endpoint.to_string(),
        server,
        ca_subject: subject(ca),
        ca_hash: ca_hash_of_der(ca).unwrap_or_default(),
        ca_der: ca.clone(),
    })
}

/// GET cluster-info anonymously, keeping the served certificate chain.
fn fetch(
    endpoint: &Endpoint,
    timeout: Duration,
) -> Result<(Vec<u8>, Vec<CertificateDer<'static>>), DiscoveryError> {
    let got = get_cluster_info(endpoint, timeout)?;
    if !got.status.is_success() {
        return Err(DiscoveryError::new(
            ErrorKind::DiscoveryBadClusterInfo,
            format!("https://{endpoint}{CLUSTER_INFO_PATH} answered {}: cluster-info is not published (yet), or anonymous access to it is disabled", got.status),
        ));
    }
    Ok((got.body, got.chain))
}

/// What the endpoint answered to an anonymous GET of cluster-info.
pub(super) struct Answered {
    pub status: reqwest::StatusCode,
    pub body: Vec<u8>,
    /// The certificate chain it presented (not verified: the caller checks it).
    pub chain: Vec<CertificateDer<'static>>,
}

/// GET cluster-info anonymously, keeping the served chain whatever the status.
/// An error is a transport failure: nothing answered HTTPS there.
pub(super) fn get_cluster_info(
    endpoint: &Endpoint,
    timeout: Duration,
) -> Result<Answered, DiscoveryError> {
    let capture = Arc::new(CaptureChain {
        chain: Mutex::new(Vec::new()),
        provider: provider(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the defaults")
        .dangerous()
        .with_custom_certificate_verifier(capture.clone())
        .with_no_client_auth();
    let unreachable = |m: String| DiscoveryError::new(ErrorKind::DiscoveryEndpointUnreachable, m);
    let client = kubeboot_core::tls::https_client(config, timeout)
        .map_err(|e| unreachable(e.to_string()))?;
    let url = format!("https://{endpoint}{CLUSTER_INFO_PATH}");
    let resp = client.get(&url).send().map_err(|e| {
        unreachable(format!(
            "{url}: {}",
            kubeboot_core::tls::describe_http_error(&e)
        ))
    })?;
    let status = resp.status();
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(resp, MAX_BODY), &mut body)
        .map_err(|e| unreachable(format!("reading {url}: {e}")))?;
    let chain = capture.chain.lock().expect("not poisoned").clone();
    Ok(Answered {
        status,
        body,
        chain,
    })
}

/// Does `chain` lead to `ca_der`, whatever names its leaf carries?
pub(super) fn chains_to(chain: &[CertificateDer<'static>], ca_der: &[u8]) -> bool {
    let Some(leaf) = chain.first() else {
        return false;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf) else {
        return false;
    };
    // The leaf's own first name: the question is the issuer, not the name.
    let name = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .and_then(|san| {
            san.value.general_names.iter().find_map(|n| match n {
                x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(b) => match b.len() {
                    4 => Some(std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string()),
                    16 => <[u8; 16]>::try_from(*b)
                        .ok()
                        .map(|a| std::net::Ipv6Addr::from(a).to_string()),
                    _ => None,
                },
                _ => None,
            })
        });
    let Some(host) = name else {
        return false;
    };
    let Ok(endpoint) = kubeboot_core::document::formats::parse_endpoint(&if host.contains(':') {
        format!("[{host}]:443")
    } else {
        format!("{host}:443")
    }) else {
        return false;
    };
    verify_chain(&endpoint, chain, ca_der).is_ok()
}

/// Accepts any chain but keeps it, so it can be verified once the CA is known.
/// Handshake signatures are still verified against the presented certificate,
/// so the peer provably holds the key of the certificate we later check.
#[derive(Debug)]
struct CaptureChain {
    chain: Mutex<Vec<CertificateDer<'static>>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for CaptureChain {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = vec![end_entity.clone().into_owned()];
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        *self.chain.lock().expect("not poisoned") = chain;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            m,
            c,
            d,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            m,
            c,
            d,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    mod fuzz {
        use super::*;
        use kubeboot_core::fuzz::{apply, config, edits, quotes};
        use proptest::prelude::*;
        use std::sync::LazyLock;

        /// A cluster CA, made once: its PEM, base64 as kubeconfigs carry it, and its pin.
        static CA: LazyLock<(String, String)> = LazyLock::new(|| {
            let ca = kubeboot_core::pki::new_ca("kubernetes").unwrap();
            let data = base64::engine::general_purpose::STANDARD.encode(&ca.cert_pem);
            (data, ca_hash_of_der(&ca.cert_der).unwrap())
        });
        const TOKEN: &str = "abcdef.0123456789abcdef";
        /// The key's own bytes, after the PEM header every base64 PEM starts with.
        const KEY_BYTES: &str = "TUhjQ0FRRUVJQnNlY3JldGtleWJ5dGVzZm9yZnV6emluZw";

        /// cluster-info's kubeconfig: the cluster only.
        fn cluster_kubeconfig() -> String {
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: https://10.0.0.10:6443\n  name: \"\"\ncontexts: []\ncurrent-context: \"\"\npreferences: {{}}\nusers: []\n",
                CA.0
            )
        }

        /// A file-discovery kubeconfig as an operator may hand one over: with
        /// a user's token and client key beside the cluster.
        fn admin_kubeconfig() -> String {
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: https://k8s-api.example.internal:6443\n  name: example\ncontexts:\n- context:\n    cluster: example\n    user: admin\n  name: admin@example\ncurrent-context: admin@example\nusers:\n- name: admin\n  user:\n    token: {TOKEN}\n    client-key-data: LS0tLS1CRUdJTiBFQyBQUklWQVRFIEtFWS0tLS0tCk{KEY_BYTES}\n",
                CA.0
            )
        }

        /// The same as JSON (`kubectl config view --raw -o json`), which YAML reads too.
        fn json_kubeconfig() -> String {
            format!(
                r#"{{"kind":"Config","apiVersion":"v1","clusters":[{{"name":"example","cluster":{{"server":"https://k8s-api.example.internal:6443","certificate-authority-data":"{}"}}}}],"users":[{{"name":"admin","user":{{"token":"{TOKEN}","client-key-data":"LS0tLS1CRUdJTiBFQyBQUklWQVRFIEtFWS0tLS0tCk{KEY_BYTES}"}}}}],"contexts":[],"current-context":""}}"#,
                CA.0
            )
        }

        #[test]
        fn the_seeds_parse() {
            for kc in [cluster_kubeconfig(), admin_kubeconfig(), json_kubeconfig()] {
                let (server, cas) = parse_kubeconfig(&kc).unwrap();
                assert!(server.starts_with("https://") && cas.len() == 1);
                assert_eq!(ca_hash_of_der(&cas[0]).unwrap(), CA.1);
            }
        }

        /// Found by the property below: a JSON kubeconfig with a stray byte in
        /// front is one YAML string, and serde_yaml quoted all of it.
        #[test]
        fn a_kubeconfig_that_is_one_string_is_not_quoted() {
            let why = parse_kubeconfig(&format!("=:{}", json_kubeconfig())).unwrap_err();
            assert!(why.contains("wrong type: found string"), "{why}");
            assert!(!why.contains(TOKEN) && !why.contains(KEY_BYTES), "{why}");
        }

        proptest! {
            #![proptest_config(config())]

            /// A mutated kubeconfig never panics the parser; what parses has a
            /// CA certificate, and an error names the kubeconfig or its CA data
            /// and quotes no piece of the user's token or client key.
            #[test]
            fn mutated_kubeconfigs_are_refused_without_quoting_credentials(seed in 0..3usize, e in edits()) {
                let seed = [cluster_kubeconfig, admin_kubeconfig, json_kubeconfig][seed]();
                let text = String::from_utf8_lossy(&apply(seed.as_bytes(), &e)).into_owned();
                match parse_kubeconfig(&text) {
                    Ok((_, cas)) => prop_assert!(!cas.is_empty()),
                    Err(why) => {
                        prop_assert!(why.starts_with("kubeconfig") || why.starts_with("certificate-authority-data"), "{}", why);
                        prop_assert!(!quotes(&why, "0123456789abcdef", 8), "{}", why);
                        prop_assert!(!quotes(&why, KEY_BYTES, 12), "{}", why);
                    }
                }
            }

            /// A mutated cluster-info answer never panics the check, and gets
            /// past the signature (to the served chain, here none) exactly
            /// when its kubeconfig and signature are the signed ones.
            #[test]
            fn mutated_cluster_info_passes_the_signature_only_intact(e in edits()) {
                let kubeconfig = cluster_kubeconfig();
                let sig = jws::detached_signature(&kubeconfig, "abcdef", "0123456789abcdef");
                let body = serde_json::to_vec(&serde_json::json!({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "cluster-info", "namespace": "kube-public"},
                    "data": {"kubeconfig": kubeconfig, "jws-kubeconfig-abcdef": sig}
                }))
                .unwrap();
                let mutated = apply(&body, &e);
                let endpoint = kubeboot_core::document::formats::parse_endpoint("10.0.0.10:6443").unwrap();
                let err = check(&endpoint, &mutated, &[], "abcdef", "0123456789abcdef", std::slice::from_ref(&CA.1))
                    .expect_err("no certificate was served");
                let data = serde_json::from_slice::<ConfigMap>(&mutated).map(|c| c.data).unwrap_or_default();
                let intact = data.get("kubeconfig") == Some(&kubeconfig)
                    && data.get("jws-kubeconfig-abcdef") == Some(&sig);
                prop_assert_eq!(err.kind == ErrorKind::DiscoveryTlsMismatch, intact, "{}", err);
            }
        }
    }
}
