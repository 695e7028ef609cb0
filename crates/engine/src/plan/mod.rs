//! Stage `plan`: configuration + graph + prior state → [`Plan`].
//!
//! Invariants: a pure function. No IO: it reads the [`Snapshot`] it is given
//! (refreshed or not by the caller) and asks providers only for their pure
//! `plan` hook. It walks declarations in dependency order, expands `count` and
//! `for_each`, evaluates each instance's configuration and diffs it with the
//! recorded inputs. Values that only apply can tell are `Unknown` and flow into
//! everything built from them. All diagnostics of a run are returned together.
//!
//! The evaluation helpers here ([`expand_resource`], [`eval_let`], …) are also
//! what `exec` calls at apply time, when unknown values have become known.

pub mod drift;

use crate::diagnostic::{Diagnostic, Diags, Span};
use crate::eval::functions::FnHost;
use crate::eval::types::convert;
use crate::eval::{Config, DeclId, Evaluator, Namespace};
use crate::graph::Graph;
use crate::providers::Registry;
use crate::state::model::{InstanceRecord, Snapshot};
use crate::types::Type;
use crate::value::{Map, Value};
use indexmap::IndexMap;
use petgraph::graph::NodeIndex;
use plinth_base::address::Path;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum InstanceKey {
    None,
    Int(i64),
    Str(String),
}

impl InstanceKey {
    pub fn suffix(&self) -> String {
        match self {
            InstanceKey::None => String::new(),
            InstanceKey::Int(i) => format!("[{i}]"),
            InstanceKey::Str(s) => format!("[{}]", serde_json::Value::String(s.clone())),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    NoOp,
    Create,
    Update,
    Replace,
    Delete,
}

impl Action {
    pub fn symbol(self, create_before_destroy: bool) -> &'static str {
        match self {
            Action::NoOp => " ",
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace if create_before_destroy => "+/-",
            Action::Replace => "-/+",
            Action::Delete => "-",
        }
    }
    pub fn verb(self) -> &'static str {
        match self {
            Action::NoOp => "unchanged",
            Action::Create => "created",
            Action::Update => "updated in place",
            Action::Replace => "replaced",
            Action::Delete => "destroyed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Change {
    pub address: String,
    pub resource: String,
    pub key: InstanceKey,
    /// Provider configuration key: `random`, `postgres.admin`.
    pub provider: String,
    /// Provider name: `random`.
    pub provider_name: String,
    pub rtype: String,
    pub action: Action,
    /// Non-empty when this deletes a deposed object.
    pub deposed: String,
    pub create_before_destroy: bool,
    /// Attributes as recorded (sensitive ones marked).
    pub before: Option<Map>,
    /// Attributes as planned (unknown and sensitive ones marked).
    pub after: Option<Map>,
    /// Attributes whose change forces the replacement.
    pub replace_because: Vec<String>,
    /// Declaration addresses this instance depends on.
    pub deps: Vec<String>,
    /// Content behind hashed attributes, for the human plan's line diffs
    /// (`ProviderFactory::preview`); not part of the fingerprint.
    pub previews: Vec<crate::providers::ContentPreview>,
}

#[derive(Debug, Clone)]
pub struct OutputChange {
    pub name: String,
    pub before: Option<serde_json::Value>,
    pub after: Value,
    pub sensitive: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub replace: usize,
    pub delete: usize,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub env: String,
    pub prior_serial: i64,
    pub destroy: bool,
    /// Everything that changes; unchanged instances are only counted.
    pub changes: Vec<Change>,
    pub outputs: Vec<OutputChange>,
    /// Resource declarations this plan evaluated (all, unless `--only`).
    pub resources: Vec<String>,
    /// Instances that stay as they are.
    pub unchanged: usize,
    /// Component instances (address, kind, source), for grouping the plan.
    pub components: Vec<(String, String, String)>,
    /// Data blocks this plan evaluated, by address: their value when they
    /// were read while planning, None when they are read during apply
    /// (their configuration or their provider's was not known yet). Never
    /// changes: data sources are read, not managed.
    pub data: IndexMap<String, Option<Value>>,
}

impl Plan {
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for c in &self.changes {
            match c.action {
                Action::Create => s.create += 1,
                Action::Update => s.update += 1,
                Action::Replace => s.replace += 1,
                Action::Delete => s.delete += 1,
                Action::NoOp => {}
            }
        }
        s
    }

    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(|c| c.action != Action::NoOp) || self.outputs_changed()
    }

    pub fn outputs_changed(&self) -> bool {
        self.outputs.iter().any(|o| match &o.before {
            None => true,
            Some(b) => o.after.is_unknown_deep() || &o.after.to_json() != b,
        })
    }

    /// A digest of every decision and planned value: a saved plan is applied
    /// only if planning again yields the same fingerprint.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(self.env.as_bytes());
        h.update(self.prior_serial.to_le_bytes());
        for c in &self.changes {
            h.update(format!("{}|{}|{:?}|{}|", c.address, c.deposed, c.action, c.create_before_destroy).as_bytes());
            if let Some(a) = &c.after {
                h.update(Value::Map(a.clone()).canonical().as_bytes());
            }
            h.update(b"\n");
        }
        for o in &self.outputs {
            h.update(format!("{}={}\n", o.name, o.after.canonical()).as_bytes());
        }
        hex::encode(h.finalize())
    }
}

pub use crate::value::VarValue;

#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    pub destroy: bool,
    /// `validate`: params without a value are unknown, and so are the keys of
    /// `count`/`for_each` built from them (one placeholder instance).
    pub lenient: bool,
    /// `--only` targets: resource or instance addresses, `*` wildcards.
    pub only: Vec<String>,
}

pub struct PlanInputs<'a> {
    pub env: &'a str,
    pub cfg: &'a Config,
    pub graph: &'a Graph,
    pub registry: &'a Registry,
    pub prior: &'a Snapshot,
    pub vars: &'a IndexMap<String, VarValue>,
}

/// Plans the changes that bring the recorded state to the configuration.
pub fn plan(inputs: &PlanInputs<'_>, options: &PlanOptions, host: &mut dyn FnHost) -> Result<Plan, Diags> {
    let PlanInputs { env, cfg, graph, registry, prior, vars } = *inputs;
    let mut diags = Vec::new();
    let selection = select(cfg, graph, prior, &options.only).map_err(|d| vec![d])?;
    let deps_of = graph.resource_dependencies();
    let mut ns = Namespace::default();
    let mut changes = Vec::new();
    let mut outputs = Vec::new();
    let mut planned_instances: HashSet<String> = HashSet::default();
    let mut resources: Vec<String> = Vec::new();
    let mut unchanged = 0usize;
    let mut failed: HashSet<NodeIndex> = HashSet::default();
    // Evaluated provider blocks, for providers that plan themselves.
    let mut provider_configs: HashMap<String, Map> = HashMap::default();
    let mut data: IndexMap<String, Option<Value>> = IndexMap::new();

    for &n in &graph.order {
        if let Some(sel) = &selection.nodes {
            if !sel.contains(&n) {
                continue;
            }
        }
        // Do not cascade errors: a node whose dependency failed is skipped.
        if graph.dependencies(n).any(|d| failed.contains(&d)) {
            failed.insert(n);
            continue;
        }
        let result: Result<(), Diags> = match &graph.dag[n] {
            DeclId::Param(name)
                if options.lenient
                    && !vars.contains_key(name)
                    && !cfg.module_params.contains_key(name)
                    && cfg.params.get(name).is_some_and(|p| p.default.is_none()) =>
            {
                ns.set(name, Value::Unknown);
                Ok(())
            }
            DeclId::Param(name) => eval_param(cfg, name, vars, &mut ns, host),
            DeclId::Let(name) => eval_let(cfg, name, &mut ns, host),
            DeclId::Provider(key) => eval_provider_config(cfg, key, &ns, host).map(|config| {
                provider_configs.insert(key.clone(), config);
            }),
            DeclId::Resource(address) => {
                if options.destroy {
                    // Nothing is planned but deletes: what is built from
                    // resources (lets, component outputs) is unknown.
                    if let Some(res) = cfg.resources.get(address) {
                        ns.set_resource(&res.ns_root, &res.decl.rtype.name, &res.decl.name.name, Value::Unknown);
                    }
                    Ok(())
                } else {
                    {
                        resources.push(address.clone());
                        plan_resource(
                            cfg,
                            registry,
                            prior,
                            &provider_configs,
                            address,
                            &selection,
                            &deps_of,
                            &mut ns,
                            host,
                            &mut changes,
                            &mut planned_instances,
                            &mut unchanged,
                            options.lenient,
                        )
                    }
                }
            }
            DeclId::Data(address) => {
                let Some(block) = cfg.data.get(address) else { continue };
                if options.destroy {
                    ns.set_data(&block.ns_root, &block.decl.provider.name, &block.decl.rtype.name, &block.decl.name.name, Value::Unknown);
                    Ok(())
                } else {
                    // As Terraform: a data block that depends on a resource
                    // this plan changes is read after that change, during apply.
                    let after_changes = deps_of.get(address).is_some_and(|deps| changes.iter().any(|c: &Change| deps.contains(&c.resource)));
                    plan_data(cfg, registry, &provider_configs, address, &mut ns, host, options.lenient, after_changes).map(|read| {
                        data.insert(address.clone(), read);
                    })
                }
            }
            DeclId::Output(name) => {
                if options.destroy || selection.nodes.is_some() {
                    Ok(())
                } else {
                    eval_output(cfg, name, &ns, host).map(|(value, sensitive)| {
                        outputs.push(OutputChange { name: name.clone(), before: prior.outputs.get(name).map(|o| o.value.clone()), after: value, sensitive });
                    })
                }
            }
        };
        if let Err(d) = result {
            diags.extend(d);
            failed.insert(n);
        }
    }
    if !diags.is_empty() {
        return Err(dedup(diags));
    }

    // Objects in state that the configuration no longer declares, deposed
    // objects, and everything when destroying.
    let mut deletes = Vec::new();
    for rec in prior.instances.values() {
        let orphan = !rec.deposed.is_empty() || options.destroy || !planned_instances.contains(&rec.address);
        if !orphan || !selection.covers_instance(rec) {
            continue;
        }
        if !rec.deposed.is_empty() || !planned_instances.contains(&rec.address) {
            if let Some(r) = cfg.resources.get(&rec.resource) {
                if r.meta.prevent_destroy && rec.deposed.is_empty() && (options.destroy || cfg.resources.contains_key(&rec.resource)) {
                    diags.push(
                        Diagnostic::new("P4003", "resource is protected from destruction")
                            .help("Its `lifecycle { prevent_destroy = true }` forbids this plan; remove that setting first if you really mean to destroy it.")
                            .label(r.decl.name.span, format!("`{}` would be destroyed", rec.address)),
                    );
                    continue;
                }
            }
            deletes.push(delete_change(rec));
        }
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    // Deletes run dependents first; listing them in that order reads well too.
    deletes.sort_by(|a, b| b.address.cmp(&a.address));
    changes.extend(deletes);

    let components = cfg.components.iter().map(|c| (c.address.clone(), c.kind.clone(), c.source.clone())).collect();
    Ok(Plan { env: env.to_string(), prior_serial: prior.serial, destroy: options.destroy, changes, outputs, resources, unchanged, components, data })
}

/// The same mistake evaluated for every instance is reported once.
fn dedup(diags: Diags) -> Diags {
    let mut out: Diags = Vec::with_capacity(diags.len());
    for d in diags {
        if !out.contains(&d) {
            out.push(d);
        }
    }
    out
}

fn delete_change(rec: &InstanceRecord) -> Change {
    Change {
        address: rec.address.clone(),
        resource: rec.resource.clone(),
        key: InstanceKey::None,
        provider: rec.provider.clone(),
        provider_name: rec.provider.split('.').next().unwrap_or("").to_string(),
        rtype: rec.rtype.clone(),
        action: Action::Delete,
        deposed: rec.deposed.clone(),
        create_before_destroy: false,
        before: Some(mark_sensitive(rec.attrs.clone(), &rec.sensitive)),
        after: None,
        replace_because: vec![],
        deps: rec.deps.clone(),
        previews: vec![],
    }
}

pub fn mark_sensitive(mut attrs: Map, sensitive: &[String]) -> Map {
    for name in sensitive {
        if let Some(v) = attrs.get_mut(name) {
            let inner = std::mem::replace(v, Value::Null);
            *v = inner.mark_if(true);
        }
    }
    attrs
}

/// Which declarations and instances `--only` selects.
pub struct Selection {
    /// None: everything.
    pub nodes: Option<HashSet<NodeIndex>>,
    /// Instance addresses named explicitly (restrict those resources to them).
    pub instances: HashMap<String, HashSet<String>>,
    patterns: Vec<String>,
}

impl Selection {
    fn covers_instance(&self, rec: &InstanceRecord) -> bool {
        if self.nodes.is_none() {
            return true;
        }
        self.patterns.iter().any(|p| glob_match(p, &rec.address) || glob_match(p, &rec.resource) || in_component(p, &rec.address))
    }
    fn covers(&self, resource: &str, address: &str) -> bool {
        match self.instances.get(resource) {
            Some(set) => set.contains(address),
            None => true,
        }
    }
}

/// Resolves `--only` targets to graph nodes plus their dependencies.
pub fn select(cfg: &Config, graph: &Graph, prior: &Snapshot, only: &[String]) -> Result<Selection, Diagnostic> {
    if only.is_empty() {
        return Ok(Selection { nodes: None, instances: HashMap::default(), patterns: vec![] });
    }
    // A target that names nothing here (another environment's resource) is
    // only an error when no target names anything: the CLI warns about the
    // others (`unmatched_only`).
    let unmatched = unmatched_only(cfg, prior, only);
    if unmatched.len() == only.len() {
        if let Some(target) = unmatched.first() {
            let mut candidates: Vec<&str> = cfg.resources.keys().map(String::as_str).collect();
            candidates.extend(cfg.components.iter().map(|c| c.address.as_str()));
            return Err(Diagnostic::new("P4001", "nothing matches `--only`").help(format!(
                "`{target}` names no resource or component of the configuration or the state; give a resource address such as `random.password.db`, an instance such as `file.file.x[\"a\"]`, a component such as `stack.core`, or a pattern such as `file.*` or `stack.*`.{}",
                crate::diagnostic::suggestion(target, candidates)
            )));
        }
    }
    let mut roots = Vec::new();
    let mut instances: HashMap<String, HashSet<String>> = HashMap::default();
    for target in only {
        let resource_part = only_resource_part(target);
        for address in cfg.resources.keys() {
            if in_component(target, address) {
                if let Some(n) = graph.node(&DeclId::Resource(address.clone())) {
                    roots.push(n);
                }
            } else if glob_match(resource_part, address) {
                if let Some(n) = graph.node(&DeclId::Resource(address.clone())) {
                    roots.push(n);
                }
                if resource_part.len() < target.len() && !target.contains('*') {
                    instances.entry(address.clone()).or_default().insert(target.clone());
                }
            }
        }
    }
    Ok(Selection { nodes: Some(graph.with_dependencies(roots)), instances, patterns: only.to_vec() })
}

/// `file.file.x["a"]` names an instance of `file.file.x`; inside a
/// component (`module.m[0].file.file.f`) only a trailing key is one.
fn only_resource_part(target: &str) -> &str {
    match target.strip_suffix(']').and_then(|t| t.rfind('[')) {
        Some(i) => &target[..i],
        None => target,
    }
}

/// The `--only` targets that name no resource or component of the
/// configuration and nothing in the state. `select` fails (`P4001`) when
/// every target is one; otherwise the CLI warns about them (`P4040`): a list
/// of targets shared by several environments need not match in each.
pub fn unmatched_only<'a>(cfg: &Config, prior: &Snapshot, only: &'a [String]) -> Vec<&'a String> {
    only.iter()
        .filter(|target| {
            let resource_part = only_resource_part(target);
            let in_config = cfg.resources.keys().any(|a| in_component(target, a) || glob_match(resource_part, a));
            let in_state =
                prior.instances.values().any(|r| glob_match(target, &r.address) || glob_match(resource_part, &r.resource) || in_component(target, &r.address));
            !in_config && !in_state
        })
        .collect()
}

/// `stack.core` covers `stack.core.random.password.x`; `module.db` covers
/// every instance `module.db["a"].…` ([`Path::covers`]; patterns with `*`
/// go through [`glob_match`] instead).
pub fn in_component(target: &str, address: &str) -> bool {
    // Called for every (component, change) pair when a plan is grouped: the
    // text test first (a covered address starts with the target's text, then
    // a `.` or a key), and the typed check only for the few that pass it.
    let Some(rest) = address.strip_prefix(target) else { return false };
    if !(rest.starts_with('.') || rest.starts_with('[')) || target.contains('*') {
        return false;
    }
    Path::parse(target).zip(Path::parse(address)).is_some_and(|(t, a)| t.covers(&a))
}

/// `*` matches any run of characters.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == text;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(pos) => rest = &rest[pos + part.len()..],
                None => return false,
            }
        }
    }
    rest.is_empty()
}

// ------------------------------------------------------------ evaluation

pub fn eval_param(cfg: &Config, name: &str, vars: &IndexMap<String, VarValue>, ns: &mut Namespace, host: &mut dyn FnHost) -> Result<(), Diags> {
    let Some(decl) = cfg.params.get(name) else { return Ok(()) };
    let ty = decl.ty.as_ref().map(|t| t.ty.clone()).unwrap_or(Type::Any);
    let input = cfg.module_params.get(name);
    let given = match input {
        // A component's input, evaluated where the component is declared.
        Some(m) => match &m.input {
            Some(e) => {
                let local = name.rsplit('.').next().unwrap_or(name);
                let v = Evaluator::new(ns, host).eval(e).map_err(|d| vec![d])?;
                Some((v, format!("the input `{local}` of `{}`", m.component), e.span))
            }
            None => None,
        },
        None => vars.get(name).map(|v| (v.value.clone(), v.origin.clone(), v.span.unwrap_or(decl.name.span))),
    };
    let (raw, origin, span) = match given {
        Some(g) => g,
        None => match &decl.default {
            Some(d) => {
                let mut ev = Evaluator::new(ns, host);
                (ev.eval(d).map_err(|e| vec![e])?, "its default".to_string(), d.span)
            }
            None => {
                return Err(vec![Diagnostic::new("P2030", "missing value for a required param")
                    .help(format!(
                        "Give `{name}` a value: `-var {name}=…`, a `--var-file`, or the environment variable `PLINTH_VAR_{name}`; or declare a default."
                    ))
                    .label(decl.name.span, format!("`{name}` has no value"))])
            }
        },
    };
    let body = decl.body.as_ref();
    let sensitive = declared_sensitive(body);
    // Marked before conversion, so a conversion error cannot quote it.
    let mut value = convert(raw.mark_if(sensitive), &ty).map_err(|msg| {
        let mut d = Diagnostic::new("P2031", "param value has the wrong type")
            .help(format!("`{name}` is declared as `{ty}`; the value from {origin} does not fit: {msg}."))
            .label(span, format!("expected {ty}"));
        if input.is_some() {
            d = d.label(decl.name.span, "the module's param");
        }
        vec![d]
    })?;
    value = value.mark_if(sensitive);
    if let Some(rule) = body.and_then(|b| b.attr("validate")) {
        let mut ev = Evaluator::new(ns, host);
        ev.push_local(name, value.clone());
        let ok = ev.eval(&rule.value).map_err(|e| vec![e])?;
        let message = match body.and_then(|b| b.attr("message")) {
            // A message built from a sensitive value is not shown.
            Some(m) => ev.eval(&m.value).ok().and_then(|v| if v.is_sensitive_deep() { None } else { v.as_str().map(String::from) }),
            None => None,
        };
        match ok.peel() {
            Value::Bool(true) | Value::Unknown => {}
            Value::Bool(false) => {
                let shown = if sensitive { "(sensitive)".to_string() } else { value.to_string() };
                return Err(vec![Diagnostic::new("P2032", "param value is invalid")
                    .help(message.unwrap_or_else(|| format!("The value {shown} of `{name}` does not satisfy its `validate` rule.")))
                    .label(rule.value.span, "this rule is false")
                    .note(format!("`{name}` = {shown} (from {origin})"))]);
            }
            other => {
                return Err(vec![Diagnostic::new("P2024", "validation rule is not a bool")
                    .help("A `validate` rule must evaluate to true or false.")
                    .label(rule.value.span, format!("this is {}", crate::eval::types::article_of_value(other)))])
            }
        }
    }
    ns.set(name, value);
    Ok(())
}

/// `{ sensitive = true }` in a param's or output's block.
fn declared_sensitive(body: Option<&crate::syntax::ast::Body>) -> bool {
    body.and_then(|b| b.attr("sensitive")).is_some_and(|a| matches!(a.value.kind, crate::syntax::ast::ExprKind::Bool(true)))
}

pub fn eval_let(cfg: &Config, name: &str, ns: &mut Namespace, host: &mut dyn FnHost) -> Result<(), Diags> {
    let Some(decl) = cfg.lets.get(name) else { return Ok(()) };
    let v = Evaluator::new(ns, host).eval(&decl.value).map_err(|e| vec![e])?;
    ns.set(name, v.mark_if(cfg.sensitive_lets.contains(name)));
    Ok(())
}

pub fn eval_provider_config(cfg: &Config, key: &str, ns: &Namespace, host: &mut dyn FnHost) -> Result<Map, Diags> {
    let Some(decl) = cfg.providers.get(key) else { return Ok(Map::default()) };
    let mut out = Map::default();
    let mut diags = Vec::new();
    let mut ev = Evaluator::new(ns, host);
    for a in &decl.body.attrs {
        match ev.eval(&a.value) {
            Ok(v) => {
                out.insert(a.name.name.clone(), v);
            }
            Err(d) => diags.push(d),
        }
    }
    // Nested blocks of a Terraform provider's configuration (`assume_role
    // { … }`): a list of objects per name; the provider's schema shapes it.
    for b in &decl.body.blocks {
        let nested = crate::providers::BlockSchema { nesting: crate::providers::Nesting::List, min_items: 0, max_items: 0, attributes: IndexMap::default() };
        match eval_blocks(&mut ev, &[b], &nested) {
            Ok(Value::List(items)) => {
                if let Some(Value::List(have)) = out.get_mut(&b.name.name) {
                    have.extend(items);
                } else {
                    out.insert(b.name.name.clone(), Value::List(items));
                }
            }
            Ok(_) => {}
            Err(d) => diags.push(d),
        }
    }
    if diags.is_empty() {
        Ok(out)
    } else {
        Err(diags)
    }
}

/// Every provider block evaluated against recorded values (params, lets,
/// and the attributes state records for resources), for the operations that
/// run before or without a fresh evaluation: reconciling interrupted runs,
/// reading objects back, deleting what the configuration no longer has.
/// Blocks whose values are not known from state are left out (the apply
/// configures them when it reaches them). Keyed by `name` or `name.alias`.
pub fn provider_configs_from_state(
    cfg: &Config,
    graph: &Graph,
    prior: &Snapshot,
    vars: &IndexMap<String, VarValue>,
    host: &mut dyn FnHost,
) -> IndexMap<String, Map> {
    let mut ns = Namespace::default();
    let mut out = IndexMap::new();
    // Only provider blocks and what they depend on: usually nothing at all.
    let roots: Vec<NodeIndex> = cfg.providers.keys().filter_map(|k| graph.node(&DeclId::Provider(k.clone()))).collect();
    if roots.is_empty() {
        return out;
    }
    let needed = graph.with_dependencies(roots);
    let mut by_resource: HashMap<&str, Vec<&InstanceRecord>> = HashMap::default();
    for r in prior.instances.values().filter(|r| r.deposed.is_empty()) {
        by_resource.entry(r.resource.as_str()).or_default().push(r);
    }
    for &n in &graph.order {
        if !needed.contains(&n) {
            continue;
        }
        match &graph.dag[n] {
            DeclId::Param(name) => {
                if eval_param(cfg, name, vars, &mut ns, host).is_err() {
                    ns.set(name, Value::Unknown);
                }
            }
            DeclId::Let(name) => {
                if eval_let(cfg, name, &mut ns, host).is_err() {
                    ns.set(name, Value::Unknown);
                }
            }
            DeclId::Resource(address) => {
                let Some(res) = cfg.resources.get(address) else { continue };
                let instances: Vec<(InstanceKey, Value)> = by_resource
                    .get(address.as_str())
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
                    .iter()
                    .map(|r| (parse_key(&r.address[address.len()..]), Value::Map(mark_sensitive(r.attrs.clone(), &r.sensitive))))
                    .collect();
                let value = resource_value(cfg, address, instances);
                ns.set_resource(&res.ns_root, &res.decl.rtype.name, &res.decl.name.name, value);
            }
            DeclId::Provider(key) => {
                if let Ok(config) = eval_provider_config(cfg, key, &ns, host) {
                    if !Value::Map(config.clone()).is_unknown_deep() {
                        out.insert(key.clone(), config);
                    }
                }
            }
            // Data sources are not recorded: a provider block built from
            // one is configured when the walk reaches it.
            DeclId::Data(address) => {
                if let Some(d) = cfg.data.get(address) {
                    ns.set_data(&d.ns_root, &d.decl.provider.name, &d.decl.rtype.name, &d.decl.name.name, Value::Unknown);
                }
            }
            DeclId::Output(_) => {}
        }
    }
    out
}

/// `[0]` → Int(0), `["a"]` → Str("a"), "" → None.
fn parse_key(suffix: &str) -> InstanceKey {
    let inner = suffix.trim_start_matches('[').trim_end_matches(']');
    if suffix.is_empty() {
        InstanceKey::None
    } else if let Ok(i) = inner.parse::<i64>() {
        InstanceKey::Int(i)
    } else {
        InstanceKey::Str(serde_json::from_str::<String>(inner).unwrap_or_else(|_| inner.to_string()))
    }
}

/// An output's value and whether it is sensitive. A value built from
/// sensitive data must be declared `sensitive = true`.
pub fn eval_output(cfg: &Config, name: &str, ns: &Namespace, host: &mut dyn FnHost) -> Result<(Value, bool), Diags> {
    let Some(decl) = cfg.outputs.get(name) else { return Ok((Value::Null, false)) };
    let v = Evaluator::new(ns, host).eval(&decl.value).map_err(|e| vec![e])?;
    let declared = declared_sensitive(decl.body.as_ref());
    if v.is_sensitive_deep() && !declared {
        return Err(vec![Diagnostic::new("P2034", "output exposes a sensitive value")
            .help(format!(
                "`{name}` is built from sensitive data; declare it `output {name} = … {{ sensitive = true }}` so it is redacted, or output something else."
            ))
            .label(decl.value.span, "contains a sensitive value")]);
    }
    Ok((v, declared))
}

/// Evaluates `count`/`for_each` and every attribute of a resource: one
/// configuration per instance, with schema defaults filled in and values
/// converted to the schema's types.
/// Instances one resource may have, through `count` or `for_each` alike.
const MAX_INSTANCES: usize = 100_000;

fn too_many_instances(n: usize, span: Span) -> Diagnostic {
    Diagnostic::new("P2041", "invalid `for_each`")
        .help(format!("`for_each` may create at most {MAX_INSTANCES} instances (as `count` may); this one has {n} keys."))
        .label(span, format!("{n} keys"))
}

pub fn expand_resource(
    cfg: &Config,
    registry: &Registry,
    address: &str,
    ns: &Namespace,
    host: &mut dyn FnHost,
    lenient: bool,
) -> Result<Vec<(InstanceKey, Map)>, Diags> {
    let Some(res) = cfg.resources.get(address) else { return Ok(vec![]) };
    let schema = registry.resource_schema(&res.decl.provider.name, &res.decl.rtype.name);
    expand(res, schema, ns, host, lenient)
}

/// [`expand_resource`] for a data block: one configuration per instance,
/// checked against the data source's schema.
pub fn expand_data(
    cfg: &Config,
    registry: &Registry,
    address: &str,
    ns: &Namespace,
    host: &mut dyn FnHost,
    lenient: bool,
) -> Result<Vec<(InstanceKey, Map)>, Diags> {
    let Some(res) = cfg.data.get(address) else { return Ok(vec![]) };
    expand(res, cfg.data_schema(registry, address), ns, host, lenient)
}

/// The instances of a resource or data block and their configurations.
fn expand(
    res: &crate::eval::config::Resource,
    schema: Option<&crate::providers::ResourceSchema>,
    ns: &Namespace,
    host: &mut dyn FnHost,
    lenient: bool,
) -> Result<Vec<(InstanceKey, Map)>, Diags> {
    let address = res.address.as_str();
    let mut ev = Evaluator::new(ns, host);
    let keys: Vec<(InstanceKey, Option<(String, Value)>)> = if let Some(count) = &res.meta.count {
        let v = ev.eval(count).map_err(|e| vec![e])?;
        let sensitive_count = v.is_sensitive_deep();
        let v = convert(v.clone(), &Type::Number).unwrap_or(v);
        match v.peel() {
            Value::Unknown if lenient => vec![(InstanceKey::Int(0), None)],
            Value::Unknown => return Err(vec![unknown_repetition("count", count.span)]),
            v => match v.as_i64() {
                Some(n) if (0..=MAX_INSTANCES as i64).contains(&n) => (0..n).map(|i| (InstanceKey::Int(i), None)).collect(),
                _ => {
                    let shown = if sensitive_count { "a sensitive value".to_string() } else { v.to_string() };
                    return Err(vec![Diagnostic::new("P2041", "invalid `count`")
                        .help("`count` must be a whole number from 0 to 100000.")
                        .label(count.span, format!("this is {shown}"))]);
                }
            },
        }
    } else if let Some(fe) = &res.meta.for_each {
        let v = ev.eval(fe).map_err(|e| vec![e])?;
        if v.is_sensitive_deep() {
            return Err(vec![Diagnostic::new("P2042", "`for_each` over sensitive values")
                .help("Instance keys appear in addresses and plans, so they cannot be sensitive; iterate over non-sensitive keys.")
                .label(fe.span, "sensitive")]);
        }
        match v {
            Value::Unknown if lenient => vec![(InstanceKey::Str("*".into()), Some(("*".into(), Value::Unknown)))],
            Value::Unknown => return Err(vec![unknown_repetition("for_each", fe.span)]),
            Value::Map(m) if m.len() > MAX_INSTANCES => return Err(vec![too_many_instances(m.len(), fe.span)]),
            Value::List(items) if items.len() > MAX_INSTANCES => return Err(vec![too_many_instances(items.len(), fe.span)]),
            Value::Map(m) => m.into_iter().map(|(k, v)| (InstanceKey::Str(k.clone()), Some((k, v)))).collect(),
            Value::List(items) => {
                let mut out = Vec::new();
                let mut seen = HashSet::default();
                for item in items {
                    match item {
                        Value::String(s) => {
                            if seen.insert(s.clone()) {
                                out.push((InstanceKey::Str(s.clone()), Some((s.clone(), Value::String(s)))));
                            }
                        }
                        Value::Unknown if lenient => {
                            out.push((InstanceKey::Str("*".into()), Some(("*".into(), Value::Unknown))));
                            break;
                        }
                        Value::Unknown => return Err(vec![unknown_repetition("for_each", fe.span)]),
                        other => {
                            return Err(vec![Diagnostic::new("P2041", "invalid `for_each`")
                                .help("`for_each` takes a map, or a set (list) of strings.")
                                .label(fe.span, format!("contains {}", crate::eval::types::article_of_value(&other)))])
                        }
                    }
                }
                out
            }
            other => {
                return Err(vec![Diagnostic::new("P2041", "invalid `for_each`")
                    .help("`for_each` takes a map, or a set (list) of strings.")
                    .label(fe.span, format!("this is {}", crate::eval::types::article_of_value(&other)))])
            }
        }
    } else {
        vec![(InstanceKey::None, None)]
    };

    let mut out = Vec::with_capacity(keys.len());
    let mut diags = Vec::new();
    for (key, each) in keys {
        let mut bound = 0;
        match (&key, each) {
            (InstanceKey::Int(i), _) => {
                let mut m = Map::default();
                m.insert("index".into(), Value::Int(*i));
                ev.push_local("count", Value::Map(m));
                bound += 1;
            }
            (_, Some((k, v))) => {
                let mut m = Map::default();
                m.insert("key".into(), if lenient && k == "*" && matches!(v, Value::Unknown) { Value::Unknown } else { Value::String(k) });
                m.insert("value".into(), v);
                ev.push_local("each", Value::Map(m));
                bound += 1;
            }
            _ => {}
        }
        let mut config = Map::default();
        let mut mistyped: Vec<&str> = Vec::new();
        for a in &res.decl.body.attrs {
            let name = a.name.name.as_str();
            if crate::eval::config::META_ARGUMENTS.contains(&name) {
                continue;
            }
            match ev.eval(&a.value) {
                Ok(v) => {
                    let v = match schema.and_then(|s| s.attributes.get(name)) {
                        Some(attr) => match convert(v, &attr.ty) {
                            Ok(v) => v,
                            Err(msg) => {
                                diags.push(
                                    Diagnostic::new("P2033", "attribute value has the wrong type")
                                        .help(format!("`{name}` of `{}.{}` is `{}`: {msg}.", res.decl.provider.name, res.decl.rtype.name, attr.ty))
                                        .label(a.value.span, format!("expected {}", attr.ty)),
                                );
                                mistyped.push(name);
                                continue;
                            }
                        },
                        None => v,
                    };
                    config.insert(name.to_string(), v);
                }
                Err(d) => diags.push(d),
            }
        }
        // Nested blocks (`rule { … }`, repeatable): the value they make.
        if let Some(schema) = schema {
            for (name, attr) in &schema.attributes {
                let Some(nested) = &attr.block else { continue };
                let blocks: Vec<&crate::syntax::ast::Block> = res.decl.body.blocks.iter().filter(|b| b.name.name == *name).collect();
                if blocks.is_empty() {
                    continue;
                }
                match eval_blocks(&mut ev, &blocks, nested) {
                    Ok(v) => match convert(v, &attr.ty) {
                        Ok(v) => {
                            config.insert((*name).to_string(), v);
                        }
                        Err(msg) => {
                            diags.push(
                                Diagnostic::new("P2033", "block has the wrong type")
                                    .help(format!("`{name}` blocks of `{}.{}`: {msg}.", res.decl.provider.name, res.decl.rtype.name))
                                    .label(blocks[0].name.span, format!("expected {}", attr.ty)),
                            );
                            mistyped.push(name);
                        }
                    },
                    Err(d) => diags.push(d),
                }
            }
        }
        if let Some(schema) = schema {
            for (name, attr) in &schema.attributes {
                if !config.contains_key(*name) && attr.is_input() {
                    let default = match &attr.sensitive_default {
                        Some((source, v)) if config.get(*source).is_some_and(Value::is_sensitive_deep) => v.clone(),
                        _ => attr.default.clone().unwrap_or(Value::Null),
                    };
                    config.insert((*name).to_string(), default);
                }
                if attr.required && matches!(config.get(*name), Some(Value::Null)) && !mistyped.contains(name) {
                    diags.push(
                        Diagnostic::new("P2005", "missing required attribute")
                            .help(format!("`{name}` of `{address}` must not be null ({}).", attr.description))
                            .label(res.decl.name.span, format!("`{name}` is null")),
                    );
                }
            }
        }
        for _ in 0..bound {
            ev.pop_local();
        }
        out.push((key, config));
    }
    if diags.is_empty() {
        Ok(out)
    } else {
        Err(diags)
    }
}

/// An instance's action, the attributes that force its replacement, and
/// the configuration to apply.
type Decision = (Action, Vec<String>, Map);

/// What an instance's inputs alone make of it: created without a record,
/// unchanged when its configuration (with `ignore_changes` kept as
/// recorded) equals the recorded inputs, else updated, or replaced when a
/// changed attribute forces it. Returns the configuration to apply.
fn by_inputs(
    res: &crate::eval::config::Resource,
    schema: Option<&crate::providers::ResourceSchema>,
    prior_rec: Option<&InstanceRecord>,
    config: Map,
) -> Decision {
    let Some(rec) = prior_rec else { return (Action::Create, vec![], config) };
    let mut config = config;
    for name in &res.meta.ignore_changes {
        if let Some(v) = rec.inputs.get(name) {
            config.insert(name.clone(), v.clone());
        }
    }
    let mut changed = Vec::new();
    for (name, v) in &config {
        let recorded = rec.inputs.get(name).unwrap_or(&Value::Null);
        if v.is_unknown_deep() || v != recorded {
            changed.push(name.clone());
        }
    }
    if changed.is_empty() {
        return (Action::NoOp, vec![], config);
    }
    let forcing: Vec<String> =
        changed.iter().filter(|n| schema.and_then(|s| s.attributes.get(n.as_str())).is_some_and(|a| a.forces_replacement)).cloned().collect();
    if forcing.is_empty() {
        (Action::Update, vec![], config)
    } else {
        (Action::Replace, forcing, config)
    }
}

/// A recorded object and a provider's plan for it hold the same values
/// (the provider's bookkeeping aside).
fn same_object(recorded: &Map, planned: &Map) -> bool {
    let skip = |k: &String| k == crate::providers::BOOKKEEPING;
    recorded.iter().filter(|(k, _)| !skip(k)).all(|(k, v)| planned.get(k).is_some_and(|p| p == v && !p.is_unknown_deep()))
        && planned.iter().filter(|(k, _)| !skip(k)).all(|(k, _)| recorded.contains_key(k))
}

/// The value of the blocks `blocks` (all of one name): a list of objects,
/// or one object for single and group blocks.
fn eval_blocks(ev: &mut Evaluator<'_>, blocks: &[&crate::syntax::ast::Block], nested: &crate::providers::BlockSchema) -> Result<Value, Diagnostic> {
    let mut items = Vec::with_capacity(blocks.len());
    for b in blocks {
        let mut obj = Map::default();
        for a in &b.body.attrs {
            obj.insert(a.name.name.clone(), ev.eval(&a.value)?);
        }
        for (name, attr) in &nested.attributes {
            let Some(inner) = &attr.block else { continue };
            let inner_blocks: Vec<&crate::syntax::ast::Block> = b.body.blocks.iter().filter(|x| x.name.name == *name).collect();
            if !inner_blocks.is_empty() {
                obj.insert((*name).to_string(), eval_blocks(ev, &inner_blocks, inner)?);
            }
        }
        items.push(Value::Map(obj));
    }
    Ok(match nested.nesting {
        crate::providers::Nesting::Single | crate::providers::Nesting::Group => items.into_iter().next().unwrap_or(Value::Null),
        _ => Value::List(items),
    })
}

fn unknown_repetition(what: &str, span: Span) -> Diagnostic {
    Diagnostic::new("P2040", format!("`{what}` depends on values known only after apply"))
        .help(format!(
            "Plinth must know how many instances to plan. `{what}` here is built from an attribute that a provider computes; base it on params or lets, or apply the resource it depends on first with `--only`."
        ))
        .label(span, "unknown until apply")
}

/// The value a resource declaration has in expressions: an object, or a
/// list/map of instance objects under `count`/`for_each`.
pub fn resource_value(cfg: &Config, address: &str, instances: Vec<(InstanceKey, Value)>) -> Value {
    match cfg.resources.get(address).or_else(|| cfg.data.get(address)) {
        Some(res) => instances_value(res, instances),
        None => Value::Null,
    }
}

/// The value of a resource or data block from its instances' values.
fn instances_value(res: &crate::eval::config::Resource, mut instances: Vec<(InstanceKey, Value)>) -> Value {
    for (_, v) in instances.iter_mut() {
        if let Value::Map(m) = v {
            if m.contains_key(crate::providers::BOOKKEEPING) {
                m.shift_remove(crate::providers::BOOKKEEPING);
            }
        }
    }
    if res.meta.count.is_some() {
        Value::List(instances.into_iter().map(|(_, v)| v).collect())
    } else if res.meta.for_each.is_some() {
        Value::Map(
            instances
                .into_iter()
                .map(|(k, v)| match k {
                    InstanceKey::Str(s) => (s, v),
                    other => (other.suffix(), v),
                })
                .collect(),
        )
    } else {
        instances.into_iter().next().map(|(_, v)| v).unwrap_or(Value::Null)
    }
}

/// Sensitive attribute names of a planned or applied object.
pub fn sensitive_attrs(registry: &Registry, provider: &str, rtype: &str, attrs: &Map, prior: &[String]) -> Vec<String> {
    let schema = registry.resource_schema(provider, rtype);
    let mut out: Vec<String> = Vec::new();
    for (name, v) in attrs {
        let by_schema = schema.and_then(|s| s.attributes.get(name.as_str())).is_some_and(|a| a.sensitive);
        if by_schema || v.is_sensitive_deep() || prior.contains(name) {
            out.push(name.clone());
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn plan_resource(
    cfg: &Config,
    registry: &Registry,
    prior: &Snapshot,
    provider_configs: &HashMap<String, Map>,
    address: &str,
    selection: &Selection,
    deps_of: &HashMap<String, BTreeSet<String>>,
    ns: &mut Namespace,
    host: &mut dyn FnHost,
    changes: &mut Vec<Change>,
    planned_instances: &mut HashSet<String>,
    unchanged: &mut usize,
    lenient: bool,
) -> Result<(), Diags> {
    let Some(res) = cfg.resources.get(address) else { return Ok(()) };
    let provider_name = res.decl.provider.name.clone();
    let rtype = res.decl.rtype.name.clone();
    let provider_key = res.meta.provider_config.clone().unwrap_or_else(|| provider_name.clone());
    let Some(factory) = registry.get(&provider_name) else { return Ok(()) };
    let schema = factory.schema().resources.get(rtype.as_str());
    let instances = expand_resource(cfg, registry, address, ns, host, lenient)?;
    let deps: Vec<String> = deps_of.get(address).map(|s| s.iter().cloned().collect()).unwrap_or_default();
    // What each instance's inputs make of it, decided once: None for an
    // instance that is not planned (not selected; or, at `validate`, of a
    // Terraform provider not installed yet).
    let unknowable = lenient && !factory.schema_known();
    let decided: Vec<(InstanceKey, String, Option<Decision>)> = instances
        .into_iter()
        .map(|(key, config)| {
            let inst_address = format!("{address}{}", key.suffix());
            let decision = (!unknowable && selection.covers(address, &inst_address)).then(|| by_inputs(res, schema, prior.get(&inst_address), config));
            (key, inst_address, decision)
        })
        .collect();
    // A provider that plans itself is asked about every changing instance
    // at once (it may answer concurrently); the loop below takes the answers.
    let mut prefetched: HashMap<String, Result<plinth_sdk::PlannedChange, Diagnostic>> = HashMap::default();
    if factory.plans_remotely(&rtype) && !lenient && factory.schema_known() && decided.len() > 1 {
        let reqs: Vec<plinth_sdk::ChangeRequest<'_>> = decided
            .iter()
            .filter_map(|(_, inst_address, decision)| {
                let (action, _, config) = decision.as_ref()?;
                let prior_attrs = match action {
                    Action::Create | Action::Replace => None,
                    Action::Update => prior.get(inst_address).map(|r| &r.attrs),
                    _ => return None,
                };
                Some(plinth_sdk::ChangeRequest {
                    provider_key: &provider_key,
                    provider_config: provider_configs.get(&provider_key),
                    rtype: &rtype,
                    address: inst_address,
                    prior: prior_attrs,
                    config,
                })
            })
            .collect();
        let answers = factory.plan_changes(&reqs);
        prefetched = reqs.iter().map(|r| r.address.to_string()).zip(answers).collect();
    }
    let mut values = Vec::with_capacity(decided.len());
    for (key, inst_address, decision) in decided {
        planned_instances.insert(inst_address.clone());
        let prior_rec = prior.get(&inst_address);
        let Some((action, replace_because, config)) = decision else {
            if unknowable {
                // Nothing is known of its objects (any attribute may be
                // read from them).
                values.push((key, Value::Unknown));
            } else if let Some(rec) = prior_rec {
                // Not selected: keep what is recorded, for expressions.
                values.push((key, Value::Map(mark_sensitive(rec.attrs.clone(), &rec.sensitive))));
            }
            continue;
        };
        if action == Action::Replace && res.meta.prevent_destroy {
            return Err(vec![Diagnostic::new("P4003", "resource is protected from destruction")
                .help(format!(
                    "Changing {} replaces `{inst_address}`, which destroys it, and its `lifecycle {{ prevent_destroy = true }}` forbids that. Revert the change, or remove the setting first if you really mean to replace it.",
                    replace_because.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
                ))
                .label(res.decl.name.span, format!("`{inst_address}` would be replaced"))]);
        }
        // Types whose computed attributes come from outside the
        // configuration (`file.tree` renders templates on disk) are planned
        // even with unchanged inputs; a planned computed attribute that
        // differs from the recorded one makes an update.
        let mut planned_early = None;
        let action = match (action, prior_rec) {
            (Action::NoOp, Some(rec)) if factory.plans_beyond_config(&rtype) => {
                let after =
                    factory.plan_checked(&rtype, Some(&rec.attrs), &config).map_err(|d| vec![locate_provider_diagnostic(d, &res.decl, &inst_address)])?;
                let differs = schema.is_some_and(|s| {
                    s.attributes
                        .iter()
                        .any(|(name, attr)| attr.computed && after.get(*name).is_some_and(|v| v.is_unknown_deep() || Some(v) != rec.attrs.get(*name)))
                });
                if differs {
                    planned_early = Some(after);
                    Action::Update
                } else {
                    Action::NoOp
                }
            }
            (action, _) => action,
        };
        if action == Action::NoOp {
            // Unchanged objects are not changes: only their value is needed,
            // for expressions (one copy, not three, at 50,000 instances).
            if let Some(rec) = prior_rec {
                values.push((key, Value::Map(mark_sensitive(rec.attrs.clone(), &rec.sensitive))));
            }
            *unchanged += 1;
            continue;
        }
        let before = prior_rec.map(|r| mark_sensitive(r.attrs.clone(), &r.sensitive));
        // Providers that plan themselves (Terraform providers) are asked
        // for every change but at `validate`, which talks to no process.
        let (action, replace_because, remote) = if factory.plans_remotely(&rtype) && !lenient && planned_early.is_none() {
            let prior_attrs = if action == Action::Update { prior_rec.map(|r| &r.attrs) } else { None };
            let req = plinth_sdk::ChangeRequest {
                provider_key: &provider_key,
                provider_config: provider_configs.get(&provider_key),
                rtype: &rtype,
                address: &inst_address,
                prior: prior_attrs,
                config: &config,
            };
            let planned = match prefetched.remove(&inst_address) {
                Some(answer) => answer,
                None => factory.plan_change(req),
            };
            let planned = planned.map_err(|d| vec![locate_provider_diagnostic(d, &res.decl, &inst_address)])?;
            if action == Action::Update && !planned.requires_replace.is_empty() {
                if res.meta.prevent_destroy {
                    return Err(vec![Diagnostic::new("P4003", "resource is protected from destruction")
                        .help(format!(
                            "The provider replaces `{inst_address}` when {} changes, which destroys it, and its `lifecycle {{ prevent_destroy = true }}` forbids that. Revert the change, or remove the setting first if you really mean to replace it.",
                            planned.requires_replace.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
                        ))
                        .label(res.decl.name.span, format!("`{inst_address}` would be replaced"))]);
                }
                // Planned again as the create that a replacement is.
                let req = plinth_sdk::ChangeRequest { prior: None, ..req };
                let created = factory.plan_change(req).map_err(|d| vec![locate_provider_diagnostic(d, &res.decl, &inst_address)])?;
                (Action::Replace, planned.requires_replace, Some(created.planned))
            } else if action == Action::Update && prior_rec.is_some_and(|r| same_object(&r.attrs, &planned.planned)) {
                // The provider plans no change (a default written out, an
                // imported object that already matches): as Terraform, none.
                (Action::NoOp, vec![], None)
            } else {
                (action, replace_because, Some(planned.planned))
            }
        } else {
            (action, replace_because, None)
        };
        if action == Action::NoOp {
            if let Some(rec) = prior_rec {
                values.push((key, Value::Map(mark_sensitive(rec.attrs.clone(), &rec.sensitive))));
            }
            *unchanged += 1;
            continue;
        }
        let planned = match (remote, planned_early, action) {
            (Some(after), _, _) => Ok(after),
            (None, Some(after), _) => Ok(after),
            (None, None, Action::NoOp) => Ok(before.clone().unwrap_or_default()),
            (None, None, Action::Update) => factory.plan_checked(&rtype, prior_rec.map(|r| &r.attrs), &config),
            (None, None, _) => factory.plan_checked(&rtype, None, &config),
        };
        let after = planned.map_err(|d| vec![locate_provider_diagnostic(d, &res.decl, &inst_address)])?;
        let prior_sensitive = prior_rec.map(|r| r.sensitive.clone()).unwrap_or_default();
        let sens = sensitive_attrs(registry, &provider_name, &rtype, &after, &prior_sensitive);
        let after = mark_sensitive(after, &sens);
        let previews = match (action, prior_rec) {
            (Action::Update | Action::Replace, Some(rec)) => factory.preview(&rtype, Some(&mark_sensitive(rec.attrs.clone(), &rec.sensitive)), &config),
            _ => vec![],
        };
        values.push((key.clone(), Value::Map(after.clone())));
        changes.push(Change {
            address: inst_address,
            resource: address.to_string(),
            key,
            provider: provider_key.clone(),
            provider_name: provider_name.clone(),
            rtype: rtype.clone(),
            action,
            deposed: String::new(),
            create_before_destroy: res.meta.create_before_destroy,
            before,
            after: Some(after),
            replace_because,
            deps: deps.clone(),
            previews,
        });
    }
    let value = resource_value(cfg, address, values);
    ns.set_resource(&res.ns_root, &rtype, &res.decl.name.name, value);
    Ok(())
}

/// Plans a data block: reads it now (`ProviderFactory::read_data`) when
/// its configuration and its provider's are known, and sets its value in
/// the namespace. Returns the value read, or None when it is read during
/// apply: then every attribute the configuration does not set is unknown,
/// as Terraform plans a deferred read. `lenient` (`validate`) reads
/// nothing and starts no provider; `defer` (a resource it depends on
/// changes) leaves the read to apply.
#[allow(clippy::too_many_arguments)]
fn plan_data(
    cfg: &Config,
    registry: &Registry,
    provider_configs: &HashMap<String, Map>,
    address: &str,
    ns: &mut Namespace,
    host: &mut dyn FnHost,
    lenient: bool,
    defer: bool,
) -> Result<Option<Value>, Diags> {
    let Some(block) = cfg.data.get(address) else { return Ok(None) };
    let decl = &block.decl;
    let instances = expand_data(cfg, registry, address, ns, host, lenient)?;
    let provider_key = block.meta.provider_config.clone().unwrap_or_else(|| decl.provider.name.clone());
    let provider_config = provider_configs.get(&provider_key).cloned().unwrap_or_default();
    let known = !lenient
        && !defer
        && !Value::Map(provider_config.clone()).is_unknown_deep()
        && instances.iter().all(|(_, config)| !Value::Map(config.clone()).is_unknown_deep());
    let schema = cfg.data_schema(registry, address);
    let mut values = Vec::with_capacity(instances.len());
    for (key, config) in instances {
        let value = if known {
            let Some(factory) = registry.get(&decl.provider.name) else { return Ok(None) };
            let inst_address = format!("{address}{}", key.suffix());
            let req = plinth_sdk::DataRequest {
                provider_key: &provider_key,
                provider_config: &provider_config,
                dtype: &decl.rtype.name,
                address: &inst_address,
                config: &config,
            };
            let read = factory.read_data(req).map_err(|d| vec![locate_provider_diagnostic(d, decl, &inst_address)])?;
            Value::Map(data_value(schema, &config, read))
        } else {
            deferred_data_value(schema, config)
        };
        values.push((key, value));
    }
    let value = instances_value(block, values);
    ns.set_data(&block.ns_root, &decl.provider.name, &decl.rtype.name, &decl.name.name, value.clone());
    Ok(known.then_some(value))
}

/// What a data source read: its attributes, sensitive where the schema
/// says so or where the configuration gave a sensitive value.
pub fn data_value(schema: Option<&crate::providers::ResourceSchema>, config: &Map, read: Map) -> Map {
    let sensitive: Vec<String> = read
        .keys()
        .filter(|k| {
            schema.and_then(|s| s.attributes.get(k.as_str())).is_some_and(|a| a.sensitive) || config.get(k.as_str()).is_some_and(Value::is_sensitive_deep)
        })
        .cloned()
        .collect();
    mark_sensitive(read, &sensitive)
}

/// A data block read during apply, as the plan sees it: what the
/// configuration sets, and every other attribute of the schema unknown
/// (all of it unknown when the schema is not known: a provider not
/// installed yet, at `validate`).
fn deferred_data_value(schema: Option<&crate::providers::ResourceSchema>, mut config: Map) -> Value {
    let Some(schema) = schema else { return Value::Unknown };
    for (name, attr) in &schema.attributes {
        if config.get(*name).is_none_or(|v| matches!(v, Value::Null)) {
            config.insert((*name).to_string(), Value::Unknown.mark_if(attr.sensitive));
        }
    }
    Value::Map(config)
}

/// A provider's planning diagnostic, located: as the provider located it,
/// else at the attribute its message starts with (`` `target` … ``) when
/// the resource sets it, else at the resource's name.
fn locate_provider_diagnostic(d: Diagnostic, decl: &crate::syntax::ast::ResourceDecl, inst_address: &str) -> Diagnostic {
    if !d.labels.is_empty() {
        return d;
    }
    let named = d.message.strip_prefix('`').and_then(|rest| rest.split_once('`')).map(|(name, _)| name);
    match named.and_then(|name| decl.body.attr(name)) {
        Some(attr) => {
            let text = format!("in `{inst_address}`");
            d.label(attr.value.span, text)
        }
        None => d.label(decl.name.span, format!("while planning `{inst_address}`")),
    }
}
