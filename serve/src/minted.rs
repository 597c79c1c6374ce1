//! Every bootstrap token serve mints, on record until it is served, withdrawn
//! or expired, so nothing minted is left behind.
//!
//! A token is recorded (fsynced) as `pending` when the cluster has made it.
//! The request then either serves it (`served`: it lives until its expiry, when
//! the cluster's tokencleaner deletes it) or fails: serve deletes the token's
//! Secret at once and, should that fail, marks it `withdraw` for the sweeper,
//! which tries again every minute. A `pending` record found when serve starts
//! belongs to a request that died with the process, before its answer could
//! leave: it is withdrawn too.
//!
//! Certificates re-uploaded for a control plane are not withdrawn: serve keeps
//! their key (sealed, `certificate_key`) and hands it to the next control plane
//! until shortly before the upload expires.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::store::{Store, StoreError};

/// Why the ledger of minted tokens could not be read or written. Carries the
/// token's id (its public half), never its secret; the message is the store's.
#[derive(Debug, thiserror::Error)]
pub enum MintedError {
    /// The record of token `id` could not be read or written.
    #[error("{source}")]
    Token { id: String, source: StoreError },
    /// The ledger could not be listed.
    #[error("{0}")]
    List(#[source] StoreError),
}

fn token(id: &str) -> impl FnOnce(StoreError) -> MintedError {
    let id = id.to_string();
    move |source| MintedError::Token { id, source }
}

const PREFIX: &str = "minted-token/";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Made for a request that has not answered yet.
    Pending,
    /// Sent to a node: it lives until it expires.
    Served,
    /// Its request failed: its Secret is to be deleted.
    Withdraw,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub expires: DateTime<Utc>,
    pub state: State,
}

/// The record of minted tokens, by token id (never the secret).
pub struct Ledger<'a> {
    store: &'a Store,
}

impl<'a> Ledger<'a> {
    pub fn new(store: &'a Store) -> Ledger<'a> {
        Ledger { store }
    }

    fn key(id: &str) -> String {
        format!("{PREFIX}{id}")
    }

    /// The cluster made token `id` for a request still being answered.
    pub fn pending(&self, id: &str, expires: DateTime<Utc>) -> Result<(), MintedError> {
        self.set(id, expires, State::Pending)
    }

    /// Mark `ids` (each already recorded) as `state`.
    pub fn mark(&self, ids: &[String], state: State) -> Result<(), MintedError> {
        for id in ids {
            if let Some(entry) = self
                .store
                .record::<Entry>(&Self::key(id))
                .map_err(token(id))?
            {
                self.set(id, entry.expires, state)?;
            }
        }
        Ok(())
    }

    fn set(&self, id: &str, expires: DateTime<Utc>, state: State) -> Result<(), MintedError> {
        self.store
            .put_record(&Self::key(id), &Entry { expires, state })
            .map_err(token(id))
    }

    /// Token `id`'s Secret is gone (deleted, or expired and cleaned up).
    pub fn forget(&self, id: &str) -> Result<(), MintedError> {
        self.store.delete_record(&Self::key(id)).map_err(token(id))
    }

    pub fn entries(&self) -> Result<Vec<(String, Entry)>, MintedError> {
        Ok(self
            .store
            .records_with_prefix::<Entry>(PREFIX)
            .map_err(MintedError::List)?
            .into_iter()
            .map(|(k, e)| (k[PREFIX.len()..].to_string(), e))
            .collect())
    }

    /// What the sweeper should do now: the ids to delete from the cluster
    /// (`withdraw`, and at `startup` also `pending`), after forgetting the
    /// expired ones, whose Secrets the cluster's tokencleaner removes.
    pub fn sweep_plan(
        &self,
        now: DateTime<Utc>,
        startup: bool,
    ) -> Result<Vec<String>, MintedError> {
        let mut delete = Vec::new();
        for (id, e) in self.entries()? {
            match e.state {
                State::Withdraw => delete.push(id),
                State::Pending if startup => delete.push(id),
                _ if e.expires <= now => self.forget(&id)?,
                _ => {}
            }
        }
        Ok(delete)
    }

    /// Tokens that exist in the cluster as far as serve knows: unexpired, or
    /// still to be deleted.
    pub fn live(&self, now: DateTime<Utc>) -> Result<usize, MintedError> {
        Ok(self
            .entries()?
            .iter()
            .filter(|(_, e)| e.state == State::Withdraw || e.expires > now)
            .count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    #[test]
    fn a_served_token_lives_until_it_expires_and_a_withdrawn_one_is_swept() {
        let (_d, store) = store();
        let ledger = Ledger::new(&store);
        let now = Utc::now();
        let hour = chrono::Duration::hours(1);
        ledger.pending("aaaaaa", now + hour).unwrap();
        ledger.pending("bbbbbb", now + hour).unwrap();
        ledger.pending("cccccc", now - hour).unwrap();
        ledger
            .mark(&["aaaaaa".into(), "cccccc".into()], State::Served)
            .unwrap();
        ledger.mark(&["bbbbbb".into()], State::Withdraw).unwrap();
        assert_eq!(
            ledger.live(now).unwrap(),
            2,
            "aaaaaa served, bbbbbb not yet deleted"
        );
        assert_eq!(ledger.sweep_plan(now, false).unwrap(), ["bbbbbb"]);
        // The expired served token is forgotten; the cluster cleans it up.
        let ids: Vec<String> = ledger
            .entries()
            .unwrap()
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        assert_eq!(ids, ["aaaaaa", "bbbbbb"]);
        ledger.forget("bbbbbb").unwrap();
        assert_eq!(ledger.live(now).unwrap(), 1);
        assert!(ledger.sweep_plan(now, false).unwrap().is_empty());
    }

    #[test]
    fn a_pending_token_is_withdrawn_only_when_serve_starts_again() {
        let (dir, store) = store();
        let now = Utc::now();
        Ledger::new(&store)
            .pending("dddddd", now + chrono::Duration::hours(1))
            .unwrap();
        // While its request runs, the sweeper leaves it alone.
        assert!(Ledger::new(&store)
            .sweep_plan(now, false)
            .unwrap()
            .is_empty());
        drop(store);
        // serve died mid-request: the record survived, and the token goes.
        let (store, _) = Store::open(dir.path()).unwrap();
        assert_eq!(
            Ledger::new(&store).sweep_plan(now, true).unwrap(),
            ["dddddd"]
        );
    }

    #[test]
    fn marking_an_unrecorded_token_records_nothing() {
        let (_d, store) = store();
        let ledger = Ledger::new(&store);
        ledger.mark(&["eeeeee".into()], State::Served).unwrap();
        assert!(ledger.entries().unwrap().is_empty());
    }
}
