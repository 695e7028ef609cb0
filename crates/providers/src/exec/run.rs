//! Running one operation: start the program (argv, no shell, in the project
//! directory), write the request, close stdin, collect stdout and stderr,
//! and turn every way it can go wrong into a `P67xx` diagnostic.
//!
//! The process is waited for on a plain thread (this crate's tokio has no
//! `process` feature); dropping the call's future kills the process.

use super::{Spec, PROTOCOL};
use crate::diagnostic::Diagnostic;
use crate::providers::provider_error;
use serde_json::Value as Json;
use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Most of stderr shown in a diagnostic.
const STDERR_SHOWN: usize = 2000;
/// Most of a non-JSON answer shown in a diagnostic.
const STDOUT_SHOWN: usize = 300;

/// Kills the process unless it was reaped: dropping a call ends its program.
struct KillOnDrop {
    pid: u32,
    done: Arc<AtomicBool>,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if !self.done.load(Ordering::SeqCst) {
            #[cfg(unix)]
            // SAFETY: kill(2) on a pid we started and have not reaped yet.
            unsafe {
                libc::kill(self.pid as libc::pid_t, libc::SIGKILL);
            }
        }
    }
}

fn program_path(spec: &Spec) -> std::path::PathBuf {
    let first = Path::new(&spec.command[0]);
    if first.is_relative() && first.components().count() > 1 {
        spec.dir.join(first)
    } else {
        first.to_path_buf()
    }
}

async fn run(spec: &Spec, input: Vec<u8>) -> std::io::Result<Output> {
    // Only the allow-list of crate::child and the configured `env`.
    let mut child = crate::child::command(program_path(spec), crate::child::Kind::ExecProvider, &spec.env)
        .args(&spec.command[1..])
        .current_dir(&spec.dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let done = Arc::new(AtomicBool::new(false));
    let guard = KillOnDrop { pid: child.id(), done: done.clone() };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let stdin = child.stdin.take();
    std::thread::spawn(move || {
        // A program that does not read its input must not block us.
        let writer = std::thread::spawn(move || {
            if let Some(mut s) = stdin {
                let _ = s.write_all(&input);
            }
        });
        let out = child.wait_with_output();
        done.store(true, Ordering::SeqCst);
        let _ = writer.join();
        let _ = tx.send(out);
    });
    let out = rx.await.unwrap_or_else(|_| Err(std::io::Error::other("the waiting thread ended")));
    drop(guard);
    out
}

fn truncate(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max).collect();
    format!("{cut}… ({} more bytes)", text.len() - cut.len())
}

fn with_stderr(d: Diagnostic, stderr: &str) -> Diagnostic {
    if stderr.trim().is_empty() {
        d
    } else {
        d.note(format!("the program's stderr: {}", truncate(stderr, STDERR_SHOWN)))
    }
}

fn status_text(out: &Output) -> String {
    if let Some(code) = out.status.code() {
        return format!("exit status {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = out.status.signal() {
            return format!("signal {sig}");
        }
    }
    "an unknown status".into()
}

/// An answer that is JSON but not what the operation needs.
pub fn bad_answer(op: &str, what: &str) -> Diagnostic {
    provider_error(
        "P6705",
        format!("the external provider's answer to `{op}` is incomplete: {what}"),
        "Answer with the fields docs/providers/exec.md lists for this operation.",
    )
}

static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);

fn seen_key(spec: &Spec, rtype: &str, id: &str) -> String {
    format!("{}\u{0}{rtype}\u{0}{id}", spec.command.join("\u{1}"))
}

/// True when an object with this id was read, created or updated in this
/// run: it is managed, whatever `list` says.
pub fn seen(spec: &Spec, rtype: &str, id: &str) -> bool {
    SEEN.lock().map(|s| s.as_ref().is_some_and(|s| s.contains(&seen_key(spec, rtype, id)))).unwrap_or(false)
}

/// Runs one operation and returns the answer object (never an error answer).
pub async fn call(spec: &Spec, op: &str, request: &Json) -> Result<serde_json::Map<String, Json>, Diagnostic> {
    let program = spec.command.join(" ");
    let out = run(spec, request.to_string().into_bytes()).await.map_err(|e| {
        provider_error(
            "P6700",
            format!("cannot start the external provider `{program}`"),
            format!("Starting it failed: {e}. Check that `command` names an executable (relative paths resolve against the project directory) and that it is installed."),
        )
    })?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let text = stdout.trim();
    let parsed: Option<Json> = serde_json::from_str(text).ok();
    let Some(Json::Object(answer)) = parsed else {
        let d = if !out.status.success() {
            provider_error(
                "P6701",
                format!("the external provider `{program}` failed on `{op}` with {}", status_text(&out)),
                "The program ended without a JSON answer: see its stderr below, fix the program, and run again. Nothing was recorded for this operation.",
            )
        } else if text.is_empty() {
            provider_error(
                "P6702",
                format!("the external provider `{program}` gave no answer to `{op}`"),
                "It must print exactly one JSON object on stdout (see docs/providers/exec.md); write logs to stderr.",
            )
        } else {
            provider_error(
                "P6702",
                format!("the external provider `{program}` did not answer `{op}` with one JSON object"),
                "It must print exactly one JSON object on stdout (see docs/providers/exec.md); write logs to stderr, not stdout.",
            )
            .note(format!("it printed: {}", truncate(text, STDOUT_SHOWN)))
        };
        return Err(with_stderr(d, &stderr));
    };
    if let Some(p) = answer.get("protocol") {
        if p.as_i64() != Some(PROTOCOL) {
            return Err(with_stderr(
                provider_error(
                    "P6703",
                    format!("the external provider `{program}` speaks protocol {p}, not {PROTOCOL}"),
                    format!("This Plinth speaks version {PROTOCOL} of the exec protocol: use a version of the program that supports it, or omit \"protocol\" from its answers."),
                ),
                &stderr,
            ));
        }
    }
    if let Some(err) = answer.get("error") {
        let code = err.get("code").and_then(Json::as_str).unwrap_or("error");
        let message = err.get("message").and_then(Json::as_str).map(str::to_string).unwrap_or_else(|| err.to_string());
        let mut d = provider_error(
            "P6704",
            format!("the external provider `{program}` refused `{op}`: {message} ({code})"),
            if err.get("retryable") == Some(&Json::Bool(true)) {
                "The program says this is transient: Plinth may retry it (see `max_retries`); otherwise run again later."
            } else {
                "The program reported this error: correct the configuration it names, or the program, and run again."
            },
        );
        if !out.status.success() {
            d = d.note(format!("the program ended with {}", status_text(&out)));
        }
        if err.get("retryable") == Some(&Json::Bool(true)) {
            d = d.retryable();
        }
        return Err(with_stderr(d, &stderr));
    }
    if !out.status.success() {
        return Err(with_stderr(
            provider_error(
                "P6701",
                format!("the external provider `{program}` failed on `{op}` with {}", status_text(&out)),
                "A failing program must answer {\"error\": {…}}; its answer without one is not trusted. Fix the program and run again.",
            ),
            &stderr,
        ));
    }
    if matches!(op, "read" | "create" | "update") {
        if let (Some(t), Some(Json::String(id))) = (request.get("type").and_then(Json::as_str), answer.get("id")) {
            if let Ok(mut s) = SEEN.lock() {
                s.get_or_insert_with(HashSet::new).insert(seen_key(spec, t, id));
            }
        }
    }
    Ok(answer)
}
