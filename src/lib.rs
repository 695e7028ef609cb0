//! Plinth: infrastructure as code — one language, one dependency graph, plans
//! against durable state, idempotent applies, drift detection.
//!
//! This crate is the `plinth` binary's library: [`cli`] (arguments,
//! rendering, exit codes; the only code that prints). The stages live in the
//! workspace's crates, one per layer of `docs/architecture.md`, each
//! depending only on the crates below it; they are re-exported here under
//! the module paths the tests and the binary use:
//!
//! | crate | modules | input → output |
//! | --- | --- | --- |
//! | `plinth-base` | [`value`], [`types`], [`address`], [`diagnostic`], [`redact`], [`fsutil`] | values, types, diagnostics, redaction, file primitives |
//! | `plinth-sdk` | [`providers`] (trait, schemas, registry, `governed`) | the provider contract |
//! | `plinth-language` | [`syntax`], [`eval`], [`template`] | text → AST → declarations and values; templates |
//! | `plinth-clients` | [`child`], [`gpgv`], [`pgtls`], [`s3util`], [`tls`] | hardened git/child processes, signature checks, PostgreSQL TLS, S3 |
//! | `plinth-tfregistry` | [`tfregistry`] | Terraform provider installation: addresses, constraints, hashes, mirrors, registries |
//! | `plinth-state` | [`state`] | durable stores: SQLite, PostgreSQL, S3 |
//! | `plinth-providers` | [`providers`] (`core`, `file`, `git`, …, `builtin::registry_in`) | the built-in providers |
//! | `plinth-tfplugin` | [`tfplugin`] | Terraform/OpenTofu providers over the plugin protocol |
//! | `plinth-engine` | [`graph`], [`plan`], [`exec`] | DAG → plan → provider calls |
//! | `plinth-project` | [`sources`], [`project`], [`envs`] | a directory and an environment → one configuration |
//! | `plinth-operations` | [`operations`] | one resolved operation → an outcome (plans, saved plans, locking, drift, state surgery) |

pub mod cli;

pub use plinth_base::{address, diagnostic, fsutil, redact, types, value};
pub use plinth_clients::{child, gpgv, pgtls, s3util, tls};
pub use plinth_engine::{exec, graph, plan};
pub use plinth_language::{eval, syntax, template};
pub use plinth_operations as operations;
pub use plinth_project::{envs, project, sources};
pub use plinth_state as state;
pub use plinth_tfplugin as tfplugin;
pub use plinth_tfregistry as tfregistry;

/// The provider SDK and the built-in providers under one path, as before the
/// split: `providers::Registry`, `providers::kubernetes::…`,
/// `providers::builtin::registry_in`.
pub mod providers {
    pub use plinth_providers::*;
    pub use plinth_sdk::*;
    /// The built-in providers' registry (`builtin::registry_in`).
    pub mod builtin {
        pub use plinth_providers::registry_in;
    }
}
