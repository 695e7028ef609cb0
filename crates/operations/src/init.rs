//! `plinth init`: every module source resolved and every git source pinned
//! in `plinth.lock` (tags are listed only here), and every Terraform
//! provider a provider block names (`source = "namespace/type"`, `version =
//! "~> 1.2"`) installed into `.plinth/providers/` and pinned there too
//! (versions are chosen only here; later commands use
//! `plinth_tfregistry::locate`).

use crate::diagnostic::{Diagnostic, Span};
use crate::eval::components::ModuleLoader as _;
use crate::project;
use crate::sources::{Lock, Mode};
use crate::syntax::ast;
use crate::Failed;
use plinth_tfregistry::{codes, Constraints, ProviderAddr};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What `init` resolved.
pub struct Initialized {
    /// Distinct module directories, however many instances use them.
    pub modules: usize,
    /// What `plinth.lock` pins (None: nothing was locked).
    pub lock: Option<Lock>,
    /// The Terraform providers installed (or found installed), by source.
    pub providers: Vec<plinth_tfregistry::Outcome>,
}

/// How `init` runs.
#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    /// Resolve every constraint again (module tags, provider versions)
    /// instead of keeping what the lock pins.
    pub upgrade: bool,
    /// Install providers from this filesystem mirror only (Terraform's
    /// packed or unpacked layout) instead of their registries.
    pub provider_mirror: Option<PathBuf>,
    /// Extra CA certificates (PEM) to trust for provider registries.
    pub registry_ca: Option<PathBuf>,
}

/// One Terraform provider the configuration names.
#[derive(Debug, Clone)]
pub struct WantedProvider {
    pub addr: ProviderAddr,
    pub constraints: Constraints,
    /// The `source` string of the first block that names it.
    pub span: Span,
}

/// A provider block's attribute as a literal string: `Ok(None)` when it is
/// absent, a diagnostic when it is an expression.
pub(crate) fn literal(body: &ast::Body, name: &str) -> Result<Option<(String, Span)>, Diagnostic> {
    let Some(attr) = body.attr(name) else { return Ok(None) };
    if let ast::ExprKind::Template(parts) = &attr.value.kind {
        let mut text = String::new();
        if parts.iter().all(|p| match p {
            ast::TemplatePart::Literal(s) => {
                text.push_str(s);
                true
            }
            ast::TemplatePart::Interp(_) => false,
        }) {
            return Ok(Some((text, attr.value.span)));
        }
    }
    Err(Diagnostic::new(codes::NOT_LITERAL, "provider source and version must be literal strings")
        .help(format!(
            "`{name}` is read by `plinth init` before anything is evaluated: write it as a plain string, like `{name} = {}`.",
            if name == "source" { "\"hashicorp/aws\"" } else { "\"~> 5.0\"" }
        ))
        .label(attr.value.span, "not a literal string"))
}

/// The Terraform providers the provider blocks of `files` name (a block
/// with `source`); blocks without `source` are built-in providers and left
/// alone. Accumulates every problem.
pub fn wanted_providers(files: &[ast::File]) -> Result<Vec<WantedProvider>, Vec<Diagnostic>> {
    let mut by_source: BTreeMap<ProviderAddr, (WantedProvider, Option<(String, Span)>)> = BTreeMap::new();
    let mut by_name: BTreeMap<String, (ProviderAddr, Span)> = BTreeMap::new();
    let mut diags = Vec::new();
    for decl in files.iter().flat_map(|f| f.items.iter()).filter_map(|i| if let ast::Item::Provider(p) = i { Some(p) } else { None }) {
        let (source, version) = match (literal(&decl.body, "source"), literal(&decl.body, "version")) {
            (Ok(None), _) => continue,
            (Ok(Some(s)), Ok(v)) => (s, v),
            (s, v) => {
                diags.extend(s.err());
                diags.extend(v.err());
                continue;
            }
        };
        let addr = match ProviderAddr::parse(&source.0) {
            Ok(a) => a,
            Err(why) => {
                diags.push(Diagnostic::new(codes::INVALID_SOURCE, "invalid provider source").help(format!("{why}.")).label(source.1, "this source"));
                continue;
            }
        };
        let constraints = match &version {
            None => Constraints::any(),
            Some((text, span)) => match Constraints::parse(text) {
                Ok(c) => c,
                Err(why) => {
                    diags.push(
                        Diagnostic::new(codes::INVALID_CONSTRAINT, "invalid provider version constraint")
                            .help(format!("{why}. Constraints look like \"~> 1.36\", \">= 1.0, < 2.0\" or \"= 1.2.3\"."))
                            .label(*span, "this constraint"),
                    );
                    continue;
                }
            },
        };
        let name = decl.name.name.clone();
        match by_name.get(&name) {
            Some((other, span)) if *other != addr => {
                diags.push(
                    Diagnostic::new(codes::CONFLICT, "one provider name with two sources")
                        .help(format!("`provider {name}` is {other} in one block and {addr} in another; every block of one provider names the same `source`. Give the other provider another name."))
                        .label(source.1, "this source")
                        .label(*span, "the other source"),
                );
                continue;
            }
            Some(_) => {}
            None => {
                by_name.insert(name, (addr.clone(), source.1));
            }
        }
        match by_source.get_mut(&addr) {
            None => {
                by_source.insert(addr.clone(), (WantedProvider { addr, constraints, span: source.1 }, version));
            }
            Some((wanted, seen)) => match (seen.as_ref(), version) {
                (Some((a, a_span)), Some((b, b_span))) if a.trim() != b.trim() => diags.push(
                    Diagnostic::new(codes::CONFLICT, "one provider source with two versions")
                        .help(format!("{addr} is wanted as \"{a}\" and as \"{b}\"; one project installs one version of a provider. Write the same `version` in every block (or one block only)."))
                        .label(b_span, "this version")
                        .label(*a_span, "the other version"),
                ),
                (None, Some(v)) => {
                    wanted.constraints = constraints;
                    *seen = Some(v);
                }
                _ => {}
            },
        }
    }
    if diags.is_empty() {
        Ok(by_source.into_values().map(|(w, _)| w).collect())
    } else {
        Err(diags)
    }
}

/// Resolves every module of the project in `dir` (every component,
/// however many instances it has, even none, and every import), fetches
/// git sources into `.plinth/modules`, installs the Terraform providers the
/// provider blocks name into `.plinth/providers` and writes `plinth.lock`.
/// With `upgrade`, constraints are resolved again against the
/// repositories' tags and the providers' versions instead of keeping the
/// locked ones.
pub fn init(dir: &Path, options: &InitOptions) -> Result<Initialized, Failed> {
    let upgrade = options.upgrade;
    let mut project = project::load(dir).map_err(|(sources, diags)| Failed { sources, diags })?;
    let files = std::mem::take(&mut project.files);
    let mut loader = project::Loader::new(dir, std::mem::take(&mut project.sources), Mode::Init { upgrade }).map_err(Failed::bare)?;
    let mut diags = Vec::new();
    for item in files.iter().flat_map(|f| f.items.iter()) {
        if let ast::Item::Import(imp) = item {
            if let Err(d) = loader.import(imp) {
                diags.push(d);
            }
        }
    }
    // Every module, however many instances it has (even none): all of them
    // are locked.
    let mut queue: Vec<(String, ast::ComponentDecl)> = Vec::new();
    let push_calls = |from: &str, files: &[ast::File], queue: &mut Vec<_>| {
        for item in files.iter().flat_map(|f| f.items.iter()) {
            if let ast::Item::Component(c) = item {
                queue.push((from.to_string(), c.clone()));
            }
        }
    };
    push_calls(".", &files, &mut queue);
    let mut seen = std::collections::HashSet::new();
    let mut modules = 0usize;
    while let Some((from, decl)) = queue.pop() {
        match loader.load(&from, &decl) {
            Ok(m) => {
                if seen.insert(m.dir.clone()) {
                    modules += 1;
                    push_calls(&m.dir, &m.files, &mut queue);
                }
            }
            Err(d) => diags.extend(d),
        }
    }
    // Provider blocks live in the root module only (P2091 refuses them in
    // modules).
    let wanted = match wanted_providers(&files) {
        Ok(w) => w,
        Err(d) => {
            diags.extend(d);
            Vec::new()
        }
    };
    if !diags.is_empty() {
        return Err(Failed::new(&loader.sources, diags));
    }
    let settings = plinth_tfregistry::Settings { mirror: options.provider_mirror.clone(), registry_ca: options.registry_ca.clone(), platform: None };
    let mut providers = Vec::new();
    for w in &wanted {
        let locked = loader.resolver.locked_providers().iter().find(|l| l.source == w.addr.to_string());
        match plinth_tfregistry::install(dir, &settings, &w.addr, &w.constraints, locked, upgrade) {
            Ok(outcome) => providers.push(outcome),
            Err(d) => diags.push(d.label(w.span, "this provider")),
        }
    }
    // Each provider's schema, cached beside its package: `validate` then
    // checks resources with no provider process. Asked again when the
    // cache is missing (a new version, a fresh install).
    for (w, o) in wanted.iter().zip(&providers) {
        let cache = plinth_tfplugin::provider::schema_cache_path(&o.installed.dir);
        if plinth_tfplugin::provider::cached_schema(&cache).is_ok() {
            continue;
        }
        let name = w.addr.to_string();
        if let Err(d) = plinth_tfplugin::provider::cache_schema(&name, &o.installed.binary, &cache) {
            diags.push(d.label(w.span, "this provider"));
        }
    }
    if !diags.is_empty() {
        return Err(Failed::new(&loader.sources, diags));
    }
    loader.resolver.set_providers(providers.iter().map(|o| o.lock.clone()).collect());
    let lock = loader.resolver.finish().map_err(Failed::bare)?;
    Ok(Initialized { modules, lock, providers })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(text: &str) -> Result<Vec<WantedProvider>, Vec<Diagnostic>> {
        let file = crate::syntax::parse_file(0, text).expect("parses");
        wanted_providers(&[file])
    }

    #[test]
    fn provider_blocks_with_a_source_are_wanted_once_each() {
        let w = wanted(
            r#"
provider random {}
provider otc {
  source  = "opentelekomcloud/opentelekomcloud"
  version = "~> 1.36"
  region  = "eu-de"
}
provider otc second {
  source = "OpenTelekomCloud/opentelekomcloud"
  region = "eu-nl"
}
provider aws { source = "example.com:8443/acme/aws" }
"#,
        )
        .unwrap();
        let got: Vec<(String, String)> = w.iter().map(|w| (w.addr.to_string(), w.constraints.to_string())).collect();
        assert_eq!(
            got,
            [
                ("example.com:8443/acme/aws".to_string(), String::new()),
                ("registry.terraform.io/opentelekomcloud/opentelekomcloud".to_string(), "~> 1.36".to_string()),
            ]
        );
    }

    #[test]
    fn a_version_in_a_later_block_joins_the_first() {
        let w = wanted("provider a { source = \"x/y\" }\nprovider a b {\n source = \"x/y\"\n version = \">= 2\"\n}\n").unwrap();
        assert_eq!(w[0].constraints.as_str(), ">= 2");
    }

    #[test]
    fn every_problem_is_reported_with_its_span() {
        let text = "provider a { source = \"x/${1}\" }\nprovider b {\n source = \"x/y\"\n version = \"~> 1\"\n}\nprovider c {\n source = \"x/y\"\n version = \"~> 2\"\n}\nprovider d { source = \"a.b/c\" }\nprovider e {\n source = \"x/z\"\n version = \"^1\"\n}\n";
        let diags = wanted(text).unwrap_err();
        let codes: Vec<&str> = diags.iter().map(|d| d.code).collect();
        assert_eq!(codes, [codes::NOT_LITERAL, codes::CONFLICT, codes::INVALID_SOURCE, codes::INVALID_CONSTRAINT]);
        for d in &diags {
            assert!(!d.labels.is_empty() && !d.help.is_empty(), "{d:?}");
        }
        assert_eq!(diags[1].labels.len(), 2, "both versions are shown");
    }
}
