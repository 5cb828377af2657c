//! Studio command checks: run `program args… VIDEO_PATH`, feed `config` as JSON on standard
//! input, read `{"results": [{"check", "score", "details"}]}` from standard output.
//!
//! Owns the child process (tokio), its deadline and the strict parsing of what it prints. Anything
//! other than a zero exit with well-formed results in time is a [`QaError::Command`] naming the
//! command, the cause and the last 4 KiB of its standard error; it is never a pass.
//!
//! - The child runs in its own process group; on timeout (or when it prints more than 16 MiB) the
//!   whole group is killed, so a shell script's own children cannot linger holding the pipes.
//! - A `null` config is sent as `{}`. A program that does not read its input is fine.
//! - Results: a non-empty array; each `check` a non-empty string, each `score` a finite number in
//!   0..=1, `details` optional (any JSON).

use crate::process::{quote_tail, tail_lossy, STDERR_TAIL_BYTES};
use crate::QaError;
use retake_core::qa::{CheckScore, CommandCheck};
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

/// Standard output beyond this is treated as a broken command.
const MAX_STDOUT: usize = 16 << 20;

/// Runs one command check against `video`.
pub async fn run_command_check(
    cmd: &CommandCheck,
    video: &Path,
) -> Result<Vec<CheckScore>, QaError> {
    let fail = |cause: String, stderr: &str| QaError::Command {
        name: cmd.name.clone(),
        program: cmd.program.clone(),
        cause,
        stderr: quote_tail(stderr),
    };
    if let Err((field, reason)) = cmd.validate(0) {
        let field = field.rsplit('.').next().unwrap_or(&field).to_string();
        return Err(fail(format!("is misconfigured: `{field}` {reason}"), ""));
    }
    let mut child = Command::new(&cmd.program)
        .args(&cmd.args)
        .arg(video)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(format!("could not start: {e}"), ""))?;
    let pid = child.id();

    let stderr_tail = Arc::new(Mutex::new(Vec::<u8>::new()));
    let stderr_task = child
        .stderr
        .take()
        .map(|s| tokio::spawn(keep_tail(s, Arc::clone(&stderr_tail))));
    let read_stderr = || {
        tail_lossy(
            &stderr_tail.lock().map(|b| b.clone()).unwrap_or_default(),
            STDERR_TAIL_BYTES,
        )
    };

    let input = match &cmd.config {
        Value::Null => b"{}".to_vec(),
        v => serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec()),
    };
    let stdin = child.stdin.take();
    let write_input = async move {
        if let Some(mut s) = stdin {
            // A program that ignores its input closes the pipe; that is not an error.
            let _ = s.write_all(&input).await;
            let _ = s.shutdown().await;
        }
    };
    let mut stdout = child.stdout.take();
    let read_output = async {
        let mut buf = Vec::new();
        if let Some(out) = stdout.as_mut() {
            let mut limited = out.take(MAX_STDOUT as u64 + 1);
            limited.read_to_end(&mut buf).await.map(|_| buf)
        } else {
            Ok(buf)
        }
    };
    let deadline = Duration::from_secs_f64(cmd.timeout_seconds);
    let run = async {
        let (_, out, status) = tokio::join!(write_input, read_output, child.wait());
        (out, status)
    };
    let outcome = tokio::time::timeout(deadline, run).await;
    kill_group(pid);
    let _ = child.wait().await;
    if let Some(task) = stderr_task {
        // Normally at EOF already; do not wait on a pipe some escaped process still holds.
        let _ = tokio::time::timeout(Duration::from_millis(500), task).await;
    }
    let stderr = read_stderr();

    let (out, status) = match outcome {
        Err(_) => {
            return Err(fail(
                format!("timed out after {} s and was killed", cmd.timeout_seconds),
                &stderr,
            ))
        }
        Ok(r) => r,
    };
    let status = status.map_err(|e| fail(format!("could not be waited for: {e}"), &stderr))?;
    let out = out.map_err(|e| fail(format!("output could not be read: {e}"), &stderr))?;
    if !status.success() {
        return Err(fail(format!("exited with {status}"), &stderr));
    }
    if out.len() > MAX_STDOUT {
        return Err(fail(
            format!("printed more than {MAX_STDOUT} bytes"),
            &stderr,
        ));
    }
    parse_results(&out).map_err(|cause| fail(cause, &stderr))
}

/// Reads `source` to its end, keeping only the last [`STDERR_TAIL_BYTES`] (plus a little slack).
async fn keep_tail(mut source: impl AsyncRead + Unpin, tail: Arc<Mutex<Vec<u8>>>) {
    let mut chunk = [0u8; 4096];
    while let Ok(n) = source.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        if let Ok(mut t) = tail.lock() {
            t.extend_from_slice(&chunk[..n]);
            let excess = t.len().saturating_sub(2 * STDERR_TAIL_BYTES);
            if excess > 0 {
                t.drain(..excess);
            }
        }
    }
}

/// Kills the child's whole process group (it is the group leader); a gone group is fine.
fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()).filter(|p| *p > 0) {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is involved.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// Parses a command's standard output strictly; the error says what was wrong.
pub fn parse_results(stdout: &[u8]) -> Result<Vec<CheckScore>, String> {
    let text = String::from_utf8_lossy(stdout);
    let json: Value = serde_json::from_str(text.trim()).map_err(|e| {
        let shown: String = text.trim().chars().take(200).collect();
        format!("printed malformed JSON ({e}): {shown:?}")
    })?;
    let results = json
        .get("results")
        .and_then(Value::as_array)
        .ok_or("printed no `results` array".to_string())?;
    if results.is_empty() {
        return Err("printed an empty `results` array".into());
    }
    results
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let check = r
                .get("check")
                .and_then(Value::as_str)
                .filter(|c| !c.trim().is_empty())
                .ok_or(format!("results[{i}] has no `check` name"))?;
            let score = r
                .get("score")
                .and_then(Value::as_f64)
                .ok_or(format!("results[{i}] (`{check}`) has no numeric `score`"))?;
            if !(score.is_finite() && (0.0..=1.0).contains(&score)) {
                return Err(format!(
                    "results[{i}] (`{check}`) score {score} is outside 0..=1"
                ));
            }
            let details = r.get("details").cloned().unwrap_or(Value::Null);
            Ok(CheckScore {
                check: check.to_string(),
                score,
                details,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_results_parse() {
        let r = parse_results(
            br#"{"results": [{"check": "duration", "score": 0.8, "details": {"s": 3}}]}"#,
        )
        .unwrap();
        assert_eq!(r[0].check, "duration");
        assert_eq!(r[0].score, 0.8);
        assert_eq!(r[0].details["s"], 3);
    }

    #[test]
    fn malformed_results_say_what_is_wrong() {
        assert!(parse_results(b"not json")
            .unwrap_err()
            .contains("malformed JSON"));
        assert!(parse_results(b"{}").unwrap_err().contains("no `results`"));
        assert!(parse_results(br#"{"results": []}"#)
            .unwrap_err()
            .contains("empty"));
        assert!(
            parse_results(br#"{"results": [{"check": "x", "score": 1.5}]}"#)
                .unwrap_err()
                .contains("outside")
        );
        assert!(
            parse_results(br#"{"results": [{"check": "x", "score": "high"}]}"#)
                .unwrap_err()
                .contains("numeric")
        );
        assert!(parse_results(br#"{"results": [{"score": 0.5}]}"#)
            .unwrap_err()
            .contains("no `check`"));
    }
}
