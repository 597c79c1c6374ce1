//! Running a program to completion within a time limit, keeping the end of
//! what it printed for the error.

use std::io::{Read, Seek, SeekFrom};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Why a bounded run did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum BoundedError {
    #[error("could not start it: {0}")]
    Start(String),
    #[error("it did not finish within {}s", .0.as_secs())]
    TimedOut(Duration),
    #[error("{status}; its output ends: {output_tail}")]
    Failed {
        status: ExitStatus,
        /// The last lines of stdout and stderr, joined with ` | `.
        output_tail: String,
    },
}

/// Run `cmd` (stdin closed, stdout and stderr kept in one temporary file) to
/// completion within `limit`; a run past the limit is killed.
pub fn run_bounded(mut cmd: Command, limit: Duration) -> Result<(), BoundedError> {
    let start = |e: std::io::Error| BoundedError::Start(e.to_string());
    let out_file = tempfile::tempfile().map_err(start)?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(out_file.try_clone().map_err(start)?))
        .stderr(Stdio::from(out_file.try_clone().map_err(start)?))
        .spawn()
        .map_err(start)?;
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().map_err(start)? {
            break s;
        }
        if started.elapsed() >= limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(BoundedError::TimedOut(limit));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    if status.success() {
        return Ok(());
    }
    Err(BoundedError::Failed {
        status,
        output_tail: tail(out_file),
    })
}

/// The last 5 lines of the first 64 KiB of `f`, joined with ` | `.
fn tail(mut f: std::fs::File) -> String {
    let mut text = String::new();
    let _ = f.seek(SeekFrom::Start(0));
    let _ = f.take(64 * 1024).read_to_string(&mut text);
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}
