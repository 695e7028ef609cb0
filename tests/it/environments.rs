//! Environments (`envs/`) and module sources (`plinth init`, `plinth.lock`)
//! through the real binary, against real files and real git repositories.

use crate::*;
use std::path::Path;
use std::process::Command;

const ROOT: &str = r#"
param tenant: string
param name: string
param config: any = {}

resource file.file marker {
  path    = "out/${tenant}-${name}.json"
  content = jsonencode({ tenant = tenant, name = name, config = config })
}
"#;

fn env_project() -> tempfile::TempDir {
    project(&[
        ("main.plinth", ROOT),
        ("envs/defaults.plinth", "tenant = \"non-prod\"\nconfig = { size = \"s\", nested = { a = 1, b = 2 } }\n"),
        ("envs/prod/defaults.plinth", "tenant = \"prod\"\nconfig = { nested = { b = 3 } }\nbackend \"sqlite\" {\n  path = \".plinth/prod.db\"\n}\n"),
        ("envs/prod/edp.plinth", "name = \"edp\"\n"),
        ("envs/prod/observability.plinth", "name = \"observability\"\n"),
        ("envs/non-prod/garm-test.plinth", "name = \"garm-test\"\n"),
    ])
}

#[test]
fn envs_lists_every_environment_with_its_backend() {
    let dir = env_project();
    let o = run(dir.path(), &["envs", "--json"]);
    assert_exit(&o, 0);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let names: Vec<&str> = v["environments"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["non-prod/garm-test", "prod/edp", "prod/observability"]);
    let prod = &v["environments"][1];
    assert_eq!(prod["backend"], "sqlite");
    assert!(prod["state"].as_str().unwrap().ends_with(".plinth/prod.db"), "{prod}");
}

#[test]
fn each_environment_has_its_values_and_its_own_state() {
    let dir = env_project();
    for env in ["prod/edp", "non-prod/garm-test"] {
        assert_exit(&run(dir.path(), &["apply", "--auto-approve", "--env", env]), 0);
    }
    // Inheritance and deep merge: prod/defaults overrides nested.b only.
    let text = std::fs::read_to_string(dir.path().join("out/prod-edp.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["config"], serde_json::json!({ "size": "s", "nested": { "a": 1, "b": 3 } }));
    assert!(dir.path().join("out/non-prod-garm-test.json").is_file());
    // prod's backend is its own file; non-prod uses the default database,
    // and each environment sees only its own objects.
    assert!(dir.path().join(".plinth/prod.db").is_file());
    let prod = stdout(&run(dir.path(), &["state", "list", "--env", "prod/edp"]));
    assert_eq!(prod.trim(), "file.file.marker");
    let other = run(dir.path(), &["state", "list", "--env", "prod/observability"]);
    assert_eq!(stdout(&other).trim(), "", "a fresh environment has no objects");
    // Idempotent per environment.
    assert_exit(&run(dir.path(), &["plan", "--detailed-exitcode", "--env", "prod/edp"]), 0);
    // -var overrides the environment's value.
    let o = run(dir.path(), &["plan", "--detailed-exitcode", "--env", "prod/edp", "-var", "name=other"]);
    assert_exit(&o, 2);
}

#[test]
fn a_saved_plan_applies_to_its_environment() {
    let dir = env_project();
    let plan_file = dir.path().join("edp.plan");
    assert_exit(&run(dir.path(), &["plan", "--env", "prod/edp", "--out", plan_file.to_str().unwrap()]), 0);
    assert_exit(&run(dir.path(), &["apply", plan_file.to_str().unwrap()]), 0);
    assert_eq!(stdout(&run(dir.path(), &["state", "list", "--env", "prod/edp"])).trim(), "file.file.marker");
    assert_eq!(stdout(&run(dir.path(), &["state", "list"])).trim(), "", "nothing went to the default environment");
}

#[test]
fn a_value_for_an_unknown_param_names_the_file_and_line() {
    let dir = env_project();
    std::fs::write(dir.path().join("envs/prod/edp.plinth"), "name = \"edp\"\nnmae = \"typo\"\n").unwrap();
    let o = run(dir.path(), &["plan", "--env", "prod/edp"]);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("P2083") && err.contains("envs/prod/edp.plinth:2:1"), "{err}");
    let o = run(dir.path(), &["plan", "--env", "prod/edx"]);
    assert!(stderr(&o).contains("P2081") && stderr(&o).contains("prod/edp"), "{}", stderr(&o));
}

fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(o.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A repository with a `modules/db` module tagged v1.0.0 and v1.1.0.
fn module_repo(root: &Path) -> std::path::PathBuf {
    let repo = root.join("catalogue-repo");
    std::fs::create_dir_all(repo.join("modules/db")).unwrap();
    git(&repo, &["init", "-q"]);
    let module = |input: &str| {
        format!("meta {{ kind = \"database\" }}\nparam name: string\nresource core.data db {{ input = {input} }}\noutput name = core.data.db.input\n")
    };
    std::fs::write(repo.join("modules/db/main.plinth"), module("name")).unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "v1.0.0"]);
    git(&repo, &["tag", "v1.0.0"]);
    std::fs::write(repo.join("modules/db/main.plinth"), module("\"v1.1-${name}\"")).unwrap();
    git(&repo, &["commit", "-qam", "v1.1.0"]);
    git(&repo, &["tag", "v1.1.0"]);
    repo
}

#[test]
fn git_sources_are_locked_by_init_and_used_offline() {
    let root = tempfile::tempdir().unwrap();
    let repo = module_repo(root.path());
    let proj = root.path().join("project");
    std::fs::create_dir_all(&proj).unwrap();
    let source = format!("git+file://{}//modules/db", repo.display());
    std::fs::write(
        proj.join("main.plinth"),
        format!("database main from \"{source}\" version \"~1.0.0\" {{\n  name = \"forgejo\"\n}}\n\noutput db = database.main.name\n"),
    )
    .unwrap();

    // Not locked yet: a clear diagnostic, not a network call.
    let o = run(&proj, &["validate"]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("P2063") && stderr(&o).contains("plinth init"), "{}", stderr(&o));

    assert_exit(&run(&proj, &["init"]), 0);
    let lock: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(proj.join("plinth.lock")).unwrap()).unwrap();
    let entry = &lock["sources"][0];
    assert_eq!(entry["tag"], "v1.0.0", "~1.0.0 picks the highest 1.0.x tag");
    assert_eq!(entry["commit"].as_str().unwrap(), git(&repo, &["rev-parse", "v1.0.0"]));

    // The repository goes away: the lock and the cache are enough.
    std::fs::rename(&repo, root.path().join("gone")).unwrap();
    let o = run(&proj, &["plan", "--json"]);
    assert_exit(&o, 0);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(output(&v, "db"), "forgejo", "{v}");

    // A changed cached module is refused.
    let cached = walk(&proj.join(".plinth/modules")).into_iter().find(|p| p.ends_with("modules/db/main.plinth")).expect("cached module");
    let mut text = std::fs::read_to_string(&cached).unwrap();
    text.push_str("\n# edited\n");
    std::fs::write(&cached, text).unwrap();
    let o = run(&proj, &["plan"]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("P2064"), "{}", stderr(&o));
}

#[test]
fn upgrade_moves_to_the_newest_matching_tag() {
    let root = tempfile::tempdir().unwrap();
    let repo = module_repo(root.path());
    let proj = root.path().join("project");
    std::fs::create_dir_all(&proj).unwrap();
    let source = format!("git+file://{}//modules/db", repo.display());
    let write = |constraint: &str| {
        std::fs::write(
            proj.join("main.plinth"),
            format!("database main from \"{source}\" version \"{constraint}\" {{\n  name = \"forgejo\"\n}}\n\noutput db = database.main.name\n"),
        )
        .unwrap()
    };
    write("^1.0");
    assert_exit(&run(&proj, &["init"]), 0);
    let o = run(&proj, &["plan", "--json"]);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(output(&v, "db"), "v1.1-forgejo", "^1.0 resolves to v1.1.0");
    // A changed constraint needs init again.
    write("~1.0.0");
    let o = run(&proj, &["plan"]);
    assert!(stderr(&o).contains("P2063"), "{}", stderr(&o));
    assert_exit(&run(&proj, &["init", "--upgrade"]), 0);
    let o = run(&proj, &["plan", "--json"]);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(output(&v, "db"), "forgejo");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn output(plan: &serde_json::Value, name: &str) -> serde_json::Value {
    plan["outputs"].as_array().and_then(|a| a.iter().find(|o| o["name"] == name)).map(|o| o["value"].clone()).unwrap_or_default()
}
