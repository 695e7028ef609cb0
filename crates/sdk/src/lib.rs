//! The provider SDK: one narrow trait, requests, schemas, a registry, and
//! the retry/rate-limit policy every provider call goes through.
//!
//! Invariants: the engine never names a provider; it asks the [`Registry`]
//! for the one that owns `<provider>.<type>`. A provider knows nothing about
//! other providers, the language, or state storage. `schema` and `plan` are
//! pure (no IO) so that `validate` and `plan` never touch the outside world;
//! `read`/`create`/`update`/`delete`/`list` do the IO.

pub mod governed;

// Base modules under their old paths, so `crate::value::Map` reads as before.
use plinth_base::{diagnostic, types, value};

use crate::diagnostic::Diagnostic;
use crate::types::Type;
use crate::value::{Map, Value};
use async_trait::async_trait;
use indexmap::IndexMap;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct AttrSchema {
    pub ty: Type,
    pub required: bool,
    /// Set by the provider. With `optional` (or a default) it is also an
    /// input the configuration may set; otherwise it is computed only.
    pub computed: bool,
    /// Terraform's Optional + Computed: the configuration may set it, the
    /// provider computes it when it does not.
    pub optional: bool,
    /// Never displayed; stored encrypted when a key is configured.
    pub sensitive: bool,
    /// A change to this attribute replaces the object.
    pub forces_replacement: bool,
    /// Value used when the configuration leaves an optional attribute out.
    pub default: Option<Value>,
    pub description: &'static str,
    /// Computed from other attributes (a hash of the content…): never drift
    /// on its own, since its source is compared after normalisation.
    pub derived: bool,
    /// `(other attribute, value)`: the default instead of `default` when the
    /// other attribute's value is sensitive (`file.file`'s `mode` is 0600
    /// for sensitive content).
    pub sensitive_default: Option<(&'static str, Value)>,
    /// Set for a nested block type (Terraform providers' schemas): written
    /// as blocks in the resource body (`rule { … }`, repeatable), or
    /// assigned a list of objects. `ty` is the value the blocks make.
    pub block: Option<Arc<BlockSchema>>,
}

/// How a nested block type repeats (Terraform's nesting modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nesting {
    /// At most one block; the value is an object, null without the block.
    Single,
    /// Exactly one block's worth; the value is an object even without one.
    Group,
    /// Ordered blocks; the value is a list of objects.
    List,
    /// Unordered blocks; the value is a set (list) of objects.
    Set,
    /// Blocks keyed by a label; written only as a map of objects.
    Map,
}

/// The content of a nested block type: its attributes and blocks.
#[derive(Debug, Clone)]
pub struct BlockSchema {
    pub nesting: Nesting,
    pub min_items: u64,
    /// 0: no limit.
    pub max_items: u64,
    pub attributes: IndexMap<&'static str, AttrSchema>,
}

impl AttrSchema {
    /// An optional input with no default; the other kinds start from it.
    pub fn optional(ty: Type, description: &'static str) -> Self {
        AttrSchema {
            ty,
            required: false,
            computed: false,
            optional: false,
            sensitive: false,
            forces_replacement: false,
            default: None,
            description,
            derived: false,
            sensitive_default: None,
            block: None,
        }
    }
    pub fn required(ty: Type, description: &'static str) -> Self {
        AttrSchema { required: true, ..AttrSchema::optional(ty, description) }
    }
    pub fn computed(ty: Type, description: &'static str) -> Self {
        AttrSchema { computed: true, ..AttrSchema::optional(ty, description) }
    }
    pub fn default(mut self, v: Value) -> Self {
        self.default = Some(v);
        self
    }
    /// The default when `source`'s value is sensitive.
    pub fn default_when_sensitive(mut self, source: &'static str, v: Value) -> Self {
        self.sensitive_default = Some((source, v));
        self
    }
    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }
    pub fn forces_replacement(mut self) -> Self {
        self.forces_replacement = true;
        self
    }
    pub fn derived(mut self) -> Self {
        self.derived = true;
        self
    }
    /// A nested block type of `ty` (the value its blocks make).
    pub fn nested_block(ty: Type, block: BlockSchema, description: &'static str) -> Self {
        let required = block.min_items > 0 && matches!(block.nesting, Nesting::List | Nesting::Set | Nesting::Single);
        AttrSchema { required, block: Some(Arc::new(block)), ..AttrSchema::optional(ty, description) }
    }
    /// An input the user sets (as opposed to a purely computed attribute).
    pub fn is_input(&self) -> bool {
        self.required || !self.computed || self.optional || self.default.is_some()
    }
}

#[derive(Debug, Clone, Default)]
pub struct ResourceSchema {
    pub description: &'static str,
    pub attributes: IndexMap<&'static str, AttrSchema>,
}

impl ResourceSchema {
    pub fn new(description: &'static str) -> Self {
        ResourceSchema { description, attributes: IndexMap::default() }
    }
    pub fn attr(mut self, name: &'static str, schema: AttrSchema) -> Self {
        self.attributes.insert(name, schema);
        self
    }
}

#[derive(Debug, Clone, Default)]
pub struct ProviderSchema {
    /// Attributes of the `provider <name> { … }` block.
    pub config: IndexMap<&'static str, AttrSchema>,
    pub resources: IndexMap<&'static str, ResourceSchema>,
    /// Data sources (`data <provider>.<type> <name> { … }`): their
    /// arguments and the attributes they read.
    pub data_sources: IndexMap<&'static str, ResourceSchema>,
}

/// Identifies one object for a provider call.
#[derive(Debug, Clone)]
pub struct ObjectRef {
    /// Full instance address, e.g. `file.file.config["a"]`.
    pub address: String,
    /// Resource type within the provider, e.g. `file`.
    pub rtype: String,
    /// Idempotency token of the operation: providers that cannot derive a
    /// deterministic identity tag the object with it.
    pub token: String,
}

#[derive(Clone)]
pub struct ReadRequest {
    pub object: ObjectRef,
    /// Inputs as recorded (or as intended, when reconciling an unfinished create).
    pub inputs: Map,
    /// Attributes as recorded; None when reconciling an unfinished create.
    pub prior: Option<Map>,
}
#[derive(Clone)]
pub struct CreateRequest {
    pub object: ObjectRef,
    pub config: Map,
}
#[derive(Clone)]
pub struct UpdateRequest {
    pub object: ObjectRef,
    pub prior: Map,
    pub config: Map,
}
#[derive(Clone)]
pub struct DeleteRequest {
    pub object: ObjectRef,
    pub prior: Map,
}

/// Everything a provider knows about an object: its inputs and computed attributes.
pub type Observed = Map;

/// A configured provider. `Send + Sync`: calls run concurrently on tokio.
#[async_trait]
pub trait Provider: Send + Sync {
    fn schema_of(&self, rtype: &str) -> Option<&ResourceSchema>;
    /// Reads the real object back; Ok(None) when it no longer exists.
    async fn read(&self, req: ReadRequest) -> Result<Option<Observed>, Diagnostic>;
    async fn create(&self, req: CreateRequest) -> Result<Observed, Diagnostic>;
    async fn update(&self, req: UpdateRequest) -> Result<Observed, Diagnostic>;
    async fn delete(&self, req: DeleteRequest) -> Result<(), Diagnostic>;
    /// Objects of `rtype` that exist where the managed ones live but are
    /// not among them (drift's *unmanaged* objects). Providers that cannot
    /// list return nothing.
    async fn list(&self, _req: ListRequest) -> Result<Vec<String>, Diagnostic> {
        Ok(vec![])
    }
    /// What a managed object of `rtype` (recorded `inputs` and `attrs`)
    /// holds, named as `list` names objects (a file's path): drift reports
    /// a listed object as unmanaged only when no managed object, of any
    /// type or provider, claims it. Pure: no IO.
    fn claims(&self, _rtype: &str, _inputs: &Map, _attrs: &Map) -> Vec<String> {
        vec![]
    }
}

/// What a provider lists against: the inputs of every managed object of a type.
#[derive(Clone, Default)]
pub struct ListRequest {
    pub rtype: String,
    pub managed: Vec<Map>,
    /// The recorded attributes of the same objects, in the same order
    /// (computed ids a provider needs to tell its own objects apart).
    pub recorded: Vec<Map>,
    /// `(type, inputs)` of the same configured provider's managed objects
    /// of its other types, for providers whose types overlap (a Secret
    /// applied as a `kubernetes.manifest` is not an unmanaged secret).
    pub others: Vec<(String, Map)>,
}

/// Default planning: configured attributes as given, computed attributes
/// kept from the prior object on update, unknown on create.
pub fn default_plan(schema: Option<&ResourceSchema>, prior: Option<&Map>, config: &Map) -> Map {
    let mut planned = config.clone();
    if let Some(schema) = schema {
        for (name, attr) in &schema.attributes {
            if planned.get(*name).is_some_and(|v| !matches!(v, Value::Null)) {
                continue;
            }
            if attr.computed {
                let v = prior.and_then(|p| p.get(*name)).cloned().unwrap_or(Value::Unknown);
                planned.insert((*name).to_string(), v);
            }
        }
    }
    planned
}

/// One piece of content an update changes, for the plan's line diff:
/// `attribute["key"]` (`files["app.yaml"]`), before and after (None: absent,
/// or not text). `sensitive`: shown only as changed, never as text.
#[derive(Debug, Clone, PartialEq)]
pub struct ContentPreview {
    pub attribute: String,
    pub key: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub sensitive: bool,
}

/// Creates configured providers from `provider` blocks; knows every schema.
pub trait ProviderFactory: Send + Sync {
    fn name(&self) -> &'static str;
    fn schema(&self) -> &ProviderSchema;
    /// The planned attributes of an object, with `Value::Unknown` for what
    /// only apply can tell. Pure. `prior` is None for a create.
    fn plan(&self, rtype: &str, prior: Option<&Map>, config: &Map) -> Map {
        default_plan(self.schema().resources.get(rtype), prior, config)
    }
    /// [`plan`](Self::plan) for types whose planning can fail (a template
    /// error in `file.tree`); the engine calls this one. Pure but for
    /// reading what the configuration names (templates on disk).
    fn plan_checked(&self, rtype: &str, prior: Option<&Map>, config: &Map) -> Result<Map, Diagnostic> {
        Ok(self.plan(rtype, prior, config))
    }
    /// True for types whose computed attributes depend on more than the
    /// configuration (`file.tree`: the templates on disk). The engine then
    /// plans them even when their inputs are unchanged, and updates them
    /// when a planned computed attribute differs from the recorded one.
    fn plans_beyond_config(&self, _rtype: &str) -> bool {
        false
    }
    /// For the human plan of an update: the content behind attributes the
    /// plan shows only as hashes (`file.tree`: each rendered file whose
    /// hash changes, as it is on disk and as it will be rendered), so a
    /// reviewer sees line diffs. Reads what the configuration names; never
    /// stored, not part of a plan's fingerprint. Default: nothing.
    fn preview(&self, _rtype: &str, _prior: Option<&Map>, _config: &Map) -> Vec<ContentPreview> {
        vec![]
    }
    /// False for a Terraform provider that `plinth init` has not installed:
    /// its schema is not known, so its blocks and resources are not
    /// checked, and planning an instance of it fails.
    fn schema_known(&self) -> bool {
        true
    }
    /// True when the provider plans changes itself (Terraform providers'
    /// PlanResourceChange): the engine then calls [`plan_change`](Self::plan_change)
    /// for every create, update and replace instead of [`plan_checked`](Self::plan_checked).
    fn plans_remotely(&self, _rtype: &str) -> bool {
        false
    }
    /// The provider's own plan of a change. The one planning call that may
    /// talk to a process (the provider's plugin); never to the objects.
    fn plan_change(&self, req: ChangeRequest<'_>) -> Result<PlannedChange, Diagnostic> {
        Ok(PlannedChange { planned: self.plan(req.rtype, req.prior, req.config), requires_replace: vec![] })
    }
    /// Adopts an existing object by the provider's id for it (Terraform
    /// providers: ImportResourceState, then ReadResource): what would be
    /// recorded. `provider_config` is the evaluated provider block.
    fn import(&self, _provider_config: &Map, rtype: &str, _id: &str) -> Result<Observed, Diagnostic> {
        Err(Diagnostic::new("P6903", format!("`{}.{rtype}` cannot be imported by id", self.name()))
            .help("Import adopts objects of Terraform providers (`provider … { source = … }`); built-in providers' objects are adopted by applying a configuration that describes them."))
    }
    /// Reads a data source (Terraform providers: ReadDataSource): every
    /// attribute of its schema. Called while planning, once its
    /// configuration and the provider's are known.
    fn read_data(&self, req: DataRequest<'_>) -> Result<Map, Diagnostic> {
        Err(Diagnostic::new("P6905", format!("provider `{}` has no data source `{}`", self.name(), req.dtype))
            .help("Data sources come from Terraform providers' schemas."))
    }
    /// [`plan_change`](Self::plan_change) for several independent changes
    /// (the instances of one resource), answered in order; a provider may
    /// plan them concurrently.
    fn plan_changes(&self, reqs: &[ChangeRequest<'_>]) -> Vec<Result<PlannedChange, Diagnostic>> {
        reqs.iter().map(|r| self.plan_change(*r)).collect()
    }
    /// `config` holds the evaluated provider block (all known).
    fn configure(&self, config: &Map, ctx: &ProviderContext) -> Result<Arc<dyn Provider>, Diagnostic>;
}

/// A change for [`ProviderFactory::plan_change`].
#[derive(Clone, Copy)]
pub struct ChangeRequest<'a> {
    /// The provider configuration's key (`otc`, `otc.second`).
    pub provider_key: &'a str,
    /// Its evaluated block; None when it is not known before apply.
    pub provider_config: Option<&'a Map>,
    pub rtype: &'a str,
    /// Address, for messages.
    pub address: &'a str,
    /// The recorded attributes; None for a create.
    pub prior: Option<&'a Map>,
    pub config: &'a Map,
}

/// A data source to read, for [`ProviderFactory::read_data`].
#[derive(Clone, Copy)]
pub struct DataRequest<'a> {
    pub provider_key: &'a str,
    /// The evaluated provider block (known).
    pub provider_config: &'a Map,
    /// The data source type without the provider's prefix.
    pub dtype: &'a str,
    /// `data.<provider>.<type>.<name>[key]`, for messages.
    pub address: &'a str,
    pub config: &'a Map,
}

/// A provider's plan: the planned attributes (unknown where only apply can
/// tell) and the attributes whose change replaces the object.
pub struct PlannedChange {
    pub planned: Map,
    pub requires_replace: Vec<String>,
}

/// The attribute under which a provider keeps its bookkeeping in a recorded
/// object (Terraform providers' private data and schema version). Not a
/// valid name in expressions; the engine leaves it out of resource values
/// and plans show it nowhere.
pub const BOOKKEEPING: &str = "@tf";

/// What every provider may know of the run.
#[derive(Debug, Clone)]
pub struct ProviderContext {
    /// The project directory: relative paths in configurations resolve against it.
    pub project_dir: std::path::PathBuf,
}

/// Maps provider names to factories.
#[derive(Clone)]
pub struct Registry {
    factories: IndexMap<&'static str, Arc<dyn ProviderFactory>>,
}

impl Registry {
    pub fn empty() -> Registry {
        Registry { factories: IndexMap::default() }
    }
    pub fn register(&mut self, factory: Arc<dyn ProviderFactory>) {
        self.factories.insert(factory.name(), factory);
    }
    pub fn get(&self, name: &str) -> Option<&Arc<dyn ProviderFactory>> {
        self.factories.get(name)
    }
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.factories.keys().copied()
    }
    pub fn resource_schema(&self, provider: &str, rtype: &str) -> Option<&ResourceSchema> {
        self.get(provider)?.schema().resources.get(rtype)
    }

    /// Configures the provider `name` from an evaluated provider block:
    /// the engine's own settings (`max_retries`, `timeout`,
    /// `max_requests_per_second`) wrap the provider, the rest configures it.
    #[cfg(feature = "runtime")]
    pub fn configure(&self, name: &str, config: &Map, ctx: &ProviderContext) -> Result<Arc<dyn Provider>, Diagnostic> {
        let factory = self.get(name).ok_or_else(|| {
            Diagnostic::new("P6001", "unknown provider")
                .help(format!("This Plinth has no provider `{name}`; the providers are {}.", self.names().collect::<Vec<_>>().join(", ")))
        })?;
        // The provider sees plain values; what it says never shows the
        // sensitive ones (a token it repeats, a server echoing a header).
        let secrets = secrets_of(config);
        crate::diagnostic::register_secrets(secrets.iter().cloned());
        let (plain, _) = Value::Map(config.clone()).unmark();
        let Value::Map(plain) = plain else { return Err(Diagnostic::new("P6001", "invalid provider configuration")) };
        let (policy, rest) = governed::Policy::split(&plain).map_err(|d| d.redact(&secrets))?;
        let provider = factory.configure(&rest, ctx).map_err(|d| d.redact(&secrets))?;
        let provider = governed::Governed::wrap(provider, policy);
        Ok(if secrets.is_empty() { provider } else { Arc::new(Redacted { inner: provider, secrets }) })
    }
}

/// The texts of the sensitive values in a configuration (marked values),
/// for [`Diagnostic::redact`].
pub fn secrets_of(config: &Map) -> Vec<String> {
    let mut out = Vec::new();
    for v in config.values() {
        v.sensitive_texts(&mut out);
    }
    out.sort();
    out.dedup();
    out
}

/// The texts of a recorded object's sensitive attributes and inputs.
pub fn secrets_of_record(attrs: &Map, inputs: &Map, sensitive: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for name in sensitive {
        for m in [attrs, inputs] {
            if let Some(v) = m.get(name) {
                v.clone().mark_if(true).sensitive_texts(&mut out);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// A provider configured with sensitive values: every diagnostic it returns
/// is redacted of them.
#[cfg(feature = "runtime")]
struct Redacted {
    inner: Arc<dyn Provider>,
    secrets: Vec<String>,
}

#[cfg(feature = "runtime")]
#[async_trait]
impl Provider for Redacted {
    fn schema_of(&self, rtype: &str) -> Option<&ResourceSchema> {
        self.inner.schema_of(rtype)
    }
    async fn read(&self, req: ReadRequest) -> Result<Option<Observed>, Diagnostic> {
        self.inner.read(req).await.map_err(|d| d.redact(&self.secrets))
    }
    async fn create(&self, req: CreateRequest) -> Result<Observed, Diagnostic> {
        self.inner.create(req).await.map_err(|d| d.redact(&self.secrets))
    }
    async fn update(&self, req: UpdateRequest) -> Result<Observed, Diagnostic> {
        self.inner.update(req).await.map_err(|d| d.redact(&self.secrets))
    }
    async fn delete(&self, req: DeleteRequest) -> Result<(), Diagnostic> {
        self.inner.delete(req).await.map_err(|d| d.redact(&self.secrets))
    }
    async fn list(&self, req: ListRequest) -> Result<Vec<String>, Diagnostic> {
        self.inner.list(req).await.map_err(|d| d.redact(&self.secrets))
    }
}

/// A provider error without a source span (the engine adds the resource's).
pub fn provider_error(code: &'static str, message: impl Into<String>, help: impl Into<String>) -> Diagnostic {
    Diagnostic::new(code, message).help(help)
}
