//! Report credentials bound to one node.
//!
//! Every document serve hands to a named machine carries, in `[report] token`,
//! a credential that posts status events for that node name and machine id
//! only: `kbn1.` and the HMAC-SHA256, under serve's binding key
//! (`DATA/report-binding.key`, 0600), of the name and the machine id. An event
//! for any other node or machine posted with it is refused (403). Only events
//! posted with a bound credential count for the init election (its lease and its
//! outcome): a shared report token from the tokens file still stores events for
//! the dashboard, but can neither keep a winner elected nor hand its place to
//! anyone.

use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::election::Candidate;
use kubeboot_core::document::writer::{WriteError, Writer};
use kubeboot_core::host::write_file_atomic;

const PREFIX: &str = "kbn1.";
pub const KEY_FILE: &str = "report-binding.key";

/// serve's binding key.
pub struct Binder {
    key: [u8; 32],
}

impl std::fmt::Debug for Binder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Binder(key redacted)")
    }
}

impl Binder {
    /// The key under `data`, made (random, 0600) on first use.
    pub fn load_or_create(data: &Path) -> Result<Binder, String> {
        let path = data.join(KEY_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let key = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                    format!(
                        "{}: not 32 bytes; it was damaged. Remove it to make a new one (running \
                         nodes' report credentials then stop working until they fetch again)",
                        path.display()
                    )
                })?;
                Ok(Binder { key })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                use rand::Rng;
                let key: [u8; 32] = rand::rng().random();
                write_file_atomic(&path, &key, 0o600)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                Ok(Binder { key })
            }
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    fn mac(&self, node: &str, machine_id: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(b"kubeboot report credential\0");
        mac.update(node.as_bytes());
        mac.update(b"\0");
        mac.update(machine_id.to_ascii_lowercase().as_bytes());
        mac
    }

    /// The report credential for this node and machine.
    pub fn token(&self, c: &Candidate) -> String {
        let tag = self.mac(&c.node, &c.machine_id).finalize().into_bytes();
        format!("{PREFIX}{}", hex::encode(tag))
    }

    /// Was `token` issued to this node and machine? (Constant time.)
    pub fn verify(&self, token: &str, node: &str, machine_id: &str) -> bool {
        let Some(tag) = token
            .trim()
            .strip_prefix(PREFIX)
            .and_then(|h| hex::decode(h).ok())
        else {
            return false;
        };
        self.mac(node, machine_id).verify_slice(&tag).is_ok()
    }
}

impl Binder {
    /// How machine `machine_id` appears to readers without an admin token: a
    /// stable keyed fingerprint (`m-` and 16 hex digits), not the id, which
    /// counts enrolments and names the election's winner.
    pub fn fingerprint(&self, machine_id: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(b"kubeboot machine id fingerprint\0");
        mac.update(machine_id.to_ascii_lowercase().as_bytes());
        format!("m-{}", hex::encode(&mac.finalize().into_bytes()[..8]))
    }
}

/// Is this a bound credential (whatever node it is for)?
pub fn is_bound(token: &str) -> bool {
    token.trim().starts_with(PREFIX)
}

/// `text` with its `[report] token` replaced by `bound_for(node)`, when that
/// token is one of this serve's shared report tokens (`ours`); else unchanged.
/// `node` is the name the agent will report under: the document's `[node] name`,
/// else `asked_as` (the name the request gave).
pub fn bind_document(
    text: &str,
    ours: impl Fn(&str) -> bool,
    bound_for: impl Fn(&str) -> String,
    asked_as: &str,
) -> Result<String, WriteError> {
    let mut w = Writer::parse(text)?;
    let node = w.get_str(&["node", "name"]).unwrap_or(asked_as).to_string();
    let shared = w.get_str(&["report", "token"]).is_some_and(&ours);
    if !shared {
        return Ok(text.to_string());
    }
    w.set(&["report", "token"], bound_for(&node))?;
    Ok(w.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(node: &str, id: &str) -> Candidate {
        Candidate {
            node: node.into(),
            machine_id: id.into(),
        }
    }

    #[test]
    fn a_bound_credential_works_for_its_node_and_machine_only() {
        let dir = tempfile::tempdir().unwrap();
        let b = Binder::load_or_create(dir.path()).unwrap();
        let t = b.token(&c("cp-1", "00ab"));
        assert!(is_bound(&t));
        assert!(b.verify(&t, "cp-1", "00ab"));
        assert!(
            b.verify(&t, "cp-1", "00AB"),
            "machine ids compare lowercase"
        );
        assert!(!b.verify(&t, "cp-2", "00ab"), "another node");
        assert!(!b.verify(&t, "cp-1", "00ac"), "another machine");
        assert!(!b.verify("kbn1.zz", "cp-1", "00ab"));
        assert!(!b.verify(&t[..t.len() - 2], "cp-1", "00ab"));
        // The key survives a restart; another serve's key does not verify.
        let again = Binder::load_or_create(dir.path()).unwrap();
        assert!(again.verify(&t, "cp-1", "00ab"));
        let other = Binder::load_or_create(tempfile::tempdir().unwrap().path()).unwrap();
        assert!(!other.verify(&t, "cp-1", "00ab"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(format!("{b:?}"), "Binder(key redacted)");
    }

    #[test]
    fn only_this_serves_shared_report_token_is_replaced() {
        let doc = "# header. SECRET\nrole = \"worker\"\n\n[report]\nurl = \"https://s/v1\"\ntoken = \"shared\"\n";
        let for_node = |n: &str| format!("kbn1.{n}");
        let bound = bind_document(doc, |t| t == "shared", for_node, "w1").unwrap();
        assert!(bound.starts_with("# header. SECRET\n"), "{bound}");
        let t: toml::Table = bound.parse().unwrap();
        assert_eq!(t["report"]["token"].as_str(), Some("kbn1.w1"));
        assert_eq!(t["report"]["url"].as_str(), Some("https://s/v1"));
        assert_eq!(bind_document(doc, |_| false, for_node, "w1").unwrap(), doc);
        let none = "role = \"worker\"\n";
        assert_eq!(bind_document(none, |_| true, for_node, "w1").unwrap(), none);
        // The agent reports under the document's name when it gives one.
        let named = format!("{doc}[node]\nname = \"cp-7\"\n");
        let bound = bind_document(&named, |t| t == "shared", for_node, "w1").unwrap();
        let t: toml::Table = bound.parse().unwrap();
        assert_eq!(t["report"]["token"].as_str(), Some("kbn1.cp-7"));
    }

    mod fuzz {
        use super::*;
        use kubeboot_core::fuzz::{apply, config, edits};
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(config())]

            /// A node's report credential changed anywhere no longer posts for
            /// that node, nothing panics, and no form of it posts for another
            /// node. What still verifies is the same credential up to the
            /// surrounding whitespace and the case of its hex digits.
            #[test]
            fn a_mutated_bound_credential_never_verifies(e in edits()) {
                let binder = Binder { key: [7; 32] };
                let id = "4c4c4544004e4a10804bb7c04f535032";
                let good = binder.token(&c("w1", id));
                let mutated = String::from_utf8_lossy(&apply(good.as_bytes(), &e)).into_owned();
                let same = mutated
                    .trim()
                    .strip_prefix(PREFIX)
                    .is_some_and(|h| h.to_ascii_lowercase() == good[PREFIX.len()..]);
                prop_assert_eq!(binder.verify(&mutated, "w1", id), same, "{}", mutated);
                prop_assert!(!binder.verify(&mutated, "w2", id));
            }
        }
    }
}
