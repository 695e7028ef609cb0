//! Drift: every managed object read back and compared with its record, the
//! unmanaged objects providers can list, the plan that would undo the drift,
//! and `--accept` (recording reality as the new state). Every check keeps
//! its report in the state (`drift --history`).

use crate::diagnostic::Diagnostic;
use crate::plan::drift::{ObjectDrift, Status};
use crate::plan::{self, Plan, PlanInputs, PlanOptions, Summary};
use crate::state::model::{DriftRecord, Snapshot};
use crate::state::{Completion, Store, LOCK_LEASE_SECS};
use crate::store::provider_context;
use crate::{exec, Failed, Operation, Prepared, VarFlags, Vars};

/// One drift check.
pub struct DriftCheck {
    /// The environment's name.
    pub env: String,
    /// The state serial checked.
    pub serial: i64,
    /// Every managed object, in sync or not.
    pub drift: Vec<ObjectDrift>,
    /// Objects providers list that the state does not record (type, name).
    pub unmanaged: Vec<(String, String)>,
    /// How many objects drifted.
    pub drifted: usize,
    /// What it would take to bring reality back to the configuration.
    pub remediation: Plan,
    pub summary: Summary,
    /// When the check ran (RFC 3339).
    pub at: String,
    /// The report, as kept in the state and printed by `--json`.
    pub report: serde_json::Value,
    /// Why the report could not be kept (the check itself stands).
    pub not_kept: Option<Diagnostic>,
    /// The recorded state with what was read back: `--accept` records it.
    pub refreshed: Snapshot,
    /// The project loaded for the check.
    pub prepared: Prepared,
}

impl DriftCheck {
    /// Something drifted or is unmanaged.
    pub fn has_drift(&self) -> bool {
        self.drifted > 0 || !self.unmanaged.is_empty()
    }
}

/// Checks the operation's environment against `store` (locked by the
/// caller): reconciles an interrupted run, reads every object back (at most
/// `parallelism` reads at once), lists unmanaged objects, plans the
/// remediation and keeps the report.
pub async fn check(op: &mut Operation, store: &mut dyn Store, vars: VarFlags<'_>, parallelism: usize) -> Result<DriftCheck, Failed> {
    let provider_ctx = provider_context(op.dir());
    let mut prepared = op.prepare(Vars::Args(vars))?;
    let recorded = store.snapshot().map_err(Failed::bare)?;
    let configs = plan::provider_configs_from_state(&prepared.loaded.cfg, &prepared.loaded.graph, &recorded, &prepared.vars, &mut prepared.host);
    let reconciled = exec::reconcile::reconcile(store, &prepared.loaded.registry, &provider_ctx, &configs).await.map_err(Failed::bare)?;
    let prior = if reconciled.is_empty() { recorded } else { store.snapshot().map_err(Failed::bare)? };
    let loaded = &prepared.loaded;
    let observations =
        exec::refresh::read_all(&prior, &loaded.registry, &provider_ctx, &configs, parallelism).await.map_err(|d| Failed::new(&loaded.cfg.sources, d))?;
    let drift = plan::drift::compare(&prior, &observations, &loaded.registry);
    let unmanaged = exec::refresh::unmanaged(&prior, &loaded.registry, &provider_ctx, &configs).await.map_err(|d| Failed::new(&loaded.cfg.sources, d))?;
    // Reading everything back may take long: keep the lease alive.
    store.renew_lock(std::process::id() as i64, LOCK_LEASE_SECS).map_err(Failed::bare)?;
    // What it would take to bring reality back to the configuration.
    let mut refreshed = prior.clone();
    exec::refresh::apply_observations(&mut refreshed, observations, &loaded.registry);
    let env = op.env_name().to_string();
    let inputs = PlanInputs { env: &env, cfg: &loaded.cfg, graph: &loaded.graph, registry: &loaded.registry, prior: &refreshed, vars: &prepared.vars };
    let remediation = plan::plan(&inputs, &PlanOptions::default(), &mut prepared.host).map_err(|d| Failed::new(&loaded.cfg.sources, d))?;
    let remediation = plan::drift::remediation(remediation, &drift);
    let summary = remediation.summary();
    let drifted = drift.iter().filter(|d| d.status != Status::InSync).count();
    let at = crate::state::now_rfc3339();
    let report = report_json(&env, prior.serial, &drift, &unmanaged, Some(&summary));
    let record = DriftRecord {
        at: at.clone(),
        serial: prior.serial,
        checked: drift.len() as i64,
        drifted: drifted as i64,
        unmanaged: unmanaged.len() as i64,
        report: report.clone(),
    };
    let not_kept = store.record_drift(&record).err();
    Ok(DriftCheck { env, serial: prior.serial, drift, unmanaged, drifted, remediation, summary, at, report, not_kept, refreshed, prepared })
}

/// What `--accept` recorded.
pub struct Accepted {
    /// Objects whose record now says what was read back (or that were
    /// forgotten because they are gone).
    pub objects: usize,
    /// The state serial of the change.
    pub serial: i64,
}

/// `drift --accept`: records reality as the new state for every drifted
/// object (Terraform's refresh-only apply), as one run. None when nothing
/// drifted (nothing is written).
pub fn accept(store: &mut dyn Store, check: &DriftCheck) -> Result<Option<Accepted>, Failed> {
    if check.drifted == 0 {
        return Ok(None);
    }
    let serial = store.begin_run("drift accept").map_err(Failed::bare)?;
    let mut completions = Vec::new();
    for d in check.drift.iter().filter(|d| d.status != Status::InSync) {
        let key = (d.address.clone(), d.deposed.clone());
        match check.refreshed.instances.get(&key) {
            Some(rec) => completions.push(Completion::Upsert { intent: None, record: rec.clone() }),
            None => completions.push(Completion::Remove { intent: None, address: d.address.clone(), deposed: d.deposed.clone() }),
        }
    }
    store.complete(serial, &completions).map_err(Failed::bare)?;
    store.finish_run(serial, "accepted", [0, completions.len() as i64, 0, 0]).map_err(Failed::bare)?;
    Ok(Some(Accepted { objects: completions.len(), serial }))
}

/// The drift report as JSON: what `drift --json` prints and what the state
/// keeps.
pub fn report_json(env: &str, serial: i64, drift: &[ObjectDrift], unmanaged: &[(String, String)], remediation: Option<&Summary>) -> serde_json::Value {
    let drifted: Vec<&ObjectDrift> = drift.iter().filter(|d| d.status != Status::InSync).collect();
    serde_json::json!({
        "env": env,
        "serial": serial,
        "checked": drift.len(),
        "in_sync": drift.len() - drifted.len(),
        "drifted": drifted,
        "unmanaged": unmanaged.iter().map(|(k, w)| serde_json::json!({ "type": k, "object": w })).collect::<Vec<_>>(),
        "remediation": remediation.map(|r| serde_json::json!({ "create": r.create, "update": r.update, "replace": r.replace, "destroy": r.delete })),
        "has_drift": !drifted.is_empty() || !unmanaged.is_empty(),
    })
}
