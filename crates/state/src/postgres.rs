//! The PostgreSQL store: `postgres://user[:password]@host:5432/db?schema=name`
//! (`postgresql://` too; the schema defaults to `plinth`). Same semantics as
//! `sqlite.rs`, row for row: tables keyed by environment, values stored as
//! the same JSON text, one transaction per multi-row write.
//!
//! The schema comes from the numbered migrations in `state/postgres/`,
//! embedded in the binary; the versions applied are rows of `schema_version`,
//! and they are applied under `pg_advisory_xact_lock` so that concurrent
//! first runs do not race. `lock()` serializes on a per-environment advisory
//! transaction lock before it reads and writes the `locks` row.
//!
//! The `postgres` crate's blocking client runs its own (current-thread) tokio
//! runtime and panics when used on a thread that is inside another runtime's
//! context, which is where the CLI calls stores from. Every use of the client
//! (connecting, queries, closing on drop) therefore goes through
//! [`blocking`]: inside a multi-thread runtime it runs in
//! `tokio::task::block_in_place`, inside a current-thread runtime on a scoped
//! helper thread, and outside any runtime directly.

use super::model::*;
use super::{now_rfc3339, now_unix, Completion, Intent, LockInfo, Store};
use crate::diagnostic::Diagnostic;
use crate::pgtls::{self, ConnectError, TlsOptions};
use postgres::{Client, IsolationLevel, Statement};
use std::cell::RefCell;
use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

/// Embedded migrations, applied in order; `schema_version` has one row per
/// migration applied (version = index + 1).
const MIGRATIONS: &[&str] = &[include_str!("../../../state/postgres/0001_init.sql"), include_str!("../../../state/postgres/0002_drift.sql")];

const DEFAULT_SCHEMA: &str = "plinth";

/// Runs `f` where the blocking `postgres` client may run: directly outside a
/// tokio runtime, in `block_in_place` on a multi-thread runtime, and on a
/// scoped thread on a current-thread runtime (where `block_in_place` panics).
fn blocking<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Err(_) => f(),
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        Ok(_) => std::thread::scope(|s| match s.spawn(f).join() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        }),
    }
}

/// What a store operation can fail with before it becomes a [`Diagnostic`].
enum Error {
    Pg(postgres::Error),
    /// `schema_version` names a migration this Plinth does not know.
    Newer(i64),
    /// A row that does not decode (P5030), or another diagnostic.
    Diag(Diagnostic),
}

impl From<Diagnostic> for Error {
    fn from(d: Diagnostic) -> Error {
        Error::Diag(d)
    }
}

impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Error {
        Error::Pg(e)
    }
}

type PgResult<T> = Result<T, Error>;

/// The connection and the statements prepared on it (prepared once per
/// connection: each later use is one round trip).
struct Conn {
    client: Client,
    stmts: HashMap<&'static str, Statement>,
}

impl Conn {
    fn prepare(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        if let Some(s) = self.stmts.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        self.stmts.insert(sql, s.clone());
        Ok(s)
    }
}

pub struct PostgresStore {
    /// `None` only while dropping. A `RefCell` because reads (`snapshot`,
    /// `history`, …) take `&self` and the client needs `&mut`.
    conn: RefCell<Option<Conn>>,
    env: String,
    schema: String,
    /// The URL with any password redacted, for messages.
    server: String,
}

/// The URL as it may be shown (the password replaced by `***`).
pub use crate::redact::url as redact;

/// Splits `?schema=` off the URL: (URL for the driver, schema).
fn split_schema(url: &str) -> Result<(String, String), String> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => return Ok((url.to_string(), DEFAULT_SCHEMA.to_string())),
    };
    let mut schema = None;
    let mut kept = Vec::new();
    for kv in query.split('&').filter(|kv| !kv.is_empty()) {
        match kv.split_once('=') {
            Some(("schema", v)) => schema = Some(v.to_string()),
            _ => kept.push(kv),
        }
    }
    let schema = schema.unwrap_or_else(|| DEFAULT_SCHEMA.to_string());
    let valid = schema.len() <= 63
        && schema.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!("the schema name `{schema}` is not valid: use 1 to 63 ASCII letters, digits or underscores, not starting with a digit"));
    }
    let url = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    Ok((url, schema))
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn store_error(server: &str, schema: &str, reason: impl std::fmt::Display) -> Diagnostic {
    let reason = reason.to_string();
    let reason = reason.trim_end_matches('.');
    Diagnostic::new("P5001", "state store error").help(format!(
        "The PostgreSQL state server {server} (schema {schema}) could not be used: {reason}. Check that the server is running and reachable, that the user, password and database in the URL are right, and that the user may create tables in the schema."
    ))
}

/// The address itself is wrong: nothing was sent to a server.
fn address_error(server: &str, reason: impl std::fmt::Display) -> Diagnostic {
    Diagnostic::new("P5001", "state store error").help(format!(
        "The PostgreSQL state address {server} is not valid: {reason}. Write it as postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?schema=NAME]."
    ))
}

/// The TLS settings cannot be used or the TLS handshake failed.
fn tls_error(server: &str, tls: &TlsOptions, e: ConnectError) -> Diagnostic {
    let root = tls.root_cert.as_ref().map(|r| format!(", sslrootcert {}", r.describe())).unwrap_or_default();
    let reason = e.to_string();
    let reason = reason.trim_end_matches('.');
    Diagnostic::new("P5011", "TLS to the PostgreSQL state server failed").help(format!(
        "The PostgreSQL state server {server} (sslmode {}{root}) was not reached over TLS: {reason}. Check that the server has ssl = on, that sslrootcert is the CA that signed the server's certificate and, for verify-full, that the certificate names the host in the URL; sslmode=require encrypts without verifying the certificate.",
        tls.mode.as_str()
    ))
}

fn pg_reason(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{} ({})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                s.push_str(": ");
                s.push_str(detail);
            }
            s
        }
        None => e.to_string(),
    }
}

use super::{map_from_json_text as from_json, map_to_json_text as to_json};

fn list_json(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

/// Creates the schema if needed and applies the missing migrations, in one
/// transaction under an advisory lock on the schema's name.
fn migrate(client: &mut Client, schema: &str) -> PgResult<()> {
    let ident = quote_ident(schema);
    client.batch_execute(&format!("SET search_path TO {ident}"))?;
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock(hashtext($1::text))", &[&format!("plinth:migrate:{schema}")])?;
    // Only create what is missing: CREATE SCHEMA IF NOT EXISTS still needs
    // the CREATE privilege on the database.
    if tx.query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema])?.is_none() {
        tx.batch_execute(&format!("CREATE SCHEMA {ident}"))?;
    }
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")?;
    let version: i32 = tx.query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])?.get(0);
    if version as usize > MIGRATIONS.len() {
        return Err(Error::Newer(version as i64));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.batch_execute(sql)?;
        tx.execute("INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)", &[&((i + 1) as i32), &now_rfc3339()])?;
    }
    tx.commit()?;
    Ok(())
}

const SQL_SERIAL: &str = "SELECT serial FROM envs WHERE env = $1";
const SQL_INSTANCES: &str = "SELECT address, deposed, resource, provider, rtype, inputs, attrs, sensitive, deps FROM instances WHERE env = $1 ORDER BY seq";
// COLLATE "C": byte order, as SQLite's ORDER BY name.
const SQL_OUTPUTS: &str = "SELECT name, value, sensitive FROM outputs WHERE env = $1 ORDER BY name COLLATE \"C\"";
const SQL_BUMP_SERIAL: &str = "INSERT INTO envs (env, serial, updated_at) VALUES ($1, 1, $2)
     ON CONFLICT (env) DO UPDATE SET serial = envs.serial + 1, updated_at = EXCLUDED.updated_at
     RETURNING serial";
const SQL_HISTORY_START: &str = "INSERT INTO history (env, serial, started_at, command, status) VALUES ($1, $2, $3, $4, 'running')";
const SQL_PRUNE_INTENTS: &str = "DELETE FROM intents WHERE env = $1 AND completed_at IS NOT NULL AND serial < $2";
const SQL_HISTORY_FINISH: &str = "UPDATE history SET finished_at = $3, status = $4, created = $5, updated = $6, replaced = $7, deleted = $8
     WHERE env = $1 AND serial = $2";
const SQL_INTENT: &str =
    "INSERT INTO intents (env, serial, address, deposed, action, token, resource, provider, rtype, inputs, inputs_hash, deps, sensitive, started_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id";
const SQL_UPSERT: &str = "INSERT INTO instances (env, address, deposed, resource, provider, rtype, inputs, attrs, sensitive, deps, serial)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
     ON CONFLICT (env, address, deposed) DO UPDATE SET resource = EXCLUDED.resource, provider = EXCLUDED.provider,
       rtype = EXCLUDED.rtype, inputs = EXCLUDED.inputs, attrs = EXCLUDED.attrs, sensitive = EXCLUDED.sensitive,
       deps = EXCLUDED.deps, serial = EXCLUDED.serial";
const SQL_REMOVE: &str = "DELETE FROM instances WHERE env = $1 AND address = $2 AND deposed = $3";
const SQL_DEPOSE: &str = "UPDATE instances SET deposed = $4 WHERE env = $1 AND address = $2 AND deposed = $3";
// A completed intent keeps its action and hash, not its inputs (they may hold secrets).
const SQL_DONE: &str = "UPDATE intents SET completed_at = $3, outcome = $4, inputs = '{}' WHERE env = $1 AND id = $2";
const SQL_PURGE_INTENTS: &str = "UPDATE intents SET inputs = '{}' WHERE env = $1 AND completed_at IS NOT NULL AND inputs <> '{}'";
const SQL_UNFINISHED: &str = "SELECT id, address, deposed, action, token, resource, provider, rtype, inputs, deps, sensitive
     FROM intents WHERE env = $1 AND completed_at IS NULL ORDER BY id";
const SQL_CLEAR_OUTPUTS: &str = "DELETE FROM outputs WHERE env = $1";
const SQL_OUTPUT: &str = "INSERT INTO outputs (env, name, value, sensitive) VALUES ($1, $2, $3, $4)";
const SQL_HISTORY: &str =
    "SELECT serial, started_at, finished_at, command, status, created, updated, replaced, deleted FROM history WHERE env = $1 ORDER BY serial";
const SQL_REMOVE_ALL: &str = "DELETE FROM instances WHERE env = $1 AND address = $2";
const SQL_MOVE: &str = "UPDATE instances SET address = $3, resource = $4 WHERE env = $1 AND address = $2 AND deposed = ''";
const SQL_ENV_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext($1::text))";
const SQL_LOCK_READ: &str = "SELECT holder, host, pid, command, acquired_at, expires_at FROM locks WHERE env = $1";
const SQL_LOCK_WRITE: &str = "INSERT INTO locks (env, holder, host, pid, command, acquired_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (env) DO UPDATE SET holder = EXCLUDED.holder, host = EXCLUDED.host, pid = EXCLUDED.pid,
       command = EXCLUDED.command, acquired_at = EXCLUDED.acquired_at, expires_at = EXCLUDED.expires_at";
const SQL_RENEW: &str = "UPDATE locks SET expires_at = $3 WHERE env = $1 AND pid = $2";
const SQL_UNLOCK_PID: &str = "DELETE FROM locks WHERE env = $1 AND pid = $2";
const SQL_UNLOCK_ANY: &str = "DELETE FROM locks WHERE env = $1";

impl PostgresStore {
    pub fn open(url: &str, env: &str) -> Result<PostgresStore, Diagnostic> {
        let server = redact(url);
        let (driver_url, schema) = split_schema(url).map_err(|e| address_error(&server, e))?;
        let (driver_url, tls) = pgtls::split_url(&driver_url).map_err(|e| address_error(&server, e))?;
        let tls = tls.options();
        let mut config = postgres::Config::from_str(&driver_url).map_err(|e| address_error(&server, e))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("plinth");
        }
        let connected = blocking(|| pgtls::connect(&config, &tls));
        let mut client = match connected {
            Ok(c) => c,
            Err(ConnectError::Pg(e)) => return Err(Self::diagnostic(&server, &schema, Error::Pg(e))),
            Err(e) => return Err(tls_error(&server, &tls, e)),
        };
        let opened = blocking(|| -> PgResult<Client> {
            migrate(&mut client, &schema)?;
            Ok(client)
        });
        let client = opened.map_err(|e| Self::diagnostic(&server, &schema, e))?;
        Ok(PostgresStore { conn: RefCell::new(Some(Conn { client, stmts: HashMap::new() })), env: env.to_string(), schema, server })
    }

    /// The schema this store's tables live in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    fn diagnostic(server: &str, schema: &str, e: Error) -> Diagnostic {
        match e {
            Error::Pg(e) => store_error(server, schema, pg_reason(&e)),
            Error::Newer(v) => Diagnostic::new("P5003", "state written by a newer Plinth").help(format!(
                "The PostgreSQL state server {server} (schema {schema}) has schema version {v}, this Plinth knows {}; upgrade Plinth.",
                MIGRATIONS.len()
            )),
            Error::Diag(d) => d,
        }
    }

    /// Runs `f` on the connection (see [`blocking`]) with this store's env.
    fn with<T: Send>(&self, f: impl FnOnce(&mut Conn, &str) -> PgResult<T> + Send) -> Result<T, Diagnostic> {
        let mut guard = self.conn.borrow_mut();
        let conn = guard.as_mut().ok_or_else(|| store_error(&self.server, &self.schema, "the connection is closed"))?;
        let env = self.env.as_str();
        blocking(|| f(conn, env)).map_err(|e| Self::diagnostic(&self.server, &self.schema, e))
    }
}

impl Drop for PostgresStore {
    /// Closing the client blocks on (and drops) its runtime: same rules.
    fn drop(&mut self) {
        if let Some(conn) = self.conn.get_mut().take() {
            blocking(move || drop(conn));
        }
    }
}

fn record_from_row(row: &postgres::Row) -> super::StoredRecord {
    super::StoredRecord {
        address: row.get(0),
        deposed: row.get(1),
        resource: row.get(2),
        provider: row.get(3),
        rtype: row.get(4),
        inputs: row.get(5),
        attrs: row.get(6),
        sensitive: row.get(7),
        deps: row.get(8),
    }
}

impl Store for PostgresStore {
    fn env(&self) -> &str {
        &self.env
    }

    fn snapshot(&self) -> Result<Snapshot, Diagnostic> {
        self.with(|c, env| {
            let (serial_q, instances_q, outputs_q) = (c.prepare(SQL_SERIAL)?, c.prepare(SQL_INSTANCES)?, c.prepare(SQL_OUTPUTS)?);
            // One consistent view of the three reads.
            let mut tx = c.client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start()?;
            let serial = tx.query_opt(&serial_q, &[&env])?.map(|r| r.get::<_, i64>(0)).unwrap_or(0);
            let mut snap = Snapshot { env: env.to_string(), serial, ..Snapshot::default() };
            for row in tx.query(&instances_q, &[&env])? {
                let rec = record_from_row(&row).decode()?;
                snap.instances.insert(rec.key(), rec);
            }
            for row in tx.query(&outputs_q, &[&env])? {
                let name: String = row.get(0);
                let value = super::json_from_text(row.get(1), &format!("the value of output `{name}`"))?;
                snap.outputs.insert(name, OutputRecord { value, sensitive: row.get(2) });
            }
            tx.commit()?;
            Ok(snap)
        })
    }

    fn begin_run(&mut self, command: &str) -> Result<i64, Diagnostic> {
        self.with(|c, env| {
            let (bump, start, prune) = (c.prepare(SQL_BUMP_SERIAL)?, c.prepare(SQL_HISTORY_START)?, c.prepare(SQL_PRUNE_INTENTS)?);
            let now = now_rfc3339();
            let mut tx = c.client.transaction()?;
            let serial: i64 = tx.query_one(&bump, &[&env, &now])?.get(0);
            tx.execute(&start, &[&env, &serial, &now, &command])?;
            // Keep the journal bounded: completed intents of old runs go.
            tx.execute(&prune, &[&env, &(serial - 20)])?;
            tx.commit()?;
            Ok(serial)
        })
    }

    fn finish_run(&mut self, serial: i64, status: &str, counts: [i64; 4]) -> Result<(), Diagnostic> {
        self.with(|c, env| {
            let finish = c.prepare(SQL_HISTORY_FINISH)?;
            c.client.execute(&finish, &[&env, &serial, &now_rfc3339(), &status, &counts[0], &counts[1], &counts[2], &counts[3]])?;
            Ok(())
        })
    }

    fn write_intents(&mut self, serial: i64, intents: &mut [Intent]) -> Result<(), Diagnostic> {
        self.with(|c, env| {
            let insert = c.prepare(SQL_INTENT)?;
            let now = now_rfc3339();
            let mut tx = c.client.transaction()?;
            let mut ids = Vec::with_capacity(intents.len());
            for intent in intents.iter() {
                let inputs = to_json(&intent.inputs);
                let hash = super::hash_hex(inputs.as_bytes());
                let row = tx.query_one(
                    &insert,
                    &[
                        &env,
                        &serial,
                        &intent.address,
                        &intent.deposed,
                        &intent.action,
                        &intent.token,
                        &intent.resource,
                        &intent.provider,
                        &intent.rtype,
                        &inputs,
                        &hash,
                        &list_json(&intent.deps),
                        &list_json(&intent.sensitive),
                        &now,
                    ],
                )?;
                ids.push(row.get::<_, i64>(0));
            }
            tx.commit()?;
            // Ids are handed out only once they are durable.
            for (intent, id) in intents.iter_mut().zip(ids) {
                intent.id = id;
            }
            Ok(())
        })
    }

    fn complete(&mut self, serial: i64, completions: &[Completion]) -> Result<(), Diagnostic> {
        self.with(|c, env| {
            let (upsert, remove, depose, done) = (c.prepare(SQL_UPSERT)?, c.prepare(SQL_REMOVE)?, c.prepare(SQL_DEPOSE)?, c.prepare(SQL_DONE)?);
            let now = now_rfc3339();
            let mut tx = c.client.transaction()?;
            for completion in completions {
                match completion {
                    Completion::Upsert { intent, record } => {
                        tx.execute(
                            &upsert,
                            &[
                                &env,
                                &record.address,
                                &record.deposed,
                                &record.resource,
                                &record.provider,
                                &record.rtype,
                                &to_json(&record.inputs),
                                &to_json(&record.attrs),
                                &list_json(&record.sensitive),
                                &list_json(&record.deps),
                                &serial,
                            ],
                        )?;
                        if let Some(id) = intent {
                            tx.execute(&done, &[&env, id, &now, &"applied"])?;
                        }
                    }
                    Completion::Remove { intent, address, deposed } => {
                        tx.execute(&remove, &[&env, address, deposed])?;
                        if let Some(id) = intent {
                            tx.execute(&done, &[&env, id, &now, &"applied"])?;
                        }
                    }
                    Completion::Depose { address, token } => {
                        tx.execute(&depose, &[&env, address, &"", token])?;
                    }
                    Completion::Close { intent, outcome } => {
                        tx.execute(&done, &[&env, intent, &now, outcome])?;
                    }
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn unfinished_intents(&self) -> Result<Vec<Intent>, Diagnostic> {
        self.with(|c, env| {
            let q = c.prepare(SQL_UNFINISHED)?;
            let rows = c.client.query(&q, &[&env])?;
            let mut intents = Vec::with_capacity(rows.len());
            for r in &rows {
                let (action, address): (String, String) = (r.get(3), r.get(1));
                let what = |field: &str| format!("the {field} of the pending {action} of {address}");
                intents.push(Intent {
                    id: r.get(0),
                    deposed: r.get(2),
                    token: r.get(4),
                    resource: r.get(5),
                    provider: r.get(6),
                    rtype: r.get(7),
                    inputs: from_json(r.get(8), &what("inputs"))?,
                    deps: super::list_from_json_text(r.get(9), &what("dependencies"))?,
                    sensitive: super::list_from_json_text(r.get(10), &what("sensitive attribute names"))?,
                    action: action.clone(),
                    address: address.clone(),
                });
            }
            Ok(intents)
        })
    }

    fn set_outputs(&mut self, outputs: &[(String, serde_json::Value, bool)]) -> Result<(), Diagnostic> {
        self.with(|c, env| {
            let (clear, insert) = (c.prepare(SQL_CLEAR_OUTPUTS)?, c.prepare(SQL_OUTPUT)?);
            let mut tx = c.client.transaction()?;
            tx.execute(&clear, &[&env])?;
            for (name, value, sensitive) in outputs {
                tx.execute(&insert, &[&env, name, &value.to_string(), sensitive])?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn history(&self) -> Result<Vec<HistoryEntry>, Diagnostic> {
        self.with(|c, env| {
            let q = c.prepare(SQL_HISTORY)?;
            let rows = c.client.query(&q, &[&env])?;
            Ok(rows
                .iter()
                .map(|r| HistoryEntry {
                    serial: r.get(0),
                    started_at: r.get(1),
                    finished_at: r.get(2),
                    command: r.get(3),
                    status: r.get(4),
                    created: r.get(5),
                    updated: r.get(6),
                    replaced: r.get(7),
                    deleted: r.get(8),
                })
                .collect())
        })
    }

    fn remove_instance(&mut self, address: &str) -> Result<usize, Diagnostic> {
        self.with(|c, env| {
            let q = c.prepare(SQL_REMOVE_ALL)?;
            Ok(c.client.execute(&q, &[&env, &address])? as usize)
        })
    }

    fn move_instance(&mut self, from: &str, to: &str, resource: &str) -> Result<usize, Diagnostic> {
        self.with(|c, env| {
            let q = c.prepare(SQL_MOVE)?;
            Ok(c.client.execute(&q, &[&env, &from, &to, &resource])? as usize)
        })
    }

    /// Clears the inputs of completed intents (journals written before
    /// completion did). Dead row versions, the server's WAL and its backups
    /// are the server's: PostgreSQL reuses that space after its own VACUUM.
    fn purge(&mut self, _full: bool) -> Result<(), Diagnostic> {
        self.with(|c, env| {
            let q = c.prepare(SQL_PURGE_INTENTS)?;
            c.client.execute(&q, &[&env])?;
            Ok(())
        })
    }

    fn lock(&mut self, info: &LockInfo, lease_secs: i64) -> Result<Option<LockInfo>, Diagnostic> {
        // Two lock attempts on one environment serialize on this key, so the
        // read-decide-write below cannot interleave.
        let key = format!("plinth:{}:{}", self.schema, self.env);
        self.with(|c, env| {
            let (serialize, read, write) = (c.prepare(SQL_ENV_LOCK)?, c.prepare(SQL_LOCK_READ)?, c.prepare(SQL_LOCK_WRITE)?);
            let mut tx = c.client.transaction()?;
            tx.execute(&serialize, &[&key])?;
            let now = now_unix();
            let existing = tx.query_opt(&read, &[&env])?.map(|r| LockInfo {
                holder: r.get(0),
                host: r.get(1),
                pid: r.get(2),
                command: r.get(3),
                acquired_at: r.get(4),
                expires_at: r.get(5),
            });
            if let Some(held) = existing {
                let mine = held.pid == info.pid && held.host == info.host;
                if !mine && !held.is_stale(now) {
                    tx.commit()?;
                    return Ok(Some(held));
                }
            }
            tx.execute(&write, &[&env, &info.holder, &info.host, &info.pid, &info.command, &info.acquired_at, &(now + lease_secs)])?;
            tx.commit()?;
            Ok(None)
        })
    }

    fn renew_lock(&mut self, pid: i64, lease_secs: i64) -> Result<(), Diagnostic> {
        self.with(|c, env| {
            let q = c.prepare(SQL_RENEW)?;
            c.client.execute(&q, &[&env, &pid, &(now_unix() + lease_secs)])?;
            Ok(())
        })
    }

    fn unlock(&mut self, pid: Option<i64>) -> Result<bool, Diagnostic> {
        self.with(|c, env| {
            let n = match pid {
                Some(pid) => {
                    let q = c.prepare(SQL_UNLOCK_PID)?;
                    c.client.execute(&q, &[&env, &pid])?
                }
                None => {
                    let q = c.prepare(SQL_UNLOCK_ANY)?;
                    c.client.execute(&q, &[&env])?
                }
            };
            Ok(n > 0)
        })
    }

    fn record_drift(&mut self, r: &DriftRecord) -> Result<(), Diagnostic> {
        let report = r.report.to_string();
        self.with(|c, env| {
            let q = c.prepare("INSERT INTO drift_reports (env, at, serial, checked, drifted, unmanaged, report) VALUES ($1, $2, $3, $4, $5, $6, $7)")?;
            c.client.execute(&q, &[&env, &r.at, &r.serial, &r.checked, &r.drifted, &r.unmanaged, &report])?;
            Ok(())
        })
    }

    fn drift_history(&self) -> Result<Vec<DriftRecord>, Diagnostic> {
        self.with(|c, env| {
            let q = c.prepare("SELECT at, serial, checked, drifted, unmanaged, report FROM drift_reports WHERE env = $1 ORDER BY id")?;
            let rows = c.client.query(&q, &[&env])?;
            let mut reports = Vec::with_capacity(rows.len());
            for r in &rows {
                let at: String = r.get(0);
                let report = super::json_from_text(r.get::<_, &str>(5), &format!("the drift report of {at}"))?;
                reports.push(DriftRecord { at, serial: r.get(1), checked: r.get(2), drifted: r.get(3), unmanaged: r.get(4), report });
            }
            Ok(reports)
        })
    }
}

/// The address a `postgres` backend block forms: its URL, refused unless it
/// is a PostgreSQL URL (never echoed: it may hold a password).
pub fn backend_address(url: &str, env: &str) -> Result<String, Diagnostic> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(Diagnostic::new("P2086", "cannot form the state address").help(format!(
            "The PostgreSQL URL for environment `{env}` does not start with postgres:// or postgresql://. Write it as postgres://USER:PASSWORD@HOST/DATABASE."
        )));
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_passwords() {
        assert_eq!(redact("postgres://u:s3cret@db:5432/x?schema=a"), "postgres://u:***@db:5432/x?schema=a");
        assert_eq!(redact("postgres://u@db/x"), "postgres://u@db/x");
        assert_eq!(redact("postgresql://db/x?user=u&password=s3cret"), "postgresql://db/x?user=u&password=***");
        assert_eq!(redact("postgres://u:p/w@db/x"), "postgres://u:***@db/x");
    }

    #[test]
    fn schema_parameter_is_split_off_and_checked() {
        assert_eq!(split_schema("postgres://u@h/db").unwrap(), ("postgres://u@h/db".into(), "plinth".into()));
        assert_eq!(split_schema("postgres://u@h/db?schema=s1").unwrap(), ("postgres://u@h/db".into(), "s1".into()));
        assert_eq!(
            split_schema("postgres://u@h/db?sslmode=disable&schema=s_2&connect_timeout=3").unwrap(),
            ("postgres://u@h/db?sslmode=disable&connect_timeout=3".into(), "s_2".into())
        );
        assert!(split_schema("postgres://u@h/db?schema=a;drop").is_err());
        assert!(split_schema("postgres://u@h/db?schema=").is_err());
        assert!(split_schema("postgres://u@h/db?schema=1x").is_err());
        let err = PostgresStore::open("postgres://u:pw@h/db?schema=a-b", "default").err().expect("bad schema");
        assert!(err.help.contains("not valid") && !err.help.contains(":pw@"), "{}", err.help);
    }

    #[test]
    fn tls_settings_are_checked_before_connecting() {
        let err = PostgresStore::open("postgres://u:hunter2@h/db?sslmode=allow", "default").err().expect("bad sslmode");
        assert_eq!(err.code, "P5001");
        assert!(err.help.contains("sslmode `allow`") && !err.help.contains("hunter2"), "{}", err.help);
        let err = PostgresStore::open("postgres://u:hunter2@127.0.0.1:1/db?sslmode=verify-full", "default").err().expect("no CA");
        assert_eq!(err.code, "P5011");
        assert!(err.help.contains("sslrootcert") && !err.help.contains("hunter2"), "{}", err.help);
        let err = PostgresStore::open("postgres://u@127.0.0.1:1/db?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem", "default").err().expect("no CA file");
        assert_eq!(err.code, "P5011");
        assert!(err.help.contains("/nonexistent/ca.pem"), "{}", err.help);
    }

    #[test]
    fn connection_errors_are_p5001_without_the_password() {
        // Port 1 on loopback: nothing listens there.
        let err = PostgresStore::open("postgres://plinth:hunter2@127.0.0.1:1/db?schema=s", "default").err().expect("no server on port 1");
        assert_eq!(err.code, "P5001");
        assert!(err.help.contains("127.0.0.1:1"), "{}", err.help);
        assert!(!err.help.contains("hunter2"), "{}", err.help);
        // Same from inside a runtime (the CLI's situation).
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        let err = rt.block_on(async { PostgresStore::open("postgres://plinth:hunter2@127.0.0.1:1/db", "default").err() }).expect("no server");
        assert_eq!(err.code, "P5001");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let err = rt.block_on(async { PostgresStore::open("postgres://plinth:hunter2@127.0.0.1:1/db", "default").err() }).expect("no server");
        assert_eq!(err.code, "P5001");
    }
}
