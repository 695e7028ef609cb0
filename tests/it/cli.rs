//! End-to-end behaviour of the commands on real files and a real SQLite state.

use crate::*;

const BASIC: &str = r#"
param name: string = "world"
param admin_token: string {
  sensitive = true
}
let greeting = "hello ${name}"

resource random.password db {
  length  = 24
  special = false
}

resource core.data seed {
  input = greeting
}

resource file.file config {
  for_each = toset(["a", "b"])
  path     = "out/${each.key}.txt"
  content  = "${core.data.seed.output} from ${each.key}\n"
}

resource file.file secret {
  path    = "out/secret.txt"
  content = random.password.db.result
  mode    = "0600"
}

output greeting = greeting
output files = [for f in file.file.config : f.path]
output password = random.password.db.result { sensitive = true }
output token = admin_token { sensitive = true }
"#;

const TOKEN: &str = "tok-3f1a9c-very-secret";

fn basic() -> tempfile::TempDir {
    project(&[("main.plinth", BASIC)])
}

fn apply(dir: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["apply", "--auto-approve", "-var", "admin_token=tok-3f1a9c-very-secret"];
    args.extend_from_slice(extra);
    run(dir, &args)
}

#[test]
fn apply_twice_changes_nothing_the_second_time() {
    let p = basic();
    let first = apply(p.path(), &[]);
    assert_exit(&first, 0);
    assert!(stdout(&first).contains("5 created"), "{}", stdout(&first));
    assert_eq!(std::fs::read_to_string(p.path().join("out/a.txt")).unwrap(), "hello world from a\n");
    let second = apply(p.path(), &[]);
    assert_exit(&second, 0);
    assert!(stdout(&second).contains("No changes"), "{}", stdout(&second));
    let plan = run(p.path(), &["plan", "--detailed-exitcode", "-var", &format!("admin_token={TOKEN}")]);
    assert_exit(&plan, 0);
    // The serial moved once: the no-op apply recorded no run.
    let hist = run(p.path(), &["state", "history", "--json"]);
    let h: serde_json::Value = serde_json::from_str(&stdout(&hist)).unwrap();
    assert_eq!(h.as_array().unwrap().len(), 1, "{h}");
    assert_eq!(h[0]["status"], "applied");
    assert_eq!(h[0]["created"], 5);
}

#[test]
fn detailed_exitcode_reports_changes() {
    let p = basic();
    assert_exit(&run(p.path(), &["plan", "--detailed-exitcode", "-var", "admin_token=x"]), 2);
    assert_exit(&apply(p.path(), &[]), 0);
    assert_exit(&run(p.path(), &["plan", "--detailed-exitcode", "-var", &format!("admin_token={TOKEN}")]), 0);
    // A broken configuration is 1, not 2.
    std::fs::write(p.path().join("broken.plinth"), "resource file.file x {").unwrap();
    assert_exit(&run(p.path(), &["plan", "--detailed-exitcode", "-var", "admin_token=x"]), 1);
}

#[test]
fn secrets_never_appear_in_any_output() {
    let p = basic();
    let mut outputs = Vec::new();
    outputs.push(run(p.path(), &["plan", "-var", &format!("admin_token={TOKEN}")]));
    outputs.push(run(p.path(), &["plan", "--json", "-var", &format!("admin_token={TOKEN}")]));
    outputs.push(apply(p.path(), &[]));
    let password = std::fs::read_to_string(p.path().join("out/secret.txt")).unwrap();
    assert_eq!(password.len(), 24);
    // Change the password so that plan and apply show a diff of secrets.
    let edited = BASIC.replace("length  = 24", "length  = 25");
    std::fs::write(p.path().join("main.plinth"), edited).unwrap();
    outputs.push(run(p.path(), &["plan", "-var", &format!("admin_token={TOKEN}")]));
    outputs.push(run(p.path(), &["plan", "--json", "-var", &format!("admin_token={TOKEN}")]));
    outputs.push(apply(p.path(), &["--json"]));
    let new_password = std::fs::read_to_string(p.path().join("out/secret.txt")).unwrap();
    outputs.push(apply(p.path(), &[]));
    outputs.push(run(p.path(), &["output"]));
    outputs.push(run(p.path(), &["output", "--json"]));
    outputs.push(run(p.path(), &["output", "password"]));
    outputs.push(run(p.path(), &["state", "show"]));
    outputs.push(run(p.path(), &["state", "show", "--json"]));
    // A validation failure on a sensitive param must not echo it either.
    std::fs::write(p.path().join("v.plinth"), "param other: string = \"x\" {\n validate = false\n}\n").unwrap();
    outputs.push(run(p.path(), &["plan", "-var", &format!("admin_token={TOKEN}")]));
    for o in &outputs {
        let all = format!("{}{}", stdout(o), stderr(o));
        for secret in [password.as_str(), new_password.as_str(), TOKEN] {
            assert!(!all.contains(secret), "secret leaked:\n{all}");
        }
    }
    assert!(outputs.iter().any(|o| stdout(o).contains("(sensitive)")));
    // Asked for explicitly, the value is available to scripts.
    let shown = run(p.path(), &["output", "--json", "--show-sensitive", "password"]);
    assert_eq!(stdout(&shown).trim(), format!("\"{new_password}\""));
}

#[test]
fn saved_plan_applies_exactly_and_is_refused_when_stale() {
    let p = basic();
    let plan_file = p.path().join("tfplan");
    let planned = run(p.path(), &["plan", "--out", plan_file.to_str().unwrap(), "-var", "admin_token=x"]);
    assert_exit(&planned, 0);
    // Values given at plan time are recorded: apply needs none.
    let applied = run(p.path(), &["apply", plan_file.to_str().unwrap()]);
    assert_exit(&applied, 0);
    assert!(stdout(&applied).contains("5 created"), "{}", stdout(&applied));
    // Applying it again: the state moved on.
    let again = run(p.path(), &["apply", plan_file.to_str().unwrap()]);
    assert_exit(&again, 1);
    assert!(stderr(&again).contains("P4005"), "{}", stderr(&again));
    // A plan saved, then the configuration edited: refused.
    let plan2 = p.path().join("tfplan2");
    assert_exit(&run(p.path(), &["plan", "--out", plan2.to_str().unwrap(), "-var", "name=you", "-var", "admin_token=x"]), 0);
    std::fs::write(p.path().join("extra.plinth"), "let unused = 1\n").unwrap();
    let stale = run(p.path(), &["apply", plan2.to_str().unwrap()]);
    assert_exit(&stale, 1);
    assert!(stderr(&stale).contains("P4004"), "{}", stderr(&stale));
    assert_eq!(std::fs::read_to_string(p.path().join("out/a.txt")).unwrap(), "hello world from a\n");
    // Not a plan file at all.
    std::fs::write(p.path().join("junk"), "{}").unwrap();
    let junk = run(p.path(), &["apply", p.path().join("junk").to_str().unwrap()]);
    assert_exit(&junk, 1);
    assert!(stderr(&junk).contains("P4009"));
}

#[test]
fn apply_without_a_terminal_never_waits() {
    let p = basic();
    let o = plinth().args(["apply", "-var", "admin_token=x"]).current_dir(p.path()).stdin(std::process::Stdio::null()).output().unwrap();
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("P4007"), "{}", stderr(&o));
    assert!(!p.path().join("out").exists(), "nothing may be created without approval");
}

#[test]
fn a_failure_stops_its_dependents_only_and_the_rest_is_recorded() {
    let src = r#"
resource file.file blocker {
  path    = "blocker"
  content = "a file where a directory is needed"
}
resource file.file broken {
  path       = "blocker/inside.txt"
  content    = "x"
  depends_on = [file.file.blocker]
}
resource core.data after_broken {
  input = file.file.broken.id
}
resource file.file independent {
  path    = "independent.txt"
  content = "fine"
}
resource core.data after_independent {
  input = file.file.independent.sha256
}
"#;
    let p = project(&[("main.plinth", src)]);
    let o = run(p.path(), &["apply", "--auto-approve"]);
    assert_exit(&o, 1);
    let out = stdout(&o);
    assert!(out.contains("file.file.broken: failed: P6201"), "{out}");
    assert!(out.contains("core.data.after_broken: not attempted"), "{out}");
    assert!(p.path().join("independent.txt").exists());
    let list = stdout(&run(p.path(), &["state", "list"]));
    let mut addrs: Vec<&str> = list.lines().collect();
    addrs.sort();
    assert_eq!(addrs, ["core.data.after_independent", "file.file.blocker", "file.file.independent"]);
    // Fix the cause; the next apply converges and creates only what is missing.
    std::fs::write(p.path().join("main.plinth"), src.replace("blocker/inside.txt", "inside.txt")).unwrap();
    let o = run(p.path(), &["apply", "--auto-approve"]);
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("2 created, 0 updated"), "{}", stdout(&o));
    assert_exit(&run(p.path(), &["plan", "--detailed-exitcode"]), 0);
}

#[test]
fn destroy_removes_everything_in_reverse_order() {
    let p = basic();
    assert_exit(&apply(p.path(), &[]), 0);
    let o = run(p.path(), &["destroy", "--auto-approve", "-var", "admin_token=x"]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(out.contains("5 destroyed"), "{out}");
    // Dependents go first: the files before the seed they were built from.
    let pos = |needle: &str| out.find(&format!("{needle}: destroyed")).unwrap_or_else(|| panic!("{needle} missing in {out}"));
    assert!(pos("file.file.config[\"a\"]") < pos("core.data.seed"), "{out}");
    assert!(pos("file.file.secret") < pos("random.password.db"), "{out}");
    assert!(!p.path().join("out/a.txt").exists());
    assert_eq!(stdout(&run(p.path(), &["state", "list"])), "");
    assert_eq!(stdout(&run(p.path(), &["output"])), "");
}

#[test]
fn prevent_destroy_and_ignore_changes_are_honoured() {
    let src = r#"
resource file.file kept {
  path    = "kept.txt"
  content = "v1"
  lifecycle {
    prevent_destroy = true
    ignore_changes  = ["mode"]
  }
}
"#;
    let p = project(&[("main.plinth", src)]);
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    std::fs::write(p.path().join("main.plinth"), src.replace("content = \"v1\"", "content = \"v1\"\n  mode = \"0600\"")).unwrap();
    assert_exit(&run(p.path(), &["plan", "--detailed-exitcode"]), 0);
    let d = run(p.path(), &["destroy", "--auto-approve"]);
    assert_exit(&d, 1);
    assert!(stderr(&d).contains("P4003"), "{}", stderr(&d));
    assert!(p.path().join("kept.txt").exists());
}

#[test]
fn replacement_honours_create_before_destroy() {
    let src = r#"
resource core.data a {
  input            = "x"
  triggers_replace = "one"
  lifecycle {
    create_before_destroy = true
  }
}
resource core.data b {
  input = core.data.a.id
}
"#;
    let p = project(&[("main.plinth", src)]);
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    let before = stdout(&run(p.path(), &["state", "show", "core.data.a", "--json"]));
    std::fs::write(p.path().join("main.plinth"), src.replace("\"one\"", "\"two\"")).unwrap();
    let plan = run(p.path(), &["plan"]);
    assert!(stdout(&plan).contains("+/- core.data.a will be replaced, new object first"), "{}", stdout(&plan));
    assert!(stdout(&plan).contains("~ core.data.b will be updated in place"), "{}", stdout(&plan));
    let o = run(p.path(), &["apply", "--auto-approve"]);
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("1 updated, 1 replaced"), "{}", stdout(&o));
    let after = stdout(&run(p.path(), &["state", "show", "core.data.a", "--json"]));
    assert_ne!(before, after);
    assert_eq!(stdout(&run(p.path(), &["state", "list"])).lines().count(), 2, "no deposed object may remain");
    assert_exit(&run(p.path(), &["plan", "--detailed-exitcode"]), 0);
}

#[test]
fn only_selects_targets_and_their_dependencies() {
    let p = basic();
    let o = run(p.path(), &["apply", "--auto-approve", "--only", "file.file.config[\"a\"]", "-var", "admin_token=x"]);
    assert_exit(&o, 0);
    let list = stdout(&run(p.path(), &["state", "list"]));
    let mut addrs: Vec<&str> = list.lines().collect();
    addrs.sort();
    assert_eq!(addrs, ["core.data.seed", "file.file.config[\"a\"]"]);
    let o = run(p.path(), &["plan", "--only", "file.*", "--json", "-var", "admin_token=x"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["summary"]["create"], 3, "{v}");
    let bad = run(p.path(), &["plan", "--only", "file.file.nope", "-var", "admin_token=x"]);
    assert_exit(&bad, 1);
    assert!(stderr(&bad).contains("P4001"));
}

#[test]
fn params_come_from_vars_files_and_environment() {
    let src = r#"
param n: number
param names: list(string) = []
param label: string = "none"
resource core.data x {
  input = { n = n * 2, names = names, label = label }
}
output doubled = core.data.x.input.n
"#;
    let p = project(&[
        ("main.plinth", src),
        ("values.plinth", ""),
        ("vars/prod.vars", "n = 4\nnames = [\"a\", \"b\"]\n"),
        ("vars/x.json", "{\"label\": \"json\"}"),
    ]);
    std::fs::remove_file(p.path().join("values.plinth")).unwrap();
    let missing = run(p.path(), &["plan"]);
    assert_exit(&missing, 1);
    assert!(stderr(&missing).contains("P2030"), "{}", stderr(&missing));
    let o = plinth()
        .args(["apply", "--auto-approve", "--var-file", "vars/prod.vars", "--var-file", "vars/x.json", "-var", "label=cli"])
        .env("PLINTH_VAR_n", "100")
        .current_dir(p.path())
        .output()
        .unwrap();
    assert_exit(&o, 0);
    let shown = stdout(&run(p.path(), &["state", "show", "core.data.x", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&shown).unwrap();
    let input = &v["instances"][0]["attributes"]["input"];
    // var-file beats the environment; -var beats var-files.
    assert_eq!(input["n"], 8, "{v}");
    assert_eq!(input["names"], serde_json::json!(["a", "b"]));
    assert_eq!(input["label"], "cli");
    assert_eq!(stdout(&run(p.path(), &["output", "doubled"])).trim(), "8");
    let typed = run(p.path(), &["plan", "-var", "n=abc"]);
    assert_exit(&typed, 1);
    assert!(stderr(&typed).contains("P2031"), "{}", stderr(&typed));
    let unknown = run(p.path(), &["plan", "-var", "m=1", "-var", "n=1"]);
    assert!(stderr(&unknown).contains("P2051") && stderr(&unknown).contains("Did you mean `n`?"), "{}", stderr(&unknown));
}

#[test]
fn state_commands_list_show_move_remove_and_history() {
    let p = basic();
    assert_exit(&apply(p.path(), &[]), 0);
    let list = stdout(&run(p.path(), &["state", "list"]));
    assert_eq!(list.lines().count(), 5, "{list}");
    assert!(list.lines().any(|l| l == "file.file.config[\"a\"]"));
    let mv = run(p.path(), &["state", "mv", "core.data.seed", "core.data.renamed"]);
    assert_exit(&mv, 0);
    assert!(stdout(&run(p.path(), &["state", "list"])).contains("core.data.renamed"));
    let rm = run(p.path(), &["state", "rm", "core.data.renamed"]);
    assert_exit(&rm, 0);
    assert_eq!(stdout(&run(p.path(), &["state", "list"])).lines().count(), 4);
    let missing = run(p.path(), &["state", "rm", "core.data.none"]);
    assert_exit(&missing, 1);
    let hist = stdout(&run(p.path(), &["state", "history"]));
    assert!(hist.contains("apply") && hist.contains("applied"), "{hist}");
}

#[test]
fn graph_renders_dot_and_mermaid() {
    let p = basic();
    let dot = stdout(&run(p.path(), &["graph"]));
    assert!(dot.starts_with("digraph plinth {"), "{dot}");
    assert!(dot.contains("\"core.data.seed\" -> \"file.file.config\""), "{dot}");
    let mermaid = stdout(&run(p.path(), &["graph", "--format", "mermaid"]));
    assert!(mermaid.starts_with("flowchart LR"));
    assert!(mermaid.contains("-->"));
}

#[test]
fn unknown_values_propagate_into_the_plan() {
    let p = basic();
    let o = run(p.path(), &["plan", "--json", "-var", "admin_token=x"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let config_a = v["changes"].as_array().unwrap().iter().find(|c| c["address"] == "file.file.config[\"a\"]").unwrap();
    assert_eq!(config_a["after"]["content"], "(known after apply)");
    assert!(config_a["after_unknown"].as_array().unwrap().iter().any(|a| a == "content"));
    assert_eq!(config_a["after"]["path"], "out/a.txt");
}

#[test]
fn refresh_detects_a_file_edited_by_hand() {
    let p = basic();
    assert_exit(&apply(p.path(), &[]), 0);
    std::fs::write(p.path().join("out/a.txt"), "edited by hand\n").unwrap();
    let token = format!("admin_token={TOKEN}");
    assert_exit(&run(p.path(), &["plan", "--detailed-exitcode", "-var", &token]), 0);
    let r = run(p.path(), &["plan", "--refresh", "--detailed-exitcode", "-var", &token]);
    assert_exit(&r, 2);
    assert!(stdout(&r).contains("- edited by hand"), "{}", stdout(&r));
    assert_exit(&apply(p.path(), &["--refresh"]), 0);
    assert_eq!(std::fs::read_to_string(p.path().join("out/a.txt")).unwrap(), "hello world from a\n");
    std::fs::remove_file(p.path().join("out/b.txt")).unwrap();
    let r = run(p.path(), &["plan", "--refresh", "--json", "-var", "admin_token=x"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&r)).unwrap();
    assert_eq!(v["summary"]["create"], 1, "{v}");
}

#[test]
fn fmt_check_reports_and_fmt_rewrites() {
    let messy = "resource   core.data x {\ninput=1\n    # a comment\n  triggers_replace   = \"a\"\n}\n";
    let p = project(&[("main.plinth", messy)]);
    let check = run(p.path(), &["fmt", "--check"]);
    assert_exit(&check, 1);
    assert!(stdout(&check).contains("main.plinth"));
    assert_exit(&run(p.path(), &["fmt"]), 0);
    let formatted = std::fs::read_to_string(p.path().join("main.plinth")).unwrap();
    assert!(formatted.contains("# a comment"), "{formatted}");
    assert_exit(&run(p.path(), &["fmt", "--check"]), 0);
    assert_exit(&run(p.path(), &["validate"]), 0);
    let broken = project(&[("main.plinth", "resource {")]);
    let o = run(broken.path(), &["fmt"]);
    assert_exit(&o, 1);
    assert_eq!(std::fs::read_to_string(broken.path().join("main.plinth")).unwrap(), "resource {");
}

#[test]
fn help_teaches_and_unknown_flags_fail() {
    let h = plinth().arg("--help").output().unwrap();
    assert_exit(&h, 0);
    assert!(stdout(&h).contains("plinth plan"));
    let bad = plinth().args(["plan", "--no-such-flag"]).output().unwrap();
    assert_exit(&bad, 1);
}

#[test]
fn only_leaves_unrelated_lets_and_resources_alone() {
    let src = r#"
resource core.data a { input = "a" }
resource core.data b { input = "b" }
let from_b = "${core.data.b.output}!"
resource core.data c { input = from_b }
resource core.data d { input = core.data.a.output }
output c = core.data.c.output
"#;
    let p = project(&[("main.plinth", src)]);
    let o = run(p.path(), &["apply", "--auto-approve", "--only", "core.data.d"]);
    assert_exit(&o, 0);
    let list = stdout(&run(p.path(), &["state", "list"]));
    let mut addrs: Vec<&str> = list.lines().collect();
    addrs.sort();
    assert_eq!(addrs, ["core.data.a", "core.data.d"]);
    // The rest follows in a full apply; the selected part is unchanged.
    let o = run(p.path(), &["apply", "--auto-approve"]);
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("2 created, 0 updated"), "{}", stdout(&o));
    assert_eq!(stdout(&run(p.path(), &["output", "c"])).trim(), "b!");
}

#[test]
fn prevent_destroy_also_blocks_a_replacement() {
    let src = "resource random.password db {\n  length = 16\n  lifecycle {\n    prevent_destroy = true\n  }\n}\n";
    let p = project(&[("main.plinth", src)]);
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    std::fs::write(p.path().join("main.plinth"), src.replace("16", "20")).unwrap();
    let plan = run(p.path(), &["plan"]);
    assert_exit(&plan, 1);
    assert!(stderr(&plan).contains("P4003"), "{}", stderr(&plan));
}

/// The host identity Plinth records for lock holders (host name and PID namespace).
fn hostname() -> String {
    plinth::state::LockInfo::current("test").host
}

/// Records `holder` on `host` with `pid` as holding the lock, its lease ending in `expires_in` seconds.
fn plant_lock_as(dir: &std::path::Path, holder: &str, host: &str, pid: u32, expires_in: i64) {
    let db = rusqlite::Connection::open(dir.join(".plinth/state.db")).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    db.execute(
        "INSERT OR REPLACE INTO locks (env, holder, host, pid, command, acquired_at, expires_at) VALUES ('default', ?1, ?2, ?3, 'apply', '2026-11-21T10:00:00Z', ?4)",
        rusqlite::params![holder, host, pid, now + expires_in],
    )
    .unwrap();
}

fn plant_lock(dir: &std::path::Path, pid: u32, expires_in: i64) {
    plant_lock_as(dir, "ann", &hostname(), pid, expires_in);
}

#[test]
fn a_held_lock_is_reported_with_its_holder_and_can_be_removed() {
    let p = project(&[("main.plinth", "resource core.data x { input = 1 }\n")]);
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    // A live holder (another process on this host) with a valid lease.
    let mut holder = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    plant_lock(p.path(), holder.id(), 600);
    let o = run(p.path(), &["plan", "--lock-timeout", "1s"]);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("P5002") && err.contains("ann@") && err.contains(&format!("pid {}", holder.id())), "{err}");
    assert_exit(&run(p.path(), &["unlock"]), 0);
    assert_exit(&run(p.path(), &["plan"]), 0);
    // A holder that died: its lock is taken over without waiting.
    plant_lock(p.path(), holder.id(), 600);
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_exit(&run(p.path(), &["plan"]), 0);
    // An expired lease is taken over too, even if the pid were alive.
    plant_lock(p.path(), std::process::id(), -5);
    assert_exit(&run(p.path(), &["plan"]), 0);
    // A holder in another PID namespace (a container sharing the host name)
    // whose PID we cannot see is not presumed dead: its lease must run out.
    let other_ns = format!("{}#1", hostname().split('#').next().unwrap());
    plant_lock_as(p.path(), "bob", &other_ns, 999_999, 600);
    let o = run(p.path(), &["plan"]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("bob@"), "{}", stderr(&o));
}

#[test]
fn sigterm_finishes_in_flight_work_records_it_and_exits_non_zero() {
    use std::os::unix::process::ExitStatusExt;
    let mut src = String::new();
    for i in 0..400 {
        src.push_str(&format!("resource file.file f{i} {{\n  path    = \"out/{i}.txt\"\n  content = \"{i}\"\n}}\n"));
    }
    let p = project(&[("main.plinth", &src)]);
    let probe = project(&[("main.plinth", &src)]);
    let t0 = std::time::Instant::now();
    assert_exit(&run(probe.path(), &["apply", "--auto-approve", "--parallelism", "2"]), 0);
    let full = t0.elapsed();
    let child = plinth()
        .args(["apply", "--auto-approve", "--parallelism", "2"])
        .current_dir(p.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(full * 2 / 3);
    unsafe_sigterm(child.id());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.signal().is_none(), "killed by the signal instead of handling it");
    let created: usize = std::fs::read_dir(p.path().join("out")).map(|d| d.count()).unwrap_or(0);
    let recorded = stdout(&run(p.path(), &["state", "list"])).lines().count();
    // Whatever exists is recorded: nothing in flight was lost.
    assert_eq!(created, recorded, "{}", stdout(&out));
    if out.status.code() == Some(1) {
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(all.contains("Interrupted"), "{all}");
        let hist = stdout(&run(p.path(), &["state", "history", "--json"]));
        // Stopped while planning: no run was recorded; while applying: it is
        // recorded as interrupted.
        assert!(recorded == 0 || hist.contains("\"interrupted\""), "{hist}");
    } else {
        assert_exit(&out, 0); // the apply finished before the signal arrived
    }
    // The lock was released: the next run converges at once.
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    assert_eq!(stdout(&run(p.path(), &["state", "list"])).lines().count(), 400);
}

fn unsafe_sigterm(pid: u32) {
    std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
}

#[test]
fn state_migrates_between_backends_and_keeps_working() {
    let p = project(&[("main.plinth", "resource random.password pw { length = 12 }\nresource core.data d { input = \"x\" }\noutput o = core.data.d.output\n")]);
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    let other = p.path().join("elsewhere/state.db");
    let m = run(p.path(), &["state", "migrate", "--to", other.to_str().unwrap()]);
    assert_exit(&m, 0);
    assert!(stdout(&m).contains("Copied 2 instance(s) and 1 output(s)"), "{}", stdout(&m));
    let dest = other.to_str().unwrap();
    assert_eq!(stdout(&run(p.path(), &["state", "list", "--state", dest])).lines().count(), 2);
    assert_exit(&run(p.path(), &["plan", "--detailed-exitcode", "--state", dest]), 0);
    assert_eq!(stdout(&run(p.path(), &["output", "o", "--state", dest])).trim(), "x");
    // The same password: migrated, not regenerated.
    let password = |db: &std::path::Path| -> String {
        let c = rusqlite::Connection::open(db).unwrap();
        c.query_row("SELECT attrs FROM instances WHERE address = 'random.password.pw'", [], |r| r.get(0)).unwrap()
    };
    assert_eq!(password(&p.path().join(".plinth/state.db")), password(&other));
    // Refused onto a destination that has state, unless forced.
    let again = run(p.path(), &["state", "migrate", "--to", dest]);
    assert_exit(&again, 1);
    assert!(stderr(&again).contains("P5008"));
    assert_exit(&run(p.path(), &["state", "migrate", "--to", dest, "--force"]), 0);
    assert_eq!(stdout(&run(p.path(), &["state", "list", "--state", dest])).lines().count(), 2);
}

fn state_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir.join(".plinth")).unwrap().flatten() {
        all.extend(std::fs::read(entry.path()).unwrap());
    }
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

const KEY_A: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const KEY_B: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

#[test]
fn with_a_state_key_no_secret_byte_reaches_the_state_files() {
    let src = "param token: string { sensitive = true }\nresource random.password pw {\n  length  = 32\n  special = false\n}\nresource file.file f {\n  path    = \"secret.txt\"\n  content = random.password.pw.result\n}\nresource core.data t { input = token }\noutput pw = random.password.pw.result { sensitive = true }\n";
    let p = project(&[("main.plinth", src)]);
    let with = |key: &str, args: &[&str]| plinth().args(args).env("PLINTH_STATE_KEY", key).current_dir(p.path()).output().unwrap();
    let token = "tok-very-secret-in-state";
    assert_exit(&with(KEY_A, &["apply", "--auto-approve", "-var", &format!("token={token}")]), 0);
    let password = std::fs::read_to_string(p.path().join("secret.txt")).unwrap();
    let bytes = state_bytes(p.path());
    assert!(bytes.len() > 1000);
    for secret in [password.as_str(), token] {
        assert!(!contains(&bytes, secret.as_bytes()), "a secret is in the state files in clear");
    }
    assert!(contains(&bytes, b"random.password.pw"), "addresses stay readable");
    // The right key works end to end; a wrong key or none is a clear refusal.
    assert_exit(&with(KEY_A, &["plan", "--detailed-exitcode", "-var", &format!("token={token}")]), 0);
    let shown = with(KEY_A, &["output", "pw", "--show-sensitive"]);
    assert_eq!(stdout(&shown).trim(), password);
    let wrong = with(KEY_B, &["plan", "-var", "token=x"]);
    assert_exit(&wrong, 1);
    assert!(stderr(&wrong).contains("P5006") && !stderr(&wrong).contains(KEY_B), "{}", stderr(&wrong));
    let none = run(p.path(), &["state", "show"]);
    assert_exit(&none, 1);
    assert!(stderr(&none).contains("P5006"), "{}", stderr(&none));
    assert_exit(&run(p.path(), &["state", "list"]), 0);
    let bad = with("not-a-key", &["plan", "-var", "token=x"]);
    assert!(stderr(&bad).contains("P5009"), "{}", stderr(&bad));
    // Rotation: new key current, old key previous; rekey; then the old key is no longer needed.
    let rotate =
        plinth().args(["state", "rekey"]).env("PLINTH_STATE_KEY", KEY_B).env("PLINTH_STATE_KEY_PREVIOUS", KEY_A).current_dir(p.path()).output().unwrap();
    assert_exit(&rotate, 0);
    assert_exit(&with(KEY_B, &["plan", "--detailed-exitcode", "-var", &format!("token={token}")]), 0);
    assert_eq!(stdout(&with(KEY_B, &["output", "pw", "--show-sensitive"])).trim(), password);
    let old = with(KEY_A, &["state", "show"]);
    assert!(stderr(&old).contains("P5006"), "{}", stderr(&old));
    // Decrypting: no current key, the old one as previous, rekey: clear again.
    let decrypt = plinth().args(["state", "rekey"]).env("PLINTH_STATE_KEY_PREVIOUS", KEY_B).current_dir(p.path()).output().unwrap();
    assert_exit(&decrypt, 0);
    assert!(stdout(&decrypt).contains("in clear"), "{}", stdout(&decrypt));
    assert_exit(&run(p.path(), &["plan", "--detailed-exitcode", "-var", &format!("token={token}")]), 0);
}

#[test]
fn a_closed_pipe_ends_output_quietly() {
    use std::io::Read;
    let mut src = String::new();
    for i in 0..2000 {
        src.push_str(&format!("resource core.data r{i} {{ input = {i} }}\n"));
    }
    let p = project(&[("main.plinth", &src)]);
    let mut child = plinth().arg("plan").current_dir(p.path()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let mut first = [0u8; 64];
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    assert_ne!(out.status.code(), Some(101));
}

#[test]
fn concurrent_runs_on_one_environment_never_write_together() {
    let mut src = String::from("param v: string\n");
    for i in 0..30 {
        src.push_str(&format!("resource core.data r{i} {{ input = \"${{v}}-{i}\" }}\n"));
    }
    let p = project(&[("main.plinth", &src)]);
    let n = 8;
    let children: Vec<_> = (0..n)
        .map(|i| {
            plinth()
                .args(["apply", "--auto-approve", "--lock-timeout", "120s", "-var", &format!("v=run{i}")])
                .current_dir(p.path())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let db = rusqlite::Connection::open(p.path().join(".plinth/state.db")).unwrap();
    let serials: Vec<i64> = db
        .prepare("SELECT serial FROM history WHERE status = 'applied' ORDER BY serial")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(serials, (1..=n as i64).collect::<Vec<_>>(), "every run applied, each with its own serial");
    // One writer at a time: the intents of each run form one contiguous block.
    let rows: Vec<(i64, i64)> =
        db.prepare("SELECT id, serial FROM intents ORDER BY id").unwrap().query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 30 * n, "each run wrote 30 intents");
    let mut seen = std::collections::HashSet::new();
    for w in rows.windows(2) {
        if w[0].1 != w[1].1 {
            assert!(seen.insert(w[0].1), "run {} wrote again after run {} had started: two writers", w[0].1, w[1].1);
        }
    }
    // The state is one run's, entirely.
    let inputs: std::collections::HashSet<String> = db
        .prepare("SELECT inputs FROM instances")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|s| s.unwrap().split('-').next().unwrap_or("").to_string())
        .collect();
    assert_eq!(inputs.len(), 1, "{inputs:?}");
}

#[test]
fn a_refreshed_saved_plan_applies_from_any_working_directory() {
    let p = project(&[("main.plinth", "resource file.file f {\n  path    = \"out/f.txt\"\n  content = \"wanted\"\n}\n")]);
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    std::fs::write(p.path().join("out/f.txt"), "edited").unwrap();
    let plan_file = p.path().join("refresh.plan");
    assert_exit(&run(p.path(), &["plan", "--refresh", "--out", plan_file.to_str().unwrap()]), 0);
    // Applied from elsewhere: the project directory is spelled differently.
    let elsewhere = tempfile::tempdir().unwrap();
    assert_exit(&run(elsewhere.path(), &["apply", plan_file.to_str().unwrap()]), 0);
    assert_eq!(std::fs::read_to_string(p.path().join("out/f.txt")).unwrap(), "wanted");
}

#[test]
fn terraform_syntax_is_answered_with_the_plinth_form() {
    let p = project(&[("main.plinth", "variable \"region\" {\n  type = string\n}\nresource \"random_password\" \"db\" {\n  length = 16\n}\noutput \"o\" {\n  value = 1\n}\nlocals {\n  a = 1\n}\nmodule \"m\" {\n  source = \"./m\"\n}\n")]);
    let out = run(p.path(), &["validate"]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    for want in ["P1011", "param region: string", "resource random.password db {", "output o = <value>", "`local.y` → `y`", "module m from \"./path\""] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    assert!(!err.contains("P1001"), "{err}");
    let p = project(&[("main.plinth", "param x: string = \"a\"\nlet y = 1\noutput o = \"${var.x}-${local.y}\"\n")]);
    let err = stderr(&run(p.path(), &["validate"]));
    assert!(err.contains("P2145") && err.contains("`var.x` → `x`") && err.contains("`local.y` → `y`"), "{err}");
}

/// A resource on a provider's default configuration waits for what that
/// configuration references (here a kubeconfig a `file.file` writes), as a
/// resource naming an alias does: without the edge, the namespace was
/// applied before its kubeconfig existed.
#[test]
fn resources_of_a_default_provider_block_wait_for_what_it_references() {
    let p = project(&[(
        "main.plinth",
        "provider kubernetes {\n  kubeconfig = file.file.kc.path\n}\nresource file.file kc {\n  path    = \"kc.yaml\"\n  content = \"x\"\n}\nresource kubernetes.namespace ns {\n  name = \"a\"\n}\n",
    )]);
    let dot = stdout(&run(p.path(), &["graph"]));
    assert!(dot.contains("\"file.file.kc\" -> \"provider kubernetes\""), "{dot}");
    assert!(dot.contains("\"provider kubernetes\" -> \"kubernetes.namespace.ns\""), "{dot}");
}
