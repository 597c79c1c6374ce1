//! The receiver's TLS identity: the operator's certificate and key, or a small
//! CA of its own (`--self-signed`) kept in the data directory so the pin nodes
//! carry (`[report] ca_cert_hash`) stays the same across restarts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use kubeboot_core::host::write_file_atomic;
use kubeboot_core::pki;
use kubeboot_core::tls::ca_hash_of_der;

pub enum TlsSource {
    Files { cert: PathBuf, key: PathBuf },
    SelfSigned { names: Vec<String> },
}

pub struct TlsIdentity {
    pub config: Arc<rustls::ServerConfig>,
    /// The hash nodes pin: of the self-signed CA, or of the last certificate in
    /// the operator's chain.
    pub ca_cert_hash: String,
    /// Where the CA certificate is, when kubeboot made it.
    pub ca_file: Option<PathBuf>,
}

pub fn load(source: &TlsSource, data: &Path) -> Result<TlsIdentity, String> {
    let (chain_pem, key_pem, ca_file) = match source {
        TlsSource::Files { cert, key } => (
            std::fs::read(cert).map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?,
            std::fs::read(key).map_err(|e| format!("--tls-key {}: {e}", key.display()))?,
            None,
        ),
        TlsSource::SelfSigned { names } => {
            let (chain, key, ca) = self_signed(data, names)?;
            (chain, key, Some(ca))
        }
    };
    let chain: Vec<CertificateDer<'static>> = kubeboot_core::tls::pem_certificates(&chain_pem)
        .map_err(|e| format!("TLS certificate: {e}"))?;
    let last = chain
        .last()
        .ok_or("TLS certificate file holds no PEM certificate")?;
    let ca_cert_hash = ca_hash_of_der(last)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            "TLS key file holds no PEM private key".to_string()
        }
        e => format!("TLS key: malformed PEM: {e}"),
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(kubeboot_core::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("TLS certificate and key do not go together: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsIdentity {
        config: Arc::new(config),
        ca_cert_hash,
        ca_file,
    })
}

/// Make (once) or reuse `DATA/tls/{ca.crt,ca.key,server.crt,server.key}`.
/// Returns the served chain (server + CA), the server key, and the CA's path.
fn self_signed(data: &Path, names: &[String]) -> Result<(Vec<u8>, Vec<u8>, PathBuf), String> {
    let dir = data.join("tls");
    let ca_crt = dir.join("ca.crt");
    let ca_key = dir.join("ca.key");
    let names_file = dir.join("server.names");
    let srv_crt = dir.join("server.crt");
    let srv_key = dir.join("server.key");
    let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let ca = if ca_crt.exists() && ca_key.exists() {
        let cert_pem = std::fs::read_to_string(&ca_crt).map_err(|e| io(&ca_crt, e))?;
        let der = kubeboot_core::tls::first_pem_certificate(cert_pem.as_bytes())
            .map_err(|e| format!("{}: {e}", ca_crt.display()))?;
        pki::CaPair {
            cert_pem,
            key_pem: std::fs::read_to_string(&ca_key).map_err(|e| io(&ca_key, e))?,
            cert_der: der.to_vec(),
        }
    } else {
        let ca = pki::new_ca("kubeboot-serve-ca")?;
        write_file_atomic(&ca_key, ca.key_pem.as_bytes(), 0o600).map_err(|e| io(&ca_key, e))?;
        write_file_atomic(&ca_crt, ca.cert_pem.as_bytes(), 0o644).map_err(|e| io(&ca_crt, e))?;
        ca
    };
    // Reissue the server certificate when the names change; the CA (and so the pin) stays.
    let wanted = names.join("\n");
    let current = std::fs::read_to_string(&names_file).unwrap_or_default();
    if current != wanted || !srv_crt.exists() || !srv_key.exists() {
        let (cert, key) = pki::issue_server_cert(&ca, &ca.key_pem, names)?;
        write_file_atomic(&srv_key, key.as_bytes(), 0o600).map_err(|e| io(&srv_key, e))?;
        write_file_atomic(&srv_crt, cert.as_bytes(), 0o644).map_err(|e| io(&srv_crt, e))?;
        write_file_atomic(&names_file, wanted.as_bytes(), 0o644).map_err(|e| io(&names_file, e))?;
    }
    let mut chain = std::fs::read(&srv_crt).map_err(|e| io(&srv_crt, e))?;
    chain.extend_from_slice(ca.cert_pem.as_bytes());
    let key = std::fs::read(&srv_key).map_err(|e| io(&srv_key, e))?;
    Ok((chain, key, ca_crt))
}
