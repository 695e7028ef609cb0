//! The protocol's calls, one method each, the same for versions 5 and 6:
//! values in and out as Plinth values typed by cty, the provider's error
//! diagnostics as one Plinth diagnostic (warnings are dropped).
//!
//! Invariants: a call never panics on what a provider sends; a provider
//! that died is reported with the last lines of its stderr.

use crate::cty::{self, Cty};
use crate::plugin::{Client, Plugin};
use crate::proto::{v5, v6};
use crate::schema::ProviderSchemas;
use plinth_base::diagnostic::Diagnostic;
use plinth_base::value::Value;

/// What Plinth tells providers it is, in ConfigureProvider: the Terraform
/// release whose protocol behaviour it implements.
pub const TERRAFORM_VERSION: &str = "1.11.4";

/// A provider's diagnostic: summary, detail and the attribute path.
#[derive(Debug, Clone)]
pub struct ProviderDiag {
    pub error: bool,
    pub summary: String,
    pub detail: String,
    pub path: Vec<String>,
}

macro_rules! diags {
    ($list:expr) => {
        $list
            .iter()
            .map(|d| ProviderDiag {
                error: d.severity != 2,
                summary: d.summary.clone(),
                detail: d.detail.clone(),
                path: d.attribute.as_ref().map(|p| steps(p.steps.iter().map(|s| s.selector.clone().map(Step::from)))).unwrap_or_default(),
            })
            .collect::<Vec<_>>()
    };
}

/// One call of the protocol in either version: `$m5`/`$m6` name the method
/// (and the message module of the same name) in tfplugin5/tfplugin6; in
/// `$req` and `$resp`, `msg` is that module and `$pv` the version's module.
macro_rules! call {
    ($self:ident, $what5:literal / $what6:literal, $m5:ident / $m6:ident, |$pv:ident| $req:expr, |$r:ident| $resp:expr) => {
        match $self.client.clone() {
            Client::V5(mut c) => {
                #[allow(unused_imports)]
                use crate::proto::v5 as $pv;
                use $pv::$m5 as msg;
                let $r = c.$m5($req).await.map_err(|s| transport($self, $what5, s))?.into_inner();
                $resp
            }
            Client::V6(mut c) => {
                #[allow(unused_imports)]
                use crate::proto::v6 as $pv;
                use $pv::$m6 as msg;
                let $r = c.$m6($req).await.map_err(|s| transport($self, $what6, s))?.into_inner();
                $resp
            }
        }
    };
}

/// The attribute paths of a response's `requires_replace`.
macro_rules! paths {
    ($list:expr) => {
        $list.iter().map(|p| steps(p.steps.iter().map(|s| s.selector.clone().map(Step::from)))).collect::<Vec<Vec<String>>>()
    };
}

pub enum Step {
    Attr(String),
    Key(String),
    Index(i64),
}

impl From<v5::attribute_path::step::Selector> for Step {
    fn from(s: v5::attribute_path::step::Selector) -> Step {
        use v5::attribute_path::step::Selector as S;
        match s {
            S::AttributeName(n) => Step::Attr(n),
            S::ElementKeyString(k) => Step::Key(k),
            S::ElementKeyInt(i) => Step::Index(i),
        }
    }
}
impl From<v6::attribute_path::step::Selector> for Step {
    fn from(s: v6::attribute_path::step::Selector) -> Step {
        use v6::attribute_path::step::Selector as S;
        match s {
            S::AttributeName(n) => Step::Attr(n),
            S::ElementKeyString(k) => Step::Key(k),
            S::ElementKeyInt(i) => Step::Index(i),
        }
    }
}

fn steps(it: impl Iterator<Item = Option<Step>>) -> Vec<String> {
    let mut out = Vec::new();
    for s in it.flatten() {
        match s {
            Step::Attr(n) => out.push(n),
            Step::Key(k) => out.push(format!("[{k:?}]")),
            Step::Index(i) => out.push(format!("[{i}]")),
        }
    }
    out
}

/// Joins an attribute path for messages: `rule[0].port`.
pub fn path_text(path: &[String]) -> String {
    let mut s = String::new();
    for p in path {
        if !p.starts_with('[') && !s.is_empty() {
            s.push('.');
        }
        s.push_str(p);
    }
    s
}

/// The provider's errors as one diagnostic (`code`), or Ok.
pub fn check(code: &'static str, what: &str, diags: &[ProviderDiag]) -> Result<(), Diagnostic> {
    let errors: Vec<&ProviderDiag> = diags.iter().filter(|d| d.error).collect();
    let Some(first) = errors.first() else { return Ok(()) };
    let mut message = format!("{what}: {}", first.summary);
    if !first.path.is_empty() {
        message = format!("`{}`: {message}", path_text(&first.path));
    }
    let mut help = first.detail.clone();
    for more in &errors[1..] {
        if !help.is_empty() {
            help.push('\n');
        }
        help.push_str(&more.summary);
        if !more.path.is_empty() {
            help.push_str(&format!(" (at `{}`)", path_text(&more.path)));
        }
        if !more.detail.is_empty() {
            help.push_str(": ");
            help.push_str(&more.detail);
        }
    }
    if help.is_empty() {
        help = "The provider gave no detail; its log (.plinth/logs) may say more.".into();
    }
    Err(Diagnostic::new(code, message).help(help))
}

fn transport(plugin: &Plugin, what: &str, status: tonic::Status) -> Diagnostic {
    let tail = plugin.stderr_tail();
    let died = !plugin.alive();
    Diagnostic::new("P7002", format!("provider `{}` failed during {what}", plugin.name)).help(format!(
        "{}: {}.{}",
        if died { "The provider process exited" } else { "The plugin call failed" },
        status.message(),
        if tail.is_empty() { String::new() } else { format!(" Its last words:\n{tail}") }
    ))
}

fn enc(v: &Value, ty: &Cty, what: &str) -> Result<Vec<u8>, Diagnostic> {
    cty::encode(v, ty).map_err(|e| Diagnostic::new("P7003", format!("cannot encode {what} for the provider")).help(format!("{e}.")))
}

fn dec(bytes: Option<&[u8]>, ty: &Cty, what: &str, provider: &str) -> Result<Value, Diagnostic> {
    match bytes {
        None => Ok(Value::Null),
        Some([]) => Ok(Value::Null),
        Some(b) => cty::decode(b, ty).map_err(|e| {
            Diagnostic::new("P7004", format!("provider `{provider}` sent an undecodable {what}"))
                .help(format!("{e}. This is a bug in the provider or in Plinth; please report it."))
        }),
    }
}

pub struct Planned {
    pub planned: Value,
    pub requires_replace: Vec<Vec<String>>,
    pub private: Vec<u8>,
    pub legacy_type_system: bool,
}

pub struct Applied {
    pub new_state: Value,
    pub private: Vec<u8>,
    pub legacy_type_system: bool,
}

pub struct Imported {
    pub type_name: String,
    pub state: Value,
    pub private: Vec<u8>,
}

impl Plugin {
    pub async fn schema(&self) -> Result<ProviderSchemas, Diagnostic> {
        match self.client.clone() {
            Client::V5(mut c) => {
                let r = c.get_schema(v5::get_provider_schema::Request {}).await.map_err(|s| transport(self, "GetSchema", s))?.into_inner();
                check("P7005", "the provider's schema", &diags!(r.diagnostics))?;
                Ok(ProviderSchemas::from_v5(&r))
            }
            Client::V6(mut c) => {
                let r = c.get_provider_schema(v6::get_provider_schema::Request {}).await.map_err(|s| transport(self, "GetProviderSchema", s))?.into_inner();
                check("P7005", "the provider's schema", &diags!(r.diagnostics))?;
                Ok(ProviderSchemas::from_v6(&r))
            }
        }
    }

    /// ValidateProviderConfig, then ConfigureProvider.
    pub async fn configure(&self, config: &Value, ty: &Cty) -> Result<(), Diagnostic> {
        let bytes = enc(config, ty, "the provider configuration")?;
        match self.client.clone() {
            Client::V5(mut c) => {
                let r = c
                    .prepare_provider_config(v5::prepare_provider_config::Request { config: Some(v5::DynamicValue { msgpack: bytes.clone(), json: vec![] }) })
                    .await
                    .map_err(|s| transport(self, "PrepareProviderConfig", s))?
                    .into_inner();
                check("P7006", "invalid provider configuration", &diags!(r.diagnostics))?;
                let prepared = r.prepared_config.map(|d| d.msgpack).filter(|b| !b.is_empty()).unwrap_or(bytes);
                let r = c
                    .configure(v5::configure::Request {
                        terraform_version: TERRAFORM_VERSION.into(),
                        config: Some(v5::DynamicValue { msgpack: prepared, json: vec![] }),
                    })
                    .await
                    .map_err(|s| transport(self, "Configure", s))?
                    .into_inner();
                check("P7006", "cannot configure the provider", &diags!(r.diagnostics))
            }
            Client::V6(mut c) => {
                let r = c
                    .validate_provider_config(v6::validate_provider_config::Request { config: Some(v6::DynamicValue { msgpack: bytes.clone(), json: vec![] }) })
                    .await
                    .map_err(|s| transport(self, "ValidateProviderConfig", s))?
                    .into_inner();
                check("P7006", "invalid provider configuration", &diags!(r.diagnostics))?;
                let r = c
                    .configure_provider(v6::configure_provider::Request {
                        terraform_version: TERRAFORM_VERSION.into(),
                        config: Some(v6::DynamicValue { msgpack: bytes, json: vec![] }),
                    })
                    .await
                    .map_err(|s| transport(self, "ConfigureProvider", s))?
                    .into_inner();
                check("P7006", "cannot configure the provider", &diags!(r.diagnostics))
            }
        }
    }

    pub async fn validate_resource(&self, type_name: &str, config: &Value, ty: &Cty) -> Result<(), Diagnostic> {
        let bytes = enc(config, ty, "the resource configuration")?;
        let diags = call!(
            self,
            "ValidateResourceTypeConfig" / "ValidateResourceConfig",
            validate_resource_type_config / validate_resource_config,
            |pv| msg::Request { type_name: type_name.into(), config: Some(pv::DynamicValue { msgpack: bytes, json: vec![] }) },
            |r| diags!(r.diagnostics)
        );
        check("P7007", "invalid configuration", &diags)
    }

    pub async fn validate_data(&self, type_name: &str, config: &Value, ty: &Cty) -> Result<(), Diagnostic> {
        let bytes = enc(config, ty, "the data source configuration")?;
        let diags = call!(
            self,
            "ValidateDataSourceConfig" / "ValidateDataResourceConfig",
            validate_data_source_config / validate_data_resource_config,
            |pv| msg::Request { type_name: type_name.into(), config: Some(pv::DynamicValue { msgpack: bytes, json: vec![] }) },
            |r| diags!(r.diagnostics)
        );
        check("P7007", "invalid configuration", &diags)
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn plan(&self, type_name: &str, ty: &Cty, prior: &Value, proposed: &Value, config: &Value, prior_private: &[u8]) -> Result<Planned, Diagnostic> {
        let (p, n, c) = (enc(prior, ty, "the prior state")?, enc(proposed, ty, "the proposed state")?, enc(config, ty, "the configuration")?);
        let (state, replace, private, d, legacy) = call!(
            self,
            "PlanResourceChange" / "PlanResourceChange",
            plan_resource_change / plan_resource_change,
            |pv| msg::Request {
                type_name: type_name.into(),
                prior_state: Some(pv::DynamicValue { msgpack: p, json: vec![] }),
                proposed_new_state: Some(pv::DynamicValue { msgpack: n, json: vec![] }),
                config: Some(pv::DynamicValue { msgpack: c, json: vec![] }),
                prior_private: prior_private.to_vec(),
                provider_meta: None,
            },
            |r| (r.planned_state.map(|d| d.msgpack), paths!(r.requires_replace), r.planned_private, diags!(r.diagnostics), r.legacy_type_system)
        );
        check("P7008", "planning failed", &d)?;
        let planned = dec(state.as_deref(), ty, "planned state", &self.name)?;
        Ok(Planned { planned, requires_replace: replace, private, legacy_type_system: legacy })
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn apply(
        &self,
        type_name: &str,
        ty: &Cty,
        prior: &Value,
        planned: &Value,
        config: &Value,
        planned_private: &[u8],
    ) -> Result<Applied, Diagnostic> {
        let (p, n, c) = (enc(prior, ty, "the prior state")?, enc(planned, ty, "the planned state")?, enc(config, ty, "the configuration")?);
        let (state, private, d, legacy) = call!(
            self,
            "ApplyResourceChange" / "ApplyResourceChange",
            apply_resource_change / apply_resource_change,
            |pv| msg::Request {
                type_name: type_name.into(),
                prior_state: Some(pv::DynamicValue { msgpack: p, json: vec![] }),
                planned_state: Some(pv::DynamicValue { msgpack: n, json: vec![] }),
                config: Some(pv::DynamicValue { msgpack: c, json: vec![] }),
                planned_private: planned_private.to_vec(),
                provider_meta: None,
            },
            |r| (r.new_state.map(|d| d.msgpack), r.private, diags!(r.diagnostics), r.legacy_type_system)
        );
        check("P7009", "apply failed", &d)?;
        let new_state = dec(state.as_deref(), ty, "new state", &self.name)?;
        Ok(Applied { new_state, private, legacy_type_system: legacy })
    }

    /// ReadResource: Ok(None) when the object is gone.
    pub async fn read(&self, type_name: &str, ty: &Cty, current: &Value, private: &[u8]) -> Result<Option<(Value, Vec<u8>)>, Diagnostic> {
        let cur = enc(current, ty, "the recorded state")?;
        let (state, private, d) = call!(
            self,
            "ReadResource" / "ReadResource",
            read_resource / read_resource,
            |pv| msg::Request {
                type_name: type_name.into(),
                current_state: Some(pv::DynamicValue { msgpack: cur, json: vec![] }),
                private: private.to_vec(),
                provider_meta: None
            },
            |r| (r.new_state.map(|d| d.msgpack), r.private, diags!(r.diagnostics))
        );
        check("P7010", "reading failed", &d)?;
        match dec(state.as_deref(), ty, "state", &self.name)? {
            Value::Null => Ok(None),
            v => Ok(Some((v, private))),
        }
    }

    pub async fn import(&self, type_name: &str, id: &str, types: &(dyn Fn(&str) -> Option<Cty> + Sync)) -> Result<Vec<Imported>, Diagnostic> {
        type Listed = Vec<(String, Option<Vec<u8>>, Vec<u8>)>;
        let (list, d): (Listed, Vec<ProviderDiag>) = call!(
            self,
            "ImportResourceState" / "ImportResourceState",
            import_resource_state / import_resource_state,
            |pv| msg::Request { type_name: type_name.into(), id: id.into() },
            |r| (r.imported_resources.into_iter().map(|i| (i.type_name, i.state.map(|d| d.msgpack), i.private)).collect(), diags!(r.diagnostics))
        );
        check("P7011", "import failed", &d)?;
        let mut out = Vec::new();
        for (t, state, private) in list {
            let Some(ty) = types(&t) else { continue };
            out.push(Imported { state: dec(state.as_deref(), &ty, "imported state", &self.name)?, type_name: t, private });
        }
        Ok(out)
    }

    /// UpgradeResourceState from `version` with the state as JSON.
    pub async fn upgrade(&self, type_name: &str, ty: &Cty, version: i64, raw_json: Vec<u8>) -> Result<Value, Diagnostic> {
        let (state, d) = call!(
            self,
            "UpgradeResourceState" / "UpgradeResourceState",
            upgrade_resource_state / upgrade_resource_state,
            |pv| msg::Request { type_name: type_name.into(), version, raw_state: Some(pv::RawState { json: raw_json, flatmap: Default::default() }) },
            |r| (r.upgraded_state.map(|d| d.msgpack), diags!(r.diagnostics))
        );
        check("P7012", "upgrading the recorded state failed", &d)?;
        dec(state.as_deref(), ty, "upgraded state", &self.name)
    }

    pub async fn read_data(&self, type_name: &str, ty: &Cty, config: &Value) -> Result<Value, Diagnostic> {
        let c = enc(config, ty, "the data source configuration")?;
        let (state, d) = call!(
            self,
            "ReadDataSource" / "ReadDataSource",
            read_data_source / read_data_source,
            |pv| msg::Request { type_name: type_name.into(), config: Some(pv::DynamicValue { msgpack: c, json: vec![] }), provider_meta: None },
            |r| (r.state.map(|d| d.msgpack), diags!(r.diagnostics))
        );
        check("P7013", "reading the data source failed", &d)?;
        dec(state.as_deref(), ty, "data source state", &self.name)
    }
}
