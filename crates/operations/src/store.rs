//! The state of an operation: opening it (read-only commands never create
//! one; `apply` does) and holding its lock.

use crate::diagnostic::Diagnostic;
use crate::state::{LockInfo, Store, LOCK_LEASE_SECS};
use crate::{Failed, Operation};
use plinth_sdk::ProviderContext;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

impl Operation {
    /// Opens the environment's state for a command that creates nothing:
    /// the directory must be a project directory (`P2050` otherwise), and a
    /// state that does not exist yet is empty and stays unwritten (see
    /// [`crate::state::open_if_present`]). Only `apply` creates a state
    /// ([`Operation::create_store`]).
    pub fn open_store(&mut self) -> Result<Box<dyn Store>, Failed> {
        self.check_dir()?;
        crate::state::open_if_present(&self.state_address()?, self.env_name()).map_err(Failed::bare)
    }

    /// Opens the environment's state, creating it if needed (`apply`); the
    /// directory must be a project directory, checked before anything is
    /// written.
    pub fn create_store(&mut self) -> Result<Box<dyn Store>, Failed> {
        self.check_dir()?;
        crate::state::open(&self.state_address()?, self.env_name()).map_err(Failed::bare)
    }
}

/// `path` made absolute against the current directory.
pub fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map(|c| c.join(path)).unwrap_or_else(|_| path.to_path_buf())
    }
}

/// Providers see the project directory canonicalised, so that what they
/// compute from it (a file's absolute path) does not depend on how the
/// directory was spelled on the command line.
pub fn provider_context(dir: &Path) -> ProviderContext {
    ProviderContext { project_dir: std::fs::canonicalize(dir).unwrap_or_else(|_| absolute(dir)) }
}

/// Holds the environment's lock until dropped.
pub struct LockGuard<'s> {
    pub store: &'s mut dyn Store,
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        let _ = self.store.unlock(Some(std::process::id() as i64));
    }
}

/// Takes the environment's lock for `command`, waiting up to `timeout` for
/// another run's (`P5002` then).
pub fn acquire<'s>(store: &'s mut dyn Store, command: &str, timeout: Duration) -> Result<LockGuard<'s>, Failed> {
    let info = LockInfo::current(command);
    let start = Instant::now();
    loop {
        match store.lock(&info, LOCK_LEASE_SECS).map_err(Failed::bare)? {
            None => return Ok(LockGuard { store }),
            Some(held) => {
                if start.elapsed() >= timeout {
                    return Err(Failed::bare(
                        Diagnostic::new("P5002", "the environment is locked").help(format!(
                            "`{}` by {}@{} (pid {}) has held the lock of `{}` since {}. Wait for it (--lock-timeout 5m), or if that run is gone for good, `plinth unlock`.",
                            held.command,
                            held.holder,
                            held.host,
                            held.pid,
                            store.env(),
                            held.acquired_at
                        )),
                    ));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}
