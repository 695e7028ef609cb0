//! Data-driven cases: `tests/fixtures/<stage>/<case>.plinth`, each a
//! one-file project whose header says what must happen:
//!
//! ```text
//! # expect: valid                      validate and plan succeed
//! # expect: error P2004 P2005          plan --json fails with these codes (all, in any order)
//! # expect: errors-exactly P2033       … with exactly these codes, duplicates included
//! # expect: plan +3 ~0 -/+0 -0         plan from empty state: creates/updates/replaces/destroys
//! # args: -var name=value              extra arguments for plan
//! ```
//!
//! Plan cases also snapshot the human plan (`tests/fixtures/snapshots`),
//! reviewed with `cargo insta review`.
//!
//! A case may also be a directory (`tests/fixtures/components/<case>/`): a
//! whole project with modules, whose `main.plinth` carries the header.

use crate::*;
use std::path::Path;

struct Case {
    expect: String,
    args: Vec<String>,
}

fn header(text: &str) -> Case {
    let mut case = Case { expect: String::new(), args: vec![] };
    for line in text.lines().take_while(|l| l.starts_with('#')) {
        if let Some(e) = line.strip_prefix("# expect:") {
            case.expect = e.trim().to_string();
        } else if let Some(a) = line.strip_prefix("# args:") {
            case.args = a.split_whitespace().map(String::from).collect();
        }
    }
    case
}

fn codes_in(json_out: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(json_out.trim()).unwrap_or(serde_json::Value::Null);
    v["diagnostics"].as_array().map(|a| a.iter().filter_map(|d| d["code"].as_str().map(String::from)).collect()).unwrap_or_default()
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

fn check_case(path: &Path) -> Result<(), String> {
    let (text, dir) = if path.is_dir() {
        let dir = project(&[]);
        copy_dir(path, dir.path()).map_err(|e| e.to_string())?;
        (std::fs::read_to_string(path.join("main.plinth")).map_err(|e| e.to_string())?, dir)
    } else {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        let dir = project(&[("main.plinth", &text)]);
        (text, dir)
    };
    let case = header(&text);
    let mut args: Vec<&str> = vec!["plan", "--json"];
    args.extend(case.args.iter().map(String::as_str));
    let out = run(dir.path(), &args);
    let words: Vec<&str> = case.expect.split_whitespace().collect();
    match words.first().copied() {
        Some("valid") => {
            let v = run(dir.path(), &["validate"]);
            if v.status.code() != Some(0) || out.status.code() != Some(0) {
                return Err(format!("expected valid; validate: {}{}; plan: {}{}", stdout(&v), stderr(&v), stdout(&out), stderr(&out)));
            }
        }
        Some("errors-exactly") => {
            let mut codes = codes_in(&stdout(&out));
            let mut want: Vec<String> = words[1..].iter().map(|w| w.to_string()).collect();
            codes.sort();
            want.sort();
            if out.status.code() != Some(1) || codes != want {
                return Err(format!("expected exactly {want:?}, got {codes:?} (exit {:?})\n{}", out.status.code(), stdout(&out)));
            }
        }
        Some("error") => {
            if out.status.code() != Some(1) {
                return Err(format!("expected exit 1, got {:?}: {}", out.status.code(), stdout(&out)));
            }
            let codes = codes_in(&stdout(&out));
            for want in &words[1..] {
                if !codes.iter().any(|c| c == want) {
                    return Err(format!("expected {want}, got {codes:?}\n{}", stdout(&out)));
                }
            }
            // The human rendering must carry the code and a help sentence.
            let mut human_args: Vec<&str> = vec!["plan"];
            human_args.extend(case.args.iter().map(String::as_str));
            let h = run(dir.path(), &human_args);
            let err = stderr(&h);
            if !err.contains(words[1]) || !err.contains("help:") {
                return Err(format!("human diagnostic lacks code or help:\n{err}"));
            }
        }
        Some("plan") => {
            if out.status.code() != Some(0) {
                return Err(format!("plan failed: {}{}", stdout(&out), stderr(&out)));
            }
            let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).map_err(|e| e.to_string())?;
            let s = &v["summary"];
            let got = format!("+{} ~{} -/+{} -{}", s["create"], s["update"], s["replace"], s["destroy"]);
            let want = words[1..].join(" ");
            if got != want {
                return Err(format!("expected plan {want}, got {got}"));
            }
            let mut human_args: Vec<&str> = vec!["plan"];
            human_args.extend(case.args.iter().map(String::as_str));
            let human = stdout(&run(dir.path(), &human_args));
            let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("case").to_string();
            let mut settings = insta::Settings::clone_current();
            settings.set_snapshot_path(repo_root().join("tests/fixtures/snapshots"));
            settings.set_prepend_module_to_snapshot(false);
            settings.bind(|| insta::assert_snapshot!(name, human));
        }
        _ => return Err(format!("missing or unknown `# expect:` header in {}", path.display())),
    }
    Ok(())
}

fn run_stage(stage: &str) {
    let dir = repo_root().join("tests/fixtures").join(stage);
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "plinth") || p.join("main.plinth").is_file())
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no fixtures in {}", dir.display());
    let mut failures = Vec::new();
    for p in &paths {
        if let Err(e) = check_case(p) {
            failures.push(format!("{}: {e}", p.display()));
        }
    }
    assert!(failures.is_empty(), "{} of {} fixtures failed:\n{}", failures.len(), paths.len(), failures.join("\n\n"));
}

#[test]
fn syntax_fixtures() {
    run_stage("syntax");
}

#[test]
fn eval_fixtures() {
    run_stage("eval");
}

#[test]
fn graph_fixtures() {
    run_stage("graph");
}

#[test]
fn component_fixtures() {
    run_stage("components");
}

#[test]
fn plan_fixtures() {
    run_stage("plan");
}
