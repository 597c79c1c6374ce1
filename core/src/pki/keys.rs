//! Private keys in every form kubeadm and common tools write them: PKCS#8
//! (`BEGIN PRIVATE KEY`: RSA, ECDSA, Ed25519), PKCS#1 RSA (`BEGIN RSA PRIVATE
//! KEY`, what `kubeadm init` writes for its CAs) and SEC1 ECDSA (`BEGIN EC
//! PRIVATE KEY`, what `openssl ecparam -genkey` writes). rcgen (on ring) reads
//! PKCS#8 only, so the other two are wrapped into PKCS#8 first (RFC 5208
//! PrivateKeyInfo: version 0, the algorithm, the key as an OCTET STRING).

use rcgen::KeyPair;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;

/// rsaEncryption (1.2.840.113549.1.1.1), as a DER OID.
const RSA_ENCRYPTION: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];
/// id-ecPublicKey (1.2.840.10045.2.1), as a DER OID.
const EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

/// The key pair in `pem`, whichever of the forms above it is in.
pub fn key_pair(pem: &str) -> Result<KeyPair, String> {
    let der = PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| {
        "no private key in PEM form (BEGIN PRIVATE KEY, BEGIN RSA PRIVATE KEY or BEGIN EC \
         PRIVATE KEY)"
            .to_string()
    })?;
    let pkcs8 = match &der {
        PrivateKeyDer::Pkcs8(k) => k.secret_pkcs8_der().to_vec(),
        PrivateKeyDer::Pkcs1(k) => private_key_info(
            &tlv(0x30, &[RSA_ENCRYPTION, &[0x05, 0x00]]),
            k.secret_pkcs1_der(),
        ),
        PrivateKeyDer::Sec1(k) => {
            let curve = sec1_curve(k.secret_sec1_der())
                .ok_or("an EC PRIVATE KEY without its curve (SEC1 parameters)")?;
            private_key_info(&tlv(0x30, &[EC_PUBLIC_KEY, curve]), k.secret_sec1_der())
        }
        _ => return Err("an unknown private key form".into()),
    };
    KeyPair::try_from(pkcs8.as_slice())
        .map_err(|e| format!("{e} (RSA, ECDSA P-256/P-384 and Ed25519 keys are supported)"))
}

/// PKCS#8 PrivateKeyInfo { version 0, algorithm, privateKey }.
fn private_key_info(algorithm: &[u8], key: &[u8]) -> Vec<u8> {
    tlv(0x30, &[&[0x02, 0x01, 0x00], algorithm, &tlv(0x04, &[key])])
}

/// One DER element: tag, definite length, the parts as its contents.
fn tlv(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

/// Read one DER element: (tag, contents, rest).
fn read_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The curve OID (a whole DER OID) in a SEC1 ECPrivateKey's `[0] parameters`.
fn sec1_curve(sec1: &[u8]) -> Option<&[u8]> {
    let (0x30, mut fields, _) = read_tlv(sec1)? else {
        return None;
    };
    while !fields.is_empty() {
        let (tag, contents, rest) = read_tlv(fields)?;
        if tag == 0xa0 {
            return Some(contents);
        }
        fields = rest;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// openssl writes the key; the key pair signs a certificate that verifies
    /// under the public key openssl derives from the same key.
    fn openssl(args: &[&str]) -> String {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn public_key_pem(private_pem: &str, dir: &std::path::Path) -> String {
        let path = dir.join("key.pem");
        std::fs::write(&path, private_pem).unwrap();
        openssl(&["pkey", "-in", path.to_str().unwrap(), "-pubout"])
    }

    #[test]
    fn every_key_form_kubeadm_and_openssl_write_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k");
        let k = key.to_str().unwrap();
        let forms: Vec<(&str, String, &str)> = vec![
            (
                "PKCS#1 RSA (kubeadm)",
                {
                    openssl(&[
                        "genpkey",
                        "-algorithm",
                        "RSA",
                        "-pkeyopt",
                        "rsa_keygen_bits:2048",
                        "-out",
                        k,
                    ]);
                    openssl(&["rsa", "-in", k, "-traditional"])
                },
                "BEGIN RSA PRIVATE KEY",
            ),
            (
                "PKCS#8 RSA",
                openssl(&["pkey", "-in", k]),
                "BEGIN PRIVATE KEY",
            ),
            (
                "SEC1 ECDSA P-256",
                openssl(&["ecparam", "-name", "prime256v1", "-genkey", "-noout"]),
                "BEGIN EC PRIVATE KEY",
            ),
            (
                "SEC1 ECDSA P-384",
                openssl(&["ecparam", "-name", "secp384r1", "-genkey", "-noout"]),
                "BEGIN EC PRIVATE KEY",
            ),
            (
                "PKCS#8 ECDSA P-256",
                openssl(&[
                    "genpkey",
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                ]),
                "BEGIN PRIVATE KEY",
            ),
            (
                "PKCS#8 Ed25519",
                openssl(&["genpkey", "-algorithm", "ED25519"]),
                "BEGIN PRIVATE KEY",
            ),
        ];
        for (what, pem, label) in forms {
            assert!(pem.contains(label), "{what}: {pem}");
            let pair = key_pair(&pem).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(
                pair.public_key_pem().trim(),
                public_key_pem(&pem, dir.path()).trim(),
                "{what}: the same key"
            );
        }
    }

    #[test]
    fn what_is_not_a_key_says_so() {
        assert!(key_pair("hello").unwrap_err().contains("BEGIN PRIVATE KEY"));
        let sec1_no_curve =
            "-----BEGIN EC PRIVATE KEY-----\nMAMCAQE=\n-----END EC PRIVATE KEY-----\n";
        assert!(key_pair(sec1_no_curve).unwrap_err().contains("curve"));
        assert_eq!(tlv(0x04, &[&[7u8; 200]])[..3], [0x04, 0x81, 200]);
        assert_eq!(read_tlv(&[0x04, 0x82, 0x01]), None);
    }
}
