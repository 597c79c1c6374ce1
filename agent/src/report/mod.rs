//! The HTTPS reporter (docs/design.md §4): every status event also goes to
//! `POST {report.url}/nodes/{name}/events`.
//!
//! - `outbox`: events are queued on disk first, so a reboot or a dead receiver
//!   loses nothing; ids give the delivery order.
//! - `deliver`: a background thread sends them in order with jittered backoff.
//!
//! The agent never waits for the receiver while it works. When it has finished
//! it gives the thread `[report] drain_seconds` (default 30) to empty the queue;
//! whatever is left goes out on the next run. Before the document is known
//! (source, validate), events are held in memory: an invalid document leaves
//! nothing on disk.

mod deliver;
pub mod outbox;

use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;

use kubeboot_core::document::NodeDocument;
use kubeboot_core::host::Host;
use kubeboot_core::status::{StatusEvent, StatusSink};
pub use outbox::{Outbox, Target};

pub const DEFAULT_DRAIN_SECONDS: u64 = 30;

pub struct Reporter {
    host: Host,
    outbox: Arc<Outbox>,
    signal: Arc<deliver::Signal>,
    worker: Option<std::thread::JoinHandle<()>>,
    /// Events from before the document (and so the target) is known.
    held: Vec<StatusEvent>,
    mode: Mode,
}

#[derive(PartialEq)]
enum Mode {
    /// No document yet: hold events in memory.
    Waiting,
    /// Queue every event on disk.
    Queueing,
    /// The document has no `[report]`: nothing to do.
    Off,
}

impl Reporter {
    /// A reporter whose queue lives under `state_dir`. If an earlier run left a
    /// target and events behind, delivery resumes at once.
    pub fn new(host: Host, state_dir: &str) -> Reporter {
        let outbox = Arc::new(Outbox::new(host.clone(), state_dir));
        let mut reporter = Reporter {
            host,
            outbox,
            signal: Arc::default(),
            worker: None,
            held: Vec::new(),
            mode: Mode::Waiting,
        };
        if let Some(target) = reporter.outbox.target() {
            reporter.mode = Mode::Queueing;
            reporter.start(target);
        }
        reporter
    }

    fn start(&mut self, target: Target) {
        if self.worker.is_some() {
            return;
        }
        let courier = match deliver::Courier::new(target, self.host.root()) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("status reports cannot be sent: {e}; events stay queued");
                return;
            }
        };
        let (outbox, signal) = (self.outbox.clone(), self.signal.clone());
        self.worker = std::thread::Builder::new()
            .name("kubeboot-report".into())
            .spawn(move || deliver::run(outbox, courier, signal))
            .map_err(|e| tracing::warn!("could not start the status reporter: {e}"))
            .ok();
    }

    fn queue(&self, ev: &StatusEvent) {
        if let Err(e) = self.outbox.push(ev) {
            tracing::warn!("could not queue a status report: {e}");
        }
        self.signal.queued();
    }

    fn drain_seconds(&self) -> u64 {
        self.outbox
            .target()
            .map_or(DEFAULT_DRAIN_SECONDS, |t| t.drain_seconds)
    }
}

impl StatusSink for Reporter {
    fn emit(&mut self, ev: &StatusEvent) {
        match self.mode {
            Mode::Waiting => self.held.push(ev.clone()),
            Mode::Queueing => self.queue(ev),
            Mode::Off => {}
        }
    }

    fn adopt(&mut self, doc: &NodeDocument, node: &str) {
        if self.mode != Mode::Waiting {
            return;
        }
        let Some(r) = &doc.report else {
            self.mode = Mode::Off;
            self.held.clear();
            return;
        };
        let target = Target {
            url: r.url.clone(),
            token: r.token.as_ref().map(|t| t.expose_secret().to_string()),
            ca_cert_hash: r.ca_cert_hash.clone(),
            ca_file: r.ca_file.clone(),
            drain_seconds: r.drain_seconds.unwrap_or(DEFAULT_DRAIN_SECONDS),
        };
        if let Err(e) = self.outbox.save_target(&target) {
            tracing::warn!("status reports are off: {e}");
            self.mode = Mode::Off;
            return;
        }
        self.mode = Mode::Queueing;
        // The first events were emitted under the host name; the document may name the node.
        for mut ev in std::mem::take(&mut self.held) {
            ev.node = node.to_string();
            self.queue(&ev);
        }
        self.start(target);
    }

    fn close(&mut self) {
        let Some(worker) = self.worker.take() else {
            return;
        };
        let drain = self.drain_seconds();
        let left = self.outbox.pending().len();
        if left > 0 {
            tracing::info!("sending {left} queued status event(s) (waiting at most {drain}s)");
        }
        self.signal
            .finish_by(Instant::now() + Duration::from_secs(drain));
        let _ = worker.join();
    }
}
