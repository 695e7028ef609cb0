//! The one way Plinth runs the `git` program: module sources (`plinth
//! init`, fetching pinned module trees) and the git provider both go
//! through [`Git`].
//!
//! ```text
//! Git::new()
//!     .git_dir(&bare)          // --git-dir=<path>: the repository, and no other
//!     .work_tree(&checkout)    // --work-tree=<path>, where a checkout happens
//!     .index(&index)           // GIT_INDEX_FILE
//!     .auth(auth.as_ref())     // credentials taken out of the URL by GitAuth::split
//!     .env("GIT_AUTHOR_NAME", "Plinth")
//!     .input(bytes)            // stdin, written from another thread
//!     .run(["fetch", "--quiet", "--", url, commit])  // -> Result<Output, RunError>
//! ```
//!
//! Invariants, whatever the caller adds:
//! - Environment: the allow-list of [`crate::child`] (`Kind::Git`), then the
//!   caller's [`Git::env`], then the fixed settings below, which the caller
//!   cannot override. Plinth's own secrets never reach git.
//! - No prompt: `GIT_TERMINAL_PROMPT=0`, `GCM_INTERACTIVE=never`, stdin is
//!   `/dev/null` unless [`Git::input`] gives bytes. A git that needs a
//!   password it was not given fails instead of waiting for a terminal.
//! - C locale (`LC_ALL=C`, `LANGUAGE=C`): git's messages are the English
//!   ones the callers match (`[rejected]`, "timed out", …).
//! - The repository is only what [`Git::git_dir`], [`Git::work_tree`] and
//!   [`Git::index`] say: every variable that points git at another
//!   repository, index or object store ([`REPO_ENV`]) is removed, whether it
//!   came from Plinth's environment or from [`Git::env`]. (Without
//!   `git_dir`, git finds a repository around the current directory as any
//!   git does; the callers give one whenever a repository matters.)
//! - Transports: `GIT_ALLOW_PROTOCOL=https:http:ssh:git:file`, the schemes
//!   module sources accept; local paths are `file`, `host:path` is `ssh`.
//!   `ext::` (runs a command) and everything else are refused, even when a
//!   URL rewrite (`url.<x>.insteadOf`) produces them.
//! - `-c core.autocrlf=false -c core.symlinks=true` on every run, not only
//!   where a checkout happens: they change only how git converts between a
//!   work tree and objects, so they are inert for every other command, and
//!   always giving them means no call can forget them. The bytes Plinth
//!   hashes and pushes are then the repository's, whatever the user's
//!   configuration says (`autocrlf=true` would rewrite line endings;
//!   `symlinks=false` would turn a link into a plain file that slips past
//!   the module sources' refusal of links).
//! - Credentials ([`GitAuth`]) never go on the command line (every local
//!   user sees it through `ps`): the URL is given without them, and they
//!   reach this one git through its environment and a credential helper that
//!   reads it, ahead of any helper the user configured.
//! - Output: stdout and stderr are read to the end on their own threads, so
//!   git never blocks on a full pipe. Stdout is kept whole up to
//!   [`Git::max_stdout`] (default [`MAX_STDOUT`]); more is an error
//!   ([`RunError::TooMuchOutput`]), never a silently shortened answer.
//!   Stderr keeps its first and last [`STDERR_KEPT`] bytes and says how many
//!   it left out between them.
//! - A missing `git` is [`RunError::NotFound`], whose message says so.
//!   [`RunError`]'s messages hold no argument, so no URL; git's own stderr
//!   may name the URL it was given (never with the credentials that
//!   [`GitAuth::split`] took out), and callers still redact it.

use crate::child::{self, Kind};
use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

/// The variables that would point git at another repository, index or
/// object store than the one a [`Git`] names.
pub const REPO_ENV: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    "GIT_SHALLOW_FILE",
    "GIT_GRAFT_FILE",
    "GIT_REPLACE_REF_BASE",
    "GIT_QUARANTINE_PATH",
    "GIT_CEILING_DIRECTORIES",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM",
];

/// The transports git may use (module sources accept exactly these schemes).
pub const ALLOWED_PROTOCOLS: &str = "https:http:ssh:git:file";

/// Set on every run, after the caller's environment.
const FIXED_ENV: &[(&str, &str)] =
    &[("GIT_TERMINAL_PROMPT", "0"), ("GCM_INTERACTIVE", "never"), ("LC_ALL", "C"), ("LANGUAGE", "C"), ("GIT_ALLOW_PROTOCOL", ALLOWED_PROTOCOLS)];

/// Configuration on every command line (see the module header).
const FIXED_CONFIG: &[&str] = &["-c", "core.autocrlf=false", "-c", "core.symlinks=true"];

/// Default bound on the stdout kept: 256 MiB.
pub const MAX_STDOUT: usize = 256 << 20;
/// Stderr keeps this many bytes from its start, and as many from its end.
pub const STDERR_KEPT: usize = 32 << 10;

/// Credentials taken out of a git URL, for one git process.
#[derive(Clone, PartialEq, Eq)]
pub struct GitAuth {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for GitAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GitAuth([redacted])")
    }
}

/// The credential helper git runs (through `sh`, as git runs every `!`
/// helper): it answers `get` with what the environment of that git holds.
const HELPER: &str =
    "credential.helper=!f() { test \"$1\" = get || exit 0; printf 'username=%s\\npassword=%s\\n' \"$PLINTH_GIT_USERNAME\" \"$PLINTH_GIT_PASSWORD\"; }; f";
const USERNAME_VAR: &str = "PLINTH_GIT_USERNAME";
const PASSWORD_VAR: &str = "PLINTH_GIT_PASSWORD";

impl GitAuth {
    /// Splits the user information out of an `http(s)://` URL: the URL git
    /// is given, and the credentials (percent-decoded, as git decodes them).
    /// Other URLs are returned as they are (an `ssh://git@host` user name is
    /// no secret; SSH authenticates with keys).
    pub fn split(url: &str) -> (String, Option<GitAuth>) {
        let Some((scheme, rest)) = url.split_once("://") else { return (url.to_string(), None) };
        if !(scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http")) {
            return (url.to_string(), None);
        }
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let Some(at) = rest[..authority_end].rfind('@') else { return (url.to_string(), None) };
        let userinfo = &rest[..at];
        let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        // `+` is itself in user information, not a space.
        let decode = |s: &str| crate::redact::percent_decode(&s.replace('+', "%2B")).unwrap_or_else(|| s.to_string());
        (format!("{scheme}://{}", &rest[at + 1..]), Some(GitAuth { username: decode(user), password: decode(password) }))
    }

    /// Options for git's command line (before the subcommand): only the
    /// helper above answers for credentials. They hold no secret.
    fn config_args() -> [&'static str; 4] {
        ["-c", "credential.helper=", "-c", HELPER]
    }

    /// The variables the helper reads, for that git's environment only.
    fn env(&self) -> [(String, String); 2] {
        [(USERNAME_VAR.into(), self.username.clone()), (PASSWORD_VAR.into(), self.password.clone())]
    }
}

/// How a run of git failed before git could answer.
#[derive(Debug)]
pub enum RunError {
    /// There is no `git` on `PATH`.
    NotFound,
    /// git could not be started.
    Start(std::io::Error),
    /// Reading git's output or waiting for it failed.
    Wait(std::io::Error),
    /// git printed more than `limit` bytes on stdout; the answer is not used.
    TooMuchOutput { limit: usize },
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::NotFound => f.write_str("the `git` program is not installed or not on PATH"),
            RunError::Start(e) => write!(f, "cannot run git: {e}"),
            RunError::Wait(e) => write!(f, "waiting for git failed: {e}"),
            RunError::TooMuchOutput { limit } => write!(f, "git printed more than {limit} bytes, more than Plinth reads from one git command"),
        }
    }
}

impl std::error::Error for RunError {}

/// What a git that ran answered (successfully or not).
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    /// Everything git printed on stdout.
    pub stdout: Vec<u8>,
    /// git's stderr (lossily UTF-8), bounded as the module header says.
    pub stderr: String,
}

impl Output {
    /// git exited with status 0.
    pub fn ok(&self) -> bool {
        self.status.success()
    }

    /// The exit code (None when a signal ended git).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Stdout as text, trimmed.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).trim().to_string()
    }
}

/// One git command to run: a builder (see the module header).
#[derive(Debug, Default)]
pub struct Git {
    git_dir: Option<PathBuf>,
    work_tree: Option<PathBuf>,
    index: Option<PathBuf>,
    auth: Option<GitAuth>,
    env: Vec<(String, String)>,
    input: Option<Vec<u8>>,
    max_stdout: Option<usize>,
}

impl Git {
    pub fn new() -> Git {
        Git::default()
    }

    /// The repository (`--git-dir`).
    pub fn git_dir(mut self, dir: impl AsRef<Path>) -> Git {
        self.git_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// The work tree (`--work-tree`), for commands that check out.
    pub fn work_tree(mut self, dir: impl AsRef<Path>) -> Git {
        self.work_tree = Some(dir.as_ref().to_path_buf());
        self
    }

    /// The index file (`GIT_INDEX_FILE`).
    pub fn index(mut self, file: impl AsRef<Path>) -> Git {
        self.index = Some(file.as_ref().to_path_buf());
        self
    }

    /// Credentials for the remote (from [`GitAuth::split`]), if any.
    pub fn auth(mut self, auth: Option<&GitAuth>) -> Git {
        self.auth = auth.cloned();
        self
    }

    /// One more environment variable (allow-listed ones may be replaced;
    /// the fixed settings and [`REPO_ENV`] may not).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Git {
        self.env.push((key.into(), value.into()));
        self
    }

    /// More environment variables, as [`Git::env`].
    pub fn envs<K: Into<String>, V: Into<String>>(mut self, vars: impl IntoIterator<Item = (K, V)>) -> Git {
        self.env.extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Bytes for git's stdin (written from another thread; stdin is
    /// `/dev/null` without them).
    pub fn input(mut self, bytes: Option<Vec<u8>>) -> Git {
        self.input = bytes;
        self
    }

    /// The most stdout kept ([`MAX_STDOUT`] unless set).
    pub fn max_stdout(mut self, bytes: usize) -> Git {
        self.max_stdout = Some(bytes);
        self
    }

    /// The command line after `git`: the fixed options, then `args`.
    fn argv<S: AsRef<OsStr>>(&self, args: impl IntoIterator<Item = S>) -> Vec<OsString> {
        let mut argv: Vec<OsString> = Vec::new();
        if self.auth.is_some() {
            argv.extend(GitAuth::config_args().iter().map(OsString::from));
        }
        argv.extend(FIXED_CONFIG.iter().map(OsString::from));
        let with = |flag: &str, path: &Path| {
            let mut s = OsString::from(flag);
            s.push(path);
            s
        };
        argv.extend(self.git_dir.as_deref().map(|d| with("--git-dir=", d)));
        argv.extend(self.work_tree.as_deref().map(|d| with("--work-tree=", d)));
        argv.extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        argv
    }

    /// The environment beyond the allow-list: the caller's (without the
    /// repository variables), the credentials, the fixed settings.
    fn extra_env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self.env.iter().filter(|(k, _)| !REPO_ENV.contains(&k.as_str())).cloned().collect();
        if let Some(auth) = &self.auth {
            env.extend(auth.env());
        } else {
            env.retain(|(k, _)| k != USERNAME_VAR && k != PASSWORD_VAR);
        }
        env.extend(FIXED_ENV.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    }

    /// Runs `git <fixed options> <args>` (argv, never a shell) and waits
    /// for it. A git that ran and failed is an `Ok` whose
    /// [`Output::ok`] is false; `Err` is only for a git that could not run.
    pub fn run<S: AsRef<OsStr>>(self, args: impl IntoIterator<Item = S>) -> Result<Output, RunError> {
        let mut cmd = child::command("git", Kind::Git, &self.extra_env());
        for k in REPO_ENV {
            cmd.env_remove(k);
        }
        if let Some(index) = &self.index {
            cmd.env("GIT_INDEX_FILE", index);
        }
        cmd.args(self.argv(args));
        cmd.stdin(if self.input.is_some() { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut proc = cmd.spawn().map_err(|e| if e.kind() == std::io::ErrorKind::NotFound { RunError::NotFound } else { RunError::Start(e) })?;
        let limit = self.max_stdout.unwrap_or(MAX_STDOUT);
        let (stdin, stdout, stderr) = (proc.stdin.take(), proc.stdout.take(), proc.stderr.take());
        let input = self.input;
        let read = std::thread::scope(|s| {
            if let (Some(bytes), Some(mut pipe)) = (input, stdin) {
                // A git that exits early closes the pipe: its status tells why.
                s.spawn(move || {
                    let _ = pipe.write_all(&bytes);
                });
            }
            let err = s.spawn(move || stderr.map(read_ends).unwrap_or_else(|| Ok(String::new())));
            let out = stdout.map(|p| read_bounded(p, limit)).unwrap_or_else(|| Ok((Vec::new(), false)));
            if out.is_err() {
                // Nobody reads stdout any more: a git blocked writing it
                // would keep the stderr reader waiting.
                let _ = proc.kill();
            }
            let err = err.join().unwrap_or_else(|_| Err(std::io::Error::other("the thread reading git's stderr panicked")));
            Ok::<_, std::io::Error>((out?, err?))
        });
        let status = proc.wait().map_err(RunError::Wait)?;
        let ((stdout, over), stderr) = read.map_err(RunError::Wait)?;
        if over {
            return Err(RunError::TooMuchOutput { limit });
        }
        Ok(Output { status, stdout, stderr })
    }
}

/// Reads to the end; keeps at most `limit` bytes and says whether there was more.
fn read_bounded(mut from: impl Read, limit: usize) -> std::io::Result<(Vec<u8>, bool)> {
    let mut kept = Vec::new();
    let mut over = false;
    let mut buf = [0u8; 64 << 10];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok((kept, over)),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let room = limit.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
        over |= n > room;
    }
}

/// Reads to the end; keeps the first and the last [`STDERR_KEPT`] bytes,
/// and in between says how many were left out.
fn read_ends(mut from: impl Read) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut tail: VecDeque<u8> = VecDeque::new();
    let mut dropped: u64 = 0;
    let mut buf = [0u8; 16 << 10];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let mut chunk = &buf[..n];
        let room = STDERR_KEPT.saturating_sub(head.len());
        head.extend_from_slice(&chunk[..chunk.len().min(room)]);
        chunk = &chunk[chunk.len().min(room)..];
        tail.extend(chunk);
        if tail.len() > STDERR_KEPT {
            let excess = tail.len() - STDERR_KEPT;
            tail.drain(..excess);
            dropped += excess as u64;
        }
    }
    let mut text = String::from_utf8_lossy(&head).into_owned();
    if dropped > 0 {
        text.push_str(&format!("\n[… {dropped} bytes of git's messages left out …]\n"));
    }
    text.push_str(&String::from_utf8_lossy(tail.make_contiguous()));
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_credentials_leave_the_url() {
        let (url, auth) = GitAuth::split("https://x-access-token:s3cr%2Bt+1@github.com/org/repo.git");
        assert_eq!(url, "https://github.com/org/repo.git");
        assert_eq!(auth, Some(GitAuth { username: "x-access-token".into(), password: "s3cr+t+1".into() }));
        let (url, auth) = GitAuth::split("https://tok3n@host/r.git");
        assert_eq!((url.as_str(), auth.map(|a| a.username)), ("https://host/r.git", Some("tok3n".into())));
        assert_eq!(GitAuth::split("https://host/a@b").1, None);
        assert_eq!(GitAuth::split("ssh://git@host/r.git"), ("ssh://git@host/r.git".into(), None));
        assert_eq!(GitAuth::split("/local/path").1, None);
        assert!(!GitAuth::config_args().concat().contains("s3cr"));
    }

    #[test]
    fn output_is_bounded_and_says_what_it_left_out() {
        let (kept, over) = read_bounded(&b"0123456789"[..], 10).unwrap();
        assert_eq!((kept.as_slice(), over), (&b"0123456789"[..], false));
        let (kept, over) = read_bounded(&b"0123456789x"[..], 10).unwrap();
        assert_eq!((kept.len(), over), (10, true));
        assert_eq!(read_ends(&b"fatal: short\n"[..]).unwrap(), "fatal: short\n");
        let mut long = vec![b'a'; STDERR_KEPT];
        long.extend(vec![b'x'; 1000]);
        long.extend(vec![b'c'; STDERR_KEPT]);
        let text = read_ends(long.as_slice()).unwrap();
        assert!(text.starts_with(&"a".repeat(STDERR_KEPT)), "the start is kept");
        assert!(text.ends_with(&"c".repeat(STDERR_KEPT)), "the end is kept");
        assert!(text.contains("[… 1000 bytes of git's messages left out …]"), "the gap is told");
        assert!(!text.contains('x'));
    }

    #[test]
    fn the_caller_cannot_undo_the_hardening() {
        let git = Git::new()
            .env("GIT_DIR", "/elsewhere")
            .env("GIT_OBJECT_DIRECTORY", "/elsewhere/objects")
            .env("GIT_TERMINAL_PROMPT", "1")
            .env("LC_ALL", "de_DE.UTF-8")
            .env("GIT_ALLOW_PROTOCOL", "ext")
            .env("PLINTH_GIT_PASSWORD", "not-from-auth")
            .env("GIT_AUTHOR_NAME", "Plinth");
        let env = git.extra_env();
        let last = |k: &str| env.iter().rev().find(|(have, _)| have == k).map(|(_, v)| v.as_str());
        assert_eq!(last("GIT_DIR"), None);
        assert_eq!(last("GIT_OBJECT_DIRECTORY"), None);
        assert_eq!(last("GIT_TERMINAL_PROMPT"), Some("0"));
        assert_eq!(last("GCM_INTERACTIVE"), Some("never"));
        assert_eq!(last("LC_ALL"), Some("C"));
        assert_eq!(last("GIT_ALLOW_PROTOCOL"), Some(ALLOWED_PROTOCOLS));
        assert_eq!(last("PLINTH_GIT_PASSWORD"), None);
        assert_eq!(last("GIT_AUTHOR_NAME"), Some("Plinth"));
        let argv = Git::new().git_dir("/r.git").work_tree("/w").argv(["status"]);
        assert_eq!(argv, ["-c", "core.autocrlf=false", "-c", "core.symlinks=true", "--git-dir=/r.git", "--work-tree=/w", "status"]);
    }

    // ------------------------------------------------ against the real git

    fn has_git() -> bool {
        std::process::Command::new("git").arg("--version").output().is_ok_and(|o| o.status.success())
    }

    /// A repository with `a.txt` ("a\nb\n") and `link` (→ a.txt) committed,
    /// made with plain git and no user configuration.
    fn repo(dir: &Path) -> PathBuf {
        let work = dir.join("work");
        std::fs::create_dir_all(&work).unwrap();
        std::fs::write(work.join("a.txt"), "a\nb\n").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("a.txt", work.join("link")).unwrap();
        for args in [&["init", "-q"][..], &["add", "-A"], &["commit", "-q", "-m", "one"]] {
            let out = std::process::Command::new("git")
                .args(args)
                .current_dir(&work)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
                .output()
                .unwrap();
            assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        work.join(".git")
    }

    /// A user configuration given the way git reads it from the environment.
    fn user_config(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env = vec![("GIT_CONFIG_NOSYSTEM".to_string(), "1".to_string()), ("GIT_CONFIG_GLOBAL".into(), "/dev/null".into())];
        env.push(("GIT_CONFIG_COUNT".into(), pairs.len().to_string()));
        for (i, (k, v)) in pairs.iter().enumerate() {
            env.push((format!("GIT_CONFIG_KEY_{i}"), k.to_string()));
            env.push((format!("GIT_CONFIG_VALUE_{i}"), v.to_string()));
        }
        env
    }

    #[test]
    fn only_the_named_repository_and_index_are_used() {
        if !has_git() {
            eprintln!("skipped: no git");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let ours = repo(&tmp.path().join("ours"));
        let theirs = repo(&tmp.path().join("theirs"));
        let index = tmp.path().join("plinth.index");
        let base = || {
            Git::new()
                .git_dir(&ours)
                .env("GIT_DIR", theirs.to_str().unwrap())
                .env("GIT_OBJECT_DIRECTORY", theirs.join("objects").to_str().unwrap())
                .env("GIT_INDEX_FILE", theirs.join("index").to_str().unwrap())
        };
        let out = base().run(["rev-parse", "--absolute-git-dir"]).unwrap();
        assert_eq!(out.text(), ours.to_str().unwrap(), "{}", out.stderr);
        let blob = base().input(Some(b"only ours\n".to_vec())).run(["hash-object", "-w", "--stdin"]).unwrap().text();
        assert!(Git::new().git_dir(&ours).run(["cat-file", "-e", &blob]).unwrap().ok());
        assert!(!Git::new().git_dir(&theirs).run(["cat-file", "-e", &blob]).unwrap().ok(), "written into the other repository");
        let before = std::fs::read(theirs.join("index")).unwrap();
        let out = base().index(&index).run(["read-tree", "--empty"]).unwrap();
        assert!(out.ok(), "{}", out.stderr);
        assert!(index.is_file());
        assert_eq!(std::fs::read(theirs.join("index")).unwrap(), before);
    }

    #[test]
    fn checkouts_keep_the_repositorys_bytes_and_links() {
        if !has_git() {
            eprintln!("skipped: no git");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let git_dir = repo(tmp.path());
        // A user whose configuration would rewrite line endings and links.
        let user = user_config(&[("core.autocrlf", "true"), ("core.symlinks", "false")]);
        let steps: [&[&str]; 2] = [&["read-tree", "HEAD"], &["checkout-index", "--all", "--force"]];
        // Plain git with that configuration (the control: it does rewrite).
        let plain = tmp.path().join("plain");
        std::fs::create_dir(&plain).unwrap();
        for args in steps {
            let status = std::process::Command::new("git")
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .envs(user.iter().cloned())
                .env("GIT_INDEX_FILE", tmp.path().join("plain.index"))
                .arg("--git-dir")
                .arg(&git_dir)
                .arg("--work-tree")
                .arg(&plain)
                .args(args)
                .status()
                .unwrap();
            assert!(status.success());
        }
        assert_eq!(std::fs::read(plain.join("a.txt")).unwrap(), b"a\r\nb\r\n");
        assert!(!plain.join("link").symlink_metadata().unwrap().file_type().is_symlink());
        // The runner with the same configuration.
        let ours = tmp.path().join("ours");
        std::fs::create_dir(&ours).unwrap();
        for args in steps {
            let out = Git::new().git_dir(&git_dir).work_tree(&ours).index(tmp.path().join("ours.index")).envs(user.iter().cloned()).run(args).unwrap();
            assert!(out.ok(), "{}", out.stderr);
        }
        assert_eq!(std::fs::read(ours.join("a.txt")).unwrap(), b"a\nb\n");
        #[cfg(unix)]
        assert!(ours.join("link").symlink_metadata().unwrap().file_type().is_symlink());
    }

    #[test]
    fn git_gets_no_prompt_the_c_locale_and_only_its_transports() {
        if !has_git() {
            eprintln!("skipped: no git");
            return;
        }
        // `!env` as an alias shows the environment git runs with.
        let out = Git::new().env("LC_ALL", "de_DE.UTF-8").env("PLINTH_STATE_KEY", "k").run(["-c", "alias.e=!env", "e"]).unwrap();
        assert!(out.ok(), "{}", out.stderr);
        let env = String::from_utf8_lossy(&out.stdout).into_owned();
        for line in ["GIT_TERMINAL_PROMPT=0", "GCM_INTERACTIVE=never", "LC_ALL=C", "LANGUAGE=C", "GIT_ALLOW_PROTOCOL=https:http:ssh:git:file"] {
            assert!(env.lines().any(|l| l == line), "{line} missing in:\n{env}");
        }
        assert!(!env.contains("PLINTH_STATE_KEY") && !env.contains("PLINTH_GIT_"), "{env}");
        // Stdin is empty without input (nothing waits for a terminal), and
        // holds exactly the input when there is some.
        let out = Git::new().run(["-c", "alias.c=!cat", "c"]).unwrap();
        assert!(out.ok() && out.stdout.is_empty(), "{out:?}");
        let out = Git::new().input(Some(b"fed\n".to_vec())).run(["-c", "alias.c=!cat", "c"]).unwrap();
        assert_eq!(out.stdout, b"fed\n");
        // A transport that runs a command is refused, also through a rewrite.
        let tmp = tempfile::tempdir().unwrap();
        let marker = tmp.path().join("ran");
        let ext = format!("ext::sh -c touch% {}", marker.display());
        let out = Git::new().run(["ls-remote", "--", &ext]).unwrap();
        assert!(!out.ok() && out.stderr.contains("transport 'ext' not allowed"), "{}", out.stderr);
        let rewrite = user_config(&[(&format!("url.{ext}.insteadOf"), "https://example.invalid/r.git")]);
        let out = Git::new().envs(rewrite).run(["ls-remote", "--", "https://example.invalid/r.git"]).unwrap();
        assert!(!out.ok() && out.stderr.contains("transport 'ext' not allowed"), "{}", out.stderr);
        assert!(!marker.exists());
    }

    #[test]
    fn a_credential_in_a_url_is_never_in_argv_or_a_message() {
        if !has_git() {
            eprintln!("skipped: no git");
            return;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let tmp = tempfile::tempdir().unwrap();
            let path = std::env::var("PATH").unwrap_or_default();
            let real = std::env::split_paths(&path).map(|d| d.join("git")).find(|p| p.is_file()).expect("git on PATH");
            // A `git` that logs its arguments, then runs the real one.
            let bin = tmp.path().join("bin");
            std::fs::create_dir(&bin).unwrap();
            let log = tmp.path().join("argv.log");
            std::fs::write(bin.join("git"), format!("#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nexec '{}' \"$@\"\n", log.display(), real.display())).unwrap();
            std::fs::set_permissions(bin.join("git"), std::fs::Permissions::from_mode(0o755)).unwrap();
            let logged_path = format!("{}:{path}", bin.display());
            // No server answers on port 9.
            let (url, auth) = GitAuth::split("http://bot-7f3e:pw-5e7a19%21@127.0.0.1:9/org/r.git");
            assert_eq!(url, "http://127.0.0.1:9/org/r.git");
            let out = Git::new().env("PATH", &logged_path).auth(auth.as_ref()).run(["ls-remote", "--", &url]).unwrap();
            assert!(!out.ok());
            let argv = std::fs::read_to_string(&log).unwrap();
            assert!(argv.contains("ls-remote"), "{argv}");
            for secret in ["pw-5e7a19", "bot-7f3e"] {
                assert!(!argv.contains(secret), "{secret} in argv:\n{argv}");
                assert!(!out.stderr.contains(secret), "{secret} in stderr: {}", out.stderr);
            }
        }
        // The helper hands the credentials to git, ahead of one the user
        // configured; the input reaches git's stdin.
        let auth = GitAuth { username: "bot".into(), password: "pa ss'w\"rd$1".into() };
        let user = user_config(&[("credential.helper", "!printf 'username=other\\npassword=wrong\\n'; :")]);
        let out =
            Git::new().auth(Some(&auth)).envs(user).input(Some(b"protocol=https\nhost=example.invalid\n\n".to_vec())).run(["credential", "fill"]).unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("username=bot\n") && text.contains("password=pa ss'w\"rd$1\n"), "{text}");
        // A run error names no argument, so no URL.
        let empty = tempfile::tempdir().unwrap();
        let err = Git::new().env("PATH", empty.path().to_str().unwrap()).auth(Some(&auth)).run(["ls-remote", "https://host/r.git"]).unwrap_err();
        assert!(!err.to_string().contains("pa ss") && !err.to_string().contains("host/r.git"), "{err}");
    }

    #[test]
    fn a_missing_git_is_told_as_such() {
        let empty = tempfile::tempdir().unwrap();
        let err = Git::new().env("PATH", empty.path().to_str().unwrap()).run(["--version"]).unwrap_err();
        assert!(matches!(err, RunError::NotFound), "{err:?}");
        assert_eq!(err.to_string(), "the `git` program is not installed or not on PATH");
    }

    #[test]
    fn large_input_and_output_pass_whole_and_the_bound_holds() {
        if !has_git() {
            eprintln!("skipped: no git");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let git_dir = repo(tmp.path());
        // More than any pipe buffer, both ways.
        let big: Vec<u8> = (0..3_000_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let blob = Git::new().git_dir(&git_dir).input(Some(big.clone())).run(["hash-object", "-w", "--stdin"]).unwrap().text();
        let out = Git::new().git_dir(&git_dir).run(["cat-file", "blob", &blob]).unwrap();
        assert!(out.ok() && out.stdout == big, "{} bytes", out.stdout.len());
        let err = Git::new().git_dir(&git_dir).max_stdout(1000).run(["cat-file", "blob", &blob]).unwrap_err();
        assert!(matches!(err, RunError::TooMuchOutput { limit: 1000 }), "{err:?}");
    }
}
