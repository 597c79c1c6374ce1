use crate::harness::*;

fn run_without_document(node: &TestNode) -> std::process::Output {
    node.kubeboot(&["agent"]).output().unwrap()
}

#[test]
fn document_from_cloud_init_write_files() {
    let node = TestNode::new(WORKER);
    let doc = std::fs::read_to_string(&node.doc).unwrap();
    write(&node.path("/etc/kubeboot/node.toml"), &doc);
    assert_exit(&run_without_document(&node), 0);
    assert_eq!(
        node.state_json()["document_origin"],
        "file /etc/kubeboot/node.toml"
    );
    // done removes cloud-init's copy too: it holds the token.
    assert!(!node.path("/etc/kubeboot/node.toml").exists());
}

#[test]
fn document_as_raw_user_data() {
    let node = TestNode::new(WORKER);
    let doc = std::fs::read_to_string(&node.doc).unwrap();
    write(&node.path("/var/lib/cloud/instance/user-data.txt"), &doc);
    assert_exit(&run_without_document(&node), 0);
    assert!(node.state_json()["document_origin"]
        .as_str()
        .unwrap()
        .contains("user-data"));
}

#[test]
fn cloud_config_user_data_is_not_mistaken_for_a_document() {
    let node = TestNode::new(WORKER);
    write(
        &node.path("/var/lib/cloud/instance/user-data.txt"),
        "#cloud-config\nwrite_files: []\n",
    );
    let before = node.tree();
    let out = run_without_document(&node);
    assert_exit(&out, 1);
    assert!(text(&out).contains("no node document"), "{}", text(&out));
    assert_eq!(node.status_json()["error"]["kind"], "document_not_found");
    assert_eq!(node.tree(), before);
}

/// A --document that is not there is bad input (exit 2, as for render, seed, userdata),
/// said before anything is recorded: no status file, no state, the tree unchanged.
#[test]
fn a_missing_document_path_is_bad_input_and_changes_nothing() {
    let node = TestNode::new(WORKER);
    let before = node.tree();
    for args in [
        &["agent", "--document", "/nonexistent/missing.toml"][..],
        &[
            "agent",
            "--dry-run",
            "--document",
            "/nonexistent/missing.toml",
        ][..],
    ] {
        let out = node.kubeboot(args).output().unwrap();
        assert_exit(&out, 2);
        assert!(
            text(&out).contains("--document /nonexistent/missing.toml: no such file"),
            "{}",
            text(&out)
        );
    }
    assert!(!node.path("/run/kubeboot/status.json").exists());
    assert_eq!(node.tree(), before);
}

#[test]
fn unreachable_document_url_on_the_kernel_command_line() {
    let node = TestNode::new(WORKER);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    write(
        &node.path("/proc/cmdline"),
        &format!("console=ttyS0 kubeboot.url=https://{closed}/v1/documents/worker kubeboot.ca_hash={CA_HASH}\n"),
    );
    let before = node.tree();
    // Bounded: the fetch gives up after its attempts; this is a host with nothing listening.
    let out = node
        .kubeboot(&["agent", "--source-attempts", "2", "--source-timeout", "2"])
        .output()
        .unwrap();
    assert_exit(&out, 1);
    let st = node.status_json();
    assert_eq!(st["phase"], "source");
    assert_eq!(st["error"]["kind"], "document_fetch");
    assert!(st["error"]["message"]
        .as_str()
        .unwrap()
        .contains(&closed.to_string()));
    assert_eq!(node.tree(), before);
}

mod https {
    use crate::harness::*;
    use crate::tls_server::{make_pki, serve};

    fn pin(der: &[u8]) -> String {
        kubeboot_core::tls::ca_hash_of_der(der).unwrap()
    }

    #[test]
    fn kernel_command_line_url_with_pinned_ca() {
        let node = TestNode::new(WORKER);
        let doc = std::fs::read_to_string(&node.doc).unwrap();
        let pki = make_pki();
        let addr = serve(&pki, "/v1/documents/worker", &doc, None, 1);
        write(
            &node.path("/proc/cmdline"),
            &format!("console=ttyS0 kubeboot.url=https://{addr}/v1/documents/worker kubeboot.ca_hash={}\n", pin(&pki.ca_der)),
        );
        let out = node
            .kubeboot(&["agent", "--source-attempts", "1"])
            .output()
            .unwrap();
        assert_exit(&out, 0);
        assert_eq!(
            node.state_json()["document_origin"],
            format!("https://{addr}/v1/documents/worker")
        );
        assert_eq!(node.kubeadm_subcommands(), ["join"]);
    }

    #[test]
    fn a_server_with_another_ca_is_refused() {
        let node = TestNode::new(WORKER);
        let doc = std::fs::read_to_string(&node.doc).unwrap();
        let (pki, other) = (make_pki(), make_pki());
        let addr = serve(&pki, "/d", &doc, None, 1);
        write(
            &node.path("/proc/cmdline"),
            &format!(
                "kubeboot.url=https://{addr}/d kubeboot.ca_hash={}\n",
                pin(&other.ca_der)
            ),
        );
        let before = node.tree();
        // A pin mismatch is final: one attempt, not five with backoff between.
        let out = node
            .kubeboot(&["agent", "--source-attempts", "5"])
            .output()
            .unwrap();
        assert_exit(&out, 1);
        let st = node.status_json();
        assert_eq!(
            (st["phase"].as_str(), st["error"]["kind"].as_str()),
            (Some("source"), Some("document_fetch"))
        );
        let message = st["error"]["message"].as_str().unwrap();
        assert!(message.contains("matches the pinned hash"), "{st}");
        assert!(!message.contains("attempts"), "retried: {st}");
        assert_eq!(node.tree(), before);
        assert!(node.kubeadm_calls().is_empty());
    }

    /// A redirect to another origin — plain HTTP or another HTTPS server — is
    /// refused at once, and the document there is never fetched.
    #[test]
    fn redirects_to_another_origin_are_refused() {
        let pki = make_pki();
        let doc = std::fs::read_to_string(&TestNode::new(WORKER).doc).unwrap();
        let elsewhere = serve(&pki, "/d", &doc, None, 2);
        for target in [
            format!("http://{elsewhere}/d"),
            format!("https://localhost:{}/d", elsewhere.port()),
        ] {
            let node = TestNode::new(WORKER);
            let addr = serve(&pki, "/unused", "", None, 1);
            write(
                &node.path("/proc/cmdline"),
                &format!(
                    "kubeboot.url=https://{addr}/redirect?to={target} kubeboot.ca_hash={}\n",
                    pin(&pki.ca_der)
                ),
            );
            let before = node.tree();
            let out = node
                .kubeboot(&["agent", "--source-attempts", "5"])
                .output()
                .unwrap();
            assert_exit(&out, 1);
            let st = node.status_json();
            let message = st["error"]["message"].as_str().unwrap();
            assert!(
                message.contains("refused a redirect to another origin"),
                "{st}"
            );
            assert!(!message.contains("attempts"), "retried: {st}");
            assert_eq!(node.tree(), before);
            assert!(node.kubeadm_calls().is_empty());
        }
    }

    #[test]
    fn source_pointer_fetches_with_bearer_token() {
        let node = TestNode::new(WORKER);
        let doc = std::fs::read_to_string(&node.doc).unwrap();
        let pki = make_pki();
        let bearer = "s3cr3t-bearer-token-for-documents";
        let addr = serve(&pki, "/v1/documents/worker", &doc, Some(bearer), 2);
        let pointer = |token: &str| {
            format!(
                "version = 1\n[source]\nurl = \"https://{addr}/v1/documents/worker\"\nca_cert_hash = \"{}\"\ntoken = \"{token}\"\n",
                pin(&pki.ca_der)
            )
        };
        // A wrong token is refused by the server: a clear, non-retried error.
        node.set_doc(&pointer("wrong-token-wrong-token"));
        let out = node
            .kubeboot(&["agent", "--document", node.doc.to_str().unwrap()])
            .output()
            .unwrap();
        assert_exit(&out, 1);
        assert!(text(&out).contains("401"), "{}", text(&out));
        assert!(!text(&out).contains("wrong-token-wrong-token"));

        node.set_doc(&pointer(bearer));
        let out = node
            .kubeboot(&["agent", "--document", node.doc.to_str().unwrap()])
            .output()
            .unwrap();
        assert_exit(&out, 0);
        assert!(!text(&out).contains(bearer));
        assert!(node.state_json()["document_origin"]
            .as_str()
            .unwrap()
            .contains("via file"));
    }
}
