//! Crash safety: `plinth apply` is killed with SIGKILL at every write-ahead
//! point (after the k-th intent is durable, after the k-th provider call
//! answered, after the k-th result is durable) and at random instants; after
//! each kill the next apply must converge: every object exists exactly once,
//! the state lists exactly what exists, a plan then shows no changes, and the
//! SQLite database passes `integrity_check`.

use crate::*;
use plinth::state::Store;
use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;

/// A mix of file, random and core.data resources with chains across them.
fn config(n_files: usize) -> String {
    let mut s = String::from(
        r#"
resource random.password db {
  length  = 20
  special = false
}
resource random.id suffix {
  byte_length = 4
}
resource core.data base {
  input = "base-${random.id.suffix.hex}"
}
resource core.data derived {
  count = 3
  input = "${core.data.base.output}-${count.index}"
}
resource file.file secret {
  path    = "out/secret.txt"
  content = random.password.db.result
  mode    = "0600"
}
"#,
    );
    s.push_str(&format!(
        r#"
resource file.file page {{
  count   = {n_files}
  path    = "out/page-${{count.index}}.txt"
  content = "page ${{count.index}} of ${{core.data.derived[count.index % 3].output}}\n"
}}
resource core.data summary {{
  input = [for f in file.file.page : f.sha256]
}}
"#
    ));
    s
}

fn expected_addresses(n_files: usize) -> BTreeSet<String> {
    let mut set: BTreeSet<String> =
        ["random.password.db", "random.id.suffix", "core.data.base", "file.file.secret", "core.data.summary"].iter().map(|s| s.to_string()).collect();
    for i in 0..3 {
        set.insert(format!("core.data.derived[{i}]"));
    }
    for i in 0..n_files {
        set.insert(format!("file.file.page[{i}]"));
    }
    set
}

fn expected_files(n_files: usize) -> BTreeSet<String> {
    let mut set: BTreeSet<String> = (0..n_files).map(|i| format!("page-{i}.txt")).collect();
    set.insert("secret.txt".into());
    set
}

/// Everything that must hold once an apply has converged.
fn check_converged(dir: &Path, n_files: usize, context: &str) {
    let list = stdout(&run(dir, &["state", "list"]));
    let recorded: Vec<String> = list.lines().map(String::from).collect();
    let unique: BTreeSet<String> = recorded.iter().cloned().collect();
    assert_eq!(recorded.len(), unique.len(), "{context}: an address is recorded twice:\n{list}");
    assert_eq!(unique, expected_addresses(n_files), "{context}: state does not list exactly what exists");
    let on_disk: BTreeSet<String> = std::fs::read_dir(dir.join("out")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(on_disk, expected_files(n_files), "{context}: files on disk (orphans or leftovers?)");
    // The secret on disk is the password recorded in state: generated once.
    let secret = std::fs::read_to_string(dir.join("out/secret.txt")).unwrap();
    let shown = stdout(&run(dir, &["state", "show", "random.password.db", "--json"]));
    assert!(!shown.contains(&secret), "{context}: state show leaked the secret");
    let db = plinth::state::sqlite::SqliteStore::open(&dir.join(".plinth/state.db"), "default").unwrap();
    let snap = db.snapshot().unwrap();
    let recorded_pw = snap.get("random.password.db").unwrap().attrs["result"].as_str().unwrap().to_string();
    assert_eq!(secret, recorded_pw, "{context}: the file holds a password the state does not know");
    assert_eq!(db.integrity_check().unwrap(), "ok", "{context}");
    assert!(db.unfinished_intents().unwrap().is_empty(), "{context}: unfinished intents remain");
    let plan = run(dir, &["plan", "--detailed-exitcode", "--refresh"]);
    assert_exit(&plan, 0);
}

fn apply_with_fault(dir: &Path, fault: &str) -> std::process::ExitStatus {
    plinth().args(["apply", "--auto-approve", "--parallelism", "4"]).env("PLINTH_FAULT", fault).current_dir(dir).output().unwrap().status
}

#[test]
fn sigkill_at_every_write_ahead_point_converges() {
    let n_files = 40;
    let total_ops = expected_addresses(n_files).len();
    let mut kills = 0;
    for point in ["intent", "call", "complete"] {
        for k in 1..=total_ops {
            let p = project(&[("main.plinth", &config(n_files))]);
            let status = apply_with_fault(p.path(), &format!("{point}:{k}"));
            if status.signal() == Some(libc_sigkill()) {
                kills += 1;
            } else {
                assert_eq!(status.code(), Some(0), "{point}:{k}: neither killed nor successful");
            }
            let second = run(p.path(), &["apply", "--auto-approve"]);
            assert_exit(&second, 0);
            check_converged(p.path(), n_files, &format!("after SIGKILL at {point}:{k}"));
        }
    }
    // Batching may merge points, but most must really have killed the run.
    assert!(kills >= total_ops * 2, "only {kills} runs were killed");
    eprintln!("crash: {kills} SIGKILLs at write-ahead points, all converged");
}

#[test]
fn sigkill_during_an_update_and_a_replace_converges() {
    let n_files = 6;
    let p = project(&[("main.plinth", &config(n_files))]);
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    // Changing the password length replaces it and updates everything downstream.
    let edited = config(n_files).replace("length  = 20", "length  = 21");
    std::fs::write(p.path().join("main.plinth"), &edited).unwrap();
    let mut kills = 0;
    for point in ["intent", "call", "complete"] {
        for k in 1..=4 {
            let q = project(&[("main.plinth", &config(n_files))]);
            assert_exit(&run(q.path(), &["apply", "--auto-approve"]), 0);
            std::fs::write(q.path().join("main.plinth"), &edited).unwrap();
            if apply_with_fault(q.path(), &format!("{point}:{k}")).signal() == Some(libc_sigkill()) {
                kills += 1;
            }
            assert_exit(&run(q.path(), &["apply", "--auto-approve"]), 0);
            check_converged(q.path(), n_files, &format!("update killed at {point}:{k}"));
            assert_eq!(std::fs::read_to_string(q.path().join("out/secret.txt")).unwrap().len(), 21);
        }
    }
    assert!(kills >= 6, "only {kills} kills");
}

#[test]
fn sigkill_at_random_instants_converges() {
    let n_files = 60;
    let mut seed: u64 = 0x5eed_1234_abcd;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    // Calibrate: how long does a whole apply take on this machine?
    let probe = project(&[("main.plinth", &config(n_files))]);
    let t0 = std::time::Instant::now();
    assert_exit(&run(probe.path(), &["apply", "--auto-approve", "--parallelism", "8"]), 0);
    let full = t0.elapsed().as_micros() as u64;
    let mut kills = 0;
    let mut partial = 0;
    for round in 0..60 {
        let p = project(&[("main.plinth", &config(n_files))]);
        let mut child = plinth()
            .args(["apply", "--auto-approve", "--parallelism", "8"])
            .current_dir(p.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Anywhere from start-up to just past the end of a typical apply.
        std::thread::sleep(std::time::Duration::from_micros(full / 10 + rand() % full.max(1)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
        // Count the runs that were cut in the middle: some but not all recorded.
        if p.path().join(".plinth/state.db").exists() {
            let n = stdout(&run(p.path(), &["state", "list"])).lines().count();
            if n > 0 && n < expected_addresses(n_files).len() {
                partial += 1;
            }
        }
        let second = run(p.path(), &["apply", "--auto-approve"]);
        assert_exit(&second, 0);
        check_converged(p.path(), n_files, &format!("random kill round {round}"));
    }
    eprintln!("crash: {kills} random-instant SIGKILLs ({partial} in the middle of the apply), all converged");
    assert!(partial >= 8, "only {partial} kills landed mid-apply; the timing window needs adjusting");
}

fn libc_sigkill() -> i32 {
    9
}

// ---- Every command that writes state, killed at every write point.
//
// `PLINTH_FAULT=write:k` kills the process right after the k-th transaction
// the state backend committed (lock, run, intents, results, outputs, drift
// reports, surgery, unlock): each test raises k until the command is no
// longer killed, so every write point of the command is hit, whatever their
// number. Apply's write-ahead hooks (`call:k`: the provider answered, its
// result is not durable) add the points between two writes.

/// Runs a command with a fault point (and extra environment variables).
fn run_with_fault(dir: &Path, args: &[&str], fault: &str, env: &[(&str, &str)]) -> std::process::Output {
    let mut c = plinth();
    c.args(args).env("PLINTH_FAULT", fault).current_dir(dir);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn was_killed(o: &std::process::Output) -> bool {
    o.status.signal() == Some(libc_sigkill())
}

/// `write:1`, `write:2`, … until a run with `setup` then `args` is no longer
/// killed (at most `max`), then `extra` points: calls `check` after each.
/// Returns how many runs were killed.
fn kill_at_every_write_point(
    args: &[&str],
    env: &[(&str, &str)],
    extra: &[&str],
    max: usize,
    setup: &dyn Fn() -> tempfile::TempDir,
    check: &dyn Fn(&Path, &str),
) -> usize {
    let mut kills = 0;
    let mut points: Vec<String> = (1..=max).map(|k| format!("write:{k}")).collect();
    points.extend(extra.iter().map(|s| s.to_string()));
    let mut writes_done = false;
    for point in points {
        let is_write = point.starts_with("write:");
        if is_write && writes_done {
            continue;
        }
        let p = setup();
        let out = run_with_fault(p.path(), args, &point, env);
        if was_killed(&out) {
            kills += 1;
        } else {
            assert!(out.status.code().is_some_and(|c| c == 0 || c == 2), "{point}: neither killed nor successful\n{}", stderr(&out));
            if is_write {
                writes_done = true;
            }
        }
        check(p.path(), &format!("`plinth {}` killed at {point}", args.join(" ")));
    }
    assert!(writes_done, "`plinth {}` still wrote after {max} write points", args.join(" "));
    kills
}

/// A small project: a generated secret, a file holding it, three pages.
const PAGES: &str = r#"
resource random.password db {
  length  = 20
  special = false
}
resource file.file secret {
  path    = "out/secret.txt"
  content = random.password.db.result
  mode    = "0600"
}
resource file.file page {
  count   = 3
  path    = "out/page-${count.index}.txt"
  content = "page ${count.index}\n"
}
output pw = random.password.db.result { sensitive = true }
"#;

/// Applies PAGES, then edits by hand: two pages changed, one deleted.
/// Returns the project and the generated password.
fn pages_with_hand_edits() -> (tempfile::TempDir, String) {
    let p = project(&[("main.plinth", PAGES)]);
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    let password = std::fs::read_to_string(p.path().join("out/secret.txt")).unwrap();
    std::fs::write(p.path().join("out/page-1.txt"), "edited by hand\n").unwrap();
    std::fs::write(p.path().join("out/page-2.txt"), "edited by hand\n").unwrap();
    std::fs::remove_file(p.path().join("out/page-0.txt")).unwrap();
    (p, password)
}

fn pages_restored(dir: &Path) -> bool {
    (0..3).all(|i| std::fs::read_to_string(dir.join(format!("out/page-{i}.txt"))).is_ok_and(|t| t == format!("page {i}\n")))
}

/// PAGES converged: the configuration on disk, drift clean, plans empty,
/// the secret generated once, the journal settled, the database sound.
fn check_pages_converged(dir: &Path, password: &str, context: &str) {
    assert!(pages_restored(dir), "{context}: the hand edits are still there");
    assert_eq!(std::fs::read_to_string(dir.join("out/secret.txt")).unwrap(), password, "{context}: the secret changed");
    let drift = run(dir, &["drift"]);
    assert_eq!(drift.status.code(), Some(0), "{context}: drift is not clean\n{}", stdout(&drift));
    assert_exit(&run(dir, &["plan", "--detailed-exitcode"]), 0);
    assert_exit(&run(dir, &["plan", "--detailed-exitcode", "--refresh"]), 0);
    let db = plinth::state::sqlite::SqliteStore::open(&dir.join(".plinth/state.db"), "default").unwrap();
    let snap = db.snapshot().unwrap();
    assert_eq!(snap.get("random.password.db").unwrap().attrs["result"].as_str(), Some(password), "{context}: the state lost the secret");
    assert_eq!(snap.instances.len(), 5, "{context}: {:?}", snap.instances.keys().collect::<Vec<_>>());
    assert_eq!(db.integrity_check().unwrap(), "ok", "{context}");
    assert!(db.unfinished_intents().unwrap().is_empty(), "{context}: unfinished intents remain");
}

/// After a killed run that was restoring hand edits: as long as an edit is
/// still on disk, `drift` must say so (it used to record them as applied
/// and report "0 drifted"), and the interrupted command, run again,
/// converges.
fn check_restoring_run_recovers(dir: &Path, again: &[&str], context: &str) {
    let password = std::fs::read_to_string(dir.join("out/secret.txt")).unwrap();
    if !pages_restored(dir) {
        let drift = run(dir, &["drift"]);
        assert_eq!(drift.status.code(), Some(2), "{context}: hand edits remain but drift says\n{}{}", stdout(&drift), stderr(&drift));
    }
    let rerun = run(dir, again);
    assert!(rerun.status.code().is_some_and(|c| c == 0), "{context}: running it again failed\n{}{}", stdout(&rerun), stderr(&rerun));
    check_pages_converged(dir, &password, context);
}

#[test]
fn sigkill_during_drift_fix_never_records_the_hand_edits() {
    let setup = || pages_with_hand_edits().0;
    let check = |dir: &Path, context: &str| check_restoring_run_recovers(dir, &["drift", "--fix", "--auto-approve"], context);
    let kills = kill_at_every_write_point(&["drift", "--fix", "--auto-approve"], &[], &["call:1", "call:2", "call:3"], 200, &setup, &check);
    assert!(kills >= 10, "only {kills} runs of drift --fix were killed");
    eprintln!("crash: drift --fix killed {kills} times, always converged");
}

#[test]
fn sigkill_during_apply_refresh_never_records_the_hand_edits() {
    let setup = || pages_with_hand_edits().0;
    let check = |dir: &Path, context: &str| check_restoring_run_recovers(dir, &["apply", "--refresh", "--auto-approve"], context);
    let kills = kill_at_every_write_point(&["apply", "--refresh", "--auto-approve"], &[], &["call:1", "call:2", "call:3"], 200, &setup, &check);
    assert!(kills >= 8, "only {kills} runs of apply --refresh were killed");
    eprintln!("crash: apply --refresh killed {kills} times, always converged");
}

#[test]
fn an_interrupted_update_is_done_again_by_the_next_plain_apply() {
    // Killed after the update's intent is durable, before the provider call:
    // reading the object back shows the hand edit, which must not be taken
    // for the update's result. A plain apply (no --refresh) redoes it.
    let (p, password) = pages_with_hand_edits();
    let killed = run_with_fault(p.path(), &["drift", "--fix", "--auto-approve", "--parallelism", "1"], "intent:2", &[]);
    assert!(was_killed(&killed), "not killed: {}", stderr(&killed));
    let plan = run(p.path(), &["plan", "--detailed-exitcode"]);
    assert_exit(&plan, 2);
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    if !pages_restored(p.path()) {
        // The kill may have come before the deleted page's create: that one
        // only --refresh sees.
        assert_exit(&run(p.path(), &["drift", "--fix", "--auto-approve"]), 0);
    }
    check_pages_converged(p.path(), &password, "after a plain apply");
}

#[test]
fn sigkill_during_destroy_converges() {
    let setup = || {
        let p = project(&[("main.plinth", PAGES)]);
        assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
        p
    };
    let check = |dir: &Path, context: &str| {
        let again = run(dir, &["destroy", "--auto-approve"]);
        assert_exit(&again, 0);
        assert_eq!(stdout(&run(dir, &["state", "list"])), "", "{context}: objects still recorded");
        let left: Vec<_> = std::fs::read_dir(dir.join("out")).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
        assert!(left.is_empty(), "{context}: objects left behind: {left:?}");
        let db = plinth::state::sqlite::SqliteStore::open(&dir.join(".plinth/state.db"), "default").unwrap();
        assert_eq!(db.integrity_check().unwrap(), "ok", "{context}");
        assert!(db.unfinished_intents().unwrap().is_empty(), "{context}: unfinished intents remain");
        assert_exit(&run(dir, &["plan", "--detailed-exitcode"]), 2);
    };
    let kills = kill_at_every_write_point(&["destroy", "--auto-approve"], &[], &["call:1", "call:3", "call:5"], 200, &setup, &check);
    assert!(kills >= 8, "only {kills} runs of destroy were killed");
}

// ---- State surgery on an encrypted state.

const KEY_A: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const KEY_B: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

/// The state opened with these keys, as the CLI opens it (every row must open).
fn encrypted_snapshot(dir: &Path, current: &str, previous: &[&str]) -> Result<plinth::state::model::Snapshot, plinth::diagnostic::Diagnostic> {
    use plinth::state::crypt::{Encrypted, Key, Keys};
    let keys = Keys { current: Some(Key::parse(current, "test").unwrap()), previous: previous.iter().map(|k| Key::parse(k, "test").unwrap()).collect() };
    let inner = plinth::state::sqlite::SqliteStore::open(&dir.join(".plinth/state.db"), "default").unwrap();
    Encrypted::new(Box::new(inner), Some(keys)).snapshot()
}

/// PAGES applied with KEY_A.
fn encrypted_pages() -> (tempfile::TempDir, String) {
    let p = project(&[("main.plinth", PAGES)]);
    let out = plinth().args(["apply", "--auto-approve"]).env("PLINTH_STATE_KEY", KEY_A).current_dir(p.path()).output().unwrap();
    assert_exit(&out, 0);
    let password = std::fs::read_to_string(p.path().join("out/secret.txt")).unwrap();
    (p, password)
}

fn with_key(dir: &Path, key: &str, args: &[&str]) -> std::process::Output {
    plinth().args(args).env("PLINTH_STATE_KEY", key).current_dir(dir).output().unwrap()
}

#[test]
fn sigkill_during_state_mv_on_an_encrypted_state_keeps_the_secret() {
    let setup = || encrypted_pages().0;
    let check = |dir: &Path, context: &str| {
        let password = std::fs::read_to_string(dir.join("out/secret.txt")).unwrap();
        let snap = encrypted_snapshot(dir, KEY_A, &[]).unwrap_or_else(|d| panic!("{context}: a row does not open: {} {}", d.code, d.help));
        let at: Vec<&str> = ["random.password.db", "random.password.renamed"].into_iter().filter(|a| snap.get(a).is_some()).collect();
        assert_eq!(at.len(), 1, "{context}: the secret is recorded at {at:?}");
        assert_eq!(snap.get(at[0]).unwrap().attrs["result"].as_str(), Some(password.as_str()), "{context}: the secret was lost");
        let db = plinth::state::sqlite::SqliteStore::open(&dir.join(".plinth/state.db"), "default").unwrap();
        assert_eq!(db.integrity_check().unwrap(), "ok", "{context}");
        // The configuration that names the secret where it is plans nothing.
        if at[0] == "random.password.renamed" {
            std::fs::write(dir.join("main.plinth"), PAGES.replace("random.password.db", "random.password.renamed").replace("password db", "password renamed"))
                .unwrap();
        }
        assert_exit(&with_key(dir, KEY_A, &["plan", "--detailed-exitcode", "--refresh"]), 0);
        assert_eq!(stdout(&with_key(dir, KEY_A, &["output", "pw", "--show-sensitive"])).trim(), password, "{context}");
    };
    let kills =
        kill_at_every_write_point(&["state", "mv", "random.password.db", "random.password.renamed"], &[("PLINTH_STATE_KEY", KEY_A)], &[], 50, &setup, &check);
    assert!(kills >= 2, "only {kills} runs of state mv were killed");
}

#[test]
fn sigkill_during_state_rm_on_an_encrypted_state_converges() {
    let setup = || encrypted_pages().0;
    let check = |dir: &Path, context: &str| {
        let password = std::fs::read_to_string(dir.join("out/secret.txt")).unwrap();
        encrypted_snapshot(dir, KEY_A, &[]).unwrap_or_else(|d| panic!("{context}: a row does not open: {}", d.code));
        // The object itself was never touched: applying records it again,
        // with the secret it holds.
        assert_exit(&with_key(dir, KEY_A, &["apply", "--auto-approve"]), 0);
        assert_eq!(std::fs::read_to_string(dir.join("out/secret.txt")).unwrap(), password, "{context}: the secret changed");
        let snap = encrypted_snapshot(dir, KEY_A, &[]).unwrap();
        assert_eq!(snap.instances.len(), 5, "{context}");
        assert_eq!(snap.get("random.password.db").unwrap().attrs["result"].as_str(), Some(password.as_str()), "{context}");
        assert_exit(&with_key(dir, KEY_A, &["plan", "--detailed-exitcode", "--refresh"]), 0);
    };
    let kills = kill_at_every_write_point(&["state", "rm", "file.file.secret"], &[("PLINTH_STATE_KEY", KEY_A)], &[], 50, &setup, &check);
    assert!(kills >= 2, "only {kills} runs of state rm were killed");
}

#[test]
fn sigkill_during_state_rekey_converges() {
    let rotate = [("PLINTH_STATE_KEY", KEY_B), ("PLINTH_STATE_KEY_PREVIOUS", KEY_A)];
    let setup = || encrypted_pages().0;
    let check = |dir: &Path, context: &str| {
        let password = std::fs::read_to_string(dir.join("out/secret.txt")).unwrap();
        // Mid-rotation every row opens with the new key and the old one.
        let snap = encrypted_snapshot(dir, KEY_B, &[KEY_A]).unwrap_or_else(|d| panic!("{context}: a row does not open: {}", d.code));
        assert_eq!(snap.get("random.password.db").unwrap().attrs["result"].as_str(), Some(password.as_str()), "{context}");
        // Rekeying again finishes the rotation: then the new key alone suffices.
        let mut again = plinth();
        again.args(["state", "rekey"]).current_dir(dir);
        for (k, v) in rotate {
            again.env(k, v);
        }
        assert_exit(&again.output().unwrap(), 0);
        let snap = encrypted_snapshot(dir, KEY_B, &[]).unwrap_or_else(|d| panic!("{context}: after rekey a row needs the old key: {}", d.code));
        assert_eq!(snap.get("random.password.db").unwrap().attrs["result"].as_str(), Some(password.as_str()), "{context}");
        assert_exit(&with_key(dir, KEY_B, &["plan", "--detailed-exitcode", "--refresh"]), 0);
        assert_eq!(stdout(&with_key(dir, KEY_B, &["output", "pw", "--show-sensitive"])).trim(), password, "{context}");
    };
    let kills = kill_at_every_write_point(&["state", "rekey"], &rotate, &[], 50, &setup, &check);
    assert!(kills >= 3, "only {kills} runs of state rekey were killed");
}

#[test]
fn state_surgery_without_the_current_key_is_refused_and_changes_nothing() {
    let (p, password) = encrypted_pages();
    let before = encrypted_snapshot(p.path(), KEY_A, &[]).unwrap();
    let history = stdout(&run(p.path(), &["state", "history"]));
    let attempts: [(&str, Vec<(&str, &str)>); 4] =
        [("mv", vec![("PLINTH_STATE_KEY_PREVIOUS", KEY_A)]), ("rm", vec![("PLINTH_STATE_KEY_PREVIOUS", KEY_A)]), ("mv", vec![]), ("rm", vec![])];
    for (verb, env) in attempts {
        let args: Vec<&str> =
            if verb == "mv" { vec!["state", "mv", "random.password.db", "random.password.renamed"] } else { vec!["state", "rm", "random.password.db"] };
        let mut c = plinth();
        c.args(&args).current_dir(p.path()).env_remove("PLINTH_STATE_KEY");
        for (k, v) in &env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        assert_exit(&out, 1);
        // Without any key, `state mv` cannot even read the state (P5006).
        let refused = stderr(&out).contains("P5020") || (env.is_empty() && stderr(&out).contains("P5006"));
        assert!(refused, "state {verb} with {env:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains(&password) && !stderr(&out).contains(KEY_A), "state {verb}: a secret in the error");
        let after = encrypted_snapshot(p.path(), KEY_A, &[]).unwrap_or_else(|d| panic!("state {verb} with {env:?} left a row that does not open: {}", d.code));
        assert_eq!(after.instances, before.instances, "state {verb} with {env:?} changed the state");
        assert_eq!(stdout(&run(p.path(), &["state", "history"])), history);
    }
    assert_exit(&with_key(p.path(), KEY_A, &["plan", "--detailed-exitcode"]), 0);
}
