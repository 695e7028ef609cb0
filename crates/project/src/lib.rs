//! Loading a project: component sources → module directories, `plinth.lock`
//! and `.plinth/modules/` ([`sources`]), a directory's files → one evaluated
//! configuration ([`project`]), and `envs/**/*.plinth` → an environment's
//! values and backend ([`envs`]).
//!
//! Invariants: `git ls-remote` only in `plinth init`; `envs` reads only
//! `envs/` and never opens the state; nothing here prints.

pub mod envs;
pub mod project;
pub mod sources;

// Lower crates under the module paths the code has always used.
use plinth_base::{diagnostic, fsutil, redact, value};
use plinth_language::{eval, syntax};
use plinth_state as state;
