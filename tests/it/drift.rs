//! `plinth drift`: reading every object back, reporting per attribute,
//! unmanaged objects, exit codes, JSON, JUnit, stored history, --fix, --accept.

use crate::*;

const SRC: &str = r#"
param token: string = "tok-drift-secret" { sensitive = true }
resource file.file config {
  path    = "out/config.json"
  content = jsonencode({ b = [1, 2], a = "x" })
}
resource file.file notes {
  path    = "out/notes.txt"
  content = "line one\nline two\n"
}
resource file.file token {
  path    = "out/token.txt"
  content = token
  mode    = "0600"
}
resource core.data kept {
  input = "v"
}
"#;

fn applied() -> tempfile::TempDir {
    let p = project(&[("main.plinth", SRC)]);
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    p
}

fn drift_json(dir: &std::path::Path) -> (Option<i32>, serde_json::Value) {
    let o = run(dir, &["drift", "--json"]);
    (o.status.code(), serde_json::from_str(stdout(&o).trim()).unwrap_or(serde_json::Value::Null))
}

#[test]
fn files_beside_the_configuration_are_not_unmanaged_objects() {
    let p = project(&[("main.plinth", "resource file.file f {\n  path    = \"f.txt\"\n  content = \"x\"\n}\n"), ("README.md", "notes")]);
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    let (code, v) = drift_json(p.path());
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["unmanaged"], serde_json::json!([]));
}

#[test]
fn no_drift_exits_zero() {
    let p = applied();
    let (code, v) = drift_json(p.path());
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["checked"], 4);
    assert_eq!(v["in_sync"], 4);
    assert_eq!(v["has_drift"], false);
}

#[test]
fn layout_only_changes_are_not_drift() {
    let p = applied();
    // Same JSON content, other key order and layout; trailing spaces on lines.
    std::fs::write(p.path().join("out/config.json"), "{\n  \"a\": \"x\",\n  \"b\": [1, 2]\n}\n").unwrap();
    std::fs::write(p.path().join("out/notes.txt"), "line one   \nline two\n\n").unwrap();
    let (code, v) = drift_json(p.path());
    assert_eq!(code, Some(0), "{v}");
}

#[test]
fn changes_deletions_and_unmanaged_objects_are_reported() {
    let p = applied();
    std::fs::write(p.path().join("out/notes.txt"), "line one\nline 2\n").unwrap();
    std::fs::remove_file(p.path().join("out/config.json")).unwrap();
    std::fs::write(p.path().join("out/token.txt"), "tok-edited-by-hand").unwrap();
    std::fs::write(p.path().join("out/stray.txt"), "?").unwrap();
    let (code, v) = drift_json(p.path());
    assert_eq!(code, Some(2), "{v}");
    let drifted = v["drifted"].as_array().unwrap();
    let find = |a: &str| drifted.iter().find(|d| d["address"] == a).unwrap_or_else(|| panic!("{a} missing in {v}"));
    assert_eq!(find("file.file.config")["status"], "deleted");
    let notes = find("file.file.notes");
    assert_eq!(notes["status"], "changed");
    assert_eq!(notes["attributes"][0]["name"], "content");
    assert_eq!(notes["attributes"][0]["recorded"], "line one\nline two\n");
    assert_eq!(notes["attributes"][0]["actual"], "line one\nline 2\n");
    // Derived attributes (the hash) are not reported on their own.
    assert_eq!(notes["attributes"].as_array().unwrap().len(), 1, "{notes}");
    let token = find("file.file.token");
    assert_eq!(token["attributes"][0]["recorded"], "(sensitive)");
    assert_eq!(token["attributes"][0]["actual"], "(sensitive)");
    assert_eq!(v["unmanaged"][0]["object"], "out/stray.txt");
    assert_eq!(v["remediation"]["create"], 1);
    assert_eq!(v["remediation"]["update"], 2);
    // Secrets appear in no form of the report.
    let human = run(p.path(), &["drift"]);
    assert_exit(&human, 2);
    let junit_path = p.path().join("drift.xml");
    run(p.path(), &["drift", "--junit", junit_path.to_str().unwrap()]);
    let junit = std::fs::read_to_string(&junit_path).unwrap();
    for text in [stdout(&human), v.to_string(), junit.clone(), stdout(&run(p.path(), &["drift", "--history", "--json"]))] {
        assert!(!text.contains("tok-drift-secret") && !text.contains("tok-edited-by-hand"), "secret leaked: {text}");
    }
    assert!(stdout(&human).contains("- line two") && stdout(&human).contains("+ line 2"), "{}", stdout(&human));
    assert!(junit.contains("tests=\"5\" failures=\"4\""), "{junit}");
    assert!(junit.contains("<failure type=\"deleted\""));
    assert!(junit.contains("classname=\"unmanaged.file.file\" name=\"out/stray.txt\""));
}

#[test]
fn every_report_is_kept_in_history() {
    let p = applied();
    assert_exit(&run(p.path(), &["drift"]), 0);
    std::fs::write(p.path().join("out/notes.txt"), "changed").unwrap();
    assert_exit(&run(p.path(), &["drift"]), 2);
    let h: serde_json::Value = serde_json::from_str(&stdout(&run(p.path(), &["drift", "--history", "--json"]))).unwrap();
    let h = h.as_array().unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!((h[0]["drifted"].as_i64(), h[1]["drifted"].as_i64()), (Some(0), Some(1)));
    assert_eq!(h[1]["report"]["drifted"][0]["address"], "file.file.notes");
}

#[test]
fn fix_restores_the_configuration() {
    let p = applied();
    std::fs::write(p.path().join("out/notes.txt"), "changed").unwrap();
    std::fs::remove_file(p.path().join("out/config.json")).unwrap();
    let o = run(p.path(), &["drift", "--fix", "--auto-approve"]);
    assert_exit(&o, 0);
    assert_eq!(std::fs::read_to_string(p.path().join("out/notes.txt")).unwrap(), "line one\nline two\n");
    assert!(p.path().join("out/config.json").exists());
    assert_exit(&run(p.path(), &["drift"]), 0);
    // Without a terminal, --fix asks for --auto-approve like apply does.
    std::fs::write(p.path().join("out/notes.txt"), "changed again").unwrap();
    let o = plinth().args(["drift", "--fix"]).current_dir(p.path()).stdin(std::process::Stdio::null()).output().unwrap();
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("P4007"));
}

#[test]
fn accept_records_reality_as_the_new_state() {
    let p = applied();
    std::fs::write(p.path().join("out/notes.txt"), "accepted text\n").unwrap();
    std::fs::remove_file(p.path().join("out/config.json")).unwrap();
    assert_exit(&run(p.path(), &["drift", "--accept"]), 0);
    assert_exit(&run(p.path(), &["drift"]), 0);
    let shown = stdout(&run(p.path(), &["state", "show", "file.file.notes", "--json"]));
    assert!(shown.contains("accepted text"), "{shown}");
    assert!(!stdout(&run(p.path(), &["state", "list"])).contains("file.file.config"));
    // The configuration still wants its own content: a plan shows that.
    let plan: serde_json::Value = serde_json::from_str(&stdout(&run(p.path(), &["plan", "--json"]))).unwrap();
    assert_eq!((plan["summary"]["create"].as_i64(), plan["summary"]["update"].as_i64()), (Some(1), Some(1)));
}

#[test]
fn the_remediation_plan_can_be_saved_reviewed_and_applied() {
    let p = applied();
    std::fs::write(p.path().join("out/notes.txt"), "changed").unwrap();
    let plan_file = p.path().join("fix.plan");
    let o = run(p.path(), &["drift", "--out", plan_file.to_str().unwrap()]);
    assert_exit(&o, 2);
    assert_eq!(std::fs::read_to_string(p.path().join("out/notes.txt")).unwrap(), "changed", "--out changes nothing");
    assert_exit(&run(p.path(), &["apply", plan_file.to_str().unwrap()]), 0);
    assert_eq!(std::fs::read_to_string(p.path().join("out/notes.txt")).unwrap(), "line one\nline two\n");
    assert_exit(&run(p.path(), &["drift"]), 0);
}

const TREE: &str = r#"
resource file.tree site {
  source = "tpl"
  target = "out"
  vars   = { domain = "example.org" }
}
resource file.file extra {
  path    = "out/extra.yaml"
  content = "kind: Extra\n"
}
"#;

fn tree_project() -> tempfile::TempDir {
    let p = project(&[("main.plinth", TREE), ("tpl/app.yaml", "host: {{ domain }}\n"), ("tpl/sub/b.txt", "b\n")]);
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    p
}

/// examples/edp's `file.file` beside a stack's `file.tree` output: the
/// tree's files are not "not managed" because the file lists its directory,
/// and the file is not a stray of the tree: each is claimed by its owner.
#[test]
fn a_file_inside_a_rendered_tree_is_claimed_not_unmanaged() {
    let p = tree_project();
    let (code, v) = drift_json(p.path());
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["unmanaged"], serde_json::json!([]));
    assert_exit(&run(p.path(), &["drift"]), 0);
}

/// The tree owns its target's contents: a file nothing renders there (which
/// a `git.commit` of the directory would push) is reported, once, however
/// many managed objects write into that directory.
#[test]
fn a_stray_file_in_a_rendered_tree_is_unmanaged() {
    let p = tree_project();
    std::fs::write(p.path().join("out/stray.yaml"), "?").unwrap();
    std::fs::write(p.path().join("out/sub/deep.txt"), "?").unwrap();
    let (code, v) = drift_json(p.path());
    assert_eq!(code, Some(2), "{v}");
    let mut found: Vec<String> = v["unmanaged"].as_array().unwrap().iter().map(|u| u["object"].as_str().unwrap_or("").to_string()).collect();
    found.sort();
    assert_eq!(found, ["out/stray.yaml", "out/sub/deep.txt"], "{v}");
    assert_eq!(v["drifted"], serde_json::json!([]), "{v}");
}

/// Layout is not a change for drift, and so neither for a refresh plan nor
/// for the fix plan: one comparison decides.
#[test]
fn layout_only_changes_are_no_change_for_refresh_and_fix_plans() {
    let p = applied();
    std::fs::write(p.path().join("out/config.json"), "{\n  \"a\": \"x\",\n  \"b\": [1, 2]\n}\n").unwrap();
    std::fs::write(p.path().join("out/notes.txt"), "line one   \nline two\n\n").unwrap();
    assert_exit(&run(p.path(), &["plan", "--refresh", "--detailed-exitcode"]), 0);
    assert_exit(&run(p.path(), &["drift"]), 0);
    // A real change elsewhere: the fix rewrites that object only.
    std::fs::write(p.path().join("out/token.txt"), "edited").unwrap();
    let (code, v) = drift_json(p.path());
    assert_eq!(code, Some(2), "{v}");
    assert_eq!(v["remediation"], serde_json::json!({ "create": 0, "update": 1, "replace": 0, "destroy": 0 }), "{v}");
    let fix = run(p.path(), &["drift", "--fix", "--auto-approve"]);
    assert_exit(&fix, 0);
    assert!(stdout(&fix).contains("0 to create, 1 to update, 0 to replace, 0 to destroy"), "{}", stdout(&fix));
    assert_eq!(std::fs::read_to_string(p.path().join("out/config.json")).unwrap(), "{\n  \"a\": \"x\",\n  \"b\": [1, 2]\n}\n", "layout was rewritten");
    assert_exit(&run(p.path(), &["apply", "--refresh", "--auto-approve"]), 0);
    assert_eq!(std::fs::read_to_string(p.path().join("out/notes.txt")).unwrap(), "line one   \nline two\n\n", "apply --refresh rewrote layout");
}

/// The remediation is what undoes drift: a resource added to the
/// configuration but never applied is no part of it (once: "2 drifted",
/// then "1 to create, 2 to update"), and `--fix` does not create it.
#[test]
fn the_remediation_counts_the_drifted_objects_only() {
    let p = applied();
    let src = format!("{SRC}\nresource file.file later {{\n  path    = \"out/later.txt\"\n  content = \"not applied yet\"\n}}\n");
    std::fs::write(p.path().join("main.plinth"), src).unwrap();
    std::fs::write(p.path().join("out/notes.txt"), "changed").unwrap();
    std::fs::remove_file(p.path().join("out/config.json")).unwrap();
    let (code, v) = drift_json(p.path());
    assert_eq!(code, Some(2), "{v}");
    assert_eq!(v["drifted"].as_array().map(Vec::len), Some(2), "{v}");
    assert_eq!(v["remediation"], serde_json::json!({ "create": 1, "update": 1, "replace": 0, "destroy": 0 }), "{v}");
    let human = stdout(&run(p.path(), &["drift"]));
    assert!(human.contains("2 drifted") && human.contains("1 to create, 1 to update, 0 to replace, 0 to destroy"), "{human}");
    let fix = run(p.path(), &["drift", "--fix", "--auto-approve"]);
    assert_exit(&fix, 0);
    assert!(stdout(&fix).contains("1 to create, 1 to update, 0 to replace, 0 to destroy"), "{}", stdout(&fix));
    assert!(!p.path().join("out/later.txt").exists(), "--fix applied a resource that was never applied");
    assert!(p.path().join("out/config.json").exists());
    assert_eq!(std::fs::read_to_string(p.path().join("out/notes.txt")).unwrap(), "line one\nline two\n");
    // Saved with --out, the remediation applies as reviewed.
    std::fs::write(p.path().join("out/notes.txt"), "changed again").unwrap();
    let plan_file = p.path().join("fix.plan");
    assert_exit(&run(p.path(), &["drift", "--out", plan_file.to_str().unwrap()]), 2);
    let applied = run(p.path(), &["apply", plan_file.to_str().unwrap()]);
    assert_exit(&applied, 0);
    assert!(!p.path().join("out/later.txt").exists(), "the saved remediation created a resource that was never applied");
}
