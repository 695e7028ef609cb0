//! State records: plain data shared by `plan` (which reads them) and the
//! stores (which persist them). No SQL here.

use crate::value::Map;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// One object Plinth manages (or a deposed one awaiting deletion).
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRecord {
    /// Instance address, e.g. `file.file.config["a"]`.
    pub address: String,
    /// Empty for the current object; a token for a deposed one.
    pub deposed: String,
    /// Declaration address, e.g. `file.file.config`.
    pub resource: String,
    /// Provider configuration key: `random`, `postgres.admin`.
    pub provider: String,
    pub rtype: String,
    /// The configuration the object was last applied with.
    pub inputs: Map,
    /// Everything the provider reported (inputs and computed attributes).
    pub attrs: Map,
    /// Attribute names whose values are sensitive.
    pub sensitive: Vec<String>,
    /// Declaration addresses of the resources it depends on.
    pub deps: Vec<String>,
}

impl InstanceRecord {
    pub fn key(&self) -> (String, String) {
        (self.address.clone(), self.deposed.clone())
    }
}

/// The recorded state of one environment, as read at the start of a run.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub env: String,
    pub serial: i64,
    /// Keyed by (address, deposed).
    pub instances: IndexMap<(String, String), InstanceRecord>,
    pub outputs: IndexMap<String, OutputRecord>,
}

impl Snapshot {
    pub fn get(&self, address: &str) -> Option<&InstanceRecord> {
        self.instances.get(&(address.to_string(), String::new()))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputRecord {
    pub value: serde_json::Value,
    pub sensitive: bool,
}

/// One run in the history of an environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub serial: i64,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub command: String,
    pub status: String,
    pub created: i64,
    pub updated: i64,
    pub replaced: i64,
    pub deleted: i64,
}

/// One stored drift report (values already redacted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftRecord {
    pub at: String,
    pub serial: i64,
    pub checked: i64,
    pub drifted: i64,
    pub unmanaged: i64,
    pub report: serde_json::Value,
}
