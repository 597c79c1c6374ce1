//! Node groups (docs/design.md §7): autoscaling groups and PXE fleets whose machines
//! all boot with the same user-data, maybe days after it was written.
//!
//! `kubeboot serve group add NAME --role worker|control-plane --url https://SERVE:PORT`
//! records the group in `DATA/groups.toml` (0600) and prints, once, the user-data
//! for the launch template: a pointer document (`[source] url =
//! "…/v1/groups/NAME/document"`, serve's CA pin and the group's enrollment
//! credential). A machine that presents the credential, and names itself with
//! `Kubeboot-Node` and `Kubeboot-Machine-Id` as the agent does, gets a document of
//! its own: the role's document with credentials minted for it (the `documents`
//! module; serve runs with `--fresh-credentials`), the group's node labels, and a
//! `[report]` table so it reports to this serve. A control-plane group into a
//! cluster that does not answer yet takes part in the init election.
//!
//! Limits per group: `max_nodes` distinct machines (a machine asking again is not
//! counted twice; the machines are recorded in `DATA/enrolled/NAME.json`, so a
//! restart keeps the count, and `group list` reads it while serve runs) and
//! `per_minute` documents. Revoking a group refuses its credential
//! from the next request; machines that already joined are not affected.
//!
//! The file keeps the SHA-256 of the enrollment credential, never the credential.
//! It keeps the group's report token in clear, because serve writes it into every
//! document of the group; a report token posts status events and reads nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::documents::Budget;
use super::election::Candidate;
use super::tokens::{self, Scope, TokenFile, TokenFileError};
use kubeboot_core::document::formats::is_dns_name;
use kubeboot_core::document::writer::{WriteError, Writer};
use kubeboot_core::document::Role;
use kubeboot_core::host::write_file_atomic;
use kubeboot_kube::replace::worker::GROUP_LABEL;

pub const FILE: &str = "groups.toml";

/// Why the groups file, or a group's record of enrolled machines, could not be
/// read or written, or a role's document could not be made a group machine's.
/// No variant quotes the file or the document: they hold secrets.
#[derive(Debug, thiserror::Error)]
pub enum GroupFileError {
    /// Reading, writing or making the directory of `path` failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The text is not a groups file; `line` where TOML said, if it did.
    #[error(
        "not a groups file{} (written by `kubeboot serve group add`; fix or remove that line)",
        line.map(|l| format!(" at line {l}")).unwrap_or_default()
    )]
    Syntax { line: Option<usize> },
    /// The groups file at `path` did not parse.
    #[error("{}: {error}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        error: Box<GroupFileError>,
    },
    /// The groups could not be written as TOML.
    #[error("{0}")]
    Render(#[source] toml::ser::Error),
    /// A group's `enrolled/NAME.json` at `path` is not what serve writes.
    #[error("{}: {source}", path.display())]
    Enrolled {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// The enrolled machines could not be written as JSON.
    #[error("{0}")]
    RenderEnrolled(#[source] serde_json::Error),
    /// `revoke` of a group the file does not hold.
    #[error("no group {name} in {} (kubeboot serve group list)", path.display())]
    NoGroup { name: String, path: PathBuf },
    /// The role's document could not be made a group machine's.
    #[error("the bundle's document: {0}")]
    Document(#[from] WriteError),
    /// The tokens file, for the group's report token.
    #[error(transparent)]
    Tokens(#[from] TokenFileError),
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> GroupFileError + '_ {
    move |source| GroupFileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One group, as `groups.toml` keeps it.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub role: Role,
    /// serve as the group's machines reach it, `https://HOST:PORT`.
    pub url: String,
    /// The pin of serve's CA, `sha256:HEX`.
    pub ca_cert_hash: String,
    /// `sha256:HEX` of the enrollment credential.
    pub credential: String,
    /// The report token written into the group's documents.
    pub report_token: String,
    /// The id of that report token in the tokens file (`serve token list`).
    pub report_token_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_nodes: Option<u32>,
    pub per_minute: u32,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("role", &self.role)
            .field("url", &self.url)
            .field("report_token_id", &self.report_token_id)
            .field("max_nodes", &self.max_nodes)
            .field("per_minute", &self.per_minute)
            .field("labels", &self.labels)
            .field("revoked", &self.revoked)
            .finish_non_exhaustive()
    }
}

/// What `group add` is asked for.
#[derive(Debug, Clone)]
pub struct NewGroup {
    pub name: String,
    pub role: Role,
    pub url: String,
    pub ca_cert_hash: String,
    pub max_nodes: Option<u32>,
    pub per_minute: u32,
    pub labels: BTreeMap<String, String>,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileContent {
    #[serde(default)]
    groups: BTreeMap<String, Group>,
}

/// `DATA/groups.toml`.
pub struct GroupFile {
    path: PathBuf,
    lock: Mutex<()>,
}

impl GroupFile {
    pub fn new(path: impl Into<PathBuf>) -> GroupFile {
        GroupFile {
            path: path.into(),
            lock: Mutex::new(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every group; a missing file holds none. Errors name the line, never its text
    /// (it may hold a report token).
    pub fn load(&self) -> Result<BTreeMap<String, Group>, GroupFileError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(io_at(&self.path)(e)),
        };
        parse(&text).map_err(|e| GroupFileError::Parse {
            path: self.path.clone(),
            error: Box::new(e),
        })
    }

    fn save(&self, groups: BTreeMap<String, Group>) -> Result<(), GroupFileError> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io_at(dir))?;
        }
        let text = format!(
            "# kubeboot serve's node groups (`kubeboot serve group`). SECRET: report tokens.\n{}",
            toml::to_string(&FileContent { groups }).map_err(GroupFileError::Render)?
        );
        write_file_atomic(&self.path, text.as_bytes(), 0o600).map_err(io_at(&self.path))
    }

    /// Record a new group with a report token from `tokens`; returns the enrollment
    /// credential (shown once) and the group.
    pub fn add(
        &self,
        req: &NewGroup,
        tokens: &TokenFile,
    ) -> Result<(String, Group), AddGroupError> {
        check_new(req).map_err(AddGroupError::Invalid)?;
        let _guard = self.lock.lock().expect("groups lock");
        let mut groups = self.load().map_err(AddGroupError::Files)?;
        if let Some(g) = groups.get(&req.name) {
            return Err(AddGroupError::Invalid(match &g.revoked {
                Some(at) => format!(
                    "group {} exists (revoked at {at}); choose another name",
                    req.name
                ),
                None => format!(
                    "group {} exists; revoke it first (kubeboot serve group revoke {}) or choose another name",
                    req.name, req.name
                ),
            }));
        }
        let credential = tokens::random_token();
        let (report_token, grant) = tokens
            .add(Scope::Report, false, &format!("group {}", req.name))
            .map_err(|e| AddGroupError::Files(e.into()))?;
        let group = Group {
            role: req.role,
            url: req.url.trim_end_matches('/').to_string(),
            ca_cert_hash: req.ca_cert_hash.clone(),
            credential: format!("sha256:{}", hex::encode(tokens::hash(&credential))),
            report_token,
            report_token_id: grant.id(),
            max_nodes: req.max_nodes,
            per_minute: req.per_minute,
            labels: req.labels.clone(),
            created: now(),
            revoked: None,
        };
        groups.insert(req.name.clone(), group.clone());
        self.save(groups).map_err(AddGroupError::Files)?;
        Ok((credential, group))
    }

    /// Refuse the group's credential from now on.
    pub fn revoke(&self, name: &str) -> Result<Group, GroupFileError> {
        let _guard = self.lock.lock().expect("groups lock");
        let mut groups = self.load()?;
        let group = groups
            .get_mut(name)
            .ok_or_else(|| GroupFileError::NoGroup {
                name: name.to_string(),
                path: self.path.clone(),
            })?;
        if group.revoked.is_none() {
            group.revoked = Some(now());
        }
        let group = group.clone();
        self.save(groups)?;
        Ok(group)
    }

    /// The group `name`, if `presented` is its enrollment credential.
    pub fn authorize(&self, name: &str, presented: Option<&str>) -> Result<Group, Refused> {
        let presented = presented.ok_or(Refused::Unauthorized)?;
        let groups = self.load().map_err(|e| {
            tracing::error!("groups file unreadable, refusing group documents: {e}");
            Refused::Unavailable(e.to_string())
        })?;
        let group = groups.get(name).ok_or(Refused::Unauthorized)?;
        let want = format!("sha256:{}", hex::encode(tokens::hash(presented)));
        if !bool::from(want.as_bytes().ct_eq(group.credential.as_bytes())) {
            return Err(Refused::Unauthorized);
        }
        if let Some(at) = &group.revoked {
            return Err(Refused::Revoked(format!(
                "group {name} was revoked at {at}: its machines get no documents"
            )));
        }
        Ok(group.clone())
    }
}

/// The groups in a groups file's text. Errors name the line, never its text.
fn parse(text: &str) -> Result<BTreeMap<String, Group>, GroupFileError> {
    let content: FileContent = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        GroupFileError::Syntax { line }
    })?;
    Ok(content.groups)
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Why `GroupFile::add` made no group. The command line exits 2 for the first
/// (bad input) and 1 for the second.
#[derive(Debug, thiserror::Error)]
pub enum AddGroupError {
    /// The request is wrong: name, role, URL, CA pin, limit or label, or the name is taken.
    #[error("{0}")]
    Invalid(String),
    /// The groups or tokens file could not be read or written.
    #[error("{0}")]
    Files(#[source] GroupFileError),
}

fn check_new(req: &NewGroup) -> Result<(), String> {
    let name_ok = is_dns_name(&req.name) && !req.name.contains('.') && req.name.len() <= 63;
    if !name_ok {
        return Err(format!(
            "group name {:?}: use lowercase letters, digits and '-' (at most 63)",
            req.name.chars().take(80).collect::<String>()
        ));
    }
    if req.role == Role::Init {
        return Err(
            "--role init: a group is worker or control-plane; a control-plane group elects its init node itself"
                .into(),
        );
    }
    let host = req
        .url
        .strip_prefix("https://")
        .unwrap_or("")
        .trim_end_matches('/');
    if host.is_empty() || host.contains(['/', '?', '#', '@']) || host.contains(char::is_whitespace)
    {
        return Err(format!(
            "--url {:?}: give serve's address as the machines reach it, https://HOST:PORT",
            req.url
        ));
    }
    kubeboot_core::document::formats::check_ca_hash(&req.ca_cert_hash)
        .map_err(|why| format!("--ca-cert-hash: {why}"))?;
    if req.per_minute == 0 {
        return Err("--per-minute: at least 1".into());
    }
    for (key, value) in &req.labels {
        if let Some((problem, fix)) = kubeboot_core::document::label_problems(key, value)
            .into_iter()
            .next()
        {
            return Err(format!("--label {key}={value}: {problem}; {fix}"));
        }
    }
    Ok(())
}

/// The pointer document for a group's user-data.
pub fn pointer_document(name: &str, group: &Group, credential: &str) -> String {
    let mut w = Writer::pointer(format!(
        "kubeboot pointer document for node group {name} ({}): every machine of the group \
         boots with it. SECRET: the group's enrollment credential.",
        group.role,
    ));
    let source = w
        .table_mut(&["source"])
        .expect("a new document has no [source]");
    source.insert(
        "url".into(),
        format!("{}/v1/groups/{name}/document", group.url).into(),
    );
    source.insert("ca_cert_hash".into(), group.ca_cert_hash.clone().into());
    source.insert("token".into(), credential.into());
    w.render()
}

/// Why a group request was refused.
#[derive(Debug)]
pub enum Refused {
    /// 401: no credential, an unknown group or a wrong credential (which, is not said).
    Unauthorized,
    /// 403: the group was revoked.
    Revoked(String),
    /// 403: the group has its `max_nodes` machines.
    Full(String),
    /// 429: the group's `per_minute` is spent; retry after the seconds.
    TooMany(String, u64),
    /// 500: the groups file or the store cannot be read or written.
    Unavailable(String),
}

/// Enrolled machines of a group (`DATA/enrolled/NAME.json`).
#[derive(Default, Serialize, Deserialize)]
struct Enrolled {
    /// machine id → the node name it gave.
    machines: BTreeMap<String, String>,
}

fn enrolled_path(data: &Path, name: &str) -> PathBuf {
    data.join("enrolled").join(format!("{name}.json"))
}

fn read_enrolled(data: &Path, name: &str) -> Result<Enrolled, GroupFileError> {
    let path = enrolled_path(data, name);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| GroupFileError::Enrolled {
            path: path.clone(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Enrolled::default()),
        Err(e) => Err(io_at(&path)(e)),
    }
}

/// How many machines group `name` has enrolled (serve's data directory `data`).
pub fn enrolled_count(data: &Path, name: &str) -> Result<usize, GroupFileError> {
    Ok(read_enrolled(data, name)?.machines.len())
}

/// The groups file with what serve keeps while it runs: each group's minute
/// budget and the machines whose documents are being made.
pub struct Groups {
    pub file: GroupFile,
    /// serve's data directory (`enrolled/`).
    data: PathBuf,
    running: Mutex<BTreeMap<String, Running>>,
}

struct Running {
    budget: Budget,
    pending: BTreeSet<String>,
}

/// A machine admitted to a group: [`Admission::settle`] counts it in; dropped
/// unsettled (a request cancelled mid-way), it gives its place back.
pub struct Admission<'a> {
    pub group: Group,
    pub name: String,
    pub candidate: Candidate,
    groups: Option<&'a Groups>,
}

impl Admission<'_> {
    /// Count the machine in (`served`) or give its place back.
    pub fn settle(mut self, served: bool) -> Result<(), GroupFileError> {
        match self.groups.take() {
            Some(groups) => groups.settle(&self.name, &self.candidate, served),
            None => Ok(()),
        }
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        if let Some(groups) = self.groups.take() {
            let _ = groups.settle(&self.name, &self.candidate, false);
        }
    }
}

impl Groups {
    pub fn new(file: GroupFile, data: PathBuf) -> Groups {
        Groups {
            file,
            data,
            running: Mutex::new(BTreeMap::new()),
        }
    }

    /// Check the credential, the group's minute budget and its machine count, and
    /// hold a place for this machine until [`Groups::settle`].
    pub fn admit(
        &self,
        name: &str,
        presented: Option<&str>,
        candidate: &Candidate,
    ) -> Result<Admission<'_>, Refused> {
        let group = self.file.authorize(name, presented)?;
        // Under the lock settle() writes under: the count never misses a machine.
        let mut running = self.running.lock().expect("groups lock");
        let enrolled =
            read_enrolled(&self.data, name).map_err(|e| Refused::Unavailable(e.to_string()))?;
        let r = running.entry(name.to_string()).or_insert_with(|| Running {
            budget: Budget::new(group.per_minute),
            pending: BTreeSet::new(),
        });
        r.budget.per_minute = group.per_minute;
        let known = enrolled.machines.contains_key(&candidate.machine_id)
            || r.pending.contains(&candidate.machine_id);
        if let (Some(max), false) = (group.max_nodes, known) {
            let count = enrolled.machines.len() + r.pending.len();
            if count >= max as usize {
                return Err(Refused::Full(format!(
                    "group {name} has its {max} machines (max_nodes); a new machine gets no document. \
                     Replace machines under their old names' machine ids, or make another group"
                )));
            }
        }
        if let Err(seconds) = r.budget.take(name, Utc::now()) {
            return Err(Refused::TooMany(
                format!(
                    "group {name}: more than {} documents this minute (per_minute); retry in {seconds} s",
                    group.per_minute
                ),
                seconds,
            ));
        }
        r.pending.insert(candidate.machine_id.clone());
        Ok(Admission {
            group,
            name: name.to_string(),
            candidate: candidate.clone(),
            groups: Some(self),
        })
    }

    fn settle(
        &self,
        name: &str,
        candidate: &Candidate,
        served: bool,
    ) -> Result<(), GroupFileError> {
        let mut running = self.running.lock().expect("groups lock");
        if let Some(r) = running.get_mut(name) {
            r.pending.remove(&candidate.machine_id);
        }
        if !served {
            return Ok(());
        }
        let mut enrolled = read_enrolled(&self.data, name)?;
        enrolled
            .machines
            .insert(candidate.machine_id.clone(), candidate.node.clone());
        let path = enrolled_path(&self.data, name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_at(dir))?;
        }
        let bytes = serde_json::to_vec_pretty(&enrolled).map_err(GroupFileError::RenderEnrolled)?;
        write_file_atomic(&path, &bytes, 0o600).map_err(io_at(&path))
    }
}

/// The role's document made this machine's: the group's labels and its name
/// (label `kubeboot.io/group`) in `[node]`, and a
/// `[report]` table pointing at this serve.
pub fn personalize(a: &Admission<'_>, text: &str) -> Result<String, GroupFileError> {
    let mut w = Writer::parse(text)?;
    let g = &a.group;
    w.report(&format!("{}/v1", g.url), &g.report_token, &g.ca_cert_hash)?;
    let labels = w.table_mut(&["node", "labels"])?;
    for (k, v) in &g.labels {
        labels.insert(k.clone(), v.clone().into());
    }
    // The group's own label: a replacement through this group may remove only
    // Nodes that carry it (kubeboot_kube::replace::worker::group_mismatch).
    labels.insert(GROUP_LABEL.into(), a.name.clone().into());
    let role = w.get_str(&["role"]).unwrap_or("?").to_string();
    w.set_header(format!(
        "kubeboot node document: role {role}, for {} (machine {}) of group {}, served by kubeboot serve. SECRET.",
        a.candidate.node, a.candidate.machine_id, a.name,
    ));
    Ok(w.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(name: &str) -> NewGroup {
        NewGroup {
            name: name.into(),
            role: Role::Worker,
            url: "https://10.88.0.1:8443".into(),
            ca_cert_hash: format!("sha256:{}", "ab".repeat(32)),
            max_nodes: Some(2),
            per_minute: 10,
            labels: BTreeMap::from([("example.com/pool".into(), "blue".into())]),
        }
    }

    #[test]
    fn groups_keep_a_hash_of_the_credential_and_refuse_bad_requests() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = TokenFile::new(dir.path().join("tokens"));
        let file = GroupFile::new(dir.path().join(FILE));
        let (credential, group) = file.add(&request("blue"), &tokens).unwrap();
        let text = std::fs::read_to_string(file.path()).unwrap();
        assert!(
            !text.contains(&credential),
            "the credential is never stored"
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(file.path()).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        assert!(format!("{group:?}").find(&group.report_token).is_none());
        assert!(tokens
            .authorize(Some(&group.report_token), Scope::Report)
            .is_ok());
        assert!(file.authorize("blue", Some(&credential)).is_ok());
        for (name, presented) in [
            ("blue", Some("nope")),
            ("green", Some(&*credential)),
            ("blue", None),
        ] {
            assert!(matches!(
                file.authorize(name, presented),
                Err(Refused::Unauthorized)
            ));
        }
        assert!(matches!(
            file.add(&request("blue"), &tokens),
            Err(AddGroupError::Invalid(e)) if e.contains("exists")
        ));
        file.revoke("blue").unwrap();
        assert!(matches!(
            file.authorize("blue", Some(&credential)),
            Err(Refused::Revoked(_))
        ));
        for (mutate, says) in [
            (
                Box::new(|r: &mut NewGroup| r.name = "Blue_1".into()) as Box<dyn Fn(&mut NewGroup)>,
                "group name",
            ),
            (
                Box::new(|r: &mut NewGroup| r.role = Role::Init),
                "--role init",
            ),
            (
                Box::new(|r: &mut NewGroup| r.url = "http://x:1".into()),
                "--url",
            ),
            (
                Box::new(|r: &mut NewGroup| r.ca_cert_hash = "sha256:12".into()),
                "--ca-cert-hash",
            ),
            (
                Box::new(|r: &mut NewGroup| {
                    r.labels
                        .insert("node-role.kubernetes.io/gpu".into(), "".into());
                }),
                "--label node-role.kubernetes.io/gpu",
            ),
        ] {
            let mut r = request("other");
            mutate(&mut r);
            match file.add(&r, &tokens) {
                Err(AddGroupError::Invalid(err)) => assert!(err.contains(says), "{err}"),
                other => panic!("{says}: expected Invalid, got {:?}", other.map(|_| ())),
            }
        }
        assert!(
            !file.load().unwrap().contains_key("other"),
            "nothing half-made"
        );
    }

    #[test]
    fn a_personal_document_carries_the_groups_labels_and_report_target() {
        let admission = Admission {
            group: Group {
                role: Role::Worker,
                url: "https://serve:8443".into(),
                ca_cert_hash: "sha256:00".into(),
                credential: "sha256:11".into(),
                report_token: "r3port".into(),
                report_token_id: "id".into(),
                max_nodes: None,
                per_minute: 1,
                labels: BTreeMap::from([("example.com/pool".into(), "blue".into())]),
                created: now(),
                revoked: None,
            },
            name: "blue".into(),
            candidate: Candidate {
                node: "w7".into(),
                machine_id: "ab".repeat(16),
            },
            groups: None,
        };
        let text = personalize(
            &admission,
            "version = 1\nrole = \"worker\"\n[node.labels]\n\"example.com/rack\" = \"r1\"\n",
        )
        .unwrap();
        let doc: toml::Table = text.parse().unwrap();
        assert_eq!(doc["report"]["url"].as_str(), Some("https://serve:8443/v1"));
        assert_eq!(doc["report"]["token"].as_str(), Some("r3port"));
        assert_eq!(
            doc["node"]["labels"]["example.com/pool"].as_str(),
            Some("blue")
        );
        assert_eq!(
            doc["node"]["labels"]["example.com/rack"].as_str(),
            Some("r1")
        );
        assert_eq!(
            doc["node"]["labels"][GROUP_LABEL].as_str(),
            Some(admission.name.as_str()),
            "the group's own label: what a replacement through it may remove"
        );
        assert!(kubeboot_core::document::label_problems(GROUP_LABEL, &admission.name).is_empty());
        assert!(text.starts_with("# kubeboot node document: role worker, for w7"));
    }

    mod fuzz {
        use super::*;
        use kubeboot_core::fuzz::{apply, config, edits, quotes};
        use proptest::prelude::*;

        /// As `tokens::random_token` makes them: 24 random bytes in hex.
        const REPORT_TOKEN: &str = "3f9a1c7e5b2d8f0a4c6e1b3d5f7a9c2e4b6d8f0a1c3e5b7d";

        /// A groups file as `save` writes it: a worker group with labels and
        /// a limit, and a revoked control-plane group.
        fn seed() -> String {
            let group = |role, revoked: Option<&str>| Group {
                role,
                url: "https://10.88.0.1:8443".into(),
                ca_cert_hash: format!("sha256:{}", "ab".repeat(32)),
                credential: format!("sha256:{}", "cd".repeat(32)),
                report_token: REPORT_TOKEN.into(),
                report_token_id: "5f2a9c".into(),
                max_nodes: Some(20),
                per_minute: 10,
                labels: BTreeMap::from([("example.com/pool".into(), "blue".into())]),
                created: "2026-11-21T10:00:00Z".into(),
                revoked: revoked.map(Into::into),
            };
            let groups = BTreeMap::from([
                ("blue".to_string(), group(Role::Worker, None)),
                (
                    "cp".to_string(),
                    group(Role::ControlPlane, Some("2026-11-22T10:00:00Z")),
                ),
            ]);
            format!(
                "# kubeboot serve's node groups (`kubeboot serve group`). SECRET: report tokens.\n{}",
                toml::to_string(&FileContent { groups }).unwrap()
            )
        }

        proptest! {
            #![proptest_config(config())]

            /// A mutated groups file is parsed or refused naming a line of it,
            /// never a panic, and an error quotes no piece of the report token.
            /// What parses is written back the same (`save` after `load`).
            #[test]
            fn mutated_groups_files_are_refused_by_line_without_quoting(e in edits()) {
                let text = String::from_utf8_lossy(&apply(seed().as_bytes(), &e)).into_owned();
                match parse(&text) {
                    Ok(groups) => {
                        let written = toml::to_string(&FileContent { groups }).unwrap();
                        let again = parse(&written).unwrap();
                        prop_assert_eq!(toml::to_string(&FileContent { groups: again }).unwrap(), written);
                    }
                    Err(why) => {
                        let why = why.to_string();
                        prop_assert!(why.starts_with("not a groups file"), "{}", why);
                        if let Some(l) = why.split(" at line ").nth(1) {
                            let l: usize = l.split(' ').next().unwrap().parse().unwrap();
                            prop_assert!(l >= 1 && l <= text.lines().count() + 1, "{}", why);
                        }
                        prop_assert!(!quotes(&why, REPORT_TOKEN, 8), "{}", why);
                    }
                }
            }
        }
    }
}
