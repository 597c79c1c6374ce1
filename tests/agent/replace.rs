//! Node replacement against real parts: a real 3-member etcd on loopback for the
//! stale-member rules, and the real loopback control plane (control_plane.rs) for
//! kubeadm's uploaded certificates and stale Node objects.

use std::collections::BTreeMap;
use std::time::Duration;

use kubeboot_kube::replace::{self, etcd, ClusterAccess, Nodes, Options, Report};
use secrecy::SecretString;

use crate::control_plane::{self, CERT_KEY, TOKEN};
use crate::etcd_cluster::EtcdCluster;

fn opts(grace_ms: u64) -> Options {
    Options {
        grace: Duration::from_millis(grace_ms),
        probe_interval: Duration::from_millis(200),
        timeout: Duration::from_secs(2),
        dry_run: false,
        own_address: None,
    }
}

fn seen(cluster: &EtcdCluster) -> Vec<etcd::Member> {
    let access = cluster.access();
    let urls = cluster.client_urls();
    kubeboot_kube::client::block_on(async { etcd::members(&access, &urls).await.unwrap() })
}

/// The Nodes named like members: `stale` ones not Ready and silent past the
/// grace period, the others heard from.
fn nodes(stale: &[&str], heard: &[&str]) -> Nodes<'static> {
    let mut states: BTreeMap<String, etcd::NodeState> = stale
        .iter()
        .map(|n| (n.to_string(), etcd::NodeState::Stale))
        .collect();
    for n in heard {
        states.insert(
            n.to_string(),
            etcd::NodeState::Heard {
                why: format!("Node {n} is Ready"),
            },
        );
    }
    Nodes::Given(states)
}

type Outcome = (Result<Option<etcd::Member>, String>, Report);

fn replacement(
    access: etcd::EtcdAccess,
    members: Vec<etcd::Member>,
    node: &str,
    nodes: &Nodes<'_>,
    o: &Options,
) -> Outcome {
    let mut report = Report::default();
    let r = kubeboot_kube::client::block_on(replace::remove_stale_member(
        &access,
        members,
        node,
        nodes,
        o,
        &mut report,
    ));
    (r, report)
}

fn run(cluster: &EtcdCluster, node: &str, nodes: &Nodes<'_>, o: &Options) -> Outcome {
    replacement(cluster.access(), seen(cluster), node, nodes, o)
}

fn names(cluster: &EtcdCluster) -> Vec<String> {
    let mut left: Vec<String> = seen(cluster).into_iter().map(|m| m.name).collect();
    left.sort();
    left
}

fn put_get(cluster: &EtcdCluster, url: &str, value: &str) -> Result<String, String> {
    let access = cluster.access();
    kubeboot_kube::client::block_on(async {
        let mut c = etcd::connect(&access, url).await?;
        c.put("kubeboot-test", value, None)
            .await
            .map_err(|e| e.to_string())?;
        let got = c
            .get("kubeboot-test", None)
            .await
            .map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(got.kvs()[0].value()).into_owned())
    })
}

/// One cluster through the life of a replacement: all healthy → nothing removed;
/// cp2's machine dies → its replacement (same name) removes exactly that member,
/// the cluster stays writable, the new member joins and all three answer; two of
/// three dead → refused, nothing removed.
#[test]
fn a_replacement_removes_exactly_the_dead_member_and_never_without_quorum() {
    let mut cluster = EtcdCluster::start(&["cp1", "cp2", "cp3"]);
    let all = nodes(&["cp2"], &["cp1", "cp3"]);

    let (r, report) = run(&cluster, "cp4", &all, &opts(600));
    assert_eq!(r.unwrap(), None);
    assert!(report.cleanups.is_empty(), "{report:?}");
    assert_eq!(seen(&cluster).len(), 3);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("all 3 etcd members answer")),
        "{report:?}"
    );

    cluster.kill(1);
    // A dry run says what it would remove and removes nothing.
    let (r, report) = run(
        &cluster,
        "cp2",
        &all,
        &Options {
            dry_run: true,
            ..opts(600)
        },
    );
    r.unwrap();
    assert_eq!(report.cleanups.len(), 1, "{report:?}");
    assert!(!report.cleanups[0].removed);
    assert!(
        report.cleanups[0]
            .line()
            .starts_with("would remove etcd member cp2 ("),
        "{report:?}"
    );
    assert_eq!(seen(&cluster).len(), 3, "a dry run removed a member");

    let (r, report) = run(&cluster, "cp2", &all, &opts(600));
    r.unwrap();
    assert_eq!(report.cleanups.len(), 1, "{report:?}");
    assert!(report.cleanups[0].removed);
    assert!(
        report.cleanups[0].why.contains("own old identity"),
        "{report:?}"
    );
    assert_eq!(names(&cluster), ["cp1", "cp3"], "exactly cp2 must be gone");
    let cp1 = cluster.members[0].client_url.clone();
    assert_eq!(
        put_get(&cluster, &cp1, "after-removal").unwrap(),
        "after-removal"
    );

    let new = cluster.join("cp2", &cp1);
    let members = seen(&cluster);
    assert_eq!(members.len(), 3, "{members:?}");
    assert!(members.iter().all(|m| m.reachable), "{members:?}");
    let new_url = cluster.members[new].client_url.clone();
    assert_eq!(
        put_get(&cluster, &new_url, "after-join").unwrap(),
        "after-join"
    );

    // Now cp1 and cp3 die: one of three answers. Refused; nothing removed.
    cluster.kill(0);
    cluster.kill(2);
    let (r, report) = run(&cluster, "cp3", &all, &opts(600));
    let err = r.unwrap_err();
    assert!(
        err.contains("etcd has no quorum: 1 of 3 members answer"),
        "{err}"
    );
    assert!(report.cleanups.is_empty(), "{report:?}");
    assert_eq!(
        seen(&cluster).len(),
        3,
        "a member was removed without quorum"
    );
}

/// What a failed `kubeadm join --control-plane` attempt can leave behind (seen in a
/// VM run: the member add went through, the attempt failed before etcd started):
/// an unstarted member at the joining node's address. Real etcd then refuses every
/// further member add ("not enough started members"), so every retry fails; the
/// retry's cleanup recognises the member as this node's own unfinished join (no
/// name, peer URL at its address), removes it, and the join goes through.
#[test]
fn an_unfinished_join_of_this_node_is_removed_so_the_retry_can_join() {
    let mut cluster = EtcdCluster::start(&["cp1", "cp2"]);
    let cp1 = cluster.members[0].client_url.clone();
    let add = |peer: &str| {
        let access = cluster.access();
        let (peer, cp1) = (peer.to_string(), cp1.clone());
        kubeboot_kube::client::block_on(async move {
            let mut c = etcd::connect(&access, &cp1).await?;
            c.member_add([peer], None)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    };
    // The strict reconfiguration check wants the cluster healthy for a moment.
    let mut added = add("http://127.0.0.13:2380");
    for _ in 0..30 {
        if added.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
        added = add("http://127.0.0.13:2380");
    }
    added.unwrap();
    let err = add("http://127.0.0.14:2380").unwrap_err();
    assert!(err.contains("not enough started members"), "{err}");

    // cp3 at 127.0.0.13 retries: the member at its address is its own unfinished join.
    let own = |address: &str| Options {
        own_address: Some(address.into()),
        ..opts(400)
    };
    // Another node (at 127.0.0.14) joining meanwhile: that member is the first
    // join's, in flight, and is left alone even though it does not answer.
    let (r, report) = run(&cluster, "cp4", &Nodes::Unknown, &own("127.0.0.14"));
    assert_eq!(r.unwrap(), None);
    assert!(report.cleanups.is_empty(), "{report:?}");
    let (r, report) = run(&cluster, "cp4", &nodes(&[], &[]), &own("127.0.0.14"));
    assert_eq!(r.unwrap(), None);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("another join's member in flight")),
        "{report:?}"
    );
    assert_eq!(seen(&cluster).len(), 3);

    let (r, report) = run(
        &cluster,
        "cp3",
        &nodes(&[], &["cp1", "cp2"]),
        &own("127.0.0.13"),
    );
    r.unwrap();
    assert_eq!(report.cleanups.len(), 1, "{report:?}");
    assert!(report.cleanups[0].removed);
    assert!(
        report.cleanups[0].why.contains("own unfinished join"),
        "{report:?}"
    );
    assert_eq!(seen(&cluster).len(), 2);
    let new = cluster.join("cp3", &cp1);
    let members = seen(&cluster);
    assert_eq!(members.len(), 3, "{members:?}");
    assert!(members.iter().all(|m| m.reachable), "{members:?}");
    assert_eq!(
        put_get(&cluster, &cluster.members[new].client_url.clone(), "joined").unwrap(),
        "joined"
    );
}

/// A member that is down and comes back within the grace period is not removed
/// (a rebooting control plane is not a dead one).
#[test]
fn a_member_back_within_the_grace_period_stays() {
    let mut cluster = EtcdCluster::start(&["cp1", "cp2", "cp3"]);
    cluster.kill(2);
    let access = cluster.access();
    let down = seen(&cluster);
    assert!(
        down.iter().all(|m| m.reachable == (m.name != "cp3")),
        "{down:?}"
    );
    // cp3 comes back (same data directory) while the grace period runs.
    cluster.restart(2);
    let (r, report) = replacement(access, down, "cp9", &nodes(&["cp3"], &[]), &opts(3000));
    assert_eq!(r.unwrap(), None);
    assert!(report.cleanups.is_empty(), "{report:?}");
    assert_eq!(seen(&cluster).len(), 3);
}

/// A member stopped (SIGSTOP) for 20 s while a replacement joins: this node's
/// probes time out, but its peers keep their connections to it up, so no quorum
/// of them sees it down and it is not removed, even with its Node gone and a
/// grace period shorter than the pause. The replacement answers while the member
/// is still stopped (a bounded wait, not a stall). Under the earlier rule (this
/// node's probes alone over the grace period) it was removed.
#[test]
fn a_member_paused_while_a_replacement_joins_is_not_removed() {
    let cluster = EtcdCluster::start(&["cp1", "cp2", "cp3"]);
    assert!(seen(&cluster).iter().all(|m| m.reachable));
    // A stopped leader means an election (a second or so) while the replacement
    // starts looking: each call may take longer than the other tests allow.
    let access = etcd::EtcdAccess {
        timeout: Duration::from_secs(4),
        ..cluster.access()
    };
    let urls = cluster.client_urls();
    let paused_at = std::time::Instant::now();
    cluster.pause(2);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let members =
            kubeboot_kube::client::block_on(async { etcd::members(&access, &urls).await });
        let outcome = members
            .map(|members| replacement(access, members, "cp9", &nodes(&["cp3"], &[]), &opts(400)));
        let _ = tx.send(outcome);
    });
    let answer = rx.recv_timeout(Duration::from_secs(60));
    let took = paused_at.elapsed();
    // Stopped for 20 s in all, however long the replacement took.
    if let Some(rest) = Duration::from_secs(20).checked_sub(paused_at.elapsed()) {
        std::thread::sleep(rest);
    }
    cluster.resume(2);
    println!(
        "replacement with a paused member: {} ms; paused {} ms",
        took.as_millis(),
        paused_at.elapsed().as_millis()
    );
    let (r, report) = answer
        .unwrap_or_else(|_| panic!("no answer in {took:?} while a member was paused"))
        .unwrap();
    assert_eq!(r.unwrap(), None, "{report:?}");
    assert!(report.cleanups.is_empty(), "{report:?}");
    assert!(
        report.notes.iter().any(|n| n.contains("not dead")),
        "{report:?}"
    );
    assert_eq!(
        names(&cluster),
        ["cp1", "cp2", "cp3"],
        "a paused member was removed"
    );
    cluster.wait_answers(2);
}

/// A member killed (its machine died) while the others run: this node's probes
/// and both remaining members agree it is down, over the whole grace period, and
/// its Node is stale: that one member, and only it, is removed; the cluster stays
/// writable and the replacement joins.
#[test]
fn a_killed_member_is_removed() {
    let mut cluster = EtcdCluster::start(&["cp1", "cp2", "cp3"]);
    cluster.kill(2);
    let (r, report) = run(
        &cluster,
        "cp9",
        &nodes(&["cp3"], &["cp1", "cp2"]),
        &opts(1000),
    );
    let removed = r.unwrap().expect("a removal");
    assert_eq!(removed.name, "cp3", "{report:?}");
    assert_eq!(report.cleanups.len(), 1, "{report:?}");
    assert!(
        report.cleanups[0]
            .why
            .contains("2 of the 2 other members see it down"),
        "{report:?}"
    );
    assert_eq!(names(&cluster), ["cp1", "cp2"]);
    let cp1 = cluster.members[0].client_url.clone();
    assert_eq!(put_get(&cluster, &cp1, "after").unwrap(), "after");
    let new = cluster.join("cp9", &cp1);
    let members = seen(&cluster);
    assert_eq!(members.len(), 3, "{members:?}");
    assert!(members.iter().all(|m| m.reachable), "{members:?}");
    let url = cluster.members[new].client_url.clone();
    assert_eq!(put_get(&cluster, &url, "joined").unwrap(), "joined");
}

/// Five members, two killed, two replacements at once (each seeing both dead
/// members at first): they serialise on the membership lock and each removes
/// exactly one member, a different one; three members remain, all answering,
/// with a quorum. Without the lock both decided on the same list and went for
/// the same member.
#[test]
fn two_replacements_at_once_remove_one_dead_member_each() {
    let mut cluster = EtcdCluster::start(&["cp1", "cp2", "cp3", "cp4", "cp5"]);
    cluster.kill(3);
    cluster.kill(4);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let started = std::time::Instant::now();
    let joins: Vec<_> = ["cp6", "cp7"]
        .into_iter()
        .map(|name| {
            let (access, members) = (cluster.access(), seen(&cluster));
            assert_eq!(members.iter().filter(|m| !m.reachable).count(), 2);
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                replacement(
                    access,
                    members,
                    name,
                    &nodes(&["cp4", "cp5"], &["cp1", "cp2", "cp3"]),
                    &opts(1000),
                )
            })
        })
        .collect();
    let outcomes: Vec<Outcome> = joins.into_iter().map(|j| j.join().unwrap()).collect();
    println!(
        "two replacements at once: {} ms",
        started.elapsed().as_millis()
    );
    let mut removed: Vec<String> = outcomes
        .iter()
        .map(|(r, report)| {
            let m = r.clone().unwrap().unwrap_or_else(|| panic!("{report:?}"));
            assert_eq!(report.cleanups.len(), 1, "{report:?}");
            m.name
        })
        .collect();
    removed.sort();
    assert_eq!(removed, ["cp4", "cp5"], "{outcomes:?}");
    let members = seen(&cluster);
    assert_eq!(names(&cluster), ["cp1", "cp2", "cp3"], "{members:?}");
    assert!(members.iter().all(|m| m.reachable), "{members:?}");
    let cp1 = cluster.members[0].client_url.clone();
    assert_eq!(put_get(&cluster, &cp1, "quorum").unwrap(), "quorum");
    // Both let go of the membership lock: no lock key and no lease is left.
    let access = cluster.access();
    let (keys, leases) = kubeboot_kube::client::block_on(async {
        let mut c = etcd::connect(&access, &cp1).await.unwrap();
        let keys = c
            .get(
                etcd::MEMBERSHIP_LOCK,
                Some(etcd_client::GetOptions::new().with_prefix()),
            )
            .await
            .unwrap();
        let leases = c.leases().await.unwrap();
        (keys.kvs().len(), leases.leases().len())
    });
    assert_eq!(
        (keys, leases),
        (0, 0),
        "the membership lock was not released"
    );
}

/// Down must mean down throughout the grace period: a member that is dead when
/// the replacement first looks, comes back (a reboot), and dies again before the
/// grace period is over was up within it and stays, although it is down at the
/// first look and at the last.
#[test]
fn a_member_up_at_any_look_within_the_grace_period_stays() {
    let mut cluster = EtcdCluster::start(&["cp1", "cp2", "cp3"]);
    cluster.kill(2);
    let (access, down) = (cluster.access(), seen(&cluster));
    assert!(
        down.iter().all(|m| m.reachable == (m.name != "cp3")),
        "{down:?}"
    );
    let join = std::thread::spawn(move || {
        replacement(access, down, "cp9", &nodes(&["cp3"], &[]), &opts(15_000))
    });
    cluster.restart(2);
    cluster.wait_answers(2);
    // Up long enough for a few looks (one every 200 ms), then dead again.
    std::thread::sleep(Duration::from_secs(2));
    cluster.kill(2);
    let (r, report) = join.join().unwrap();
    assert_eq!(r.unwrap(), None, "{report:?}");
    assert!(report.cleanups.is_empty(), "{report:?}");
    assert_eq!(names(&cluster), ["cp1", "cp2", "cp3"]);
}

fn cluster_access(cp: &control_plane::ControlPlane, key: &str) -> ClusterAccess {
    let ca = std::fs::read_to_string(cp.pki("ca.crt")).unwrap();
    let der = kubeboot_core::tls::first_pem_certificate(ca.as_bytes())
        .unwrap()
        .to_vec();
    ClusterAccess {
        server: format!("https://{}", cp.endpoint),
        ca_der: der,
        token: SecretString::from(TOKEN),
        certificate_key: SecretString::from(key),
    }
}

/// Against the real loopback control plane: the bootstrap token and certificate key
/// open kubeadm's real uploaded certificates; a stale same-name Node is deleted, a
/// Ready one is refused with a clear error, a wrong certificate key is named.
#[test]
#[ignore = "needs real Kubernetes: KUBEBOOT_KUBERNETES (docs/real-kubernetes.md)"]
fn stale_nodes_go_ready_nodes_stay_and_uploaded_certs_open() {
    let cp = control_plane::shared();
    for (name, ready) in [("replaced-stale", false), ("replaced-ready", true)] {
        let node = format!(r#"{{"apiVersion":"v1","kind":"Node","metadata":{{"name":"{name}"}}}}"#);
        let file = cp.dir.join(format!("{name}.json"));
        std::fs::write(&file, node).unwrap();
        cp.kubectl_ok(&["create", "-f", file.to_str().unwrap()]);
        if ready {
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let status = format!(
                r#"{{"status":{{"conditions":[{{"type":"Ready","status":"True","reason":"KubeletReady","message":"ok","lastHeartbeatTime":"{now}","lastTransitionTime":"{now}"}}]}}}}"#
            );
            cp.kubectl_ok(&[
                "patch",
                "node",
                name,
                "--subresource=status",
                "--type=merge",
                "-p",
                &status,
            ]);
        }
    }
    let access = cluster_access(cp, CERT_KEY);
    let o = opts(0);

    let report = kubeboot_kube::client::block_on(replace::make_room(&access, "replaced-stale", &o))
        .expect("make room");
    assert_eq!(report.cleanups.len(), 1, "{report:?}");
    assert_eq!(report.cleanups[0].object, "Node");
    assert!(report.cleanups[0].removed);
    // The loopback control plane runs etcd as a process, not kubeadm's static Pod.
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("no stacked etcd Pods")),
        "{report:?}"
    );
    let gone = cp.kubectl(&["get", "node", "replaced-stale"]);
    assert!(!gone.status.success(), "the stale Node is still there");
    // The cleanup is a Kubernetes Event about that Node too.
    let events = cp.event_messages("replaced-stale", "KubebootRemovedStaleNode");
    assert!(events.contains("removed Node replaced-stale"), "{events}");
    assert!(
        !report.notes.iter().any(|n| n.contains("Event")),
        "{report:?}"
    );

    let err = kubeboot_kube::client::block_on(replace::make_room(&access, "replaced-ready", &o))
        .unwrap_err();
    assert!(
        err.contains("a Ready Node named replaced-ready exists"),
        "{err}"
    );
    cp.kubectl_ok(&["get", "node", "replaced-ready"]);

    let wrong = "00".repeat(32);
    let err = kubeboot_kube::client::block_on(replace::make_room(
        &cluster_access(cp, &wrong),
        "replaced-x",
        &o,
    ))
    .unwrap_err();
    assert!(
        err.contains("discovery.certificate_key does not open kube-system/kubeadm-certs"),
        "{err}"
    );
    assert!(!err.contains(&wrong), "{err}");
    cp.kubectl_ok(&["delete", "node", "replaced-ready"]);
}

/// `kubeboot replace` — the agent's discover-phase cleanup, run by hand — against
/// the real loopback control plane: discovery verifies the cluster, `--dry-run`
/// names the stale same-name Node and leaves it, the real run deletes it, and
/// neither prints the token or the certificate key.
#[test]
#[ignore = "needs real Kubernetes: KUBEBOOT_KUBERNETES (docs/real-kubernetes.md)"]
fn kubeboot_replace_dry_run_names_the_stale_node_and_the_real_run_removes_it() {
    let cp = control_plane::shared();
    let name = "replaced-by-cli";
    let file = cp.dir.join(format!("{name}.json"));
    std::fs::write(
        &file,
        format!(r#"{{"apiVersion":"v1","kind":"Node","metadata":{{"name":"{name}"}}}}"#),
    )
    .unwrap();
    cp.kubectl_ok(&["create", "-f", file.to_str().unwrap()]);
    let doc = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        doc.path(),
        format!(
            "version = 1\nrole = \"control-plane\"\n[cluster]\nendpoint = \"{}\"\n\
             [discovery]\ntoken = \"{TOKEN}\"\nca_cert_hashes = [\"{}\"]\ncertificate_key = \"{CERT_KEY}\"\n\
             timeout_seconds = 5\n[node]\nname = \"{name}\"\n[replace]\ngrace_seconds = 0\n",
            cp.endpoint, cp.ca_hash
        ),
    )
    .unwrap();
    let replace = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_kubeboot-under-test"))
            .args(["replace", "--output", "json", "--document"])
            .arg(doc.path())
            .args(extra)
            .output()
            .unwrap()
    };
    let dry = replace(&["--dry-run"]);
    crate::harness::assert_exit(&dry, 0);
    let v: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
    let cleanups = &v["report"]["cleanups"];
    assert_eq!(cleanups[0]["object"], "Node", "{v}");
    assert_eq!(cleanups[0]["name"], name, "{v}");
    assert_eq!(cleanups[0]["removed"], false, "{v}");
    cp.kubectl_ok(&["get", "node", name]);

    let real = replace(&[]);
    crate::harness::assert_exit(&real, 0);
    let v: serde_json::Value = serde_json::from_slice(&real.stdout).unwrap();
    assert_eq!(v["report"]["cleanups"][0]["removed"], true, "{v}");
    assert!(!cp.kubectl(&["get", "node", name]).status.success());
    for out in [&dry, &real] {
        let all = crate::harness::text(out);
        assert!(!all.contains(CERT_KEY) && !all.contains(TOKEN), "{all}");
    }
}

/// A member that is stopped (SIGSTOP), not dead, accepts TCP but never finishes
/// a TLS handshake: looking at the cluster costs a bounded wait per call (the
/// access's timeout), not a hang until the member resumes. Measured on 094082b:
/// no answer at all while the member stayed stopped.
#[test]
fn a_paused_member_costs_a_bounded_wait_not_a_hang() {
    let cluster = EtcdCluster::start(&["cp1", "cp2", "cp3"]);
    cluster.pause(2);
    let access = cluster.access();
    let urls = cluster.client_urls();
    let (tx, rx) = std::sync::mpsc::channel();
    let started = std::time::Instant::now();
    std::thread::spawn(move || {
        let seen = kubeboot_kube::client::block_on(async { etcd::members(&access, &urls).await });
        let _ = tx.send(seen);
    });
    let answer = rx.recv_timeout(Duration::from_secs(30));
    let took = started.elapsed();
    cluster.resume(2);
    let members = answer
        .unwrap_or_else(|_| panic!("no answer in {took:?} while a member was paused"))
        .unwrap();
    println!("the members, one paused: {} ms", took.as_millis());
    let cp3 = members.iter().find(|m| m.name == "cp3").unwrap();
    assert!(!cp3.reachable, "a stopped member does not answer");
    assert!(
        members.iter().filter(|m| m.reachable).count() == 2,
        "{members:?}"
    );
}
