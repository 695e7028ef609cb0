//! The engine: declarations → dependency graph ([`graph`]) → plan against
//! recorded state ([`plan`], including drift) → provider calls in dependency
//! order with intents recorded first ([`exec`]: apply, reconcile, refresh).
//!
//! Invariants: never names a provider (it does not depend on
//! `plinth-providers`; it asks the SDK's `Registry`); `plan` is a pure
//! function; `exec` decides only *how*, never *what*; nothing here prints.

pub mod exec;
pub mod graph;
pub mod plan;

// Lower crates under the module paths the code has always used.
use plinth_base::{diagnostic, types, value};
use plinth_language::{eval, syntax};
use plinth_sdk as providers;
use plinth_state as state;
