//! The backends as an environment names them: `backend <kind> { … }` with
//! each kind's settings. Each backend module owns the address its settings
//! form (`sqlite::backend_address`, `postgres::backend_address`,
//! `s3::backend_address`) and parses it back in `state::open`; the project
//! crate only evaluates the block and reports where it is.
//!
//! Invariants: the one list of kinds and settings; addresses formed here
//! are exactly the ones `open` accepts; a password in a URL is never echoed.

/// Where the SQLite state lives when nothing says otherwise (relative to
/// the project directory).
pub const DEFAULT_SQLITE_PATH: &str = ".plinth/state.db";

/// The settings each backend kind accepts.
pub const SQLITE_SETTINGS: &[&str] = &["path"];
pub const POSTGRES_SETTINGS: &[&str] = &["url", "url_env"];
pub const S3_SETTINGS: &[&str] = &["bucket", "prefix", "endpoint", "region", "path_style"];
pub const KINDS: &[&str] = &["sqlite", "postgres", "s3"];

pub fn settings_of(kind: &str) -> &'static [&'static str] {
    match kind {
        "sqlite" => SQLITE_SETTINGS,
        "postgres" => POSTGRES_SETTINGS,
        _ => S3_SETTINGS,
    }
}

pub fn settings_help(kind: &str) -> &'static str {
    match kind {
        "sqlite" => "A `sqlite` backend takes `path` (default `.plinth/state.db`, relative to the project directory).",
        "postgres" => {
            "A `postgres` backend takes `url = \"postgres://USER@HOST/DATABASE\"` or `url_env = \"NAME\"` (an environment variable holding that URL)."
        }
        _ => "An `s3` backend takes `bucket` (required), `prefix`, `endpoint` (an http:// or https:// URL), `region` (strings) and `path_style` (a bool).",
    }
}
