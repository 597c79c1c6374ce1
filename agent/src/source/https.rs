//! Fetching a node document over HTTPS: timeouts, a size limit, bounded
//! retries with jittered backoff, and the server's CA pinned when a hash is given.

use std::io::Read;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::{Loaded, SourceError};
use kubeboot_core::backoff::Backoff;
use kubeboot_core::status::ErrorKind;

/// Node documents are small; anything larger is refused.
pub const MAX_DOCUMENT_BYTES: u64 = 256 * 1024;

#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub attempts: u32,
    pub timeout: Duration,
    pub backoff: Backoff,
    /// How long to keep asking a server that answers 503 with Retry-After (it
    /// says "later", e.g. while the first control plane initialises). Such
    /// answers do not use up `attempts`.
    pub wait_limit: Duration,
    /// Who asks (`Kubeboot-Node`, `Kubeboot-Machine-Id`, `Kubeboot-Boot-Id`):
    /// `kubeboot serve` renders and elects per node. Not secret.
    pub identity: Vec<(&'static str, String)>,
    /// This machine's claim secret (`Kubeboot-Claim`, kept in [`CLAIM_FILE`],
    /// 0600): if serve elects this machine to run `kubeadm init`, a retry after a
    /// crash or reboot proves with it that it is the machine that asked first.
    pub claim: Option<Claim>,
}

/// Where the claim secret is kept: made once per machine, before its first
/// document request.
pub const CLAIM_FILE: &str = "/var/lib/kubeboot/claim";

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            attempts: 8,
            timeout: Duration::from_secs(15),
            backoff: Backoff::new(1.0, 30.0),
            wait_limit: Duration::from_secs(3600),
            identity: Vec::new(),
            claim: None,
        }
    }
}

impl FetchOptions {
    /// These options, naming this host in every request (see `identity`).
    pub fn from_host(&self, host: &kubeboot_core::host::Host) -> FetchOptions {
        let mut o = self.clone();
        o.identity = vec![
            ("Kubeboot-Node", host.hostname().to_lowercase()),
            ("Kubeboot-Machine-Id", host.machine_id()),
            ("Kubeboot-Boot-Id", host.boot_id()),
        ];
        o.identity.retain(|(_, v)| !v.is_empty());
        o.claim = claim(host);
        o
    }
}

/// This machine's claim secret: the one kept in [`CLAIM_FILE`], else a new one,
/// written there (0600) only once a document was fetched with it, so a fetch that
/// fails leaves the host unchanged. Without a writable disk it lasts one boot:
/// an elected machine then cannot fetch its init document twice, and serve elects
/// again after its lease.
fn claim(host: &kubeboot_core::host::Host) -> Option<Claim> {
    if let Ok(c) = host.read_to_string(CLAIM_FILE) {
        let c = c.trim();
        if c.len() >= 32 {
            return Some(Claim {
                secret: SecretString::from(c.to_string()),
                unsaved: None,
            });
        }
    }
    use rand::Rng;
    let bytes: [u8; 32] = rand::rng().random();
    Some(Claim {
        secret: SecretString::from(hex::encode(bytes)),
        unsaved: Some(host.path(CLAIM_FILE)),
    })
}

/// A claim secret, and where to keep it if it is new.
#[derive(Debug, Clone)]
pub struct Claim {
    pub secret: SecretString,
    /// The host path to write it to after the first successful fetch.
    pub unsaved: Option<std::path::PathBuf>,
}

impl Claim {
    fn keep(&self) {
        let Some(path) = &self.unsaved else {
            return;
        };
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| {
                kubeboot_core::host::write_file_atomic(
                    path,
                    self.secret.expose_secret().as_bytes(),
                    0o600,
                )
            });
        if let Err(e) = written {
            tracing::warn!(
                "could not keep the init-election claim in {}: {e}",
                path.display()
            );
        }
    }
}

/// The longest single wait a Retry-After may ask for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

pub fn fetch_document(
    url: &str,
    ca_hash: Option<&str>,
    token: Option<&SecretString>,
    opts: &FetchOptions,
) -> Result<Loaded, SourceError> {
    if !url.starts_with("https://") {
        return Err(kubeboot_core::document::InvalidDocument::single(
            "source.url",
            format!("{url:?} is not an https URL"),
            "node documents carry secrets: serve them over HTTPS (kubeboot serve does)",
        )
        .into());
    }
    let tls = kubeboot_core::tls::client_config(ca_hash)
        .map_err(|e| SourceError::new(ErrorKind::DocumentFetch, e))?;
    let client = kubeboot_core::tls::https_client(tls, opts.timeout)
        .map_err(|e| SourceError::new(ErrorKind::DocumentFetch, format!("HTTPS client: {e}")))?;
    let mut last = String::new();
    let started = std::time::Instant::now();
    let mut attempt = 0;
    while attempt < opts.attempts {
        match fetch_once(&client, url, token, opts) {
            Ok(text) => {
                if let Some(c) = &opts.claim {
                    c.keep();
                }
                return Ok(Loaded {
                    text,
                    origin: url.to_string(),
                    hostname: None,
                });
            }
            Err(Fatal(msg)) => return Err(SourceError::new(ErrorKind::DocumentFetch, msg)),
            Err(Later(msg, wait)) => {
                let left = opts.wait_limit.saturating_sub(started.elapsed());
                if left.is_zero() {
                    return Err(SourceError::new(
                        ErrorKind::DocumentFetch,
                        format!(
                            "{url} still says to wait after {} s: {msg}",
                            opts.wait_limit.as_secs()
                        ),
                    ));
                }
                let wait = wait.min(MAX_RETRY_AFTER).min(left);
                tracing::info!(
                    url,
                    "the server says to wait: {msg}; asking again in {} s",
                    wait.as_secs()
                );
                std::thread::sleep(wait);
                continue;
            }
            Err(Transient(msg)) => {
                attempt += 1;
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
    /// 503 with Retry-After: the server asks to come back then.
    Later(String, Duration),
}
use FetchError::{Fatal, Later, Transient};

/// The `error` of a JSON answer (what kubeboot serve says), else the status; short.
fn server_reason(resp: reqwest::blocking::Response) -> String {
    let status = resp.status();
    let mut body = String::new();
    let _ = resp.take(4096).read_to_string(&mut body);
    serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["error"].as_str().map(|s| s.chars().take(300).collect()))
        .unwrap_or_else(|| format!("{status}"))
}

fn fetch_once(
    client: &reqwest::blocking::Client,
    url: &str,
    token: Option<&SecretString>,
    opts: &FetchOptions,
) -> Result<String, FetchError> {
    let mut req = client.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t.expose_secret());
    }
    for (name, value) in &opts.identity {
        req = req.header(*name, value);
    }
    if let Some(c) = &opts.claim {
        req = req.header("Kubeboot-Claim", c.secret.expose_secret());
    }
    let resp = req.send().map_err(|e| {
        let msg = kubeboot_core::tls::describe_http_error(&e);
        if kubeboot_core::tls::is_final(&e) {
            Fatal(msg)
        } else {
            Transient(msg)
        }
    })?;
    let status = resp.status();
    // 503 or 429 with Retry-After: the server says "later" (kubeboot serve while the
    // first control plane initialises, or over its minting budget).
    let later = status == reqwest::StatusCode::SERVICE_UNAVAILABLE
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
    if later {
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(seconds) = retry_after {
            let why = server_reason(resp);
            return Err(Later(why, Duration::from_secs(seconds.max(1))));
        }
    }
    if status.is_client_error() {
        let hint = match status.as_u16() {
            401 | 403 => " (the token was refused: check [source] token)",
            404 => " (no document for this role or node on the server)",
            _ => "",
        };
        // What the server said (kubeboot serve's `error`), e.g. why a 409.
        let said = server_reason(resp);
        let said = if said == status.to_string() {
            String::new()
        } else {
            format!(": {said}")
        };
        return Err(Fatal(format!("{url} answered {status}{hint}{said}")));
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
