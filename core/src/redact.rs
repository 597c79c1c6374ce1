//! Scrubbing secret values out of free text (kubeadm output, error messages).
//! Typed secrets never print themselves (`secrecy`); this covers text that
//! other programs produce, such as the join command `kubeadm init` prints.

use secrecy::ExposeSecret;

use crate::document::NodeDocument;

pub const REDACTED: &str = "<redacted>";

#[derive(Clone, Default)]
pub struct Redactor {
    needles: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.needles.len())
    }
}

impl Redactor {
    pub fn for_document(doc: &NodeDocument) -> Redactor {
        let mut r = Redactor::default();
        let d = &doc.discovery;
        if let Some(t) = &d.token {
            let t = t.expose_secret();
            r.add(t);
            // kubeadm sometimes prints the secret half alone.
            if let Some((_, secret)) = t.split_once('.') {
                r.add(secret);
            }
        }
        for s in [
            &d.certificate_key,
            &doc.report.as_ref().and_then(|r| r.token.clone()),
        ]
        .into_iter()
        .flatten()
        {
            r.add(s.expose_secret());
        }
        if let Some(src) = &doc.source {
            if let Some(t) = &src.token {
                r.add(t.expose_secret());
            }
        }
        if let Some(pki) = &doc.pki {
            for key in [
                &pki.ca_key,
                &pki.front_proxy_ca_key,
                &pki.etcd_ca_key,
                &pki.sa_key,
            ]
            .into_iter()
            .flatten()
            {
                // The longest base64 line stands for the key: distinctive, and
                // found whatever the line endings around it.
                if let Some(line) = key.expose_secret().lines().max_by_key(|l| l.trim().len()) {
                    r.add(line.trim());
                }
            }
        }
        r
    }

    /// The secret strings themselves, to look for copies on disk.
    pub fn secrets(&self) -> &[String] {
        &self.needles
    }

    pub fn add(&mut self, secret: &str) {
        // Very short strings would redact ordinary words; real secrets are long.
        if secret.len() >= 8 && !self.needles.iter().any(|n| n == secret) {
            self.needles.push(secret.to_string());
            self.needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for n in &self.needles {
            if out.contains(n.as_str()) {
                out = out.replace(n.as_str(), REDACTED);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_token_and_its_secret_half() {
        let mut r = Redactor::default();
        r.add("abcdef.0123456789abcdef");
        r.add("0123456789abcdef");
        assert_eq!(
            r.redact("kubeadm join x --token abcdef.0123456789abcdef and 0123456789abcdef"),
            "kubeadm join x --token <redacted> and <redacted>"
        );
        assert!(!format!("{r:?}").contains("abcdef"));
    }
}
