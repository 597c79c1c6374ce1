//! Meaning checks over a parsed document. All problems are collected so the
//! operator fixes them in one pass; each names the field and the fix. One
//! module per document table.

mod cluster;
mod discovery;
mod node;
mod options;
mod pki;
mod role;
#[cfg(test)]
mod tests;

pub use node::label_problems;

use cluster::check_cluster;
use discovery::check_discovery;
use node::check_node;
use options::check_options;
use role::check_role_specific;

use super::formats;
use super::{NodeDocument, ValidDocument, DOCUMENT_VERSION};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// Dotted path of the offending key, e.g. `discovery.token`.
    pub field: String,
    pub problem: String,
    pub fix: String,
}

/// The document is unusable. Display lists every problem, one per line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InvalidDocument {
    pub errors: Vec<FieldError>,
}

impl InvalidDocument {
    pub fn single(field: &str, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        InvalidDocument {
            errors: vec![FieldError {
                field: field.to_string(),
                problem: problem.into(),
                fix: fix.into(),
            }],
        }
    }
}

impl std::fmt::Display for InvalidDocument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.errors.len();
        write!(
            f,
            "the node document is invalid ({n} problem{})",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.errors {
            write!(f, "\n  {}: {}; fix: {}", e.field, e.problem, e.fix)?;
        }
        Ok(())
    }
}

impl std::error::Error for InvalidDocument {}

#[derive(Default)]
struct Problems(Vec<FieldError>);

impl Problems {
    fn add(&mut self, field: &str, problem: impl Into<String>, fix: impl Into<String>) {
        self.0.push(FieldError {
            field: field.to_string(),
            problem: problem.into(),
            fix: fix.into(),
        });
    }
}

fn check_version(doc: &NodeDocument, p: &mut Problems) {
    if doc.version != DOCUMENT_VERSION {
        p.add(
            "version",
            format!("unsupported document version {}", doc.version),
            format!("set version = {DOCUMENT_VERSION}"),
        );
    }
}

/// A pointer document (`[source]` only): the version, an https URL and a
/// well-formed CA pin. What the agent checks before it follows one, and what
/// `kubeboot seed`/`userdata` check before they deliver one (a node group's
/// user-data).
pub fn validate_pointer(doc: &NodeDocument) -> Result<(), InvalidDocument> {
    let mut p = Problems::default();
    check_version(doc, &mut p);
    if doc.role.is_some() || doc.cluster.is_some() {
        p.add(
            "source",
            "a document with [source] must only point elsewhere",
            "keep version and [source] only; the server's document carries role, cluster and discovery",
        );
    }
    if let Some(src) = &doc.source {
        if !src.url.starts_with("https://") {
            p.add(
                "source.url",
                format!("{:?} is not an https URL", src.url),
                "node documents carry secrets: serve them over HTTPS (kubeboot serve does)",
            );
        }
        if let Some(Err(why)) = src.ca_cert_hash.as_deref().map(formats::check_ca_hash) {
            p.add(
                "source.ca_cert_hash",
                format!("the value {why}"),
                "give the pin of the CA of the server's certificate (`kubeboot ca-hash ca.crt`)",
            );
        }
    }
    if p.0.is_empty() {
        Ok(())
    } else {
        Err(InvalidDocument { errors: p.0 })
    }
}

pub fn validate(doc: NodeDocument) -> Result<ValidDocument, InvalidDocument> {
    let mut p = Problems::default();
    check_version(&doc, &mut p);
    if doc.source.is_some() {
        p.add(
            "source",
            "a [source] pointer must be resolved before validation",
            "let `kubeboot agent` fetch it, or give the fetched document",
        );
    }
    let Some(role) = doc.role else {
        p.add(
            "role",
            "missing",
            "set role = \"init\", \"control-plane\" or \"worker\"",
        );
        return Err(InvalidDocument { errors: p.0 });
    };
    let endpoint = check_cluster(&doc, &mut p);
    check_discovery(&doc, role, &mut p);
    check_node(&doc, &mut p);
    check_role_specific(&doc, role, &mut p);
    check_options(&doc, &mut p);
    if !p.0.is_empty() {
        return Err(InvalidDocument { errors: p.0 });
    }
    let mut doc = doc;
    let cluster = doc.cluster.take().expect("checked above");
    Ok(ValidDocument {
        role,
        cluster,
        endpoint: endpoint.expect("checked above"),
        doc,
    })
}
