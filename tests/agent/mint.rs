//! `kubeboot serve`'s fresh join credentials against a real control plane on
//! loopback (its own: the certificate upload replaces the shared one's key):
//! a minted bootstrap token is what real `kubeadm token list` shows and passes
//! the agent's discovery once the real bootstrapsigner has signed cluster-info;
//! a minted certificate key opens the re-uploaded certificates with real
//! `kubeadm join phase control-plane-prepare download-certs`, and another key does not.

use std::time::Duration;

use kubeboot_kube::client::block_on;
use kubeboot_serve::mint::{self, Usage};
use secrecy::ExposeSecret;

use crate::control_plane::{self, ControlPlane};
use crate::harness::{assert_exit, text};
use crate::real_control_plane::{discover, worker_doc};
use crate::receiver::Receiver;

/// The line of `kubeadm token list` (real kubeadm, as admin) for token `id`.
fn token_list_line(cp: &ControlPlane, id: &str) -> String {
    let admin_conf = cp.admin_conf();
    let list = kubeadm(
        cp,
        &[
            "token",
            "list",
            "--kubeconfig",
            admin_conf.to_str().unwrap(),
        ],
    );
    assert!(list.status.success(), "{}", text(&list));
    let listed = String::from_utf8_lossy(&list.stdout).into_owned();
    listed
        .lines()
        .find(|l| l.starts_with(&format!("{id}.")))
        .unwrap_or_else(|| panic!("token {id} not in kubeadm token list:\n{listed}"))
        .to_string()
}

fn kubeadm(cp: &ControlPlane, args: &[&str]) -> std::process::Output {
    std::process::Command::new(cp.bin.join("kubeadm"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
#[ignore = "needs real Kubernetes: KUBEBOOT_KUBERNETES (docs/real-kubernetes.md)"]
fn minted_tokens_and_certificate_keys_work_with_real_kubeadm() {
    let cp = control_plane::own();
    // One runtime per call: a kube client lives on the runtime that made it.
    let admin_conf = cp.admin_conf();
    let (token, _) = block_on(async {
        let admin = kubeboot_kube::client::client(&admin_conf).await?;
        mint::bootstrap_token(
            &admin,
            Duration::from_secs(3600),
            Usage::Join,
            "kubeboot serve: worker document for w-1",
        )
        .await
    })
    .unwrap();

    // Real kubeadm lists it, with kubeadm's usages and group.
    let line = token_list_line(&cp, &token.id);
    assert!(line.contains("authentication,signing"), "{line}");
    assert!(line.contains("worker document for w-1"), "{line}");
    assert!(line.contains(mint::NODE_GROUP), "{line}");

    // The agent's discovery accepts it once the bootstrapsigner has signed for it.
    let doc = worker_doc(&cp, token.token.expose_secret(), &cp.ca_hash, 60);
    let out = discover(&doc, 60);
    assert_exit(&out, 0);
    assert!(!text(&out).contains(token.token.expose_secret()));

    // Certificates re-uploaded under a fresh key; kubeadm's own download opens them.
    let files = mint::read_pki(&cp.dir.join("pki")).unwrap();
    assert_eq!(files.len(), 8, "{:?}", files.keys());
    let uploaded = block_on(async {
        let admin = kubeboot_kube::client::client(&admin_conf).await?;
        mint::upload_certs(&admin, &files, Duration::from_secs(2 * 3600)).await
    })
    .unwrap();
    let owner = cp.kubectl_ok(&[
        "-n",
        "kube-system",
        "get",
        "secret",
        "kubeadm-certs",
        "-o",
        "jsonpath={.metadata.ownerReferences[0].name}",
    ]);
    assert!(owner.starts_with("bootstrap-token-"), "{owner}");
    assert!(
        !owner.contains(&token.id),
        "the certificates get an owner of their own"
    );

    // What kubeadm's `upload-config kubelet` phase makes (that phase also annotates
    // a Node, which this loopback plane has none of): the join reads it first.
    let kubelet_config = cp.dir.join("kubelet-config.yaml");
    std::fs::write(
        &kubelet_config,
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\n",
    )
    .unwrap();
    let ns = ["-n", "kube-system"];
    let from = format!("--from-file=kubelet={}", kubelet_config.display());
    cp.kubectl_ok(&[ns[0], ns[1], "create", "configmap", "kubelet-config", &from]);
    cp.kubectl_ok(&[
        ns[0],
        ns[1],
        "create",
        "role",
        "kubeadm:kubelet-config",
        "--verb=get",
        "--resource=configmaps",
        "--resource-name=kubelet-config",
    ]);
    cp.kubectl_ok(&[
        ns[0],
        ns[1],
        "create",
        "rolebinding",
        "kubeadm:kubelet-config",
        "--role=kubeadm:kubelet-config",
        &format!("--group={}", mint::NODE_GROUP),
    ]);

    let download = |key: &str| {
        kubeadm(
            &cp,
            &[
                "join",
                "phase",
                "control-plane-prepare",
                "download-certs",
                &cp.endpoint,
                "--control-plane",
                "--certificate-key",
                key,
                "--discovery-token",
                token.token.expose_secret(),
                "--discovery-token-ca-cert-hash",
                &cp.ca_hash,
            ],
        )
    };
    // kubeadm writes what it downloads into the cluster's certificatesDir (this
    // control plane's own pki/): a removed key file comes back, byte for byte.
    let probe = cp.pki("front-proxy-ca.key");
    let before = std::fs::read(&probe).unwrap();
    std::fs::remove_file(&probe).unwrap();
    let wrong = crate::harness::CERT_KEY;
    let refused = download(wrong);
    assert!(!refused.status.success(), "a wrong key must not open them");
    let why = text(&refused);
    assert!(
        why.contains("error decoding secret data with provided key"),
        "{why}"
    );
    assert!(!probe.exists());
    let out = download(uploaded.key.expose_secret());
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read(&probe).unwrap(), before);
}

/// The served document's `[discovery]` table.
fn served_discovery(r: &Receiver, role: &str, token: &str) -> toml::Table {
    let (status, body) = r.get_as(&format!("/v1/documents/{role}"), Some(token));
    assert_eq!(status, 200, "{body}");
    let doc: toml::Table = body.parse().unwrap();
    doc["discovery"].as_table().unwrap().clone()
}

/// `kubeboot serve --bundle B --fresh-credentials` against the real cluster made
/// from bundle B: every join document carries a token of its own that real
/// kubeadm lists; control-plane documents share one fresh upload, whose key opens
/// the real kubeadm-certs Secret; the init document stays the bundle's.
#[test]
#[ignore = "needs real Kubernetes: KUBEBOOT_KUBERNETES (docs/real-kubernetes.md)"]
fn serve_hands_out_documents_with_credentials_minted_in_the_cluster() {
    let cp = control_plane::own();
    let bundle = cp.dir.join("bundle");
    let mut r =
        Receiver::start_with(&["--bundle", bundle.to_str().unwrap(), "--fresh-credentials"]);
    let worker = r.mint(&["--scope", "documents:worker"]);
    let control = r.mint(&["--scope", "documents:control-plane"]);
    let init = r.mint(&["--scope", "documents:init"]);
    let original: toml::Table = std::fs::read_to_string(bundle.join("discovery.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let bundle_token = original["token"].as_str().unwrap();
    let bundle_key = original["certificate_key"].as_str().unwrap();

    let w1 = served_discovery(&r, "worker", &worker);
    let w2 = served_discovery(&r, "worker", &worker);
    let c1 = served_discovery(&r, "control-plane", &control);
    let c2 = served_discovery(&r, "control-plane", &control);
    let tokens: Vec<&str> = [&w1, &w2, &c1, &c2]
        .iter()
        .map(|d| d["token"].as_str().unwrap())
        .collect();
    let mut distinct = tokens.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "one token per document");
    assert!(!tokens.contains(&bundle_token));

    for t in &tokens {
        let line = token_list_line(&cp, t.split('.').next().unwrap());
        assert!(line.contains("authentication,signing"), "{line}");
    }

    // Both control planes got the key of one upload, and it opens the real Secret.
    let key = c1["certificate_key"].as_str().unwrap();
    assert_eq!(c2["certificate_key"].as_str().unwrap(), key);
    assert_ne!(key, bundle_key);
    assert!(!w1.contains_key("certificate_key"));
    let secret: serde_json::Value = serde_json::from_str(&cp.kubectl_ok(&[
        "-n",
        "kube-system",
        "get",
        "secret",
        "kubeadm-certs",
        "-o",
        "json",
    ]))
    .unwrap();
    use base64::Engine;
    let data: std::collections::BTreeMap<String, Vec<u8>> = secret["data"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap())
                .unwrap();
            (k.clone(), bytes)
        })
        .collect();
    let opened = kubeboot_kube::replace::uploaded_certs::open(
        &data,
        &secrecy::SecretString::from(key.to_string()),
    )
    .unwrap();
    assert_eq!(
        opened.pem("ca.crt").unwrap().expose_secret(),
        &std::fs::read_to_string(bundle.join("pki/ca.crt")).unwrap()
    );

    // The cluster answers: the init document (the CA keys) does not leave serve,
    // not even for an init token; the counter saw 4 tokens and 1 upload.
    let (status, body) = r.get_as_node("/v1/documents/init", &init, "cp-x", &"ab".repeat(16));
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("initialised"), "{body}");
    let (_, metrics) = r.get("/metrics");
    assert!(
        metrics.contains("kubeboot_credentials_minted_total 5"),
        "{metrics}"
    );
    // A restarted serve hands out the same upload's key (kept sealed in its
    // store): a join that got it before the restart still opens the Secret.
    r.restart();
    let c3 = served_discovery(&r, "control-plane", &control);
    assert_eq!(c3["certificate_key"].as_str().unwrap(), key);
    // A worker replacing a machine of the same name: serve (cluster-admin) deletes the
    // stale Node first and records an Event; a Ready Node of that name is a 409; a
    // Node carrying the asker's own machine id is its own and stays.
    let grace = bundle.join("nodes/worker.toml");
    let mut worker_toml = std::fs::read_to_string(&grace).unwrap();
    assert!(!worker_toml.contains("[replace]"), "{worker_toml}");
    worker_toml.push_str("\n[replace]\ngrace_seconds = 1\n");
    std::fs::write(&grace, worker_toml).unwrap();
    for (name, machine) in [("w-old", "aa"), ("w-live", "aa"), ("w-mine", "cc")] {
        let node = format!(
            r#"{{"apiVersion":"v1","kind":"Node","metadata":{{"name":"{name}","annotations":{{"kubeboot.io/machine-id":"{}"}}}}}}"#,
            machine.repeat(16)
        );
        let file = cp.dir.join(format!("{name}.json"));
        std::fs::write(&file, node).unwrap();
        cp.kubectl_ok(&["create", "-f", file.to_str().unwrap()]);
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    cp.kubectl_ok(&[
        "patch", "node", "w-live", "--subresource=status", "--type=merge", "-p",
        &format!(r#"{{"status":{{"conditions":[{{"type":"Ready","status":"True","reason":"KubeletReady","message":"ok","lastHeartbeatTime":"{now}","lastTransitionTime":"{now}"}}]}}}}"#),
    ]);
    std::thread::sleep(std::time::Duration::from_secs(2));
    let as_node = |name: &str, machine: &str| {
        r.get_as_node("/v1/documents/worker", &worker, name, &machine.repeat(16))
    };
    let (status, body) = as_node("w-old", "bb");
    assert_eq!(status, 200, "{body}");
    let gone = cp.kubectl(&["get", "node", "w-old"]);
    assert!(!gone.status.success(), "the stale Node must be gone");
    let events = cp.event_messages("w-old", "KubebootRemovedStaleNode");
    assert!(events.contains("removed Node w-old"), "{events}");
    let (status, body) = as_node("w-live", "bb");
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("a Ready Node named w-live exists"), "{body}");
    let (status, body) = as_node("w-mine", "cc");
    assert_eq!(status, 200, "{body}");
    cp.kubectl_ok(&["get", "node", "w-mine"]);
    // A silent control-plane Node is never a worker's to replace.
    let create = |file: &str, json: &str| {
        let path = cp.dir.join(file);
        std::fs::write(&path, json).unwrap();
        cp.kubectl_ok(&["create", "-f", path.to_str().unwrap()]);
    };
    create(
        "cp-silent.json",
        r#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"cp-silent","labels":{"node-role.kubernetes.io/control-plane":""}}}"#,
    );
    std::thread::sleep(std::time::Duration::from_secs(2));
    let (status, body) = as_node("cp-silent", "dd");
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("is a control plane"), "{body}");
    cp.kubectl_ok(&["get", "node", "cp-silent"]);
    // A NotReady Node whose kubelet still renews its Lease (kube-node-lease) is alive,
    // however old its status: the Lease is read. (renewTime a little ahead, as from a
    // kubelet whose clock runs fast, so the 1 s grace cannot pass during the test.)
    create(
        "w-leased.json",
        r#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"w-leased"}}"#,
    );
    let renewed = (chrono::Utc::now() + chrono::Duration::seconds(30))
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    create(
        "w-leased-lease.json",
        &format!(
            r#"{{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{{"name":"w-leased","namespace":"kube-node-lease"}},"spec":{{"holderIdentity":"w-leased","leaseDurationSeconds":40,"renewTime":"{renewed}"}}}}"#
        ),
    );
    std::thread::sleep(std::time::Duration::from_secs(2));
    let (status, body) = as_node("w-leased", "bb");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("not Ready; its kubelet was heard"), "{body}");
    cp.kubectl_ok(&["get", "node", "w-leased"]);

    // serve's log names what it minted by id, never the secrets.
    let log = r.log();
    assert!(
        log.contains("worker document (token ") && log.contains("): bootstrap token "),
        "{log}"
    );
    for t in &tokens {
        assert!(!log.contains(t), "a token reached serve's log");
    }
    assert!(
        !log.contains(key),
        "the certificate key reached serve's log"
    );

    // Every mint is one of serve's own events (stored, served, shown), by id, never the secret.
    let (status, body) = r.get("/v1/serve/events");
    assert_eq!(status, 200, "{body}");
    for t in &tokens {
        assert!(!body.contains(t), "a token reached serve's events");
    }
    assert!(
        !body.contains(key),
        "the certificate key reached serve's events"
    );
    let journal: serde_json::Value = serde_json::from_str(&body).unwrap();
    let events = journal["events"].as_array().unwrap();
    let of = |kind: &str| -> Vec<&serde_json::Value> {
        events.iter().filter(|e| e["kind"] == kind).collect()
    };
    // 4 join documents + 1 upload, then w-old's and w-mine's tokens (w-live: 409 and
    // w-leased: 503 before anything is minted).
    let minted = of("credential_minted");
    assert_eq!(minted.len(), 7, "{body}");
    assert_eq!(
        minted
            .iter()
            .filter(|e| e["message"]
                .as_str()
                .unwrap()
                .starts_with("certificates re-uploaded"))
            .count(),
        1,
        "{body}"
    );
    let removed = of("stale_node_removed");
    assert_eq!(removed.len(), 1, "{body}");
    assert_eq!(removed[0]["node"], "w-old");
    assert_eq!(removed[0]["machine_id"], "bb".repeat(16));
    assert!(removed[0]["message"]
        .as_str()
        .unwrap()
        .contains("removed Node w-old"));
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (0..events.len() as u64).collect::<Vec<_>>());
    let (_, page) = r.get(&format!("/v1/serve/events?from={}", events.len()));
    assert!(page.contains("\"events\":[]"), "{page}");
    // …and on the dashboard, in a real browser.
    let dom = crate::dashboard::browse(&r, &r.ca_hash, "/", &["--dump-dom"]);
    assert_eq!(
        dom.matches("data-kind=\"credential_minted\"").count(),
        7,
        "{dom}"
    );
    assert!(
        dom.contains("data-kind=\"stale_node_removed\"") && dom.contains("removed Node w-old"),
        "{dom}"
    );
}

/// `kubeboot serve group add` and `/v1/groups/NAME/document` against the real
/// cluster: one user-data for the whole group; each machine gets a document of its
/// own (a token minted for it that real kubeadm lists, the group's label, a report
/// target whose token serve accepts); a machine asking again is not counted twice,
/// one beyond --max-nodes is refused (also after a restart of serve); a wrong
/// credential, a request that does not name its machine, a revoked group get
/// nothing; serve's log holds none of the secrets.
#[test]
#[ignore = "needs real Kubernetes: KUBEBOOT_KUBERNETES (docs/real-kubernetes.md)"]
fn a_node_group_gets_one_document_per_machine_with_fresh_credentials() {
    let cp = control_plane::own();
    let bundle = cp.dir.join("bundle");
    let mut r =
        Receiver::start_with(&["--bundle", bundle.to_str().unwrap(), "--fresh-credentials"]);
    let data = r.data.path().to_str().unwrap().to_string();
    let kb = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_kubeboot-under-test"))
            .args(args)
            .output()
            .unwrap()
    };
    let out = kb(&[
        "serve",
        "group",
        "add",
        "blue",
        "--data",
        &data,
        "--role",
        "worker",
        "--url",
        &r.url(),
        "--max-nodes",
        "2",
        "--per-minute",
        "3",
        "--label",
        "example.com/pool=blue",
        "--format",
        "toml",
    ]);
    assert_exit(&out, 0);
    let pointer: toml::Table = String::from_utf8_lossy(&out.stdout).parse().unwrap();
    let source = pointer["source"].as_table().unwrap();
    let path = "/v1/groups/blue/document";
    assert_eq!(
        source["url"].as_str().unwrap(),
        format!("{}{path}", r.url())
    );
    assert_eq!(source["ca_cert_hash"].as_str().unwrap(), r.ca_hash);
    let credential = source["token"].as_str().unwrap().to_string();
    // The agent follows exactly this pointer: it is a valid document of its own.
    kubeboot_core::document::parse(&String::from_utf8_lossy(&out.stdout)).unwrap();
    // It is what a launch template carries: `seed` (and `userdata`) deliver it.
    let pointer_file = r.data.path().join("blue-user-data.toml");
    std::fs::write(&pointer_file, &out.stdout).unwrap();
    let iso = r.data.path().join("blue-seed.iso");
    let seeded = kb(&[
        "seed",
        "--document",
        pointer_file.to_str().unwrap(),
        "--hostname",
        "w-a",
        "--out",
        iso.to_str().unwrap(),
    ]);
    assert_exit(&seeded, 0);
    assert!(iso.metadata().unwrap().len() > 0);

    let machine = |c: &str| c.repeat(32);
    let minute = || chrono::Utc::now().timestamp() / 60;
    let first_minute = minute();
    let (status, body) = r.get_as_node(path, &credential, "w-a", &machine("a"));
    assert_eq!(status, 200, "{body}");
    let doc = kubeboot_core::document::load(&body).expect("a valid worker document");
    assert_eq!(doc.role, kubeboot_core::document::Role::Worker);
    assert_eq!(
        doc.doc
            .node
            .labels
            .get("example.com/pool")
            .map(String::as_str),
        Some("blue")
    );
    let served: toml::Table = body.parse().unwrap();
    let token = served["discovery"]["token"].as_str().unwrap().to_string();
    let line = token_list_line(&cp, token.split('.').next().unwrap());
    assert!(line.contains("worker document for w-a"), "{line}");
    let report = served["report"].as_table().unwrap();
    assert_eq!(report["url"].as_str().unwrap(), format!("{}/v1", r.url()));
    let report_token = report["token"].as_str().unwrap().to_string();
    let ev = crate::receiver::event("w-a", "b-1", 1, "source", "started");
    let (status, body) = r.post(
        "/v1/nodes/w-a/events",
        Some(&report_token),
        serde_json::to_vec(&ev).unwrap(),
    );
    assert_eq!(status, 201, "{body}");

    // The same machine again (a retry) is not a new one; a second machine fits.
    let (status, again) = r.get_as_node(path, &credential, "w-a", &machine("a"));
    assert_eq!(status, 200, "{again}");
    let (status, body) = r.get_as_node(path, &credential, "w-b", &machine("b"));
    assert_eq!(status, 200, "{body}");
    let (status, body) = r.get_as_node(path, &credential, "w-c", &machine("c"));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("has its 2 machines"), "{body}");
    // Three documents in one minute were allowed (the refused one is not counted); a
    // fourth is not, unless the minute turned meanwhile.
    let (status, body) = r.get_as_node(path, &credential, "w-a", &machine("a"));
    if minute() == first_minute {
        assert_eq!(status, 429, "{body}");
    }

    for (token, headers_name, want) in [
        (credential.as_str(), None, 400),
        ("not-the-credential", Some("w-a"), 401),
    ] {
        let resp = match headers_name {
            Some(n) => r.get_as_node(path, token, n, &machine("a")).0,
            None => r.get_as(path, Some(token)).0,
        };
        assert_eq!(resp, want, "token {token:?}, headers {headers_name:?}");
    }
    let (status, _) = r.get_as_node(
        "/v1/groups/green/document",
        &credential,
        "w-a",
        &machine("a"),
    );
    assert_eq!(status, 401, "another group's name");

    let list = kb(&[
        "serve", "group", "list", "--data", &data, "--output", "json",
    ]);
    assert_exit(&list, 0);
    let rows: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(rows[0]["name"], "blue");
    assert_eq!(rows[0]["enrolled"], 2, "{rows}");

    // The count outlives serve; revoking refuses even an enrolled machine.
    r.restart();
    let (status, body) = r.get_as_node(path, &credential, "w-c", &machine("c"));
    assert_eq!(status, 403, "{body}");
    assert_exit(
        &kb(&["serve", "group", "revoke", "blue", "--data", &data]),
        0,
    );
    let (status, body) = r.get_as_node(path, &credential, "w-a", &machine("a"));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("revoked"), "{body}");

    let log = r.log();
    assert!(
        log.contains("worker document for w-a (group blue)"),
        "{log}"
    );
    for secret in [&credential, &token, &report_token] {
        assert!(
            !log.contains(secret.as_str()),
            "a secret reached serve's log"
        );
    }
    // serve's own events: a token per served document, by machine, none for the refused.
    let (_, body) = r.get("/v1/serve/events");
    for secret in [&credential, &token, &report_token] {
        assert!(
            !body.contains(secret.as_str()),
            "a secret reached serve's events"
        );
    }
    let journal: serde_json::Value = serde_json::from_str(&body).unwrap();
    let minted_for = |node: &str| {
        journal["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "credential_minted" && e["node"] == node)
            .inspect(|e| {
                assert_eq!(
                    e["request"],
                    format!("worker document for {node} (group blue)")
                );
                assert_eq!(e["machine_id"], machine(&node[2..]));
            })
            .count()
    };
    assert!(minted_for("w-a") >= 2, "{body}");
    assert_eq!(minted_for("w-b"), 1, "{body}");
    assert_eq!(minted_for("w-c"), 0, "{body}");
}
