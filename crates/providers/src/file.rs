//! `file`: files on the local file system. `file.file` writes `content` to
//! `path` (relative paths resolve against the project directory) atomically
//! through [`crate::fsutil::write_atomic`]: an exclusively created
//! temporary with an unpredictable name beside the target (a link planted
//! there is never written through), then a rename, so a killed run leaves
//! either the old or the new file and at most one stray temporary that the
//! next write or delete of that path removes. `file.tree` (in
//! `file_tree.rs`) renders a directory of templates the same way.

#[path = "file_tree.rs"]
pub mod tree;

use super::*;
use sha2::Digest;
use std::path::{Path, PathBuf};

pub struct FileFactory {
    schema: ProviderSchema,
    /// The project directory: `file.tree` renders at plan time, and its
    /// relative `source`/`target` resolve against this.
    base: PathBuf,
}

impl FileFactory {
    /// Relative paths resolve against the current directory.
    pub fn new() -> Self {
        Self::in_dir(&std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")))
    }

    /// Relative paths (at plan time) resolve against `project_dir`.
    pub fn in_dir(project_dir: &Path) -> Self {
        let file = ResourceSchema::new("A file with the given content.")
            .attr("path", AttrSchema::required(Type::String, "where to write; relative to the project directory").forces_replacement())
            .attr("content", AttrSchema::required(Type::String, "the text to write"))
            .attr(
                "mode",
                AttrSchema::optional(Type::String, "octal permissions, e.g. \"0600\"; default 0644, or 0600 when the content is sensitive")
                    .default(Value::str("0644"))
                    .default_when_sensitive("content", Value::str("0600")),
            )
            .attr("id", AttrSchema::computed(Type::String, "the absolute path"))
            .attr("sha256", AttrSchema::computed(Type::String, "SHA-256 of the content, hex").derived());
        let mut schema = ProviderSchema::default();
        schema.resources.insert("file", file);
        schema.resources.insert("tree", tree::schema());
        FileFactory { schema, base: project_dir.to_path_buf() }
    }
}

impl Default for FileFactory {
    fn default() -> Self {
        Self::new()
    }
}

impl ProviderFactory for FileFactory {
    fn name(&self) -> &'static str {
        "file"
    }
    fn schema(&self) -> &ProviderSchema {
        &self.schema
    }
    fn plans_beyond_config(&self, rtype: &str) -> bool {
        rtype == "tree"
    }
    fn preview(&self, rtype: &str, prior: Option<&Map>, config: &Map) -> Vec<ContentPreview> {
        if rtype == "tree" {
            return tree::preview(&self.base, prior, config);
        }
        vec![]
    }
    fn plan_checked(&self, rtype: &str, prior: Option<&Map>, config: &Map) -> Result<Map, Diagnostic> {
        if rtype == "tree" {
            let mut planned = tree::plan(&self.base, config)?;
            // Same target: the recorded absolute path stays (apply resolves
            // against the run's project directory, which names it).
            if let Some(prior) = prior.filter(|p| p.get("target") == config.get("target")) {
                if let Some(id) = prior.get("id") {
                    planned.insert("id".into(), id.clone());
                }
            }
            return Ok(planned);
        }
        Ok(self.plan(rtype, prior, config))
    }
    fn plan(&self, rtype: &str, prior: Option<&Map>, config: &Map) -> Map {
        if rtype == "tree" {
            // Infallible callers get unknown hashes on a template error;
            // the engine calls `plan_checked`, which reports it.
            return tree::plan(&self.base, config).unwrap_or_else(|_| {
                let mut planned = default_plan(self.schema.resources.get(rtype), prior, config);
                planned.insert("files".into(), Value::Unknown);
                planned.insert("modes".into(), Value::Unknown);
                planned.insert("hash".into(), Value::Unknown);
                planned
            });
        }
        let mut planned = default_plan(self.schema.resources.get(rtype), prior, config);
        // The hash is known as soon as the content is, and is as secret.
        let content = config.get("content").unwrap_or(&Value::Null);
        let hash = match content.peel() {
            Value::String(text) => Value::String(sha256_hex(text.as_bytes())),
            _ => Value::Unknown,
        };
        planned.insert("sha256".into(), hash.mark_if(content.is_sensitive_deep()));
        // The id is the path: as secret as the path.
        if config.get("path").is_some_and(Value::is_sensitive_deep) {
            if let Some(id) = planned.get_mut("id") {
                *id = std::mem::replace(id, Value::Null).mark_if(true);
            }
        }
        planned
    }
    fn configure(&self, _config: &Map, ctx: &ProviderContext) -> Result<Arc<dyn Provider>, Diagnostic> {
        Ok(Arc::new(FileProvider { schema: self.schema.clone(), base: ctx.project_dir.clone() }))
    }
}

struct FileProvider {
    schema: ProviderSchema,
    base: PathBuf,
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

pub(crate) fn io_error(action: &str, path: &Path, e: std::io::Error) -> Diagnostic {
    provider_error(
        "P6201",
        format!("cannot {action} {}", path.display()),
        format!("The file system said: {e}. Check that the directory is writable and the path is right."),
    )
}

fn parse_mode(config: &Map) -> Result<u32, Diagnostic> {
    let text = config.get("mode").and_then(Value::as_str).unwrap_or("0644");
    u32::from_str_radix(text.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| provider_error("P6202", format!("invalid file mode {text:?}"), "Give the mode as an octal string such as \"0644\" or \"0600\"."))
}

impl FileProvider {
    /// How drift names a file: relative to the project directory when
    /// inside it (the same name in `list` and `claims`).
    fn shown(&self, path: &Path) -> String {
        path.strip_prefix(&self.base).unwrap_or(path).display().to_string()
    }

    fn resolve(&self, config: &Map) -> Result<PathBuf, Diagnostic> {
        let path = config
            .get("path")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| provider_error("P6202", "missing path", "`file.file` needs a non-empty `path`."))?;
        let p = Path::new(path);
        Ok(if p.is_absolute() { p.to_path_buf() } else { self.base.join(p) })
    }

    fn write(&self, config: Map) -> Result<Observed, Diagnostic> {
        let path = self.resolve(&config)?;
        let mode = parse_mode(&config)?;
        let content = config.get("content").and_then(Value::as_str).unwrap_or("").to_string();
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_error("create the directory of", &path, e))?;
        }
        crate::fsutil::sweep_temps(&path);
        crate::fsutil::write_atomic(&path, content.as_bytes(), mode).map_err(|e| io_error("write", &path, e))?;
        let mut observed = config;
        observed.insert("id".into(), Value::String(path.display().to_string()));
        observed.insert("sha256".into(), Value::String(sha256_hex(content.as_bytes())));
        Ok(observed)
    }
}

#[cfg(unix)]
pub(crate) fn get_mode(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}
#[cfg(not(unix))]
pub(crate) fn get_mode(_meta: &std::fs::Metadata) -> u32 {
    0o644
}

#[async_trait]
impl Provider for FileProvider {
    fn schema_of(&self, rtype: &str) -> Option<&ResourceSchema> {
        self.schema.resources.get(rtype)
    }
    async fn read(&self, req: ReadRequest) -> Result<Option<Observed>, Diagnostic> {
        if req.object.rtype == "tree" {
            return tree::read(&self.base, &req.inputs, req.prior);
        }
        let path = self.resolve(&req.inputs)?;
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("read", &path, e)),
        };
        let meta = std::fs::metadata(&path).map_err(|e| io_error("inspect", &path, e))?;
        let mut observed = req.prior.unwrap_or_else(|| req.inputs.clone());
        observed.insert("path".into(), req.inputs.get("path").cloned().unwrap_or(Value::Null));
        observed.insert("content".into(), Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        observed.insert("mode".into(), Value::String(format!("{:04o}", get_mode(&meta))));
        observed.insert("id".into(), Value::String(path.display().to_string()));
        observed.insert("sha256".into(), Value::String(sha256_hex(&bytes)));
        Ok(Some(observed))
    }
    async fn create(&self, req: CreateRequest) -> Result<Observed, Diagnostic> {
        if req.object.rtype == "tree" {
            return tree::write(&self.base, req.config, None);
        }
        self.write(req.config)
    }
    async fn update(&self, req: UpdateRequest) -> Result<Observed, Diagnostic> {
        if req.object.rtype == "tree" {
            return tree::write(&self.base, req.config, Some(&req.prior));
        }
        self.write(req.config)
    }
    fn claims(&self, rtype: &str, inputs: &Map, attrs: &Map) -> Vec<String> {
        let paths = if rtype == "tree" { tree::claims(&self.base, inputs, attrs) } else { self.resolve(inputs).into_iter().collect() };
        paths.iter().map(|p| self.shown(p)).collect()
    }
    async fn list(&self, req: ListRequest) -> Result<Vec<String>, Diagnostic> {
        if req.rtype == "tree" {
            // A tree owns its target directory: what else is there is
            // unmanaged unless another managed object claims it.
            return Ok(tree::list(&self.base, &req.managed, &req.recorded).iter().map(|p| self.shown(p)).collect());
        }
        // The directories Plinth writes files into are Plinth's: any other
        // regular file there is unmanaged (hidden files excepted).
        let managed: std::collections::BTreeSet<PathBuf> = req.managed.iter().filter_map(|m| self.resolve(m).ok()).collect();
        // Not the project directory itself: it holds the configuration and
        // whatever else the user keeps there.
        let dirs: std::collections::BTreeSet<PathBuf> =
            managed.iter().filter_map(|p| p.parent().map(Path::to_path_buf)).filter(|d| d != &self.base && !self.base.starts_with(d)).collect();
        let mut out = Vec::new();
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                let hidden = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
                if path.is_file() && !hidden && !managed.contains(&path) {
                    out.push(self.shown(&path));
                }
            }
        }
        out.sort();
        Ok(out)
    }
    async fn delete(&self, req: DeleteRequest) -> Result<(), Diagnostic> {
        if req.object.rtype == "tree" {
            return tree::delete(&self.base, &req.prior);
        }
        let path = self.resolve(&req.prior)?;
        crate::fsutil::sweep_temps(&path);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("delete", &path, e)),
        }
    }
}
