//! kubeboot-serve: the operator's side of a cluster. `bundle` makes its material
//! (CAs, bootstrap token, node documents) and `userdata` renders it as cloud-init
//! user-data and NoCloud seeds; `kubeboot serve` (this crate's root)
//! receives status events (docs/design.md §4) and hands out node documents with fresh
//! credentials (docs/design.md §7).
//!
//! - `store` keeps every acknowledged event in one redb file (fsync before 2xx);
//! - `nodes` derives what each node is doing from its events;
//! - `http` is the API, the dashboard, the metrics and the document endpoint;
//! - `tls` is the server's certificate (the operator's, or a CA of its own).
//!
//! Writes go through one writer thread that commits whatever arrived meanwhile
//! in one transaction (group commit), so thousands of nodes booting at once
//! cost one fsync per batch, not per event.

pub mod bundle;
mod certificate_key;
pub mod documents;
pub mod election;
pub mod groups;
mod http;
pub mod journal;
pub mod limits;
mod metrics;
pub mod mint;
pub mod minted;
pub mod nodes;
pub mod report_binding;
mod store;
pub mod tls;
pub mod tokens;
pub mod userdata;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::{mpsc, oneshot};

use kubeboot_core::status::StatusEvent;
pub use nodes::{NodeDetail, NodeSummary, Nodes, PhaseTiming};
pub use store::{Store, StoreError};

pub struct ServeOptions {
    pub listen: SocketAddr,
    pub data: PathBuf,
    /// None: plain HTTP (behind a TLS-terminating proxy, or loopback demos).
    pub tls: Option<tls::TlsSource>,
    /// The scoped, hashed bearer tokens (`tokens` module).
    pub tokens: PathBuf,
    /// A `kubeboot bundle` directory whose node documents `GET /v1/documents/{role}` serves.
    pub bundle: Option<PathBuf>,
    /// Join documents carry credentials minted for each request (`documents` module).
    pub fresh_credentials: bool,
    /// How long an elected init node may stay silent before another takes over.
    pub init_lease: std::time::Duration,
    /// Documents with fresh credentials per role per minute.
    pub mint_per_minute: u32,
    /// Connection slots and timeouts (`limits`).
    pub limits: limits::Limits,
}

/// What the server prints once it is listening (and, with --output json, as JSON).
#[derive(Debug, serde::Serialize)]
pub struct Listening {
    pub url: String,
    /// The URL nodes put in `[report] url`.
    pub report_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_cert_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    pub data: PathBuf,
    pub events: u64,
    pub nodes: usize,
}

/// Shared by every request handler.
pub(crate) struct App {
    shared: Arc<Shared>,
    /// For serve's own events (`journal`); the nodes' events go through `writer`.
    store: Arc<Store>,
    writer: mpsc::Sender<PendingWrite>,
    tokens: tokens::TokenFile,
    documents: Option<documents::Documents>,
    /// Node groups (with --fresh-credentials).
    groups: Option<groups::Groups>,
    /// Makes and checks the report credentials bound to one node.
    binder: report_binding::Binder,
    rejected: AtomicU64,
    /// Credentials minted for documents (tokens, certificate uploads).
    minted: AtomicU64,
}

/// How often the tokens of failed requests are looked for (`minted`).
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Delete the Secrets of minted tokens whose request failed: at start (with
/// those whose request died with the last process), then every minute.
async fn sweep_minted_tokens(app: Arc<App>) {
    let Some(documents) = &app.documents else {
        return;
    };
    let mut startup = true;
    loop {
        let deleted = documents.sweep(startup).await;
        if deleted > 0 {
            tracing::info!("withdrew {deleted} bootstrap tokens minted for requests that failed");
        }
        startup = false;
        tokio::time::sleep(SWEEP_EVERY).await;
    }
}

/// What the writer thread updates and the handlers read.
pub(crate) struct Shared {
    nodes: RwLock<Nodes>,
    received: AtomicU64,
    duplicates: AtomicU64,
}

struct PendingWrite {
    event: StatusEvent,
    reply: oneshot::Sender<Result<bool, StoreError>>,
}

/// How a stored write went, for the HTTP answer.
pub(crate) enum Stored {
    New,
    Duplicate,
    DiskFull(String),
    Failed(String),
}

impl App {
    pub(crate) async fn store(&self, event: StatusEvent) -> Stored {
        let (reply, answer) = oneshot::channel();
        if self
            .writer
            .send(PendingWrite { event, reply })
            .await
            .is_err()
        {
            return Stored::Failed("the store is shutting down".into());
        }
        match answer.await {
            Ok(Ok(true)) => Stored::New,
            Ok(Ok(false)) => Stored::Duplicate,
            Ok(Err(e @ StoreError::DiskFull(_))) => Stored::DiskFull(e.to_string()),
            Ok(Err(e)) => Stored::Failed(e.to_string()),
            Err(_) => Stored::Failed("the store stopped before answering".into()),
        }
    }
}

/// Run file I/O or an fsync without holding up the async workers: the
/// runtime moves this worker's other tasks elsewhere meanwhile (serve runs on
/// a multi-threaded runtime).
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

const MAX_BATCH: usize = 1024;

/// Commit batches as they come; answer each request only after its commit.
fn writer_loop(store: Arc<Store>, mut rx: mpsc::Receiver<PendingWrite>, app: Arc<Shared>) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let events: Vec<StatusEvent> = batch.iter().map(|p| p.event.clone()).collect();
        match store.append(&events) {
            Ok(fresh) => {
                {
                    let mut nodes = app.nodes.write().expect("nodes lock");
                    for (ev, new) in events.into_iter().zip(&fresh) {
                        if *new {
                            log_transition(&ev);
                            nodes.insert(ev);
                        }
                    }
                }
                for (p, new) in batch.into_iter().zip(fresh) {
                    let counter = if new { &app.received } else { &app.duplicates };
                    counter.fetch_add(1, Ordering::Relaxed);
                    let _ = p.reply.send(Ok(new));
                }
            }
            Err(e) => {
                tracing::error!("{e}");
                for p in batch {
                    let _ = p.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

fn log_transition(ev: &StatusEvent) {
    use kubeboot_core::status::{Phase, PhaseState};
    match (ev.phase, ev.state) {
        (_, PhaseState::Failed) => tracing::warn!("{}", ev.console_line()),
        (Phase::Done, PhaseState::Succeeded) => tracing::info!("{}", ev.console_line()),
        _ => tracing::debug!("{}", ev.console_line()),
    }
}

/// Open the store, bind, print where it listens (via `on_listening`), and serve
/// until SIGINT/SIGTERM.
pub fn run(opts: ServeOptions, on_listening: impl FnOnce(&Listening)) -> Result<(), String> {
    let tokens = tokens::TokenFile::new(&opts.tokens);
    let grants = tokens.load().map_err(|e| e.to_string())?;
    if !grants.iter().any(|g| g.scope == tokens::Scope::Report) {
        tracing::warn!(
            "{} holds no report token: nodes cannot report until one is added \
             (kubeboot serve token add --scope report)",
            opts.tokens.display()
        );
    }
    std::fs::create_dir_all(&opts.data)
        .map_err(|e| format!("--data {}: {e}", opts.data.display()))?;
    let tls = opts
        .tls
        .as_ref()
        .map(|t| tls::load(t, &opts.data))
        .transpose()?;
    let (store, events) = Store::open(&opts.data).map_err(|e| e.to_string())?;
    let store = Arc::new(store);
    let stored = events.len() as u64;
    let mut nodes = Nodes::default();
    for ev in events {
        nodes.insert(ev);
    }
    let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
    let shared = Arc::new(Shared {
        nodes: RwLock::new(nodes),
        received: AtomicU64::new(stored),
        duplicates: AtomicU64::new(0),
    });
    let app = Arc::new(App {
        shared: shared.clone(),
        store: store.clone(),
        writer: tx,
        tokens,
        documents: match opts.bundle.clone() {
            None => None,
            Some(b) => {
                if opts.fresh_credentials {
                    if let Some(w) = documents::lease_warning(&b, opts.init_lease) {
                        tracing::warn!("{w}");
                    }
                }
                let election = opts
                    .fresh_credentials
                    .then(|| election::Election::load(store.clone(), opts.init_lease))
                    .transpose()?;
                Some(documents::Documents::new(
                    b,
                    opts.fresh_credentials,
                    election,
                    opts.mint_per_minute,
                    store.clone(),
                )?)
            }
        },
        groups: (opts.bundle.is_some() && opts.fresh_credentials).then(|| {
            groups::Groups::new(
                groups::GroupFile::new(opts.data.join(groups::FILE)),
                opts.data.clone(),
            )
        }),
        binder: report_binding::Binder::load_or_create(&opts.data)?,
        rejected: AtomicU64::new(0),
        minted: AtomicU64::new(0),
    });
    let writer_app = shared;
    let writer = std::thread::Builder::new()
        .name("kubeboot-store".into())
        .spawn(move || writer_loop(store, rx, writer_app))
        .map_err(|e| e.to_string())?;

    let listener = std::net::TcpListener::bind(opts.listen)
        .map_err(|e| format!("--listen {}: {e}", opts.listen))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{addr}");
    let node_count = app.shared.nodes.read().expect("nodes lock").len();
    on_listening(&Listening {
        report_url: format!("{url}/v1"),
        url,
        ca_cert_hash: tls.as_ref().map(|t| t.ca_cert_hash.clone()),
        ca_file: tls.as_ref().and_then(|t| t.ca_file.clone()),
        data: opts.data.clone(),
        events: stored,
        nodes: node_count,
    });

    let router = http::router(app.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("kubeboot-serve")
        .build()
        .map_err(|e| e.to_string())?;
    let sweeper = app
        .documents
        .as_ref()
        .is_some_and(|d| d.fresh())
        .then(|| app.clone());
    let served = runtime.block_on(async move {
        let handle = axum_server::Handle::new();
        let stopper = handle.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("stopping: finishing requests in flight");
            stopper.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
        });
        if let Some(app) = sweeper {
            tokio::spawn(sweep_minted_tokens(app));
        }
        let service = router.into_make_service();
        let limits = opts.limits;
        limits::raise_fd_limit();
        let slots = limits::Slots::new(limits.max_connections);
        match tls {
            Some(t) => {
                let config = axum_server::tls_rustls::RustlsConfig::from_config(t.config);
                let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(config)
                    .handshake_timeout(limits.header_timeout)
                    .acceptor(slots);
                let server = axum_server::from_tcp(listener)?.acceptor(acceptor);
                limits.bound(server).handle(handle).serve(service).await
            }
            None => {
                let server = axum_server::from_tcp(listener)?.acceptor(slots);
                limits.bound(server).handle(handle).serve(service).await
            }
        }
    });
    // Dropping the app's sender lets the writer finish what it has and stop.
    drop(runtime);
    drop(app);
    let _ = writer.join();
    served.map_err(|e| format!("serving on {addr}: {e}"))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
