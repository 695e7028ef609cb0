//! A Terraform provider as a Plinth provider.
//!
//! [`TerraformFactory`] is built from a provider block that names a
//! `source` and from the schema `plinth init` cached: validation needs no
//! process. The first plan or apply that needs the provider starts it (one
//! process per distinct provider configuration, shared by planning and
//! applying), validates and configures it, and every call after that goes to
//! the same process.
//!
//! Invariants:
//! - Resource types are the provider's without its prefix:
//!   `opentelekomcloud_cce_cluster_v3` is `otc.cce_cluster_v3` when the block
//!   is `provider otc { source = ".../opentelekomcloud" }`.
//! - Values sent are typed by the schema (every attribute present, absent
//!   list/set blocks as empty collections); the proposed new state is
//!   Terraform's: configuration, with the prior value of computed
//!   attributes the configuration leaves null.
//! - After apply, every attribute the plan knew must come back with the
//!   planned value (Terraform's consistency rule, P6900, naming the
//!   attribute); providers on the legacy SDK type system are held to it
//!   only where Terraform holds them (never: it only warns).
//! - The recorded object carries the provider's private data and the
//!   schema version under the attribute `@tf` (never shown: it is not a
//!   valid name in expressions, and the plan hides it); an object recorded
//!   under an older schema version is upgraded (UpgradeResourceState)
//!   before any other call.
//! - A create whose answer was lost (Plinth killed between intent and
//!   answer) cannot be found without an identity: reconciliation stops with
//!   P6901, naming the address and the import command, and guesses nothing.

use crate::cty::{self, Cty};
use crate::plugin::{self, Launch, Plugin};
use crate::schema::{Block, ProviderSchemas, Schema};
use async_trait::async_trait;
use base64::Engine as _;
use indexmap::IndexMap;
use plinth_base::diagnostic::Diagnostic;
use plinth_base::value::{Map, Value};
use plinth_sdk::{
    AttrSchema, ChangeRequest, CreateRequest, DataRequest, DeleteRequest, Observed, PlannedChange, Provider, ProviderContext, ProviderFactory, ProviderSchema,
    ReadRequest, ResourceSchema, UpdateRequest,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The attribute of a recorded object holding what Terraform keeps beside
/// the values: `{ private = "<base64>", schema_version = N }`.
pub const META: &str = plinth_sdk::BOOKKEEPING;
/// Provider-block attributes that are Plinth's, not the provider's.
pub const BLOCK_SETTINGS: &[&str] = &["source", "version", "pass_env"];

/// One resource type of the provider.
struct ResourceType {
    /// The provider's name for it (`workato_folder`).
    tf_name: String,
    schema: Schema,
    cty: Cty,
}

struct Shared {
    name: &'static str,
    binary: PathBuf,
    log: Option<PathBuf>,
    project_dir: Option<PathBuf>,
    schemas: ProviderSchemas,
    sdk: ProviderSchema,
    types: HashMap<String, Arc<ResourceType>>,
    data_types: HashMap<String, Arc<ResourceType>>,
    provider_cty: Cty,
    /// Running provider processes by configuration.
    running: Mutex<HashMap<String, Arc<Plugin>>>,
}

/// What `plinth init` found for a provider block: the installed binary and
/// its cached schema.
pub struct Installed {
    pub source: String,
    pub binary: PathBuf,
    pub schemas: ProviderSchemas,
    /// Where the provider's stderr goes.
    pub log: Option<PathBuf>,
    /// The project directory: the provider's working directory.
    pub project_dir: Option<PathBuf>,
}

pub struct TerraformFactory {
    shared: Arc<Shared>,
    /// Why the provider cannot run (not installed, schema not cached):
    /// validation skips its resources, planning one is this error.
    missing: Option<Diagnostic>,
}

impl TerraformFactory {
    /// A factory for the provider block `name` (its local name).
    pub fn new(name: &str, installed: Installed) -> Result<TerraformFactory, Diagnostic> {
        let name: &'static str = Box::leak(name.to_string().into_boxed_str());
        let prefix = format!("{}_", installed.source.rsplit('/').next().unwrap_or(name));
        let (resources, types) = kinds(name, &prefix, &installed.schemas.resources)?;
        let (data_sources, data_types) = kinds(name, &prefix, &installed.schemas.data_sources)?;
        let mut config = installed.schemas.provider.block.attributes_schema();
        let text = plinth_base::types::Type::String;
        config.insert("source", AttrSchema::optional(text.clone(), "where the provider is installed from (`namespace/type` or `host/namespace/type`)"));
        config.insert("version", AttrSchema::optional(text.clone(), "the provider's version constraint (`~> 1.36`)"));
        config.insert(
            "pass_env",
            AttrSchema::optional(
                plinth_base::types::Type::List(Box::new(text)),
                "environment variables the provider process may see (names, `PREFIX_*` patterns)",
            ),
        );
        for s in plinth_sdk::governed::SETTINGS {
            config.shift_remove(s);
        }
        let provider_cty = installed.schemas.provider.block.cty().map_err(|e| bad_schema(name, "provider", &e))?;
        Ok(TerraformFactory {
            shared: Arc::new(Shared {
                name,
                binary: installed.binary,
                log: installed.log,
                project_dir: installed.project_dir,
                sdk: ProviderSchema { config, resources, data_sources },
                data_types,
                schemas: installed.schemas,
                types,
                provider_cty,
                running: Mutex::new(HashMap::new()),
            }),
            missing: None,
        })
    }

    /// A provider block whose provider is not installed (or whose schema
    /// cache is gone): `why` is what planning any of its resources says.
    pub fn missing(name: &str, why: Diagnostic) -> TerraformFactory {
        let name: &'static str = Box::leak(name.to_string().into_boxed_str());
        let empty = Schema { version: 0, block: Block::default() };
        TerraformFactory {
            shared: Arc::new(Shared {
                name,
                binary: PathBuf::new(),
                log: None,
                project_dir: None,
                schemas: ProviderSchemas { provider: empty, resources: Default::default(), data_sources: Default::default(), plan_destroy: false },
                sdk: ProviderSchema::default(),
                types: HashMap::new(),
                data_types: HashMap::new(),
                provider_cty: Cty::Object(vec![]),
                running: Mutex::new(HashMap::new()),
            }),
            missing: Some(why),
        }
    }
}

/// Resource (or data source) types by their name without the provider's
/// prefix: the SDK's schemas, and what the wire needs of each.
type Kinds = (IndexMap<&'static str, ResourceSchema>, HashMap<String, Arc<ResourceType>>);

fn kinds(name: &str, prefix: &str, schemas: &std::collections::BTreeMap<String, Schema>) -> Result<Kinds, Diagnostic> {
    let mut sdk = IndexMap::default();
    let mut types = HashMap::new();
    for (tf_name, schema) in schemas {
        let short = tf_name.strip_prefix(prefix).filter(|s| !s.is_empty()).unwrap_or(tf_name);
        let cty = schema.block.cty().map_err(|e| bad_schema(name, tf_name, &e))?;
        let short: &'static str = Box::leak(short.to_string().into_boxed_str());
        sdk.insert(short, schema.resource_schema());
        types.insert(short.to_string(), Arc::new(ResourceType { tf_name: tf_name.clone(), schema: schema.clone(), cty }));
    }
    Ok((sdk, types))
}

fn bad_schema(name: &str, what: &str, e: &str) -> Diagnostic {
    Diagnostic::new("P7005", format!("provider `{name}`: the schema of `{what}` is not understood"))
        .help(format!("{e}. Run `plinth init` again; if it persists, the provider uses a type Plinth does not know."))
}

impl Shared {
    fn rtype(&self, rtype: &str) -> Result<Arc<ResourceType>, Diagnostic> {
        self.types.get(rtype).cloned().ok_or_else(|| {
            Diagnostic::new("P6001", format!("provider `{}` has no resource type `{rtype}`", self.name))
                .help("Run `plinth init` to refresh the provider's schema.")
        })
    }

    /// The provider process for `config` (the provider's own attributes
    /// and Plinth's block settings), started and configured on first use.
    fn plugin_for(self: &Arc<Self>, config: &Map) -> Result<Arc<Plugin>, Diagnostic> {
        let (settings, own) = split_settings(config);
        let key = fingerprint(&own, &settings);
        if let Some(p) = self.running.lock().ok().and_then(|r| r.get(&key).cloned()) {
            if p.alive() {
                return Ok(p);
            }
        }
        let mut secrets = Vec::new();
        for v in config.values() {
            v.sensitive_texts(&mut secrets);
        }
        // Values marked sensitive by the schema too.
        for a in &self.schemas.provider.block.attributes {
            if a.sensitive {
                if let Some(Value::String(s)) = own.get(&a.name).map(Value::peel) {
                    secrets.push(s.clone());
                }
            }
        }
        plinth_base::diagnostic::register_secrets(secrets.iter().cloned());
        let env = pass_env(&settings);
        let plugin = Arc::new(Plugin::start(Launch {
            name: self.name.to_string(),
            binary: self.binary.clone(),
            env,
            log: self.log.clone(),
            secrets: secrets.clone(),
            cwd: self.project_dir.clone(),
        })?);
        let value = conform(&Value::Map(own), &self.schemas.provider.block);
        let ty = self.provider_cty.clone();
        let p = plugin.clone();
        plugin::block_on(async move { p.configure(&value, &ty).await }).map_err(|d| d.redact(&secrets))?;
        if let Ok(mut r) = self.running.lock() {
            r.insert(key, plugin.clone());
        }
        Ok(plugin)
    }
}

/// Separates the block's Plinth settings (`source`, `version`, `pass_env`)
/// from the provider's own configuration. The engine's retry policy is
/// neither: the planner passes the whole block, the registry passes it
/// without the policy, and both must find the same process.
fn split_settings(config: &Map) -> (Map, Map) {
    let mut settings = Map::default();
    let mut own = Map::default();
    for (k, v) in config {
        if BLOCK_SETTINGS.contains(&k.as_str()) {
            settings.insert(k.clone(), v.clone());
        } else if !plinth_sdk::governed::SETTINGS.contains(&k.as_str()) {
            own.insert(k.clone(), v.clone());
        }
    }
    (settings, own)
}

fn fingerprint(own: &Map, settings: &Map) -> String {
    use sha2::{Digest, Sha256};
    let text = format!("{}\n{}", cty::to_json(&Value::Map(own.clone())), cty::to_json(&Value::Map(settings.clone())));
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The variables of Plinth's environment that `pass_env` names (exact
/// names, or `PREFIX_*`).
fn pass_env(settings: &Map) -> Vec<(String, String)> {
    let Some(Value::List(patterns)) = settings.get("pass_env").map(Value::peel) else { return vec![] };
    let patterns: Vec<String> = patterns.iter().filter_map(|p| p.peel().as_str().map(str::to_string)).collect();
    std::env::vars()
        .filter(|(k, _)| {
            patterns.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => k.starts_with(prefix),
                None => k == p,
            })
        })
        .collect()
}

/// `value` shaped as the block's type: every attribute present (null when
/// unset), absent list and set blocks as empty lists, absent map blocks as
/// empty maps, group blocks as objects. Sensitive marks are removed.
pub fn conform(value: &Value, block: &Block) -> Value {
    let empty = Map::default();
    let m = match value.peel() {
        Value::Map(m) => m,
        Value::Unknown => return Value::Unknown,
        _ => &empty,
    };
    let mut out = Map::with_capacity_and_hasher(block.attributes.len() + block.blocks.len(), Default::default());
    for a in &block.attributes {
        let v = m.get(&a.name).map(|v| v.clone().unmark().0).unwrap_or(Value::Null);
        out.insert(a.name.clone(), v);
    }
    for b in &block.blocks {
        let v = m.get(&b.name).map(Value::peel).cloned().unwrap_or(Value::Null);
        let v = match (b.nesting.as_str(), v) {
            (_, Value::Unknown) => Value::Unknown,
            ("list" | "set", Value::Null) => Value::List(vec![]),
            ("list" | "set", Value::List(items)) => Value::List(items.iter().map(|i| conform(i, &b.block)).collect()),
            ("map", Value::Null) => Value::Map(Map::default()),
            ("map", Value::Map(items)) => Value::Map(items.iter().map(|(k, i)| (k.clone(), conform(i, &b.block))).collect()),
            // Blocks written in a provider block arrive as a list.
            ("single" | "group", Value::List(items)) => match items.first() {
                Some(first) => conform(first, &b.block),
                None if b.nesting == "group" => conform(&Value::Null, &b.block),
                None => Value::Null,
            },
            ("group", v) => conform(&v, &b.block),
            (_, Value::Null) => Value::Null,
            (_, v) => conform(&v, &b.block),
        };
        out.insert(b.name.clone(), v);
    }
    Value::Map(out)
}

/// Terraform's proposed new state: the configuration, with the prior value
/// for computed attributes the configuration leaves null; nested blocks
/// matched by position (lists), key (maps) or not at all (sets).
pub fn proposed_new(block: &Block, prior: &Value, config: &Value) -> Value {
    let (Value::Map(c), p) = (config, prior) else { return config.clone() };
    let empty = Map::default();
    let p = match p {
        Value::Map(p) => p,
        _ => &empty,
    };
    let mut out = c.clone();
    for a in &block.attributes {
        if a.computed && matches!(c.get(&a.name), None | Some(Value::Null)) {
            out.insert(a.name.clone(), p.get(&a.name).cloned().unwrap_or(Value::Null));
        }
    }
    for b in &block.blocks {
        let (cv, pv) = (c.get(&b.name).unwrap_or(&Value::Null), p.get(&b.name).unwrap_or(&Value::Null));
        let v = match (b.nesting.as_str(), cv) {
            ("list", Value::List(items)) => {
                let prior_items: &[Value] = match pv {
                    Value::List(ps) => ps,
                    _ => &[],
                };
                Value::List(items.iter().enumerate().map(|(i, item)| proposed_new(&b.block, prior_items.get(i).unwrap_or(&Value::Null), item)).collect())
            }
            ("set", Value::List(items)) => Value::List(items.iter().map(|item| proposed_new(&b.block, &Value::Null, item)).collect()),
            ("map", Value::Map(items)) => {
                let prior_items = match pv {
                    Value::Map(ps) => Some(ps),
                    _ => None,
                };
                Value::Map(
                    items
                        .iter()
                        .map(|(k, item)| (k.clone(), proposed_new(&b.block, prior_items.and_then(|ps| ps.get(k)).unwrap_or(&Value::Null), item)))
                        .collect(),
                )
            }
            ("single" | "group", Value::Map(_)) => proposed_new(&b.block, pv, cv),
            _ => cv.clone(),
        };
        out.insert(b.name.clone(), v);
    }
    Value::Map(out)
}

/// The first attribute whose known planned value the provider did not
/// keep: `(path, planned, applied)`.
pub fn inconsistency(planned: &Value, applied: &Value, path: &mut Vec<String>) -> Option<(String, Value, Value)> {
    match (planned, applied) {
        (Value::Unknown, _) => None,
        (Value::Map(p), Value::Map(a)) => {
            for (k, pv) in p {
                path.push(k.clone());
                let found = inconsistency(pv, a.get(k).unwrap_or(&Value::Null), path);
                path.pop();
                if found.is_some() {
                    return found;
                }
            }
            None
        }
        (Value::List(p), Value::List(a)) if p.len() == a.len() => {
            for (i, (pv, av)) in p.iter().zip(a).enumerate() {
                path.push(format!("[{i}]"));
                let found = inconsistency(pv, av, path);
                path.pop();
                if found.is_some() {
                    return found;
                }
            }
            None
        }
        (p, a) if p == a => None,
        (p, a) => Some((crate::rpc::path_text(path), p.clone(), a.clone())),
    }
}

/// The recorded object's values and its Terraform metadata.
fn split_meta(attrs: &Map) -> (Map, Vec<u8>, Option<i64>) {
    let mut values = attrs.clone();
    let meta = values.shift_remove(META);
    let (mut private, mut version) = (Vec::new(), None);
    if let Some(Value::Map(m)) = meta.as_ref().map(Value::peel) {
        if let Some(Value::String(p)) = m.get("private").map(Value::peel) {
            private = base64::engine::general_purpose::STANDARD.decode(p).unwrap_or_default();
        }
        version = m.get("schema_version").and_then(|v| v.peel().as_i64());
    }
    (values, private, version)
}

fn with_meta(state: Value, private: &[u8], version: i64) -> Map {
    let mut m = match state {
        Value::Map(m) => m,
        _ => Map::default(),
    };
    let mut meta = Map::default();
    meta.insert("private".into(), Value::String(base64::engine::general_purpose::STANDARD.encode(private)));
    meta.insert("schema_version".into(), Value::Int(version));
    m.insert(META.into(), Value::Map(meta));
    m
}

impl ProviderFactory for TerraformFactory {
    fn name(&self) -> &'static str {
        self.shared.name
    }
    fn schema(&self) -> &ProviderSchema {
        &self.shared.sdk
    }
    fn plans_remotely(&self, _rtype: &str) -> bool {
        true
    }
    fn schema_known(&self) -> bool {
        self.missing.is_none()
    }
    fn plan_change(&self, req: ChangeRequest<'_>) -> Result<PlannedChange, Diagnostic> {
        match self.plan_job(req)? {
            Job::Ready(planned) => Ok(planned),
            Job::Remote(job) => plugin::block_on(job.run()),
        }
    }
    fn plan_changes(&self, reqs: &[ChangeRequest<'_>]) -> Vec<Result<PlannedChange, Diagnostic>> {
        // The provider answers several plans at once, as under Terraform
        // (10 in flight): the planner's instances are independent.
        let mut out: Vec<Option<Result<PlannedChange, Diagnostic>>> = Vec::with_capacity(reqs.len());
        let mut remote = Vec::new();
        for (i, req) in reqs.iter().enumerate() {
            match self.plan_job(*req) {
                Ok(Job::Ready(p)) => out.push(Some(Ok(p))),
                Ok(Job::Remote(job)) => {
                    out.push(None);
                    remote.push((i, job));
                }
                Err(d) => out.push(Some(Err(d))),
            }
        }
        let answers = plugin::block_on(async move {
            let limit = Arc::new(tokio::sync::Semaphore::new(PLAN_CONCURRENCY));
            let mut set = tokio::task::JoinSet::new();
            for (i, job) in remote {
                let limit = limit.clone();
                set.spawn(async move {
                    let _permit = limit.acquire_owned().await;
                    (i, job.run().await)
                });
            }
            let mut answers = Vec::new();
            while let Some(done) = set.join_next().await {
                if let Ok(answer) = done {
                    answers.push(answer);
                }
            }
            answers
        });
        for (i, answer) in answers {
            out[i] = Some(answer);
        }
        out.into_iter()
            .map(|o| {
                o.unwrap_or_else(|| Err(Diagnostic::new("P7002", "a provider plan was lost").help("The planning task ended without an answer; plan again.")))
            })
            .collect()
    }
    fn import(&self, provider_config: &Map, rtype: &str, id: &str) -> Result<Observed, Diagnostic> {
        if let Some(why) = &self.missing {
            return Err(why.clone());
        }
        import(self, provider_config, rtype, id)
    }
    fn read_data(&self, req: DataRequest<'_>) -> Result<Map, Diagnostic> {
        if let Some(why) = &self.missing {
            return Err(why.clone());
        }
        let shared = self.shared.clone();
        let Some(dt) = shared.data_types.get(req.dtype).cloned() else {
            return Err(Diagnostic::new("P6905", format!("provider `{}` has no data source `{}`", shared.name, req.dtype))
                .help("Run `plinth init` to refresh the provider's schema."));
        };
        let plugin = shared.plugin_for(req.provider_config)?;
        let config = conform(&Value::Map(req.config.clone()), &dt.schema.block);
        let address = req.address.to_string();
        let value = plugin::block_on(async move {
            plugin.validate_data(&dt.tf_name, &config, &dt.cty).await?;
            plugin.read_data(&dt.tf_name, &dt.cty, &config).await
        })
        .map_err(|d| in_address(d, &address))?;
        Ok(match value {
            Value::Map(m) => m,
            _ => Map::default(),
        })
    }
    fn configure(&self, config: &Map, _ctx: &ProviderContext) -> Result<Arc<dyn Provider>, Diagnostic> {
        if let Some(why) = &self.missing {
            return Err(why.clone());
        }
        let plugin = self.shared.plugin_for(config)?;
        Ok(Arc::new(Configured { shared: self.shared.clone(), plugin }))
    }
}

/// Plans in flight at once per provider process (Terraform's default
/// parallelism).
const PLAN_CONCURRENCY: usize = 10;

/// A change to plan: answered without the provider (its configuration is
/// not known yet, so nothing is asked of it), or a call to make.
enum Job {
    Ready(PlannedChange),
    Remote(RemotePlan),
}

/// One PlanResourceChange with everything it needs, owned (it runs on the
/// plugin runtime, with others).
struct RemotePlan {
    plugin: Arc<Plugin>,
    rt: Arc<ResourceType>,
    address: String,
    prior: Option<Map>,
    config: Value,
}

impl RemotePlan {
    async fn run(self) -> Result<PlannedChange, Diagnostic> {
        let RemotePlan { plugin, rt, address, prior, config } = self;
        let prior_meta = prior.as_ref().and_then(|p| p.get(META)).cloned();
        let planned = async {
            let (prior_value, private) = prior_state(&plugin, &rt, prior.as_ref()).await?;
            plugin.validate_resource(&rt.tf_name, &config, &rt.cty).await?;
            let proposed = proposed_new(&rt.schema.block, &prior_value, &config);
            plugin.plan(&rt.tf_name, &rt.cty, &prior_value, &proposed, &config, &private).await
        }
        .await
        .map_err(|d| in_address(d, &address))?;
        let mut map = match planned.planned {
            Value::Map(m) => m,
            _ => Map::default(),
        };
        // The attributes the provider says force replacement and whose value
        // changes (as Terraform decides): those with a known new value are
        // the reason shown; an unknown one (an id) only when none is known.
        let prior_values = prior.unwrap_or_default();
        let mut known = Vec::new();
        let mut unknown = Vec::new();
        for name in planned.requires_replace.iter().filter_map(|p| p.first()) {
            let new = map.get(name).unwrap_or(&Value::Null);
            let old = prior_values.get(name).unwrap_or(&Value::Null);
            if known.contains(name) || unknown.contains(name) {
                continue;
            }
            if new.is_unknown_deep() {
                unknown.push(name.clone());
            } else if new != old {
                known.push(name.clone());
            }
        }
        let requires_replace = if known.is_empty() { unknown } else { known };
        if let Some(meta) = prior_meta {
            map.insert(META.into(), meta);
        }
        Ok(PlannedChange { planned: map, requires_replace })
    }
}

impl TerraformFactory {
    fn plan_job(&self, req: ChangeRequest<'_>) -> Result<Job, Diagnostic> {
        if let Some(why) = &self.missing {
            return Err(why.clone());
        }
        let shared = self.shared.clone();
        let rt = shared.rtype(req.rtype)?;
        // A configuration known only after apply: the provider is
        // configured then; until then every computed attribute is unknown.
        let Some(provider_config) = req.provider_config.filter(|c| !Value::Map((*c).clone()).is_unknown_deep()) else {
            let mut planned = plinth_sdk::default_plan(shared.sdk.resources.get(req.rtype), req.prior, req.config);
            for (name, attr) in shared.sdk.resources.get(req.rtype).map(|s| s.attributes.iter()).into_iter().flatten() {
                if attr.computed && planned.get(*name).is_none_or(|v| matches!(v, Value::Null)) {
                    planned.insert((*name).to_string(), Value::Unknown);
                }
            }
            planned.shift_remove(META);
            return Ok(Job::Ready(PlannedChange { planned, requires_replace: vec![] }));
        };
        let plugin = shared.plugin_for(provider_config)?;
        let config = conform(&Value::Map(req.config.clone()), &rt.schema.block);
        Ok(Job::Remote(RemotePlan { plugin, rt, address: req.address.to_string(), prior: req.prior.cloned(), config }))
    }
}

fn in_address(d: Diagnostic, address: &str) -> Diagnostic {
    let message = format!("{address}: {}", d.message);
    Diagnostic { message, ..d }
}

/// The recorded state as the current schema has it (upgraded when it was
/// recorded under another schema version), and its private data.
async fn prior_state(plugin: &Plugin, rt: &ResourceType, prior: Option<&Map>) -> Result<(Value, Vec<u8>), Diagnostic> {
    let Some(prior) = prior else { return Ok((Value::Null, vec![])) };
    let (values, private, version) = split_meta(prior);
    let current = rt.schema.version;
    let value = match version {
        Some(v) if v != current => {
            let raw = serde_json::to_vec(&cty::to_json(&Value::Map(values))).unwrap_or_default();
            plugin.upgrade(&rt.tf_name, &rt.cty, v, raw).await?
        }
        _ => conform(&Value::Map(values), &rt.schema.block),
    };
    Ok((value, private))
}

/// A configured Terraform provider (one process).
struct Configured {
    shared: Arc<Shared>,
    plugin: Arc<Plugin>,
}

impl Configured {
    async fn change(&self, rtype: &str, address: &str, prior: Option<&Map>, config: Option<&Map>) -> Result<Option<Observed>, Diagnostic> {
        let rt = self.shared.rtype(rtype)?;
        let plugin = self.plugin.clone();
        let prior = prior.cloned();
        let config = config.map(|c| conform(&Value::Map(c.clone()), &rt.schema.block)).unwrap_or(Value::Null);
        let plan_destroy = self.shared.schemas.plan_destroy;
        let address = address.to_string();
        plugin::run(async move {
            let (prior, private) = prior_state(&plugin, &rt, prior.as_ref()).await?;
            let (planned, planned_private, legacy) = if matches!(config, Value::Null) && !plan_destroy {
                (Value::Null, private.clone(), false)
            } else {
                let proposed = if matches!(config, Value::Null) { Value::Null } else { proposed_new(&rt.schema.block, &prior, &config) };
                let p = plugin.plan(&rt.tf_name, &rt.cty, &prior, &proposed, &config, &private).await?;
                (p.planned, p.private, p.legacy_type_system)
            };
            let applied = plugin.apply(&rt.tf_name, &rt.cty, &prior, &planned, &config, &planned_private).await?;
            if matches!(config, Value::Null) {
                return Ok(None);
            }
            if !(legacy || applied.legacy_type_system) {
                if let Some((path, want, got)) = inconsistency(&planned, &applied.new_state, &mut Vec::new()) {
                    let sensitive = rt.schema.block.sensitive_names().iter().any(|s| path == *s || path.starts_with(&format!("{s}.")) || path.starts_with(&format!("{s}[")));
                    let shown = |v: &Value| if sensitive { "(sensitive)".to_string() } else { v.to_string() };
                    return Err(Diagnostic::new("P6900", format!("provider `{}` produced an inconsistent result for `{address}`", plugin.name)).help(format!(
                        "After apply, `{path}` is {} but the plan said {}. The object was changed and is recorded as the provider returned it; this is a bug in the provider, which should be reported to its authors.",
                        shown(&got),
                        shown(&want)
                    )));
                }
            }
            if matches!(applied.new_state, Value::Null) {
                return Err(Diagnostic::new("P6900", format!("provider `{}` returned no object for `{address}`", plugin.name))
                    .help("The provider's apply succeeded but returned nothing; this is a bug in the provider."));
            }
            Ok(Some(with_meta(applied.new_state, &applied.private, rt.schema.version)))
        })
        .await
    }
}

#[async_trait]
impl Provider for Configured {
    fn schema_of(&self, rtype: &str) -> Option<&ResourceSchema> {
        self.shared.sdk.resources.get(rtype)
    }
    async fn read(&self, req: ReadRequest) -> Result<Option<Observed>, Diagnostic> {
        let Some(prior) = req.prior else {
            return Err(Diagnostic::new("P6901", format!("cannot tell whether `{}` was created", req.object.address)).help(format!(
                "A run was stopped after asking provider `{}` to create `{}` and before its answer was recorded. Terraform providers have no idempotency token, so Plinth cannot find the object without its id. Look for it in the provider's API: if it exists, adopt it with `plinth import '{}' <id>`; if it does not, `plinth state rm '{}'` forgets the unfinished create.",
                self.shared.name, req.object.address, req.object.address, req.object.address
            )));
        };
        let rt = self.shared.rtype(&req.object.rtype)?;
        let plugin = self.plugin.clone();
        plugin::run(async move {
            let (prior, private) = prior_state(&plugin, &rt, Some(&prior)).await?;
            let version = rt.schema.version;
            Ok(plugin.read(&rt.tf_name, &rt.cty, &prior, &private).await?.map(|(state, private)| with_meta(state, &private, version)))
        })
        .await
    }
    async fn create(&self, req: CreateRequest) -> Result<Observed, Diagnostic> {
        let out = self.change(&req.object.rtype, &req.object.address, None, Some(&req.config)).await?;
        Ok(out.unwrap_or_default())
    }
    async fn update(&self, req: UpdateRequest) -> Result<Observed, Diagnostic> {
        let out = self.change(&req.object.rtype, &req.object.address, Some(&req.prior), Some(&req.config)).await?;
        Ok(out.unwrap_or_default())
    }
    async fn delete(&self, req: DeleteRequest) -> Result<(), Diagnostic> {
        self.change(&req.object.rtype, &req.object.address, Some(&req.prior), None).await.map(|_| ())
    }
}

/// Imports the object `id` of `rtype`: the state the provider reads back
/// (ImportResourceState, then ReadResource), as it would be recorded.
pub fn import(factory: &TerraformFactory, provider_config: &Map, rtype: &str, id: &str) -> Result<Observed, Diagnostic> {
    let shared = factory.shared.clone();
    let rt = shared.rtype(rtype)?;
    let plugin = shared.plugin_for(provider_config)?;
    let id = id.to_string();
    let types: HashMap<String, Cty> = shared.types.values().map(|t| (t.tf_name.clone(), t.cty.clone())).collect();
    plugin::block_on(async move {
        let found = plugin.import(&rt.tf_name, &id, &|t| types.get(t).cloned()).await?;
        let Some(first) = found.into_iter().find(|i| i.type_name == rt.tf_name) else {
            return Err(Diagnostic::new("P6902", format!("provider `{}` imported nothing for `{id}`", plugin.name))
                .help("Check the id: the provider found no object of this type with it."));
        };
        match plugin.read(&rt.tf_name, &rt.cty, &first.state, &first.private).await? {
            Some((state, private)) => Ok(with_meta(state, &private, rt.schema.version)),
            None => Err(Diagnostic::new("P6902", format!("cannot import non-existent object `{id}`")).help("The provider found no object with this id.")),
        }
    })
}

/// Where `plinth init` caches the schema of the provider package in
/// `package_dir` (`…/VERSION/OS_ARCH`): beside it, not in it, so the
/// package's hash stays the one the lock pins.
pub fn schema_cache_path(package_dir: &std::path::Path) -> PathBuf {
    let mut name = package_dir.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".schema.json");
    package_dir.with_file_name(name)
}

/// Starts the provider `binary`, asks its schema and writes it to `cache`,
/// so later runs validate with no process.
pub fn cache_schema(name: &str, binary: &std::path::Path, cache: &std::path::Path) -> Result<ProviderSchemas, Diagnostic> {
    let plugin = Arc::new(Plugin::start(Launch { name: name.to_string(), binary: binary.to_path_buf(), env: vec![], log: None, secrets: vec![], cwd: None })?);
    let p = plugin.clone();
    let schemas = plugin::block_on(async move { p.schema().await })?;
    plugin.stop();
    let text = serde_json::to_vec(&schemas).map_err(|e| Diagnostic::new("P7014", "cannot write the provider's schema cache").help(e.to_string()))?;
    plinth_base::fsutil::write_atomic(cache, &text, 0o644)
        .map_err(|e| Diagnostic::new("P7014", "cannot write the provider's schema cache").help(format!("{}: {e}", cache.display())))?;
    Ok(schemas)
}

/// The cached schema of an installed provider.
pub fn cached_schema(cache: &std::path::Path) -> Result<ProviderSchemas, Diagnostic> {
    let text = std::fs::read(cache).map_err(|e| {
        Diagnostic::new("P7015", "the provider's schema is not cached")
            .help(format!("{}: {e}. Run `plinth init`: it installs providers and caches their schemas.", cache.display()))
    })?;
    serde_json::from_slice(&text).map_err(|e| {
        Diagnostic::new("P7015", "the provider's schema cache is unreadable").help(format!("{}: {e}. Run `plinth init` to write it again.", cache.display()))
    })
}
