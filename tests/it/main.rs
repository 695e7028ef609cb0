//! One integration-test binary, one module per area. Every test drives the
//! real `plinth` binary against real files in a temporary directory.

mod backend_postgres;
mod backend_s3;
mod cli;
mod crash;
mod drift;
mod examples;
mod fixtures;
mod pathological;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn plinth() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_plinth"));
    c.env("NO_COLOR", "1").env_remove("PLINTH_FAULT");
    for (k, _) in std::env::vars() {
        if k.starts_with("PLINTH_VAR_") {
            c.env_remove(k);
        }
    }
    c
}

pub fn run(dir: &Path, args: &[&str]) -> Output {
    plinth().args(args).current_dir(dir).output().expect("run plinth")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A temporary project directory with the given files.
pub fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        let p = dir.path().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(p, text).expect("write");
    }
    dir
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[track_caller]
pub fn assert_exit(o: &Output, code: i32) {
    assert_eq!(o.status.code(), Some(code), "exit code\n--- stdout\n{}\n--- stderr\n{}", stdout(o), stderr(o));
}
