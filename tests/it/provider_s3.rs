//! The `s3` provider against a real S3-compatible server (moto), started by
//! scripts/test (scripts/services/s3.sh), which exports
//! PLINTH_TEST_S3_ENDPOINT and the AWS_* credentials. Every test makes its
//! own buckets; existence is checked with the SDK directly.

use crate::provider_conformance::{run as conformance, Case};
use crate::*;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Tag, Tagging};

fn endpoint() -> Option<String> {
    test_server("PLINTH_TEST_S3_ENDPOINT", "the S3 server")
}

fn client(endpoint: &str) -> aws_sdk_s3::Client {
    s3_client(endpoint)
}

fn unique(tag: &str) -> String {
    format!("plinth-p-{tag}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

fn provider_block(endpoint: &str) -> String {
    format!("provider s3 {{\n  endpoint   = \"{endpoint}\"\n  region     = \"us-east-1\"\n  path_style = true\n}}\n")
}

/// Commands see the endpoint only through the provider block (and what the
/// objects recorded), never through AWS_ENDPOINT_URL.
fn env() -> Vec<(String, String)> {
    vec![("AWS_ENDPOINT_URL".into(), String::new()), ("AWS_ENDPOINT_URL_S3".into(), String::new())]
}

fn bucket_tags(endpoint: &str, bucket: &str) -> Option<Vec<(String, String)>> {
    let c = client(endpoint);
    block(async {
        c.head_bucket().bucket(bucket).send().await.ok()?;
        let tags = match c.get_bucket_tagging().bucket(bucket).send().await {
            Ok(t) => t.tag_set().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect(),
            Err(_) => vec![],
        };
        Some(tags)
    })
}

fn tagging(pairs: &[(&str, &str)]) -> Tagging {
    let set = pairs.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build().unwrap()).collect();
    Tagging::builder().set_tag_set(Some(set)).build().unwrap()
}

#[test]
fn buckets_pass_the_conformance_suite() {
    let Some(ep) = endpoint() else { return };
    let bucket = unique("conf");
    let config = format!(
        "{}resource s3.bucket b {{\n  name       = \"{bucket}\"\n  versioning = true\n  tags       = {{ version = \"{{V}}\", team = \"platform\" }}\n}}\n",
        provider_block(&ep)
    );
    let (e1, b1) = (ep.clone(), bucket.clone());
    let exists = move |v: Option<&str>| match bucket_tags(&e1, &b1) {
        None => false,
        Some(tags) => v.is_none_or(|v| tags.contains(&("version".to_string(), v.to_string()))),
    };
    let (e2, b2) = (ep.clone(), bucket.clone());
    let tamper = move || {
        let c = client(&e2);
        block(c.put_bucket_tagging().bucket(&b2).tagging(tagging(&[("version", "tampered")])).send()).expect("tamper tags");
    };
    conformance(&Case { name: "s3.bucket", config: &config, args: vec![], env: env(), exists: &exists, tamper: &tamper });
}

#[test]
fn objects_pass_the_conformance_suite() {
    let Some(ep) = endpoint() else { return };
    let bucket = unique("obj");
    block(client(&ep).create_bucket().bucket(&bucket).send()).expect("create bucket");
    let config = format!(
        "{}resource s3.object o {{\n  bucket  = \"{bucket}\"\n  key     = \"conf/app.txt\"\n  content = \"version {{V}}\"\n  tags    = {{ owner = \"plinth\" }}\n}}\n",
        provider_block(&ep)
    );
    let (e1, b1) = (ep.clone(), bucket.clone());
    let exists = move |v: Option<&str>| {
        let c = client(&e1);
        block(async {
            match c.get_object().bucket(&b1).key("conf/app.txt").send().await {
                Ok(o) => {
                    let body = o.body.collect().await.expect("body").into_bytes();
                    v.is_none_or(|v| body.as_ref() == format!("version {v}").as_bytes())
                }
                Err(_) => false,
            }
        })
    };
    let (e2, b2) = (ep.clone(), bucket.clone());
    let tamper = move || {
        let c = client(&e2);
        block(c.put_object().bucket(&b2).key("conf/app.txt").body(ByteStream::from_static(b"tampered")).send()).expect("tamper object");
    };
    conformance(&Case { name: "s3.object", config: &config, args: vec![], env: env(), exists: &exists, tamper: &tamper });
    block(client(&ep).delete_bucket().bucket(&bucket).send()).expect("the bucket is empty again");
}

fn cmd(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut c = plinth();
    c.args(args).current_dir(dir);
    for (k, v) in env() {
        c.env(k, v);
    }
    c.output().expect("run plinth")
}

#[test]
fn a_policy_rewritten_in_another_layout_is_not_drift() {
    let Some(ep) = endpoint() else { return };
    let bucket = unique("pol");
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"Read","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::123456789012:root"}},"Action":"s3:GetObject","Resource":"arn:aws:s3:::{bucket}/*"}}]}}"#
    );
    let config = format!(
        "{}resource s3.bucket b {{\n  name   = \"{bucket}\"\n  policy = {}\n}}\n",
        provider_block(&ep),
        serde_json::to_string(&policy).unwrap().replace("${", "$${")
    );
    let p = project(&[("main.plinth", &config)]);
    assert_exit(&cmd(p.path(), &["apply", "--auto-approve"]), 0);
    assert_exit(&cmd(p.path(), &["drift"]), 0);
    // The same document, keys reordered and laid out differently.
    let rewritten = format!(
        "{{\n  \"Statement\": [\n    {{\n      \"Resource\": \"arn:aws:s3:::{bucket}/*\",\n      \"Action\": \"s3:GetObject\",\n      \"Principal\": {{ \"AWS\": \"arn:aws:iam::123456789012:root\" }},\n      \"Effect\": \"Allow\",\n      \"Sid\": \"Read\"\n    }}\n  ],\n  \"Version\": \"2012-10-17\"\n}}\n"
    );
    block(client(&ep).put_bucket_policy().bucket(&bucket).policy(&rewritten).send()).expect("rewrite the policy");
    let drift = cmd(p.path(), &["drift"]);
    assert_exit(&drift, 0);
    assert_exit(&cmd(p.path(), &["plan", "--detailed-exitcode", "--refresh"]), 0);
    // A real change is drift.
    let changed = rewritten.replace("s3:GetObject", "s3:PutObject");
    block(client(&ep).put_bucket_policy().bucket(&bucket).policy(&changed).send()).expect("change the policy");
    let drift = cmd(p.path(), &["drift"]);
    assert_exit(&drift, 2);
    assert!(stdout(&drift).contains("policy"), "{}", stdout(&drift));
    assert_exit(&cmd(p.path(), &["destroy", "--auto-approve"]), 0);
    assert!(bucket_tags(&ep, &bucket).is_none(), "the bucket is gone");
}

#[test]
fn a_thousand_objects_drift_and_force_destroy() {
    let Some(ep) = endpoint() else { return };
    let bucket = unique("many");
    let config = format!(
        "{}resource s3.bucket b {{\n  name          = \"{bucket}\"\n  force_destroy = true\n}}\nresource s3.object o {{\n  count   = 1000\n  bucket  = s3.bucket.b.name\n  key     = \"many/${{count.index}}.json\"\n  content = \"{{\\\"n\\\": ${{count.index}}}}\"\n}}\n",
        provider_block(&ep)
    );
    let p = project(&[("main.plinth", &config)]);
    let started = std::time::Instant::now();
    assert_exit(&cmd(p.path(), &["apply", "--auto-approve"]), 0);
    eprintln!("s3 provider: apply of 1 bucket + 1,000 objects took {:.2} s", started.elapsed().as_secs_f64());
    let started = std::time::Instant::now();
    assert_exit(&cmd(p.path(), &["drift"]), 0);
    eprintln!("s3 provider: drift over 1,000 objects took {:.2} s", started.elapsed().as_secs_f64());
    // The content type was guessed from the extension.
    let head = block(client(&ep).head_object().bucket(&bucket).key("many/7.json").send()).expect("head");
    assert_eq!(head.content_type(), Some("application/json"));
    // An object nobody manages beside the managed ones is listed.
    block(client(&ep).put_object().bucket(&bucket).key("many/stray.txt").body(ByteStream::from_static(b"stray")).send()).expect("put stray");
    let drift = cmd(p.path(), &["drift"]);
    assert_exit(&drift, 2);
    assert!(stdout(&drift).contains("many/stray.txt"), "{}", stdout(&drift));
    // force_destroy empties the bucket of what Plinth does not manage.
    assert_exit(&cmd(p.path(), &["destroy", "--auto-approve"]), 0);
    assert!(bucket_tags(&ep, &bucket).is_none(), "the bucket is gone");
}

#[test]
fn a_bucket_that_is_not_empty_is_p6406_without_force_destroy() {
    let Some(ep) = endpoint() else { return };
    let bucket = unique("full");
    let config = format!("{}resource s3.bucket b {{\n  name = \"{bucket}\"\n}}\n", provider_block(&ep));
    let p = project(&[("main.plinth", &config)]);
    assert_exit(&cmd(p.path(), &["apply", "--auto-approve"]), 0);
    block(client(&ep).put_object().bucket(&bucket).key("x").body(ByteStream::from_static(b"x")).send()).expect("put");
    let out = cmd(p.path(), &["destroy", "--auto-approve"]);
    assert_exit(&out, 1);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("P6406") && text.contains("force_destroy"), "{text}");
    block(client(&ep).delete_object().bucket(&bucket).key("x").send()).expect("delete");
    assert_exit(&cmd(p.path(), &["destroy", "--auto-approve"]), 0);
}

#[test]
fn objects_from_a_source_file_are_uploaded_and_their_edits_detected() {
    let Some(ep) = endpoint() else { return };
    let bucket = unique("src");
    let config = format!(
        "{}resource s3.bucket b {{\n  name          = \"{bucket}\"\n  force_destroy = true\n}}\nresource s3.object o {{\n  bucket = s3.bucket.b.name\n  key    = \"site/index.html\"\n  source = \"site/index.html\"\n}}\n",
        provider_block(&ep)
    );
    let p = project(&[("main.plinth", &config), ("site/index.html", "<h1>one</h1>")]);
    assert_exit(&cmd(p.path(), &["apply", "--auto-approve"]), 0);
    let get = || {
        block(async {
            let o = client(&ep).get_object().bucket(&bucket).key("site/index.html").send().await.expect("get");
            let ct = o.content_type().map(str::to_string);
            (String::from_utf8(o.body.collect().await.unwrap().into_bytes().to_vec()).unwrap(), ct)
        })
    };
    assert_eq!(get(), ("<h1>one</h1>".to_string(), Some("text/html".to_string())));
    assert_exit(&cmd(p.path(), &["drift"]), 0);
    std::fs::write(p.path().join("site/index.html"), "<h1>two</h1>").unwrap();
    assert_exit(&cmd(p.path(), &["drift"]), 2);
    assert_exit(&cmd(p.path(), &["apply", "--auto-approve", "--refresh"]), 0);
    assert_eq!(get().0, "<h1>two</h1>");
    assert_exit(&cmd(p.path(), &["drift"]), 0);
    assert_exit(&cmd(p.path(), &["destroy", "--auto-approve"]), 0);
}

/// The bucket's lifecycle rules as (id, prefix, enabled, expiration days), sorted by id.
fn lifecycle(endpoint: &str, bucket: &str) -> Vec<(String, String, bool, Option<i32>)> {
    use aws_sdk_s3::types::ExpirationStatus;
    let c = client(endpoint);
    match block(c.get_bucket_lifecycle_configuration().bucket(bucket).send()) {
        Ok(out) => {
            let mut rules: Vec<_> = out
                .rules()
                .iter()
                .map(|r| {
                    (
                        r.id().unwrap_or_default().to_string(),
                        r.filter().and_then(|f| f.prefix()).unwrap_or_default().to_string(),
                        r.status() == &ExpirationStatus::Enabled,
                        r.expiration().and_then(|e| e.days()),
                    )
                })
                .collect();
            rules.sort();
            rules
        }
        Err(e) => {
            let text = format!("{e:?}");
            assert!(text.contains("NoSuchLifecycleConfiguration"), "{text}");
            vec![]
        }
    }
}

#[test]
fn lifecycle_rules_are_applied_drift_is_seen_and_removal_deletes_them() {
    use aws_sdk_s3::types::{BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter};
    let Some(ep) = endpoint() else { return };
    let bucket = unique("life");
    let with_rules = format!(
        "{}resource s3.bucket b {{\n  name = \"{bucket}\"\n  lifecycle_rules = [{{\n    id              = \"logs\"\n    prefix          = \"logs/\"\n    expiration_days = 30\n  }}]\n}}\n",
        provider_block(&ep)
    );
    let p = project(&[("main.plinth", &with_rules)]);
    assert_exit(&cmd(p.path(), &["apply", "--auto-approve"]), 0);
    assert_eq!(lifecycle(&ep, &bucket), vec![("logs".to_string(), "logs/".to_string(), true, Some(30))]);
    assert_exit(&cmd(p.path(), &["drift"]), 0);
    assert_exit(&cmd(p.path(), &["plan", "--detailed-exitcode", "--refresh"]), 0);
    // Changed outside Plinth: the rule now expires after 7 days.
    let rule = LifecycleRule::builder()
        .id("logs")
        .filter(LifecycleRuleFilter::builder().prefix("logs/").build())
        .status(ExpirationStatus::Enabled)
        .expiration(LifecycleExpiration::builder().days(7).build())
        .build()
        .unwrap();
    let conf = BucketLifecycleConfiguration::builder().rules(rule).build().unwrap();
    block(client(&ep).put_bucket_lifecycle_configuration().bucket(&bucket).lifecycle_configuration(conf).send()).expect("change the rule");
    let drift = cmd(p.path(), &["drift"]);
    assert_exit(&drift, 2);
    assert!(stdout(&drift).contains("lifecycle_rules"), "{}", stdout(&drift));
    assert_exit(&cmd(p.path(), &["apply", "--auto-approve", "--refresh"]), 0);
    assert_eq!(lifecycle(&ep, &bucket), vec![("logs".to_string(), "logs/".to_string(), true, Some(30))]);
    assert_exit(&cmd(p.path(), &["drift"]), 0);
    // A bad rule is P6409, before anything changes.
    let bad = with_rules.replace("expiration_days = 30", "expiration_days = 0");
    std::fs::write(p.path().join("main.plinth"), &bad).unwrap();
    let out = cmd(p.path(), &["apply", "--auto-approve"]);
    assert_exit(&out, 1);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("P6409") && text.contains("expiration_days"), "{text}");
    // No rules: the lifecycle configuration is deleted.
    let without = format!("{}resource s3.bucket b {{\n  name = \"{bucket}\"\n}}\n", provider_block(&ep));
    std::fs::write(p.path().join("main.plinth"), &without).unwrap();
    assert_exit(&cmd(p.path(), &["apply", "--auto-approve"]), 0);
    assert_eq!(lifecycle(&ep, &bucket), vec![]);
    assert_exit(&cmd(p.path(), &["drift"]), 0);
    assert_exit(&cmd(p.path(), &["destroy", "--auto-approve"]), 0);
    assert!(bucket_tags(&ep, &bucket).is_none(), "the bucket is gone");
}

#[test]
fn creating_a_bucket_that_already_exists_is_refused_not_adopted() {
    let Some(ep) = endpoint() else { return };
    let bucket = unique("theirs");
    block(client(&ep).create_bucket().bucket(&bucket).send()).expect("create");
    block(client(&ep).put_object().bucket(&bucket).key("theirs.txt").body(ByteStream::from_static(b"x")).send()).expect("put");
    let config = format!("{}resource s3.bucket b {{\n  name          = \"{bucket}\"\n  force_destroy = true\n}}\n", provider_block(&ep));
    let p = project(&[("main.plinth", &config)]);
    let out = cmd(p.path(), &["apply", "--auto-approve"]);
    assert_exit(&out, 1);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("P6410") && text.contains(&bucket) && text.contains("already exists"), "{text}");
    assert!(stdout(&cmd(p.path(), &["state", "list"])).trim().is_empty(), "nothing recorded");
    // Nothing of it is Plinth's: a destroy leaves it and what it holds.
    assert_exit(&cmd(p.path(), &["destroy", "--auto-approve"]), 0);
    block(client(&ep).head_object().bucket(&bucket).key("theirs.txt").send()).expect("the bucket and its object are still there");
    block(client(&ep).delete_object().bucket(&bucket).key("theirs.txt").send()).expect("delete");
    block(client(&ep).delete_bucket().bucket(&bucket).send()).expect("delete bucket");
}

#[test]
fn destroying_objects_of_a_versioned_bucket_deletes_their_versions_then_the_bucket() {
    let Some(ep) = endpoint() else { return };
    let bucket = unique("versioned");
    let config = |v: &str| {
        format!(
            "{}resource s3.bucket b {{\n  name       = \"{bucket}\"\n  versioning = true\n}}\nresource s3.object o {{\n  bucket  = s3.bucket.b.name\n  key     = \"dir/app.json\"\n  content = \"{v}\"\n}}\nresource s3.object p {{\n  bucket  = s3.bucket.b.name\n  key     = \"dir/app.json.bak\"\n  content = \"{v}\"\n}}\n",
            provider_block(&ep)
        )
    };
    let p = project(&[("main.plinth", &config("one"))]);
    assert_exit(&cmd(p.path(), &["apply", "--auto-approve"]), 0);
    std::fs::write(p.path().join("main.plinth"), config("two")).expect("write");
    assert_exit(&cmd(p.path(), &["apply", "--auto-approve"]), 0);
    let versions = |key: &str| {
        let page = block(client(&ep).list_object_versions().bucket(&bucket).prefix(key).send()).expect("list versions");
        page.versions().iter().filter(|v| v.key() == Some(key)).count() + page.delete_markers().iter().filter(|m| m.key() == Some(key)).count()
    };
    assert_eq!(versions("dir/app.json"), 2, "two versions of the object");
    // Only the object: its versions go, its neighbour's stay.
    std::fs::write(p.path().join("main.plinth"), config("two").split("resource s3.object p").next().unwrap()).expect("write");
    // (the neighbour leaves the configuration: destroy it alone first)
    let out = cmd(p.path(), &["apply", "--auto-approve"]);
    assert_exit(&out, 0);
    assert_eq!(versions("dir/app.json.bak"), 0, "{}", stdout(&out));
    assert_eq!(versions("dir/app.json"), 2, "the other key's versions stay");
    let out = cmd(p.path(), &["destroy", "--auto-approve"]);
    assert_exit(&out, 0);
    assert!(block(client(&ep).head_bucket().bucket(&bucket).send()).is_err(), "the bucket is gone");
}
