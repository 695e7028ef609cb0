//! Components: module instances flattened into one configuration.
//!
//! `stack core from "catalogue/stacks/core" { domain = domain }` instantiates
//! the module in that directory. Every declaration of the module enters the
//! one flat [`Config`](crate::eval::Config) under the instance's prefix, so
//! the graph, the plan, apply, state and drift see one configuration and a
//! resource of one component may depend on an output of another that does not
//! exist yet (the plan shows `(known after apply)`).
//!
//! Names are made unique by rewriting the module's expressions while they are
//! copied (nothing here evaluates them): inside `stack.core`,
//! - a param or let `domain` becomes the variable `stack.core.domain`;
//! - a resource reference `random.password.x` reads the root
//!   `stack.core.random` (its address is `stack.core.random.password.x`);
//! - an output `url` becomes the let `stack.core:url`, and the parent's
//!   `stack.core.url` reads it; `stack.core` as a whole reads the let
//!   `stack.core:*` (an object of its outputs, or a map/list of them for
//!   `for_each`/`count` components);
//! - `path.module` is the module directory and `file()`, `fileset()` and
//!   `template()` resolve paths inside it.
//!
//! `count`/`for_each` of a component are evaluated here from params and lets
//! (never from resources: the instances must be known to plan), and
//! `each`/`count` in its inputs are replaced by their values.

use crate::diagnostic::{suggestion, Diagnostic, Diags, Span};
use crate::eval::functions::FnHost;
use crate::eval::types::convert;
use crate::eval::{Evaluator, Namespace};
use crate::syntax::ast::*;
use crate::value::VarValue;
use crate::value::{Map, Value};
use indexmap::IndexMap;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::sync::Arc;

/// Nesting depth of components (a module that instantiates itself stops here).
const MAX_DEPTH: usize = 24;
/// Component instances in one configuration, all levels together: a module
/// that calls itself twice doubles at every level, which the depth limit
/// alone lets grow to 2^24 instances.
pub const MAX_INSTANCES: usize = 10_000;

/// Functions whose first argument is a path relative to the module.
const PATH_FUNCTIONS: &[&str] = &["file", "fileset", "template"];

/// A parsed module directory.
#[derive(Debug, Clone)]
pub struct Module {
    /// The directory as expressions see it (`path.module`): relative to the
    /// project directory when inside it.
    pub dir: String,
    pub files: Vec<File>,
}

impl Module {
    fn items(&self) -> impl Iterator<Item = &Item> {
        self.files.iter().flat_map(|f| f.items.iter())
    }
    fn meta_kind(&self) -> Option<(String, Span)> {
        self.items().find_map(|i| match i {
            Item::Meta(m) => m.body.attr("kind").and_then(|a| match &a.value.kind {
                ExprKind::Template(parts) => match parts.as_slice() {
                    [TemplatePart::Literal(s)] => Some((s.clone(), a.value.span)),
                    _ => None,
                },
                _ => None,
            }),
            _ => None,
        })
    }
    fn outputs(&self) -> Vec<String> {
        self.items()
            .filter_map(|i| match i {
                Item::Output(o) => Some(o.name.name.clone()),
                _ => None,
            })
            .collect()
    }
    fn params(&self) -> Vec<&ParamDecl> {
        self.items()
            .filter_map(|i| match i {
                Item::Param(p) => Some(p),
                _ => None,
            })
            .collect()
    }
}

/// Finds and parses the modules components name (IO lives with the caller).
pub trait ModuleLoader {
    /// `import catalogue from "…" version "…"` of the root module.
    fn import(&mut self, decl: &ImportDecl) -> Result<(), Diagnostic>;
    /// The module a component instantiates; `from_dir` is the directory of
    /// the module that names it (`.` for the root).
    fn load(&mut self, from_dir: &str, decl: &ComponentDecl) -> Result<Arc<Module>, Diags>;
}

/// What flattening components needs besides the files.
pub struct Expansion<'a> {
    pub loader: &'a mut dyn ModuleLoader,
    /// Root param values (for `count`/`for_each` of components).
    pub vars: &'a IndexMap<String, VarValue>,
    pub host: &'a mut dyn FnHost,
    /// `validate`: unknown repetition gives one placeholder instance.
    pub lenient: bool,
}

/// A declaration placed in the flat configuration.
#[derive(Debug, Clone)]
pub struct Placed {
    pub item: Item,
    /// "" at the root, `stack.core.` inside a component instance.
    pub prefix: String,
    /// What the `depends_on` of enclosing components adds to every resource.
    pub extra_deps: Vec<Expr>,
}

/// A module param fed by a component's input.
#[derive(Debug, Clone)]
pub struct ModuleInput {
    pub input: Option<Expr>,
    /// The component instance address, e.g. `stack.core`.
    pub component: String,
}

/// One component instance, for listings and `--only`.
#[derive(Debug, Clone)]
pub struct ComponentInstance {
    pub address: String,
    pub kind: String,
    pub source: String,
    pub span: Span,
}

#[derive(Debug, Default)]
pub struct Flat {
    pub items: Vec<Placed>,
    pub module_params: HashMap<String, ModuleInput>,
    /// Lets that hold module outputs declared `sensitive = true`.
    pub sensitive_lets: HashSet<String>,
    /// Aggregate lets (`stack.core:*`) → the address prefix of the resources
    /// `depends_on = [stack.core]` waits for (`stack.core.`, or `stack.s[`
    /// for every instance of a repeated component).
    pub aggregates: HashMap<String, String>,
    pub components: Vec<ComponentInstance>,
}

/// The names visible in one module instance.
struct Scope {
    prefix: String,
    dir: String,
    names: HashSet<String>,
    /// kind → name → component
    components: HashMap<String, HashMap<String, CompRef>>,
}

struct CompRef {
    /// False when its module failed to load (already reported).
    known: bool,
    repeated: bool,
    outputs: Vec<String>,
    /// `stack.core` (without instance key)
    base: String,
    /// Instance key suffixes (`[0]`, `["a"]`) of a repeated component.
    keys: Vec<String>,
}

enum Action {
    Keep,
    Rename(String),
    Replace(usize, Expr),
}

/// Flattens the root module and every component under it.
pub fn flatten(files: Vec<File>, providers: &HashSet<String>, expansion: Option<Expansion<'_>>, diags: &mut Diags) -> Flat {
    let root = Module { dir: ".".into(), files };
    let has_components = root.items().any(|i| matches!(i, Item::Component(_) | Item::Import(_)));
    let mut flat = Flat::default();
    if !has_components {
        for file in root.files {
            for item in file.items {
                if !matches!(item, Item::Meta(_)) {
                    flat.items.push(Placed { item, prefix: String::new(), extra_deps: vec![] });
                }
            }
        }
        return flat;
    }
    let Some(exp) = expansion else {
        for i in root.items() {
            if let Item::Component(c) = i {
                diags.push(
                    Diagnostic::new("P2099", "components are not available here")
                        .help("This configuration was checked without a project directory to load modules from; run it with the `plinth` command.")
                        .label(c.name.span, "component"),
                );
            }
        }
        return flat;
    };
    let mut f = Flattener { providers, exp, flat, defs: HashMap::default(), memo: HashMap::default(), visiting: HashSet::default(), sink: Sink::default() };
    for i in root.items() {
        if let Item::Import(imp) = i {
            if imp.name.name != "catalogue" {
                f.sink.diags.push(
                    Diagnostic::new("P2097", "unknown import")
                        .help("Only the catalogue can be imported: `import catalogue from \"git+<url>\" version \"<constraint>\"`.")
                        .label(imp.name.span, "not `catalogue`"),
                );
            } else if let Err(d) = f.exp.loader.import(imp) {
                f.sink.diags.push(d);
            }
        }
    }
    let root = Arc::new(root);
    f.module(&root, String::new(), None, &HashMap::default(), vec![], 0);
    // A mistake in a module is reported once, not once per instance.
    for d in f.sink.diags {
        if !diags.contains(&d) {
            diags.push(d);
        }
    }
    f.flat
}

/// A component call rewritten, with its instances.
struct Prepared {
    decl: ComponentDecl,
    child_deps: Vec<Expr>,
    #[allow(clippy::type_complexity)]
    instances: Vec<(Option<String>, String, Option<(&'static str, Value)>)>,
}

enum Def {
    Let(Expr),
    Param { decl: Box<ParamDecl>, input: Option<Expr>, root: bool },
}

struct Flattener<'p, 'e> {
    providers: &'p HashSet<String>,
    exp: Expansion<'e>,
    flat: Flat,
    /// Lets and params by qualified name, for evaluating repetition.
    defs: HashMap<String, Def>,
    memo: HashMap<String, Value>,
    visiting: HashSet<String>,
    sink: Sink,
}

impl Flattener<'_, '_> {
    /// Places one module instance. `call` is None for the root; `inputs`
    /// are the call's input expressions, already rewritten in the caller's
    /// scope.
    fn module(
        &mut self,
        module: &Arc<Module>,
        prefix: String,
        call: Option<(&ComponentDecl, String)>,
        inputs: &HashMap<String, Expr>,
        extra_deps: Vec<Expr>,
        depth: usize,
    ) {
        let is_root = call.is_none();
        let instance = prefix.trim_end_matches('.').to_string();
        // The scope: names, then the components it calls (their modules are
        // loaded now: outputs and kinds are needed to rewrite references).
        let mut scope = Scope { prefix: prefix.clone(), dir: module.dir.clone(), names: HashSet::default(), components: HashMap::default() };
        for item in module.items() {
            match item {
                Item::Param(p) => {
                    scope.names.insert(p.name.name.clone());
                }
                Item::Let(l) => {
                    scope.names.insert(l.name.name.clone());
                }
                _ => {}
            }
        }
        let mut calls: Vec<(&ComponentDecl, Option<Arc<Module>>)> = Vec::new();
        for item in module.items() {
            let Item::Component(c) = item else { continue };
            let kind = c.kind.name.as_str();
            if kind == crate::eval::config::DATA_ROOT {
                self.sink.diags.push(crate::eval::config::reserved_data_name(&c.kind, "a component kind"));
                continue;
            }
            if scope.names.contains(kind) || self.providers.contains(kind) || matches!(kind, "each" | "count" | "path" | "module_path") {
                self.sink.diags.push(
                    Diagnostic::new("P2002", "name shadows a provider or a meta name")
                        .help(format!("The component kind `{kind}` is also the name of a param, a let or a provider (or a reserved name), so references to it would be ambiguous; use another kind or rename the other name."))
                        .label(c.kind.span, "ambiguous kind"),
                );
                continue;
            }
            let by_kind = scope.components.entry(kind.to_string()).or_default();
            if by_kind.contains_key(&c.name.name) {
                let first = calls.iter().find(|(o, _)| o.kind.name == c.kind.name && o.name.name == c.name.name).map(|(o, _)| o.name.span);
                let mut d = Diagnostic::new("P2001", "duplicate component")
                    .help(format!("`{kind}.{}` is declared twice in this module; component names must be unique per kind.", c.name.name))
                    .label(c.name.span, "declared again here");
                if let Some(first) = first {
                    d = d.label(first, "first declared here");
                }
                self.sink.diags.push(d);
                continue;
            }
            if depth >= MAX_DEPTH {
                self.sink.diags.push(
                    Diagnostic::new("P2098", "components nest too deeply")
                        .help(format!("Components may nest {MAX_DEPTH} levels deep; a module that (indirectly) instantiates itself never ends."))
                        .label(c.name.span, "too deep"),
                );
                continue;
            }
            let loaded = match self.exp.loader.load(&module.dir, c) {
                Ok(m) => Some(m),
                Err(d) => {
                    self.sink.diags.extend(d);
                    None
                }
            };
            if let Some(m) = &loaded {
                if let Some((meta_kind, _)) = m.meta_kind() {
                    if kind != "module" && meta_kind != kind {
                        self.sink.diags.push(
                            Diagnostic::new("P2096", "component kind does not match the module")
                                .help(format!(
                                    "The module at `{}` declares `meta {{ kind = \"{meta_kind}\" }}`; instantiate it as `{meta_kind} {} from …` (or as the generic `module`).",
                                    c.source.value, c.name.name
                                ))
                                .label(c.kind.span, format!("used as `{kind}`")),
                        );
                    }
                }
            }
            let repeated = c.body.attr("for_each").is_some() || c.body.attr("count").is_some();
            let outputs = loaded.as_ref().map(|m| m.outputs()).unwrap_or_default();
            by_kind.insert(
                c.name.name.clone(),
                CompRef { known: loaded.is_some(), repeated, outputs, keys: vec![], base: format!("{prefix}{kind}.{}", c.name.name) },
            );
            calls.push((c, loaded));
        }

        // Before anything is rewritten for good: the instances of every
        // component called here (keyed references such as `m[0].out` read
        // one instance's output when that instance exists). Params and lets
        // are rewritten a first time for evaluating `count`/`for_each`; the
        // main pass below reports their diagnostics.
        {
            let mut scratch = Sink::default();
            for item in module.items() {
                match item {
                    Item::Param(p) => {
                        let mut p = p.clone();
                        let mut rw = Rewriter::new(&scope, self.providers, None, &mut scratch);
                        if let Some(d) = &mut p.default {
                            rw.expr(d);
                        }
                        let qualified = format!("{prefix}{}", p.name.name);
                        let input = inputs.get(&p.name.name).cloned();
                        p.name.name = qualified.clone();
                        self.defs.insert(qualified, Def::Param { decl: Box::new(p), input, root: is_root });
                    }
                    Item::Let(l) => {
                        let mut value = l.value.clone();
                        Rewriter::new(&scope, self.providers, None, &mut scratch).expr(&mut value);
                        self.defs.insert(format!("{prefix}{}", l.name.name), Def::Let(value));
                    }
                    _ => {}
                }
            }
        }
        let mut prepared: Vec<Option<Prepared>> = Vec::new();
        for (decl, loaded) in &calls {
            if loaded.is_none() {
                prepared.push(None);
                continue;
            }
            let base = format!("{prefix}{}.{}", decl.kind.name, decl.name.name);
            let mut decl = (*decl).clone();
            let mut child_deps = extra_deps.clone();
            {
                let mut rw = Rewriter::new(&scope, self.providers, None, &mut self.sink);
                for a in &mut decl.body.attrs {
                    match a.name.name.as_str() {
                        "count" | "for_each" => rw.expr(&mut a.value),
                        "depends_on" => {
                            rw.expr(&mut a.value);
                            match &a.value.kind {
                                ExprKind::List(items) => child_deps.extend(items.iter().cloned()),
                                _ => rw.sink.diags.push(
                                    Diagnostic::new("P2017", "invalid `depends_on`")
                                        .help("`depends_on` is a list of addresses, e.g. `depends_on = [stack.core, random.password.db]`.")
                                        .label(a.value.span, "expected a list of addresses"),
                                ),
                            }
                        }
                        _ => {}
                    }
                }
            }
            if decl.body.attr("count").is_some() && decl.body.attr("for_each").is_some() {
                self.sink.diags.push(
                    Diagnostic::new("P2013", "both `count` and `for_each`")
                        .help("A component repeats either by `count` (a number) or by `for_each` (a map or set of strings), not both.")
                        .label(decl.name.span, "both set"),
                );
                prepared.push(None);
                continue;
            }
            match self.instances(&decl, &base) {
                Ok(instances) => {
                    if let Some(c) = scope.components.get_mut(&decl.kind.name).and_then(|m| m.get_mut(&decl.name.name)) {
                        c.keys = instances.iter().map(|(_, address, _)| address[base.len()..].to_string()).collect();
                    }
                    prepared.push(Some(Prepared { decl, child_deps, instances }));
                }
                Err(d) => {
                    self.sink.diags.push(d);
                    prepared.push(None);
                }
            }
        }

        // Inputs against the module's params.
        if let Some((decl, _)) = &call {
            let params = module.params();
            let names: Vec<&str> = params.iter().map(|p| p.name.name.as_str()).collect();
            for a in &decl.body.attrs {
                let n = a.name.name.as_str();
                if crate::eval::config::META_ARGUMENTS.contains(&n) && n != "provider" {
                    continue;
                }
                if !names.contains(&n) {
                    self.sink.diags.push(
                        Diagnostic::new("P2095", "unknown component input")
                            .help(format!(
                                "The module at `{}` has no `param {n}`; its params are {}.{}",
                                decl.source.value,
                                if names.is_empty() { "none".to_string() } else { names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ") },
                                suggestion(n, names.iter().copied())
                            ))
                            .label(a.name.span, "not a param of the module"),
                    );
                }
            }
            for p in &params {
                if p.default.is_none() && !inputs.contains_key(&p.name.name) {
                    self.sink.diags.push(
                        Diagnostic::new("P2090", "missing component input")
                            .help(format!("`{} {}` must set `{}`: the module declares it without a default.", decl.kind.name, decl.name.name, p.name.name))
                            .label(decl.name.span, format!("`{}` is not set", p.name.name))
                            .label(p.name.span, "declared here"),
                    );
                }
            }
        }

        for item in module.items() {
            let item = item.clone();
            let is_data = matches!(item, Item::Data(_));
            match item {
                Item::Param(mut p) => {
                    let qualified = format!("{prefix}{}", p.name.name);
                    let input = inputs.get(&p.name.name).cloned();
                    {
                        let mut rw = Rewriter::new(&scope, self.providers, None, &mut self.sink);
                        if let Some(d) = &mut p.default {
                            rw.expr(d);
                        }
                        if let Some(body) = &mut p.body {
                            for a in &mut body.attrs {
                                rw.expr(&mut a.value);
                            }
                        }
                    }
                    p.name.name = qualified.clone();
                    if !is_root {
                        self.flat.module_params.insert(qualified.clone(), ModuleInput { input: input.clone(), component: instance.clone() });
                    }
                    self.defs.insert(qualified, Def::Param { decl: Box::new(p.clone()), input, root: is_root });
                    self.flat.items.push(Placed { item: Item::Param(p), prefix: prefix.clone(), extra_deps: vec![] });
                }
                Item::Let(mut l) => {
                    Rewriter::new(&scope, self.providers, None, &mut self.sink).expr(&mut l.value);
                    l.name.name = format!("{prefix}{}", l.name.name);
                    self.defs.insert(l.name.name.clone(), Def::Let(l.value.clone()));
                    self.flat.items.push(Placed { item: Item::Let(l), prefix: prefix.clone(), extra_deps: vec![] });
                }
                Item::Resource(mut r) | Item::Data(mut r) => {
                    let mut rw = Rewriter::new(&scope, self.providers, None, &mut self.sink);
                    if r.body.attr("for_each").is_some() {
                        rw.locals.push("each".into());
                    }
                    if r.body.attr("count").is_some() {
                        rw.locals.push("count".into());
                    }
                    for a in &mut r.body.attrs {
                        match a.name.name.as_str() {
                            "provider" => {}
                            "count" | "for_each" => {
                                let saved = std::mem::take(&mut rw.locals);
                                rw.expr(&mut a.value);
                                rw.locals = saved;
                            }
                            _ => rw.expr(&mut a.value),
                        }
                    }
                    // Nested blocks of a provider schema (`root_volume { … }`).
                    rewrite_blocks(&mut rw, &mut r.body.blocks);
                    let item = if is_data { Item::Data(r) } else { Item::Resource(r) };
                    self.flat.items.push(Placed { item, prefix: prefix.clone(), extra_deps: extra_deps.clone() });
                }
                Item::Output(mut o) => {
                    Rewriter::new(&scope, self.providers, None, &mut self.sink).expr(&mut o.value);
                    if is_root {
                        self.flat.items.push(Placed { item: Item::Output(o), prefix: String::new(), extra_deps: vec![] });
                    } else {
                        let name = format!("{instance}:{}", o.name.name);
                        let sensitive = o.body.as_ref().and_then(|b| b.attr("sensitive")).is_some_and(|a| matches!(a.value.kind, ExprKind::Bool(true)));
                        if sensitive {
                            self.flat.sensitive_lets.insert(name.clone());
                        }
                        self.defs.insert(name.clone(), Def::Let(o.value.clone()));
                        let l = LetDecl { name: Ident { name, span: o.name.span }, value: o.value, span: o.span };
                        self.flat.items.push(Placed { item: Item::Let(l), prefix: prefix.clone(), extra_deps: vec![] });
                    }
                }
                Item::Provider(p) => {
                    if is_root {
                        let mut p = p;
                        let mut rw = Rewriter::new(&scope, self.providers, None, &mut self.sink);
                        for a in &mut p.body.attrs {
                            rw.expr(&mut a.value);
                        }
                        rewrite_blocks(&mut rw, &mut p.body.blocks);
                        self.flat.items.push(Placed { item: Item::Provider(p), prefix: String::new(), extra_deps: vec![] });
                    } else {
                        self.sink.diags.push(
                            Diagnostic::new("P2091", "provider block inside a module")
                                .help("Provider configurations belong to the root project; modules use them (pick an alias with `provider = <name>.<alias>` on a resource). Pass the values the module needs as params.")
                                .label(p.name.span, "in a module"),
                        );
                    }
                }
                Item::Import(imp) => {
                    if !is_root {
                        self.sink.diags.push(
                            Diagnostic::new("P2097", "import inside a module")
                                .help("`import catalogue from …` belongs to the root project; modules reference the catalogue as `catalogue/…`.")
                                .label(imp.name.span, "in a module"),
                        );
                    }
                }
                Item::Meta(_) | Item::Component(_) => {}
            }
        }

        // The components this module calls.
        for ((_, loaded), prepared) in calls.into_iter().zip(prepared) {
            let (Some(child), Some(Prepared { decl, child_deps, instances })) = (loaded, prepared) else { continue };
            let kind = decl.kind.name.as_str();
            let base = format!("{prefix}{kind}.{}", decl.name.name);
            let repeated = decl.body.attr("count").is_some() || decl.body.attr("for_each").is_some();
            let mut members: Vec<(Option<String>, String)> = Vec::new();
            for (key, address, subst) in instances {
                let mut child_inputs: HashMap<String, Expr> = HashMap::default();
                {
                    let mut rw = Rewriter::new(&scope, self.providers, subst, &mut self.sink);
                    for a in &decl.body.attrs {
                        if matches!(a.name.name.as_str(), "count" | "for_each" | "depends_on") {
                            continue;
                        }
                        let mut v = a.value.clone();
                        rw.expr(&mut v);
                        child_inputs.insert(a.name.name.clone(), v);
                    }
                }
                if self.flat.components.len() >= MAX_INSTANCES {
                    self.sink.diags.push(
                        Diagnostic::new("P2144", "too many component instances")
                            .help(format!("A configuration may hold at most {MAX_INSTANCES} component instances in all; a module that instantiates itself (directly or through others) more than once grows exponentially with depth."))
                            .label(decl.name.span, "instantiated here"),
                    );
                    return;
                }
                self.flat.components.push(ComponentInstance {
                    address: address.clone(),
                    kind: kind.to_string(),
                    source: decl.source.value.clone(),
                    span: decl.name.span,
                });
                let child_prefix = format!("{address}.");
                self.module(&child, child_prefix.clone(), Some((&decl, address.clone())), &child_inputs, child_deps.clone(), depth + 1);
                // The instance as a value: an object of its outputs.
                let aggregate = format!("{address}:*");
                let entries = child
                    .outputs()
                    .into_iter()
                    .map(|o| (ObjectKey::Literal(o.clone(), decl.name.span), var(&format!("{address}:{o}"), decl.name.span)))
                    .collect();
                let value = Expr { kind: ExprKind::Object(entries), span: decl.name.span };
                self.defs.insert(aggregate.clone(), Def::Let(value.clone()));
                self.flat.aggregates.insert(aggregate.clone(), child_prefix);
                self.flat.items.push(Placed {
                    item: Item::Let(LetDecl { name: Ident { name: aggregate.clone(), span: decl.name.span }, value, span: decl.span }),
                    prefix: prefix.clone(),
                    extra_deps: vec![],
                });
                members.push((key, aggregate));
            }
            if repeated {
                let span = decl.name.span;
                let value = if decl.body.attr("count").is_some() {
                    Expr { kind: ExprKind::List(members.iter().map(|(_, a)| var(a, span)).collect()), span }
                } else {
                    Expr {
                        kind: ExprKind::Object(members.iter().map(|(k, a)| (ObjectKey::Literal(k.clone().unwrap_or_default(), span), var(a, span))).collect()),
                        span,
                    }
                };
                let name = format!("{base}:*");
                self.flat.aggregates.insert(name.clone(), format!("{base}["));
                self.defs.insert(name.clone(), Def::Let(value.clone()));
                self.flat.items.push(Placed {
                    item: Item::Let(LetDecl { name: Ident { name, span }, value, span: decl.span }),
                    prefix: prefix.clone(),
                    extra_deps: vec![],
                });
            }
        }
    }

    /// The instances of a component: (key, address, each/count binding).
    #[allow(clippy::type_complexity)]
    fn instances(&mut self, decl: &ComponentDecl, base: &str) -> Result<Vec<(Option<String>, String, Option<(&'static str, Value)>)>, Diagnostic> {
        if let Some(count) = decl.body.attr("count") {
            let v = self.static_value(&count.value)?;
            let sensitive_count = v.is_sensitive_deep();
            let v = convert(v.clone(), &Type::Number).unwrap_or(v);
            return match v.peel() {
                Value::Unknown if self.exp.lenient => Ok(vec![(None, format!("{base}[0]"), Some(("count", index_value(Value::Int(0)))))]),
                Value::Unknown => Err(unknown_repetition("count", count.value.span)),
                v => match v.as_i64() {
                    Some(n) if (0..=10_000).contains(&n) => {
                        Ok((0..n).map(|i| (None, format!("{base}[{i}]"), Some(("count", index_value(Value::Int(i)))))).collect())
                    }
                    _ => Err(Diagnostic::new("P2041", "invalid `count`")
                        .help("`count` of a component must be a whole number from 0 to 10000.")
                        .label(count.value.span, if sensitive_count { "this is a sensitive value".to_string() } else { format!("this is {v}") })),
                },
            };
        }
        if let Some(fe) = decl.body.attr("for_each") {
            let v = self.static_value(&fe.value)?;
            if v.is_sensitive_deep() {
                return Err(Diagnostic::new("P2042", "`for_each` over sensitive values")
                    .help("Instance keys appear in addresses and plans, so they cannot be sensitive; iterate over non-sensitive keys.")
                    .label(fe.value.span, "sensitive"));
            }
            let pairs: Vec<(String, Value)> = match v {
                Value::Unknown if self.exp.lenient => vec![("*".into(), Value::Unknown)],
                Value::Unknown => return Err(unknown_repetition("for_each", fe.value.span)),
                Value::Map(m) => m.into_iter().collect(),
                Value::List(items) => {
                    let mut out: Vec<(String, Value)> = Vec::new();
                    for item in items {
                        match item {
                            Value::String(s) if !out.iter().any(|(k, _)| *k == s) => out.push((s.clone(), Value::String(s))),
                            Value::String(_) => {}
                            Value::Unknown if self.exp.lenient => {
                                return Ok(vec![(Some("*".into()), format!("{base}[\"*\"]"), Some(("each", each_value("*", Value::Unknown))))])
                            }
                            Value::Unknown => return Err(unknown_repetition("for_each", fe.value.span)),
                            other => {
                                return Err(Diagnostic::new("P2041", "invalid `for_each`")
                                    .help("`for_each` takes a map, or a set (list) of strings.")
                                    .label(fe.value.span, format!("contains {}", crate::eval::types::article_of_value(&other))))
                            }
                        }
                    }
                    out
                }
                other => {
                    return Err(Diagnostic::new("P2041", "invalid `for_each`")
                        .help("`for_each` takes a map, or a set (list) of strings.")
                        .label(fe.value.span, format!("this is {}", crate::eval::types::article_of_value(&other))))
                }
            };
            return Ok(pairs
                .into_iter()
                .map(|(k, v)| {
                    let address = format!("{base}[{}]", serde_json::Value::String(k.clone()));
                    (Some(k.clone()), address, Some(("each", each_value(&k, v))))
                })
                .collect());
        }
        Ok(vec![(None, base.to_string(), None)])
    }

    /// Evaluates an expression from params and lets only (resources are
    /// unknown): what `count`/`for_each` of components may use.
    fn static_value(&mut self, expr: &Expr) -> Result<Value, Diagnostic> {
        let mut names = Vec::new();
        variables(expr, &mut names);
        let mut ns = Namespace::default();
        for name in names {
            let v = self.static_name(&name)?;
            ns.set(&name, v);
        }
        Evaluator::new(&ns, self.exp.host).eval(expr)
    }

    fn static_name(&mut self, name: &str) -> Result<Value, Diagnostic> {
        if let Some(v) = self.memo.get(name) {
            return Ok(v.clone());
        }
        if !self.visiting.insert(name.to_string()) {
            return Ok(Value::Unknown);
        }
        let v = match self.defs.get(name) {
            None => Value::Unknown,
            Some(Def::Let(e)) => {
                let e = e.clone();
                self.static_value(&e)?
            }
            Some(Def::Param { decl, input, root }) => {
                let (decl, input, root) = (decl.clone(), input.clone(), *root);
                let raw = match (input, root.then(|| self.exp.vars.get(name)).flatten()) {
                    (Some(e), _) => self.static_value(&e)?,
                    (None, Some(v)) => v.value.clone(),
                    (None, None) => match &decl.default {
                        Some(d) => self.static_value(d)?,
                        None => Value::Unknown,
                    },
                };
                let ty = decl.ty.as_ref().map(|t| t.ty.clone()).unwrap_or(Type::Any);
                convert(raw.clone(), &ty).unwrap_or(raw)
            }
        };
        self.visiting.remove(name);
        self.memo.insert(name.to_string(), v.clone());
        Ok(v)
    }
}

fn unknown_repetition(what: &str, span: Span) -> Diagnostic {
    Diagnostic::new("P2092", format!("`{what}` of a component is not known when planning"))
        .help(format!(
            "The instances of a component must be known to plan: build `{what}` from params and lets, not from resource attributes or component outputs."
        ))
        .label(span, "not known before apply")
}

fn index_value(i: Value) -> Value {
    let mut m = Map::default();
    m.insert("index".into(), i);
    Value::Map(m)
}

fn each_value(key: &str, value: Value) -> Value {
    let mut m = Map::default();
    m.insert("key".into(), if key == "*" && matches!(value, Value::Unknown) { Value::Unknown } else { Value::String(key.to_string()) });
    m.insert("value".into(), value);
    Value::Map(m)
}

fn var(name: &str, span: Span) -> Expr {
    Expr { kind: ExprKind::Variable(Ident { name: name.to_string(), span }), span }
}

fn string_lit(s: &str, span: Span) -> Expr {
    Expr { kind: ExprKind::Template(vec![TemplatePart::Literal(s.to_string())]), span }
}

/// An expression that evaluates to `v` (for `each`/`count` in inputs).
pub fn value_expr(v: &Value, span: Span) -> Expr {
    let kind = match v {
        Value::Null => ExprKind::Null,
        Value::Bool(b) => ExprKind::Bool(*b),
        Value::Int(i) => ExprKind::Int(*i),
        Value::Float(f) => ExprKind::Float(*f),
        Value::String(s) => return string_lit(s, span),
        Value::List(items) => ExprKind::List(items.iter().map(|i| value_expr(i, span)).collect()),
        Value::Map(m) => ExprKind::Object(m.iter().map(|(k, v)| (ObjectKey::Literal(k.clone(), span), value_expr(v, span))).collect()),
        Value::Unknown => ExprKind::Call(Ident { name: "__unknown".into(), span }, vec![]),
        Value::Sensitive(inner) => return value_expr(inner, span),
    };
    Expr { kind, span }
}

/// Every variable name read by an expression (roots of traversals).
fn variables(e: &Expr, out: &mut Vec<String>) {
    match &e.kind {
        ExprKind::Variable(id) => {
            if !out.contains(&id.name) {
                out.push(id.name.clone());
            }
        }
        ExprKind::Null | ExprKind::Bool(_) | ExprKind::Int(_) | ExprKind::Float(_) => {}
        ExprKind::Template(parts) => {
            for p in parts {
                if let TemplatePart::Interp(x) = p {
                    variables(x, out);
                }
            }
        }
        ExprKind::List(items) => items.iter().for_each(|x| variables(x, out)),
        ExprKind::Object(entries) => {
            for (k, v) in entries {
                if let ObjectKey::Expr(k) = k {
                    variables(k, out);
                }
                variables(v, out);
            }
        }
        ExprKind::GetAttr(inner, _) => variables(inner, out),
        ExprKind::Index(a, b) => {
            variables(a, out);
            variables(b, out);
        }
        ExprKind::Splat(base, steps) => {
            variables(base, out);
            for s in steps {
                if let Step::Index(k) = s {
                    variables(k, out);
                }
            }
        }
        ExprKind::Unary(_, x) => variables(x, out),
        ExprKind::Binary(_, a, b) => {
            variables(a, out);
            variables(b, out);
        }
        ExprKind::Conditional(a, b, c) => {
            variables(a, out);
            variables(b, out);
            variables(c, out);
        }
        ExprKind::Call(_, args) => args.iter().for_each(|x| variables(x, out)),
        ExprKind::ForList { collection, body, cond, .. } => {
            variables(collection, out);
            variables(body, out);
            if let Some(c) = cond {
                variables(c, out);
            }
        }
        ExprKind::ForMap { collection, key, value, cond, .. } => {
            variables(collection, out);
            variables(key, out);
            variables(value, out);
            if let Some(c) = cond {
                variables(c, out);
            }
        }
    }
}

/// Rewrites the names of one scope's expressions into the flat namespace.
/// Where rewriters report.
#[derive(Default)]
struct Sink {
    diags: Diags,
}

struct Rewriter<'s, 'd> {
    scope: &'s Scope,
    providers: &'s HashSet<String>,
    subst: Option<(&'static str, Value)>,
    locals: Vec<String>,
    sink: &'d mut Sink,
}

impl<'s, 'd> Rewriter<'s, 'd> {
    fn new(scope: &'s Scope, providers: &'s HashSet<String>, subst: Option<(&'static str, Value)>, sink: &'d mut Sink) -> Self {
        Rewriter { scope, providers, subst, locals: Vec::new(), sink }
    }

    fn is_root(&self) -> bool {
        self.scope.prefix.is_empty()
    }

    fn expr(&mut self, e: &mut Expr) {
        if e.traversal().is_some() {
            self.traversal(e);
            return;
        }
        match &mut e.kind {
            ExprKind::Null | ExprKind::Bool(_) | ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Variable(_) => {}
            ExprKind::Template(parts) => {
                for p in parts {
                    if let TemplatePart::Interp(x) = p {
                        self.expr(x);
                    }
                }
            }
            ExprKind::List(items) => items.iter_mut().for_each(|x| self.expr(x)),
            ExprKind::Object(entries) => {
                for (k, v) in entries {
                    if let ObjectKey::Expr(k) = k {
                        self.expr(k);
                    }
                    self.expr(v);
                }
            }
            ExprKind::GetAttr(inner, _) => self.expr(inner),
            ExprKind::Index(a, b) => {
                self.expr(a);
                self.expr(b);
            }
            ExprKind::Splat(base, steps) => {
                self.expr(base);
                for s in steps {
                    if let Step::Index(k) = s {
                        self.expr(k);
                    }
                }
            }
            ExprKind::Unary(_, x) => self.expr(x),
            ExprKind::Binary(_, a, b) => {
                self.expr(a);
                self.expr(b);
            }
            ExprKind::Conditional(a, b, c) => {
                self.expr(a);
                self.expr(b);
                self.expr(c);
            }
            ExprKind::Call(name, args) => {
                if self.scope.dir != "." && PATH_FUNCTIONS.contains(&name.name.as_str()) {
                    if let Some(first) = args.first_mut() {
                        let span = first.span;
                        let inner = std::mem::replace(first, Expr { kind: ExprKind::Null, span });
                        *first =
                            Expr { kind: ExprKind::Call(Ident { name: "__in_module".into(), span }, vec![string_lit(&self.scope.dir, span), inner]), span };
                    }
                }
                args.iter_mut().for_each(|x| self.expr(x));
            }
            ExprKind::ForList { key_var, value_var, collection, body, cond } => {
                self.expr(collection);
                let n = self.bind(key_var.as_ref(), value_var);
                self.expr(body);
                if let Some(c) = cond {
                    self.expr(c);
                }
                self.locals.truncate(self.locals.len() - n);
            }
            ExprKind::ForMap { key_var, value_var, collection, key, value, cond } => {
                self.expr(collection);
                let n = self.bind(key_var.as_ref(), value_var);
                self.expr(key);
                self.expr(value);
                if let Some(c) = cond {
                    self.expr(c);
                }
                self.locals.truncate(self.locals.len() - n);
            }
        }
    }

    fn bind(&mut self, key: Option<&Ident>, value: &Ident) -> usize {
        let mut n = 1;
        if let Some(k) = key {
            self.locals.push(k.name.clone());
            n += 1;
        }
        self.locals.push(value.name.clone());
        n
    }

    fn traversal(&mut self, e: &mut Expr) {
        let action = {
            let Some((root, steps)) = e.traversal() else { return };
            let attr = |i: usize| match steps.get(i) {
                Some(TraversalStep::Attr(a)) => Some((a.name.clone(), a.span)),
                _ => None,
            };
            // `kind.name[<literal>].output` of a repeated component.
            let keyed = match (steps.get(1), attr(2)) {
                (Some(TraversalStep::Index(k)), Some(out)) => match &k.kind {
                    ExprKind::Int(i) => Some((format!("[{i}]"), out)),
                    ExprKind::Template(parts) => match parts.as_slice() {
                        [TemplatePart::Literal(s)] => Some((format!("[{}]", serde_json::Value::String(s.clone())), out)),
                        _ => None,
                    },
                    _ => None,
                },
                _ => None,
            };
            self.classify(&root.name, root.span, steps.len(), attr(0), attr(1), keyed)
        };
        match action {
            Action::Keep => {}
            Action::Rename(new) => {
                if let Some(root) = root_mut(e) {
                    root.name = new;
                }
            }
            Action::Replace(k, new) => {
                let total = chain_len(e);
                replace_at(e, total - k, new);
            }
        }
        // Index keys along the chain are expressions of this scope too.
        let mut cur = e;
        loop {
            match &mut cur.kind {
                ExprKind::GetAttr(inner, _) => cur = inner,
                ExprKind::Index(inner, key) => {
                    self.expr(key);
                    cur = inner;
                }
                _ => break,
            }
        }
    }

    fn classify(
        &mut self,
        name: &str,
        span: Span,
        nsteps: usize,
        s0: Option<(String, Span)>,
        s1: Option<(String, Span)>,
        keyed: Option<(String, (String, Span))>,
    ) -> Action {
        if self.locals.iter().any(|l| l == name) {
            return Action::Keep;
        }
        if let Some((what, value)) = &self.subst {
            if name == *what {
                return Action::Replace(0, value_expr(value, span));
            }
        }
        if matches!(name, "each" | "count") {
            return Action::Keep;
        }
        if self.scope.names.contains(name) {
            return if self.is_root() { Action::Keep } else { Action::Rename(format!("{}{name}", self.scope.prefix)) };
        }
        if let Some(by_name) = self.scope.components.get(name) {
            let Some((cname, cspan)) = s0 else {
                self.sink.diags.push(
                    Diagnostic::new("P2093", "incomplete component reference")
                        .help(format!("Name the component: `{name}.<name>.<output>`; the `{name}` components here are {}.", list(by_name.keys())))
                        .label(span, "which one?"),
                );
                return Action::Rename(format!("{name}:unresolved"));
            };
            let Some(comp) = by_name.get(&cname) else {
                self.sink.diags.push(
                    Diagnostic::new("P2093", "reference to an undeclared component")
                        .help(format!(
                            "No `{name} {cname} from …` is declared in this module; the `{name}` components here are {}.{}",
                            list(by_name.keys()),
                            suggestion(&cname, by_name.keys().map(String::as_str))
                        ))
                        .label(span.to(cspan), "not declared"),
                );
                return Action::Rename(format!("{name}:unresolved"));
            };
            if !comp.known {
                return Action::Rename(format!("{name}:unresolved"));
            }
            if comp.repeated {
                // One instance's output: exactly that dependency.
                if let Some((key, (out, ospan))) = keyed {
                    if comp.outputs.contains(&out) && comp.keys.contains(&key) {
                        return Action::Replace(3, var(&format!("{}{key}:{out}", comp.base), span.to(ospan)));
                    }
                }
                return Action::Replace(1, var(&format!("{}:*", comp.base), span.to(cspan)));
            }
            return match s1 {
                Some((out, ospan)) if comp.outputs.contains(&out) => Action::Replace(2, var(&format!("{}:{out}", comp.base), span.to(ospan))),
                Some((out, ospan)) => {
                    self.sink.diags.push(
                        Diagnostic::new("P2094", "component has no such output")
                            .help(format!(
                                "`{name}.{cname}` has the outputs {}.{}",
                                if comp.outputs.is_empty() { "(none)".to_string() } else { list(comp.outputs.iter()) },
                                suggestion(&out, comp.outputs.iter().map(String::as_str))
                            ))
                            .label(ospan, format!("no output `{out}`")),
                    );
                    Action::Rename(format!("{name}:unresolved"))
                }
                None => Action::Replace(1, var(&format!("{}:*", comp.base), span.to(cspan))),
            };
        }
        if name == "path" && nsteps >= 1 {
            match s0.as_ref().map(|(s, sp)| (s.as_str(), *sp)) {
                Some(("module", sp)) => return Action::Replace(1, string_lit(&self.scope.dir, span.to(sp))),
                Some(("root", sp)) => return Action::Replace(1, string_lit(".", span.to(sp))),
                _ => {}
            }
        }
        if self.providers.contains(name) || name == crate::eval::config::DATA_ROOT {
            return if self.is_root() { Action::Keep } else { Action::Rename(format!("{}{name}", self.scope.prefix)) };
        }
        if self.is_root() {
            return Action::Keep; // the checker reports unknown names at the root
        }
        let mut candidates: Vec<String> = self.scope.names.iter().cloned().collect();
        candidates.extend(self.scope.components.keys().cloned());
        candidates.extend(self.locals.iter().cloned());
        self.sink.diags.push(
            Diagnostic::new("P2003", "unknown name")
                .help(format!(
                    "`{name}` is not a param, a let, a component kind or a provider of this module. Declare it with `param {name}: …` and pass it as an input, or `let {name} = …`.{}",
                    suggestion(name, candidates.iter().map(String::as_str))
                ))
                .label(span, format!("`{name}` is not declared in this module")),
        );
        Action::Rename(format!("{name}:unresolved"))
    }
}

fn list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let mut v: Vec<String> = names.map(|n| format!("`{n}`")).collect();
    v.sort();
    v.join(", ")
}

fn root_mut(e: &mut Expr) -> Option<&mut Ident> {
    let mut cur = e;
    loop {
        match &mut cur.kind {
            ExprKind::Variable(id) => return Some(id),
            ExprKind::GetAttr(inner, _) | ExprKind::Index(inner, _) => cur = inner,
            _ => return None,
        }
    }
}

fn chain_len(e: &Expr) -> usize {
    let mut n = 0;
    let mut cur = e;
    loop {
        match &cur.kind {
            ExprKind::GetAttr(inner, _) | ExprKind::Index(inner, _) => {
                n += 1;
                cur = inner;
            }
            _ => return n,
        }
    }
}

/// Replaces the node `depth` steps down the chain (the root plus the first
/// `chain_len - depth` steps) with `new`.
fn replace_at(e: &mut Expr, depth: usize, new: Expr) {
    let mut cur = e;
    for _ in 0..depth {
        match &mut cur.kind {
            ExprKind::GetAttr(inner, _) | ExprKind::Index(inner, _) => cur = inner,
            _ => return,
        }
    }
    *cur = new;
}

/// Rewrites the expressions of nested blocks (a provider schema's blocks
/// in a resource or provider body), at any depth.
fn rewrite_blocks(rw: &mut Rewriter<'_, '_>, blocks: &mut [Block]) {
    for b in blocks {
        if b.name.name == "lifecycle" {
            continue;
        }
        for a in &mut b.body.attrs {
            rw.expr(&mut a.value);
        }
        rewrite_blocks(rw, &mut b.body.blocks);
    }
}
