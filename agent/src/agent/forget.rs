//! After `done`: remove every copy of the bootstrap secrets (token,
//! certificate key, bearer tokens, CA keys of an init document) that the node
//! no longer needs, then look for copies left in the places a document passes
//! through, and say where they are.
//!
//! What stays on purpose: `/etc/kubernetes/pki` (a control plane's own keys),
//! the kubelet's credentials, `outbox/target.json` (the report token) until
//! the queued status events are delivered, and `pod-routes.json` (the report
//! credential serve bound to this node, for `kubeboot pod-routes`).

use std::path::Path;

use kubeboot_core::host::{Host, HostResult};

/// Where a document and its secrets pass through on their way to kubeadm.
const SEARCHED: [&str; 6] = [
    "/var/lib/cloud",
    "/run/cloud-init",
    "/etc/kubeboot",
    "/etc/kubernetes",
    "/var/log/cloud-init.log",
    "/var/log/cloud-init-output.log",
];
/// The node's own keys live here on a control plane; the CA key is expected.
const KEPT: [&str; 1] = ["/etc/kubernetes/pki"];
const MAX_FILES: usize = 5000;
const MAX_FILE_BYTES: u64 = 16 << 20;
const MAX_DEPTH: usize = 8;

/// What `done` did and found.
#[derive(Debug, Default)]
pub struct Forgotten {
    /// Files removed because they held secrets.
    pub removed: Vec<String>,
    /// Files that still hold one of the secrets (kubeboot did not write them).
    pub left: Vec<String>,
    /// How many files were searched.
    pub searched: usize,
}

impl Forgotten {
    /// One line each for the operator: what went, and what is left or that
    /// nothing is.
    pub fn notes(&self, secrets_known: bool) -> Vec<String> {
        let mut notes = Vec::new();
        if !self.removed.is_empty() {
            notes.push(format!(
                "removed {} file(s) that held bootstrap secrets: {}",
                self.removed.len(),
                self.removed.join(", ")
            ));
        }
        if !secrets_known {
            notes.push("no document at hand: the search for left-over secrets was skipped".into());
        } else if self.left.is_empty() {
            notes.push(format!(
                "no copy of this node's bootstrap secrets is left in {} ({} files searched; {} excepted)",
                SEARCHED.join(", "),
                self.searched,
                KEPT.join(", ")
            ));
        } else {
            notes.push(format!(
                "a bootstrap secret is still in {} (kubeboot did not write it): remove it, \
                 and delete the token with `kubeadm token delete` once the cluster is complete",
                self.left.join(", ")
            ));
        }
        notes
    }
}

/// Remove `files` (node paths) where they exist; the ones removed are returned.
pub fn remove(host: &Host, files: &[String]) -> HostResult<Vec<String>> {
    let mut removed = Vec::new();
    for f in files {
        if host.remove_file_if_exists(f)? {
            removed.push(f.clone());
        }
    }
    Ok(removed)
}

/// Remove `files`, then search the usual places and `state_dir` for any of
/// `secrets`. `skip` names further paths that may keep them.
pub fn forget(
    host: &Host,
    files: &[String],
    state_dir: &str,
    skip: &[String],
    secrets: &[String],
) -> HostResult<Forgotten> {
    let removed = remove(host, files)?;
    let mut search = Search {
        host,
        secrets,
        skip: KEPT
            .iter()
            .map(|s| s.to_string())
            .chain(skip.iter().cloned())
            .collect(),
        left: Vec::new(),
        searched: 0,
    };
    if !secrets.is_empty() {
        for root in SEARCHED.iter().copied().chain([state_dir]) {
            search.walk(root.trim_end_matches('/'), 0);
        }
    }
    search.left.sort();
    search.left.dedup();
    Ok(Forgotten {
        removed,
        left: search.left,
        searched: search.searched,
    })
}

struct Search<'a> {
    host: &'a Host,
    secrets: &'a [String],
    skip: Vec<String>,
    left: Vec<String>,
    searched: usize,
}

impl Search<'_> {
    /// Depth-first over real files and directories; links are not followed.
    fn walk(&mut self, node_path: &str, depth: usize) {
        if depth > MAX_DEPTH || self.searched >= MAX_FILES {
            return;
        }
        if self
            .skip
            .iter()
            .any(|s| Path::new(node_path).starts_with(s))
        {
            return;
        }
        let real = self.host.path(node_path);
        let Ok(meta) = std::fs::symlink_metadata(&real) else {
            return;
        };
        if meta.is_dir() {
            for name in self.host.dir_names(node_path) {
                self.walk(&format!("{node_path}/{name}"), depth + 1);
            }
        } else if meta.is_file() && meta.len() <= MAX_FILE_BYTES {
            self.searched += 1;
            let Ok(bytes) = std::fs::read(&real) else {
                return;
            };
            if self
                .secrets
                .iter()
                .any(|s| memchr::memmem::find(&bytes, s.as_bytes()).is_some())
            {
                self.left.push(node_path.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> (tempfile::TempDir, Host) {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::new(dir.path(), "/usr/bin:/bin".into());
        (dir, host)
    }

    fn put(host: &Host, path: &str, text: &str) {
        let p = host.path(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn removes_what_it_is_given_and_finds_what_is_left() {
        let (_dir, host) = host();
        let secret = "abcdef.0123456789abcdef".to_string();
        put(
            &host,
            "/var/lib/cloud/instance/user-data.txt",
            &format!("token = \"{secret}\""),
        );
        put(
            &host,
            "/var/lib/cloud/instance/scripts/runcmd",
            &format!("echo {secret}"),
        );
        put(&host, "/etc/kubernetes/pki/ca.key", &secret);
        put(&host, "/var/lib/kubeboot/outbox/target.json", &secret);
        put(&host, "/var/lib/kubeboot/state.json", "{}");
        put(&host, "/etc/kubernetes/kubelet.conf", "no secret here");
        let out = forget(
            &host,
            &[
                "/var/lib/cloud/instance/user-data.txt".into(),
                "/nope".into(),
            ],
            "/var/lib/kubeboot",
            &["/var/lib/kubeboot/outbox/target.json".into()],
            std::slice::from_ref(&secret),
        )
        .unwrap();
        assert_eq!(out.removed, ["/var/lib/cloud/instance/user-data.txt"]);
        assert!(!host.exists("/var/lib/cloud/instance/user-data.txt"));
        assert_eq!(out.left, ["/var/lib/cloud/instance/scripts/runcmd"]);
        assert_eq!(out.searched, 3, "runcmd, kubelet.conf, state.json");
        let notes = out.notes(true).join("\n");
        assert!(
            notes.contains("still in /var/lib/cloud/instance/scripts/runcmd"),
            "{notes}"
        );
        assert!(!notes.contains(&secret));
    }

    #[test]
    fn says_so_when_nothing_is_left() {
        let (_dir, host) = host();
        put(&host, "/etc/kubeboot/other.toml", "nothing");
        let out = forget(
            &host,
            &[],
            "/var/lib/kubeboot",
            &[],
            &["s3cret-value".into()],
        )
        .unwrap();
        assert!(out.left.is_empty());
        assert!(out.notes(true)[0].starts_with("no copy of this node's bootstrap secrets is left"));
    }
}
