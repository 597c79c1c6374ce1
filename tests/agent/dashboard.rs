//! The dashboard in a real browser: headless Chromium (Debian's `chromium`,
//! installed by scripts/setup.sh) loads the page from `kubeboot serve` over
//! TLS, trusting only the receiver's key (--ignore-certificate-errors-spki-list
//! is Chromium's pin), runs its JavaScript, and the test reads the rendered DOM.
//! A screenshot goes to target/test-artifacts/dashboard.png.

use std::path::PathBuf;
use std::process::Command;

use base64::Engine;
use serde_json::json;

use crate::receiver::{event, Receiver};
use crate::serve::seed_two_nodes;

fn chromium() -> PathBuf {
    for p in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if std::path::Path::new(p).exists() {
            return p.into();
        }
    }
    panic!("chromium is not installed: run scripts/setup.sh (it installs Debian's chromium)");
}

/// Chromium's SPKI pin (base64 SHA-256 of the public key) is kubeadm's CA hash in another encoding.
fn spki_pin(ca_hash: &str) -> String {
    let hex = ca_hash.strip_prefix("sha256:").unwrap();
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub(crate) fn browse(r: &Receiver, pin: &str, url: &str, extra: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-sync",
            "--disable-extensions",
            "--window-size=1280,480",
            "--virtual-time-budget=8000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!(
            "--ignore-certificate-errors-spki-list={}",
            spki_pin(pin)
        ))
        .args(extra)
        .arg(format!("{}{url}", r.url()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn row<'a>(dom: &'a str, node: &str) -> &'a str {
    let start = dom
        .find(&format!("data-node=\"{node}\""))
        .unwrap_or_else(|| panic!("no row for {node} in\n{dom}"));
    let open = dom[..start].rfind("<tr").unwrap();
    let end = start + dom[start..].find("</tr>").unwrap();
    &dom[open..end]
}

#[test]
fn the_dashboard_renders_nodes_failures_and_log_tails_in_chromium() {
    let r = Receiver::start();
    seed_two_nodes(&r);
    // A message with markup must show as text, not become markup.
    let mut hostile = event("worker-xss", "b3", 1, "source", "failed");
    hostile["error"] = json!({"kind": "document_fetch", "message": "<img src=x onerror=alert(1)>"});
    let (s, _) = r.post(
        "/v1/nodes/worker-xss/events",
        Some(&r.token),
        serde_json::to_vec(&hostile).unwrap(),
    );
    assert_eq!(s, 201);

    let dom = browse(&r, &r.ca_hash, "/#node=worker-bad", &["--dump-dom"]);
    let ok = row(&dom, "worker-ok");
    assert!(ok.contains("class=\"node done\""), "{ok}");
    assert_eq!(
        ok.matches("data-state=\"succeeded\"").count(),
        8 + 1,
        "{ok}"
    );
    let bad = row(&dom, "worker-bad");
    assert!(bad.contains("class=\"node failed\""), "{bad}");
    assert!(
        bad.contains("discovery_ca_mismatch: the cluster's CA does not match"),
        "{bad}"
    );
    assert!(
        bad.contains("data-phase=\"discover\" data-state=\"failed\""),
        "{bad}"
    );
    // The detail row (opened by #node=) carries the reason and the log tail.
    let detail_at = dom
        .find("data-detail-for=\"worker-bad\"")
        .expect("detail row rendered");
    let detail = &dom[detail_at..detail_at + dom[detail_at..].find("</tr>").unwrap()];
    assert!(detail.contains("<pre class=\"log-tail\">fetching cluster-info from https://10.0.0.1:6443\nCA pin mismatch"), "{detail}");
    assert!(
        dom.contains("<b id=\"count-nodes\">3</b>") && dom.contains("<b id=\"count-failed\">2</b>"),
        "{dom}"
    );
    let xss = row(&dom, "worker-xss");
    assert!(
        xss.contains("&lt;img src=x onerror=alert(1)&gt;") && !xss.contains("<img"),
        "{xss}"
    );

    // With another pin, Chromium refuses the receiver: no rows.
    let wrong = format!("sha256:{}", "ab".repeat(32));
    let dom = browse(&r, &wrong, "/", &["--dump-dom"]);
    assert!(!dom.contains("data-node="), "{dom}");

    // A screenshot for people (the closing note).
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    let shot = dir.join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    browse(
        &r,
        &r.ca_hash,
        "/#node=worker-bad",
        &[&format!("--screenshot={}", shot.display())],
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
}
