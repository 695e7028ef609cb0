//! The command line as a Terraform user expects it: nothing is written where
//! the user did not point, `state list` patterns, the project directory as
//! the last argument everywhere, Terraform's destroy summary, one order of
//! outputs, `validate --env`, projects that need `--env`, `--only` targets
//! that match nothing in one environment. Real binary, real files, real
//! SQLite; every test checks the filesystem or the printed text.

use crate::*;
use std::path::Path;

const SRC: &str = r#"
resource file.file config {
  for_each = toset(["b", "a"])
  path     = "out/${each.key}.txt"
  content  = "x\n"
}
resource random.password db {
  length  = 12
  special = false
}
resource core.data seed {
  input = "v"
}
output zeta = "z"
output alpha = core.data.seed.output
output mid = 2
"#;

fn applied() -> tempfile::TempDir {
    let p = project(&[("main.plinth", SRC)]);
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    p
}

/// Every path under `root` whose name is `name`.
fn find_named(root: &Path, name: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = e.path();
            if e.file_name() == name {
                found.push(path.clone());
            }
            if path.is_dir() && !path.is_symlink() {
                stack.push(path);
            }
        }
    }
    found
}

#[test]
fn state_list_takes_address_patterns_and_prints_them_sorted() {
    let p = applied();
    let o = run(p.path(), &["state", "list", "file.*"]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "file.file.config[\"a\"]\nfile.file.config[\"b\"]\n");
    assert!(!p.path().join("file.*").exists(), "a pattern is not a directory: nothing may be created for it");
    // Several patterns; a resource address covers its instances.
    let o = run(p.path(), &["state", "list", "random.password.db", "file.file.config"]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "file.file.config[\"a\"]\nfile.file.config[\"b\"]\nrandom.password.db\n");
    // Without patterns: everything, sorted.
    let all = stdout(&run(p.path(), &["state", "list"]));
    let mut sorted: Vec<&str> = all.lines().collect();
    sorted.sort();
    assert_eq!(all.lines().collect::<Vec<_>>(), sorted);
    assert_eq!(sorted.len(), 4);
    // A pattern that matches nothing is an error, as in Terraform.
    let o = run(p.path(), &["state", "list", "file.file.nothing"]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("P5004"), "{}", stderr(&o));
    // The old form, the directory as the argument, still works.
    let parent = p.path().parent().unwrap();
    let name = p.path().file_name().unwrap().to_str().unwrap();
    let o = run(parent, &["state", "list", name]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o).lines().count(), 4);
    assert_eq!(find_named(p.path(), "state.db").len(), 1);
}

#[test]
fn commands_on_a_mistyped_directory_write_nothing() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("empty")).unwrap();
    for dir in ["missing", "empty"] {
        let commands: Vec<Vec<&str>> = vec![
            vec!["plan", dir],
            vec!["apply", "--auto-approve", dir],
            vec!["destroy", "--auto-approve", dir],
            vec!["drift", dir],
            vec!["drift", "--history", dir],
            vec!["output", "-C", dir],
            vec!["state", "list", "-C", dir],
            vec!["state", "show", "-C", dir],
            vec!["state", "history", dir],
            vec!["state", "rm", "a.b.c", "-C", dir],
            vec!["state", "mv", "a.b.c", "a.b.d", dir],
            vec!["unlock", dir],
            vec!["envs", dir],
            vec!["validate", dir],
            vec!["graph", dir],
        ];
        for args in commands {
            let o = run(root.path(), &args);
            assert_exit(&o, 1);
            assert!(stderr(&o).contains("P2050"), "{args:?}: {}", stderr(&o));
        }
    }
    assert!(!root.path().join("missing").exists(), "a mistyped directory must not be created");
    assert!(find_named(root.path(), ".plinth").is_empty(), "no state may be written: {:?}", find_named(root.path(), ".plinth"));
}

#[test]
fn read_only_commands_never_create_a_state() {
    let p = project(&[("main.plinth", SRC)]);
    let commands: [&[&str]; 13] = [
        &["plan"],
        &["plan", "--refresh", "--detailed-exitcode"],
        &["drift"],
        &["drift", "--history"],
        &["output"],
        &["state", "list"],
        &["state", "show"],
        &["state", "history"],
        &["validate"],
        &["graph"],
        &["destroy", "--auto-approve"],
        &["unlock"],
        &["state", "rm", "file.file.config"],
    ];
    for args in commands {
        let o = run(p.path(), args);
        assert!(matches!(o.status.code(), Some(0..=2)), "{args:?}: {}", stderr(&o));
        assert!(!p.path().join(".plinth").exists(), "`plinth {}` created a state", args.join(" "));
    }
    // What they saw was an empty state.
    assert_eq!(stdout(&run(p.path(), &["state", "list"])), "");
    assert_exit(&run(p.path(), &["plan", "--detailed-exitcode"]), 2);
    // apply creates it.
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    assert!(p.path().join(".plinth/state.db").is_file());
}

#[test]
fn output_and_state_commands_take_the_project_directory_as_the_last_argument() {
    let p = applied();
    let parent = p.path().parent().unwrap();
    let dir = p.path().to_str().unwrap();
    assert_eq!(stdout(&run(parent, &["output", "mid", dir])).trim(), "2");
    assert!(stdout(&run(parent, &["output", dir])).contains("zeta = \"z\""));
    let shown = run(parent, &["state", "show", "core.data.seed", dir, "--json"]);
    assert_exit(&shown, 0);
    assert!(stdout(&shown).contains("\"core.data.seed\""));
    assert_exit(&run(parent, &["state", "history", dir]), 0);
    assert_exit(&run(parent, &["state", "mv", "core.data.seed", "core.data.renamed", dir]), 0);
    assert_exit(&run(parent, &["state", "rm", "core.data.renamed", dir]), 0);
    assert!(!stdout(&run(parent, &["state", "list", dir])).contains("core.data"), "moved, then removed");
    // The old forms still work.
    assert_eq!(stdout(&run(parent, &["output", "mid", "-C", dir])).trim(), "2");
    assert_exit(&run(parent, &["state", "show", "random.password.db", "-C", dir]), 0);
    assert_exit(&run(p.path(), &["state", "rm", "random.password.db"]), 0);
    // A directory alone is no address to remove.
    let o = run(parent, &["state", "rm", dir]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("P5055"), "{}", stderr(&o));
}

#[test]
fn destroy_ends_with_terraforms_summary() {
    let p = applied();
    let o = run(p.path(), &["destroy", "--auto-approve"]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert_eq!(out.trim_end().lines().last(), Some("Destroy complete! Resources: 4 destroyed."), "{out}");
    assert!(!out.contains("Apply complete"), "{out}");
    let again = run(p.path(), &["destroy", "--auto-approve"]);
    assert_eq!(stdout(&again).trim_end().lines().last(), Some("Destroy complete! Resources: 0 destroyed."), "{}", stdout(&again));
}

#[test]
fn outputs_print_sorted_by_name_everywhere() {
    let p = project(&[("main.plinth", SRC)]);
    let plan = run(p.path(), &["plan", "--json"]);
    let v: serde_json::Value = serde_json::from_str(stdout(&plan).trim()).unwrap();
    let names: Vec<&str> = v["outputs"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["alpha", "mid", "zeta"]);
    let text = stdout(&run(p.path(), &["plan"]));
    let (a, m, z) = (text.find("+ alpha").unwrap(), text.find("+ mid").unwrap(), text.find("+ zeta").unwrap());
    assert!(a < m && m < z, "{text}");
    let applied = stdout(&run(p.path(), &["apply", "--auto-approve"]));
    let outputs = &applied[applied.find("Outputs:").expect("outputs")..];
    let lines: Vec<&str> = outputs.lines().skip(1).map(str::trim).collect();
    assert_eq!(lines, ["alpha = \"v\"", "mid = 2", "zeta = \"z\""], "{applied}");
    assert_eq!(stdout(&run(p.path(), &["output"])), "alpha = \"v\"\nmid = 2\nzeta = \"z\"\n");
    let json = stdout(&run(p.path(), &["output", "--json"]));
    let (a, m, z) = (json.find("\"alpha\"").unwrap(), json.find("\"mid\"").unwrap(), json.find("\"zeta\"").unwrap());
    assert!(a < m && m < z, "{json}");
}

#[test]
fn drift_fix_without_a_terminal_names_auto_approve() {
    let p = applied();
    std::fs::write(p.path().join("out/a.txt"), "changed\n").unwrap();
    let o = run(p.path(), &["drift", "--fix"]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("P4007") && stderr(&o).contains("drift --fix --auto-approve"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(p.path().join("out/a.txt")).unwrap(), "changed\n", "nothing was fixed without approval");
    assert_exit(&run(p.path(), &["drift", "--fix", "--auto-approve"]), 0);
    assert_eq!(std::fs::read_to_string(p.path().join("out/a.txt")).unwrap(), "x\n");
}

const ENV_ROOT: &str = r#"
param tenant: string
param replicas: number = 1
resource file.file marker {
  path    = "out/${tenant}.txt"
  content = "${replicas}\n"
}
"#;

fn env_project() -> tempfile::TempDir {
    project(&[
        ("main.plinth", ENV_ROOT),
        ("envs/prod/edp.plinth", "tenant = \"edp\"\nreplicas = 3\n"),
        ("envs/prod/bad.plinth", "tenant = \"bad\"\nreplicas = \"three\"\n"),
        ("envs/dev.plinth", "tenant = \"dev\"\n"),
    ])
}

#[test]
fn validate_env_checks_the_environments_values() {
    let p = env_project();
    assert_exit(&run(p.path(), &["validate"]), 0);
    assert_exit(&run(p.path(), &["validate", "--env", "prod/edp"]), 0);
    let bad = run(p.path(), &["validate", "--env", "prod/bad"]);
    assert_exit(&bad, 1);
    assert!(stderr(&bad).contains("P2031") && stderr(&bad).contains("bad.plinth"), "{}", stderr(&bad));
    let unknown = run(p.path(), &["validate", "--env", "prod/nope"]);
    assert_exit(&unknown, 1);
    assert!(stderr(&unknown).contains("P2081"), "{}", stderr(&unknown));
    assert!(!p.path().join(".plinth").exists());
}

#[test]
fn a_project_that_needs_an_environment_says_so_and_lists_them() {
    let p = env_project();
    for args in [&["plan"][..], &["destroy", "--auto-approve"], &["drift"]] {
        let o = run(p.path(), args);
        assert_exit(&o, 1);
        let err = stderr(&o);
        assert!(err.contains("P2130") && err.contains("--env"), "{args:?}: {err}");
        for env in ["dev", "prod/bad", "prod/edp"] {
            assert!(err.contains(&format!("`{env}`")), "{args:?} must list {env}: {err}");
        }
    }
    assert!(!p.path().join(".plinth").exists());
    // With a value for the param the default environment is fine.
    assert_exit(&run(p.path(), &["plan", "-var", "tenant=x"]), 0);
    // Without environments, the usual missing-value error.
    let bare = project(&[("main.plinth", ENV_ROOT)]);
    let o = run(bare.path(), &["plan"]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("P2030") && !stderr(&o).contains("P2130"), "{}", stderr(&o));
}

#[test]
fn an_only_target_that_matches_nothing_here_is_a_warning_when_others_match() {
    let p = env_project();
    let o = run(p.path(), &["apply", "--auto-approve", "--env", "prod/edp", "--only", "file.file.marker,file.file.elsewhere"]);
    assert_exit(&o, 0);
    assert!(stderr(&o).contains("P4040") && stderr(&o).contains("file.file.elsewhere"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(p.path().join("out/edp.txt")).unwrap(), "3\n");
    // When no target matches anything it is still an error.
    let none = run(p.path(), &["plan", "--env", "prod/edp", "--only", "file.file.elsewhere"]);
    assert_exit(&none, 1);
    assert!(stderr(&none).contains("P4001"), "{}", stderr(&none));
}
