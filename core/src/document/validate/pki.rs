//! `[pki]`: CA certificates and keys for the init node.

use secrecy::ExposeSecret;

use super::cluster::check_pem;
use super::Problems;

pub(super) fn check_pki(pki: &super::super::Pki, p: &mut Problems) {
    for (spec, (cert, key)) in super::super::PKI_PAIRS.iter().zip(pki.values()) {
        let cert_field = &format!("pki.{}", spec.cert_key);
        let key_field = &format!("pki.{}", spec.key_key);
        let key = key.map(|k| k.expose_secret());
        match (cert, key) {
            (Some(c), Some(k)) => {
                let before = p.0.len();
                check_pem(cert_field, c, spec.cert_label, p);
                check_pem(key_field, k, "PRIVATE KEY", p);
                if p.0.len() == before {
                    if let Some((field, problem, fix)) = pki_pair_problem(
                        cert_field,
                        spec.cert_label == "CERTIFICATE",
                        c,
                        key_field,
                        k,
                    ) {
                        p.add(field, problem, fix);
                    }
                }
            }
            (None, None) => {}
            (Some(_), None) => p.add(
                key_field,
                format!("missing while {cert_field} is set"),
                "give both halves of the pair",
            ),
            (None, Some(_)) => p.add(
                cert_field,
                format!("missing while {key_field} is set"),
                "give both halves of the pair",
            ),
        }
    }
}

/// A certificate must parse and (for the CAs) be a CA; the key must belong to it.
pub(super) fn pki_pair_problem<'a>(
    cert_field: &'a str,
    is_certificate: bool,
    cert_pem: &str,
    key_field: &'a str,
    key_pem: &str,
) -> Option<(&'a str, String, String)> {
    let spki = if !is_certificate {
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).ok()?;
        pem.contents
    } else {
        let der = match x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()) {
            Ok((_, pem)) => pem.contents,
            Err(_) => {
                return Some((
                    cert_field,
                    "the PEM does not decode".into(),
                    "paste the complete, untruncated certificate".into(),
                ))
            }
        };
        let cert = match x509_parser::parse_x509_certificate(&der) {
            Ok((_, c)) => c,
            Err(e) => {
                return Some((
                    cert_field,
                    format!("not an X.509 certificate ({e})"),
                    "paste the complete, untruncated certificate".into(),
                ))
            }
        };
        let is_ca = cert
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|bc| bc.value.ca);
        if !is_ca {
            return Some((
                cert_field,
                "the certificate is not a CA certificate (no basicConstraints CA:TRUE)".into(),
                "give the CA certificate itself, e.g. the bundle's pki/ca.crt".into(),
            ));
        }
        cert.tbs_certificate.subject_pki.raw.to_vec()
    };
    // PKCS#8 and SEC1 keys load here; a key format that does not (e.g. PKCS#1 RSA)
    // is left for kubeadm to judge rather than refused.
    let key = crate::pki::key_pair(key_pem).ok()?;
    (key.public_key_der() != spki).then(|| {
        (
            key_field,
            format!("the key does not belong to {cert_field}"),
            format!("give the private key that was made with {cert_field}"),
        )
    })
}
