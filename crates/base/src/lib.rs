//! The base of every Plinth crate: values and their types, diagnostics (miette,
//! with codes, help and spans), URL/percent coding and the one redaction of
//! secrets in text and URLs, and file primitives (atomic writes, bounded
//! walks, paths confined to a root).
//!
//! Invariants: depends on no other Plinth crate; no IO except the file
//! primitives in [`fsutil`]; nothing here knows the language, a provider or
//! the state.

pub mod address;
pub mod diagnostic;
pub mod fsutil;
pub mod redact;
pub mod types;
pub mod value;
