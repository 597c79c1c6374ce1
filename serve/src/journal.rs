//! serve's own status events: what it did on its own authority while answering a
//! document request (a credential minted, an init node elected, a dead machine's
//! Node removed). They are kept in the store beside the nodes' events, survive a
//! restart, and are served at `GET /v1/serve/events` and on the dashboard, so an
//! operator can audit every credential serve ever handed out. No secrets: a
//! bootstrap token is named by its id, a certificate upload by its expiry.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What serve did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// A bootstrap token, or certificates re-uploaded under a new certificate key.
    CredentialMinted,
    /// A control plane chosen to run `kubeadm init`.
    InitElected,
    /// The operator reset the init election (`serve election reset --yes`).
    ElectionReset,
    /// A dead machine's Node deleted before its replacement joins.
    StaleNodeRemoved,
    /// Anything else worth keeping (e.g. a Kubernetes Event that could not be written).
    Note,
}

/// One thing done for a document, before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub kind: ActionKind,
    pub message: String,
}

impl Action {
    pub fn minted(message: String) -> Action {
        Action {
            kind: ActionKind::CredentialMinted,
            message,
        }
    }

    pub fn new(kind: ActionKind, message: String) -> Action {
        Action { kind, message }
    }
}

/// One of serve's own events, as stored and served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServeEvent {
    /// Increasing across serve's lifetime (the store's id).
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub kind: ActionKind,
    pub message: String,
    /// The request it was done for, e.g. `worker document for w1 (group workers)`.
    pub request: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<String>,
}

impl ServeEvent {
    /// The events for one answered request (their seq is set when stored).
    pub fn for_request(
        actions: &[Action],
        request: &str,
        node: Option<(&str, &str)>,
        at: DateTime<Utc>,
    ) -> Vec<ServeEvent> {
        actions
            .iter()
            .map(|a| ServeEvent {
                seq: 0,
                at,
                kind: a.kind,
                message: a.message.clone(),
                request: request.to_string(),
                node: node.map(|(n, _)| n.to_string()),
                machine_id: node.map(|(_, m)| m.to_string()),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_name_the_request_and_node_and_serialise_in_snake_case() {
        let at = "2026-11-29T10:00:00Z".parse().unwrap();
        let actions = [
            Action::minted("bootstrap token abcdef (expires 2026-11-29T11:00:00Z)".into()),
            Action::new(ActionKind::StaleNodeRemoved, "removed Node w1".into()),
        ];
        let events = ServeEvent::for_request(
            &actions,
            "worker document for w1 (group workers)",
            Some(("w1", "0123456789abcdef")),
            at,
        );
        assert_eq!(events.len(), 2);
        let json = serde_json::to_value(&events[0]).unwrap();
        assert_eq!(json["kind"], "credential_minted");
        assert_eq!(json["node"], "w1");
        assert_eq!(json["machine_id"], "0123456789abcdef");
        assert_eq!(events[1].kind, ActionKind::StaleNodeRemoved);
        let back: ServeEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, events[0]);
        let anonymous = ServeEvent::for_request(&actions[..1], "worker document", None, at);
        assert!(!serde_json::to_string(&anonymous[0])
            .unwrap()
            .contains("node"));
    }
}
