use crate::harness::*;

fn phases_on_console(node: &TestNode) -> Vec<String> {
    node.console()
        .iter()
        .map(|l| {
            l.split("] ")
                .nth(1)
                .unwrap()
                .split(" — ")
                .next()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn worker_joins_end_to_end() {
    let node = TestNode::new(WORKER);
    let out = node.agent(&[]);
    assert_exit(&out, 0);

    // kubeadm ran once: join with only --config, config 0600 and valid v1beta4.
    let calls = node.kubeadm_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let argv = node.kubeadm_argv(0);
    let config_path = node.path("/var/lib/kubeboot/kubeadm.yaml");
    assert_eq!(argv, ["join", "--config", config_path.to_str().unwrap()]);
    assert_eq!(calls[0]["config_mode"], "600");
    let config = calls[0]["config"].as_str().unwrap();
    assert!(config.contains("apiVersion: kubeadm.k8s.io/v1beta4"));
    assert!(
        config.contains("name: node-labels\n    value: node.kubernetes.io/pool=general"),
        "{config}"
    );

    // The host was prepared.
    for k in [
        "net/ipv4/ip_forward",
        "net/bridge/bridge-nf-call-iptables",
        "net/bridge/bridge-nf-call-ip6tables",
    ] {
        assert_eq!(node.read(&format!("/proc/sys/{k}")), "1", "{k}");
    }
    assert_eq!(
        node.read("/etc/modules-load.d/kubeboot.conf"),
        "overlay\nbr_netfilter\n"
    );
    assert!(node
        .read("/etc/sysctl.d/90-kubeboot.conf")
        .contains("net.ipv4.ip_forward = 1"));
    assert!(node.path("/etc/kubernetes/kubelet.conf").exists());

    // Every phase started and succeeded, in order, on the console.
    let expected: Vec<String> = [
        "source",
        "validate",
        "preflight",
        "prepare",
        "discover",
        "kubeadm",
        "ready",
        "done",
    ]
    .iter()
    .flat_map(|p| [format!("{p} started"), format!("{p} succeeded")])
    .collect();
    let seen: Vec<String> = phases_on_console(&node)
        .iter()
        .map(|l| l.split(" in ").next().unwrap().to_string())
        .collect();
    assert_eq!(seen, expected);
    assert!(node.console().last().unwrap().contains("node bootstrapped"));

    // status.json holds the last event; sequence numbers are per boot and increasing.
    let status = node.status_json();
    assert_eq!(status["phase"], "done");
    assert_eq!(status["state"], "succeeded");
    assert_eq!(status["node"], "worker-7");
    assert_eq!(status["role"], "worker");
    assert_eq!(status["seq"], 16);
    assert_eq!(status["machine_id"], "5f4dcc3b5aa765d61d8327deb882cf99");
    assert_eq!(status["boot_id"], "1b2c3d4e-0000-4000-8000-000000000001");

    // Files holding secrets are gone; the state says done.
    assert!(!node.path("/var/lib/kubeboot/kubeadm.yaml").exists());
    assert!(!node.path("/var/lib/kubeboot/node.toml").exists());
    let state = node.state_json();
    assert_eq!(state["outcome"], "done");
    assert_eq!(state["kubeadm_runs"], 1);

    // A second boot does nothing, and kubeadm never runs again.
    let again = node.agent(&[]);
    assert_exit(&again, 0);
    assert!(text(&again).contains("already bootstrapped"));
    assert_eq!(node.kubeadm_calls().len(), 1);

    // kubeboot status agrees, as text and JSON.
    let st = node
        .kubeboot(&["status", "--output", "json"])
        .output()
        .unwrap();
    assert_exit(&st, 0);
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(v["outcome"], "done");
    assert_eq!(v["phases"]["kubeadm"]["state"], "succeeded");
    let st = node.kubeboot(&["status"]).output().unwrap();
    assert!(String::from_utf8_lossy(&st.stdout).contains("node worker-7 (worker): done"));
}

#[test]
fn init_writes_the_pregenerated_ca_and_uploads_certs() {
    let node = TestNode::new(&init_doc());
    let out = node.agent(&[]);
    assert_exit(&out, 0);
    let calls = node.kubeadm_calls();
    assert_eq!(calls.len(), 1);
    let argv = node.kubeadm_argv(0);
    assert_eq!(argv[0], "init");
    assert_eq!(argv.last().map(String::as_str), Some("--upload-certs"));
    let config = calls[0]["config"].as_str().unwrap();
    assert!(
        config.contains("kind: InitConfiguration") && config.contains("kind: ClusterConfiguration")
    );
    assert!(config.contains(&format!("certificateKey: {CERT_KEY}")));
    assert!(config.contains(&format!("token: {TOKEN}")));
    assert!(config.contains("podSubnet: 10.244.0.0/16"));
    // The double used our CA instead of generating one ("Using existing ca").
    assert_eq!(node.read("/etc/kubernetes/pki/ca.crt"), test_ca().0);
    assert_eq!(node.read("/etc/kubernetes/pki/ca.key"), test_ca().1);
    assert_eq!(node.mode("/etc/kubernetes/pki/ca.key"), 0o600);
    assert_eq!(node.mode("/etc/kubernetes/pki/ca.crt"), 0o644);
    assert!(node.path("/etc/kubernetes/admin.conf").exists());
    assert_eq!(node.status_json()["phase"], "done");
}

/// An init document without `[node] advertise_address` on a host whose IPv4
/// network has no default route (qemu's restricted user network; an air-gapped
/// segment): the agent advertises the address it reaches the endpoint from (here
/// loopback), not what kubeadm would pick (the IPv6 default route's). With an IPv6
/// service range it leaves the choice to kubeadm.
#[test]
fn init_without_an_ipv4_default_route_advertises_its_address_toward_the_endpoint() {
    // The route table of such a host: its subnet, no default route.
    let table =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                 eth0\t0002000A\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n";
    let advertised = |doc: &str| {
        let node = TestNode::new(doc);
        write(&node.path("/proc/net/route"), table);
        let out = node.agent(&[]);
        assert_exit(&out, 0);
        let config = node.kubeadm_config(0);
        let line = config.lines().find(|l| l.contains("advertiseAddress"));
        // The agent's log (and the kubeadm succeeded event) says which and why.
        let said = text(&out);
        if line.is_some() {
            let why = "([node] advertise_address not set; no IPv4 default route: the one toward 127.0.0.1:";
            assert!(
                said.contains(&format!("kubeboot: advertising 127.0.0.1 {why}")),
                "{said}"
            );
        } else {
            assert!(!said.contains("advertising"), "{said}");
        }
        line.map(|l| l.trim().to_string())
    };
    assert_eq!(
        advertised(&init_doc()).as_deref(),
        Some("advertiseAddress: 127.0.0.1")
    );
    let ipv6 = init_doc().replace(
        "pod_subnet = \"10.244.0.0/16\"",
        "pod_subnet = \"fd00:10:244::/56\"\nservice_subnet = \"fd00:10:96::/112\"",
    );
    assert!(ipv6.contains("service_subnet"));
    assert_eq!(advertised(&ipv6), None);
}

#[test]
fn control_plane_joins_with_certificate_key() {
    let node = TestNode::new(CONTROL_PLANE);
    assert_exit(&node.agent(&[]), 0);
    let calls = node.kubeadm_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["argv"][0], "join");
    let config = calls[0]["config"].as_str().unwrap();
    assert!(config.contains(&format!("controlPlane:\n  localAPIEndpoint:\n    advertiseAddress: 10.0.0.12\n  certificateKey: {CERT_KEY}")), "{config}");
    assert!(node.path("/etc/kubernetes/admin.conf").exists());
}

#[test]
fn init_with_external_etcd_writes_inline_credentials() {
    let doc = init_doc().replace(
        "[discovery]",
        &format!(
            "[cluster.etcd]\nexternal_endpoints = [\"https://127.0.0.1:2379\"]\nca_cert = \"\"\"{ca}\"\"\"\ncert = \"\"\"{ca}\"\"\"\nkey = \"\"\"{key}\"\"\"\n[discovery]",
            ca = test_ca().0,
            key = test_ca().1
        ),
    );
    let node = TestNode::new(&doc);
    assert_exit(&node.agent(&[]), 0);
    let config = node.kubeadm_config(0);
    assert!(config.contains(
        "etcd:\n  external:\n    endpoints:\n    - https://127.0.0.1:2379\n    caFile: /etc/kubernetes/pki/external-etcd/ca.crt\n    certFile: /etc/kubernetes/pki/external-etcd/client.crt\n    keyFile: /etc/kubernetes/pki/external-etcd/client.key"
    ), "{config}");
    assert_eq!(
        node.mode("/etc/kubernetes/pki/external-etcd/client.key"),
        0o600
    );
    assert_eq!(
        node.read("/etc/kubernetes/pki/external-etcd/client.key"),
        test_ca().1
    );
}

#[test]
fn kubeadm_1_30_gets_v1beta3() {
    let node = TestNode::new(&WORKER.replace("v1.34.2", "v1.30.4"))
        .with_env("KUBEADM_TEST_DOUBLE_VERSION", "v1.30.4");
    // The kubelet stand-in says v1.34.2, newer than the cluster: preflight refuses.
    let out = node.agent(&[]);
    assert_exit(&out, 1);
    assert_eq!(node.status_json()["error"]["kind"], "version_skew");
    assert!(node.kubeadm_calls().is_empty());

    let node = TestNode::new(&WORKER.replace("kubernetes_version = \"v1.34.2\"\n", ""))
        .with_env("KUBEADM_TEST_DOUBLE_VERSION", "v1.30.4");
    assert_exit(&node.agent(&[]), 0);
    let config = node.kubeadm_config(0);
    assert!(config.contains("apiVersion: kubeadm.k8s.io/v1beta3"));
    assert!(
        config.contains("kubeletExtraArgs:\n    node-labels: node.kubernetes.io/pool=general"),
        "{config}"
    );
}

#[test]
fn dry_run_changes_nothing_and_shows_the_command() {
    let node = TestNode::new(&init_doc());
    let before = node.full_tree();
    let out = node.agent(&["--dry-run"]);
    assert_exit(&out, 0);
    assert_eq!(node.full_tree(), before, "dry run changed the host");
    let s = text(&out);
    assert!(
        s.contains("kubeadm init --config /var/lib/kubeboot/kubeadm.yaml --upload-certs"),
        "{s}"
    );
    assert!(s.contains("kind: ClusterConfiguration"));
    assert!(s.contains("token: <redacted>"));
    assert!(!s.contains(TOKEN) && !s.contains(CERT_KEY), "{s}");
    assert!(node.kubeadm_calls().is_empty());

    let out = node.agent(&[
        "--dry-run",
        "--output",
        "json",
        "--kubeadm-version",
        "v1.29.1",
    ]);
    assert_exit(&out, 0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kubeadm_api_version"], "kubeadm.k8s.io/v1beta3");
    assert_eq!(v["kubeadm_command"][1], "init");
    assert_eq!(v["plan"].as_array().unwrap().len(), 8);
}

#[test]
fn init_on_an_image_without_coredns_skips_the_addon_and_says_so() {
    let node = TestNode::new(&init_doc());
    write(
        &node.path("/usr/lib/kubeboot/image.toml"),
        "kubernetes_version = \"v1.34.2\"\noffline = true\ncoredns = false\n",
    );
    let out = node.agent(&[]);
    assert_exit(&out, 0);
    let config = node.kubeadm_config(0);
    assert!(config.contains("skipPhases:\n- addon/coredns"), "{config}");
    assert!(config.contains("imagePullPolicy: Never"), "{config}");
    // Said on the journal/console and kept in the node's record (`kubeboot status`);
    // the succeeded event carries it to the receiver (tests/e2e/real-cluster checks that).
    assert!(
        text(&out).contains("skipped kubeadm phase addon/coredns"),
        "{}",
        text(&out)
    );
    let tail = node.state_json()["log_tail"].to_string();
    assert!(
        tail.contains("skipped kubeadm phase addon/coredns") && tail.contains("no CoreDNS"),
        "{tail}"
    );
    // A worker never runs the addon phases: nothing to say there.
    let worker = TestNode::new(WORKER);
    write(
        &worker.path("/usr/lib/kubeboot/image.toml"),
        "offline = true\ncoredns = false\n",
    );
    let out = worker.agent(&[]);
    assert_exit(&out, 0);
    assert!(!text(&out).contains("addon/coredns"), "{}", text(&out));
}
