//! `core`: the built-in provider without IO. `core.data` stores `input`,
//! exposes it as `output`, and is replaced when `triggers_replace` changes —
//! Terraform's `terraform_data`.

use super::*;

pub struct CoreFactory {
    schema: ProviderSchema,
}

impl CoreFactory {
    pub fn new() -> Self {
        let data = ResourceSchema::new("A value kept in state: `input` is stored and exposed as `output`.")
            .attr("input", AttrSchema::optional(Type::Any, "any value to store"))
            .attr("triggers_replace", AttrSchema::optional(Type::Any, "any value; a change replaces the resource").forces_replacement())
            .attr("output", AttrSchema::computed(Type::Any, "the stored input, known after apply"))
            .attr("id", AttrSchema::computed(Type::String, "a unique identifier"));
        let mut schema = ProviderSchema::default();
        schema.resources.insert("data", data);
        CoreFactory { schema }
    }
}

impl Default for CoreFactory {
    fn default() -> Self {
        Self::new()
    }
}

impl ProviderFactory for CoreFactory {
    fn name(&self) -> &'static str {
        "core"
    }
    fn schema(&self) -> &ProviderSchema {
        &self.schema
    }
    fn plan(&self, _rtype: &str, prior: Option<&Map>, config: &Map) -> Map {
        let mut planned = config.clone();
        let input_same = prior.is_some_and(|p| p.get("input").unwrap_or(&Value::Null) == config.get("input").unwrap_or(&Value::Null));
        let output = match prior {
            Some(p) if input_same => p.get("output").cloned().unwrap_or(Value::Null),
            _ => Value::Unknown,
        };
        planned.insert("output".into(), output);
        planned.insert("id".into(), prior.and_then(|p| p.get("id").cloned()).unwrap_or(Value::Unknown));
        planned
    }
    fn configure(&self, _config: &Map, _ctx: &ProviderContext) -> Result<Arc<dyn Provider>, Diagnostic> {
        Ok(Arc::new(Core { schema: self.schema.clone() }))
    }
}

struct Core {
    schema: ProviderSchema,
}

#[async_trait]
impl Provider for Core {
    fn schema_of(&self, rtype: &str) -> Option<&ResourceSchema> {
        self.schema.resources.get(rtype)
    }
    async fn read(&self, req: ReadRequest) -> Result<Option<Observed>, Diagnostic> {
        // Nothing exists outside the state: what was recorded is the object.
        Ok(req.prior)
    }
    async fn create(&self, req: CreateRequest) -> Result<Observed, Diagnostic> {
        let mut observed = req.config;
        let input = observed.get("input").cloned().unwrap_or(Value::Null);
        observed.insert("output".into(), input);
        observed.insert("id".into(), Value::String(uuid::Uuid::new_v4().to_string()));
        Ok(observed)
    }
    async fn update(&self, req: UpdateRequest) -> Result<Observed, Diagnostic> {
        let mut observed = req.config;
        let input = observed.get("input").cloned().unwrap_or(Value::Null);
        observed.insert("output".into(), input);
        observed.insert("id".into(), req.prior.get("id").cloned().unwrap_or_else(|| Value::String(uuid::Uuid::new_v4().to_string())));
        Ok(observed)
    }
    async fn delete(&self, _req: DeleteRequest) -> Result<(), Diagnostic> {
        Ok(())
    }
}
