//! cloud-init user-data from a node document: `#cloud-config` whose
//! `write_files` puts the document at /etc/kubeboot/node.toml, mode 0600.

use serde::Serialize;

use kubeboot_core::document::user_data::{self, NODE_FILE};

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

/// MIME multipart user-data (cloud-init's format) with the document as one
/// `text/x-kubeboot` part, base64-encoded like `cloud-init devel make-mime`.
pub fn mime(node_document: &str) -> String {
    use base64::Engine;
    let boundary = "==kubeboot-boundary-7f3c==";
    let b64 = base64::engine::general_purpose::STANDARD.encode(node_document);
    let wrapped: Vec<&str> = b64
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).expect("base64 is ascii"))
        .collect();
    format!(
        "Content-Type: multipart/mixed; boundary=\"{boundary}\"\nMIME-Version: 1.0\n\n--{boundary}\n\
         Content-Type: {}; charset=\"utf-8\"\nMIME-Version: 1.0\nContent-Transfer-Encoding: base64\n\
         Content-Disposition: attachment; filename=\"node.toml\"\n\n{}\n--{boundary}--\n",
        user_data::MIME_TYPE,
        wrapped.join("\n")
    )
}

/// A NoCloud seed: an ISO 9660 image with volume label `cidata` holding
/// `user-data`, `meta-data` and optionally `network-config`, made with
/// xorriso (installed by scripts/setup.sh). Written beside `out` and renamed
/// into place; mode 0600 (the user-data holds the bootstrap token).
pub fn write_seed(
    user_data: &str,
    meta_data: &str,
    network_config: Option<&str>,
    out: &std::path::Path,
) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let xorriso = kubeboot_core::host::Host::system()
        .find_program("xorriso")
        .ok_or("xorriso not found: install it (scripts/setup.sh does) to make seed ISOs")?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut files = vec![("user-data", user_data), ("meta-data", meta_data)];
    if let Some(nc) = network_config {
        files.push(("network-config", nc));
    }
    for (name, content) in &files {
        std::fs::write(dir.path().join(name), content).map_err(|e| format!("write {name}: {e}"))?;
    }
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".kubeboot-seed-")
        .suffix(".iso")
        .tempfile_in(parent)
        .map_err(|e| format!("create a temporary file in {}: {e}", parent.display()))?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| e.to_string())?;
    let output = std::process::Command::new(xorriso)
        .args(["-as", "mkisofs", "-quiet", "-V", "cidata", "-J", "-R", "-o"])
        .arg(tmp.path())
        .arg(dir.path())
        .output()
        .map_err(|e| format!("run xorriso: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "xorriso failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    tmp.persist(out)
        .map_err(|e| format!("rename into {}: {}", out.display(), e.error))?;
    Ok(())
}

/// NoCloud meta-data: instance-id (a new one makes cloud-init run again) and hostname.
pub fn meta_data(instance_id: &str, hostname: Option<&str>) -> String {
    let mut m = serde_yaml_ng::Mapping::new();
    m.insert("instance-id".into(), instance_id.into());
    if let Some(h) = hostname {
        m.insert("local-hostname".into(), h.into());
    }
    serde_yaml_ng::to_string(&m).expect("plain mapping")
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

    #[test]
    fn mime_round_trips_through_the_agents_reader() {
        let doc = "version = 1\nrole = \"worker\"\n[cluster]\nendpoint = \"a:6443\"\n";
        let m = mime(doc);
        assert_eq!(
            user_data::kubeboot_document_in_user_data(&m).as_deref(),
            Some(doc)
        );
    }
}
