//! Terraform providers named by the project's provider blocks
//! (`provider otc { source = "…/opentelekomcloud" version = "~> 1.36" }`):
//! each becomes a factory in the run's registry, built from what `plinth
//! init` installed and pinned — the package found by `plinth.lock` and
//! verified against its hashes, and the schema cached beside it. No
//! provider process starts here.
//!
//! Invariants: a block whose provider cannot be found (not initialised, a
//! changed binary, no schema cache) still registers, as a provider whose
//! schema is unknown: `validate` of a project that never uses it passes,
//! and planning any of its resources fails with the reason (P71xx/P7015).

use crate::syntax::ast;
use plinth_base::diagnostic::Diagnostic;
use plinth_sdk::Registry;
use plinth_tfplugin::provider::{cached_schema, schema_cache_path, Installed, TerraformFactory};
use plinth_tfregistry::{LockedProvider, ProviderAddr};
use std::path::Path;
use std::sync::Arc;

/// `(local name, source)` of every root provider block that names a
/// literal `source`, first block per name.
pub fn named_providers(files: &[ast::File]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for item in files.iter().flat_map(|f| f.items.iter()) {
        let ast::Item::Provider(p) = item else { continue };
        // Not a literal: `plinth init` and validation say so.
        let Ok(Some((source, _))) = crate::init::literal(&p.body, "source") else { continue };
        if !out.iter().any(|(n, _)| *n == p.name.name) {
            out.push((p.name.name.clone(), source));
        }
    }
    out
}

/// Registers a factory for every Terraform provider the project names.
pub fn register(dir: &Path, files: &[ast::File], locked: &[LockedProvider], registry: &mut Registry) {
    for (name, source) in named_providers(files) {
        // A block with a `source` is a Terraform provider, even under the
        // name of a built-in one (`provider kubernetes { source =
        // "hashicorp/kubernetes" }`): the project chose it explicitly.
        let factory = match factory(dir, &name, &source, locked) {
            Ok(f) => f,
            Err(why) => TerraformFactory::missing(&name, why),
        };
        registry.register(Arc::new(factory));
    }
}

fn factory(dir: &Path, name: &str, source: &str, locked: &[LockedProvider]) -> Result<TerraformFactory, Diagnostic> {
    let addr = ProviderAddr::parse(source)
        .map_err(|why| Diagnostic::new(plinth_tfregistry::codes::INVALID_SOURCE, format!("provider `{name}`: invalid source `{source}`")).help(why))?;
    let entry = locked.iter().find(|l| l.source == addr.to_string()).ok_or_else(|| {
        Diagnostic::new(plinth_tfregistry::codes::NOT_INSTALLED, format!("provider `{name}` ({addr}) is not installed"))
            .help("Run `plinth init` (with `--provider-mirror DIR` where no registry is reachable): it installs the provider, pins it in plinth.lock and caches its schema.")
    })?;
    let installed = plinth_tfregistry::locate(dir, &addr, entry)?;
    let schemas = cached_schema(&schema_cache_path(&installed.dir))?;
    TerraformFactory::new(
        name,
        Installed {
            source: addr.to_string(),
            binary: installed.binary,
            schemas,
            log: Some(dir.join(".plinth").join("logs").join(format!("provider-{name}.log"))),
            project_dir: Some(dir.to_path_buf()),
        },
    )
}
