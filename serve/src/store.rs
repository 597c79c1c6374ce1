//! The receiver's embedded store: one redb file in the data directory.
//!
//! Why redb: pure Rust (no C library to build or install), one file, ACID
//! transactions whose commit fsyncs before returning, and copy-on-write pages,
//! so a crash or a full disk mid-commit leaves the last committed state intact.
//! Events are kept as received (JSON) under an increasing id; a second table
//! maps each event's identity (machine id, boot id, seq) to that id, which makes
//! delivery idempotent.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::journal::ServeEvent;
use kubeboot_core::status::StatusEvent;

const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const SEEN: TableDefinition<&str, u64> = TableDefinition::new("seen");
/// Small records of serve's own decisions (JSON by key), e.g. the init election.
const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("records");
/// serve's own status events (`journal`), JSON under an increasing id.
const SERVE_EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("serve_events");

pub const DB_FILE: &str = "events.redb";
/// The most status events kept on disk; the oldest go first (serve's memory
/// holds at most `nodes::MAX_EVENTS` of them).
pub const MAX_STORED_EVENTS: u64 = crate::nodes::MAX_EVENTS as u64;

pub struct Store {
    db: Database,
}

/// Why the store could not be opened, read or written. A write of status
/// events fails `DiskFull` or `Other`, the terms the HTTP layer answers with;
/// the other variants are for opening the store and for serve's own records.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// ENOSPC / EDQUOT: 507, the node keeps its events and retries.
    #[error("the receiver's disk is full: {0}")]
    DiskFull(String),
    #[error("the receiver could not store the event: {0}")]
    Other(String),
    /// The store file at `path` could not be opened, made owner-only or read.
    #[error("{}: {message}", path.display())]
    Open { path: PathBuf, message: String },
    /// The database refused a read or a write of serve's records.
    #[error("{0}")]
    Database(String),
    /// The record under `key` is not what serve writes there.
    #[error("stored record {key} is unreadable: {message}")]
    Record { key: String, message: String },
    /// A record could not be encoded as JSON.
    #[error("{0}")]
    Encode(String),
}

fn classify(e: impl Into<redb::Error>) -> StoreError {
    let e: redb::Error = e.into();
    let disk_full = match &e {
        redb::Error::Io(io) => matches!(io.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT)),
        _ => false,
    };
    let msg = e.to_string();
    if disk_full || msg.contains("No space left") {
        StoreError::DiskFull(msg)
    } else {
        StoreError::Other(msg)
    }
}

fn text(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Database(e.into().to_string())
}

/// The identity that makes a resent event a duplicate.
pub fn event_key(ev: &StatusEvent) -> String {
    format!("{}/{}/{:020}", ev.machine_id, ev.boot_id, ev.seq)
}

impl Store {
    /// Open (or create) the store and read back every stored event, oldest first.
    pub fn open(dir: &Path) -> Result<(Store, Vec<StatusEvent>), StoreError> {
        let path = dir.join(DB_FILE);
        let at = |message: String| StoreError::Open {
            path: path.clone(),
            message,
        };
        let db = Database::create(&path).map_err(|e| at(e.to_string()))?;
        // It holds the sealed certificate key and the election's claim: owner only.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| at(e.to_string()))?;
        let store = Store { db };
        let events = store.load().map_err(|e| at(e.to_string()))?;
        Ok((store, events))
    }

    fn load(&self) -> Result<Vec<StatusEvent>, StoreError> {
        let txn = self.db.begin_write().map_err(text)?;
        {
            // Make sure both tables exist, so a fresh store reads as empty.
            txn.open_table(EVENTS).map_err(text)?;
            txn.open_table(SEEN).map_err(text)?;
            txn.open_table(RECORDS).map_err(text)?;
            txn.open_table(SERVE_EVENTS).map_err(text)?;
        }
        txn.commit().map_err(text)?;
        let read = self.db.begin_read().map_err(text)?;
        let table = read.open_table(EVENTS).map_err(text)?;
        let mut out = Vec::with_capacity(table.len().map_err(text)? as usize);
        for row in table.iter().map_err(text)? {
            let (id, json) = row.map_err(text)?;
            match serde_json::from_slice(json.value()) {
                Ok(ev) => out.push(ev),
                Err(e) => tracing::warn!("stored event {} is unreadable, skipped: {e}", id.value()),
            }
        }
        Ok(out)
    }

    /// Store a batch in one transaction (one fsync). For each event: true if it
    /// was new, false if an identical identity was stored before.
    pub fn append(&self, batch: &[StatusEvent]) -> Result<Vec<bool>, StoreError> {
        let txn = self.db.begin_write().map_err(classify)?;
        let mut fresh = Vec::with_capacity(batch.len());
        {
            let mut events = txn.open_table(EVENTS).map_err(classify)?;
            let mut seen = txn.open_table(SEEN).map_err(classify)?;
            let mut next = events
                .last()
                .map_err(classify)?
                .map_or(0, |(id, _)| id.value() + 1);
            for ev in batch {
                let key = event_key(ev);
                if seen.get(key.as_str()).map_err(classify)?.is_some() {
                    fresh.push(false);
                    continue;
                }
                let json = serde_json::to_vec(ev).map_err(|e| StoreError::Other(e.to_string()))?;
                events.insert(next, json.as_slice()).map_err(classify)?;
                seen.insert(key.as_str(), next).map_err(classify)?;
                next += 1;
                fresh.push(true);
            }
            // Bounded: past the cap the oldest events go (and their identities).
            let mut over = events
                .len()
                .map_err(classify)?
                .saturating_sub(MAX_STORED_EVENTS);
            while over > 0 {
                let Some((_, json)) = events.pop_first().map_err(classify)? else {
                    break;
                };
                if let Ok(ev) = serde_json::from_slice::<StatusEvent>(json.value()) {
                    seen.remove(event_key(&ev).as_str()).map_err(classify)?;
                }
                over -= 1;
            }
        }
        txn.commit().map_err(classify)?;
        Ok(fresh)
    }
}

impl Store {
    /// A record of serve's own, if one was written under `key`.
    pub fn record<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        let read = self.db.begin_read().map_err(text)?;
        let table = read.open_table(RECORDS).map_err(text)?;
        let Some(bytes) = table.get(key).map_err(text)? else {
            return Ok(None);
        };
        serde_json::from_slice(bytes.value())
            .map(Some)
            .map_err(|e| StoreError::Record {
                key: key.to_string(),
                message: e.to_string(),
            })
    }

    /// Write a record, durably (the commit fsyncs) before returning.
    pub fn put_record<T: serde::Serialize>(&self, key: &str, value: &T) -> Result<(), StoreError> {
        let json = serde_json::to_vec(value).map_err(|e| StoreError::Encode(e.to_string()))?;
        let txn = self.db.begin_write().map_err(text)?;
        {
            let mut table = txn.open_table(RECORDS).map_err(text)?;
            table.insert(key, json.as_slice()).map_err(text)?;
        }
        txn.commit().map_err(text)
    }

    /// Every record whose key starts with `prefix`, in key order.
    pub fn records_with_prefix<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let read = self.db.begin_read().map_err(text)?;
        let table = read.open_table(RECORDS).map_err(text)?;
        let mut out = Vec::new();
        for entry in table.range(prefix..).map_err(text)? {
            let (key, value) = entry.map_err(text)?;
            let key = key.value().to_string();
            if !key.starts_with(prefix) {
                break;
            }
            let record = serde_json::from_slice(value.value()).map_err(|e| StoreError::Record {
                key: key.clone(),
                message: e.to_string(),
            })?;
            out.push((key, record));
        }
        Ok(out)
    }

    /// Remove a record, durably; removing one that is not there is fine.
    pub fn delete_record(&self, key: &str) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(text)?;
        {
            let mut table = txn.open_table(RECORDS).map_err(text)?;
            table.remove(key).map_err(text)?;
        }
        txn.commit().map_err(text)
    }
}

impl Store {
    /// Store serve's own events in one durable commit; each gets its id as `seq`.
    pub fn append_serve_events(&self, batch: &mut [ServeEvent]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(classify)?;
        {
            let mut table = txn.open_table(SERVE_EVENTS).map_err(classify)?;
            let first = table
                .last()
                .map_err(classify)?
                .map_or(0, |(id, _)| id.value() + 1);
            for (seq, ev) in (first..).zip(batch.iter_mut()) {
                ev.seq = seq;
                let json = serde_json::to_vec(ev).map_err(|e| StoreError::Other(e.to_string()))?;
                table.insert(seq, json.as_slice()).map_err(classify)?;
            }
        }
        txn.commit().map_err(classify)
    }

    /// serve's own events with `seq` at least `from`, oldest first, at most `limit`.
    pub fn serve_events(&self, from: u64, limit: usize) -> Result<Vec<ServeEvent>, StoreError> {
        let read = self.db.begin_read().map_err(text)?;
        let table = read.open_table(SERVE_EVENTS).map_err(text)?;
        let mut out = Vec::new();
        for row in table.range(from..).map_err(text)?.take(limit) {
            let (id, json) = row.map_err(text)?;
            match serde_json::from_slice(json.value()) {
                Ok(ev) => out.push(ev),
                Err(e) => tracing::warn!("serve event {} is unreadable, skipped: {e}", id.value()),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubeboot_core::status::{Phase, PhaseState};

    fn ev(seq: u64) -> StatusEvent {
        serde_json::from_value(serde_json::json!({
            "node": "w1", "machine_id": "m", "boot_id": "b", "seq": seq, "role": "worker",
            "phase": "source", "state": "started", "attempt": 1,
            "at": "2026-11-21T10:00:00Z", "agent_version": "0.1.0"
        }))
        .unwrap()
    }

    #[test]
    fn duplicates_are_not_stored_twice_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (store, old) = Store::open(dir.path()).unwrap();
            assert!(old.is_empty());
            assert_eq!(
                store.append(&[ev(1), ev(2), ev(1)]).unwrap(),
                [true, true, false]
            );
            assert_eq!(store.append(&[ev(2), ev(3)]).unwrap(), [false, true]);
        }
        let (_, all) = Store::open(dir.path()).unwrap();
        let seqs: Vec<u64> = all.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 2, 3]);
        assert_eq!(all[0].phase, Phase::Source);
        assert_eq!(all[0].state, PhaseState::Started);
    }

    #[test]
    fn serve_events_get_increasing_ids_and_survive_reopen() {
        use crate::journal::{Action, ServeEvent};
        let dir = tempfile::tempdir().unwrap();
        let at = chrono::Utc::now();
        {
            let (store, _) = Store::open(dir.path()).unwrap();
            let actions = [
                Action::minted("bootstrap token aaaaaa".into()),
                Action::minted("bootstrap token bbbbbb".into()),
            ];
            let mut batch = ServeEvent::for_request(&actions, "worker document", None, at);
            store.append_serve_events(&mut batch).unwrap();
            assert_eq!(batch.iter().map(|e| e.seq).collect::<Vec<_>>(), [0, 1]);
            let mut more = ServeEvent::for_request(&actions[..1], "worker document", None, at);
            store.append_serve_events(&mut more).unwrap();
            assert_eq!(more[0].seq, 2);
        }
        let (store, nodes_events) = Store::open(dir.path()).unwrap();
        assert!(
            nodes_events.is_empty(),
            "serve's events are not node events"
        );
        assert_eq!(store.serve_events(0, usize::MAX).unwrap().len(), 3);
        let tail = store.serve_events(1, 10).unwrap();
        assert_eq!(tail.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(tail[0].message, "bootstrap token bbbbbb");
        assert_eq!(store.serve_events(0, 1).unwrap().len(), 1);
    }
}
