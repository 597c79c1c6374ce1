//! Fetching a node document over HTTPS: timeouts, a size limit, bounded
//! retries with jittered backoff, and the server's CA pinned when a hash is given.

use std::io::Read;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::{Loaded, SourceError};
use crate::backoff::Backoff;
use crate::status::ErrorKind;

/// Node documents are small; anything larger is refused.
pub const MAX_DOCUMENT_BYTES: u64 = 256 * 1024;

#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub attempts: u32,
    pub timeout: Duration,
    pub backoff: Backoff,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            attempts: 8,
            timeout: Duration::from_secs(15),
            backoff: Backoff::new(1.0, 30.0),
        }
    }
}

pub fn fetch_document(
    url: &str,
    ca_hash: Option<&str>,
    token: Option<&SecretString>,
    opts: &FetchOptions,
) -> Result<Loaded, SourceError> {
    if !url.starts_with("https://") {
        return Err(crate::document::InvalidDocument::single(
            "source.url",
            format!("{url:?} is not an https URL"),
            "node documents carry secrets: serve them over HTTPS (kubeboot serve does)",
        )
        .into());
    }
    let tls = crate::tls::client_config(ca_hash)
        .map_err(|e| SourceError::new(ErrorKind::DocumentFetch, e))?;
    let client = crate::tls::https_client(tls, opts.timeout)
        .map_err(|e| SourceError::new(ErrorKind::DocumentFetch, format!("HTTPS client: {e}")))?;
    let mut last = String::new();
    for attempt in 1..=opts.attempts {
        match fetch_once(&client, url, token) {
            Ok(text) => {
                return Ok(Loaded {
                    text,
                    origin: url.to_string(),
                })
            }
            Err(Fatal(msg)) => return Err(SourceError::new(ErrorKind::DocumentFetch, msg)),
            Err(Transient(msg)) => {
                tracing::warn!(url, attempt, "fetching the node document failed: {msg}");
                last = msg;
            }
        }
        if attempt < opts.attempts {
            std::thread::sleep(opts.backoff.delay(attempt));
        }
    }
    Err(SourceError::new(
        ErrorKind::DocumentFetch,
        format!(
            "could not fetch the node document from {url} after {} attempts: {last}",
            opts.attempts
        ),
    ))
}

enum FetchError {
    Transient(String),
    Fatal(String),
}
use FetchError::{Fatal, Transient};

fn fetch_once(
    client: &reqwest::blocking::Client,
    url: &str,
    token: Option<&SecretString>,
) -> Result<String, FetchError> {
    let mut req = client.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t.expose_secret());
    }
    let resp = req.send().map_err(|e| {
        let msg = crate::tls::describe_http_error(&e);
        if crate::tls::is_final(&e) {
            Fatal(msg)
        } else {
            Transient(msg)
        }
    })?;
    let status = resp.status();
    if status.is_client_error() {
        let hint = match status.as_u16() {
            401 | 403 => " (the token was refused: check [source] token)",
            404 => " (no document for this role or node on the server)",
            _ => "",
        };
        return Err(Fatal(format!("{url} answered {status}{hint}")));
    }
    if !status.is_success() {
        return Err(Transient(format!("{url} answered {status}")));
    }
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_DOCUMENT_BYTES)
    {
        return Err(Fatal(format!(
            "{url}: document larger than {MAX_DOCUMENT_BYTES} bytes"
        )));
    }
    let mut body = Vec::new();
    resp.take(MAX_DOCUMENT_BYTES + 1)
        .read_to_end(&mut body)
        .map_err(|e| Transient(format!("reading {url}: {e}")))?;
    if body.len() as u64 > MAX_DOCUMENT_BYTES {
        return Err(Fatal(format!(
            "{url}: document larger than {MAX_DOCUMENT_BYTES} bytes"
        )));
    }
    String::from_utf8(body).map_err(|_| Fatal(format!("{url}: the document is not UTF-8 text")))
}
