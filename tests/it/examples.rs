//! Every example under `examples/` is validated and planned (a project with
//! `envs/` once per environment); the quickstart is applied for real, twice
//! (the second apply changes nothing); the developer platform (`examples/edp`)
//! renders and commits `non-prod/garm-test` into a local stacks-instances
//! repository.

use crate::*;
use std::path::Path;

fn example_dirs() -> Vec<std::path::PathBuf> {
    let mut dirs = Vec::new();
    let mut stack = vec![repo_root().join("examples")];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        let mut has_config = false;
        for e in entries.flatten() {
            let p = e.path();
            // A symlink (examples/edp/catalogue → ../../catalogue) holds
            // modules, not an example; `envs` holds values, `rendered`
            // output.
            if e.file_type().is_ok_and(|t| t.is_symlink()) {
                continue;
            }
            if p.is_dir() && p.file_name().is_some_and(|n| n != ".plinth" && n != "envs" && n != "rendered") {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "plinth") {
                has_config = true;
            }
        }
        if has_config {
            dirs.push(d);
        }
    }
    dirs.sort();
    dirs
}

/// Copies an example; a symlinked directory (the catalogue) is copied as a
/// directory, so the copy resolves `catalogue/…` sources on its own.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        let name = e.file_name();
        if name == ".plinth" || name == "out" || name == "rendered" {
            continue;
        }
        if p.is_dir() {
            copy_dir(&p, &to.join(&name));
        } else {
            std::fs::copy(&p, to.join(&name)).unwrap();
        }
    }
}

/// The environments of a project (`envs/**/<name>.plinth` except
/// `defaults.plinth`), as `plinth envs` names them.
fn env_names(project: &Path) -> Vec<String> {
    let mut names = Vec::new();
    let mut stack = vec![project.join("envs")];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "plinth") && p.file_name().is_some_and(|n| n != "defaults.plinth") {
                let rel = p.strip_prefix(project.join("envs")).unwrap().with_extension("");
                names.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    names.sort();
    names
}

#[test]
fn every_example_validates_and_plans() {
    let dirs = example_dirs();
    assert!(!dirs.is_empty());
    assert!(!dirs.iter().any(|d| d.components().any(|c| c.as_os_str() == "catalogue")), "the catalogue link is not an example: {dirs:?}");
    for d in dirs {
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(&d, tmp.path());
        assert_exit(&run(tmp.path(), &["validate"]), 0);
        let envs = env_names(tmp.path());
        if envs.is_empty() {
            let plan = run(tmp.path(), &["plan", "--detailed-exitcode"]);
            // A Terraform provider's example plans once `plinth init` has
            // installed it (tests/it/terraform_providers.rs does, from the
            // mirror); before, planning says so.
            if plan.status.code() == Some(1) && stderr(&plan).contains("P7141") {
                assert!(d.ends_with("terraform-providers"), "{}: {}", d.display(), stderr(&plan));
            } else {
                assert_exit(&plan, 2);
            }
        } else {
            let listed = run(tmp.path(), &["envs"]);
            assert_exit(&listed, 0);
            // Each environment planned against a local state (`--state`
            // wins over the environment's backend, which may be remote).
            let state = tmp.path().join(".plinth/examples-test.db");
            for env in &envs {
                assert!(stdout(&listed).contains(env.as_str()), "plinth envs lacks {env}:\n{}", stdout(&listed));
                // The environment's values against the params (with the
                // secret CI gives, which a validation rule requires).
                let validated = plinth()
                    .args(["validate", "--env", env])
                    .env("PLINTH_VAR_remote_write_password", "examples-test-password")
                    .current_dir(tmp.path())
                    .output()
                    .expect("run plinth");
                assert_exit(&validated, 0);
                // A secret an environment takes from the process
                // environment (examples/edp: the central remote-write
                // password) is given as CI gives it.
                // An environment that creates its cluster with the
                // opentelekomcloud Terraform provider plans only where that
                // provider is installed: with PLINTH_TEST_PROVIDER_MIRROR (a
                // filesystem mirror holding it; opt-in, no registry is
                // reachable here), else planning says to run `plinth init`.
                let mirror = std::env::var("PLINTH_TEST_PROVIDER_MIRROR").ok().filter(|m| !m.is_empty());
                let needs_otc = std::fs::read_to_string(tmp.path().join("envs").join(format!("{env}.plinth"))).is_ok_and(|t| t.contains("otc-cce"));
                if needs_otc {
                    match &mirror {
                        Some(m) => assert_exit(&run(tmp.path(), &["init", "--provider-mirror", m]), 0),
                        None => {
                            let plan = plinth()
                                .args(["plan", "--env", env, "--state", state.to_str().unwrap()])
                                .env("PLINTH_VAR_remote_write_password", "examples-test-password")
                                .current_dir(tmp.path())
                                .output()
                                .expect("run plinth");
                            assert_exit(&plan, 1);
                            assert!(stderr(&plan).contains("P7141") && stderr(&plan).contains("plinth init"), "{}", stderr(&plan));
                            continue;
                        }
                    }
                }
                let plan = plinth()
                    .args(["plan", "--detailed-exitcode", "--env", env, "--state", state.to_str().unwrap()])
                    .env("PLINTH_VAR_remote_write_password", "examples-test-password")
                    .current_dir(tmp.path())
                    .output()
                    .expect("run plinth");
                assert_exit(&plan, 2);
            }
        }
        assert_exit(&run(tmp.path(), &["fmt", "--check"]), 0);
    }
}

#[test]
fn quickstart_applies_and_converges() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&repo_root().join("examples/quickstart"), tmp.path());
    let o = run(tmp.path(), &["apply", "--auto-approve"]);
    assert_exit(&o, 0);
    let again = run(tmp.path(), &["apply", "--auto-approve"]);
    assert_exit(&again, 0);
    assert!(stdout(&again).contains("No changes"), "{}", stdout(&again));
    assert_exit(&run(tmp.path(), &["plan", "--refresh", "--detailed-exitcode"]), 0);
    let outputs = stdout(&run(tmp.path(), &["output", "--json"]));
    assert!(outputs.contains("\"sensitive\":true"), "{outputs}");
}

/// `git --git-dir <repo> <args>`: its stdout; panics when git fails.
#[track_caller]
fn git(repo: &Path, args: &[&str]) -> String {
    let o = std::process::Command::new("git").arg("--git-dir").arg(repo).args(args).output().expect("run git");
    assert!(o.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// examples/edp, environment non-prod/garm-test: selecting the commit to the
/// stacks-instances repository renders every selected stack and fleet (the
/// commit's `source_files` are their files) and commits them under
/// non-prod/garm-test/. The second run changes nothing; a changed chart
/// version commits again.
///
/// The cluster is the in-process Kubernetes API test double: a reference to
/// an output of a repeated component (`stack.core[0].hash`) depends on every
/// resource of that component (src/eval/components.rs), so `--only
/// git.commit.stacks_instances` also selects the stacks' namespaces and
/// Secrets. Nothing here asserts that they are applied.
#[test]
fn edp_renders_and_commits_an_environment_to_a_stacks_instances_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("edp");
    copy_dir(&repo_root().join("examples/edp"), &project);
    assert!(project.join("catalogue/stacks/core/main.plinth").is_file(), "the catalogue was not copied into the example");
    let repo = tmp.path().join("stacks-instances.git");
    let init = std::process::Command::new("git").args(["init", "--bare", "--quiet"]).arg(&repo).output().expect("git init");
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));

    let kube = crate::provider_kubernetes::KubeApiTestDouble::start();
    let kubeconfig = tmp.path().join("kubeconfig.yaml");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: double\n  cluster:\n    server: {}\nusers:\n- name: double\n  user:\n    token: {}\ncontexts:\n- name: double\n  context:\n    cluster: double\n    user: double\ncurrent-context: double\n",
            kube.host(),
            kube.token
        ),
    )
    .unwrap();
    let kube_var = format!("kubeconfig_path={}", kubeconfig.display());
    let repo_var = format!("stacks_instances_repo={}", repo.display());
    let args = |cmd: &[&'static str]| -> Vec<String> {
        let mut a: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        a.extend(["--env", "non-prod/garm-test", "--only", "git.commit.stacks_instances", "--var", &repo_var, "--var", &kube_var].map(String::from));
        a
    };
    let run_args = |a: Vec<String>| run(&project, &a.iter().map(String::as_str).collect::<Vec<_>>());

    let apply = run_args(args(&["apply", "--auto-approve"]));
    assert_exit(&apply, 0);
    let out = stdout(&apply);
    for address in [
        "stack.core[0].file.tree.manifests",
        "stack.forgejo[0].file.tree.manifests",
        "runner_fleet.pool[\"small\"].file.tree.manifests",
        "git.commit.stacks_instances",
    ] {
        assert!(out.contains(address), "apply did not touch {address}:\n{out}");
    }
    assert!(!out.contains("postgres."), "rendering and committing touched the database:\n{out}");

    let head = git(&repo, &["rev-parse", "main"]);
    let files = git(&repo, &["ls-tree", "-r", "--name-only", "main"]);
    let files: Vec<&str> = files.lines().collect();
    for expected in [
        "non-prod/garm-test/core/argo-cd.yaml",
        "non-prod/garm-test/core/stacks.yaml",
        "non-prod/garm-test/core/runner-fleets.yaml",
        "non-prod/garm-test/otc/cluster-issuer.yaml",
        "non-prod/garm-test/forgejo/forgejo.yaml",
        "non-prod/garm-test/runner-fleets/small/deployment.yaml",
        "non-prod/garm-test/runner-fleets/small/config.yaml",
    ] {
        assert!(files.contains(&expected), "{expected} is not on main: {files:#?}");
    }
    assert!(files.iter().all(|f| f.starts_with("non-prod/garm-test/")), "files outside non-prod/garm-test/: {files:#?}");
    assert!(!files.iter().any(|f| f.contains("/observability")), "a stack garm-test does not select was committed: {files:#?}");
    let apps = git(&repo, &["show", "main:non-prod/garm-test/core/stacks.yaml"]);
    for needle in ["path: non-prod/garm-test/forgejo", &format!("repoURL: {}", repo.display()), "targetRevision: main"] {
        assert!(apps.contains(needle), "stacks.yaml lacks {needle:?}:\n{apps}");
    }
    let fleet_apps = git(&repo, &["show", "main:non-prod/garm-test/core/runner-fleets.yaml"]);
    assert!(fleet_apps.contains("non-prod/garm-test/runner-fleets/small"), "{fleet_apps}");
    let message = git(&repo, &["log", "-1", "--format=%an <%ae>%n%s", "main"]);
    assert!(message.contains("Platform Bot <platform-bot@t09.de>") && message.contains("non-prod/garm-test: render core, otc, forgejo"), "{message}");

    // Converged: nothing to plan, and applying again makes no commit.
    assert_exit(&run_args(args(&["plan", "--detailed-exitcode"])), 0);
    assert_exit(&run_args(args(&["apply", "--auto-approve"])), 0);
    assert_eq!(git(&repo, &["rev-parse", "main"]), head, "a second apply made a commit");

    // Drift right after the apply is clean: the fleet Applications file
    // (a file.file) inside stack core's rendered directory is the file's,
    // and the tree's files are the tree's, not "not managed by Plinth".
    let drift_args = |cmd: &[&'static str]| -> Vec<String> {
        let mut a: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        a.extend(["--env", "non-prod/garm-test", "--var", &repo_var, "--var", &kube_var].map(String::from));
        a
    };
    let drift = run_args(drift_args(&["drift"]));
    assert_exit(&drift, 0);
    // A stray file in a rendered directory is drift, and is never pushed.
    let stray = project.join("rendered/non-prod/garm-test/otc/stray.yaml");
    std::fs::write(&stray, "kind: Secret\n").unwrap();
    let drift = run_args(drift_args(&["drift"]));
    assert_exit(&drift, 2);
    assert!(stdout(&drift).contains("rendered/non-prod/garm-test/otc/stray.yaml is not managed by Plinth"), "{}", stdout(&drift));
    assert_eq!(stdout(&drift).matches("not managed by Plinth").count(), 1, "{}", stdout(&drift));
    let mut changed = args(&["apply", "--auto-approve"]);
    changed.extend(["--var", r#"chart_versions={ core = { argocd = "9.2.0" } }"#].map(String::from));
    let refused = run_args(changed.clone());
    assert_exit(&refused, 1);
    assert!(stderr(&refused).contains("P6820") && stderr(&refused).contains("otc/stray.yaml"), "{}", stderr(&refused));
    assert_eq!(git(&repo, &["rev-parse", "main"]), head, "a commit with the stray file was pushed");
    std::fs::remove_file(&stray).unwrap();

    // A changed value (a chart version) renders again and, through the
    // rendered set, commits again.
    assert_exit(&run_args(changed), 0);
    assert_ne!(git(&repo, &["rev-parse", "main"]), head, "a changed chart version made no commit");
    let argocd = git(&repo, &["show", "main:non-prod/garm-test/core/argo-cd.yaml"]);
    assert!(argocd.contains("targetRevision: 9.2.0"), "{argocd}");

    if let Some(validator) = kube_validator() {
        let report = crate::catalogue::assert_valid_manifests(&validator, &project.join("rendered/non-prod/garm-test"));
        assert!(report.contains("valid"), "{report}");
    }
}

/// The CI examples run against an environment: every `plinth` command of
/// the workflow and the CronJob that plans, applies, validates or checks
/// drift passes `--env` (they predated environments, and a job without it
/// would plan the `default` environment).
#[test]
fn ci_examples_run_every_command_against_an_environment() {
    let files = ["examples/ci/forgejo/.forgejo/workflows/plinth.yaml", "examples/ci/kubernetes/drift-cronjob.yaml"];
    let mut commands = 0;
    for f in files {
        let text = std::fs::read_to_string(repo_root().join(f)).unwrap();
        for line in text.lines().map(str::trim).filter(|l| !l.starts_with('#') && !l.contains("echo ")) {
            let words: Vec<&str> = line.split(|c: char| c.is_whitespace() || c == '"' || c == ',' || c == '[').filter(|w| !w.is_empty()).collect();
            let at = words.iter().position(|w| *w == "plinth" || *w == "args:");
            let Some(at) = at else { continue };
            if let Some(cmd) = words.get(at + 1).filter(|c| ["plan", "apply", "validate", "drift"].contains(*c)) {
                commands += 1;
                assert!(words.contains(&"--env"), "{f}: `{line}` runs `plinth {cmd}` without --env");
            }
        }
    }
    assert!(commands >= 5, "the examples' commands were not found ({commands})");
}
