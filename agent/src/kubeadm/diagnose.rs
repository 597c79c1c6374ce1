//! What kubeadm's failure message tells an operator to go and look at
//! (`crictl ps -a`, the logs of the container that failed, `journalctl -u
//! kubelet`), collected by the agent so the report carries it and nobody has
//! to log in.

use std::process::Command;
use std::time::Duration;

/// At most this many lines in all (half of a status event's log tail).
pub const MAX_LINES: usize = kubeboot_core::status::LOG_TAIL_MAX_LINES / 2;
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
    let mut cmd = Command::new(crictl);
    cmd.args(["--runtime-endpoint", endpoint, "--timeout", "10s"])
        .args(args);
    bounded_output(cmd)
}

/// Run `cmd` for at most 20 s; its stdout then stderr.
fn bounded_output(mut cmd: Command) -> Option<String> {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?;
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

/// The kubelet's last distinct error lines (klog `E` lines) from the journal:
/// why it could not start a pod sandbox, reach the runtime, or register.
pub fn kubelet_errors(journalctl: &std::path::Path, max: usize) -> Vec<String> {
    let mut cmd = Command::new(journalctl);
    cmd.args(["-u", "kubelet", "-n", "400", "-o", "cat", "--no-pager"]);
    let Some(text) = bounded_output(cmd) else {
        return Vec::new();
    };
    // klog: "E1125 02:03:04.123456    1234 file.go:12] message", newest last.
    let mut causes: Vec<String> = Vec::new();
    let mut consequences: Vec<String> = Vec::new();
    for line in text.lines().rev() {
        let Some((_, msg)) = line.strip_prefix('E').and_then(|l| l.split_once("] ")) else {
            continue;
        };
        let msg: String = msg.chars().take(400).collect();
        // While the control plane is not up, every API call fails: those lines
        // are the symptom kubeadm already reported, not the cause.
        let list = if is_api_unreachable(&msg) {
            &mut consequences
        } else {
            &mut causes
        };
        if !list.contains(&msg) {
            list.push(msg);
        }
    }
    let mut seen: Vec<String> = causes.into_iter().take(max).collect();
    seen.reverse();
    let room = max.saturating_sub(seen.len()).min(1);
    seen.extend(consequences.into_iter().take(room));
    let mut lines = Vec::new();
    if !seen.is_empty() {
        lines.push(format!(
            "[diagnose] the kubelet's last {} distinct errors (journalctl -u kubelet):",
            seen.len()
        ));
        lines.extend(seen.into_iter().map(|m| format!("[diagnose]   {m}")));
    }
    lines
}

fn is_api_unreachable(msg: &str) -> bool {
    msg.contains("connect: connection refused")
        || msg.contains("Unable to write event")
        || msg.contains("i/o timeout")
        || msg.contains("Reached backoff limit, still unable to rotate certs")
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

    #[test]
    fn the_kubelets_last_distinct_errors() {
        let d = tempfile::tempdir().unwrap();
        let fake = d.path().join("journalctl");
        std::fs::write(
            &fake,
            r#"#!/bin/sh
[ "$*" = "-u kubelet -n 400 -o cat --no-pager" ] || { echo "unexpected: $*"; exit 1; }
echo 'I1125 02:00:00.000000     100 server.go:1] Starting'
echo 'E1125 02:00:01.000000     100 remote_runtime.go:1] "RunPodSandbox from runtime service failed" err="no such image"'
echo 'E1125 02:00:02.000000     100 kubelet.go:2] "Error getting node" err="node "cp1" not found"'
echo 'E1125 02:00:03.000000     100 remote_runtime.go:1] "RunPodSandbox from runtime service failed" err="no such image"'
echo 'E1125 02:00:04.000000     100 controller.go:146] "Failed to ensure lease exists" err="dial tcp 10.0.2.15:6443: connect: connection refused"'
echo 'E1125 02:00:05.000000     100 reflector.go:147] Failed to watch *v1.Node: dial tcp 10.0.2.15:6443: connect: connection refused'
"#,
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let lines = kubelet_errors(&fake, 5);
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert!(lines[0].contains("3 distinct errors"), "{lines:#?}");
        // Causes first (oldest to newest), then one line of "the API is not there".
        assert!(lines[1].contains("Error getting node"), "{lines:#?}");
        assert!(lines[2].contains("RunPodSandbox") && lines[2].contains("no such image"));
        assert!(lines[3].contains("Failed to watch *v1.Node"), "{lines:#?}");
        assert_eq!(kubelet_errors(&fake, 1).len(), 2, "max bounds the causes");
        assert!(kubelet_errors(std::path::Path::new("/nonexistent/journalctl"), 5).is_empty());
    }
}
