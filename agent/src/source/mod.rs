//! Where the node document comes from (DESIGN.md §2), each source behind one
//! small trait, tried in order: kernel command line (`kubeboot.url=`), a
//! NoCloud seed read directly (no wait for cloud-init), cloud-init
//! (`/etc/kubeboot/node.toml` from write_files, or the raw user-data).
//! `--document` names a local file instead of searching.

mod cloud_init;
mod cmdline;
mod https;
mod nocloud;

use std::path::PathBuf;

use kubeboot_core::document::{self, InvalidDocument};
use kubeboot_core::host::Host;
use kubeboot_core::status::ErrorKind;

pub use cloud_init::{
    cached_copies as cloud_init_cached_copies, kubeboot_document_in_user_data, CloudInitUserData,
    NodeFile, MIME_TYPE as USER_DATA_MIME_TYPE, NODE_FILE,
};
pub use cmdline::KernelCommandLine;
pub use https::{fetch_document, FetchOptions};
pub use nocloud::{document_in_seed, seed_devices, NoCloudSeed};

/// A document's text and where it came from (for status and `kubeboot status`).
pub struct Loaded {
    pub text: String,
    pub origin: String,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Loaded {{ origin: {:?}, text: <{} bytes, redacted> }}",
            self.origin,
            self.text.len()
        )
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    pub kind: ErrorKind,
    pub message: String,
    /// Set when the document was found but is invalid.
    pub invalid: Option<InvalidDocument>,
}

impl SourceError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> SourceError {
        SourceError {
            kind,
            message: message.into(),
            invalid: None,
        }
    }
}

impl From<InvalidDocument> for SourceError {
    fn from(e: InvalidDocument) -> SourceError {
        SourceError {
            kind: ErrorKind::InvalidDocument,
            message: e.to_string(),
            invalid: Some(e),
        }
    }
}

pub trait DocumentSource {
    fn name(&self) -> &'static str;
    /// `Ok(None)`: this source has nothing for this node; try the next one.
    fn load(&self, host: &Host, fetch: &FetchOptions) -> Result<Option<Loaded>, SourceError>;
}

/// A file named on the command line.
pub struct LocalFile(pub PathBuf);

impl DocumentSource for LocalFile {
    fn name(&self) -> &'static str {
        "file"
    }
    fn load(&self, _host: &Host, _fetch: &FetchOptions) -> Result<Option<Loaded>, SourceError> {
        // The path is the operator's, as given on the command line: not under the host root.
        let text = std::fs::read_to_string(&self.0).map_err(|e| {
            SourceError::new(
                ErrorKind::DocumentNotFound,
                format!("--document {}: {e}", self.0.display()),
            )
        })?;
        Ok(Some(Loaded {
            text,
            origin: format!("file {}", self.0.display()),
        }))
    }
}

/// Find the document: `--document` if given, else the automatic sources in order.
/// A `[source] url` pointer is followed once.
pub fn resolve(
    host: &Host,
    explicit: Option<PathBuf>,
    fetch: &FetchOptions,
) -> Result<Loaded, SourceError> {
    let sources: Vec<Box<dyn DocumentSource>> = match explicit {
        Some(p) => vec![Box::new(LocalFile(p))],
        None => vec![
            Box::new(KernelCommandLine),
            Box::new(NoCloudSeed::probe()),
            Box::new(NodeFile),
            Box::new(CloudInitUserData),
        ],
    };
    let mut found = None;
    for s in &sources {
        if let Some(loaded) = s.load(host, fetch)? {
            found = Some(loaded);
            break;
        }
    }
    let loaded = found.ok_or_else(|| {
        SourceError::new(
            ErrorKind::DocumentNotFound,
            "no node document: none on the kernel command line (kubeboot.url=), on a NoCloud seed (label cidata), \
             in /etc/kubeboot/node.toml, or in cloud-init user-data; give one with --document, or provide user-data (see cloud-init/examples/)",
        )
    })?;
    follow_pointer(loaded, fetch)
}

/// A document with `[source] url = …` is a pointer: fetch the real document.
fn follow_pointer(loaded: Loaded, fetch: &FetchOptions) -> Result<Loaded, SourceError> {
    let doc = document::parse(&loaded.text)?;
    let Some(src) = &doc.source else {
        return Ok(loaded);
    };
    document::validate_pointer(&doc)?;
    let fetched = fetch_document(
        &src.url,
        src.ca_cert_hash.as_deref(),
        src.token.as_ref(),
        fetch,
    )?;
    let inner = document::parse(&fetched.text)?;
    if inner.source.is_some() {
        return Err(InvalidDocument::single(
            "source",
            format!("the document fetched from {} is itself a pointer", src.url),
            "serve a complete node document there",
        )
        .into());
    }
    Ok(Loaded {
        text: fetched.text,
        origin: format!("{} via {}", fetched.origin, loaded.origin),
    })
}
