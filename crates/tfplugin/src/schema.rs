//! A provider's schema as Plinth keeps it: read from GetProviderSchema
//! (protocol 5 or 6), cached as JSON beside the installed provider by
//! `plinth init`, and turned into the SDK's schemas (validation with no IO)
//! and cty types (the wire format).
//!
//! Invariants: the cache holds exactly what the provider said (attribute
//! types as cty JSON); the cty type of a block is Terraform's implied type
//! (attributes, then nested blocks: single/group → object, list → list,
//! set → set, map → map of objects); names are leaked into `&'static str`
//! once per schema load, which is bounded by the schema's size.

use crate::cty::Cty;
use crate::proto::{v5, v6};
use indexmap::IndexMap;
use plinth_sdk::{AttrSchema, BlockSchema, Nesting, ResourceSchema};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Schema {
    pub version: i64,
    pub block: Block,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Block {
    #[serde(default)]
    pub attributes: Vec<Attribute>,
    #[serde(default)]
    pub blocks: Vec<NestedBlock>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Attribute {
    pub name: String,
    /// cty type JSON; for a nested attribute type, its implied type.
    pub r#type: serde_json::Value,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub optional: bool,
    #[serde(default)]
    pub computed: bool,
    #[serde(default)]
    pub sensitive: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Sensitive attributes inside a nested attribute type, by path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sensitive_inside: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NestedBlock {
    pub name: String,
    pub nesting: String,
    pub block: Block,
    #[serde(default)]
    pub min_items: i64,
    #[serde(default)]
    pub max_items: i64,
}

/// Everything GetProviderSchema said that Plinth keeps.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProviderSchemas {
    pub provider: Schema,
    pub resources: BTreeMap<String, Schema>,
    pub data_sources: BTreeMap<String, Schema>,
    /// The provider wants PlanResourceChange called before a destroy.
    #[serde(default)]
    pub plan_destroy: bool,
}

impl Block {
    /// Terraform's implied type of the block's values.
    pub fn cty(&self) -> Result<Cty, String> {
        let mut fields = Vec::with_capacity(self.attributes.len() + self.blocks.len());
        for a in &self.attributes {
            fields.push((a.name.clone(), Cty::from_json(&a.r#type).map_err(|e| format!("attribute `{}`: {e}", a.name))?));
        }
        for b in &self.blocks {
            let inner = b.block.cty()?;
            let t = match b.nesting.as_str() {
                "single" | "group" => inner,
                "list" => Cty::List(Box::new(inner)),
                "set" => Cty::Set(Box::new(inner)),
                "map" => Cty::Map(Box::new(inner)),
                other => return Err(format!("block `{}` has an unknown nesting mode `{other}`", b.name)),
            };
            fields.push((b.name.clone(), t));
        }
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Cty::Object(fields))
    }

    /// The SDK's view: attributes and nested block types by name.
    pub fn attributes_schema(&self) -> IndexMap<&'static str, AttrSchema> {
        let mut out = IndexMap::default();
        for a in &self.attributes {
            let ty = Cty::from_json(&a.r#type).map(|c| c.to_type()).unwrap_or(plinth_base::types::Type::Any);
            let desc = leak(&a.description);
            let mut s = if a.required {
                AttrSchema::required(ty, desc)
            } else if a.computed && !a.optional {
                AttrSchema::computed(ty, desc)
            } else {
                let mut s = AttrSchema::optional(ty, desc);
                s.computed = a.computed;
                // Optional + Computed: settable, computed when left out.
                s.optional = a.computed;
                s
            };
            if a.sensitive {
                s = s.sensitive();
            }
            out.insert(leak(&a.name), s);
        }
        for b in &self.blocks {
            let nesting = match b.nesting.as_str() {
                "single" => Nesting::Single,
                "group" => Nesting::Group,
                "set" => Nesting::Set,
                "map" => Nesting::Map,
                _ => Nesting::List,
            };
            let ty = b.block.cty().map(|c| c.to_type()).unwrap_or(plinth_base::types::Type::Any);
            let ty = match nesting {
                Nesting::Single | Nesting::Group => ty,
                Nesting::List => plinth_base::types::Type::List(Box::new(ty)),
                Nesting::Set => plinth_base::types::Type::Set(Box::new(ty)),
                Nesting::Map => plinth_base::types::Type::Map(Box::new(ty)),
            };
            let inner =
                BlockSchema { nesting, min_items: b.min_items.max(0) as u64, max_items: b.max_items.max(0) as u64, attributes: b.block.attributes_schema() };
            out.insert(leak(&b.name), AttrSchema::nested_block(ty, inner, leak(&b.block.description)));
        }
        out
    }

    /// Top-level attribute names that are sensitive, by schema.
    pub fn sensitive_names(&self) -> Vec<String> {
        self.attributes.iter().filter(|a| a.sensitive || !a.sensitive_inside.is_empty()).map(|a| a.name.clone()).collect()
    }
}

impl Schema {
    pub fn resource_schema(&self) -> ResourceSchema {
        ResourceSchema { description: leak(&self.block.description), attributes: self.block.attributes_schema() }
    }
}

fn leak(s: &str) -> &'static str {
    if s.is_empty() {
        ""
    } else {
        Box::leak(s.to_string().into_boxed_str())
    }
}

fn nesting_name(n: i32) -> &'static str {
    match n {
        1 => "single",
        2 => "list",
        3 => "set",
        4 => "map",
        5 => "group",
        _ => "invalid",
    }
}

// ---------------------------------------------------------------- protocol 6

/// A block of either protocol version: its attributes by `$attribute`, its
/// nested blocks by `$block` (recursively).
macro_rules! block_of {
    ($b:expr, $attribute:expr, $block:expr) => {
        Block {
            attributes: $b.attributes.iter().map($attribute).collect(),
            blocks: $b
                .block_types
                .iter()
                .map(|nb| NestedBlock {
                    name: nb.type_name.clone(),
                    nesting: nesting_name(nb.nesting).to_string(),
                    block: nb.block.as_ref().map($block).unwrap_or_default(),
                    min_items: nb.min_items,
                    max_items: nb.max_items,
                })
                .collect(),
            description: $b.description.clone(),
        }
    };
}

fn v6_block(b: &v6::schema::Block) -> Block {
    block_of!(b, v6_attribute, v6_block)
}

fn v6_attribute(a: &v6::schema::Attribute) -> Attribute {
    let mut sensitive_inside = Vec::new();
    let ty = match &a.nested_type {
        Some(obj) => v6_object_type(obj, &a.name, &mut sensitive_inside),
        None => serde_json::from_slice(&a.r#type).unwrap_or(serde_json::Value::from("dynamic")),
    };
    Attribute {
        name: a.name.clone(),
        r#type: ty,
        required: a.required,
        optional: a.optional,
        computed: a.computed,
        sensitive: a.sensitive,
        description: a.description.clone(),
        sensitive_inside,
    }
}

/// The implied cty type of a nested attribute type.
fn v6_object_type(obj: &v6::schema::Object, path: &str, sensitive: &mut Vec<String>) -> serde_json::Value {
    let mut fields = serde_json::Map::new();
    for a in &obj.attributes {
        let inner = format!("{path}.{}", a.name);
        if a.sensitive {
            sensitive.push(inner.clone());
        }
        let t = match &a.nested_type {
            Some(o) => v6_object_type(o, &inner, sensitive),
            None => serde_json::from_slice(&a.r#type).unwrap_or(serde_json::Value::from("dynamic")),
        };
        fields.insert(a.name.clone(), t);
    }
    let object = serde_json::json!(["object", fields]);
    match obj.nesting {
        2 => serde_json::json!(["list", object]),
        3 => serde_json::json!(["set", object]),
        4 => serde_json::json!(["map", object]),
        _ => object,
    }
}

fn v6_schema(s: &v6::Schema) -> Schema {
    Schema { version: s.version, block: s.block.as_ref().map(v6_block).unwrap_or_default() }
}

impl ProviderSchemas {
    pub fn from_v6(r: &v6::get_provider_schema::Response) -> ProviderSchemas {
        ProviderSchemas {
            provider: r.provider.as_ref().map(v6_schema).unwrap_or(Schema { version: 0, block: Block::default() }),
            resources: r.resource_schemas.iter().map(|(k, v)| (k.clone(), v6_schema(v))).collect(),
            data_sources: r.data_source_schemas.iter().map(|(k, v)| (k.clone(), v6_schema(v))).collect(),
            plan_destroy: r.server_capabilities.as_ref().is_some_and(|c| c.plan_destroy),
        }
    }

    pub fn from_v5(r: &v5::get_provider_schema::Response) -> ProviderSchemas {
        ProviderSchemas {
            provider: r.provider.as_ref().map(v5_schema).unwrap_or(Schema { version: 0, block: Block::default() }),
            resources: r.resource_schemas.iter().map(|(k, v)| (k.clone(), v5_schema(v))).collect(),
            data_sources: r.data_source_schemas.iter().map(|(k, v)| (k.clone(), v5_schema(v))).collect(),
            plan_destroy: r.server_capabilities.as_ref().is_some_and(|c| c.plan_destroy),
        }
    }
}

// ---------------------------------------------------------------- protocol 5

fn v5_block(b: &v5::schema::Block) -> Block {
    block_of!(b, v5_attribute, v5_block)
}

fn v5_attribute(a: &v5::schema::Attribute) -> Attribute {
    Attribute {
        name: a.name.clone(),
        r#type: serde_json::from_slice(&a.r#type).unwrap_or(serde_json::Value::from("dynamic")),
        required: a.required,
        optional: a.optional,
        computed: a.computed,
        sensitive: a.sensitive,
        description: a.description.clone(),
        sensitive_inside: vec![],
    }
}

fn v5_schema(s: &v5::Schema) -> Schema {
    Schema { version: s.version, block: s.block.as_ref().map(v5_block).unwrap_or_default() }
}
