//! The `git` provider (`git.commit`) against real git repositories: local
//! bare repositories in temporary directories, checked with plain git.

use crate::provider_conformance::{run as conformance, Case};
use crate::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn has_git() -> bool {
    Command::new("git").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// A bare repository, inspected and changed with plain git.
struct Remote {
    bare: PathBuf,
}

impl Remote {
    fn new(at: &Path) -> Remote {
        let ok = Command::new("git").args(["init", "-q", "--bare", "--initial-branch=main"]).arg(at).status().expect("git init");
        assert!(ok.success());
        Remote { bare: at.to_path_buf() }
    }

    /// `git --git-dir <bare> args…`: (success, trimmed stdout).
    fn git(&self, args: &[&str]) -> (bool, String) {
        let o = Command::new("git").arg("--git-dir").arg(&self.bare).args(args).output().expect("git");
        (o.status.success(), String::from_utf8_lossy(&o.stdout).trim().to_string())
    }

    fn commits(&self, branch: &str) -> usize {
        let (ok, n) = self.git(&["rev-list", "--count", branch]);
        if ok {
            n.parse().unwrap_or(0)
        } else {
            0
        }
    }

    fn head(&self, branch: &str) -> String {
        self.git(&["rev-parse", branch]).1
    }

    /// Files under `path` on the branch (relative to `path`), sorted.
    fn files(&self, branch: &str, path: &str) -> Vec<String> {
        let (ok, out) = self.git(&["ls-tree", "-r", "--name-only", branch]);
        if !ok {
            return vec![];
        }
        let prefix = format!("{path}/");
        out.lines().filter_map(|l| l.strip_prefix(prefix.as_str())).map(String::from).collect()
    }

    fn show(&self, branch: &str, file: &str) -> Option<String> {
        let (ok, out) = self.git(&["show", &format!("{branch}:{file}")]);
        ok.then_some(out)
    }

    /// Commits `files` (path → Some(content), None: delete) on `branch` from
    /// a throwaway clone, as someone other than Plinth would.
    fn commit_by_hand(&self, branch: &str, files: &[(&str, Option<&str>)], message: &str) {
        let work = tempfile::tempdir().unwrap();
        let w = work.path();
        let git = |args: &[&str]| {
            let o = Command::new("git").args(["-c", "user.name=Someone", "-c", "user.email=someone@example", "-C"]).arg(w).args(args).output().unwrap();
            assert!(o.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        };
        git(&["init", "-q"]);
        git(&["fetch", "-q", self.bare.to_str().unwrap(), &format!("{branch}:refs/remotes/r/{branch}")]);
        git(&["checkout", "-q", "-b", branch, &format!("refs/remotes/r/{branch}")]);
        for (f, content) in files {
            let p = w.join(f);
            match content {
                Some(c) => {
                    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                    std::fs::write(&p, c).unwrap();
                }
                None => std::fs::remove_file(&p).unwrap(),
            }
        }
        git(&["add", "-A"]);
        git(&["commit", "-q", "-m", message]);
        git(&["push", "-q", self.bare.to_str().unwrap(), &format!("HEAD:refs/heads/{branch}")]);
    }

    /// Creates the branch with one file outside Plinth's paths.
    fn seed(&self) {
        let work = tempfile::tempdir().unwrap();
        let w = work.path();
        std::fs::write(w.join("README.md"), "instances\n").unwrap();
        let git = |args: &[&str]| {
            let o = Command::new("git").args(["-c", "user.name=Someone", "-c", "user.email=someone@example", "-C"]).arg(w).args(args).output().unwrap();
            assert!(o.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        };
        git(&["init", "-q", "-b", "main"]);
        git(&["add", "-A"]);
        git(&["commit", "-q", "-m", "seed"]);
        git(&["push", "-q", self.bare.to_str().unwrap(), "main:refs/heads/main"]);
    }
}

fn files_config(repository: &str, path: &str, files: &[(&str, &str)]) -> String {
    let body: Vec<String> = files.iter().map(|(k, v)| format!("    \"{k}\" = \"{v}\"")).collect();
    format!("resource git.commit stack {{\n  repository = \"{repository}\"\n  path       = \"{path}\"\n  files = {{\n{}\n  }}\n}}\n", body.join("\n"))
}

fn text_of(o: &std::process::Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

#[test]
fn the_git_provider_passes() {
    if !has_git() {
        eprintln!("skipped: no git");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let remote = Remote::new(&tmp.path().join("instances.git"));
    let bare = remote.bare.clone();
    let exists = move |v: Option<&str>| {
        let r = Remote { bare: bare.clone() };
        let files = r.files("main", "stacks/edp");
        match v {
            None => !files.is_empty(),
            // Exactly the files of that version: the other version's extra file is gone.
            Some(v) => {
                files == vec!["app/values.yaml".to_string(), format!("only-in-{v}.txt")]
                    && r.show("main", "stacks/edp/app/values.yaml").as_deref() == Some(&format!("version: {v}"))
            }
        }
    };
    let bare = remote.bare.clone();
    let tamper = move || Remote { bare: bare.clone() }.commit_by_hand("main", &[("stacks/edp/app/values.yaml", Some("version: tampered"))], "hand edit");
    let config = files_config(&remote.bare.display().to_string(), "stacks/edp", &[("app/values.yaml", "version: {V}"), ("only-in-{V}.txt", "x")]);
    conformance(&Case { name: "git.commit", config: &config, args: vec![], env: vec![], exists: &exists, tamper: &tamper });
    assert!(remote.files("main", "stacks/edp").is_empty(), "destroy removed the path");
    assert!(remote.commits("main") > 0, "the branch itself stays");
}

#[test]
fn one_commit_per_change_and_drift_only_under_the_path() {
    if !has_git() {
        eprintln!("skipped: no git");
        return;
    }
    let p = project(&[]);
    let dir = p.path();
    // A project-relative repository; the branch exists with a file beside ours.
    let remote = Remote::new(&dir.join("instances.git"));
    remote.seed();
    let write = |files: &[(&str, &str)]| std::fs::write(dir.join("main.plinth"), files_config("instances.git", "prod/edp", files)).unwrap();
    write(&[("a.yaml", "a: 1"), ("b.yaml", "b: 1")]);
    assert_exit(&run(dir, &["apply", "--auto-approve"]), 0);
    assert_eq!(remote.commits("main"), 2, "seed + one Plinth commit");
    assert_eq!(remote.files("main", "prod/edp"), vec!["a.yaml", "b.yaml"]);
    assert_eq!(remote.show("main", "README.md").as_deref(), Some("instances"), "files outside the path are untouched");
    assert_eq!(remote.git(&["log", "-1", "--format=%an <%ae>|%s", "main"]).1, "Plinth <plinth@localhost>|plinth: update prod/edp");
    let head = remote.head("main");
    let shown = run(dir, &["state", "show", "git.commit.stack", "--json"]);
    assert!(stdout(&shown).contains(&head), "the commit is recorded: {}", stdout(&shown));
    assert!(stdout(&shown).contains("instances.git#main:prod/edp"), "{}", stdout(&shown));

    // Idempotent, even with --refresh: no second commit.
    let again = run(dir, &["apply", "--auto-approve", "--refresh"]);
    assert_exit(&again, 0);
    assert!(stdout(&again).contains("No changes"), "{}", stdout(&again));
    assert_eq!(remote.commits("main"), 2);

    // A commit elsewhere on the branch is not drift.
    remote.commit_by_hand("main", &[("other/x.yaml", Some("x: 1"))], "someone else");
    let d = run(dir, &["drift"]);
    assert!(stdout(&d).contains("0 drifted"), "{}", stdout(&d));
    // …except that `other` is a top-level directory nobody manages.
    assert_exit(&d, 2);
    assert!(stdout(&d).contains("instances.git#main:other"), "{}", stdout(&d));
    assert!(!stdout(&d).contains("main:prod"), "{}", stdout(&d));
    remote.commit_by_hand("main", &[("other/x.yaml", None)], "cleanup");
    assert_exit(&run(dir, &["drift"]), 0);
    assert_exit(&run(dir, &["plan", "--refresh", "--detailed-exitcode"]), 0);

    // A hand edit under the path is drift; apply --refresh restores it in one commit.
    remote.commit_by_hand("main", &[("prod/edp/a.yaml", Some("a: hacked")), ("prod/edp/extra.yaml", Some("e: 1"))], "hand edit");
    let d = run(dir, &["drift", "--json"]);
    assert_exit(&d, 2);
    assert!(stdout(&d).contains("content_hash"), "{}", stdout(&d));
    let before = remote.commits("main");
    assert_exit(&run(dir, &["apply", "--auto-approve", "--refresh"]), 0);
    assert_eq!(remote.commits("main"), before + 1);
    assert_eq!(remote.files("main", "prod/edp"), vec!["a.yaml", "b.yaml"], "the stray file is removed too");
    assert_eq!(remote.show("main", "prod/edp/a.yaml").as_deref(), Some("a: 1"));
    assert_exit(&run(dir, &["drift"]), 0);

    // An update is one commit; a file no longer in the configuration goes.
    write(&[("a.yaml", "a: 2")]);
    let before = remote.commits("main");
    assert_exit(&run(dir, &["apply", "--auto-approve"]), 0);
    assert_eq!(remote.commits("main"), before + 1);
    assert_eq!(remote.files("main", "prod/edp"), vec!["a.yaml"]);
    assert_exit(&run(dir, &["drift"]), 0);

    // Deleting the path by hand: drift (deleted), and apply --refresh writes it again.
    remote.commit_by_hand("main", &[("prod/edp/a.yaml", None)], "remove by hand");
    assert_exit(&run(dir, &["drift"]), 2);
    assert_exit(&run(dir, &["apply", "--auto-approve", "--refresh"]), 0);
    assert_eq!(remote.files("main", "prod/edp"), vec!["a.yaml"]);

    // Destroy: one commit removing the path; the rest of the branch stays.
    let before = remote.commits("main");
    assert_exit(&run(dir, &["destroy", "--auto-approve"]), 0);
    assert_eq!(remote.commits("main"), before + 1);
    assert!(remote.files("main", "prod/edp").is_empty());
    assert_eq!(remote.show("main", "README.md").as_deref(), Some("instances"));
    assert_eq!(remote.git(&["log", "-1", "--format=%s", "main"]).1, "plinth: remove prod/edp");
}

#[test]
fn two_resources_share_one_branch() {
    if !has_git() {
        eprintln!("skipped: no git");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let remote = Remote::new(&tmp.path().join("r.git"));
    let repo = remote.bare.display().to_string();
    let config = format!(
        "provider git {{\n  author_name  = \"Platform Bot\"\n  author_email = \"bot@example.org\"\n}}\n\n\
         resource git.commit a {{\n  repository = \"{repo}\"\n  branch     = \"instances\"\n  path       = \"a\"\n  files      = {{ \"x.yaml\" = \"a\" }}\n  message    = \"render a\"\n}}\n\n\
         resource git.commit b {{\n  repository = \"{repo}\"\n  branch     = \"instances\"\n  path       = \"b\"\n  files      = {{ \"x.yaml\" = \"b\" }}\n}}\n"
    );
    let p = project(&[("main.plinth", &config)]);
    let o = run(p.path(), &["apply", "--auto-approve"]);
    assert_exit(&o, 0);
    // The missing branch was created without history; both paths landed.
    assert_eq!(remote.commits("instances"), 2);
    assert_eq!(remote.show("instances", "a/x.yaml").as_deref(), Some("a"));
    assert_eq!(remote.show("instances", "b/x.yaml").as_deref(), Some("b"));
    let log = remote.git(&["log", "--format=%an <%ae>|%s", "instances"]).1;
    assert!(log.contains("Platform Bot <bot@example.org>|render a"), "{log}");
    assert!(log.contains("Platform Bot <bot@example.org>|plinth: update b"), "{log}");
    assert!(!remote.git(&["rev-parse", "--verify", "-q", "main"]).0, "no other branch was made");
    let again = run(p.path(), &["apply", "--auto-approve", "--refresh"]);
    assert_exit(&again, 0);
    assert!(stdout(&again).contains("No changes"), "{}", stdout(&again));
    // Both managed: nothing unmanaged, no drift.
    assert_exit(&run(p.path(), &["drift"]), 0);
    // Removing one resource removes only its path.
    let only_b =
        config.split("resource git.commit a").next().unwrap().to_string() + "resource git.commit b" + config.split("resource git.commit b").nth(1).unwrap();
    std::fs::write(p.path().join("main.plinth"), only_b).unwrap();
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    assert!(remote.show("instances", "a/x.yaml").is_none());
    assert_eq!(remote.show("instances", "b/x.yaml").as_deref(), Some("b"));
    assert_exit(&run(p.path(), &["destroy", "--auto-approve"]), 0);
    assert_eq!(remote.git(&["ls-tree", "-r", "--name-only", "instances"]).1, "");
}

#[test]
fn a_source_directory_with_triggers() {
    if !has_git() {
        eprintln!("skipped: no git");
        return;
    }
    let p = project(&[("rendered/app/values.yaml", "replicas: 1\n"), ("rendered/gone.yaml", "x: 1\n")]);
    let dir = p.path();
    let remote = Remote::new(&dir.join("instances.git"));
    let config = |trigger: &str| {
        format!("resource git.commit s {{\n  repository = \"instances.git\"\n  path       = \"edp\"\n  source     = \"rendered\"\n  triggers   = \"{trigger}\"\n}}\n")
    };
    std::fs::write(dir.join("main.plinth"), config("1")).unwrap();
    assert_exit(&run(dir, &["apply", "--auto-approve"]), 0);
    assert_eq!(remote.files("main", "edp"), vec!["app/values.yaml", "gone.yaml"]);
    assert_eq!(remote.commits("main"), 1);
    // The rendered directory changes; a new trigger value makes it an update.
    std::fs::write(dir.join("rendered/app/values.yaml"), "replicas: 2\n").unwrap();
    std::fs::remove_file(dir.join("rendered/gone.yaml")).unwrap();
    std::fs::write(dir.join("main.plinth"), config("2")).unwrap();
    assert_exit(&run(dir, &["apply", "--auto-approve"]), 0);
    assert_eq!(remote.commits("main"), 2);
    assert_eq!(remote.files("main", "edp"), vec!["app/values.yaml"]);
    assert_eq!(remote.show("main", "edp/app/values.yaml").as_deref(), Some("replicas: 2"));
    assert_exit(&run(dir, &["drift"]), 0);
    // A new trigger value with the same content: an update, but no empty commit.
    let head = remote.head("main");
    std::fs::write(dir.join("main.plinth"), config("3")).unwrap();
    let o = run(dir, &["apply", "--auto-approve"]);
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("1 updated"), "{}", stdout(&o));
    assert_eq!(remote.head("main"), head, "no empty commit");
    assert!(stdout(&run(dir, &["state", "show", "git.commit.s", "--json"])).contains(&head), "`commit` is the current head");
    // A hand edit under the path is drift, repaired from the source.
    remote.commit_by_hand("main", &[("edp/app/values.yaml", Some("replicas: 9\n"))], "hand edit");
    assert_exit(&run(dir, &["drift"]), 2);
    assert_exit(&run(dir, &["apply", "--auto-approve", "--refresh"]), 0);
    assert_eq!(remote.show("main", "edp/app/values.yaml").as_deref(), Some("replicas: 2"));
    assert_eq!(remote.commits("main"), 4);
    assert_exit(&run(dir, &["drift"]), 0);
}

/// A `file.tree` renders the directory a `git.commit` pushes, and
/// `source_files` gives the commit the rendered set: a stray file in the
/// directory is drift (unmanaged) and the commit refuses it (P6820), naming
/// it, instead of pushing it into the instances repository.
#[test]
fn a_rendered_source_commits_exactly_the_rendered_set() {
    if !has_git() {
        eprintln!("skipped: no git");
        return;
    }
    let p = project(&[("tpl/app/values.yaml", "replicas: {{ replicas }}\n"), ("tpl/readme.txt", "rendered\n")]);
    let dir = p.path();
    let remote = Remote::new(&dir.join("instances.git"));
    let config = |replicas: u32| {
        format!(
            "resource file.tree site {{\n  source = \"tpl\"\n  target = \"rendered\"\n  vars   = {{ replicas = {replicas} }}\n}}\n\
             resource git.commit s {{\n  repository   = \"instances.git\"\n  path         = \"edp\"\n  source       = file.tree.site.target\n  source_files = file.tree.site.files\n}}\n"
        )
    };
    std::fs::write(dir.join("main.plinth"), config(1)).unwrap();
    assert_exit(&run(dir, &["apply", "--auto-approve"]), 0);
    assert_eq!(remote.files("main", "edp"), vec!["app/values.yaml", "readme.txt"]);
    // Converged: the commit's hash is known at plan time from the rendered set.
    assert_exit(&run(dir, &["plan", "--detailed-exitcode"]), 0);
    assert_exit(&run(dir, &["drift"]), 0);

    std::fs::write(dir.join("rendered/stray.yaml"), "kind: Secret\n").unwrap();
    let drift = run(dir, &["drift", "--json"]);
    assert_exit(&drift, 2);
    assert!(stdout(&drift).contains("rendered/stray.yaml"), "{}", stdout(&drift));
    // Rendering again commits again, but not with the stray file.
    std::fs::write(dir.join("main.plinth"), config(2)).unwrap();
    let refused = run(dir, &["apply", "--auto-approve"]);
    assert_exit(&refused, 1);
    assert!(text_of(&refused).contains("P6820") && text_of(&refused).contains("stray.yaml"), "{}", text_of(&refused));
    assert_eq!(remote.files("main", "edp"), vec!["app/values.yaml", "readme.txt"], "the stray file was pushed");
    assert_eq!(remote.show("main", "edp/app/values.yaml").as_deref(), Some("replicas: 1"));
    std::fs::remove_file(dir.join("rendered/stray.yaml")).unwrap();
    assert_exit(&run(dir, &["apply", "--auto-approve"]), 0);
    assert_eq!(remote.files("main", "edp"), vec!["app/values.yaml", "readme.txt"]);
    assert_eq!(remote.show("main", "edp/app/values.yaml").as_deref(), Some("replicas: 2"));
    assert_exit(&run(dir, &["drift"]), 0);
    assert_exit(&run(dir, &["plan", "--detailed-exitcode"]), 0);
}

#[test]
fn a_push_race_is_redone_on_the_new_head() {
    if !has_git() {
        eprintln!("skipped: no git");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let remote = Remote::new(&tmp.path().join("r.git"));
    remote.seed();
    // Someone pushes while Plinth's fetch is being served: the repository
    // serves the old head, then moves. git runs this hook in place of
    // pack-objects for every fetch (a global setting: GIT_CONFIG_GLOBAL).
    let marker = tmp.path().join("raced");
    let hook = tmp.path().join("race.sh");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nif [ ! -e '{m}' ]; then\n  touch '{m}'\n  export GIT_DIR='{r}' GIT_INDEX_FILE='{t}/race.index'\n  \
             git read-tree main && b=$(echo race | git hash-object -w --stdin) && git update-index --add --cacheinfo 100644,$b,other/race.txt && \
             t=$(git write-tree) && c=$(GIT_AUTHOR_NAME=R GIT_AUTHOR_EMAIL=r@r GIT_COMMITTER_NAME=R GIT_COMMITTER_EMAIL=r@r git commit-tree $t -p main -m race) && \
             git update-ref refs/heads/main $c\n  unset GIT_INDEX_FILE\nfi\nexec \"$@\"\n",
            m = marker.display(),
            r = remote.bare.display(),
            t = tmp.path().display()
        ),
    )
    .unwrap();
    let global = tmp.path().join("gitconfig");
    std::fs::write(&global, format!("[uploadpack]\n\tpackObjectsHook = sh {}\n", hook.display())).unwrap();
    let p = project(&[("main.plinth", &files_config(&remote.bare.display().to_string(), "edp", &[("a.yaml", "a")]))]);
    let o = plinth().args(["apply", "--auto-approve"]).env("GIT_CONFIG_GLOBAL", &global).current_dir(p.path()).output().unwrap();
    assert_exit(&o, 0);
    assert!(marker.exists(), "the race happened");
    // Seed, the racing commit, then Plinth's commit on top of it: nothing lost.
    assert_eq!(remote.git(&["log", "--format=%s", "main"]).1, "plinth: update edp\nrace\nseed");
    assert_eq!(remote.show("main", "other/race.txt").as_deref(), Some("race"));
    assert_eq!(remote.show("main", "edp/a.yaml").as_deref(), Some("a"));
    assert_eq!(remote.show("main", "README.md").as_deref(), Some("instances"));
}

#[test]
fn credentials_in_a_url_never_show() {
    if !has_git() {
        eprintln!("skipped: no git");
        return;
    }
    // Nothing listens on port 9 of loopback: the fetch fails, and says so.
    // The token comes from a sensitive param, as docs/providers/git.md advises.
    let config = format!(
        "param git_token: string {{ sensitive = true }}\n\n{}",
        files_config("http://deploy-bot:${git_token}@127.0.0.1:9/org/instances.git", "edp", &[("a.yaml", "a")])
    );
    let p = project(&[("main.plinth", &config)]);
    for args in [&["plan"][..], &["plan", "--json"], &["apply", "--auto-approve"], &["apply", "--auto-approve", "--json"]] {
        let o = plinth().args(args).env("PLINTH_VAR_git_token", "s3cr3t-t0ken").current_dir(p.path()).output().unwrap();
        let text = text_of(&o);
        assert!(!text.contains("s3cr3t-t0ken"), "{args:?} shows the token:\n{text}");
        if args[0] == "apply" {
            assert_exit(&o, 1);
            assert!(text.contains("P6804"), "{text}");
            assert!(text.contains("***@127.0.0.1:9"), "the redacted URL is named: {text}");
        }
    }
    assert_eq!(stdout(&run(p.path(), &["state", "list"])), "");
    // Written into the configuration itself, the token is in the user's own
    // source (which diagnostics quote); what Plinth adds never shows it.
    let literal = files_config("http://deploy-bot:s3cr3t-t0ken@127.0.0.1:9/org/instances.git", "edp", &[("a.yaml", "a")]);
    let p = project(&[("main.plinth", &literal)]);
    let plan = run(p.path(), &["plan"]);
    assert_exit(&plan, 0);
    assert!(!text_of(&plan).contains("s3cr3t-t0ken"), "the plan marks such a repository sensitive:\n{}", text_of(&plan));
    let o = run(p.path(), &["apply", "--auto-approve", "--json"]);
    assert_exit(&o, 1);
    assert!(text_of(&o).contains("P6804") && !text_of(&o).contains("s3cr3t-t0ken"), "{}", text_of(&o));
}

#[test]
fn invalid_configurations_are_diagnostics() {
    if !has_git() {
        eprintln!("skipped: no git");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let remote = Remote::new(&tmp.path().join("r.git"));
    let repo = remote.bare.display().to_string();
    let cases = [
        (format!("resource git.commit x {{\n  repository = \"{repo}\"\n  source = \"d\"\n  files = {{ a = \"1\" }}\n}}\n"), "P6801", "exactly one"),
        (format!("resource git.commit x {{\n  repository = \"{repo}\"\n}}\n"), "P6801", "exactly one"),
        (format!("resource git.commit x {{\n  repository = \"{repo}\"\n  files = {{}}\n}}\n"), "P6803", "no file"),
        (format!("resource git.commit x {{\n  repository = \"{repo}\"\n  source = \"missing\"\n}}\n"), "P6802", "missing"),
        (format!("resource git.commit x {{\n  repository = \"{repo}\"\n  path = \"../up\"\n  files = {{ a = \"1\" }}\n}}\n"), "P6801", "`path`"),
        (format!("resource git.commit x {{\n  repository = \"{repo}\"\n  branch = \"a..b\"\n  files = {{ a = \"1\" }}\n}}\n"), "P6801", "`branch`"),
        (format!("resource git.commit x {{\n  repository = \"{repo}\"\n  files = {{ \"../a\" = \"1\" }}\n}}\n"), "P6801", "files"),
        (
            format!("provider git {{\n  author_email = \"a<b\"\n}}\n\nresource git.commit x {{\n  repository = \"{repo}\"\n  files = {{ a = \"1\" }}\n}}\n"),
            "P6801",
            "author_email",
        ),
        ("resource git.commit x {\n  repository = \"-oops\"\n  files = { a = \"1\" }\n}\n".to_string(), "P6801", "repository"),
    ];
    for (config, code, word) in cases {
        let p = project(&[("main.plinth", &config)]);
        let o = run(p.path(), &["apply", "--auto-approve"]);
        assert_exit(&o, 1);
        let text = text_of(&o);
        assert!(text.contains(code) && text.contains(word), "{code} / {word:?} for\n{config}\n---\n{text}");
        assert!(text.contains("help"), "{text}");
        assert_eq!(stdout(&run(p.path(), &["state", "list"])), "");
    }
    assert_eq!(remote.commits("main"), 0, "nothing was pushed");
}
