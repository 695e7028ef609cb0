//! `git`: `git.commit` writes a tree of files into a path of a branch of a
//! git repository and pushes it — how rendered stack manifests reach the
//! "stacks-instances" repository that ArgoCD syncs.
//!
//! Everything goes through the `git` program, run by the hardened runner of
//! [`plinth_clients::git`] (argv, never a shell; no prompts, so credentials
//! come from git's own helpers, the SSH agent or the URL; transports https,
//! http, ssh, git and file, local paths included). Each repository gets one
//! bare cache clone under `cache_dir` (named by a hash of its URL, guarded
//! by a file lock), filled by shallow fetches. Commits are built with plumbing on a temporary index
//! — the branch head's tree, minus everything under `path`, plus the
//! desired files — so there is no checkout to get dirty, a change that adds
//! nothing makes no commit, and a push rejected because someone pushed
//! meanwhile is redone on the new head (a few times, then `P6805`).
//!
//! Drift: `read` fetches the branch and hashes what is under `path` at its
//! head (`content_hash`: SHA-256 over the sorted `relpath\0sha256(content)\n`
//! lines). `commit` is derived: a commit elsewhere on the branch is not
//! drift. When the content differs from what Plinth wrote, the read reports
//! the input that produced it as changed (`files`: the content found;
//! `source`: null, "not written"), so `apply --refresh` rewrites it.
//!
//! Credentials embedded in a URL (`https://user:token@host/…`) are never
//! shown: every message goes through [`redact`], and the plan marks such a
//! `repository` sensitive.

use super::*;
use plinth_clients::git::{Git, GitAuth, Output, RunError};
use sha2::Digest;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// How many times a push rejected as non-fast-forward is redone on the new head.
const PUSH_ATTEMPTS: usize = 5;
/// Deepest directory nesting read from a `source` (symbolic links are followed).
const MAX_DEPTH: usize = 64;
/// Most of git's stderr shown in a diagnostic.
const STDERR_SHOWN: usize = 2000;
/// Git's empty tree.
const EMPTY_TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

pub struct GitFactory {
    schema: ProviderSchema,
}

impl GitFactory {
    pub fn new() -> Self {
        let commit = ResourceSchema::new("A directory tree committed into a path of a branch of a git repository, and pushed.")
            .attr(
                "repository",
                AttrSchema::required(Type::String, "a URL, or the path of a local (bare or not) repository relative to the project directory").forces_replacement(),
            )
            .attr("branch", AttrSchema::optional(Type::String, "the branch; created (without history) when missing").default(Value::str("main")).forces_replacement())
            .attr("path", AttrSchema::optional(Type::String, "the directory inside the repository that Plinth owns; \"\" is the whole tree").default(Value::str("")).forces_replacement())
            .attr("source", AttrSchema::optional(Type::String, "a local directory whose files are written into `path`, relative to the project directory (exclusive with `files`)"))
            .attr("files", AttrSchema::optional(Type::Map(Box::new(Type::String)), "relative path → content, written into `path` (exclusive with `source`)"))
            .attr(
                "source_files",
                AttrSchema::optional(
                    Type::Map(Box::new(Type::String)),
                    "relative path → SHA-256 of exactly the files `source` must hold (what a `file.tree` rendered: its `files`); a commit with any other file, or a file whose content differs, is refused",
                ),
            )
            .attr("message", AttrSchema::optional(Type::String, "the commit message; default \"plinth: update <path>\""))
            .attr("triggers", AttrSchema::optional(Type::Any, "any value; a change updates the resource (e.g. the `hash` of the `file.tree` that renders `source`)"))
            .attr("commit", AttrSchema::computed(Type::String, "the SHA of the commit that holds the content").derived())
            .attr("content_hash", AttrSchema::computed(Type::String, "SHA-256 over the sorted `relpath\\0sha256(content)\\n` of the files under `path`"))
            .attr("id", AttrSchema::computed(Type::String, "<repository>#<branch>:<path>"));
        let mut schema = ProviderSchema::default();
        schema.config.insert("author_name", AttrSchema::optional(Type::String, "author and committer name of Plinth's commits").default(Value::str("Plinth")));
        schema.config.insert(
            "author_email",
            AttrSchema::optional(Type::String, "author and committer email of Plinth's commits").default(Value::str("plinth@localhost")),
        );
        schema
            .config
            .insert("cache_dir", AttrSchema::optional(Type::String, "where the cache clones live, relative to the project directory; default .plinth/git"));
        schema.resources.insert("commit", commit);
        GitFactory { schema }
    }
}

impl Default for GitFactory {
    fn default() -> Self {
        Self::new()
    }
}

fn text<'a>(m: &'a Map, key: &str) -> Option<&'a str> {
    m.get(key).and_then(Value::as_str)
}

fn is_set(m: &Map, key: &str) -> bool {
    m.get(key).is_some_and(|v| !matches!(v.peel(), Value::Null))
}

impl ProviderFactory for GitFactory {
    fn name(&self) -> &'static str {
        "git"
    }
    fn schema(&self) -> &ProviderSchema {
        &self.schema
    }
    fn plan(&self, rtype: &str, prior: Option<&Map>, config: &Map) -> Map {
        let mut planned = default_plan(self.schema.resources.get(rtype), prior, config);
        // A URL with credentials in it is shown as (sensitive) everywhere.
        if let Some(v) = config.get("repository") {
            if v.as_str().is_some_and(|r| redact(r) != r) {
                planned.insert("repository".into(), v.clone().mark_if(true));
            }
        }
        let id = match (text(config, "repository"), text(config, "branch"), text(config, "path").map(normalize_path)) {
            (Some(r), Some(b), Some(Ok(p))) => Value::String(object_id(r, b, &p)),
            _ => Value::Unknown,
        };
        // The id is made of the repository, branch and path: as secret as they are.
        let secret_id = ["repository", "branch", "path"].iter().any(|k| config.get(*k).is_some_and(Value::is_sensitive_deep));
        planned.insert("id".into(), id.mark_if(secret_id));
        // The hash is known as soon as the files are; a `source` directory is
        // not read here (plan does no IO): its hash stays the recorded one
        // while nothing that could change it changed.
        let same = |name: &str| prior.is_some_and(|p| p.get(name).unwrap_or(&Value::Null) == config.get(name).unwrap_or(&Value::Null));
        let files = config.get("files").unwrap_or(&Value::Null);
        let hash = match files.peel() {
            Value::Map(_) if !files.is_unknown_deep() => match files_of(files) {
                Ok(entries) if !entries.is_empty() => Value::String(content_hash(&entries)),
                _ => Value::Unknown,
            },
            Value::Null if is_set(config, "source") && source_files_known(config) => match rendered_set(config) {
                Ok(Some(set)) if !set.is_empty() => Value::String(hash_of(&set)),
                _ => Value::Unknown,
            },
            Value::Null if is_set(config, "source") && same("source") && same("triggers") && same("path") => {
                prior.and_then(|p| p.get("content_hash")).cloned().unwrap_or(Value::Unknown)
            }
            _ => Value::Unknown,
        };
        let commit = match (&hash, prior) {
            (Value::String(h), Some(p)) if text(p, "content_hash") == Some(h.as_str()) => p.get("commit").cloned().unwrap_or(Value::Unknown),
            _ => Value::Unknown,
        };
        let secret = files.is_sensitive_deep() || config.get("source_files").is_some_and(Value::is_sensitive_deep);
        planned.insert("content_hash".into(), hash.mark_if(secret));
        planned.insert("commit".into(), commit);
        planned
    }
    fn configure(&self, config: &Map, ctx: &ProviderContext) -> Result<Arc<dyn Provider>, Diagnostic> {
        let ident = |key: &str, default: &str| -> Result<String, Diagnostic> {
            let v = text(config, key).unwrap_or(default);
            if v.trim().is_empty() || v.contains(['<', '>', '\n', '\0']) {
                return Err(bad_config(format!("`{key}` of the git provider must be a non-empty name without `<`, `>` or line breaks.")));
            }
            Ok(v.to_string())
        };
        let author_name = ident("author_name", "Plinth")?;
        let author_email = ident("author_email", "plinth@localhost")?;
        let cache_dir = match text(config, "cache_dir") {
            Some(d) if !d.is_empty() => ctx.project_dir.join(d),
            _ => ctx.project_dir.join(".plinth").join("git"),
        };
        let settings = Settings { author_name, author_email, cache_dir, base: ctx.project_dir.clone() };
        Ok(Arc::new(GitProvider { schema: self.schema.clone(), settings: Arc::new(settings) }))
    }
}

struct Settings {
    author_name: String,
    author_email: String,
    cache_dir: PathBuf,
    /// The project directory.
    base: PathBuf,
}

struct GitProvider {
    schema: ProviderSchema,
    settings: Arc<Settings>,
}

// ---------------------------------------------------------------- helpers

fn bad_config(help: impl Into<String>) -> Diagnostic {
    provider_error("P6801", "invalid git.commit configuration", help)
}

/// Redacts every URL in `text` (`https://user:token@host/x` →
/// `https://***@host/x`): the one redaction, [`crate::redact::text`].
pub use crate::redact::text as redact;

/// A URL (`scheme://…` or scp-like `host:path`) rather than a local path.
fn is_url(repo: &str) -> bool {
    if repo.contains("://") {
        return true;
    }
    match repo.find(':') {
        Some(colon) if colon > 0 => !repo[..colon].contains('/'),
        _ => false,
    }
}

/// `path` without leading/trailing slashes, `.` or empty components;
/// refuses `..` and `.git`.
fn normalize_path(path: &str) -> Result<String, String> {
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(format!("`{path}` leaves the repository (`..`)")),
            p if p.eq_ignore_ascii_case(".git") => return Err(format!("`{path}` names git's own `.git` directory")),
            p if p.contains('\0') => return Err("a path contains a NUL character".to_string()),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// `git check-ref-format --branch` rules, without running git.
fn valid_branch(b: &str) -> bool {
    let bad_char = |c: char| c.is_ascii_control() || matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\');
    !b.is_empty()
        && b != "@"
        && !b.starts_with('-')
        && !b.ends_with('.')
        && !b.contains("..")
        && !b.contains("@{")
        && !b.chars().any(bad_char)
        && b.split('/').all(|c| !c.is_empty() && !c.starts_with('.') && !c.ends_with(".lock"))
}

fn object_id(repository: &str, branch: &str, path: &str) -> String {
    format!("{}#{branch}:{path}", redact(repository))
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// One file to write (or found) under `path`: its path relative to `path`.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    rel: String,
    executable: bool,
    bytes: Vec<u8>,
    /// Where the bytes already are on disk (a `source` file), if anywhere.
    disk: Option<PathBuf>,
}

/// SHA-256 over the sorted `relpath\0sha256(content)\n` lines.
fn content_hash(entries: &[Entry]) -> String {
    hash_of(&entries.iter().map(|e| (e.rel.clone(), sha256_hex(&e.bytes))).collect())
}

/// [`content_hash`] from the SHA-256 of each file (the same value as a
/// `file.tree`'s `hash` over the same files).
fn hash_of(set: &BTreeMap<String, String>) -> String {
    let mut h = sha2::Sha256::new();
    for (rel, sum) in set {
        h.update(rel.as_bytes());
        h.update([0u8]);
        h.update(sum.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

fn source_files_known(config: &Map) -> bool {
    config.get("source_files").is_some_and(|v| !matches!(v.peel(), Value::Null) && !v.is_unknown_deep())
}

/// `source_files` (paths normalised, hashes lower case), None when unset.
fn rendered_set(config: &Map) -> Result<Option<BTreeMap<String, String>>, Diagnostic> {
    let Some(v) = config.get("source_files").filter(|v| !matches!(v.peel(), Value::Null)) else { return Ok(None) };
    let (plain, _) = v.clone().unmark();
    let Value::Map(m) = plain else { return Err(bad_config("`source_files` must be a map from relative path to SHA-256, like a `file.tree`'s `files`.")) };
    let mut out = BTreeMap::new();
    for (k, v) in m {
        let rel = normalize_path(&k).map_err(|e| bad_config(format!("The key of `source_files` {e}; give paths relative to `source`.")))?;
        let sum = v.as_str().map(str::to_ascii_lowercase).filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        let Some(sum) = sum else {
            return Err(bad_config(format!("The value of `source_files` entry `{rel}` must be a SHA-256 in hex (a `file.tree`'s `files` gives them).")));
        };
        if rel.is_empty() || out.insert(rel.clone(), sum).is_some() {
            return Err(bad_config(format!("The key `{k}` of `source_files` names no file or the same file as another key.")));
        }
    }
    Ok(Some(out))
}

/// Most file names a diagnostic lists.
const NAMES_SHOWN: usize = 20;

fn named(names: &[&String]) -> String {
    let mut shown: Vec<String> = names.iter().take(NAMES_SHOWN).map(|n| format!("`{n}`")).collect();
    if names.len() > NAMES_SHOWN {
        shown.push(format!("and {} more", names.len() - NAMES_SHOWN));
    }
    shown.join(", ")
}

/// A `source` holds exactly the rendered set, or the commit is refused:
/// other files (P6820) would be pushed though nothing renders them; a
/// missing or different file (P6821) is not what was rendered.
fn check_rendered(dir: &str, entries: &[Entry], set: &BTreeMap<String, String>) -> Result<(), Diagnostic> {
    let extra: Vec<&String> = entries.iter().map(|e| &e.rel).filter(|r| !set.contains_key(*r)).collect();
    if !extra.is_empty() {
        return Err(provider_error(
            "P6820",
            "files in `source` that nothing rendered",
            format!(
                "`source_files` lists exactly what may be committed, and {dir:?} also holds {}. Remove them (`plinth drift` lists them as unmanaged), or render them: nothing was committed.",
                named(&extra)
            ),
        ));
    }
    let found: BTreeMap<&String, String> = entries.iter().map(|e| (&e.rel, sha256_hex(&e.bytes))).collect();
    let wrong: Vec<&String> = set.iter().filter(|(rel, sum)| found.get(rel) != Some(*sum)).map(|(rel, _)| rel).collect();
    if !wrong.is_empty() {
        return Err(provider_error(
            "P6821",
            "files in `source` are not what was rendered",
            format!(
                "{} in {dir:?} is missing or differs from what `source_files` says was rendered (edited by hand after rendering?). Apply the resource that renders them first; nothing was committed.",
                named(&wrong)
            ),
        ));
    }
    Ok(())
}

/// The `files` attribute as entries (paths normalised, no duplicates).
fn files_of(files: &Value) -> Result<Vec<Entry>, Diagnostic> {
    let Value::Map(m) = files.peel() else { return Err(bad_config("`files` must be a map from relative path to content.")) };
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(m.len());
    for (k, v) in m {
        let rel = normalize_path(k).map_err(|e| bad_config(format!("The key of `files` {e}; give paths relative to `path`.")))?;
        if rel.is_empty() {
            return Err(bad_config(format!("The key `{k}` of `files` names no file; give paths relative to `path`, like \"app/values.yaml\".")));
        }
        if !seen.insert(rel.clone()) {
            return Err(bad_config(format!("Two keys of `files` name the same file `{rel}`; keep one.")));
        }
        let Some(content) = v.as_str() else { return Err(bad_config(format!("The content of `files` entry `{rel}` must be a string."))) };
        out.push(Entry { rel, executable: false, bytes: content.as_bytes().to_vec(), disk: None });
    }
    Ok(out)
}

fn source_error(dir: &Path, what: impl std::fmt::Display) -> Diagnostic {
    provider_error(
        "P6802",
        "cannot read the source directory",
        format!(
            "{}: {what}. `source` must be a readable directory (relative to the project directory); when another resource renders it, reference that resource (e.g. `triggers = file.tree.x.hash`) so it is rendered first.",
            dir.display()
        ),
    )
}

/// Every file under `dir` (symbolic links followed, `.git` skipped).
fn read_source(dir: &Path) -> Result<Vec<Entry>, Diagnostic> {
    let meta = std::fs::metadata(dir).map_err(|e| source_error(dir, e))?;
    if !meta.is_dir() {
        return Err(source_error(dir, "not a directory"));
    }
    let mut out = Vec::new();
    walk(dir, "", 0, &mut out)?;
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

fn walk(dir: &Path, prefix: &str, depth: usize, out: &mut Vec<Entry>) -> Result<(), Diagnostic> {
    if depth > MAX_DEPTH {
        return Err(source_error(dir, format!("nested deeper than {MAX_DEPTH} directories (a symbolic link loop?)")));
    }
    let entries = std::fs::read_dir(dir).map_err(|e| source_error(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| source_error(dir, e))?;
        let path = entry.path();
        let name = entry.file_name();
        let Some(name) = name.to_str() else { return Err(source_error(&path, "the file name is not UTF-8")) };
        if name == ".git" {
            continue;
        }
        let rel = if prefix.is_empty() { name.to_string() } else { format!("{prefix}/{name}") };
        let meta = std::fs::metadata(&path).map_err(|e| source_error(&path, e))?;
        if meta.is_dir() {
            walk(&path, &rel, depth + 1, out)?;
        } else if meta.is_file() {
            let bytes = std::fs::read(&path).map_err(|e| source_error(&path, e))?;
            out.push(Entry { rel, executable: is_executable(&meta), bytes, disk: Some(path) });
        }
    }
    Ok(())
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}
#[cfg(not(unix))]
fn is_executable(_meta: &std::fs::Metadata) -> bool {
    false
}

/// Lines of `git ls-tree -r -z`: (mode, type, object, path).
fn parse_ls_tree(out: &[u8]) -> Vec<(String, String, String, String)> {
    out.split(|b| *b == 0)
        .filter(|r| !r.is_empty())
        .filter_map(|record| {
            let tab = record.iter().position(|b| *b == b'\t')?;
            let meta = String::from_utf8_lossy(&record[..tab]);
            let path = String::from_utf8_lossy(&record[tab + 1..]).into_owned();
            let mut it = meta.split(' ');
            Some((it.next()?.to_string(), it.next()?.to_string(), it.next()?.to_string(), path))
        })
        .collect()
}

/// Objects from `git cat-file --batch` output, in order.
fn parse_cat_file(mut out: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut objects = Vec::new();
    while !out.is_empty() {
        let nl = out.iter().position(|b| *b == b'\n')?;
        let header = String::from_utf8_lossy(&out[..nl]);
        let size: usize = header.rsplit(' ').next()?.parse().ok()?;
        let start = nl + 1;
        let end = start.checked_add(size)?;
        objects.push(out.get(start..end)?.to_vec());
        out = out.get(end + 1..).unwrap_or(&[]);
    }
    Some(objects)
}

/// `path` contains `entry` (or they are the same), or `entry` is a file on
/// the way to `path`: what replacing `path` must remove.
fn overlaps(path: &str, entry: &str) -> bool {
    path.is_empty()
        || entry == path
        || entry.strip_prefix(path).is_some_and(|r| r.starts_with('/'))
        || path.strip_prefix(entry).is_some_and(|r| r.starts_with('/'))
}

fn under<'a>(path: &str, entry: &'a str) -> Option<&'a str> {
    if path.is_empty() {
        Some(entry)
    } else {
        entry.strip_prefix(path)?.strip_prefix('/')
    }
}

fn shorten(text: &str) -> String {
    let text = text.trim();
    if text.len() <= STDERR_SHOWN {
        return text.to_string();
    }
    let mut cut = STDERR_SHOWN;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}

/// A transient network failure worth retrying (`max_retries`).
fn transient(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    ["timed out", "connection reset", "early eof", "temporary failure", "the remote end hung up unexpectedly", "returned error: 5", "returned error: 429"]
        .iter()
        .any(|w| s.contains(w))
}

// ---------------------------------------------------------------- running git

/// Runs one git through the hardened runner of [`plinth_clients::git`]
/// (allow-listed environment, no prompts, C locale, no repository
/// redirection, credentials off the command line, bounded output). A git
/// that could not run is a diagnostic; one that ran and failed is an
/// [`Output`] whose `ok()` is false.
fn run(git: Git, a: &[OsString]) -> Result<Output, Diagnostic> {
    git.run(a).map_err(|e| match e {
        RunError::NotFound | RunError::Start(_) => provider_error(
            "P6800",
            "cannot run git",
            format!("Starting `git` failed: {e}. The git provider runs the `git` program: install git and make sure it is on PATH."),
        ),
        RunError::Wait(e) => provider_error("P6800", "cannot run git", format!("Waiting for `git` failed: {e}.")),
        RunError::TooMuchOutput { .. } => {
            let cmd = a.first().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            provider_error("P6808", "a git command failed unexpectedly", format!("`git {cmd}`: {e}."))
        }
    })
}

fn args<I, S>(items: I) -> Vec<OsString>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    items.into_iter().map(Into::into).collect()
}

/// What a resource addresses, validated.
#[derive(Debug, Clone)]
struct Target {
    /// As configured (shown redacted).
    repository: String,
    /// The URL (credentials included), or the absolute path of a local
    /// repository: names the cache. Never on git's command line.
    url: String,
    /// What git is given: `url` without credentials.
    remote: String,
    /// The credentials of `url`, for the git that talks to the remote.
    auth: Option<GitAuth>,
    branch: String,
    path: String,
}

impl Target {
    fn of(config: &Map, base: &Path) -> Result<Target, Diagnostic> {
        let repository = text(config, "repository").unwrap_or("").to_string();
        if repository.trim().is_empty() || repository.starts_with('-') || repository.contains(['\n', '\r', '\0']) {
            return Err(bad_config(format!(
                "`repository` ({:?}) must be a URL (https://…, ssh://…, git@host:path) or the path of a local repository; it may not be empty or start with `-`.",
                redact(&repository)
            )));
        }
        let url = if is_url(&repository) {
            repository.clone()
        } else {
            let p = Path::new(&repository);
            let abs = if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
            abs.to_string_lossy().into_owned()
        };
        let branch = text(config, "branch").unwrap_or("main").to_string();
        if !valid_branch(&branch) {
            return Err(bad_config(format!("`branch` {branch:?} is not a valid git branch name (see `git check-ref-format`).")));
        }
        let path = normalize_path(text(config, "path").unwrap_or(""))
            .map_err(|e| bad_config(format!("`path` {e}; give a directory inside the repository, or \"\" for all of it.")))?;
        let (remote, auth) = GitAuth::split(&url);
        Ok(Target { repository, url, remote, auth, branch, path })
    }

    fn shown(&self) -> String {
        format!("{}#{}", redact(&self.repository), self.branch)
    }

    fn id(&self) -> String {
        object_id(&self.repository, &self.branch, &self.path)
    }

    fn local_ref(&self) -> String {
        format!("refs/plinth/heads/{}", self.branch)
    }
}

/// The files a create/update writes.
fn desired(config: &Map, base: &Path) -> Result<Vec<Entry>, Diagnostic> {
    let entries = match (is_set(config, "source"), is_set(config, "files")) {
        (true, true) => return Err(bad_config("`source` and `files` are both set; set exactly one: a directory to copy, or a map of files.")),
        (false, false) => return Err(bad_config("Neither `source` nor `files` is set; set exactly one: a directory to copy, or a map of files.")),
        (true, false) => {
            let dir = text(config, "source").unwrap_or("");
            let p = Path::new(dir);
            let entries = read_source(&if p.is_absolute() { p.to_path_buf() } else { base.join(p) })?;
            if let Some(set) = rendered_set(config)? {
                check_rendered(dir, &entries, &set)?;
            }
            entries
        }
        (false, true) if is_set(config, "source_files") => {
            return Err(bad_config("`source_files` describes a `source` directory; with `files`, leave it out."))
        }
        (false, true) => files_of(config.get("files").unwrap_or(&Value::Null))?,
    };
    if entries.is_empty() {
        return Err(provider_error(
            "P6803",
            "nothing to commit",
            "The `source` directory or the `files` map holds no file, and git cannot keep an empty directory. Give at least one file; to remove the path from the branch, remove the resource.",
        ));
    }
    Ok(entries)
}

/// The bare cache clone of one repository, locked for as long as it lives.
struct Cache {
    dir: PathBuf,
    index: PathBuf,
    stage: PathBuf,
    _lock: Lock,
}

struct Lock(#[allow(dead_code)] std::fs::File);

fn cache_error(path: &Path, e: impl std::fmt::Display) -> Diagnostic {
    provider_error(
        "P6807",
        "cannot use the git cache directory",
        format!(
            "{}: {e}. The git provider keeps clones under `cache_dir` (default .plinth/git in the project): make it writable, or point `cache_dir` elsewhere.",
            path.display()
        ),
    )
}

impl Lock {
    fn take(path: &Path) -> Result<Lock, Diagnostic> {
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path).map_err(|e| cache_error(path, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::io::AsRawFd;
            loop {
                // SAFETY: flock(2) on a descriptor this function owns; the
                // lock is released when the file is closed (Lock is dropped).
                let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
                if rc == 0 {
                    break;
                }
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(cache_error(path, e));
                }
            }
        }
        Ok(Lock(file))
    }
}

impl Cache {
    fn open(settings: &Settings, url: &str) -> Result<Cache, Diagnostic> {
        let root = &settings.cache_dir;
        std::fs::create_dir_all(root).map_err(|e| cache_error(root, e))?;
        let key = &sha256_hex(url.as_bytes())[..16];
        let lock = Lock::take(&root.join(format!("{key}.lock")))?;
        let dir = root.join(format!("{key}.git"));
        if !dir.join("HEAD").is_file() || !dir.join("objects").is_dir() {
            // Missing, or an init that was interrupted: start over.
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| cache_error(&dir, e))?;
            }
            let out = run(Git::new(), &[OsString::from("init"), "--bare".into(), "-q".into(), dir.clone().into_os_string()])?;
            if !out.ok() {
                return Err(cache_error(&dir, format!("git init failed: {}", shorten(&out.stderr))));
            }
        }
        let cache = Cache { index: root.join(format!("{key}.index")), stage: root.join(format!("{key}.stage")), dir, _lock: lock };
        let _ = std::fs::remove_file(&cache.index);
        let _ = std::fs::remove_dir_all(&cache.stage);
        Ok(cache)
    }

    fn git(&self, a: &[OsString], input: Option<Vec<u8>>) -> Result<Output, Diagnostic> {
        run(Git::new().git_dir(&self.dir).index(&self.index).input(input), a)
    }

    /// A git that talks to the remote of `t`, with its credentials.
    fn remote_git(&self, t: &Target, a: &[OsString]) -> Result<Output, Diagnostic> {
        run(Git::new().git_dir(&self.dir).index(&self.index).auth(t.auth.as_ref()), a)
    }

    /// Runs plumbing that must succeed; its failure is unexpected.
    fn must(&self, a: &[OsString], input: Option<Vec<u8>>) -> Result<Output, Diagnostic> {
        let out = self.git(a, input)?;
        if out.ok() {
            return Ok(out);
        }
        let cmd = a.first().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        Err(provider_error(
            "P6808",
            "a git command failed unexpectedly",
            format!(
                "`git {cmd}` in the cache clone {} failed: {}. Removing that directory makes Plinth clone afresh.",
                self.dir.display(),
                redact(&shorten(&out.stderr))
            ),
        ))
    }

    /// The head of the branch on the remote, fetched into the cache
    /// (shallow); None when the branch does not exist.
    fn fetch(&self, t: &Target) -> Result<Option<String>, Diagnostic> {
        let remote_ref = format!("refs/heads/{}", t.branch);
        let ls = self.remote_git(t, &args(["ls-remote", "--exit-code", "--", t.remote.as_str(), remote_ref.as_str()]))?;
        if ls.code() == Some(2) {
            return Ok(None);
        }
        if !ls.ok() {
            return Err(self.remote_error("read", t, &ls.stderr));
        }
        let listed = ls.text();
        let sha = listed.lines().filter_map(|l| l.split_once('\t')).find(|(_, r)| *r == remote_ref).map(|(s, _)| s.to_string());
        let Some(sha) = sha else { return Ok(None) };
        let have = self.git(&args(["cat-file", "-e", &format!("{sha}^{{commit}}")]), None)?.ok();
        if !have {
            let refspec = format!("+{remote_ref}:{}", t.local_ref());
            let f = self.remote_git(t, &args(["fetch", "-q", "--depth=1", "--no-tags", "--", t.remote.as_str(), refspec.as_str()]))?;
            if !f.ok() {
                return Err(self.remote_error("fetch", t, &f.stderr));
            }
            let head = self.must(&args(["rev-parse", "--verify", &format!("{}^{{commit}}", t.local_ref())]), None)?.text();
            return Ok(Some(head));
        }
        self.must(&args(["update-ref", t.local_ref().as_str(), sha.as_str()]), None)?;
        Ok(Some(sha))
    }

    fn remote_error(&self, what: &str, t: &Target, stderr: &str) -> Diagnostic {
        let d = provider_error(
            "P6804",
            format!("cannot {what} the git repository"),
            format!(
                "Git could not {what} {}: {}. Check the URL or path, the network, and the credentials (git's credential helpers, the SSH agent, or the URL); git never prompts here.",
                t.shown(),
                redact(&shorten(stderr))
            ),
        );
        if transient(stderr) {
            d.retryable()
        } else {
            d
        }
    }

    /// Every blob under `path` at `head`, with its content.
    fn files_at(&self, head: &str, path: &str) -> Result<Vec<Entry>, Diagnostic> {
        let listed = self.must(&args(["ls-tree", "-r", "-z", "--full-tree", head]), None)?;
        let mut found = Vec::new();
        for (mode, kind, object, full) in parse_ls_tree(&listed.stdout) {
            if kind != "blob" {
                continue;
            }
            if let Some(rel) = under(path, &full) {
                found.push((rel.to_string(), mode == "100755", object));
            }
        }
        if found.is_empty() {
            return Ok(vec![]);
        }
        let input: Vec<u8> = found.iter().flat_map(|(_, _, o)| format!("{o}\n").into_bytes()).collect();
        let cat = self.must(&args(["cat-file", "--batch"]), Some(input))?;
        let contents = parse_cat_file(&cat.stdout).filter(|c| c.len() == found.len()).ok_or_else(|| {
            provider_error(
                "P6808",
                "a git command failed unexpectedly",
                format!("`git cat-file --batch` in {} gave output Plinth cannot read.", self.dir.display()),
            )
        })?;
        Ok(found.into_iter().zip(contents).map(|((rel, executable, _), bytes)| Entry { rel, executable, bytes, disk: None }).collect())
    }

    /// The tree of `head` with `path` replaced by `entries` (None: removed).
    fn build_tree(&self, head: Option<&str>, path: &str, entries: Option<&[Entry]>) -> Result<String, Diagnostic> {
        let _ = std::fs::remove_file(&self.index);
        match head {
            Some(h) if !path.is_empty() => self.must(&args(["read-tree", h]), None)?,
            _ => self.must(&args(["read-tree", "--empty"]), None)?,
        };
        let mut info: Vec<u8> = Vec::new();
        if head.is_some() && !path.is_empty() {
            let listed = self.must(&args(["ls-files", "-z"]), None)?;
            for name in listed.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
                if overlaps(path, &String::from_utf8_lossy(name)) {
                    info.extend_from_slice(b"0 0000000000000000000000000000000000000000\t");
                    info.extend_from_slice(name);
                    info.push(0);
                }
            }
        }
        if let Some(entries) = entries {
            let blobs = self.write_blobs(entries)?;
            for (e, blob) in entries.iter().zip(blobs) {
                let full = if path.is_empty() { e.rel.clone() } else { format!("{path}/{}", e.rel) };
                info.extend_from_slice(format!("{} {blob}\t{full}", if e.executable { "100755" } else { "100644" }).as_bytes());
                info.push(0);
            }
        }
        if !info.is_empty() {
            self.must(&args(["update-index", "-z", "--index-info"]), Some(info))?;
        }
        let tree = self.must(&args(["write-tree"]), None)?.text();
        let _ = std::fs::remove_file(&self.index);
        Ok(tree)
    }

    /// Writes the entries as blobs (one `git hash-object` for all); their ids in order.
    fn write_blobs(&self, entries: &[Entry]) -> Result<Vec<String>, Diagnostic> {
        let mut paths = String::new();
        for (i, e) in entries.iter().enumerate() {
            let on_disk = e.disk.as_ref().and_then(|p| p.to_str()).filter(|p| !p.contains(['\n', '\r']));
            let p = match on_disk {
                Some(p) => p.to_string(),
                None => {
                    std::fs::create_dir_all(&self.stage).map_err(|err| cache_error(&self.stage, err))?;
                    let staged = self.stage.join(i.to_string());
                    std::fs::write(&staged, &e.bytes).map_err(|err| cache_error(&staged, err))?;
                    staged.to_str().map(str::to_string).ok_or_else(|| cache_error(&staged, "the path is not UTF-8"))?
                }
            };
            paths.push_str(&p);
            paths.push('\n');
        }
        let out = self.must(&args(["hash-object", "-w", "--no-filters", "--stdin-paths"]), Some(paths.into_bytes()));
        let _ = std::fs::remove_dir_all(&self.stage);
        let ids: Vec<String> = out?.text().lines().map(str::to_string).collect();
        if ids.len() != entries.len() {
            return Err(provider_error(
                "P6808",
                "a git command failed unexpectedly",
                "`git hash-object` did not write every file; is the cache directory full?",
            ));
        }
        Ok(ids)
    }

    fn tree_of(&self, commit: &str) -> Result<String, Diagnostic> {
        Ok(self.must(&args(["rev-parse", "--verify", &format!("{commit}^{{tree}}")]), None)?.text())
    }
}

enum Pushed {
    Yes,
    /// Not a fast-forward: someone pushed meanwhile.
    Behind,
}

/// Makes the branch hold `entries` under `path` (None: nothing there),
/// committing only a real change and redoing it on a moved head. Returns
/// the commit holding the content (None: the branch does not exist).
fn converge(settings: &Settings, t: &Target, entries: Option<&[Entry]>, message: &str) -> Result<Option<String>, Diagnostic> {
    let cache = Cache::open(settings, &t.url)?;
    let ident: [(&str, &str); 4] = [
        ("GIT_AUTHOR_NAME", &settings.author_name),
        ("GIT_AUTHOR_EMAIL", &settings.author_email),
        ("GIT_COMMITTER_NAME", &settings.author_name),
        ("GIT_COMMITTER_EMAIL", &settings.author_email),
    ];
    let mut last = String::new();
    for _ in 0..PUSH_ATTEMPTS {
        let head = cache.fetch(t)?;
        let tree = cache.build_tree(head.as_deref(), &t.path, entries)?;
        let current = match &head {
            Some(h) => cache.tree_of(h)?,
            None => EMPTY_TREE.to_string(),
        };
        if tree == current {
            return Ok(head);
        }
        let mut a = args(["commit-tree", tree.as_str()]);
        if let Some(h) = &head {
            a.extend(args(["-p", h.as_str()]));
        }
        a.extend(args(["-m", message]));
        let out = run(Git::new().git_dir(&cache.dir).envs(ident), &a)?;
        if !out.ok() {
            return Err(provider_error("P6808", "a git command failed unexpectedly", format!("`git commit-tree` failed: {}", redact(&shorten(&out.stderr)))));
        }
        let commit = out.text();
        let dest = format!("{commit}:refs/heads/{}", t.branch);
        let push = cache.remote_git(t, &args(["push", "--porcelain", "--", t.remote.as_str(), dest.as_str()]))?;
        match push_result(&push) {
            Ok(Pushed::Yes) => {
                cache.must(&args(["update-ref", t.local_ref().as_str(), commit.as_str()]), None)?;
                return Ok(Some(commit));
            }
            Ok(Pushed::Behind) => {
                last = format!("{}{}", String::from_utf8_lossy(&push.stdout), push.stderr);
            }
            Err(detail) => {
                let d = provider_error(
                    "P6806",
                    "the git push was refused",
                    format!(
                        "Pushing to {} failed: {}. Check the credentials and that the branch accepts pushes (protected branches and server hooks can refuse them).",
                        t.shown(),
                        redact(&shorten(&detail))
                    ),
                );
                return Err(if transient(&detail) { d.retryable() } else { d });
            }
        }
    }
    Err(provider_error(
        "P6805",
        "the git push was rejected after retries",
        format!(
            "{} moved on {PUSH_ATTEMPTS} times while Plinth rebuilt its commit on the new head (last answer: {}). Something else pushes to this branch continuously; apply again, or give Plinth its own branch.",
            t.shown(),
            redact(&shorten(&last))
        ),
    ))
}

fn push_result(out: &Output) -> Result<Pushed, String> {
    if out.ok() {
        return Ok(Pushed::Yes);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    // `--porcelain`: "!\t<src>:<dst>\t[rejected] (fetch first)"; a hook's
    // refusal is "[remote rejected]", which is not retried.
    if stdout.lines().any(|l| l.starts_with('!') && l.contains("\t[rejected]")) {
        return Ok(Pushed::Behind);
    }
    Err(format!("{}{}", out.stderr.trim(), if stdout.trim().is_empty() { String::new() } else { format!(" ({})", stdout.trim()) }))
}

fn default_message(path: &str, verb: &str) -> String {
    format!("plinth: {verb} {}", if path.is_empty() { "/" } else { path })
}

/// Runs blocking git work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, Diagnostic> + Send + 'static) -> Result<T, Diagnostic> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(provider_error("P6808", "a git command failed unexpectedly", format!("The git worker stopped: {e}."))))
}

impl GitProvider {
    async fn write(&self, config: Map) -> Result<Observed, Diagnostic> {
        let settings = self.settings.clone();
        let t = Target::of(&config, &settings.base)?;
        let entries = desired(&config, &settings.base)?;
        let hash = content_hash(&entries);
        let message = text(&config, "message").map(str::to_string).unwrap_or_else(|| default_message(&t.path, "update"));
        let target = t.clone();
        let commit = blocking(move || converge(&settings, &target, Some(&entries), &message)).await?;
        let mut observed = config;
        observed.insert("commit".into(), commit.map(Value::String).unwrap_or(Value::Null));
        observed.insert("content_hash".into(), Value::String(hash));
        observed.insert("id".into(), Value::String(t.id()));
        Ok(observed)
    }
}

#[async_trait]
impl Provider for GitProvider {
    fn schema_of(&self, rtype: &str) -> Option<&ResourceSchema> {
        self.schema.resources.get(rtype)
    }

    async fn read(&self, req: ReadRequest) -> Result<Option<Observed>, Diagnostic> {
        let settings = self.settings.clone();
        let t = Target::of(&req.inputs, &settings.base)?;
        let target = t.clone();
        let found = blocking(move || {
            let cache = Cache::open(&settings, &target.url)?;
            let Some(head) = cache.fetch(&target)? else { return Ok(None) };
            let files = cache.files_at(&head, &target.path)?;
            Ok(Some((head, files)))
        })
        .await?;
        let Some((head, files)) = found else { return Ok(None) };
        if files.is_empty() {
            return Ok(None);
        }
        let actual = content_hash(&files);
        let prior = req.prior.as_ref();
        // What Plinth wrote; when reconciling an interrupted create (no
        // prior), what it meant to write.
        let expected = match prior.and_then(|p| text(p, "content_hash")) {
            Some(h) => Some(h.to_string()),
            None => desired(&req.inputs, &self.settings.base).ok().map(|e| content_hash(&e)),
        };
        let mut observed = req.prior.clone().unwrap_or_else(|| req.inputs.clone());
        let in_sync = expected.as_deref().is_none_or(|e| e == actual);
        let commit = match prior.and_then(|p| p.get("commit")) {
            Some(Value::String(c)) if in_sync => c.clone(),
            _ => head,
        };
        if !in_sync {
            if is_set(&req.inputs, "files") {
                let found: Map = files.iter().map(|e| (e.rel.clone(), Value::String(String::from_utf8_lossy(&e.bytes).into_owned()))).collect();
                observed.insert("files".into(), Value::Map(found));
            } else {
                // The branch no longer holds what the source produced.
                observed.insert("source".into(), Value::Null);
            }
        }
        observed.insert("commit".into(), Value::String(commit));
        observed.insert("content_hash".into(), Value::String(actual));
        observed.insert("id".into(), Value::String(t.id()));
        Ok(Some(observed))
    }

    async fn create(&self, req: CreateRequest) -> Result<Observed, Diagnostic> {
        self.write(req.config).await
    }

    async fn update(&self, req: UpdateRequest) -> Result<Observed, Diagnostic> {
        self.write(req.config).await
    }

    async fn delete(&self, req: DeleteRequest) -> Result<(), Diagnostic> {
        let settings = self.settings.clone();
        let t = Target::of(&req.prior, &settings.base)?;
        let message = default_message(&t.path, "remove");
        blocking(move || converge(&settings, &t, None, &message)).await?;
        Ok(())
    }

    async fn list(&self, req: ListRequest) -> Result<Vec<String>, Diagnostic> {
        // Top-level directories of each managed branch that hold no managed
        // path (hidden ones, like .github, excepted).
        let mut groups: BTreeMap<(String, String), (Target, Vec<String>)> = BTreeMap::new();
        for m in &req.managed {
            let Ok(t) = Target::of(m, &self.settings.base) else { continue };
            let entry = groups.entry((t.url.clone(), t.branch.clone())).or_insert_with(|| (t.clone(), vec![]));
            entry.1.push(t.path.clone());
        }
        let settings = self.settings.clone();
        blocking(move || {
            let mut out = Vec::new();
            for (_, (t, paths)) in groups {
                if paths.iter().any(String::is_empty) {
                    continue;
                }
                let cache = Cache::open(&settings, &t.url)?;
                let Some(head) = cache.fetch(&t)? else { continue };
                let listed = cache.must(&args(["ls-tree", "-z", head.as_str()]), None)?;
                for (_, kind, _, name) in parse_ls_tree(&listed.stdout) {
                    if kind != "tree" || name.starts_with('.') {
                        continue;
                    }
                    if !paths.iter().any(|p| p == &name || p.starts_with(&format!("{name}/"))) {
                        out.push(format!("{}:{name}", t.shown()));
                    }
                }
            }
            out.sort();
            Ok(out)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn credentials_in_urls_are_redacted() {
        assert_eq!(redact("https://user:token@host/x.git"), "https://***@host/x.git");
        assert_eq!(
            redact("fatal: unable to access 'https://u:p@ss@git.example:8443/a/b/': 403"),
            "fatal: unable to access 'https://***@git.example:8443/a/b/': 403"
        );
        assert_eq!(redact("https://host/x and ssh://git@host/y"), "https://host/x and ssh://***@host/y");
        assert_eq!(redact("no url here"), "no url here");
        assert_eq!(redact("a://"), "a://");
        assert_eq!(redact("x://@"), "x://***@");
        assert_eq!(redact("ünï://tök@en/ü"), "ünï://***@en/ü");
    }

    #[test]
    fn urls_and_local_paths_are_told_apart() {
        assert!(is_url("https://host/x.git"));
        assert!(is_url("git@github.com:org/repo.git"));
        assert!(is_url("file:///srv/x.git"));
        assert!(!is_url("repos/instances.git"));
        assert!(!is_url("/srv/x.git"));
        assert!(!is_url("./a:b"));
        assert!(!is_url(":x"));
    }

    #[test]
    fn branch_names_follow_git_rules() {
        for ok in ["main", "feature/x", "release-1.2", "a@b"] {
            assert!(valid_branch(ok), "{ok}");
        }
        for bad in
            ["", "-x", "a..b", "a/", "/a", "a//b", ".a", "a/.b", "a.lock", "a b", "a:b", "a~1", "a^", "a?", "a*", "a[", "a\\b", "@", "a@{1}", "a.", "a\u{7f}"]
        {
            assert!(!valid_branch(bad), "{bad:?}");
        }
    }

    #[test]
    fn paths_are_normalised_and_escapes_refused() {
        assert_eq!(normalize_path("").unwrap(), "");
        assert_eq!(normalize_path("/").unwrap(), "");
        assert_eq!(normalize_path("./prod//edp/").unwrap(), "prod/edp");
        assert!(normalize_path("../x").is_err());
        assert!(normalize_path("a/../../x").is_err());
        assert!(normalize_path(".git/hooks").is_err());
        assert!(normalize_path("a/.GIT").is_err());
        assert!(normalize_path("a\0b").is_err());
    }

    fn entry(rel: &str, content: &str) -> Entry {
        Entry { rel: rel.into(), executable: false, bytes: content.as_bytes().to_vec(), disk: None }
    }

    #[test]
    fn the_content_hash_is_order_independent_and_sees_names_and_contents() {
        let a = content_hash(&[entry("a.yaml", "x"), entry("b/c.yaml", "y")]);
        assert_eq!(a, content_hash(&[entry("b/c.yaml", "y"), entry("a.yaml", "x")]));
        assert_ne!(a, content_hash(&[entry("a.yaml", "x"), entry("b/c.yaml", "z")]));
        assert_ne!(a, content_hash(&[entry("a.yml", "x"), entry("b/c.yaml", "y")]));
        // The documented formula.
        let mut text = Vec::new();
        text.extend_from_slice(format!("a.yaml\0{}\n", sha256_hex(b"x")).as_bytes());
        assert_eq!(content_hash(&[entry("a.yaml", "x")]), sha256_hex(&text));
    }

    #[test]
    fn files_maps_are_checked() {
        let map = |pairs: &[(&str, Value)]| Value::Map(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect());
        let ok = files_of(&map(&[("./a.txt", Value::str("1")), ("b/c", Value::str("2"))])).unwrap();
        assert_eq!(ok.iter().map(|e| e.rel.as_str()).collect::<Vec<_>>(), vec!["a.txt", "b/c"]);
        assert_eq!(files_of(&map(&[("a", Value::str("1")), ("./a", Value::str("2"))])).unwrap_err().code, "P6801");
        assert_eq!(files_of(&map(&[("../a", Value::str("1"))])).unwrap_err().code, "P6801");
        assert_eq!(files_of(&map(&[("/", Value::str("1"))])).unwrap_err().code, "P6801");
        assert_eq!(files_of(&map(&[("a", Value::Int(1))])).unwrap_err().code, "P6801");
        assert_eq!(files_of(&Value::str("x")).unwrap_err().code, "P6801");
    }

    #[test]
    fn a_source_holds_exactly_the_rendered_set() {
        let set: BTreeMap<String, String> = [("a", "x"), ("b/c", "y")].iter().map(|(p, c)| (p.to_string(), sha256_hex(c.as_bytes()))).collect();
        assert!(check_rendered("out", &[entry("a", "x"), entry("b/c", "y")], &set).is_ok());
        let d = check_rendered("out", &[entry("a", "x"), entry("b/c", "y"), entry("stray", "?")], &set).expect_err("an extra file");
        assert_eq!(d.code, "P6820");
        assert!(d.help.contains("`stray`"), "{}", d.help);
        let d = check_rendered("out", &[entry("a", "edited"), entry("b/c", "y")], &set).expect_err("a changed file");
        assert_eq!(d.code, "P6821");
        assert!(d.help.contains("`a`"), "{}", d.help);
        assert_eq!(check_rendered("out", &[entry("a", "x")], &set).expect_err("a missing file").code, "P6821");
        // The plan knows the hash the commit will have.
        let mut m = Map::default();
        m.insert("source_files".into(), Value::Map(set.iter().map(|(k, v)| (k.clone(), Value::str(v.clone()))).collect()));
        assert_eq!(rendered_set(&m).expect("valid").expect("set"), set);
        assert_eq!(hash_of(&set), content_hash(&[entry("b/c", "y"), entry("a", "x")]));
        m.insert("source_files".into(), Value::Map([("../x".to_string(), Value::str("0".repeat(64)))].into_iter().collect()));
        assert_eq!(rendered_set(&m).expect_err("escapes").code, "P6801");
    }

    #[test]
    fn exactly_one_of_source_and_files() {
        let base = Path::new("/nonexistent");
        let mut m = Map::default();
        assert_eq!(desired(&m, base).unwrap_err().code, "P6801");
        m.insert("source".into(), Value::str("dir"));
        m.insert("files".into(), Value::Map(Map::default()));
        assert_eq!(desired(&m, base).unwrap_err().code, "P6801");
        m.insert("source".into(), Value::Null);
        assert_eq!(desired(&m, base).unwrap_err().code, "P6803");
        m.insert("files".into(), Value::Null);
        m.insert("source".into(), Value::str("missing"));
        assert_eq!(desired(&m, base).unwrap_err().code, "P6802");
    }

    #[test]
    fn overlapping_entries_are_what_a_path_replaces() {
        assert!(overlaps("apps/x", "apps/x/a.yaml"));
        assert!(overlaps("apps/x", "apps/x"));
        assert!(overlaps("apps/x", "apps"));
        assert!(!overlaps("apps/x", "apps/xy/a.yaml"));
        assert!(!overlaps("apps/x", "apps/y"));
        assert!(overlaps("", "anything"));
        assert_eq!(under("apps", "apps/a/b"), Some("a/b"));
        assert_eq!(under("apps", "appsx/a"), None);
        assert_eq!(under("", "x"), Some("x"));
    }

    #[test]
    fn git_output_is_parsed_without_panics() {
        let ls = b"100644 blob aaaa\tapps/a b.yaml\x00100755 blob bbbb\trun.sh\0garbage\x00040000 tree cccc\tdir\0";
        let parsed = parse_ls_tree(ls);
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[0], ("100644".into(), "blob".into(), "aaaa".into(), "apps/a b.yaml".into()));
        assert_eq!(parsed[2].1, "tree");
        let cat = b"aaaa blob 3\nx\ny\nbbbb blob 0\n\n";
        assert_eq!(parse_cat_file(cat).unwrap(), vec![b"x\ny".to_vec(), vec![]]);
        assert!(parse_cat_file(b"aaaa blob 99\nshort\n").is_none());
        assert!(parse_cat_file(b"no newline").is_none());
        assert!(parse_cat_file(b"aaaa blob x\n").is_none());
        assert!(parse_cat_file(b"aaaa missing\n").is_none());
    }

    #[test]
    fn push_rejections_are_told_apart() {
        let out = |ok: bool, stdout: &str, stderr: &str| {
            #[cfg(unix)]
            let status = std::os::unix::process::ExitStatusExt::from_raw(if ok { 0 } else { 1 << 8 });
            #[cfg(windows)]
            let status = std::os::windows::process::ExitStatusExt::from_raw(if ok { 0 } else { 1 });
            Output { status, stdout: stdout.as_bytes().to_vec(), stderr: stderr.into() }
        };
        assert!(matches!(push_result(&out(true, "", "")), Ok(Pushed::Yes)));
        assert!(matches!(push_result(&out(false, "To x\n!\tabc:refs/heads/main\t[rejected] (fetch first)\nDone\n", "error")), Ok(Pushed::Behind)));
        assert!(push_result(&out(false, "To x\n!\tabc:refs/heads/main\t[remote rejected] (hook declined)\nDone\n", "error")).is_err());
        assert!(push_result(&out(false, "", "fatal: could not read Username")).is_err());
    }

    #[test]
    fn the_plan_knows_the_hash_of_files_and_hides_credentials() {
        let f = GitFactory::new();
        let mut config = Map::default();
        config.insert("repository".into(), Value::str("https://u:secret@host/x.git"));
        config.insert("branch".into(), Value::str("main"));
        config.insert("path".into(), Value::str("prod/"));
        config.insert("files".into(), Value::Map([("a".to_string(), Value::str("1"))].into_iter().collect()));
        let planned = f.plan("commit", None, &config);
        assert!(planned["repository"].is_sensitive_deep());
        assert_eq!(planned["id"], Value::str("https://***@host/x.git#main:prod"));
        assert_eq!(planned["content_hash"], Value::String(content_hash(&[entry("a", "1")])));
        assert_eq!(planned["commit"], Value::Unknown);
        // Same content again (only the message changed): the commit stays.
        let mut prior = planned.clone();
        prior.insert("commit".into(), Value::str("abc"));
        config.insert("message".into(), Value::str("m"));
        let again = f.plan("commit", Some(&prior), &config);
        assert_eq!(again["commit"], Value::str("abc"));
        // A source directory: unknown until apply unless nothing changed.
        let mut src = config.clone();
        src.insert("files".into(), Value::Null);
        src.insert("source".into(), Value::str("out"));
        assert_eq!(f.plan("commit", None, &src)["content_hash"], Value::Unknown);
        let mut prior = src.clone();
        prior.insert("content_hash".into(), Value::str("h"));
        prior.insert("commit".into(), Value::str("c"));
        src.insert("message".into(), Value::str("other"));
        assert_eq!(f.plan("commit", Some(&prior), &src)["content_hash"], Value::str("h"));
        assert_eq!(f.plan("commit", Some(&prior), &src)["commit"], Value::str("c"));
        src.insert("triggers".into(), Value::str("new"));
        assert_eq!(f.plan("commit", Some(&prior), &src)["content_hash"], Value::Unknown);
    }

    #[test]
    fn bad_provider_settings_are_diagnostics() {
        let f = GitFactory::new();
        let ctx = ProviderContext { project_dir: "/tmp".into() };
        let mut config = Map::default();
        config.insert("author_email".into(), Value::str("<evil>"));
        assert_eq!(f.configure(&config, &ctx).err().map(|d| d.code), Some("P6801"));
        config.insert("author_email".into(), Value::str("ok@example"));
        config.insert("author_name".into(), Value::str(" "));
        assert_eq!(f.configure(&config, &ctx).err().map(|d| d.code), Some("P6801"));
    }

    // ------------------------------------------------ against real git

    fn has_git() -> bool {
        Command::new("git").arg("--version").output().is_ok_and(|o| o.status.success())
    }

    fn sh_git(dir: &Path, a: &[&str]) -> String {
        let o = Command::new("git").arg("--git-dir").arg(dir).args(a).output().expect("git");
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    struct Fixture {
        _tmp: tempfile::TempDir,
        remote: PathBuf,
        provider: GitProvider,
    }

    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let remote = tmp.path().join("remote.git");
        assert!(Command::new("git").args(["init", "-q", "--bare"]).arg(&remote).status().unwrap().success());
        let ctx = ProviderContext { project_dir: tmp.path().to_path_buf() };
        let settings = Settings {
            author_name: "Plinth".into(),
            author_email: "plinth@localhost".into(),
            cache_dir: ctx.project_dir.join(".plinth/git"),
            base: ctx.project_dir.clone(),
        };
        Fixture { _tmp: tmp, remote, provider: GitProvider { schema: GitFactory::new().schema, settings: Arc::new(settings) } }
    }

    fn config(files: &[(&str, &str)], path: &str) -> Map {
        let mut m = Map::default();
        m.insert("repository".into(), Value::str("remote.git"));
        m.insert("branch".into(), Value::str("main"));
        m.insert("path".into(), Value::str(path));
        m.insert("files".into(), Value::Map(files.iter().map(|(k, v)| (k.to_string(), Value::str(*v))).collect()));
        m
    }

    fn object(address: &str) -> ObjectRef {
        ObjectRef { address: address.into(), rtype: "commit".into(), token: String::new() }
    }

    #[tokio::test]
    async fn writes_once_reads_back_and_deletes() {
        if !has_git() {
            eprintln!("skipped: no git");
            return;
        }
        let fx = fixture();
        let p = &fx.provider;
        let created =
            p.create(CreateRequest { object: object("git.commit.a"), config: config(&[("a.yaml", "1"), ("b/c.yaml", "2")], "apps/x") }).await.unwrap();
        let head = sh_git(&fx.remote, &["rev-parse", "main"]);
        assert_eq!(created["commit"], Value::String(head.clone()));
        assert_eq!(sh_git(&fx.remote, &["show", "main:apps/x/b/c.yaml"]), "2");
        assert_eq!(sh_git(&fx.remote, &["log", "--format=%an <%ae> %s", "main"]), "Plinth <plinth@localhost> plinth: update apps/x");
        // The same content again: no commit.
        let again = p
            .update(UpdateRequest { object: object("git.commit.a"), prior: created.clone(), config: config(&[("a.yaml", "1"), ("b/c.yaml", "2")], "apps/x") })
            .await
            .unwrap();
        assert_eq!(again["commit"], Value::String(head.clone()));
        assert_eq!(sh_git(&fx.remote, &["rev-list", "--count", "main"]), "1");
        let read = p.read(ReadRequest { object: object("git.commit.a"), inputs: config(&[], "apps/x"), prior: Some(created.clone()) }).await.unwrap().unwrap();
        assert_eq!(read["content_hash"], created["content_hash"]);
        // Another resource beside it; then a change removes a file.
        p.create(CreateRequest { object: object("git.commit.b"), config: config(&[("z", "z")], "apps/y") }).await.unwrap();
        let changed =
            p.update(UpdateRequest { object: object("git.commit.a"), prior: created.clone(), config: config(&[("a.yaml", "3")], "apps/x") }).await.unwrap();
        assert_eq!(sh_git(&fx.remote, &["ls-tree", "-r", "--name-only", "main"]), "apps/x/a.yaml\napps/y/z");
        assert_ne!(changed["commit"], created["commit"]);
        // Unmanaged: a top-level directory nobody manages.
        let list = p.list(ListRequest { rtype: "commit".into(), managed: vec![config(&[], "apps/x")], ..Default::default() }).await.unwrap();
        assert!(list.is_empty(), "{list:?}");
        p.delete(DeleteRequest { object: object("git.commit.a"), prior: changed.clone() }).await.unwrap();
        assert_eq!(sh_git(&fx.remote, &["ls-tree", "-r", "--name-only", "main"]), "apps/y/z");
        assert_eq!(sh_git(&fx.remote, &["log", "-1", "--format=%s", "main"]), "plinth: remove apps/x");
        let count = sh_git(&fx.remote, &["rev-list", "--count", "main"]);
        // Deleting what is gone makes no commit; reading it finds nothing.
        p.delete(DeleteRequest { object: object("git.commit.a"), prior: changed.clone() }).await.unwrap();
        assert_eq!(sh_git(&fx.remote, &["rev-list", "--count", "main"]), count);
        assert!(p.read(ReadRequest { object: object("git.commit.a"), inputs: config(&[], "apps/x"), prior: Some(changed) }).await.unwrap().is_none());
        let mut other = config(&[], "apps/x");
        other.insert("branch".into(), Value::str("nope"));
        assert!(p.read(ReadRequest { object: object("git.commit.a"), inputs: other, prior: None }).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_missing_repository_is_a_diagnostic() {
        if !has_git() {
            return;
        }
        let fx = fixture();
        let mut c = config(&[("a", "1")], "");
        c.insert("repository".into(), Value::str("no-such-repo.git"));
        let err = fx.provider.create(CreateRequest { object: object("git.commit.a"), config: c }).await.unwrap_err();
        assert_eq!(err.code, "P6804", "{err:?}");
        let mut c = config(&[("a", "1")], "");
        c.insert("branch".into(), Value::str("bad..name"));
        let err = fx.provider.create(CreateRequest { object: object("git.commit.a"), config: c }).await.unwrap_err();
        assert_eq!(err.code, "P6801");
    }
}
