//! One integration-test binary, one module per area. Every test drives the
//! real `plinth` binary against real files in a temporary directory.

mod architecture;
mod backend_postgres;
mod backend_s3;
mod catalogue;
mod cli;
mod command_line;
mod components;
mod crash;
mod data_sources;
mod drift;
mod environments;
mod examples;
mod fixtures;
mod modules;
mod pathological;
mod paths;
mod provider_conformance;
mod provider_exec;
mod provider_git;
mod provider_http;
mod provider_kubernetes;
mod provider_postgres;
mod provider_s3;
mod secrets;
mod state_safety;
mod templates;
mod terraform_install;
mod terraform_parity;
mod terraform_providers;

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

/// A server that scripts/test starts (scripts/services/*.sh) and announces in
/// `var`: its address, or None after a note when it was not started (under
/// CI a missing server is a failure, never a silent skip).
pub fn test_server(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{var} is not set: scripts/test starts {what} (scripts/services/) and sets it; run the suite with scripts/test")
        }
        _ => {
            eprintln!("note: {var} is not set; skipping a test that needs {what} (scripts/test starts it)");
            None
        }
    }
}

/// The TLS side of the test PostgreSQL server (scripts/services/postgres.sh).
pub struct PgTls {
    /// The superuser URL (plain connections allowed), for setup and checks.
    pub admin_url: String,
    /// The same server as the role `plinth_tls_only`, which pg_hba.conf lets
    /// in over TLS only: no query parameters, add `?sslmode=…`.
    pub tls_url: String,
    /// The CA that signed the server's certificate (PEM file).
    pub ca: String,
    /// A second CA that signed nothing the server has.
    pub other_ca: String,
}

/// [`PgTls`] when the server is up (None after a note, a failure under CI);
/// creates the TLS-only superuser role if it is missing.
pub fn pg_tls_server() -> Option<PgTls> {
    let admin_url = test_server("PLINTH_TEST_PG_URL", "PostgreSQL")?;
    let ca = test_server("PLINTH_TEST_PG_CA", "PostgreSQL with TLS")?;
    let other_ca = test_server("PLINTH_TEST_PG_OTHER_CA", "PostgreSQL with TLS")?;
    let tls_url = admin_url.replacen("postgres://postgres@", "postgres://plinth_tls_only@", 1);
    assert_ne!(tls_url, admin_url, "PLINTH_TEST_PG_URL is not postgres://postgres@…");
    let mut admin = postgres::Client::connect(&admin_url, postgres::NoTls).expect("connect to the test server");
    // Tests run in parallel: a concurrent CREATE ROLE fails with one of these.
    admin
        .batch_execute(
            "DO $$ BEGIN CREATE ROLE plinth_tls_only LOGIN SUPERUSER; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
        )
        .expect("create the TLS-only role");
    Some(PgTls { admin_url, tls_url, ca, other_ca })
}

/// Whether the session of `client` is encrypted, as the server sees it.
pub fn pg_session_is_tls(client: &mut postgres::Client) -> bool {
    client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).expect("read pg_stat_ssl").get(0)
}

/// The kubernetes-validate executable scripts/services/kubevalidate.sh
/// installs (PLINTH_KUBE_VALIDATE), or None after a note (a failure under CI).
pub fn kube_validator() -> Option<PathBuf> {
    test_server("PLINTH_KUBE_VALIDATE", "the Kubernetes manifest validator (kubernetes-validate + jsonschema in target/kube-venv)").map(PathBuf::from)
}

/// The Python of the virtualenv a venv executable (e.g. kubernetes-validate)
/// lives in: it has PyYAML and jsonschema for scripts/validate-manifests.py.
pub fn venv_python(venv_executable: &Path) -> PathBuf {
    venv_executable.parent().map(|bin| bin.join("python")).unwrap_or_else(|| PathBuf::from("python3"))
}

/// Copies a directory tree (files and directories; no symlinks expected).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
    for e in std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display())).flatten() {
        let p = e.path();
        let target = to.join(e.file_name());
        if p.is_dir() {
            copy_tree(&p, &target);
        } else {
            std::fs::copy(&p, &target).unwrap_or_else(|e| panic!("copy {} to {}: {e}", p.display(), target.display()));
        }
    }
}

/// Runs a future to completion on a fresh current-thread runtime.
pub fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(f)
}

/// An SDK client for the test S3 server (credentials from the AWS_* variables).
pub fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| "test".into());
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"), None, None, "test"))
        .build();
    aws_sdk_s3::Client::from_conf(config)
}
