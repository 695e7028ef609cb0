//! Declarations of a project, static checks and references.

use crate::diagnostic::{suggestion, Diagnostic, Diags, Sources, Span};
use crate::eval::components::{self, ComponentInstance, Expansion, ModuleInput};
use crate::eval::functions;
use crate::providers::{Registry, ResourceSchema};
use crate::syntax::ast::*;
use crate::value::FxIndexMap as IndexMap;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

/// A declaration: a node of the dependency graph.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeclId {
    Param(String),
    Let(String),
    /// Key in [`Config::providers`]: `random` or `postgres.admin`.
    Provider(String),
    /// `random.password.db`
    Resource(String),
    /// `data.aws.s3_bucket.existing`: a data source, read while planning.
    Data(String),
    Output(String),
}

impl std::fmt::Display for DeclId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeclId::Param(n) => write!(f, "param {n}"),
            DeclId::Let(n) => match n.split_once(':') {
                // Component outputs and instances, as users write them.
                Some((inst, "*")) => write!(f, "{inst}"),
                Some((inst, out)) => write!(f, "output {inst}.{out}"),
                None => write!(f, "let {n}"),
            },
            DeclId::Provider(n) => write!(f, "provider {n}"),
            DeclId::Resource(a) | DeclId::Data(a) => write!(f, "{a}"),
            DeclId::Output(n) => write!(f, "output {n}"),
        }
    }
}

/// A reference from one declaration's expressions to another declaration.
#[derive(Debug, Clone)]
pub struct Reference {
    pub target: DeclId,
    pub span: Span,
}

/// Meta-arguments of a resource, checked.
#[derive(Debug, Clone, Default)]
pub struct ResourceMeta {
    pub count: Option<Expr>,
    pub for_each: Option<Expr>,
    pub depends_on: Vec<(String, Span)>,
    /// Key in [`Config::providers`], when `provider = x.alias` is given.
    pub provider_config: Option<String>,
    pub prevent_destroy: bool,
    pub create_before_destroy: bool,
    pub ignore_changes: Vec<String>,
}

/// A resource or a data block: the declaration, its address and checked
/// meta-arguments.
#[derive(Debug, Clone)]
pub struct Resource {
    pub decl: ResourceDecl,
    pub address: String,
    pub meta: ResourceMeta,
    /// The name expressions read it under: `random` at the root,
    /// `stack.core.random` inside the component `stack.core`; for a data
    /// block `data` (or `stack.core.data`), under which it is
    /// `<provider>.<type>.<name>`.
    pub ns_root: String,
    /// `depends_on` of the components it is in.
    pub extra_deps: Vec<Expr>,
}

#[derive(Debug, Clone, Default)]
pub struct Config {
    pub sources: Sources,
    pub params: IndexMap<String, ParamDecl>,
    pub lets: IndexMap<String, LetDecl>,
    pub providers: IndexMap<String, ProviderDecl>,
    pub resources: IndexMap<String, Resource>,
    /// Data blocks by address (`data.aws.s3_bucket.existing`): read, never
    /// managed or recorded.
    pub data: IndexMap<String, Resource>,
    pub outputs: IndexMap<String, OutputDecl>,
    /// References of each declaration (graph edges), in source order.
    pub references: IndexMap<DeclId, Vec<Reference>>,
    /// Params of component instances, fed by the component's inputs.
    pub module_params: HashMap<String, ModuleInput>,
    /// Lets holding component outputs declared sensitive.
    pub sensitive_lets: HashSet<String>,
    /// Every component instance.
    pub components: Vec<ComponentInstance>,
    /// Component values (`stack.core:*`) → the address prefix of their
    /// resources, which `depends_on = [stack.core]` waits for.
    pub aggregates: HashMap<String, String>,
    /// Resource roots inside components: `stack.core.random` → (`stack.core.`, `random`).
    pub ns_roots: HashMap<String, (String, String)>,
}

pub const META_ARGUMENTS: &[&str] = &["count", "for_each", "depends_on", "provider"];
/// The root name of data sources in expressions (`data.aws.s3_bucket.x`):
/// no param, let, provider or component kind may be called so.
pub const DATA_ROOT: &str = "data";

/// Which kind of block [`Checker::resource`] checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    Resource,
    Data,
}
const PARAM_ATTRS: &[&str] = &["description", "validate", "message", "sensitive"];
const OUTPUT_ATTRS: &[&str] = &["description", "sensitive"];
const LIFECYCLE_ATTRS: &[&str] = &["prevent_destroy", "create_before_destroy", "ignore_changes"];

impl Config {
    /// Params given from outside (`-var`, environments): the root module's.
    pub fn root_params(&self) -> IndexMap<String, ParamDecl> {
        self.params.iter().filter(|(n, _)| !self.module_params.contains_key(*n)).map(|(n, p)| (n.clone(), p.clone())).collect()
    }

    pub fn resource_schema<'r>(&self, registry: &'r Registry, address: &str) -> Option<&'r ResourceSchema> {
        let r = self.resources.get(address)?;
        registry.resource_schema(&r.decl.provider.name, &r.decl.rtype.name)
    }

    /// The schema of the data block at `address`.
    pub fn data_schema<'r>(&self, registry: &'r Registry, address: &str) -> Option<&'r ResourceSchema> {
        let r = self.data.get(address)?;
        registry.get(&r.decl.provider.name)?.schema().data_sources.get(r.decl.rtype.name.as_str())
    }

    /// Span of a declaration's name (for graph diagnostics).
    pub fn decl_span(&self, id: &DeclId) -> Option<Span> {
        Some(match id {
            DeclId::Param(n) => self.params.get(n)?.name.span,
            DeclId::Let(n) => self.lets.get(n)?.name.span,
            DeclId::Provider(n) => self.providers.get(n)?.name.span,
            DeclId::Resource(a) => self.resources.get(a)?.decl.name.span,
            DeclId::Data(a) => self.data.get(a)?.decl.name.span,
            DeclId::Output(n) => self.outputs.get(n)?.name.span,
        })
    }
}

/// Collects the declarations of all files and checks them statically (a
/// project without components).
pub fn declare(files: Vec<File>, sources: Sources, registry: &Registry) -> (Config, Diags) {
    declare_with(files, sources, registry, None)
}

/// Collects the declarations of the root files and of every component
/// instance under them (see [`components`]) and checks them statically.
pub fn declare_with(files: Vec<File>, sources: Sources, registry: &Registry, expansion: Option<Expansion<'_>>) -> (Config, Diags) {
    let mut cfg = Config { sources, ..Config::default() };
    let mut diags = Vec::new();
    let provider_set: HashSet<String> = registry.names().map(String::from).collect();
    let flat = components::flatten(files, &provider_set, expansion, &mut diags);
    cfg.module_params = flat.module_params;
    cfg.sensitive_lets = flat.sensitive_lets;
    cfg.components = flat.components;
    cfg.aggregates = flat.aggregates;
    let mut seen: IndexMap<String, Span> = IndexMap::default();
    let mut dup = |kind: &str, key: String, span: Span, diags: &mut Diags| {
        if let Some(first) = seen.get(&key) {
            diags.push(
                Diagnostic::new("P2001", format!("duplicate {kind}"))
                    .help(format!("`{key}` is declared twice; names must be unique within a project. Rename or remove one."))
                    .label(span, "declared again here")
                    .label(*first, "first declared here"),
            );
            false
        } else {
            seen.insert(key, span);
            true
        }
    };
    {
        for placed in flat.items {
            let prefix = placed.prefix;
            match placed.item {
                Item::Param(p) => {
                    if dup("name", p.name.name.clone(), p.name.span, &mut diags) {
                        cfg.params.insert(p.name.name.clone(), p);
                    }
                }
                Item::Let(l) => {
                    if dup("name", l.name.name.clone(), l.name.span, &mut diags) {
                        cfg.lets.insert(l.name.name.clone(), l);
                    }
                }
                Item::Provider(p) => {
                    let key = match &p.alias {
                        Some(a) => format!("{}.{}", p.name.name, a.name),
                        None => p.name.name.clone(),
                    };
                    if p.name.name == DATA_ROOT {
                        diags.push(reserved_data_name(&p.name, "a provider"));
                    }
                    if dup("provider configuration", format!("provider {key}"), p.name.span, &mut diags) {
                        cfg.providers.insert(key, p);
                    }
                }
                Item::Resource(r) => {
                    let address = format!("{prefix}{}.{}.{}", r.provider.name, r.rtype.name, r.name.name);
                    if dup("resource", address.clone(), r.name.span, &mut diags) {
                        let ns_root = format!("{prefix}{}", r.provider.name);
                        if !prefix.is_empty() {
                            cfg.ns_roots.insert(ns_root.clone(), (prefix.clone(), r.provider.name.clone()));
                        }
                        cfg.resources
                            .insert(address.clone(), Resource { decl: r, address, meta: ResourceMeta::default(), ns_root, extra_deps: placed.extra_deps });
                    }
                }
                Item::Data(r) => {
                    let address = format!("{prefix}{DATA_ROOT}.{}.{}.{}", r.provider.name, r.rtype.name, r.name.name);
                    if dup("data block", address.clone(), r.name.span, &mut diags) {
                        let ns_root = format!("{prefix}{DATA_ROOT}");
                        if !prefix.is_empty() {
                            cfg.ns_roots.insert(ns_root.clone(), (prefix.clone(), DATA_ROOT.to_string()));
                        }
                        cfg.data.insert(address.clone(), Resource { decl: r, address, meta: ResourceMeta::default(), ns_root, extra_deps: placed.extra_deps });
                    }
                }
                Item::Output(o) => {
                    if dup("output", format!("output {}", o.name.name), o.name.span, &mut diags) {
                        cfg.outputs.insert(o.name.name.clone(), o);
                    }
                }
                Item::Component(_) | Item::Import(_) | Item::Meta(_) => {}
            }
        }
    }

    // A bare name resolves to a let/param first, then to a provider: a name
    // that is both is refused at its declaration.
    let provider_names: HashSet<&str> = registry.names().collect();
    for (name, span) in cfg.params.iter().map(|(n, p)| (n, p.name.span)).chain(cfg.lets.iter().map(|(n, l)| (n, l.name.span))) {
        let local = name.rsplit('.').next().unwrap_or(name);
        // `data` is the data sources' root in a module that declares data
        // blocks; elsewhere a param or let may keep the name (a Secret's
        // `data` entries), and `data.x` reads it.
        let prefix = &name[..name.len() - local.len()];
        let declares_data = || cfg.data.keys().any(|a| a.strip_prefix(prefix).is_some_and(|rest| rest.starts_with("data.")));
        if local == DATA_ROOT {
            if declares_data() {
                let kind = if cfg.params.contains_key(name) { "a param" } else { "a let" };
                diags.push(reserved_data_name(&Ident { name: local.to_string(), span }, kind));
            }
        } else if provider_names.contains(local) || matches!(local, "each" | "count") {
            diags.push(
                Diagnostic::new("P2002", "name shadows a provider or a meta name")
                    .help(format!("`{name}` is also the name of a provider (or of `each`/`count`), so references to it would be ambiguous; rename it."))
                    .label(span, "ambiguous name"),
            );
        }
    }

    let mut checker = Checker { cfg: &cfg, registry, diags: Vec::new() };
    let mut references = IndexMap::default();
    let mut metas = Vec::new();
    for (name, p) in &cfg.params {
        let mut refs = Vec::new();
        if let Some(d) = &p.default {
            checker.refs(d, &Scope::top(), &mut refs);
            if !refs.is_empty() {
                checker.diags.push(
                    Diagnostic::new("P2008", "param default refers to other values")
                        .help("A param's default must be a constant; compute derived values with `let`.")
                        .label(d.span, "not a constant"),
                );
                refs.clear();
            }
        }
        if let Some(body) = &p.body {
            checker.check_attrs(body, PARAM_ATTRS, "a param", &[]);
            if let Some(v) = body.attr("validate") {
                let scope = Scope::top().with(&[name.as_str()]);
                let mut vrefs = Vec::new();
                checker.refs(&v.value, &scope, &mut vrefs);
                // The param itself is in scope; other params may be read too.
                refs.extend(vrefs.into_iter().filter(|r| r.target != DeclId::Param(name.clone())));
            }
        }
        if let Some(input) = cfg.module_params.get(name).and_then(|m| m.input.as_ref()) {
            checker.refs(input, &Scope::top(), &mut refs);
        }
        references.insert(DeclId::Param(name.clone()), refs);
    }
    for (name, l) in &cfg.lets {
        let mut refs = Vec::new();
        checker.refs(&l.value, &Scope::top(), &mut refs);
        references.insert(DeclId::Let(name.clone()), refs);
    }
    for (key, p) in &cfg.providers {
        let mut refs = Vec::new();
        match registry.get(&p.name.name) {
            None => checker.diags.push(unknown_provider(&p.name, registry)),
            // A Terraform provider not installed yet: nothing to check against.
            Some(f) if !f.schema_known() => {}
            Some(f) => {
                let mut allowed: Vec<&str> = f.schema().config.keys().copied().collect();
                allowed.extend_from_slice(crate::providers::governed::SETTINGS);
                let blocks: Vec<&str> = f.schema().config.iter().filter(|(_, a)| a.block.is_some()).map(|(n, _)| *n).collect();
                checker.check_attrs(&p.body, &allowed, "this provider's configuration", &blocks);
            }
        }
        for a in &p.body.attrs {
            checker.refs(&a.value, &Scope::top(), &mut refs);
        }
        references.insert(DeclId::Provider(key.clone()), refs);
    }
    for (address, r) in &cfg.resources {
        let (meta, refs) = checker.resource(r, BlockKind::Resource);
        metas.push((address.clone(), meta));
        references.insert(DeclId::Resource(address.clone()), refs);
    }
    let mut data_metas = Vec::new();
    for (address, r) in &cfg.data {
        let (meta, refs) = checker.resource(r, BlockKind::Data);
        data_metas.push((address.clone(), meta));
        references.insert(DeclId::Data(address.clone()), refs);
    }
    for (name, o) in &cfg.outputs {
        let mut refs = Vec::new();
        checker.refs(&o.value, &Scope::top(), &mut refs);
        if let Some(body) = &o.body {
            checker.check_attrs(body, OUTPUT_ATTRS, "an output", &[]);
        }
        references.insert(DeclId::Output(name.clone()), refs);
    }
    diags.extend(checker.diags);
    for (address, meta) in metas {
        if let Some(r) = cfg.resources.get_mut(&address) {
            r.meta = meta;
        }
    }
    for (address, meta) in data_metas {
        if let Some(r) = cfg.data.get_mut(&address) {
            r.meta = meta;
        }
    }
    cfg.references = references;
    (cfg, diags)
}

/// `P2151`: `data` names data sources in expressions (`data.aws.s3_bucket.x`).
pub fn reserved_data_name(name: &Ident, kind: &str) -> Diagnostic {
    let (why, example) = match kind {
        "a param" | "a let" => ("and this module declares `data` blocks, ", "my_data"),
        "a component kind" => ("", "module_data"),
        _ => ("", "my_data"),
    };
    Diagnostic::new("P2151", "`data` is a reserved name")
        .help(format!(
            "`data` is the root of data-source references (`data.<provider>.<type>.<name>`) {why}so it cannot be the name of {kind}; rename it (e.g. `{example}` or `payload`)."
        ))
        .label(name.span, "reserved for data sources")
}

fn unknown_provider(name: &Ident, registry: &Registry) -> Diagnostic {
    let names: Vec<&str> = registry.names().collect();
    Diagnostic::new("P2010", "unknown provider")
        .help(format!(
            "The providers are {}.{}",
            names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "),
            suggestion(&name.name, names.iter().copied())
        ))
        .label(name.span, format!("no provider `{}`", name.name))
}

/// Names bound inside an expression: for-variables, `each`, `count`.
#[derive(Clone, Default)]
struct Scope<'s> {
    locals: Vec<&'s str>,
}

impl<'s> Scope<'s> {
    fn top() -> Self {
        Scope::default()
    }
    fn with(&self, names: &[&'s str]) -> Self {
        let mut s = self.clone();
        s.locals.extend_from_slice(names);
        s
    }
}

struct Checker<'c> {
    cfg: &'c Config,
    registry: &'c Registry,
    diags: Diags,
}

impl<'c> Checker<'c> {
    /// A nested block of a provider schema (`rule { … }`): its attributes
    /// and blocks against the schema, its references into the resource's.
    fn check_nested_block(&mut self, b: &crate::syntax::ast::Block, nested: &crate::providers::BlockSchema, scope: &Scope<'_>, refs: &mut Vec<Reference>) {
        if nested.nesting == crate::providers::Nesting::Map {
            self.diags.push(
                Diagnostic::new("P2018", "map blocks are assigned, not written")
                    .help(format!("`{}` is keyed by a label; assign it a map of objects: `{} = {{ key = {{ … }} }}`.", b.name.name, b.name.name))
                    .label(b.name.span, "map block"),
            );
            return;
        }
        for a in &b.body.attrs {
            self.refs(&a.value, scope, refs);
            match nested.attributes.get(a.name.name.as_str()) {
                None => {
                    let names: Vec<&str> = nested.attributes.iter().filter(|(_, s)| s.is_input()).map(|(n, _)| *n).collect();
                    self.diags.push(
                        Diagnostic::new("P2004", "unknown attribute")
                            .help(format!(
                                "A `{}` block has no attribute `{}`; it takes {}.{}",
                                b.name.name,
                                a.name.name,
                                list_names(&names),
                                suggestion(&a.name.name, names.iter().copied())
                            ))
                            .label(a.name.span, "unknown attribute"),
                    );
                }
                Some(s) if !s.is_input() => self.diags.push(
                    Diagnostic::new("P2012", "attribute is computed")
                        .help(format!("`{}` of a `{}` block is set by the provider.", a.name.name, b.name.name))
                        .label(a.name.span, "cannot be set"),
                ),
                Some(s) if s.block.is_some() && b.body.block(&a.name.name).is_some() => self.diags.push(
                    Diagnostic::new("P2018", "block also set as an attribute")
                        .help(format!("`{}` is written as blocks and assigned here; use one or the other.", a.name.name))
                        .label(a.name.span, "assigned"),
                ),
                Some(_) => {}
            }
        }
        for inner in &b.body.blocks {
            match nested.attributes.get(inner.name.name.as_str()).and_then(|a| a.block.clone()) {
                Some(n) => self.check_nested_block(inner, &n, scope, refs),
                None => {
                    let blocks: Vec<&str> = nested.attributes.iter().filter(|(_, a)| a.block.is_some()).map(|(n, _)| *n).collect();
                    self.diags.push(
                        Diagnostic::new("P2014", "unexpected block")
                            .help(format!(
                                "A `{}` block {}.{}",
                                b.name.name,
                                if blocks.is_empty() { "has no blocks inside".to_string() } else { format!("accepts the blocks {}", list_names(&blocks)) },
                                suggestion(&inner.name.name, blocks.iter().copied())
                            ))
                            .label(inner.name.span, "unexpected block"),
                    );
                }
            }
        }
        for (name, s) in &nested.attributes {
            if s.required && b.body.attr(name).is_none() && b.body.block(name).is_none() {
                self.diags.push(
                    Diagnostic::new("P2005", "missing required attribute")
                        .help(format!(
                            "A `{}` block needs `{name}`{}.",
                            b.name.name,
                            if s.description.is_empty() { String::new() } else { format!(" ({})", s.description) }
                        ))
                        .label(b.name.span, format!("`{name}` is not set")),
                );
            }
            if let Some(n) = &s.block {
                self.check_block_count(&b.body, name, n);
            }
        }
    }

    /// The references of a block's attributes, nested blocks included.
    fn block_refs(&mut self, b: &crate::syntax::ast::Block, scope: &Scope<'_>, refs: &mut Vec<Reference>) {
        for a in &b.body.attrs {
            self.refs(&a.value, scope, refs);
        }
        for inner in &b.body.blocks {
            self.block_refs(inner, scope, refs);
        }
    }

    /// At most `max_items` blocks named `name` in `body` (one for single blocks).
    fn check_block_count(&mut self, body: &Body, name: &str, nested: &crate::providers::BlockSchema) {
        use crate::providers::Nesting;
        let blocks: Vec<&crate::syntax::ast::Block> = body.blocks.iter().filter(|b| b.name.name == name).collect();
        let max = match nested.nesting {
            Nesting::Single | Nesting::Group => 1,
            _ => nested.max_items,
        };
        if max > 0 && blocks.len() as u64 > max {
            self.diags.push(
                Diagnostic::new("P2018", format!("too many `{name}` blocks"))
                    .help(format!("At most {max} `{name}` block{} may be written here.", if max == 1 { "" } else { "s" }))
                    .label(blocks[max as usize].name.span, "one too many"),
            );
        }
    }

    fn check_attrs(&mut self, body: &Body, allowed: &[&str], what: &str, extra_blocks: &[&str]) {
        for a in &body.attrs {
            if !allowed.contains(&a.name.name.as_str()) {
                self.diags.push(
                    Diagnostic::new("P2004", "unknown attribute")
                        .help(format!(
                            "`{}` is not an attribute of {what}; it takes {}.{}",
                            a.name.name,
                            list_names(allowed),
                            suggestion(&a.name.name, allowed.iter().copied())
                        ))
                        .label(a.name.span, "unknown attribute"),
                );
            }
        }
        for (i, b) in body.blocks.iter().enumerate() {
            if let Some(first) = body.blocks[..i].iter().find(|x| x.name.name == b.name.name) {
                if extra_blocks.contains(&b.name.name.as_str()) {
                    self.diags.push(
                        Diagnostic::new("P1008", "duplicate block")
                            .help(format!("`{}` appears twice in this block; keep one.", b.name.name))
                            .label(b.name.span, "again here")
                            .label(first.name.span, "first here"),
                    );
                }
                continue;
            }
            if !extra_blocks.contains(&b.name.name.as_str()) {
                self.diags.push(
                    Diagnostic::new("P2014", "unexpected block")
                        .help(format!(
                            "{} has no `{}` block{}.{}",
                            capitalize(what),
                            b.name.name,
                            if extra_blocks.is_empty() { String::new() } else { format!("; blocks allowed here: {}", list_names(extra_blocks)) },
                            suggestion(&b.name.name, extra_blocks.iter().copied())
                        ))
                        .label(b.name.span, "unexpected block"),
                );
            }
        }
    }

    /// A resource or a data block: its meta-arguments, its attributes and
    /// blocks against the type's schema (`resources` or `data_sources` of
    /// the provider's), and its references.
    fn resource(&mut self, r: &Resource, kind: BlockKind) -> (ResourceMeta, Vec<Reference>) {
        let decl = &r.decl;
        let mut meta = ResourceMeta::default();
        let mut refs = Vec::new();
        let factory = self.registry.get(&decl.provider.name);
        let schema = match factory {
            None => {
                self.diags.push(unknown_provider(&decl.provider, self.registry));
                None
            }
            // A Terraform provider not installed yet: its resources are
            // checked once `plinth init` has cached its schema.
            Some(f) if !f.schema_known() => None,
            Some(f) if kind == BlockKind::Data => match f.schema().data_sources.get(decl.rtype.name.as_str()) {
                Some(s) => Some(s),
                None => {
                    let types: Vec<&str> = f.schema().data_sources.keys().copied().collect();
                    let have = if types.is_empty() {
                        format!("The provider `{}` has no data sources (data sources come from Terraform providers' schemas).", decl.provider.name)
                    } else if types.len() > 40 {
                        format!("The provider `{}` has {} data sources.", decl.provider.name, types.len())
                    } else {
                        format!("The provider `{}` has the data sources {}.", decl.provider.name, list_names(&types))
                    };
                    self.diags.push(
                        Diagnostic::new("P2150", "unknown data source")
                            .help(format!("{have}{}", suggestion(&decl.rtype.name, types.iter().copied())))
                            .label(decl.rtype.span, "unknown data source"),
                    );
                    None
                }
            },
            Some(f) => match f.schema().resources.get(decl.rtype.name.as_str()) {
                Some(s) => Some(s),
                None => {
                    let types: Vec<&str> = f.schema().resources.keys().copied().collect();
                    self.diags.push(
                        Diagnostic::new("P2011", "unknown resource type")
                            .help(format!(
                                "The provider `{}` has the resource types {}.{}",
                                decl.provider.name,
                                types.iter().map(|t| format!("`{}.{t}`", decl.provider.name)).collect::<Vec<_>>().join(", "),
                                suggestion(&decl.rtype.name, types.iter().copied())
                            ))
                            .label(decl.rtype.span, "unknown type"),
                    );
                    None
                }
            },
        };
        let body = &decl.body;
        meta.count = body.attr("count").map(|a| a.value.clone());
        meta.for_each = body.attr("for_each").map(|a| a.value.clone());
        if let (Some(c), Some(f)) = (body.attr("count"), body.attr("for_each")) {
            self.diags.push(
                Diagnostic::new("P2013", "both `count` and `for_each`")
                    .help("A resource repeats either by `count` (a number) or by `for_each` (a map or set of strings), not both.")
                    .label(c.name.span, "count here")
                    .label(f.name.span, "for_each here"),
            );
        }
        let mut bound: Vec<&str> = Vec::new();
        if meta.count.is_some() {
            bound.push("count");
        }
        if meta.for_each.is_some() {
            bound.push("each");
        }
        let inner_scope = Scope::top().with(&bound);
        for a in &body.attrs {
            match a.name.name.as_str() {
                "count" | "for_each" => self.refs(&a.value, &Scope::top(), &mut refs),
                "depends_on" => match &a.value.kind {
                    ExprKind::List(items) => {
                        for item in items {
                            let mut item_refs = Vec::new();
                            self.refs(item, &Scope::top(), &mut item_refs);
                            match (item.traversal(), item_refs.first()) {
                                (Some(_), Some(target)) if item_refs.len() == 1 => {
                                    meta.depends_on.push((target.target.to_string(), item.span));
                                    refs.push(target.clone());
                                    refs.extend(self.component_resources(target));
                                }
                                _ => {
                                    if self.diags.iter().all(|d| d.primary_span() != Some(item.span)) && item_refs.is_empty() {
                                        self.diags.push(depends_on_error(item.span));
                                    }
                                    refs.extend(item_refs);
                                }
                            }
                        }
                    }
                    _ => self.diags.push(depends_on_error(a.value.span)),
                },
                "provider" => match a.value.traversal() {
                    Some((root, steps)) if steps.len() == 1 && root.name == decl.provider.name => {
                        if let Some(TraversalStep::Attr(alias)) = steps.first() {
                            let key = format!("{}.{}", root.name, alias.name);
                            if self.cfg.providers.contains_key(&key) {
                                refs.push(Reference { target: DeclId::Provider(key.clone()), span: a.value.span });
                                meta.provider_config = Some(key);
                            } else {
                                let aliases: Vec<&str> = self.cfg.providers.keys().filter_map(|k| k.strip_prefix(&format!("{}.", root.name))).collect();
                                self.diags.push(
                                    Diagnostic::new("P2015", "unknown provider configuration")
                                        .help(format!("Declare it with `provider {} {} {{ … }}`.{}", root.name, alias.name, suggestion(&alias.name, aliases)))
                                        .label(a.value.span, "no such provider configuration"),
                                );
                            }
                        }
                    }
                    _ => self.diags.push(
                        Diagnostic::new("P2015", "invalid provider reference")
                            .help(format!(
                                "Write `provider = {}.<alias>`, naming a `provider {} <alias> {{ … }}` block.",
                                decl.provider.name, decl.provider.name
                            ))
                            .label(a.value.span, "expected `<provider>.<alias>`"),
                    ),
                },
                name => {
                    self.refs(&a.value, &inner_scope, &mut refs);
                    if let Some(schema) = schema {
                        match schema.attributes.get(name) {
                            None => {
                                let names: Vec<&str> = schema.attributes.iter().filter(|(_, s)| s.is_input()).map(|(n, _)| *n).collect();
                                self.diags.push(
                                    Diagnostic::new("P2004", "unknown attribute")
                                        .help(format!(
                                            "`{}.{}` has no attribute `{name}`; it takes {} (and the meta-arguments {}).{}",
                                            decl.provider.name,
                                            decl.rtype.name,
                                            list_names(&names),
                                            list_names(META_ARGUMENTS),
                                            suggestion(name, names.iter().copied().chain(META_ARGUMENTS.iter().copied()))
                                        ))
                                        .label(a.name.span, "unknown attribute"),
                                );
                            }
                            Some(s) if !s.is_input() => self.diags.push(
                                Diagnostic::new("P2012", "attribute is computed")
                                    .help(format!("`{name}` is set by the provider; read it as `{}.{name}` instead of setting it.", r.address))
                                    .label(a.name.span, "cannot be set"),
                            ),
                            Some(_) => {}
                        }
                    }
                }
            }
        }
        // A resource on the default configuration of a declared provider
        // waits for what that block references (a kubeconfig written by a
        // `file.file`, a cluster's endpoint), as one naming an alias does.
        if meta.provider_config.is_none() && self.cfg.providers.contains_key(&decl.provider.name) {
            refs.push(Reference { target: DeclId::Provider(decl.provider.name.clone()), span: decl.provider.span });
        }
        for item in &r.extra_deps {
            let mut item_refs = Vec::new();
            self.refs(item, &Scope::top(), &mut item_refs);
            for target in item_refs {
                meta.depends_on.push((target.target.to_string(), item.span));
                refs.extend(self.component_resources(&target));
                refs.push(target);
            }
        }
        if let Some(schema) = schema {
            for (name, s) in &schema.attributes {
                if s.required && body.attr(name).is_none() && body.block(name).is_none() {
                    self.diags.push(
                        Diagnostic::new("P2005", "missing required attribute")
                            .help(format!("`{}.{}` needs `{name}` ({}).", decl.provider.name, decl.rtype.name, s.description))
                            .label(decl.name.span, format!("`{name}` is not set")),
                    );
                }
            }
        }
        let lifecycles: Vec<&crate::syntax::ast::Block> = body.blocks.iter().filter(|b| b.name.name == "lifecycle").collect();
        if let [first, second, ..] = lifecycles.as_slice() {
            self.diags.push(
                Diagnostic::new("P1008", "duplicate block")
                    .help("A resource has one `lifecycle` block; merge them.")
                    .label(second.name.span, "again here")
                    .label(first.name.span, "first here"),
            );
        }
        for b in &body.blocks {
            if b.name.name == "lifecycle" && kind == BlockKind::Resource {
                self.check_attrs(&b.body, LIFECYCLE_ATTRS, "`lifecycle`", &[]);
                for a in &b.body.attrs {
                    let flag = |d: &mut Diags| match a.value.kind {
                        ExprKind::Bool(v) => v,
                        _ => {
                            d.push(
                                Diagnostic::new("P2016", "lifecycle settings must be literal")
                                    .help("Write `true` or `false`: lifecycle settings are read before anything is evaluated.")
                                    .label(a.value.span, "not a literal bool"),
                            );
                            false
                        }
                    };
                    match a.name.name.as_str() {
                        "prevent_destroy" => meta.prevent_destroy = flag(&mut self.diags),
                        "create_before_destroy" => meta.create_before_destroy = flag(&mut self.diags),
                        "ignore_changes" => match &a.value.kind {
                            ExprKind::List(items) => {
                                for item in items {
                                    let name = match &item.kind {
                                        ExprKind::Template(parts) => match parts.as_slice() {
                                            [TemplatePart::Literal(s)] => Some(s.clone()),
                                            _ => None,
                                        },
                                        ExprKind::Variable(id) => Some(id.name.clone()),
                                        _ => None,
                                    };
                                    match name {
                                        Some(n) if schema.is_none_or(|s| s.attributes.contains_key(n.as_str())) => meta.ignore_changes.push(n),
                                        Some(n) => {
                                            let names: Vec<&str> = schema.map(|s| s.attributes.keys().copied().collect()).unwrap_or_default();
                                            self.diags.push(
                                                Diagnostic::new("P2004", "unknown attribute")
                                                    .help(format!("`ignore_changes` names attributes of this resource.{}", suggestion(&n, names)))
                                                    .label(item.span, "unknown attribute"),
                                            )
                                        }
                                        None => self.diags.push(
                                            Diagnostic::new("P2016", "lifecycle settings must be literal")
                                                .help("`ignore_changes` is a list of attribute names, e.g. `[\"content\"]`.")
                                                .label(item.span, "not an attribute name"),
                                        ),
                                    }
                                }
                            }
                            _ => self.diags.push(
                                Diagnostic::new("P2016", "lifecycle settings must be literal")
                                    .help("`ignore_changes` is a list of attribute names, e.g. `[\"content\"]`.")
                                    .label(a.value.span, "expected a list"),
                            ),
                        },
                        _ => {}
                    }
                }
            } else if let Some(nested) = schema.and_then(|s| s.attributes.get(b.name.name.as_str())).and_then(|a| a.block.clone()) {
                if body.attr(&b.name.name).is_some() {
                    self.diags.push(
                        Diagnostic::new("P2018", "block also set as an attribute")
                            .help(format!(
                                "`{}` is written as blocks and assigned a list here; use one or the other (the assignment is how blocks are generated from a collection).",
                                b.name.name
                            ))
                            .label(b.name.span, "block"),
                    );
                }
                self.check_nested_block(b, &nested, &inner_scope, &mut refs);
            } else if factory.is_some_and(|f| !f.schema_known()) {
                // Not installed yet: checked once `plinth init` has run.
                let mut scope_refs = Vec::new();
                self.block_refs(b, &inner_scope, &mut scope_refs);
                refs.extend(scope_refs);
            } else {
                let blocks: Vec<&str> = schema.map(|s| s.attributes.iter().filter(|(_, a)| a.block.is_some()).map(|(n, _)| *n).collect()).unwrap_or_default();
                let lifecycle = (kind == BlockKind::Resource).then_some("lifecycle");
                let all: Vec<&str> = lifecycle.into_iter().chain(blocks.iter().copied()).collect();
                let what = if kind == BlockKind::Data {
                    format!("The data source `{}.{}`", decl.provider.name, decl.rtype.name)
                } else {
                    format!("`{}.{}`", decl.provider.name, decl.rtype.name)
                };
                self.diags.push(
                    Diagnostic::new("P2014", "unexpected block")
                        .help(format!(
                            "{what} accepts {}.{}",
                            if all.is_empty() { "no blocks".to_string() } else { format!("the blocks {}", list_names(&all)) },
                            suggestion(&b.name.name, all.iter().copied())
                        ))
                        .label(b.name.span, "unexpected block"),
                );
            }
        }
        // Blocks that may appear once.
        if let Some(schema) = schema {
            for (name, a) in &schema.attributes {
                if let Some(nested) = &a.block {
                    self.check_block_count(body, name, nested);
                }
            }
        }
        (meta, refs)
    }

    /// `depends_on = [stack.core]`: every resource of the component (its
    /// value alone would wait only for its outputs).
    fn component_resources(&self, target: &Reference) -> Vec<Reference> {
        let DeclId::Let(name) = &target.target else { return vec![] };
        let Some(prefix) = self.cfg.aggregates.get(name) else { return vec![] };
        self.cfg
            .resources
            .keys()
            .filter(|a| a.starts_with(prefix.as_str()))
            .map(|a| Reference { target: DeclId::Resource(a.clone()), span: target.span })
            .collect()
    }

    /// Collects references of an expression and reports undeclared names.
    fn refs(&mut self, expr: &Expr, scope: &Scope<'_>, out: &mut Vec<Reference>) {
        // An explicit stack: expressions may be long.
        let mut stack: Vec<(&Expr, Scope<'_>)> = vec![(expr, scope.clone())];
        while let Some((e, scope)) = stack.pop() {
            if let Some((root, steps)) = e.traversal() {
                self.resolve(root, &steps, e.span, &scope, out);
                for s in steps {
                    if let TraversalStep::Index(k) = s {
                        stack.push((k, scope.clone()));
                    }
                }
                continue;
            }
            match &e.kind {
                ExprKind::Null | ExprKind::Bool(_) | ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Variable(_) => {}
                ExprKind::Template(parts) => {
                    for p in parts {
                        if let TemplatePart::Interp(x) = p {
                            stack.push((x, scope.clone()));
                        }
                    }
                }
                ExprKind::List(items) => stack.extend(items.iter().map(|x| (x, scope.clone()))),
                ExprKind::Object(entries) => {
                    for (k, v) in entries {
                        if let ObjectKey::Expr(k) = k {
                            stack.push((k, scope.clone()));
                        }
                        stack.push((v, scope.clone()));
                    }
                }
                ExprKind::GetAttr(inner, _) => stack.push((inner, scope)),
                ExprKind::Index(inner, key) => {
                    stack.push((inner, scope.clone()));
                    stack.push((key, scope));
                }
                ExprKind::Splat(base, steps) => {
                    for s in steps {
                        if let Step::Index(k) = s {
                            stack.push((k, scope.clone()));
                        }
                    }
                    stack.push((base, scope));
                }
                ExprKind::Unary(_, x) => stack.push((x, scope)),
                ExprKind::Binary(_, a, b) => {
                    stack.push((a, scope.clone()));
                    stack.push((b, scope));
                }
                ExprKind::Conditional(c, a, b) => {
                    stack.push((c, scope.clone()));
                    stack.push((a, scope.clone()));
                    stack.push((b, scope));
                }
                ExprKind::Call(name, args) => {
                    if functions::arity(&name.name).is_none() && !name.name.starts_with("__") {
                        self.diags.push(
                            Diagnostic::new("P2021", "unknown function")
                                .help(format!(
                                    "See docs/language.md for the standard functions.{}",
                                    suggestion(&name.name, functions::FUNCTION_NAMES.iter().copied())
                                ))
                                .label(name.span, format!("`{}` is not a function", name.name)),
                        );
                    }
                    stack.extend(args.iter().map(|x| (x, scope.clone())));
                }
                ExprKind::ForList { key_var, value_var, collection, body, cond } => {
                    stack.push((collection, scope.clone()));
                    let mut names = vec![];
                    if let Some(k) = key_var {
                        names.push(k.name.as_str());
                    }
                    names.push(value_var.name.as_str());
                    let inner = scope.with(&names);
                    stack.push((body, inner.clone()));
                    if let Some(c) = cond {
                        stack.push((c, inner));
                    }
                }
                ExprKind::ForMap { key_var, value_var, collection, key, value, cond } => {
                    stack.push((collection, scope.clone()));
                    let mut names = vec![];
                    if let Some(k) = key_var {
                        names.push(k.name.as_str());
                    }
                    names.push(value_var.name.as_str());
                    let inner = scope.with(&names);
                    stack.push((key, inner.clone()));
                    stack.push((value, inner.clone()));
                    if let Some(c) = cond {
                        stack.push((c, inner));
                    }
                }
            }
        }
    }

    fn resolve(&mut self, root: &Ident, steps: &[TraversalStep<'_>], span: Span, scope: &Scope<'_>, out: &mut Vec<Reference>) {
        let name = root.name.as_str();
        if scope.locals.contains(&name) {
            return;
        }
        if self.cfg.lets.contains_key(name) {
            out.push(Reference { target: DeclId::Let(name.to_string()), span });
            return;
        }
        if self.cfg.params.contains_key(name) {
            out.push(Reference { target: DeclId::Param(name.to_string()), span });
            return;
        }
        if matches!(name, "each" | "count") {
            let (what, help) = if name == "each" {
                (
                    "`each` is only defined in a resource with `for_each`",
                    "`each.key` and `each.value` exist only inside a resource that sets `for_each`; set it there, or refer to a value that exists here.",
                )
            } else {
                (
                    "`count` is only defined in a resource with `count`",
                    "`count.index` exists only inside a resource that sets `count`; set it there, or refer to a value that exists here.",
                )
            };
            self.diags.push(Diagnostic::new("P2007", "meta value out of context").help(help).label(root.span, what));
            return;
        }
        let scoped = self.cfg.ns_roots.get(name).map(|(prefix, provider)| (prefix.as_str(), provider.as_str()));
        let (prefix, name) = scoped.unwrap_or(("", name));
        if name == DATA_ROOT {
            self.resolve_data(prefix, root, steps, span, out);
            return;
        }
        if let Some(factory) = self.registry.get(name) {
            let (Some(TraversalStep::Attr(rtype)), Some(TraversalStep::Attr(rname))) = (steps.first(), steps.get(1)) else {
                self.diags.push(
                    Diagnostic::new("P2003", "incomplete resource reference")
                        .help(format!(
                            "Reference a resource as `{name}.<type>.<name>`, e.g. `{name}.{}.<name>.<attribute>`.",
                            factory.schema().resources.keys().next().copied().unwrap_or("type")
                        ))
                        .label(span, "incomplete reference"),
                );
                return;
            };
            let address = format!("{prefix}{name}.{}.{}", rtype.name, rname.name);
            let Some(resource) = self.cfg.resources.get(&address) else {
                let hint = if crate::diagnostic::suggestions_exhausted() {
                    String::new()
                } else {
                    suggestion(&address, self.cfg.resources.keys().map(String::as_str))
                };
                self.diags.push(
                    Diagnostic::new("P2003", "reference to an undeclared resource")
                        .help(format!("No resource `{address}` is declared in this project.{hint}"))
                        .label(root.span.to(rname.span), format!("`{address}` is not declared")),
                );
                return;
            };
            // The attribute read must exist in the type's schema (after an
            // optional instance index).
            let mut rest = steps[2..].iter();
            let mut next = rest.next();
            if (resource.decl.body.attr("count").is_some() || resource.decl.body.attr("for_each").is_some()) && matches!(next, Some(TraversalStep::Index(_))) {
                next = rest.next();
            }
            if let (Some(TraversalStep::Attr(attr)), Some(schema)) = (next, self.cfg.resource_schema(self.registry, &address)) {
                if !schema.attributes.contains_key(attr.name.as_str()) {
                    let names: Vec<&str> = schema.attributes.keys().copied().collect();
                    self.diags.push(
                        Diagnostic::new("P2006", "unsupported attribute")
                            .help(format!(
                                "`{}.{}` has the attributes {}.{}",
                                name,
                                rtype.name,
                                list_names(&names),
                                suggestion(&attr.name, names.iter().copied())
                            ))
                            .label(attr.span, format!("no attribute `{}`", attr.name)),
                    );
                }
            }
            out.push(Reference { target: DeclId::Resource(address), span });
            return;
        }
        if name.contains(':') || !prefix.is_empty() || name.contains('.') {
            return; // a name the component rewriter resolved or already reported
        }
        if let ("var" | "local", Some(TraversalStep::Attr(attr))) = (name, steps.first()) {
            let n = &attr.name;
            let declared = if name == "var" { self.cfg.params.contains_key(n.as_str()) } else { self.cfg.lets.contains_key(n.as_str()) };
            let (decl, kind) = if name == "var" { (format!("param {n}: string"), "a param") } else { (format!("let {n} = …"), "a let") };
            self.diags.push(
                Diagnostic::new("P2145", "Terraform reference syntax")
                    .help(format!(
                        "Plinth refers to {kind} by its bare name: `{name}.{n}` → `{n}`.{}",
                        if declared { String::new() } else { format!(" Declare it with `{decl}`.") }
                    ))
                    .label(root.span.to(attr.span), format!("write `{n}`")),
            );
            return;
        }
        let mut candidates: Vec<String> = Vec::new();
        if !crate::diagnostic::suggestions_exhausted() {
            candidates.extend(self.cfg.lets.keys().chain(self.cfg.params.keys()).filter(|n| !n.contains('.') && !n.contains(':')).cloned());
            candidates.extend(scope.locals.iter().map(|s| s.to_string()));
            candidates.extend(self.registry.names().map(String::from));
            if !self.cfg.data.is_empty() {
                candidates.push(DATA_ROOT.to_string());
            }
        }
        self.diags.push(
            Diagnostic::new("P2003", "unknown name")
                .help(format!(
                    "`{name}` is not a param, a let, a provider or a bound variable. Declare it with `let {name} = …` or `param {name}: …`.{}",
                    suggestion(name, candidates.iter().map(String::as_str))
                ))
                .label(root.span, format!("`{name}` is not declared")),
        );
    }
}

impl Checker<'_> {
    /// `data.<provider>.<type>.<name>[key].<attribute>`: a declared data
    /// block, and an attribute its schema has.
    fn resolve_data(&mut self, prefix: &str, root: &Ident, steps: &[TraversalStep<'_>], span: Span, out: &mut Vec<Reference>) {
        let attr = |i: usize| match steps.get(i) {
            Some(TraversalStep::Attr(a)) => Some(*a),
            _ => None,
        };
        let (Some(provider), Some(dtype), Some(dname)) = (attr(0), attr(1), attr(2)) else {
            self.diags.push(
                Diagnostic::new("P2152", "incomplete data source reference")
                    .help("Reference a data source as `data.<provider>.<type>.<name>.<attribute>`, e.g. `data.aws.s3_bucket.existing.arn`, naming a `data <provider>.<type> <name> { … }` block.")
                    .label(span, "incomplete reference"),
            );
            return;
        };
        let address = format!("{prefix}{DATA_ROOT}.{}.{}.{}", provider.name, dtype.name, dname.name);
        let Some(data) = self.cfg.data.get(&address) else {
            let hint = if crate::diagnostic::suggestions_exhausted() { String::new() } else { suggestion(&address, self.cfg.data.keys().map(String::as_str)) };
            self.diags.push(
                Diagnostic::new("P2152", "reference to an undeclared data block")
                    .help(format!(
                        "No `data {}.{} {} {{ … }}` is declared in this {}.{hint}",
                        provider.name,
                        dtype.name,
                        dname.name,
                        if prefix.is_empty() { "project" } else { "module" }
                    ))
                    .label(root.span.to(dname.span), format!("`{address}` is not declared")),
            );
            return;
        };
        let mut rest = steps[3..].iter();
        let mut next = rest.next();
        if (data.decl.body.attr("count").is_some() || data.decl.body.attr("for_each").is_some()) && matches!(next, Some(TraversalStep::Index(_))) {
            next = rest.next();
        }
        if let (Some(TraversalStep::Attr(a)), Some(schema)) = (next, self.cfg.data_schema(self.registry, &address)) {
            if !schema.attributes.contains_key(a.name.as_str()) {
                let names: Vec<&str> = schema.attributes.keys().copied().collect();
                self.diags.push(
                    Diagnostic::new("P2006", "unsupported attribute")
                        .help(format!(
                            "The data source `{}.{}` has the attributes {}.{}",
                            provider.name,
                            dtype.name,
                            list_names(&names),
                            suggestion(&a.name, names.iter().copied())
                        ))
                        .label(a.span, format!("no attribute `{}`", a.name)),
                );
            }
        }
        out.push(Reference { target: DeclId::Data(address), span });
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn depends_on_error(span: Span) -> Diagnostic {
    Diagnostic::new("P2017", "invalid `depends_on`")
        .help("`depends_on` is a list of resource addresses, e.g. `depends_on = [random.password.db]`.")
        .label(span, "expected a list of addresses")
}

fn list_names(names: &[&str]) -> String {
    if names.is_empty() {
        return "nothing".into();
    }
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}
