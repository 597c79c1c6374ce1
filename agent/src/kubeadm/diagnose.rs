//! What kubeadm's failure message tells an operator to go and look at
//! (`crictl ps -a`, then the logs of the container that failed), collected by
//! the agent so the report carries it and nobody has to log in.

use std::process::Command;
use std::time::Duration;

/// At most this many lines in all (half of a status event's log tail).
pub const MAX_LINES: usize = crate::status::LOG_TAIL_MAX_LINES / 2;
const LOG_LINES_PER_CONTAINER: &str = "6";

#[derive(serde::Deserialize)]
struct PsList {
    #[serde(default)]
    containers: Vec<Container>,
}

#[derive(serde::Deserialize)]
struct Container {
    id: String,
    state: String,
    metadata: Metadata,
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
}

#[derive(serde::Deserialize)]
struct Metadata {
    name: String,
    #[serde(default)]
    attempt: u32,
}

fn crictl(crictl: &std::path::Path, endpoint: &str, args: &[&str]) -> Option<String> {
    let mut child = Command::new(crictl)
        .args(["--runtime-endpoint", endpoint, "--timeout", "10s"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    // Bounded: crictl's own timeout covers the runtime; this covers crictl.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().ok()?.is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().ok()?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Some(text)
}

/// One line per Kubernetes container (state, restarts), then the last log lines
/// of each one that exited. Empty when crictl is missing or the runtime does not answer.
pub fn containers(crictl_path: &std::path::Path, endpoint: &str) -> Vec<String> {
    let Some(json) = crictl(crictl_path, endpoint, &["ps", "-a", "-o", "json"]) else {
        return Vec::new();
    };
    let Ok(list) = serde_json::from_str::<PsList>(&json) else {
        return vec![format!(
            "[diagnose] crictl ps -a: {}",
            json.lines().next().unwrap_or("")
        )];
    };
    let mut lines = vec![format!(
        "[diagnose] {} containers (crictl ps -a):",
        list.containers.len()
    )];
    for c in &list.containers {
        let pod = c
            .labels
            .get("io.kubernetes.pod.name")
            .map(String::as_str)
            .unwrap_or("?");
        lines.push(format!(
            "[diagnose]   {} {} (pod {pod}, attempt {})",
            c.metadata.name,
            c.state
                .trim_start_matches("CONTAINER_")
                .to_ascii_lowercase(),
            c.metadata.attempt
        ));
    }
    for c in list
        .containers
        .iter()
        .filter(|c| c.state == "CONTAINER_EXITED")
    {
        if let Some(log) = crictl(
            crictl_path,
            endpoint,
            &["logs", "--tail", LOG_LINES_PER_CONTAINER, &c.id],
        ) {
            lines.push(format!(
                "[diagnose] last lines of {} ({}):",
                c.metadata.name,
                &c.id[..c.id.len().min(12)]
            ));
            lines.extend(log.lines().map(|l| format!("[diagnose]   {l}")));
        }
    }
    lines.truncate(MAX_LINES);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A crictl stand-in that prints what the real one prints for `ps -a -o json` and `logs`.
    #[test]
    fn lists_containers_and_the_logs_of_exited_ones() {
        let d = tempfile::tempdir().unwrap();
        let fake = d.path().join("crictl");
        std::fs::write(
            &fake,
            r#"#!/bin/sh
case "$*" in
  *" ps -a -o json") echo '{"containers":[{"id":"aaaaaaaaaaaaaaaa","state":"CONTAINER_EXITED","metadata":{"name":"kube-apiserver","attempt":3},"labels":{"io.kubernetes.pod.name":"kube-apiserver-cp1"}},{"id":"bbbb","state":"CONTAINER_RUNNING","metadata":{"name":"etcd","attempt":0},"labels":{}}]}' ;;
  *" logs --tail 6 aaaaaaaaaaaaaaaa") echo "E1125 failed to listen on 0.0.0.0:6443" ;;
  *) echo "unexpected: $*" >&2; exit 1 ;;
esac
"#,
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let lines = containers(&fake, "unix:///run/containerd/containerd.sock");
        let all = lines.join("\n");
        assert!(
            all.contains("kube-apiserver exited (pod kube-apiserver-cp1, attempt 3)"),
            "{all}"
        );
        assert!(all.contains("etcd running"), "{all}");
        assert!(all.contains("failed to listen on 0.0.0.0:6443"), "{all}");
        assert!(!all.contains("unexpected"), "{all}");
    }

    #[test]
    fn nothing_when_crictl_is_missing() {
        assert!(containers(std::path::Path::new("/nonexistent/crictl"), "unix:///x").is_empty());
    }
}
