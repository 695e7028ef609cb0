//! State that keeps secrets and never corrupts silently, through the real
//! binary and real SQLite files: every byte of `.plinth/` (db, WAL, SHM) is
//! scanned for secrets after `state rekey`, `state rm` and `destroy`; rows
//! and flags are tampered with directly in SQLite; saved plans and state
//! files are checked for their modes.

use crate::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const KEY: &str = "BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU=";

/// Every byte of every file in `.plinth/`.
fn state_files_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir.join(".plinth")).expect("state dir").flatten() {
        if entry.path().is_file() {
            all.extend(std::fs::read(entry.path()).expect("read state file"));
        }
    }
    all
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

fn db(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join(".plinth/state.db")).expect("open state.db")
}

/// A generated secret, a secret param, and both written into a file (so
/// they are in intents' inputs, instance inputs and attributes).
const SECRETS: &str = "param token: string { sensitive = true }\nresource random.password pw {\n  length  = 40\n  special = false\n}\nresource file.file f {\n  path    = \"secret.txt\"\n  content = \"${random.password.pw.result}/${token}\"\n}\nresource core.data t { input = token }\noutput pw = random.password.pw.result { sensitive = true }\n";
const TOKEN: &str = "tok-state-safety-very-secret";

fn password(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("secret.txt")).expect("secret file");
    text.split('/').next().expect("password").to_string()
}

#[test]
fn rekey_leaves_no_secret_in_clear_in_any_state_file() {
    let p = project(&[("main.plinth", SECRETS)]);
    let var = format!("token={TOKEN}");
    assert_exit(&run(p.path(), &["apply", "--auto-approve", "-var", &var]), 0);
    // A second run rewrites the file: more journal rows, more freed pages.
    assert_exit(&run(p.path(), &["apply", "--auto-approve", "-var", &format!("token={TOKEN}-2")]), 0);
    let pw = password(p.path());
    assert!(holds(&state_files_bytes(p.path()), &pw), "without a key the state holds the password (the test sees it)");
    let rekey = plinth().args(["state", "rekey"]).env("PLINTH_STATE_KEY", KEY).current_dir(p.path()).output().expect("rekey");
    assert_exit(&rekey, 0);
    let bytes = state_files_bytes(p.path());
    for secret in [pw.as_str(), TOKEN] {
        assert!(!holds(&bytes, secret), "a secret is still in the state files in clear after rekey");
    }
    // The state still works with the key and nothing changes.
    let plan = plinth()
        .args(["plan", "--detailed-exitcode", "-var", &format!("token={TOKEN}-2")])
        .env("PLINTH_STATE_KEY", KEY)
        .current_dir(p.path())
        .output()
        .expect("plan");
    assert_exit(&plan, 0);
}

#[test]
fn state_rm_and_destroy_leave_no_byte_of_the_secret() {
    // `state rm` of everything that holds the secret (no output holds it here).
    let without_output = SECRETS.split("output pw").next().expect("source");
    let p = project(&[("main.plinth", without_output)]);
    assert_exit(&run(p.path(), &["apply", "--auto-approve", "-var", &format!("token={TOKEN}")]), 0);
    let pw = password(p.path());
    assert!(holds(&state_files_bytes(p.path()), &pw));
    assert_exit(&run(p.path(), &["state", "rm", "random.password.pw", "file.file.f", "core.data.t"]), 0);
    let bytes = state_files_bytes(p.path());
    assert!(!holds(&bytes, &pw) && !holds(&bytes, TOKEN), "a removed secret is still in the state files");

    // `destroy`.
    let q = project(&[("main.plinth", SECRETS)]);
    assert_exit(&run(q.path(), &["apply", "--auto-approve", "-var", &format!("token={TOKEN}")]), 0);
    let pw = password(q.path());
    assert_exit(&run(q.path(), &["destroy", "--auto-approve", "-var", &format!("token={TOKEN}")]), 0);
    let bytes = state_files_bytes(q.path());
    assert!(!holds(&bytes, &pw) && !holds(&bytes, TOKEN), "a destroyed secret is still in the state files");
}

#[test]
fn tampered_sensitive_flags_fail_closed_with_a_key() {
    let p = project(&[("main.plinth", SECRETS)]);
    let with = |args: &[&str]| plinth().args(args).env("PLINTH_STATE_KEY", KEY).current_dir(p.path()).output().expect("run");
    assert_exit(&with(&["apply", "--auto-approve", "-var", &format!("token={TOKEN}")]), 0);
    let pw = password(p.path());
    let shown = with(&["state", "show"]);
    assert_exit(&shown, 0);
    assert!(!stdout(&shown).contains(&pw));
    // Clearing the instance's flags: the sealed values no longer open.
    let conn = db(p.path());
    assert_eq!(conn.execute("UPDATE instances SET sensitive = '[]' WHERE address = 'random.password.pw'", []).expect("tamper"), 1);
    for args in [&["state", "show"][..], &["state", "show", "--json"], &["output", "pw"], &["plan", "-var", "token=x"]] {
        let out = with(args);
        assert_exit(&out, 1);
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(!all.contains(&pw), "{args:?} printed the secret");
        assert!(all.contains("P5006") && all.contains("random.password.pw"), "{args:?}: {all}");
    }
    conn.execute("UPDATE instances SET sensitive = '[\"result\"]' WHERE address = 'random.password.pw'", []).expect("restore");
    assert_exit(&with(&["state", "show"]), 0);
    // Clearing an output's flag.
    assert_eq!(conn.execute("UPDATE outputs SET sensitive = 0 WHERE name = 'pw'", []).expect("tamper output"), 1);
    for args in [&["output", "pw"][..], &["output"], &["output", "--json"]] {
        let out = with(args);
        assert_exit(&out, 1);
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(!all.contains(&pw), "{args:?} printed the secret");
        assert!(all.contains("P5006") && all.contains("output.pw"), "{args:?}: {all}");
    }
}

#[test]
fn an_undecodable_row_is_a_coded_error_and_nothing_is_planned_from_it() {
    let p = project(&[(
        "main.plinth",
        "resource random.password pw { length = 20 }\nresource file.file f {\n  path    = \"pw.txt\"\n  content = random.password.pw.result\n}\n",
    )]);
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    let before = std::fs::read_to_string(p.path().join("pw.txt")).expect("pw");
    for (column, damage) in [("attrs", "{\"result\": \"trunc"), ("attrs", "[1, 2]"), ("inputs", "not json"), ("sensitive", "{}"), ("deps", "7")] {
        let conn = db(p.path());
        let saved: String = conn.query_row(&format!("SELECT {column} FROM instances WHERE address = 'random.password.pw'"), [], |r| r.get(0)).expect("read");
        conn.execute(&format!("UPDATE instances SET {column} = ?1 WHERE address = 'random.password.pw'"), [damage]).expect("damage");
        for args in [&["plan"][..], &["apply", "--auto-approve"], &["state", "show"], &["output"]] {
            let out = run(p.path(), args);
            assert_exit(&out, 1);
            let err = stderr(&out);
            assert!(err.contains("P5030") && err.contains("random.password.pw"), "{column}={damage} {args:?}: {err}");
        }
        assert_eq!(std::fs::read_to_string(p.path().join("pw.txt")).expect("pw"), before, "nothing was applied from a damaged row");
        conn.execute(&format!("UPDATE instances SET {column} = ?1 WHERE address = 'random.password.pw'"), [saved]).expect("restore");
    }
    assert_exit(&run(p.path(), &["plan", "--detailed-exitcode"]), 0);
}

#[test]
fn a_negative_schema_version_is_reported_as_damaged() {
    let p = project(&[("main.plinth", "resource core.data d { input = 1 }\n")]);
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    db(p.path()).pragma_update(None, "user_version", -3).expect("damage the version");
    for args in [&["plan"][..], &["state", "list"]] {
        let out = run(p.path(), args);
        assert_exit(&out, 1);
        let err = stderr(&out);
        assert!(err.contains("P5031") && err.contains("damaged") && !err.contains("newer"), "{err}");
    }
}

#[test]
fn concurrent_first_applies_wait_for_each_other() {
    for round in 0..3 {
        let p = project(&[("main.plinth", "param v: string\nresource core.data a { input = v }\nresource core.data b { input = core.data.a.output }\n")]);
        let children: Vec<_> = (0..6)
            .map(|i| {
                plinth()
                    .args(["apply", "--auto-approve", "--lock-timeout", "120s", "-var", &format!("v=run{i}")])
                    .current_dir(p.path())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("spawn")
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().expect("wait");
            assert_eq!(out.status.code(), Some(0), "round {round}: {}", String::from_utf8_lossy(&out.stderr));
        }
        let n: i64 = db(p.path()).query_row("SELECT count(*) FROM history WHERE status = 'applied'", [], |r| r.get(0)).expect("history");
        assert_eq!(n, 6, "every run applied");
    }
}

#[test]
fn state_files_saved_plans_and_sensitive_files_are_private() {
    let src = "resource random.password pw { length = 20 }\nresource file.file secret {\n  path    = \"secret.txt\"\n  content = random.password.pw.result\n}\nresource file.file open {\n  path    = \"open.txt\"\n  content = \"not secret\"\n}\nresource file.file chosen {\n  path    = \"chosen.txt\"\n  content = random.password.pw.result\n  mode    = \"0640\"\n}\n";
    let p = project(&[("main.plinth", src)]);
    // A plan file that exists, world-readable, is replaced by a private one.
    let plan = p.path().join("saved.plan");
    std::fs::write(&plan, "old").expect("old plan");
    std::fs::set_permissions(&plan, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    assert_exit(&run(p.path(), &["plan", "--out", plan.to_str().expect("utf-8")]), 0);
    assert_eq!(mode(&plan), 0o600, "a saved plan is private");
    assert_exit(&run(p.path(), &["apply", plan.to_str().expect("utf-8")]), 0);
    let state = p.path().join(".plinth");
    for name in ["state.db", "state.db-wal", "state.db-shm"] {
        if state.join(name).exists() {
            assert_eq!(mode(&state.join(name)), 0o600, "{name} is private");
        }
    }
    assert_eq!(mode(&state.join("state.db")), 0o600);
    assert_eq!(mode(&p.path().join("secret.txt")), 0o600, "sensitive content is written 0600");
    assert_eq!(mode(&p.path().join("chosen.txt")), 0o640, "an explicit mode wins");
    assert_ne!(mode(&p.path().join("open.txt")) & 0o044, 0, "content that is not sensitive keeps the usual mode");
    // A state file that was made world-readable is made private again.
    for name in ["state.db", "state.db-wal", "state.db-shm"] {
        if state.join(name).exists() {
            std::fs::set_permissions(state.join(name), std::fs::Permissions::from_mode(0o644)).expect("chmod");
        }
    }
    assert_exit(&run(p.path(), &["plan"]), 0);
    for name in ["state.db", "state.db-wal", "state.db-shm"] {
        if state.join(name).exists() {
            assert_eq!(mode(&state.join(name)), 0o600, "{name} is private again");
        }
    }
}

#[test]
fn a_saved_plan_never_holds_the_state_password() {
    let Some(url) = test_server("PLINTH_TEST_PG_URL", "PostgreSQL") else { return };
    // The test server trusts loopback: the password is never checked, only carried.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let schema = format!("plinth_t_planpw_{}_{}", std::process::id(), nanos % 1_000_000_000_000);
    let secret = "Pl4nPassw0rdNeverSaved";
    let with_password = url.replacen("://postgres@", &format!("://postgres:{secret}@"), 1);
    assert_ne!(with_password, url, "the test URL names the postgres user");
    let sep = if with_password.contains('?') { '&' } else { '?' };
    let address = format!("{with_password}{sep}schema={schema}");
    let p = project(&[
        ("main.plinth", "resource core.data d { input = \"x\" }\n"),
        ("envs/prod.plinth", "backend \"postgres\" {\n  url_env = \"PLANPW_STATE_URL\"\n}\n"),
    ]);
    let plan = p.path().join("a.plan");
    let with_env = |args: &[&str], var: &str| plinth().args(args).env(var, &address).current_dir(p.path()).output().expect("run");
    // Through PLINTH_STATE.
    assert_exit(&with_env(&["plan", "--out", plan.to_str().expect("utf-8")], "PLINTH_STATE"), 0);
    let text = std::fs::read_to_string(&plan).expect("plan file");
    assert!(!text.contains(secret), "the saved plan holds the state password");
    // Without the variable, the plan does not guess another state.
    let guessed = plinth().args(["apply", plan.to_str().expect("utf-8")]).env_remove("PLINTH_STATE").current_dir(p.path()).output().expect("run");
    assert_exit(&guessed, 1);
    assert!(stderr(&guessed).contains("P5032") && !stderr(&guessed).contains(secret), "{}", stderr(&guessed));
    assert!(!p.path().join(".plinth").exists(), "no other state was created");
    assert_exit(&with_env(&["apply", plan.to_str().expect("utf-8")], "PLINTH_STATE"), 0);
    // Through an environment's backend `url_env`.
    let prod = |args: &[&str]| with_env(args, "PLANPW_STATE_URL");
    assert_exit(&prod(&["plan", "--env", "prod", "--out", plan.to_str().expect("utf-8")]), 0);
    let text = std::fs::read_to_string(&plan).expect("plan file");
    assert!(!text.contains(secret), "the saved plan holds the url_env password");
    let applied = prod(&["apply", plan.to_str().expect("utf-8")]);
    assert_exit(&applied, 0);
    assert!(!format!("{}{}", stdout(&applied), stderr(&applied)).contains(secret));
    let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).expect("drop schema");
}

#[test]
fn envs_never_prints_a_state_password() {
    let secret = "EnvsQueryS3cret";
    let p = project(&[
        ("main.plinth", "resource core.data d { input = 1 }\n"),
        ("envs/a.plinth", &format!("backend \"postgres\" {{\n  url = \"postgres://app@db.internal/infra?sslmode=require&password={secret}\"\n}}\n")),
        ("envs/b.plinth", &format!("backend \"postgres\" {{\n  url = \"postgresql://app:{secret}@db.internal/infra\"\n}}\n")),
    ]);
    for args in [&["envs"][..], &["envs", "--json"]] {
        let out = run(p.path(), args);
        assert_exit(&out, 0);
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(!all.contains(secret), "{args:?}: {all}");
        assert!(all.contains("password=***") && all.contains("app:***@"), "{args:?}: {all}");
    }
}

#[test]
fn the_postgres_journal_keeps_no_values_of_completed_operations() {
    let Some(url) = test_server("PLINTH_TEST_PG_URL", "PostgreSQL") else { return };
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let schema = format!("plinth_t_journal_{}_{}", std::process::id(), nanos % 1_000_000_000_000);
    let sep = if url.contains('?') { '&' } else { '?' };
    let address = format!("{url}{sep}schema={schema}");
    let without_output = SECRETS.split("output pw").next().expect("source");
    let p = project(&[("main.plinth", without_output)]);
    assert_exit(&run(p.path(), &["apply", "--auto-approve", "--state", &address, "-var", &format!("token={TOKEN}")]), 0);
    let pw = password(p.path());
    let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    let journal = |client: &mut postgres::Client| -> String {
        client
            .query(&format!("SELECT inputs FROM \"{schema}\".intents"), &[])
            .expect("intents")
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let text = journal(&mut client);
    assert!(!text.is_empty());
    assert!(!text.contains(&pw) && !text.contains(TOKEN), "completed intents keep the secret: {}", text.len());
    assert_exit(&run(p.path(), &["destroy", "--auto-approve", "--state", &address, "-var", &format!("token={TOKEN}")]), 0);
    let text = journal(&mut client);
    assert!(!text.contains(&pw) && !text.contains(TOKEN), "completed deletes keep the secret");
    client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).expect("drop schema");
}
