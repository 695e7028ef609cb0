//! `postgres`: roles, databases, grants and extensions of a PostgreSQL
//! server, like Terraform's cyrilgdn/postgresql provider.
//!
//! Every object has a deterministic identity (its name; a grant is
//! role/database/type/schema/objects), so `read` with no prior finds an object
//! an interrupted create made, and creates are idempotent (an existing
//! database is altered to match); a role that exists outside this state is
//! refused (`P6325`), not taken over. Reads come from the catalogs
//! (`pg_roles`, `pg_auth_members`, `pg_database`, `aclexplode` of the ACLs,
//! `pg_extension`), so changes made outside Plinth show as drift; a role's
//! password is sent as a SCRAM-SHA-256 verifier computed here (never as
//! text) and, where `pg_authid` is readable, verified against the stored
//! one on refresh.
//!
//! SQL safety: identifiers go through [`quote_ident`], values are bound
//! parameters where PostgreSQL allows them, and the few literals utilities
//! refuse as parameters (passwords, encodings, versions) go through
//! [`quote_literal`]. Privilege names are checked against a fixed list.
//!
//! The `::postgres` client is blocking: every call runs on a
//! `spawn_blocking` thread with a connection from a small per-database pool
//! (idle connections are closed on a plain thread when the provider is
//! dropped, never on a runtime thread).

use super::*;
use crate::pgtls::{self, ConnectError, TlsOptions};

#[path = "pg_scram.rs"]
mod scram;
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

const MAX_IDLE_PER_DB: usize = 16;

pub struct PostgresFactory {
    schema: ProviderSchema,
}

fn flag(d: &'static str) -> AttrSchema {
    AttrSchema::optional(Type::Bool, d).default(Value::Bool(false))
}

impl PostgresFactory {
    pub fn new() -> Self {
        let role = ResourceSchema::new("A PostgreSQL role (user or group).")
            .attr("name", AttrSchema::required(Type::String, "the role name").forces_replacement())
            .attr("login", flag("whether the role may log in"))
            .attr("password", AttrSchema::optional(Type::String, "the password (never read back)").sensitive())
            .attr("superuser", flag("SUPERUSER"))
            .attr("createdb", flag("CREATEDB"))
            .attr("createrole", flag("CREATEROLE"))
            .attr("connection_limit", AttrSchema::optional(Type::Number, "concurrent connections allowed; -1 for no limit").default(Value::Int(-1)))
            .attr(
                "roles",
                AttrSchema::optional(Type::List(Box::new(Type::String)), "roles this role is a member of (GRANT … TO it); order does not matter")
                    .default(Value::List(vec![])),
            )
            .attr("id", AttrSchema::computed(Type::String, "the role name"));
        let database = ResourceSchema::new("A PostgreSQL database.")
            .attr("name", AttrSchema::required(Type::String, "the database name").forces_replacement())
            .attr("owner", AttrSchema::optional(Type::String, "the owning role; the connecting user when not set (then not tracked)"))
            .attr("encoding", AttrSchema::optional(Type::String, "character encoding").default(Value::str("UTF8")).forces_replacement())
            .attr("template", AttrSchema::optional(Type::String, "the template database").default(Value::str("template0")).forces_replacement())
            .attr("connection_limit", AttrSchema::optional(Type::Number, "concurrent connections allowed; -1 for no limit").default(Value::Int(-1)))
            .attr("id", AttrSchema::computed(Type::String, "the database name"));
        let grant = ResourceSchema::new("Privileges of a role on a database, a schema, or tables of a schema.")
            .attr("role", AttrSchema::required(Type::String, "the grantee (`public` for PUBLIC)").forces_replacement())
            .attr("database", AttrSchema::required(Type::String, "the database").forces_replacement())
            .attr("object_type", AttrSchema::required(Type::String, "\"database\", \"schema\" or \"table\"").forces_replacement())
            .attr("schema", AttrSchema::optional(Type::String, "the schema (for object_type schema and table)").forces_replacement())
            .attr("privileges", AttrSchema::required(Type::List(Box::new(Type::String)), "privileges, e.g. [\"CONNECT\"]; order does not matter"))
            .attr(
                "objects",
                AttrSchema::optional(Type::List(Box::new(Type::String)), "tables (object_type table); empty: every table of the schema").forces_replacement(),
            )
            .attr("id", AttrSchema::computed(Type::String, "role/database/object_type[/schema[/objects]]"));
        let extension = ResourceSchema::new("A PostgreSQL extension installed in a database.")
            .attr("name", AttrSchema::required(Type::String, "the extension name").forces_replacement())
            .attr("database", AttrSchema::required(Type::String, "the database to install it in").forces_replacement())
            .attr("schema", AttrSchema::optional(Type::String, "the schema for its objects; the extension's default when not set (then not tracked)"))
            .attr("version", AttrSchema::optional(Type::String, "the version; the default version when not set (then not tracked)"))
            .attr("id", AttrSchema::computed(Type::String, "database/name"));
        let mut schema = ProviderSchema::default();
        schema.config.insert("url", AttrSchema::required(Type::String, "postgres://user:password@host:port/database").sensitive());
        schema.config.insert(
            "sslmode",
            AttrSchema::optional(Type::String, "disable, prefer (default), require, verify-ca or verify-full, as libpq; overrides sslmode in `url`"),
        );
        schema.config.insert(
            "sslrootcert",
            AttrSchema::optional(
                Type::String,
                "a PEM file of the CA certificate(s) verify-ca and verify-full check the server against (`system`: the system trust store)",
            ),
        );
        schema
            .config
            .insert("list_unmanaged", AttrSchema::optional(Type::Bool, "list roles and databases Plinth does not manage as drift").default(Value::Bool(true)));
        schema.resources.insert("role", role);
        schema.resources.insert("database", database);
        schema.resources.insert("grant", grant);
        schema.resources.insert("extension", extension);
        PostgresFactory { schema }
    }
}

impl Default for PostgresFactory {
    fn default() -> Self {
        Self::new()
    }
}

fn s<'a>(m: &'a Map, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str)
}
fn b(m: &Map, k: &str) -> bool {
    m.get(k).and_then(Value::as_bool).unwrap_or(false)
}
fn n(m: &Map, k: &str, default: i64) -> i64 {
    m.get(k).and_then(Value::as_i64).unwrap_or(default)
}
fn strings(m: &Map, k: &str) -> Option<Vec<String>> {
    match m.get(k).map(Value::peel) {
        Some(Value::List(items)) => items.iter().map(|v| v.as_str().map(str::to_string)).collect(),
        _ => None,
    }
}

/// The deterministic identity of an object, when its configuration is known.
fn object_id(rtype: &str, config: &Map) -> Option<String> {
    match rtype {
        "role" | "database" => s(config, "name").map(str::to_string),
        "extension" => Some(format!("{}/{}", s(config, "database")?, s(config, "name")?)),
        "grant" => {
            let mut id = format!("{}/{}/{}", s(config, "role")?, s(config, "database")?, s(config, "object_type")?);
            if let Some(schema) = s(config, "schema") {
                id.push('/');
                id.push_str(schema);
                match config.get("objects").map(Value::peel) {
                    None | Some(Value::Null) => {}
                    Some(_) => {
                        let mut objects = strings(config, "objects")?;
                        objects.sort();
                        if !objects.is_empty() {
                            id.push('/');
                            id.push_str(&objects.join(","));
                        }
                    }
                }
            }
            Some(id)
        }
        _ => None,
    }
}

impl ProviderFactory for PostgresFactory {
    fn name(&self) -> &'static str {
        "postgres"
    }
    fn schema(&self) -> &ProviderSchema {
        &self.schema
    }
    fn plan(&self, rtype: &str, prior: Option<&Map>, config: &Map) -> Map {
        let mut planned = default_plan(self.schema.resources.get(rtype), prior, config);
        if let Some(id) = object_id(rtype, config) {
            planned.insert("id".into(), Value::String(id));
        }
        planned
    }
    fn configure(&self, config: &Map, _ctx: &ProviderContext) -> Result<Arc<dyn Provider>, Diagnostic> {
        let url = match config.get("url").and_then(Value::as_str) {
            Some(u) => u.to_string(),
            None => {
                return Err(provider_error(
                    "P6300",
                    "the postgres provider has no connection URL",
                    "Set `url` in the `provider postgres` block, e.g. `url = env(\"PG_URL\")` or a sensitive param.",
                ))
            }
        };
        let (pg, url_tls) = parse_url(&url)?;
        let tls = tls_options(config, url_tls)?;
        let list_unmanaged = config.get("list_unmanaged").and_then(Value::as_bool).unwrap_or(true);
        let default_db = pg.get_dbname().or(pg.get_user()).unwrap_or("postgres").to_string();
        Ok(Arc::new(PgProvider {
            schema: self.schema.clone(),
            list_unmanaged,
            inner: Arc::new(Inner { config: pg, tls, default_db, idle: Mutex::new(HashMap::new()) }),
        }))
    }
}

/// The TLS settings: the block's `sslmode`/`sslrootcert` over the URL's.
fn tls_options(config: &Map, url: pgtls::UrlTls) -> Result<TlsOptions, Diagnostic> {
    let mut tls = url.options();
    if let Some(mode) = s(config, "sslmode") {
        tls.mode = pgtls::SslMode::parse(mode).ok_or_else(|| {
            provider_error("P6300", format!("the postgres provider's `sslmode` is `{mode}`"), format!("Set `sslmode` to one of {}.", pgtls::SslMode::NAMES))
        })?;
    }
    if let Some(root) = s(config, "sslrootcert") {
        if root.is_empty() {
            return Err(provider_error(
                "P6300",
                "the postgres provider's `sslrootcert` is empty",
                "Set `sslrootcert` to the path of a PEM file of CA certificates, or remove it.",
            ));
        }
        tls.root_cert = Some(pgtls::RootCert::parse(root));
    }
    Ok(tls)
}

/// TLS could not be set up or the handshake failed (not retried: the same
/// certificate fails the same way).
fn tls_diag(tls: &TlsOptions, e: &ConnectError) -> Diagnostic {
    let root = tls.root_cert.as_ref().map(|r| format!(", sslrootcert {}", r.describe())).unwrap_or_default();
    provider_error(
        "P6308",
        format!("TLS to PostgreSQL failed (sslmode {}{root}): {e}", tls.mode.as_str()),
        "Check that the server has ssl = on, that `sslrootcert` is the CA that signed the server's certificate and, for verify-full, that the certificate names the host in `url`; sslmode require encrypts without verifying the certificate.",
    )
}

/// Parses the connection URL; the diagnostic never repeats it (it may hold a password).
fn parse_url(url: &str) -> Result<(::postgres::Config, pgtls::UrlTls), Diagnostic> {
    let bad = |why: &str| {
        provider_error(
            "P6300",
            format!("the postgres provider's `url` is not a valid connection URL ({why})"),
            "Give it as postgres://user:password@host:port/database (percent-encode special characters in the password).",
        )
    };
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(bad("it must start with postgres:// or postgresql://"));
    }
    let (url, tls) = pgtls::split_url(url).map_err(|e| bad(&e))?;
    let mut config: ::postgres::Config = url.parse().map_err(|_| bad("it does not parse"))?;
    if config.get_hosts().is_empty() {
        return Err(bad("it names no host"));
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    Ok((config, tls))
}

/// A double-quoted identifier with embedded quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A single-quoted literal with embedded quotes doubled (an `E''` string
/// when it holds backslashes, which are doubled too).
pub fn quote_literal(text: &str) -> String {
    let body = text.replace('\'', "''");
    if text.contains('\\') {
        format!("E'{}'", body.replace('\\', "\\\\"))
    } else {
        format!("'{body}'")
    }
}

/// A failure inside a blocking call: a client error (mapped to a diagnostic
/// at the end, after retries) or a diagnostic already.
enum Fail {
    Pg(::postgres::Error),
    Diag(Diagnostic),
}

impl From<::postgres::Error> for Fail {
    fn from(e: ::postgres::Error) -> Self {
        Fail::Pg(e)
    }
}
impl From<Diagnostic> for Fail {
    fn from(d: Diagnostic) -> Self {
        Fail::Diag(d)
    }
}
impl From<Fail> for Diagnostic {
    fn from(f: Fail) -> Self {
        match f {
            Fail::Pg(e) => pg_diag(&e),
            Fail::Diag(d) => d,
        }
    }
}

fn sqlstate(e: &::postgres::Error) -> Option<&str> {
    e.as_db_error().map(|d| d.code().code())
}

fn is_missing_database(f: &Fail) -> bool {
    matches!(f, Fail::Pg(e) if sqlstate(e) == Some("3D000"))
}

/// Errors worth retrying at once, inside the call (catalog races).
fn transient(e: &::postgres::Error) -> bool {
    match e.as_db_error() {
        Some(db) => matches!(db.code().code(), "40001" | "40P01") || (db.code().code() == "XX000" && db.message().contains("concurrently")),
        None => false,
    }
}

fn pg_diag(e: &::postgres::Error) -> Diagnostic {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let msg = db.message();
        return match code {
            "42501" => provider_error(
                "P6304",
                format!("permission denied: {msg}"),
                "The role in the provider's `url` lacks the privilege; connect as a superuser or a role with CREATEROLE/CREATEDB and the needed grants.",
            ),
            "2BP01" => provider_error(
                "P6305",
                format!("the object is still in use: {msg}"),
                "Other objects depend on it (owned objects, privileges); remove or reassign them first, e.g. with REASSIGN OWNED / DROP OWNED.",
            ),
            "3D000" => provider_error(
                "P6306",
                format!("database missing: {msg}"),
                "Create the database first (a `postgres.database` resource referenced by this one orders it).",
            ),
            "58P01" | "0A000" => provider_error(
                "P6307",
                format!("not available on this server: {msg}"),
                "Install the extension's files on the server (for contrib extensions, the postgresql-contrib package) or pick a version it has.",
            ),
            c if c.starts_with("08") || c.starts_with("57P") || matches!(c, "53300" | "55006" | "40001" | "40P01") => provider_error(
                "P6301",
                format!("PostgreSQL is unavailable: {msg} (SQLSTATE {c})"),
                "This is usually transient (too many connections, a restart, a lock): retry the run.",
            )
            .retryable(),
            c => provider_error(
                "P6302",
                format!("PostgreSQL refused the statement: {msg} (SQLSTATE {c})"),
                "Check the resource's attributes against what the server allows (names, owners, encodings, versions).",
            ),
        };
    }
    // No server error: connection refused/reset, timeouts, a closed connection.
    let cause = std::error::Error::source(e).map(|s| format!(": {s}")).unwrap_or_default();
    provider_error(
        "P6301",
        format!("cannot talk to PostgreSQL: {e}{cause}"),
        "Check that the server in the provider's `url` is running and reachable; the failure is retried as transient.",
    )
    .retryable()
}

struct Inner {
    config: ::postgres::Config,
    tls: TlsOptions,
    default_db: String,
    idle: Mutex<HashMap<String, Vec<::postgres::Client>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let idle = std::mem::take(self.idle.get_mut().unwrap_or_else(|e| e.into_inner()));
        if !idle.is_empty() {
            // Closing a client blocks on its own runtime: never on a runtime thread.
            let _ = std::thread::spawn(move || drop(idle)).join();
        }
    }
}

impl Inner {
    fn take(&self, db: &str) -> Option<::postgres::Client> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(db)?;
        while let Some(c) = list.pop() {
            if !c.is_closed() {
                return Some(c);
            }
        }
        None
    }
    fn give(&self, db: &str, client: ::postgres::Client) {
        if client.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(db.to_string()).or_default();
        if list.len() < MAX_IDLE_PER_DB {
            list.push(client);
        }
    }
    fn forget(&self, db: &str) -> Vec<::postgres::Client> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.remove(db).unwrap_or_default()
    }
    fn connect(&self, db: &str) -> Result<::postgres::Client, Fail> {
        let mut config = self.config.clone();
        config.dbname(db);
        pgtls::connect(&config, &self.tls).map_err(|e| match e {
            ConnectError::Pg(e) => Fail::Pg(e),
            e => Fail::Diag(tls_diag(&self.tls, &e)),
        })
    }
    /// Runs `f` with a connection to `db`, retrying catalog races and stale
    /// pooled connections a few times.
    fn run<T>(&self, db: &str, mut f: impl FnMut(&mut ::postgres::Client) -> Result<T, Fail>) -> Result<T, Fail> {
        let mut attempt = 0u32;
        loop {
            let (mut client, pooled) = match self.take(db) {
                Some(c) => (c, true),
                None => (self.connect(db)?, false),
            };
            match f(&mut client) {
                Ok(v) => {
                    self.give(db, client);
                    return Ok(v);
                }
                Err(Fail::Pg(e)) => {
                    let stale = pooled && client.is_closed() && e.as_db_error().is_none();
                    self.give(db, client);
                    if (stale || transient(&e)) && attempt < 3 {
                        attempt += 1;
                        std::thread::sleep(Duration::from_millis(20 * u64::from(attempt)));
                        continue;
                    }
                    return Err(Fail::Pg(e));
                }
                Err(other) => {
                    self.give(db, client);
                    return Err(other);
                }
            }
        }
    }
}

struct PgProvider {
    schema: ProviderSchema,
    list_unmanaged: bool,
    inner: Arc<Inner>,
}

impl PgProvider {
    /// Runs blocking client work on a blocking thread.
    async fn blocking<T: Send + 'static>(&self, f: impl FnOnce(&Inner) -> Result<T, Fail> + Send + 'static) -> Result<T, Fail> {
        let inner = self.inner.clone();
        match tokio::task::spawn_blocking(move || f(&inner)).await {
            Ok(r) => r,
            Err(e) => Err(Fail::Diag(provider_error(
                "P6309",
                format!("the PostgreSQL call did not finish: {e}"),
                "This is a bug in the postgres provider; please report it.",
            ))),
        }
    }
}

fn invalid(what: String) -> Diagnostic {
    provider_error("P6303", what, "Fix the resource's attributes; see docs/providers/postgres.md for what each type accepts.")
}

fn need<'a>(m: &'a Map, k: &str, rtype: &str) -> Result<&'a str, Diagnostic> {
    s(m, k).filter(|v| !v.is_empty()).ok_or_else(|| invalid(format!("`postgres.{rtype}` needs a non-empty `{k}`")))
}

// ---------------------------------------------------------------- roles

struct RoleRow {
    login: bool,
    superuser: bool,
    createdb: bool,
    createrole: bool,
    connection_limit: i64,
    /// The roles it is a member of (sorted).
    member_of: BTreeSet<String>,
}

/// The role memberships asked for: order-insensitive, duplicates dropped.
fn normalise_roles(given: &[String]) -> BTreeSet<String> {
    given.iter().cloned().collect()
}

/// The roles `name` is a member of, from `pg_auth_members` (PostgreSQL 16
/// may hold one row per grantor, hence DISTINCT).
fn read_memberships<C: ::postgres::GenericClient>(c: &mut C, name: &str) -> Result<BTreeSet<String>, Fail> {
    let rows = c.query(
        "SELECT DISTINCT r.rolname::text FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = $1",
        &[&name],
    )?;
    Ok(rows.into_iter().map(|r| r.get(0)).collect())
}

fn read_role<C: ::postgres::GenericClient>(c: &mut C, name: &str) -> Result<Option<RoleRow>, Fail> {
    let row = c.query_opt("SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolconnlimit FROM pg_roles WHERE rolname = $1", &[&name])?;
    let Some(r) = row else { return Ok(None) };
    Ok(Some(RoleRow {
        login: r.get(0),
        superuser: r.get(1),
        createdb: r.get(2),
        createrole: r.get(3),
        connection_limit: i64::from(r.get::<_, i32>(4)),
        member_of: read_memberships(c, name)?,
    }))
}

/// Roles this process created: a retried create (the first attempt's
/// answer lost) finds its own role, which is not someone else's.
static CREATED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

fn note_created(name: &str) {
    if let Ok(mut c) = CREATED.lock() {
        c.insert(name.to_string());
    }
}

fn created_here(name: &str) -> bool {
    CREATED.lock().map(|c| c.contains(name)).unwrap_or(false)
}

/// Creating a role that already exists would take over someone else's.
fn already_exists(name: &str) -> Diagnostic {
    provider_error(
        "P6325",
        format!("role `{name}` already exists"),
        format!(
            "Role `{name}` exists on the server but not in this state: it is managed elsewhere (another project, by hand), and Plinth does not take it over. Choose another `name`, or, to manage that role from here, drop it (`DROP ROLE {}`) and apply again, or remove the resource; a way to import existing objects will come later.",
            quote_ident(name)
        ),
    )
}

/// Whether the role's stored password (`pg_authid.rolpassword`) is made
/// from `password`; None when it cannot be told (the provider's role may
/// not read `pg_authid`, or the format is unknown).
fn password_matches<C: ::postgres::GenericClient>(c: &mut C, name: &str, password: &str) -> Option<bool> {
    let row = c.query_opt("SELECT rolpassword FROM pg_authid WHERE rolname = $1", &[&name]).ok()??;
    match row.get::<_, Option<String>>(0) {
        None => Some(false),
        Some(stored) => scram::verifies(password, name, &stored),
    }
}

/// `base` is the configuration or the recorded state: its `roles` list
/// stands when it names the same set as the server holds (order-insensitive).
fn role_observed(base: Map, name: &str, row: &RoleRow) -> Map {
    let mut o = base;
    let recorded = strings(&o, "roles").unwrap_or_default();
    let roles = if normalise_roles(&recorded) == row.member_of { recorded } else { row.member_of.iter().cloned().collect() };
    o.insert("roles".into(), Value::List(roles.into_iter().map(Value::String).collect()));
    o.insert("name".into(), Value::str(name));
    o.insert("login".into(), Value::Bool(row.login));
    o.insert("superuser".into(), Value::Bool(row.superuser));
    o.insert("createdb".into(), Value::Bool(row.createdb));
    o.insert("createrole".into(), Value::Bool(row.createrole));
    o.insert("connection_limit".into(), Value::Int(row.connection_limit));
    o.insert("id".into(), Value::str(name));
    o
}

/// `WITH …` options of CREATE/ALTER ROLE. The password goes as a
/// SCRAM-SHA-256 verifier computed here, never as its text: statements can
/// land in the server's log.
fn role_options(cfg: &Map, prior: Option<&Map>) -> String {
    let yes = |k: &str, on: &'static str, off: &'static str| if b(cfg, k) { on } else { off };
    let mut sql = format!(
        "{} {} {} {} CONNECTION LIMIT {}",
        yes("login", "LOGIN", "NOLOGIN"),
        yes("superuser", "SUPERUSER", "NOSUPERUSER"),
        yes("createdb", "CREATEDB", "NOCREATEDB"),
        yes("createrole", "CREATEROLE", "NOCREATEROLE"),
        n(cfg, "connection_limit", -1),
    );
    match s(cfg, "password") {
        Some(pw) => {
            sql.push_str(" PASSWORD ");
            sql.push_str(&quote_literal(&scram::verifier(pw)));
        }
        None if prior.and_then(|p| s(p, "password")).is_some() => sql.push_str(" PASSWORD NULL"),
        None => {}
    }
    sql
}

/// Creates or alters the role and makes its memberships exactly `roles`
/// (GRANT the missing ones, REVOKE the others), in one transaction.
fn write_role(c: &mut ::postgres::Client, cfg: &Map, prior: Option<&Map>) -> Result<Map, Fail> {
    let name = need(cfg, "name", "role")?;
    let wanted = normalise_roles(&strings(cfg, "roles").unwrap_or_default());
    if wanted.iter().any(String::is_empty) {
        return Err(invalid("`roles` of `postgres.role` holds an empty role name".to_string()).into());
    }
    let mut tx = c.transaction()?;
    let exists = tx.query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name])?.is_some();
    if exists && prior.is_none() && !created_here(name) {
        return Err(already_exists(name).into());
    }
    let verb = if exists { "ALTER" } else { "CREATE" };
    tx.batch_execute(&format!("{verb} ROLE {} WITH {}", quote_ident(name), role_options(cfg, prior)))?;
    let held = read_memberships(&mut tx, name)?;
    for role in held.difference(&wanted) {
        tx.batch_execute(&format!("REVOKE {} FROM {}", quote_ident(role), quote_ident(name)))?;
    }
    for role in wanted.difference(&held) {
        tx.batch_execute(&format!("GRANT {} TO {}", quote_ident(role), quote_ident(name)))?;
    }
    let row = read_role(&mut tx, name)?.ok_or_else(|| invalid(format!("role {name:?} vanished right after it was written")))?;
    if !exists {
        // Before the commit: if the answer to it is lost, a retry of this
        // create finds the role and knows it is ours.
        note_created(name);
    }
    tx.commit()?;
    Ok(role_observed(cfg.clone(), name, &row))
}

// ------------------------------------------------------------ databases

struct DbRow {
    owner: String,
    encoding: String,
    connection_limit: i64,
}

fn read_database(c: &mut ::postgres::Client, name: &str) -> Result<Option<DbRow>, Fail> {
    let row =
        c.query_opt("SELECT pg_get_userbyid(datdba)::text, pg_encoding_to_char(encoding)::text, datconnlimit FROM pg_database WHERE datname = $1", &[&name])?;
    Ok(row.map(|r| DbRow { owner: r.get(0), encoding: r.get(1), connection_limit: i64::from(r.get::<_, i32>(2)) }))
}

fn same_encoding(a: &str, b: &str) -> bool {
    let norm = |x: &str| x.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_uppercase();
    norm(a) == norm(b)
}

fn database_observed(base: Map, name: &str, row: &DbRow) -> Map {
    let mut o = base;
    o.insert("name".into(), Value::str(name));
    // An owner left to the server's default is not tracked: reporting it
    // would make `--refresh` plan an update that changes nothing, forever.
    if s(&o, "owner").is_some() {
        o.insert("owner".into(), Value::str(row.owner.clone()));
    }
    let recorded = s(&o, "encoding").map(str::to_string);
    if !recorded.as_deref().is_some_and(|r| same_encoding(r, &row.encoding)) {
        o.insert("encoding".into(), Value::str(row.encoding.clone()));
    }
    o.insert("connection_limit".into(), Value::Int(row.connection_limit));
    o.insert("id".into(), Value::str(name));
    o
}

fn write_database(c: &mut ::postgres::Client, cfg: &Map) -> Result<Map, Fail> {
    let name = need(cfg, "name", "database")?;
    let limit = n(cfg, "connection_limit", -1);
    let owner = s(cfg, "owner").filter(|o| !o.is_empty());
    match read_database(c, name)? {
        None => {
            let mut sql = format!("CREATE DATABASE {}", quote_ident(name));
            if let Some(owner) = owner {
                sql.push_str(&format!(" OWNER {}", quote_ident(owner)));
            }
            sql.push_str(&format!(
                " ENCODING {} TEMPLATE {} CONNECTION LIMIT {limit}",
                quote_literal(s(cfg, "encoding").unwrap_or("UTF8")),
                quote_ident(s(cfg, "template").unwrap_or("template0"))
            ));
            c.batch_execute(&sql)?;
        }
        Some(row) => {
            if let Some(owner) = owner.filter(|o| *o != row.owner) {
                c.batch_execute(&format!("ALTER DATABASE {} OWNER TO {}", quote_ident(name), quote_ident(owner)))?;
            }
            if row.connection_limit != limit {
                c.batch_execute(&format!("ALTER DATABASE {} WITH CONNECTION LIMIT {limit}", quote_ident(name)))?;
            }
        }
    }
    let row = read_database(c, name)?.ok_or_else(|| invalid(format!("database {name:?} vanished right after it was written")))?;
    Ok(database_observed(cfg.clone(), name, &row))
}

// --------------------------------------------------------------- grants

const DATABASE_PRIVILEGES: &[&str] = &["CONNECT", "CREATE", "TEMPORARY"];
const SCHEMA_PRIVILEGES: &[&str] = &["CREATE", "USAGE"];
const TABLE_PRIVILEGES: &[&str] = &["DELETE", "INSERT", "REFERENCES", "SELECT", "TRIGGER", "TRUNCATE", "UPDATE"];

#[derive(Clone)]
struct GrantSpec {
    role: String,
    database: String,
    object_type: String,
    schema: Option<String>,
    /// Normalised: upper case, `TEMP` → `TEMPORARY`, `ALL` expanded, sorted.
    privileges: BTreeSet<String>,
    objects: Vec<String>,
}

fn allowed(object_type: &str) -> &'static [&'static str] {
    match object_type {
        "database" => DATABASE_PRIVILEGES,
        "schema" => SCHEMA_PRIVILEGES,
        _ => TABLE_PRIVILEGES,
    }
}

fn normalise_privileges(object_type: &str, given: &[String]) -> Result<BTreeSet<String>, Diagnostic> {
    let all = allowed(object_type);
    let mut out = BTreeSet::new();
    for p in given {
        let up = p.trim().to_ascii_uppercase();
        let up = match up.as_str() {
            "TEMP" => "TEMPORARY".to_string(),
            "ALL PRIVILEGES" => "ALL".to_string(),
            _ => up,
        };
        if up == "ALL" {
            out.extend(all.iter().map(|s| s.to_string()));
        } else if all.contains(&up.as_str()) {
            out.insert(up);
        } else {
            return Err(invalid(format!("{p:?} is not a privilege on a {object_type}; use one of {} or ALL", all.join(", "))));
        }
    }
    Ok(out)
}

fn grant_spec(cfg: &Map) -> Result<GrantSpec, Diagnostic> {
    let role = need(cfg, "role", "grant")?.to_string();
    let database = need(cfg, "database", "grant")?.to_string();
    let object_type = need(cfg, "object_type", "grant")?.to_string();
    if !matches!(object_type.as_str(), "database" | "schema" | "table") {
        return Err(invalid(format!("`object_type` {object_type:?} is not one of \"database\", \"schema\", \"table\"")));
    }
    let schema = s(cfg, "schema").filter(|v| !v.is_empty()).map(str::to_string);
    if object_type != "database" && schema.is_none() {
        return Err(invalid(format!("a grant on a {object_type} needs `schema`")));
    }
    let privileges = normalise_privileges(&object_type, &strings(cfg, "privileges").unwrap_or_default())?;
    if privileges.is_empty() {
        return Err(invalid("`privileges` is empty; list at least one privilege".to_string()));
    }
    let mut objects = strings(cfg, "objects").unwrap_or_default();
    objects.sort();
    objects.dedup();
    if object_type != "table" && !objects.is_empty() {
        return Err(invalid("`objects` applies to grants on tables only".to_string()));
    }
    Ok(GrantSpec { role, database, object_type, schema, privileges, objects })
}

impl GrantSpec {
    fn is_public(&self) -> bool {
        self.role.eq_ignore_ascii_case("public")
    }
    fn grantee(&self) -> String {
        if self.is_public() {
            "PUBLIC".into()
        } else {
            quote_ident(&self.role)
        }
    }
    /// The database to connect to: schema and table privileges live there.
    fn connect_db<'a>(&'a self, inner: &'a Inner) -> &'a str {
        if self.object_type == "database" {
            &inner.default_db
        } else {
            &self.database
        }
    }
    fn target(&self) -> String {
        let schema = quote_ident(self.schema.as_deref().unwrap_or("public"));
        match self.object_type.as_str() {
            "database" => format!("DATABASE {}", quote_ident(&self.database)),
            "schema" => format!("SCHEMA {schema}"),
            _ if self.objects.is_empty() => format!("ALL TABLES IN SCHEMA {schema}"),
            _ => format!("TABLE {}", self.objects.iter().map(|o| format!("{schema}.{}", quote_ident(o))).collect::<Vec<_>>().join(", ")),
        }
    }
    fn statement(&self, verb: &str, privileges: &BTreeSet<String>) -> String {
        let list = privileges.iter().cloned().collect::<Vec<_>>().join(", ");
        let (prep, whom) = if verb == "GRANT" { ("TO", self.grantee()) } else { ("FROM", self.grantee()) };
        format!("{verb} {list} ON {} {prep} {whom}", self.target())
    }
}

/// The privileges the grantee holds on every targeted object, or None when
/// the role, database or schema is gone.
fn read_grant<C: ::postgres::GenericClient>(c: &mut C, spec: &GrantSpec) -> Result<Option<BTreeSet<String>>, Fail> {
    let oid: u32 = if spec.is_public() {
        0
    } else {
        match c.query_opt("SELECT oid FROM pg_roles WHERE rolname = $1", &[&spec.role])? {
            Some(r) => r.get(0),
            None => return Ok(None),
        }
    };
    let keep = |p: String| allowed(&spec.object_type).contains(&p.as_str()).then_some(p);
    // An owner holds every privilege on its object by owning it (and its
    // ACL shows them all once anyone grants anything): only the asked-for
    // ones are this grant's, or it would differ on every read.
    let owned = |held: BTreeSet<String>, owner: u32| -> BTreeSet<String> {
        if !spec.is_public() && owner == oid {
            held.intersection(&spec.privileges).cloned().collect()
        } else {
            held
        }
    };
    match spec.object_type.as_str() {
        "database" => {
            let Some(owner) = c.query_opt("SELECT datdba FROM pg_database WHERE datname = $1", &[&spec.database])? else {
                return Ok(None);
            };
            let owner: u32 = owner.get(0);
            let rows = c.query(
                "SELECT a.privilege_type::text FROM pg_database d CROSS JOIN LATERAL aclexplode(COALESCE(d.datacl, acldefault('d', d.datdba))) a \
                 WHERE d.datname = $1 AND a.grantee = $2",
                &[&spec.database, &oid],
            )?;
            Ok(Some(owned(rows.into_iter().filter_map(|r| keep(r.get(0))).collect(), owner)))
        }
        "schema" => {
            let schema = spec.schema.clone().unwrap_or_default();
            let Some(owner) = c.query_opt("SELECT nspowner FROM pg_namespace WHERE nspname = $1", &[&schema])? else {
                return Ok(None);
            };
            let owner: u32 = owner.get(0);
            let rows = c.query(
                "SELECT a.privilege_type::text FROM pg_namespace n CROSS JOIN LATERAL aclexplode(COALESCE(n.nspacl, acldefault('n', n.nspowner))) a \
                 WHERE n.nspname = $1 AND a.grantee = $2",
                &[&schema, &oid],
            )?;
            Ok(Some(owned(rows.into_iter().filter_map(|r| keep(r.get(0))).collect(), owner)))
        }
        _ => {
            let schema = spec.schema.clone().unwrap_or_default();
            if c.query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema])?.is_none() {
                return Ok(None);
            }
            let owners: HashMap<String, u32> = c
                .query(
                    "SELECT c.relname::text, c.relowner FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
                    &[&schema],
                )?
                .into_iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            let tables: BTreeSet<String> = owners.keys().cloned().collect();
            let rows = c.query(
                "SELECT c.relname::text, a.privilege_type::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 CROSS JOIN LATERAL aclexplode(COALESCE(c.relacl, acldefault('r', c.relowner))) a \
                 WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.grantee = $2",
                &[&schema, &oid],
            )?;
            let mut held: HashMap<String, BTreeSet<String>> = HashMap::new();
            for r in rows {
                if let Some(p) = keep(r.get(1)) {
                    held.entry(r.get(0)).or_default().insert(p);
                }
            }
            let targets: Vec<String> = if spec.objects.is_empty() { tables.into_iter().collect() } else { spec.objects.clone() };
            if targets.is_empty() {
                // Nothing to hold privileges on: what was asked is all there is.
                return Ok(Some(spec.privileges.clone()));
            }
            let mut common: Option<BTreeSet<String>> = None;
            for t in &targets {
                let have = held.get(t).cloned().unwrap_or_default();
                let have = match owners.get(t) {
                    Some(owner) => owned(have, *owner),
                    None => have,
                };
                common = Some(match common {
                    None => have,
                    Some(c) => c.intersection(&have).cloned().collect(),
                });
            }
            Ok(common)
        }
    }
}

fn grant_observed(base: Map, spec: &GrantSpec, held: &BTreeSet<String>, recorded: &Map) -> Map {
    let mut o = base;
    // Order-insensitive: the recorded list stands when it means the same set.
    let recorded_list = strings(recorded, "privileges").unwrap_or_default();
    let same = normalise_privileges(&spec.object_type, &recorded_list).is_ok_and(|set| &set == held);
    let value =
        if same { Value::List(recorded_list.into_iter().map(Value::String).collect()) } else { Value::List(held.iter().cloned().map(Value::String).collect()) };
    o.insert("privileges".into(), value);
    if let Some(id) = object_id("grant", &o) {
        o.insert("id".into(), Value::String(id));
    }
    o
}

// ----------------------------------------------------------- extensions

fn read_extension(c: &mut ::postgres::Client, name: &str) -> Result<Option<(String, String)>, Fail> {
    let row = c.query_opt(
        "SELECT e.extversion::text, n.nspname::text FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = $1",
        &[&name],
    )?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

fn extension_observed(base: Map, version: String, schema: String) -> Map {
    let mut o = base;
    // Left unset, version and schema are the server's choice: not tracked.
    if s(&o, "version").is_some() {
        o.insert("version".into(), Value::String(version));
    }
    if s(&o, "schema").is_some() {
        o.insert("schema".into(), Value::String(schema));
    }
    if let Some(id) = object_id("extension", &o) {
        o.insert("id".into(), Value::String(id));
    }
    o
}

fn write_extension(c: &mut ::postgres::Client, cfg: &Map) -> Result<Map, Fail> {
    let name = need(cfg, "name", "extension")?;
    let schema = s(cfg, "schema").filter(|v| !v.is_empty());
    let version = s(cfg, "version").filter(|v| !v.is_empty());
    match read_extension(c, name)? {
        None => {
            let mut sql = format!("CREATE EXTENSION IF NOT EXISTS {}", quote_ident(name));
            if let Some(schema) = schema {
                sql.push_str(&format!(" SCHEMA {}", quote_ident(schema)));
            }
            if let Some(version) = version {
                sql.push_str(&format!(" VERSION {}", quote_literal(version)));
            }
            c.batch_execute(&sql)?;
        }
        Some((have_version, have_schema)) => {
            if let Some(version) = version.filter(|v| *v != have_version) {
                c.batch_execute(&format!("ALTER EXTENSION {} UPDATE TO {}", quote_ident(name), quote_literal(version)))?;
            }
            if let Some(schema) = schema.filter(|v| *v != have_schema) {
                c.batch_execute(&format!("ALTER EXTENSION {} SET SCHEMA {}", quote_ident(name), quote_ident(schema)))?;
            }
        }
    }
    let (v, sc) = read_extension(c, name)?.ok_or_else(|| invalid(format!("extension {name:?} vanished right after it was created")))?;
    Ok(extension_observed(cfg.clone(), v, sc))
}

// ------------------------------------------------------------- provider

fn unknown_type(rtype: &str) -> Diagnostic {
    invalid(format!("the postgres provider has no resource type `{rtype}`"))
}

impl PgProvider {
    async fn write(&self, rtype: &str, cfg: Map, prior: Option<Map>) -> Result<Observed, Diagnostic> {
        match rtype {
            "role" => Ok(self.blocking(move |i| i.run(&i.default_db.clone(), |c| write_role(c, &cfg, prior.as_ref()))).await?),
            "database" => Ok(self.blocking(move |i| i.run(&i.default_db.clone(), |c| write_database(c, &cfg))).await?),
            "extension" => {
                let db = need(&cfg, "database", "extension")?.to_string();
                Ok(self.blocking(move |i| i.run(&db, |c| write_extension(c, &cfg))).await?)
            }
            "grant" => {
                let spec = grant_spec(&cfg)?;
                let old = match &prior {
                    Some(p) => grant_spec(p).map(|o| o.privileges).unwrap_or_default(),
                    None => BTreeSet::new(),
                };
                Ok(self
                    .blocking(move |i| {
                        let db = spec.connect_db(i).to_string();
                        i.run(&db, |c| {
                            let mut tx = c.transaction()?;
                            let removed: BTreeSet<String> = old.difference(&spec.privileges).cloned().collect();
                            if !removed.is_empty() {
                                tx.batch_execute(&spec.statement("REVOKE", &removed))?;
                            }
                            tx.batch_execute(&spec.statement("GRANT", &spec.privileges))?;
                            let held = read_grant(&mut tx, &spec)?.unwrap_or_default();
                            tx.commit()?;
                            Ok(grant_observed(cfg.clone(), &spec, &held, &cfg))
                        })
                    })
                    .await?)
            }
            other => Err(unknown_type(other)),
        }
    }
}

#[async_trait]
impl Provider for PgProvider {
    fn schema_of(&self, rtype: &str) -> Option<&ResourceSchema> {
        self.schema.resources.get(rtype)
    }

    async fn read(&self, req: ReadRequest) -> Result<Option<Observed>, Diagnostic> {
        let inputs = req.inputs;
        let base = req.prior.clone().unwrap_or_else(|| inputs.clone());
        match req.object.rtype.as_str() {
            "role" => {
                let name = need(&inputs, "name", "role")?.to_string();
                let recorded = req.prior.as_ref().and_then(|p| p.get("password")).or_else(|| inputs.get("password")).cloned();
                let password = recorded.as_ref().and_then(Value::as_str).map(str::to_string);
                let row = self
                    .blocking(move |i| {
                        i.run(&i.default_db.clone(), |c| {
                            let Some(row) = read_role(c, &name)? else { return Ok(None) };
                            let matches = password.as_deref().and_then(|pw| password_matches(c, &name, pw));
                            Ok(Some((name.clone(), row, matches)))
                        })
                    })
                    .await?;
                Ok(row.map(|(name, row, matches)| {
                    let mut o = role_observed(base, &name, &row);
                    // The password cannot be read back: it is verified
                    // against the stored verifier where the provider may
                    // read it; one that no longer verifies was changed
                    // outside Plinth (shown as null, so a refresh plan
                    // sets it again). Otherwise what was recorded stands.
                    match (recorded, matches) {
                        (Some(_), Some(false)) => o.insert("password".into(), Value::Null),
                        (Some(pw), _) => o.insert("password".into(), pw),
                        (None, _) => o.shift_remove("password"),
                    };
                    o
                }))
            }
            "database" => {
                let name = need(&inputs, "name", "database")?.to_string();
                let row = self.blocking(move |i| i.run(&i.default_db.clone(), |c| read_database(c, &name).map(|r| r.map(|r| (name.clone(), r))))).await?;
                Ok(row.map(|(name, row)| database_observed(base, &name, &row)))
            }
            "extension" => {
                let name = need(&inputs, "name", "extension")?.to_string();
                let db = need(&inputs, "database", "extension")?.to_string();
                match self.blocking(move |i| i.run(&db, |c| read_extension(c, &name))).await {
                    Ok(found) => Ok(found.map(|(v, sc)| extension_observed(base, v, sc))),
                    Err(f) if is_missing_database(&f) => Ok(None),
                    Err(f) => Err(f.into()),
                }
            }
            "grant" => {
                let spec = grant_spec(&inputs)?;
                let s2 = spec.clone();
                let held = match self.blocking(move |i| i.run(s2.connect_db(i), |c| read_grant(c, &s2))).await {
                    Ok(h) => h,
                    Err(f) if is_missing_database(&f) => None,
                    Err(f) => return Err(f.into()),
                };
                let Some(held) = held else { return Ok(None) };
                if req.prior.is_none() && !spec.privileges.is_subset(&held) {
                    // Reconciling an interrupted create: the GRANT did not happen.
                    return Ok(None);
                }
                Ok(Some(grant_observed(base.clone(), &spec, &held, &base)))
            }
            other => Err(unknown_type(other)),
        }
    }

    async fn create(&self, req: CreateRequest) -> Result<Observed, Diagnostic> {
        self.write(&req.object.rtype, req.config, None).await
    }

    async fn update(&self, req: UpdateRequest) -> Result<Observed, Diagnostic> {
        self.write(&req.object.rtype, req.config, Some(req.prior)).await
    }

    async fn delete(&self, req: DeleteRequest) -> Result<(), Diagnostic> {
        let prior = req.prior;
        match req.object.rtype.as_str() {
            "role" => {
                let name = need(&prior, "name", "role")?.to_string();
                Ok(self
                    .blocking(move |i| i.run(&i.default_db.clone(), |c| Ok(c.batch_execute(&format!("DROP ROLE IF EXISTS {}", quote_ident(&name)))?)))
                    .await?)
            }
            "database" => {
                let name = need(&prior, "name", "database")?.to_string();
                Ok(self
                    .blocking(move |i| {
                        drop(i.forget(&name));
                        i.run(&i.default_db.clone(), |c| Ok(c.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(&name)))?))
                    })
                    .await?)
            }
            "extension" => {
                let name = need(&prior, "name", "extension")?.to_string();
                let db = need(&prior, "database", "extension")?.to_string();
                match self.blocking(move |i| i.run(&db, |c| Ok(c.batch_execute(&format!("DROP EXTENSION IF EXISTS {}", quote_ident(&name)))?))).await {
                    Err(f) if !is_missing_database(&f) => Err(f.into()),
                    _ => Ok(()),
                }
            }
            "grant" => {
                let spec = grant_spec(&prior)?;
                let result = self
                    .blocking(move |i| {
                        i.run(spec.connect_db(i), |c| {
                            // Nothing to revoke when the role, database or schema is gone.
                            if read_grant(c, &spec)?.is_none() {
                                return Ok(());
                            }
                            Ok(c.batch_execute(&spec.statement("REVOKE", &spec.privileges))?)
                        })
                    })
                    .await;
                match result {
                    Err(f) if !is_missing_database(&f) => Err(f.into()),
                    _ => Ok(()),
                }
            }
            other => Err(unknown_type(other)),
        }
    }

    async fn list(&self, req: ListRequest) -> Result<Vec<String>, Diagnostic> {
        if !self.list_unmanaged || !matches!(req.rtype.as_str(), "role" | "database") {
            return Ok(vec![]);
        }
        let managed: BTreeSet<String> = req.managed.iter().filter_map(|m| s(m, "name").map(str::to_string)).collect();
        let sql = if req.rtype == "role" {
            "SELECT rolname::text FROM pg_roles WHERE rolname !~ '^pg_' AND rolname NOT IN ('postgres', current_user) ORDER BY 1"
        } else {
            "SELECT datname::text FROM pg_database WHERE NOT datistemplate AND datname NOT IN ('postgres', 'template0', 'template1', current_database()) ORDER BY 1"
        };
        let names: Vec<String> =
            self.blocking(move |i| i.run(&i.default_db.clone(), |c| Ok(c.query(sql, &[])?.into_iter().map(|r| r.get(0)).collect()))).await?;
        Ok(names.into_iter().filter(|n| !managed.contains(n)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\'b"), "E'a\\\\''b'");
    }

    #[test]
    fn url_errors_never_show_the_password() {
        let d = parse_url("postgres://u:hunter2@/db?bogus=1").unwrap_err();
        assert_eq!(d.code, "P6300");
        assert!(!format!("{} {}", d.message, d.help).contains("hunter2"));
        let d = parse_url("mysql://u:hunter2@h/db").unwrap_err();
        assert!(!format!("{} {}", d.message, d.help).contains("hunter2"));
        let d = parse_url("postgres://u:hunter2@h/db?sslmode=allow").unwrap_err();
        assert_eq!(d.code, "P6300");
        assert!(d.message.contains("sslmode `allow`") && !format!("{} {}", d.message, d.help).contains("hunter2"), "{}", d.message);
    }

    #[test]
    fn tls_settings_combine_url_and_block() {
        let (_, url) = parse_url("postgres://u@h/db?sslmode=require&sslrootcert=/a.pem").unwrap();
        let t = tls_options(&Map::default(), url.clone()).unwrap();
        assert_eq!((t.mode, t.root_cert), (pgtls::SslMode::Require, Some(pgtls::RootCert::File("/a.pem".into()))));
        let mut block = Map::default();
        block.insert("sslmode".into(), Value::str("verify-full"));
        block.insert("sslrootcert".into(), Value::str("/b.pem"));
        let t = tls_options(&block, url).unwrap();
        assert_eq!((t.mode, t.root_cert), (pgtls::SslMode::VerifyFull, Some(pgtls::RootCert::File("/b.pem".into()))));
        block.insert("sslmode".into(), Value::str("verify"));
        assert_eq!(tls_options(&block, pgtls::UrlTls::default()).unwrap_err().code, "P6300");
        let (_, url) = parse_url("postgres://u@h/db").unwrap();
        assert_eq!(tls_options(&Map::default(), url).unwrap(), TlsOptions::default());
    }

    #[test]
    fn privileges_normalise() {
        let p = normalise_privileges("database", &["temp".into(), "Connect".into()]).unwrap();
        assert_eq!(p.into_iter().collect::<Vec<_>>(), vec!["CONNECT", "TEMPORARY"]);
        assert!(normalise_privileges("schema", &["SELECT".into()]).is_err());
        assert_eq!(normalise_privileges("schema", &["ALL".into()]).unwrap().len(), 2);
    }

    #[test]
    fn roles_normalise_order_insensitively() {
        let r = normalise_roles(&["b".into(), "a".into(), "b".into()]);
        assert_eq!(r.into_iter().collect::<Vec<_>>(), vec!["a", "b"]);
    }
}
