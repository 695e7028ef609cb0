//! Stage `exec`: a [`Plan`] → provider calls in dependency order.
//!
//! Invariants: exec decides *how*, never *what*: every operation it performs
//! was decided by `plan`; at apply time it re-evaluates configurations with the
//! values that have become known and refuses (`P4010`) any that contradict the
//! plan. Each operation's intent is durable before its provider call and its
//! result is durable before any dependent starts. Provider calls run on tokio
//! with at most `parallelism` in flight; a failure stops its dependents only.
//! The coordinator is a single task: it alone touches the store and the
//! namespace, batching intents and completions that are ready together into
//! one transaction.

pub mod reconcile;
pub mod refresh;

use crate::diagnostic::{Diagnostic, Diags};
use crate::eval::functions::FnHost;
use crate::eval::{Config, DeclId, Namespace};
use crate::graph::Graph;
use crate::plan::{self, Action, InstanceKey, Plan, VarValue};
use crate::providers::{CreateRequest, DeleteRequest, ObjectRef, Provider, ProviderContext, Registry, UpdateRequest};
use crate::state::model::InstanceRecord;
use crate::state::{Completion, Intent, Store};
use crate::value::{Map, Value};
use indexmap::IndexMap;
use petgraph::graph::NodeIndex;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What an apply reports as it goes (the CLI renders these).
#[derive(Debug, Clone)]
pub enum Event {
    Started { address: String, action: Action, create_before_destroy: bool },
    Finished { address: String, action: Action, elapsed: Duration },
    Failed { address: String, diagnostic: Diagnostic },
    Skipped { address: String, because: String },
    Interrupted,
}

#[derive(Debug, Default)]
pub struct ApplyReport {
    pub created: usize,
    pub updated: usize,
    pub replaced: usize,
    pub deleted: usize,
    pub failures: Vec<(String, Diagnostic)>,
    pub skipped: Vec<String>,
    pub interrupted: bool,
    pub outputs: Vec<(String, Value, bool)>,
    pub serial: i64,
}

impl ApplyReport {
    pub fn ok(&self) -> bool {
        self.failures.is_empty() && self.skipped.is_empty() && !self.interrupted
    }
}

pub struct ApplyContext<'a> {
    pub cfg: &'a Config,
    pub graph: &'a Graph,
    pub registry: &'a Registry,
    pub provider_ctx: &'a ProviderContext,
    pub vars: &'a IndexMap<String, VarValue>,
    pub parallelism: usize,
    pub command: &'a str,
    pub interrupt: &'a Interrupt,
    /// Provider blocks evaluated from recorded state: used until (and where)
    /// the walk configures a provider from the configuration itself, e.g. to
    /// delete what the configuration no longer declares.
    pub provider_configs: &'a refresh::Configs,
}

/// Deterministic crash points for the fault-injection tests: the process
/// kills itself with SIGKILL at the k-th such point (`PLINTH_FAULT=point:k`,
/// point one of `intent`, `call`, `complete`). Never set it in production.
#[derive(Debug, Clone, Copy)]
struct Fault {
    point: FaultPoint,
    at: usize,
}
#[derive(Debug, Clone, Copy, PartialEq)]
enum FaultPoint {
    /// After the k-th intent is durable, before its provider call.
    Intent,
    /// After the k-th provider call answered, before its result is durable.
    Call,
    /// After the k-th result is durable.
    Complete,
}

impl Fault {
    fn from_env() -> Option<Fault> {
        let v = std::env::var("PLINTH_FAULT").ok()?;
        let (p, k) = v.split_once(':')?;
        let point = match p {
            "intent" => FaultPoint::Intent,
            "call" => FaultPoint::Call,
            "complete" => FaultPoint::Complete,
            _ => return None,
        };
        Some(Fault { point, at: k.parse().ok()? })
    }
}

struct FaultCounter {
    fault: Option<Fault>,
    seen: [usize; 3],
}

impl FaultCounter {
    fn hit(&mut self, point: FaultPoint, n: usize) {
        let Some(f) = self.fault else { return };
        let i = point as usize;
        self.seen[i] += n;
        if f.point == point && self.seen[i] >= f.at {
            // SAFETY: raising a signal in our own process has no memory-safety preconditions.
            unsafe {
                libc::raise(libc::SIGKILL);
            }
        }
    }
}

/// One provider operation (a step of an instance change).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Step {
    Create,
    Update,
    Delete,
}

struct Op {
    change_idx: usize,
    /// Remaining steps; the first is the one in flight.
    steps: VecDeque<Step>,
    config: Map,
    /// Owning task (to complete it when all its ops are done).
    task: usize,
    started: Instant,
    /// Deposed token for create-before-destroy's old object.
    deposed_token: Option<String>,
    intent_id: i64,
    token: String,
}

enum TaskKind {
    Node(NodeIndex),
    Delete(usize),
}

struct Task {
    kind: TaskKind,
    deps: Vec<usize>,
    dependents: Vec<usize>,
    pending_deps: usize,
    open_ops: usize,
    failed: bool,
    done: bool,
    /// Instance values produced by this resource task, for the namespace.
    values: Vec<(InstanceKey, Value)>,
    /// The resource whose value `values` make up.
    values_for: Option<String>,
}

type CallResult = Result<Option<Map>, Diagnostic>;

/// What a provider call task reports back.
enum Answer {
    Done(CallResult),
    /// Interrupted while waiting for a parallelism slot: never started.
    Cancelled,
}

/// Applies a plan. Diagnostics are returned only for errors that stop the
/// whole run (state store failures); per-resource failures are in the report.
pub async fn apply(
    ctx: &ApplyContext<'_>,
    plan: &Plan,
    store: &mut dyn Store,
    host: &mut dyn FnHost,
    on_event: &mut dyn FnMut(Event),
) -> Result<ApplyReport, Diags> {
    let cfg = ctx.cfg;
    let mut report = ApplyReport::default();
    let serial = store.begin_run(ctx.command).map_err(|d| vec![d])?;
    report.serial = serial;
    let mut faults = FaultCounter { fault: Fault::from_env(), seen: [0; 3] };
    let prior = store.snapshot().map_err(|d| vec![d])?;

    // ---- tasks: one per declaration (unless destroying), one per delete.
    let by_address: HashMap<&str, usize> =
        plan.changes.iter().enumerate().filter(|(_, c)| c.action != Action::Delete).map(|(i, c)| (c.address.as_str(), i)).collect();
    let planned_resources: HashSet<&str> = plan.resources.iter().map(String::as_str).chain(plan.changes.iter().map(|c| c.resource.as_str())).collect();
    let mut changes_by_resource: HashMap<&str, Vec<usize>> = HashMap::default();
    for (i, c) in plan.changes.iter().enumerate() {
        if c.action != Action::Delete {
            changes_by_resource.entry(c.resource.as_str()).or_default().push(i);
        }
    }
    let mut tasks: Vec<Task> = Vec::new();
    let mut node_task: HashMap<NodeIndex, usize> = HashMap::default();
    let new_task =
        |kind| Task { kind, deps: vec![], dependents: vec![], pending_deps: 0, open_ops: 0, failed: false, done: false, values: vec![], values_for: None };
    if !plan.destroy {
        for &n in &ctx.graph.order {
            // Outputs are planned only when the whole configuration is.
            let include = match &ctx.graph.dag[n] {
                DeclId::Output(name) => plan.outputs.iter().any(|o| &o.name == name),
                _ => true,
            };
            if include {
                node_task.insert(n, tasks.len());
                tasks.push(new_task(TaskKind::Node(n)));
            }
        }
        for (&n, &t) in &node_task {
            let deps: Vec<usize> = ctx.graph.dependencies(n).filter_map(|d| node_task.get(&d).copied()).collect();
            tasks[t].deps = deps;
        }
        // A resource without planned instances is either repeated zero times
        // (its value is an empty collection: keep it) or outside `--only`:
        // drop it and everything that depends on it.
        let unplanned: HashSet<usize> = node_task
            .iter()
            .filter(|(n, _)| match &ctx.graph.dag[**n] {
                DeclId::Resource(a) => !planned_resources.contains(a.as_str()) && !plan_has_zero_instances(cfg, a),
                // A data block the plan did not evaluate (outside `--only`).
                DeclId::Data(a) => !plan.data.contains_key(a),
                _ => false,
            })
            .map(|(_, t)| *t)
            .collect();
        if !unplanned.is_empty() {
            let mut dropped = unplanned.clone();
            let mut changed = true;
            while changed {
                changed = false;
                for (i, t) in tasks.iter().enumerate() {
                    if !dropped.contains(&i) && t.deps.iter().any(|d| dropped.contains(d)) {
                        dropped.insert(i);
                        changed = true;
                    }
                }
            }
            for &i in &dropped {
                tasks[i].done = true;
            }
            for t in tasks.iter_mut() {
                t.deps.retain(|d| !dropped.contains(d));
            }
        }
    }
    let mut delete_task: HashMap<usize, usize> = HashMap::default();
    for (i, c) in plan.changes.iter().enumerate() {
        if c.action == Action::Delete {
            delete_task.insert(i, tasks.len());
            tasks.push(new_task(TaskKind::Delete(i)));
        }
    }
    // Deletes wait for the deletes of whatever depended on them, and for the
    // nodes that used to depend on them.
    for (&ci, &t) in &delete_task {
        let resource = &plan.changes[ci].resource;
        let mut deps = Vec::new();
        for (&cj, &u) in &delete_task {
            if cj != ci && plan.changes[cj].deps.iter().any(|d| d == resource) {
                deps.push(u);
            }
        }
        for rec in prior.instances.values() {
            if rec.deps.iter().any(|d| d == resource) {
                if let Some(&u) =
                    cfg.resources.get(&rec.resource).and_then(|_| ctx.graph.node(&DeclId::Resource(rec.resource.clone()))).and_then(|n| node_task.get(&n))
                {
                    deps.push(u);
                }
            }
        }
        deps.sort_unstable();
        deps.dedup();
        tasks[t].deps = deps;
    }
    for i in 0..tasks.len() {
        let deps = tasks[i].deps.clone();
        tasks[i].pending_deps = deps.iter().filter(|&&d| !tasks[d].done).count();
        for d in deps {
            tasks[d].dependents.push(i);
        }
    }

    // ---- the walk
    let mut ns = Namespace::default();
    // Configured providers by key, shared by every task and dispatch of the
    // run (a provider is configured once: it may hold a connection pool).
    let mut providers: Providers = Providers::new();
    // Provider blocks as the walk evaluated them, for data sources read
    // during apply.
    let mut provider_blocks: HashMap<String, Map> = HashMap::default();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(ctx.parallelism.max(1)));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Answer)>();
    let mut ops: Vec<Op> = Vec::new();
    let mut ready: VecDeque<usize> = tasks.iter().enumerate().filter(|(_, t)| !t.done && t.pending_deps == 0).map(|(i, _)| i).collect();
    let mut in_flight = 0usize;
    let mut interrupted = false;
    let mut last_renew = Instant::now();
    let mut interrupt = Box::pin(ctx.interrupt.wait());

    loop {
        // 1. Start every ready task; collect the first step of new ops.
        let mut starting: Vec<usize> = Vec::new();
        while let Some(t) = ready.pop_front() {
            if interrupted {
                continue;
            }
            let walk = Walk { ns: &mut ns, providers: &mut providers, provider_blocks: &mut provider_blocks };
            match start_task(ctx, plan, &prior, t, &mut tasks, walk, host, &mut ops, &by_address, &changes_by_resource, &mut report) {
                Ok(new_ops) => {
                    if new_ops.is_empty() {
                        finish_task(cfg, t, &mut tasks, &mut ns, &mut ready);
                    } else {
                        tasks[t].open_ops = new_ops.len();
                        starting.extend(new_ops);
                    }
                }
                Err(diags) => {
                    for d in diags {
                        let address = task_label(ctx, plan, &tasks[t]);
                        on_event(Event::Failed { address: address.clone(), diagnostic: d.clone() });
                        report.failures.push((address, d));
                    }
                    fail_task(ctx, plan, t, &mut tasks, &mut report, on_event);
                }
            }
        }
        if !starting.is_empty() {
            dispatch(ctx, plan, &prior, store, serial, &starting, &mut ops, &mut providers, &semaphore, &tx, &mut faults, on_event).map_err(|d| vec![d])?;
            in_flight += starting.len();
        }
        if in_flight == 0 {
            if ready.is_empty() {
                break;
            }
            continue;
        }
        // 2. Wait for at least one answer (or an interrupt), then drain.
        let mut answers = Vec::new();
        tokio::select! {
            got = rx.recv() => if let Some(a) = got { answers.push(a) },
            _ = &mut interrupt, if !interrupted => {
                interrupted = true;
                report.interrupted = true;
                on_event(Event::Interrupted);
            }
        }
        while let Ok(a) = rx.try_recv() {
            answers.push(a);
        }
        if answers.is_empty() {
            continue;
        }
        in_flight -= answers.len();
        faults.hit(FaultPoint::Call, answers.len());
        // 3. Record every answer in one transaction.
        let mut completions = Vec::with_capacity(answers.len());
        let mut next_steps = Vec::new();
        let mut finished_ops = Vec::new();
        for (op_idx, answer) in answers {
            let op = &ops[op_idx];
            let change = &plan.changes[op.change_idx];
            let step = op.steps.front().copied().unwrap_or(Step::Create);
            let result = match answer {
                Answer::Done(result) => result,
                Answer::Cancelled => {
                    completions.push(Completion::Close { intent: op.intent_id, outcome: "cancelled: interrupted before it started".into() });
                    let t = op.task;
                    tasks[t].failed = true;
                    tasks[t].open_ops -= 1;
                    if tasks[t].open_ops == 0 {
                        fail_task(ctx, plan, t, &mut tasks, &mut report, on_event);
                    }
                    continue;
                }
            };
            match result {
                Ok(observed) => {
                    match (step, observed) {
                        (Step::Delete, _) => {
                            let deposed = if change.action == Action::Replace && change.create_before_destroy {
                                op.deposed_token.clone().unwrap_or_default()
                            } else {
                                change.deposed.clone()
                            };
                            completions.push(Completion::Remove { intent: Some(op.intent_id), address: change.address.clone(), deposed });
                        }
                        (_, Some(attrs)) => {
                            let prior_sensitive = prior.get(&change.address).map(|r| r.sensitive.clone()).unwrap_or_default();
                            let sensitive = sensitive_names(ctx, change, &op.config, &attrs, &prior_sensitive);
                            let (inputs, _) = Value::Map(op.config.clone()).unmark();
                            let (attrs_plain, _) = Value::Map(attrs).unmark();
                            let (Value::Map(inputs), Value::Map(attrs_plain)) = (inputs, attrs_plain) else { continue };
                            let record = InstanceRecord {
                                address: change.address.clone(),
                                deposed: String::new(),
                                resource: change.resource.clone(),
                                provider: change.provider.clone(),
                                rtype: change.rtype.clone(),
                                inputs,
                                attrs: attrs_plain,
                                sensitive,
                                deps: change.deps.clone(),
                            };
                            let value = Value::Map(plan::mark_sensitive(record.attrs.clone(), &record.sensitive));
                            tasks[op.task].values.push((change.key.clone(), value));
                            completions.push(Completion::Upsert { intent: Some(op.intent_id), record });
                        }
                        (_, None) => {}
                    }
                    let op = &mut ops[op_idx];
                    op.steps.pop_front();
                    if op.steps.is_empty() {
                        finished_ops.push(op_idx);
                    } else {
                        next_steps.push(op_idx);
                    }
                }
                Err(diag) => {
                    completions.push(Completion::Close { intent: op.intent_id, outcome: format!("failed: {}", diag.code) });
                    let diag = if diag.labels.is_empty() {
                        match cfg.resources.get(&change.resource) {
                            Some(r) => diag.label(r.decl.name.span, format!("while applying `{}`", change.address)),
                            None => diag,
                        }
                    } else {
                        diag
                    };
                    on_event(Event::Failed { address: change.address.clone(), diagnostic: diag.clone() });
                    report.failures.push((change.address.clone(), diag));
                    let t = op.task;
                    tasks[t].failed = true;
                    tasks[t].open_ops -= 1;
                    if tasks[t].open_ops == 0 {
                        fail_task(ctx, plan, t, &mut tasks, &mut report, on_event);
                    }
                }
            }
        }
        store.complete(serial, &completions).map_err(|d| vec![d])?;
        faults.hit(FaultPoint::Complete, completions.len());
        if last_renew.elapsed() > Duration::from_secs(15) {
            let _ = store.renew_lock(std::process::id() as i64, crate::state::LOCK_LEASE_SECS);
            last_renew = Instant::now();
        }
        for op_idx in finished_ops {
            let op = &ops[op_idx];
            let change = &plan.changes[op.change_idx];
            on_event(Event::Finished { address: change.address.clone(), action: change.action, elapsed: op.started.elapsed() });
            match change.action {
                Action::Create => report.created += 1,
                Action::Update => report.updated += 1,
                Action::Replace => report.replaced += 1,
                Action::Delete => report.deleted += 1,
                Action::NoOp => {}
            }
            let t = op.task;
            tasks[t].open_ops -= 1;
            if tasks[t].open_ops == 0 {
                if tasks[t].failed {
                    fail_task(ctx, plan, t, &mut tasks, &mut report, on_event);
                } else {
                    finish_task(cfg, t, &mut tasks, &mut ns, &mut ready);
                }
            }
        }
        if !next_steps.is_empty() && !interrupted {
            dispatch(ctx, plan, &prior, store, serial, &next_steps, &mut ops, &mut providers, &semaphore, &tx, &mut faults, on_event).map_err(|d| vec![d])?;
            in_flight += next_steps.len();
        }
        if interrupted && in_flight == 0 {
            break;
        }
        if in_flight == 0 && ready.is_empty() && !tasks.iter().any(|t| !t.done) {
            break;
        }
    }

    // Outputs: record what could be evaluated, keep the rest as recorded.
    if !plan.destroy {
        let mut recorded: IndexMap<String, (serde_json::Value, bool)> =
            prior.outputs.iter().map(|(k, o)| (k.clone(), (o.value.clone(), o.sensitive))).collect();
        recorded.retain(|k, _| cfg.outputs.contains_key(k));
        for (name, value, sensitive) in &report.outputs {
            recorded.insert(name.clone(), (value.to_json(), *sensitive));
        }
        let rows: Vec<(String, serde_json::Value, bool)> = recorded.into_iter().map(|(k, (v, s))| (k, v, s)).collect();
        store.set_outputs(&rows).map_err(|d| vec![d])?;
    } else if report.ok() {
        store.set_outputs(&[]).map_err(|d| vec![d])?;
    }
    let status = if report.interrupted {
        "interrupted"
    } else if report.ok() {
        "applied"
    } else {
        "failed"
    };
    store.finish_run(serial, status, [report.created as i64, report.updated as i64, report.replaced as i64, report.deleted as i64]).map_err(|d| vec![d])?;
    // What was deleted or replaced may have held secrets: no copy stays.
    if report.deleted + report.replaced > 0 {
        store.purge(false).map_err(|d| vec![d])?;
    }
    Ok(report)
}

fn plan_has_zero_instances(cfg: &Config, address: &str) -> bool {
    cfg.resources.get(address).is_some_and(|r| r.meta.count.is_some() || r.meta.for_each.is_some())
}

/// SIGINT/SIGTERM, caught from the start of the process: an apply stops
/// starting new work, lets the calls in flight finish, records them, and
/// exits non-zero; a signal during planning stops before anything changes.
#[derive(Clone, Default)]
pub struct Interrupt {
    flag: Arc<std::sync::atomic::AtomicBool>,
    notify: Arc<tokio::sync::Notify>,
}

impl Interrupt {
    /// Installs the handlers (needs a tokio runtime). Without them (tests,
    /// library use) an `Interrupt` simply never fires.
    pub fn install() -> Interrupt {
        let me = Interrupt::default();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            for kind in [SignalKind::interrupt(), SignalKind::terminate()] {
                if let Ok(mut stream) = signal(kind) {
                    let me = me.clone();
                    tokio::spawn(async move {
                        while stream.recv().await.is_some() {
                            me.flag.store(true, std::sync::atomic::Ordering::SeqCst);
                            // Evaluation and rendering poll this one.
                            crate::eval::limits::interrupt();
                            me.notify.notify_one();
                        }
                    });
                }
            }
        }
        me
    }
    pub fn fired(&self) -> bool {
        self.flag.load(std::sync::atomic::Ordering::SeqCst)
    }
    async fn wait(&self) {
        if !self.fired() {
            self.notify.notified().await;
        }
    }
}

fn task_label(ctx: &ApplyContext<'_>, plan: &Plan, task: &Task) -> String {
    match task.kind {
        TaskKind::Node(n) => ctx.graph.dag[n].to_string(),
        TaskKind::Delete(ci) => plan.changes[ci].address.clone(),
    }
}

/// Marks a task failed and skips everything downstream of it.
fn fail_task(ctx: &ApplyContext<'_>, plan: &Plan, t: usize, tasks: &mut [Task], report: &mut ApplyReport, on_event: &mut dyn FnMut(Event)) {
    tasks[t].done = true;
    tasks[t].failed = true;
    let because = task_label(ctx, plan, &tasks[t]);
    let mut stack: Vec<usize> = tasks[t].dependents.clone();
    while let Some(d) = stack.pop() {
        if tasks[d].done {
            continue;
        }
        tasks[d].done = true;
        tasks[d].failed = true;
        let label = task_label(ctx, plan, &tasks[d]);
        let is_resource = match tasks[d].kind {
            TaskKind::Node(n) => matches!(ctx.graph.dag[n], DeclId::Resource(_)),
            TaskKind::Delete(_) => true,
        };
        if is_resource {
            on_event(Event::Skipped { address: label.clone(), because: because.clone() });
            report.skipped.push(label);
        }
        stack.extend(tasks[d].dependents.iter().copied());
    }
}

/// Marks a task done, publishes a resource's value, readies its dependents.
fn finish_task(cfg: &Config, t: usize, tasks: &mut [Task], ns: &mut Namespace, ready: &mut VecDeque<usize>) {
    if let TaskKind::Node(_) = tasks[t].kind {
        let mut values = std::mem::take(&mut tasks[t].values);
        values.sort_by(|a, b| match (&a.0, &b.0) {
            (InstanceKey::Int(x), InstanceKey::Int(y)) => x.cmp(y),
            (InstanceKey::Str(x), InstanceKey::Str(y)) => x.cmp(y),
            _ => std::cmp::Ordering::Equal,
        });
        if let Some(address) = tasks[t].values_for.take() {
            if let Some(r) = cfg.resources.get(&address) {
                let v = plan::resource_value(cfg, &address, values);
                ns.set_resource(&r.ns_root, &r.decl.rtype.name, &r.decl.name.name, v);
            }
        }
    }
    tasks[t].done = true;
    let dependents = tasks[t].dependents.clone();
    for d in dependents {
        if tasks[d].done {
            continue;
        }
        tasks[d].pending_deps -= 1;
        if tasks[d].pending_deps == 0 {
            ready.push_back(d);
        }
    }
}

/// Sensitive attribute names of an object: by schema, by configuration
/// value, as planned (providers mark derived secrets, e.g. a hash of secret
/// content), and as recorded before.
fn sensitive_names(ctx: &ApplyContext<'_>, change: &plan::Change, config: &Map, attrs: &Map, prior: &[String]) -> Vec<String> {
    let mut names: std::collections::BTreeSet<String> =
        plan::sensitive_attrs(ctx.registry, &change.provider_name, &change.rtype, attrs, prior).into_iter().collect();
    names.extend(config.iter().filter(|(_, v)| v.is_sensitive_deep()).map(|(k, _)| k.clone()));
    if let Some(after) = &change.after {
        names.extend(after.iter().filter(|(_, v)| v.is_sensitive_deep()).map(|(k, _)| k.clone()));
    }
    // What the provider computed from a secret (an id that is a sensitive
    // path, a URL with a token in it) is as sensitive as the secret.
    let secrets: Vec<String> = crate::providers::secrets_of(config).into_iter().filter(|t| t.chars().count() >= 3).collect();
    if !secrets.is_empty() {
        names.extend(attrs.iter().filter(|(_, v)| v.contains_any_text(&secrets)).map(|(k, _)| k.clone()));
    }
    names.into_iter().collect()
}

/// Configured providers by key (`name` or `name.alias`).
type Providers = std::collections::BTreeMap<String, Arc<dyn Provider>>;

/// What the coordinator's walk keeps between tasks.
struct Walk<'w> {
    ns: &'w mut Namespace,
    providers: &'w mut Providers,
    /// Evaluated provider blocks by key.
    provider_blocks: &'w mut HashMap<String, Map>,
}

#[allow(clippy::too_many_arguments)]
fn start_task(
    ctx: &ApplyContext<'_>,
    plan: &Plan,
    prior: &crate::state::model::Snapshot,
    t: usize,
    tasks: &mut [Task],
    walk: Walk<'_>,
    host: &mut dyn FnHost,
    ops: &mut Vec<Op>,
    by_address: &HashMap<&str, usize>,
    changes_by_resource: &HashMap<&str, Vec<usize>>,
    report: &mut ApplyReport,
) -> Result<Vec<usize>, Diags> {
    let cfg = ctx.cfg;
    let Walk { ns, providers, provider_blocks } = walk;
    let n = match tasks[t].kind {
        TaskKind::Delete(ci) => {
            let op = Op {
                change_idx: ci,
                steps: VecDeque::from([Step::Delete]),
                config: Map::default(),
                task: t,
                started: Instant::now(),
                deposed_token: None,
                intent_id: 0,
                token: String::new(),
            };
            ops.push(op);
            return Ok(vec![ops.len() - 1]);
        }
        TaskKind::Node(n) => n,
    };
    match &ctx.graph.dag[n] {
        DeclId::Param(name) => plan::eval_param(cfg, name, ctx.vars, ns, host).map(|_| vec![]),
        DeclId::Let(name) => plan::eval_let(cfg, name, ns, host).map(|_| vec![]),
        DeclId::Provider(key) => {
            // A provider no change uses is not configured (nor started: a
            // Terraform provider is a process, and may want credentials).
            if !plan.changes.iter().any(|c| &c.provider == key) {
                return Ok(vec![]);
            }
            let config = plan::eval_provider_config(cfg, key, ns, host)?;
            let Some(decl) = cfg.providers.get(key) else { return Ok(vec![]) };
            if Value::Map(config.clone()).is_unknown_deep() {
                return Err(vec![Diagnostic::new("P4011", "provider configuration still unknown")
                    .help("The provider block uses values that were not known when it was needed; apply the resources it depends on first with `--only`.")
                    .label(decl.name.span, "unknown configuration")]);
            }
            // Marked: the registry redacts the sensitive values from what the provider says.
            let p = ctx
                .registry
                .configure(&decl.name.name, &config, ctx.provider_ctx)
                .map_err(|d| vec![if d.labels.is_empty() { d.label(decl.name.span, "while configuring this provider") } else { d }])?;
            providers.insert(key.clone(), p);
            provider_blocks.insert(key.clone(), config);
            Ok(vec![])
        }
        DeclId::Data(address) => {
            let Some(block) = cfg.data.get(address) else { return Ok(vec![]) };
            let value = match plan.data.get(address) {
                // Read while planning: dependents see what the plan showed.
                Some(Some(v)) => v.clone(),
                _ => read_data(ctx, block, ns, provider_blocks, host)?,
            };
            ns.set_data(&block.ns_root, &block.decl.provider.name, &block.decl.rtype.name, &block.decl.name.name, value);
            Ok(vec![])
        }
        DeclId::Output(name) => {
            let (value, sensitive) = plan::eval_output(cfg, name, ns, host)?;
            report.outputs.push((name.clone(), value, sensitive));
            Ok(vec![])
        }
        DeclId::Resource(address) => {
            tasks[t].values_for = Some(address.clone());
            let Some(res) = cfg.resources.get(address) else { return Ok(vec![]) };
            let instances = plan::expand_resource(cfg, ctx.registry, address, ns, host, false)?;
            let mut new_ops = Vec::new();
            let mut seen = HashSet::default();
            let mut diags = Vec::new();
            for (key, config) in instances {
                let inst = format!("{address}{}", key.suffix());
                seen.insert(inst.clone());
                let Some(&ci) = by_address.get(inst.as_str()) else {
                    // Unchanged, or not selected by --only: what is recorded.
                    if let Some(rec) = prior.get(&inst) {
                        tasks[t].values.push((key, Value::Map(plan::mark_sensitive(rec.attrs.clone(), &rec.sensitive))));
                    }
                    continue;
                };
                let change = &plan.changes[ci];
                // A provider that plans itself fills in what the
                // configuration leaves null (defaults, normalised values):
                // only what the configuration sets must be as planned.
                let remote = ctx.registry.get(&res.decl.provider.name).is_some_and(|f| f.plans_remotely(&res.decl.rtype.name));
                if let Some(after) = &change.after {
                    for (name, v) in &config {
                        if remote && matches!(v, Value::Null) {
                            continue;
                        }
                        if let Some(planned) = after.get(name) {
                            let differs = if remote { !fills(planned, v) } else { !planned.is_unknown_deep() && planned != v };
                            if differs {
                                diags.push(
                                    Diagnostic::new("P4010", "value changed between plan and apply")
                                        .help(format!(
                                            "`{inst}`.{name} was planned as {planned} but evaluates to {} now. This is a bug in a provider or in Plinth; plan again.",
                                            if v.is_sensitive_deep() { "(sensitive)".to_string() } else { v.to_string() }
                                        ))
                                        .label(res.decl.name.span, "inconsistent"),
                                );
                            }
                        }
                    }
                }
                let steps: VecDeque<Step> = match change.action {
                    Action::Create => VecDeque::from([Step::Create]),
                    Action::Update => VecDeque::from([Step::Update]),
                    Action::Replace if change.create_before_destroy => VecDeque::from([Step::Create, Step::Delete]),
                    Action::Replace => VecDeque::from([Step::Delete, Step::Create]),
                    Action::Delete | Action::NoOp => VecDeque::new(),
                };
                ops.push(Op { change_idx: ci, steps, config, task: t, started: Instant::now(), deposed_token: None, intent_id: 0, token: String::new() });
                new_ops.push(ops.len() - 1);
            }
            for &ci in changes_by_resource.get(address.as_str()).map(Vec::as_slice).unwrap_or(&[]) {
                let c = &plan.changes[ci];
                if !seen.contains(&c.address) {
                    diags.push(
                        Diagnostic::new("P4010", "instances changed between plan and apply")
                            .help(format!("`{}` was planned but the configuration no longer yields it; plan again.", c.address))
                            .label(res.decl.name.span, "inconsistent"),
                    );
                }
            }
            if !diags.is_empty() {
                ops.truncate(ops.len() - new_ops.len());
                return Err(diags);
            }
            Ok(new_ops)
        }
    }
}

/// Reads a data block whose configuration the plan did not know: now that
/// what it depends on is applied, its configuration and its provider's are
/// evaluated again and the data source is read (`ProviderFactory::read_data`).
fn read_data(
    ctx: &ApplyContext<'_>,
    block: &crate::eval::config::Resource,
    ns: &Namespace,
    provider_blocks: &HashMap<String, Map>,
    host: &mut dyn FnHost,
) -> Result<Value, Diags> {
    let decl = &block.decl;
    let address = block.address.as_str();
    let instances = plan::expand_data(ctx.cfg, ctx.registry, address, ns, host, false)?;
    let provider_key = block.meta.provider_config.clone().unwrap_or_else(|| decl.provider.name.clone());
    let provider_config = provider_blocks.get(&provider_key).or_else(|| ctx.provider_configs.get(&provider_key)).cloned().unwrap_or_default();
    let unknown = Value::Map(provider_config.clone()).is_unknown_deep() || instances.iter().any(|(_, c)| Value::Map(c.clone()).is_unknown_deep());
    if unknown {
        return Err(vec![Diagnostic::new("P4012", "data source configuration still unknown")
            .help(format!(
                "`{address}` (or its provider's block) uses values that are still not known after what it depends on was applied. Apply its dependencies first with `plinth apply --only <address>`, then apply the rest."
            ))
            .label(decl.name.span, "unknown configuration")]);
    }
    let Some(factory) = ctx.registry.get(&decl.provider.name) else { return Ok(Value::Unknown) };
    let schema = ctx.cfg.data_schema(ctx.registry, address);
    let mut values = Vec::with_capacity(instances.len());
    for (key, config) in instances {
        let inst_address = format!("{address}{}", key.suffix());
        let req = crate::providers::DataRequest {
            provider_key: &provider_key,
            provider_config: &provider_config,
            dtype: &decl.rtype.name,
            address: &inst_address,
            config: &config,
        };
        let read = factory
            .read_data(req)
            .map_err(|d| vec![if d.labels.is_empty() { d.label(decl.name.span, format!("while reading `{inst_address}`")) } else { d }])?;
        values.push((key, Value::Map(plan::data_value(schema, &config, read))));
    }
    Ok(plan::resource_value(ctx.cfg, address, values))
}

/// Makes the intents of the ops' current steps durable (one transaction),
/// then starts their provider calls.
#[allow(clippy::too_many_arguments)]
fn dispatch(
    ctx: &ApplyContext<'_>,
    plan: &Plan,
    prior: &crate::state::model::Snapshot,
    store: &mut dyn Store,
    serial: i64,
    op_indices: &[usize],
    ops: &mut [Op],
    providers: &mut Providers,
    semaphore: &Arc<tokio::sync::Semaphore>,
    tx: &tokio::sync::mpsc::UnboundedSender<(usize, Answer)>,
    faults: &mut FaultCounter,
    on_event: &mut dyn FnMut(Event),
) -> Result<(), Diagnostic> {
    let mut deposes = Vec::new();
    let mut intents = Vec::with_capacity(op_indices.len());
    let mut calls = Vec::with_capacity(op_indices.len());
    for &oi in op_indices {
        let op = &mut ops[oi];
        let change = &plan.changes[op.change_idx];
        let step = op.steps.front().copied().unwrap_or(Step::Create);
        let first = match change.action {
            Action::Replace => op.steps.len() == 2,
            _ => true,
        };
        if first {
            on_event(Event::Started { address: change.address.clone(), action: change.action, create_before_destroy: change.create_before_destroy });
            op.started = Instant::now();
        }
        let token = uuid::Uuid::new_v4().to_string();
        op.token = token.clone();
        if change.action == Action::Replace && change.create_before_destroy && step == Step::Create {
            let dep = format!("deposed-{}", &token[..8]);
            deposes.push(Completion::Depose { address: change.address.clone(), token: dep.clone() });
            op.deposed_token = Some(dep);
        }
        let prior_rec = prior.instances.get(&(change.address.clone(), change.deposed.clone()));
        let (action, inputs, deposed) = match step {
            Step::Create => ("create", op.config.clone(), String::new()),
            Step::Update => ("update", op.config.clone(), String::new()),
            Step::Delete => {
                let deposed = if change.action == Action::Replace && change.create_before_destroy {
                    op.deposed_token.clone().unwrap_or_default()
                } else {
                    change.deposed.clone()
                };
                ("delete", prior_rec.map(|r| r.inputs.clone()).unwrap_or_default(), deposed)
            }
        };
        // What the provider says about this object never shows its
        // sensitive values (a path, a mode, a server's echo of a header).
        let mut secrets = crate::providers::secrets_of(&inputs);
        if let Some(r) = prior_rec {
            secrets.extend(crate::providers::secrets_of_record(&r.attrs, &r.inputs, &r.sensitive));
        }
        crate::diagnostic::register_secrets(secrets.iter().cloned());
        let (Value::Map(plain_inputs), _) = Value::Map(inputs).unmark() else { continue };
        intents.push(Intent {
            id: 0,
            address: change.address.clone(),
            deposed,
            action: action.to_string(),
            token: token.clone(),
            resource: change.resource.clone(),
            provider: change.provider.clone(),
            rtype: change.rtype.clone(),
            inputs: plain_inputs.clone(),
            deps: change.deps.clone(),
            sensitive: sensitive_names(ctx, change, &op.config, &Map::default(), &prior_rec.map(|r| r.sensitive.clone()).unwrap_or_default()),
        });
        let provider = refresh::provider_for(ctx.registry, ctx.provider_ctx, ctx.provider_configs, &change.provider, providers)?;
        let object = ObjectRef { address: change.address.clone(), rtype: change.rtype.clone(), token };
        let prior_attrs = prior_rec.map(|r| r.attrs.clone()).unwrap_or_default();
        calls.push((oi, step, provider, object, plain_inputs, prior_attrs, secrets));
    }
    if !deposes.is_empty() {
        store.complete(serial, &deposes)?;
    }
    store.write_intents(serial, &mut intents)?;
    for (intent, (oi, ..)) in intents.iter().zip(calls.iter()) {
        ops[*oi].intent_id = intent.id;
    }
    faults.hit(FaultPoint::Intent, intents.len());
    for (oi, step, provider, object, config, prior_attrs, secrets) in calls {
        let tx = tx.clone();
        let semaphore = semaphore.clone();
        let interrupt = ctx.interrupt.clone();
        tokio::spawn(async move {
            let _permit = semaphore.acquire_owned().await;
            if interrupt.fired() {
                let _ = tx.send((oi, Answer::Cancelled));
                return;
            }
            let result: CallResult = match step {
                Step::Create => provider.create(CreateRequest { object, config }).await.map(Some),
                Step::Update => provider.update(UpdateRequest { object, prior: prior_attrs, config }).await.map(Some),
                Step::Delete => provider.delete(DeleteRequest { object, prior: prior_attrs }).await.map(|_| None),
            };
            let result = result.map_err(|d| d.redact(&secrets));
            let _ = tx.send((oi, Answer::Done(result)));
        });
    }
    Ok(())
}

/// A provider's planned value agrees with the configuration it was planned
/// from: equal wherever the configuration says something (a null in the
/// configuration, at any depth, is the provider's to fill; unknowns in the
/// plan are resolved at apply).
fn fills(planned: &Value, config: &Value) -> bool {
    match (planned.peel(), config.peel()) {
        (_, Value::Null) | (Value::Unknown, _) => true,
        (Value::Map(p), Value::Map(c)) => c.iter().all(|(k, cv)| fills(p.get(k).unwrap_or(&Value::Null), cv)),
        // In order, or (a set the provider reordered) each somewhere.
        (Value::List(p), Value::List(c)) => {
            p.len() == c.len() && (p.iter().zip(c).all(|(pv, cv)| fills(pv, cv)) || c.iter().all(|cv| p.iter().any(|pv| fills(pv, cv))))
        }
        (p, c) => p == c,
    }
}
