//! The validation tests, across every table.

use super::discovery::is_go_duration;
use super::node::kubelet_may_set_label;
use super::*;

#[test]
fn go_durations() {
    for ok in ["0", "24h0m0s", "2h", "90m", "1.5h"] {
        assert!(is_go_duration(ok), "{ok}");
    }
    for bad in ["", "h", "24", "1d", "-1h"] {
        assert!(!is_go_duration(bad), "{bad}");
    }
}

#[test]
fn a_pointer_needs_https_a_well_formed_pin_and_nothing_else() {
    let pin = format!("sha256:{}", "ab".repeat(32));
    let ok = format!(
        "version = 1\n[source]\nurl = \"https://serve:8443/v1/groups/g/document\"\nca_cert_hash = \"{pin}\"\ntoken = \"s3cret-credential\"\n"
    );
    assert!(validate_pointer(&super::super::parse(&ok).unwrap()).is_ok());

    let fields = |text: &str| -> Vec<String> {
        let e = validate_pointer(&super::super::parse(text).unwrap()).unwrap_err();
        assert!(!e.to_string().contains("s3cret-credential"), "{e}");
        e.errors.into_iter().map(|f| f.field).collect()
    };
    assert_eq!(fields(&ok.replace("https://", "http://")), ["source.url"]);
    assert_eq!(
        fields(&ok.replace(&pin, "sha256:abc")),
        ["source.ca_cert_hash"]
    );
    assert_eq!(
        fields(&ok.replace("version = 1\n", "version = 1\nrole = \"worker\"\n")),
        ["source"]
    );
    assert_eq!(
        fields(&ok.replace("version = 1", "version = 7")),
        ["version"]
    );
}

#[test]
fn kubelet_label_rules() {
    assert!(kubelet_may_set_label("topology.kubernetes.io/zone"));
    assert!(kubelet_may_set_label("example.com/pool"));
    assert!(kubelet_may_set_label("node.kubernetes.io/pool"));
    assert!(kubelet_may_set_label("plain"));
    assert!(!kubelet_may_set_label("node-role.kubernetes.io/worker"));
    assert!(!kubelet_may_set_label("kubernetes.io/role"));
}
