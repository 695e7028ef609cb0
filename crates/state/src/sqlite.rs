//! The SQLite store (the default): `.plinth/state.db` in the project.
//!
//! WAL journal with `synchronous=NORMAL`: a commit survives the process being
//! killed at any instant (what Plinth must guarantee) for ~0.03 ms. The schema
//! comes from the numbered migrations in `state/`, embedded in the binary.

use super::model::*;
use super::{now_rfc3339, now_unix, Completion, Intent, LockInfo, Store};
use crate::diagnostic::Diagnostic;
use crate::value::Map;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;

/// Embedded migrations, applied in order; `PRAGMA user_version` records how
/// many ran.
const MIGRATIONS: &[&str] = &[include_str!("../../../state/0001_init.sql"), include_str!("../../../state/0002_drift.sql")];

pub struct SqliteStore {
    conn: Connection,
    env: String,
    path: String,
}

fn db_error(path: &str, e: impl std::fmt::Display) -> Diagnostic {
    Diagnostic::new("P5001", "state store error")
        .help(format!("The state database {path} could not be used: {e}. Check that the file is a Plinth state database and that its directory is writable."))
}

use super::{map_from_json_text as from_json, map_to_json_text as to_json};

impl SqliteStore {
    pub fn open(path: &Path, env: &str) -> Result<SqliteStore, Diagnostic> {
        let shown = path.display().to_string();
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| db_error(&shown, e))?;
            }
        }
        // Created 0600 before SQLite opens it: SQLite gives the WAL and SHM
        // files the database file's mode.
        make_private(path).map_err(|e| db_error(&shown, e))?;
        let conn = Connection::open(path).map_err(|e| db_error(&shown, e))?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(|e| db_error(&shown, e))?;
        // Deleted and overwritten values are zeroed, not left in free pages.
        conn.pragma_update(None, "secure_delete", "ON").map_err(|e| db_error(&shown, e))?;
        // Switching a new database to WAL upgrades a shared lock, which
        // SQLite refuses at once (no busy handler) when another first run
        // does the same: retry instead of failing with "database is locked".
        retry_busy(|| conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))).map_err(|e| db_error(&shown, e))?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(|e| db_error(&shown, e))?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(|e| db_error(&shown, e))?;
        let mut store = SqliteStore { conn, env: env.to_string(), path: shown };
        store.migrate()?;
        for suffix in ["-wal", "-shm"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            // Only tightened when it exists (SQLite creates them with the database's mode).
            let _ = tighten(Path::new(&side));
        }
        Ok(store)
    }

    /// The empty state of a database file that does not exist yet, held
    /// in memory: nothing is written to `path` (see [`super::open_if_present`]).
    pub fn open_absent(path: &Path, env: &str) -> Result<SqliteStore, Diagnostic> {
        let shown = path.display().to_string();
        let conn = Connection::open_in_memory().map_err(|e| db_error(&shown, e))?;
        let mut store = SqliteStore { conn, env: env.to_string(), path: shown };
        store.migrate()?;
        Ok(store)
    }

    fn err(&self, e: impl std::fmt::Display) -> Diagnostic {
        db_error(&self.path, e)
    }

    /// Applies pending migrations. Each runs in an IMMEDIATE transaction
    /// that re-reads the version first, so concurrent first runs on a new
    /// database apply each migration exactly once.
    fn migrate(&mut self) -> Result<(), Diagnostic> {
        let current: i64 = retry_busy(|| self.conn.pragma_query_value(None, "user_version", |r| r.get(0))).map_err(|e| self.err(e))?;
        if current < 0 {
            return Err(damaged_version(&self.path, current));
        }
        if current as usize == MIGRATIONS.len() {
            return Ok(());
        }
        for (i, sql) in MIGRATIONS.iter().enumerate() {
            let path = self.path.clone();
            let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(|e| db_error(&path, e))?;
            let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(|e| db_error(&path, e))?;
            if version < 0 {
                return Err(damaged_version(&path, version));
            }
            if version as usize > MIGRATIONS.len() {
                return Err(Diagnostic::new("P5003", "state written by a newer Plinth")
                    .help(format!("{path} has schema version {version}, this Plinth knows {}; upgrade Plinth.", MIGRATIONS.len())));
            }
            if version as usize > i {
                continue;
            }
            tx.execute_batch(sql).map_err(|e| db_error(&path, e))?;
            tx.pragma_update(None, "user_version", (i + 1) as i64).map_err(|e| db_error(&path, e))?;
            tx.commit().map_err(|e| db_error(&path, e))?;
        }
        Ok(())
    }

    fn serial(&self) -> Result<i64, Diagnostic> {
        self.conn.query_row("SELECT serial FROM envs WHERE env = ?1", [&self.env], |r| r.get(0)).optional().map(|s| s.unwrap_or(0)).map_err(|e| self.err(e))
    }

    /// `PRAGMA integrity_check` (used by tests and `state` tooling).
    pub fn integrity_check(&self) -> Result<String, Diagnostic> {
        self.conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).map_err(|e| self.err(e))
    }
}

fn damaged_version(path: &str, version: i64) -> Diagnostic {
    Diagnostic::new("P5031", "the state database is damaged").help(format!(
        "{path} has schema version {version}, which no Plinth writes: the file is damaged or not a Plinth state. Restore it from a backup, or move it away to start a new state."
    ))
}

/// Runs a statement again while SQLite answers "busy" or "locked" without
/// waiting itself (lock upgrades on a database being created); gives up
/// after about ten seconds, as the busy timeout does.
fn retry_busy<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match f() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(5 + rand::random::<u64>() % 20));
            }
            other => return other,
        }
    }
}

/// Creates the state file readable and writable by its owner only, or
/// takes group and other permissions off an existing one (best effort: a
/// file owned by another user keeps its mode).
fn make_private(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let _ = tighten(path);
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Removes group and other permissions from an existing file.
fn tighten(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn record_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<super::StoredRecord> {
    Ok(super::StoredRecord {
        address: row.get(0)?,
        deposed: row.get(1)?,
        resource: row.get(2)?,
        provider: row.get(3)?,
        rtype: row.get(4)?,
        inputs: row.get(5)?,
        attrs: row.get(6)?,
        sensitive: row.get(7)?,
        deps: row.get(8)?,
    })
}

const INSTANCE_COLUMNS: &str = "address, deposed, resource, provider, rtype, inputs, attrs, sensitive, deps";

impl Store for SqliteStore {
    fn env(&self) -> &str {
        &self.env
    }

    fn snapshot(&self) -> Result<Snapshot, Diagnostic> {
        let mut snap = Snapshot { env: self.env.clone(), serial: self.serial()?, ..Snapshot::default() };
        let mut stmt = self.conn.prepare_cached(&format!("SELECT {INSTANCE_COLUMNS} FROM instances WHERE env = ?1 ORDER BY rowid")).map_err(|e| self.err(e))?;
        let rows = stmt.query_map([&self.env], record_from_row).map_err(|e| self.err(e))?;
        for row in rows {
            let rec = row.map_err(|e| self.err(e))?.decode()?;
            snap.instances.insert(rec.key(), rec);
        }
        let mut stmt = self.conn.prepare_cached("SELECT name, value, sensitive FROM outputs WHERE env = ?1 ORDER BY name").map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([&self.env], |r| {
                let name: String = r.get(0)?;
                let value: String = r.get(1)?;
                let sensitive: bool = r.get(2)?;
                Ok((name, value, sensitive))
            })
            .map_err(|e| self.err(e))?;
        for row in rows {
            let (name, value, sensitive) = row.map_err(|e| self.err(e))?;
            let value = super::json_from_text(&value, &format!("the value of output `{name}`"))?;
            snap.outputs.insert(name, OutputRecord { value, sensitive });
        }
        Ok(snap)
    }

    fn begin_run(&mut self, command: &str) -> Result<i64, Diagnostic> {
        let now = now_rfc3339();
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(|e| db_error(&self.path, e))?;
        tx.execute(
            "INSERT INTO envs (env, serial, updated_at) VALUES (?1, 1, ?2)
             ON CONFLICT(env) DO UPDATE SET serial = serial + 1, updated_at = ?2",
            params![self.env, now],
        )
        .map_err(|e| db_error(&self.path, e))?;
        let serial: i64 = tx.query_row("SELECT serial FROM envs WHERE env = ?1", [&self.env], |r| r.get(0)).map_err(|e| db_error(&self.path, e))?;
        tx.execute(
            "INSERT INTO history (env, serial, started_at, command, status) VALUES (?1, ?2, ?3, ?4, 'running')",
            params![self.env, serial, now, command],
        )
        .map_err(|e| db_error(&self.path, e))?;
        // Keep the journal bounded: completed intents of old runs go.
        tx.execute("DELETE FROM intents WHERE env = ?1 AND completed_at IS NOT NULL AND serial < ?2", params![self.env, serial - 20])
            .map_err(|e| db_error(&self.path, e))?;
        tx.commit().map_err(|e| db_error(&self.path, e))?;
        Ok(serial)
    }

    fn finish_run(&mut self, serial: i64, status: &str, counts: [i64; 4]) -> Result<(), Diagnostic> {
        self.conn
            .execute(
                "UPDATE history SET finished_at = ?3, status = ?4, created = ?5, updated = ?6, replaced = ?7, deleted = ?8
                 WHERE env = ?1 AND serial = ?2",
                params![self.env, serial, now_rfc3339(), status, counts[0], counts[1], counts[2], counts[3]],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn write_intents(&mut self, serial: i64, intents: &mut [Intent]) -> Result<(), Diagnostic> {
        let now = now_rfc3339();
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(|e| db_error(&self.path, e))?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO intents (env, serial, address, deposed, action, token, resource, provider, rtype, inputs, inputs_hash, deps, sensitive, started_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                )
                .map_err(|e| db_error(&self.path, e))?;
            for intent in intents.iter_mut() {
                let inputs = to_json(&intent.inputs);
                let hash = super::hash_hex(inputs.as_bytes());
                stmt.execute(params![
                    self.env,
                    serial,
                    intent.address,
                    intent.deposed,
                    intent.action,
                    intent.token,
                    intent.resource,
                    intent.provider,
                    intent.rtype,
                    inputs,
                    hash,
                    serde_json::to_string(&intent.deps).unwrap_or_else(|_| "[]".into()),
                    serde_json::to_string(&intent.sensitive).unwrap_or_else(|_| "[]".into()),
                    now
                ])
                .map_err(|e| db_error(&self.path, e))?;
                intent.id = tx.last_insert_rowid();
            }
        }
        tx.commit().map_err(|e| db_error(&self.path, e))
    }

    fn complete(&mut self, serial: i64, completions: &[Completion]) -> Result<(), Diagnostic> {
        let now = now_rfc3339();
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(|e| db_error(&self.path, e))?;
        {
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO instances (env, address, deposed, resource, provider, rtype, inputs, attrs, sensitive, deps, serial)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                     ON CONFLICT(env, address, deposed) DO UPDATE SET resource = ?4, provider = ?5, rtype = ?6,
                       inputs = ?7, attrs = ?8, sensitive = ?9, deps = ?10, serial = ?11",
                )
                .map_err(|e| db_error(&self.path, e))?;
            let mut remove =
                tx.prepare_cached("DELETE FROM instances WHERE env = ?1 AND address = ?2 AND deposed = ?3").map_err(|e| db_error(&self.path, e))?;
            let mut depose =
                tx.prepare_cached("UPDATE instances SET deposed = ?4 WHERE env = ?1 AND address = ?2 AND deposed = ?3").map_err(|e| db_error(&self.path, e))?;
            let mut done =
                tx.prepare_cached("UPDATE intents SET completed_at = ?2, outcome = ?3, inputs = '{}' WHERE id = ?1").map_err(|e| db_error(&self.path, e))?;
            for c in completions {
                match c {
                    Completion::Upsert { intent, record } => {
                        upsert
                            .execute(params![
                                self.env,
                                record.address,
                                record.deposed,
                                record.resource,
                                record.provider,
                                record.rtype,
                                to_json(&record.inputs),
                                to_json(&record.attrs),
                                serde_json::to_string(&record.sensitive).unwrap_or_else(|_| "[]".into()),
                                serde_json::to_string(&record.deps).unwrap_or_else(|_| "[]".into()),
                                serial
                            ])
                            .map_err(|e| db_error(&self.path, e))?;
                        if let Some(id) = intent {
                            done.execute(params![id, now, "applied"]).map_err(|e| db_error(&self.path, e))?;
                        }
                    }
                    Completion::Remove { intent, address, deposed } => {
                        remove.execute(params![self.env, address, deposed]).map_err(|e| db_error(&self.path, e))?;
                        if let Some(id) = intent {
                            done.execute(params![id, now, "applied"]).map_err(|e| db_error(&self.path, e))?;
                        }
                    }
                    Completion::Depose { address, token } => {
                        depose.execute(params![self.env, address, "", token]).map_err(|e| db_error(&self.path, e))?;
                    }
                    Completion::Close { intent, outcome } => {
                        done.execute(params![intent, now, outcome]).map_err(|e| db_error(&self.path, e))?;
                    }
                }
            }
        }
        tx.commit().map_err(|e| db_error(&self.path, e))
    }

    fn unfinished_intents(&self) -> Result<Vec<Intent>, Diagnostic> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, address, deposed, action, token, resource, provider, rtype, inputs, deps, sensitive
                 FROM intents WHERE env = ?1 AND completed_at IS NULL ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([&self.env], |r| {
                let text: [String; 3] = [r.get(8)?, r.get(9)?, r.get(10)?];
                let intent = Intent {
                    id: r.get(0)?,
                    address: r.get(1)?,
                    deposed: r.get(2)?,
                    action: r.get(3)?,
                    token: r.get(4)?,
                    resource: r.get(5)?,
                    provider: r.get(6)?,
                    rtype: r.get(7)?,
                    inputs: Map::default(),
                    deps: Vec::new(),
                    sensitive: Vec::new(),
                };
                Ok((intent, text))
            })
            .map_err(|e| self.err(e))?;
        let mut intents = Vec::new();
        for row in rows {
            let (mut intent, [inputs, deps, sensitive]) = row.map_err(|e| self.err(e))?;
            let what = |field: &str| format!("the {field} of the pending {} of {}", intent.action, intent.address);
            intent.inputs = from_json(&inputs, &what("inputs"))?;
            intent.deps = super::list_from_json_text(&deps, &what("dependencies"))?;
            intent.sensitive = super::list_from_json_text(&sensitive, &what("sensitive attribute names"))?;
            intents.push(intent);
        }
        Ok(intents)
    }

    fn set_outputs(&mut self, outputs: &[(String, serde_json::Value, bool)]) -> Result<(), Diagnostic> {
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(|e| db_error(&self.path, e))?;
        tx.execute("DELETE FROM outputs WHERE env = ?1", [&self.env]).map_err(|e| db_error(&self.path, e))?;
        for (name, value, sensitive) in outputs {
            tx.execute("INSERT INTO outputs (env, name, value, sensitive) VALUES (?1, ?2, ?3, ?4)", params![self.env, name, value.to_string(), sensitive])
                .map_err(|e| db_error(&self.path, e))?;
        }
        tx.commit().map_err(|e| db_error(&self.path, e))
    }

    fn history(&self) -> Result<Vec<HistoryEntry>, Diagnostic> {
        let mut stmt = self
            .conn
            .prepare("SELECT serial, started_at, finished_at, command, status, created, updated, replaced, deleted FROM history WHERE env = ?1 ORDER BY serial")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([&self.env], |r| {
                Ok(HistoryEntry {
                    serial: r.get(0)?,
                    started_at: r.get(1)?,
                    finished_at: r.get(2)?,
                    command: r.get(3)?,
                    status: r.get(4)?,
                    created: r.get(5)?,
                    updated: r.get(6)?,
                    replaced: r.get(7)?,
                    deleted: r.get(8)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    fn remove_instance(&mut self, address: &str) -> Result<usize, Diagnostic> {
        self.conn.execute("DELETE FROM instances WHERE env = ?1 AND address = ?2", params![self.env, address]).map_err(|e| self.err(e))
    }

    fn move_instance(&mut self, from: &str, to: &str, resource: &str) -> Result<usize, Diagnostic> {
        self.conn
            .execute("UPDATE instances SET address = ?3, resource = ?4 WHERE env = ?1 AND address = ?2 AND deposed = ''", params![self.env, from, to, resource])
            .map_err(|e| self.err(e))
    }

    fn purge(&mut self, full: bool) -> Result<(), Diagnostic> {
        // Completed intents keep their action and hash, not their inputs
        // (journals written before completion cleared them).
        self.conn
            .execute("UPDATE intents SET inputs = '{}' WHERE env = ?1 AND completed_at IS NOT NULL AND inputs <> '{}'", [&self.env])
            .map_err(|e| self.err(e))?;
        if full {
            // Rewrites every page: free space from before secure_delete goes.
            self.conn.execute_batch("VACUUM").map_err(|e| self.err(e))?;
        }
        // Old page images live in the WAL until it is checkpointed and cut.
        let busy: i64 = self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0)).map_err(|e| self.err(e))?;
        if busy != 0 {
            return Err(Diagnostic::new("P5033", "the state could not be compacted").help(format!(
                "Another process kept reading {} while Plinth truncated its write-ahead log, so copies of removed or re-sealed values may remain in it. Run `plinth state rekey` when nothing else uses the state.",
                self.path
            )));
        }
        Ok(())
    }

    fn lock(&mut self, info: &LockInfo, lease_secs: i64) -> Result<Option<LockInfo>, Diagnostic> {
        let now = now_unix();
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(|e| db_error(&self.path, e))?;
        let existing: Option<LockInfo> = tx
            .query_row("SELECT holder, host, pid, command, acquired_at, expires_at FROM locks WHERE env = ?1", [&self.env], |r| {
                Ok(LockInfo { holder: r.get(0)?, host: r.get(1)?, pid: r.get(2)?, command: r.get(3)?, acquired_at: r.get(4)?, expires_at: r.get(5)? })
            })
            .optional()
            .map_err(|e| db_error(&self.path, e))?;
        if let Some(held) = existing {
            let mine = held.pid == info.pid && held.host == info.host;
            if !mine && !held.is_stale(now) {
                return Ok(Some(held));
            }
        }
        tx.execute(
            "INSERT INTO locks (env, holder, host, pid, command, acquired_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(env) DO UPDATE SET holder = ?2, host = ?3, pid = ?4, command = ?5, acquired_at = ?6, expires_at = ?7",
            params![self.env, info.holder, info.host, info.pid, info.command, info.acquired_at, now + lease_secs],
        )
        .map_err(|e| db_error(&self.path, e))?;
        tx.commit().map_err(|e| db_error(&self.path, e))?;
        Ok(None)
    }

    fn renew_lock(&mut self, pid: i64, lease_secs: i64) -> Result<(), Diagnostic> {
        self.conn
            .execute("UPDATE locks SET expires_at = ?3 WHERE env = ?1 AND pid = ?2", params![self.env, pid, now_unix() + lease_secs])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn record_drift(&mut self, r: &DriftRecord) -> Result<(), Diagnostic> {
        self.conn
            .execute(
                "INSERT INTO drift_reports (env, at, serial, checked, drifted, unmanaged, report) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![self.env, r.at, r.serial, r.checked, r.drifted, r.unmanaged, r.report.to_string()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn drift_history(&self) -> Result<Vec<DriftRecord>, Diagnostic> {
        let mut stmt = self
            .conn
            .prepare("SELECT at, serial, checked, drifted, unmanaged, report FROM drift_reports WHERE env = ?1 ORDER BY id")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([&self.env], |r| {
                let report: String = r.get(5)?;
                Ok(DriftRecord {
                    at: r.get(0)?,
                    serial: r.get(1)?,
                    checked: r.get(2)?,
                    drifted: r.get(3)?,
                    unmanaged: r.get(4)?,
                    report: serde_json::Value::String(report),
                })
            })
            .map_err(|e| self.err(e))?;
        let mut reports = Vec::new();
        for row in rows {
            let mut r = row.map_err(|e| self.err(e))?;
            if let serde_json::Value::String(text) = &r.report {
                r.report = super::json_from_text(text, &format!("the drift report of {}", r.at))?;
            }
            reports.push(r);
        }
        Ok(reports)
    }

    fn unlock(&mut self, pid: Option<i64>) -> Result<bool, Diagnostic> {
        let n = match pid {
            Some(pid) => self.conn.execute("DELETE FROM locks WHERE env = ?1 AND pid = ?2", params![self.env, pid]),
            None => self.conn.execute("DELETE FROM locks WHERE env = ?1", params![self.env]),
        }
        .map_err(|e| self.err(e))?;
        Ok(n > 0)
    }
}

/// The address a `sqlite` backend block forms: its `path` (relative to the
/// project directory) as an absolute path, refused when it would read as
/// another backend's address.
pub fn backend_address(project_dir: &Path, path: &Path, env: &str) -> Result<String, Diagnostic> {
    let full = if path.is_absolute() { path.to_path_buf() } else { project_dir.join(path) };
    let Some(text) = full.to_str() else {
        return Err(Diagnostic::new("P2086", "cannot form the state address")
            .help(format!("The SQLite state path for environment `{env}` ({}) is not valid UTF-8; choose another `path`.", full.display())));
    };
    if ["postgres://", "postgresql://", "s3://"].iter().any(|p| text.starts_with(p)) {
        return Err(Diagnostic::new("P2086", "cannot form the state address").help(format!(
            "The SQLite state path `{text}` for environment `{env}` would read as another backend's address; use a `postgres` or `s3` backend block for those, or a path such as `./{text}`."
        )));
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Several first runs open a database that does not exist yet, at the
    /// same instant: every one opens it (none fails with "database is
    /// locked"), and each migration runs once.
    #[test]
    fn concurrent_first_opens_of_a_new_database_all_succeed() {
        for round in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(".plinth/state.db");
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
            let handles: Vec<_> = (0..6)
                .map(|_| {
                    let (path, barrier) = (path.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        SqliteStore::open(&path, "default").map(|_| ()).map_err(|d| d.help)
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap().unwrap_or_else(|e| panic!("round {round}: {e}"));
            }
            let store = SqliteStore::open(&path, "default").unwrap();
            let version: i64 = store.conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
            assert_eq!(version as usize, MIGRATIONS.len());
        }
    }
}
