//! Stage `state`: the durable store of every environment, behind one
//! [`Store`] trait with three backends (SQLite, PostgreSQL, S3); each backend
//! owns its settings and the address they form ([`backend`]).
//!
//! Invariants: the only crate that knows SQL and the state's S3 layout (the
//! only one with rusqlite). Each operation's intent is
//! durable before the provider is called; its result and the intent's
//! completion are durable in one transaction before any dependent starts; each
//! operation writes O(1) rows, never the whole state. A run that finds
//! unfinished intents reconciles them first (see `exec::reconcile`).

pub mod backend;
pub mod conformance;
pub mod crypt;
pub mod fault;
pub mod model;
pub mod postgres;
pub mod s3;
pub mod sqlite;

// Lower crates under the module paths the code has always used.
use plinth_base::{diagnostic, redact, value};
use plinth_clients::{pgtls, s3util};

use crate::diagnostic::Diagnostic;
use crate::value::Map;
use model::*;

/// How long a lock lasts unless its holder renews it (every ~15 s while a run lives).
pub const LOCK_LEASE_SECS: i64 = 60;

/// An operation about to be performed, made durable before the provider call.
#[derive(Debug, Clone)]
pub struct Intent {
    /// Assigned by the store.
    pub id: i64,
    pub address: String,
    pub deposed: String,
    /// `create`, `update` or `delete`.
    pub action: String,
    /// Idempotency token handed to the provider.
    pub token: String,
    pub resource: String,
    pub provider: String,
    pub rtype: String,
    /// The configuration the operation applies (for a delete: the recorded inputs).
    pub inputs: Map,
    pub deps: Vec<String>,
    /// Attribute names that are sensitive (so a reconciled object stays redacted).
    pub sensitive: Vec<String>,
}

/// What one transaction records after provider calls answered. Short-lived
/// (a batch at a time), so the size of the `Upsert` variant does not matter.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Completion {
    /// The object exists with these attributes.
    Upsert { intent: Option<i64>, record: InstanceRecord },
    /// The object is gone.
    Remove { intent: Option<i64>, address: String, deposed: String },
    /// Keep the current object under a deposed token (create-before-destroy).
    Depose { address: String, token: String },
    /// The intent ended without changing what is recorded (failed, or found
    /// not to have happened).
    Close { intent: i64, outcome: String },
}

/// Who holds an environment's lock.
#[derive(Debug, Clone, PartialEq)]
pub struct LockInfo {
    pub holder: String,
    pub host: String,
    pub pid: i64,
    pub command: String,
    pub acquired_at: String,
    /// Unix seconds; the lease ends then unless renewed.
    pub expires_at: i64,
}

impl LockInfo {
    pub fn current(command: &str) -> LockInfo {
        LockInfo {
            holder: std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into()),
            host: hostname(),
            pid: std::process::id() as i64,
            command: command.to_string(),
            acquired_at: now_rfc3339(),
            expires_at: 0,
        }
    }

    /// A lease that ran out, or a holder on this host that no longer runs.
    pub fn is_stale(&self, now: i64) -> bool {
        if self.expires_at < now {
            return true;
        }
        self.host == hostname() && !process_alive(self.pid)
    }
}

/// The host as lock holders are compared: the host name plus, on Linux, the
/// PID namespace. Containers sharing a host name (host networking) each see
/// their own PIDs, so a PID that is not visible proves nothing there: a
/// different namespace makes the lock wait for its lease instead.
fn hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    match std::fs::read_link("/proc/self/ns/pid") {
        Ok(ns) => {
            let ns = ns.to_string_lossy().into_owned();
            let id = ns.trim_start_matches("pid:[").trim_end_matches(']');
            format!("{name}#{id}")
        }
        Err(_) => name,
    }
}

/// Whether `pid` still runs. On Linux a zombie (exited, not yet reaped by
/// its parent: state `Z` in `/proc/PID/stat`) does not: it holds no lock.
fn process_alive(pid: i64) -> bool {
    if cfg!(target_os = "linux") {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => proc_stat_state(&stat).is_none_or(|s| s != 'Z' && s != 'X'),
            Err(_) => std::path::Path::new(&format!("/proc/{pid}")).exists(),
        }
    } else {
        true
    }
}

/// The state letter of a `/proc/PID/stat` line: the field after the
/// command name, which is in parentheses and may itself hold `)` or spaces.
fn proc_stat_state(stat: &str) -> Option<char> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.trim_start().chars().next()
}

/// A durable state store for one environment. Stores are synchronous: each
/// call is one short transaction.
pub trait Store: Send {
    fn env(&self) -> &str;
    fn snapshot(&self) -> Result<Snapshot, Diagnostic>;
    /// Every recorded (address, deposed) pair; needs no decryption key.
    fn addresses(&self) -> Result<Vec<(String, String)>, Diagnostic> {
        Ok(self.snapshot()?.instances.into_keys().collect())
    }
    /// Starts an applying run: increments the serial, records history.
    fn begin_run(&mut self, command: &str) -> Result<i64, Diagnostic>;
    /// counts: created, updated, replaced, deleted.
    fn finish_run(&mut self, serial: i64, status: &str, counts: [i64; 4]) -> Result<(), Diagnostic>;
    /// Makes intents durable in one transaction and assigns their ids.
    fn write_intents(&mut self, serial: i64, intents: &mut [Intent]) -> Result<(), Diagnostic>;
    /// Records results and completes intents in one transaction.
    fn complete(&mut self, serial: i64, completions: &[Completion]) -> Result<(), Diagnostic>;
    fn unfinished_intents(&self) -> Result<Vec<Intent>, Diagnostic>;
    fn set_outputs(&mut self, outputs: &[(String, serde_json::Value, bool)]) -> Result<(), Diagnostic>;
    fn history(&self) -> Result<Vec<HistoryEntry>, Diagnostic>;
    fn remove_instance(&mut self, address: &str) -> Result<usize, Diagnostic>;
    fn move_instance(&mut self, from: &str, to: &str, resource: &str) -> Result<usize, Diagnostic>;
    /// Takes the lock, or returns who holds it.
    fn lock(&mut self, info: &LockInfo, lease_secs: i64) -> Result<Option<LockInfo>, Diagnostic>;
    fn renew_lock(&mut self, pid: i64, lease_secs: i64) -> Result<(), Diagnostic>;
    /// Releases the lock (only this pid's, unless None: `plinth unlock`).
    fn unlock(&mut self, pid: Option<i64>) -> Result<bool, Diagnostic>;
    /// Drops every copy the store keeps of values that are no longer part
    /// of the state: the inputs of completed intents in the journal and,
    /// where the backend can, the space that held deleted or rewritten
    /// values (SQLite: checkpoint and truncate the WAL; `full`: also
    /// `VACUUM`, for space freed before `secure_delete` was on; S3: compact
    /// the journal into a new snapshot). `state rekey` and `state rm` call
    /// it with `full`, a run that deleted or replaced objects without.
    fn purge(&mut self, _full: bool) -> Result<(), Diagnostic> {
        Ok(())
    }
    /// Keeps a drift report.
    fn record_drift(&mut self, _report: &DriftRecord) -> Result<(), Diagnostic> {
        Err(no_drift_reports())
    }
    /// Every kept drift report, oldest first.
    fn drift_history(&self) -> Result<Vec<DriftRecord>, Diagnostic> {
        Err(no_drift_reports())
    }
}

fn no_drift_reports() -> Diagnostic {
    Diagnostic::new("P5010", "this state backend keeps no drift reports")
        .help("Drift reports are stored by the SQLite backend; `plinth drift` still reports and exits 2 on drift, but `--history` needs that backend.")
}

/// Opens the store an address names: `postgres://…` (PostgreSQL),
/// `s3://bucket/prefix?endpoint=…&region=…&path_style=true` (any
/// S3-compatible server), anything else a SQLite file path.
/// Values are sealed at rest when `PLINTH_STATE_KEY` is set (see [`crypt`]).
pub fn open(address: &str, env: &str) -> Result<Box<dyn Store>, Diagnostic> {
    let keys = crypt::Keys::from_env()?;
    let inner: Box<dyn Store> = if address.starts_with("postgres://") || address.starts_with("postgresql://") {
        Box::new(postgres::PostgresStore::open(address, env)?)
    } else if address.starts_with("s3://") {
        Box::new(s3::S3Store::open(address, env)?)
    } else {
        Box::new(sqlite::SqliteStore::open(std::path::Path::new(address), env)?)
    };
    Ok(Box::new(crypt::Encrypted::new(fault::wrap(inner), keys)))
}

/// Like [`open`], but creates nothing: a SQLite file that does not exist
/// yet is an empty state held in memory (what read-only commands, and
/// commands that only remove, see before the first apply), so a mistyped
/// path never leaves a `.plinth/state.db` behind. Other backends open as
/// with [`open`].
pub fn open_if_present(address: &str, env: &str) -> Result<Box<dyn Store>, Diagnostic> {
    let is_file = !address.starts_with("postgres://") && !address.starts_with("postgresql://") && !address.starts_with("s3://");
    let path = std::path::Path::new(address);
    if !is_file || path.exists() {
        return open(address, env);
    }
    let keys = crypt::Keys::from_env()?;
    let inner: Box<dyn Store> = Box::new(sqlite::SqliteStore::open_absent(path, env)?);
    Ok(Box::new(crypt::Encrypted::new(inner, keys)))
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// UTC time as `YYYY-MM-DDTHH:MM:SSZ`, without a date crate.
pub fn now_rfc3339() -> String {
    let secs = now_unix();
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// One instance row as the SQL backends store it: JSON text for the values
/// and lists, decoded by [`StoredRecord::decode`] or refused (P5030).
pub(crate) struct StoredRecord {
    pub address: String,
    pub deposed: String,
    pub resource: String,
    pub provider: String,
    pub rtype: String,
    pub inputs: String,
    pub attrs: String,
    pub sensitive: String,
    pub deps: String,
}

impl StoredRecord {
    pub fn decode(self) -> Result<InstanceRecord, Diagnostic> {
        let at = if self.deposed.is_empty() { self.address.clone() } else { format!("{} (deposed {})", self.address, self.deposed) };
        let what = |field: &str| format!("the {field} of {at}");
        Ok(InstanceRecord {
            inputs: map_from_json_text(&self.inputs, &what("inputs"))?,
            attrs: map_from_json_text(&self.attrs, &what("attributes"))?,
            sensitive: list_from_json_text(&self.sensitive, &what("sensitive attribute names"))?,
            deps: list_from_json_text(&self.deps, &what("dependencies"))?,
            address: self.address,
            deposed: self.deposed,
            resource: self.resource,
            provider: self.provider,
            rtype: self.rtype,
        })
    }
}

/// A map as the JSON text the SQL backends store.
pub(crate) fn map_to_json_text(map: &Map) -> String {
    crate::value::Value::Map(map.clone()).to_json().to_string()
}

/// The map in stored JSON text. Text that is not a JSON object is a damaged
/// row (P5030 naming `what`), never an empty map: planning from `{}` would
/// regenerate a secret and rewrite everything that uses it.
pub(crate) fn map_from_json_text(text: &str, what: &str) -> Result<Map, Diagnostic> {
    match serde_json::from_str::<serde_json::Value>(text).map(|j| crate::value::Value::from_json(&j)) {
        Ok(crate::value::Value::Map(m)) => Ok(m),
        Ok(_) => Err(undecodable(what, "it is not a JSON object")),
        Err(e) => Err(undecodable(what, &json_why(&e))),
    }
}

/// A list of strings in stored JSON text (sensitive attribute names,
/// dependencies); anything else is a damaged row (P5030).
pub(crate) fn list_from_json_text(text: &str, what: &str) -> Result<Vec<String>, Diagnostic> {
    serde_json::from_str::<Vec<String>>(text).map_err(|e| undecodable(what, &json_why(&e)))
}

/// Any JSON value in stored text (an output's value, a drift report).
pub(crate) fn json_from_text(text: &str, what: &str) -> Result<serde_json::Value, Diagnostic> {
    serde_json::from_str(text).map_err(|e| undecodable(what, &json_why(&e)))
}

/// Why JSON did not decode, without quoting it (serde's messages may
/// repeat the offending value).
fn json_why(e: &serde_json::Error) -> String {
    let kind = match e.classify() {
        serde_json::error::Category::Syntax => "not valid JSON",
        serde_json::error::Category::Eof => "truncated JSON",
        serde_json::error::Category::Data => "JSON of the wrong shape",
        serde_json::error::Category::Io => "unreadable",
    };
    format!("{kind} at line {}, column {}", e.line(), e.column())
}

/// A stored row that does not decode: the state is damaged there. `what`
/// names the row (`the attrs of random.password.pw`); `why` never holds the
/// stored text (it may be a secret).
pub(crate) fn undecodable(what: &str, why: &str) -> Diagnostic {
    Diagnostic::new("P5030", "a state row does not decode").help(format!(
        "The state holds {what}, which cannot be read ({why}). Nothing is planned from a damaged row: restore the state from its backup or history, or remove the instance with `plinth state rm` and import or recreate it."
    ))
}

pub fn hash_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A saved plan recorded its state address redacted (it had credentials):
/// the address resolved at apply time must be that state (P5032), so that a
/// missing PLINTH_STATE never applies the plan to another state.
pub fn check_saved_address(recorded: &str, now: &str) -> Result<(), Diagnostic> {
    if crate::redact::url(now) == recorded {
        return Ok(());
    }
    Err(Diagnostic::new("P5032", "the saved plan's state is not given").help(format!(
        "The plan was made against {recorded}, whose credentials are not saved in plan files; now the state would be {}. Give the same address again (PLINTH_STATE, --state, or the environment's backend variable) to apply it.",
        crate::redact::url(now)
    )))
}

#[cfg(test)]
mod tests {
    /// A child that has exited but is not reaped yet: a zombie.
    #[cfg(target_os = "linux")]
    fn zombie() -> std::process::Child {
        let mut child = std::process::Command::new("true").spawn().expect("spawn true");
        for _ in 0..2000 {
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap_or_default();
            if super::proc_stat_state(&stat) == Some('Z') {
                return child;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let _ = child.wait();
        panic!("the child never became a zombie");
    }

    #[test]
    fn the_state_letter_is_read_after_the_command_name() {
        assert_eq!(super::proc_stat_state("42 (a) b) Z 1 2 3"), Some('Z'));
        assert_eq!(super::proc_stat_state("42 (sleep) S 1 2 3"), Some('S'));
        assert_eq!(super::proc_stat_state("garbage"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_zombie_lock_holder_is_dead_and_its_lock_is_taken_over() {
        use super::Store;
        let mut child = zombie();
        let pid = child.id() as i64;
        let now = super::now_unix();
        let held = super::LockInfo { pid, expires_at: now + 3600, ..super::LockInfo::current("apply") };
        assert!(held.is_stale(now), "an exited, unreaped holder must count as dead");
        let alive = super::LockInfo { pid: std::process::id() as i64, expires_at: now + 3600, ..super::LockInfo::current("apply") };
        assert!(!alive.is_stale(now), "a running holder with a live lease is not stale");

        // Through a real store: the zombie's lock does not block another run.
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = super::sqlite::SqliteStore::open(&dir.path().join("state.db"), "default").expect("open");
        assert!(store.lock(&held, 3600).expect("lock").is_none());
        let me = super::LockInfo::current("plan");
        assert!(store.lock(&me, 60).expect("lock").is_none(), "the zombie's lock must be taken over");
        let _ = child.wait();
    }
}
