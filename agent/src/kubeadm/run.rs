//! Running kubeadm: version detection and streamed execution with a kept tail.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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
    cmd: Command,
    tail_lines: usize,
    on_line: impl FnMut(&str),
) -> std::io::Result<RunOutcome> {
    run_with_heartbeat(cmd, tail_lines, on_line, Duration::MAX, |_| {})
}

/// [`run_streaming`], and `on_beat(elapsed)` every `every` while the command
/// runs, whether it prints or not (the init election's lease is kept by it).
pub fn run_with_heartbeat(
    mut cmd: Command,
    tail_lines: usize,
    mut on_line: impl FnMut(&str),
    every: Duration,
    mut on_beat: impl FnMut(Duration),
) -> std::io::Result<RunOutcome> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let (tx, rx) = mpsc::sync_channel::<(bool, String)>(QUEUED_LINES);
    let readers = [
        forward(child.stdout.take().expect("piped"), false, tx.clone()),
        forward(child.stderr.take().expect("piped"), true, tx),
    ];
    let mut tail = VecDeque::with_capacity(tail_lines);
    let mut last_error_line = None;
    let mut last_stderr_line = None;
    let started = Instant::now();
    let mut next = started.checked_add(every);
    loop {
        let received = match next {
            Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
            None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
        };
        if let Some(at) = next.filter(|at| Instant::now() >= *at) {
            on_beat(started.elapsed());
            next = at.checked_add(every);
        }
        let (is_stderr, line) = match received {
            Ok(l) => l,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
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

/// The longest output line kept, in bytes; the rest of a longer line is read
/// and dropped without being stored.
const MAX_LINE_BYTES: usize = 4096;
/// Lines waiting for the consumer; a writer faster than the consumer blocks
/// instead of growing a queue.
const QUEUED_LINES: usize = 1024;

fn forward(
    stream: impl Read + Send + 'static,
    is_stderr: bool,
    tx: mpsc::SyncSender<(bool, String)>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || forward_lines(stream, is_stderr, &tx))
}

/// Send each line of `stream`, cut to `MAX_LINE_BYTES`. The read itself is
/// bounded: a line that never ends costs at most one buffer of memory, and its
/// first part is sent before the rest is skipped.
fn forward_lines(stream: impl Read, is_stderr: bool, tx: &mpsc::SyncSender<(bool, String)>) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::with_capacity(MAX_LINE_BYTES);
    loop {
        buf.clear();
        let n = match (&mut reader)
            .take(MAX_LINE_BYTES as u64)
            .read_until(b'\n', &mut buf)
        {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let cut = n == MAX_LINE_BYTES && buf.last() != Some(&b'\n');
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches(['\n', '\r']).to_string();
        if tx.send((is_stderr, line)).is_err() {
            break;
        }
        if cut && reader.skip_until(b'\n').is_err() {
            break;
        }
    }
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

    /// Serves `len` bytes of 'a', then blocks until told to go on, then ends
    /// the line.
    struct EndlessLine {
        left: usize,
        go: Option<mpsc::Receiver<()>>,
        tail: &'static [u8],
    }

    impl Read for EndlessLine {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            if self.left > 0 {
                let n = out.len().min(self.left);
                out[..n].fill(b'a');
                self.left -= n;
                return Ok(n);
            }
            if let Some(go) = self.go.take() {
                let _ = go.recv();
            }
            let n = out.len().min(self.tail.len());
            out[..n].copy_from_slice(&self.tail[..n]);
            self.tail = &self.tail[n..];
            Ok(n)
        }
    }

    /// The first part of an over-long line arrives while the line is still
    /// being written: the reader never holds the whole line.
    #[test]
    fn a_line_that_never_ends_is_cut_without_reading_it_whole() {
        let (go_tx, go_rx) = mpsc::channel();
        let stream = EndlessLine {
            left: 4 << 20,
            go: Some(go_rx),
            tail: b"\nnext line\n",
        };
        let (tx, rx) = mpsc::sync_channel(QUEUED_LINES);
        let reader = std::thread::spawn(move || forward_lines(stream, false, &tx));
        let first = rx.recv_timeout(std::time::Duration::from_secs(30));
        let _ = go_tx.send(());
        let (_, first) = first.expect("the cut line arrives before the line ends");
        assert_eq!(first.len(), MAX_LINE_BYTES);
        assert!(first.bytes().all(|b| b == b'a'));
        let rest: Vec<String> = rx.iter().map(|(_, l)| l).collect();
        assert_eq!(rest, ["next line"]);
        reader.join().unwrap();
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
