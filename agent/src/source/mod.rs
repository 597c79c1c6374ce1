//! Where the node document comes from (docs/design.md §2), each source behind one
//! small trait, tried in order: kernel command line (`kubeboot.url=`), a
//! NoCloud seed read directly (no wait for cloud-init), cloud-init
//! (`/etc/kubeboot/node.toml` from write_files, or the raw user-data).
//! `--document` names a local file instead of searching.

mod cloud_init;
mod cmdline;
mod https;
mod nocloud;

use std::cell::OnceCell;
use std::path::PathBuf;
use std::time::Duration;

use kubeboot_core::document::{self, InvalidDocument};
use kubeboot_core::host::Host;
use kubeboot_core::status::ErrorKind;

pub use cloud_init::{cached_copies as cloud_init_cached_copies, CloudInitUserData, NodeFile};
pub use cmdline::KernelCommandLine;
pub use https::{fetch_document, FetchOptions};
pub use nocloud::{document_in_seed, local_hostname, seed_devices, NoCloudSeed};

/// A document's text and where it came from (for status and `kubeboot status`).
pub struct Loaded {
    pub text: String,
    pub origin: String,
    /// The machine's name from the same seed (NoCloud meta-data `local-hostname`),
    /// for a document that names no node.
    pub hostname: Option<String>,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Loaded {{ origin: {:?}, hostname: {:?}, text: <{} bytes, redacted> }}",
            self.origin,
            self.hostname,
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
    fn load(&self, host: &Host, fetch: &Fetcher) -> Result<Option<Loaded>, SourceError>;
}

/// The longest wait for the network before a first fetch; systemd's own
/// network-online wait gives up sooner (2 min by default) and the fetch then
/// tries anyway.
const NETWORK_WAIT: Duration = Duration::from_secs(600);

/// How sources fetch over HTTPS. The agent starts before the network is up, so
/// the first fetch waits for `network-online.target`, and only then names this
/// host in its requests (the name DHCP or cloud-init gave it by then). A node
/// whose document needs no fetch never waits.
pub struct Fetcher<'a> {
    host: &'a Host,
    base: &'a FetchOptions,
    ready: OnceCell<FetchOptions>,
    /// The machine's name from the seed that held a pointer document, which the
    /// host may not carry yet (`Kubeboot-Node`: serve renders per node).
    node: OnceCell<String>,
}

impl<'a> Fetcher<'a> {
    pub fn new(host: &'a Host, base: &'a FetchOptions) -> Fetcher<'a> {
        Fetcher {
            host,
            base,
            ready: OnceCell::new(),
            node: OnceCell::new(),
        }
    }

    /// Name this machine in requests (before the first fetch).
    pub fn name_node(&self, name: &str) {
        let _ = self.node.set(name.to_string());
    }

    /// The options for a fetch, once the network is up.
    pub fn options(&self) -> &FetchOptions {
        self.ready.get_or_init(|| {
            if let Err(e) = self
                .host
                .wait_for_units(&["network-online.target"], NETWORK_WAIT)
            {
                tracing::warn!("waiting for the network: {e}; fetching anyway");
            }
            let mut o = self.base.from_host(self.host);
            if let Some(name) = self.node.get() {
                o.identity.retain(|(k, _)| *k != "Kubeboot-Node");
                o.identity.push(("Kubeboot-Node", name.clone()));
            }
            o
        })
    }
}

/// A file named on the command line.
pub struct LocalFile(pub PathBuf);

impl DocumentSource for LocalFile {
    fn name(&self) -> &'static str {
        "file"
    }
    fn load(&self, _host: &Host, _fetch: &Fetcher) -> Result<Option<Loaded>, SourceError> {
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
            hostname: None,
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
    let fetch = Fetcher::new(host, fetch);
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
        if let Some(loaded) = s.load(host, &fetch)? {
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
    if let Some(name) = &loaded.hostname {
        fetch.name_node(name);
    }
    follow_pointer(loaded, &fetch)
}

/// A document with `[source] url = …` is a pointer: fetch the real document.
fn follow_pointer(loaded: Loaded, fetch: &Fetcher) -> Result<Loaded, SourceError> {
    let doc = document::parse(&loaded.text)?;
    let Some(src) = &doc.source else {
        return Ok(loaded);
    };
    document::validate_pointer(&doc)?;
    let fetched = fetch_document(
        &src.url,
        src.ca_cert_hash.as_deref(),
        src.token.as_ref(),
        fetch.options(),
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
        hostname: loaded.hostname,
    })
}

#[cfg(test)]
mod fetcher_tests {
    use super::*;

    #[test]
    fn a_seed_names_the_node_in_requests_before_the_host_does() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("etc")).unwrap();
        std::fs::write(tmp.path().join("etc/hostname"), "localhost\n").unwrap();
        let host = Host::system_at(tmp.path());
        let base = FetchOptions::default();
        let node = |f: &Fetcher| {
            f.options()
                .identity
                .iter()
                .filter(|(k, _)| *k == "Kubeboot-Node")
                .map(|(_, v)| v.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(node(&Fetcher::new(&host, &base)), ["localhost"]);
        let named = Fetcher::new(&host, &base);
        named.name_node("w1");
        assert_eq!(node(&named), ["w1"]);
    }
}
