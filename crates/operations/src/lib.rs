//! Operations: one [`Operation`] in (a project directory, its environment,
//! its state address, param values, a selection), an outcome out. What the
//! `plinth` commands do, without arguments or rendering: loading a project
//! for a run ([`operation`]), opening and locking its state ([`store`]),
//! making and applying plans ([`planning`]), saved plans and their checks
//! ([`saved`]), drift and `--accept` ([`drift`]), `state rm|mv|migrate|
//! rekey` ([`surgery`]), read-only lookups (outputs, `state show`, drift
//! history, `unlock`: [`queries`]), pinning module sources and installing
//! Terraform providers ([`init`]), and registering the installed ones for a
//! run ([`terraform`]).
//!
//! Invariants:
//! - Never prints. Outcomes, warnings and diagnostics are returned as data
//!   ([`Failed`] for what ends a command); the binary renders them and picks
//!   the exit code. `tests/it/architecture.rs` refuses a `print!` here.
//! - One resolution per run. An [`Operation`] checks its directory, parses
//!   the project's files and evaluates its environment (values and backend,
//!   hence the state address) at most once, and loading the project reuses
//!   them. The environment files' `env()` answers are recorded in the run's
//!   `RunHost`, so a saved plan replays them.
//! - Nothing is written where the user did not point. Read-only commands
//!   never create a state ([`Operation::open_store`]); only `apply` does
//!   ([`Operation::create_store`]), after checking the project directory.
//!   Plan files and reports go only to the paths given.

pub mod drift;
pub mod init;
pub mod operation;
pub mod planning;
pub mod queries;
pub mod saved;
pub mod store;
pub mod surgery;
pub mod terraform;

pub use operation::{environments, load_checked, validate, EnvironmentRow, Loaded, Operation, Prepared, VarFlags, Vars, DEFAULT_ENV};
pub use planning::{apply, make_plan, PlanRequest, Planned};
pub use saved::{save_plan, PlanFile, PLAN_FORMAT};
pub use store::{absolute, acquire, provider_context, LockGuard};

// Lower crates under the module paths the code has always used.
use plinth_base::{diagnostic, fsutil, redact, value};
use plinth_engine::{exec, graph, plan};
use plinth_language::{eval, syntax};
use plinth_project::{envs, project, sources};
use plinth_state as state;

use diagnostic::{Diagnostic, Diags, Sources};

/// Diagnostics that end an operation, with the sources they point into.
/// How they are shown (text or JSON) is the caller's business.
#[derive(Debug, Clone)]
pub struct Failed {
    pub sources: Sources,
    pub diags: Diags,
}

impl Failed {
    pub fn new(sources: &Sources, diags: Diags) -> Failed {
        Failed { sources: sources.clone(), diags }
    }
    /// One diagnostic that points into no file.
    pub fn bare(d: Diagnostic) -> Failed {
        Failed { sources: Sources::default(), diags: vec![d] }
    }
}
