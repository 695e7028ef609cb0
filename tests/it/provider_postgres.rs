//! The `postgres` provider against a real server started by scripts/test
//! (scripts/services/postgres.sh), which exports PLINTH_TEST_PG_URL. Object
//! names carry the pid and the time so reruns and parallel tests never
//! collide; conformance configurations turn `list_unmanaged` off because
//! other tests create roles and databases on the same server.

use crate::provider_conformance::{run as conformance, Case};
use crate::*;

fn server() -> Option<String> {
    test_server("PLINTH_TEST_PG_URL", "PostgreSQL")
}

/// A name no other run or test uses.
fn fresh(what: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("plinth_t_{what}_{}_{}", std::process::id(), nanos % 1_000_000_000)
}

fn client(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).expect("connect to the test server")
}

fn provider_block(url: &str, list_unmanaged: bool) -> String {
    format!("provider postgres {{\n  url            = \"{url}\"\n  list_unmanaged = {list_unmanaged}\n}}\n")
}

/// No environment is needed: the provider block reaches every operation,
/// reads and reconciliation included (evaluated from recorded state).
fn env(_url: &str) -> Vec<(String, String)> {
    vec![]
}

fn cmd(dir: &std::path::Path, _url: &str, args: &[&str]) -> Output {
    plinth().args(args).current_dir(dir).output().expect("run plinth")
}

#[test]
fn roles_pass_the_conformance_suite() {
    let Some(url) = server() else { return };
    let name = fresh("role");
    let config = format!(
        "{}resource postgres.role r {{\n  name             = \"{name}\"\n  login            = true\n  password         = \"it's {{V}}\"\n  connection_limit = {{V}}\n}}\n",
        provider_block(&url, false)
    );
    let (u1, n1) = (url.clone(), name.clone());
    let exists = move |v: Option<&str>| {
        let row = client(&u1).query_opt("SELECT rolcanlogin, rolconnlimit FROM pg_roles WHERE rolname = $1", &[&n1]).unwrap();
        match (row, v) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(r), Some(v)) => r.get::<_, bool>(0) && r.get::<_, i32>(1).to_string() == v,
        }
    };
    let (u2, n2) = (url.clone(), name.clone());
    let tamper = move || client(&u2).batch_execute(&format!("ALTER ROLE \"{n2}\" NOLOGIN CONNECTION LIMIT 7")).unwrap();
    conformance(&Case { name: "postgres.role", config: &config, args: vec![], env: env(&url), exists: &exists, tamper: &tamper });
}

#[test]
fn databases_pass_the_conformance_suite() {
    let Some(url) = server() else { return };
    let name = fresh("db");
    let config = format!("{}resource postgres.database d {{\n  name             = \"{name}\"\n  connection_limit = {{V}}\n}}\n", provider_block(&url, false));
    let (u1, n1) = (url.clone(), name.clone());
    let exists = move |v: Option<&str>| {
        let row = client(&u1).query_opt("SELECT datconnlimit FROM pg_database WHERE datname = $1", &[&n1]).unwrap();
        match (row, v) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(r), Some(v)) => r.get::<_, i32>(0).to_string() == v,
        }
    };
    let (u2, n2) = (url.clone(), name.clone());
    let tamper = move || client(&u2).batch_execute(&format!("ALTER DATABASE \"{n2}\" CONNECTION LIMIT 50")).unwrap();
    conformance(&Case { name: "postgres.database", config: &config, args: vec![], env: env(&url), exists: &exists, tamper: &tamper });
}

#[test]
fn a_grant_revoked_outside_plinth_is_drift_and_refresh_restores_it() {
    let Some(url) = server() else { return };
    let role = fresh("grantee");
    let db = fresh("grantdb");
    let config = format!(
        "{}resource postgres.role app {{\n  name  = \"{role}\"\n  login = true\n}}\n\
         resource postgres.database db {{\n  name  = \"{db}\"\n  owner = postgres.role.app.name\n}}\n\
         resource postgres.grant g {{\n  role        = postgres.role.app.name\n  database    = postgres.database.db.name\n  object_type = \"database\"\n  privileges  = [\"CREATE\", \"CONNECT\"]\n}}\n",
        provider_block(&url, false)
    );
    let p = project(&[("main.plinth", &config)]);
    let dir = p.path();
    let has_create = || client(&url).query_one("SELECT has_database_privilege($1, $2, 'CREATE')", &[&role, &db]).unwrap().get::<_, bool>(0);
    assert_exit(&cmd(dir, &url, &["apply", "--auto-approve"]), 0);
    assert!(has_create(), "the grant reached the server");
    let owner: String = client(&url).query_one("SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1", &[&db]).unwrap().get(0);
    assert_eq!(owner, role, "the database belongs to the role");
    assert_exit(&cmd(dir, &url, &["drift"]), 0);
    let again = cmd(dir, &url, &["apply", "--auto-approve"]);
    assert_exit(&again, 0);
    assert!(stdout(&again).contains("No changes"), "{}", stdout(&again));

    client(&url).batch_execute(&format!("REVOKE CREATE ON DATABASE \"{db}\" FROM \"{role}\"")).unwrap();
    assert!(!has_create());
    let drift = cmd(dir, &url, &["drift", "--json"]);
    assert_exit(&drift, 2);
    assert!(stdout(&drift).contains("postgres.grant.g"), "{}", stdout(&drift));
    assert_exit(&cmd(dir, &url, &["apply", "--auto-approve", "--refresh"]), 0);
    assert!(has_create(), "apply --refresh granted it again");
    assert_exit(&cmd(dir, &url, &["drift"]), 0);

    assert_exit(&cmd(dir, &url, &["destroy", "--auto-approve"]), 0);
    let c = &mut client(&url);
    assert!(c.query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role]).unwrap().is_none(), "role dropped");
    assert!(c.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&db]).unwrap().is_none(), "database dropped");
}

/// The owner of a database (and of a schema) holds every privilege by
/// owning it; a grant to the owner records what it asked for, so it
/// converges: no update on a refresh plan, no drift, and a privilege the
/// owner revoked from itself is still drift.
#[test]
fn grants_to_the_owner_converge() {
    let Some(url) = server() else { return };
    let role = fresh("owner");
    let db = fresh("ownerdb");
    let config = format!(
        "{}resource postgres.role app {{\n  name  = \"{role}\"\n  login = true\n}}\n\
         resource postgres.database db {{\n  name  = \"{db}\"\n  owner = postgres.role.app.name\n}}\n\
         resource postgres.grant g {{\n  role        = postgres.role.app.name\n  database    = postgres.database.db.name\n  object_type = \"database\"\n  privileges  = [\"CONNECT\"]\n}}\n\
         resource postgres.grant s {{\n  role        = postgres.role.app.name\n  database    = postgres.database.db.name\n  object_type = \"schema\"\n  schema      = \"public\"\n  privileges  = [\"USAGE\"]\n}}\n",
        provider_block(&url, false)
    );
    let p = project(&[("main.plinth", &config)]);
    let dir = p.path();
    assert_exit(&cmd(dir, &url, &["apply", "--auto-approve"]), 0);
    // The public schema of a new database belongs to the role too.
    client(&url).batch_execute(&format!("ALTER DATABASE \"{db}\" OWNER TO \"{role}\"")).unwrap();
    let mut db_config: postgres::Config = url.parse().expect("the test URL parses");
    let mut in_db = db_config.dbname(&db).connect(postgres::NoTls).expect("connect to the new database");
    in_db.batch_execute(&format!("ALTER SCHEMA public OWNER TO \"{role}\"")).unwrap();
    let plan = cmd(dir, &url, &["plan", "--refresh", "--detailed-exitcode"]);
    assert_exit(&plan, 0);
    assert_exit(&cmd(dir, &url, &["drift"]), 0);
    let shown = stdout(&cmd(dir, &url, &["state", "show", "postgres.grant.g", "--json"]));
    assert!(!shown.contains("TEMPORARY") && !shown.contains("CREATE"), "the owner's implicit privileges were recorded: {shown}");
    // Revoked from itself, the owner lacks it: that is drift.
    client(&url).batch_execute(&format!("REVOKE CONNECT ON DATABASE \"{db}\" FROM \"{role}\"")).unwrap();
    assert_exit(&cmd(dir, &url, &["drift"]), 2);
    assert_exit(&cmd(dir, &url, &["apply", "--refresh", "--auto-approve"]), 0);
    assert_exit(&cmd(dir, &url, &["plan", "--refresh", "--detailed-exitcode"]), 0);
    drop(in_db);
    assert_exit(&cmd(dir, &url, &["destroy", "--auto-approve"]), 0);
}

#[test]
fn an_interrupted_create_is_recorded_not_duplicated() {
    let Some(url) = server() else { return };
    let role = fresh("crash");
    let config = format!("{}resource postgres.role r {{\n  name = \"{role}\"\n}}\n", provider_block(&url, false));
    let p = project(&[("main.plinth", &config)]);
    let dir = p.path();
    let killed = plinth().args(["apply", "--auto-approve"]).env("PLINTH_FAULT", "call:1").current_dir(dir).output().unwrap();
    assert_ne!(killed.status.code(), Some(0), "the fault hook killed the run: {}", stderr(&killed));
    let exists = client(&url).query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role]).unwrap().is_some();
    assert!(exists, "the provider call ran before the kill");

    assert_exit(&cmd(dir, &url, &["apply", "--auto-approve"]), 0);
    let list = stdout(&cmd(dir, &url, &["state", "list"]));
    assert_eq!(list.lines().filter(|l| l.trim() == "postgres.role.r").count(), 1, "recorded once: {list}");
    let plan = cmd(dir, &url, &["plan", "--detailed-exitcode"]);
    assert_exit(&plan, 0);
    assert_exit(&cmd(dir, &url, &["destroy", "--auto-approve"]), 0);
    assert!(client(&url).query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role]).unwrap().is_none());
}

#[test]
fn unmanaged_roles_are_listed_as_drift() {
    let Some(url) = server() else { return };
    let managed = fresh("managed");
    let stray = fresh("stray");
    let config = format!("{}resource postgres.role r {{\n  name = \"{managed}\"\n}}\n", provider_block(&url, true));
    let p = project(&[("main.plinth", &config)]);
    let dir = p.path();
    assert_exit(&cmd(dir, &url, &["apply", "--auto-approve"]), 0);
    client(&url).batch_execute(&format!("CREATE ROLE \"{stray}\"")).unwrap();
    let drift = cmd(dir, &url, &["drift", "--json"]);
    assert_exit(&drift, 2);
    let out = stdout(&drift);
    assert!(out.contains(&stray), "the stray role is listed: {out}");
    assert!(!out.contains(&format!("\"object\":\"{managed}\"")), "the managed role is not: {out}");
    client(&url).batch_execute(&format!("DROP ROLE \"{stray}\"")).unwrap();
    assert_exit(&cmd(dir, &url, &["destroy", "--auto-approve"]), 0);
}

#[test]
fn a_thousand_roles_apply_drift_and_destroy() {
    let Some(url) = server() else { return };
    let prefix = fresh("many");
    let config = format!("{}resource postgres.role many {{\n  count = 1000\n  name  = \"{prefix}_${{count.index}}\"\n}}\n", provider_block(&url, false));
    let p = project(&[("main.plinth", &config)]);
    let dir = p.path();
    assert_exit(&cmd(dir, &url, &["apply", "--auto-approve"]), 0);
    let count =
        |c: &mut postgres::Client| -> i64 { c.query_one("SELECT count(*) FROM pg_roles WHERE rolname LIKE $1", &[&format!("{prefix}\\_%")]).unwrap().get(0) };
    assert_eq!(count(&mut client(&url)), 1000);
    let started = std::time::Instant::now();
    let drift = cmd(dir, &url, &["drift"]);
    let secs = started.elapsed().as_secs_f64();
    assert_exit(&drift, 0);
    eprintln!("postgres provider: `plinth drift` over 1,000 roles took {secs:.2} s");
    assert_exit(&cmd(dir, &url, &["destroy", "--auto-approve"]), 0);
    assert_eq!(count(&mut client(&url)), 0);
}

fn in_database(url: &str, db: &str) -> Option<postgres::Client> {
    let mut config: postgres::Config = url.parse().unwrap();
    config.dbname(db);
    config.connect(postgres::NoTls).ok()
}

#[test]
fn extensions_pass_the_conformance_suite() {
    let Some(url) = server() else { return };
    let db = fresh("extdb");
    // hstore ships with the server (contrib): version 1 of the case installs
    // 1.7, version 2 updates it in place to 1.8.
    let config = format!(
        "{}resource postgres.database d {{\n  name = \"{db}\"\n}}\n\
         resource postgres.extension e {{\n  name     = \"hstore\"\n  database = postgres.database.d.name\n  version  = \"1.${{6 + {{V}}}}\"\n}}\n",
        provider_block(&url, false)
    );
    let (u1, d1) = (url.clone(), db.clone());
    let exists = move |v: Option<&str>| {
        let Some(mut c) = in_database(&u1, &d1) else { return false };
        let row = c.query_opt("SELECT extversion FROM pg_extension WHERE extname = 'hstore'", &[]).unwrap();
        match (row, v) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(r), Some(v)) => r.get::<_, String>(0) == format!("1.{}", 6 + v.parse::<u32>().unwrap()),
        }
    };
    let (u2, d2) = (url.clone(), db.clone());
    let tamper = move || in_database(&u2, &d2).unwrap().batch_execute("DROP EXTENSION hstore").unwrap();
    conformance(&Case { name: "postgres.extension", config: &config, args: vec![], env: env(&url), exists: &exists, tamper: &tamper });
}

#[test]
fn table_grants_cover_every_table_and_drift_when_revoked() {
    let Some(url) = server() else { return };
    let role = fresh("reader");
    let db = fresh("tabledb");
    let base = format!(
        "{}resource postgres.role app {{\n  name = \"{role}\"\n}}\nresource postgres.database db {{\n  name = \"{db}\"\n}}\n",
        provider_block(&url, false)
    );
    let p = project(&[("main.plinth", &base)]);
    let dir = p.path();
    assert_exit(&cmd(dir, &url, &["apply", "--auto-approve"]), 0);
    in_database(&url, &db).unwrap().batch_execute("CREATE TABLE a (x int); CREATE TABLE \"b\"\"q\" (y int)").unwrap();
    let grant = "resource postgres.grant read {\n  role        = postgres.role.app.name\n  database    = postgres.database.db.name\n  object_type = \"table\"\n  schema      = \"public\"\n  privileges  = [\"select\", \"INSERT\"]\n}\n";
    std::fs::write(dir.join("main.plinth"), format!("{base}{grant}")).unwrap();
    assert_exit(&cmd(dir, &url, &["apply", "--auto-approve"]), 0);
    let can = |table: &str, privilege: &str| -> bool {
        in_database(&url, &db).unwrap().query_one("SELECT has_table_privilege($1, $2, $3)", &[&role, &table, &privilege]).unwrap().get(0)
    };
    assert!(can("a", "SELECT") && can("a", "INSERT") && can("\"b\"\"q\"", "SELECT"));
    assert!(!can("a", "UPDATE"));
    assert_exit(&cmd(dir, &url, &["drift"]), 0);
    in_database(&url, &db).unwrap().batch_execute(&format!("REVOKE INSERT ON \"b\"\"q\" FROM \"{role}\"")).unwrap();
    assert_exit(&cmd(dir, &url, &["drift"]), 2);
    assert_exit(&cmd(dir, &url, &["apply", "--auto-approve", "--refresh"]), 0);
    assert!(can("\"b\"\"q\"", "INSERT"));
    assert_exit(&cmd(dir, &url, &["drift"]), 0);
    assert_exit(&cmd(dir, &url, &["destroy", "--auto-approve"]), 0);
    assert!(in_database(&url, &db).is_none(), "database dropped");
}

#[test]
fn role_membership_is_granted_drifts_when_revoked_and_is_revoked_when_removed() {
    let Some(url) = server() else { return };
    let a = fresh("group");
    let b = fresh("member");
    let config = |roles: &str| {
        format!(
            "{}resource postgres.role a {{\n  name = \"{a}\"\n}}\n\
             resource postgres.role b {{\n  name       = \"{b}\"\n  roles      = {roles}\n  depends_on = [postgres.role.a]\n}}\n",
            provider_block(&url, false)
        )
    };
    let p = project(&[("main.plinth", &config("[postgres.role.a.name]"))]);
    let dir = p.path();
    let member = || {
        client(&url)
            .query_opt(
                "SELECT 1 FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member WHERE r.rolname = $1 AND u.rolname = $2",
                &[&a, &b],
            )
            .unwrap()
            .is_some()
    };
    assert_exit(&cmd(dir, &url, &["apply", "--auto-approve"]), 0);
    assert!(member(), "b was granted a");
    assert_exit(&cmd(dir, &url, &["drift"]), 0);
    let again = cmd(dir, &url, &["apply", "--auto-approve"]);
    assert_exit(&again, 0);
    assert!(stdout(&again).contains("No changes"), "{}", stdout(&again));

    client(&url).batch_execute(&format!("REVOKE \"{a}\" FROM \"{b}\"")).unwrap();
    assert!(!member());
    let drift = cmd(dir, &url, &["drift", "--json"]);
    assert_exit(&drift, 2);
    assert!(stdout(&drift).contains("postgres.role.b"), "{}", stdout(&drift));
    assert_exit(&cmd(dir, &url, &["apply", "--auto-approve", "--refresh"]), 0);
    assert!(member(), "apply --refresh granted it again");
    assert_exit(&cmd(dir, &url, &["drift"]), 0);

    std::fs::write(dir.join("main.plinth"), config("[]")).unwrap();
    assert_exit(&cmd(dir, &url, &["apply", "--auto-approve"]), 0);
    assert!(!member(), "removing it from `roles` revoked it");
    assert_exit(&cmd(dir, &url, &["drift"]), 0);

    assert_exit(&cmd(dir, &url, &["destroy", "--auto-approve"]), 0);
    let c = &mut client(&url);
    for name in [&a, &b] {
        assert!(c.query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[name]).unwrap().is_none(), "role {name} dropped");
    }
}

/// `catalogue/database/postgres` against the real server: a database owned
/// by a login role whose generated password works, the connection URL as a
/// sensitive output, and nothing left after destroy.
#[test]
fn the_catalogue_database_module_creates_a_usable_database() {
    let Some(url) = server() else { return };
    let name = fresh("catdb");
    // postgres://user@host:port/db
    let authority = url.split("://").nth(1).and_then(|r| r.split('/').next()).unwrap_or("");
    let hostport = authority.rsplit('@').next().unwrap_or("127.0.0.1:5432");
    let (host, port) = hostport.split_once(':').map(|(h, p)| (h.to_string(), p.parse::<u16>().unwrap_or(5432))).unwrap_or((hostport.to_string(), 5432));
    let dir = project(&[(
        "main.plinth",
        &format!(
            "{}database app from \"catalogue/database/postgres\" {{\n  name    = \"{name}\"\n  host    = \"{host}\"\n  port    = {port}\n  sslmode = \"disable\"\n}}\n\noutput url = database.app.url {{ sensitive = true }}\noutput owner = database.app.owner\n",
            provider_block(&url, false)
        ),
    )]);
    copy_tree(&repo_root().join("catalogue/database/postgres"), &dir.path().join("catalogue/database/postgres"));
    // The entry composes modules/postgres_database (`../../../modules/…`).
    copy_tree(&repo_root().join("modules/postgres_database"), &dir.path().join("modules/postgres_database"));
    let o = cmd(dir.path(), &url, &["apply", "--auto-approve"]);
    assert_exit(&o, 0);
    assert!(!stdout(&o).contains("postgres://"), "the URL (with its password) is sensitive: {}", stdout(&o));
    let o = cmd(dir.path(), &url, &["output", "--show-sensitive", "--json"]);
    assert_exit(&o, 0);
    let outputs: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let app_url = outputs["url"].as_str().or_else(|| outputs["url"]["value"].as_str()).unwrap_or_else(|| panic!("url output: {outputs}")).to_string();
    // The owner logs in with the generated password and owns the database.
    let mut owner = postgres::Client::connect(&app_url, postgres::NoTls).expect("the owner connects with the generated password");
    let row = owner.query_one("SELECT current_database(), pg_get_userbyid(d.datdba) FROM pg_database d WHERE d.datname = current_database()", &[]).unwrap();
    assert_eq!(row.get::<_, String>(0), name);
    assert_eq!(row.get::<_, String>(1), name, "the role named like the database owns it");
    drop(owner);
    assert_exit(&cmd(dir.path(), &url, &["plan", "--refresh", "--detailed-exitcode"]), 0);
    assert_exit(&cmd(dir.path(), &url, &["destroy", "--auto-approve"]), 0);
    let admin = &mut client(&url);
    assert!(admin.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name]).unwrap().is_none());
    assert!(admin.query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name]).unwrap().is_none());
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_tree(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

// ------------------------------------------------------------------- TLS
//
// These connect as `plinth_tls_only`, which the test server's pg_hba.conf
// lets in over TLS only: a provider that fell back to plain TCP could not
// log in at all.

/// The server-side view of a connection made the way the provider makes
/// them (`plinth::pgtls::connect`).
fn tls_session(url: &str, mode: plinth::pgtls::SslMode, ca: Option<&str>) -> bool {
    let (driver_url, _) = plinth::pgtls::split_url(url).unwrap();
    let config: postgres::Config = driver_url.parse().unwrap();
    let tls = plinth::pgtls::TlsOptions { mode, root_cert: ca.map(plinth::pgtls::RootCert::parse) };
    let mut c = plinth::pgtls::connect(&config, &tls).unwrap_or_else(|e| panic!("connect over TLS: {e}"));
    pg_session_is_tls(&mut c)
}

#[test]
fn tls_require_creates_and_reads_a_role() {
    let Some(pg) = pg_tls_server() else { return };
    // The role cannot connect without TLS.
    assert!(postgres::Client::connect(&format!("{}?sslmode=disable", pg.tls_url), postgres::NoTls).is_err(), "plinth_tls_only is TLS-only");
    assert!(tls_session(&pg.tls_url, plinth::pgtls::SslMode::Require, None), "pg_stat_ssl says the session is encrypted");
    assert!(tls_session(&pg.tls_url, plinth::pgtls::SslMode::Prefer, None), "prefer uses TLS when the server offers it");
    assert!(!tls_session(&pg.admin_url, plinth::pgtls::SslMode::Disable, None), "disable stays plain");

    let name = fresh("tlsrole");
    let config = format!(
        "provider postgres {{\n  url            = \"{}?sslmode=require\"\n  list_unmanaged = false\n}}\n\
         resource postgres.role r {{\n  name             = \"{name}\"\n  connection_limit = 3\n}}\n",
        pg.tls_url
    );
    let p = project(&[("main.plinth", &config)]);
    let dir = p.path();
    let out = cmd(dir, &pg.tls_url, &["apply", "--auto-approve"]);
    assert_exit(&out, 0);
    let limit: i32 = client(&pg.admin_url).query_one("SELECT rolconnlimit FROM pg_roles WHERE rolname = $1", &[&name]).unwrap().get(0);
    assert_eq!(limit, 3, "the role was created over TLS");
    // Reads go over TLS too: drift sees a change made outside.
    assert_exit(&cmd(dir, &pg.tls_url, &["drift"]), 0);
    client(&pg.admin_url).batch_execute(&format!("ALTER ROLE \"{name}\" CONNECTION LIMIT 9")).unwrap();
    assert_exit(&cmd(dir, &pg.tls_url, &["drift"]), 2);
    assert_exit(&cmd(dir, &pg.tls_url, &["destroy", "--auto-approve"]), 0);
    assert!(client(&pg.admin_url).query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name]).unwrap().is_none());
}

#[test]
fn tls_verify_full_checks_the_certificate_against_sslrootcert() {
    let Some(pg) = pg_tls_server() else { return };
    assert!(tls_session(&pg.tls_url, plinth::pgtls::SslMode::VerifyFull, Some(&pg.ca)));
    let name = fresh("tlsfull");
    let block = |ca: &str, mode: &str| {
        format!(
            "provider postgres {{\n  url            = \"{}\"\n  sslmode        = \"{mode}\"\n  sslrootcert    = \"{ca}\"\n  list_unmanaged = false\n}}\n\
             resource postgres.role r {{\n  name = \"{name}\"\n}}\n",
            pg.tls_url
        )
    };
    let p = project(&[("main.plinth", &block(&pg.ca, "verify-full"))]);
    assert_exit(&cmd(p.path(), &pg.tls_url, &["apply", "--auto-approve"]), 0);
    assert!(client(&pg.admin_url).query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name]).unwrap().is_some());
    assert_exit(&cmd(p.path(), &pg.tls_url, &["destroy", "--auto-approve"]), 0);

    // A CA that did not sign the server's certificate: a coded diagnostic.
    for mode in ["verify-full", "verify-ca", "require"] {
        let p = project(&[("main.plinth", &block(&pg.other_ca, mode))]);
        let out = cmd(p.path(), &pg.tls_url, &["apply", "--auto-approve"]);
        let err = stderr(&out);
        assert_ne!(out.status.code(), Some(0), "{mode}: {err}");
        assert!(err.contains("P6308"), "{mode}: {err}");
        assert!(err.contains("certificate"), "{mode}: {err}");
        assert!(!err.contains("panicked"), "{mode}: {err}");
        assert!(client(&pg.admin_url).query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name]).unwrap().is_none());
    }
}

#[test]
fn tls_verify_full_refuses_a_host_the_certificate_does_not_name() {
    let Some(pg) = pg_tls_server() else { return };
    // The certificate names localhost, 127.0.0.1 and ::1; 127.0.0.2 is the
    // same loopback server under a name it does not carry.
    let url = pg.tls_url.replacen("@127.0.0.1:", "@localhost:", 1);
    assert!(tls_session(&url, plinth::pgtls::SslMode::VerifyFull, Some(&pg.ca)), "localhost is named");
    let mut config: postgres::Config = pg.tls_url.replacen("@127.0.0.1:", "@127.0.0.2:", 1).parse().unwrap();
    config.hostaddr("127.0.0.1".parse().unwrap());
    let full = plinth::pgtls::TlsOptions { mode: plinth::pgtls::SslMode::VerifyFull, root_cert: Some(plinth::pgtls::RootCert::parse(&pg.ca)) };
    match plinth::pgtls::connect(&config, &full) {
        Err(plinth::pgtls::ConnectError::Tls(why)) => assert!(why.contains("certificate"), "{why}"),
        Err(e) => panic!("expected a TLS failure, got {e}"),
        Ok(_) => panic!("verify-full accepted a certificate for another host"),
    }
    let ca_only = plinth::pgtls::TlsOptions { mode: plinth::pgtls::SslMode::VerifyCa, ..full };
    let mut c = plinth::pgtls::connect(&config, &ca_only).unwrap_or_else(|e| panic!("verify-ca ignores the host name: {e}"));
    assert!(pg_session_is_tls(&mut c));
}

/// `postgres://<user>:<password>@<the test server's host, port and database>`.
fn url_as(url: &str, user: &str, password: &str) -> String {
    let rest = url.rsplit_once('@').map(|(_, r)| r).unwrap_or(url);
    format!("postgres://{user}:{password}@{rest}")
}

/// The password goes to the server as a SCRAM-SHA-256 verifier computed by
/// Plinth, never as text (statements may be logged). The provider connects
/// as a role whose sessions hash passwords with md5: a password sent as text
/// would be stored as md5, a verifier is stored as sent. The role logs in
/// with its password; a password changed outside Plinth is drift, detected
/// by verifying against the stored verifier, and a refresh sets it again.
#[test]
fn role_passwords_are_sent_as_scram_verifiers_and_verified_on_refresh() {
    let Some(url) = server() else { return };
    let admin = fresh("admin");
    let admin_pw = "admin-pw-0c1d";
    client(&url)
        .batch_execute(&format!("CREATE ROLE \"{admin}\" LOGIN SUPERUSER PASSWORD '{admin_pw}'; ALTER ROLE \"{admin}\" SET password_encryption = 'md5'"))
        .unwrap();
    let admin_url = url_as(&url, &admin, admin_pw);
    let role = fresh("scram");
    let password = "pw-scram-7d3f9a'x";
    let config = format!(
        "{}param pw: string {{\n  sensitive = true\n}}\nresource postgres.role r {{\n  name     = \"{role}\"\n  login    = true\n  password = pw\n}}\n",
        provider_block(&admin_url, false)
    );
    let p = project(&[("main.plinth", &config)]);
    let run_pw = |args: &[&str]| plinth().args(args).env("PLINTH_VAR_pw", password).current_dir(p.path()).output().expect("run plinth");
    let applied = run_pw(&["apply", "--auto-approve"]);
    assert_exit(&applied, 0);
    let stored: Option<String> = client(&url).query_one("SELECT rolpassword FROM pg_authid WHERE rolname = $1", &[&role]).unwrap().get(0);
    let stored = stored.expect("a password is set");
    assert!(stored.starts_with("SCRAM-SHA-256$4096:"), "the server got a verifier, not the text: {stored}");
    let role_url = url_as(&url, &role, "pw-scram-7d3f9a%27x");
    assert!(postgres::Client::connect(&role_url, postgres::NoTls).is_ok(), "the role logs in with its password");
    let quiet = run_pw(&["drift"]);
    assert_exit(&quiet, 0);

    // Changed outside Plinth: drift, and a refresh sets it again.
    client(&url).batch_execute(&format!("ALTER ROLE \"{role}\" PASSWORD 'changed-by-hand'")).unwrap();
    let drift = run_pw(&["drift"]);
    assert_exit(&drift, 2);
    assert!(stdout(&drift).contains("password"), "{}", stdout(&drift));
    assert_exit(&run_pw(&["apply", "--auto-approve", "--refresh"]), 0);
    assert!(postgres::Client::connect(&role_url, postgres::NoTls).is_ok(), "the password is set again");
    assert_exit(&run_pw(&["drift"]), 0);
    for o in [&applied, &drift] {
        assert!(!stdout(o).contains("pw-scram") && !stderr(o).contains("pw-scram"), "{}{}", stdout(o), stderr(o));
    }
    assert_exit(&run_pw(&["destroy", "--auto-approve"]), 0);
    client(&url).batch_execute(&format!("DROP ROLE \"{admin}\"")).unwrap();
}

/// A role that exists outside this state is not taken over: creating it is
/// a coded error naming it, and the role is left as it was.
#[test]
fn creating_a_role_that_already_exists_is_refused_not_adopted() {
    let Some(url) = server() else { return };
    let role = fresh("theirs");
    client(&url).batch_execute(&format!("CREATE ROLE \"{role}\" CONNECTION LIMIT 3")).unwrap();
    let config = format!("{}resource postgres.role r {{\n  name             = \"{role}\"\n  connection_limit = 9\n}}\n", provider_block(&url, false));
    let p = project(&[("main.plinth", &config)]);
    let out = cmd(p.path(), &url, &["apply", "--auto-approve"]);
    assert_exit(&out, 1);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("P6325") && text.contains(&role) && text.contains("already exists"), "{text}");
    let limit: i32 = client(&url).query_one("SELECT rolconnlimit FROM pg_roles WHERE rolname = $1", &[&role]).unwrap().get(0);
    assert_eq!(limit, 3, "the role was not altered");
    assert!(stdout(&cmd(p.path(), &url, &["state", "list"])).trim().is_empty(), "nothing recorded");
    assert_exit(&cmd(p.path(), &url, &["destroy", "--auto-approve"]), 0);
    assert!(client(&url).query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role]).unwrap().is_some(), "a destroy leaves it");
    client(&url).batch_execute(&format!("DROP ROLE \"{role}\"")).unwrap();
}
