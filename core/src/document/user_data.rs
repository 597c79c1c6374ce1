//! The node document inside cloud-init user-data: the contract between whoever
//! writes user-data (`kubeboot bundle`, `kubeboot serve`, an operator's own
//! tooling) and the agent that reads it.

/// Where cloud-init's `write_files` puts a node document, and where the agent
/// looks for one.
pub const NODE_FILE: &str = "/etc/kubeboot/node.toml";

/// The MIME type of a kubeboot document part in multipart user-data.
pub const MIME_TYPE: &str = "text/x-kubeboot";

/// The kubeboot document inside raw user-data: the whole user-data when it is
/// a kubeboot TOML document, or a part of MIME multipart user-data (cloud-init's
/// `make-mime` format) of type `text/x-kubeboot` or holding a kubeboot document.
/// Other formats (`#cloud-config`, scripts) are cloud-init's, not ours.
pub fn kubeboot_document_in_user_data(text: &str) -> Option<String> {
    let first = text.lines().find(|l| !l.trim().is_empty())?.trim();
    if first.starts_with("Content-Type:") || first.starts_with("MIME-Version:") {
        let mail = mailparse::parse_mail(text.as_bytes()).ok()?;
        return document_in_mime(&mail);
    }
    let theirs = [
        "#cloud-config",
        "#!",
        "#include",
        "#cloud-boothook",
        "#part-handler",
    ];
    if theirs.iter().any(|p| first.starts_with(p)) {
        return None;
    }
    is_kubeboot_document(text).then(|| text.to_string())
}

fn is_kubeboot_document(text: &str) -> bool {
    text.parse::<toml::Table>().is_ok_and(|t| {
        t.contains_key("version") && (t.contains_key("role") || t.contains_key("source"))
    })
}

fn document_in_mime(part: &mailparse::ParsedMail) -> Option<String> {
    if part.ctype.mimetype.starts_with("multipart/") {
        return part.subparts.iter().find_map(document_in_mime);
    }
    let body = part.get_body().ok()?;
    (part.ctype.mimetype == MIME_TYPE || is_kubeboot_document(&body)).then_some(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_only_kubeboot_toml() {
        assert!(kubeboot_document_in_user_data("version = 1\nrole = \"worker\"\n").is_some());
        assert!(kubeboot_document_in_user_data(
            "#kubeboot\nversion = 1\n[source]\nurl = \"https://x\"\n"
        )
        .is_some());
        assert!(kubeboot_document_in_user_data("#cloud-config\nwrite_files: []\n").is_none());
        assert!(kubeboot_document_in_user_data("#!/bin/sh\necho hi\n").is_none());
        assert!(kubeboot_document_in_user_data("title = \"other toml\"\n").is_none());
        assert!(kubeboot_document_in_user_data("").is_none());
    }

    /// As produced by `cloud-init devel make-mime -a cc.yaml:cloud-config -a worker.toml:x-kubeboot --force`.
    #[test]
    fn finds_the_document_in_cloud_init_mime() {
        let mime = include_str!("../../../cloud-init/examples/user-data/worker-mime.txt");
        let doc = kubeboot_document_in_user_data(mime).expect("the x-kubeboot part");
        assert!(doc.contains("role = \"worker\""));
        crate::document::load(&doc).unwrap();
        let boundary = mime.lines().find(|l| l.starts_with("--")).unwrap();
        let only_cloud_config: String = mime
            .split(boundary)
            .take(2)
            .collect::<Vec<_>>()
            .join(boundary)
            + boundary
            + "--\n";
        assert!(kubeboot_document_in_user_data(&only_cloud_config).is_none());
    }

    mod fuzz {
        use super::*;
        use crate::fuzz::{apply, config, edits, quotes};
        use proptest::prelude::*;

        const MIME: &str = include_str!("../../../cloud-init/examples/user-data/worker-mime.txt");
        const RAW: &str = include_str!("../../../cloud-init/examples/user-data/worker-raw.toml");
        /// The secret half of the examples' bootstrap token.
        const SECRET: &str = "0123456789abcdef";

        proptest! {
            #![proptest_config(config())]

            /// Mutated MIME or raw user-data never panics the reader. What it
            /// finds is the whole input (raw) or a part of a MIME message, and
            /// loading it gives a document or an error that quotes no piece of
            /// the token's secret.
            #[test]
            fn mutated_user_data_is_read_without_panics(raw in any::<bool>(), e in edits()) {
                let seed = if raw { RAW } else { MIME };
                let text = String::from_utf8_lossy(&apply(seed.as_bytes(), &e)).into_owned();
                if let Some(doc) = kubeboot_document_in_user_data(&text) {
                    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
                    let mime = first.starts_with("Content-Type:") || first.starts_with("MIME-Version:");
                    prop_assert!(mime || doc == text, "{}", doc);
                    if let Err(err) = crate::document::load(&doc) {
                        let shown = err.to_string();
                        prop_assert!(!quotes(&shown, SECRET, 8), "{}", shown);
                    }
                }
            }

            #[test]
            fn arbitrary_bytes_are_read_without_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
                let _ = kubeboot_document_in_user_data(&String::from_utf8_lossy(&bytes));
            }
        }
    }
}
