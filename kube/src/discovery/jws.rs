//! Detached JWS (RFC 7515 Appendix F), HS256 keyed by the bootstrap token
//! secret, exactly as Kubernetes' cluster-bootstrap signs `cluster-info`:
//! `BASE64URL(header) + ".." + BASE64URL(HMAC-SHA256(secret, BASE64URL(header) + "." + BASE64URL(content)))`
//! with header `{"alg":"HS256","kid":"<token-id>"}`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub fn detached_signature(content: &str, token_id: &str, token_secret: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(format!("{{\"alg\":\"HS256\",\"kid\":\"{token_id}\"}}"));
    let payload = URL_SAFE_NO_PAD.encode(content);
    let mut mac =
        Hmac::<Sha256>::new_from_slice(token_secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("{header}.{payload}").as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{header}..{sig}")
}

/// Whether `detached` is this token's signature over `content` (constant-time compare).
pub fn is_valid(detached: &str, content: &str, token_id: &str, token_secret: &str) -> bool {
    let expected = detached_signature(content, token_id, token_secret);
    expected.len() == detached.len() && bool::from(expected.as_bytes().ct_eq(detached.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// cluster-bootstrap's jws_test.go known answers (tests/vectors/jws.json).
    #[test]
    fn upstream_vectors() {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../../../tests/vectors/jws.json")).unwrap();
        for c in v["cases"].as_array().unwrap() {
            let (content, id, secret) = (
                c["content"].as_str().unwrap(),
                c["token_id"].as_str().unwrap(),
                c["token_secret"].as_str().unwrap(),
            );
            let expected = c["expected"].as_str().unwrap();
            assert_eq!(detached_signature(content, id, secret), expected);
            assert!(is_valid(expected, content, id, secret));
            assert!(!is_valid(expected, &format!("{content}x"), id, secret));
            assert!(!is_valid(expected, content, id, "another secret"));
        }
        for c in v["invalid_cases"].as_array().unwrap() {
            let ok = is_valid(
                c["detached"].as_str().unwrap(),
                c["content"].as_str().unwrap(),
                c["token_id"].as_str().unwrap(),
                c["token_secret"].as_str().unwrap(),
            );
            assert_eq!(ok, c["valid"].as_bool().unwrap());
        }
    }

    mod fuzz {
        use super::*;
        use kubeboot_core::fuzz::{apply, config, edits};
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(config())]

            /// A cluster-info signature changed anywhere no longer verifies, and
            /// nothing panics; the unchanged one does.
            #[test]
            fn a_mutated_signature_never_verifies(e in edits()) {
                let content = "apiVersion: v1\nkind: Config\nclusters: []\n";
                let good = detached_signature(content, "abcdef", "0123456789abcdef");
                let mutated = String::from_utf8_lossy(&apply(good.as_bytes(), &e)).into_owned();
                let ok = is_valid(&mutated, content, "abcdef", "0123456789abcdef");
                prop_assert_eq!(ok, mutated == good, "{}", mutated);
            }
        }
    }
}
