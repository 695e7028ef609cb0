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
