//! The durable queue of status events waiting to reach the receiver:
//! `{state_dir}/outbox/{id:012}.json`, one file per event, written atomically
//! and fsynced before the agent moves on. Ids only grow, so file order is
//! delivery order, across agent restarts and reboots. `target.json` (0600,
//! it holds the bearer token) says where the events go.

use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use kubeboot_core::host::{Host, HostResult};
use kubeboot_core::status::{StatusEvent, MAX_EVENT_BYTES};

const TARGET: &str = "target.json";

/// Where events go and how the receiver is trusted.
#[derive(Clone, Serialize, Deserialize)]
pub struct Target {
    pub url: String,
    pub token: Option<String>,
    pub ca_cert_hash: Option<String>,
    pub ca_file: Option<String>,
    pub drain_seconds: u64,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("ca_cert_hash", &self.ca_cert_hash)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

pub struct Outbox {
    host: Host,
    dir: String,
    next_id: Mutex<u64>,
}

impl Outbox {
    pub fn new(host: Host, state_dir: &str) -> Outbox {
        let dir = format!("{}/outbox", state_dir.trim_end_matches('/'));
        let outbox = Outbox {
            host,
            dir,
            next_id: Mutex::new(0),
        };
        let next = outbox.pending().last().map_or(1, |(id, _)| id + 1);
        *outbox.next_id.lock().expect("outbox lock") = next;
        outbox
    }

    fn file(&self, name: &str) -> String {
        format!("{}/{name}", self.dir)
    }

    pub fn target(&self) -> Option<Target> {
        let text = self.host.read_to_string(self.file(TARGET)).ok()?;
        match serde_json::from_str(&text) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(
                    "{}/{TARGET} is unreadable ({e}); status reports are off",
                    self.dir
                );
                None
            }
        }
    }

    pub fn save_target(&self, target: &Target) -> HostResult<()> {
        let json = serde_json::to_vec(target).expect("target serializes");
        self.host.write_atomic(self.file(TARGET), &json, 0o600)
    }

    /// Queue an event (bounded in size); durable when this returns.
    pub fn push(&self, ev: &StatusEvent) -> HostResult<()> {
        let json = bounded_json(ev);
        let mut next = self.next_id.lock().expect("outbox lock");
        self.host
            .write_atomic(self.file(&format!("{:012}.json", *next)), &json, 0o600)?;
        *next += 1;
        Ok(())
    }

    /// Queued events, oldest first.
    pub fn pending(&self) -> Vec<(u64, PathBuf)> {
        let Ok(entries) = std::fs::read_dir(self.host.path(&self.dir)) else {
            return Vec::new();
        };
        let mut out: Vec<(u64, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let id = name.strip_suffix(".json")?.parse::<u64>().ok()?;
                Some((id, e.path()))
            })
            .collect();
        out.sort_by_key(|(id, _)| *id);
        out
    }

    pub fn remove(&self, path: &PathBuf) {
        if let Err(e) = std::fs::remove_file(path) {
            tracing::warn!("could not remove delivered event {}: {e}", path.display());
        }
    }

    /// Nothing left to send: forget the target too (it holds the token).
    pub fn retire_if_empty(&self) {
        if self.pending().is_empty() {
            let _ = self.host.remove_file_if_exists(self.file(TARGET));
        }
    }
}

const MAX_LINE: usize = 1024;
const MAX_MESSAGE: usize = 4096;

/// The event as JSON, trimmed to fit MAX_EVENT_BYTES: long lines and messages
/// are cut, then the oldest log lines dropped.
pub fn bounded_json(ev: &StatusEvent) -> Vec<u8> {
    let mut ev = ev.clone();
    let cut = |s: &mut String, max: usize| {
        if s.len() > max {
            let mut end = max;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
            s.push('…');
        }
    };
    if let Some(e) = ev.error.as_mut() {
        cut(&mut e.message, MAX_MESSAGE);
    }
    for line in ev.log_tail.iter_mut() {
        cut(line, MAX_LINE);
    }
    loop {
        let json = serde_json::to_vec(&ev).expect("event serializes");
        if json.len() <= MAX_EVENT_BYTES || ev.log_tail.is_empty() {
            return json;
        }
        ev.log_tail.remove(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64) -> StatusEvent {
        serde_json::from_value(serde_json::json!({
            "node": "w1", "machine_id": "m", "boot_id": "b", "seq": seq, "role": "worker",
            "phase": "kubeadm", "state": "failed", "attempt": 1,
            "at": "2026-11-21T10:00:00Z", "agent_version": "0.1.0",
            "error": {"kind": "kubeadm_failed", "message": "x".repeat(100_000)},
            "log_tail": vec!["é".repeat(5000); 40],
        }))
        .unwrap()
    }

    #[test]
    fn events_are_bounded_and_stay_valid_json() {
        let json = bounded_json(&ev(1));
        assert!(json.len() <= MAX_EVENT_BYTES, "{}", json.len());
        let back: StatusEvent = serde_json::from_slice(&json).unwrap();
        assert!(back.error.unwrap().message.len() <= MAX_MESSAGE + 3);
        assert!(!back.log_tail.is_empty());
        assert!(back.log_tail.iter().all(|l| l.len() <= MAX_LINE + 3));
    }

    #[test]
    fn ids_keep_growing_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::new(dir.path(), Default::default());
        let a = Outbox::new(host.clone(), "/var/lib/kubeboot");
        a.push(&ev(1)).unwrap();
        a.push(&ev(2)).unwrap();
        let first = a.pending();
        a.remove(&first[0].1);
        let b = Outbox::new(host, "/var/lib/kubeboot");
        b.push(&ev(3)).unwrap();
        let ids: Vec<u64> = b.pending().iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, [2, 3]);
    }
}
