//! Making a plan (reconciling an interrupted run first, reading reality
//! with `--refresh`) and applying one.

use crate::exec::{self, ApplyContext, ApplyReport, Event, Interrupt};
use crate::plan::{self, Plan, PlanInputs, PlanOptions};
use crate::saved::PlanFile;
use crate::state::{Store, LOCK_LEASE_SECS};
use crate::store::provider_context;
use crate::{Failed, Operation, Prepared, VarFlags, Vars};

/// What to plan.
#[derive(Debug, Clone, Default)]
pub struct PlanRequest<'a> {
    pub vars: VarFlags<'a>,
    /// Only these resources (and what they depend on).
    pub only: Vec<String>,
    /// Read every managed object first and plan against reality.
    pub refresh: bool,
    /// `drift --fix`: only the changes that undo drift (with `refresh`).
    pub remediate: bool,
    /// Destroy everything instead.
    pub destroy: bool,
}

/// A plan, with what it was made from.
pub struct Planned {
    pub prepared: Prepared,
    pub plan: Plan,
    /// What reconciling an interrupted run found.
    pub reconciled: exec::reconcile::Reconciled,
    /// Provider blocks evaluated from recorded state.
    pub configs: exec::refresh::Configs,
    /// `--only` targets that name nothing in this environment while others
    /// do (when none does, planning fails with `P4001`): a warning, because
    /// one list of targets often serves several environments.
    pub unmatched_only: Vec<String>,
}

/// Plans the operation against `store` (locked by the caller): loads the
/// project (with the saved plan's values and `env()` answers when
/// replaying one), reconciles unfinished operations, reads reality with
/// `refresh`, plans.
pub async fn make_plan(op: &mut Operation, request: &PlanRequest<'_>, store: &mut dyn Store, replay: Option<&PlanFile>) -> Result<Planned, Failed> {
    let mut prepared = match replay {
        None => op.prepare(Vars::Args(request.vars))?,
        Some(pf) => pf.prepare(op)?,
    };
    let provider_ctx = provider_context(op.dir());
    let recorded = store.snapshot().map_err(Failed::bare)?;
    let configs = plan::provider_configs_from_state(&prepared.loaded.cfg, &prepared.loaded.graph, &recorded, &prepared.vars, &mut prepared.host);
    let reconciled = exec::reconcile::reconcile(store, &prepared.loaded.registry, &provider_ctx, &configs).await.map_err(Failed::bare)?;
    let mut snapshot = if reconciled.is_empty() { recorded } else { store.snapshot().map_err(Failed::bare)? };
    let mut drifted = None;
    if request.refresh {
        let seen = exec::refresh::read_all(&snapshot, &prepared.loaded.registry, &provider_ctx, &configs, 10)
            .await
            .map_err(|d| Failed::new(&prepared.loaded.cfg.sources, d))?;
        if request.remediate {
            drifted = Some(plan::drift::compare(&snapshot, &seen, &prepared.loaded.registry));
        }
        exec::refresh::apply_observations(&mut snapshot, seen, &prepared.loaded.registry);
        // Reading everything back may take long: keep the lease alive.
        store.renew_lock(std::process::id() as i64, LOCK_LEASE_SECS).map_err(Failed::bare)?;
    }
    let loaded = &prepared.loaded;
    let inputs = PlanInputs { env: op.env_name(), cfg: &loaded.cfg, graph: &loaded.graph, registry: &loaded.registry, prior: &snapshot, vars: &prepared.vars };
    let options = PlanOptions { destroy: request.destroy, only: request.only.clone(), lenient: false };
    let plan = plan::plan(&inputs, &options, &mut prepared.host).map_err(|d| Failed::new(&loaded.cfg.sources, d))?;
    let plan = match &drifted {
        Some(drift) => plan::drift::remediation(plan, drift),
        None => plan,
    };
    let unmatched_only = plan::unmatched_only(&loaded.cfg, &snapshot, &request.only).into_iter().cloned().collect();
    Ok(Planned { prepared, plan, reconciled, configs, unmatched_only })
}

/// Applies a plan made by [`make_plan`] to `store` (locked by the caller),
/// reporting progress through `on_event`. Per-resource failures are in the
/// report; the error is what stopped the whole run (the state store).
pub async fn apply(
    op: &Operation,
    planned: &mut Planned,
    store: &mut dyn Store,
    parallelism: usize,
    command: &str,
    interrupt: &Interrupt,
    on_event: &mut dyn FnMut(Event),
) -> Result<ApplyReport, Failed> {
    let provider_ctx = provider_context(op.dir());
    let loaded = &planned.prepared.loaded;
    let ctx = ApplyContext {
        cfg: &loaded.cfg,
        graph: &loaded.graph,
        registry: &loaded.registry,
        provider_ctx: &provider_ctx,
        vars: &planned.prepared.vars,
        parallelism,
        command,
        interrupt,
        provider_configs: &planned.configs,
    };
    exec::apply(&ctx, &planned.plan, store, &mut planned.prepared.host, on_event).await.map_err(|d| Failed::new(&loaded.cfg.sources, d))
}
