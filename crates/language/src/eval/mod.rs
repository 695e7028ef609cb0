//! Stage `eval`: AST + values → [`Config`] (the declarations of a project,
//! checked) and the expression evaluator.
//!
//! Invariants: no IO and no provider calls. `env()` and `file()` reach the
//! outside only through the [`functions::FnHost`] the caller passes (the CLI
//! records what it answered). Static checks accumulate every diagnostic of a
//! project (duplicate names, unknown providers, types and attributes with
//! "did you mean", references to undeclared things) so that a user fixes all
//! mistakes in one round.

pub mod components;
pub mod config;
pub mod expr;
pub mod functions;
pub mod limits;
pub mod types;
pub mod yaml;

pub use config::{declare, declare_with, Config, DeclId, Reference, ResourceMeta};
pub use expr::{Evaluator, Namespace};
