//! A real `kubeboot serve` on 127.0.0.1 for tests: started as a child process
//! with its own data directory, restartable on the same port and data (so the
//! TLS CA, the pin and the tokens stay), killable with SIGKILL.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct Receiver {
    pub data: tempfile::TempDir,
    pub port: u16,
    pub ca_hash: String,
    pub token: String,
    child: Option<Child>,
    extra: Vec<String>,
    /// serve's stderr (KUBEBOOT_LOG=info), appended across restarts.
    logs: tempfile::TempDir,
}

/// A port that was free a moment ago (tests bind it again right away).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Receiver {
    pub fn start() -> Receiver {
        Receiver::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Receiver {
        let mut r = Receiver {
            data: tempfile::tempdir().unwrap(),
            port: free_port(),
            ca_hash: String::new(),
            token: String::new(),
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            logs: tempfile::tempdir().unwrap(),
        };
        r.token = r.mint(&["--scope", "report"]);
        r.restart();
        r
    }

    /// `kubeboot serve token add ARGS` on this receiver's data: the new token.
    pub fn mint(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_kubeboot-under-test"))
            .args(["serve", "token", "add", "--data"])
            .arg(self.data.path())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// Another handle on `other`'s data, token and pin (for a server the test runs itself).
    pub fn adopt(other: &Receiver) -> Receiver {
        Receiver {
            data: tempfile::tempdir().unwrap(),
            port: other.port,
            ca_hash: other.ca_hash.clone(),
            token: other.token.clone(),
            child: None,
            extra: Vec::new(),
            logs: tempfile::tempdir().unwrap(),
        }
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kubeboot-under-test"));
        c.args(["serve", "--output", "json", "--listen"])
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data")
            .arg(self.data.path())
            .args(&self.extra)
            .env("KUBEBOOT_LOG", "info");
        c
    }

    /// (Re)start on the same port and data directory; returns once it listens.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut child = self
                .command()
                .stdout(Stdio::piped())
                .stderr(self.log_file())
                .spawn()
                .unwrap();
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                self.ca_hash = v["ca_cert_hash"].as_str().unwrap().to_string();
                self.child = Some(child);
                return;
            }
            // The port may still be held by the previous process for a moment.
            let _ = child.wait();
            assert!(Instant::now() < deadline, "kubeboot serve did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_file(&self) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.path().join("serve.log"))
            .unwrap()
    }

    /// What serve wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.logs.path().join("serve.log")).unwrap_or_default()
    }

    /// Graceful stop (SIGTERM), as an operator would.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = c.wait();
        }
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The `[report]` table a node document needs to report here.
    pub fn report_toml(&self, drain_seconds: u64) -> String {
        format!(
            "\n[report]\nurl = \"{}/v1\"\ntoken = \"{}\"\nca_cert_hash = \"{}\"\ndrain_seconds = {drain_seconds}\n",
            self.url(),
            self.token,
            self.ca_hash
        )
    }

    pub fn client(&self) -> reqwest::blocking::Client {
        let config = kubeboot_core::tls::client_config(Some(&self.ca_hash)).unwrap();
        kubeboot_core::tls::https_client(config, Duration::from_secs(10)).unwrap()
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        self.get_as(path, None)
    }

    /// GET with a bearer token (or none).
    pub fn get_as(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let r = self.request(path, token, &[]);
        (r.status().as_u16(), r.text().unwrap())
    }

    /// GET with a bearer token (or none) and extra headers, the whole response.
    pub fn request(
        &self,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, String)],
    ) -> reqwest::blocking::Response {
        let mut req = self.client().get(format!("{}{path}", self.url()));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        req.send().unwrap()
    }

    /// GET a document as the node `name` with machine id `machine_id` says it is,
    /// with the claim secret that machine's agent would send (`claim_of`).
    pub fn get_as_node(
        &self,
        path: &str,
        token: &str,
        name: &str,
        machine_id: &str,
    ) -> (u16, String) {
        self.get_claiming(path, token, name, machine_id, Some(&claim_of(machine_id)))
    }

    /// [`Receiver::get_as_node`] with this claim, or none.
    pub fn get_claiming(
        &self,
        path: &str,
        token: &str,
        name: &str,
        machine_id: &str,
        claim: Option<&str>,
    ) -> (u16, String) {
        let mut headers = vec![
            ("Kubeboot-Node", name.to_string()),
            ("Kubeboot-Machine-Id", machine_id.to_string()),
        ];
        if let Some(c) = claim {
            headers.push(("Kubeboot-Claim", c.to_string()));
        }
        let r = self.request(path, Some(token), &headers);
        (r.status().as_u16(), r.text().unwrap())
    }

    pub fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: Vec<u8>) -> (u16, String) {
        let mut req = self
            .client()
            .post(format!("{}{path}", self.url()))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().unwrap();
        (r.status().as_u16(), r.text().unwrap())
    }

    /// A node's history as (boot_id, seq, phase, state).
    pub fn history(&self, node: &str) -> Vec<(String, u64, String, String)> {
        let (status, body) = self.get(&format!("/v1/nodes/{node}"));
        if status == 404 {
            return Vec::new();
        }
        let v: Value = serde_json::from_str(&body).unwrap();
        v["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["boot_id"].as_str().unwrap().to_string(),
                    e["seq"].as_u64().unwrap(),
                    e["phase"].as_str().unwrap().to_string(),
                    e["state"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A bundle (in `TEMP/b`, `kubeboot bundle new`) for the cluster endpoint `endpoint`.
pub fn bundle_for(endpoint: &str) -> tempfile::TempDir {
    let bundle = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kubeboot-under-test"))
        .args(["bundle", "new", "--endpoint", endpoint, "--out"])
        .arg(bundle.path().join("b"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    bundle
}

/// An endpoint on loopback where nothing listens.
pub fn nothing_listens() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// The claim secret the agent of machine `machine_id` sends in these tests.
pub fn claim_of(machine_id: &str) -> String {
    format!("claim-of-{machine_id}")
}

/// A status event as an agent would send it.
pub fn event(node: &str, boot: &str, seq: u64, phase: &str, state: &str) -> Value {
    serde_json::json!({
        "node": node, "machine_id": format!("m-{node}"), "boot_id": boot, "seq": seq,
        "role": "worker", "phase": phase, "state": state, "attempt": 1,
        "at": format!("2026-11-21T10:00:{:02}Z", seq % 60), "agent_version": "0.1.0"
    })
}

/// The eight phases, started and succeeded: a node's full event sequence.
pub fn full_sequence(node: &str, boot: &str) -> Vec<Value> {
    let mut seq = 0;
    let mut out = Vec::new();
    for p in kubeboot_core::status::Phase::ALL.map(|p| p.as_str()) {
        for s in ["started", "succeeded"] {
            seq += 1;
            out.push(event(node, boot, seq, p, s));
        }
    }
    out
}
