//! Bearer tokens with scopes, kept hashed.
//!
//! The tokens file (`DATA/tokens`, or `serve --token-file`) holds one grant per
//! line: `SCOPE sha256:HEX [once] [used=RFC3339] [# note]`. Only the SHA-256 of
//! a token is stored; the token itself is shown once, when it is made
//! (`kubeboot serve token add`).
//!
//! | scope                     | may                                         |
//! |---------------------------|---------------------------------------------|
//! | `report`                  | `POST /v1/nodes/{name}/events`              |
//! | `documents:worker`        | `GET /v1/documents/worker`                  |
//! | `documents:control-plane` | `GET /v1/documents/control-plane`           |
//! | `documents:init`          | `GET /v1/documents/init`, always `once`     |
//! | `admin`                   | everything above except the init document   |
//!
//! A report token, the one every node carries, reads no document. The init
//! document (it holds the cluster's CA keys) is served only to a
//! `documents:init` token, and only once: the use is written back to the file
//! before the document leaves, so a restart of serve never serves it twice.
//! `once` tokens of other scopes are for kernel command lines (PXE), where any
//! user of the node can read them: spent after the first fetch.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use kubeboot_core::document::Role;
use kubeboot_core::host::write_file_atomic;

const NOT_A_SCOPE: &str = "not a scope: use report, documents:worker, documents:control-plane, \
                           documents:init or admin";

/// Why the tokens file, or an argument naming a grant, was refused. No variant
/// holds a token or a line of the file: a token pasted in clear would
/// otherwise travel into the message (and into Debug output).
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// A scope argument that names none.
    #[error("{NOT_A_SCOPE}")]
    NotAScope,
    /// A line whose first word is not a scope.
    #[error("line {line}: the first word is {NOT_A_SCOPE}")]
    Scope { line: usize },
    /// A line whose second word is not `sha256:` and 64 hex digits.
    #[error(
        "line {line}: the second word must be sha256:<64 hex digits>, the hash of the token \
         (tokens are never stored in clear; make one with `kubeboot serve token add`)"
    )]
    Hash { line: usize },
    /// A word after the hash other than `once` or `used=TIME`.
    #[error("line {line}: unknown word after the hash (only `once` and `used=TIME`)")]
    Word { line: usize },
    /// The file at `path` did not parse (`error` names the line).
    #[error("{}: {error}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        error: Box<TokenFileError>,
    },
    /// Reading, writing or looking at `path` (the file or its directory) failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file's modification time could not be read.
    #[error("{source}")]
    Modified {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A revoke prefix too short, or not hex.
    #[error("give at least 6 hex digits of the token's id (`kubeboot serve token list`)")]
    ShortId,
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Report,
    Documents(Role),
    Admin,
}

impl Scope {
    pub fn parse(s: &str) -> Result<Scope, TokenFileError> {
        match s {
            "report" => Ok(Scope::Report),
            "admin" => Ok(Scope::Admin),
            _ => match s.strip_prefix("documents:").map(|r| r.parse::<Role>()) {
                Some(Ok(role)) => Ok(Scope::Documents(role)),
                _ => Err(TokenFileError::NotAScope),
            },
        }
    }

    /// Whether a grant of this scope allows `wanted`.
    fn allows(self, wanted: Scope) -> bool {
        self == wanted || (self == Scope::Admin && !wanted.is_init())
    }

    /// The init document's scope: never for admin, and always once-only.
    fn is_init(self) -> bool {
        self == Scope::Documents(Role::Init)
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Report => f.write_str("report"),
            Scope::Admin => f.write_str("admin"),
            Scope::Documents(role) => write!(f, "documents:{role}"),
        }
    }
}

/// One line of the tokens file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub scope: Scope,
    /// SHA-256 of the token.
    pub hash: [u8; 32],
    /// Spent by its first successful use.
    pub once: bool,
    /// When a `once` grant was used (RFC 3339).
    pub used: Option<String>,
    pub note: String,
}

impl Grant {
    /// The first 12 hex digits of the hash: how an operator names a grant.
    pub fn id(&self) -> String {
        hex::encode(&self.hash[..6])
    }

    fn line(&self) -> String {
        let mut line = format!("{} sha256:{}", self.scope, hex::encode(self.hash));
        if self.once {
            line.push_str(" once");
        }
        if let Some(u) = &self.used {
            line.push_str(&format!(" used={u}"));
        }
        if !self.note.is_empty() {
            line.push_str(&format!(" # {}", self.note));
        }
        line
    }
}

/// SHA-256 of a token.
pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.trim().as_bytes()).into()
}

/// A new random token (48 hex digits).
pub fn random_token() -> String {
    use rand::Rng;
    let bytes: [u8; 24] = rand::rng().random();
    hex::encode(bytes)
}

/// Parse the tokens file. Errors name the line and never quote it (a token
/// pasted in clear would otherwise travel into the error).
pub fn parse(text: &str) -> Result<Vec<Grant>, TokenFileError> {
    let mut grants = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let (body, note) = match raw.split_once('#') {
            Some((b, c)) => (b, c.trim()),
            None => (raw, ""),
        };
        let mut words = body.split_whitespace();
        let Some(scope) = words.next() else {
            continue;
        };
        let scope = Scope::parse(scope).map_err(|_| TokenFileError::Scope { line: n })?;
        let hash = words
            .next()
            .and_then(|h| h.strip_prefix("sha256:"))
            .and_then(|h| hex::decode(h).ok())
            .and_then(|h| <[u8; 32]>::try_from(h).ok())
            .ok_or(TokenFileError::Hash { line: n })?;
        let mut grant = Grant {
            scope,
            hash,
            once: scope.is_init(),
            used: None,
            note: note.to_string(),
        };
        for w in words {
            match w.split_once('=') {
                None if w == "once" => grant.once = true,
                Some(("used", at)) if !at.is_empty() => grant.used = Some(at.to_string()),
                _ => return Err(TokenFileError::Word { line: n }),
            }
        }
        grants.push(grant);
    }
    Ok(grants)
}

fn render(grants: &[Grant]) -> String {
    let mut text = String::from(
        "# kubeboot serve tokens: SCOPE sha256:HASH [once] [used=TIME] [# note]\n\
         # Manage with `kubeboot serve token add|list|revoke`.\n",
    );
    for g in grants {
        text.push_str(&g.line());
        text.push('\n');
    }
    text
}

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Denied {
    /// No token, or one the file does not hold: 401.
    Unknown,
    /// A known token without the scope: 403.
    Scope { needed: Scope },
    /// A `once` token already used: 410.
    Spent { at: String },
    /// The tokens file cannot be read, or a `once` use cannot be recorded: 500
    /// (nothing is served that is not on record).
    Unreadable,
}

/// The tokens file. Every check looks at the file's metadata and reads it
/// again only when it changed, so `token add` and `revoke` take effect without
/// a restart and a request does not re-parse an unchanged file; `once` uses
/// are written back under the lock.
pub struct TokenFile {
    path: PathBuf,
    cache: Mutex<Cache>,
}

/// The grants as last read, and the metadata of the file they were read from.
#[derive(Default)]
struct Cache {
    /// None until first read; Some(None) for a file that did not exist.
    stamp: Option<Option<Stamp>>,
    grants: Vec<Grant>,
}

/// What changes when the file is rewritten: `write_file_atomic` renames a new
/// file into place (a new inode), an edit in place changes the time or size.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: std::time::SystemTime,
    len: u64,
    inode: u64,
}

impl TokenFile {
    pub fn new(path: impl Into<PathBuf>) -> TokenFile {
        TokenFile {
            path: path.into(),
            cache: Mutex::new(Cache::default()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The grants; a missing file holds none.
    pub fn load(&self) -> Result<Vec<Grant>, TokenFileError> {
        let mut cache = self.cache.lock().expect("token lock");
        Ok(self.current(&mut cache)?.clone())
    }

    /// The cached grants, read again first if the file changed.
    fn current<'a>(&self, cache: &'a mut Cache) -> Result<&'a mut Vec<Grant>, TokenFileError> {
        let stamp = self.stamp()?;
        if cache.stamp != Some(stamp) {
            cache.grants = match std::fs::read_to_string(&self.path) {
                Ok(text) => parse(&text).map_err(|e| TokenFileError::Parse {
                    path: self.path.clone(),
                    error: Box::new(e),
                })?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(self.io(e)),
            };
            cache.stamp = Some(stamp);
        }
        Ok(&mut cache.grants)
    }

    fn io(&self, source: std::io::Error) -> TokenFileError {
        TokenFileError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn stamp(&self) -> Result<Option<Stamp>, TokenFileError> {
        use std::os::unix::fs::MetadataExt;
        match std::fs::metadata(&self.path) {
            Ok(m) => Ok(Some(Stamp {
                modified: m.modified().map_err(|source| TokenFileError::Modified {
                    path: self.path.clone(),
                    source,
                })?,
                len: m.len(),
                inode: m.ino(),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(e)),
        }
    }

    /// Write `cache.grants` (creating the directory if need be) and remember
    /// the new file's metadata.
    fn save(&self, cache: &mut Cache) -> Result<(), TokenFileError> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| TokenFileError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        write_file_atomic(&self.path, render(&cache.grants).as_bytes(), 0o600)
            .map_err(|e| self.io(e))?;
        cache.stamp = Some(self.stamp()?);
        Ok(())
    }

    /// Make a token, store its hash, return the token (shown once).
    pub fn add(
        &self,
        scope: Scope,
        once: bool,
        note: &str,
    ) -> Result<(String, Grant), TokenFileError> {
        let mut cache = self.cache.lock().expect("token lock");
        let token = random_token();
        let grant = Grant {
            scope,
            hash: hash(&token),
            once: once || scope.is_init(),
            used: None,
            note: note.replace(['\n', '#'], " "),
        };
        self.current(&mut cache)?.push(grant.clone());
        self.save(&mut cache)?;
        Ok((token, grant))
    }

    /// Remove the grants whose id starts with `id_prefix` (at least 6 hex
    /// digits); how many went.
    pub fn revoke(&self, id_prefix: &str) -> Result<usize, TokenFileError> {
        if id_prefix.len() < 6 || !id_prefix.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(TokenFileError::ShortId);
        }
        let mut cache = self.cache.lock().expect("token lock");
        let grants = self.current(&mut cache)?;
        let before = grants.len();
        grants.retain(|g| !g.id().starts_with(&id_prefix.to_ascii_lowercase()));
        let gone = before - grants.len();
        if gone > 0 {
            self.save(&mut cache)?;
        }
        Ok(gone)
    }

    /// May `presented` do `wanted`? A `once` grant is marked used here,
    /// durably, before this returns Ok. (For a request that may yet be refused,
    /// [`TokenFile::check`] first and [`TokenFile::spend`] on success.)
    pub fn authorize(&self, presented: Option<&str>, wanted: Scope) -> Result<(), Denied> {
        let pass = self.check(presented, wanted)?;
        self.spend(&pass)
    }

    /// May `presented` do `wanted`? Spends nothing: a `once` grant stays usable
    /// until [`TokenFile::spend`] marks it, after the answer is known to be a
    /// success.
    pub fn check(&self, presented: Option<&str>, wanted: Scope) -> Result<Pass, Denied> {
        let Some(presented) = presented else {
            return Err(Denied::Unknown);
        };
        let digest = hash(presented);
        let mut cache = self.cache.lock().expect("token lock");
        let grants = self.current(&mut cache).map_err(|e| {
            tracing::error!("tokens file unreadable, refusing every request: {e}");
            Denied::Unreadable
        })?;
        let mut known = false;
        let mut spent = None;
        for g in grants.iter() {
            if !bool::from(g.hash.ct_eq(&digest)) {
                continue;
            }
            known = true;
            if !g.scope.allows(wanted) {
                continue;
            }
            match &g.used {
                Some(at) if g.once => spent = Some(at.clone()),
                _ => {
                    return Ok(Pass {
                        scope: g.scope,
                        once: g.once.then_some(g.hash),
                    })
                }
            }
        }
        Err(match (known, spent) {
            (_, Some(at)) => Denied::Spent { at },
            (true, None) => Denied::Scope { needed: wanted },
            (false, None) => Denied::Unknown,
        })
    }

    /// Mark a `once` pass used, durably, before the answer leaves. A pass spent
    /// meanwhile by another request is `Spent`: that request got the answer.
    pub fn spend(&self, pass: &Pass) -> Result<(), Denied> {
        let Some(digest) = pass.once else {
            return Ok(());
        };
        let mut cache = self.cache.lock().expect("token lock");
        let grants = self.current(&mut cache).map_err(|e| {
            tracing::error!("tokens file unreadable, refusing every request: {e}");
            Denied::Unreadable
        })?;
        let Some(i) = grants
            .iter()
            .position(|g| g.once && bool::from(g.hash.ct_eq(&digest)))
        else {
            // Revoked between the check and now.
            return Err(Denied::Unknown);
        };
        if let Some(at) = &grants[i].used {
            return Err(Denied::Spent { at: at.clone() });
        }
        grants[i].used =
            Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        if let Err(e) = self.save(&mut cache) {
            // Not recorded, so not spent: read the file again next time.
            cache.stamp = None;
            tracing::error!("could not record the use of a once token, refusing: {e}");
            return Err(Denied::Unreadable);
        }
        Ok(())
    }
}

/// A request's token passed [`TokenFile::check`]: the grant's scope, and the
/// grant to mark used if it is a `once` one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pass {
    pub scope: Scope,
    once: Option<[u8; 32]>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> (tempfile::TempDir, TokenFile) {
        let dir = tempfile::tempdir().unwrap();
        let f = TokenFile::new(dir.path().join("tokens"));
        (dir, f)
    }

    #[test]
    fn scopes_allow_only_their_routes() {
        let (_d, f) = file();
        let (report, _) = f.add(Scope::Report, false, "nodes").unwrap();
        let (worker, _) = f.add(Scope::Documents(Role::Worker), false, "").unwrap();
        let (admin, _) = f.add(Scope::Admin, false, "").unwrap();
        let docs = Scope::Documents(Role::Worker);
        assert_eq!(f.authorize(Some(&report), Scope::Report), Ok(()));
        assert_eq!(
            f.authorize(Some(&report), docs),
            Err(Denied::Scope { needed: docs })
        );
        assert_eq!(f.authorize(Some(&worker), docs), Ok(()));
        assert!(f
            .authorize(Some(&worker), Scope::Documents(Role::ControlPlane))
            .is_err());
        assert!(f.authorize(Some(&worker), Scope::Report).is_err());
        assert_eq!(f.authorize(Some(&admin), docs), Ok(()));
        assert_eq!(f.authorize(Some(&admin), Scope::Report), Ok(()));
        let init = Scope::Documents(Role::Init);
        assert_eq!(
            f.authorize(Some(&admin), init),
            Err(Denied::Scope { needed: init })
        );
        assert_eq!(
            f.authorize(Some("not-a-token-at-all"), Scope::Report),
            Err(Denied::Unknown)
        );
        assert_eq!(f.authorize(None, Scope::Report), Err(Denied::Unknown));
        // A token added by another process (`serve token add`) is seen at once.
        let (later, _) = TokenFile::new(f.path())
            .add(Scope::Report, false, "")
            .unwrap();
        assert_eq!(f.authorize(Some(&later), Scope::Report), Ok(()));
    }

    #[test]
    fn the_file_holds_hashes_only_and_once_is_durable() {
        let (_d, f) = file();
        let (init, g) = f
            .add(Scope::Documents(Role::Init), false, "first cp")
            .unwrap();
        assert!(g.once, "init tokens are always once");
        let text = std::fs::read_to_string(f.path()).unwrap();
        assert!(!text.contains(&init), "the token itself is never stored");
        assert!(text.contains(&hex::encode(hash(&init))));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(f.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let want = Scope::Documents(Role::Init);
        assert_eq!(f.authorize(Some(&init), want), Ok(()));
        // Another TokenFile on the same path: what a restarted serve sees.
        let again = TokenFile::new(f.path());
        assert!(matches!(
            again.authorize(Some(&init), want),
            Err(Denied::Spent { .. })
        ));
    }

    #[test]
    fn a_checked_once_token_stays_usable_until_spent_and_is_spent_once() {
        let (_d, f) = file();
        let want = Scope::Documents(Role::ControlPlane);
        let (t, _) = f.add(want, true, "pxe").unwrap();
        // Checked three times (answers that were refused): still usable.
        for _ in 0..3 {
            assert_eq!(f.check(Some(&t), want).unwrap().scope, want);
        }
        let a = f.check(Some(&t), want).unwrap();
        let b = f.check(Some(&t), want).unwrap();
        assert_eq!(f.spend(&a), Ok(()));
        assert!(
            matches!(f.spend(&b), Err(Denied::Spent { .. })),
            "two requests in flight: only the first success spends it"
        );
        assert!(matches!(f.check(Some(&t), want), Err(Denied::Spent { .. })));
        // A token that is not once is never marked.
        let (r, _) = f.add(Scope::Report, false, "").unwrap();
        let p = f.check(Some(&r), Scope::Report).unwrap();
        assert_eq!(f.spend(&p), Ok(()));
        assert_eq!(f.spend(&p), Ok(()));
    }

    #[test]
    fn revoke_and_parse_errors() {
        let (_d, f) = file();
        let (t, g) = f.add(Scope::Report, false, "").unwrap();
        assert!(f.revoke("ab").is_err());
        assert_eq!(f.revoke(&g.id()).unwrap(), 1);
        assert_eq!(f.authorize(Some(&t), Scope::Report), Err(Denied::Unknown));
        let secret = "0123456789abcdef0123456789abcdef";
        let err = parse(&format!("# c\n\nreport {secret}\n")).unwrap_err();
        assert!(matches!(err, TokenFileError::Hash { line: 3 }), "{err:?}");
        assert!(!format!("{err:?}").contains(secret));
        let err = err.to_string();
        assert!(
            err.starts_with("line 3: the second word must be sha256:"),
            "{err}"
        );
        assert!(!err.contains(secret));
        assert!(parse(&format!("{secret}\n"))
            .unwrap_err()
            .to_string()
            .contains("line 1: the first word is not a scope"));
        let ok = parse(&format!(
            "documents:worker sha256:{} once # pxe rack 4\n",
            "ab".repeat(32)
        ))
        .unwrap();
        assert_eq!(ok[0].scope, Scope::Documents(Role::Worker));
        assert!(ok[0].once && ok[0].note == "pxe rack 4");
    }

    mod fuzz {
        use super::*;
        use kubeboot_core::fuzz::{apply, config, edits};
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(config())]

            /// A mutated tokens file is parsed or refused naming its line, never
            /// a panic, and an error never quotes the file (a token pasted in
            /// clear would travel into it).
            #[test]
            fn mutated_tokens_files_are_refused_by_line_without_quoting(e in edits()) {
                let seed = format!(
                    "# kubeboot serve tokens\nreport sha256:{} # nodes\ndocuments:init sha256:{} once used=2026-01-01T00:00:00Z\nadmin sha256:{}\n",
                    "ab".repeat(32), "cd".repeat(32), "ef".repeat(32)
                );
                let text = String::from_utf8_lossy(&apply(seed.as_bytes(), &e)).into_owned();
                match parse(&text) {
                    Ok(grants) => prop_assert!(grants.len() <= text.lines().count()),
                    Err(why) => {
                        let why = why.to_string();
                        prop_assert!(why.starts_with("line "), "{}", why);
                        prop_assert!(!why.contains("abab") && !why.contains("cdcd"), "{}", why);
                    }
                }
            }
        }
    }
}
