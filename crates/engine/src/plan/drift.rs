//! Drift: what the recorded state says versus what the providers read back.
//! Pure: the caller reads the objects (see `exec::refresh`).
//!
//! Values are normalised before they are compared so that only real changes
//! show: strings that both parse as JSON (or both as YAML) compare by content
//! (key order and layout do not matter), other strings ignore trailing
//! whitespace on each line and at the end; numbers compare by value.
//!
//! Invariant: [`changed_attributes`] is the one decision of whether an object
//! read back differs from its record. `drift` reports with it, and
//! [`refreshed`] (what `plan --refresh` and `drift --fix` plan against) takes
//! an observed value only where it decides a change, so a difference drift
//! calls layout never becomes an update. [`remediation`] keeps, of a plan
//! made against the refreshed state, only the changes of drifted objects:
//! drift's counts and its remediation's counts describe the same objects.

use crate::plan::{Action, Plan};
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
                let attrs = attribute_drift(rec, actual, schema_of(registry, rec));
                (if attrs.is_empty() { Status::InSync } else { Status::Changed }, attrs)
            }
        };
        out.push(ObjectDrift { address: rec.address.clone(), deposed: rec.deposed.clone(), status, attributes });
    }
    out
}

fn schema_of<'a>(registry: &'a Registry, rec: &InstanceRecord) -> Option<&'a ResourceSchema> {
    registry.resource_schema(rec.provider.split('.').next().unwrap_or(""), &rec.rtype)
}

/// The recorded attributes that what was read back changed: the one
/// decision of "changed" for drift, refresh plans and fix plans. Derived
/// attributes never change on their own; attributes a provider does not
/// report cannot drift; values compare after normalisation ([`equivalent`]).
pub fn changed_attributes<'a>(rec: &'a InstanceRecord, actual: &Map, schema: Option<&ResourceSchema>) -> Vec<&'a str> {
    let mut out = Vec::new();
    for (name, recorded) in &rec.attrs {
        if schema.and_then(|s| s.attributes.get(name.as_str())).is_some_and(|a| a.derived) {
            continue;
        }
        let Some(now) = actual.get(name) else { continue };
        if !equivalent(recorded, now) {
            out.push(name.as_str());
        }
    }
    out
}

fn attribute_drift(rec: &InstanceRecord, actual: &Map, schema: Option<&ResourceSchema>) -> Vec<AttributeDrift> {
    let mut out = Vec::new();
    for name in changed_attributes(rec, actual, schema) {
        let (Some(recorded), Some(now)) = (rec.attrs.get(name), actual.get(name)) else { continue };
        let sensitive = rec.sensitive.iter().any(|s| s == name);
        let shown = |v: &Value| if sensitive { serde_json::Value::String("(sensitive)".into()) } else { v.to_json() };
        out.push(AttributeDrift { name: name.to_string(), recorded: shown(recorded), actual: shown(now), sensitive });
    }
    out
}

/// The state as it is now, for planning against reality: gone objects
/// leave it; an object whose read-back [`changed_attributes`] finds nothing
/// in keeps its record as it is (layout is not a change, and must not
/// become an update); in a changed object the changed attributes, the
/// derived ones and the ones never recorded take what was read, and inputs
/// follow the attributes of the same name.
pub fn refreshed(prior: &Snapshot, observations: &[((String, String), Option<Map>)], registry: &Registry) -> Snapshot {
    let mut out = prior.clone();
    for (key, seen) in observations {
        match seen {
            None => {
                out.instances.shift_remove(key);
            }
            Some(actual) => {
                let Some(rec) = out.instances.get_mut(key) else { continue };
                let schema = schema_of(registry, rec);
                let changed: Vec<String> = changed_attributes(rec, actual, schema).into_iter().map(str::to_string).collect();
                if changed.is_empty() {
                    continue;
                }
                let derived = |name: &str| schema.and_then(|s| s.attributes.get(name)).is_some_and(|a| a.derived);
                for (name, now) in actual {
                    let take = changed.contains(name) || derived(name) || !rec.attrs.contains_key(name);
                    if !take {
                        continue;
                    }
                    if rec.inputs.contains_key(name) {
                        rec.inputs.insert(name.clone(), now.clone());
                    }
                    rec.attrs.insert(name.clone(), now.clone());
                }
            }
        }
    }
    out
}

/// The part of `plan` (made against the [`refreshed`] state) that undoes
/// drift: the changes of the objects `drift` found changed or deleted.
/// What the configuration asks for beyond that (a resource never applied,
/// an attribute edited since the last apply, an orphan to destroy) is not
/// remediation and stays for `plinth apply`; outputs are left as recorded.
pub fn remediation(mut plan: Plan, drift: &[ObjectDrift]) -> Plan {
    let drifted: std::collections::HashSet<(&str, &str)> =
        drift.iter().filter(|d| d.status != Status::InSync).map(|d| (d.address.as_str(), d.deposed.as_str())).collect();
    plan.changes.retain(|c| c.action != Action::NoOp && drifted.contains(&(c.address.as_str(), c.deposed.as_str())));
    plan.outputs.clear();
    plan
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
