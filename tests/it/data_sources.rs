//! `data` blocks through the engine: read while planning when their
//! configuration is known, read during apply when it depends on a change,
//! never recorded, never a change; `validate` starts no provider.
//!
//! Terraform providers are not installed by `plinth init` in this tree yet,
//! so these tests drive the library (declare → graph → plan → apply) with a
//! registry that holds the providers directly: a test provider whose data
//! source counts its reads, and the real `terraform-provider-aws` 5.100.0
//! (`PLINTH_TEST_TF_AWS_MIRROR`, scripts/services/tfproviders.sh) against
//! the moto S3 server (`PLINTH_TEST_S3_ENDPOINT`, scripts/services/s3.sh),
//! compared with what `terraform` 1.11 reads with the same provider.

use crate::*;
use plinth::diagnostic::{Diagnostic, Sources};
use plinth::eval::Config;
use plinth::exec::{ApplyContext, ApplyReport, Interrupt};
use plinth::graph::Graph;
use plinth::plan::{Plan, PlanInputs, PlanOptions};
use plinth::providers::{AttrSchema, DataRequest, Provider, ProviderContext, ProviderFactory, ProviderSchema, Registry, ResourceSchema};
use plinth::state::Store;
use plinth::types::Type;
use plinth::value::{Map, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// `lookup.echo`: reads `text` back with `upper` and a sensitive `secret`
/// computed from it, counting its reads.
struct Lookup {
    schema: ProviderSchema,
    reads: Arc<AtomicUsize>,
}

impl ProviderFactory for Lookup {
    fn name(&self) -> &'static str {
        "lookup"
    }
    fn schema(&self) -> &ProviderSchema {
        &self.schema
    }
    fn read_data(&self, req: DataRequest<'_>) -> Result<Map, Diagnostic> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let text = req.config.get("text").map(|v| v.peel().clone()).unwrap_or(Value::Null);
        let Value::String(t) = text.clone() else { return Ok(Map::default()) };
        if t.is_empty() {
            return Err(Diagnostic::new("P6999", format!("{}: nothing to echo", req.address)));
        }
        let mut m = Map::default();
        m.insert("upper".into(), Value::String(t.to_uppercase()));
        m.insert("secret".into(), Value::String(format!("s3cr3t-{t}")));
        m.insert("text".into(), Value::String(t));
        Ok(m)
    }
    fn configure(&self, _config: &Map, _ctx: &ProviderContext) -> Result<Arc<dyn Provider>, Diagnostic> {
        Err(Diagnostic::new("P6001", "lookup has no resources"))
    }
}

fn registry(dir: &std::path::Path) -> (Registry, Arc<AtomicUsize>) {
    let mut registry = plinth::providers::builtin::registry_in(dir);
    let reads = Arc::new(AtomicUsize::new(0));
    let mut schema = ProviderSchema::default();
    schema.data_sources.insert(
        "echo",
        ResourceSchema::new("echoes its text")
            .attr("text", AttrSchema::required(Type::String, "what to echo"))
            .attr("upper", AttrSchema::computed(Type::String, "the text in upper case"))
            .attr("secret", AttrSchema::computed(Type::String, "a secret").sensitive()),
    );
    registry.register(Arc::new(Lookup { schema, reads: reads.clone() }));
    (registry, reads)
}

struct Project {
    dir: tempfile::TempDir,
    cfg: Config,
    graph: Graph,
    registry: Registry,
    store: Box<dyn Store>,
}

/// The project `text` checked with `registry` (built for `dir`), with a
/// SQLite state in `dir`.
fn load(dir: tempfile::TempDir, registry: Registry, text: &str) -> Result<Project, Vec<Diagnostic>> {
    let mut sources = Sources::default();
    let file = sources.add("main.plinth", text);
    let parsed = plinth::syntax::parse_file(file, text)?;
    let (cfg, diags) = plinth::eval::declare(vec![parsed], sources, &registry);
    if !diags.is_empty() {
        return Err(diags);
    }
    let graph = plinth::graph::build(&cfg)?;
    let store = plinth::state::open(&dir.path().join("state.db").display().to_string(), "default").unwrap();
    Ok(Project { dir, cfg, graph, registry, store })
}

fn echo_project(text: &str) -> Result<(Project, Arc<AtomicUsize>), Vec<Diagnostic>> {
    let dir = tempfile::tempdir().unwrap();
    let (registry, reads) = registry(dir.path());
    Ok((load(dir, registry, text)?, reads))
}

fn codes(diags: &[Diagnostic]) -> Vec<&'static str> {
    diags.iter().map(|d| d.code).collect()
}

impl Project {
    fn plan(&mut self, options: PlanOptions) -> Result<Plan, Vec<Diagnostic>> {
        let prior = self.store.snapshot().unwrap();
        let vars = Default::default();
        let inputs = PlanInputs { env: "default", cfg: &self.cfg, graph: &self.graph, registry: &self.registry, prior: &prior, vars: &vars };
        let mut host = plinth::project::RunHost::new(self.dir.path());
        plinth::plan::plan(&inputs, &options, &mut host)
    }

    fn apply(&mut self, plan: &Plan) -> ApplyReport {
        let provider_ctx = ProviderContext { project_dir: self.dir.path().to_path_buf() };
        let vars = Default::default();
        let interrupt = Interrupt::default();
        // As the operations do: provider blocks from recorded values, for
        // what the walk does not configure itself (deletes).
        let prior = self.store.snapshot().unwrap();
        let mut host = plinth::project::RunHost::new(self.dir.path());
        let configs = plinth::plan::provider_configs_from_state(&self.cfg, &self.graph, &prior, &vars, &mut host);
        let ctx = ApplyContext {
            cfg: &self.cfg,
            graph: &self.graph,
            registry: &self.registry,
            provider_ctx: &provider_ctx,
            vars: &vars,
            parallelism: 4,
            command: "apply",
            interrupt: &interrupt,
            provider_configs: &configs,
        };
        let mut host = plinth::project::RunHost::new(self.dir.path());
        let store = self.store.as_mut();
        block(plinth::exec::apply(&ctx, plan, store, &mut host, &mut |_| {})).unwrap_or_else(|d| panic!("apply: {d:?}"))
    }

    fn recorded(&mut self) -> Vec<String> {
        let mut a: Vec<String> = self.store.snapshot().unwrap().instances.values().map(|r| r.address.clone()).collect();
        a.sort();
        a
    }
}

fn output<'p>(plan: &'p Plan, name: &str) -> &'p Value {
    &plan.outputs.iter().find(|o| o.name == name).unwrap_or_else(|| panic!("output {name}")).after
}

const ECHO: &str = r#"
resource file.file source {
  path    = "out/source.txt"
  content = "hello"
}

data lookup.echo e {
  text = file.file.source.content
}

resource file.file copy {
  path    = "out/copy.txt"
  content = data.lookup.echo.e.upper
}

output upper = data.lookup.echo.e.upper
"#;

#[test]
fn a_data_block_that_depends_on_a_change_is_read_during_apply_then_while_planning() {
    let (mut p, reads) = echo_project(ECHO).unwrap();
    let e = "data.lookup.echo.e";

    // `validate` (lenient): nothing is read.
    let checked = p.plan(PlanOptions { lenient: true, ..PlanOptions::default() }).unwrap();
    assert_eq!(checked.data.get(e), Some(&None));
    assert_eq!(reads.load(Ordering::SeqCst), 0);

    // The source file is created by this plan: the read waits for it.
    let first = p.plan(PlanOptions::default()).unwrap();
    assert_eq!(reads.load(Ordering::SeqCst), 0, "not read while planning");
    assert_eq!(first.data.get(e), Some(&None), "read during apply");
    assert!(output(&first, "upper").is_unknown_deep());
    let mut addresses: Vec<&str> = first.changes.iter().map(|c| c.address.as_str()).collect();
    addresses.sort_unstable();
    assert_eq!(addresses, vec!["file.file.copy", "file.file.source"], "a data block is never a change");
    let copy = first.changes.iter().find(|c| c.address == "file.file.copy").unwrap();
    assert!(copy.after.as_ref().unwrap()["content"].is_unknown_deep());

    let report = p.apply(&first);
    assert!(report.ok(), "{:?}", report.failures);
    assert_eq!(reads.load(Ordering::SeqCst), 1, "read once, before what depends on it");
    assert_eq!(std::fs::read_to_string(p.dir.path().join("out/copy.txt")).unwrap(), "HELLO");
    assert_eq!(report.outputs.iter().find(|o| o.0 == "upper").map(|o| o.1.clone()), Some(Value::String("HELLO".into())));
    assert_eq!(p.recorded(), vec!["file.file.copy", "file.file.source"], "data sources are not recorded");

    // Nothing it depends on changes now: read while planning, no change.
    let second = p.plan(PlanOptions::default()).unwrap();
    assert_eq!(reads.load(Ordering::SeqCst), 2);
    let Some(Some(Value::Map(read))) = second.data.get(e) else { panic!("read while planning: {:?}", second.data) };
    assert_eq!(read["upper"], Value::String("HELLO".into()));
    assert!(read["secret"].is_sensitive_deep(), "sensitive by the schema");
    assert!(second.changes.is_empty(), "{:?}", second.changes);
    assert!(!second.has_changes());
    assert_eq!(output(&second, "upper"), &Value::String("HELLO".into()));
    // Applying it uses what the plan read: no second read.
    let report = p.apply(&second);
    assert!(report.ok(), "{:?}", report.failures);
    assert_eq!(reads.load(Ordering::SeqCst), 2);

    // `--only` another resource: the data block is not read at all.
    let only = p.plan(PlanOptions { only: vec!["file.file.source".into()], ..PlanOptions::default() }).unwrap();
    assert!(only.data.is_empty(), "{:?}", only.data);
    assert_eq!(reads.load(Ordering::SeqCst), 2);
}

#[test]
fn a_known_configuration_is_read_while_planning_with_count() {
    let text = r#"
data lookup.echo e {
  count = 2
  text  = "n${count.index}"
}
output first = data.lookup.echo.e[0].upper
output all   = [for d in data.lookup.echo.e : d.text]
"#;
    let (mut p, reads) = echo_project(text).unwrap();
    let plan = p.plan(PlanOptions::default()).unwrap();
    assert_eq!(reads.load(Ordering::SeqCst), 2, "one read per instance");
    assert_eq!(output(&plan, "first"), &Value::String("N0".into()));
    assert_eq!(output(&plan, "all"), &Value::List(vec![Value::String("n0".into()), Value::String("n1".into())]));
    assert!(plan.changes.is_empty());
}

#[test]
fn a_sensitive_attribute_makes_an_output_sensitive() {
    let text = "data lookup.echo e { text = \"a\" }\noutput s = data.lookup.echo.e.secret\n";
    let (mut p, _) = echo_project(text).unwrap();
    let diags = p.plan(PlanOptions::default()).unwrap_err();
    assert_eq!(codes(&diags), vec!["P2034"], "{diags:?}");
    assert!(!format!("{diags:?}").contains("s3cr3t-a"), "never shown");
    let text = "data lookup.echo e { text = \"a\" }\noutput s = data.lookup.echo.e.secret { sensitive = true }\n";
    let (mut p, _) = echo_project(text).unwrap();
    let plan = p.plan(PlanOptions::default()).unwrap();
    assert!(output(&plan, "s").is_sensitive_deep());
}

#[test]
fn a_failed_read_is_located_at_the_data_block() {
    // The provider refuses an empty text; the plan says which block.
    let text = "data lookup.echo e { text = \"\" }\noutput o = data.lookup.echo.e.upper\n";
    let (mut p, _) = echo_project(text).unwrap();
    let diags = p.plan(PlanOptions::default()).unwrap_err();
    assert_eq!(codes(&diags), vec!["P6999"], "{diags:?}");
    assert!(diags[0].labels.iter().any(|l| l.text.contains("data.lookup.echo.e")), "{diags:?}");
}

#[test]
fn cycles_through_data_blocks_are_reported() {
    let text = "data lookup.echo a { text = data.lookup.echo.b.upper }\ndata lookup.echo b { text = \"${data.lookup.echo.a.upper}\" }\n";
    let diags = echo_project(text).err().expect("a cycle");
    assert_eq!(codes(&diags), vec!["P3001"], "{diags:?}");
    assert!(diags[0].help.contains("`data.lookup.echo.a`") && diags[0].help.contains("`data.lookup.echo.b`"), "{}", diags[0].help);
    assert_eq!(diags[0].labels.len(), 2, "each edge at its reference");
}

#[test]
fn data_as_a_param_name_is_refused() {
    let diags = echo_project("param data: string = \"x\"\ndata lookup.echo e { text = data }\n").err().expect("refused");
    assert!(codes(&diags).contains(&"P2151"), "{diags:?}");
}

// ---------------------------------------------------------------- the real aws provider

/// The aws provider 5.100.0 (protocol 5) and the S3 server, or None after a
/// note (a failure under CI).
fn aws_and_s3() -> Option<(std::path::PathBuf, String)> {
    let mirror = test_server("PLINTH_TEST_TF_AWS_MIRROR", "the aws provider 5.100.0 (scripts/services/tfproviders.sh)")?;
    let endpoint = test_server("PLINTH_TEST_S3_ENDPOINT", "the S3 server")?;
    Some((std::path::PathBuf::from(mirror), endpoint))
}

const AWS_BINARY: &str = "registry.terraform.io/hashicorp/aws/5.100.0/linux_amd64/terraform-provider-aws_v5.100.0_x5";

/// Built-in providers plus `aws` from the mirror, as `plinth init` would
/// register it: its schema cached in `dir`, its stderr in `dir/aws.log`.
fn aws_registry(dir: &std::path::Path, mirror: &std::path::Path) -> Registry {
    use plinth::tfplugin::provider::{cache_schema, Installed, TerraformFactory};
    let binary = mirror.join(AWS_BINARY);
    let schemas = cache_schema("aws", &binary, &dir.join("aws.schema.json")).unwrap_or_else(|d| panic!("schema: {d:?}"));
    let installed = Installed {
        source: "registry.terraform.io/hashicorp/aws".into(),
        binary,
        schemas,
        log: Some(dir.join("aws.log")),
        project_dir: Some(dir.to_path_buf()),
    };
    let mut registry = plinth::providers::builtin::registry_in(dir);
    registry.register(Arc::new(TerraformFactory::new("aws", installed).unwrap_or_else(|d| panic!("factory: {d:?}"))));
    registry
}

fn aws_provider_block(endpoint: &str) -> String {
    format!(
        r#"provider aws {{
  source                      = "hashicorp/aws"
  version                     = "5.100.0"
  region                      = "us-east-1"
  access_key                  = "test"
  secret_key                  = "test"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  s3_use_path_style           = true
  endpoints {{
    s3 = "{endpoint}"
  }}
}}
"#
    )
}

fn unique_bucket(tag: &str) -> String {
    format!("plinth-data-{tag}-{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

/// The attributes compared with Terraform's reading of the same bucket.
const BUCKET_ATTRIBUTES: &[&str] = &["id", "arn", "bucket", "bucket_domain_name", "bucket_regional_domain_name", "region", "hosted_zone_id"];

fn string_outputs(plan: &Plan) -> std::collections::BTreeMap<String, String> {
    plan.outputs.iter().map(|o| (o.name.clone(), o.after.peel().as_str().unwrap_or_else(|| panic!("{} = {}", o.name, o.after)).to_string())).collect()
}

#[test]
fn the_aws_provider_reads_an_s3_bucket_while_planning_as_terraform_does() {
    let Some((mirror, endpoint)) = aws_and_s3() else { return };
    let bucket = unique_bucket("read");
    block(s3_client(&endpoint).create_bucket().bucket(&bucket).send()).expect("create the bucket");
    let outputs: String = BUCKET_ATTRIBUTES.iter().map(|a| format!("output {a} = data.aws.s3_bucket.existing.{a}\n")).collect();
    let text = format!("{}\ndata aws.s3_bucket existing {{\n  bucket = \"{bucket}\"\n}}\n\n{outputs}", aws_provider_block(&endpoint));
    let dir = tempfile::tempdir().unwrap();
    let registry = aws_registry(dir.path(), &mirror);
    let mut p = load(dir, registry, &text).unwrap_or_else(|d| panic!("{d:#?}"));

    // validate: checked against the cached schema, no provider process.
    let checked = p.plan(PlanOptions { lenient: true, ..PlanOptions::default() }).unwrap_or_else(|d| panic!("{d:#?}"));
    assert!(output(&checked, "arn").is_unknown_deep());
    assert!(!p.dir.path().join("aws.log").exists(), "validate started the provider");

    let plan = p.plan(PlanOptions::default()).unwrap_or_else(|d| panic!("{d:#?}"));
    assert!(plan.changes.is_empty(), "{:?}", plan.changes);
    let got = string_outputs(&plan);
    assert_eq!(got["arn"], format!("arn:aws:s3:::{bucket}"));
    assert_eq!(got["bucket"], bucket);
    assert_eq!(got["region"], "us-east-1");

    // The same data source read by Terraform 1.11 with the same provider.
    match terraform_reads_bucket(&mirror, &endpoint, &bucket) {
        Some(want) => assert_eq!(got, want, "plinth (left) and terraform (right) read different values"),
        None => eprintln!("note: terraform is not installed; compared with the expected values only"),
    }

    // A misspelt data source is refused before any process runs.
    let dir = tempfile::tempdir().unwrap();
    let registry = aws_registry(dir.path(), &mirror);
    let wrong = format!("{}data aws.s3_buckets x {{ bucket = \"b\" }}\n", aws_provider_block(&endpoint));
    let diags = load(dir, registry, &wrong).err().expect("refused");
    assert_eq!(codes(&diags), vec!["P2150"], "{diags:?}");
    assert!(diags[0].help.contains("Did you mean `s3_bucket`?"), "{}", diags[0].help);
}

/// What `terraform` (on PATH) reads for the bucket with the provider from
/// the same mirror: the outputs of a configuration with only the data source.
fn terraform_reads_bucket(mirror: &std::path::Path, endpoint: &str, bucket: &str) -> Option<std::collections::BTreeMap<String, String>> {
    use std::process::Command;
    if !Command::new("terraform").arg("version").output().is_ok_and(|o| o.status.success()) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let outputs: String = BUCKET_ATTRIBUTES.iter().map(|a| format!("output \"{a}\" {{\n  value = data.aws_s3_bucket.existing.{a}\n}}\n")).collect();
    let main = format!(
        r#"terraform {{
  required_providers {{
    aws = {{
      source  = "hashicorp/aws"
      version = "5.100.0"
    }}
  }}
}}
provider "aws" {{
  region                      = "us-east-1"
  access_key                  = "test"
  secret_key                  = "test"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  s3_use_path_style           = true
  endpoints {{
    s3 = "{endpoint}"
  }}
}}
data "aws_s3_bucket" "existing" {{
  bucket = "{bucket}"
}}
{outputs}"#
    );
    std::fs::write(dir.path().join("main.tf"), main).unwrap();
    let cli = dir.path().join("terraform.rc");
    std::fs::write(&cli, format!("provider_installation {{\n  filesystem_mirror {{\n    path = \"{}\"\n  }}\n}}\n", mirror.display())).unwrap();
    let tf = |args: &[&str]| {
        let out = Command::new("terraform")
            .args(args)
            .current_dir(dir.path())
            .env("TF_CLI_CONFIG_FILE", &cli)
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1")
            .output()
            .expect("run terraform");
        assert!(out.status.success(), "terraform {args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    tf(&["init", "-input=false", "-no-color"]);
    tf(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    let json: serde_json::Value = serde_json::from_slice(&tf(&["output", "-json"])).unwrap();
    Some(json.as_object().unwrap().iter().map(|(k, v)| (k.clone(), v["value"].as_str().unwrap_or_default().to_string())).collect())
}

#[test]
fn the_aws_provider_reads_a_bucket_this_apply_creates_after_creating_it() {
    let Some((mirror, endpoint)) = aws_and_s3() else { return };
    let bucket = unique_bucket("made");
    let text = format!(
        "{}\nresource aws.s3_bucket made {{\n  bucket        = \"{bucket}\"\n  force_destroy = true\n}}\n\n\
         data aws.s3_bucket made {{\n  bucket = aws.s3_bucket.made.bucket\n}}\n\n\
         output arn    = data.aws.s3_bucket.made.arn\n\
         output domain = data.aws.s3_bucket.made.bucket_regional_domain_name\n",
        aws_provider_block(&endpoint)
    );
    let dir = tempfile::tempdir().unwrap();
    let registry = aws_registry(dir.path(), &mirror);
    let mut p = load(dir, registry, &text).unwrap_or_else(|d| panic!("{d:#?}"));

    // The bucket does not exist yet: reading it while planning would fail,
    // so the read waits for the create.
    let first = p.plan(PlanOptions::default()).unwrap_or_else(|d| panic!("{d:#?}"));
    assert_eq!(first.data.get("data.aws.s3_bucket.made"), Some(&None));
    assert!(output(&first, "arn").is_unknown_deep());
    assert_eq!(first.changes.iter().map(|c| c.address.as_str()).collect::<Vec<_>>(), vec!["aws.s3_bucket.made"]);
    let report = p.apply(&first);
    assert!(report.ok(), "{:?}", report.failures);
    let outputs: std::collections::BTreeMap<&str, &Value> = report.outputs.iter().map(|(n, v, _)| (n.as_str(), v)).collect();
    assert_eq!(outputs["arn"], &Value::String(format!("arn:aws:s3:::{bucket}")));
    assert!(outputs["domain"].as_str().is_some_and(|d| d.starts_with(&bucket)), "{:?}", outputs["domain"]);
    assert_eq!(p.recorded(), vec!["aws.s3_bucket.made"], "only the managed bucket is recorded");

    // Now it is read while planning, and nothing changes.
    let second = p.plan(PlanOptions::default()).unwrap_or_else(|d| panic!("{d:#?}"));
    assert!(matches!(second.data.get("data.aws.s3_bucket.made"), Some(Some(_))), "{:?}", second.data);
    assert!(second.changes.is_empty(), "{:?}", second.changes);
    assert_eq!(output(&second, "arn"), outputs["arn"]);

    // Clean up what the test made.
    let destroy = p.plan(PlanOptions { destroy: true, ..PlanOptions::default() }).unwrap_or_else(|d| panic!("{d:#?}"));
    assert!(p.apply(&destroy).ok());
}

/// The project in `dir` (with its modules) checked with `registry`, as the
/// operations load it.
fn load_dir(dir: tempfile::TempDir, registry: Registry) -> Result<Project, Vec<Diagnostic>> {
    let mut project = plinth::project::load(dir.path()).map_err(|(_, d)| d)?;
    let files = std::mem::take(&mut project.files);
    let mut loader = plinth::project::Loader::new(dir.path(), std::mem::take(&mut project.sources), plinth::sources::Mode::Locked).map_err(|d| vec![d])?;
    let vars = Default::default();
    let mut host = plinth::project::RunHost::new(dir.path());
    let expansion = plinth::eval::components::Expansion { loader: &mut loader, vars: &vars, host: &mut host, lenient: false };
    let (mut cfg, diags) = plinth::eval::declare_with(files, Sources::default(), &registry, Some(expansion));
    cfg.sources = std::mem::take(&mut loader.sources);
    if !diags.is_empty() {
        return Err(diags);
    }
    let graph = plinth::graph::build(&cfg)?;
    let store = plinth::state::open(&dir.path().join("state.db").display().to_string(), "default").unwrap();
    Ok(Project { dir, cfg, graph, registry, store })
}

#[test]
fn data_blocks_inside_components_are_prefixed_like_resources() {
    let dir = project(&[
        ("main.plinth", "module m from \"./mods/echo\" {\n  for_each = toset([\"a\", \"b\"])\n  t = each.key\n}\noutput a = module.m[\"a\"].upper\n"),
        (
            "mods/echo/main.plinth",
            "param t: string\n\ndata lookup.echo e {\n  text = t\n}\n\nlet shout = \"${data.lookup.echo.e.upper}!\"\n\noutput upper = shout\n",
        ),
    ]);
    let (reg, reads) = registry(dir.path());
    let mut p = load_dir(dir, reg).unwrap_or_else(|d| panic!("{d:#?}"));
    let mut addresses: Vec<&String> = p.cfg.data.keys().collect();
    addresses.sort();
    assert_eq!(addresses, vec!["module.m[\"a\"].data.lookup.echo.e", "module.m[\"b\"].data.lookup.echo.e"]);
    let plan = p.plan(PlanOptions::default()).unwrap_or_else(|d| panic!("{d:#?}"));
    assert_eq!(reads.load(Ordering::SeqCst), 2);
    assert_eq!(output(&plan, "a"), &Value::String("A!".into()));

    // `data` as a component kind, or a module's let, is refused.
    let dir = project(&[
        ("main.plinth", "data x from \"./mods/m\" {}\nmodule y from \"./mods/m\" {}\n"),
        ("mods/m/main.plinth", "let data = 1\ndata lookup.echo e { text = \"x\" }\noutput o = data.lookup.echo.e.upper\n"),
    ]);
    let (reg, _) = registry(dir.path());
    let diags = load_dir(dir, reg).err().expect("refused");
    assert_eq!(codes(&diags).iter().filter(|c| **c == "P2151").count(), 2, "{diags:#?}");
}
