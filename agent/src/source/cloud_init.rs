//! cloud-init delivery: `write_files` to /etc/kubeboot/node.toml, or the raw
//! user-data being a kubeboot TOML document.

use super::{DocumentSource, FetchOptions, Loaded, SourceError};
use crate::host::Host;

pub const NODE_FILE: &str = "/etc/kubeboot/node.toml";
/// Where cloud-init keeps this instance's raw user-data.
pub const USER_DATA: &str = "/var/lib/cloud/instance/user-data.txt";

pub struct NodeFile;

impl DocumentSource for NodeFile {
    fn name(&self) -> &'static str {
        "cloud-init write_files"
    }
    fn load(&self, host: &Host, _fetch: &FetchOptions) -> Result<Option<Loaded>, SourceError> {
        Ok(host.read_to_string(NODE_FILE).ok().map(|text| Loaded {
            text,
            origin: format!("file {NODE_FILE}"),
        }))
    }
}

pub struct CloudInitUserData;

impl DocumentSource for CloudInitUserData {
    fn name(&self) -> &'static str {
        "cloud-init user-data"
    }
    fn load(&self, host: &Host, _fetch: &FetchOptions) -> Result<Option<Loaded>, SourceError> {
        let Ok(text) = host.read_to_string(USER_DATA) else {
            return Ok(None);
        };
        Ok(kubeboot_document_in_user_data(&text).map(|text| Loaded {
            text,
            origin: format!("cloud-init user-data {USER_DATA}"),
        }))
    }
}

/// The kubeboot document inside raw user-data, if it is one. Other user-data
/// formats (`#cloud-config`, scripts, MIME) are cloud-init's, not ours.
pub fn kubeboot_document_in_user_data(text: &str) -> Option<String> {
    let first = text.lines().find(|l| !l.trim().is_empty())?.trim();
    let theirs = [
        "#cloud-config",
        "#!",
        "#include",
        "#cloud-boothook",
        "#part-handler",
        "Content-Type:",
        "MIME-Version:",
    ];
    if theirs.iter().any(|p| first.starts_with(p)) {
        return None;
    }
    let table: toml::Table = text.parse().ok()?;
    (table.contains_key("version") && (table.contains_key("role") || table.contains_key("source")))
        .then(|| text.to_string())
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
}
