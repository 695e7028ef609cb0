//! Drift: what the recorded state says versus what the providers read back.
//! Pure: the caller reads the objects (see `exec::refresh`).
//!
//! Values are normalised before they are compared so that only real changes
//! show: strings that both parse as JSON (or both as YAML) compare by content
//! (key order and layout do not matter), other strings ignore trailing
//! whitespace on each line and at the end; numbers compare by value.

use crate::providers::{Registry, ResourceSchema};
use crate::state::model::{InstanceRecord, Snapshot};
use crate::value::{Map, Value};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    InSync,
    Changed,
    Deleted,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttributeDrift {
    pub name: String,
    /// Shown values: `(sensitive)` for sensitive attributes.
    pub recorded: serde_json::Value,
    pub actual: serde_json::Value,
    #[serde(skip)]
    pub sensitive: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ObjectDrift {
    pub address: String,
    pub deposed: String,
    pub status: Status,
    pub attributes: Vec<AttributeDrift>,
}

/// Compares every recorded object with what was read back (`None`: gone).
/// Attributes the provider's schema marks `derived` are not compared.
pub fn compare(prior: &Snapshot, observed: &[((String, String), Option<Map>)], registry: &Registry) -> Vec<ObjectDrift> {
    let mut out = Vec::with_capacity(observed.len());
    for (key, seen) in observed {
        let Some(rec) = prior.instances.get(key) else { continue };
        let (status, attributes) = match seen {
            None => (Status::Deleted, vec![]),
            Some(actual) => {
                let schema = registry.resource_schema(rec.provider.split('.').next().unwrap_or(""), &rec.rtype);
                let attrs = attribute_drift(rec, actual, schema);
                (if attrs.is_empty() { Status::InSync } else { Status::Changed }, attrs)
            }
        };
        out.push(ObjectDrift { address: rec.address.clone(), deposed: rec.deposed.clone(), status, attributes });
    }
    out
}

fn attribute_drift(rec: &InstanceRecord, actual: &Map, schema: Option<&ResourceSchema>) -> Vec<AttributeDrift> {
    let mut out = Vec::new();
    for (name, recorded) in &rec.attrs {
        if schema.and_then(|s| s.attributes.get(name.as_str())).is_some_and(|a| a.derived) {
            continue;
        }
        // Attributes a provider does not report cannot drift.
        let Some(now) = actual.get(name) else { continue };
        if equivalent(recorded, now) {
            continue;
        }
        let sensitive = rec.sensitive.contains(name);
        let shown = |v: &Value| if sensitive { serde_json::Value::String("(sensitive)".into()) } else { v.to_json() };
        out.push(AttributeDrift { name: name.clone(), recorded: shown(recorded), actual: shown(now), sensitive });
    }
    out
}

/// Equality after normalisation.
pub fn equivalent(a: &Value, b: &Value) -> bool {
    if a == b {
        return true;
    }
    match (a.peel(), b.peel()) {
        (Value::String(x), Value::String(y)) => same_text(x, y),
        (Value::List(x), Value::List(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| equivalent(p, q)),
        (Value::Map(x), Value::Map(y)) => x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equivalent(v, w))),
        _ => false,
    }
}

fn same_text(x: &str, y: &str) -> bool {
    let looks_structured = |s: &str| matches!(s.trim_start().chars().next(), Some('{' | '['));
    if looks_structured(x) && looks_structured(y) {
        if let (Ok(p), Ok(q)) = (serde_json::from_str::<serde_json::Value>(x), serde_json::from_str::<serde_json::Value>(y)) {
            return Value::from_json(&p).canonical() == Value::from_json(&q).canonical();
        }
    }
    if x.contains(':') && y.contains(':') {
        if let (Ok(p), Ok(q)) = (serde_yaml::from_str::<serde_json::Value>(x), serde_yaml::from_str::<serde_json::Value>(y)) {
            if p.is_object() || p.is_array() {
                return Value::from_json(&p).canonical() == Value::from_json(&q).canonical();
            }
        }
    }
    let norm = |s: &str| s.lines().map(str::trim_end).collect::<Vec<_>>().join("\n").trim_end().to_string();
    norm(x) == norm(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_key_order_are_not_drift() {
        assert!(equivalent(&Value::str("{\"a\": 1, \"b\": [1, 2]}"), &Value::str("{\n  \"b\": [1,2],\n  \"a\": 1\n}")));
        assert!(equivalent(&Value::str("a: 1\nb:\n  - x\n"), &Value::str("b: [x]\na: 1")));
        assert!(equivalent(&Value::str("line  \nnext\n\n"), &Value::str("line\nnext")));
        assert!(equivalent(&Value::Int(3), &Value::Float(3.0)));
    }

    #[test]
    fn real_changes_are_drift() {
        assert!(!equivalent(&Value::str("{\"a\": 1}"), &Value::str("{\"a\": 2}")));
        assert!(!equivalent(&Value::str("a: 1"), &Value::str("a: 2")));
        assert!(!equivalent(&Value::str("x"), &Value::str(" x")));
        assert!(!equivalent(&Value::str("port: 80"), &Value::str("port: \"80\"")));
    }
}
