//! A test hook: `PLINTH_FAULT=write:k` makes the process kill itself with
//! SIGKILL right after the k-th write the state backend committed (counted
//! over every store the process opened), so that the crash tests can stop any
//! command (`apply`, `destroy`, `drift --fix`, `state mv|rm|rekey`, …) at
//! every write point, not only at apply's write-ahead points (see
//! `exec::Fault`). Never set it in production.
//!
//! Invariants: without the variable (or with any other fault point) [`wrap`]
//! returns the store unchanged; with it, the wrapper only counts and never
//! alters what is read or written. It sits below the encryption wrapper, so
//! it counts the backend's own transactions.

use super::model::*;
use super::{Completion, Intent, LockInfo, Store};
use crate::diagnostic::Diagnostic;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Committed writes so far, over every store of this process.
static WRITES: AtomicUsize = AtomicUsize::new(0);

/// The k of `PLINTH_FAULT=write:k`, if set.
fn kill_at() -> Option<usize> {
    let v = std::env::var("PLINTH_FAULT").ok()?;
    let (point, k) = v.split_once(':')?;
    (point == "write").then(|| k.parse().ok()).flatten()
}

/// The store, counting its writes when `PLINTH_FAULT=write:k` is set.
pub fn wrap(inner: Box<dyn Store>) -> Box<dyn Store> {
    match kill_at() {
        Some(at) => Box::new(Faulty { inner, at }),
        None => inner,
    }
}

struct Faulty {
    inner: Box<dyn Store>,
    at: usize,
}

impl Faulty {
    /// Called after each committed write: the k-th one kills the process.
    fn wrote<T>(&self, result: Result<T, Diagnostic>) -> Result<T, Diagnostic> {
        if result.is_ok() && WRITES.fetch_add(1, Ordering::SeqCst) + 1 >= self.at {
            // SAFETY: raising a signal in our own process has no memory-safety preconditions.
            unsafe {
                libc::raise(libc::SIGKILL);
            }
        }
        result
    }
}

impl Store for Faulty {
    fn env(&self) -> &str {
        self.inner.env()
    }
    fn snapshot(&self) -> Result<Snapshot, Diagnostic> {
        self.inner.snapshot()
    }
    fn addresses(&self) -> Result<Vec<(String, String)>, Diagnostic> {
        self.inner.addresses()
    }
    fn begin_run(&mut self, command: &str) -> Result<i64, Diagnostic> {
        let r = self.inner.begin_run(command);
        self.wrote(r)
    }
    fn finish_run(&mut self, serial: i64, status: &str, counts: [i64; 4]) -> Result<(), Diagnostic> {
        let r = self.inner.finish_run(serial, status, counts);
        self.wrote(r)
    }
    fn write_intents(&mut self, serial: i64, intents: &mut [Intent]) -> Result<(), Diagnostic> {
        let r = self.inner.write_intents(serial, intents);
        self.wrote(r)
    }
    fn complete(&mut self, serial: i64, completions: &[Completion]) -> Result<(), Diagnostic> {
        let r = self.inner.complete(serial, completions);
        self.wrote(r)
    }
    fn unfinished_intents(&self) -> Result<Vec<Intent>, Diagnostic> {
        self.inner.unfinished_intents()
    }
    fn set_outputs(&mut self, outputs: &[(String, serde_json::Value, bool)]) -> Result<(), Diagnostic> {
        let r = self.inner.set_outputs(outputs);
        self.wrote(r)
    }
    fn history(&self) -> Result<Vec<HistoryEntry>, Diagnostic> {
        self.inner.history()
    }
    fn remove_instance(&mut self, address: &str) -> Result<usize, Diagnostic> {
        let r = self.inner.remove_instance(address);
        self.wrote(r)
    }
    fn move_instance(&mut self, from: &str, to: &str, resource: &str) -> Result<usize, Diagnostic> {
        let r = self.inner.move_instance(from, to, resource);
        self.wrote(r)
    }
    fn lock(&mut self, info: &LockInfo, lease_secs: i64) -> Result<Option<LockInfo>, Diagnostic> {
        let r = self.inner.lock(info, lease_secs);
        self.wrote(r)
    }
    fn renew_lock(&mut self, pid: i64, lease_secs: i64) -> Result<(), Diagnostic> {
        let r = self.inner.renew_lock(pid, lease_secs);
        self.wrote(r)
    }
    fn unlock(&mut self, pid: Option<i64>) -> Result<bool, Diagnostic> {
        let r = self.inner.unlock(pid);
        self.wrote(r)
    }
    fn purge(&mut self, full: bool) -> Result<(), Diagnostic> {
        let r = self.inner.purge(full);
        self.wrote(r)
    }
    fn record_drift(&mut self, report: &DriftRecord) -> Result<(), Diagnostic> {
        let r = self.inner.record_drift(report);
        self.wrote(r)
    }
    fn drift_history(&self) -> Result<Vec<DriftRecord>, Diagnostic> {
        self.inner.drift_history()
    }
}
