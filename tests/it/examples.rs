//! Every example under `examples/` is validated and planned; the quickstart
//! is applied for real, twice (the second apply changes nothing).

use crate::*;

fn example_dirs() -> Vec<std::path::PathBuf> {
    let mut dirs = Vec::new();
    let mut stack = vec![repo_root().join("examples")];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        let mut has_config = false;
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() && p.file_name().is_some_and(|n| n != ".plinth" && n != "envs") {
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

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        let name = e.file_name();
        if name == ".plinth" || name == "out" {
            continue;
        }
        if p.is_dir() {
            copy_dir(&p, &to.join(&name));
        } else {
            std::fs::copy(&p, to.join(&name)).unwrap();
        }
    }
}

#[test]
fn every_example_validates_and_plans() {
    let dirs = example_dirs();
    assert!(!dirs.is_empty());
    for d in dirs {
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(&d, tmp.path());
        assert_exit(&run(tmp.path(), &["validate"]), 0);
        let plan = run(tmp.path(), &["plan", "--detailed-exitcode"]);
        assert_exit(&plan, 2);
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
