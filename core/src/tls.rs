//! TLS trust for kubeboot's HTTPS clients: system roots, or a CA pinned by the
//! SHA-256 of its SubjectPublicKeyInfo (RFC 7469), the way kubeadm pins the
//! cluster CA with `--discovery-token-ca-cert-hash`.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

/// `sha256:<hex>` of a DER certificate's SubjectPublicKeyInfo.
pub fn ca_hash_of_der(cert_der: &[u8]) -> Result<String, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    Ok(format!(
        "sha256:{}",
        hex::encode(Sha256::digest(cert.tbs_certificate.subject_pki.raw))
    ))
}

/// The crypto provider of every kubeboot TLS client (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A blocking HTTPS client over `config`, with kubeboot's user agent and the
/// same bound on connecting and on the whole request.
pub fn https_client(
    config: rustls::ClientConfig,
    timeout: std::time::Duration,
) -> reqwest::Result<reqwest::blocking::Client> {
    reqwest::blocking::Client::builder()
        .use_preconfigured_tls(config)
        .timeout(timeout)
        .connect_timeout(timeout)
        .https_only(true)
        .redirect(same_origin_redirects())
        .user_agent(concat!("kubeboot/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Follow at most 5 redirects, each to the origin (scheme, host, port) first
/// asked: a redirect elsewhere (another host, plain HTTP) could carry a bearer
/// token or a document's secrets where the pin and the operator never meant them.
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let first = attempt.previous().first().map(|u| u.origin());
        let next = attempt.url().origin();
        if first.as_ref() != Some(&next) {
            let to = attempt.url().as_str().to_string();
            attempt.error(format!(
                "refused a redirect to another origin ({to}): kubeboot follows redirects only \
                 within the HTTPS origin it was given"
            ))
        } else if attempt.previous().len() > 5 {
            attempt.error("more than 5 redirects")
        } else {
            attempt.follow()
        }
    })
}

/// Whether an HTTPS error is the server failing our trust (certificate or CA pin
/// mismatch) or a refused redirect: final, unlike a refused connection or a timeout.
pub fn is_final(e: &reqwest::Error) -> bool {
    if e.is_redirect() {
        return true;
    }
    // rustls' error arrives boxed inside hyper's connect error; its words survive.
    let text = describe_http_error(e);
    text.contains("invalid peer certificate") || text.contains(PIN_MISMATCH)
}

/// Part of the error a pinned verifier gives when no CA in the chain matches.
const PIN_MISMATCH: &str = "matches the pinned hash";

/// The canonical form of a validated `sha256:` pin (kubeadm compares case-insensitively).
pub fn normalise_pin(pin: &str) -> String {
    pin.to_ascii_lowercase()
}

/// reqwest's Display hides the cause (e.g. a certificate or pin mismatch); walk the chain.
pub fn describe_http_error(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// The reason rustls rejected the server's certificate, when that is why a
/// request failed. reqwest wraps it in hyper's error and an `io::Error`, whose
/// `source()` skips the error it holds, so the walk looks inside those too.
pub fn certificate_error(e: &reqwest::Error) -> Option<rustls::CertificateError> {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if let Some(rustls::Error::InvalidCertificate(why)) = s.downcast_ref::<rustls::Error>() {
            return Some(why.clone());
        }
        src = match s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => s.source(),
        };
    }
    None
}

/// Every certificate of a PEM bundle, in order; other PEM sections are skipped.
pub fn pem_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("malformed PEM: {e}"))
}

/// The first certificate of a PEM bundle.
pub fn first_pem_certificate(pem: &[u8]) -> Result<CertificateDer<'static>, String> {
    pem_certificates(pem)?
        .into_iter()
        .next()
        .ok_or_else(|| "no PEM CERTIFICATE block found".to_string())
}

/// A client config trusting exactly the CA certificates of a PEM bundle.
pub fn client_config_with_bundle(pem: &[u8]) -> Result<rustls::ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    for cert in pem_certificates(pem).map_err(|e| format!("CA bundle: {e}"))? {
        roots
            .add(cert)
            .map_err(|e| format!("CA bundle: unusable certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("CA bundle holds no PEM certificate".into());
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A client config trusting the pinned CA, else the CA certificates in
/// `ca_file`, else the system's roots (`what` names the file in errors).
pub fn client_config_for(
    pin: Option<&str>,
    ca_file: Option<&std::path::Path>,
    what: &str,
) -> Result<rustls::ClientConfig, String> {
    match (pin, ca_file) {
        (Some(pin), _) => client_config(Some(pin)),
        (None, Some(file)) => {
            let pem = std::fs::read(file).map_err(|e| format!("{what} {}: {e}", file.display()))?;
            client_config_with_bundle(&pem).map_err(|e| format!("{what} {}: {e}", file.display()))
        }
        (None, None) => client_config(None),
    }
}

/// A client config trusting either the pinned CA or the system's roots.
pub fn client_config(pin: Option<&str>) -> Result<rustls::ClientConfig, String> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = match pin {
        Some(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCa::new(pin)?))
            .with_no_client_auth(),
        None => {
            let mut roots = RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err("no system CA certificates found (install ca-certificates, or pin the server's CA with a ca_cert_hash)".into());
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(config)
}

/// Trust exactly one CA: the certificate in the served chain whose public key
/// matches the pin becomes the only trust anchor, and the chain is then
/// verified normally (signatures, validity, server name).
#[derive(Debug)]
pub struct PinnedCa {
    pin: String,
    provider: Arc<CryptoProvider>,
}

impl PinnedCa {
    pub fn new(pin: &str) -> Result<PinnedCa, String> {
        crate::document::formats::check_ca_hash(pin)
            .map_err(|why| format!("CA pin {pin:?} {why}"))?;
        Ok(PinnedCa {
            pin: normalise_pin(pin),
            provider: provider(),
        })
    }
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let anchor = intermediates
            .iter()
            .find(|c| ca_hash_of_der(c).is_ok_and(|h| h == self.pin))
            .ok_or_else(|| {
                rustls::Error::General(format!(
                    "no CA certificate in the server's chain {PIN_MISMATCH} {} \
                     (wrong hash, wrong server, or the server does not send its CA certificate)",
                    self.pin
                ))
            })?;
        let mut roots = RootCertStore::empty();
        roots.add(anchor.clone().into_owned()).map_err(|e| {
            rustls::Error::General(format!("pinned CA is unusable as a trust anchor: {e}"))
        })?;
        let inner =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
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

    /// kubeadm's pubkeypin known answers (tests/vectors/pubkeypin.json).
    #[test]
    fn ca_hash_matches_kubeadm_vectors() {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/vectors/pubkeypin.json")).unwrap();
        let certs = v["certificates"].as_array().unwrap();
        assert_eq!(certs.len(), 2);
        for c in certs {
            let pem = c["pem"].as_str().unwrap();
            let der = first_pem_certificate(pem.as_bytes()).unwrap();
            assert_eq!(
                ca_hash_of_der(&der).unwrap(),
                c["sha256_pin_openssl"].as_str().unwrap(),
                "{}",
                c["name"]
            );
        }
        assert!(ca_hash_of_der(b"not a certificate").is_err());
    }

    #[test]
    fn pins_are_checked_for_format() {
        assert!(PinnedCa::new("sha256:1234").is_err());
        assert!(PinnedCa::new(&format!("SHA256:{}", "AB".repeat(32))).is_ok());
    }
}
