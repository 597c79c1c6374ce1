//! NoCloud seeds read by the agent itself, without waiting for cloud-init: a
//! file system labelled `cidata` or `CIDATA` (ISO 9660, as `kubeboot seed`,
//! `cloud-localds` and `genisoimage` make it, or vfat) holding `user-data`, as
//! cloud-init's NoCloud datasource reads it. The user-data may be any form
//! kubeboot writes: a bare TOML document, MIME multipart with a
//! `text/x-kubeboot` part, or `#cloud-config` whose `write_files` writes
//! `/etc/kubeboot/node.toml` (plain or base64 content; a gzip-encoded entry is
//! left to cloud-init, which writes the file the next source reads).
//!
//! The seed is mounted read-only (nosuid, nodev, noexec) in a private directory
//! under /run/kubeboot for one read and unmounted at once; its contents stay in
//! memory. Seeds are found with `blkid` on the running system only: under a
//! test root (`--root`) there are no devices to probe.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{DocumentSource, Fetcher, Loaded, SourceError};
use kubeboot_core::document::user_data::{kubeboot_document_in_user_data, NODE_FILE};
use kubeboot_core::host::Host;

/// The labels cloud-init's NoCloud accepts (it compares them case-insensitively).
const LABELS: [&str; 2] = ["cidata", "CIDATA"];
/// A seed's user-data larger than this is not a node document.
const MAX_USER_DATA: u64 = 1 << 20;
/// Where seeds are mounted for a moment.
const MOUNT_BASE: &str = "/run/kubeboot";

/// Which block devices to look at.
pub struct NoCloudSeed {
    devices: Option<Vec<PathBuf>>,
}

impl NoCloudSeed {
    /// Every device `blkid` finds with a NoCloud label.
    pub fn probe() -> NoCloudSeed {
        NoCloudSeed { devices: None }
    }

    /// These devices (or image files: `mount` sets up a loop device), in order.
    pub fn on(devices: Vec<PathBuf>) -> NoCloudSeed {
        NoCloudSeed {
            devices: Some(devices),
        }
    }

    fn devices(&self, host: &Host) -> Vec<PathBuf> {
        match &self.devices {
            Some(given) => given.clone(),
            None if host.is_system_root() => seed_devices(host),
            None => Vec::new(),
        }
    }
}

impl DocumentSource for NoCloudSeed {
    fn name(&self) -> &'static str {
        "NoCloud seed"
    }
    fn load(&self, host: &Host, _fetch: &Fetcher) -> Result<Option<Loaded>, SourceError> {
        for device in self.devices(host) {
            let (user_data, meta_data) = match read_seed(host, &device) {
                Ok((Some(text), meta)) => (text, meta),
                Ok((None, _)) => continue,
                Err(why) => {
                    // Not fatal: cloud-init reads the same seed, and the sources
                    // after this one read what it writes.
                    tracing::warn!(device = %device.display(), "NoCloud seed not read: {why}");
                    continue;
                }
            };
            if let Some((text, how)) = document_in_seed(&user_data) {
                return Ok(Some(Loaded {
                    text,
                    origin: format!("NoCloud seed {} ({how})", device.display()),
                    hostname: meta_data.as_deref().and_then(local_hostname),
                }));
            }
        }
        Ok(None)
    }
}

/// Block devices whose file system label is `cidata` or `CIDATA`. `-c /dev/null`:
/// probe the devices themselves, not a cache from an earlier boot.
pub fn seed_devices(host: &Host) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = Vec::new();
    for label in LABELS {
        let Ok(out) = host
            .command("blkid")
            .args(["-c", "/dev/null", "-o", "device", "-t"])
            .arg(format!("LABEL={label}"))
            .output()
        else {
            return found; // no blkid: leave it to cloud-init
        };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let device = PathBuf::from(line.trim());
            if !device.as_os_str().is_empty() && !found.contains(&device) {
                found.push(device);
            }
        }
    }
    found
}

/// The seed's `user-data` and `meta-data`, each `None` when the seed has none.
/// The seed is mounted read-only for the read and unmounted before this returns.
fn read_seed(host: &Host, device: &Path) -> Result<(Option<String>, Option<String>), String> {
    let base = host.path(MOUNT_BASE);
    std::fs::create_dir_all(&base).map_err(|e| format!("create {}: {e}", base.display()))?;
    let dir = tempfile::Builder::new()
        .prefix(".nocloud-")
        .tempdir_in(&base)
        .map_err(|e| format!("make a mount point in {}: {e}", base.display()))?;
    let out = host
        .command("mount")
        .args(["-t", "iso9660,vfat", "-o", "ro,nosuid,nodev,noexec"])
        .arg(device)
        .arg(dir.path())
        .output()
        .map_err(|e| format!("run mount: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "mount -o ro: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    // From here the directory is a mount point: never remove it recursively.
    let mount_point = dir.keep();
    let user_data = read_limited(&mount_point.join("user-data"));
    // meta-data is optional to the agent: unreadable, the node keeps the name it has.
    let meta_data = read_limited(&mount_point.join("meta-data")).unwrap_or_else(|why| {
        tracing::warn!(device = %device.display(), "NoCloud seed: {why}; its meta-data is not used");
        None
    });
    unmount(host, &mount_point)?;
    Ok((user_data?, meta_data))
}

/// NoCloud meta-data's `local-hostname` (YAML or JSON, as cloud-init reads it),
/// if it is a valid host name: the machine's name when its document names none.
pub fn local_hostname(meta_data: &str) -> Option<String> {
    let map: serde_yaml_ng::Mapping = serde_yaml_ng::from_str(meta_data).ok()?;
    let name = map
        .get("local-hostname")?
        .as_str()?
        .trim()
        .to_ascii_lowercase();
    if kubeboot_core::document::formats::is_dns_name(&name) {
        Some(name)
    } else {
        tracing::warn!(
            "NoCloud meta-data local-hostname {name:?} is not a DNS name (RFC 1123); not used"
        );
        None
    }
}

/// A seed file (`user-data`, `meta-data`), at most `MAX_USER_DATA` bytes of UTF-8
/// text; `None` when the seed has no such file. Errors name the file.
fn read_limited(path: &Path) -> Result<Option<String>, String> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("open {name}: {e}")),
    };
    let mut bytes = Vec::new();
    file.take(MAX_USER_DATA + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("read {name}: {e}"))?;
    if bytes.len() as u64 > MAX_USER_DATA {
        return Err(format!("{name} is larger than {MAX_USER_DATA} bytes"));
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| format!("{name} is not UTF-8 text"))
}

fn unmount(host: &Host, mount_point: &Path) -> Result<(), String> {
    let ok = |args: &[&str]| {
        host.command("umount")
            .args(args)
            .arg(mount_point)
            .status()
            .is_ok_and(|s| s.success())
    };
    if ok(&[]) || ok(&["--lazy"]) {
        let _ = std::fs::remove_dir(mount_point);
        Ok(())
    } else {
        Err(format!(
            "umount {}: failed; the seed stays mounted read-only there",
            mount_point.display()
        ))
    }
}

/// The node document in a seed's user-data, and how it was carried.
pub fn document_in_seed(user_data: &str) -> Option<(String, &'static str)> {
    if let Some(doc) = kubeboot_document_in_user_data(user_data) {
        return Some((doc, "user-data"));
    }
    node_file_in_cloud_config(user_data).map(|doc| (doc, "user-data write_files"))
}

#[derive(Deserialize)]
struct CloudConfig {
    #[serde(default)]
    write_files: Vec<WriteFile>,
}

#[derive(Deserialize)]
struct WriteFile {
    path: String,
    #[serde(default)]
    content: String,
    #[serde(default)]
    encoding: Option<String>,
}

/// The content of the `write_files` entry for /etc/kubeboot/node.toml in
/// `#cloud-config` user-data, decoded as cloud-init decodes it. `None` for
/// other user-data, another file, or an encoding left to cloud-init (gzip).
fn node_file_in_cloud_config(user_data: &str) -> Option<String> {
    let first = user_data.lines().find(|l| !l.trim().is_empty())?;
    if !first.trim_end().eq_ignore_ascii_case("#cloud-config") {
        return None;
    }
    let config: CloudConfig = match serde_yaml_ng::from_str(user_data) {
        Ok(c) => c,
        Err(e) => {
            // Never the text: it holds secrets. Where the YAML breaks is enough.
            let at = e
                .location()
                .map(|l| format!(" at line {}", l.line()))
                .unwrap_or_default();
            tracing::warn!(
                "NoCloud seed: #cloud-config is not YAML the agent reads{at}; left to cloud-init"
            );
            return None;
        }
    };
    let entry = config
        .write_files
        .into_iter()
        .find(|f| f.path == NODE_FILE)?;
    match entry
        .encoding
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("text/plain") => Some(entry.content),
        Some("b64" | "base64") => {
            use base64::Engine;
            let compact: String = entry.content.split_whitespace().collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(compact)
                .ok()?;
            String::from_utf8(bytes).ok()
        }
        Some(other) => {
            tracing::info!(
                "NoCloud seed: write_files {NODE_FILE} has encoding {other}; left to cloud-init"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "version = 1\nrole = \"worker\"\n";

    #[test]
    fn cloud_config_write_files_plain_and_base64() {
        let plain = format!(
            "#cloud-config\nwrite_files:\n- path: /etc/other\n  content: x\n- path: {NODE_FILE}\n  permissions: '0600'\n  content: |\n    version = 1\n    role = \"worker\"\n"
        );
        assert_eq!(
            document_in_seed(&plain),
            Some((DOC.to_string(), "user-data write_files"))
        );
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(DOC);
        let encoded = format!(
            "#cloud-config\nwrite_files:\n- path: {NODE_FILE}\n  encoding: b64\n  content: {b64}\n"
        );
        assert_eq!(node_file_in_cloud_config(&encoded).as_deref(), Some(DOC));
    }

    #[test]
    fn what_is_left_to_cloud_init() {
        for user_data in [
            format!("#cloud-config\nwrite_files:\n- path: {NODE_FILE}\n  encoding: gz+b64\n  content: H4sI\n"),
            "#cloud-config\nwrite_files:\n- path: /etc/other\n  content: x\n".to_string(),
            "#cloud-config\npackages: [curl]\n".to_string(),
            "#cloud-config\nwrite_files: [\n".to_string(),
            "#!/bin/sh\necho hi\n".to_string(),
        ] {
            assert_eq!(document_in_seed(&user_data), None, "{user_data}");
        }
    }

    #[test]
    fn bare_toml_user_data_is_the_document() {
        assert_eq!(document_in_seed(DOC), Some((DOC.to_string(), "user-data")));
    }

    #[test]
    fn no_devices_are_probed_under_a_test_root() {
        let tmp = tempfile::tempdir().unwrap();
        let host = Host::system_at(tmp.path());
        let seed = NoCloudSeed::probe();
        assert!(seed.devices(&host).is_empty());
        let opts = crate::source::FetchOptions::default();
        let found = seed.load(&host, &Fetcher::new(&host, &opts)).unwrap();
        assert!(found.is_none());
    }

    mod fuzz {
        use super::*;
        use kubeboot_core::fuzz::{apply, config, edits, quotes};
        use proptest::prelude::*;

        const PLAIN: &str =
            include_str!("../../../cloud-init/examples/user-data/control-plane-write-files.yaml");
        const SECRET: &str = "0123456789abcdef";
        const CERTIFICATE_KEY: &str =
            "e6a2eb8581237ab72a4f494f30285ec12a9694d750b9785706a83bfcbbbd2204";

        /// The same document as a base64 `write_files` entry.
        fn encoded() -> String {
            use base64::Engine;
            let doc = include_str!("../../../cloud-init/examples/control-plane.toml");
            let b64 = base64::engine::general_purpose::STANDARD.encode(doc);
            format!("#cloud-config\nwrite_files:\n- path: {NODE_FILE}\n  permissions: '0600'\n  encoding: b64\n  content: {b64}\n")
        }

        #[test]
        fn the_seeds_hold_a_valid_document() {
            for seed in [PLAIN.to_string(), encoded()] {
                let (doc, via) = document_in_seed(&seed).unwrap();
                assert_eq!(via, "user-data write_files");
                kubeboot_core::document::load(&doc).unwrap();
            }
        }

        proptest! {
            #![proptest_config(config())]

            /// Mutated `#cloud-config` user-data (plain and base64 write_files)
            /// never panics the reader. A document found in write_files comes
            /// from `#cloud-config`; loading it gives a document or an error
            /// that quotes no piece of the token's secret or certificate key.
            #[test]
            fn mutated_cloud_config_is_read_without_panics(b64 in any::<bool>(), e in edits()) {
                let seed = if b64 { encoded() } else { PLAIN.to_string() };
                let text = String::from_utf8_lossy(&apply(seed.as_bytes(), &e)).into_owned();
                if let Some((doc, via)) = document_in_seed(&text) {
                    if via == "user-data write_files" {
                        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                        prop_assert!(first.trim_end().eq_ignore_ascii_case("#cloud-config"));
                    }
                    if let Err(err) = kubeboot_core::document::load(&doc) {
                        let shown = err.to_string();
                        prop_assert!(!quotes(&shown, SECRET, 8), "{}", shown);
                        prop_assert!(!quotes(&shown, CERTIFICATE_KEY, 12), "{}", shown);
                    }
                }
            }

            /// Whatever a mutated meta-data yields as the host name is a
            /// lowercase DNS name: it becomes the node's name.
            #[test]
            fn mutated_meta_data_yields_only_dns_names(json in any::<bool>(), e in edits()) {
                let seed = if json {
                    "{\"instance-id\": \"iid-rack4-07\", \"local-hostname\": \"Worker-07.rack4\"}"
                } else {
                    "instance-id: iid-rack4-07\nlocal-hostname: worker-07.rack4\n"
                };
                let text = String::from_utf8_lossy(&apply(seed.as_bytes(), &e)).into_owned();
                if let Some(name) = local_hostname(&text) {
                    prop_assert!(kubeboot_core::document::formats::is_dns_name(&name), "{}", name);
                    prop_assert_eq!(name.to_ascii_lowercase(), name.clone());
                }
            }
        }
    }
}
