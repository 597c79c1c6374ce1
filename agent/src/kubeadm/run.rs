//! Running kubeadm: version detection and streamed execution with a kept tail.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;

/// `kubeadm version -o short`, e.g. `v1.34.2`. `None` when kubeadm is not runnable.
pub fn detect_version(kubeadm: &Path) -> Option<String> {
    let out = Command::new(kubeadm)
        .args(["version", "-o", "short"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|v| !v.is_empty())
}

#[derive(Debug)]
pub struct RunOutcome {
    pub status: ExitStatus,
    /// The last lines of stdout and stderr, interleaved as they arrived.
    pub tail: Vec<String>,
    /// kubeadm's error: the last stderr line starting with "error" (kubeadm's
    /// "error execution phase …"), else the last non-empty stderr line that is
    /// not kubeadm's "To see the stack trace …" hint.
    pub last_error_line: Option<String>,
}

/// Run a command, handing every output line (stdout and stderr) to `on_line` as
/// it arrives, and keep the last `tail_lines` lines.
pub fn run_streaming(
    mut cmd: Command,
    tail_lines: usize,
    mut on_line: impl FnMut(&str),
) -> std::io::Result<RunOutcome> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let (tx, rx) = mpsc::channel::<(bool, String)>();
    let readers = [
        forward(child.stdout.take().expect("piped"), false, tx.clone()),
        forward(child.stderr.take().expect("piped"), true, tx),
    ];
    let mut tail = VecDeque::with_capacity(tail_lines);
    let mut last_error_line = None;
    let mut last_stderr_line = None;
    for (is_stderr, line) in rx {
        on_line(&line);
        let trimmed = line.trim();
        if is_stderr && !trimmed.is_empty() && !trimmed.starts_with("To see the stack trace") {
            if trimmed.to_ascii_lowercase().starts_with("error") {
                last_error_line = Some(line.clone());
            }
            last_stderr_line = Some(line.clone());
        }
        if tail.len() == tail_lines {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    for r in readers {
        let _ = r.join();
    }
    let status = child.wait()?;
    Ok(RunOutcome {
        status,
        tail: tail.into(),
        last_error_line: last_error_line.or(last_stderr_line),
    })
}

fn forward(
    stream: impl Read + Send + 'static,
    is_stderr: bool,
    tx: mpsc::Sender<(bool, String)>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end_matches(['\n', '\r']);
                    // Bound a single line so a runaway writer cannot grow memory.
                    let line: String = line.chars().take(4096).collect();
                    if tx.send((is_stderr, line)).is_err() {
                        break;
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_every_line_and_keeps_the_last_error() {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "for i in 1 2 3 4 5; do echo out$i; done; echo err1 >&2; echo err2 >&2; exit 3",
        ]);
        let mut seen = Vec::new();
        let out = run_streaming(cmd, 10, |l| seen.push(l.to_string())).unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(seen.len(), 7);
        assert_eq!(out.tail.len(), 7);
        assert_eq!(out.last_error_line.as_deref(), Some("err2"));
    }

    /// kubeadm's shape: the error, then a hint line; the error is what is reported.
    #[test]
    fn kubeadm_error_line_wins_over_its_stack_trace_hint() {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "echo '[preflight] Running pre-flight checks' >&2; \
             echo 'error execution phase preflight: [ERROR Mem]: too little' >&2; \
             echo 'To see the stack trace of this error execute with --v=5 or higher' >&2; exit 1",
        ]);
        let out = run_streaming(cmd, 10, |_| {}).unwrap();
        assert_eq!(
            out.last_error_line.as_deref(),
            Some("error execution phase preflight: [ERROR Mem]: too little")
        );
    }

    #[test]
    fn tail_is_bounded_to_the_last_lines() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "for i in $(seq 1 20); do echo line$i; done"]);
        let out = run_streaming(cmd, 3, |_| {}).unwrap();
        assert_eq!(out.tail, ["line18", "line19", "line20"]);
        assert_eq!(out.last_error_line, None);
    }
}
