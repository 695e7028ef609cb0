//! Plinth: infrastructure as code — one language, one dependency graph, plans
//! against durable state, idempotent applies, drift detection.
//!
//! Code map, in pipeline order (see `docs/architecture.md`, whose layer
//! table `tests/it/architecture.rs` enforces on every `crate::` path):
//!
//! | module | input → output | invariant |
//! | --- | --- | --- |
//! | [`sources`] | component sources → module directories, `plinth.lock`, `.plinth/modules/` | IO before `eval`; `git ls-remote` only in `plinth init` |
//! | [`syntax`] | text → AST with spans | no IO; pest never leaves it |
//! | [`eval`] | AST + values → declarations, values, references | no IO (the CLI's host answers `env`/`file`) |
//! | [`template`] | template text + vars/env → rendered text (`template()`, `file.tree`, `plinth render`) | no IO (functions go through the caller's `FnHost`); linear; errors name file:line:column |
//! | [`graph`] | declarations → petgraph DAG, cycle diagnostics | no IO |
//! | [`plan`] | DAG + prior state → [`plan::Plan`] | pure function |
//! | [`exec`] | plan → provider calls in dependency order | decides only *how*, never *what* |
//! | [`state`] | durable stores behind one trait, three backends: SQLite (default), PostgreSQL, S3; intents, serials, locks, history | the only module that knows SQL or S3 |
//! | [`providers`] | one trait, a registry, nine built-in providers: `core`, `random`, `file`, `git`, `postgres`, `s3`, `kubernetes`, `http`, `exec` (external providers in any language), listed only in `providers/builtin.rs` | the engine never names a provider; the SDK part (`providers/mod.rs`, `governed.rs`) names none either |
//! | [`envs`] | `envs/**/*.plinth` → an environment's param values and backend | reads only `envs/`; never opens the state |
//! | [`cli`] | arguments → stages → output, exit codes | the only module that prints |

// Plinth asks for pest without its `std` feature (its per-rule stack guard
// cost ~5% of a plan; `syntax` bounds nesting itself), so the generated
// parser may name `alloc` at the crate root. kube's `client` feature requires
// jsonpath-rust, which enables pest's `std` for the whole build (feature
// unification): the guard is compiled in again while kube is a dependency.
extern crate alloc;

pub mod child;
pub mod cli;
pub mod diagnostic;
pub mod envs;
pub mod eval;
pub mod exec;
pub mod fsutil;
pub mod graph;
pub mod pgtls;
pub mod plan;
pub mod project;
pub mod providers;
pub mod redact;
pub mod s3util;
pub mod sources;
pub mod state;
pub mod syntax;
pub mod template;
pub mod tls;
pub mod types;
pub mod value;
