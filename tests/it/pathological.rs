//! No input makes Plinth panic or crash: every run ends with exit 0 or 1 and,
//! on error, a coded diagnostic.

use crate::*;
use std::os::unix::process::ExitStatusExt;

#[track_caller]
fn no_crash(src: &[u8], expect_code: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.plinth"), src).unwrap();
    let o = run(dir.path(), &["validate"]);
    assert!(o.status.signal().is_none(), "killed by a signal: {:?}", o.status);
    let code = o.status.code();
    assert!(code == Some(0) || code == Some(1), "exit {code:?}: {}", stderr(&o));
    let err = stderr(&o);
    assert!(!err.contains("panicked"), "{err}");
    if let Some(want) = expect_code {
        assert_eq!(code, Some(1));
        assert!(err.contains(want), "expected {want}: {err}");
    }
    err
}

#[test]
fn deep_nesting_is_refused_with_a_diagnostic() {
    let n = 20_000;
    for (open, close) in [("[", "]"), ("(", ")"), ("{a=", "}")] {
        let src = format!("let x = {}1{}\n", open.repeat(n), close.repeat(n));
        no_crash(src.as_bytes(), Some("P1003"));
    }
    let interp = format!("let x = {}1{}\n", "\"${".repeat(n), "}\"".repeat(n));
    no_crash(interp.as_bytes(), Some("P1003"));
    // Unbalanced: only openers.
    no_crash(format!("let x = {}", "[".repeat(n)).as_bytes(), Some("P1003"));
}

#[test]
fn long_operator_chains_and_prefix_runs_do_not_overflow() {
    let chain = format!("let x = 1{}\n", " + 1".repeat(20_000));
    no_crash(chain.as_bytes(), Some("P1003"));
    let nots = format!("let x = {}true\n", "!".repeat(20_000));
    no_crash(nots.as_bytes(), Some("P1003"));
    let ok = format!("let x = 1{}\noutput x = x\n", " + 1".repeat(1_000));
    no_crash(ok.as_bytes(), None);
    let ternaries = format!("let x = {}0\n", "true ? 1 : ".repeat(5_000));
    no_crash(ternaries.as_bytes(), None);
}

#[test]
fn invalid_utf8_is_a_diagnostic() {
    let mut src = b"let x = \"".to_vec();
    src.extend_from_slice(&[0xff, 0xfe, 0x80]);
    src.extend_from_slice(b"\"\n");
    no_crash(&src, Some("P1004"));
}

#[test]
fn multi_megabyte_files_are_handled() {
    // 4 MB in one string literal, and 20,000 small declarations.
    let big = format!("resource core.data big {{\n  input = \"{}\"\n}}\n", "x".repeat(4 << 20));
    no_crash(big.as_bytes(), None);
    let mut many = String::new();
    for i in 0..20_000 {
        many.push_str(&format!("let v{i} = {i}\n"));
    }
    no_crash(many.as_bytes(), None);
}

#[test]
fn truncated_and_mutated_input_never_crashes() {
    let valid = std::fs::read(repo_root().join("examples/quickstart/main.plinth")).unwrap();
    let mut seed: u64 = 42;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for cut in (0..valid.len()).step_by((valid.len() / 40).max(1)) {
        no_crash(&valid[..cut], None);
    }
    let alphabet = b"{}[]()\"$\\<>=!?:.,*-+#/\n EOT${}%";
    for _ in 0..120 {
        let mut m = valid.clone();
        for _ in 0..(1 + rand() % 4) {
            let at = (rand() as usize) % m.len();
            m[at] = alphabet[(rand() as usize) % alphabet.len()];
        }
        no_crash(&m, None);
    }
}

#[test]
fn unterminated_constructs_point_at_their_start() {
    let err = no_crash(b"let x = \"abc\n", Some("P1001"));
    assert!(err.contains("main.plinth"), "{err}");
    no_crash(b"let x = <<EOT\nabc\n", Some("P1001"));
    no_crash(b"/* never closed", Some("P1001"));
    no_crash(b"let x = \"\\q\"", Some("P1002"));
    no_crash(b"let x = 99999999999999999999", Some("P1005"));
}

/// `plan` on `src`: must end with exit 1 and the given code, without a
/// signal, without a panic.
#[track_caller]
fn plan_fails_with(src: &str, args: &[&str], code: &str) -> String {
    let dir = project(&[("main.plinth", src)]);
    let mut all = vec!["plan"];
    all.extend_from_slice(args);
    let o = run(dir.path(), &all);
    assert!(o.status.signal().is_none(), "killed by a signal: {:?}", o.status);
    let err = stderr(&o);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(o.status.code(), Some(1), "{}{err}", stdout(&o));
    assert!(err.contains(code), "expected {code}: {err}");
    err
}

#[test]
fn integer_overflow_is_a_diagnostic_not_a_panic_or_a_float() {
    // `i64::MIN / -1` panicked (exit 101); `i64::MAX + 1` became a float.
    for e in ["(-9223372036854775807 - 1) / -1", "9223372036854775807 + 1", "-(-9223372036854775807 - 1)", "9223372036854775807 * 2"] {
        plan_fails_with(&format!("output x = {e}\n"), &[], "P2140");
    }
    let dir = project(&[("main.plinth", "output x = (-9223372036854775807 - 1) % -1\n")]);
    assert_exit(&run(dir.path(), &["plan"]), 0);
}

#[test]
fn total_work_is_bounded() {
    // Each of these ran for hours or until memory ran out.
    plan_fails_with("output x = length([for a in range(10000) : [for b in range(10000) : b]])\n", &[], "P2142");
    plan_fails_with("output x = length(flatten([for a in range(10000) : range(10000)]))\n", &[], "P2142");
    plan_fails_with("output x = length({for a in range(3000) : a => [for b in range(3000) : b]})\n", &[], "P2142");
    // `for_each` now has the cap `count` has.
    plan_fails_with("resource core.data x {\n  for_each = toset([for i in range(100001) : tostring(i)])\n  input = each.key\n}\n", &[], "P2041");
}

#[test]
fn a_module_that_instantiates_itself_twice_is_refused() {
    // Depth alone allowed 2^24 instances.
    let dir = project(&[("main.plinth", "module m from \"./m\" {}\n"), ("m/main.plinth", "module a from \"./\" {}\nmodule b from \"./\" {}\nlet x = 1\n")]);
    let o = run(dir.path(), &["validate"]);
    assert!(o.status.signal().is_none());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("P2144") || err.contains("P2098"), "{err}");
}

#[test]
fn endless_and_huge_files_are_refused_with_bounded_memory() {
    // Outside the project `file` may not read at all (P2100); inside it, a
    // file past the cap (sparse here, so cheap to make) is refused, not read.
    plan_fails_with("output x = length(file(\"/dev/zero\"))\n", &[], "P2100");
    let dir = project(&[("main.plinth", "output x = length(file(\"big\"))\n")]);
    std::fs::File::create(dir.path().join("big")).unwrap().set_len(65 << 20).unwrap();
    let o = run(dir.path(), &["plan"]);
    assert!(o.status.signal().is_none(), "killed by a signal: {:?}", o.status);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("larger than 64 MiB"), "{}", stderr(&o));
    plan_fails_with("param p: string\noutput x = p\n", &["--var-file", "/dev/zero"], "larger than 64 MiB");
}

#[test]
fn bidi_and_control_characters_are_escaped_in_plans() {
    // A reviewed plan must show the bytes that will be applied: a right-to-
    // left override would display `"admin"` for a different string.
    let src = "resource core.data x {\n  input = \"user\u{202E}nimda\u{2066}\u{200F}\u{1b}[2J\"\n}\nresource core.data y {\n  input = <<EOT\nline \u{202D} one\nEOT\n}\n";
    let dir = project(&[("main.plinth", src)]);
    let o = run(dir.path(), &["plan"]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    for c in ['\u{202E}', '\u{2066}', '\u{200F}', '\u{202D}', '\u{1b}'] {
        assert!(!out.contains(c), "U+{:04X} printed raw:\n{out}", c as u32);
    }
    assert!(out.contains(r#""user\u202enimda\u2066\u200f\u001b[2J""#), "{out}");
    assert!(out.contains(r"line \u202d one"), "{out}");
}

#[test]
fn sigint_stops_a_long_evaluation() {
    // Evaluation ignored SIGINT/SIGTERM; now it polls the interrupt flag.
    // Hashing 100,000 strings of 100 kB takes minutes and spends little of
    // the work budget (two units an iteration), so only the signal ends it.
    let src = "let big = join(\",\", range(20000))\noutput x = length([for a in range(100000) : sha256(\"${big}${a}\")])\n";
    let dir = project(&[("main.plinth", src)]);
    let mut child = plinth().args(["plan"]).current_dir(dir.path()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(child.try_wait().unwrap().is_none(), "the evaluation ended before the signal: the test proves nothing");
    std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let start = std::time::Instant::now();
    let mut status = None;
    while start.elapsed() < std::time::Duration::from_secs(20) {
        if let Some(s) = child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let Some(status) = status else {
        let _ = child.kill();
        panic!("still evaluating 20 s after SIGINT");
    };
    let out = child.wait_with_output().unwrap();
    assert!(status.signal().is_none(), "killed by the signal instead of handling it");
    assert_eq!(status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("P2143") && err.contains("interrupted"), "{err}");
}

#[test]
fn brackets_in_comments_and_heredocs_are_not_nesting() {
    // One lexer decides: a comment or heredoc full of `[` gave a false P1003.
    let src = format!("# {}\nlet x = <<EOT\n{}\nEOT\nlet y = \"{}\"\noutput x = x\n", "[".repeat(5_000), "{".repeat(5_000), "(".repeat(5_000));
    let err = no_crash(src.as_bytes(), None);
    assert!(!err.contains("P1003"), "{err}");
    let dir = project(&[("main.plinth", &src)]);
    assert_exit(&run(dir.path(), &["validate"]), 0);
    // Real depth inside a heredoc interpolation still counts.
    let deep = format!("let x = <<EOT\n${{{}1{}}}\nEOT\n", "[".repeat(5_000), "]".repeat(5_000));
    no_crash(deep.as_bytes(), Some("P1003"));
}

#[test]
fn a_yaml_alias_bomb_is_refused() {
    // Nine levels of ten aliases each expand to 10^9 values.
    let mut yaml = String::from("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\\n");
    for i in 1..10 {
        let refs = vec![format!("*l{}", i - 1); 10].join(", ");
        yaml.push_str(&format!("l{i}: &l{i} [{refs}]\\n"));
    }
    plan_fails_with(&format!("output x = length(yamldecode(\"{yaml}\"))\n"), &[], "more than 1000000 values");
}

#[test]
fn durations_too_long_are_errors_not_panics() {
    // `Duration::from_secs_f64` panicked on both (exit 101).
    let dir = project(&[("main.plinth", "output x = 1\n")]);
    let o = run(dir.path(), &["apply", "--auto-approve", "--lock-timeout", "99999999999999999999999h"]);
    assert!(o.status.signal().is_none());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("too long a duration"), "{}", stderr(&o));
    for timeout in ["\"99999999999999999999999h\"", "1e300"] {
        let src = format!("provider random {{\n  timeout = {timeout}\n}}\nresource random.password p {{\n  length = 8\n}}\n");
        let dir = project(&[("main.plinth", &src)]);
        let o = run(dir.path(), &["apply", "--auto-approve"]);
        assert!(o.status.signal().is_none());
        let err = stderr(&o);
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains("P6002"), "{err}");
    }
}
