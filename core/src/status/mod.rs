//! Status (docs/design.md §4): one event type, emitted on every phase change to
//! every channel. This module defines the event (the wire format the HTTPS
//! reporter and `kubeboot serve` share) and the local channels.

mod event;
mod local;

pub use event::{
    ErrorKind, ErrorReport, Phase, PhaseState, StatusEvent, HEARTBEAT, LOG_TAIL_MAX_LINES,
    MAX_EVENT_BYTES,
};
pub use local::{LocalChannels, StatusSink, STATUS_FILE};
