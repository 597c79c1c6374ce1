//! The one way kubeboot writes node documents: `kubeboot bundle` makes them,
//! `kubeboot serve` personalizes them per machine (a group's labels, a bound
//! report token), `kubeboot up` and `kubeboot document set` fit them to one
//! node. Each starts from a document (or an empty one), sets keys by their
//! path, and renders TOML with the document's leading comment lines kept.
//!
//! The values are secrets more often than not (tokens, keys): [`Writer`]'s
//! `Debug` and its errors name keys, never values.

use toml::{Table, Value};

use super::{scrub, Role};

/// A node document being written.
#[derive(Clone, Default)]
pub struct Writer {
    /// Leading `#` lines, without their newline.
    header: Vec<String>,
    doc: Table,
}

/// Why a document could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the document is not TOML: {0}")]
    NotToml(String),
    #[error("{path}: {parent} is a value, not a table; fix the document or the key")]
    NotATable { path: String, parent: String },
    #[error(
        "{key:?} is not a key path (like node.name or node.labels.\"example.com/rack\"): {problem}"
    )]
    BadKey { key: String, problem: String },
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("tables", &self.doc.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// A new document for `role` (`version = 1`), with one header line.
    pub fn new(role: Role, header: impl Into<String>) -> Self {
        let mut w = Writer::pointer(header);
        w.doc.insert("role".into(), role.as_str().into());
        w
    }

    /// A document with only `version = 1` (a pointer document adds `[source]`).
    pub fn pointer(header: impl Into<String>) -> Self {
        let mut w = Writer::default();
        w.doc.insert("version".into(), 1.into());
        w.set_header(header);
        w
    }

    /// An existing document; its leading comment lines are kept as the header.
    pub fn parse(text: &str) -> Result<Self, WriteError> {
        let doc: Table = text
            .parse()
            .map_err(|e: toml::de::Error| WriteError::NotToml(scrub(e.message())))?;
        let header = text
            .lines()
            .take_while(|l| l.starts_with('#'))
            .map(str::to_string)
            .collect();
        Ok(Writer { header, doc })
    }

    /// Replace the header with `text` (one or more lines; `# ` added where missing).
    pub fn set_header(&mut self, text: impl Into<String>) -> &mut Self {
        let text = text.into();
        self.header = text
            .lines()
            .map(|l| {
                if l.starts_with('#') {
                    l.to_string()
                } else {
                    format!("# {l}")
                }
            })
            .collect();
        self
    }

    /// Set the value at `path` (table names, then the key), making the tables
    /// on the way.
    pub fn set(&mut self, path: &[&str], value: impl Into<Value>) -> Result<&mut Self, WriteError> {
        let (key, tables) = path.split_last().expect("a key path is never empty");
        self.table_mut(tables)?
            .insert(key.to_string(), value.into());
        Ok(self)
    }

    /// Set the value at a TOML key path as a person writes it
    /// (`node.labels."example.com/rack"`).
    pub fn set_dotted(&mut self, key: &str, value: Value) -> Result<&mut Self, WriteError> {
        let path = parse_key(key)?;
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        self.set(&path, value)
    }

    /// The table at `path`, made (empty) where missing.
    pub fn table_mut(&mut self, path: &[&str]) -> Result<&mut Table, WriteError> {
        let mut table = &mut self.doc;
        for (i, name) in path.iter().enumerate() {
            table = table
                .entry(name.to_string())
                .or_insert_with(|| Table::new().into())
                .as_table_mut()
                .ok_or_else(|| WriteError::NotATable {
                    path: path.join("."),
                    parent: path[..=i].join("."),
                })?;
        }
        Ok(table)
    }

    /// The value at `path`, if any.
    pub fn get(&self, path: &[&str]) -> Option<&Value> {
        let (key, tables) = path.split_last()?;
        let mut table = &self.doc;
        for name in tables {
            table = table.get(*name)?.as_table()?;
        }
        table.get(*key)
    }

    /// The string at `path`, if it is one.
    pub fn get_str(&self, path: &[&str]) -> Option<&str> {
        self.get(path).and_then(Value::as_str)
    }

    /// `[report]`: where and how this node reports its status.
    pub fn report(
        &mut self,
        url: &str,
        token: &str,
        ca_cert_hash: &str,
    ) -> Result<&mut Self, WriteError> {
        let report = self.table_mut(&["report"])?;
        report.insert("url".into(), url.into());
        report.insert("token".into(), token.into());
        report.insert("ca_cert_hash".into(), ca_cert_hash.into());
        Ok(self)
    }

    /// The document's text: header lines, then TOML.
    pub fn render(&self) -> String {
        let mut out: String = self.header.iter().map(|l| format!("{l}\n")).collect();
        out.push_str(&toml::to_string(&self.doc).expect("a TOML table serializes"));
        out
    }
}

/// A TOML key path (`a.b."c.d"`) as its segments, by TOML's own rules.
fn parse_key(key: &str) -> Result<Vec<String>, WriteError> {
    let bad = |problem: &str| WriteError::BadKey {
        key: key.to_string(),
        problem: problem.to_string(),
    };
    if key.contains(['\n', '=', '[', ']', '#']) {
        return Err(bad("it may hold only names, dots and quoted names"));
    }
    let table: Table = format!("{key} = 0")
        .parse()
        .map_err(|_| bad("TOML does not read it as a key"))?;
    let mut path = Vec::new();
    let mut at = &table;
    loop {
        let (name, value) = at.iter().next().ok_or_else(|| bad("empty"))?;
        path.push(name.clone());
        match value.as_table() {
            Some(inner) => at = inner,
            None => return Ok(path),
        }
    }
}

/// A value as given on a command line: TOML when it reads as one (`2400`,
/// `true`, `"text"`, `["a", "b"]`), else the text itself as a string.
pub fn value_from_text(text: &str) -> Value {
    format!("v = {text}")
        .parse::<Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORKER: &str = "# made by kubeboot bundle. SECRET\n# second line\nversion = 1\nrole = \"worker\"\n\n[cluster]\nendpoint = \"10.0.0.1:6443\"\n\n[discovery]\ntoken = \"abcdef.0123456789abcdef\"\n";

    #[test]
    fn edits_keep_the_header_and_every_other_key() {
        let mut w = Writer::parse(WORKER).unwrap();
        w.set(&["node", "name"], "w1").unwrap();
        w.set(&["discovery", "timeout_seconds"], 2400).unwrap();
        let text = w.render();
        assert!(
            text.starts_with("# made by kubeboot bundle. SECRET\n# second line\n"),
            "{text}"
        );
        let back: Table = text.parse().unwrap();
        assert_eq!(back["node"]["name"].as_str(), Some("w1"));
        assert_eq!(
            back["discovery"]["timeout_seconds"].as_integer(),
            Some(2400)
        );
        assert_eq!(
            back["discovery"]["token"].as_str(),
            Some("abcdef.0123456789abcdef")
        );
        assert_eq!(back["cluster"]["endpoint"].as_str(), Some("10.0.0.1:6443"));
    }

    #[test]
    fn dotted_keys_follow_toml_quoting() {
        let mut w = Writer::parse(WORKER).unwrap();
        w.set_dotted("node.labels.\"example.com/rack\"", "r1".into())
            .unwrap();
        assert_eq!(
            w.get_str(&["node", "labels", "example.com/rack"]),
            Some("r1")
        );
        for bad in ["", "a..b", "a = 1", "[a]", "a.\"b"] {
            assert!(
                matches!(w.set_dotted(bad, 1.into()), Err(WriteError::BadKey { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_value_where_a_table_is_needed_is_named() {
        let mut w = Writer::parse(WORKER).unwrap();
        let err = w.set(&["role", "x"], 1).unwrap_err().to_string();
        assert!(err.contains("role is a value, not a table"), "{err}");
    }

    #[test]
    fn a_new_document_has_its_role_version_and_header() {
        let mut w = Writer::new(Role::Worker, "header");
        w.set(&["ready", "timeout_seconds"], 60).unwrap();
        let text = w.render();
        assert!(text.starts_with("# header\n"), "{text}");
        let t: Table = text.parse().unwrap();
        assert_eq!(t["ready"]["timeout_seconds"].as_integer(), Some(60));
        assert_eq!(t["role"].as_str(), Some("worker"));
        assert_eq!(t["version"].as_integer(), Some(1));
    }

    #[test]
    fn values_from_text_are_toml_when_they_read_as_toml() {
        assert_eq!(value_from_text("2400").as_integer(), Some(2400));
        assert_eq!(value_from_text("true").as_bool(), Some(true));
        assert_eq!(value_from_text("\"10\"").as_str(), Some("10"));
        assert_eq!(value_from_text("10.88.0.11").as_str(), Some("10.88.0.11"));
        assert_eq!(value_from_text("w1").as_str(), Some("w1"));
        assert_eq!(value_from_text("[\"a\"]").as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn nothing_secret_in_debug_or_errors() {
        let w = Writer::parse(WORKER).unwrap();
        assert!(!format!("{w:?}").contains("0123456789abcdef"));
        let err = Writer::parse("token = \"abcdef.0123456789abcdef\"\n[x\n")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("0123456789abcdef"), "{err}");
    }
}
