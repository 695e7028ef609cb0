//! The postgres state backend against a real server started by scripts/test
//! (scripts/services/postgres.sh), which exports PLINTH_TEST_PG_URL. Each
//! test works in a schema of its own, named from the pid, the time and the
//! test, so reruns and parallel tests never share state; a test that passes
//! drops its schema.

use crate::*;
use plinth::state::conformance;
use plinth::state::postgres::PostgresStore;
use plinth::state::{Completion, Intent, LockInfo, Store};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};

fn server() -> Option<String> {
    test_server("PLINTH_TEST_PG_URL", "PostgreSQL")
}

/// A schema name no other run or test uses.
fn fresh_schema(test: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("plinth_t_{test}_{}_{}", std::process::id(), nanos % 1_000_000_000_000)
}

fn with_schema(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}schema={schema}")
}

/// Drops a test's schema (called at the end of a passing test; a failing
/// test leaves its schema to look at).
fn drop_schema(url: &str, schema: &str) {
    let mut client = postgres::Client::connect(url, postgres::NoTls).expect("connect to drop the test schema");
    client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).expect("drop schema");
}

fn open(url: &str, env: &str) -> Box<dyn Store> {
    Box::new(PostgresStore::open(url, env).unwrap_or_else(|d| panic!("open {url}: {} {}", d.code, d.help)))
}

#[test]
fn postgres_passes_the_conformance_suite() {
    let Some(url) = server() else { return };
    let schema = fresh_schema("conformance");
    let address = with_schema(&url, &schema);
    conformance::run(&mut |env| open(&address, env));
    drop_schema(&url, &schema);
}

/// The CLI calls stores from inside a multi-thread runtime (on the thread in
/// `block_on` and on worker threads); some callers use a current-thread one.
#[test]
fn postgres_store_works_inside_tokio_runtimes() {
    let Some(url) = server() else { return };
    let schema = fresh_schema("runtimes");
    let address = with_schema(&url, &schema);
    let multi = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    // On the thread that runs block_on.
    multi.block_on(async {
        let a = address.clone();
        conformance::run(&mut |env| open(&a, &format!("rt-main/{env}")));
    });
    // On a worker thread, store dropped there too.
    let a = address.clone();
    multi.block_on(async move { tokio::spawn(async move { conformance::run(&mut |env| open(&a, &format!("rt-worker/{env}"))) }).await }).expect("worker task");
    drop(multi);
    // On a current-thread runtime, where block_in_place is not allowed.
    let current = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    current.block_on(async {
        let a = address.clone();
        conformance::run(&mut |env| open(&a, &format!("rt-current/{env}")));
    });
    drop_schema(&url, &schema);
}

#[test]
fn postgres_first_opens_race_safely_and_newer_schemas_are_refused() {
    let Some(url) = server() else { return };
    let schema = fresh_schema("migrate");
    let address = with_schema(&url, &schema);
    // Eight first runs at once on a schema that does not exist yet.
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (address, barrier) = (address.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                PostgresStore::open(&address, "default").map(|_| ()).map_err(|d| d.help)
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread").expect("concurrent first open");
    }
    let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    let versions: i64 = client.query_one(&format!("SELECT count(*) FROM \"{schema}\".schema_version"), &[]).expect("versions").get(0);
    let n_migrations = std::fs::read_dir(repo_root().join("state/postgres"))
        .expect("migrations")
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql")))
        .count() as i64;
    assert_eq!(versions, n_migrations, "each migration is recorded once");
    client.execute(&format!("INSERT INTO \"{schema}\".schema_version VALUES (99, 'future')"), &[]).expect("future version");
    let err = PostgresStore::open(&address, "default").err().expect("a newer schema is refused");
    assert_eq!(err.code, "P5003", "{}", err.help);
    drop_schema(&url, &schema);
}

#[test]
fn postgres_errors_name_the_server_without_its_password() {
    let Some(url) = server() else { return };
    // A database that does not exist, with a password in the URL.
    let url = url.split('?').next().unwrap_or(&url).to_string();
    let base = &url[..url.rfind('/').expect("a database in the URL")];
    let bad = format!("{}/no_such_db", base.replacen("postgres://postgres@", "postgres://postgres:hunter2@", 1));
    let err = PostgresStore::open(&bad, "default").err().expect("no such database");
    assert_eq!(err.code, "P5001");
    assert!(err.help.contains("no_such_db") && err.help.contains(":***@"), "{}", err.help);
    assert!(!err.help.contains("hunter2"), "{}", err.help);
}

const PROJECT: &str = r#"
resource random.password db {
  length  = 20
  special = false
}

resource core.data seed {
  input = "hello"
}

resource file.file config {
  path    = "out/config.txt"
  content = "${core.data.seed.output}: ${random.password.db.result}\n"
}

output path = file.file.config.path
"#;

#[test]
fn postgres_end_to_end_through_the_cli() {
    let Some(url) = server() else { return };
    let schema = fresh_schema("cli");
    let address = with_schema(&url, &schema);
    let p = project(&[("main.plinth", PROJECT)]);
    let first = run(p.path(), &["apply", "--auto-approve", "--state", &address]);
    assert_exit(&first, 0);
    assert!(stdout(&first).contains("3 created"), "{}", stdout(&first));
    assert!(std::fs::read_to_string(p.path().join("out/config.txt")).expect("file written").starts_with("hello: "));
    assert!(!p.path().join(".plinth/state.db").exists(), "state went to PostgreSQL, not to the default SQLite file");

    let second = run(p.path(), &["apply", "--auto-approve", "--state", &address]);
    assert_exit(&second, 0);
    assert!(stdout(&second).contains("No changes"), "{}", stdout(&second));

    let list = run(p.path(), &["state", "list", "--state", &address]);
    assert_exit(&list, 0);
    for addr in ["random.password.db", "core.data.seed", "file.file.config"] {
        assert!(stdout(&list).contains(addr), "state list names {addr}:\n{}", stdout(&list));
    }
    assert_exit(&run(p.path(), &["plan", "--detailed-exitcode", "--state", &address]), 0);

    // What the CLI wrote is what the store reads.
    let store = PostgresStore::open(&address, "default").expect("open");
    let snap = store.snapshot().expect("snapshot");
    assert_eq!(snap.serial, 1, "one applying run");
    assert_eq!(snap.instances.len(), 3);
    assert!(snap.outputs.contains_key("path"));
    assert!(store.unfinished_intents().expect("intents").is_empty());
    assert_eq!(store.history().expect("history")[0].status, "applied");
    drop(store);
    drop_schema(&url, &schema);
}

/// Six stores on one environment contend for the lock; whoever holds it runs
/// a small apply. The lock must be exclusive and the serials gapless.
#[test]
fn postgres_lock_is_exclusive_under_contention() {
    let Some(url) = server() else { return };
    let schema = fresh_schema("locks");
    let address = with_schema(&url, &schema);
    const THREADS: usize = 6;
    const ROUNDS: usize = 5;
    let holders = Arc::new(AtomicUsize::new(0));
    let max_holders = Arc::new(AtomicUsize::new(0));
    let refusals = Arc::new(AtomicUsize::new(0));
    let serials = Arc::new(Mutex::new(Vec::new()));
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (address, holders, max_holders, refusals, serials, barrier) =
                (address.clone(), holders.clone(), max_holders.clone(), refusals.clone(), serials.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut store = open(&address, "contended");
                // Distinct holders: another host each, so that neither the
                // "same pid" rule nor the dead-pid check applies.
                let mut me = LockInfo::current("apply");
                me.host = format!("test-host-{t}");
                me.pid = 10_000 + t as i64;
                barrier.wait();
                let mut done = 0;
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
                while done < ROUNDS {
                    assert!(std::time::Instant::now() < deadline, "thread {t} starved");
                    if let Some(held) = store.lock(&me, 60).expect("lock") {
                        assert_ne!(held.host, me.host, "a refusal names another holder");
                        refusals.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(2 + t as u64));
                        continue;
                    }
                    let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
                    max_holders.fetch_max(now, Ordering::SeqCst);
                    let serial = store.begin_run("apply").expect("begin");
                    let address = format!("core.data.t{t}");
                    let mut intents = vec![Intent {
                        id: 0,
                        address: address.clone(),
                        deposed: String::new(),
                        action: "update".into(),
                        token: format!("tok-{t}-{done}"),
                        resource: address.clone(),
                        provider: "core".into(),
                        rtype: "data".into(),
                        inputs: Default::default(),
                        deps: vec![],
                        sensitive: vec![],
                    }];
                    store.write_intents(serial, &mut intents).expect("intents");
                    let record = plinth::state::model::InstanceRecord {
                        address: address.clone(),
                        deposed: String::new(),
                        resource: address.clone(),
                        provider: "core".into(),
                        rtype: "data".into(),
                        inputs: Default::default(),
                        attrs: Default::default(),
                        sensitive: vec![],
                        deps: vec![],
                    };
                    store.complete(serial, &[Completion::Upsert { intent: Some(intents[0].id), record }]).expect("complete");
                    store.renew_lock(me.pid, 60).expect("renew");
                    store.complete(serial, &[]).expect("empty completion");
                    store.finish_run(serial, "applied", [0, 1, 0, 0]).expect("finish");
                    serials.lock().unwrap().push(serial);
                    holders.fetch_sub(1, Ordering::SeqCst);
                    assert!(store.unlock(Some(me.pid)).expect("unlock"), "the holder releases its own lock");
                    done += 1;
                    std::thread::yield_now();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("a contending thread failed");
    }
    assert_eq!(max_holders.load(Ordering::SeqCst), 1, "never two holders at once");
    let mut serials = serials.lock().unwrap().clone();
    serials.sort_unstable();
    let expected: Vec<i64> = (1..=(THREADS * ROUNDS) as i64).collect();
    assert_eq!(serials, expected, "serials are distinct and consecutive");
    let store = open(&address, "contended");
    assert_eq!(store.snapshot().expect("snap").serial, (THREADS * ROUNDS) as i64);
    assert_eq!(store.snapshot().expect("snap").instances.len(), THREADS);
    assert!(store.unfinished_intents().expect("intents").is_empty());
    assert!(store.history().expect("history").iter().all(|h| h.status == "applied"));
    eprintln!("lock contention: {} refusals over {} runs", refusals.load(Ordering::SeqCst), THREADS * ROUNDS);
    drop(store);
    drop_schema(&url, &schema);
}

/// The store over TLS, as the role the test server lets in over TLS only.
#[test]
fn postgres_store_works_over_tls() {
    let Some(pg) = pg_tls_server() else { return };
    let schema = fresh_schema("tls");
    let address = with_schema(&format!("{}?sslmode=require", pg.tls_url), &schema);
    conformance::run(&mut |env| open(&address, env));
    let full = with_schema(&format!("{}?sslmode=verify-full&sslrootcert={}", pg.tls_url, pg.ca), &schema);
    let store = open(&full, "verify-full");
    assert_eq!(store.snapshot().expect("read over verify-full").serial, 0);
    drop(store);
    drop_schema(&pg.admin_url, &schema);
}

#[test]
fn postgres_store_refuses_a_server_certificate_from_another_ca() {
    let Some(pg) = pg_tls_server() else { return };
    let url = pg.tls_url.replacen("postgres://plinth_tls_only@", "postgres://plinth_tls_only:hunter2@", 1);
    for mode in ["verify-full", "verify-ca"] {
        let address = format!("{url}?sslmode={mode}&sslrootcert={}&schema=plinth_t_never", pg.other_ca);
        let err = PostgresStore::open(&address, "default").err().unwrap_or_else(|| panic!("{mode} with another CA connected"));
        assert_eq!(err.code, "P5011", "{mode}: {}", err.help);
        assert!(err.help.contains("certificate") && err.help.contains(mode), "{mode}: {}", err.help);
        assert!(!err.help.contains("hunter2"), "{}", err.help);
    }
}
