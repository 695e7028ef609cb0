//! Nothing is written, read or deleted outside where the configuration
//! points: planted symbolic links (at temporary names, inside a target,
//! inside a template tree), targets that overlap the project or the source,
//! templates reading files outside the project, symbolic-link loops, and
//! the modes of rendered files.

use crate::*;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Output;

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display())).permissions().mode() & 0o7777
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

/// A file outside every project, to be protected: returns its directory
/// (kept alive by the caller) and path.
fn victim() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("precious.txt");
    std::fs::write(&path, "precious\n").expect("write");
    chmod(&path, 0o644);
    (dir, path)
}

#[track_caller]
fn assert_untouched(path: &Path) {
    assert_eq!(read(path), "precious\n", "{} was overwritten", path.display());
    assert_eq!(mode(path), 0o644, "{} was chmodded", path.display());
}

#[track_caller]
fn assert_refused(o: &Output, code: &str, names: &str) {
    assert_exit(o, 1);
    let err = stderr(o);
    assert!(err.contains(code), "expected {code}:\n{err}");
    assert!(err.contains(names), "expected the diagnostic to name {names}:\n{err}");
}

/// Runs plinth, killing it if it has not finished after two minutes (a
/// guard against the symbolic-link loops these tests plant, not a timing
/// assertion: the runs take milliseconds).
fn run_guarded(dir: &Path, args: &[&str]) -> Output {
    let child = plinth().args(args).current_dir(dir).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().expect("run plinth");
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let guard = std::thread::spawn(move || {
        if rx.recv_timeout(std::time::Duration::from_secs(120)).is_err() {
            // SAFETY-free: kill(2) on our own child's pid.
            unsafe { libc::kill(id as i32, libc::SIGKILL) };
        }
    });
    let out = child.wait_with_output().expect("wait");
    let _ = tx.send(());
    let _ = guard.join();
    assert!(out.status.code().is_some(), "plinth {args:?} did not finish (killed after two minutes)");
    out
}

// ---------------------------------------------------------------- temporaries

#[test]
fn file_file_never_writes_through_a_link_at_a_temporary_name() {
    let (_keep, precious) = victim();
    let p = project(&[("main.plinth", "resource file.file cfg {\n  path    = \"out/cfg.txt\"\n  content = \"new\\n\"\n  mode    = \"0600\"\n}\n")]);
    std::fs::create_dir_all(p.path().join("out")).expect("mkdir");
    // The name the unfixed Plinth wrote through, and a few guesses.
    for name in [".cfg.txt.plinth-tmp", ".cfg.txt.tmp", "cfg.txt.tmp"] {
        symlink(&precious, p.path().join("out").join(name)).expect("symlink");
    }
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    assert_untouched(&precious);
    assert_eq!(read(&p.path().join("out/cfg.txt")), "new\n");
    assert_eq!(mode(&p.path().join("out/cfg.txt")), 0o600);
    // An update goes through a fresh temporary too, and leaves none behind.
    std::fs::write(p.path().join("main.plinth"), "resource file.file cfg {\n  path    = \"out/cfg.txt\"\n  content = \"newer\\n\"\n  mode    = \"0600\"\n}\n")
        .expect("write");
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    assert_untouched(&precious);
    assert_eq!(read(&p.path().join("out/cfg.txt")), "newer\n");
    let mut left: Vec<String> =
        std::fs::read_dir(p.path().join("out")).expect("ls").map(|e| e.expect("entry").file_name().to_string_lossy().into_owned()).collect();
    left.sort();
    assert_eq!(left, [".cfg.txt.plinth-tmp", ".cfg.txt.tmp", "cfg.txt", "cfg.txt.tmp"]);
}

#[test]
fn file_tree_and_render_never_write_through_a_link_at_a_temporary_name() {
    let (_keep, precious) = victim();
    let p = project(&[("main.plinth", "resource file.tree t {\n  source = \"tpl\"\n  target = \"out\"\n}\n"), ("tpl/app.yaml", "app: 1\n")]);
    for dir in ["out", "rendered"] {
        std::fs::create_dir_all(p.path().join(dir)).expect("mkdir");
        symlink(&precious, p.path().join(dir).join(".app.yaml.plinth-tmp")).expect("symlink");
    }
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    assert_untouched(&precious);
    assert_eq!(read(&p.path().join("out/app.yaml")), "app: 1\n");
    assert_exit(&run(p.path(), &["render", "tpl", "rendered"]), 0);
    assert_untouched(&precious);
    assert_eq!(read(&p.path().join("rendered/app.yaml")), "app: 1\n");
}

// ---------------------------------------------------------------- links in targets

const TREE: &str = "resource file.tree t {\n  source = \"tpl\"\n  target = \"out\"\n}\n";

#[test]
fn a_symlinked_directory_inside_a_tree_target_is_refused_by_apply_and_destroy() {
    let outside = tempfile::tempdir().expect("tempdir");
    let p = project(&[("main.plinth", TREE), ("tpl/sub/deploy.yaml", "replicas: 2\n"), ("tpl/top.yaml", "top\n")]);
    std::fs::create_dir_all(p.path().join("out")).expect("mkdir");
    symlink(outside.path(), p.path().join("out/sub")).expect("symlink");
    let o = run(p.path(), &["apply", "--auto-approve"]);
    assert_refused(&o, "P6215", "out/sub");
    assert!(!outside.path().join("deploy.yaml").exists(), "apply wrote through the link");

    // Applied normally, then the directory is swapped for a link to a
    // directory holding a file of the same name: destroy must not delete it.
    std::fs::remove_file(p.path().join("out/sub")).expect("rm link");
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    assert_eq!(read(&p.path().join("out/sub/deploy.yaml")), "replicas: 2\n");
    std::fs::remove_dir_all(p.path().join("out/sub")).expect("rm dir");
    std::fs::write(outside.path().join("deploy.yaml"), "precious\n").expect("write");
    symlink(outside.path(), p.path().join("out/sub")).expect("symlink");
    let o = run(p.path(), &["destroy", "--auto-approve"]);
    assert_refused(&o, "P6215", "out/sub");
    assert_eq!(read(&outside.path().join("deploy.yaml")), "precious\n", "destroy deleted through the link");
    // Drift refuses to read through it as well.
    let o = run(p.path(), &["drift"]);
    assert_refused(&o, "P6215", "out/sub");
}

#[test]
fn a_symlinked_directory_inside_a_render_destination_is_refused() {
    let outside = tempfile::tempdir().expect("tempdir");
    let p = project(&[("tpl/sub/deploy.yaml", "replicas: 2\n")]);
    std::fs::create_dir_all(p.path().join("out")).expect("mkdir");
    symlink(outside.path(), p.path().join("out/sub")).expect("symlink");
    let o = run(p.path(), &["render", "tpl", "out"]);
    assert_refused(&o, "P6215", "out/sub");
    assert!(!outside.path().join("deploy.yaml").exists(), "render wrote through the link");
}

// ---------------------------------------------------------------- links in sources

#[test]
fn a_source_link_leaving_the_source_is_refused_unless_allowed() {
    let (_keep, precious) = victim();
    let p = project(&[("main.plinth", TREE), ("tpl/app.yaml", "app: 1\n")]);
    symlink(&precious, p.path().join("tpl/leak.yaml")).expect("symlink");
    // A link that stays inside the source is fine.
    symlink("app.yaml", p.path().join("tpl/alias.yaml")).expect("symlink");
    let o = run(p.path(), &["plan"]);
    assert_refused(&o, "P6216", "tpl/leak.yaml");
    assert!(!stdout(&o).contains("precious"));
    let o = run(p.path(), &["render", "tpl", "rendered"]);
    assert_refused(&o, "P6216", "tpl/leak.yaml");
    assert!(!p.path().join("rendered/leak.yaml").exists());

    std::fs::remove_file(p.path().join("tpl/leak.yaml")).expect("rm");
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    assert_eq!(read(&p.path().join("out/alias.yaml")), "app: 1\n");

    // Explicitly allowed, the outside file is rendered.
    symlink(&precious, p.path().join("tpl/leak.yaml")).expect("symlink");
    std::fs::write(
        p.path().join("main.plinth"),
        "resource file.tree t {\n  source          = \"tpl\"\n  target          = \"out\"\n  follow_symlinks = true\n}\n",
    )
    .expect("write");
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    assert_eq!(read(&p.path().join("out/leak.yaml")), "precious\n");
}

// ---------------------------------------------------------------- overlapping targets

#[test]
fn a_target_holding_the_project_or_inside_the_source_is_refused_at_validate() {
    for target in [".", "./", "tpl/..", "tpl", "tpl/out", "tpl/../tpl/out"] {
        let main = format!("resource file.tree t {{\n  source = \"tpl\"\n  target = \"{target}\"\n}}\n");
        let p = project(&[("main.plinth", main.as_str()), ("tpl/main.plinth", "# a template that would replace main.plinth\n")]);
        for cmd in [&["validate"][..], &["apply", "--auto-approve"][..]] {
            let o = run(p.path(), cmd);
            assert_refused(&o, "P2101", &format!("target = \"{target}\""));
        }
        assert_eq!(read(&p.path().join("main.plinth")), main, "target {target:?} replaced main.plinth");
        assert!(!p.path().join("tpl/out").exists(), "target {target:?} was written");
    }
    // The project directory above the target is fine.
    let p = project(&[("main.plinth", TREE), ("tpl/a.txt", "a\n")]);
    assert_exit(&run(p.path(), &["validate"]), 0);
}

#[test]
fn render_refuses_a_destination_overlapping_the_source_or_a_project() {
    let p = project(&[("main.plinth", "# a project\n"), ("tpl/a.txt", "a\n")]);
    for dst in ["tpl", "tpl/out", "tpl/../tpl/out", ".", "./"] {
        let o = run(p.path(), &["render", "tpl", dst]);
        assert_refused(&o, "P2101", dst.trim_end_matches('/'));
    }
    assert!(!p.path().join("tpl/out").exists());
    assert!(!p.path().join("a.txt").exists());
    // Outside a project, rendering into the current directory is allowed.
    let q = project(&[("tpl/a.txt", "a\n")]);
    let sub = q.path().join("work");
    std::fs::create_dir_all(&sub).expect("mkdir");
    assert_exit(&run(&sub, &["render", "../tpl", "."]), 0);
    assert_eq!(read(&sub.join("a.txt")), "a\n");
}

// ---------------------------------------------------------------- what templates read

const SECRET: &str = "s3cr3t-only-in-the-environment";

fn run_with_secret(dir: &Path, args: &[&str]) -> Output {
    plinth().args(args).current_dir(dir).env("AWS_SECRET_ACCESS_KEY", SECRET).env("PLINTH_TEST_SECRET", SECRET).output().expect("run plinth")
}

#[track_caller]
fn assert_no_secret(o: &Output) {
    assert!(!stdout(o).contains(SECRET) && !stderr(o).contains(SECRET), "the secret leaked:\n{}\n{}", stdout(o), stderr(o));
}

#[test]
fn templates_cannot_read_outside_the_project() {
    let (_keep, precious) = victim();
    let outside = precious.display().to_string();
    let cases: Vec<(&str, String)> = vec![
        ("environ", "{{ file(\"/proc/self/environ\") }}".to_string()),
        ("absolute", format!("{{{{ file(\"{outside}\") }}}}")),
        ("dotdot", "{{ file(\"../../../../../../../../proc/self/environ\") }}".to_string()),
        ("template", "{{ template(\"/proc/self/environ\", {}) }}".to_string()),
        ("fileset", "{{ fileset(\"/proc/self\", \"environ\") }}".to_string()),
        ("link", "{{ file(\"../link.txt\") }}".to_string()),
    ];
    for (what, text) in cases {
        let p = project(&[("main.plinth", TREE), ("tpl/a.txt", text.as_str())]);
        // Inside the project, but a link to a file outside it.
        symlink(&precious, p.path().join("link.txt")).expect("symlink");
        let o = run_with_secret(p.path(), &["plan"]);
        assert_refused(&o, "P2100", "");
        assert_no_secret(&o);
        assert!(!stderr(&o).contains("precious") && !stdout(&o).contains("precious"), "{what}: {}", stderr(&o));
        let o = run_with_secret(p.path(), &["render", "tpl", "rendered"]);
        assert_refused(&o, "P2100", "");
        assert_no_secret(&o);
        assert!(!p.path().join("rendered/a.txt").exists(), "{what}");
    }
}

#[test]
fn configuration_file_functions_cannot_read_outside_the_project() {
    let (_keep, precious) = victim();
    for expr in [
        "file(\"/proc/self/environ\")".to_string(),
        "file(\"../x/../../proc/self/environ\")".to_string(),
        format!("file(\"{}\")", precious.display()),
        "file(\"link.txt\")".to_string(),
        "template(\"/proc/self/environ\", {})".to_string(),
        "join(\",\", fileset(\"/proc/self\", \"env*\"))".to_string(),
        "join(\",\", fileset(\"..\", \"**\"))".to_string(),
    ] {
        let main = format!("resource file.file f {{\n  path    = \"out.txt\"\n  content = {expr}\n}}\n");
        let p = project(&[("main.plinth", main.as_str())]);
        symlink(&precious, p.path().join("link.txt")).expect("symlink");
        let o = run_with_secret(p.path(), &["plan"]);
        assert_refused(&o, "P2100", "");
        assert_no_secret(&o);
        assert!(!stdout(&o).contains("precious"), "{expr}: {}", stdout(&o));
    }
    // Inside the project, reading works.
    let p = project(&[("main.plinth", "resource file.file f {\n  path    = \"out.txt\"\n  content = file(\"conf/in.txt\")\n}\n"), ("conf/in.txt", "inside\n")]);
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    assert_eq!(read(&p.path().join("out.txt")), "inside\n");
}

#[test]
fn a_template_sees_the_process_environment_only_when_passed() {
    // template() from the configuration: env("X") reads the map passed as
    // the third argument, never the process environment.
    let p = project(&[
        ("main.plinth", "resource file.file f {\n  path    = \"out.txt\"\n  content = template(\"t.tpl\", {})\n}\n"),
        ("t.tpl", "{{ env(\"PLINTH_TEST_SECRET\") }}"),
    ]);
    let o = run_with_secret(p.path(), &["plan"]);
    assert_exit(&o, 1);
    assert_no_secret(&o);
    std::fs::write(
        p.path().join("main.plinth"),
        "resource file.file f {\n  path    = \"out.txt\"\n  content = template(\"t.tpl\", {}, { PLINTH_TEST_SECRET = \"given\" })\n}\n",
    )
    .expect("write");
    let o = run_with_secret(p.path(), &["apply", "--auto-approve"]);
    assert_exit(&o, 0);
    assert_eq!(read(&p.path().join("out.txt")), "given");

    // plinth render: only with --process-env.
    let q = project(&[("tpl/a.txt", "{{ .Env.PLINTH_TEST_SECRET }}")]);
    let o = run_with_secret(q.path(), &["render", "tpl", "out"]);
    assert_exit(&o, 1);
    assert_no_secret(&o);
    assert!(!q.path().join("out/a.txt").exists());
    assert_exit(&run_with_secret(q.path(), &["render", "tpl", "out", "--process-env"]), 0);
    assert_eq!(read(&q.path().join("out/a.txt")), SECRET);
}

// ---------------------------------------------------------------- loops

#[test]
fn fileset_over_symlink_loops_completes() {
    let p = project(&[
        ("main.plinth", "output files = fileset(\"cfg\", \"**/*.yaml\")\nresource core.data d {\n  input = fileset(\"cfg\", \"**/*.yaml\")\n}\n"),
        ("cfg/a.yaml", "a\n"),
        ("cfg/sub/b.yaml", "b\n"),
    ]);
    symlink(".", p.path().join("cfg/self")).expect("symlink");
    symlink("..", p.path().join("cfg/sub/up")).expect("symlink");
    let o = run_guarded(p.path(), &["apply", "--auto-approve"]);
    assert_exit(&o, 0);
    let o = run_guarded(p.path(), &["output", "--json"]);
    assert_exit(&o, 0);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("JSON");
    assert_eq!(v["files"]["value"], serde_json::json!(["a.yaml", "sub/b.yaml"]), "{v}");
}

#[test]
fn plinth_envs_over_two_symlink_loops_completes() {
    let p =
        project(&[("main.plinth", "param name: string = \"x\"\n"), ("envs/prod.plinth", "name = \"prod\"\n"), ("envs/team/dev.plinth", "name = \"dev\"\n")]);
    symlink(".", p.path().join("envs/a")).expect("symlink");
    symlink("..", p.path().join("envs/team/b")).expect("symlink");
    symlink(".", p.path().join("envs/team/c")).expect("symlink");
    let o = run_guarded(p.path(), &["envs"]);
    let out = stdout(&o);
    assert!(out.contains("prod") && out.contains("team/dev"), "{out}\n{}", stderr(&o));
}

// ---------------------------------------------------------------- modes

#[test]
fn rendered_files_keep_the_template_mode_and_a_chmod_is_drift() {
    let p = project(&[("main.plinth", TREE), ("tpl/run.sh", "#!/bin/sh\necho hi\n"), ("tpl/app.yaml", "app: 1\n"), ("tpl/private.key", "k\n")]);
    chmod(&p.path().join("tpl/run.sh"), 0o755);
    chmod(&p.path().join("tpl/app.yaml"), 0o644);
    chmod(&p.path().join("tpl/private.key"), 0o600);
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    let out = p.path().join("out");
    assert_eq!(mode(&out.join("run.sh")), 0o755);
    assert_eq!(mode(&out.join("app.yaml")), 0o644);
    assert_eq!(mode(&out.join("private.key")), 0o600);
    assert_exit(&run(p.path(), &["plan", "--detailed-exitcode"]), 0);

    // A chmod by hand is drift, and apply --refresh repairs it.
    chmod(&out.join("run.sh"), 0o644);
    let o = run(p.path(), &["drift"]);
    assert_exit(&o, 2);
    assert!(stdout(&o).contains("run.sh"), "{}", stdout(&o));
    assert_exit(&run(p.path(), &["apply", "--auto-approve", "--refresh"]), 0);
    assert_eq!(mode(&out.join("run.sh")), 0o755);
    assert_exit(&run(p.path(), &["drift"]), 0);

    // A template made executable is a change the plan shows.
    chmod(&p.path().join("tpl/app.yaml"), 0o755);
    let o = run(p.path(), &["plan", "--detailed-exitcode"]);
    assert_exit(&o, 2);
    assert!(stdout(&o).contains("app.yaml"), "{}", stdout(&o));
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    assert_eq!(mode(&out.join("app.yaml")), 0o755);

    // plinth render keeps modes too.
    assert_exit(&run(p.path(), &["render", "tpl", "rendered"]), 0);
    assert_eq!(mode(&p.path().join("rendered/run.sh")), 0o755);
    assert_eq!(mode(&p.path().join("rendered/private.key")), 0o600);
}
