//! State surgery: `state list` selections, `state rm`, `state mv`,
//! `state migrate`, `state rekey`. Each takes the environment's lock and
//! refuses a state with unfinished operations (`P5008`) before writing.

use crate::diagnostic::Diagnostic;
use crate::state::model::Snapshot;
use crate::state::{Completion, Store};
use crate::store::acquire;
use crate::{Failed, Operation};
use plinth_base::address::Address;
use std::time::Duration;

/// Whether `address` is selected by `state list` patterns (all when there
/// are none): a pattern matches with `*` wildcards, and a resource or
/// component address also covers its instances and what lies inside it
/// (`file.file.x` covers `file.file.x["a"]`, `module.db` covers
/// `module.db[0].postgres.role.app`).
pub fn address_selected(patterns: &[String], address: &str) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| pattern_matches(p, address))
}

/// One `state list` pattern against one address (see [`address_selected`]).
pub fn pattern_matches(pattern: &str, address: &str) -> bool {
    crate::plan::glob_match(pattern, address) || crate::plan::in_component(pattern, address)
}

/// `state list`: the recorded (address, deposed) pairs the patterns select,
/// sorted. As in Terraform, a pattern that matches nothing is an error.
pub fn listed_addresses(mut all: Vec<(String, String)>, patterns: &[String]) -> Result<Vec<(String, String)>, Failed> {
    let unmatched: Vec<&String> = patterns.iter().filter(|p| !all.iter().any(|(a, _)| pattern_matches(p, a))).collect();
    if let Some(first) = unmatched.first() {
        let list: Vec<String> = unmatched.iter().map(|p| format!("`{p}`")).collect();
        return Err(Failed::bare(Diagnostic::new("P5004", "no such instance in the state").help(format!(
            "{} {} nothing in the state.{} `plinth state list` without patterns shows everything; `*` matches any characters, and a resource or component address covers its instances.",
            list.join(", "),
            if list.len() == 1 { "matches" } else { "match" },
            crate::diagnostic::suggestion(first, all.iter().map(|(a, _)| a.as_str()))
        ))));
    }
    all.retain(|(a, _)| address_selected(patterns, a));
    all.sort();
    Ok(all)
}

/// What `state rm` did: the instances it forgot, in the order given, and
/// what stopped it (a store error, or `P5004` naming the addresses that are
/// not recorded) after forgetting those.
pub struct Removed {
    pub removed: Vec<String>,
    pub error: Option<Failed>,
}

/// `state rm`: forgets instances without destroying them, then purges the
/// removed values from the state files.
pub fn remove(op: &mut Operation, addresses: &[String]) -> Result<Removed, Failed> {
    let mut store = op.open_store()?;
    let guard = acquire(store.as_mut(), "state rm", Duration::ZERO)?;
    // An unfinished create that reconciliation cannot settle (a Terraform
    // provider's object has no identity before its answer, P6901) is
    // forgotten by naming its address: the object, if it was made, is left
    // alone. Any other unfinished operation is reconciled first.
    let unfinished = guard.store.unfinished_intents().map_err(Failed::bare)?;
    let (named, others): (Vec<_>, Vec<_>) = unfinished.into_iter().partition(|i| i.action == "create" && addresses.contains(&i.address));
    if !others.is_empty() {
        refuse_unfinished(guard.store, "remove")?;
    }
    let mut removed = Vec::new();
    let mut missing = Vec::new();
    if !named.is_empty() {
        let serial = guard.store.snapshot().map_err(Failed::bare)?.serial;
        let closes: Vec<Completion> = named
            .iter()
            .map(|i| Completion::Close { intent: i.id, outcome: "forgotten by state rm: the unfinished create was not reconciled".into() })
            .collect();
        if let Err(d) = guard.store.complete(serial, &closes) {
            return Ok(Removed { removed, error: Some(Failed::bare(d)) });
        }
    }
    for a in addresses {
        if named.iter().any(|i| &i.address == a) {
            if let Err(d) = guard.store.remove_instance(a) {
                return Ok(Removed { removed, error: Some(Failed::bare(d)) });
            }
            removed.push(a.clone());
            continue;
        }
        match guard.store.remove_instance(a) {
            Ok(0) => missing.push(a.clone()),
            Ok(_) => removed.push(a.clone()),
            Err(d) => return Ok(Removed { removed, error: Some(Failed::bare(d)) }),
        }
    }
    // The removed values leave no copy in the state files.
    if let Err(d) = guard.store.purge(true) {
        return Ok(Removed { removed, error: Some(Failed::bare(d)) });
    }
    let error = (!missing.is_empty()).then(|| {
        Failed::bare(
            Diagnostic::new("P5004", "no such instance in the state").help(format!("{} not recorded; `plinth state list` shows what is.", missing.join(", "))),
        )
    });
    Ok(Removed { removed, error })
}

/// `state mv`: records instance `from` as `to` (after a rename in the
/// configuration).
pub fn move_instance(op: &mut Operation, from: &str, to: &str) -> Result<(), Failed> {
    let mut store = op.open_store()?;
    let guard = acquire(store.as_mut(), "state mv", Duration::ZERO)?;
    refuse_unfinished(guard.store, "move")?;
    let snap = guard.store.snapshot().map_err(Failed::bare)?;
    if snap.get(to).is_some() {
        return Err(Failed::bare(
            Diagnostic::new("P5005", "destination already recorded").help(format!("`{to}` is already in the state; remove it first with `plinth state rm`.")),
        ));
    }
    let Some(resource) = Address::parse(to).map(|a| a.resource().to_string()) else {
        return Err(Failed::bare(
            Diagnostic::new("P5005", "invalid address").help(format!(
                "`{to}` is not an address like `file.file.name`, `file.file.name[\"key\"]` or, inside a component, `stack.core.file.file.name`."
            )),
        ));
    };
    let n = guard.store.move_instance(from, to, &resource).map_err(Failed::bare)?;
    if n == 0 {
        return Err(Failed::bare(
            Diagnostic::new("P5004", "no such instance in the state")
                .help(format!("`{from}` is not recorded.{}", crate::diagnostic::suggestion(from, snap.instances.values().map(|r| r.address.as_str())))),
        ));
    }
    // What depended on the moved resource depends on its new address
    // too: deletes keep their order (a database before its owner role)
    // although an unchanged instance's record is not rewritten by apply.
    // Written after the move, which is what refuses a state without
    // its current key (P5020); a kill in between loses only this
    // ordering hint, never a record.
    if let Some(old) = snap.get(from).map(|r| r.resource.clone()) {
        let dependents: Vec<Completion> = snap
            .instances
            .values()
            .filter(|r| r.address != from && r.deps.contains(&old) && !r.deps.contains(&resource))
            .map(|r| {
                let mut record = r.clone();
                record.deps.push(resource.clone());
                Completion::Upsert { intent: None, record }
            })
            .collect();
        if !dependents.is_empty() {
            guard.store.complete(snap.serial.max(1), &dependents).map_err(Failed::bare)?;
        }
    }
    Ok(())
}

/// What `state migrate` copied, and where to (redacted).
pub struct Migrated {
    pub instances: usize,
    pub outputs: usize,
    pub to: String,
}

/// `state migrate`: copies the environment's state to the backend at `to`
/// (refusing one that already holds state for it unless `force`).
pub fn migrate(op: &mut Operation, to: &str, force: bool) -> Result<Migrated, Failed> {
    let from_address = op.state_address()?;
    let to_address = Operation::new(op.dir(), Some(to.to_string()), None).state_address()?;
    if from_address == to_address {
        return Err(Failed::bare(Diagnostic::new("P5008", "cannot migrate state onto itself").help("Give --to a different address than the current state.")));
    }
    let mut source = op.open_store()?;
    let source = acquire(source.as_mut(), "state migrate", Duration::ZERO)?;
    refuse_unfinished(source.store, "migrate")?;
    let snap = source.store.snapshot().map_err(Failed::bare)?;
    let mut dest = crate::state::open(&to_address, op.env_name()).map_err(Failed::bare)?;
    let dest = acquire(dest.as_mut(), "state migrate", Duration::ZERO)?;
    let existing = dest.store.snapshot().map_err(Failed::bare)?;
    if !existing.instances.is_empty() && !force {
        return Err(Failed::bare(Diagnostic::new("P5008", "the destination already holds state").help(format!(
            "{} records {} instance(s) for this environment; pass --force to replace them.",
            crate::redact::url(&to_address),
            existing.instances.len()
        ))));
    }
    write_snapshot(dest.store, &snap, &existing, "state migrate", "migrated", [snap.instances.len() as i64, 0, 0, 0])?;
    Ok(Migrated { instances: snap.instances.len(), outputs: snap.outputs.len(), to: crate::redact::url(&to_address) })
}

/// What `state rekey` rewrote, and whether values are now sealed (with
/// `PLINTH_STATE_KEY`) or in clear.
pub struct Rekeyed {
    pub instances: usize,
    pub outputs: usize,
    pub sealed: bool,
}

/// `state rekey`: re-seals every stored value with the current key (or
/// stores it in clear without one), leaving no copy sealed the old way.
pub fn rekey(op: &mut Operation) -> Result<Rekeyed, Failed> {
    let mut store = op.open_store()?;
    let guard = acquire(store.as_mut(), "state rekey", Duration::ZERO)?;
    refuse_unfinished(guard.store, "rekey")?;
    let snap = guard.store.snapshot().map_err(Failed::bare)?;
    // Rewriting every value through the store seals it with the current key.
    write_snapshot(guard.store, &snap, &Snapshot::default(), "state rekey", "rekeyed", [0, 0, 0, 0])?;
    // And no copy sealed the old way stays (journal, free pages, WAL).
    guard.store.purge(true).map_err(Failed::bare)?;
    let sealed = crate::state::crypt::Keys::from_env().ok().flatten().is_some_and(|k| k.current.is_some());
    Ok(Rekeyed { instances: snap.instances.len(), outputs: snap.outputs.len(), sealed })
}

/// `state migrate` and `state rekey` copy whole states, `state mv` and
/// `state rm` rewrite rows (an unfinished create would be recorded again under
/// the old address): not while an interrupted run still has operations to
/// reconcile.
pub fn refuse_unfinished(store: &mut dyn Store, verb: &str) -> Result<(), Failed> {
    if store.unfinished_intents().map_err(Failed::bare)?.is_empty() {
        return Ok(());
    }
    Err(Failed::bare(
        Diagnostic::new("P5008", "the state has unfinished operations")
            .help(format!("An interrupted run left operations to reconcile; run `plinth plan` (it reconciles them) and {verb} then.")),
    ))
}

/// Writes `snap` (instances and outputs) into `store` as one recorded run,
/// removing what `replaced` recorded there first.
pub fn write_snapshot(store: &mut dyn Store, snap: &Snapshot, replaced: &Snapshot, command: &str, status: &str, counts: [i64; 4]) -> Result<(), Failed> {
    let serial = store.begin_run(command).map_err(Failed::bare)?;
    let mut completions: Vec<Completion> =
        replaced.instances.values().map(|r| Completion::Remove { intent: None, address: r.address.clone(), deposed: r.deposed.clone() }).collect();
    completions.extend(snap.instances.values().map(|r| Completion::Upsert { intent: None, record: r.clone() }));
    store.complete(serial, &completions).map_err(Failed::bare)?;
    let outputs: Vec<(String, serde_json::Value, bool)> = snap.outputs.iter().map(|(k, o)| (k.clone(), o.value.clone(), o.sensitive)).collect();
    store.set_outputs(&outputs).map_err(Failed::bare)?;
    store.finish_run(serial, status, counts).map_err(Failed::bare)
}

/// `import ADDRESS ID`: adopts the existing object `ID` as the instance
/// `ADDRESS` of a resource the configuration declares (Terraform providers).
/// The recorded inputs are left empty, so the next plan asks the provider
/// how the configuration differs from the object, as Terraform shows after
/// an import. Closes an unfinished create of the same address (P6901).
/// Returns the attributes recorded.
pub fn import(op: &mut Operation, vars: crate::VarFlags<'_>, address: &str, id: &str) -> Result<crate::value::Map, Failed> {
    let mut prepared = op.prepare(crate::Vars::Args(vars))?;
    let parsed = Address::parse(address).ok_or_else(|| {
        Failed::bare(
            Diagnostic::new("P5005", "invalid address")
                .help(format!("`{address}` is not an address like `otc.cce_cluster_v3.edp` or `otc.rds_instance_v3.db[\"a\"]`.")),
        )
    })?;
    let resource = parsed.resource().to_string();
    let loaded = &prepared.loaded;
    let Some(res) = loaded.cfg.resources.get(&resource) else {
        return Err(Failed::bare(Diagnostic::new("P5009", "no such resource in the configuration").help(format!(
            "Declare `{resource}` first: import adopts an object as an instance of a resource the configuration describes.{}",
            crate::diagnostic::suggestion(&resource, loaded.cfg.resources.keys().map(String::as_str))
        ))));
    };
    let provider_name = res.decl.provider.name.clone();
    let rtype = res.decl.rtype.name.clone();
    let key = res.meta.provider_config.clone().unwrap_or_else(|| provider_name.clone());
    let factory =
        loaded.registry.get(&provider_name).cloned().ok_or_else(|| Failed::bare(Diagnostic::new("P6001", format!("unknown provider `{provider_name}`"))))?;
    let mut store = op.open_store()?;
    let guard = acquire(store.as_mut(), "import", Duration::ZERO)?;
    let snap = guard.store.snapshot().map_err(Failed::bare)?;
    if snap.get(address).is_some() {
        return Err(Failed::bare(Diagnostic::new("P5010", "already managed").help(format!(
            "`{address}` is already recorded; importing would let two records claim one object. `plinth state rm {address}` forgets the record first."
        ))));
    }
    let unfinished = guard.store.unfinished_intents().map_err(Failed::bare)?;
    let open = unfinished.iter().find(|i| i.address == address && i.action == "create").map(|i| i.id);
    if open.is_none() && !unfinished.is_empty() {
        refuse_unfinished(guard.store, "import")?;
    }
    let loaded = &prepared.loaded;
    let configs = crate::plan::provider_configs_from_state(&loaded.cfg, &loaded.graph, &snap, &prepared.vars, &mut prepared.host);
    let config = configs.get(&key).cloned().ok_or_else(|| {
        Failed::bare(
            Diagnostic::new("P6904", format!("provider configuration `{key}` is not known"))
                .help("Its block refers to values that only an apply can tell (resources not yet created); apply those first, then import."),
        )
    })?;
    let attrs = factory.import(&config, &rtype, id).map_err(Failed::bare)?;
    let sensitive = crate::plan::sensitive_attrs(&loaded.registry, &provider_name, &rtype, &attrs, &[]);
    let record = crate::state::model::InstanceRecord {
        address: address.to_string(),
        deposed: String::new(),
        resource,
        provider: key,
        rtype,
        inputs: crate::value::Map::default(),
        attrs: attrs.clone(),
        sensitive,
        deps: vec![],
    };
    let serial = guard.store.begin_run("import").map_err(Failed::bare)?;
    guard.store.complete(serial, &[Completion::Upsert { intent: open, record }]).map_err(Failed::bare)?;
    guard.store.finish_run(serial, "imported", [1, 0, 0, 0]).map_err(Failed::bare)?;
    Ok(attrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn patterns_select_instances_and_what_lies_inside_components() {
        let p = strings(&["file.*", "module.db"]);
        assert!(address_selected(&p, "file.file.a[\"x\"]"));
        assert!(address_selected(&p, "module.db[0].postgres.role.app"));
        assert!(address_selected(&p, "module.db.random.password.x"));
        assert!(!address_selected(&p, "module.dbx.random.password.x"));
        assert!(!address_selected(&p, "random.password.x"));
        assert!(address_selected(&strings(&["file.file.x"]), "file.file.x[\"a\"]"));
        assert!(!address_selected(&strings(&["file.file.x"]), "file.file.xy"));
        assert!(address_selected(&[], "anything"));
    }

    #[test]
    fn state_mv_takes_addresses_inside_components() {
        let r = |a: &str| Address::parse(a).map(|a| a.resource().to_string());
        let some = |a: &str| Some(a.to_string());
        assert_eq!(r("random.password.x"), some("random.password.x"));
        assert_eq!(r(r#"file.file.x["a.b[c]"]"#), some("file.file.x"));
        assert_eq!(r("stack.core.kubernetes.namespace.argocd"), some("stack.core.kubernetes.namespace.argocd"));
        assert_eq!(r(r#"stack.core.module.s.random.password.this["clientSecret"]"#), some("stack.core.module.s.random.password.this"));
        assert_eq!(
            r(r#"runner_fleet.pool["a.b"].module.namespace[0].kubernetes.namespace.this"#),
            some(r#"runner_fleet.pool["a.b"].module.namespace[0].kubernetes.namespace.this"#)
        );
        for bad in [
            "a.b",
            "stack.core.random.password",
            "stack[0].core.random.password.x",
            "random.password[0].x",
            "random.password.x[0]y",
            "random.password.x[\"a]",
            "random..x",
            "1a.b.c",
        ] {
            assert_eq!(r(bad), None, "{bad}");
        }
    }
}
