//! Environments (the Terragrunt replacement): the `envs/` tree of a project →
//! one [`Environment`] (param values and a state backend) per name.
//!
//! `envs/<path>.plinth` defines the environment `<path>` (`envs/prod/edp.plinth`
//! → `prod/edp`). It inherits every `defaults.plinth` on the way down
//! (`envs/defaults.plinth`, `envs/prod/defaults.plinth`, then the file itself):
//! later files win, objects merge deeply (key by key, recursively), lists and
//! scalars are replaced. The nearest `backend` block wins as a whole.
//!
//! Invariants: the IO of this module is reading `envs/`; values are constants
//! evaluated with an empty namespace, and `env()`/`file()` go through the
//! caller's [`FnHost`]. The state is never opened here:
//! [`Backend::state_address`] gives the address [`crate::state::open`]
//! accepts, and an operation passes the environment's name as `env`, so every
//! environment may share one backend. Diagnostics are `P2080`–`P2087` and
//! `P2130` (a run that needs `--env`).

use crate::diagnostic::{suggestion, Diagnostic, Diags, Sources, Span};
use crate::eval::functions::FnHost;
use crate::eval::{Evaluator, Namespace};
use crate::syntax::{self, ast};
use crate::value::VarValue;
use crate::value::{Map, Value};
use indexmap::IndexMap;
use plinth_state::backend::{settings_help, settings_of, KINDS};
use plinth_state::s3::{check_bucket, check_endpoint, check_prefix};
use plinth_state::sqlite::backend_address as sqlite_address;
use std::path::{Path, PathBuf};

/// The directory of environment files, inside the project directory.
pub const ENVS_DIR: &str = "envs";
/// Shared values of every environment at or below its directory.
pub const DEFAULTS_FILE: &str = "defaults.plinth";
/// Where the `sqlite` backend (and a project without any `backend` block)
/// keeps state, relative to the project directory.
pub use crate::state::backend::DEFAULT_SQLITE_PATH;
/// Deepest directory nesting under `envs/` that [`list`] walks (a symlink
/// loop ends here with a diagnostic instead of running forever).
const MAX_DIR_DEPTH: usize = 32;

/// One environment, loaded and merged.
#[derive(Debug, Clone)]
pub struct Environment {
    /// `prod/edp`.
    pub name: String,
    /// Param values after merging every file; each records the innermost
    /// file that set it and the span of that assignment's value.
    pub values: IndexMap<String, VarValue>,
    /// The nearest backend block (the file itself, then defaults upward);
    /// None means the default SQLite file.
    pub backend: Option<Backend>,
    /// The files read, outermost defaults first, the environment's own last.
    pub files: Vec<PathBuf>,
}

/// A `backend "<kind>" { … }` block, validated: `kind` is `sqlite`,
/// `postgres` or `s3`, and `settings` hold only that kind's settings with
/// the right types.
#[derive(Debug, Clone, PartialEq)]
pub struct Backend {
    pub kind: String,
    pub settings: Map,
    /// `backend "<kind>"` in its file.
    pub span: Span,
}

impl Backend {
    /// The state address [`crate::state::open`] accepts for this backend.
    /// A `postgres` backend with `url_env` reads that variable from the
    /// process environment, deliberately not through a recording host: a
    /// saved plan keeps the `env()` answers it saw, and the URL may hold a
    /// password.
    pub fn state_address(&self, project_dir: &Path, env: &str) -> Result<String, Diagnostic> {
        self.state_address_with(project_dir, env, &mut ProcessEnv)
    }

    /// [`Backend::state_address`] with `url_env` looked up through `host`.
    pub fn state_address_with(&self, project_dir: &Path, env: &str, host: &mut dyn FnHost) -> Result<String, Diagnostic> {
        match self.kind.as_str() {
            "sqlite" => {
                let path = self.string_setting("path")?.unwrap_or(DEFAULT_SQLITE_PATH);
                sqlite_address(project_dir, Path::new(path), env).map_err(|d| d.label(self.span, "this backend"))
            }
            "postgres" => {
                let url = match (self.string_setting("url")?, self.string_setting("url_env")?) {
                    (Some(url), _) => url.to_string(),
                    (None, Some(var)) => match host.env(var).filter(|v| !v.trim().is_empty()) {
                        Some(url) => url.trim().to_string(),
                        None => {
                            return Err(Diagnostic::new("P2086", "cannot form the state address")
                                .help(format!(
                                    "The state of environment `{env}` is in PostgreSQL at the URL in the environment variable `{var}`, which is not set. Export `{var}=postgres://USER:PASSWORD@HOST/DATABASE`, or set `url` in the backend block."
                                ))
                                .label(self.span, "this backend"))
                        }
                    },
                    (None, None) => return Err(self.invalid("`url` or `url_env` is required")),
                };
                crate::state::postgres::backend_address(&url, env).map_err(|d| d.label(self.span, "this backend"))
            }
            "s3" => {
                let bucket = self.string_setting("bucket")?.ok_or_else(|| self.invalid("`bucket` is required"))?;
                let prefix = self.string_setting("prefix")?.unwrap_or("").trim_matches('/');
                check_bucket(bucket).map_err(|why| self.invalid(&why))?;
                check_prefix(prefix).map_err(|why| self.invalid(&why))?;
                let endpoint = self.string_setting("endpoint")?;
                if let Some(endpoint) = endpoint {
                    check_endpoint(endpoint).map_err(|why| self.invalid(&why))?;
                }
                let region = self.string_setting("region")?;
                let path_style = match self.settings.get("path_style").map(plain) {
                    None | Some(Value::Null) => None,
                    Some(Value::Bool(b)) => Some(*b),
                    Some(_) => return Err(self.invalid("`path_style` must be true or false")),
                };
                Ok(crate::state::s3::backend_address(bucket, prefix, endpoint, region, path_style))
            }
            other => Err(Diagnostic::new("P2084", "unknown backend kind")
                .help(format!("`{other}` is not a backend kind; use one of `sqlite`, `postgres` or `s3`.{}", suggestion(other, KINDS.iter().copied())))
                .label(self.span, "this backend")),
        }
    }

    /// A string setting; None when absent or null.
    fn string_setting(&self, name: &str) -> Result<Option<&str>, Diagnostic> {
        match self.settings.get(name).map(plain) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(self.invalid(&format!("`{name}` must be a string"))),
        }
    }

    fn invalid(&self, why: &str) -> Diagnostic {
        Diagnostic::new("P2085", "invalid backend setting").help(format!("{why}. {}", settings_help(&self.kind))).label(self.span, "this backend")
    }
}

/// Looks through a sensitive mark.
fn plain(v: &Value) -> &Value {
    match v {
        Value::Sensitive(inner) => plain(inner),
        other => other,
    }
}

/// The process environment, unrecorded.
struct ProcessEnv;

impl FnHost for ProcessEnv {
    fn env(&mut self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
    fn read_file(&mut self, _path: &str) -> Result<String, String> {
        Err("files are not read while forming a state address".into())
    }
    fn fileset(&mut self, _dir: &str, _pattern: &str) -> Result<Vec<String>, String> {
        Err("files are not listed while forming a state address".into())
    }
}

/// `<project>/envs`, or `P2080` when it is not a directory.
fn envs_dir(project_dir: &Path) -> Result<PathBuf, Diagnostic> {
    let root = project_dir.join(ENVS_DIR);
    if root.is_dir() {
        return Ok(root);
    }
    let why = if root.exists() { "is not a directory" } else { "does not exist" };
    Err(Diagnostic::new("P2080", "no environments directory").help(format!(
        "{} {why}. Environments are files `envs/<name>.plinth` in the project directory (shared values in `envs/defaults.plinth`); create one, or run without an environment.",
        display_path(&root)
    )))
}

/// Every environment of the project: each `envs/**/<name>.plinth` except
/// `defaults.plinth`, as `prod/edp`, sorted. Hidden files and directories
/// (a leading `.`) are skipped.
pub fn list(project_dir: &Path) -> Result<Vec<String>, Diags> {
    let root = envs_dir(project_dir).map_err(|d| vec![d])?;
    let mut names = Vec::new();
    let mut diags = Vec::new();
    let mut ancestors = Vec::new();
    walk(&root, "", 0, &mut ancestors, &mut names, &mut diags);
    names.sort();
    names.dedup();
    if diags.is_empty() {
        Ok(names)
    } else {
        Err(diags)
    }
}

/// Lists `dir` into `names`. Linked directories are followed, except one
/// that leads back to a directory being walked (`ancestors`, by device and
/// inode): a link loop ends there instead of branching at every level.
fn walk(dir: &Path, prefix: &str, depth: usize, ancestors: &mut Vec<(u64, u64)>, names: &mut Vec<String>, diags: &mut Diags) {
    if depth > MAX_DIR_DEPTH {
        diags.push(Diagnostic::new("P2080", "cannot read the environments").help(format!(
            "{} is nested more than {MAX_DIR_DEPTH} directories below envs/ (a symbolic link loop?); remove the loop or flatten the tree.",
            display_path(dir)
        )));
        return;
    }
    let id = dir_id(dir);
    if id.is_some_and(|id| ancestors.contains(&id)) {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            diags.push(Diagnostic::new("P2080", "cannot read the environments").help(format!("{}: {e}. Check its permissions.", display_path(dir))));
            return;
        }
    };
    ancestors.extend(id);
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                diags.push(Diagnostic::new("P2080", "cannot read the environments").help(format!("{}: {e}. Check its permissions.", display_path(dir))));
                continue;
            }
        };
        let path = entry.path();
        let Some(file_name) = entry.file_name().to_str().map(str::to_string) else {
            diags.push(
                Diagnostic::new("P2087", "invalid environment file name")
                    .help(format!("{} is not valid UTF-8, so it cannot name an environment; rename it.", display_path(&path))),
            );
            continue;
        };
        if file_name.starts_with('.') {
            continue;
        }
        // Follows symbolic links (a loop stops at its first repeat).
        if path.is_dir() {
            walk(&path, &format!("{prefix}{file_name}/"), depth + 1, ancestors, names, diags);
        } else if let Some(stem) = file_name.strip_suffix(".plinth") {
            if file_name != DEFAULTS_FILE && !stem.is_empty() && path.is_file() {
                names.push(format!("{prefix}{stem}"));
            }
        }
    }
    if id.is_some() {
        ancestors.pop();
    }
}

/// The device and inode of a directory (links followed).
#[cfg(unix)]
fn dir_id(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
}
#[cfg(not(unix))]
fn dir_id(_dir: &Path) -> Option<(u64, u64)> {
    None
}

/// The components of a well-formed environment name (`prod/edp`), or None.
fn name_components(name: &str) -> Option<Vec<&str>> {
    if name.is_empty() || name.contains('\\') || name.contains('\0') {
        return None;
    }
    let parts: Vec<&str> = name.split('/').collect();
    let valid = parts.iter().all(|p| !p.is_empty() && !p.starts_with('.')) && parts.last().is_some_and(|l| *l != "defaults");
    valid.then_some(parts)
}

fn unknown_env(project_dir: &Path, name: &str) -> Diagnostic {
    // When envs/ cannot be listed, the listing's own errors are reported
    // elsewhere; say nothing about what exists.
    let listed = list(project_dir).ok();
    let known = listed.clone().unwrap_or_default();
    let mut help = if name.rsplit('/').next() == Some("defaults") {
        format!("`{name}` is not an environment: `defaults.plinth` files hold values shared by the environments at and below their directory.")
    } else {
        format!("`{name}` is not an environment: there is no `envs/{name}.plinth`.")
    };
    help.push_str(&suggestion(name, known.iter().map(String::as_str)));
    const SHOWN: usize = 20;
    match known.len() {
        _ if listed.is_none() => {}
        0 => help.push_str(" envs/ defines no environment yet: create `envs/<name>.plinth`."),
        n => {
            let shown: Vec<String> = known.iter().take(SHOWN).map(|k| format!("`{k}`")).collect();
            help.push_str(&format!(" Environments: {}", shown.join(", ")));
            if n > SHOWN {
                help.push_str(&format!(" and {} more", n - SHOWN));
            }
            help.push('.');
        }
    }
    Diagnostic::new("P2081", "unknown environment").help(help)
}

/// A run without `--env` of a project that has environments, where root
/// params without a default got no value (`missing`: name and declaration):
/// the run needs an environment. `P2130` names the params and lists the
/// environments. None when nothing is missing or the project defines no
/// environment (then the usual missing-value error applies).
pub fn needs_env(project_dir: &Path, missing: &[(&str, Span)]) -> Option<Diagnostic> {
    let (first, span) = *missing.first()?;
    let names = list(project_dir).ok().filter(|n| !n.is_empty())?;
    const SHOWN: usize = 20;
    let mut shown: Vec<String> = names.iter().take(SHOWN).map(|n| format!("`{n}`")).collect();
    if names.len() > SHOWN {
        shown.push(format!("and {} more", names.len() - SHOWN));
    }
    let params: Vec<String> = missing.iter().map(|(n, _)| format!("`{n}`")).collect();
    Some(
        Diagnostic::new("P2130", "this project needs `--env`")
            .help(format!(
                "{} {} no default and no value, and the project has environments that give param values. Choose one with --env {} (environments: {}; `plinth envs` lists them), or give the value with -var / PLINTH_VAR_{first}.",
                params.join(", "),
                if params.len() == 1 { "has" } else { "have" },
                names[0],
                shown.join(", ")
            ))
            .label(span, format!("`{first}` has no value without an environment")),
    )
}

/// One environment file, read and parsed.
struct Read {
    path: PathBuf,
    shown: String,
    ast: ast::EnvFile,
}

/// Loads environment `name`: reads its file and every `defaults.plinth` above
/// it (each added to `sources`), checks that every value names one of
/// `params` (the root module's params), evaluates the values as constants
/// and merges them. Every error of every file is reported at once.
pub fn load(project_dir: &Path, name: &str, sources: &mut Sources, params: &[&str], host: &mut dyn FnHost) -> Result<Environment, Diags> {
    let root = envs_dir(project_dir).map_err(|d| vec![d])?;
    let Some(components) = name_components(name) else { return Err(vec![unknown_env(project_dir, name)]) };
    let (last, parents) = match components.split_last() {
        Some(split) => split,
        None => return Err(vec![unknown_env(project_dir, name)]),
    };
    let mut dir = root.clone();
    let mut chain = Vec::new();
    let defaults = dir.join(DEFAULTS_FILE);
    if defaults.is_file() {
        chain.push(defaults);
    }
    for part in parents {
        dir.push(part);
        let defaults = dir.join(DEFAULTS_FILE);
        if defaults.is_file() {
            chain.push(defaults);
        }
    }
    let own = dir.join(format!("{last}.plinth"));
    if !own.is_file() {
        return Err(vec![unknown_env(project_dir, name)]);
    }
    chain.push(own);

    let mut diags = Vec::new();
    let mut read = Vec::new();
    for path in &chain {
        let shown = display_path(path);
        let bytes = match crate::project::read_capped(path) {
            Ok(b) => b,
            Err(e) => {
                diags.push(Diagnostic::new("P2080", "cannot read an environment file").help(format!("{shown}: {e}. Check its permissions.")));
                continue;
            }
        };
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
                let file = sources.add(shown.as_str(), text.as_str());
                let pos = text.find('\u{FFFD}').unwrap_or(0);
                let end = text[pos..].chars().next().map_or(pos, |c| pos + c.len_utf8());
                diags.push(
                    Diagnostic::new("P1004", "file is not valid UTF-8")
                        .help("Plinth files must be UTF-8 text. Re-save the file as UTF-8 or remove the binary content.")
                        .label(Span::new(file, pos, end), "invalid bytes here"),
                );
                continue;
            }
        };
        let file = sources.add(shown.as_str(), text.as_str());
        match syntax::parse_env_file(file, &text) {
            Ok(ast) => read.push(Read { path: path.clone(), shown, ast }),
            Err(d) => diags.extend(d),
        }
    }

    let mut values: IndexMap<String, VarValue> = IndexMap::new();
    let mut backend = None;
    let ns = Namespace::default();
    for file in &read {
        for (keyword, span) in &file.ast.declarations {
            diags.push(
                Diagnostic::new("P2082", "declaration in an environment file")
                    .help(format!(
                        "{} is an environment file: it holds only `name = value` assignments for the root module's params and an optional `backend \"<kind>\" {{ … }}` block. Move this `{keyword}` into a `*.plinth` file of the project directory{}.",
                        file.shown,
                        if *keyword == "let" || *keyword == "param" { ", or write the value as `name = value`" } else { "" }
                    ))
                    .label(*span, "not allowed here"),
            );
        }
        for (i, block) in file.ast.backends.iter().enumerate() {
            if i > 0 {
                diags.push(
                    Diagnostic::new("P2084", "invalid backend block")
                        .help(format!(
                            "{} has more than one `backend` block; an environment file has at most one (a nearer file overrides a farther one as a whole).",
                            file.shown
                        ))
                        .label(header_span(block), "second backend block")
                        .label(header_span(&file.ast.backends[0]), "first backend block"),
                );
                continue;
            }
            match backend_from_block(block, host) {
                Ok(b) => backend = Some(b),
                Err(d) => diags.extend(d),
            }
        }
        for attr in &file.ast.attrs {
            let param = attr.name.name.as_str();
            if !params.contains(&param) {
                diags.push(
                    Diagnostic::new("P2083", "value for an undeclared param")
                        .help(format!(
                            "{} sets `{param}`, but the root module declares no `param {param}`.{} Declare the param, or remove the value.",
                            file.shown,
                            suggestion(param, params.iter().copied())
                        ))
                        .label(attr.name.span, "not a param"),
                );
                continue;
            }
            let value = match Evaluator::new(&ns, host).eval(&attr.value) {
                Ok(v) => v,
                Err(d) => {
                    let help = if d.help.is_empty() { String::new() } else { format!("{} ", d.help) };
                    diags.push(d.help(format!(
                        "{help}Values in environment files must be constants (literals, lists, objects and functions of literals); they cannot refer to params, lets or resources."
                    )));
                    continue;
                }
            };
            let origin = file.shown.clone();
            let span = Some(attr.value.span);
            match values.get_mut(param) {
                Some(existing) => {
                    let old = std::mem::replace(&mut existing.value, Value::Null);
                    *existing = VarValue { value: merge(old, value), origin, span };
                }
                None => {
                    values.insert(param.to_string(), VarValue { value, origin, span });
                }
            }
        }
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    Ok(Environment { name: name.to_string(), values, backend, files: read.into_iter().map(|r| r.path).collect() })
}

/// `backend "<kind>"`.
fn header_span(block: &ast::BackendBlock) -> Span {
    Span { end: block.kind_span.end.max(block.span.start), ..block.span }
}

/// Later wins; two objects merge key by key, recursively. A sensitive mark on
/// either object marks the merged one.
fn merge(base: Value, over: Value) -> Value {
    let is_map = |v: &Value| matches!(plain(v), Value::Map(_));
    if !(is_map(&base) && is_map(&over)) {
        return over;
    }
    let (base, base_sensitive) = strip_top_mark(base);
    let (over, over_sensitive) = strip_top_mark(over);
    let (Value::Map(mut base), Value::Map(over)) = (base, over) else { return Value::Null };
    for (key, value) in over {
        match base.get_mut(&key) {
            Some(slot) => {
                let old = std::mem::replace(slot, Value::Null);
                *slot = merge(old, value);
            }
            None => {
                base.insert(key, value);
            }
        }
    }
    if base_sensitive || over_sensitive {
        Value::Sensitive(Box::new(Value::Map(base)))
    } else {
        Value::Map(base)
    }
}

fn strip_top_mark(v: Value) -> (Value, bool) {
    match v {
        Value::Sensitive(inner) => (strip_top_mark(*inner).0, true),
        other => (other, false),
    }
}

/// Checks a backend block and evaluates its settings.
fn backend_from_block(block: &ast::BackendBlock, host: &mut dyn FnHost) -> Result<Backend, Diags> {
    let span = header_span(block);
    let kind = match &block.kind {
        None => {
            return Err(vec![Diagnostic::new("P2084", "invalid backend block")
                .help("The backend kind is a literal string: `backend \"sqlite\"`, `backend \"postgres\"` or `backend \"s3\"`.")
                .label(block.kind_span, "interpolated")])
        }
        Some(k) if !KINDS.contains(&k.as_str()) => {
            return Err(vec![Diagnostic::new("P2084", "unknown backend kind")
                .help(format!("`{k}` is not a backend kind; use one of `sqlite`, `postgres` or `s3`.{}", suggestion(k, KINDS.iter().copied())))
                .label(block.kind_span, "unknown kind")])
        }
        Some(k) => k.clone(),
    };
    let allowed = settings_of(&kind);
    let mut diags = Vec::new();
    let invalid = |why: String, span: Span, label: &str| {
        Diagnostic::new("P2085", "invalid backend setting").help(format!("{why} {}", settings_help(&kind))).label(span, label.to_string())
    };
    for nested in &block.body.blocks {
        diags.push(invalid(format!("`{}` is a block; backend settings are `name = value` attributes.", nested.name.name), nested.name.span, "not a setting"));
    }
    let ns = Namespace::default();
    let mut settings = Map::default();
    for attr in &block.body.attrs {
        let name = attr.name.name.as_str();
        if !allowed.contains(&name) {
            diags.push(invalid(
                format!("`{name}` is not a setting of the `{kind}` backend.{}", suggestion(name, allowed.iter().copied())),
                attr.name.span,
                "unknown setting",
            ));
            continue;
        }
        let value = match Evaluator::new(&ns, host).eval(&attr.value) {
            Ok(v) => v,
            Err(d) => {
                let help = if d.help.is_empty() { String::new() } else { format!("{} ", d.help) };
                diags.push(d.help(format!("{help}Backend settings must be constants (literals and functions of literals).")));
                continue;
            }
        };
        let problem = match (name, plain(&value)) {
            (_, Value::Null) => None,
            ("path_style", Value::Bool(_)) => None,
            ("path_style", other) => Some(format!("`path_style` must be true or false, not a {}.", other.type_name())),
            (_, Value::String(s)) => match name {
                "endpoint" => check_endpoint(s).err().map(|e| format!("{e}.")),
                "bucket" => check_bucket(s).err().map(|e| format!("{e}.")),
                "prefix" => check_prefix(s).err().map(|e| format!("{e}.")),
                "path" | "url_env" if s.trim().is_empty() => Some(format!("`{name}` is empty.")),
                "url_env" if s.contains(['=', '\0']) => Some("`url_env` names an environment variable (such as `PLINTH_PG_URL`), not a value.".to_string()),
                // Never echo a URL: it may hold a password.
                "url" if !(s.starts_with("postgres://") || s.starts_with("postgresql://")) => {
                    Some("`url` must start with postgres:// or postgresql://.".to_string())
                }
                _ => None,
            },
            (_, other) => Some(format!("`{name}` must be a string, not a {}.", other.type_name())),
        };
        match problem {
            Some(why) => diags.push(invalid(why, attr.value.span, "invalid value")),
            None => {
                settings.insert(name.to_string(), value);
            }
        }
    }
    let set = |name: &str| settings.get(name).is_some_and(|v| !matches!(plain(v), Value::Null));
    let missing = match kind.as_str() {
        "s3" if !set("bucket") => Some("The `s3` backend needs `bucket`.".to_string()),
        "postgres" if set("url") && set("url_env") => Some("Set either `url` or `url_env`, not both.".to_string()),
        "postgres" if !set("url") && !set("url_env") => Some("The `postgres` backend needs `url` or `url_env`.".to_string()),
        _ => None,
    };
    if let Some(why) = missing {
        if diags.is_empty() {
            diags.push(invalid(why, span, "in this backend"));
        }
    }
    if diags.is_empty() {
        Ok(Backend { kind, settings, span })
    } else {
        Err(diags)
    }
}

/// A path as shown to users: relative to the working directory where possible.
fn display_path(path: &Path) -> String {
    let cwd = std::env::current_dir().unwrap_or_default();
    path.strip_prefix(&cwd).unwrap_or(path).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Host {
        env: HashMap<String, String>,
    }

    impl FnHost for Host {
        fn env(&mut self, name: &str) -> Option<String> {
            self.env.get(name).cloned()
        }
        fn read_file(&mut self, path: &str) -> Result<String, String> {
            Err(format!("no file {path} in tests"))
        }
        fn fileset(&mut self, _dir: &str, _pattern: &str) -> Result<Vec<String>, String> {
            Ok(vec![])
        }
    }

    /// A project directory holding `files` (paths relative to it).
    fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for (path, text) in files {
            let full = dir.path().join(path);
            std::fs::create_dir_all(full.parent().expect("has a parent")).expect("mkdir");
            std::fs::write(&full, text).expect("write");
        }
        dir
    }

    const PARAMS: &[&str] = &["tenant", "name", "region", "replicas", "cfg", "zones", "backend"];

    fn load_env(dir: &Path, name: &str) -> (Result<Environment, Diags>, Sources) {
        let mut sources = Sources::default();
        let result = load(dir, name, &mut sources, PARAMS, &mut Host::default());
        (result, sources)
    }

    fn loaded(dir: &Path, name: &str) -> Environment {
        match load_env(dir, name) {
            (Ok(env), _) => env,
            (Err(d), sources) => panic!("{name} should load: {:?}", d.iter().map(|d| format!("{} {}", d.one_line(&sources), d.help)).collect::<Vec<_>>()),
        }
    }

    fn failure(dir: &Path, name: &str) -> (Diags, Sources) {
        match load_env(dir, name) {
            (Ok(env), _) => panic!("{name} should not load, got {env:?}"),
            (Err(d), sources) => (d, sources),
        }
    }

    fn value(env: &Environment, name: &str) -> serde_json::Value {
        env.values.get(name).unwrap_or_else(|| panic!("no value for {name}")).value.to_json()
    }

    /// (file name, 1-based line) of a diagnostic's first label.
    fn place(d: &Diagnostic, sources: &Sources) -> (String, usize) {
        let span = d.primary_span().unwrap_or_else(|| panic!("{} has no span", d.code));
        let file = sources.get(span.file).expect("span's file is in sources").name.clone();
        (file, sources.line_col(span).expect("span inside the file").0)
    }

    #[test]
    fn inheritance_goes_from_the_outermost_defaults_to_the_file() {
        let dir = project(&[
            ("envs/defaults.plinth", "tenant = \"root\"\nname = \"root\"\nregion = \"root\"\n"),
            ("envs/prod/defaults.plinth", "name = \"prod\"\nregion = \"prod\"\n"),
            ("envs/prod/edp.plinth", "# the edp environment\nregion = \"edp\"\n"),
            // Neither a sibling's defaults nor the environment `prod` apply to prod/edp.
            ("envs/staging/defaults.plinth", "tenant = \"staging\"\n"),
            ("envs/prod.plinth", "tenant = \"prod-env\"\n"),
        ]);
        let env = loaded(dir.path(), "prod/edp");
        assert_eq!(env.name, "prod/edp");
        assert_eq!(value(&env, "tenant"), "root");
        assert_eq!(value(&env, "name"), "prod");
        assert_eq!(value(&env, "region"), "edp");
        let files: Vec<PathBuf> = env.files.iter().map(|f| f.strip_prefix(dir.path()).expect("inside").to_path_buf()).collect();
        assert_eq!(files, [PathBuf::from("envs/defaults.plinth"), "envs/prod/defaults.plinth".into(), "envs/prod/edp.plinth".into()]);
        assert!(env.values["tenant"].origin.ends_with("envs/defaults.plinth"), "{}", env.values["tenant"].origin);
        assert!(env.values["name"].origin.ends_with("envs/prod/defaults.plinth"));
        assert!(env.values["region"].origin.ends_with("envs/prod/edp.plinth"));
        assert!(env.backend.is_none());

        let top = loaded(dir.path(), "prod");
        assert_eq!(value(&top, "tenant"), "prod-env");
        assert_eq!(value(&top, "name"), "root");
    }

    #[test]
    fn objects_merge_deeply_and_record_the_innermost_file() {
        let dir = project(&[
            ("envs/defaults.plinth", "cfg = {\n  db = { host = \"db\", port = 5432, opts = { ssl = true } }\n  name = \"x\"\n  tags = [\"a\", \"b\"]\n}\n"),
            ("envs/prod/defaults.plinth", "cfg = { db = { opts = { timeout = 5 } } }\n"),
            ("envs/prod/edp.plinth", "\n\ncfg = { db = { port = 6543, user = \"u\" }, tags = [\"c\"] }\n"),
        ]);
        let (env, sources) = match load_env(dir.path(), "prod/edp") {
            (Ok(env), sources) => (env, sources),
            (Err(d), _) => panic!("{d:?}"),
        };
        assert_eq!(
            value(&env, "cfg"),
            serde_json::json!({
                "db": { "host": "db", "port": 6543, "opts": { "ssl": true, "timeout": 5 }, "user": "u" },
                "name": "x",
                "tags": ["c"],
            })
        );
        let keys: Vec<&String> = match &env.values["cfg"].value {
            Value::Map(m) => m.keys().collect(),
            other => panic!("not an object: {other:?}"),
        };
        assert_eq!(keys, ["db", "name", "tags"], "the outer file's key order is kept");
        let cfg = &env.values["cfg"];
        assert!(cfg.origin.ends_with("envs/prod/edp.plinth"), "{}", cfg.origin);
        let span = cfg.span.expect("a span");
        assert_eq!(sources.line_col(span).map(|l| l.0), Some(3));
        assert!(sources.snippet(span).starts_with("{ db = { port"), "{}", sources.snippet(span));
    }

    #[test]
    fn lists_and_scalars_are_replaced_not_merged() {
        let dir = project(&[
            ("envs/defaults.plinth", "zones = [\"a\", \"b\", \"c\"]\ncfg = { a = 1 }\nreplicas = { n = 3 }\n"),
            ("envs/dev.plinth", "zones = [\"z\"]\ncfg = \"flat\"\nreplicas = 1\n"),
        ]);
        let env = loaded(dir.path(), "dev");
        assert_eq!(value(&env, "zones"), serde_json::json!(["z"]));
        assert_eq!(value(&env, "cfg"), "flat");
        assert_eq!(value(&env, "replicas"), 1);
    }

    #[test]
    fn a_value_for_an_undeclared_param_names_its_file_and_line() {
        let dir = project(&[("envs/defaults.plinth", "tenant = \"t\"\n"), ("envs/prod/edp.plinth", "name = \"edp\"\n\nreplcas = 3\n")]);
        let (diags, sources) = failure(dir.path(), "prod/edp");
        assert_eq!(diags.len(), 1, "{diags:?}");
        let d = &diags[0];
        assert_eq!(d.code, "P2083");
        let (file, line) = place(d, &sources);
        assert!(file.ends_with("envs/prod/edp.plinth"), "{file}");
        assert_eq!(line, 3);
        assert_eq!(sources.snippet(d.labels[0].span), "replcas");
        assert!(d.help.contains("Did you mean `replicas`?"), "{}", d.help);
        assert!(d.help.contains("envs/prod/edp.plinth"), "{}", d.help);
    }

    #[test]
    fn errors_of_every_file_are_reported_together() {
        let dir = project(&[
            ("envs/defaults.plinth", "tennant = \"t\"\n"),
            ("envs/prod/defaults.plinth", "name = oops\n"),
            ("envs/prod/edp.plinth", "zones = [\"a\"]\nregoin = \"x\"\n"),
        ]);
        let (diags, sources) = failure(dir.path(), "prod/edp");
        let found: Vec<(&str, String, usize)> = diags
            .iter()
            .map(|d| {
                let (file, line) = place(d, &sources);
                (d.code, file.rsplit(std::path::MAIN_SEPARATOR).take(2).collect::<Vec<_>>().join("<"), line)
            })
            .collect();
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0].0, "P2083");
        assert_eq!(found[0].1, "defaults.plinth<envs");
        assert!(found[1].0.starts_with("P2"), "a non-constant value is an evaluation error: {found:?}");
        assert_eq!(found[1].1, "defaults.plinth<prod");
        assert!(diags[1].help.contains("must be constants"), "{}", diags[1].help);
        assert_eq!((found[2].0, found[2].2), ("P2083", 2));
    }

    #[test]
    fn an_unknown_environment_lists_the_environments_with_a_suggestion() {
        let dir = project(&[("envs/defaults.plinth", ""), ("envs/prod/edp.plinth", ""), ("envs/prod/other.plinth", ""), ("envs/dev.plinth", "")]);
        let (diags, _) = failure(dir.path(), "prod/edq");
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].code, "P2081");
        assert!(diags[0].help.contains("Did you mean `prod/edp`?"), "{}", diags[0].help);
        assert!(diags[0].help.contains("`dev`, `prod/edp`, `prod/other`"), "{}", diags[0].help);
        for bad in ["defaults", "prod/defaults", "../envs/dev", "prod/../dev", "", "/dev", "prod/", "prod", ".hidden", "prod\\edp"] {
            let (diags, _) = failure(dir.path(), bad);
            assert_eq!(diags[0].code, "P2081", "{bad}");
        }
    }

    #[test]
    fn a_project_without_envs_is_a_diagnostic() {
        let dir = project(&[("main.plinth", "")]);
        let (diags, _) = failure(dir.path(), "prod");
        assert_eq!(diags[0].code, "P2080");
        assert!(diags[0].help.contains("does not exist"), "{}", diags[0].help);
        assert_eq!(list(dir.path()).expect_err("no envs/")[0].code, "P2080");
    }

    #[test]
    fn list_skips_defaults_and_sorts() {
        let dir = project(&[
            ("envs/zeta.plinth", ""),
            ("envs/prod/defaults.plinth", ""),
            ("envs/prod/edp.plinth", ""),
            ("envs/defaults.plinth", ""),
            ("envs/alpha.plinth", ""),
            ("envs/prod/eu/a.plinth", ""),
            ("envs/README.md", ""),
            ("envs/.hidden.plinth", ""),
            ("envs/.git/x.plinth", ""),
        ]);
        assert_eq!(list(dir.path()).expect("lists"), ["alpha", "prod/edp", "prod/eu/a", "zeta"]);
        let env = loaded(dir.path(), "prod/eu/a");
        assert_eq!(env.files.len(), 3, "envs/defaults, envs/prod/defaults, the file: {:?}", env.files);
    }

    const S3_ROOT: &str = "backend \"s3\" {\n  bucket = \"edp-state\"\n  endpoint = \"https://obs.eu-de.example.com\"\n  region = \"eu-de\"\n}\n";

    #[test]
    fn the_nearest_backend_block_wins_as_a_whole() {
        let dir = project(&[
            ("envs/defaults.plinth", S3_ROOT),
            ("envs/prod/edp.plinth", "name = \"edp\"\n"),
            ("envs/prod/eu/defaults.plinth", "backend \"s3\" {\n  bucket = \"eu-state\"\n}\n"),
            ("envs/prod/eu/a.plinth", ""),
            ("envs/dev/defaults.plinth", "backend \"postgres\" { url_env = \"PG\" }\n"),
            ("envs/dev/x.plinth", "backend \"sqlite\" { path = \"dev.db\" }\n"),
        ]);
        let inherited = loaded(dir.path(), "prod/edp").backend.expect("inherited from envs/defaults.plinth");
        assert_eq!(inherited.kind, "s3");
        assert_eq!(inherited.settings.get("bucket"), Some(&Value::str("edp-state")));

        let nearer = loaded(dir.path(), "prod/eu/a").backend.expect("from envs/prod/eu/defaults.plinth");
        assert_eq!(nearer.settings.get("bucket"), Some(&Value::str("eu-state")));
        assert_eq!(nearer.settings.get("endpoint"), None, "settings are not merged across files");

        let (env, sources) = match load_env(dir.path(), "dev/x") {
            (Ok(e), s) => (e, s),
            (Err(d), _) => panic!("{d:?}"),
        };
        let own = env.backend.expect("the file's own");
        assert_eq!(own.kind, "sqlite");
        assert_eq!(sources.snippet(own.span), "backend \"sqlite\"");
        assert!(sources.get(own.span.file).expect("in sources").name.ends_with("envs/dev/x.plinth"));
    }

    fn backend(kind: &str, body: &str) -> Backend {
        let text = format!("backend \"{kind}\" {{\n{body}\n}}\n");
        let dir = project(&[("envs/e.plinth", text.as_str())]);
        loaded(dir.path(), "e").backend.expect("a backend")
    }

    #[test]
    fn each_backend_kind_maps_to_a_state_address() {
        let project_dir = Path::new("/srv/infra");
        let default = backend("sqlite", "");
        assert_eq!(default.state_address(project_dir, "prod/edp").expect("sqlite"), "/srv/infra/.plinth/state.db");
        let relative = backend("sqlite", "path = \"state/all.db\"");
        assert_eq!(relative.state_address(project_dir, "dev").expect("sqlite"), "/srv/infra/state/all.db");
        let absolute = backend("sqlite", "path = \"/var/lib/plinth.db\"");
        assert_eq!(absolute.state_address(project_dir, "dev").expect("sqlite"), "/var/lib/plinth.db");

        let pg = backend("postgres", "url = \"postgres://plinth@db:5432/state?schema=edp\"");
        assert_eq!(pg.state_address(project_dir, "prod/edp").expect("postgres"), "postgres://plinth@db:5432/state?schema=edp");

        let from_env = backend("postgres", "url_env = \"EDP_STATE_URL\"");
        let mut host = Host::default();
        let unset = from_env.state_address_with(project_dir, "prod/edp", &mut host).expect_err("unset");
        assert_eq!(unset.code, "P2086");
        assert!(unset.help.contains("EDP_STATE_URL") && unset.help.contains("prod/edp"), "{}", unset.help);
        assert!(unset.primary_span().is_some());
        host.env.insert("EDP_STATE_URL".into(), "postgresql://u:secret@h/db".into());
        assert_eq!(from_env.state_address_with(project_dir, "prod/edp", &mut host).expect("set"), "postgresql://u:secret@h/db");
        host.env.insert("EDP_STATE_URL".into(), "mysql://u:secret@h/db".into());
        let wrong = from_env.state_address_with(project_dir, "prod/edp", &mut host).expect_err("not postgres");
        assert!(!wrong.help.contains("secret"), "a URL's password is never shown: {}", wrong.help);

        let s3 = backend("s3", "bucket = \"edp-state\"\nprefix = \"/plinth/\"\nendpoint = \"http://127.0.0.1:9000\"\nregion = \"eu-de\"\npath_style = true");
        assert_eq!(
            s3.state_address(project_dir, "prod/edp").expect("s3"),
            "s3://edp-state/plinth?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=eu-de&path_style=true"
        );
        let minimal = backend("s3", "bucket = \"b\"");
        assert_eq!(minimal.state_address(project_dir, "dev").expect("s3"), "s3://b");
    }

    #[test]
    fn backend_blocks_are_checked() {
        let cases: &[(&str, &str, &str)] = &[
            ("backend \"s4\" { bucket = \"b\" }", "P2084", "Did you mean `s3`?"),
            ("backend \"s3\" { bucekt = \"b\" }", "P2085", "Did you mean `bucket`?"),
            ("backend \"s3\" { bucket = 3 }", "P2085", "must be a string"),
            ("backend \"s3\" { bucket = \"b\"\n path_style = \"yes\" }", "P2085", "true or false"),
            ("backend \"s3\" { bucket = \"b\"\n endpoint = \"ftp://x\" }", "P2085", "http://"),
            ("backend \"s3\" { region = \"eu\" }", "P2085", "needs `bucket`"),
            ("backend \"postgres\" { }", "P2085", "`url` or `url_env`"),
            ("backend \"postgres\" { url = \"postgres://h/d\"\n url_env = \"X\" }", "P2085", "not both"),
            ("backend \"postgres\" { url = \"mysql://u:secret@h/d\" }", "P2085", "postgres://"),
            ("backend \"sqlite\" { retry { n = 1 } }", "P2085", "is a block"),
            ("backend \"${x}\" { }", "P2084", "literal string"),
            ("backend \"sqlite\" {}\nbackend \"sqlite\" {}", "P2084", "more than one"),
        ];
        for (text, code, help) in cases {
            let dir = project(&[("envs/e.plinth", text)]);
            let (diags, _) = failure(dir.path(), "e");
            assert_eq!(diags[0].code, *code, "{text}: {diags:?}");
            assert!(diags[0].help.contains(help), "{text}: {}", diags[0].help);
            assert!(!diags[0].help.contains("secret"), "{text}: {}", diags[0].help);
            assert!(diags[0].primary_span().is_some(), "{text}");
        }
    }

    #[test]
    fn a_syntax_error_is_a_p1xxx_diagnostic_in_its_file() {
        let dir = project(&[("envs/defaults.plinth", "tenant = \"t\"\n"), ("envs/prod.plinth", "name = \"x\"\nregion = \n")]);
        let (diags, sources) = failure(dir.path(), "prod");
        assert_eq!(diags.len(), 1);
        assert!(diags[0].code.starts_with("P1"), "{:?}", diags[0]);
        let (file, line) = place(&diags[0], &sources);
        assert!(file.ends_with("envs/prod.plinth"), "{file}");
        assert_eq!(line, 3, "the error is at the end of the file");

        let dup = project(&[("envs/prod.plinth", "name = \"x\"\nname = \"y\"\n")]);
        let (diags, _) = failure(dup.path(), "prod");
        assert_eq!(diags[0].code, "P1008");

        let binary = project(&[("envs/prod.plinth", "name = \"\u{0}\"")]);
        std::fs::write(binary.path().join("envs/prod.plinth"), b"name = \"\xff\"\n").expect("write");
        let (diags, _) = failure(binary.path(), "prod");
        assert_eq!(diags[0].code, "P1004");
    }

    #[test]
    fn declarations_are_refused_with_a_clear_message() {
        let dir = project(&[("envs/prod.plinth", "name = \"x\"\nparam region = \"eu\"\nresource core.data d {\n  input = 1\n}\nlet x = 1\n")]);
        let (diags, sources) = failure(dir.path(), "prod");
        let found: Vec<(&str, &str, usize)> = diags.iter().map(|d| (d.code, sources.snippet(d.labels[0].span), place(d, &sources).1)).collect();
        assert_eq!(found, [("P2082", "param region", 2), ("P2082", "resource core.data d", 3), ("P2082", "let x", 6)]);
        assert!(diags[0].help.contains("only `name = value` assignments"), "{}", diags[0].help);
        assert!(diags[0].help.contains("envs/prod.plinth"), "{}", diags[0].help);
    }

    #[test]
    fn keywords_are_ordinary_names_in_assignments() {
        let dir = project(&[("envs/prod.plinth", "backend = \"b\"\nname = { param = 1, resource = 2 }\n")]);
        let env = loaded(dir.path(), "prod");
        assert_eq!(value(&env, "backend"), "b");
        assert_eq!(value(&env, "name"), serde_json::json!({ "param": 1, "resource": 2 }));
        assert!(env.backend.is_none());
    }

    #[test]
    fn values_may_call_functions_through_the_host() {
        let dir = project(&[("envs/prod.plinth", "name = upper(\"edp\")\nregion = env(\"REGION\")\nbackend \"s3\" { bucket = env(\"BUCKET\") }\n")]);
        let mut host = Host::default();
        host.env.insert("REGION".into(), "eu-de".into());
        host.env.insert("BUCKET".into(), "from-env".into());
        let mut sources = Sources::default();
        let env = load(dir.path(), "prod", &mut sources, PARAMS, &mut host).expect("loads");
        assert_eq!(value(&env, "name"), "EDP");
        assert_eq!(value(&env, "region"), "eu-de");
        assert_eq!(env.backend.expect("backend").settings.get("bucket"), Some(&Value::str("from-env")));
    }

    #[test]
    fn merge_keeps_sensitive_marks() {
        let mut a = Map::default();
        a.insert("k".into(), Value::Int(1));
        let mut b = Map::default();
        b.insert("j".into(), Value::Int(2));
        let merged = merge(Value::Sensitive(Box::new(Value::Map(a))), Value::Map(b));
        assert!(matches!(merged, Value::Sensitive(_)), "{merged:?}");
        assert_eq!(merged.to_json(), serde_json::json!({ "k": 1, "j": 2 }));
    }
}
