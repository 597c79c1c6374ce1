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
    let cipher = cipher(certificate_key)?;
    let mut files = BTreeMap::new();
    for (name, sealed) in data {
        if sealed.len() < NONCE_LEN {
            return Err(format!(
                "kube-system/{SECRET}: {name} is too short to be sealed by kubeadm"
            ));
        }
        let plain = unseal_with(&cipher, sealed).ok_or_else(|| {
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

/// The Secret's data for `files` (kubeadm file names → PEM) sealed under the
/// certificate key (64 hex digits): what kubeadm uploads and [`open`] opens.
pub fn seal_files(
    files: &BTreeMap<String, SecretString>,
    certificate_key: &SecretString,
) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let cipher = cipher(certificate_key)?;
    files
        .iter()
        .map(|(name, pem)| {
            let sealed = seal_with(&cipher, pem.expose_secret().as_bytes())?;
            Ok((name.replace('/', "-"), sealed))
        })
        .collect()
}

/// kubeadm's `cryptoutil.EncryptBytes`: AES-256-GCM under a 32-byte key, a
/// random 12-byte nonce first.
pub fn seal(key: &[u8], plain: &[u8]) -> Result<Vec<u8>, String> {
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| "the sealing key is not 32 bytes")?;
    seal_with(&cipher, plain)
}

fn seal_with(cipher: &Aes256Gcm, plain: &[u8]) -> Result<Vec<u8>, String> {
    use rand::RngCore;
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), plain)
        .map_err(|_| "AES-GCM sealing failed".to_string())?;
    let mut out = nonce.to_vec();
    out.extend(sealed);
    Ok(out)
}

/// What [`seal`] sealed under `key`; `None` when it does not open (another
/// key, or damaged).
pub fn unseal(key: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    let cipher = Aes256Gcm::new_from_slice(key).ok()?;
    unseal_with(&cipher, sealed)
}

fn unseal_with(cipher: &Aes256Gcm, sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_LEN {
        return None;
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    cipher.decrypt(Nonce::from_slice(nonce), ciphertext).ok()
}

/// The cipher for a certificate key given as 64 hex digits.
fn cipher(certificate_key: &SecretString) -> Result<Aes256Gcm, String> {
    let key = hex::decode(certificate_key.expose_secret())
        .ok()
        .filter(|k| k.len() == 32)
        .ok_or("discovery.certificate_key: not 64 hex digits (32 bytes)")?;
    Aes256Gcm::new_from_slice(&key).map_err(|e| e.to_string())
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
            crate::client::describe(&e)
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

    /// Sealed with a chosen nonce, independently of [`super::seal`].
    fn seal_at(key: &[u8], nonce: [u8; 12], text: &str) -> Vec<u8> {
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
            ("ca.key".to_string(), seal_at(&key, [1; 12], "CA KEY")),
            ("etcd-ca.crt".to_string(), seal_at(&key, [2; 12], "ETCD CA")),
            (
                "front-proxy-ca.crt".to_string(),
                seal_at(&key, [3; 12], "FP CA"),
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
        let data = BTreeMap::from([("ca.key".to_string(), seal_at(&[7u8; 32], [1; 12], "CA KEY"))]);
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

    #[test]
    fn sealed_files_open_with_the_key_as_kubeadm_reads_them() {
        let key = SecretString::from(hex::encode([9u8; 32]));
        let files = BTreeMap::from([(
            "etcd/ca.crt".to_string(),
            SecretString::from("-----BEGIN CERTIFICATE-----\n"),
        )]);
        let data = seal_files(&files, &key).unwrap();
        assert_eq!(data.keys().collect::<Vec<_>>(), ["etcd-ca.crt"]);
        assert_eq!(data["etcd-ca.crt"].len(), 12 + 28 + 16);
        let opened = open(&data, &key).unwrap();
        assert_eq!(
            opened.pem("etcd/ca.crt").unwrap().expose_secret(),
            "-----BEGIN CERTIFICATE-----\n"
        );
        let other = SecretString::from(hex::encode([8u8; 32]));
        assert!(open(&data, &other).is_err());
    }

    #[test]
    fn two_seals_of_the_same_file_differ() {
        let key = [7u8; 32];
        assert_ne!(seal(&key, b"x").unwrap(), seal(&key, b"x").unwrap());
        assert!(seal(&[7u8; 31], b"x").is_err());
    }
}
