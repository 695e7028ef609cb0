//! The SQLite store (the default): `.plinth/state.db` in the project.
//!
//! WAL journal with `synchronous=NORMAL`: a commit survives the process being
//! killed at any instant (what Plinth must guarantee) for ~0.03 ms. The schema
//! comes from the numbered migrations in `state/`, embedded in the binary.

use super::model::*;
use super::{now_rfc3339, now_unix, Completion, Intent, LockInfo, Store};
use crate::diagnostic::Diagnostic;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;

/// Embedded migrations, applied in order; `PRAGMA user_version` records how
/// many ran.
const MIGRATIONS: &[&str] = &[include_str!("../../state/0001_init.sql"), include_str!("../../state/0002_drift.sql")];

pub struct SqliteStore {
    conn: Connection,
    env: String,
    path: String,
}

fn db_error(path: &str, e: impl std::fmt::Display) -> Diagnostic {
    Diagnostic::new("P5001", "state store error").help(format!(
        "The state database {path} could not be used: {e}. Check that the file is a Plinth state database and that its directory is writable."
    ))
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
        let conn = Connection::open(path).map_err(|e| db_error(&shown, e))?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(|e| db_error(&shown, e))?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(|e| db_error(&shown, e))?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(|e| db_error(&shown, e))?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(|e| db_error(&shown, e))?;
        let mut store = SqliteStore { conn, env: env.to_string(), path: shown };
        store.migrate()?;
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
        let current: i64 = self.conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(|e| self.err(e))?;
        if current as usize == MIGRATIONS.len() {
            return Ok(());
        }
        for (i, sql) in MIGRATIONS.iter().enumerate() {
            let path = self.path.clone();
            let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(|e| db_error(&path, e))?;
            let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(|e| db_error(&path, e))?;
            if version as usize > MIGRATIONS.len() {
                return Err(Diagnostic::new("P5003", "state written by a newer Plinth").help(format!(
                    "{path} has schema version {version}, this Plinth knows {}; upgrade Plinth.",
                    MIGRATIONS.len()
                )));
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
        self.conn
            .query_row("SELECT serial FROM envs WHERE env = ?1", [&self.env], |r| r.get(0))
            .optional()
            .map(|s| s.unwrap_or(0))
            .map_err(|e| self.err(e))
    }

    /// `PRAGMA integrity_check` (used by tests and `state` tooling).
    pub fn integrity_check(&self) -> Result<String, Diagnostic> {
        self.conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).map_err(|e| self.err(e))
    }
}

fn record_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<InstanceRecord> {
    let inputs: String = row.get(5)?;
    let attrs: String = row.get(6)?;
    let sensitive: String = row.get(7)?;
    let deps: String = row.get(8)?;
    Ok(InstanceRecord {
        address: row.get(0)?,
        deposed: row.get(1)?,
        resource: row.get(2)?,
        provider: row.get(3)?,
        rtype: row.get(4)?,
        inputs: from_json(&inputs),
        attrs: from_json(&attrs),
        sensitive: serde_json::from_str(&sensitive).unwrap_or_default(),
        deps: serde_json::from_str(&deps).unwrap_or_default(),
    })
}

const INSTANCE_COLUMNS: &str = "address, deposed, resource, provider, rtype, inputs, attrs, sensitive, deps";

impl Store for SqliteStore {
    fn env(&self) -> &str {
        &self.env
    }

    fn snapshot(&self) -> Result<Snapshot, Diagnostic> {
        let mut snap = Snapshot { env: self.env.clone(), serial: self.serial()?, ..Snapshot::default() };
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {INSTANCE_COLUMNS} FROM instances WHERE env = ?1 ORDER BY rowid"))
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([&self.env], record_from_row).map_err(|e| self.err(e))?;
        for row in rows {
            let rec = row.map_err(|e| self.err(e))?;
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
            let value = serde_json::from_str(&value).unwrap_or(serde_json::Value::Null);
            snap.outputs.insert(name, OutputRecord { value, sensitive });
        }
        Ok(snap)
    }

    fn begin_run(&mut self, command: &str) -> Result<i64, Diagnostic> {
        let now = now_rfc3339();
        let tx = self.conn.transaction().map_err(|e| db_error(&self.path, e))?;
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
        let tx = self.conn.transaction().map_err(|e| db_error(&self.path, e))?;
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
        let tx = self.conn.transaction().map_err(|e| db_error(&self.path, e))?;
        {
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO instances (env, address, deposed, resource, provider, rtype, inputs, attrs, sensitive, deps, serial)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                     ON CONFLICT(env, address, deposed) DO UPDATE SET resource = ?4, provider = ?5, rtype = ?6,
                       inputs = ?7, attrs = ?8, sensitive = ?9, deps = ?10, serial = ?11",
                )
                .map_err(|e| db_error(&self.path, e))?;
            let mut remove = tx.prepare_cached("DELETE FROM instances WHERE env = ?1 AND address = ?2 AND deposed = ?3").map_err(|e| db_error(&self.path, e))?;
            let mut depose = tx
                .prepare_cached("UPDATE instances SET deposed = ?4 WHERE env = ?1 AND address = ?2 AND deposed = ?3")
                .map_err(|e| db_error(&self.path, e))?;
            let mut done = tx.prepare_cached("UPDATE intents SET completed_at = ?2, outcome = ?3 WHERE id = ?1").map_err(|e| db_error(&self.path, e))?;
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
                let inputs: String = r.get(8)?;
                let deps: String = r.get(9)?;
                let sensitive: String = r.get(10)?;
                Ok(Intent {
                    id: r.get(0)?,
                    address: r.get(1)?,
                    deposed: r.get(2)?,
                    action: r.get(3)?,
                    token: r.get(4)?,
                    resource: r.get(5)?,
                    provider: r.get(6)?,
                    rtype: r.get(7)?,
                    inputs: from_json(&inputs),
                    deps: serde_json::from_str(&deps).unwrap_or_default(),
                    sensitive: serde_json::from_str(&sensitive).unwrap_or_default(),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    fn set_outputs(&mut self, outputs: &[(String, serde_json::Value, bool)]) -> Result<(), Diagnostic> {
        let tx = self.conn.transaction().map_err(|e| db_error(&self.path, e))?;
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
                    report: serde_json::from_str(&report).unwrap_or(serde_json::Value::Null),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
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
