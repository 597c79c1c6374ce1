//! Bootstrap tokens and certificate keys, generated as kubeadm does.

use rand::RngCore;

const TOKEN_CHARS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// `[a-z0-9]{6}.[a-z0-9]{16}`, drawn like cluster-bootstrap's
/// `GenerateBootstrapToken`: random bytes, reject b >= 252, map b % 36.
pub fn new_bootstrap_token() -> String {
    let id = random_chars(6);
    let secret = random_chars(16);
    format!("{id}.{secret}")
}

fn random_chars(n: usize) -> String {
    let mut out = String::with_capacity(n);
    let mut rng = rand::rng();
    while out.len() < n {
        let mut b = [0u8; 1];
        rng.fill_bytes(&mut b);
        if b[0] < 252 {
            out.push(TOKEN_CHARS[(b[0] % 36) as usize] as char);
        }
    }
    out
}

/// 32 random bytes, hex: the AES-256 key kubeadm encrypts uploaded certificates with.
pub fn new_certificate_key() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    hex::encode(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubeboot_core::document::formats::{check_bootstrap_token, check_certificate_key};

    #[test]
    fn generated_values_have_kubeadms_formats_and_differ() {
        let tokens: Vec<String> = (0..50).map(|_| new_bootstrap_token()).collect();
        for t in &tokens {
            check_bootstrap_token(t).unwrap();
        }
        assert_ne!(tokens[0], tokens[1]);
        let k = new_certificate_key();
        check_certificate_key(&k).unwrap();
        assert_ne!(k, new_certificate_key());
    }
}
