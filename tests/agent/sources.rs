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
