//! Clients for the cluster's API through kube-rs, every call bounded in time:
//! one from a kubeconfig on disk (the kubelet's, `admin.conf`), one pinned to
//! a CA with credentials held in memory.
//!
//! The node agent is synchronous; [`block_on`] runs one call on a small
//! current-thread tokio runtime of its own.

use std::path::Path;
use std::time::Duration;

/// A client authenticated as in `kubeconfig` (e.g. /etc/kubernetes/kubelet.conf).
pub async fn client(kubeconfig: &Path) -> Result<kube::Client, String> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)
        .map_err(|e| format!("{}: {e}", kubeconfig.display()))?;
    let options = kube::config::KubeConfigOptions::default();
    let mut config = kube::Config::from_custom_kubeconfig(kc, &options)
        .await
        .map_err(|e| format!("{}: {e}", kubeconfig.display()))?;
    config.connect_timeout = Some(Duration::from_secs(10));
    config.read_timeout = Some(Duration::from_secs(30));
    kube::Client::try_from(config).map_err(|e| format!("{}: {e}", kubeconfig.display()))
}

/// How a [`pinned_client`] authenticates.
pub enum Credentials<'a> {
    /// A bearer token (a bootstrap token).
    Token(&'a secrecy::SecretString),
    /// A client certificate and its key (PEM), e.g. minted from the cluster CA.
    Certificate {
        cert: &'a str,
        key: &'a secrecy::SecretString,
    },
}

/// A client for `server` (https://HOST:PORT) that trusts only the CA `ca_der`,
/// every connection (TLS handshake included), read and write bounded by
/// `timeout`. Nothing touches the disk.
pub fn pinned_client(
    server: &str,
    ca_der: &[u8],
    credentials: Credentials<'_>,
    timeout: Duration,
) -> Result<kube::Client, String> {
    use secrecy::{ExposeSecret, SecretString};
    let url = server
        .parse()
        .map_err(|e| format!("API server URL {server:?}: {e}"))?;
    let mut config = kube::Config::new(url);
    config.root_cert = Some(vec![ca_der.to_vec()]);
    config.connect_timeout = Some(timeout);
    config.read_timeout = Some(timeout);
    config.write_timeout = Some(timeout);
    match credentials {
        Credentials::Token(token) => config.auth_info.token = Some(token.clone()),
        Credentials::Certificate { cert, key } => {
            use base64::Engine;
            let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
            config.auth_info.client_certificate_data = Some(b64(cert));
            config.auth_info.client_key_data = Some(SecretString::from(b64(key.expose_secret())));
        }
    }
    kube::Client::try_from(config).map_err(|e| format!("client for {server}: {e}"))
}

/// Run a future to completion on a current-thread runtime.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(future)
}

/// kube's errors, shortened to what an operator can act on; transport errors with
/// their causes ("client error (Connect): tcp connect error: Connection refused").
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({} {})", s.message, s.code, s.reason),
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(cause) = source {
                let c = cause.to_string();
                if !text.contains(&c) {
                    text.push_str(": ");
                    text.push_str(&c);
                }
                source = cause.source();
            }
            text
        }
    }
}
