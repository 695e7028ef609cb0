//! `exec`: external providers. Any executable that speaks the JSON protocol
//! of `docs/providers/exec.md` (version 1) manages objects for Plinth: one
//! process per operation, ONE JSON request on stdin (then closed), ONE JSON
//! answer on stdout, stderr captured for diagnostics.
//!
//! The resource schema is generic (`type`, `config`, computed `id`, `state`)
//! so that `validate` and `plan` never run anything. Programs are started
//! directly (argv, never a shell), in the project directory, and killed when
//! the call is dropped.
//!
//! Reads outside an apply (refresh, drift, reconciling a killed run) get the
//! provider block evaluated from recorded state, like every other provider.

mod run;

use super::*;
use serde_json::{json, Value as Json};
use std::path::{Path, PathBuf};

/// The protocol version this Plinth speaks.
pub const PROTOCOL: i64 = 1;

pub struct ExecFactory {
    schema: ProviderSchema,
}

impl ExecFactory {
    pub fn new() -> Self {
        let resource = ResourceSchema::new("An object managed by an external program speaking the exec protocol.")
            .attr("type", AttrSchema::required(Type::String, "the external provider's resource type").forces_replacement())
            .attr("config", AttrSchema::optional(Type::Any, "passed to the program as is").default(Value::Map(Map::default())))
            .attr("id", AttrSchema::computed(Type::String, "the identity the program gave the object"))
            .attr("state", AttrSchema::computed(Type::Any, "whatever the program reports about the object"));
        let mut schema = ProviderSchema::default();
        schema.config.insert(
            "command",
            AttrSchema::required(Type::List(Box::new(Type::String)), "the program and its arguments; relative paths resolve against the project directory"),
        );
        schema.config.insert("env", AttrSchema::optional(Type::Map(Box::new(Type::String)), "extra environment variables for the program"));
        schema.resources.insert("resource", resource);
        ExecFactory { schema }
    }
}

impl Default for ExecFactory {
    fn default() -> Self {
        Self::new()
    }
}

impl ProviderFactory for ExecFactory {
    fn name(&self) -> &'static str {
        "exec"
    }
    fn schema(&self) -> &ProviderSchema {
        &self.schema
    }
    fn plan(&self, rtype: &str, prior: Option<&Map>, config: &Map) -> Map {
        let mut planned = default_plan(self.schema.resources.get(rtype), prior, config);
        // Only the program knows what an update makes of its state.
        if let Some(prior) = prior {
            let same = |k: &str| match (prior.get(k), config.get(k)) {
                (Some(a), Some(b)) => a.canonical() == b.canonical(),
                (None, None) => true,
                _ => false,
            };
            if !same("type") || !same("config") {
                planned.insert("state".into(), Value::Unknown);
            }
        }
        planned
    }
    fn configure(&self, config: &Map, ctx: &ProviderContext) -> Result<Arc<dyn Provider>, Diagnostic> {
        let spec = match config.get("command").map(Value::peel) {
            Some(Value::Null) | None => None,
            Some(_) => Some(Spec::from_config(config, &ctx.project_dir)?),
        };
        Ok(Arc::new(ExecProvider { schema: self.schema.clone(), spec }))
    }
}

/// How to run the program.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    pub dir: PathBuf,
}

impl Spec {
    fn from_config(config: &Map, dir: &Path) -> Result<Spec, Diagnostic> {
        let bad = || {
            provider_error(
                "P6707",
                "invalid exec command",
                "Give `command` as a non-empty list of strings, e.g. [\"python3\", \"providers/notes.py\"]; it is run directly, without a shell.",
            )
        };
        let Some(Value::List(items)) = config.get("command").map(Value::peel) else { return Err(bad()) };
        let command: Vec<String> = items.iter().map(|v| v.peel().as_str().map(str::to_string)).collect::<Option<_>>().ok_or_else(bad)?;
        if command.first().is_none_or(|c| c.is_empty()) {
            return Err(bad());
        }
        let mut env = Vec::new();
        if let Some(Value::Map(m)) = config.get("env").map(Value::peel) {
            for (k, v) in m {
                let v = match v.peel() {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                env.push((k.clone(), v));
            }
        }
        Ok(Spec { command, env, dir: dir.to_path_buf() })
    }
}

struct ExecProvider {
    schema: ProviderSchema,
    spec: Option<Spec>,
}

fn json_of(map: Option<&Map>, key: &str) -> Json {
    map.and_then(|m| m.get(key)).map(Value::to_json).unwrap_or(Json::Null)
}

impl ExecProvider {
    fn spec(&self) -> Result<&Spec, Diagnostic> {
        self.spec.as_ref().ok_or_else(|| {
            provider_error(
                "P6708",
                "the exec provider has no command",
                "Declare `provider exec { command = [\"python3\", \"my-provider.py\"] }`: it tells Plinth which program manages these objects.",
            )
        })
    }

    fn request(&self, operation: &str, object: &ObjectRef, rtype: &Json, id: Json, config: Json, prior: Json) -> Json {
        json!({
            "protocol": PROTOCOL,
            "operation": operation,
            "type": rtype,
            "id": id,
            "config": config,
            "prior": prior,
            "token": object.token,
            "address": object.address,
        })
    }

    /// Builds what Plinth records from an answer.
    fn observed(&self, rtype: &Json, config: &Json, answer: &serde_json::Map<String, Json>, fallback_id: &Json, op: &str) -> Result<Observed, Diagnostic> {
        let id = match answer.get("id").filter(|v| !v.is_null()).unwrap_or(fallback_id) {
            Json::String(s) => s.clone(),
            Json::Number(n) => n.to_string(),
            _ => return Err(run::bad_answer(op, "it has no \"id\" (a string)")),
        };
        let mut out = Map::default();
        out.insert("type".into(), Value::from_json(rtype));
        out.insert("config".into(), Value::from_json(answer.get("config").unwrap_or(config)));
        out.insert("id".into(), Value::String(id));
        out.insert("state".into(), Value::from_json(answer.get("state").unwrap_or(&Json::Null)));
        Ok(out)
    }
}

#[async_trait]
impl Provider for ExecProvider {
    fn schema_of(&self, rtype: &str) -> Option<&ResourceSchema> {
        self.schema.resources.get(rtype)
    }
    async fn read(&self, req: ReadRequest) -> Result<Option<Observed>, Diagnostic> {
        let spec = self.spec()?;
        let rtype = json_of(Some(&req.inputs), "type");
        let config = json_of(Some(&req.inputs), "config");
        let id = json_of(req.prior.as_ref(), "id");
        let prior = json_of(req.prior.as_ref(), "state");
        let r = self.request("read", &req.object, &rtype, id.clone(), config.clone(), prior);
        let answer = run::call(spec, "read", &r).await?;
        if answer.get("exists") == Some(&Json::Bool(false)) {
            return Ok(None);
        }
        self.observed(&rtype, &config, &answer, &id, "read").map(Some)
    }
    async fn create(&self, req: CreateRequest) -> Result<Observed, Diagnostic> {
        let spec = self.spec()?;
        let rtype = json_of(Some(&req.config), "type");
        let config = json_of(Some(&req.config), "config");
        let r = self.request("create", &req.object, &rtype, Json::Null, config.clone(), Json::Null);
        let answer = run::call(spec, "create", &r).await?;
        self.observed(&rtype, &config, &answer, &Json::Null, "create")
    }
    async fn update(&self, req: UpdateRequest) -> Result<Observed, Diagnostic> {
        let spec = self.spec()?;
        let rtype = json_of(Some(&req.config), "type");
        let config = json_of(Some(&req.config), "config");
        let id = json_of(Some(&req.prior), "id");
        let r = self.request("update", &req.object, &rtype, id.clone(), config.clone(), json_of(Some(&req.prior), "state"));
        let answer = run::call(spec, "update", &r).await?;
        self.observed(&rtype, &config, &answer, &id, "update")
    }
    async fn delete(&self, req: DeleteRequest) -> Result<(), Diagnostic> {
        let spec = self.spec()?;
        let rtype = json_of(Some(&req.prior), "type");
        let r = self.request(
            "delete",
            &req.object,
            &rtype,
            json_of(Some(&req.prior), "id"),
            json_of(Some(&req.prior), "config"),
            json_of(Some(&req.prior), "state"),
        );
        run::call(spec, "delete", &r).await?;
        Ok(())
    }
    async fn list(&self, req: ListRequest) -> Result<Vec<String>, Diagnostic> {
        let Ok(spec) = self.spec() else { return Ok(vec![]) };
        // Every external type managed here is listed on its own.
        let mut by_type: IndexMap<String, Vec<Json>> = IndexMap::default();
        for m in &req.managed {
            let t = m.get("type").and_then(Value::as_str).unwrap_or("").to_string();
            by_type.entry(t).or_default().push(json_of(Some(m), "config"));
        }
        let mut out = Vec::new();
        for (rtype, managed) in by_type {
            let r = json!({
                "protocol": PROTOCOL,
                "operation": "list",
                "type": rtype,
                "config": managed.first().cloned().unwrap_or(Json::Null),
                "managed": managed,
            });
            let answer = run::call(spec, "list", &r).await?;
            let Some(Json::Array(objects)) = answer.get("objects") else {
                return Err(run::bad_answer("list", "it has no \"objects\" (a list of ids)"));
            };
            for o in objects {
                let id = match o {
                    Json::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if !run::seen(spec, &rtype, &id) {
                    out.push(format!("{rtype}/{id}"));
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_must_be_a_non_empty_list_of_strings() {
        let dir = Path::new("/tmp");
        let mut c = Map::default();
        c.insert("command".into(), Value::List(vec![]));
        assert_eq!(Spec::from_config(&c, dir).unwrap_err().code, "P6707");
        c.insert("command".into(), Value::List(vec![Value::str("echo"), Value::Int(1)]));
        assert_eq!(Spec::from_config(&c, dir).unwrap_err().code, "P6707");
        c.insert("command".into(), Value::List(vec![Value::str("echo")]));
        let mut env = Map::default();
        env.insert("A".into(), Value::str("b"));
        c.insert("env".into(), Value::Map(env));
        let s = Spec::from_config(&c, dir).unwrap();
        assert_eq!(s.command, vec!["echo"]);
        assert_eq!(s.env, vec![("A".to_string(), "b".to_string())]);
    }
}
