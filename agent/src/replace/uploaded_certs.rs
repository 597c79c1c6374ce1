//! kubeadm's uploaded certificates: the `kubeadm-certs` Secret in kube-system that
//! `kubeadm init --upload-certs` (or `kubeadm init phase upload-certs`) writes and a
//! joining control plane downloads with its bootstrap token. Each value is the file
//! sealed with AES-256-GCM under the hex-decoded certificate key, the 12-byte nonce
//! prepended (kubeadm's `cryptoutil.EncryptBytes`); keys are file names with `/`
//! replaced by `-` (`etcd/ca.key` → `etcd-ca.key`).

use std::collections::BTreeMap;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use k8s_openapi::api::core::v1::Secret;
use secrecy::{ExposeSecret, SecretString};

pub const SECRET: &str = "kubeadm-certs";
const NONCE_LEN: usize = 12;

/// The opened files, by kubeadm file name (`ca.key`, `etcd/ca.crt`, …). Private keys
/// among them: never printed (Debug lists names only), never written to disk here.
pub struct UploadedCerts {
    files: BTreeMap<String, SecretString>,
}

impl std::fmt::Debug for UploadedCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadedCerts")
            .field("files", &self.files.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl UploadedCerts {
    /// One file's PEM text, or what is missing.
    pub fn pem(&self, file: &str) -> Result<&SecretString, String> {
        self.files.get(file).ok_or_else(|| {
            format!(
                "kube-system/{SECRET} has no {file} (kubeadm uploads it only for {}); \
                 the cluster was not made with stacked etcd and kubeadm's uploaded certificates",
                if file.starts_with("etcd/") {
                    "stacked etcd"
                } else {
                    "every cluster"
                }
            )
        })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }
}

/// Open the Secret's data with the certificate key (64 hex digits).
pub fn open(
    data: &BTreeMap<String, Vec<u8>>,
    certificate_key: &SecretString,
) -> Result<UploadedCerts, String> {
    let key = hex::decode(certificate_key.expose_secret())
        .ok()
        .filter(|k| k.len() == 32)
        .ok_or("discovery.certificate_key: not 64 hex digits (32 bytes)")?;
    let cipher = Aes256Gcm::new_from_slice(&key).map_err(|e| e.to_string())?;
    let mut files = BTreeMap::new();
    for (name, sealed) in data {
        if sealed.len() < NONCE_LEN {
            return Err(format!(
                "kube-system/{SECRET}: {name} is too short to be sealed by kubeadm"
            ));
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let plain = cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| {
                format!(
                    "discovery.certificate_key does not open kube-system/{SECRET} ({name}): the key is \
                     wrong, or the certificates were uploaded again with a new key. Run \
                     `kubeadm init phase upload-certs --upload-certs` on a control plane and use the key it prints"
                )
            })?;
        let text = String::from_utf8(plain)
            .map_err(|_| format!("kube-system/{SECRET}: {name} is not PEM text"))?;
        files.insert(file_name(name), SecretString::from(text));
    }
    Ok(UploadedCerts { files })
}

/// kubeadm's file name for a Secret key: only the `etcd/` directory was flattened.
fn file_name(secret_key: &str) -> String {
    match secret_key.strip_prefix("etcd-") {
        Some(rest) => format!("etcd/{rest}"),
        None => secret_key.to_string(),
    }
}

/// Why the uploaded certificates could not be had.
#[derive(Debug)]
pub enum CertsError {
    /// Not there, not readable or not reachable: nothing was learnt.
    Unavailable(String),
    /// There, but the certificate key does not open them.
    WrongKey(String),
}

/// GET the Secret (the bootstrap token may: kubeadm's RBAC for uploaded certs) and open it.
pub async fn download(
    client: &kube::Client,
    certificate_key: &SecretString,
) -> Result<UploadedCerts, CertsError> {
    let secrets: kube::Api<Secret> = kube::Api::namespaced(client.clone(), "kube-system");
    let secret = secrets.get_opt(SECRET).await.map_err(|e| {
        CertsError::Unavailable(format!(
            "read kube-system/{SECRET}: {}",
            crate::cluster::describe(&e)
        ))
    })?;
    let secret = secret.ok_or_else(|| {
        CertsError::Unavailable(format!(
            "kube-system/{SECRET} is gone: kubeadm's uploaded certificates expire 2 hours after upload. \
             Run `kubeadm init phase upload-certs --upload-certs` on a control plane and use the key it prints"
        ))
    })?;
    let data: BTreeMap<String, Vec<u8>> = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    open(&data, certificate_key).map_err(CertsError::WrongKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal(key: &[u8], nonce: [u8; 12], text: &str) -> Vec<u8> {
        let c = Aes256Gcm::new_from_slice(key).unwrap();
        let mut out = nonce.to_vec();
        out.extend(
            c.encrypt(Nonce::from_slice(&nonce), text.as_bytes())
                .unwrap(),
        );
        out
    }

    #[test]
    fn opens_what_kubeadm_seals_and_names_files_like_kubeadm() {
        let key = [7u8; 32];
        let data = BTreeMap::from([
            ("ca.key".to_string(), seal(&key, [1; 12], "CA KEY")),
            ("etcd-ca.crt".to_string(), seal(&key, [2; 12], "ETCD CA")),
            (
                "front-proxy-ca.crt".to_string(),
                seal(&key, [3; 12], "FP CA"),
            ),
        ]);
        let certs = open(&data, &SecretString::from(hex::encode(key))).unwrap();
        assert_eq!(certs.pem("ca.key").unwrap().expose_secret(), "CA KEY");
        assert_eq!(certs.pem("etcd/ca.crt").unwrap().expose_secret(), "ETCD CA");
        assert_eq!(
            certs.pem("front-proxy-ca.crt").unwrap().expose_secret(),
            "FP CA"
        );
        assert!(certs
            .pem("etcd/ca.key")
            .unwrap_err()
            .contains("stacked etcd"));
        let debug = format!("{certs:?}");
        assert!(!debug.contains("CA KEY"), "{debug}");
        assert!(debug.contains("etcd/ca.crt"), "{debug}");
    }

    #[test]
    fn a_wrong_key_is_named_and_the_way_out_given() {
        let data = BTreeMap::from([("ca.key".to_string(), seal(&[7u8; 32], [1; 12], "CA KEY"))]);
        let wrong = SecretString::from(hex::encode([8u8; 32]));
        let err = open(&data, &wrong).unwrap_err();
        assert!(
            err.contains("discovery.certificate_key does not open"),
            "{err}"
        );
        assert!(err.contains("upload-certs"), "{err}");
        assert!(
            !err.contains(&hex::encode([8u8; 32])),
            "the key must not be echoed: {err}"
        );
        let short = open(&data, &SecretString::from("abcd".to_string())).unwrap_err();
        assert!(short.contains("64 hex digits"), "{short}");
    }
}
