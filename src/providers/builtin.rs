//! The built-in providers, registered: the one place that lists them.
//!
//! Invariants: the rest of `providers/mod.rs` (the trait, requests, schemas,
//! the registry, the retry/rate-limit policy in `governed`) names no
//! provider; this file is where the binary's provider set is decided.

use super::{core, exec, file, git, http, kubernetes, postgres, random, s3, Registry};
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
