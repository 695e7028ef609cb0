//! Reconciliation of unfinished intents: what a killed run left behind.
//!
//! For each intent that was made durable but never completed, read the real
//! object back and record what is true: an object that exists is recorded
//! (so nothing is orphaned), one that does not is forgotten (so nothing is
//! duplicated). The next plan then converges from there.

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

pub async fn reconcile(store: &mut dyn Store, registry: &Registry, provider_ctx: &ProviderContext, configs: &super::refresh::Configs) -> Result<Reconciled, Diagnostic> {
    let intents = store.unfinished_intents()?;
    let mut out = Reconciled::default();
    if intents.is_empty() {
        return Ok(out);
    }
    let snapshot = store.snapshot()?;
    let serial = snapshot.serial;
    let mut cache = std::collections::BTreeMap::new();
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
        let observed = provider.read(ReadRequest { object, inputs: inputs.clone(), prior }).await.map_err(|d| d.redact(&secrets))?;
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
            (_, None) => {
                out.forgotten.push(intent.address.clone());
                if recorded.is_some() {
                    Completion::Remove { intent: Some(intent.id), address: intent.address.clone(), deposed: intent.deposed.clone() }
                } else {
                    Completion::Close { intent: intent.id, outcome: "reconciled: did not happen".into() }
                }
            }
            ("update", Some(attrs)) => {
                // Keep the old inputs: if the update did not happen the next
                // plan updates again; if it did, updating again is harmless.
                out.unchanged.push(intent.address.clone());
                match recorded {
                    Some(r) => Completion::Upsert { intent: Some(intent.id), record: InstanceRecord { attrs, ..r.clone() } },
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
    Ok(out)
}
