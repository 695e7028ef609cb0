//! `plinth init`: every module source resolved and every git source pinned
//! in `plinth.lock` (tags are listed only here).

use crate::eval::components::ModuleLoader as _;
use crate::project;
use crate::sources::{Lock, Mode};
use crate::syntax::ast;
use crate::Failed;
use std::path::Path;

/// What `init` resolved.
pub struct Initialized {
    /// Distinct module directories, however many instances use them.
    pub modules: usize,
    /// What `plinth.lock` pins (None: nothing was locked).
    pub lock: Option<Lock>,
}

/// Resolves every module of the project in `dir` (every component,
/// however many instances it has, even none, and every import), fetches
/// git sources into `.plinth/modules` and writes `plinth.lock`. With
/// `upgrade`, constraints are resolved again against the repositories'
/// tags instead of keeping the locked commits.
pub fn init(dir: &Path, upgrade: bool) -> Result<Initialized, Failed> {
    let mut project = project::load(dir).map_err(|(sources, diags)| Failed { sources, diags })?;
    let files = std::mem::take(&mut project.files);
    let mut loader = project::Loader::new(dir, std::mem::take(&mut project.sources), Mode::Init { upgrade }).map_err(Failed::bare)?;
    let mut diags = Vec::new();
    for item in files.iter().flat_map(|f| f.items.iter()) {
        if let ast::Item::Import(imp) = item {
            if let Err(d) = loader.import(imp) {
                diags.push(d);
            }
        }
    }
    // Every module, however many instances it has (even none): all of them
    // are locked.
    let mut queue: Vec<(String, ast::ComponentDecl)> = Vec::new();
    let push_calls = |from: &str, files: &[ast::File], queue: &mut Vec<_>| {
        for item in files.iter().flat_map(|f| f.items.iter()) {
            if let ast::Item::Component(c) = item {
                queue.push((from.to_string(), c.clone()));
            }
        }
    };
    push_calls(".", &files, &mut queue);
    let mut seen = std::collections::HashSet::new();
    let mut modules = 0usize;
    while let Some((from, decl)) = queue.pop() {
        match loader.load(&from, &decl) {
            Ok(m) => {
                if seen.insert(m.dir.clone()) {
                    modules += 1;
                    push_calls(&m.dir, &m.files, &mut queue);
                }
            }
            Err(d) => diags.extend(d),
        }
    }
    if !diags.is_empty() {
        return Err(Failed::new(&loader.sources, diags));
    }
    let lock = loader.resolver.finish().map_err(Failed::bare)?;
    Ok(Initialized { modules, lock })
}
