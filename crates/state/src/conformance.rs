//! The conformance suite every [`Store`] must pass (SQLite, S3, PostgreSQL):
//! call [`run`] with a factory that opens a fresh store for an environment.
//! Each check panics with a message naming the property that failed.

use super::model::InstanceRecord;
use super::{Completion, Intent, LockInfo, Store};
use crate::value::{Map, Value};

fn record(address: &str, n: i64) -> InstanceRecord {
    let mut inputs = Map::default();
    inputs.insert("n".into(), Value::Int(n));
    let mut attrs = inputs.clone();
    attrs.insert("id".into(), Value::String(format!("id-{address}")));
    InstanceRecord {
        address: address.into(),
        deposed: String::new(),
        resource: address.split('[').next().unwrap_or(address).into(),
        provider: "core".into(),
        rtype: "data".into(),
        inputs,
        attrs,
        sensitive: vec!["id".into()],
        deps: vec!["core.data.dep".into()],
    }
}

fn intent(address: &str, action: &str) -> Intent {
    Intent {
        id: 0,
        address: address.into(),
        deposed: String::new(),
        action: action.into(),
        token: format!("token-{address}"),
        resource: address.into(),
        provider: "core".into(),
        rtype: "data".into(),
        inputs: Map::default(),
        deps: vec![],
        sensitive: vec!["id".into()],
    }
}

/// Runs every check. `open(env)` must return a store for `env`; calling it
/// twice with the same env must give two handles on the same state.
pub fn run(open: &mut dyn FnMut(&str) -> Box<dyn Store>) {
    empty_state(open);
    intents_and_completions(open);
    serial_history_and_outputs(open);
    environments_are_separate(open);
    locks(open);
    state_edits(open);
    drift_reports(open);
}

fn drift_reports(open: &mut dyn FnMut(&str) -> Box<dyn Store>) {
    let mut store = open("conf/drift");
    assert!(store.drift_history().expect("history").is_empty());
    let report = |n: i64| super::model::DriftRecord {
        at: format!("2026-11-21T00:00:0{n}Z"),
        serial: n,
        checked: 10,
        drifted: n,
        unmanaged: 0,
        report: serde_json::json!({ "drifted": [{ "address": format!("core.data.x{n}") }] }),
    };
    store.record_drift(&report(1)).expect("record");
    store.record_drift(&report(2)).expect("record");
    let kept = open("conf/drift").drift_history().expect("history");
    assert_eq!(kept, vec![report(1), report(2)], "drift reports are kept, oldest first, exactly");
    assert!(open("conf/other").drift_history().expect("history").is_empty(), "per environment");
}

fn empty_state(open: &mut dyn FnMut(&str) -> Box<dyn Store>) {
    let store = open("conf/empty");
    let snap = store.snapshot().expect("snapshot of an empty store");
    assert_eq!(snap.serial, 0, "a new environment starts at serial 0");
    assert!(snap.instances.is_empty() && snap.outputs.is_empty());
    assert!(store.unfinished_intents().expect("intents").is_empty());
    assert!(store.history().expect("history").is_empty());
}

fn intents_and_completions(open: &mut dyn FnMut(&str) -> Box<dyn Store>) {
    let mut store = open("conf/intents");
    let serial = store.begin_run("apply").expect("begin");
    let mut intents = vec![intent("core.data.a", "create"), intent("core.data.b", "create")];
    store.write_intents(serial, &mut intents).expect("write intents");
    assert!(intents[0].id != 0 && intents[0].id != intents[1].id, "intents get distinct ids");
    // Another handle sees the intents: they are durable.
    let other = open("conf/intents");
    let open_intents = other.unfinished_intents().expect("intents");
    assert_eq!(open_intents.len(), 2, "both intents are unfinished and visible");
    assert_eq!(open_intents[0].sensitive, vec!["id".to_string()]);
    store
        .complete(
            serial,
            &[
                Completion::Upsert { intent: Some(intents[0].id), record: record("core.data.a", 1) },
                Completion::Close { intent: intents[1].id, outcome: "failed".into() },
            ],
        )
        .expect("complete");
    let snap = other.snapshot().expect("snapshot");
    assert_eq!(snap.instances.len(), 1);
    assert_eq!(snap.get("core.data.a"), Some(&record("core.data.a", 1)), "the record round-trips exactly");
    assert!(other.unfinished_intents().expect("intents").is_empty(), "completed and closed intents are finished");
    // Update in place, depose, remove.
    let mut up = vec![intent("core.data.a", "update")];
    store.write_intents(serial, &mut up).expect("write");
    store.complete(serial, &[Completion::Upsert { intent: Some(up[0].id), record: record("core.data.a", 2) }]).expect("complete");
    assert_eq!(store.snapshot().expect("snap").get("core.data.a").map(|r| r.inputs["n"].clone()), Some(Value::Int(2)));
    store.complete(serial, &[Completion::Depose { address: "core.data.a".into(), token: "deposed-1".into() }]).expect("depose");
    let snap = store.snapshot().expect("snap");
    assert!(snap.get("core.data.a").is_none(), "a deposed object is not current");
    assert!(snap.instances.contains_key(&("core.data.a".to_string(), "deposed-1".to_string())));
    store.complete(serial, &[Completion::Remove { intent: None, address: "core.data.a".into(), deposed: "deposed-1".into() }]).expect("remove");
    assert!(store.snapshot().expect("snap").instances.is_empty());
}

fn serial_history_and_outputs(open: &mut dyn FnMut(&str) -> Box<dyn Store>) {
    let mut store = open("conf/serial");
    let s1 = store.begin_run("apply").expect("begin");
    store.finish_run(s1, "applied", [1, 2, 3, 4]).expect("finish");
    let s2 = store.begin_run("destroy").expect("begin");
    assert_eq!(s2, s1 + 1, "each run increments the serial");
    assert_eq!(store.snapshot().expect("snap").serial, s2);
    let h = store.history().expect("history");
    assert_eq!(h.len(), 2);
    assert_eq!((h[0].status.as_str(), h[0].created, h[0].deleted), ("applied", 1, 4));
    assert_eq!(h[1].status, "running");
    store.set_outputs(&[("url".into(), serde_json::json!("https://x"), false), ("pw".into(), serde_json::json!("s3cret"), true)]).expect("outputs");
    let snap = open("conf/serial").snapshot().expect("snap");
    assert_eq!(snap.outputs.len(), 2);
    assert!(snap.outputs["pw"].sensitive);
    store.set_outputs(&[]).expect("outputs");
    assert!(store.snapshot().expect("snap").outputs.is_empty(), "set_outputs replaces all outputs");
}

fn environments_are_separate(open: &mut dyn FnMut(&str) -> Box<dyn Store>) {
    let mut a = open("conf/env-a");
    let b = open("conf/env-b");
    let serial = a.begin_run("apply").expect("begin");
    a.complete(serial, &[Completion::Upsert { intent: None, record: record("core.data.x", 1) }]).expect("complete");
    assert_eq!(a.snapshot().expect("snap").instances.len(), 1);
    assert!(b.snapshot().expect("snap").instances.is_empty(), "environments do not share instances");
    assert_eq!(b.snapshot().expect("snap").serial, 0, "nor serials");
}

fn locks(open: &mut dyn FnMut(&str) -> Box<dyn Store>) {
    let mut first = open("conf/locks");
    let mut second = open("conf/locks");
    let me = LockInfo::current("apply");
    assert_eq!(first.lock(&me, 60).expect("lock"), None, "a free lock is taken");
    let mut rival = me.clone();
    rival.pid = me.pid + 1_000_000; // a process that does not exist on this host…
    rival.host = "another-host".into(); // …on another host, so liveness cannot be checked
    let held = second.lock(&rival, 60).expect("lock");
    assert_eq!(held.map(|h| h.pid), Some(me.pid), "a held lock is refused and names its holder");
    assert!(first.unlock(Some(me.pid)).expect("unlock"));
    assert_eq!(second.lock(&rival, 60).expect("lock"), None, "a released lock is taken");
    // An expired lease is taken over.
    assert!(second.unlock(None).expect("unlock"));
    assert_eq!(second.lock(&rival, -1).expect("lock"), None);
    assert_eq!(first.lock(&me, 60).expect("lock"), None, "an expired lease is taken over");
    first.renew_lock(me.pid, 60).expect("renew");
    assert!(first.unlock(None).expect("force unlock"));
    assert!(!first.unlock(None).expect("unlock again"), "unlocking a free lock reports false");
}

fn state_edits(open: &mut dyn FnMut(&str) -> Box<dyn Store>) {
    let mut store = open("conf/edits");
    let serial = store.begin_run("apply").expect("begin");
    store.complete(serial, &[Completion::Upsert { intent: None, record: record("core.data.old", 1) }]).expect("complete");
    assert_eq!(store.move_instance("core.data.old", "core.data.new", "core.data.new").expect("mv"), 1);
    let snap = store.snapshot().expect("snap");
    assert!(snap.get("core.data.old").is_none() && snap.get("core.data.new").is_some());
    assert_eq!(store.remove_instance("core.data.new").expect("rm"), 1);
    assert_eq!(store.remove_instance("core.data.new").expect("rm"), 0);
}

#[cfg(test)]
mod tests {
    #[test]
    fn sqlite_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.db");
        super::run(&mut |env| Box::new(crate::sqlite::SqliteStore::open(&path, env).expect("open")));
    }
}
