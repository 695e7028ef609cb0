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
    let p = project(&[(
        "main.plinth",
        &format!("{PARAM}resource core.data d {{\n  input = {{ for t in [token] : t => 1 }}\n}}\nresource core.data e {{\n  input = {{ (token) = 2 }}\n}}\n"),
    )]);
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
    for (i, expr) in
        ["{ a = 1 }[token]", "{ (token) = 1 }[\"b\"]", "{ (token) = 1 }.b", "[1, 2][length(token)]", "{ for t in [token, token] : t => 1 }"].iter().enumerate()
    {
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
    let p = project(&[(
        "main.plinth",
        &format!("{PARAM}resource git.commit c {{\n  repository = \"remote.git\"\n  path = \"../${{token}}\"\n  files = {{ \"a.txt\" = \"a\" }}\n}}\n"),
    )]);
    bare_repo(&p.path().join("remote.git"));
    let (runs, all) = plan_and_apply(p.path(), secret);
    assert_exit(&runs[2], 1);
    assert!(stderr(&runs[2]).contains("P6801"), "{}", stderr(&runs[2]));
    assert_hidden(&all, secret);
}

#[test]
fn a_git_commit_whose_repository_is_secret_has_a_sensitive_id() {
    let secret = "tok-gitrepo-2b9c70";
    let p = project(&[(
        "main.plinth",
        &format!("{PARAM}resource git.commit c {{\n  repository = \"remote-${{token}}.git\"\n  path = \"deploy\"\n  files = {{ \"a.txt\" = \"a\" }}\n}}\n"),
    )]);
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
            let _ = write!(
                stream,
                "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
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

// ------------------------------------------------------ child processes

const KEY_A: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const KEY_B: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

/// The names and values a child must never see.
fn forbidden(token: &str) -> Vec<String> {
    ["PLINTH_STATE_KEY", "PLINTH_STATE=", "PLINTH_VAR_", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "wJalrXUtnFEMI-child-secret", KEY_A, KEY_B, token]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn executable(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write script");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
}

/// An exec provider, a git push to a repository whose hook dumps its
/// environment, and a kubeconfig credential plugin: each writes what it
/// was given to a file, and none holds Plinth's secrets.
#[test]
fn children_never_see_plinths_secrets() {
    let token = "tok-child-0b8e4d";
    let dumps = tempfile::tempdir().expect("tempdir");
    let d = dumps.path().display().to_string();
    let src = format!(
        "{PARAM}provider exec {{\n  command = [\"sh\", \"provider.sh\"]\n  env = {{ DUMP = \"{d}/exec.env\" }}\n}}\nresource exec.resource x {{\n  type   = \"thing\"\n  config = {{ name = \"a\" }}\n}}\nresource git.commit c {{\n  repository = \"remote.git\"\n  path       = \"deploy\"\n  files      = {{ \"a.txt\" = \"a\" }}\n}}\nprovider kubernetes {{\n  kubeconfig = \"kube/config.yaml\"\n}}\nresource kubernetes.namespace n {{\n  name = \"team-a\"\n}}\n"
    );
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n    server: http://127.0.0.1:9\nusers:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: ./plugin.sh\n      env:\n      - name: DUMP\n        value: {d}/plugin.env\ncontexts:\n- name: c\n  context:\n    cluster: k\n    user: u\n"
    );
    let p = project(&[
        ("main.plinth", &src),
        ("provider.sh", "env > \"$DUMP\"\ncat >/dev/null\necho '{\"id\":\"one\",\"state\":{}}'\n"),
        ("kube/config.yaml", &kubeconfig),
    ]);
    executable(
        &p.path().join("kube/plugin.sh"),
        "#!/bin/sh\nenv > \"$DUMP\"\nprintf '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\"t\"}}'\n",
    );
    bare_repo(&p.path().join("remote.git"));
    executable(&p.path().join("remote.git/hooks/pre-receive"), &format!("#!/bin/sh\nenv > {d}/git.env\ncat >/dev/null\n"));
    let o = plinth()
        .args(["apply", "--auto-approve"])
        .current_dir(p.path())
        .env("PLINTH_VAR_token", token)
        .env("PLINTH_STATE_KEY", KEY_A)
        .env("PLINTH_STATE_KEY_PREVIOUS", KEY_B)
        .env("PLINTH_STATE", p.path().join("state.db"))
        .env("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-child-secret")
        .env("AWS_SESSION_TOKEN", "wJalrXUtnFEMI-child-secret")
        .output()
        .expect("run plinth");
    // The namespace cannot be created (nothing listens): the plugin ran.
    let all = format!("{}{}", stdout(&o), stderr(&o));
    for name in ["exec", "git", "plugin"] {
        let path = dumps.path().join(format!("{name}.env"));
        let env = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("the {name} child did not run:\n{all}"));
        assert!(env.contains("PATH="), "{name}: {env}");
        for f in forbidden(token) {
            assert!(!env.contains(&f), "the {name} child got {f:?}:\n{env}");
        }
    }
}

/// A `git` early on PATH that logs its arguments, then runs the real one.
fn logging_git(dir: &Path) -> std::path::PathBuf {
    let real = std::process::Command::new("sh").args(["-c", "command -v git"]).output().expect("sh");
    let real = String::from_utf8_lossy(&real.stdout).trim().to_string();
    assert!(!real.is_empty(), "git is not installed");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    executable(&bin.join("git"), &format!("#!/bin/sh\nprintf '%s\\n' \"$*\" >> {}/argv.log\nexec {real} \"$@\"\n", dir.display()));
    bin
}

/// The git provider and git module sources: a URL with a token (rewritten
/// by git's `insteadOf` to a local repository) never puts the token on
/// git's command line, where `ps` shows it to every local user.
#[test]
fn the_git_token_is_never_in_gits_arguments() {
    let secret = "tok-argv-5e7a19";
    // A token written in a module source (the source text shows it, git must not).
    let literal = "tok-literal-93d0c2";
    let p = project(&[]);
    let bin = logging_git(p.path());
    // A catalogue repository with a tagged module.
    let cat = p.path().join("catalogue.git");
    let work = p.path().join("work");
    std::fs::create_dir_all(work.join("mod")).expect("mkdir");
    std::fs::write(work.join("mod/main.plinth"), "param x: string = \"a\"\noutput y = x\n").expect("write");
    let git = |dir: &Path, args: &[&str]| {
        let ok = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
            .status()
            .expect("git");
        assert!(ok.success(), "git {args:?}");
    };
    git(&work, &["init", "-q", "--initial-branch=main"]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "one"]);
    git(&work, &["tag", "v1.0.0"]);
    git(p.path(), &["clone", "-q", "--bare", "work", "catalogue.git"]);
    bare_repo(&p.path().join("remote.git"));
    let src = format!(
        "{PARAM}module m from \"git+https://bot:{literal}@example.invalid/catalogue.git//mod\" version \"^1\" {{\n  x = \"b\"\n}}\nresource git.commit c {{\n  repository = \"https://bot:${{token}}@example.invalid/remote.git\"\n  path       = \"deploy\"\n  files      = {{ \"a.txt\" = \"a\" }}\n}}\n"
    );
    std::fs::write(p.path().join("main.plinth"), src).expect("write");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let run_with = |args: &[&str]| {
        plinth()
            .args(args)
            .current_dir(p.path())
            .env("PATH", &path)
            .env("PLINTH_VAR_token", secret)
            .env("GIT_CONFIG_COUNT", "4")
            .env("GIT_CONFIG_KEY_0", format!("url.{}.insteadOf", cat.display()))
            .env("GIT_CONFIG_VALUE_0", "https://example.invalid/catalogue.git")
            .env("GIT_CONFIG_KEY_1", format!("url.{}.insteadOf", p.path().join("remote.git").display()))
            .env("GIT_CONFIG_VALUE_1", "https://example.invalid/remote.git")
            // The same with the tokens (what a git given them would see).
            .env("GIT_CONFIG_KEY_2", format!("url.{}.insteadOf", cat.display()))
            .env("GIT_CONFIG_VALUE_2", format!("https://bot:{literal}@example.invalid/catalogue.git"))
            .env("GIT_CONFIG_KEY_3", format!("url.{}.insteadOf", p.path().join("remote.git").display()))
            .env("GIT_CONFIG_VALUE_3", format!("https://bot:{secret}@example.invalid/remote.git"))
            .output()
            .expect("run plinth")
    };
    assert_exit(&run_with(&["init"]), 0);
    let o = run_with(&["apply", "--auto-approve"]);
    assert_exit(&o, 0);
    let argv = std::fs::read_to_string(p.path().join("argv.log")).expect("git ran");
    assert!(argv.contains("ls-remote") && argv.contains("push") && argv.contains("fetch"), "{argv}");
    assert!(!argv.contains(secret) && !argv.contains(literal), "a token is in git's arguments:\n{argv}");
    assert_hidden(&format!("{}{}", stdout(&o), stderr(&o)), secret);
}
