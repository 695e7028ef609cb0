//! `file.tree`: renders a directory of templates (`source`) into a target
//! directory, the gomplate `--input-dir`/`--output-dir` pattern.
//!
//! Planning renders: the planned `files` (relative path → SHA-256 of the
//! rendered content) and `hash` come from the templates on disk whenever
//! every value they use is known, so a plan shows which rendered files a
//! template edit or a value change touches. Apply writes each file
//! atomically (an exclusively created temporary beside it, then a rename:
//! [`crate::fsutil::write_atomic`]) with the mode of its template, removes
//! the files it rendered before that are no longer rendered, and never
//! touches any other file in `target`. Read recomputes the SHA-256 and the
//! mode of every recorded file.
//!
//! Confinement: nothing is written, read or deleted through a symbolic link
//! inside `target` (`P6215`, naming the link); a template that is a link
//! leaving `source` is refused unless `follow_symlinks = true` (`P6216`);
//! a `target` that holds the project directory or the source, or lies
//! inside the source, is refused when planning (`P2101`); templates read
//! files only inside the project directory and the source (`P2100`).

use super::{get_mode, io_error, sha256_hex};
use crate::diagnostic::Diagnostic;
use crate::eval::functions::FnHost;
use crate::fsutil::{self, Within};
use crate::providers::{provider_error, AttrSchema, Observed, ResourceSchema};
use crate::template::{self, Delimiters};
use crate::types::Type;
use crate::value::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub fn schema() -> ResourceSchema {
    let strings = |items: &[&str]| Value::List(items.iter().map(|s| Value::str(*s)).collect());
    ResourceSchema::new("A directory of templates rendered into a target directory.")
        .attr("source", AttrSchema::required(Type::String, "the template directory; relative to the project directory"))
        .attr("target", AttrSchema::required(Type::String, "the output directory; relative to the project directory").forces_replacement())
        .attr("vars", AttrSchema::optional(Type::Any, "template variables: `vars.x`, `.Values.x` and bare top-level names").default(Value::Map(Map::default())))
        .attr(
            "env",
            AttrSchema::optional(Type::Map(Box::new(Type::String)), "the map templates read as `env.X` / `.Env.X`").default(Value::Map(Map::default())),
        )
        .attr("delimiters", AttrSchema::optional(Type::List(Box::new(Type::String)), "opening and closing tag markers").default(strings(&["{{", "}}"])))
        .attr(
            "include",
            AttrSchema::optional(Type::List(Box::new(Type::String)), "globs of template paths to render, relative to `source`").default(strings(&["**"])),
        )
        .attr("exclude", AttrSchema::optional(Type::List(Box::new(Type::String)), "globs of template paths to skip").default(strings(&[])))
        .attr(
            "follow_symlinks",
            AttrSchema::optional(Type::Bool, "render templates that are symbolic links to files outside `source`").default(Value::Bool(false)),
        )
        .attr("files", AttrSchema::computed(Type::Map(Box::new(Type::String)), "relative path → SHA-256 (hex) of the rendered file"))
        .attr("modes", AttrSchema::computed(Type::Map(Box::new(Type::String)), "relative path → permissions of the rendered file (octal, the template's)"))
        .attr("hash", AttrSchema::computed(Type::String, "SHA-256 over every rendered path and its hash: one value to depend on").derived())
        .attr("id", AttrSchema::computed(Type::String, "the absolute target directory"))
}

/// Rendered files by relative path ('/'-separated), sorted.
pub struct Rendered {
    pub files: BTreeMap<String, Vec<u8>>,
    /// The permissions of each file: its template's.
    pub modes: BTreeMap<String, u32>,
    pub sensitive: bool,
}

impl Rendered {
    pub fn hashes(&self) -> BTreeMap<String, String> {
        self.files.iter().map(|(k, v)| (k.clone(), sha256_hex(v))).collect()
    }
    fn mode_of(&self, rel: &str) -> u32 {
        self.modes.get(rel).copied().unwrap_or(DEFAULT_MODE)
    }
}

/// The mode of a rendered file whose template's is not known.
const DEFAULT_MODE: u32 = 0o644;

/// `modes` as a value: relative path → `"0755"`.
pub fn modes_value(modes: &BTreeMap<String, u32>) -> Value {
    Value::Map(modes.iter().map(|(k, m)| (k.clone(), Value::String(format!("{m:04o}")))).collect())
}

/// `files` as a value.
pub fn files_value(hashes: &BTreeMap<String, String>) -> Value {
    Value::Map(hashes.iter().map(|(k, v)| (k.clone(), Value::str(v.clone()))).collect())
}

/// SHA-256 over the sorted `path\0sha\n` lines.
pub fn tree_hash(hashes: &BTreeMap<String, String>) -> String {
    let mut text = String::new();
    for (path, sha) in hashes {
        text.push_str(path);
        text.push('\0');
        text.push_str(sha);
        text.push('\n');
    }
    sha256_hex(text.as_bytes())
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn config_error(message: &str, help: impl Into<String>) -> Diagnostic {
    provider_error("P6202", message.to_string(), help)
}

fn string_list(config: &Map, name: &str, default: &[&str]) -> Result<Vec<String>, Diagnostic> {
    match config.get(name).map(Value::peel) {
        None | Some(Value::Null) => Ok(default.iter().map(|s| s.to_string()).collect()),
        Some(Value::List(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(|| config_error("invalid file.tree setting", format!("`{name}` must be a list of strings."))))
            .collect(),
        Some(_) => Err(config_error("invalid file.tree setting", format!("`{name}` must be a list of strings."))),
    }
}

fn non_empty<'c>(config: &'c Map, name: &str) -> Result<&'c str, Diagnostic> {
    config
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| config_error("invalid file.tree setting", format!("`file.tree` needs a non-empty `{name}`.")))
}

/// The absolute target directory.
pub fn target_dir(base: &Path, config: &Map) -> Result<PathBuf, Diagnostic> {
    Ok(resolve(base, non_empty(config, "target")?))
}

/// True when every setting rendering depends on is known.
pub fn renderable(config: &Map) -> bool {
    ["source", "target", "vars", "env", "delimiters", "include", "exclude", "follow_symlinks"]
        .iter()
        .all(|k| !config.get(*k).is_some_and(Value::is_unknown_deep))
}

/// What the rendering directory is: a project (`file.tree`, or `plinth
/// render` in a directory holding `*.plinth` files or `.plinth/`), whose
/// configuration a target must never hold, or any directory.
#[derive(Clone, Copy, PartialEq)]
pub enum Base {
    Project,
    Directory,
}

/// True when `dir` holds a Plinth project (`*.plinth` files or `.plinth/`).
pub fn is_project(dir: &Path) -> bool {
    dir.join(".plinth").exists() || std::fs::read_dir(dir).is_ok_and(|entries| entries.flatten().any(|e| e.path().extension().is_some_and(|x| x == "plinth")))
}

/// `P2101` unless the target stays clear of the project's configuration and
/// of the source: it may not hold the project directory (its `*.plinth`
/// files and `.plinth/`) or the source, nor lie inside the source (every
/// apply would render the last output again, one level deeper). Links are
/// resolved first. The message starts with `` `target` `` so that the
/// engine points at that attribute.
pub fn check_layout(base: &Path, base_kind: Base, source: &Path, target: &Path, target_text: &str) -> Result<(), Diagnostic> {
    let (source_r, target_r) = (fsutil::resolve(source), fsutil::resolve(target));
    let why = if base_kind == Base::Project && fsutil::resolve(base).starts_with(&target_r) {
        "holds the project directory: rendering there would overwrite the project's own `*.plinth` files and `.plinth/` state"
    } else if source_r.starts_with(&target_r) {
        "holds the template directory: rendering there would overwrite the templates"
    } else if target_r.starts_with(&source_r) {
        "lies inside the template directory: every run would render its last output again, one level deeper"
    } else {
        return Ok(());
    };
    Err(Diagnostic::new("P2101", format!("`target` {target_text:?} overlaps the project or the templates")).help(format!(
        "{} ({}) {why}. Render into a directory of its own, outside `source` and not above the project, such as \"rendered\".",
        target_text,
        target_r.display()
    )))
}

/// What templates may reach from inside a tree: `env()` reads the `env`
/// attribute (never the process environment), `file()`/`fileset()` read
/// relative to the template directory, and only inside the project
/// directory and the template directory (links resolved).
struct TreeHost {
    source: PathBuf,
    roots: Vec<PathBuf>,
    env: Map,
}

impl TreeHost {
    fn confined(&self, path: &str) -> Result<PathBuf, String> {
        let full = fsutil::resolve(&resolve(&self.source, path));
        if self.roots.iter().any(|r| full.starts_with(r)) {
            Ok(full)
        } else {
            Err("the path leaves the project directory and the template directory".to_string())
        }
    }
}

impl FnHost for TreeHost {
    fn env(&mut self, name: &str) -> Option<String> {
        self.env.get(name).and_then(Value::as_str).map(str::to_string)
    }
    fn confine(&mut self, path: &str) -> Result<(), String> {
        self.confined(path).map(|_| ())
    }
    fn read_file(&mut self, path: &str) -> Result<String, String> {
        std::fs::read_to_string(self.confined(path)?).map_err(|e| e.to_string())
    }
    fn fileset(&mut self, dir: &str, pattern: &str) -> Result<Vec<String>, String> {
        let base = self.confined(dir)?;
        let pattern = glob::Pattern::new(pattern).map_err(|e| format!("invalid pattern: {e}"))?;
        let files = walk(&base, None).map_err(|e| e.message)?;
        Ok(files.into_iter().filter(|f| pattern.matches_with(f, match_options())).collect())
    }
}

/// `P6216` for a template that is a symbolic link resolving outside the
/// source (unless `follow`).
fn check_source_link(source: &Path, source_real: &Path, rel: &str, shown: &str, follow: bool) -> Result<(), Diagnostic> {
    let path = source.join(rel);
    let is_link = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
    if follow || !is_link || fsutil::resolve(&path).starts_with(source_real) {
        return Ok(());
    }
    Err(provider_error(
        "P6216",
        format!("template {shown} is a symbolic link out of the template directory"),
        format!(
            "{shown} links to a file outside `source`, which would pull that file into the rendered tree. Copy the file into the template directory, or set `follow_symlinks = true` on the `file.tree` if rendering it is intended."
        ),
    ))
}

fn match_options() -> glob::MatchOptions {
    glob::MatchOptions { case_sensitive: true, require_literal_separator: true, require_literal_leading_dot: false }
}

/// Every regular file under `dir` (relative, '/'-separated, sorted),
/// skipping `skip` and temporary files of an interrupted write; see
/// [`fsutil::walk_files`].
pub fn walk(dir: &Path, skip: Option<&Path>) -> Result<Vec<String>, Diagnostic> {
    fsutil::walk_files(dir, skip).map_err(|e| match e {
        fsutil::WalkError::Io { action, path, error } => io_error(action, &path, error),
        fsutil::WalkError::TooMany => config_error(
            "too many files in a file.tree source",
            format!(
                "{} holds more than {} files; point `source` at the template directory, or narrow it with `include`.",
                dir.display(),
                fsutil::MAX_WALK_FILES
            ),
        ),
    })
}

/// Renders every selected template of the tree. `config` must be known
/// (see [`renderable`]); sensitive marks are allowed.
pub fn render_tree(base: &Path, config: &Map) -> Result<Rendered, Diagnostic> {
    render_tree_in(base, Base::Project, config)
}

/// [`render_tree`] for a base directory of the given kind (`plinth render`
/// renders in any directory).
pub fn render_tree_in(base: &Path, base_kind: Base, config: &Map) -> Result<Rendered, Diagnostic> {
    let source_text = non_empty(config, "source")?;
    let source = resolve(base, source_text);
    let target = target_dir(base, config)?;
    let vars = config.get("vars").cloned().unwrap_or(Value::Map(Map::default()));
    let vars = if matches!(vars.peel(), Value::Null) { Value::Map(Map::default()) } else { vars };
    if !matches!(vars.peel(), Value::Map(_)) {
        return Err(config_error("invalid file.tree setting", "`vars` must be an object: `vars = { domain = \"example.org\" }`."));
    }
    let env = config.get("env").cloned().unwrap_or(Value::Map(Map::default()));
    let env = if matches!(env.peel(), Value::Null) { Value::Map(Map::default()) } else { env };
    let (env_plain, _) = env.clone().unmark();
    let env_map = match env_plain {
        Value::Map(m) => m,
        _ => return Err(config_error("invalid file.tree setting", "`env` must be a map of strings.")),
    };
    let delims = match config.get("delimiters") {
        None | Some(Value::Null) => Delimiters::default(),
        Some(v) => Delimiters::from_value(v)?,
    };
    let compile = |name: &str, globs: Vec<String>| -> Result<Vec<glob::Pattern>, Diagnostic> {
        globs
            .iter()
            .map(|g| {
                glob::Pattern::new(g).map_err(|e| config_error("invalid file.tree setting", format!("`{name}` holds {g:?}, which is not a valid glob: {e}.")))
            })
            .collect()
    };
    let include = compile("include", string_list(config, "include", &["**"])?)?;
    let exclude = compile("exclude", string_list(config, "exclude", &[])?)?;
    let follow = match config.get("follow_symlinks").map(Value::peel) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(config_error("invalid file.tree setting", "`follow_symlinks` must be true or false.")),
    };
    if !source.is_dir() {
        return Err(provider_error(
            "P2077",
            "cannot read the template directory",
            format!("`source` is {source_text:?}, which is not a directory ({}); relative paths resolve against the project directory.", source.display()),
        ));
    }
    check_layout(base, base_kind, &source, &target, non_empty(config, "target")?)?;
    let source_real = fsutil::resolve(&source);
    let roots = vec![fsutil::resolve(base), source_real.clone()];
    let mut host = TreeHost { source: source.clone(), roots, env: env_map };
    let mut rendered = Rendered { files: BTreeMap::new(), modes: BTreeMap::new(), sensitive: false };
    for rel in walk(&source, None)? {
        let selected = include.iter().any(|p| p.matches_with(&rel, match_options())) && !exclude.iter().any(|p| p.matches_with(&rel, match_options()));
        if !selected {
            continue;
        }
        let path = source.join(&rel);
        let name = format!("{}/{rel}", source_text.trim_end_matches('/'));
        check_source_link(&source, &source_real, &rel, &name, follow)?;
        let unreadable =
            |e: std::io::Error| provider_error("P2077", "cannot read a template", format!("{}: {e}. Check that the file is readable.", path.display()));
        let bytes = std::fs::read(&path).map_err(&unreadable)?;
        let meta = std::fs::metadata(&path).map_err(&unreadable)?;
        rendered.modes.insert(rel.clone(), get_mode(&meta) & 0o777);
        let content = match String::from_utf8(bytes) {
            Ok(text) => match template::render(&name, &text, &delims, &vars, &env, &mut host)? {
                Value::String(s) => s.into_bytes(),
                Value::Sensitive(inner) => {
                    rendered.sensitive = true;
                    match *inner {
                        Value::String(s) => s.into_bytes(),
                        _ => return Err(unknown_at_apply(&name)),
                    }
                }
                _ => return Err(unknown_at_apply(&name)),
            },
            // Not text (an image, an archive): copied as it is.
            Err(e) => e.into_bytes(),
        };
        rendered.files.insert(rel, content);
    }
    Ok(rendered)
}

fn unknown_at_apply(name: &str) -> Diagnostic {
    provider_error(
        "P2074",
        "template expression failed",
        format!("{name}: a value this template uses is not known; file.tree renders only known values (this is a bug if it happens during apply)."),
    )
}

/// The planned computed attributes: `files`, `hash` and `id`.
pub fn plan(base: &Path, config: &Map) -> Result<Map, Diagnostic> {
    let mut planned = config.clone();
    let id = match config.get("target").and_then(Value::as_str) {
        Some(_) => Value::String(target_dir(base, config)?.display().to_string()),
        None => Value::Unknown,
    };
    planned.insert("id".into(), id);
    // Checked as soon as both paths are known, whatever else is not.
    if let (Some(source), Some(target)) = (config.get("source").and_then(Value::as_str), config.get("target").and_then(Value::as_str)) {
        if !source.is_empty() && !target.is_empty() {
            check_layout(base, Base::Project, &resolve(base, source), &resolve(base, target), target)?;
        }
    }
    if !renderable(config) {
        planned.insert("files".into(), Value::Unknown);
        planned.insert("modes".into(), Value::Unknown);
        planned.insert("hash".into(), Value::Unknown);
        return Ok(planned);
    }
    let rendered = render_tree(base, config)?;
    let hashes = rendered.hashes();
    planned.insert("files".into(), files_value(&hashes).mark_if(rendered.sensitive));
    planned.insert("modes".into(), modes_value(&rendered.modes));
    planned.insert("hash".into(), Value::String(tree_hash(&hashes)).mark_if(rendered.sensitive));
    Ok(planned)
}

/// Largest file whose content a plan shows as a line diff.
const PREVIEW_BYTES: usize = 256 * 1024;

/// The rendered files whose hash an update changes: the content on disk
/// (what was rendered last) and what will be rendered, when both sides are
/// text of at most [`PREVIEW_BYTES`]. Sensitive renderings (or a sensitive
/// prior `files`) are marked so and never shown. Empty when the tree
/// cannot be rendered at plan time.
pub fn preview(base: &Path, prior: Option<&Map>, config: &Map) -> Vec<super::ContentPreview> {
    if !renderable(config) {
        return vec![];
    }
    let Ok(rendered) = render_tree(base, config) else { return vec![] };
    let Ok(target) = target_dir(base, config) else { return vec![] };
    let prior_sensitive = prior.and_then(|p| p.get("files")).is_some_and(Value::is_sensitive_deep);
    let recorded = match prior {
        Some(p) => {
            let (plain, _) = Value::Map(p.clone()).unmark();
            match plain {
                Value::Map(m) => recorded_files(Some(&m)),
                _ => BTreeMap::new(),
            }
        }
        None => BTreeMap::new(),
    };
    let text = |bytes: Vec<u8>| (bytes.len() <= PREVIEW_BYTES).then(|| String::from_utf8(bytes).ok()).flatten();
    let mut keys: std::collections::BTreeSet<&String> = rendered.files.keys().collect();
    keys.extend(recorded.keys());
    let mut out = Vec::new();
    for rel in keys {
        let new_hash = rendered.files.get(rel).map(|b| sha256_hex(b));
        if recorded.get(rel) == new_hash.as_ref() {
            continue;
        }
        let before = if recorded.contains_key(rel) { inside(&target, rel).ok().and_then(|p| std::fs::read(p).ok()).and_then(text) } else { None };
        let after = rendered.files.get(rel).cloned().and_then(text);
        out.push(super::ContentPreview { attribute: "files".into(), key: rel.clone(), before, after, sensitive: rendered.sensitive || prior_sensitive });
    }
    out
}

/// Recorded `files` of a prior object.
fn recorded_files(prior: Option<&Map>) -> BTreeMap<String, String> {
    match prior.and_then(|p| p.get("files")).map(Value::peel) {
        Some(Value::Map(m)) => m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect(),
        _ => BTreeMap::new(),
    }
}

/// A relative path from state or the walk, refused if it would leave the
/// target directory.
fn inside(target: &Path, rel: &str) -> Result<PathBuf, Diagnostic> {
    let p = Path::new(rel);
    let escapes = p.is_absolute() || p.components().any(|c| !matches!(c, std::path::Component::Normal(_)));
    if escapes || rel.is_empty() {
        return Err(config_error(
            "invalid file.tree path",
            format!("{rel:?} is not a path inside the target directory; the state may have been edited by hand."),
        ));
    }
    Ok(target.join(p))
}

/// `P6215`: a symbolic link inside a target, never followed.
fn link_refused(link: &Path, target: &Path) -> Diagnostic {
    provider_error(
        "P6215",
        format!("{} is a symbolic link inside the target directory", link.display()),
        format!(
            "Plinth never writes, reads or deletes through a symbolic link inside a target ({}): it could lead anywhere. Remove the link (a rendered directory must be a real directory), then run again.",
            target.display()
        ),
    )
}

/// The directory of `rel` inside `target`, reached without following a
/// link (`P6215` names one found on the way); created when `create`, None
/// when missing otherwise.
fn dir_of(target: &Path, rel: &str, create: bool) -> Result<Option<PathBuf>, Diagnostic> {
    let path = inside(target, rel)?;
    let parent = Path::new(rel).parent().unwrap_or(Path::new(""));
    match fsutil::dir_within(target, parent, create).map_err(|e| io_error("create the directory of", &path, e))? {
        Within::Dir(_) => Ok(Some(path)),
        Within::Missing => Ok(None),
        Within::Link(link) => Err(link_refused(&link, target)),
    }
}

/// The content of a file inside a target, never through a link (`P6215`
/// for a link at its name); None when it does not exist.
fn read_inside(target: &Path, path: &Path) -> Result<Option<Vec<u8>>, Diagnostic> {
    match fsutil::read_nofollow(path) {
        Ok(bytes) => Ok(bytes),
        Err(_) if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) => Err(link_refused(path, target)),
        Err(e) => Err(io_error("read", path, e)),
    }
}

/// The permissions of a file inside a target (not following a link).
fn mode_inside(path: &Path) -> Option<u32> {
    std::fs::symlink_metadata(path).ok().filter(|m| m.is_file()).map(|m| get_mode(&m) & 0o777)
}

/// Writes rendered files under `target` (creating directories, never
/// through a link), each atomically with its template's mode; files whose
/// content and mode are already right are left alone.
pub fn write_files(target: &Path, rendered: &Rendered) -> Result<(), Diagnostic> {
    std::fs::create_dir_all(target).map_err(|e| io_error("create the directory", target, e))?;
    for (rel, content) in &rendered.files {
        let Some(path) = dir_of(target, rel, true)? else { continue };
        let mode = rendered.mode_of(rel);
        let is_file = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file());
        if is_file && mode_inside(&path) == Some(mode) && fsutil::read_nofollow(&path).is_ok_and(|old| old.as_deref() == Some(content.as_slice())) {
            continue;
        }
        fsutil::sweep_temps(&path);
        fsutil::write_atomic(&path, content, mode).map_err(|e| io_error("write", &path, e))?;
    }
    Ok(())
}

/// Apply (create and update): render, write what changed, remove what is
/// no longer rendered.
pub fn write(base: &Path, config: Map, prior: Option<&Map>) -> Result<Observed, Diagnostic> {
    let (plain, _) = Value::Map(config.clone()).unmark();
    let Value::Map(plain) = plain else { return Err(config_error("invalid file.tree setting", "the configuration is not an object.")) };
    let target = target_dir(base, &plain)?;
    let rendered = render_tree(base, &plain)?;
    write_files(&target, &rendered)?;
    for rel in recorded_files(prior).keys() {
        if !rendered.files.contains_key(rel) {
            let Some(path) = dir_of(&target, rel, false)? else { continue };
            remove_file(&path)?;
            remove_empty_parents(&path, &target, false);
        }
    }
    let hashes = rendered.hashes();
    let mut observed = config;
    observed.insert("files".into(), files_value(&hashes));
    observed.insert("modes".into(), modes_value(&rendered.modes));
    observed.insert("hash".into(), Value::String(tree_hash(&hashes)));
    observed.insert("id".into(), Value::String(target.display().to_string()));
    Ok(observed)
}

/// Removes a file (a link at its name is removed, never followed).
fn remove_file(path: &Path) -> Result<(), Diagnostic> {
    fsutil::sweep_temps(path);
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error("delete", path, e)),
    }
}

/// Removes the now-empty directories between `path` and `target` (and
/// `target` itself when `including_target`). Non-empty ones stay.
fn remove_empty_parents(path: &Path, target: &Path, including_target: bool) {
    let mut dir = path.parent();
    while let Some(d) = dir {
        if !d.starts_with(target) || (d == target && !including_target) {
            break;
        }
        if std::fs::remove_dir(d).is_err() {
            break;
        }
        if d == target {
            break;
        }
        dir = d.parent();
    }
}

/// Read: the SHA-256 of every recorded file as it is now (a deleted file is
/// missing from `files`); None when the target directory is gone. Without a
/// record (an interrupted create) the files the templates would render are
/// looked for instead.
pub fn read(base: &Path, inputs: &Map, prior: Option<Map>) -> Result<Option<Observed>, Diagnostic> {
    let (plain, _) = Value::Map(inputs.clone()).unmark();
    let Value::Map(plain) = plain else { return Ok(None) };
    let target = target_dir(base, &plain)?;
    if !target.is_dir() {
        return Ok(None);
    }
    let expected: Vec<String> = match &prior {
        Some(p) => recorded_files(Some(p)).into_keys().collect(),
        None => match render_tree(base, &plain) {
            Ok(r) => r.files.into_keys().collect(),
            Err(_) => Vec::new(),
        },
    };
    let mut hashes = BTreeMap::new();
    let mut modes = BTreeMap::new();
    for rel in &expected {
        let Some(path) = dir_of(&target, rel, false)? else { continue };
        if let Some(bytes) = read_inside(&target, &path)? {
            hashes.insert(rel.clone(), sha256_hex(&bytes));
            modes.insert(rel.clone(), mode_inside(&path).unwrap_or(DEFAULT_MODE));
        }
    }
    if prior.is_none() && hashes.is_empty() && !expected.is_empty() {
        return Ok(None);
    }
    // A state recorded before modes were kept gets them at its next apply;
    // until then they are not read back as drift.
    let with_modes = prior.as_ref().is_none_or(|p| p.contains_key("modes"));
    let mut observed = prior.unwrap_or_else(|| inputs.clone());
    observed.insert("files".into(), files_value(&hashes));
    if with_modes {
        observed.insert("modes".into(), modes_value(&modes));
    }
    observed.insert("hash".into(), Value::String(tree_hash(&hashes)));
    observed.insert("id".into(), Value::String(target.display().to_string()));
    Ok(Some(observed))
}

/// The files a recorded tree claims: its target joined with every
/// recorded relative path (drift's unmanaged objects exclude them).
pub fn claims(base: &Path, inputs: &Map, attrs: &Map) -> Vec<PathBuf> {
    let (plain, _) = Value::Map(inputs.clone()).unmark();
    let Value::Map(plain) = plain else { return vec![] };
    let Ok(target) = target_dir(base, &plain) else { return vec![] };
    let (attrs, _) = Value::Map(attrs.clone()).unmark();
    let Value::Map(attrs) = attrs else { return vec![] };
    recorded_files(Some(&attrs)).keys().filter_map(|rel| inside(&target, rel).ok()).collect()
}

/// Every file in the target directories of the given trees (the tree owns
/// its target's contents: a file there that nothing renders would be
/// committed with what is rendered), except the trees' own recorded files,
/// `.git`, temporaries of an interrupted write and the template directory
/// when it lies inside the target. A target that is the project directory
/// or holds it is not listed: it holds the configuration.
pub fn list(base: &Path, managed: &[Map], recorded: &[Map]) -> Vec<PathBuf> {
    let mut out = std::collections::BTreeSet::new();
    for (i, inputs) in managed.iter().enumerate() {
        let (plain, _) = Value::Map(inputs.clone()).unmark();
        let Value::Map(plain) = plain else { continue };
        let Ok(target) = target_dir(base, &plain) else { continue };
        if base.starts_with(&target) || !target.is_dir() {
            continue;
        }
        let source = plain.get("source").and_then(Value::as_str).map(|s| resolve(base, s));
        let own: std::collections::BTreeSet<String> = recorded.get(i).map(|r| recorded_files(Some(r)).into_keys().collect()).unwrap_or_default();
        let Ok(found) = walk(&target, Some(&target.join(".git"))) else { continue };
        for rel in found {
            let path = target.join(&rel);
            if own.contains(&rel) || source.as_ref().is_some_and(|s| path.starts_with(s)) {
                continue;
            }
            out.insert(path);
        }
    }
    out.into_iter().collect()
}

/// Delete: removes every recorded file and the directories left empty.
pub fn delete(base: &Path, prior: &Map) -> Result<(), Diagnostic> {
    let (plain, _) = Value::Map(prior.clone()).unmark();
    let Value::Map(plain) = plain else { return Ok(()) };
    let target = target_dir(base, &plain)?;
    for rel in recorded_files(Some(&plain)).keys() {
        let Some(path) = dir_of(&target, rel, false)? else { continue };
        remove_file(&path)?;
        remove_empty_parents(&path, &target, true);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(source: &str, target: &str, vars: Value) -> Map {
        let mut m = Map::default();
        m.insert("source".into(), Value::str(source));
        m.insert("target".into(), Value::str(target));
        m.insert("vars".into(), vars);
        m
    }

    fn vars(pairs: &[(&str, &str)]) -> Value {
        Value::Map(pairs.iter().map(|(k, v)| (k.to_string(), Value::str(*v))).collect())
    }

    #[test]
    fn plan_renders_and_apply_writes_and_prunes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = dir.path();
        std::fs::create_dir_all(base.join("tpl/sub")).expect("mkdir");
        std::fs::write(base.join("tpl/a.yaml"), "host: {{ domain }}\n").expect("write");
        std::fs::write(base.join("tpl/sub/b.txt"), "{{ upper(domain) }}").expect("write");
        std::fs::write(base.join("tpl/skip.md"), "{{ not_rendered }}").expect("write");
        let mut cfg = config("tpl", "out", vars(&[("domain", "example.org")]));
        cfg.insert("exclude".into(), Value::List(vec![Value::str("*.md")]));

        let planned = plan(base, &cfg).expect("plan");
        let Some(Value::Map(files)) = planned.get("files") else { panic!("{planned:?}") };
        assert_eq!(files.keys().collect::<Vec<_>>(), ["a.yaml", "sub/b.txt"]);
        assert_eq!(files.get("a.yaml"), Some(&Value::str(sha256_hex(b"host: example.org\n"))));

        let observed = write(base, cfg.clone(), None).expect("apply");
        assert_eq!(std::fs::read_to_string(base.join("out/a.yaml")).expect("read"), "host: example.org\n");
        assert_eq!(std::fs::read_to_string(base.join("out/sub/b.txt")).expect("read"), "EXAMPLE.ORG");
        assert_eq!(observed.get("files"), planned.get("files"));
        assert_eq!(observed.get("hash"), planned.get("hash"));
        std::fs::write(base.join("out/mine.txt"), "not rendered").expect("write");

        // Read back: in sync; a hand edit changes one entry.
        let seen = read(base, &cfg, Some(observed.clone())).expect("read").expect("exists");
        assert_eq!(seen.get("files"), observed.get("files"));
        std::fs::write(base.join("out/a.yaml"), "edited").expect("write");
        let seen = read(base, &cfg, Some(observed.clone())).expect("read").expect("exists");
        assert_ne!(seen.get("files"), observed.get("files"));

        // A removed template removes its rendered file and empty directory.
        std::fs::remove_file(base.join("tpl/sub/b.txt")).expect("rm");
        let observed2 = write(base, cfg.clone(), Some(&observed)).expect("apply");
        assert!(!base.join("out/sub").exists());
        assert_eq!(std::fs::read_to_string(base.join("out/a.yaml")).expect("read"), "host: example.org\n");
        assert!(base.join("out/mine.txt").exists(), "other files are never touched");

        delete(base, &observed2).expect("delete");
        assert!(!base.join("out/a.yaml").exists());
        assert!(base.join("out/mine.txt").exists());
    }

    #[test]
    fn unknown_values_plan_unknown_and_errors_are_diagnostics() {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = dir.path();
        std::fs::create_dir_all(base.join("tpl")).expect("mkdir");
        std::fs::write(base.join("tpl/a"), "x\n{{ missing }}").expect("write");
        let mut unknown = Map::default();
        unknown.insert("id".into(), Value::Unknown);
        let planned = plan(base, &config("tpl", "out", Value::Map(unknown))).expect("plan");
        assert_eq!(planned.get("files"), Some(&Value::Unknown));
        let d = plan(base, &config("tpl", "out", vars(&[]))).expect_err("missing variable");
        assert_eq!(d.code, "P2073");
        assert!(d.help.starts_with("tpl/a:2:4"), "{}", d.help);
        let d = plan(base, &config("nope", "out", vars(&[]))).expect_err("no source");
        assert_eq!(d.code, "P2077");
    }

    #[test]
    fn state_paths_cannot_escape_the_target() {
        assert!(inside(Path::new("/t"), "../etc/passwd").is_err());
        assert!(inside(Path::new("/t"), "/etc/passwd").is_err());
        assert!(inside(Path::new("/t"), "a/b").is_ok());
    }
}
