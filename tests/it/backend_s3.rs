//! The S3 state backend against a real S3-compatible server (moto), started
//! by scripts/test (scripts/services/s3.sh), which exports
//! PLINTH_TEST_S3_ENDPOINT and the AWS_* credentials. Every test makes its
//! own bucket.

use crate::*;
use aws_sdk_s3::primitives::ByteStream;
use plinth::state::conformance;
use plinth::state::model::{DriftRecord, InstanceRecord};
use plinth::state::s3::{S3Store, COMPACT_MAX_ENTRIES};
use plinth::state::{Completion, LockInfo, Store};
use plinth::value::{Map, Value};

fn endpoint() -> Option<String> {
    test_server("PLINTH_TEST_S3_ENDPOINT", "the S3 server")
}

fn client(endpoint: &str) -> aws_sdk_s3::Client {
    s3_client(endpoint)
}

/// A new, empty bucket with a unique name.
fn fresh_bucket(endpoint: &str, tag: &str) -> String {
    let bucket = format!("plinth-{tag}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    block(client(endpoint).create_bucket().bucket(&bucket).send()).expect("create bucket");
    bucket
}

fn address(endpoint: &str, bucket: &str, prefix: &str) -> String {
    format!("s3://{bucket}/{prefix}?endpoint={endpoint}&region=us-east-1&path_style=true")
}

/// Every key under `prefix`, with its size.
fn objects(endpoint: &str, bucket: &str, prefix: &str) -> Vec<(String, i64)> {
    let client = client(endpoint);
    block(async {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = client.list_objects_v2().bucket(bucket).prefix(prefix).set_continuation_token(token).send().await.expect("list");
            out.extend(page.contents().iter().map(|o| (o.key().unwrap_or_default().to_string(), o.size().unwrap_or(0))));
            match page.next_continuation_token() {
                Some(t) => token = Some(t.to_string()),
                None => return out,
            }
        }
    })
}

fn open(address: &str, env: &str) -> Box<dyn Store> {
    Box::new(S3Store::open(address, env).expect("open the S3 store"))
}

fn record(address: &str, n: i64) -> InstanceRecord {
    let mut inputs = Map::default();
    inputs.insert("n".into(), Value::Int(n));
    inputs.insert("content".into(), Value::String(format!("payload of {address}, about a hundred bytes of recorded configuration")));
    let mut attrs = inputs.clone();
    attrs.insert("id".into(), Value::String(format!("id-{address}")));
    InstanceRecord {
        address: address.into(),
        deposed: String::new(),
        resource: "core.data.r".into(),
        provider: "core".into(),
        rtype: "data".into(),
        inputs,
        attrs,
        sensitive: vec![],
        deps: vec![],
    }
}

#[test]
fn the_server_honours_conditional_writes() {
    let Some(endpoint) = endpoint() else { return };
    let bucket = fresh_bucket(&endpoint, "cond");
    let client = client(&endpoint);
    block(async {
        let put = |body: &'static str| client.put_object().bucket(&bucket).key("k").body(ByteStream::from_static(body.as_bytes()));
        let first = put("1").if_none_match("*").send().await.expect("a first If-None-Match: * write succeeds");
        let again = put("2").if_none_match("*").send().await;
        assert!(again.is_err(), "the server accepted a second PutObject with If-None-Match: * on an existing key: it does not honour conditional creates, and the S3 store's journal and lock depend on them");
        let etag = first.e_tag().expect("an ETag").to_string();
        put("3").if_match(&etag).send().await.expect("If-Match with the current ETag succeeds");
        let stale = put("4").if_match(&etag).send().await;
        assert!(stale.is_err(), "the server accepted a PutObject with a stale If-Match: it does not honour conditional overwrites, and the S3 store's lock takeover and compaction depend on them");
    });
}

#[test]
fn conformance_outside_any_runtime() {
    let Some(endpoint) = endpoint() else { return };
    let addr = address(&endpoint, &fresh_bucket(&endpoint, "conf"), "state");
    conformance::run(&mut |env| open(&addr, env));
}

#[test]
fn conformance_inside_a_multi_thread_runtime() {
    let Some(endpoint) = endpoint() else { return };
    let bucket = fresh_bucket(&endpoint, "conf-mt");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    // As the CLI does: store calls from the future given to block_on…
    let addr = address(&endpoint, &bucket, "main-thread");
    rt.block_on(async { conformance::run(&mut |env| open(&addr, env)) });
    // …and from a task on a worker thread.
    let addr = address(&endpoint, &bucket, "worker");
    rt.block_on(async move { tokio::spawn(async move { conformance::run(&mut |env| open(&addr, env)) }).await }).expect("the suite passes on a worker");
    // One handle used outside a runtime, then inside one, then outside again.
    let mut store = open(&address(&endpoint, &bucket, "mixed"), "default");
    let serial = store.begin_run("apply").expect("begin outside");
    let store = rt.block_on(async move {
        tokio::spawn(async move {
            store.complete(serial, &[Completion::Upsert { intent: None, record: record("core.data.r[0]", 0) }]).expect("complete inside");
            store
        })
        .await
        .expect("task")
    });
    assert_eq!(store.snapshot().expect("snapshot outside again").instances.len(), 1);
    drop(rt);
}

#[test]
fn conformance_inside_a_current_thread_runtime() {
    let Some(endpoint) = endpoint() else { return };
    let addr = address(&endpoint, &fresh_bucket(&endpoint, "conf-ct"), "state");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async { conformance::run(&mut |env| open(&addr, env)) });
}

const PROJECT: &str = r#"
resource core.data seed {
  input = "hello"
}

resource random.password pw {
  length  = 16
  special = false
}

resource file.file out {
  path    = "out/hello.txt"
  content = "${core.data.seed.output} ${random.password.pw.result}\n"
}

output path = file.file.out.path
"#;

#[test]
fn apply_plan_and_state_commands_on_s3_state() {
    let Some(endpoint) = endpoint() else { return };
    let bucket = fresh_bucket(&endpoint, "e2e");
    let addr = address(&endpoint, &bucket, "team/stack");
    let p = project(&[("main.plinth", PROJECT)]);
    let first = run(p.path(), &["apply", "--auto-approve", "--state", &addr]);
    assert_exit(&first, 0);
    assert!(stdout(&first).contains("3 created"), "{}", stdout(&first));
    let written = std::fs::read_to_string(p.path().join("out/hello.txt")).expect("the file was written");
    assert!(written.starts_with("hello "), "{written}");
    assert!(!p.path().join(".plinth/state.db").exists(), "no SQLite state next to the project");
    let keys: Vec<String> = objects(&endpoint, &bucket, "team/stack/default/").into_iter().map(|(k, _)| k).collect();
    assert!(keys.iter().any(|k| k.starts_with("team/stack/default/journal/")), "{keys:?}");
    assert!(!keys.iter().any(|k| k.ends_with("lock.json")), "the lock is released after apply: {keys:?}");

    let second = run(p.path(), &["apply", "--auto-approve", "--state", &addr]);
    assert_exit(&second, 0);
    assert!(stdout(&second).contains("No changes"), "{}", stdout(&second));

    let list = run(p.path(), &["state", "list", "--state", &addr]);
    assert_exit(&list, 0);
    let listed = stdout(&list);
    for a in ["core.data.seed", "random.password.pw", "file.file.out"] {
        assert!(listed.lines().any(|l| l.trim() == a), "{a} missing from state list:\n{listed}");
    }
    let plan = run(p.path(), &["plan", "--detailed-exitcode", "--state", &addr]);
    assert_exit(&plan, 0);

    // The same state through PLINTH_STATE: the history holds the first
    // apply (one that changes nothing starts no run).
    let history = plinth().args(["state", "history", "--json"]).current_dir(p.path()).env("PLINTH_STATE", &addr).output().expect("run plinth");
    assert_exit(&history, 0);
    let rows: serde_json::Value = serde_json::from_str(&stdout(&history)).expect("history JSON");
    let rows = rows.as_array().expect("a list");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0]["serial"].as_i64(), rows[0]["status"].as_str(), rows[0]["created"].as_i64()), (Some(1), Some("applied"), Some(3)), "{rows:?}");
}

/// Appends `n` completions (one new instance each) to a fresh environment.
fn grow(addr: &str, env: &str, n: usize) -> S3Store {
    let mut store = S3Store::open(addr, env).expect("open");
    let serial = store.begin_run("apply").expect("begin");
    for i in 1..n {
        store.complete(serial, &[Completion::Upsert { intent: None, record: record(&format!("core.data.r[{i}]"), i as i64) }]).expect("complete");
    }
    store
}

#[test]
fn each_operation_writes_bytes_that_do_not_grow_with_the_state() {
    let Some(endpoint) = endpoint() else { return };
    let bucket = fresh_bucket(&endpoint, "bytes");
    let addr = address(&endpoint, &bucket, "p");
    let mut per_op = Vec::new();
    for n in [50usize, 400] {
        let env = format!("n{n}");
        let store = grow(&addr, &env, n);
        let stats = store.stats();
        let journal = stats.journal_bytes as f64 / n as f64;
        let total = (stats.journal_bytes + stats.snapshot_bytes) as f64 / n as f64;
        let objects = objects(&endpoint, &bucket, &format!("p/{env}/"));
        let stored: i64 = objects.iter().map(|(_, s)| s).sum();
        eprintln!(
            "N={n}: {} journal entries, {journal:.0} journal bytes/op, {total:.0} bytes/op with snapshots ({} compactions, {} snapshot bytes), {:.1} SDK calls/op, {} objects ({stored} bytes) left",
            stats.journal_puts,
            stats.compactions,
            stats.snapshot_bytes,
            stats.calls as f64 / n as f64,
            objects.len()
        );
        assert_eq!(stats.journal_puts, n as u64, "one journal entry per operation");
        assert!(objects.len() as u64 <= COMPACT_MAX_ENTRIES + 2, "compaction bounds the objects: {} after {n} operations", objects.len());
        // A fresh handle reads everything back.
        let snap = S3Store::open(&addr, &env).expect("open").snapshot().expect("snapshot");
        assert_eq!(snap.instances.len(), n - 1);
        assert_eq!(snap.get(&format!("core.data.r[{}]", n - 1)), Some(&record(&format!("core.data.r[{}]", n - 1), n as i64 - 1)));
        per_op.push((journal, total, stats.compactions));
    }
    let (small, large) = (per_op[0], per_op[1]);
    assert!(large.2 > 0, "400 operations compact the journal");
    assert!(large.0 <= 2.0 * small.0, "journal bytes per operation grew with the state: {small:?} -> {large:?}");
    assert!(large.1 <= 2.0 * small.1, "bytes per operation, snapshots included, grew with the state: {small:?} -> {large:?}");
}

#[test]
fn two_stores_racing_for_the_lock_one_wins_the_other_learns_the_holder() {
    let Some(endpoint) = endpoint() else { return };
    let addr = address(&endpoint, &fresh_bucket(&endpoint, "lock"), "p");
    for round in 0..5 {
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let racers: Vec<_> = (0..2i64)
            .map(|i| {
                let (addr, barrier) = (addr.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let mut store = S3Store::open(&addr, "default").expect("open");
                    let mut me = LockInfo::current("apply");
                    // Other hosts, so that liveness cannot make either stale.
                    me.host = format!("racer-{i}");
                    me.pid = 1000 + i;
                    barrier.wait();
                    (me.clone(), store.lock(&me, 60).expect("lock"))
                })
            })
            .collect();
        let results: Vec<(LockInfo, Option<LockInfo>)> = racers.into_iter().map(|t| t.join().expect("racer")).collect();
        let winners: Vec<&LockInfo> = results.iter().filter(|(_, held)| held.is_none()).map(|(me, _)| me).collect();
        assert_eq!(winners.len(), 1, "round {round}: exactly one racer takes the lock: {results:?}");
        let winner = winners[0];
        let (_, loser_saw) = results.iter().find(|(_, held)| held.is_some()).expect("a loser");
        let holder = loser_saw.as_ref().expect("holder");
        assert_eq!((holder.host.as_str(), holder.pid), (winner.host.as_str(), winner.pid), "round {round}: the loser is told who holds it");
        assert!(S3Store::open(&addr, "default").expect("open").unlock(None).expect("force unlock"));
    }
    // An expired lease raced by two takers: one wins.
    let mut store = S3Store::open(&addr, "default").expect("open");
    let mut old = LockInfo::current("apply");
    old.host = "gone-host".into();
    assert_eq!(store.lock(&old, -10).expect("lock"), None);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let takers: Vec<_> = (0..2i64)
        .map(|i| {
            let (addr, barrier) = (addr.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut store = S3Store::open(&addr, "default").expect("open");
                let mut me = LockInfo::current("apply");
                me.host = format!("taker-{i}");
                barrier.wait();
                store.lock(&me, 60).expect("lock")
            })
        })
        .collect();
    let outcomes: Vec<Option<LockInfo>> = takers.into_iter().map(|t| t.join().expect("taker")).collect();
    assert_eq!(outcomes.iter().filter(|o| o.is_none()).count(), 1, "exactly one taker takes over an expired lease: {outcomes:?}");
    let holder = outcomes.iter().flatten().next().expect("the other learns the holder");
    assert!(holder.host.starts_with("taker-"), "{holder:?}");
}

#[test]
fn concurrent_writers_never_lose_an_entry() {
    let Some(endpoint) = endpoint() else { return };
    let addr = address(&endpoint, &fresh_bucket(&endpoint, "writers"), "p");
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (addr, barrier) = (addr.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut store = S3Store::open(&addr, "default").expect("open");
                barrier.wait();
                for i in 0..50 {
                    store.complete(1, &[Completion::Upsert { intent: None, record: record(&format!("core.data.w{w}[{i}]"), i) }]).expect("complete");
                }
                store.stats()
            })
        })
        .collect();
    let stats: Vec<_> = writers.into_iter().map(|t| t.join().expect("writer")).collect();
    let snap = S3Store::open(&addr, "default").expect("open").snapshot().expect("snapshot");
    eprintln!(
        "two writers x 50 entries: {} conflicts retried, {} compactions",
        stats.iter().map(|s| s.conflicts).sum::<u64>(),
        stats.iter().map(|s| s.compactions).sum::<u64>()
    );
    assert_eq!(snap.instances.len(), 100, "every write of both writers is recorded");
}

#[test]
fn an_unreachable_bucket_is_a_p5001_naming_bucket_and_endpoint() {
    let Some(endpoint) = endpoint() else { return };
    let p = project(&[("main.plinth", PROJECT)]);
    let addr = address(&endpoint, "plinth-no-such-bucket", "p");
    let out = run(p.path(), &["plan", "--state", &addr]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("P5001") && err.contains("plinth-no-such-bucket") && err.contains(&endpoint), "{err}");
    let secret = std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_default();
    assert!(secret.len() < 6 || !err.contains(&secret), "{err}");
}

#[test]
fn drift_reports_are_kept_in_order() {
    let Some(endpoint) = endpoint() else { return };
    let addr = address(&endpoint, &fresh_bucket(&endpoint, "drift"), "p");
    let mut store = open(&addr, "default");
    assert!(store.drift_history().expect("history").is_empty());
    let report = |n: i64| DriftRecord { at: format!("t{n}"), serial: 1, checked: 3, drifted: n, unmanaged: 0, report: serde_json::json!({ "n": n }) };
    for n in 0..3 {
        store.record_drift(&report(n)).expect("record");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert_eq!(open(&addr, "default").drift_history().expect("history"), vec![report(0), report(1), report(2)]);
    assert!(open(&addr, "other").drift_history().expect("history").is_empty(), "reports are per environment");
}

/// With a state key, no object in the bucket holds a secret in clear.
#[test]
fn with_a_state_key_no_secret_byte_reaches_the_bucket() {
    let Some(endpoint) = endpoint() else { return };
    let bucket = fresh_bucket(&endpoint, "sealed");
    let addr = address(&endpoint, &bucket, "sealed");
    let src = "resource random.password pw {\n  length  = 32\n  special = false\n}\nresource file.file f {\n  path    = \"secret.txt\"\n  content = random.password.pw.result\n}\noutput pw = random.password.pw.result { sensitive = true }\n";
    let p = project(&[("main.plinth", src)]);
    let key = "AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=";
    let with_key = |args: &[&str]| plinth().args(args).env("PLINTH_STATE_KEY", key).current_dir(p.path()).output().expect("run plinth");
    assert_exit(&with_key(&["apply", "--auto-approve", "--state", &addr]), 0);
    assert_exit(&with_key(&["drift", "--state", &addr]), 0);
    let password = std::fs::read_to_string(p.path().join("secret.txt")).expect("secret file");
    let client = client(&endpoint);
    let keys = objects(&endpoint, &bucket, "");
    assert!(keys.len() >= 2, "{keys:?}");
    for (k, _) in keys {
        let body = block(async { client.get_object().bucket(&bucket).key(&k).send().await.expect("get").body.collect().await.expect("body").into_bytes() });
        assert!(!body.windows(password.len()).any(|w| w == password.as_bytes()), "{k} holds the secret in clear");
    }
    let without = run(p.path(), &["state", "show", "--state", &addr]);
    assert_exit(&without, 1);
    assert!(stderr(&without).contains("P5006"), "{}", stderr(&without));
}

/// A state written in clear, then `state rekey` with a key, then `state rm`:
/// no object in the bucket holds the secret in clear afterwards (the
/// journal entries that held it were compacted away).
#[test]
fn rekey_and_state_rm_leave_no_secret_in_the_bucket() {
    let Some(endpoint) = endpoint() else { return };
    let bucket = fresh_bucket(&endpoint, "purge");
    let addr = address(&endpoint, &bucket, "purge");
    let src = "resource random.password pw {\n  length  = 36\n  special = false\n}\nresource file.file f {\n  path    = \"secret.txt\"\n  content = random.password.pw.result\n}\n";
    let p = project(&[("main.plinth", src)]);
    assert_exit(&run(p.path(), &["apply", "--auto-approve", "--state", &addr]), 0);
    let password = std::fs::read_to_string(p.path().join("secret.txt")).expect("secret file");
    let client = client(&endpoint);
    let holders = || -> Vec<String> {
        objects(&endpoint, &bucket, "")
            .into_iter()
            .filter(|(k, _)| {
                let body =
                    block(async { client.get_object().bucket(&bucket).key(k).send().await.expect("get").body.collect().await.expect("body").into_bytes() });
                body.windows(password.len()).any(|w| w == password.as_bytes())
            })
            .map(|(k, _)| k)
            .collect()
    };
    assert!(!holders().is_empty(), "in clear, the bucket holds the password (the test sees it)");
    let key = "BgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgY=";
    let rekey = plinth().args(["state", "rekey", "--state", &addr]).env("PLINTH_STATE_KEY", key).current_dir(p.path()).output().expect("rekey");
    assert_exit(&rekey, 0);
    assert_eq!(holders(), Vec::<String>::new(), "objects still hold the secret in clear after rekey");
    let plan = plinth().args(["plan", "--detailed-exitcode", "--state", &addr]).env("PLINTH_STATE_KEY", key).current_dir(p.path()).output().expect("plan");
    assert_exit(&plan, 0);
    // Back in clear, then removed: gone from every object again.
    let decrypt = plinth().args(["state", "rekey", "--state", &addr]).env("PLINTH_STATE_KEY_PREVIOUS", key).current_dir(p.path()).output().expect("decrypt");
    assert_exit(&decrypt, 0);
    assert!(!holders().is_empty());
    assert_exit(&run(p.path(), &["state", "rm", "--state", &addr, "random.password.pw", "file.file.f"]), 0);
    assert_eq!(holders(), Vec::<String>::new(), "objects still hold a removed secret");
}
