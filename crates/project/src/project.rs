//! Loading a project from disk: its `*.plinth` files, param values from the
//! command line, var files and `PLINTH_VAR_*`, and the [`RunHost`] that
//! answers `env()`/`file()`/`fileset()` and records what it answered (a saved
//! plan replays those answers).

use crate::diagnostic::{Diagnostic, Diags, Sources, Span};
use crate::eval::components::{Module, ModuleLoader};
use crate::eval::functions::FnHost;
use crate::eval::{Evaluator, Namespace};
use crate::syntax::{self, ast};
use crate::value::Value;
use crate::value::VarValue;
use indexmap::IndexMap;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub struct Project {
    pub dir: PathBuf,
    pub sources: Sources,
    pub files: Vec<ast::File>,
    /// The configuration files among `sources` (root and modules; not var
    /// files): what [`Project::source_hash`] covers.
    pub config_files: Vec<u32>,
}

impl Project {
    /// SHA-256 over every configuration file's name and content: a saved
    /// plan records it. Computed on demand (hashing costs ~3% of a plan).
    pub fn source_hash(&self) -> String {
        let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
        for file in self.config_files.iter().filter_map(|&id| self.sources.get(id)) {
            let base = Path::new(&file.name).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            sha2::Digest::update(&mut hasher, base.as_bytes());
            sha2::Digest::update(&mut hasher, [0u8]);
            sha2::Digest::update(&mut hasher, file.text.as_bytes());
        }
        hex::encode(sha2::Digest::finalize(hasher))
    }
}

/// Reads and parses every `*.plinth` file directly in `dir`.
pub fn load(dir: &Path) -> Result<Project, (Sources, Diags)> {
    let mut sources = Sources::default();
    let paths = match config_paths(dir) {
        Ok(p) => p,
        Err(d) => return Err((sources, vec![d])),
    };
    let mut config_files = Vec::new();
    match parse_files(&mut sources, paths, &mut config_files) {
        Ok(files) => Ok(Project { dir: dir.to_path_buf(), sources, files, config_files }),
        Err(diags) => Err((sources, diags)),
    }
}

/// Checks that `dir` is a project directory (it holds `*.plinth` files)
/// without parsing anything: every command that takes a project directory
/// calls it before it writes anything, so that a mistyped directory is an
/// error (`P2050`) and not a new, empty project with a state in it.
pub fn check_dir(dir: &Path) -> Result<(), Diagnostic> {
    config_paths(dir).map(|_| ())
}

/// The `*.plinth` files directly in `dir`, sorted; `P2050` when there are
/// none or the directory cannot be read.
fn config_paths(dir: &Path) -> Result<Vec<PathBuf>, Diagnostic> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Diagnostic::new("P2050", "cannot read the project directory")
            .help(format!("{}: {e}. Pass the project directory as the last argument, or run Plinth inside it.", dir.display()))
    })?;
    let mut paths: Vec<PathBuf> =
        entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "plinth")).collect();
    paths.sort();
    if paths.is_empty() {
        return Err(Diagnostic::new("P2050", "no configuration files").help(format!(
            "{} contains no `*.plinth` file. Plinth reads every `*.plinth` file directly in the project directory; see examples/quickstart.",
            dir.display()
        )));
    }
    Ok(paths)
}

fn parse_files(sources: &mut Sources, paths: Vec<PathBuf>, ids: &mut Vec<u32>) -> Result<Vec<ast::File>, Diags> {
    let mut files = Vec::new();
    let mut diags = Vec::new();
    for path in paths {
        let name = display_path(&path);
        let bytes = match read_capped(&path) {
            Ok(b) => b,
            Err(e) => {
                diags.push(Diagnostic::new("P2050", "cannot read a configuration file").help(format!("{name}: {e}.")));
                continue;
            }
        };
        let (file_id, parsed) = parse_bytes(sources, &name, bytes, syntax::parse_file);
        ids.push(file_id);
        match parsed {
            Some(Ok(f)) => files.push(f),
            Some(Err(d)) => diags.extend(d),
            None => diags.push(invalid_utf8(sources, file_id)),
        }
    }
    if diags.is_empty() {
        Ok(files)
    } else {
        Err(diags)
    }
}

/// The root module's params (the ones `-var` and environments set).
pub fn root_params(files: &[ast::File]) -> crate::value::FxIndexMap<String, ast::ParamDecl> {
    files
        .iter()
        .flat_map(|f| f.items.iter())
        .filter_map(|i| match i {
            ast::Item::Param(p) => Some((p.name.name.clone(), p.clone())),
            _ => None,
        })
        .collect()
}

/// Loads the modules components name: resolves the source to a directory
/// ([`crate::sources`]: relative paths, the catalogue, git sources pinned in
/// `plinth.lock`) and parses its `*.plinth` files once, however many
/// instances use it.
pub struct Loader {
    pub project_dir: PathBuf,
    pub sources: Sources,
    /// Ids of the module files read (for the source hash).
    pub module_files: Vec<u32>,
    pub resolver: crate::sources::Resolver,
    cache: std::collections::HashMap<PathBuf, std::sync::Arc<Module>>,
}

impl Loader {
    pub fn new(project_dir: &Path, sources: Sources, mode: crate::sources::Mode) -> Result<Loader, Diagnostic> {
        let resolver = crate::sources::Resolver::new(project_dir, mode)?;
        Ok(Loader { project_dir: project_dir.to_path_buf(), sources, module_files: Vec::new(), resolver, cache: Default::default() })
    }

    /// The directories of the modules loaded so far (relative to the
    /// project directory, or absolute).
    pub fn module_dirs(&self) -> impl Iterator<Item = &Path> {
        self.cache.keys().map(PathBuf::as_path)
    }
}

/// `a/./b/../c` → `a/c`, lexically.
fn normalize(path: &Path) -> PathBuf {
    let mut out: Vec<std::ffi::OsString> = Vec::new();
    let mut absolute = false;
    for c in path.components() {
        match c {
            std::path::Component::RootDir => absolute = true,
            std::path::Component::CurDir | std::path::Component::Prefix(_) => {}
            std::path::Component::ParentDir => {
                if out.last().is_some_and(|l| l != "..") {
                    out.pop();
                } else if !absolute {
                    out.push("..".into());
                }
            }
            std::path::Component::Normal(n) => out.push(n.to_os_string()),
        }
    }
    let mut p = if absolute { PathBuf::from("/") } else { PathBuf::new() };
    for c in out {
        p.push(c);
    }
    if p.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        p
    }
}

impl ModuleLoader for Loader {
    fn import(&mut self, decl: &ast::ImportDecl) -> Result<(), Diagnostic> {
        self.resolver.import_catalogue(&decl.source.value, decl.version.as_ref().map(|v| v.value.as_str()), decl.source.span)
    }

    fn load(&mut self, from_dir: &str, decl: &ast::ComponentDecl) -> Result<std::sync::Arc<Module>, Diags> {
        let resolved = self
            .resolver
            .resolve(&decl.source.value, decl.version.as_ref().map(|v| v.value.as_str()), Path::new(from_dir), decl.source.span)
            .map_err(|d| vec![d])?;
        let rel = normalize(&resolved);
        if let Some(m) = self.cache.get(&rel) {
            return Ok(m.clone());
        }
        let dir = if rel.is_absolute() { rel.clone() } else { self.project_dir.join(&rel) };
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "plinth")).collect())
            .unwrap_or_default();
        paths.sort();
        let files = parse_files(&mut self.sources, paths, &mut self.module_files)?;
        let module = std::sync::Arc::new(Module { dir: rel.to_string_lossy().replace('\\', "/"), files });
        self.cache.insert(rel, module.clone());
        Ok(module)
    }
}

fn display_path(path: &Path) -> String {
    let cwd = std::env::current_dir().unwrap_or_default();
    path.strip_prefix(&cwd).unwrap_or(path).display().to_string()
}

/// Adds a file to `sources` (lossily when not UTF-8) and parses it; None when
/// the bytes are not UTF-8.
fn parse_bytes<T>(sources: &mut Sources, name: &str, bytes: Vec<u8>, parse: impl Fn(u32, &str) -> Result<T, Diags>) -> (u32, Option<Result<T, Diags>>) {
    match String::from_utf8(bytes) {
        Ok(text) => {
            let id = sources.add(name, text.as_str());
            (id, Some(parse(id, &text)))
        }
        Err(e) => {
            let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
            let id = sources.add(name, text.as_str());
            (id, None)
        }
    }
}

fn invalid_utf8(sources: &Sources, file: u32) -> Diagnostic {
    let text = sources.get(file).map(|f| f.text.clone()).unwrap_or_default();
    let pos = text.find('\u{FFFD}').unwrap_or(0);
    Diagnostic::new("P1004", "file is not valid UTF-8")
        .help("Plinth files must be UTF-8 text. Re-save the file as UTF-8 or remove the binary content.")
        .label(Span::new(file, pos, pos + '\u{FFFD}'.len_utf8().min(text.len() - pos)), "invalid bytes here")
}

/// Where param values come from, in increasing precedence: `PLINTH_VAR_*`,
/// `--var-file`s (in order), `-var`s (in order).
pub fn collect_vars(
    sources: &mut Sources,
    params: &crate::value::FxIndexMap<String, ast::ParamDecl>,
    var_files: &[PathBuf],
    vars: &[String],
    host: &mut dyn FnHost,
) -> Result<IndexMap<String, VarValue>, Diags> {
    let mut out: IndexMap<String, VarValue> = IndexMap::default();
    let mut diags = Vec::new();
    let is_string = |name: &str| params.get(name).and_then(|p| p.ty.as_ref()).is_some_and(|t| t.ty == ast::Type::String);
    let param_names: Vec<&str> = params.keys().map(String::as_str).collect();
    let unknown = |name: &str, origin: &str, span: Option<Span>| {
        let d = Diagnostic::new("P2051", "value for an undeclared param").help(format!(
            "{origin} sets `{name}`, but the configuration declares no `param {name}`.{}",
            crate::diagnostic::suggestion(name, param_names.iter().copied())
        ));
        match span {
            Some(s) => d.label(s, "not a param"),
            None => d,
        }
    };

    let mut env_vars: Vec<(String, String)> = std::env::vars().filter(|(k, _)| k.starts_with("PLINTH_VAR_")).collect();
    env_vars.sort();
    for (key, raw) in env_vars {
        let name = key.trim_start_matches("PLINTH_VAR_").to_string();
        if !params.contains_key(&name) {
            continue; // like TF_VAR_*, undeclared ones are ignored
        }
        let origin = key.clone();
        match parse_cli_value(sources, &origin, &raw, is_string(&name), host) {
            Ok(value) => {
                out.insert(name, VarValue { value, origin, span: None });
            }
            Err(d) => diags.extend(d),
        }
    }
    for path in var_files {
        let name = display_path(path);
        let bytes = match read_capped(path) {
            Ok(b) => b,
            Err(e) => {
                diags.push(Diagnostic::new("P2052", "cannot read a var file").help(format!("{name}: {e}.")));
                continue;
            }
        };
        if path.extension().is_some_and(|x| x == "json") {
            match serde_json::from_slice::<serde_json::Value>(&bytes) {
                Ok(serde_json::Value::Object(map)) => {
                    for (k, v) in map {
                        if !params.contains_key(&k) {
                            diags.push(unknown(&k, &name, None));
                            continue;
                        }
                        out.insert(k, VarValue { value: Value::from_json(&v), origin: name.clone(), span: None });
                    }
                }
                Ok(_) => diags.push(Diagnostic::new("P2052", "invalid var file").help(format!("{name} must hold a JSON object of param values."))),
                Err(e) => diags.push(Diagnostic::new("P2052", "invalid var file").help(format!("{name} is not valid JSON: {e}."))),
            }
            continue;
        }
        let (file_id, parsed) = parse_bytes(sources, &name, bytes, syntax::parse_assignments);
        let attrs = match parsed {
            Some(Ok(a)) => a,
            Some(Err(d)) => {
                diags.extend(d);
                continue;
            }
            None => {
                diags.push(invalid_utf8(sources, file_id));
                continue;
            }
        };
        let ns = Namespace::default();
        for attr in attrs {
            if !params.contains_key(&attr.name.name) {
                diags.push(unknown(&attr.name.name, &name, Some(attr.name.span)));
                continue;
            }
            match Evaluator::new(&ns, host).eval(&attr.value) {
                Ok(value) => {
                    out.insert(attr.name.name.clone(), VarValue { value, origin: name.clone(), span: Some(attr.value.span) });
                }
                Err(d) => diags.push(d.help("Values in var files must be constants (literals and functions of literals).")),
            }
        }
    }
    for item in vars {
        let Some((name, raw)) = item.split_once('=') else {
            diags.push(Diagnostic::new("P2053", "invalid -var").help(format!("`-var {item}` must have the form `-var name=value`.")));
            continue;
        };
        let name = name.trim();
        if !params.contains_key(name) {
            diags.push(unknown(name, &format!("`-var {item}`"), None));
            continue;
        }
        let origin = format!("-var {name}=…");
        match parse_cli_value(sources, &origin, raw, is_string(name), host) {
            Ok(value) => {
                out.insert(name.to_string(), VarValue { value, origin, span: None });
            }
            Err(d) => diags.extend(d),
        }
    }
    if diags.is_empty() {
        Ok(out)
    } else {
        Err(diags)
    }
}

/// A value given as text: raw for string params, otherwise an expression
/// (`3`, `true`, `["a", "b"]`, `{ a = 1 }`), falling back to the raw string.
fn parse_cli_value(sources: &mut Sources, origin: &str, raw: &str, string_param: bool, host: &mut dyn FnHost) -> Result<Value, Diags> {
    if string_param {
        return Ok(Value::String(raw.to_string()));
    }
    let file = sources.add(origin, raw);
    match syntax::parse_expression(file, raw) {
        Ok(expr) => {
            let ns = Namespace::default();
            match Evaluator::new(&ns, host).eval(&expr) {
                Ok(v) => Ok(v),
                Err(_) => Ok(Value::String(raw.to_string())),
            }
        }
        Err(_) => Ok(Value::String(raw.to_string())),
    }
}

/// The outside world as expressions see it, recorded. In replay mode (a saved
/// plan) environment variables come from the recording. Files are read and
/// listed only inside the project directory and the directories of the
/// modules it loads ([`RunHost::allow`]), links resolved; `fileset` never
/// descends into a linked directory (no loops).
#[derive(Debug, Default)]
pub struct RunHost {
    pub base: PathBuf,
    pub env_lookups: BTreeMap<String, Option<String>>,
    pub replay: bool,
    /// Resolved directories files may be read from.
    roots: Vec<PathBuf>,
}

impl RunHost {
    pub fn new(base: &Path) -> RunHost {
        RunHost { base: base.to_path_buf(), env_lookups: BTreeMap::default(), replay: false, roots: vec![crate::fsutil::resolve(base)] }
    }
    /// Lets expressions read files under `dir` too (a module's directory
    /// outside the project).
    pub fn allow(&mut self, dir: &Path) {
        let dir = crate::fsutil::resolve(&self.base.join(dir));
        if !self.roots.iter().any(|r| dir.starts_with(r)) {
            self.roots.push(dir);
        }
    }
    fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }
    /// The path with its links resolved, if it stays inside an allowed
    /// directory.
    fn confined(&self, path: &str) -> Result<PathBuf, String> {
        let full = crate::fsutil::resolve(&self.resolve(path));
        if self.roots.iter().any(|r| full.starts_with(r)) {
            Ok(full)
        } else {
            Err("the path leaves the project directory".to_string())
        }
    }
}

/// Largest file Plinth reads as configuration, values or through `file()`
/// and `template()`: reading stops one byte past it, so `/dev/zero` or a
/// huge file costs at most this much memory.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// Reads at most [`MAX_FILE_BYTES`]; a larger file (or an endless device)
/// is an error naming the limit.
pub fn read_capped(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut out = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut out)?;
    if out.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the file is larger than {} MiB, the most Plinth reads", MAX_FILE_BYTES >> 20),
        ));
    }
    Ok(out)
}

impl FnHost for RunHost {
    fn env(&mut self, name: &str) -> Option<String> {
        if self.replay {
            return self.env_lookups.get(name).cloned().flatten();
        }
        let v = std::env::var(name).ok();
        self.env_lookups.insert(name.to_string(), v.clone());
        v
    }
    fn confine(&mut self, path: &str) -> Result<(), String> {
        self.confined(path).map(|_| ())
    }
    fn read_file(&mut self, path: &str) -> Result<String, String> {
        let full = self.confined(path)?;
        read_capped(&full)
            .and_then(|b| String::from_utf8(b).map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "stream did not contain valid UTF-8")))
            .map_err(|e| format!("cannot read {}: {e}", self.resolve(path).display()))
    }
    fn fileset(&mut self, dir: &str, pattern: &str) -> Result<Vec<String>, String> {
        let base = self.confined(dir)?;
        let options = glob::MatchOptions { case_sensitive: true, require_literal_separator: true, require_literal_leading_dot: false };
        let pattern = glob::Pattern::new(pattern).map_err(|e| format!("invalid pattern: {e}"))?;
        if !base.is_dir() {
            return Ok(Vec::new());
        }
        // Linked directories are not descended into (a link loop would
        // never end); linked files are listed, and `file()` checks where
        // they lead.
        let files = crate::fsutil::walk_files(&base, None).map_err(|e| e.to_string())?;
        Ok(files.into_iter().filter(|f| pattern.matches_with(f, options)).collect())
    }
}
