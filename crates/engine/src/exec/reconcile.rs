//! Reconciliation of unfinished intents: what a killed run left behind.
//!
//! For each intent that was made durable but never completed, read the real
//! object back and record what is true: an object that exists is recorded
//! (so nothing is orphaned), one that does not is forgotten (so nothing is
//! duplicated). The next plan then converges from there.
//!
//! An interrupted update is the delicate case: what is read back may be the
//! update's result, or the object as it was before (possibly edited by hand,
//! which is why `drift --fix` and `apply --refresh` update it). The read-back
//! is never recorded as if Plinth had applied it: unless every input it
//! reports equals what the update applies, the record keeps the attributes
//! Plinth last applied (so `drift` still shows the difference) and takes the
//! observed inputs (so the next plan, even without `--refresh`, updates again).

use crate::diagnostic::Diagnostic;
use crate::plan;
use crate::providers::{ObjectRef, ProviderContext, ReadRequest, Registry};
use crate::state::model::InstanceRecord;
use crate::state::{Completion, Store};

#[derive(Debug, Default)]
pub struct Reconciled {
    pub recorded: Vec<String>,
    pub forgotten: Vec<String>,
    pub unchanged: Vec<String>,
}

impl Reconciled {
    /// True when there was nothing to reconcile (the state was not written).
    pub fn is_empty(&self) -> bool {
        self.recorded.is_empty() && self.forgotten.is_empty() && self.unchanged.is_empty()
    }
}

pub async fn reconcile(
    store: &mut dyn Store,
    registry: &Registry,
    provider_ctx: &ProviderContext,
    configs: &super::refresh::Configs,
) -> Result<Reconciled, Diagnostic> {
    let intents = store.unfinished_intents()?;
    let mut out = Reconciled::default();
    if intents.is_empty() {
        return Ok(out);
    }
    let snapshot = store.snapshot()?;
    let serial = snapshot.serial;
    let mut cache = std::collections::BTreeMap::new();
    let mut unsettled: Vec<Diagnostic> = Vec::new();
    for intent in intents {
        let provider_name = intent.provider.split('.').next().unwrap_or("").to_string();
        let provider = super::refresh::provider_for(registry, provider_ctx, configs, &intent.provider, &mut cache)?;
        let recorded = snapshot.instances.get(&(intent.address.clone(), intent.deposed.clone()));
        let object = ObjectRef { address: intent.address.clone(), rtype: intent.rtype.clone(), token: intent.token.clone() };
        let (inputs, prior) = match intent.action.as_str() {
            "create" => (intent.inputs.clone(), None),
            _ => match recorded {
                Some(r) => (r.inputs.clone(), Some(r.attrs.clone())),
                None => (intent.inputs.clone(), None),
            },
        };
        let mut secrets = match recorded {
            Some(r) => crate::providers::secrets_of_record(&r.attrs, &r.inputs, &r.sensitive),
            None => vec![],
        };
        secrets.extend(crate::providers::secrets_of_record(&intent.inputs, &intent.inputs, &intent.sensitive));
        let observed = match provider.read(ReadRequest { object, inputs: inputs.clone(), prior }).await {
            Ok(o) => o,
            // An unfinished create the provider cannot look for (P6901):
            // the others are still settled, then every such one is named.
            Err(d) if d.code == "P6901" => {
                unsettled.push(d.redact(&secrets));
                continue;
            }
            Err(d) => return Err(d.redact(&secrets)),
        };
        let completion = match (intent.action.as_str(), observed) {
            ("create", Some(attrs)) => {
                out.recorded.push(intent.address.clone());
                let sensitive = plan::sensitive_attrs(registry, &provider_name, &intent.rtype, &attrs, &intent.sensitive);
                Completion::Upsert {
                    intent: Some(intent.id),
                    record: InstanceRecord {
                        address: intent.address.clone(),
                        deposed: intent.deposed.clone(),
                        resource: intent.resource.clone(),
                        provider: intent.provider.clone(),
                        rtype: intent.rtype.clone(),
                        inputs: intent.inputs.clone(),
                        attrs,
                        sensitive,
                        deps: intent.deps.clone(),
                    },
                }
            }
            (action, None) => {
                out.forgotten.push(intent.address.clone());
                // An interrupted create that left no object changes nothing:
                // a record already there (an object deleted outside Plinth,
                // being re-created by `drift --fix` or `apply --refresh`)
                // still describes what was last applied, so drift keeps
                // reporting it deleted and the fix plan re-creates it.
                if recorded.is_some() && action != "create" {
                    Completion::Remove { intent: Some(intent.id), address: intent.address.clone(), deposed: intent.deposed.clone() }
                } else {
                    Completion::Close { intent: intent.id, outcome: "reconciled: did not happen".into() }
                }
            }
            ("update", Some(attrs)) => {
                out.unchanged.push(intent.address.clone());
                match recorded {
                    Some(r) => Completion::Upsert { intent: Some(intent.id), record: settle_update(registry, &provider_name, &intent, r, attrs) },
                    None => Completion::Close { intent: intent.id, outcome: "reconciled".into() },
                }
            }
            (_, Some(_)) => {
                out.unchanged.push(intent.address.clone());
                Completion::Close { intent: intent.id, outcome: "reconciled: still exists".into() }
            }
        };
        store.complete(serial, &[completion])?;
    }
    if let Some(first) = unsettled.first() {
        let mut d = first.clone();
        for more in &unsettled[1..] {
            d.notes.push(format!("also: {}", more.message));
        }
        return Err(d);
    }
    Ok(out)
}

/// The record for an object whose update was interrupted, given what reading
/// it back (`observed`) shows. Every input the provider reports equal to the
/// intent's inputs (and at least one reported): the update happened, record
/// it as a completed update. Otherwise it did not (or not entirely): keep the attributes as last
/// applied, and record the inputs as observed (as `--refresh` does) so that
/// plans see the difference with the configuration and update again.
fn settle_update(
    registry: &Registry,
    provider_name: &str,
    intent: &crate::state::Intent,
    recorded: &InstanceRecord,
    observed: crate::value::Map,
) -> InstanceRecord {
    // A provider that reports none of the inputs cannot tell: not applied.
    let reported: Vec<bool> = intent.inputs.iter().filter_map(|(k, v)| observed.get(k).map(|seen| seen == v)).collect();
    let applied = !reported.is_empty() && reported.iter().all(|same| *same);
    if applied {
        let mut sensitive = plan::sensitive_attrs(registry, provider_name, &intent.rtype, &observed, &intent.sensitive);
        for name in &recorded.sensitive {
            if !sensitive.contains(name) {
                sensitive.push(name.clone());
            }
        }
        return InstanceRecord { inputs: intent.inputs.clone(), attrs: observed, sensitive, deps: intent.deps.clone(), ..recorded.clone() };
    }
    let mut inputs = recorded.inputs.clone();
    for (k, v) in &observed {
        if inputs.contains_key(k) {
            inputs.insert(k.clone(), v.clone());
        }
    }
    InstanceRecord { inputs, ..recorded.clone() }
}
