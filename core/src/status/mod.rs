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

/// The receiver's API root. `https://host:8443` and `https://host:8443/v1` (with
/// or without a trailing slash) both name `https://host:8443/v1`, so a report URL
/// or a `watch --server` given either way reaches the same routes.
pub fn api_root(url: &str) -> String {
    let base = url.trim_end_matches('/');
    if base.ends_with("/v1") {
        base.to_string()
    } else {
        format!("{base}/v1")
    }
}

#[cfg(test)]
mod api_root_tests {
    use super::api_root;

    #[test]
    fn with_or_without_v1_both_name_the_same_root() {
        for given in [
            "https://10.0.2.100:8443",
            "https://10.0.2.100:8443/",
            "https://10.0.2.100:8443/v1",
            "https://10.0.2.100:8443/v1/",
        ] {
            assert_eq!(api_root(given), "https://10.0.2.100:8443/v1", "{given}");
        }
        assert_eq!(api_root("https://r.example/kb"), "https://r.example/kb/v1");
    }
}
