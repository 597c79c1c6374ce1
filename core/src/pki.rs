//! Cluster CA material made ahead of time, shaped like kubeadm's own
//! (`cmd/kubeadm/app/util/pkiutil`): self-signed CAs with `CA:TRUE`, key usages
//! cert-sign + digital-signature + key-encipherment, ten years of validity,
//! CNs `kubernetes`, `front-proxy-ca`, `etcd-ca`; and the service-account key
//! pair. Keys are ECDSA P-256, which kubeadm itself uses with
//! `encryptionAlgorithm: ECDSA-P256` and accepts as existing CA keys.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SerialNumber,
};
use time::{Duration, OffsetDateTime};

mod keys;
pub use keys::key_pair;

/// kubeadm's CA validity (`CACertificateValidityPeriod`).
pub const CA_VALIDITY_DAYS: i64 = 3650;

pub struct CaPair {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: Vec<u8>,
}

pub fn new_ca(common_name: &str) -> Result<CaPair, String> {
    let key = KeyPair::generate().map_err(|e| format!("generate {common_name} key: {e}"))?;
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    p.distinguished_name.push(DnType::CommonName, common_name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyCertSign,
    ];
    let now = OffsetDateTime::now_utc();
    // Backdated a little, like kubeadm, so nodes with a slightly slow clock accept it.
    p.not_before = now - Duration::minutes(5);
    p.not_after = now + Duration::days(CA_VALIDITY_DAYS);
    let mut serial = [0u8; 16];
    rand::Rng::fill(&mut rand::rng(), &mut serial);
    serial[0] &= 0x7f;
    p.serial_number = Some(SerialNumber::from_slice(&serial));
    let cert = p
        .self_signed(&key)
        .map_err(|e| format!("self-sign {common_name}: {e}"))?;
    Ok(CaPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        cert_der: cert.der().to_vec(),
    })
}

/// The CA as an rcgen issuer, and its key.
fn issuer(ca_cert_pem: &str, ca_key_pem: &str) -> Result<(rcgen::Certificate, KeyPair), String> {
    let ca_key = key_pair(ca_key_pem).map_err(|e| format!("CA key: {e}"))?;
    let issuer = CertificateParams::from_ca_cert_pem(ca_cert_pem)
        .map_err(|e| format!("CA certificate: {e}"))?
        .self_signed(&ca_key)
        .map_err(|e| format!("CA certificate: {e}"))?;
    Ok((issuer, ca_key))
}

/// A client certificate for Kubernetes: CN = user, O = groups, client auth,
/// valid from five minutes ago for `valid_for`. Returns (cert PEM, key PEM).
/// (std's Duration: the `time` crate rcgen speaks stays inside this module.)
pub fn issue_client_cert(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    user: &str,
    groups: &[String],
    valid_for: std::time::Duration,
) -> Result<(String, String), String> {
    let (issuer, ca_key) = issuer(ca_cert_pem, ca_key_pem)?;
    let key = KeyPair::generate().map_err(|e| format!("generate client key: {e}"))?;
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    p.distinguished_name.push(DnType::CommonName, user);
    for g in groups {
        p.distinguished_name
            .push(DnType::OrganizationName, g.as_str());
    }
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::minutes(5);
    p.not_after = now + valid_for;
    let cert = p
        .signed_by(&key, &issuer, &ca_key)
        .map_err(|e| format!("sign client certificate: {e}"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A TLS server certificate for `names` (DNS names or IP addresses), signed by `ca`.
/// Used by `kubeboot serve --self-signed`.
pub fn issue_server_cert(
    ca: &CaPair,
    ca_key_pem: &str,
    names: &[String],
) -> Result<(String, String), String> {
    let (issuer, ca_key) = issuer(&ca.cert_pem, ca_key_pem)?;
    let key = KeyPair::generate().map_err(|e| format!("generate server key: {e}"))?;
    let mut p = CertificateParams::new(names.to_vec())
        .map_err(|e| format!("server names {names:?}: {e}"))?;
    p.distinguished_name.push(
        DnType::CommonName,
        names.first().map(String::as_str).unwrap_or("kubeboot"),
    );
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::minutes(5);
    p.not_after = now + Duration::days(CA_VALIDITY_DAYS);
    let cert = p
        .signed_by(&key, &issuer, &ca_key)
        .map_err(|e| format!("sign server certificate: {e}"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

pub struct ServiceAccountKeys {
    pub private_pem: String,
    pub public_pem: String,
}

pub fn new_service_account_keys() -> Result<ServiceAccountKeys, String> {
    let key = KeyPair::generate().map_err(|e| format!("generate service-account key: {e}"))?;
    Ok(ServiceAccountKeys {
        private_pem: key.serialize_pem(),
        public_pem: key.public_key_pem(),
    })
}
