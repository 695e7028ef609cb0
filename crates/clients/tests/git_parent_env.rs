//! A repository named in Plinth's own environment (`GIT_DIR` and friends,
//! e.g. Plinth started from a git hook) does not redirect the runner. Its
//! own test binary: it changes the process environment, which no other test
//! may see.

use plinth_clients::git::Git;
use std::path::{Path, PathBuf};
use std::process::Command;

fn has_git() -> bool {
    Command::new("git").arg("--version").output().is_ok_and(|o| o.status.success())
}

fn bare(path: &Path) -> PathBuf {
    let out = Command::new("git").args(["init", "-q", "--bare"]).arg(path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::canonicalize(path).unwrap()
}

#[test]
fn a_repository_in_plinths_environment_does_not_redirect_git() {
    if !has_git() {
        eprintln!("skipped: no git");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let ours = bare(&tmp.path().join("ours.git"));
    let theirs = bare(&tmp.path().join("theirs.git"));
    let their_index = tmp.path().join("theirs.index");
    // Before any git of this test runs with them (this binary has no other test).
    std::env::set_var("GIT_DIR", &theirs);
    std::env::set_var("GIT_WORK_TREE", tmp.path());
    std::env::set_var("GIT_INDEX_FILE", &their_index);
    std::env::set_var("GIT_OBJECT_DIRECTORY", theirs.join("objects"));
    std::env::set_var("GIT_ALTERNATE_OBJECT_DIRECTORIES", theirs.join("objects"));

    let out = Git::new().git_dir(&ours).run(["rev-parse", "--absolute-git-dir", "--is-bare-repository"]).unwrap();
    assert_eq!(out.text(), format!("{}\ntrue", ours.display()), "{}", out.stderr);
    let blob = Git::new().git_dir(&ours).input(Some(b"ours\n".to_vec())).run(["hash-object", "-w", "--stdin"]).unwrap().text();
    assert!(Git::new().git_dir(&ours).run(["cat-file", "-e", &blob]).unwrap().ok());
    assert!(!Git::new().git_dir(&theirs).run(["cat-file", "-e", &blob]).unwrap().ok(), "the object went to the other repository");
    let index = tmp.path().join("ours.index");
    let info = format!("100644 {blob}\tf\n");
    let out = Git::new().git_dir(&ours).index(&index).input(Some(info.into_bytes())).run(["update-index", "--index-info"]).unwrap();
    assert!(out.ok(), "{}", out.stderr);
    assert!(index.is_file() && !their_index.exists());
}
