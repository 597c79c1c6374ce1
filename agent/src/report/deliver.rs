//! The delivery thread: sends the outbox in order, one event at a time, and
//! removes each only once the receiver has acknowledged it (2xx; a duplicate
//! is acknowledged too). Failures back off with jitter; nothing here ever
//! blocks or fails the agent's own work.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::outbox::{Outbox, Target};
use kubeboot_core::backoff::Backoff;
use kubeboot_core::tls;

/// Once the agent is finishing: after this many failed tries in a row the thread
/// stops and leaves the queue for the next run (next boot, or `kubeboot agent`
/// again). While the agent still runs it keeps trying (at most every 30 s, and
/// at once on each new event): an elected init node's heartbeats must reach a
/// serve that was down for a while.
pub const MAX_ATTEMPTS: u32 = 30;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct Signal {
    state: Mutex<SignalState>,
    wake: Condvar,
}

#[derive(Default)]
struct SignalState {
    /// New events were queued.
    queued: bool,
    /// Stop once the queue is empty or this instant has passed.
    finish_by: Option<Instant>,
}

impl Signal {
    pub fn queued(&self) {
        self.state.lock().expect("signal").queued = true;
        self.wake.notify_all();
    }

    pub fn finish_by(&self, deadline: Instant) {
        self.state.lock().expect("signal").finish_by = Some(deadline);
        self.wake.notify_all();
    }

    fn deadline(&self) -> Option<Instant> {
        self.state.lock().expect("signal").finish_by
    }

    /// Sleep up to `d`, waking early when asked to finish or (if `on_queue`) when events arrive.
    fn sleep(&self, d: Duration, on_queue: bool) {
        let until = Instant::now() + d;
        let mut st = self.state.lock().expect("signal");
        loop {
            if (on_queue && st.queued) || st.finish_by.is_some_and(|f| Instant::now() >= f) {
                break;
            }
            let now = Instant::now();
            if now >= until {
                break;
            }
            let mut wait = until - now;
            if let Some(f) = st.finish_by {
                wait = wait.min(f.saturating_duration_since(now));
            }
            st = self.wake.wait_timeout(st, wait).expect("signal").0;
        }
        st.queued = false;
    }
}

enum Sent {
    Acknowledged,
    /// The receiver will never take this event (400, 404, 413): drop it.
    Refused(String),
    Retry(String),
}

pub struct Courier {
    target: Target,
    client: reqwest::blocking::Client,
    backoff: Backoff,
}

impl Courier {
    pub fn new(target: Target, root: &std::path::Path) -> Result<Courier, String> {
        let ca_file = target
            .ca_file
            .as_ref()
            .map(|f| root.join(f.trim_start_matches('/')));
        let config = tls::client_config_for(
            target.ca_cert_hash.as_deref(),
            ca_file.as_deref(),
            "report.ca_file",
        )?;
        let client = tls::https_client(config, REQUEST_TIMEOUT).map_err(|e| e.to_string())?;
        Ok(Courier {
            target,
            client,
            backoff: Backoff::new(0.5, 30.0),
        })
    }

    fn send(&self, body: Vec<u8>) -> Sent {
        let node = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("node").and_then(|n| n.as_str()).map(str::to_string));
        let Some(node) = node else {
            return Sent::Refused("queued event is unreadable".into());
        };
        let url = format!(
            "{}/nodes/{}/events",
            kubeboot_core::status::api_root(&self.target.url),
            node
        );
        let mut req = self
            .client
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(t) = &self.target.token {
            req = req.bearer_auth(t);
        }
        match req.send() {
            Ok(resp) if resp.status().is_success() => Sent::Acknowledged,
            Ok(resp) => {
                let status = resp.status();
                let why = resp.text().unwrap_or_default();
                let why = format!(
                    "{url}: {status}: {}",
                    why.trim().chars().take(300).collect::<String>()
                );
                match status.as_u16() {
                    400 | 404 | 413 | 422 => Sent::Refused(why),
                    _ => Sent::Retry(why),
                }
            }
            Err(e) => Sent::Retry(format!("{url}: {}", tls::describe_http_error(&e))),
        }
    }
}

/// Deliver in order until asked to finish and the queue is empty. When
/// finishing, a reachable receiver still gets everything; an unreachable one
/// costs at most the drain time, or MAX_ATTEMPTS failures in a row.
pub fn run(outbox: Arc<Outbox>, courier: Courier, signal: Arc<Signal>) {
    let mut attempt = 0u32;
    loop {
        let Some((_, path)) = outbox.pending().into_iter().next() else {
            if signal.deadline().is_some() {
                // The agent queues its last event and then sets the deadline: an
                // empty look taken before the deadline may have missed that event.
                if !outbox.pending().is_empty() {
                    continue;
                }
                outbox.retire_if_empty();
                return;
            }
            signal.sleep(Duration::from_secs(5), true);
            continue;
        };
        let body = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("queued event {} unreadable ({e}); dropped", path.display());
                outbox.remove(&path);
                continue;
            }
        };
        match courier.send(body) {
            Sent::Acknowledged => {
                attempt = 0;
                outbox.remove(&path);
            }
            Sent::Refused(why) => {
                attempt = 0;
                tracing::warn!("the receiver refused a status event, dropped: {why}");
                outbox.remove(&path);
            }
            Sent::Retry(why) => {
                attempt += 1;
                let deadline = signal.deadline();
                let out_of_time = deadline.is_some_and(|f| Instant::now() >= f);
                if out_of_time || (deadline.is_some() && attempt >= MAX_ATTEMPTS) {
                    let left = outbox.pending().len();
                    tracing::warn!(
                        "status receiver unreachable ({why}); {left} event(s) stay queued for the next run"
                    );
                    return;
                }
                if attempt == 1 || attempt.is_multiple_of(5) {
                    tracing::info!("status receiver not reachable yet: {why}");
                }
                // A new event cuts the wait short: the agent starts before the
                // network, and its next event (the host checks start once the
                // network is up) is the moment the receiver becomes reachable.
                signal.sleep(courier.backoff.delay(attempt), true);
            }
        }
    }
}
