//! Resolving a run: an [`Operation`] is the project directory with its state
//! arguments (`--state`, `--env`). It parses the project's files once and
//! evaluates the environment once (values and backend, hence the state
//! address), whichever asks first: opening the state or loading the project.
//! Loading then reuses both, so a run never reads `envs/` twice.
//!
//! The environment is evaluated with the run's [`RunHost`]: the `env()`
//! answers its files got are recorded with the configuration's, and a saved
//! plan replays them.

use crate::diagnostic::{Sources, Span};
use crate::envs::{self, Environment};
use crate::eval::{self, Config};
use crate::graph::{self, Graph};
use crate::plan::{self, PlanInputs, PlanOptions};
use crate::project::{self, Project, RunHost};
use crate::store::absolute;
use crate::value::VarValue;
use crate::Failed;
use indexmap::IndexMap;
use plinth_sdk::Registry;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The name of the environment when none is chosen: the project is one
/// environment.
pub const DEFAULT_ENV: &str = "default";

/// A project loaded, checked and turned into a graph.
pub struct Loaded {
    pub project: Project,
    pub cfg: Config,
    pub graph: Graph,
    pub registry: Registry,
}

/// `-var` and `--var-file` as given.
#[derive(Debug, Clone, Copy, Default)]
pub struct VarFlags<'a> {
    pub var_files: &'a [PathBuf],
    pub vars: &'a [String],
}

/// Where the root params' values come from while loading.
pub enum Vars<'a> {
    /// `validate`: none; params without a value are unknown.
    Lenient,
    /// The operation's environment (if any), then `PLINTH_VAR_*`,
    /// `--var-file`, `-var` (later wins).
    Args(VarFlags<'a>),
    /// Already collected (a saved plan).
    Given(IndexMap<String, VarValue>),
    /// `validate --env`: collected as `Args` (so names and types are
    /// checked), but params still without a value are unknown.
    Checked(VarFlags<'a>),
}

/// Everything needed to plan: the loaded project, param values, the host.
pub struct Prepared {
    pub loaded: Loaded,
    pub vars: IndexMap<String, VarValue>,
    pub host: RunHost,
}

/// An environment, evaluated: what a run needs of it.
struct Evaluated {
    values: IndexMap<String, VarValue>,
    /// The state address its backend gives (absolute), or why it gives
    /// none: reported only by a run that needs the address.
    address: Result<String, Failed>,
}

/// One run's directory, environment and state address, each resolved once.
pub struct Operation {
    dir: PathBuf,
    /// `--state` (or `PLINTH_STATE`) as given.
    address: Option<String>,
    /// `--env` (or `PLINTH_ENV`) as given.
    env: Option<String>,
    /// The run's host: evaluating the environment records its `env()`
    /// answers here, and loading the project takes it over.
    host: RunHost,
    /// The project's files, parsed once; loading takes them.
    project: Option<Project>,
    /// The environment, evaluated once.
    environment: Option<Evaluated>,
    /// A project already loaded for this run (`drift --fix`).
    reuse: Option<Prepared>,
}

impl Operation {
    /// An operation on the project in `dir`, with the state `address` and
    /// the environment `env` as given (None: not given). Nothing is read
    /// yet.
    pub fn new(dir: impl Into<PathBuf>, address: Option<String>, env: Option<String>) -> Operation {
        let dir = dir.into();
        Operation { host: RunHost::new(&dir), dir, address, env, project: None, environment: None, reuse: None }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The environment as given.
    pub fn env(&self) -> Option<&str> {
        self.env.as_deref()
    }

    /// The environment's name: as given, or [`DEFAULT_ENV`].
    pub fn env_name(&self) -> &str {
        self.env.as_deref().unwrap_or(DEFAULT_ENV)
    }

    /// `P2050` unless the directory holds `*.plinth` files (nothing is
    /// parsed).
    pub fn check_dir(&self) -> Result<(), Failed> {
        project::check_dir(&self.dir).map_err(Failed::bare)
    }

    /// The project's files, parsed (once).
    pub fn project(&mut self) -> Result<&Project, Failed> {
        self.parsed().map(|(p, _)| &*p)
    }

    fn parsed(&mut self) -> Result<(&mut Project, &mut RunHost), Failed> {
        let project = match self.project.take() {
            Some(p) => p,
            None => project::load(&self.dir).map_err(|(sources, diags)| Failed { sources, diags })?,
        };
        Ok((self.project.insert(project), &mut self.host))
    }

    /// The environment, evaluated on first use (None without `--env`).
    fn environment(&mut self) -> Result<Option<&Evaluated>, Failed> {
        let Some(name) = self.env.clone() else { return Ok(None) };
        if self.environment.is_none() {
            let dir = self.dir.clone();
            let (project, host) = self.parsed()?;
            let env = evaluate(&dir, &name, project, host)?;
            let address = backend_address(&dir, &name, &env, &project.sources);
            self.environment = Some(Evaluated { values: env.values, address });
        }
        Ok(self.environment.as_ref())
    }

    /// The state address: `--state` as given (a file path made absolute),
    /// else the environment's backend, else the project's
    /// `.plinth/state.db`. A saved plan records it.
    pub fn state_address(&mut self) -> Result<String, Failed> {
        if self.address.is_none() {
            if let Some(env) = self.environment()? {
                return env.address.clone();
            }
        }
        Ok(match &self.address {
            Some(a) => given_address(a),
            None => absolute(&self.dir.join(".plinth").join("state.db")).display().to_string(),
        })
    }

    /// Loads the project, its components and param values, checks it and
    /// builds the graph, reusing the files and the environment resolved so
    /// far.
    pub fn prepare(&mut self, vars: Vars<'_>) -> Result<Prepared, Failed> {
        if let Some(prepared) = self.reuse.take() {
            return Ok(prepared);
        }
        let dir = self.dir.clone();
        let mut registry = plinth_providers::registry_in(&std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone()));
        self.parsed()?;
        let (values, lenient) = match vars {
            Vars::Lenient => (IndexMap::default(), true),
            Vars::Given(v) => (v, false),
            Vars::Args(flags) => (self.param_values(flags)?, false),
            Vars::Checked(flags) => (self.param_values(flags)?, true),
        };
        let mut project = match self.project.take() {
            Some(p) => p,
            None => project::load(&dir).map_err(|(sources, diags)| Failed { sources, diags })?,
        };
        let mut host = std::mem::replace(&mut self.host, RunHost::new(&dir));
        let files = std::mem::take(&mut project.files);
        let mut loader = project::Loader::new(&dir, std::mem::take(&mut project.sources), crate::sources::Mode::Locked).map_err(Failed::bare)?;
        // Terraform providers the provider blocks name, as `plinth init`
        // installed and pinned them.
        crate::terraform::register(&dir, &files, loader.resolver.locked_providers(), &mut registry);
        let expansion = eval::components::Expansion { loader: &mut loader, vars: &values, host: &mut host, lenient };
        let (mut cfg, diags) = eval::declare_with(files, Sources::default(), &registry, Some(expansion));
        cfg.sources = std::mem::take(&mut loader.sources);
        project.config_files.extend(loader.module_files.iter().copied());
        // Modules read their own files (`file("${path.module}/…")`), wherever
        // their directory is.
        for module_dir in loader.module_dirs() {
            host.allow(module_dir);
        }
        project.sources = cfg.sources.clone();
        if !diags.is_empty() {
            return Err(Failed::new(&cfg.sources, diags));
        }
        let graph = graph::build(&cfg).map_err(|d| Failed::new(&cfg.sources, d))?;
        Ok(Prepared { loaded: Loaded { project, cfg, graph, registry }, vars: values, host })
    }

    /// The next [`Operation::prepare`] returns `prepared` instead of loading
    /// again: `drift --fix` applies with what its check loaded.
    pub fn reuse(&mut self, prepared: Prepared) {
        self.reuse = Some(prepared);
    }

    /// From now on `env()` answers what a saved plan recorded.
    pub(crate) fn replay(&mut self, env_lookups: BTreeMap<String, Option<String>>) {
        let mut host = RunHost::new(&self.dir);
        host.replay = true;
        host.env_lookups = env_lookups;
        self.host = host;
    }

    /// The root params' values: the environment's (if any), then
    /// `PLINTH_VAR_*`, `--var-file`, `-var` (later wins). Without an
    /// environment, a project whose environments would give a missing value
    /// says so (`P2130`) instead of reporting the value missing.
    fn param_values(&mut self, flags: VarFlags<'_>) -> Result<IndexMap<String, VarValue>, Failed> {
        let params = project::root_params(&self.parsed()?.0.files);
        let mut values = IndexMap::default();
        if let Some(env) = self.environment()? {
            values = env.values.clone();
        }
        let (dir, without_env) = (self.dir.clone(), self.env.is_none());
        let (project, host) = self.parsed()?;
        let v = project::collect_vars(&mut project.sources, &params, flags.var_files, flags.vars, host).map_err(|d| Failed::new(&project.sources, d))?;
        values.extend(v);
        if without_env {
            let missing: Vec<(&str, Span)> =
                params.iter().filter(|(n, p)| p.default.is_none() && !values.contains_key(*n)).map(|(n, p)| (n.as_str(), p.name.span)).collect();
            if let Some(d) = envs::needs_env(&dir, &missing) {
                return Err(Failed::new(&project.sources, vec![d]));
            }
        }
        Ok(values)
    }
}

/// Environment `name` read with `project`'s root params; its files join the
/// project's sources. The only caller of [`envs::load`] here.
fn evaluate(dir: &Path, name: &str, project: &mut Project, host: &mut RunHost) -> Result<Environment, Failed> {
    #[cfg(test)]
    tests::EVALUATIONS.with(|n| n.set(n.get() + 1));
    let params = project::root_params(&project.files);
    let names: Vec<&str> = params.keys().map(String::as_str).collect();
    envs::load(dir, name, &mut project.sources, &names, host).map_err(|d| Failed::new(&project.sources, d))
}

/// The address an environment's backend forms (the default SQLite file
/// without one), as `plinth envs` shows it.
fn resolved_backend(dir: &Path, name: &str, env: &Environment, sources: &Sources) -> Result<String, Failed> {
    match &env.backend {
        Some(b) => b.state_address(dir, name).map_err(|d| Failed::new(sources, vec![d])),
        None => Ok(envs::DEFAULT_SQLITE_PATH.to_string()),
    }
}

/// The state address of an environment's backend; a relative file path is
/// taken from the project directory.
fn backend_address(dir: &Path, name: &str, env: &Environment, sources: &Sources) -> Result<String, Failed> {
    let resolved = resolved_backend(dir, name, env, sources)?;
    let address = if !resolved.contains("://") && Path::new(&resolved).is_relative() { dir.join(&resolved).display().to_string() } else { resolved };
    Ok(given_address(&address))
}

/// A given state address: a URL as is, a file path made absolute (a saved
/// plan records the address).
fn given_address(address: &str) -> String {
    if address.contains("://") {
        address.to_string()
    } else {
        absolute(Path::new(address)).display().to_string()
    }
}

/// `validate`: everything but IO. With an environment, its values (and
/// `-var`s) are checked against the params too: names, types, validation
/// rules; params it leaves without a value stay unknown (CI may give them
/// as `PLINTH_VAR_…` at plan time).
pub fn validate(op: &mut Operation, flags: VarFlags<'_>) -> Result<Loaded, Failed> {
    let vars_from = if op.env().is_some() { Vars::Checked(flags) } else { Vars::Lenient };
    let Prepared { loaded, vars, mut host } = op.prepare(vars_from)?;
    let empty = crate::state::model::Snapshot::default();
    let inputs = PlanInputs { env: op.env_name(), cfg: &loaded.cfg, graph: &loaded.graph, registry: &loaded.registry, prior: &empty, vars: &vars };
    plan::plan(&inputs, &PlanOptions { lenient: true, ..PlanOptions::default() }, &mut host).map_err(|d| Failed::new(&loaded.cfg.sources, d))?;
    Ok(loaded)
}

/// The project in `dir` loaded and checked without param values (`graph`).
pub fn load_checked(dir: &Path) -> Result<Loaded, Failed> {
    Operation::new(dir, None, None).prepare(Vars::Lenient).map(|p| p.loaded)
}

/// One environment of a project, as `plinth envs` lists it.
#[derive(Debug, Clone)]
pub struct EnvironmentRow {
    /// `prod/edp`.
    pub name: String,
    /// The backend kind: `sqlite`, `postgres` or `s3`.
    pub backend: String,
    /// The state address (not redacted).
    pub address: String,
    /// The files read, relative to the project directory, outermost first.
    pub files: Vec<String>,
    /// How many param values it gives.
    pub values: usize,
}

/// Every environment of the project in `dir`, each evaluated.
pub fn environments(dir: &Path) -> Result<Vec<EnvironmentRow>, Failed> {
    project::check_dir(dir).map_err(Failed::bare)?;
    let names = envs::list(dir).map_err(|d| Failed::new(&Sources::default(), d))?;
    let mut rows = Vec::new();
    for name in &names {
        let mut project = project::load(dir).map_err(|(sources, diags)| Failed { sources, diags })?;
        let env = evaluate(dir, name, &mut project, &mut RunHost::new(dir))?;
        let address = resolved_backend(dir, name, &env, &project.sources)?;
        rows.push(EnvironmentRow {
            name: name.clone(),
            backend: env.backend.as_ref().map(|b| b.kind.clone()).unwrap_or_else(|| "sqlite".into()),
            address,
            files: env.files.iter().map(|f| f.strip_prefix(dir).unwrap_or(f).display().to_string()).collect(),
            values: env.values.len(),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planning::{make_plan, PlanRequest};
    use crate::saved::{save_plan, PlanFile};
    use crate::store::acquire;
    use std::cell::Cell;

    thread_local! {
        /// Environments evaluated on this thread ([`evaluate`] counts).
        pub(super) static EVALUATIONS: Cell<usize> = const { Cell::new(0) };
    }

    /// Runs `f` and counts the environments it evaluated (on this thread).
    fn evaluations<T>(f: impl FnOnce() -> T) -> (T, usize) {
        let before = EVALUATIONS.with(Cell::get);
        let out = f();
        (out, EVALUATIONS.with(Cell::get) - before)
    }

    /// A project with environment `prod`: a backend of its own, and a value
    /// from `env()` (unset: the default), which a saved plan must replay.
    fn env_project() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("main.plinth", "param name: string\n\noutput name = name\n");
        write("envs/defaults.plinth", "backend \"sqlite\" {\n  path = \".plinth/prod.db\"\n}\n");
        write("envs/prod.plinth", "name = env(\"PLINTH_OPERATIONS_TEST_UNSET\", \"edp\")\n");
        dir
    }

    /// `plan --env prod --out FILE`: the state address (from the backend),
    /// the param values and the saved plan's address all come from one
    /// evaluation of the environment, whose `env()` answers the saved plan
    /// records. (The CLI before the operations crate evaluated it twice for
    /// the store and the values, and a third time for the plan file.)
    #[test]
    fn a_run_evaluates_its_environment_once() {
        let dir = env_project();
        let plan_file = dir.path().join("prod.plan");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (result, n) = evaluations(|| {
            runtime.block_on(async {
                let mut op = Operation::new(dir.path(), None, Some("prod".to_string()));
                let mut store = op.open_store()?;
                let guard = acquire(store.as_mut(), "plan", std::time::Duration::ZERO)?;
                let planned = make_plan(&mut op, &PlanRequest::default(), guard.store, None).await?;
                drop(guard);
                save_plan(&plan_file, &mut op, &[], false, false, &planned.plan, &planned.prepared)?;
                Ok::<_, Failed>(planned)
            })
        });
        let planned = result.map_err(|f| f.diags).unwrap();
        assert_eq!(n, 1, "the environment was evaluated {n} times in one run");
        assert_eq!(planned.prepared.vars["name"].value, crate::value::Value::str("edp"));
        let saved = PlanFile::read(&plan_file).map_err(|f| f.diags).unwrap();
        assert!(saved.state.ends_with(".plinth/prod.db"), "{}", saved.state);
        assert_eq!(saved.env_lookups.get("PLINTH_OPERATIONS_TEST_UNSET"), Some(&None), "the environment's env() answers are recorded");
    }

    /// `validate --env` and a run with `--state` given evaluate the
    /// environment once too, for its values; without `--env` never.
    #[test]
    fn values_alone_evaluate_the_environment_once() {
        let dir = env_project();
        let (loaded, n) = evaluations(|| validate(&mut Operation::new(dir.path(), None, Some("prod".into())), VarFlags::default()));
        assert!(loaded.is_ok() && n == 1, "validate --env: {n} evaluations");
        let state = dir.path().join("elsewhere.db").display().to_string();
        let (prepared, n) = evaluations(|| {
            let mut op = Operation::new(dir.path(), Some(state.clone()), Some("prod".into()));
            let address = op.state_address()?;
            op.prepare(Vars::Args(VarFlags::default())).map(|p| (address, p.host.env_lookups))
        });
        let (address, lookups) = prepared.map_err(|f| f.diags).unwrap();
        assert_eq!((address, n), (state, 1));
        assert!(lookups.contains_key("PLINTH_OPERATIONS_TEST_UNSET"));
        let (_, n) = evaluations(|| Operation::new(dir.path(), None, None).state_address());
        assert_eq!(n, 0);
    }
}
