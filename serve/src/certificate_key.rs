//! The certificate key of the current `kube-system/kubeadm-certs` upload, kept
//! across serve's restarts, so that control planes that got it before a restart
//! still open the certificates (a new upload under a new key would strand them).
//!
//! Kept in serve's store (record `certificate-key`, the store file 0600), sealed
//! with AES-256-GCM under a key derived from the bundle's CA key: a copy of the
//! data directory alone does not reveal it. Reused while enough of its two hours
//! remain (`documents::CERTS_REUSE_MARGIN`), then replaced by a new upload.

use std::path::Path;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use kubeboot_kube::replace::uploaded_certs;

use super::mint::UploadedKey;
use super::store::Store;

const RECORD: &str = "certificate-key";

#[derive(Serialize, Deserialize)]
struct Sealed {
    /// Nonce and ciphertext, hex.
    sealed: String,
    expires: DateTime<Utc>,
}

/// The sealing key: SHA-256 of a label and the bundle's CA key.
fn sealing_key(pki: &Path) -> Result<[u8; 32], String> {
    let path = pki.join("ca.key");
    let ca_key = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut h = Sha256::new();
    h.update(b"kubeboot serve: certificate key at rest\0");
    h.update(&ca_key);
    Ok(h.finalize().into())
}

/// Record `key` (sealed), durably, before it is handed out.
pub fn keep(store: &Store, pki: &Path, key: &UploadedKey) -> Result<(), String> {
    let sealed = uploaded_certs::seal(&sealing_key(pki)?, key.key.expose_secret().as_bytes())?;
    store
        .put_record(
            RECORD,
            &Sealed {
                sealed: hex::encode(sealed),
                expires: key.expires,
            },
        )
        .map_err(|e| e.to_string())
}

/// The recorded key, if any and if it opens (a bundle with another CA key: none).
pub fn load(store: &Store, pki: &Path) -> Result<Option<UploadedKey>, String> {
    let Some(s) = store.record::<Sealed>(RECORD).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let bytes = hex::decode(&s.sealed).map_err(|_| "the kept certificate key is damaged")?;
    let Some(plain) = uploaded_certs::unseal(&sealing_key(pki)?, &bytes) else {
        tracing::warn!("the kept certificate key does not open with this bundle's CA; ignored");
        return Ok(None);
    };
    let key = String::from_utf8(plain).map_err(|_| "the kept certificate key is damaged")?;
    Ok(Some(UploadedKey {
        key: SecretString::from(key),
        expires: s.expires,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_key_survives_a_restart_sealed_and_only_for_its_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        std::fs::create_dir_all(&pki).unwrap();
        std::fs::write(pki.join("ca.key"), "-----BEGIN PRIVATE KEY-----\nA\n").unwrap();
        let secret = "e6a2eb8581237ab72a4f494f30285ec12a9694d750b9785706a83bfcbbbd2204";
        let key = UploadedKey {
            key: SecretString::from(secret.to_string()),
            expires: Utc::now(),
        };
        {
            let (store, _) = Store::open(dir.path()).unwrap();
            keep(&store, &pki, &key).unwrap();
        }
        let raw = std::fs::read(dir.path().join(crate::store::DB_FILE)).unwrap();
        assert!(
            !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the key is not stored in clear"
        );
        let (store, _) = Store::open(dir.path()).unwrap();
        let back = load(&store, &pki).unwrap().unwrap();
        assert_eq!(back.key.expose_secret(), secret);
        assert_eq!(back.expires, key.expires);
        std::fs::write(pki.join("ca.key"), "another CA key").unwrap();
        assert!(load(&store, &pki).unwrap().is_none());
    }
}
