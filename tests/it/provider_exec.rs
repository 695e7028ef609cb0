//! The `exec` provider: external programs speaking the JSON protocol of
//! docs/providers/exec.md, driven through the real CLI.

use crate::provider_conformance::{run as conformance, Case};
use crate::*;
use std::path::{Path, PathBuf};

fn notes_py() -> PathBuf {
    repo_root().join("examples/providers/notes.py")
}

fn python() -> bool {
    std::process::Command::new("python3").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// Every note file in `dir`: (path, parsed JSON).
fn notes(dir: &Path) -> Vec<(PathBuf, serde_json::Value)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return vec![] };
    let mut out: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json") && !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .map(|p| {
            let v = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (p, v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn notes_config(dir: &Path, body: &str) -> String {
    format!(
        "provider exec {{\n  command = [\"python3\", \"{}\"]\n  env     = {{ NOTES_DIR = \"{}\" }}\n}}\n\nresource exec.resource n {{\n  type   = \"note\"\n  config = {{ title = \"hello\", body = \"{body}\" }}\n}}\n",
        notes_py().display(),
        dir.display()
    )
}

#[test]
fn the_exec_provider_passes_with_notes_py() {
    if !python() {
        eprintln!("skipped: no python3");
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let dir = store.path().to_path_buf();
    let d1 = dir.clone();
    let exists = move |v: Option<&str>| {
        let all = notes(&d1);
        all.len() == 1 && v.is_none_or(|v| all[0].1["body"] == format!("version {v}"))
    };
    let d2 = dir.clone();
    let tamper = move || {
        for (p, mut n) in notes(&d2) {
            n["body"] = "tampered".into();
            std::fs::write(p, n.to_string()).unwrap();
        }
    };
    let config = notes_config(&dir, "version {V}");
    conformance(&Case { name: "exec.resource", config: &config, args: vec![], env: vec![], exists: &exists, tamper: &tamper });
}

/// A project whose provider is the given shell script (run as `sh script`).
fn scripted(script: &str) -> tempfile::TempDir {
    let config =
        "provider exec {\n  command = [\"sh\", \"provider.sh\"]\n}\n\nresource exec.resource x {\n  type   = \"thing\"\n  config = { name = \"a\" }\n}\n";
    project(&[("main.plinth", config), ("provider.sh", script)])
}

#[track_caller]
fn fails_cleanly(script: &str, code: &str, words: &[&str]) {
    let p = scripted(script);
    assert_exit(&run(p.path(), &["validate"]), 0);
    let o = run(p.path(), &["apply", "--auto-approve"]);
    assert_exit(&o, 1);
    let text = format!("{}{}", stdout(&o), stderr(&o));
    assert!(text.contains(code), "{code} in:\n{text}");
    for w in words {
        assert!(text.contains(w), "{w:?} in:\n{text}");
    }
    assert_eq!(stdout(&run(p.path(), &["state", "list"])), "", "nothing recorded");
}

#[test]
fn garbage_on_stdout_is_a_diagnostic() {
    fails_cleanly("cat >/dev/null\necho 'hello, I am not JSON'\n", "P6702", &["not JSON", "one JSON object"]);
}

#[test]
fn a_structured_error_with_exit_3_is_a_diagnostic() {
    fails_cleanly(
        "cat >/dev/null\necho 'quota exceeded for things' >&2\necho '{\"error\":{\"code\":\"quota\",\"message\":\"no more things\",\"retryable\":false}}'\nexit 3\n",
        "P6704",
        &["no more things", "quota", "exit status 3", "quota exceeded for things"],
    );
}

#[test]
fn a_crash_without_an_answer_is_a_diagnostic() {
    fails_cleanly("cat >/dev/null\necho 'Traceback: boom' >&2\nexit 7\n", "P6701", &["exit status 7", "Traceback: boom"]);
}

#[test]
fn a_wrong_protocol_version_is_a_diagnostic() {
    fails_cleanly("cat >/dev/null\necho '{\"protocol\":2,\"id\":\"x\",\"state\":{}}'\n", "P6703", &["protocol 2"]);
}

#[test]
fn a_missing_program_is_a_diagnostic() {
    let config = "provider exec {\n  command = [\"./no-such-provider\"]\n}\n\nresource exec.resource x {\n  type = \"thing\"\n}\n";
    let p = project(&[("main.plinth", config)]);
    let o = run(p.path(), &["apply", "--auto-approve"]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("P6700"), "{}", stderr(&o));
    assert_eq!(stdout(&run(p.path(), &["state", "list"])), "");
}

#[test]
fn the_program_receives_the_documented_request() {
    // Echo the request back as the state: the test reads what Plinth sent.
    let script = "req=$(cat)\nprintf '{\"id\":\"one\",\"state\":%s}' \"$req\"\n";
    let p = scripted(script);
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    let o = run(p.path(), &["state", "show", "exec.resource.x", "--json"]);
    assert_exit(&o, 0);
    let text = stdout(&o).replace(' ', "");
    for w in [
        "\"protocol\":1",
        "\"operation\":\"create\"",
        "\"type\":\"thing\"",
        "\"id\":null",
        "\"config\":{\"name\":\"a\"}",
        "\"token\":\"",
        "\"address\":\"exec.resource.x\"",
    ] {
        assert!(text.contains(w), "{w} in {text}");
    }
}

#[test]
fn an_interrupted_create_is_found_by_its_token() {
    if !python() {
        eprintln!("skipped: no python3");
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let p = project(&[("main.plinth", &notes_config(store.path(), "hi"))]);
    let killed = plinth().args(["apply", "--auto-approve"]).env("PLINTH_FAULT", "call:1").current_dir(p.path()).output().unwrap();
    assert_ne!(killed.status.code(), Some(0), "the fault killed apply");
    assert_eq!(notes(store.path()).len(), 1, "the create happened before the kill");
    let again = run(p.path(), &["apply", "--auto-approve"]);
    assert_exit(&again, 0);
    assert_eq!(notes(store.path()).len(), 1, "no second note: the token found the first");
    assert_eq!(stdout(&run(p.path(), &["state", "list"])).lines().count(), 1);
    assert_exit(&run(p.path(), &["plan", "--detailed-exitcode", "--refresh"]), 0);
    // A note Plinth did not make is listed as unmanaged, the managed one is not.
    std::fs::write(store.path().join("stray.json"), r#"{"id":"stray","title":"x","body":"","token":null}"#).unwrap();
    let drift = run(p.path(), &["drift"]);
    assert_exit(&drift, 2);
    assert!(stdout(&drift).contains("note/stray is not managed"), "{}", stdout(&drift));
    assert!(stdout(&drift).contains("1 unmanaged"), "{}", stdout(&drift));
    std::fs::remove_file(store.path().join("stray.json")).unwrap();
    assert_exit(&run(p.path(), &["destroy", "--auto-approve"]), 0);
    assert!(notes(store.path()).is_empty());
}
