//! Reading every managed object back through its provider, in parallel
//! (for `plan --refresh` and `drift`), and listing unmanaged objects.

use crate::diagnostic::{Diagnostic, Diags};
use crate::providers::{ListRequest, ObjectRef, Provider, ProviderContext, ReadRequest, Registry};
use crate::state::model::Snapshot;
use crate::value::Map;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// What each recorded object looks like now (`None`: it no longer exists).
pub type Observations = Vec<((String, String), Option<Map>)>;

/// Provider configurations by key (`name` or `name.alias`), as evaluated
/// from the configuration and recorded state.
pub type Configs = indexmap::IndexMap<String, Map>;

/// The configured provider for a key, configured once per run.
pub fn provider_for(
    registry: &Registry,
    ctx: &ProviderContext,
    configs: &Configs,
    key: &str,
    cache: &mut BTreeMap<String, Arc<dyn Provider>>,
) -> Result<Arc<dyn Provider>, Diagnostic> {
    if let Some(p) = cache.get(key) {
        return Ok(p.clone());
    }
    let name = key.split('.').next().unwrap_or("");
    let empty = Map::default();
    let p = registry.configure(name, configs.get(key).unwrap_or(&empty), ctx)?;
    cache.insert(key.to_string(), p.clone());
    Ok(p)
}

/// Reads every recorded object, at most `parallelism` at a time.
pub async fn read_all(snapshot: &Snapshot, registry: &Registry, ctx: &ProviderContext, configs: &Configs, parallelism: usize) -> Result<Observations, Diags> {
    let mut diags = Vec::new();
    let mut cache = BTreeMap::new();
    let sem = Arc::new(tokio::sync::Semaphore::new(parallelism.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for (i, (key, rec)) in snapshot.instances.iter().enumerate() {
        let provider = match provider_for(registry, ctx, configs, &rec.provider, &mut cache) {
            Ok(p) => p,
            Err(d) => {
                diags.push(d);
                continue;
            }
        };
        let sem = sem.clone();
        let key = key.clone();
        let object = ObjectRef { address: rec.address.clone(), rtype: rec.rtype.clone(), token: String::new() };
        let (inputs, prior) = (rec.inputs.clone(), Some(rec.attrs.clone()));
        let secrets = crate::providers::secrets_of_record(&rec.attrs, &rec.inputs, &rec.sensitive);
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            (i, key, provider.read(ReadRequest { object, inputs, prior }).await.map_err(|d| d.redact(&secrets)))
        });
    }
    let mut out: Vec<(usize, (String, String), Option<Map>)> = Vec::with_capacity(snapshot.instances.len());
    while let Some(joined) = set.join_next().await {
        let Ok((i, key, result)) = joined else { continue };
        match result {
            Ok(seen) => out.push((i, key, seen)),
            Err(d) => {
                let address = key.0.clone();
                diags.push(d.note(format!("while reading `{address}`")));
            }
        }
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    out.sort_by_key(|(i, ..)| *i);
    Ok(out.into_iter().map(|(_, k, v)| (k, v)).collect())
}

/// Puts what was read into the snapshot: gone objects leave it, and an
/// object takes what was read where `plan::drift::changed_attributes` (the
/// comparison `drift` reports with) finds a change, and nowhere else.
pub fn apply_observations(snapshot: &mut Snapshot, observations: Observations, registry: &Registry) {
    *snapshot = crate::plan::drift::refreshed(snapshot, &observations, registry);
}

/// Objects that exist beside the managed ones but are not managed, per
/// provider type: (type, description). Each provider lists only where its
/// managed objects live; an object listed is unmanaged only if no managed
/// object, of any type or provider, claims it (`Provider::claims`: a file a
/// `file.file` writes inside a `file.tree`'s target is the file's, not a
/// stray of the tree). Each object is reported once.
pub async fn unmanaged(snapshot: &Snapshot, registry: &Registry, ctx: &ProviderContext, configs: &Configs) -> Result<Vec<(String, String)>, Diags> {
    let mut by_type: BTreeMap<(String, String), (Vec<Map>, Vec<Map>)> = BTreeMap::new();
    for rec in snapshot.instances.values() {
        let entry = by_type.entry((rec.provider.clone(), rec.rtype.clone())).or_default();
        entry.0.push(rec.inputs.clone());
        entry.1.push(rec.attrs.clone());
    }
    let mut cache = BTreeMap::new();
    let mut out = Vec::new();
    let mut diags = Vec::new();
    let mut claimed: BTreeSet<String> = BTreeSet::new();
    for rec in snapshot.instances.values() {
        match provider_for(registry, ctx, configs, &rec.provider, &mut cache) {
            Ok(p) => claimed.extend(p.claims(&rec.rtype, &rec.inputs, &rec.attrs)),
            Err(d) => diags.push(d),
        }
    }
    for ((provider, rtype), (managed, recorded)) in by_type {
        let others: Vec<(String, Map)> =
            snapshot.instances.values().filter(|r| r.provider == provider && r.rtype != rtype).map(|r| (r.rtype.clone(), r.inputs.clone())).collect();
        let p = match provider_for(registry, ctx, configs, &provider, &mut cache) {
            Ok(p) => p,
            Err(d) => {
                diags.push(d);
                continue;
            }
        };
        match p.list(ListRequest { rtype: rtype.clone(), managed, recorded, others }).await {
            Ok(found) => {
                let kind = format!("{}.{rtype}", provider.split('.').next().unwrap_or(""));
                for f in found {
                    if claimed.insert(f.clone()) {
                        out.push((kind.clone(), f));
                    }
                }
            }
            Err(d) => diags.push(d),
        }
    }
    if diags.is_empty() {
        Ok(out)
    } else {
        Err(diags.into_iter().fold(Vec::new(), |mut acc: Diags, d| {
            if !acc.iter().any(|x| x.code == d.code && x.message == d.message) {
                acc.push(d);
            }
            acc
        }))
    }
}
