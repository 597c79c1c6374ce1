//! `kubeboot lab segment`: the VM network `up` and tests/e2e/real-cluster share,
//! made for real (a network namespace this test creates) and removed on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn netns_exists(name: &str) -> bool {
    std::path::Path::new("/run/netns").join(name).exists()
}

#[test]
fn a_segment_holds_its_taps_until_sigterm_then_is_gone() {
    if !nix::unistd::geteuid().is_root() {
        panic!("needs root (a network namespace): CI runs as root");
    }
    let ns = format!("kblab{}", std::process::id());
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubeboot-under-test"))
        .args(["lab", "segment", "--namespace", &ns])
        .args(["--control-planes", "2", "--workers", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let layout: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| {
        let _ = child.kill();
        panic!("{e}: {line:?}")
    });
    assert_eq!(layout["namespace"], ns.as_str());
    assert_eq!(layout["control_planes"][1]["address"], "10.88.0.12");
    assert_eq!(layout["workers"][0]["tap"], "tap21");
    let network = layout["workers"][0]["network_config"].as_str().unwrap();
    assert!(network.contains("addresses: [10.88.0.21/24]"), "{network}");
    let links = Command::new("ip")
        .args(["netns", "exec", &ns, "ip", "-o", "link"])
        .output()
        .unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    for tap in ["br0", "tap11", "tap12", "tap21"] {
        assert!(links.contains(&format!(": {tap}:")), "{tap} in {links}");
    }
    let routes = Command::new("ip")
        .args(["netns", "exec", &ns, "ip", "route", "show", "default"])
        .output()
        .unwrap();
    assert!(routes.stdout.is_empty(), "no route out of the segment");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
            panic!("lab segment did not end within 10 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
    assert!(!netns_exists(&ns), "namespace {ns} left behind");
}
