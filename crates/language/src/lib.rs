//! The Plinth language: text → syntax tree with spans ([`syntax`]: grammar,
//! one lexer shared by the parser, the nesting precheck, chunking and `fmt`)
//! → declarations, values and references ([`eval`]: evaluation and the
//! standard functions) and templates ([`template`]).
//!
//! Invariants: no IO (files and the environment are reached only through the
//! caller's `FnHost`); no async runtime, no SQL, no network client: this
//! crate builds and tests without tokio, rusqlite, reqwest or the AWS SDK.
//! Provider schemas are read through the SDK's registry, never a provider.

// Plinth asks for pest without its `std` feature (its per-rule stack guard
// cost ~5% of a plan; `syntax` bounds nesting itself), so the generated
// parser may name `alloc` at the crate root. In the binary, kube's `client`
// feature requires jsonpath-rust, which enables pest's `std` for the whole
// build (feature unification): the guard is compiled in there again.
extern crate alloc;

pub mod eval;
pub mod syntax;
pub mod template;

// Lower crates under the module paths the code has always used.
use plinth_base::{diagnostic, types, value};
use plinth_sdk as providers;
