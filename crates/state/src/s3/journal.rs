//! The S3 store's documents and their replay, without any IO: the compacted
//! state of an environment (`snapshot.json`), the small journal entries
//! appended after it (`journal/<seq>.json`), and [`EnvState::apply`], which
//! folds one entry into the state. The store's semantics are those of the
//! SQLite store, statement for statement; the comments name the statement.

use crate::model::{HistoryEntry, InstanceRecord, OutputRecord, Snapshot};
use crate::value::{Map, Value};
use crate::{Completion, Intent};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The document format this Plinth writes and the newest it reads.
pub const FORMAT: u32 = 1;

fn map_to_json(map: &Map) -> serde_json::Value {
    serde_json::Value::Object(map.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
}

fn map_from_json(json: &serde_json::Value) -> Map {
    match Value::from_json(json) {
        Value::Map(m) => m,
        _ => Map::default(),
    }
}

/// An instance record as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordDoc {
    pub address: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub deposed: String,
    pub resource: String,
    pub provider: String,
    pub rtype: String,
    pub inputs: serde_json::Value,
    pub attrs: serde_json::Value,
    #[serde(default)]
    pub sensitive: Vec<String>,
    #[serde(default)]
    pub deps: Vec<String>,
}

impl RecordDoc {
    pub fn from_record(r: &InstanceRecord) -> RecordDoc {
        RecordDoc {
            address: r.address.clone(),
            deposed: r.deposed.clone(),
            resource: r.resource.clone(),
            provider: r.provider.clone(),
            rtype: r.rtype.clone(),
            inputs: map_to_json(&r.inputs),
            attrs: map_to_json(&r.attrs),
            sensitive: r.sensitive.clone(),
            deps: r.deps.clone(),
        }
    }

    pub fn to_record(&self) -> InstanceRecord {
        InstanceRecord {
            address: self.address.clone(),
            deposed: self.deposed.clone(),
            resource: self.resource.clone(),
            provider: self.provider.clone(),
            rtype: self.rtype.clone(),
            inputs: map_from_json(&self.inputs),
            attrs: map_from_json(&self.attrs),
            sensitive: self.sensitive.clone(),
            deps: self.deps.clone(),
        }
    }
}

/// Refuses (P5030) a record or intent whose values are not JSON objects:
/// replaying it would record `{}` and plan from nothing.
fn check_values(address: &str, fields: &[(&str, &serde_json::Value)]) -> Result<(), crate::diagnostic::Diagnostic> {
    for (field, value) in fields {
        if !value.is_object() {
            return Err(crate::undecodable(&format!("the {field} of {address}"), "it is not a JSON object"));
        }
    }
    Ok(())
}

impl SnapshotDoc {
    /// Every value in the document decodes (see [`check_values`]).
    pub fn check(&self) -> Result<(), crate::diagnostic::Diagnostic> {
        for r in &self.instances {
            check_values(&r.address, &[("inputs", &r.inputs), ("attributes", &r.attrs)])?;
        }
        for i in &self.intents {
            check_values(&i.address, &[("pending inputs", &i.inputs)])?;
        }
        Ok(())
    }
}

impl Op {
    /// Every value in the entry decodes (see [`check_values`]).
    pub fn check(&self) -> Result<(), crate::diagnostic::Diagnostic> {
        match self {
            Op::WriteIntents { intents } => intents.iter().try_for_each(|i| check_values(&i.address, &[("pending inputs", &i.inputs)])),
            Op::Complete { completions, .. } => completions.iter().try_for_each(|c| match c {
                CompletionDoc::Upsert { record: r, .. } => check_values(&r.address, &[("inputs", &r.inputs), ("attributes", &r.attrs)]),
                _ => Ok(()),
            }),
            _ => Ok(()),
        }
    }
}

/// A write-ahead intent as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IntentDoc {
    pub id: i64,
    pub serial: i64,
    pub started_at: String,
    pub address: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub deposed: String,
    pub action: String,
    pub token: String,
    pub resource: String,
    pub provider: String,
    pub rtype: String,
    pub inputs: serde_json::Value,
    pub inputs_hash: String,
    #[serde(default)]
    pub deps: Vec<String>,
    #[serde(default)]
    pub sensitive: Vec<String>,
}

impl IntentDoc {
    pub fn new(id: i64, serial: i64, started_at: &str, intent: &Intent) -> IntentDoc {
        let inputs = map_to_json(&intent.inputs);
        let inputs_hash = crate::hash_hex(inputs.to_string().as_bytes());
        IntentDoc {
            id,
            serial,
            started_at: started_at.to_string(),
            address: intent.address.clone(),
            deposed: intent.deposed.clone(),
            action: intent.action.clone(),
            token: intent.token.clone(),
            resource: intent.resource.clone(),
            provider: intent.provider.clone(),
            rtype: intent.rtype.clone(),
            inputs,
            inputs_hash,
            deps: intent.deps.clone(),
            sensitive: intent.sensitive.clone(),
        }
    }

    pub fn to_intent(&self) -> Intent {
        Intent {
            id: self.id,
            address: self.address.clone(),
            deposed: self.deposed.clone(),
            action: self.action.clone(),
            token: self.token.clone(),
            resource: self.resource.clone(),
            provider: self.provider.clone(),
            rtype: self.rtype.clone(),
            inputs: map_from_json(&self.inputs),
            deps: self.deps.clone(),
            sensitive: self.sensitive.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputDoc {
    pub name: String,
    pub value: serde_json::Value,
    #[serde(default)]
    pub sensitive: bool,
}

/// One completion of a `complete` call (short-lived, like [`Completion`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CompletionDoc {
    Upsert { intent: Option<i64>, record: RecordDoc },
    Remove { intent: Option<i64>, address: String, deposed: String },
    Depose { address: String, token: String },
    Close { intent: i64, outcome: String },
}

impl CompletionDoc {
    pub fn new(c: &Completion) -> CompletionDoc {
        match c {
            Completion::Upsert { intent, record } => CompletionDoc::Upsert { intent: *intent, record: RecordDoc::from_record(record) },
            Completion::Remove { intent, address, deposed } => CompletionDoc::Remove { intent: *intent, address: address.clone(), deposed: deposed.clone() },
            Completion::Depose { address, token } => CompletionDoc::Depose { address: address.clone(), token: token.clone() },
            Completion::Close { intent, outcome } => CompletionDoc::Close { intent: *intent, outcome: outcome.clone() },
        }
    }
}

/// What one journal entry records: one `Store` call that changed something.
/// Results computed at write time (the serial, intent ids) are in the entry,
/// so replaying it needs nothing but the state before it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    BeginRun { serial: i64, started_at: String, command: String },
    FinishRun { serial: i64, finished_at: String, status: String, counts: [i64; 4] },
    WriteIntents { intents: Vec<IntentDoc> },
    Complete { serial: i64, completed_at: String, completions: Vec<CompletionDoc> },
    SetOutputs { outputs: Vec<OutputDoc> },
    RemoveInstance { address: String },
    MoveInstance { from: String, to: String, resource: String },
}

/// `journal/<seq>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntryDoc {
    pub format: u32,
    pub seq: u64,
    /// A random id per write, so a write retried after a lost answer
    /// recognises itself.
    pub writer: String,
    pub at: String,
    #[serde(flatten)]
    pub op: Op,
}

/// `snapshot.json`: the state after journal entry `seq`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotDoc {
    pub format: u32,
    pub env: String,
    pub seq: u64,
    pub serial: i64,
    pub next_intent: i64,
    pub instances: Vec<RecordDoc>,
    pub outputs: Vec<OutputDoc>,
    /// Unfinished intents only: a finished intent is never read again.
    pub intents: Vec<IntentDoc>,
    pub history: Vec<HistoryEntry>,
}

/// The state of one environment in memory. Instances keep the order in
/// which they were first recorded (SQLite's rowid order).
#[derive(Debug, Clone, Default)]
pub struct EnvState {
    pub serial: i64,
    /// The id the next intent gets (ids are never reused).
    pub next_intent: i64,
    next_row: u64,
    rows: BTreeMap<u64, InstanceRecord>,
    index: BTreeMap<(String, String), u64>,
    pub outputs: BTreeMap<String, OutputRecord>,
    pub intents: BTreeMap<i64, IntentDoc>,
    pub history: BTreeMap<i64, HistoryEntry>,
}

impl EnvState {
    pub fn new() -> EnvState {
        EnvState { next_intent: 1, ..EnvState::default() }
    }

    pub fn from_doc(doc: &SnapshotDoc) -> EnvState {
        let mut state = EnvState::new();
        state.serial = doc.serial;
        state.next_intent = doc.next_intent.max(1);
        for r in &doc.instances {
            state.upsert(r.to_record());
        }
        for o in &doc.outputs {
            state.outputs.insert(o.name.clone(), OutputRecord { value: o.value.clone(), sensitive: o.sensitive });
        }
        for i in &doc.intents {
            state.next_intent = state.next_intent.max(i.id + 1);
            state.intents.insert(i.id, i.clone());
        }
        for h in &doc.history {
            state.history.insert(h.serial, h.clone());
        }
        state
    }

    pub fn to_doc(&self, env: &str, seq: u64) -> SnapshotDoc {
        SnapshotDoc {
            format: FORMAT,
            env: env.to_string(),
            seq,
            serial: self.serial,
            next_intent: self.next_intent,
            instances: self.rows.values().map(RecordDoc::from_record).collect(),
            outputs: self.output_docs(),
            intents: self.intents.values().cloned().collect(),
            history: self.history.values().cloned().collect(),
        }
    }

    pub fn to_snapshot(&self, env: &str) -> Snapshot {
        Snapshot {
            env: env.to_string(),
            serial: self.serial,
            instances: self.rows.values().map(|r| (r.key(), r.clone())).collect(),
            outputs: self.outputs.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        }
    }

    pub fn output_docs(&self) -> Vec<OutputDoc> {
        self.outputs.iter().map(|(name, o)| OutputDoc { name: name.clone(), value: o.value.clone(), sensitive: o.sensitive }).collect()
    }

    pub fn get(&self, address: &str, deposed: &str) -> Option<&InstanceRecord> {
        let row = self.index.get(&(address.to_string(), deposed.to_string()))?;
        self.rows.get(row)
    }

    /// Keys of every record of an address, current and deposed.
    pub fn keys_of(&self, address: &str) -> Vec<(String, String)> {
        self.index.range((address.to_string(), String::new())..).take_while(|(k, _)| k.0 == address).map(|(k, _)| k.clone()).collect()
    }

    /// `INSERT … ON CONFLICT DO UPDATE`: a new record goes last, an update keeps its place.
    fn upsert(&mut self, record: InstanceRecord) {
        match self.index.get(&record.key()) {
            Some(row) => {
                self.rows.insert(*row, record);
            }
            None => {
                let row = self.next_row;
                self.next_row += 1;
                self.index.insert(record.key(), row);
                self.rows.insert(row, record);
            }
        }
    }

    fn remove(&mut self, key: &(String, String)) -> bool {
        match self.index.remove(key) {
            Some(row) => self.rows.remove(&row).is_some(),
            None => false,
        }
    }

    /// `UPDATE … SET address/deposed = …`: the record keeps its place.
    fn rekey(&mut self, from: &(String, String), to: (String, String), resource: Option<&str>) {
        let Some(row) = self.index.remove(from) else { return };
        if to != *from {
            self.remove(&to);
        }
        if let Some(record) = self.rows.get_mut(&row) {
            record.address = to.0.clone();
            record.deposed = to.1.clone();
            if let Some(resource) = resource {
                record.resource = resource.to_string();
            }
        }
        self.index.insert(to, row);
    }

    /// Folds one journal entry into the state.
    pub fn apply(&mut self, op: &Op) {
        match op {
            Op::BeginRun { serial, started_at, command } => {
                self.serial = *serial;
                self.history.insert(
                    *serial,
                    HistoryEntry {
                        serial: *serial,
                        started_at: started_at.clone(),
                        finished_at: None,
                        command: command.clone(),
                        status: "running".into(),
                        created: 0,
                        updated: 0,
                        replaced: 0,
                        deleted: 0,
                    },
                );
            }
            Op::FinishRun { serial, finished_at, status, counts } => {
                if let Some(h) = self.history.get_mut(serial) {
                    h.finished_at = Some(finished_at.clone());
                    h.status = status.clone();
                    [h.created, h.updated, h.replaced, h.deleted] = *counts;
                }
            }
            Op::WriteIntents { intents } => {
                for i in intents {
                    self.next_intent = self.next_intent.max(i.id + 1);
                    self.intents.insert(i.id, i.clone());
                }
            }
            Op::Complete { completions, .. } => {
                for c in completions {
                    match c {
                        CompletionDoc::Upsert { intent, record } => {
                            self.upsert(record.to_record());
                            if let Some(id) = intent {
                                self.intents.remove(id);
                            }
                        }
                        CompletionDoc::Remove { intent, address, deposed } => {
                            self.remove(&(address.clone(), deposed.clone()));
                            if let Some(id) = intent {
                                self.intents.remove(id);
                            }
                        }
                        CompletionDoc::Depose { address, token } => {
                            self.rekey(&(address.clone(), String::new()), (address.clone(), token.clone()), None);
                        }
                        CompletionDoc::Close { intent, .. } => {
                            self.intents.remove(intent);
                        }
                    }
                }
            }
            Op::SetOutputs { outputs } => {
                self.outputs = outputs.iter().map(|o| (o.name.clone(), OutputRecord { value: o.value.clone(), sensitive: o.sensitive })).collect();
            }
            Op::RemoveInstance { address } => {
                for key in self.keys_of(address) {
                    self.remove(&key);
                }
            }
            Op::MoveInstance { from, to, resource } => {
                self.rekey(&(from.clone(), String::new()), (to.clone(), String::new()), Some(resource));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(address: &str, n: i64) -> InstanceRecord {
        let mut inputs = Map::default();
        inputs.insert("n".into(), Value::Int(n));
        inputs.insert("f".into(), Value::Float(1.5));
        inputs.insert("l".into(), Value::List(vec![Value::String("x".into()), Value::Null, Value::Bool(true)]));
        InstanceRecord {
            address: address.into(),
            deposed: String::new(),
            resource: address.into(),
            provider: "core".into(),
            rtype: "data".into(),
            attrs: inputs.clone(),
            inputs,
            sensitive: vec!["n".into()],
            deps: vec!["core.data.z".into()],
        }
    }

    fn upsert(address: &str, n: i64) -> CompletionDoc {
        CompletionDoc::new(&Completion::Upsert { intent: None, record: record(address, n) })
    }

    fn complete(completions: Vec<CompletionDoc>) -> Op {
        Op::Complete { serial: 1, completed_at: "t".into(), completions }
    }

    fn addresses(state: &EnvState) -> Vec<(String, String)> {
        state.to_snapshot("e").instances.keys().cloned().collect()
    }

    #[test]
    fn records_keep_their_first_place_through_updates_deposes_and_moves() {
        let mut s = EnvState::new();
        s.apply(&complete(vec![upsert("a", 1), upsert("b", 1), upsert("c", 1)]));
        s.apply(&complete(vec![upsert("a", 2)]));
        s.apply(&complete(vec![CompletionDoc::Depose { address: "b".into(), token: "t1".into() }]));
        s.apply(&Op::MoveInstance { from: "c".into(), to: "d".into(), resource: "d".into() });
        let want: Vec<(String, String)> = vec![("a".into(), "".into()), ("b".into(), "t1".into()), ("d".into(), "".into())];
        assert_eq!(addresses(&s), want);
        assert_eq!(s.get("a", "").map(|r| r.inputs["n"].clone()), Some(Value::Int(2)));
        assert_eq!(s.get("d", "").map(|r| r.resource.as_str()), Some("d"));
        s.apply(&complete(vec![upsert("b", 3)]));
        s.apply(&Op::RemoveInstance { address: "b".into() });
        assert_eq!(addresses(&s), vec![("a".to_string(), String::new()), ("d".into(), "".into())]);
    }

    #[test]
    fn a_snapshot_document_round_trips_the_state() {
        let mut s = EnvState::new();
        s.apply(&Op::BeginRun { serial: 1, started_at: "t0".into(), command: "apply".into() });
        let intent = Intent {
            id: 0,
            address: "x".into(),
            deposed: String::new(),
            action: "create".into(),
            token: "tok".into(),
            resource: "x".into(),
            provider: "core".into(),
            rtype: "data".into(),
            inputs: record("x", 1).inputs,
            deps: vec![],
            sensitive: vec!["n".into()],
        };
        s.apply(&Op::WriteIntents { intents: vec![IntentDoc::new(7, 1, "t0", &intent)] });
        s.apply(&complete(vec![upsert("b", 1), upsert("a", 1)]));
        s.apply(&Op::SetOutputs {
            outputs: vec![
                OutputDoc { name: "z".into(), value: serde_json::json!(1), sensitive: true },
                OutputDoc { name: "a".into(), value: serde_json::json!("s"), sensitive: false },
            ],
        });
        s.apply(&Op::FinishRun { serial: 1, finished_at: "t1".into(), status: "applied".into(), counts: [2, 0, 0, 0] });
        let doc = s.to_doc("e", 5);
        let text = serde_json::to_string(&doc).unwrap();
        let back = EnvState::from_doc(&serde_json::from_str(&text).unwrap());
        assert_eq!(back.to_snapshot("e").instances, s.to_snapshot("e").instances);
        assert_eq!(back.get("a", ""), Some(&record("a", 1)), "values round-trip exactly (ints, floats, lists, nulls)");
        assert_eq!(back.outputs.keys().collect::<Vec<_>>(), vec!["a", "z"], "outputs are ordered by name");
        assert_eq!(back.next_intent, 8);
        assert_eq!(back.intents[&7].to_intent().inputs, intent.inputs);
        assert_eq!(back.history[&1].status, "applied");
        assert_eq!(back.history[&1].created, 2);
        assert_eq!(back.serial, 1);
    }

    #[test]
    fn a_journal_entry_is_flat_json_with_its_operation_named() {
        let entry = EntryDoc { format: FORMAT, seq: 3, writer: "w".into(), at: "t".into(), op: Op::RemoveInstance { address: "a".into() } };
        let text = serde_json::to_string(&entry).unwrap();
        assert_eq!(text, r#"{"format":1,"seq":3,"writer":"w","at":"t","op":"remove_instance","address":"a"}"#);
        let back: EntryDoc = serde_json::from_str(&text).unwrap();
        assert!(matches!(back.op, Op::RemoveInstance { ref address } if address == "a"));
    }
}
