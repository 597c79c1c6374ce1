//! cloud-init user-data from a node document: `#cloud-config` whose
//! `write_files` puts the document at /etc/kubeboot/node.toml, mode 0600.

use serde::Serialize;

use crate::source::NODE_FILE;

#[derive(Serialize)]
struct CloudConfig<'a> {
    write_files: Vec<WriteFile<'a>>,
}

#[derive(Serialize)]
struct WriteFile<'a> {
    path: &'a str,
    owner: &'a str,
    permissions: &'a str,
    content: &'a str,
}

pub fn cloud_config(node_document: &str) -> String {
    let cc = CloudConfig {
        write_files: vec![WriteFile {
            path: NODE_FILE,
            owner: "root:root",
            permissions: "0600",
            content: node_document,
        }],
    };
    format!(
        "#cloud-config\n# kubeboot: writes the node document; kubeboot.service does the rest. SECRET: holds the bootstrap token.\n{}",
        serde_yaml_ng::to_string(&cc).expect("plain strings serialise")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_the_document() {
        let doc = "version = 1\nrole = \"worker\"\n[cluster]\nendpoint = \"a:6443\"\n";
        let cc = cloud_config(doc);
        assert!(cc.starts_with("#cloud-config\n"));
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&cc).unwrap();
        let f = &v["write_files"][0];
        assert_eq!(f["path"].as_str(), Some("/etc/kubeboot/node.toml"));
        assert_eq!(f["permissions"].as_str(), Some("0600"));
        assert_eq!(f["content"].as_str(), Some(doc));
    }
}
