//! Hardened clients shared by the state backends, the providers and module
//! sources: child processes ([`child`]: the allow-listed environment of
//! every program Plinth starts), the one `git` runner ([`git`]: no prompts,
//! no repository redirection, credentials off the command line, bounded
//! output), the one `gpgv` runner ([`gpgv`]: detached signatures checked
//! against exactly the given keys), PostgreSQL over rustls ([`pgtls`]), S3
//! client plumbing ([`s3util`]) and the process's one rustls crypto
//! provider ([`tls`]).
//!
//! Invariants: knows no provider, no state layout and no language; secrets
//! in URLs and output are redacted with `plinth_base::redact`.

pub mod child;
pub mod git;
pub mod gpgv;
pub mod pgtls;
pub mod s3util;
pub mod tls;

use plinth_base::redact;
