//! Stage `cli`: arguments → operations → human or JSON output, exit codes.
//!
//! Invariants: the only module that prints. It holds arguments, rendering
//! and exit codes; what a command does is in the operations crate
//! (`plinth-operations`), which returns outcomes and diagnostics for this
//! module to render (`--json` decides how). Exit codes: 0 success
//! (and "no changes" with `--detailed-exitcode`), 1 error, 2 changes present
//! (`plan --detailed-exitcode`). Never waits for input when stdin is not a
//! terminal.

pub mod args;
pub mod hydrate;
pub mod render;

use crate::diagnostic::{Diagnostic, Diags, Sources};
use crate::eval;
use crate::exec::{self, Event};
use crate::operations::{self as ops, surgery, Failed, Operation, PlanFile, PlanRequest, Planned, Prepared, VarFlags};
use crate::plan::{self, Action, Plan};
use crate::project;
use crate::state::Store;
use crate::value::Value;
use clap::{Args, Parser, Subcommand, ValueEnum};
use render::Style;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Infrastructure as code: one language, one graph, plans against durable
/// state, idempotent applies.
///
/// A project is a directory of `*.plinth` files. The usual cycle:
///
///   plinth validate        check syntax, types, references and cycles (no IO)
///   plinth plan            show what would change
///   plinth apply           make it so (asks first; --auto-approve in CI)
///   plinth output          read the outputs
///
/// A platform: `plinth init` pins module sources in plinth.lock, `plinth envs`
/// lists the environments of envs/, `plinth plan --env prod/edp` plans one,
/// `plinth drift --env prod/edp` checks it every night.
///
/// State lives in `.plinth/state.db` (SQLite) in the project unless --state
/// or the environment's backend says otherwise. Every command takes the
/// project directory as its optional last argument (default: the current
/// directory).
#[derive(Parser, Debug)]
#[command(name = "plinth", version, about, long_about, verbatim_doc_comment, propagate_version = true, arg_required_else_help = true)]
pub struct Cli {
    /// Never use colours (also: NO_COLOR=1).
    #[arg(long, global = true)]
    pub no_color: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check a project without touching anything: syntax, types against param
    /// types and provider schemas, references, cycles.
    ///
    /// With --env, also checks that environment's values (its files, then
    /// PLINTH_VAR_*, --var-file, --var) against the params: names and types.
    Validate {
        /// Project directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Also check this environment's param values (`plinth envs` lists them).
        #[arg(long = "env", value_name = "ENV", env = "PLINTH_ENV")]
        env: Option<String>,
        #[command(flatten)]
        vars: VarArgs,
        /// Print diagnostics as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the changes that would bring the recorded state to the
    /// configuration. Plans against recorded state (fast); --refresh reads
    /// every managed object first.
    ///
    /// Exit codes with --detailed-exitcode: 0 no changes, 2 changes, 1 error.
    Plan(PlanArgs),
    /// Apply the changes (after showing them and asking, unless
    /// --auto-approve). Given a plan file from `plan --out`, applies exactly
    /// that plan, and refuses it if the configuration or the state changed.
    Apply(ApplyArgs),
    /// Destroy every object the state records, in reverse dependency order.
    Destroy(DestroyArgs),
    /// Read every managed object back and report what changed outside
    /// Plinth, attribute by attribute (JSON/YAML key order and whitespace
    /// do not count), plus unmanaged objects where a provider can list them.
    /// Every report is kept (`--history`). For scheduled CI jobs.
    ///
    /// Exit codes: 0 no drift, 2 drift, 1 error.
    Drift(DriftArgs),
    /// Print the recorded outputs, sorted by name.
    ///
    /// `plinth output [NAME] [DIR]`: a single argument that contains `/`,
    /// starts with `.`, or is a directory holding `*.plinth` files is the
    /// project directory; with -C, arguments are never taken as one.
    Output {
        /// One output to print (all when omitted).
        name: Option<String>,
        /// Project directory (or -C).
        #[arg(value_name = "DIR")]
        dir_arg: Option<String>,
        /// Project directory (default: the current directory).
        #[arg(short = 'C', long = "dir", value_name = "DIR", conflicts_with = "dir_arg")]
        dir: Option<PathBuf>,
        #[command(flatten)]
        state: StateArg,
        /// Print JSON (sensitive values redacted unless --show-sensitive).
        #[arg(long)]
        json: bool,
        /// Print sensitive values in clear.
        #[arg(long)]
        show_sensitive: bool,
    },
    /// Inspect and edit the recorded state.
    #[command(subcommand)]
    State(StateCommand),
    /// Print the dependency graph of the configuration.
    Graph {
        /// Project directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// dot (Graphviz) or mermaid.
        #[arg(long, value_enum, default_value = "dot")]
        format: GraphFormat,
    },
    /// Rewrite `*.plinth` files in the canonical style (keeps comments).
    Fmt {
        /// A file or a project directory.
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Change nothing; exit 1 and list the files that are not formatted.
        #[arg(long)]
        check: bool,
    },
    /// Resolve every module source (relative, `catalogue/…`, `git+<url>//<path>`
    /// with a `version` constraint), fetch git sources into `.plinth/modules`
    /// and pin each to a commit and content hash in `plinth.lock` (commit it).
    /// Install the Terraform/OpenTofu providers that provider blocks name
    /// (`source = "namespace/type"`, `version = "~> 1.2"`) into
    /// `.plinth/providers` and pin each to a version and its hashes there too.
    /// Later runs use the lock and work offline.
    ///
    /// Providers come from their registry (https only; its SHA256SUMS must be
    /// signed by one of the registry's keys, checked with `gpgv`), or, with
    /// --provider-mirror (PLINTH_PROVIDER_MIRROR), only from a filesystem
    /// mirror in Terraform's layout. PLINTH_PROVIDER_REGISTRY_CA names a PEM
    /// file of extra CA certificates for registries (SSL_CERT_FILE and
    /// SSL_CERT_DIR replace the system's).
    Init {
        /// Project directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Re-resolve every constraint (the repositories' tags, the providers'
        /// versions) instead of keeping what plinth.lock pins.
        #[arg(long)]
        upgrade: bool,
        /// Install providers only from this filesystem mirror (Terraform's
        /// packed HOST/NS/TYPE/terraform-provider-TYPE_VERSION_OS_ARCH.zip or
        /// unpacked HOST/NS/TYPE/VERSION/OS_ARCH/ layout), never from a registry.
        #[arg(long, value_name = "DIR", env = "PLINTH_PROVIDER_MIRROR")]
        provider_mirror: Option<PathBuf>,
        /// A PEM file of CA certificates to trust for provider registries, in
        /// addition to the system's.
        #[arg(long, value_name = "FILE", env = "PLINTH_PROVIDER_REGISTRY_CA")]
        provider_registry_ca: Option<PathBuf>,
        /// Print machine-readable JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List the environments of a project (`envs/**/<name>.plinth`) with
    /// their state backends: `plinth plan --env prod/edp` uses one.
    Envs {
        /// Project directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Print machine-readable JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Render a directory of templates into another (standalone hydration).
    ///
    /// Every file under SRC is rendered to the same relative path under DST
    /// (directories are created; other files in DST are left alone). Between
    /// the delimiters goes any Plinth expression over `vars` and `env`, and
    /// `if`/`else`/`end`, `for x in xs`/`end`; `.Env.X` and `.Values.a.b` work
    /// as in gomplate. A missing variable is an error naming file:line:column.
    ///
    ///   plinth render stacks/ out/ --delimiters '{{{' '}}}' --process-env
    ///   plinth render tpl/ out/ --var domain=example.org --values values.yaml
    ///
    /// See docs/language.md, "Templates".
    #[command(verbatim_doc_comment)]
    Render(hydrate::RenderArgs),
    /// Adopt an existing object of a Terraform provider as an instance the
    /// configuration declares, by the provider's id for it (what `terraform
    /// import` takes). Nothing is changed on the object; the next plan shows
    /// how it differs from the configuration.
    ///
    ///   plinth import otc.cce_cluster_v3.edp 0a1b2c3d-…
    ///   plinth import 'workato.folder.teams["ops"]' 42 --env prod/edp
    ///
    /// It also settles a create that an interrupted run left unknown (P6901).
    #[command(verbatim_doc_comment)]
    Import {
        /// The instance address, as the configuration declares it.
        address: String,
        /// The provider's id of the object.
        id: String,
        /// Project directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
        #[command(flatten)]
        vars: VarArgs,
        #[command(flatten)]
        state: StateArg,
        /// Print the recorded attributes as JSON (sensitive ones redacted).
        #[arg(long)]
        json: bool,
    },
    /// Remove a lock left by a run that cannot release it.
    Unlock {
        /// Project directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
        #[command(flatten)]
        state: StateArg,
    },
}

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum GraphFormat {
    Dot,
    Mermaid,
}

#[derive(Args, Debug, Clone)]
pub struct StateArg {
    /// Where state lives: a SQLite file path (default: <DIR>/.plinth/state.db),
    /// `postgres://user@host/db[?schema=s]`, or
    /// `s3://bucket/prefix?endpoint=URL&region=R&path_style=true`.
    #[arg(long = "state", id = "state_address", value_name = "ADDRESS", env = "PLINTH_STATE")]
    pub address: Option<String>,
    /// The environment: `envs/<ENV>.plinth` with every `defaults.plinth` above
    /// it gives param values and the state backend; each environment has its
    /// own state. `plinth envs` lists them. Default: the project is one
    /// environment, `default`.
    #[arg(long = "env", value_name = "ENV", env = "PLINTH_ENV")]
    pub env: Option<String>,
}

impl StateArg {
    pub fn env_name(&self) -> &str {
        self.env.as_deref().unwrap_or(DEFAULT_ENV)
    }
}

#[derive(Args, Debug, Clone)]
pub struct VarArgs {
    /// Set a param: -var name=value (repeatable). Non-string params take
    /// Plinth syntax: -var 'stacks=["core"]'.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Read params from a file of `name = value` lines (or .json).
    #[arg(long = "var-file", value_name = "FILE")]
    pub var_files: Vec<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    #[command(flatten)]
    pub vars: VarArgs,
    #[command(flatten)]
    pub state: StateArg,
    /// Only these resources (and what they depend on): addresses, instance
    /// addresses or patterns, comma-separated: --only 'file.file.*,random.password.db'.
    #[arg(long, value_delimiter = ',', value_name = "ADDR,…")]
    pub only: Vec<String>,
    /// Read every managed object first and plan against reality.
    #[arg(long)]
    pub refresh: bool,
    /// `drift --fix`: apply only the changes that undo drift.
    #[arg(skip)]
    pub remediate: bool,
    /// How long to wait for another run's lock, e.g. 30s, 2m.
    #[arg(long, default_value = "0s", value_parser = crate::value::parse_duration)]
    pub lock_timeout: Duration,
    /// Print machine-readable JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    /// Project directory.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub common: CommonArgs,
    /// Plan destroying everything instead.
    #[arg(long)]
    pub destroy: bool,
    /// Save the plan so that `plinth apply FILE` applies exactly it.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Exit 0 when there are no changes, 2 when there are, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// Project directory, or a plan file saved by `plan --out`.
    #[arg(default_value = ".")]
    pub target: PathBuf,
    #[command(flatten)]
    pub common: CommonArgs,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub auto_approve: bool,
    /// Provider operations in flight at once.
    #[arg(long, default_value_t = 10)]
    pub parallelism: usize,
}

#[derive(Args, Debug)]
pub struct DestroyArgs {
    /// Project directory.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub common: CommonArgs,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub auto_approve: bool,
    /// Provider operations in flight at once.
    #[arg(long, default_value_t = 10)]
    pub parallelism: usize,
}

#[derive(Args, Debug)]
pub struct DriftArgs {
    /// Project directory.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub vars: VarArgs,
    #[command(flatten)]
    pub state: StateArg,
    /// Print machine-readable JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also write a JUnit XML report (one test case per object) to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Show the kept drift reports instead of checking now.
    #[arg(long, conflicts_with_all = ["fix", "accept"])]
    pub history: bool,
    /// Apply the remediation plan: make reality match the configuration.
    #[arg(long, conflicts_with = "accept")]
    pub fix: bool,
    /// Record reality as the new state (Terraform's refresh-only apply).
    #[arg(long)]
    pub accept: bool,
    /// With --fix: do not ask for confirmation.
    #[arg(long)]
    pub auto_approve: bool,
    /// Save the remediation plan so that `plinth apply FILE` applies it after review.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["fix", "accept"])]
    pub out: Option<PathBuf>,
    /// Provider reads (and with --fix, operations) in flight at once.
    #[arg(long, default_value_t = 10)]
    pub parallelism: usize,
    /// How long to wait for another run's lock, e.g. 30s, 2m.
    #[arg(long, default_value = "0s", value_parser = crate::value::parse_duration)]
    pub lock_timeout: Duration,
}

#[derive(Subcommand, Debug)]
pub enum StateCommand {
    /// The recorded instance addresses, sorted, one per line; with
    /// patterns, those they match (as Terraform's `state list ADDRESS…`):
    /// `plinth state list 'file.*' module.db` (`*` matches anything; a
    /// resource or component address covers its instances and everything
    /// inside it).
    ///
    /// A last argument that contains `/`, starts with `.`, or is a directory
    /// holding `*.plinth` files is the project directory; with -C, arguments
    /// are never taken as one.
    List {
        /// Address patterns (all when omitted); the last argument may be the
        /// project directory.
        #[arg(value_name = "PATTERN")]
        args: Vec<String>,
        /// Project directory (default: the current directory).
        #[arg(short = 'C', long = "dir", value_name = "DIR")]
        dir: Option<PathBuf>,
        #[command(flatten)]
        state: StateArg,
    },
    /// The recorded attributes of one instance (or the instances a pattern
    /// matches), or all (sensitive redacted). `plinth state show [ADDRESS] [DIR]`.
    Show {
        /// An address or pattern (all when omitted).
        address: Option<String>,
        /// Project directory (or -C).
        #[arg(value_name = "DIR")]
        dir_arg: Option<String>,
        /// Project directory (default: the current directory).
        #[arg(short = 'C', long = "dir", value_name = "DIR", conflicts_with = "dir_arg")]
        dir: Option<PathBuf>,
        #[command(flatten)]
        state: StateArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Forget instances without destroying them. `plinth state rm ADDRESS... [DIR]`.
    Rm {
        /// The addresses to forget; the last argument may be the project
        /// directory.
        #[arg(required = true, value_name = "ADDRESS")]
        args: Vec<String>,
        /// Project directory (default: the current directory).
        #[arg(short = 'C', long = "dir", value_name = "DIR")]
        dir: Option<PathBuf>,
        #[command(flatten)]
        state: StateArg,
    },
    /// Rename an instance in the state (after renaming it in the
    /// configuration). `plinth state mv FROM TO [DIR]`.
    Mv {
        /// The recorded address.
        from: String,
        /// The new address.
        to: String,
        /// Project directory (or -C).
        #[arg(value_name = "DIR")]
        dir_arg: Option<PathBuf>,
        /// Project directory (default: the current directory).
        #[arg(short = 'C', long = "dir", value_name = "DIR", conflicts_with = "dir_arg")]
        dir: Option<PathBuf>,
        #[command(flatten)]
        state: StateArg,
    },
    /// Copy an environment's state to another backend (e.g. from the local
    /// SQLite file to S3 or PostgreSQL), then point --state at it.
    Migrate {
        /// Destination address: a file path, postgres://…, or s3://…
        #[arg(long, value_name = "ADDRESS")]
        to: String,
        /// Project directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
        #[command(flatten)]
        state: StateArg,
        /// Overwrite a destination that already holds state for this environment.
        #[arg(long)]
        force: bool,
    },
    /// Re-seal every stored value with the current PLINTH_STATE_KEY (after a
    /// rotation, with the old key in PLINTH_STATE_KEY_PREVIOUS), or with none
    /// to decrypt the state.
    Rekey {
        /// Project directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
        #[command(flatten)]
        state: StateArg,
    },
    /// The runs that changed this environment.
    History {
        /// Project directory (or -C).
        #[arg(value_name = "DIR")]
        dir_arg: Option<PathBuf>,
        /// Project directory (default: the current directory).
        #[arg(short = 'C', long = "dir", value_name = "DIR", conflicts_with = "dir_arg")]
        dir: Option<PathBuf>,
        #[command(flatten)]
        state: StateArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Accepts Terraform's single-dash spellings `-var`, `-var-file` (and the
/// `=value` forms) as `--var`, `--var-file`.
pub fn terraform_style_args(args: impl IntoIterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    args.into_iter()
        .map(|a| match a.to_str() {
            Some(s) if s == "-var" || s == "-var-file" || s.starts_with("-var=") || s.starts_with("-var-file=") => format!("-{s}").into(),
            _ => a,
        })
        .collect()
}

/// The name of the environment when none is chosen.
pub use crate::operations::DEFAULT_ENV;

/// Runs the CLI; returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse_from(terraform_style_args(std::env::args_os())) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let color = !cli.no_color && std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal();
    let ui = Ui { style: Style { color }, err_color: !cli.no_color && std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal() };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().thread_stack_size(16 << 20).build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    crate::eval::limits::arm();
    match runtime.block_on(async {
        let interrupt = exec::Interrupt::install();
        run(cli.command, &ui, &interrupt).await
    }) {
        Ok(code) => code,
        Err(failure) => {
            ui.report(&failure.sources, &failure.diags, failure.json);
            1
        }
    }
}

/// Diagnostics that end a command, with the sources they point into, and
/// how to render them.
pub struct Failure {
    pub sources: Sources,
    pub diags: Diags,
    pub json: bool,
}

impl Failure {
    fn new(sources: &Sources, diags: Diags, json: bool) -> Failure {
        Failure { sources: sources.clone(), diags, json }
    }
    fn bare(d: Diagnostic, json: bool) -> Failure {
        Failure { sources: Sources::default(), diags: vec![d], json }
    }
    /// An operation's failure, rendered as JSON or not.
    fn of(failed: Failed, json: bool) -> Failure {
        Failure { sources: failed.sources, diags: failed.diags, json }
    }
}

/// `.map_err(fail(json))`: an operation's failure as this command renders it.
fn fail(json: bool) -> impl Fn(Failed) -> Failure {
    move |failed| Failure::of(failed, json)
}

pub struct Ui {
    pub style: Style,
    pub err_color: bool,
}

impl Ui {
    pub fn report(&self, sources: &Sources, diags: &Diags, json: bool) {
        if json {
            let list: Vec<serde_json::Value> = diags.iter().map(|d| d.to_json(sources)).collect();
            println!("{}", serde_json::json!({ "valid": false, "diagnostics": list }));
            return;
        }
        let theme = if self.err_color { miette::GraphicalTheme::unicode() } else { miette::GraphicalTheme::unicode_nocolor() };
        let handler = miette::GraphicalReportHandler::new_themed(theme).with_context_lines(1);
        let mut stderr = std::io::stderr().lock();
        for d in diags {
            let report = d.to_report(sources);
            let mut out = String::new();
            if handler.render_report(&mut out, report.as_ref()).is_err() {
                out = d.one_line(sources);
            }
            let _ = writeln!(stderr, "{out}");
        }
        if diags.len() > 1 {
            let _ = writeln!(stderr, "{} errors.", diags.len());
        }
    }
}

impl StateArg {
    /// The operation on the project in `dir` with this state and environment.
    fn operation(&self, dir: &Path) -> Operation {
        Operation::new(dir, self.address.clone(), self.env.clone())
    }
}

impl VarArgs {
    fn flags(&self) -> VarFlags<'_> {
        VarFlags { var_files: &self.var_files, vars: &self.vars }
    }
}

fn init_cmd(dir: &Path, options: &ops::init::InitOptions, json: bool) -> Result<i32, Failure> {
    use crate::tfregistry::Origin;
    let ops::init::Initialized { modules, lock, providers } = ops::init::init(dir, options).map_err(fail(json))?;
    let pinned = lock.as_ref().map(|l| l.sources.len()).unwrap_or(0);
    let from = |o: &Origin| match o {
        Origin::AlreadyInstalled => "already installed, matches plinth.lock".to_string(),
        Origin::Mirror { path } => format!("from the mirror {}", path.display()),
        Origin::Registry { url, key } => format!("from {url}, signed by key {key}"),
    };
    if json {
        let entries: Vec<serde_json::Value> = lock
            .iter()
            .flat_map(|l| l.sources.iter())
            .map(|e| serde_json::json!({ "source": e.source, "constraint": e.constraint, "tag": e.tag, "commit": e.commit, "hash": e.hash }))
            .collect();
        let installed: Vec<serde_json::Value> = providers
            .iter()
            .map(|o| {
                let (origin, origin_path, key) = match &o.origin {
                    Origin::AlreadyInstalled => ("installed", None, None),
                    Origin::Mirror { path } => ("mirror", Some(path.display().to_string()), None),
                    Origin::Registry { url, key } => ("registry", Some(url.clone()), Some(key.clone())),
                };
                serde_json::json!({
                    "source": o.lock.source, "version": o.lock.version, "constraints": o.lock.constraints, "hashes": o.lock.hashes,
                    "dir": o.installed.dir.display().to_string(), "binary": o.installed.binary.display().to_string(),
                    "origin": origin, "from": origin_path, "signing_key": key,
                })
            })
            .collect();
        println!("{}", serde_json::json!({ "modules": modules, "locked": entries, "providers": installed }));
    } else {
        for e in lock.iter().flat_map(|l| l.sources.iter()) {
            println!("  {} {} → {} ({})", e.source, e.constraint, e.tag, &e.commit[..e.commit.len().min(12)]);
        }
        for o in &providers {
            let c = if o.lock.constraints.is_empty() { "(any version)".to_string() } else { o.lock.constraints.clone() };
            println!("  {} {c} → {} ({})", o.lock.source, o.lock.version, from(&o.origin));
            for h in &o.lock.hashes {
                println!("      {h}");
            }
        }
        let n = providers.len();
        println!(
            "✓ {modules} module{} resolved; {pinned} git source{} and {n} provider{} pinned in plinth.lock.",
            if modules == 1 { "" } else { "s" },
            if pinned == 1 { "" } else { "s" },
            if n == 1 { "" } else { "s" }
        );
    }
    Ok(0)
}

fn envs_cmd(dir: &Path, json: bool) -> Result<i32, Failure> {
    let rows = ops::environments(dir).map_err(fail(json))?;
    if json {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| serde_json::json!({ "name": r.name, "backend": r.backend, "state": redact_url(&r.address), "files": r.files, "values": r.values }))
            .collect();
        println!("{}", serde_json::json!({ "environments": list }));
    } else if rows.is_empty() {
        println!("No environments: add envs/<name>.plinth files (see docs/language.md, Environments).");
    } else {
        let w = rows.iter().map(|r| r.name.len()).max().unwrap_or(0);
        for r in &rows {
            let (n, k, v) = (&r.name, &r.backend, r.values);
            println!("{n:w$}  {k:<8} {}  ({v} value{}, from {})", redact_url(&r.address), if v == 1 { "" } else { "s" }, r.files.join(" → "));
        }
    }
    Ok(0)
}

/// Every address `plinth` prints goes through the one redaction.
use crate::redact::url as redact_url;

async fn run(command: Command, ui: &Ui, interrupt: &exec::Interrupt) -> Result<i32, Failure> {
    match command {
        Command::Validate { dir, env, vars, json } => validate(&dir, env, &vars, json, ui),
        Command::Plan(args) => plan_cmd(args, ui).await,
        Command::Apply(args) => apply_cmd(args, ui, interrupt).await,
        Command::Destroy(args) => {
            let DestroyArgs { dir, common, auto_approve, parallelism } = args;
            let op = common.state.operation(&dir);
            run_apply(op, common, auto_approve, parallelism, true, None, ui, interrupt).await
        }
        Command::Drift(args) => drift_cmd(args, ui, interrupt).await,
        Command::Output { name, dir_arg, dir, state, json, show_sensitive } => {
            let (mut rest, dir) = args::split_dir(name.into_iter().chain(dir_arg).collect(), dir, 1);
            output_cmd(&dir, &state, rest.pop(), json, show_sensitive)
        }
        Command::State(cmd) => state_cmd(cmd),
        Command::Graph { dir, format } => graph_cmd(&dir, format),
        Command::Fmt { path, check } => {
            if path.is_dir() {
                project::check_dir(&path).map_err(|d| Failure::bare(d, false))?;
            }
            fmt_cmd(&path, check)
        }
        Command::Envs { dir, json } => envs_cmd(&dir, json),
        Command::Init { dir, upgrade, provider_mirror, provider_registry_ca, json } => {
            init_cmd(&dir, &ops::init::InitOptions { upgrade, provider_mirror, registry_ca: provider_registry_ca }, json)
        }
        Command::Render(args) => hydrate::render_cmd(args),
        Command::Import { address, id, dir, vars, state, json } => {
            let attrs = surgery::import(&mut state.operation(&dir), vars.flags(), &address, &id).map_err(fail(json))?;
            if json {
                println!("{}", serde_json::json!({ "address": address, "id": id, "imported": true }));
            } else {
                println!(
                    "Imported {address} ({} attribute{}); `plinth plan` shows how it differs from the configuration.",
                    attrs.len().saturating_sub(1),
                    if attrs.len() == 2 { "" } else { "s" }
                );
            }
            Ok(0)
        }
        Command::Unlock { dir, state } => {
            let removed = ops::queries::unlock(&mut state.operation(&dir)).map_err(fail(false))?;
            println!("{}", if removed { "Lock removed." } else { "The environment was not locked." });
            Ok(0)
        }
    }
}

/// `validate`: everything but IO; with an environment, its values too.
fn validate(dir: &Path, env: Option<String>, var_args: &VarArgs, json: bool, ui: &Ui) -> Result<i32, Failure> {
    let loaded = ops::validate(&mut Operation::new(dir, None, env), var_args.flags()).map_err(fail(json))?;
    let n = loaded.cfg.resources.len();
    exit_without_freeing(loaded);
    if json {
        println!("{}", serde_json::json!({ "valid": true, "diagnostics": [], "resources": n }));
    } else {
        println!("{} The configuration is valid ({n} resource{}).", ui.style.green("✓"), if n == 1 { "" } else { "s" });
    }
    Ok(0)
}

/// Plans the operation and warns about `--only` targets that match nothing
/// in its environment.
async fn make_plan(op: &mut Operation, common: &CommonArgs, destroy: bool, store: &mut dyn Store, replay: Option<&PlanFile>) -> Result<Planned, Failure> {
    let request = PlanRequest { vars: common.vars.flags(), only: common.only.clone(), refresh: common.refresh, remediate: common.remediate, destroy };
    let planned = ops::make_plan(op, &request, store, replay).await.map_err(fail(common.json))?;
    for target in &planned.unmatched_only {
        eprintln!("warning[P4040]: `--only` target `{target}` matches nothing in environment `{}`; the other targets are planned.", op.env_name());
    }
    Ok(planned)
}

fn print_reconciled(r: &exec::reconcile::Reconciled, json: bool) {
    if json || r.is_empty() {
        return;
    }
    eprintln!(
        "Recovered from an interrupted run: {} object(s) found and recorded, {} operation(s) found not to have happened, {} checked.",
        r.recorded.len(),
        r.forgotten.len(),
        r.unchanged.len()
    );
}

async fn plan_cmd(args: PlanArgs, ui: &Ui) -> Result<i32, Failure> {
    let PlanArgs { dir, common, destroy, out, detailed_exitcode } = args;
    let json = common.json;
    let mut op = common.state.operation(&dir);
    let mut store = op.open_store().map_err(fail(json))?;
    let guard = ops::acquire(store.as_mut(), "plan", common.lock_timeout).map_err(fail(json))?;
    let planned = make_plan(&mut op, &common, destroy, guard.store, None).await?;
    drop(guard);
    print_reconciled(&planned.reconciled, json);
    let plan = &planned.plan;
    if json {
        println!("{}", render::plan_json(plan));
    } else {
        print!("{}", render::plan_text(plan, ui.style));
    }
    if let Some(path) = out {
        save_plan(&path, &mut op, &common.only, common.refresh, common.remediate, plan, &planned.prepared, json)?;
    }
    let code = if detailed_exitcode && plan.has_changes() { 2 } else { 0 };
    exit_without_freeing(planned);
    Ok(code)
}

/// Writes a plan file that `plinth apply FILE` applies exactly, and says so.
#[allow(clippy::too_many_arguments)]
fn save_plan(
    path: &Path,
    op: &mut Operation,
    only: &[String],
    refresh: bool,
    remediate: bool,
    plan: &Plan,
    prepared: &Prepared,
    json: bool,
) -> Result<(), Failure> {
    ops::save_plan(path, op, only, refresh, remediate, plan, prepared).map_err(fail(json))?;
    if !json {
        println!("\nSaved the plan to {}. Apply exactly it with: plinth apply {}", path.display(), path.display());
    }
    Ok(())
}

/// The process is about to exit: freeing a large configuration, graph and
/// plan piece by piece would only cost time (at 5,000 resources, ~10% of a
/// plan). The operating system reclaims the memory.
fn exit_without_freeing<T>(value: T) {
    std::mem::forget(value);
}

async fn apply_cmd(args: ApplyArgs, ui: &Ui, interrupt: &exec::Interrupt) -> Result<i32, Failure> {
    let ApplyArgs { target, common, auto_approve, parallelism } = args;
    if target.is_file() {
        let json = common.json;
        let pf = PlanFile::read(&target).map_err(fail(json))?;
        let mut common = common;
        common.only = pf.only.clone();
        common.refresh = pf.refresh;
        common.remediate = pf.remediate;
        let op = pf.operation(common.state.address.clone(), common.state.env.clone()).map_err(fail(json))?;
        let destroy = pf.destroy;
        // A saved plan was already approved when it was reviewed.
        return run_apply(op, common, true, parallelism, destroy, Some(pf), ui, interrupt).await;
    }
    let op = common.state.operation(&target);
    run_apply(op, common, auto_approve, parallelism, false, None, ui, interrupt).await
}

#[allow(clippy::too_many_arguments)]
async fn run_apply(
    mut op: Operation,
    common: CommonArgs,
    auto_approve: bool,
    parallelism: usize,
    destroy: bool,
    saved: Option<PlanFile>,
    ui: &Ui,
    interrupt: &exec::Interrupt,
) -> Result<i32, Failure> {
    let json = common.json;
    let command = if destroy { "destroy" } else { "apply" };
    // A destroy removes what is recorded: with no state there is nothing.
    let mut store = if destroy { op.open_store() } else { op.create_store() }.map_err(fail(json))?;
    let guard = ops::acquire(store.as_mut(), command, common.lock_timeout).map_err(fail(json))?;
    let store: &mut dyn Store = guard.store;
    if let Some(pf) = &saved {
        pf.check_serial(store).map_err(fail(json))?;
    }
    let mut planned = make_plan(&mut op, &common, destroy, store, saved.as_ref()).await?;
    print_reconciled(&planned.reconciled, json);
    if let Some(pf) = &saved {
        pf.check_fingerprint(&planned.plan).map_err(fail(json))?;
    }
    let plan = &planned.plan;
    if !json {
        print!("{}", render::plan_text(plan, ui.style));
    }
    if !plan.has_changes() {
        if json {
            println!("{}", serde_json::json!({ "applied": true, "changes": 0, "serial": plan.prior_serial }));
        } else if destroy {
            println!("\n{} Resources: 0 destroyed.", ui.style.bold("Destroy complete!"));
        }
        return Ok(0);
    }
    if !auto_approve {
        if !std::io::stdin().is_terminal() {
            return Err(Failure::bare(
                Diagnostic::new("P4007", "confirmation needed").help(format!(
                    "`plinth {command}` asks before changing anything, and standard input is not a terminal. Review the plan above and pass --auto-approve, or save it with `plan --out FILE` and `apply FILE`."
                )),
                json,
            ));
        }
        print!("\nDo you want to perform these actions? Only 'yes' is accepted: ");
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if answer.trim() != "yes" {
            println!("Cancelled; nothing was changed.");
            return Ok(1);
        }
    }
    if interrupt.fired() {
        eprintln!("Interrupted before applying: nothing was changed.");
        return Ok(1);
    }
    let total = plan.changes.iter().filter(|c| c.action != Action::NoOp).count() as u64;
    let progress = if !json && std::io::stderr().is_terminal() && total > 1 {
        let pb = indicatif::ProgressBar::new(total);
        pb.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {wide_msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(pb)
    } else {
        None
    };
    let style = ui.style;
    let mut lines: Vec<String> = Vec::new();
    let mut on_event = |e: Event| {
        let line = match &e {
            Event::Started { address, .. } => {
                if let Some(pb) = &progress {
                    pb.set_message(address.clone());
                }
                None
            }
            Event::Finished { address, action, elapsed } => {
                if let Some(pb) = &progress {
                    pb.inc(1);
                }
                Some(format!("  {} {address}: {} ({:.2}s)", style.action(*action, false), action.verb(), elapsed.as_secs_f64()))
            }
            Event::Failed { address, diagnostic } => Some(format!("  {} {address}: failed: {} {}", style.red("!"), diagnostic.code, diagnostic.message)),
            Event::Skipped { address, because } => Some(format!("  {} {address}: not attempted, `{because}` failed", style.red("-"))),
            Event::Interrupted => Some("Interrupted: finishing the operations in flight and recording them; nothing new starts.".to_string()),
        };
        if let Some(line) = line {
            if json {
                return;
            }
            match &progress {
                Some(pb) => pb.println(line),
                None => lines.push(line),
            }
            if lines.len() >= 64 {
                let mut out = std::io::stdout().lock();
                for l in lines.drain(..) {
                    let _ = writeln!(out, "{l}");
                }
            }
        }
    };
    if !json {
        println!();
    }
    let started = Instant::now();
    let result = ops::apply(&op, &mut planned, store, parallelism, command, interrupt, &mut on_event).await;
    if let Some(pb) = &progress {
        pb.finish_and_clear();
    }
    for l in lines {
        println!("{l}");
    }
    let report = result.map_err(fail(json))?;
    let sources = &planned.prepared.loaded.cfg.sources;
    if json {
        let failures: Vec<serde_json::Value> =
            report.failures.iter().map(|(a, d)| serde_json::json!({ "address": a, "diagnostic": d.to_json(sources) })).collect();
        println!(
            "{}",
            serde_json::json!({
                "applied": report.ok(),
                "serial": report.serial,
                "created": report.created, "updated": report.updated, "replaced": report.replaced, "destroyed": report.deleted,
                "failures": failures, "skipped": report.skipped, "interrupted": report.interrupted,
                "seconds": started.elapsed().as_secs_f64(),
            })
        );
    } else if destroy {
        // Terraform's last line, which scripts and people look for.
        let (done, failed) = (report.deleted, report.failures.len() + report.skipped.len());
        println!("\n({:.2}s, state serial {})", started.elapsed().as_secs_f64(), report.serial);
        if report.ok() {
            println!("{} Resources: {done} destroyed.", style.bold("Destroy complete!"));
        } else {
            println!("{} Resources: {done} destroyed, {failed} not.", style.red("Destroy incomplete!"));
        }
    } else {
        println!(
            "\n{} {} created, {} updated, {} replaced, {} destroyed in {:.2}s (state serial {}).",
            if report.ok() { style.bold("Apply complete:") } else { style.red("Apply incomplete:") },
            report.created,
            report.updated,
            report.replaced,
            report.deleted,
            started.elapsed().as_secs_f64(),
            report.serial
        );
        if !report.outputs.is_empty() {
            println!("\nOutputs:");
            let mut outputs: Vec<_> = report.outputs.iter().collect();
            outputs.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, value, sensitive) in outputs {
                println!("  {name} = {}", if *sensitive { "(sensitive)".to_string() } else { value.to_string() });
            }
        }
    }
    if !report.failures.is_empty() {
        let diags: Diags = report.failures.iter().map(|(_, d)| d.clone()).collect();
        if !json {
            ui.report(sources, &diags, false);
        }
        return Ok(1);
    }
    if report.interrupted || !report.skipped.is_empty() {
        return Ok(1);
    }
    Ok(0)
}

async fn drift_cmd(args: DriftArgs, ui: &Ui, interrupt: &exec::Interrupt) -> Result<i32, Failure> {
    let json = args.json;
    let mut op = args.state.operation(&args.dir);
    if args.history {
        let history = ops::queries::drift_history(&mut op).map_err(fail(json))?;
        if json {
            println!("{}", serde_json::to_string(&history).unwrap_or_default());
        } else {
            println!("{:<20}  {:>6}  {:>7}  {:>7}  {:>9}", "checked at", "serial", "objects", "drifted", "unmanaged");
            for h in history {
                println!("{:<20}  {:>6}  {:>7}  {:>7}  {:>9}", h.at, h.serial, h.checked, h.drifted, h.unmanaged);
            }
        }
        return Ok(0);
    }
    let mut store = op.open_store().map_err(fail(json))?;
    let guard = ops::acquire(store.as_mut(), "drift", args.lock_timeout).map_err(fail(json))?;
    let check = ops::drift::check(&mut op, guard.store, args.vars.flags(), args.parallelism).await.map_err(fail(json))?;
    if let Some(d) = &check.not_kept {
        if !json {
            eprintln!("warning: {} (the report was not kept)", d.message);
        }
    }
    if json {
        println!("{}", check.report);
    } else {
        print!("{}", render::drift_text(&check.env, check.serial, &check.drift, &check.unmanaged, Some(&check.summary), ui.style));
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, render::drift_junit(&check.env, &check.at, &check.drift, &check.unmanaged))
            .map_err(|e| Failure::bare(Diagnostic::new("P4008", "cannot write the JUnit report").help(format!("{}: {e}.", path.display())), json))?;
    }
    let has_drift = check.has_drift();
    if let Some(path) = &args.out {
        save_plan(path, &mut op, &[], true, true, &check.remediation, &check.prepared, json)?;
    }
    if args.accept {
        if let Some(accepted) = ops::drift::accept(guard.store, &check).map_err(fail(json))? {
            if !json {
                println!("\nRecorded reality as the new state for {} object(s) (state serial {}).", accepted.objects, accepted.serial);
            }
            return Ok(0);
        }
    }
    if args.fix && has_drift {
        if !args.auto_approve && !std::io::stdin().is_terminal() {
            return Err(Failure::bare(
                Diagnostic::new("P4007", "confirmation needed").help(
                    "`plinth drift --fix` asks before changing anything, and standard input is not a terminal. In a scheduled job pass --auto-approve (`plinth drift --fix --auto-approve`), or save the remediation plan with `drift --out FILE`, review it, and `plinth apply FILE`.",
                ),
                json,
            ));
        }
        drop(guard);
        if !json {
            println!();
        }
        // The fix applies with the project the check loaded: one resolution.
        op.reuse(check.prepared);
        let common = CommonArgs { vars: args.vars, state: args.state, only: vec![], refresh: true, remediate: true, lock_timeout: args.lock_timeout, json };
        return run_apply(op, common, args.auto_approve, args.parallelism, false, None, ui, interrupt).await;
    }
    Ok(if has_drift { 2 } else { 0 })
}

fn output_cmd(dir: &Path, state: &StateArg, name: Option<String>, json: bool, show_sensitive: bool) -> Result<i32, Failure> {
    let mut op = state.operation(dir);
    let shown = |o: &crate::state::model::OutputRecord| -> serde_json::Value {
        if o.sensitive && !show_sensitive {
            serde_json::Value::String("(sensitive)".into())
        } else {
            o.value.clone()
        }
    };
    match name {
        Some(n) => {
            let o = &ops::queries::output(&mut op, &n).map_err(fail(json))?;
            if json {
                println!("{}", shown(o));
            } else {
                match shown(o) {
                    serde_json::Value::String(s) => println!("{s}"),
                    other => println!("{}", Value::from_json(&other)),
                }
            }
        }
        None => {
            // One order everywhere, whatever order the backend returns: by name.
            let outputs = ops::queries::outputs(&mut op).map_err(fail(json))?;
            if json {
                let map: serde_json::Map<String, serde_json::Value> =
                    outputs.iter().map(|(k, o)| (k.clone(), serde_json::json!({ "value": shown(o), "sensitive": o.sensitive }))).collect();
                println!("{}", serde_json::Value::Object(map));
            } else {
                if outputs.is_empty() {
                    eprintln!("No outputs recorded. Outputs are recorded by `plinth apply`.");
                }
                for (k, o) in &outputs {
                    let v = shown(o);
                    let text = if o.sensitive && !show_sensitive { "(sensitive)".to_string() } else { Value::from_json(&v).to_string() };
                    println!("{k} = {text}");
                }
            }
        }
    }
    Ok(0)
}

fn state_cmd(cmd: StateCommand) -> Result<i32, Failure> {
    match cmd {
        StateCommand::List { args, dir, state } => {
            let (patterns, dir) = args::split_dir(args, dir, usize::MAX);
            let store = state.operation(&dir).open_store().map_err(fail(false))?;
            let addresses = surgery::listed_addresses(store.addresses().map_err(|d| Failure::bare(d, false))?, &patterns).map_err(fail(false))?;
            let mut out = std::io::stdout().lock();
            for (address, deposed) in addresses {
                let _ = if deposed.is_empty() { writeln!(out, "{address}") } else { writeln!(out, "{address} (deposed {deposed})") };
            }
            Ok(0)
        }
        StateCommand::Show { address, dir_arg, dir, state, json } => {
            let (mut rest, dir) = args::split_dir(address.into_iter().chain(dir_arg).collect(), dir, 1);
            let address = rest.pop();
            let (serial, recs) = ops::queries::instances(&mut state.operation(&dir), address.as_deref()).map_err(fail(json))?;
            if json {
                let list: Vec<serde_json::Value> = recs
                    .iter()
                    .map(|r| {
                        let attrs = plan::mark_sensitive(r.attrs.clone(), &r.sensitive);
                        serde_json::json!({
                            "address": r.address, "deposed": if r.deposed.is_empty() { None } else { Some(&r.deposed) },
                            "type": format!("{}.{}", r.provider.split('.').next().unwrap_or(""), r.rtype),
                            "provider": r.provider, "attributes": render::redacted_json(&Value::Map(attrs)),
                            "sensitive": r.sensitive, "dependencies": r.deps,
                        })
                    })
                    .collect();
                println!("{}", serde_json::json!({ "serial": serial, "instances": list }));
            } else {
                for r in recs {
                    println!("# {}{}", r.address, if r.deposed.is_empty() { String::new() } else { format!(" (deposed {})", r.deposed) });
                    let attrs = plan::mark_sensitive(r.attrs.clone(), &r.sensitive);
                    let w = attrs.keys().map(|k| k.len()).max().unwrap_or(0);
                    for (k, v) in &attrs {
                        println!("  {k}{} = {v}", " ".repeat(w - k.len()));
                    }
                    if !r.deps.is_empty() {
                        println!("  # depends on: {}", r.deps.join(", "));
                    }
                    println!();
                }
            }
            Ok(0)
        }
        StateCommand::Rm { args, dir, state } => {
            let (addresses, dir) = args::split_dir(args, dir, usize::MAX);
            if addresses.is_empty() {
                return Err(Failure::bare(
                    Diagnostic::new("P5055", "no address to remove")
                        .help(format!("`{}` is the project directory; name the instances to forget: `plinth state rm ADDRESS... [DIR]`.", dir.display())),
                    false,
                ));
            }
            let outcome = surgery::remove(&mut state.operation(&dir), &addresses).map_err(fail(false))?;
            for a in &outcome.removed {
                println!("Removed {a} from the state (the object itself was not touched).");
            }
            match outcome.error {
                Some(failed) => Err(Failure::of(failed, false)),
                None => Ok(0),
            }
        }
        StateCommand::Mv { from, to, dir_arg, dir, state } => {
            let dir = dir.or(dir_arg).unwrap_or_else(|| PathBuf::from("."));
            surgery::move_instance(&mut state.operation(&dir), &from, &to).map_err(fail(false))?;
            println!("Moved {from} to {to}.");
            Ok(0)
        }
        StateCommand::Migrate { to, dir, state, force } => {
            let copied = surgery::migrate(&mut state.operation(&dir), &to, force).map_err(fail(false))?;
            println!(
                "Copied {} instance(s) and {} output(s) to {shown}. Use it from now on with --state '{shown}' (or PLINTH_STATE).",
                copied.instances,
                copied.outputs,
                shown = copied.to
            );
            Ok(0)
        }
        StateCommand::Rekey { dir, state } => {
            let rekeyed = surgery::rekey(&mut state.operation(&dir)).map_err(fail(false))?;
            let how = if rekeyed.sealed { "sealed with the current key" } else { "stored in clear (no PLINTH_STATE_KEY)" };
            println!("Rewrote {} instance(s) and {} output(s), {how}.", rekeyed.instances, rekeyed.outputs);
            Ok(0)
        }
        StateCommand::History { dir_arg, dir, state, json } => {
            let dir = dir.or(dir_arg).unwrap_or_else(|| PathBuf::from("."));
            let store = state.operation(&dir).open_store().map_err(fail(json))?;
            let history = store.history().map_err(|d| Failure::bare(d, json))?;
            if json {
                println!("{}", serde_json::to_string(&history).unwrap_or_default());
            } else {
                println!(
                    "{:>6}  {:<20}  {:<8}  {:<11}  {:>7} {:>7} {:>7} {:>7}",
                    "serial", "started", "command", "status", "created", "updated", "replaced", "deleted"
                );
                for h in history {
                    println!(
                        "{:>6}  {:<20}  {:<8}  {:<11}  {:>7} {:>7} {:>7} {:>7}",
                        h.serial, h.started_at, h.command, h.status, h.created, h.updated, h.replaced, h.deleted
                    );
                }
            }
            Ok(0)
        }
    }
}

fn graph_cmd(dir: &Path, format: GraphFormat) -> Result<i32, Failure> {
    let loaded = ops::load_checked(dir).map_err(fail(false))?;
    let g = &loaded.graph;
    let label = |id: &eval::DeclId| id.to_string();
    let mut out = String::new();
    use std::fmt::Write as _;
    match format {
        GraphFormat::Dot => {
            let _ = writeln!(out, "digraph plinth {{\n  rankdir = \"LR\";\n  node [shape = box];");
            for &n in &g.order {
                let shape = match &g.dag[n] {
                    eval::DeclId::Resource(_) => "box",
                    eval::DeclId::Data(_) => "cylinder",
                    eval::DeclId::Output(_) => "note",
                    eval::DeclId::Provider(_) => "component",
                    _ => "ellipse",
                };
                let _ = writeln!(out, "  \"{}\" [shape = {shape}];", label(&g.dag[n]).replace('"', "\\\""));
            }
            for e in g.dag.edge_indices() {
                if let Some((a, b)) = g.dag.edge_endpoints(e) {
                    let _ = writeln!(out, "  \"{}\" -> \"{}\";", label(&g.dag[a]).replace('"', "\\\""), label(&g.dag[b]).replace('"', "\\\""));
                }
            }
            out.push_str("}\n");
        }
        GraphFormat::Mermaid => {
            out.push_str("flowchart LR\n");
            for &n in &g.order {
                let text = label(&g.dag[n]).replace('"', "#quot;");
                let node = match &g.dag[n] {
                    eval::DeclId::Resource(_) => format!("n{}[\"{text}\"]", n.index()),
                    eval::DeclId::Data(_) => format!("n{}[(\"{text}\")]", n.index()),
                    eval::DeclId::Output(_) => format!("n{}[/\"{text}\"/]", n.index()),
                    _ => format!("n{}(\"{text}\")", n.index()),
                };
                let _ = writeln!(out, "  {node}");
            }
            for e in g.dag.edge_indices() {
                if let Some((a, b)) = g.dag.edge_endpoints(e) {
                    let _ = writeln!(out, "  n{} --> n{}", a.index(), b.index());
                }
            }
        }
    }
    print!("{out}");
    Ok(0)
}

fn fmt_cmd(path: &Path, check: bool) -> Result<i32, Failure> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| Failure::bare(Diagnostic::new("P2050", "cannot read the directory").help(format!("{}: {e}.", path.display())), false))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "plinth"))
            .collect();
        v.sort();
        v
    } else {
        vec![path.to_path_buf()]
    };
    let mut sources = Sources::default();
    let mut diags = Vec::new();
    let mut unformatted = Vec::new();
    for f in files {
        let name = f.display().to_string();
        let text = match std::fs::read(&f).map(String::from_utf8) {
            Ok(Ok(t)) => t,
            Ok(Err(_)) => {
                diags.push(Diagnostic::new("P1004", "file is not valid UTF-8").help(format!("{name} must be UTF-8 text.")));
                continue;
            }
            Err(e) => {
                diags.push(Diagnostic::new("P2050", "cannot read a configuration file").help(format!("{name}: {e}.")));
                continue;
            }
        };
        let id = sources.add(name.clone(), text.as_str());
        // Only valid files are formatted: the formatter must never guess.
        if let Err(d) = crate::syntax::parse_file(id, &text) {
            diags.extend(d);
            continue;
        }
        match crate::syntax::fmt::format_source(&text) {
            Ok(formatted) if formatted != text => {
                if check {
                    println!("{name}");
                } else if let Err(e) = std::fs::write(&f, formatted) {
                    diags.push(Diagnostic::new("P2050", "cannot write a configuration file").help(format!("{name}: {e}.")));
                    continue;
                } else {
                    println!("formatted {name}");
                }
                unformatted.push(name);
            }
            Ok(_) => {}
            Err(e) => diags
                .push(Diagnostic::new("P1001", "cannot format this file").help(e.message).label(crate::diagnostic::Span::new(id, e.offset, e.offset), "here")),
        }
    }
    if !diags.is_empty() {
        return Err(Failure::new(&sources, diags, false));
    }
    if check && !unformatted.is_empty() {
        eprintln!("{} file(s) need formatting; run `plinth fmt`.", unformatted.len());
        return Ok(1);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }

    /// Every argument of every subcommand (flags and positionals) has help
    /// text, so `--help` explains all of them.
    #[test]
    fn every_argument_has_help_text() {
        use clap::CommandFactory;
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut cmd = super::Cli::command();
        cmd.build();
        let mut missing = Vec::new();
        walk(&cmd, "plinth", &mut missing);
        assert!(missing.is_empty(), "arguments without help text: {missing:?}");
    }

    #[test]
    fn terraform_style_var_flags_are_accepted() {
        let args = super::terraform_style_args(["plinth", "plan", "-var", "a=1", "-var-file=x.vars", "-v"].map(std::ffi::OsString::from));
        let args: Vec<_> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(args, ["plinth", "plan", "--var", "a=1", "--var-file=x.vars", "-v"]);
    }
}
