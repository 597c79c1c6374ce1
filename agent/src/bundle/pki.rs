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
