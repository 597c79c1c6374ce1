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
    let (tx, rx) = mpsc::channel::<String>();
    let readers = [
        forward(child.stdout.take().expect("piped"), tx.clone()),
        forward(child.stderr.take().expect("piped"), tx),
    ];
    let mut tail = VecDeque::with_capacity(tail_lines);
    for line in rx {
        on_line(&line);
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
    })
}

fn forward(
    stream: impl Read + Send + 'static,
    tx: mpsc::Sender<String>,
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
                    if tx.send(line).is_err() {
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
    fn keeps_tail_and_streams_every_line() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "for i in 1 2 3 4 5; do echo out$i; done; echo err >&2; exit 3"]);
        let mut seen = Vec::new();
        let out = run_streaming(cmd, 3, |l| seen.push(l.to_string())).unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(seen.len(), 6);
        assert_eq!(out.tail.len(), 3);
        assert!(out.tail.contains(&"err".to_string()));
        assert!(out.tail.contains(&"out5".to_string()));
    }
}
