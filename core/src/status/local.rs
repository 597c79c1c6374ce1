//! Local status channels: journal (structured fields via tracing), console,
//! `/run/kubeboot/status.json`, and systemd's STATUS=/READY= notifications.

use super::{PhaseState, StatusEvent};
use crate::host::Host;

pub const STATUS_FILE: &str = "/run/kubeboot/status.json";

/// Anything that wants each status event (the HTTPS reporter is another one).
pub trait StatusSink {
    fn emit(&mut self, event: &StatusEvent);
    /// The node document is known (after validation, or when resuming), and
    /// with it the node's name.
    fn adopt(&mut self, _doc: &crate::document::NodeDocument, _node: &str) {}
    /// The agent is about to exit.
    fn close(&mut self) {}
}

pub struct LocalChannels {
    host: Host,
    notify: bool,
}

impl LocalChannels {
    pub fn new(host: Host) -> LocalChannels {
        let notify = std::env::var_os("NOTIFY_SOCKET").is_some();
        LocalChannels { host, notify }
    }
}

impl StatusSink for LocalChannels {
    fn emit(&mut self, ev: &StatusEvent) {
        journal(ev);
        let line = ev.console_line();
        self.host.append_line_if_exists("/dev/console", &line);
        match serde_json::to_vec_pretty(ev) {
            Ok(json) => {
                if let Err(e) = self.host.write_atomic(STATUS_FILE, &json, 0o644) {
                    tracing::warn!("could not write {STATUS_FILE}: {e}");
                }
            }
            Err(e) => tracing::warn!("could not encode status: {e}"),
        }
        if self.notify {
            let mut states = vec![sd_notify::NotifyState::Status(&line)];
            let finished = ev.state == PhaseState::Failed
                || (ev.phase == super::Phase::Done && ev.state == PhaseState::Succeeded);
            if finished {
                states.push(sd_notify::NotifyState::Ready);
            }
            let _ = sd_notify::notify(false, &states);
        }
    }
}

fn journal(ev: &StatusEvent) {
    let error_kind = ev
        .error
        .as_ref()
        .map(|e| e.kind.as_str())
        .unwrap_or_default();
    let error_message = ev.error.as_ref().map(|e| e.message.as_str()).unwrap_or("");
    let role = ev.role.map(|r| r.as_str()).unwrap_or("");
    macro_rules! emit {
        ($level:ident) => {
            tracing::$level!(
                node = %ev.node,
                role,
                phase = ev.phase.as_str(),
                state = ev.state.as_str(),
                attempt = ev.attempt,
                seq = ev.seq,
                error_kind = %error_kind,
                error_message,
                "{}",
                ev.console_line()
            )
        };
    }
    match ev.state {
        PhaseState::Failed => emit!(error),
        PhaseState::Retrying => emit!(warn),
        _ => emit!(info),
    }
}
