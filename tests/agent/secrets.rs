use std::fs;

use crate::harness::*;

/// A full init (whose kubeadm prints the join commands with the token and
/// certificate key, as the real one does) and a failing join: the secrets
/// appear in no output, status event, state file, console line or log.
#[test]
fn secrets_never_leak_into_outputs() {
    let key_body = test_ca().1.lines().nth(1).unwrap().to_string();
    let needles = [TOKEN, TOKEN_SECRET, CERT_KEY, key_body.as_str()];
    let mut outputs = Vec::new();

    let node = TestNode::new(&init_doc());
    let out = node.agent(&[]);
    assert_exit(&out, 0);
    // The double did print them: the agent saw them and redacted them.
    let tail = node.state_json()["log_tail"].to_string();
    assert!(tail.contains("<redacted>"), "{tail}");
    outputs.push(text(&out));
    outputs.push(text(&node.kubeboot(&["status"]).output().unwrap()));
    outputs.push(text(
        &node
            .kubeboot(&["status", "--output", "json"])
            .output()
            .unwrap(),
    ));
    outputs.push(text(&node.agent(&["--dry-run"])));
    outputs.push(text(&node.agent(&["--dry-run", "--output", "json"])));
    outputs.push(text(
        &node
            .kubeboot(&["render", "--document", node.doc.to_str().unwrap()])
            .output()
            .unwrap(),
    ));
    for f in [
        "/dev/console",
        "/run/kubeboot/status.json",
        "/var/lib/kubeboot/state.json",
    ] {
        outputs.push(node.read(f));
    }

    let failing = TestNode::new(CONTROL_PLANE).with_env("KUBEADM_TEST_DOUBLE_FAIL_TIMES", "10");
    let out = failing.agent(&[]);
    assert_exit(&out, 1);
    outputs.push(text(&out));
    for f in [
        "/dev/console",
        "/run/kubeboot/status.json",
        "/var/lib/kubeboot/state.json",
    ] {
        outputs.push(failing.read(f));
    }

    for (i, o) in outputs.iter().enumerate() {
        for n in needles {
            assert!(!o.contains(n), "output #{i} leaks a secret:\n{o}");
        }
    }
}

#[test]
fn render_shows_secrets_only_when_asked() {
    let node = TestNode::new(CONTROL_PLANE);
    let doc = node.doc.to_str().unwrap();
    let hidden = node
        .kubeboot(&["render", "--document", doc])
        .output()
        .unwrap();
    assert_exit(&hidden, 0);
    assert!(!text(&hidden).contains(CERT_KEY));
    let shown = node
        .kubeboot(&["render", "--document", doc, "--show-secrets"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&shown.stdout).contains(CERT_KEY));
}

#[test]
fn secret_files_are_0600_while_they_exist() {
    let node = TestNode::new(WORKER);
    let crashed = node.agent_env(&[("KUBEBOOT_TEST_CRASH", "kubeadm:after-effect")]);
    assert!(!crashed.status.success());
    assert_eq!(node.mode("/var/lib/kubeboot/kubeadm.yaml"), 0o600);
    assert_eq!(node.mode("/var/lib/kubeboot/node.toml"), 0o600);
    assert_eq!(node.mode("/var/lib/kubeboot"), 0o700);
    let doc = fs::read_to_string(node.path("/var/lib/kubeboot/node.toml")).unwrap();
    assert!(doc.contains(TOKEN), "the saved document is the real one");
}

/// cloud-init keeps copies of the user-data (raw, processed, merged
/// cloud-config, pickled datasource) under /var/lib/cloud/instance and
/// /var/lib/cloud/instances/<id>. `done` removes them, names what is left
/// elsewhere, and a later boot removes the copies cloud-init wrote again.
#[test]
fn done_removes_cloud_init_copies_and_names_what_is_left() {
    let node = TestNode::new(WORKER);
    let doc = fs::read_to_string(&node.doc).unwrap();
    let copies = [
        "user-data.txt",
        "user-data.txt.i",
        "cloud-config.txt",
        "obj.pkl",
    ];
    for dir in ["/var/lib/cloud/instance", "/var/lib/cloud/instances/iid-1"] {
        for f in copies {
            write(&node.path(&format!("{dir}/{f}")), &doc);
        }
    }
    let stray = "/var/lib/cloud/instance/scripts/runcmd";
    write(&node.path(stray), &format!("#!/bin/sh\necho {TOKEN}\n"));
    let out = node.kubeboot(&["agent"]).output().unwrap();
    assert_exit(&out, 0);

    for dir in ["/var/lib/cloud/instance", "/var/lib/cloud/instances/iid-1"] {
        for f in copies {
            assert!(!node.path(&format!("{dir}/{f}")).exists(), "{dir}/{f}");
        }
    }
    let status = node.status_json();
    assert_eq!(status["phase"], "done");
    let tail = status["log_tail"].to_string();
    assert!(tail.contains("removed 10 file(s)"), "{tail}");
    assert!(
        tail.contains(&format!("a bootstrap secret is still in {stray}")),
        "{tail}"
    );
    assert!(
        !tail.contains(TOKEN) && !tail.contains(TOKEN_SECRET),
        "{tail}"
    );

    // Without the stray file, done says nothing is left.
    let clean = TestNode::new(WORKER);
    let doc = fs::read_to_string(&clean.doc).unwrap();
    write(&clean.path("/var/lib/cloud/instance/user-data.txt"), &doc);
    assert_exit(&clean.kubeboot(&["agent"]).output().unwrap(), 0);
    let tail = clean.status_json()["log_tail"].to_string();
    assert!(
        tail.contains("no copy of this node's bootstrap secrets is left"),
        "{tail}"
    );

    // The next boot: cloud-init wrote its copies again; the done node removes them.
    write(&node.path("/var/lib/cloud/instance/user-data.txt"), &doc);
    write(&node.path("/var/lib/cloud/instances/iid-1/obj.pkl"), &doc);
    let out = node.kubeboot(&["agent"]).output().unwrap();
    assert_exit(&out, 0);
    assert!(!node.path("/var/lib/cloud/instance/user-data.txt").exists());
    assert!(!node.path("/var/lib/cloud/instances/iid-1/obj.pkl").exists());
}
