//! No secret past the redaction: a value derived from a sensitive value is
//! sensitive wherever it appears. Each test feeds a secret through one way
//! it used to leak (a map key, an error message, a computed id, a server's
//! echo) and scans everything Plinth prints — stdout and stderr of plan,
//! apply (human and --json), output and state show — for it.

use crate::*;
use std::path::Path;
use std::process::Output;

/// Runs plinth with the secret as the sensitive param `token`.
fn with_token(dir: &Path, token: &str, args: &[&str]) -> Output {
    plinth().args(args).env("PLINTH_VAR_token", token).current_dir(dir).output().expect("run plinth")
}

/// Every text the commands printed, then everything the state shows.
fn everything(dir: &Path, token: &str, runs: &[Output]) -> String {
    let mut all = String::new();
    for o in runs {
        all.push_str(&stdout(o));
        all.push_str(&stderr(o));
    }
    for args in [&["state", "show"][..], &["state", "show", "--json"], &["state", "list"], &["output"], &["output", "--json"]] {
        let o = with_token(dir, token, args);
        all.push_str(&stdout(&o));
        all.push_str(&stderr(&o));
    }
    all
}

#[track_caller]
fn assert_hidden(all: &str, secret: &str) {
    assert!(!all.contains(secret), "the secret {secret:?} was printed:\n{all}");
}

/// plan, plan --json, apply, apply --json: the outputs, and the text of all.
fn plan_and_apply(dir: &Path, token: &str) -> (Vec<Output>, String) {
    let runs = vec![
        with_token(dir, token, &["plan"]),
        with_token(dir, token, &["plan", "--json"]),
        with_token(dir, token, &["apply", "--auto-approve"]),
        with_token(dir, token, &["apply", "--auto-approve", "--json"]),
    ];
    let all = everything(dir, token, &runs);
    (runs, all)
}

const PARAM: &str = "param token: string {\n  sensitive = true\n}\n";

#[test]
fn a_map_key_built_from_a_secret_makes_the_object_sensitive() {
    let secret = "tok-mapkey-91c2e7";
    let p = project(&[("main.plinth", &format!("{PARAM}resource core.data d {{\n  input = {{ for t in [token] : t => 1 }}\n}}\nresource core.data e {{\n  input = {{ (token) = 2 }}\n}}\n"))]);
    let (runs, all) = plan_and_apply(p.path(), secret);
    assert_exit(&runs[2], 0);
    assert_hidden(&all, secret);
    // Such an object is sensitive: an output of it must say so.
    let q = project(&[("main.plinth", &format!("{PARAM}output o = {{ for t in [token] : t => 1 }}\n"))]);
    let o = with_token(q.path(), secret, &["plan"]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("P2034"), "{}", stderr(&o));
    assert_hidden(&format!("{}{}", stdout(&o), stderr(&o)), secret);
}

#[test]
fn a_sensitive_param_of_the_wrong_type_is_not_quoted() {
    let secret = "tok-number-5d1f0a";
    let p = project(&[("main.plinth", "param token: number {\n  sensitive = true\n}\nresource core.data d {\n  input = token\n}\n")]);
    let (runs, all) = plan_and_apply(p.path(), secret);
    assert_exit(&runs[0], 1);
    assert!(stderr(&runs[0]).contains("P2031"), "{}", stderr(&runs[0]));
    assert_hidden(&all, secret);
}

#[test]
fn an_attribute_of_the_wrong_type_built_from_a_secret_is_not_quoted() {
    let secret = "tok-length-77ab3e";
    let p = project(&[("main.plinth", &format!("{PARAM}resource random.password pw {{\n  length = token\n}}\n"))]);
    let (runs, all) = plan_and_apply(p.path(), secret);
    assert_exit(&runs[0], 1);
    assert!(stderr(&runs[0]).contains("P2033"), "{}", stderr(&runs[0]));
    assert_hidden(&all, secret);
}

#[test]
fn an_invalid_count_built_from_a_secret_is_not_quoted() {
    let secret = "tok-count-0e93aa";
    let p = project(&[("main.plinth", &format!("{PARAM}resource core.data d {{\n  count = token\n  input = 1\n}}\n"))]);
    let (runs, all) = plan_and_apply(p.path(), secret);
    assert_exit(&runs[0], 1);
    assert!(stderr(&runs[0]).contains("P2041"), "{}", stderr(&runs[0]));
    assert_hidden(&all, secret);
}

#[test]
fn a_missing_key_or_index_built_from_a_secret_is_not_quoted() {
    for (i, expr) in ["{ a = 1 }[token]", "{ (token) = 1 }[\"b\"]", "{ (token) = 1 }.b", "[1, 2][length(token)]", "{ for t in [token, token] : t => 1 }"].iter().enumerate() {
        let secret = format!("tok-index{i}-4c2d11");
        let p = project(&[("main.plinth", &format!("{PARAM}resource core.data d {{\n  input = {expr}\n}}\n"))]);
        let (runs, all) = plan_and_apply(p.path(), &secret);
        assert_exit(&runs[0], 1);
        assert_hidden(&all, &secret);
        // The sensitive map's other keys are not listed either.
        if expr.contains("(token)") {
            assert!(!all.contains("The keys are") && !all.contains("the attributes `"), "{expr}: {all}");
        }
    }
}

#[test]
fn a_file_mode_built_from_a_secret_is_not_quoted() {
    let secret = "tok-mode-8b41c9";
    let p = project(&[("main.plinth", &format!("{PARAM}resource file.file f {{\n  path = \"out.txt\"\n  content = \"x\"\n  mode = token\n}}\n"))]);
    let (runs, all) = plan_and_apply(p.path(), secret);
    assert_exit(&runs[2], 1);
    assert!(stderr(&runs[2]).contains("P6202"), "{}", stderr(&runs[2]));
    assert_hidden(&all, secret);
}

#[test]
fn a_file_path_built_from_a_secret_is_not_shown_in_errors_or_as_the_id() {
    let secret = "tok-path-3a7e52";
    // A path that cannot be written: the error names it.
    let blocker = project(&[("blocker", "a regular file")]);
    let bad = format!("{}/blocker/{{}}/f.txt", blocker.path().display()).replace("{}", "${token}");
    let p = project(&[("main.plinth", &format!("{PARAM}resource file.file f {{\n  path = \"{bad}\"\n  content = \"x\"\n}}\n"))]);
    let (runs, all) = plan_and_apply(p.path(), secret);
    assert_exit(&runs[2], 1);
    assert_hidden(&all, secret);
    // A path that can be written: its id (the absolute path) is sensitive.
    let q = project(&[("main.plinth", &format!("{PARAM}resource file.file f {{\n  path = \"out/${{token}}.txt\"\n  content = \"x\"\n}}\n"))]);
    let (runs, all) = plan_and_apply(q.path(), secret);
    assert_exit(&runs[2], 0);
    assert!(q.path().join(format!("out/{secret}.txt")).is_file());
    assert_hidden(&all, secret);
    let show = with_token(q.path(), secret, &["state", "show", "--json"]);
    assert!(stdout(&show).contains("(sensitive)"), "{}", stdout(&show));
}

fn bare_repo(at: &Path) {
    let ok = std::process::Command::new("git").args(["init", "-q", "--bare", "--initial-branch=main"]).arg(at).status().expect("git init");
    assert!(ok.success());
}

#[test]
fn a_git_path_built_from_a_secret_is_not_quoted() {
    let secret = "tok-gitpath-6f0d24";
    let p = project(&[("main.plinth", &format!("{PARAM}resource git.commit c {{\n  repository = \"remote.git\"\n  path = \"../${{token}}\"\n  files = {{ \"a.txt\" = \"a\" }}\n}}\n"))]);
    bare_repo(&p.path().join("remote.git"));
    let (runs, all) = plan_and_apply(p.path(), secret);
    assert_exit(&runs[2], 1);
    assert!(stderr(&runs[2]).contains("P6801"), "{}", stderr(&runs[2]));
    assert_hidden(&all, secret);
}

#[test]
fn a_git_commit_whose_repository_is_secret_has_a_sensitive_id() {
    let secret = "tok-gitrepo-2b9c70";
    let p = project(&[("main.plinth", &format!("{PARAM}resource git.commit c {{\n  repository = \"remote-${{token}}.git\"\n  path = \"deploy\"\n  files = {{ \"a.txt\" = \"a\" }}\n}}\n"))]);
    bare_repo(&p.path().join(format!("remote-{secret}.git")));
    let (runs, all) = plan_and_apply(p.path(), secret);
    assert_exit(&runs[2], 0);
    assert_hidden(&all, secret);
}

/// A server that answers every request 400 with the request it got (its
/// headers and body) as the body, as many APIs' error pages do.
fn echo_server() -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut head = String::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if lower.starts_with("x-api-key:") {
                    head.push_str(line.trim_end());
                    head.push(' ');
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            let text = format!("{{\"error\":\"bad request\",\"you_sent\":{}}}", serde_json::Value::String(format!("{head}{}", String::from_utf8_lossy(&body))));
            let _ = write!(stream, "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}", text.len());
        }
    });
    url
}

#[test]
fn an_http_server_echoing_a_secret_in_its_error_is_redacted() {
    let secret = "tok-echo-c3e5f8";
    let url = echo_server();
    let src = format!(
        "{PARAM}provider http {{\n  base_url = \"{url}\"\n  attempts = 1\n}}\nresource http.resource r {{\n  path = \"/things\"\n  body = {{ password = \"pw-${{token}}\" }}\n  headers = {{ \"X-Api-Key\" = \"key-${{token}}\" }}\n}}\n"
    );
    let p = project(&[("main.plinth", &src)]);
    let (runs, all) = plan_and_apply(p.path(), secret);
    assert_exit(&runs[2], 1);
    assert!(stderr(&runs[2]).contains("P6604"), "{}", stderr(&runs[2]));
    assert_hidden(&all, secret);
}
