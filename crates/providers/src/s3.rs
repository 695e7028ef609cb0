//! `s3`: buckets and objects in any S3-compatible object store (AWS S3,
//! MinIO, OBS, moto), through aws-sdk-s3 built by hand (no aws-config).
//!
//! The provider block (`endpoint`, `region`, `path_style`, `access_key`,
//! `secret_key`, `session_token`) is all optional; credentials default to
//! `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, the
//! endpoint to `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`, the region to
//! `AWS_REGION` / `AWS_DEFAULT_REGION`, then `us-east-1`.
//!
//! Every object records where it lives (computed `endpoint`, `region`,
//! `path_style`): the engine configures providers without their block for
//! reads (`drift`, `--refresh`), reconciliation and deletes of removed
//! resources, and those calls must still reach the right server. Listing
//! (unmanaged objects) only gets the inputs of managed objects, so reads in
//! the same process remember each bucket's location for it.
//!
//! Errors are `P64xx` (see docs/providers/s3.md); they name the bucket, key
//! and endpoint, never credentials; throttling, 5xx and network failures are
//! retryable.

use super::*;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration, Delete,
    ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter, NoncurrentVersionExpiration, ObjectIdentifier, PublicAccessBlockConfiguration,
    Tag, Tagging, VersioningConfiguration,
};
use aws_sdk_s3::Client;
use sha2::Digest;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

/// Objects fetched or deleted at once.
const BATCH: usize = 1000;

pub struct S3Factory {
    schema: ProviderSchema,
}

fn location_attrs(r: ResourceSchema) -> ResourceSchema {
    r.attr("endpoint", AttrSchema::computed(Type::String, "the endpoint the object lives at (\"\" for AWS S3)"))
        .attr("region", AttrSchema::computed(Type::String, "the region the object lives in"))
        .attr("path_style", AttrSchema::computed(Type::Bool, "whether path-style addressing reaches it"))
}

impl S3Factory {
    pub fn new() -> Self {
        let tags = || AttrSchema::optional(Type::Map(Box::new(Type::String)), "tags (key → value)").default(Value::Map(Map::default()));
        let bucket = ResourceSchema::new("An S3 bucket.")
            .attr("name", AttrSchema::required(Type::String, "the bucket's name").forces_replacement())
            .attr("versioning", AttrSchema::optional(Type::Bool, "keep every version of every object").default(Value::Bool(false)))
            .attr("tags", tags())
            .attr("policy", AttrSchema::optional(Type::String, "a JSON bucket policy; compared by content"))
            .attr("block_public_access", AttrSchema::optional(Type::Bool, "all four public access block flags").default(Value::Bool(true)))
            .attr("force_destroy", AttrSchema::optional(Type::Bool, "delete every object and version before deleting the bucket").default(Value::Bool(false)))
            .attr(
                "lifecycle_rules",
                AttrSchema::optional(
                    Type::List(Box::new(Type::Any)),
                    "lifecycle rules: objects { id, prefix = \"\", enabled = true, expiration_days, noncurrent_version_expiration_days, abort_incomplete_multipart_upload_days }",
                )
                .default(Value::List(vec![])),
            )
            .attr("id", AttrSchema::computed(Type::String, "the bucket's name"))
            .attr("arn", AttrSchema::computed(Type::String, "arn:aws:s3:::NAME"));
        let object = ResourceSchema::new("An object in an S3 bucket.")
            .attr("bucket", AttrSchema::required(Type::String, "the bucket").forces_replacement())
            .attr("key", AttrSchema::required(Type::String, "the object's key").forces_replacement())
            .attr("content", AttrSchema::optional(Type::String, "the bytes, as text (exclusive with `source`)"))
            .attr("source", AttrSchema::optional(Type::String, "a file to upload, relative to the project directory (exclusive with `content`)"))
            .attr("content_type", AttrSchema::optional(Type::String, "MIME type; guessed from the key's extension when left out"))
            .attr("tags", tags())
            .attr("etag", AttrSchema::computed(Type::String, "the object's ETag"))
            .attr("sha256", AttrSchema::computed(Type::String, "SHA-256 of the bytes, hex").derived())
            .attr("version_id", AttrSchema::computed(Type::String, "the version written (versioned buckets)"));
        let mut schema = ProviderSchema::default();
        schema.config.insert("endpoint", AttrSchema::optional(Type::String, "an S3-compatible endpoint URL; AWS S3 when left out"));
        schema.config.insert("region", AttrSchema::optional(Type::String, "the region (AWS_REGION, AWS_DEFAULT_REGION, then us-east-1)"));
        schema.config.insert("path_style", AttrSchema::optional(Type::Bool, "path-style addressing (MinIO, moto, most on-premises servers)"));
        schema.config.insert("access_key", AttrSchema::optional(Type::String, "access key ID (AWS_ACCESS_KEY_ID)").sensitive());
        schema.config.insert("secret_key", AttrSchema::optional(Type::String, "secret access key (AWS_SECRET_ACCESS_KEY)").sensitive());
        schema.config.insert("session_token", AttrSchema::optional(Type::String, "session token (AWS_SESSION_TOKEN)").sensitive());
        schema.resources.insert("bucket", location_attrs(bucket));
        schema.resources.insert("object", location_attrs(object));
        S3Factory { schema }
    }
}

impl Default for S3Factory {
    fn default() -> Self {
        Self::new()
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

fn text<'a>(m: &'a Map, name: &str) -> Option<&'a str> {
    m.get(name).and_then(Value::as_str)
}

fn flag(m: &Map, name: &str) -> Option<bool> {
    m.get(name).and_then(Value::as_bool)
}

/// The MIME type guessed from a key's extension.
pub fn guess_content_type(key: &str) -> &'static str {
    let ext = key.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "json" => "application/json",
        "yaml" | "yml" => "application/yaml",
        "txt" => "text/plain",
        "html" | "htm" => "text/html",
        _ => "application/octet-stream",
    }
}

/// Two policies are the same when they parse to the same JSON.
pub fn same_policy(a: &str, b: &str) -> bool {
    match (serde_json::from_str::<serde_json::Value>(a), serde_json::from_str::<serde_json::Value>(b)) {
        (Ok(x), Ok(y)) => Value::from_json(&x).canonical() == Value::from_json(&y).canonical(),
        _ => a.trim() == b.trim(),
    }
}

impl ProviderFactory for S3Factory {
    fn name(&self) -> &'static str {
        "s3"
    }
    fn schema(&self) -> &ProviderSchema {
        &self.schema
    }
    fn plan(&self, rtype: &str, prior: Option<&Map>, config: &Map) -> Map {
        let mut planned = default_plan(self.schema.resources.get(rtype), prior, config);
        match rtype {
            "bucket" => {
                if let Some(Value::String(name)) = config.get("name").map(Value::peel) {
                    planned.insert("id".into(), Value::String(name.clone()));
                    planned.insert("arn".into(), Value::String(format!("arn:aws:s3:::{name}")));
                }
            }
            "object" => {
                // The hash is known as soon as the content is. A `source`
                // file is not read here (plan does no IO): its hash stays
                // what was recorded while the path is unchanged, else unknown.
                let content = config.get("content").unwrap_or(&Value::Null);
                let same = |name: &str| prior.is_some_and(|p| p.get(name).unwrap_or(&Value::Null) == config.get(name).unwrap_or(&Value::Null));
                let hash = match content.peel() {
                    Value::String(text) => Value::String(sha256_hex(text.as_bytes())).mark_if(content.is_sensitive_deep()),
                    Value::Null if same("source") => prior.and_then(|p| p.get("sha256")).cloned().unwrap_or(Value::Unknown),
                    _ => Value::Unknown,
                };
                let rewritten = prior.is_none_or(|p| p.get("sha256") != Some(&hash) || hash.is_unknown_deep()) || !same("content_type");
                if rewritten {
                    planned.insert("etag".into(), Value::Unknown);
                    planned.insert("version_id".into(), Value::Unknown);
                }
                planned.insert("sha256".into(), hash);
            }
            _ => {}
        }
        planned
    }
    fn configure(&self, config: &Map, ctx: &ProviderContext) -> Result<Arc<dyn Provider>, Diagnostic> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let endpoint = match text(config, "endpoint").filter(|e| !e.is_empty()) {
            Some(e) if !(e.starts_with("http://") || e.starts_with("https://")) => {
                return Err(provider_error(
                    "P6400",
                    "invalid S3 endpoint",
                    format!("The s3 provider's endpoint `{}` must be an http:// or https:// URL.", crate::redact::url(e)),
                ));
            }
            Some(e) => Some(e.trim_end_matches('/').to_string()),
            None => None,
        };
        let creds = (
            text(config, "access_key").map(str::to_string).or_else(|| var("AWS_ACCESS_KEY_ID")),
            text(config, "secret_key").map(str::to_string).or_else(|| var("AWS_SECRET_ACCESS_KEY")),
            text(config, "session_token").map(str::to_string).or_else(|| var("AWS_SESSION_TOKEN")),
        );
        let fallback = Location {
            endpoint: var("AWS_ENDPOINT_URL_S3").or_else(|| var("AWS_ENDPOINT_URL")).map(|e| e.trim_end_matches('/').to_string()),
            region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")).unwrap_or_else(|| "us-east-1".into()),
            path_style: false,
        };
        let explicit =
            Explicit { endpoint, region: text(config, "region").filter(|r| !r.is_empty()).map(str::to_string), path_style: flag(config, "path_style") };
        Ok(Arc::new(S3Provider { schema: self.schema.clone(), base: ctx.project_dir.clone(), explicit, fallback, creds, clients: Mutex::new(HashMap::new()) }))
    }
}

/// Where a bucket lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Location {
    endpoint: Option<String>,
    region: String,
    path_style: bool,
}

impl Location {
    fn shown(&self) -> String {
        match &self.endpoint {
            Some(e) => crate::redact::url(e),
            None => format!("AWS S3 in {}", self.region),
        }
    }
    fn record(&self, m: &mut Map) {
        m.insert("endpoint".into(), Value::String(self.endpoint.clone().unwrap_or_default()));
        m.insert("region".into(), Value::String(self.region.clone()));
        m.insert("path_style".into(), Value::Bool(self.path_style));
    }
}

/// What the provider block set.
struct Explicit {
    endpoint: Option<String>,
    region: Option<String>,
    path_style: Option<bool>,
}

/// Bucket locations seen by this process (for `list`, which gets only inputs).
fn seen() -> &'static Mutex<HashMap<String, Location>> {
    static SEEN: std::sync::OnceLock<Mutex<HashMap<String, Location>>> = std::sync::OnceLock::new();
    SEEN.get_or_init(|| Mutex::new(HashMap::new()))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct S3Provider {
    schema: ProviderSchema,
    base: std::path::PathBuf,
    explicit: Explicit,
    fallback: Location,
    creds: (Option<String>, Option<String>, Option<String>),
    clients: Mutex<HashMap<Location, Client>>,
}

/// A failed request, reduced to text.
type Fail = crate::s3util::SdkFailure;

type R<T> = Result<T, Fail>;

impl S3Provider {
    /// The location of an object: the provider block, else what the object
    /// recorded, else the environment.
    fn location(&self, recorded: Option<&Map>) -> Location {
        let rec_endpoint = recorded.and_then(|m| text(m, "endpoint")).map(|e| if e.is_empty() { None } else { Some(e.to_string()) });
        let endpoint = self.explicit.endpoint.clone().map(Some).or(rec_endpoint).unwrap_or_else(|| self.fallback.endpoint.clone());
        let region = self
            .explicit
            .region
            .clone()
            .or_else(|| recorded.and_then(|m| text(m, "region")).map(str::to_string))
            .unwrap_or_else(|| self.fallback.region.clone());
        let path_style = self.explicit.path_style.or_else(|| recorded.and_then(|m| flag(m, "path_style"))).unwrap_or(self.fallback.path_style);
        Location { endpoint, region, path_style }
    }

    fn located(&self, bucket: &str, recorded: Option<&Map>) -> Location {
        let loc = self.location(recorded);
        if self.explicit.endpoint.is_some() || recorded.is_some_and(|m| m.contains_key("endpoint")) {
            lock(seen()).insert(bucket.to_string(), loc.clone());
        }
        loc
    }

    fn client(&self, loc: &Location, what: &str) -> Result<Client, Diagnostic> {
        if let Some(c) = lock(&self.clients).get(loc) {
            return Ok(c.clone());
        }
        let (Some(key), Some(secret)) = (self.creds.0.clone(), self.creds.1.clone()) else {
            return Err(provider_error(
                "P6401",
                "no credentials for S3",
                format!(
                    "Managing {what} at {} needs credentials: set access_key and secret_key in the `provider s3` block, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials).",
                    loc.shown()
                ),
            ));
        };
        let builder = crate::s3util::config(crate::s3util::Access {
            endpoint: loc.endpoint.as_deref(),
            region: &loc.region,
            path_style: loc.path_style,
            key_id: key,
            secret,
            token: self.creds.2.clone(),
            source: "plinth-s3-provider",
            attempt_timeout: Duration::from_secs(300),
        })
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::standard().with_max_attempts(3));
        let client = Client::from_conf(builder.build());
        lock(&self.clients).insert(loc.clone(), client.clone());
        Ok(client)
    }

    fn scrub(&self, text: &str) -> String {
        let mut text = text.to_string();
        for s in [&self.creds.0, &self.creds.1, &self.creds.2].into_iter().flatten() {
            if !s.is_empty() {
                text = text.replace(s.as_str(), "***");
            }
        }
        text
    }

    /// A failed call as a diagnostic naming what and where.
    fn error(&self, action: &str, what: &str, loc: &Location, f: Fail) -> Diagnostic {
        let detail = self.scrub(&f.text);
        let d = if f.status == Some(403) || f.code_is(&["AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"]) {
            provider_error(
                "P6403",
                format!("access denied: {action} {what}"),
                format!("{} refused to {action} {what}: {detail}. Check that the credentials (access_key/secret_key or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) are valid there and allowed to do this.", loc.shown()),
            )
        } else if f.code_is(&["NoSuchBucket"]) {
            provider_error(
                "P6404",
                format!("no such bucket: {action} {what}"),
                format!(
                    "Cannot {action} {what} at {}: the bucket does not exist ({detail}). Create it first (an `s3.bucket` resource) or fix the name.",
                    loc.shown()
                ),
            )
        } else {
            provider_error(
                "P6402",
                format!("S3 request failed: {action} {what}"),
                format!("Cannot {action} {what} at {}: {detail}. Check that the endpoint is reachable and is an S3-compatible server, and the region and path_style settings.", loc.shown()),
            )
        };
        if f.transient {
            d.retryable()
        } else {
            d
        }
    }

    fn invalid(&self, message: impl Into<String>, help: impl Into<String>) -> Diagnostic {
        provider_error("P6400", message, help)
    }
}

fn tags_of(m: &Map) -> BTreeMap<String, String> {
    match m.get("tags").map(Value::peel) {
        Some(Value::Map(t)) => t.iter().map(|(k, v)| (k.clone(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))).collect(),
        _ => BTreeMap::new(),
    }
}

fn tags_value(tags: &BTreeMap<String, String>) -> Value {
    Value::Map(tags.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect())
}

fn tagging(tags: &BTreeMap<String, String>) -> R<Tagging> {
    let set: Result<Vec<Tag>, _> = tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
    Tagging::builder().set_tag_set(Some(set.map_err(|e| Fail::other(e.to_string()))?)).build().map_err(|e| Fail::other(e.to_string()))
}

fn tag_map(set: &[Tag]) -> BTreeMap<String, String> {
    set.iter().map(|t| (t.key().to_string(), t.value().to_string())).collect()
}

fn strip_etag(e: Option<&str>) -> Value {
    e.map(|e| Value::String(e.trim_matches('"').to_string())).unwrap_or(Value::Null)
}

// ---- buckets -------------------------------------------------------------

/// Buckets this process created: a retried create (the first attempt's
/// answer lost) finds its own bucket, which is not someone else's.
fn created() -> &'static Mutex<std::collections::BTreeSet<String>> {
    static CREATED: std::sync::OnceLock<Mutex<std::collections::BTreeSet<String>>> = std::sync::OnceLock::new();
    CREATED.get_or_init(|| Mutex::new(std::collections::BTreeSet::new()))
}

/// Ok(false) when the bucket already exists in the account and this
/// process did not create it.
async fn bucket_create(c: &Client, name: &str, region: &str) -> R<bool> {
    // us-east-1 (AWS and moto) answers a create of a bucket one already
    // owns with success: ask first.
    if c.head_bucket().bucket(name).send().await.is_ok() {
        return Ok(lock(created()).contains(name));
    }
    let mut req = c.create_bucket().bucket(name);
    if region != "us-east-1" {
        req = req.create_bucket_configuration(CreateBucketConfiguration::builder().location_constraint(BucketLocationConstraint::from(region)).build());
    }
    match req.send().await {
        Ok(_) => {
            lock(created()).insert(name.to_string());
            Ok(true)
        }
        Err(e) => {
            let f = Fail::of(e);
            if f.code_is(&["BucketAlreadyOwnedByYou"]) {
                // Ours only when this process made it (a retried create);
                // an interrupted run's bucket is found by reconciliation,
                // which reads instead of creating.
                Ok(lock(created()).contains(name))
            } else {
                Err(f)
            }
        }
    }
}

/// Makes the bucket's settings what `config` says. `fresh`: just created.
/// Returns false when the server does not implement the public access block.
async fn bucket_settle(c: &Client, name: &str, config: &Map, fresh: bool) -> R<bool> {
    let versioning = flag(config, "versioning").unwrap_or(false);
    if versioning {
        let vc = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
        c.put_bucket_versioning().bucket(name).versioning_configuration(vc).send().await.map_err(Fail::of)?;
    } else if !fresh && versioning_enabled(c, name).await? {
        let vc = VersioningConfiguration::builder().status(BucketVersioningStatus::Suspended).build();
        c.put_bucket_versioning().bucket(name).versioning_configuration(vc).send().await.map_err(Fail::of)?;
    }
    let tags = tags_of(config);
    if !tags.is_empty() {
        c.put_bucket_tagging().bucket(name).tagging(tagging(&tags)?).send().await.map_err(Fail::of)?;
    } else if !fresh {
        c.delete_bucket_tagging().bucket(name).send().await.map_err(Fail::of)?;
    }
    match text(config, "policy") {
        Some(p) => {
            c.put_bucket_policy().bucket(name).policy(p).send().await.map_err(Fail::of)?;
        }
        None if !fresh => {
            if let Err(e) = c.delete_bucket_policy().bucket(name).send().await {
                let f = Fail::of(e);
                if !(f.not_found() || f.code_is(&["NoSuchBucketPolicy"])) {
                    return Err(f);
                }
            }
        }
        None => {}
    }
    let rules = parse_rules(config.get("lifecycle_rules"), name).map_err(|d| Fail::other(d.help))?;
    lifecycle_settle(c, name, &rules, fresh).await?;
    let block = flag(config, "block_public_access").unwrap_or(true);
    let pab = PublicAccessBlockConfiguration::builder()
        .block_public_acls(block)
        .ignore_public_acls(block)
        .block_public_policy(block)
        .restrict_public_buckets(block)
        .build();
    match c.put_public_access_block().bucket(name).public_access_block_configuration(pab).send().await {
        Ok(_) => Ok(true),
        Err(e) => {
            let f = Fail::of(e);
            if f.not_implemented() {
                Ok(false)
            } else {
                Err(f)
            }
        }
    }
}

/// Whether versioning is on. A bucket never versioned answers an empty
/// configuration; moto answers under another root element
/// (`GetBucketVersioningResponse`) that the SDK refuses, so an unparseable
/// HTTP 200 is read as raw XML.
async fn versioning_enabled(c: &Client, name: &str) -> R<bool> {
    match c.get_bucket_versioning().bucket(name).send().await {
        Ok(v) => Ok(v.status() == Some(&BucketVersioningStatus::Enabled)),
        Err(e) => {
            // Read the status from the raw body the SDK could not parse.
            let raw = match &e {
                SdkError::ServiceError(se) if se.raw().status().as_u16() == 200 => se.raw().body().bytes().map(|b| String::from_utf8_lossy(b).into_owned()),
                _ => None,
            };
            match raw {
                Some(body) => Ok(body.contains("<Status>Enabled</Status>")),
                None => Err(Fail::of(e)),
            }
        }
    }
}

/// The bucket as it is, or None when it is gone.
async fn bucket_read(c: &Client, name: &str, prior: &Map) -> R<Option<Map>> {
    if let Err(e) = c.head_bucket().bucket(name).send().await {
        let f = Fail::of(e);
        return if f.not_found() { Ok(None) } else { Err(f) };
    }
    let mut out = Map::default();
    let versioning = match versioning_enabled(c, name).await {
        Ok(v) => v,
        Err(f) if f.not_found() => return Ok(None),
        Err(f) => return Err(f),
    };
    out.insert("versioning".into(), Value::Bool(versioning));
    let tags = match c.get_bucket_tagging().bucket(name).send().await {
        Ok(t) => tag_map(t.tag_set()),
        Err(e) => {
            let f = Fail::of(e);
            if f.code_is(&["NoSuchTagSet", "NoSuchTagSetError"]) || (f.status == Some(404) && !f.code_is(&["NoSuchBucket"])) {
                BTreeMap::new()
            } else {
                return Err(f);
            }
        }
    };
    out.insert("tags".into(), tags_value(&tags));
    let policy = match c.get_bucket_policy().bucket(name).send().await {
        Ok(p) => p.policy().map(str::to_string),
        Err(e) => {
            let f = Fail::of(e);
            if f.code_is(&["NoSuchBucketPolicy"]) || (f.status == Some(404) && !f.code_is(&["NoSuchBucket"])) {
                None
            } else if f.not_implemented() {
                text(prior, "policy").map(str::to_string)
            } else {
                return Err(f);
            }
        }
    };
    // The same document in another layout is the recorded one.
    let policy = match (policy, text(prior, "policy")) {
        (Some(now), Some(was)) if same_policy(&now, was) => Value::String(was.to_string()),
        (Some(now), _) => Value::String(now),
        (None, _) => Value::Null,
    };
    out.insert("policy".into(), policy);
    let block = match c.get_public_access_block().bucket(name).send().await {
        Ok(p) => p.public_access_block_configuration().is_some_and(|b| {
            b.block_public_acls() == Some(true)
                && b.ignore_public_acls() == Some(true)
                && b.block_public_policy() == Some(true)
                && b.restrict_public_buckets() == Some(true)
        }),
        Err(e) => {
            let f = Fail::of(e);
            if f.code_is(&["NoSuchPublicAccessBlockConfiguration"]) || (f.status == Some(404) && !f.code_is(&["NoSuchBucket"])) {
                false
            } else if f.not_implemented() {
                flag(prior, "block_public_access").unwrap_or(true)
            } else {
                return Err(f);
            }
        }
    };
    out.insert("block_public_access".into(), Value::Bool(block));
    // The same rules in another order or with defaults spelled out are the
    // recorded ones.
    let recorded = prior.get("lifecycle_rules").cloned().unwrap_or(Value::List(vec![]));
    let was = parse_rules(Some(&recorded), name).ok();
    let rules = match lifecycle_read(c, name).await? {
        Some(now) if was.as_ref() == Some(&now) => recorded,
        Some(now) => rules_value(&now),
        None => recorded,
    };
    out.insert("lifecycle_rules".into(), rules);
    Ok(Some(out))
}

// ---- lifecycle rules -------------------------------------------------------

/// One lifecycle rule, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    id: String,
    prefix: String,
    enabled: bool,
    expiration_days: Option<i32>,
    noncurrent_version_expiration_days: Option<i32>,
    abort_incomplete_multipart_upload_days: Option<i32>,
}

const RULE_FIELDS: [&str; 6] = ["id", "prefix", "enabled", "expiration_days", "noncurrent_version_expiration_days", "abort_incomplete_multipart_upload_days"];

fn bad_rule(bucket: &str, what: String) -> Diagnostic {
    provider_error(
        "P6409",
        format!("invalid lifecycle rule in bucket `{bucket}`"),
        format!(
            "The `lifecycle_rules` of bucket `{bucket}` are invalid: {what}. Each rule is an object {{ id = \"…\", prefix = \"\", enabled = true, expiration_days = N, noncurrent_version_expiration_days = N, abort_incomplete_multipart_upload_days = N }} with a unique non-empty `id`, whole numbers of days of at least 1, and at least one of the three `…_days` actions."
        ),
    )
}

/// The rules of a configuration (or record), validated, defaults filled
/// in, sorted by id. Null is no rules.
fn parse_rules(v: Option<&Value>, bucket: &str) -> Result<Vec<Rule>, Diagnostic> {
    let items = match v.map(Value::peel) {
        None | Some(Value::Null) => return Ok(vec![]),
        Some(Value::List(items)) => items,
        Some(other) => return Err(bad_rule(bucket, format!("expected a list of rule objects, got {}", other.type_name()))),
    };
    let mut rules = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Map(m) = item.peel() else {
            return Err(bad_rule(bucket, format!("rule {i} is a {}, not an object", item.type_name())));
        };
        if let Some(k) = m.keys().find(|k| !RULE_FIELDS.contains(&k.as_str())) {
            return Err(bad_rule(bucket, format!("rule {i} has an unknown attribute `{k}`")));
        }
        let id = match m.get("id").map(Value::peel) {
            Some(Value::String(id)) if !id.is_empty() => id.clone(),
            _ => return Err(bad_rule(bucket, format!("rule {i} needs a non-empty string `id`"))),
        };
        let prefix = match m.get("prefix").map(Value::peel) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(p)) => p.clone(),
            Some(other) => return Err(bad_rule(bucket, format!("the `prefix` of rule `{id}` must be a string, not a {}", other.type_name()))),
        };
        let enabled = match m.get("enabled").map(Value::peel) {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => return Err(bad_rule(bucket, format!("the `enabled` of rule `{id}` must be a bool, not a {}", other.type_name()))),
        };
        let days = |name: &str| -> Result<Option<i32>, Diagnostic> {
            let n = match m.get(name).map(Value::peel) {
                None | Some(Value::Null) => return Ok(None),
                Some(Value::Int(n)) => Some(*n),
                Some(Value::Float(f)) if f.fract() == 0.0 && f.abs() < 1e12 => Some(*f as i64),
                _ => None,
            };
            match n.and_then(|n| i32::try_from(n).ok()).filter(|n| *n >= 1) {
                Some(n) => Ok(Some(n)),
                None => Err(bad_rule(bucket, format!("the `{name}` of rule `{id}` must be a whole number of days of at least 1"))),
            }
        };
        let rule = Rule {
            expiration_days: days("expiration_days")?,
            noncurrent_version_expiration_days: days("noncurrent_version_expiration_days")?,
            abort_incomplete_multipart_upload_days: days("abort_incomplete_multipart_upload_days")?,
            id,
            prefix,
            enabled,
        };
        if rule.expiration_days.is_none() && rule.noncurrent_version_expiration_days.is_none() && rule.abort_incomplete_multipart_upload_days.is_none() {
            return Err(bad_rule(bucket, format!("rule `{}` has no action", rule.id)));
        }
        if rules.iter().any(|r: &Rule| r.id == rule.id) {
            return Err(bad_rule(bucket, format!("the id `{}` is used by two rules", rule.id)));
        }
        rules.push(rule);
    }
    rules.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(rules)
}

/// Rules as an attribute value: every field present, sorted by id.
fn rules_value(rules: &[Rule]) -> Value {
    let days = |d: Option<i32>| d.map(|d| Value::Int(i64::from(d))).unwrap_or(Value::Null);
    Value::List(
        rules
            .iter()
            .map(|r| {
                let mut m = Map::default();
                m.insert("id".into(), Value::String(r.id.clone()));
                m.insert("prefix".into(), Value::String(r.prefix.clone()));
                m.insert("enabled".into(), Value::Bool(r.enabled));
                m.insert("expiration_days".into(), days(r.expiration_days));
                m.insert("noncurrent_version_expiration_days".into(), days(r.noncurrent_version_expiration_days));
                m.insert("abort_incomplete_multipart_upload_days".into(), days(r.abort_incomplete_multipart_upload_days));
                Value::Map(m)
            })
            .collect(),
    )
}

fn lifecycle_configuration(rules: &[Rule]) -> R<BucketLifecycleConfiguration> {
    let built: Result<Vec<LifecycleRule>, _> = rules
        .iter()
        .map(|r| {
            LifecycleRule::builder()
                .id(&r.id)
                .filter(LifecycleRuleFilter::builder().prefix(&r.prefix).build())
                .status(if r.enabled { ExpirationStatus::Enabled } else { ExpirationStatus::Disabled })
                .set_expiration(r.expiration_days.map(|d| LifecycleExpiration::builder().days(d).build()))
                .set_noncurrent_version_expiration(
                    r.noncurrent_version_expiration_days.map(|d| NoncurrentVersionExpiration::builder().noncurrent_days(d).build()),
                )
                .set_abort_incomplete_multipart_upload(
                    r.abort_incomplete_multipart_upload_days.map(|d| AbortIncompleteMultipartUpload::builder().days_after_initiation(d).build()),
                )
                .build()
        })
        .collect();
    BucketLifecycleConfiguration::builder().set_rules(Some(built.map_err(|e| Fail::other(e.to_string()))?)).build().map_err(|e| Fail::other(e.to_string()))
}

/// The bucket's rules as the server has them (sorted by id); None when the
/// server does not implement lifecycle configuration.
async fn lifecycle_read(c: &Client, name: &str) -> R<Option<Vec<Rule>>> {
    match c.get_bucket_lifecycle_configuration().bucket(name).send().await {
        Ok(out) => {
            let mut rules: Vec<Rule> = out
                .rules()
                .iter()
                .map(|r| Rule {
                    id: r.id().unwrap_or_default().to_string(),
                    #[allow(deprecated)]
                    prefix: r.filter().and_then(|f| f.prefix()).or(r.prefix()).unwrap_or_default().to_string(),
                    enabled: r.status() == &ExpirationStatus::Enabled,
                    expiration_days: r.expiration().and_then(|e| e.days()),
                    noncurrent_version_expiration_days: r.noncurrent_version_expiration().and_then(|e| e.noncurrent_days()),
                    abort_incomplete_multipart_upload_days: r.abort_incomplete_multipart_upload().and_then(|a| a.days_after_initiation()),
                })
                .collect();
            rules.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(Some(rules))
        }
        Err(e) => {
            let f = Fail::of(e);
            if f.code_is(&["NoSuchLifecycleConfiguration"]) || (f.status == Some(404) && !f.code_is(&["NoSuchBucket"])) {
                Ok(Some(vec![]))
            } else if f.not_implemented() {
                Ok(None)
            } else {
                Err(f)
            }
        }
    }
}

/// Makes the bucket's rules `rules`: none deletes the configuration.
async fn lifecycle_settle(c: &Client, name: &str, rules: &[Rule], fresh: bool) -> R<()> {
    if !rules.is_empty() {
        c.put_bucket_lifecycle_configuration().bucket(name).lifecycle_configuration(lifecycle_configuration(rules)?).send().await.map_err(Fail::of)?;
    } else if !fresh {
        if let Err(e) = c.delete_bucket_lifecycle().bucket(name).send().await {
            let f = Fail::of(e);
            if !(f.code_is(&["NoSuchLifecycleConfiguration"]) || f.not_implemented()) {
                return Err(f);
            }
        }
    }
    Ok(())
}

/// Deletes every object version and delete marker, then every object
/// (servers without versioning listings), in batches.
async fn bucket_empty(c: &Client, name: &str) -> R<()> {
    let mut key_marker: Option<String> = None;
    let mut version_marker: Option<String> = None;
    loop {
        let page = match c.list_object_versions().bucket(name).set_key_marker(key_marker.take()).set_version_id_marker(version_marker.take()).send().await {
            Ok(p) => p,
            Err(e) => {
                let f = Fail::of(e);
                if f.not_implemented() {
                    break;
                }
                return Err(f);
            }
        };
        let mut ids: Vec<(String, Option<String>)> =
            page.versions().iter().filter_map(|v| v.key().map(|k| (k.to_string(), v.version_id().map(str::to_string)))).collect();
        ids.extend(page.delete_markers().iter().filter_map(|m| m.key().map(|k| (k.to_string(), m.version_id().map(str::to_string)))));
        delete_batch(c, name, ids).await?;
        if page.is_truncated() == Some(true) && (page.next_key_marker().is_some() || page.next_version_id_marker().is_some()) {
            key_marker = page.next_key_marker().map(str::to_string);
            version_marker = page.next_version_id_marker().map(str::to_string);
        } else {
            break;
        }
    }
    loop {
        let page = c.list_objects_v2().bucket(name).send().await.map_err(Fail::of)?;
        let ids: Vec<(String, Option<String>)> = page.contents().iter().filter_map(|o| o.key().map(|k| (k.to_string(), None))).collect();
        if ids.is_empty() {
            return Ok(());
        }
        delete_batch(c, name, ids).await?;
    }
}

/// Deletes an object with every version and delete marker its key holds
/// (as Terraform's AWS provider does), so that a versioned bucket it was in
/// can be deleted afterwards. A plain delete first: on a bucket that never
/// had versioning that is all; one that answers with a delete marker or a
/// version id keeps versions, and those of this key are deleted one by one.
async fn object_delete(c: &Client, bucket: &str, key: &str) -> R<()> {
    let out = match c.delete_object().bucket(bucket).key(key).send().await {
        Ok(out) => out,
        Err(e) => {
            let f = Fail::of(e);
            return if f.not_found() { Ok(()) } else { Err(f) };
        }
    };
    if out.delete_marker() != Some(true) && out.version_id().is_none_or(|v| v.is_empty() || v == "null") {
        return Ok(());
    }
    let mut key_marker: Option<String> = None;
    let mut version_marker: Option<String> = None;
    loop {
        let page = match c
            .list_object_versions()
            .bucket(bucket)
            .prefix(key)
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .send()
            .await
        {
            Ok(p) => p,
            Err(e) => {
                let f = Fail::of(e);
                if f.not_implemented() {
                    return Ok(());
                }
                return Err(f);
            }
        };
        // The prefix also lists longer keys: only this key's versions.
        let mut ids: Vec<(String, Option<String>)> =
            page.versions().iter().filter(|v| v.key() == Some(key)).map(|v| (key.to_string(), v.version_id().map(str::to_string))).collect();
        ids.extend(page.delete_markers().iter().filter(|m| m.key() == Some(key)).map(|m| (key.to_string(), m.version_id().map(str::to_string))));
        delete_batch(c, bucket, ids).await?;
        let past_key = page.next_key_marker().is_some_and(|k| k > key);
        if page.is_truncated() == Some(true) && !past_key && (page.next_key_marker().is_some() || page.next_version_id_marker().is_some()) {
            key_marker = page.next_key_marker().map(str::to_string);
            version_marker = page.next_version_id_marker().map(str::to_string);
        } else {
            return Ok(());
        }
    }
}

async fn delete_batch(c: &Client, bucket: &str, ids: Vec<(String, Option<String>)>) -> R<()> {
    for chunk in ids.chunks(BATCH) {
        let objects: Result<Vec<ObjectIdentifier>, _> =
            chunk.iter().map(|(k, v)| ObjectIdentifier::builder().key(k).set_version_id(v.clone()).build()).collect();
        let objects = objects.map_err(|e| Fail::other(e.to_string()))?;
        let delete = Delete::builder().set_objects(Some(objects)).quiet(true).build().map_err(|e| Fail::other(e.to_string()))?;
        let batched = c.delete_objects().bucket(bucket).delete(delete).send().await;
        let failed = match &batched {
            Ok(out) => !out.errors().is_empty(),
            Err(_) => true,
        };
        if failed {
            // One by one: servers without DeleteObjects, or partial failures.
            for (k, v) in chunk {
                if let Err(e) = c.delete_object().bucket(bucket).key(k).set_version_id(v.clone()).send().await {
                    let f = Fail::of(e);
                    if !f.not_found() {
                        return Err(f);
                    }
                }
            }
        }
    }
    Ok(())
}

// ---- objects -------------------------------------------------------------

impl S3Provider {
    fn names(&self, m: &Map) -> Result<(String, String), Diagnostic> {
        let bucket = text(m, "bucket").filter(|b| !b.is_empty()).ok_or_else(|| self.invalid("missing bucket", "`s3.object` needs a non-empty `bucket`."))?;
        let key = text(m, "key")
            .filter(|k| !k.is_empty())
            .ok_or_else(|| self.invalid("missing key", format!("`s3.object` in bucket `{bucket}` needs a non-empty `key`.")))?;
        Ok((bucket.to_string(), key.to_string()))
    }

    /// The bytes an object's configuration names.
    fn body(&self, config: &Map, bucket: &str, key: &str) -> Result<Vec<u8>, Diagnostic> {
        match (config.get("content").map(Value::peel), text(config, "source")) {
            (Some(Value::String(c)), None) => Ok(c.clone().into_bytes()),
            (None | Some(Value::Null), Some(source)) => {
                let path = self.base.join(source);
                std::fs::read(&path).map_err(|e| {
                    provider_error(
                        "P6408",
                        format!("cannot read {}", path.display()),
                        format!("The `source` of object `{key}` in bucket `{bucket}` cannot be read: {e}. Paths resolve against the project directory."),
                    )
                })
            }
            (Some(Value::String(_)), Some(_)) => {
                Err(self.invalid("both content and source", format!("Object `{key}` in bucket `{bucket}` sets both `content` and `source`; set exactly one.")))
            }
            _ => Err(self
                .invalid("neither content nor source", format!("Object `{key}` in bucket `{bucket}` sets neither `content` nor `source`; set exactly one."))),
        }
    }

    async fn object_write(&self, config: Map, prior: Option<&Map>) -> Result<Observed, Diagnostic> {
        let (bucket, key) = self.names(&config)?;
        let loc = self.located(&bucket, prior);
        let what = format!("object `{key}` in bucket `{bucket}`");
        let client = self.client(&loc, &what)?;
        let body = self.body(&config, &bucket, &key)?;
        let hash = sha256_hex(&body);
        let content_type = text(&config, "content_type").map(str::to_string).unwrap_or_else(|| guess_content_type(&key).to_string());
        let tags = tags_of(&config);
        let mut same_bytes =
            prior.is_some_and(|p| text(p, "sha256") == Some(hash.as_str()) && p.get("content_type") == config.get("content_type") && p.get("etag").is_some());
        if same_bytes {
            // The recorded bytes are still there only if the ETag is (the
            // object may have been overwritten since it was recorded).
            let now = client.head_object().bucket(&bucket).key(&key).send().await.ok().map(|h| strip_etag(h.e_tag()));
            same_bytes = now.as_ref() == prior.and_then(|p| p.get("etag"));
        }
        let mut observed = config.clone();
        if same_bytes {
            let p = prior.expect("checked above");
            let result: R<()> = async {
                if tags.is_empty() {
                    client.delete_object_tagging().bucket(&bucket).key(&key).send().await.map_err(Fail::of)?;
                } else {
                    client.put_object_tagging().bucket(&bucket).key(&key).tagging(tagging(&tags)?).send().await.map_err(Fail::of)?;
                }
                Ok(())
            }
            .await;
            result.map_err(|f| self.error("tag", &what, &loc, f))?;
            for k in ["etag", "version_id"] {
                observed.insert(k.into(), p.get(k).cloned().unwrap_or(Value::Null));
            }
        } else {
            let out = client
                .put_object()
                .bucket(&bucket)
                .key(&key)
                .content_type(&content_type)
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(|e| self.error("write", &what, &loc, Fail::of(e)))?;
            if !tags.is_empty() {
                client
                    .put_object_tagging()
                    .bucket(&bucket)
                    .key(&key)
                    .set_version_id(out.version_id().map(str::to_string))
                    .tagging(tagging(&tags).map_err(|f| self.error("tag", &what, &loc, f))?)
                    .send()
                    .await
                    .map_err(|e| self.error("tag", &what, &loc, Fail::of(e)))?;
            }
            observed.insert("etag".into(), strip_etag(out.e_tag()));
            observed.insert("version_id".into(), out.version_id().map(Value::str).unwrap_or(Value::Null));
        }
        observed.insert("sha256".into(), Value::String(hash));
        loc.record(&mut observed);
        Ok(observed)
    }

    async fn object_read(&self, req: ReadRequest) -> Result<Option<Observed>, Diagnostic> {
        let (bucket, key) = self.names(&req.inputs)?;
        let prior = req.prior.as_ref();
        let loc = self.located(&bucket, prior);
        let what = format!("object `{key}` in bucket `{bucket}`");
        let client = self.client(&loc, &what)?;
        let head = match client.head_object().bucket(&bucket).key(&key).send().await {
            Ok(h) => h,
            Err(e) => {
                let f = Fail::of(e);
                return if f.not_found() { Ok(None) } else { Err(self.error("read", &what, &loc, f)) };
            }
        };
        let mut observed = prior.cloned().unwrap_or_else(|| req.inputs.clone());
        let etag = strip_etag(head.e_tag());
        // Unchanged ETag: the bytes are the recorded ones, no need to fetch them.
        let unchanged = prior.is_some_and(|p| p.get("etag") == Some(&etag) && p.get("sha256").is_some_and(|s| !matches!(s, Value::Null)));
        if !unchanged {
            let got = client.get_object().bucket(&bucket).key(&key).send().await.map_err(|e| self.error("read", &what, &loc, Fail::of(e)))?;
            let bytes = got
                .body
                .collect()
                .await
                .map_err(|e| self.error("read", &what, &loc, Fail { transient: true, ..Fail::other(format!("reading the body: {e}")) }))?
                .into_bytes();
            let hash = sha256_hex(&bytes);
            if req.inputs.get("content").is_some_and(|c| !matches!(c.peel(), Value::Null)) {
                observed.insert("content".into(), Value::String(String::from_utf8_lossy(&bytes).into_owned()));
            } else if let Some(source) = text(&req.inputs, "source") {
                // The object no longer holds the file's bytes (changed on
                // either side): report the source as not uploaded.
                let local = std::fs::read(self.base.join(source)).ok().map(|b| sha256_hex(&b));
                if local.as_deref() != Some(hash.as_str()) {
                    observed.insert("source".into(), Value::Null);
                }
            }
            observed.insert("sha256".into(), Value::String(hash));
        } else if let Some(source) = text(&req.inputs, "source") {
            let local = std::fs::read(self.base.join(source)).ok().map(|b| sha256_hex(&b));
            if local.is_some() && local.as_deref() != prior.and_then(|p| text(p, "sha256")) {
                observed.insert("source".into(), Value::Null);
            }
        }
        observed.insert("etag".into(), etag);
        observed.insert("version_id".into(), head.version_id().map(Value::str).unwrap_or(Value::Null));
        let ct = head.content_type().unwrap_or("application/octet-stream");
        let ct = match req.inputs.get("content_type").map(Value::peel) {
            None | Some(Value::Null) if ct == guess_content_type(&key) => Value::Null,
            _ => Value::str(ct),
        };
        observed.insert("content_type".into(), ct);
        let tags = match client.get_object_tagging().bucket(&bucket).key(&key).send().await {
            Ok(t) => tag_map(t.tag_set()),
            Err(e) => {
                let f = Fail::of(e);
                if f.not_found() {
                    return Ok(None);
                } else if f.not_implemented() {
                    tags_of(&observed)
                } else {
                    return Err(self.error("read the tags of", &what, &loc, f));
                }
            }
        };
        observed.insert("tags".into(), tags_value(&tags));
        loc.record(&mut observed);
        Ok(Some(observed))
    }

    async fn bucket_write(&self, config: Map, prior: Option<&Map>) -> Result<Observed, Diagnostic> {
        let name = text(&config, "name")
            .filter(|n| !n.is_empty())
            .ok_or_else(|| self.invalid("missing bucket name", "`s3.bucket` needs a non-empty `name`."))?
            .to_string();
        let loc = self.located(&name, prior);
        let what = format!("bucket `{name}`");
        let client = self.client(&loc, &what)?;
        if let Some(p) = text(&config, "policy") {
            if let Err(e) = serde_json::from_str::<serde_json::Value>(p) {
                return Err(provider_error(
                    "P6407",
                    format!("the policy of bucket `{name}` is not JSON"),
                    format!("The `policy` of bucket `{name}` must be a JSON policy document: {e}. jsonencode({{…}}) builds one."),
                ));
            }
        }
        parse_rules(config.get("lifecycle_rules"), &name)?;
        if prior.is_none() {
            let ours = bucket_create(&client, &name, &loc.region).await.map_err(|f| {
                if f.code_is(&["BucketAlreadyExists"]) {
                    provider_error(
                        "P6405",
                        format!("bucket name `{name}` is taken"),
                        format!("Bucket names are global at {}: `{name}` belongs to another account. Choose another name.", loc.shown()),
                    )
                } else {
                    self.error("create", &what, &loc, f)
                }
            })?;
            if !ours {
                return Err(provider_error(
                    "P6410",
                    format!("bucket `{name}` already exists"),
                    format!(
                        "Bucket `{name}` at {} exists but is not in this state: it is managed elsewhere (another project, by hand), and Plinth does not take it over. Choose another `name`, or, to manage that bucket from here, delete it (after moving what it holds) and apply again, or remove the resource; a way to import existing objects will come later.",
                        loc.shown()
                    ),
                ));
            }
        }
        bucket_settle(&client, &name, &config, prior.is_none()).await.map_err(|f| self.error("configure", &what, &loc, f))?;
        let mut observed = config;
        observed.insert("id".into(), Value::String(name.clone()));
        observed.insert("arn".into(), Value::String(format!("arn:aws:s3:::{name}")));
        loc.record(&mut observed);
        Ok(observed)
    }
}

#[async_trait]
impl Provider for S3Provider {
    fn schema_of(&self, rtype: &str) -> Option<&ResourceSchema> {
        self.schema.resources.get(rtype)
    }

    async fn read(&self, req: ReadRequest) -> Result<Option<Observed>, Diagnostic> {
        match req.object.rtype.as_str() {
            "bucket" => {
                let name = text(&req.inputs, "name").unwrap_or_default().to_string();
                let recorded = req.prior.clone().unwrap_or_else(|| req.inputs.clone());
                let loc = self.located(&name, req.prior.as_ref());
                let what = format!("bucket `{name}`");
                let client = self.client(&loc, &what)?;
                let Some(now) = bucket_read(&client, &name, &recorded).await.map_err(|f| self.error("read", &what, &loc, f))? else { return Ok(None) };
                let mut observed = recorded;
                observed.extend(now);
                observed.insert("id".into(), Value::String(name.clone()));
                observed.insert("arn".into(), Value::String(format!("arn:aws:s3:::{name}")));
                loc.record(&mut observed);
                Ok(Some(observed))
            }
            "object" => self.object_read(req).await,
            other => Err(self.invalid(format!("unknown resource type s3.{other}"), "The s3 provider has `s3.bucket` and `s3.object`.")),
        }
    }

    async fn create(&self, req: CreateRequest) -> Result<Observed, Diagnostic> {
        match req.object.rtype.as_str() {
            "bucket" => self.bucket_write(req.config, None).await,
            _ => self.object_write(req.config, None).await,
        }
    }

    async fn update(&self, req: UpdateRequest) -> Result<Observed, Diagnostic> {
        match req.object.rtype.as_str() {
            "bucket" => self.bucket_write(req.config, Some(&req.prior)).await,
            _ => self.object_write(req.config, Some(&req.prior)).await,
        }
    }

    async fn delete(&self, req: DeleteRequest) -> Result<(), Diagnostic> {
        match req.object.rtype.as_str() {
            "bucket" => {
                let name = text(&req.prior, "name").unwrap_or_default().to_string();
                let loc = self.located(&name, Some(&req.prior));
                let what = format!("bucket `{name}`");
                let client = self.client(&loc, &what)?;
                if flag(&req.prior, "force_destroy").unwrap_or(false) {
                    if let Err(f) = bucket_empty(&client, &name).await {
                        if f.not_found() {
                            return Ok(());
                        }
                        return Err(self.error("empty", &what, &loc, f));
                    }
                }
                match client.delete_bucket().bucket(&name).send().await {
                    Ok(_) => Ok(()),
                    Err(e) => {
                        let f = Fail::of(e);
                        if f.not_found() {
                            Ok(())
                        } else if f.code_is(&["BucketNotEmpty"]) || f.status == Some(409) {
                            Err(provider_error(
                                "P6406",
                                format!("bucket `{name}` is not empty"),
                                format!("Bucket `{name}` at {} still holds objects, so it cannot be deleted. Delete them, or set `force_destroy = true` and apply before destroying.", loc.shown()),
                            ))
                        } else {
                            Err(self.error("delete", &what, &loc, f))
                        }
                    }
                }
            }
            _ => {
                let (bucket, key) = self.names(&req.prior)?;
                let loc = self.located(&bucket, Some(&req.prior));
                let what = format!("object `{key}` in bucket `{bucket}`");
                let client = self.client(&loc, &what)?;
                match object_delete(&client, &bucket, &key).await {
                    Ok(()) => Ok(()),
                    Err(f) if f.not_found() => Ok(()),
                    Err(f) => Err(self.error("delete", &what, &loc, f)),
                }
            }
        }
    }

    /// For `s3.object`: the keys beside managed ones (same bucket, same
    /// "directory": the prefix up to the last `/`, not recursively) that are
    /// not managed, as `bucket/key`. Buckets are not listed.
    async fn list(&self, req: ListRequest) -> Result<Vec<String>, Diagnostic> {
        if req.rtype != "object" {
            return Ok(vec![]);
        }
        let mut managed: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
        for m in &req.managed {
            if let Ok((b, k)) = self.names(m) {
                managed.entry(b).or_default().insert(k);
            }
        }
        let mut out = Vec::new();
        for (bucket, keys) in &managed {
            let loc =
                if self.explicit.endpoint.is_some() { self.location(None) } else { lock(seen()).get(bucket).cloned().unwrap_or_else(|| self.location(None)) };
            let what = format!("the objects of bucket `{bucket}`");
            let client = self.client(&loc, &what)?;
            let prefixes: std::collections::BTreeSet<String> =
                keys.iter().map(|k| k.rsplit_once('/').map(|(d, _)| format!("{d}/")).unwrap_or_default()).collect();
            for prefix in prefixes {
                let mut token: Option<String> = None;
                loop {
                    let page = match client.list_objects_v2().bucket(bucket).prefix(&prefix).delimiter("/").set_continuation_token(token.take()).send().await {
                        Ok(p) => p,
                        Err(e) => {
                            let f = Fail::of(e);
                            if f.code_is(&["NoSuchBucket"]) {
                                break;
                            }
                            return Err(self.error("list", &what, &loc, f));
                        }
                    };
                    for o in page.contents() {
                        if let Some(k) = o.key() {
                            if !keys.contains(k) {
                                out.push(format!("{bucket}/{k}"));
                            }
                        }
                    }
                    match page.next_continuation_token() {
                        Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                        _ => break,
                    }
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
    fn content_types_are_guessed_from_the_extension() {
        assert_eq!(guess_content_type("a/b.json"), "application/json");
        assert_eq!(guess_content_type("x.YML"), "application/yaml");
        assert_eq!(guess_content_type("index.html"), "text/html");
        assert_eq!(guess_content_type("notes.txt"), "text/plain");
        assert_eq!(guess_content_type("blob"), "application/octet-stream");
    }

    #[test]
    fn policies_compare_by_content() {
        assert!(same_policy("{\"Version\":\"2012-10-17\",\"Statement\":[]}", "{\n  \"Statement\": [],\n  \"Version\": \"2012-10-17\"\n}"));
        assert!(!same_policy("{\"Version\":\"2012-10-17\"}", "{\"Version\":\"2008-10-17\"}"));
    }

    #[test]
    fn plan_knows_the_hash_of_content_and_not_of_a_new_source() {
        let f = S3Factory::new();
        let mut config = Map::default();
        config.insert("bucket".into(), Value::str("b"));
        config.insert("key".into(), Value::str("k"));
        config.insert("content".into(), Value::str("hello"));
        let planned = f.plan("object", None, &config);
        assert_eq!(planned.get("sha256"), Some(&Value::str(sha256_hex(b"hello"))));
        assert_eq!(planned.get("etag"), Some(&Value::Unknown));
        config.insert("content".into(), Value::Null);
        config.insert("source".into(), Value::str("f.txt"));
        assert_eq!(f.plan("object", None, &config).get("sha256"), Some(&Value::Unknown));
    }

    #[test]
    fn endpoints_must_be_http_urls() {
        let f = S3Factory::new();
        let ctx = ProviderContext { project_dir: ".".into() };
        let mut config = Map::default();
        config.insert("endpoint".into(), Value::str("http://127.0.0.1:1/"));
        assert!(f.configure(&config, &ctx).is_ok());
        config.insert("endpoint".into(), Value::str("ftp://x"));
        assert_eq!(f.configure(&config, &ctx).err().map(|d| d.code), Some("P6400"));
    }

    #[test]
    fn lifecycle_rules_are_validated_and_normalised() {
        let rule = |pairs: &[(&str, Value)]| Value::Map(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect());
        let rules = Value::List(vec![
            rule(&[("id", Value::str("z")), ("expiration_days", Value::Int(30))]),
            rule(&[
                ("id", Value::str("a")),
                ("prefix", Value::str("tmp/")),
                ("enabled", Value::Bool(false)),
                ("abort_incomplete_multipart_upload_days", Value::Float(2.0)),
            ]),
        ]);
        let parsed = parse_rules(Some(&rules), "b").expect("valid");
        assert_eq!(parsed.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["a", "z"]);
        assert_eq!(
            parsed[1],
            Rule {
                id: "z".into(),
                prefix: String::new(),
                enabled: true,
                expiration_days: Some(30),
                noncurrent_version_expiration_days: None,
                abort_incomplete_multipart_upload_days: None
            }
        );
        assert_eq!(parse_rules(Some(&rules_value(&parsed)), "b").expect("round trip"), parsed);
        assert_eq!(parse_rules(Some(&Value::List(vec![])), "b").expect("none"), vec![]);
        for bad in [
            rule(&[("expiration_days", Value::Int(1))]),
            rule(&[("id", Value::str("x"))]),
            rule(&[("id", Value::str("x")), ("expiration_days", Value::Int(0))]),
            rule(&[("id", Value::str("x")), ("expiration_days", Value::Float(1.5))]),
            rule(&[("id", Value::str("x")), ("expiration_days", Value::Int(1)), ("days", Value::Int(1))]),
            Value::str("x"),
        ] {
            let d = parse_rules(Some(&Value::List(vec![bad])), "b").expect_err("invalid");
            assert_eq!(d.code, "P6409");
            assert!(d.help.contains("bucket `b`"));
        }
        let twice = rule(&[("id", Value::str("x")), ("expiration_days", Value::Int(1))]);
        assert!(parse_rules(Some(&Value::List(vec![twice.clone(), twice])), "b").is_err());
    }

    #[test]
    fn errors_never_show_credentials() {
        let p = S3Provider {
            schema: ProviderSchema::default(),
            base: ".".into(),
            explicit: Explicit { endpoint: Some("http://h".into()), region: None, path_style: None },
            fallback: Location { endpoint: None, region: "us-east-1".into(), path_style: false },
            creds: (Some("AKIDEXAMPLE".into()), Some("very-secret".into()), None),
            clients: Mutex::new(HashMap::new()),
        };
        let loc = p.location(None);
        let d = p.error(
            "read",
            "bucket `b`",
            &loc,
            Fail { status: Some(503), code: Some("SlowDown".into()), text: "key AKIDEXAMPLE very-secret".into(), transient: true },
        );
        assert_eq!(d.code, "P6402");
        assert!(d.retryable);
        assert!(d.help.contains("bucket `b`") && d.help.contains("http://h"));
        assert!(!d.help.contains("very-secret") && !d.help.contains("AKIDEXAMPLE"));
        let denied = p.error("read", "bucket `b`", &loc, Fail { status: Some(403), code: Some("AccessDenied".into()), text: String::new(), transient: false });
        assert_eq!(denied.code, "P6403");
        assert!(!denied.retryable);
    }
}
