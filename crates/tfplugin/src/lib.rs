//! Terraform and OpenTofu providers, unchanged: Plinth as a client of the
//! plugin protocol (versions 5 and 6).
//!
//! - [`plugin`]: starting a provider binary (go-plugin handshake, automatic
//!   mutual TLS), gRPC to it, stopping it.
//! - [`cty`]: the provider type system and the msgpack wire format of values.
//! - [`schema`]: provider schemas as cached by `plinth init` and as the SDK
//!   sees them.
//! - [`provider`]: a Terraform provider as a Plinth provider (factory and
//!   configured provider): validation, planning, apply with Terraform's
//!   consistency checks, read, import, upgrade.
//!
//! Invariants: nothing here runs at `validate` time but schema lookups (the
//! schema comes from the cache); a provider process is started on first use
//! and lives for the run, one per provider configuration; values cross the
//! wire typed by the schema, never guessed.

pub mod cty;
pub mod plugin;
pub mod provider;
pub mod rpc;
pub mod schema;

/// The generated protocol messages and clients.
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    pub mod v5 {
        tonic::include_proto!("tfplugin5");
    }
    pub mod v6 {
        tonic::include_proto!("tfplugin6");
    }
}
