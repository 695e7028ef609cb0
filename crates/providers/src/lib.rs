//! The built-in providers, and [`registry_in`]: the one place that lists
//! them. `core`, `random`, `file` (with `file.tree`), `git`, `postgres`, `s3`,
//! `kubernetes`, `http` and `exec` (external providers in any language).
//!
//! Invariants: this is the only crate that names a provider; each provider
//! knows nothing of the others, of the state or of the engine; `schema` and
//! `plan` do no IO; tokens and passwords never reach a diagnostic.

pub mod core;
pub mod exec;
pub mod file;
pub mod git;
pub mod http;
pub mod kubernetes;
pub mod postgres;
pub mod random;
pub mod s3;

// What every provider module takes with `use super::*`: the SDK, and the
// base types under the module paths the code has always used.
use async_trait::async_trait;
use indexmap::IndexMap;
use plinth_base::diagnostic::Diagnostic;
use plinth_base::types::Type;
use plinth_base::value::{Map, Value};
use plinth_base::{diagnostic, fsutil, redact, types, value};
use plinth_clients::{child, pgtls, s3util, tls};
use plinth_language::{eval, template};
use plinth_sdk as providers;
use plinth_sdk::*;
use std::path::Path;
use std::sync::Arc;

/// Every built-in provider, planning relative to `project_dir` (relative
/// paths that providers resolve at plan time, such as `file.tree`'s).
pub fn registry_in(project_dir: &Path) -> Registry {
    let mut r = Registry::empty();
    r.register(Arc::new(core::CoreFactory::new()));
    r.register(Arc::new(random::RandomFactory::new()));
    r.register(Arc::new(file::FileFactory::in_dir(project_dir)));
    r.register(Arc::new(git::GitFactory::new()));
    r.register(Arc::new(postgres::PostgresFactory::new()));
    r.register(Arc::new(s3::S3Factory::new()));
    r.register(Arc::new(kubernetes::KubernetesFactory::new()));
    r.register(Arc::new(http::HttpFactory::new()));
    r.register(Arc::new(exec::ExecFactory::new()));
    r
}
