//! Runs the ffmpeg and ffprobe command-line tools synchronously, with a deadline.
//!
//! Owns the blocking child-process plumbing used by decoding (inside `spawn_blocking` or a
//! benchmark): standard output is collected up to a byte limit, standard error keeps its last few
//! KiB for error messages, and a watchdog kills the child at the deadline so a hung tool cannot
//! stall a QA run. It does not interpret what the tools print.

use crate::QaError;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How much of a tool's standard error an error message keeps.
pub(crate) const STDERR_TAIL_BYTES: usize = 4096;

/// What a finished tool printed.
#[derive(Debug)]
pub(crate) struct ToolOutput {
    pub stdout: Vec<u8>,
    /// The last [`STDERR_TAIL_BYTES`] of standard error, lossily decoded.
    pub stderr_tail: String,
}

/// Runs `program args…`, waits at most `timeout`, and fails unless it exits 0.
///
/// Standard output beyond `max_stdout` bytes is an error (the caller sized it from what it
/// expects), so a misbehaving tool cannot exhaust memory.
/// The programs this crate starts: `ffmpeg` (decoding, rendering) and `ffprobe` (probing).
pub const MEDIA_TOOLS: [&str; 2] = ["ffmpeg", "ffprobe"];

/// Whether `ffmpeg` and `ffprobe` can be started here (`-version`), for start-up checks and to
/// tell a QA runner that cannot run from a video it cannot read. The error names the program
/// and why it cannot start.
pub fn check_tools() -> Result<(), QaError> {
    for program in MEDIA_TOOLS {
        run_tool(
            program,
            &["-version".to_owned()],
            Duration::from_secs(10),
            1 << 20,
        )
        .map_err(|e| match e {
            QaError::Tool { tool, message } if message.starts_with("cannot start") => {
                QaError::Tool {
                    tool,
                    message: format!("{message} (is it installed and on PATH?)"),
                }
            }
            other => other,
        })?;
    }
    Ok(())
}

pub(crate) fn run_tool(
    program: &str,
    args: &[String],
    timeout: Duration,
    max_stdout: usize,
) -> Result<ToolOutput, QaError> {
    let tool_error = |message: String| QaError::Tool {
        tool: program.to_string(),
        message,
    };
    let mut child: Child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| tool_error(format!("cannot start: {e}")))?;
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let child = Arc::new(Mutex::new(child));

    let stderr_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        tail_lossy(&buf, STDERR_TAIL_BYTES)
    });

    let (done_tx, done_rx) = mpsc::channel::<()>();
    let watchdog = {
        let child = Arc::clone(&child);
        std::thread::spawn(move || match done_rx.recv_timeout(timeout) {
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.lock().map(|mut c| c.kill());
                true
            }
            _ => false,
        })
    };

    let mut out = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    let mut overflow = false;
    loop {
        match stdout.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                if out.len() + n > max_stdout {
                    overflow = true;
                    let _ = child.lock().map(|mut c| c.kill());
                    break;
                }
                out.extend_from_slice(&chunk[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(tool_error(format!("reading its output: {e}"))),
        }
    }
    drop(stdout);
    // Poll rather than block in `wait` while holding the lock: a child that closed its output but
    // keeps running must stay killable by the watchdog.
    let status = loop {
        let polled = child
            .lock()
            .map_err(|_| tool_error("lost its process handle".into()))?
            .try_wait();
        match polled {
            Ok(Some(status)) => break Ok(status),
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => break Err(e),
        }
    };
    let _ = done_tx.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    let stderr_tail = stderr_reader.join().unwrap_or_default();
    let status = status.map_err(|e| tool_error(format!("waiting for it: {e}")))?;

    if timed_out {
        return Err(tool_error(format!(
            "timed out after {:.1} s and was killed; stderr: {}",
            timeout.as_secs_f64(),
            quote_tail(&stderr_tail)
        )));
    }
    if overflow {
        return Err(tool_error(format!(
            "printed more than {max_stdout} bytes and was stopped"
        )));
    }
    if !status.success() {
        return Err(tool_error(format!(
            "exited with {status}; stderr: {}",
            quote_tail(&stderr_tail)
        )));
    }
    Ok(ToolOutput {
        stdout: out,
        stderr_tail,
    })
}

/// The last `max` bytes of `bytes` as text, starting at a character boundary.
pub(crate) fn tail_lossy(bytes: &[u8], max: usize) -> String {
    let start = bytes.len().saturating_sub(max);
    let text = String::from_utf8_lossy(&bytes[start..]);
    text.trim_start_matches('\u{FFFD}').to_string()
}

/// Standard error as it goes into an error message: trimmed, or a note that there was none.
pub(crate) fn quote_tail(tail: &str) -> String {
    let t = tail.trim();
    if t.is_empty() {
        "(empty)".to_string()
    } else {
        t.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_end_and_whole_characters() {
        let s = "ééééé".as_bytes();
        assert_eq!(tail_lossy(s, 3), "é");
        assert_eq!(tail_lossy(b"abc", 10), "abc");
    }

    #[test]
    fn a_missing_program_is_an_error_not_a_panic() {
        let e = run_tool("retake-no-such-tool", &[], Duration::from_secs(1), 10).unwrap_err();
        assert!(e.to_string().contains("cannot start"), "{e}");
    }

    #[test]
    fn a_hung_tool_is_killed_at_the_deadline() {
        let e = run_tool("sleep", &["30".into()], Duration::from_millis(200), 10).unwrap_err();
        assert!(e.to_string().contains("timed out"), "{e}");
    }
}
