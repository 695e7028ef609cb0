//! `data <provider>.<type> <name> { … }`: parsing, and the static checks
//! against a provider's `data_sources` schema (the ones `plinth validate`
//! makes, with no provider process).

use plinth_base::diagnostic::{Diagnostic, Sources};
use plinth_base::types::Type;
use plinth_base::value::Map;
use plinth_language::eval::{declare, Config, DeclId};
use plinth_language::syntax::{ast, parse_file};
use plinth_sdk::{AttrSchema, BlockSchema, Nesting, Provider, ProviderContext, ProviderFactory, ProviderSchema, Registry, ResourceSchema};
use std::sync::Arc;

/// A provider with the shape of a Terraform provider's schema: one
/// resource type and two data sources, one with a nested block.
struct Fake {
    schema: ProviderSchema,
}

impl ProviderFactory for Fake {
    fn name(&self) -> &'static str {
        "aws"
    }
    fn schema(&self) -> &ProviderSchema {
        &self.schema
    }
    fn configure(&self, _config: &Map, _ctx: &ProviderContext) -> Result<Arc<dyn Provider>, Diagnostic> {
        Err(Diagnostic::new("P0000", "not in these tests"))
    }
}

fn registry() -> Registry {
    let text = || Type::String;
    let bucket = ResourceSchema::new("a bucket")
        .attr("bucket", AttrSchema::required(text(), "the bucket's name"))
        .attr("arn", AttrSchema::computed(text(), "its ARN"))
        .attr("region", AttrSchema::computed(text(), "its region"))
        .attr("bucket_regional_domain_name", AttrSchema::computed(text(), "its regional domain name"))
        .attr("token", AttrSchema::computed(text(), "a secret").sensitive())
        .attr("tags", AttrSchema { optional: true, ..AttrSchema::computed(Type::Map(Box::new(text())), "tags: set, or read") });
    let mut filter = indexmap::IndexMap::default();
    filter.insert("name", AttrSchema::required(text(), "what to filter on"));
    filter.insert("values", AttrSchema::required(Type::List(Box::new(text())), "the values"));
    let filter_ty = Type::List(Box::new(Type::Object(vec![("name".into(), text()), ("values".into(), Type::List(Box::new(text())))])));
    let ami = ResourceSchema::new("an image")
        .attr("most_recent", AttrSchema::optional(Type::Bool, "the newest"))
        .attr("id", AttrSchema::computed(text(), "its id"))
        .attr("filter", AttrSchema::nested_block(filter_ty, BlockSchema { nesting: Nesting::List, min_items: 0, max_items: 0, attributes: filter }, "filters"));
    let mut schema = ProviderSchema::default();
    schema.config.insert("region", AttrSchema::optional(text(), "the region"));
    schema.resources.insert(
        "s3_bucket",
        ResourceSchema::new("a bucket").attr("bucket", AttrSchema::optional(text(), "name")).attr("id", AttrSchema::computed(text(), "id")),
    );
    schema.data_sources.insert("s3_bucket", bucket);
    schema.data_sources.insert("ami", ami);
    let mut r = Registry::empty();
    r.register(Arc::new(Fake { schema }));
    r
}

fn check(src: &str) -> (Config, Vec<Diagnostic>) {
    let mut sources = Sources::default();
    let file = sources.add("main.plinth", src);
    let parsed = parse_file(file, src).unwrap_or_else(|d| panic!("parses: {d:?}"));
    declare(vec![parsed], sources, &registry())
}

fn codes(diags: &[Diagnostic]) -> Vec<&'static str> {
    let mut c: Vec<&'static str> = diags.iter().map(|d| d.code).collect();
    c.sort_unstable();
    c
}

fn one(src: &str, code: &str) -> Diagnostic {
    let (_, diags) = check(src);
    assert_eq!(codes(&diags), vec![code], "{diags:#?}");
    diags.into_iter().next().unwrap()
}

const PROVIDER: &str = "provider aws { region = \"us-east-1\" }\n";

#[test]
fn a_data_block_parses_like_a_resource() {
    let src = "data aws.s3_bucket existing {\n  bucket = \"plinth-data\"\n}\n";
    let mut sources = Sources::default();
    let file = sources.add("main.plinth", src);
    let parsed = parse_file(file, src).unwrap();
    let [ast::Item::Data(d)] = parsed.items.as_slice() else { panic!("one data block: {:?}", parsed.items) };
    assert_eq!((d.provider.name.as_str(), d.rtype.name.as_str(), d.name.name.as_str()), ("aws", "s3_bucket", "existing"));
    assert!(d.body.attr("bucket").is_some());
    // `data` stays an ordinary name elsewhere: an attribute, a nested block.
    let src = "resource aws.s3_bucket b {\n  data = 1\n}\nresource aws.s3_bucket c {\n  data { x = 1 }\n}\n";
    let parsed = parse_file(file, src).unwrap();
    assert!(matches!(parsed.items.as_slice(), [ast::Item::Resource(_), ast::Item::Resource(_)]));
}

#[test]
fn references_make_edges_to_the_data_block_and_from_it() {
    let src = format!(
        "{PROVIDER}resource aws.s3_bucket made {{ bucket = \"b\" }}\n\
         data aws.s3_bucket existing {{\n  bucket = aws.s3_bucket.made.bucket\n}}\n\
         let arn = data.aws.s3_bucket.existing.arn\n\
         output region = data.aws.s3_bucket.existing.region\n\
         resource aws.s3_bucket copy {{ bucket = \"${{data.aws.s3_bucket.existing.bucket_regional_domain_name}}-copy\" }}\n"
    );
    let (cfg, diags) = check(&src);
    assert!(diags.is_empty(), "{diags:#?}");
    let address = "data.aws.s3_bucket.existing".to_string();
    assert!(cfg.data.contains_key(&address));
    assert!(!cfg.resources.contains_key(&address), "a data block is no managed resource");
    let data = DeclId::Data(address.clone());
    assert_eq!(data.to_string(), "data.aws.s3_bucket.existing");
    let targets = |id: &DeclId| cfg.references[id].iter().map(|r| r.target.clone()).collect::<Vec<_>>();
    assert!(targets(&data).contains(&DeclId::Resource("aws.s3_bucket.made".into())));
    assert!(targets(&data).contains(&DeclId::Provider("aws".into())), "it waits for its provider's block");
    assert_eq!(targets(&DeclId::Let("arn".into())), vec![data.clone()]);
    assert_eq!(targets(&DeclId::Output("region".into())), vec![data.clone()]);
    assert!(targets(&DeclId::Resource("aws.s3_bucket.copy".into())).contains(&data));
}

#[test]
fn meta_arguments_as_in_resources() {
    let src = format!(
        "{PROVIDER}provider aws west {{ region = \"us-west-2\" }}\n\
         resource aws.s3_bucket made {{ bucket = \"b\" }}\n\
         data aws.s3_bucket many {{\n  for_each = toset([\"a\", \"b\"])\n  bucket = each.key\n  provider = aws.west\n  depends_on = [aws.s3_bucket.made]\n}}\n\
         data aws.s3_bucket counted {{\n  count = 2\n  bucket = \"b${{count.index}}\"\n}}\n\
         output a = data.aws.s3_bucket.many[\"a\"].arn\n\
         output b = data.aws.s3_bucket.counted[1].arn\n"
    );
    let (cfg, diags) = check(&src);
    assert!(diags.is_empty(), "{diags:#?}");
    let many = &cfg.data["data.aws.s3_bucket.many"];
    assert_eq!(many.meta.provider_config.as_deref(), Some("aws.west"));
    assert!(many.meta.for_each.is_some());
    let refs: Vec<DeclId> = cfg.references[&DeclId::Data("data.aws.s3_bucket.many".into())].iter().map(|r| r.target.clone()).collect();
    assert!(refs.contains(&DeclId::Provider("aws.west".into())));
    assert!(refs.contains(&DeclId::Resource("aws.s3_bucket.made".into())));
    assert!(cfg.data["data.aws.s3_bucket.counted"].meta.count.is_some());
}

#[test]
fn an_unknown_data_source_says_which_there_are() {
    let d = one(&format!("{PROVIDER}data aws.s3_buckt existing {{ bucket = \"b\" }}\n"), "P2150");
    assert!(d.help.contains("Did you mean `s3_bucket`?"), "{}", d.help);
    assert!(d.help.contains("`ami`"), "{}", d.help);
    // A resource type is not a data source of the provider.
    let (_, diags) = check("data random.password p { length = 3 }\n");
    assert!(codes(&diags).contains(&"P2010") || codes(&diags).contains(&"P2150"), "{diags:#?}");
}

#[test]
fn unknown_missing_and_computed_attributes() {
    let src = format!("{PROVIDER}data aws.s3_bucket existing {{\n  bukcet = \"b\"\n}}\n");
    let (_, diags) = check(&src);
    assert_eq!(codes(&diags), vec!["P2004", "P2005"], "{diags:#?}");
    let unknown = diags.iter().find(|d| d.code == "P2004").unwrap();
    assert!(unknown.help.contains("Did you mean `bucket`?"), "{}", unknown.help);
    let d = one(&format!("{PROVIDER}data aws.s3_bucket existing {{\n  bucket = \"b\"\n  arn = \"x\"\n}}\n"), "P2012");
    assert!(d.help.contains("data.aws.s3_bucket.existing.arn"), "{}", d.help);
    // Terraform's Optional + Computed arguments may be set.
    let (_, diags) = check(&format!("{PROVIDER}data aws.s3_bucket existing {{\n  bucket = \"b\"\n  tags = {{ a = \"b\" }}\n}}\n"));
    assert!(diags.is_empty(), "{diags:#?}");
}

#[test]
fn nested_blocks_are_checked_against_the_schema() {
    let ok = format!(
        "{PROVIDER}data aws.ami a {{\n  most_recent = true\n  filter {{\n    name   = \"n\"\n    values = [\"v\"]\n  }}\n}}\noutput id = data.aws.ami.a.id\n"
    );
    let (_, diags) = check(&ok);
    assert!(diags.is_empty(), "{diags:#?}");
    let d = one(&format!("{PROVIDER}data aws.ami a {{\n  filter {{\n    nme    = \"n\"\n    name   = \"n\"\n    values = [\"v\"]\n  }}\n}}\n"), "P2004");
    assert!(d.help.contains("Did you mean `name`?"), "{}", d.help);
    // `lifecycle` is a resource's: a data block manages nothing.
    let d = one(&format!("{PROVIDER}data aws.ami a {{\n  lifecycle {{ prevent_destroy = true }}\n}}\n"), "P2014");
    assert!(d.help.contains("`filter`") && !d.help.contains("`lifecycle`"), "{}", d.help);
}

#[test]
fn references_to_data_blocks_are_checked() {
    let decl = format!("{PROVIDER}data aws.s3_bucket existing {{ bucket = \"b\" }}\n");
    let d = one(&format!("{decl}output o = data.aws.s3_bucket.existng.arn\n"), "P2152");
    assert!(d.help.contains("Did you mean `data.aws.s3_bucket.existing`?"), "{}", d.help);
    one(&format!("{decl}output o = data.aws\n"), "P2152");
    let d = one(&format!("{decl}output o = data.aws.s3_bucket.existing.ar\n"), "P2006");
    assert!(d.help.contains("Did you mean `arn`?"), "{}", d.help);
    // Without any data block, `data` is still the data sources' root.
    one(&format!("{PROVIDER}output o = data.aws.s3_bucket.x.arn\n"), "P2152");
}

#[test]
fn data_is_a_reserved_name() {
    let block = format!("{PROVIDER}data aws.s3_bucket existing {{ bucket = \"b\" }}\n");
    for (src, kind) in [
        (format!("{block}param data: string\n"), "a param"),
        (format!("{block}let data = {{ a = 1 }}\n"), "a let"),
        ("provider data {}\n".to_string(), "a provider"),
    ] {
        let (_, diags) = check(&src);
        let d = diags.iter().find(|d| d.code == "P2151").unwrap_or_else(|| panic!("P2151 for {src}: {diags:#?}"));
        assert!(d.help.contains(kind) && d.help.contains("data.<provider>.<type>.<name>"), "{}", d.help);
        assert!(!d.labels.is_empty(), "located");
    }
    // Without data blocks in the module a param or let may keep the name
    // (a Secret's `data` entries), and `data.x` reads it.
    let (cfg, diags) = check("param data: map(string) = {}\noutput o = data.username\n");
    assert!(diags.is_empty(), "{diags:#?}");
    assert_eq!(cfg.references[&DeclId::Output("o".into())][0].target, DeclId::Param("data".into()));
    // A data block named `data` is fine: the name is the last part.
    let (_, diags) = check(&format!("{PROVIDER}data aws.s3_bucket data {{ bucket = \"b\" }}\noutput o = data.aws.s3_bucket.data.arn\n"));
    assert!(diags.is_empty(), "{diags:#?}");
}

#[test]
fn a_sensitive_attribute_of_the_schema_is_known_to_the_checker() {
    // `token` is sensitive in the schema; reading it is allowed (the plan
    // marks it sensitive, and an output built from it must say so).
    let (_, diags) = check(&format!("{PROVIDER}data aws.s3_bucket existing {{ bucket = \"b\" }}\nlet t = data.aws.s3_bucket.existing.token\n"));
    assert!(diags.is_empty(), "{diags:#?}");
}
