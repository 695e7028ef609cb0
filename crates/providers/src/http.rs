//! `http`: generic REST objects with JSON bodies. `http.resource` creates an
//! object by sending `body` to a collection (`path`), learns its id from the
//! answer (`id_pointer`, a JSON pointer) or is told it (`object_id`), and
//! then reads, updates and deletes it at its own URL (`item_path`).
//!
//! Drift is a subset match: only the fields present in `body` are compared
//! with what the server answers (minus `ignore_fields`), so fields the server
//! adds (`id`, `created_at`…) never drift. Requests are retried with
//! exponential backoff and jitter on 429 (honouring `Retry-After`), 5xx and
//! connection errors; exhausted transient failures are retryable diagnostics.
//! Credentials (`bearer_token`, `password`) never appear in diagnostics:
//! URLs are shown without user information and body excerpts are redacted.
//! With `list_path`, drift lists the collection and reports the objects no
//! managed one has (`list`).
//! Diagnostics: P6600–P6608 (see `docs/providers/http.md`).

use super::*;
use rand::Rng;
use serde_json::Value as J;
use std::time::Duration;

const DEFAULT_ATTEMPTS: u32 = 4;
const BASE_DELAY_MS: u64 = 200;
const MAX_DELAY: Duration = Duration::from_secs(30);

pub struct HttpFactory {
    schema: ProviderSchema,
}

impl HttpFactory {
    pub fn new() -> Self {
        let resource = ResourceSchema::new("A REST object managed with JSON bodies: created in a collection, then read, updated and deleted at its own URL.")
            .attr("path", AttrSchema::required(Type::String, "collection path the object is created in, relative to the provider's base_url, e.g. \"/orgs\"").forces_replacement())
            .attr("item_path", AttrSchema::optional(Type::String, "template of the object's own path: `{id}` is its id, `{path}` the collection path; default \"{path}/{id}\"").forces_replacement())
            .attr("body", AttrSchema::optional(Type::Any, "the JSON sent on create and update; its fields are what drift compares"))
            .attr("object_id", AttrSchema::optional(Type::String, "the id when it is known beforehand (APIs that create with PUT at the object's own URL); `id_pointer` is then not used").forces_replacement())
            .attr("id_pointer", AttrSchema::optional(Type::String, "JSON pointer into the create response that gives the id").default(Value::str("/id")))
            .attr("create_method", AttrSchema::optional(Type::String, "POST, PUT, PATCH or GET").default(Value::str("POST")))
            .attr("update_method", AttrSchema::optional(Type::String, "PATCH, PUT or POST").default(Value::str("PATCH")))
            .attr("read_method", AttrSchema::optional(Type::String, "GET, or NONE when the API cannot read the object back (its recorded value is trusted)").default(Value::str("GET")))
            .attr("delete_method", AttrSchema::optional(Type::String, "DELETE, or NONE when the object cannot be deleted (destroy only forgets it)").default(Value::str("DELETE")))
            .attr("read_pointer", AttrSchema::optional(Type::String, "JSON pointer into the read response to compare with `body` (default: the whole response)"))
            .attr("headers", AttrSchema::optional(Type::Map(Box::new(Type::String)), "extra request headers, merged over the provider's"))
            .attr("expected_status", AttrSchema::optional(Type::List(Box::new(Type::Number)), "statuses that count as success for create, update and delete (default: any 2xx)"))
            .attr("list_path", AttrSchema::optional(Type::String, "collection path to GET for drift's unmanaged objects: every item whose id (at `id_pointer`) no managed object has is reported; not set: nothing is listed"))
            .attr("list_items_pointer", AttrSchema::optional(Type::String, "JSON pointer to the array of items in the `list_path` answer (default: the whole answer)"))
            .attr("ignore_fields", AttrSchema::optional(Type::List(Box::new(Type::String)), "JSON pointers into `body` never compared for drift (fields the server rewrites)").default(Value::List(vec![])))
            .attr("id", AttrSchema::computed(Type::String, "the object's id"))
            .attr("response", AttrSchema::computed(Type::Any, "the last JSON the server answered for the object; may hold secrets, so never displayed").sensitive().derived());
        let mut schema = ProviderSchema::default();
        schema.config.insert("base_url", AttrSchema::required(Type::String, "the API's root URL, e.g. \"https://forgejo.example/api/v1\""));
        schema.config.insert("headers", AttrSchema::optional(Type::Map(Box::new(Type::String)), "headers sent with every request"));
        schema.config.insert("bearer_token", AttrSchema::optional(Type::String, "sent as `Authorization: Bearer …`").sensitive());
        schema.config.insert("username", AttrSchema::optional(Type::String, "user for HTTP basic authentication"));
        schema.config.insert("password", AttrSchema::optional(Type::String, "password for HTTP basic authentication").sensitive());
        schema.config.insert("insecure_skip_verify", AttrSchema::optional(Type::Bool, "accept any TLS certificate (tests only)").default(Value::Bool(false)));
        schema.config.insert(
            "attempts",
            AttrSchema::optional(Type::Number, "tries per request on 429, 5xx and connection errors (1 to 10)").default(Value::Int(DEFAULT_ATTEMPTS as i64)),
        );
        schema.resources.insert("resource", resource);
        HttpFactory { schema }
    }
}

impl Default for HttpFactory {
    fn default() -> Self {
        Self::new()
    }
}

fn config_error(help: impl Into<String>) -> Diagnostic {
    provider_error("P6600", "invalid http provider configuration", help)
}

fn resource_error(help: impl Into<String>) -> Diagnostic {
    provider_error("P6601", "invalid http.resource configuration", help)
}

fn string_map(v: Option<&Value>) -> Vec<(String, String)> {
    match v.map(Value::peel) {
        Some(Value::Map(m)) => m.iter().map(|(k, v)| (k.clone(), v.as_str().map(str::to_string).unwrap_or_else(|| v.peel().to_string()))).collect(),
        _ => vec![],
    }
}

impl ProviderFactory for HttpFactory {
    fn name(&self) -> &'static str {
        "http"
    }
    fn schema(&self) -> &ProviderSchema {
        &self.schema
    }
    fn plan(&self, rtype: &str, prior: Option<&Map>, config: &Map) -> Map {
        let mut planned = default_plan(self.schema.resources.get(rtype), prior, config);
        if let Some(id) = config.get("object_id").filter(|v| !matches!(v.peel(), Value::Null)) {
            planned.insert("id".into(), id.clone());
        }
        planned
    }
    fn configure(&self, config: &Map, _ctx: &ProviderContext) -> Result<Arc<dyn Provider>, Diagnostic> {
        let text = |k: &str| config.get(k).and_then(Value::as_str).map(str::to_string);
        let base = text("base_url")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| config_error("Set `base_url` to the API's root URL, e.g. \"https://forgejo.example/api/v1\"."))?;
        let mut url = reqwest::Url::parse(&base).map_err(|e| config_error(format!("`base_url` is not a URL ({e}); give it as \"https://host/api/v1\".")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(config_error("`base_url` must start with http:// or https://."));
        }
        let mut username = text("username");
        let mut password = text("password");
        if !url.username().is_empty() {
            // Credentials in the URL become basic authentication, and the URL shown is without them.
            username.get_or_insert_with(|| url.username().to_string());
            if let Some(p) = url.password() {
                password.get_or_insert_with(|| p.to_string());
            }
            let _ = url.set_username("");
            let _ = url.set_password(None);
        }
        let bearer = text("bearer_token").filter(|s| !s.is_empty());
        if bearer.is_some() && username.is_some() {
            return Err(config_error("Set either `bearer_token` or `username`/`password`, not both."));
        }
        if password.is_some() && username.is_none() {
            return Err(config_error("`password` needs a `username`."));
        }
        let attempts = config.get("attempts").and_then(Value::as_i64).unwrap_or(DEFAULT_ATTEMPTS as i64);
        if !(1..=10).contains(&attempts) {
            return Err(config_error("`attempts` must be a whole number from 1 to 10."));
        }
        let insecure = config.get("insecure_skip_verify").and_then(Value::as_bool).unwrap_or(false);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
            .tls_danger_accept_invalid_certs(insecure)
            .user_agent(concat!("plinth/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| config_error(format!("The HTTP client could not be built: {e}.")))?;
        let mut secrets: Vec<String> = [bearer.clone(), password.clone()].into_iter().flatten().filter(|s| s.len() >= 4).collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let base = url.as_str().trim_end_matches('/').to_string();
        let headers = string_map(config.get("headers"));
        for (k, v) in &headers {
            reqwest::header::HeaderName::from_bytes(k.as_bytes()).map_err(|_| config_error(format!("`headers` has an invalid header name {k:?}.")))?;
            reqwest::header::HeaderValue::from_str(v).map_err(|_| config_error(format!("`headers` has an invalid value for {k:?}.")))?;
        }
        let auth = match (bearer, username) {
            (Some(t), _) => Auth::Bearer(t),
            (None, Some(u)) => Auth::Basic(u, password),
            (None, None) => Auth::None,
        };
        Ok(Arc::new(HttpProvider { schema: self.schema.clone(), client, base, headers, auth, secrets, attempts: attempts as u32 }))
    }
}

enum Auth {
    None,
    Bearer(String),
    Basic(String, Option<String>),
}

struct HttpProvider {
    schema: ProviderSchema,
    client: reqwest::Client,
    /// Without trailing slash and without user information: safe to show.
    base: String,
    headers: Vec<(String, String)>,
    auth: Auth,
    /// Values redacted from anything shown.
    secrets: Vec<String>,
    attempts: u32,
}

/// One answer from the server.
struct Reply {
    status: u16,
    text: String,
}

impl Reply {
    fn json(&self) -> Option<J> {
        if self.text.trim().is_empty() {
            return None;
        }
        serde_json::from_str(&self.text).ok()
    }
}

/// The settings of one `http.resource` instance.
struct Spec {
    path: String,
    item_path: String,
    body: Option<J>,
    object_id: Option<String>,
    id_pointer: String,
    create_method: reqwest::Method,
    update_method: reqwest::Method,
    read_method: Option<reqwest::Method>,
    delete_method: Option<reqwest::Method>,
    read_pointer: Option<String>,
    headers: Vec<(String, String)>,
    expected: Vec<u16>,
    ignore: Vec<String>,
    list_path: Option<String>,
    list_items_pointer: String,
}

fn method(config: &Map, name: &str, default: &str, allowed: &[&str]) -> Result<Option<reqwest::Method>, Diagnostic> {
    let m = config.get(name).and_then(Value::as_str).unwrap_or(default).to_ascii_uppercase();
    if m == "NONE" && allowed.contains(&"NONE") {
        return Ok(None);
    }
    if !allowed.contains(&m.as_str()) {
        return Err(resource_error(format!("`{name}` is {m:?}; use one of {}.", allowed.join(", "))));
    }
    reqwest::Method::from_bytes(m.as_bytes()).map(Some).map_err(|_| resource_error(format!("`{name}` is not an HTTP method.")))
}

fn pointer_ok(p: &str) -> bool {
    p.is_empty() || p.starts_with('/')
}

impl Spec {
    fn from(config: &Map) -> Result<Spec, Diagnostic> {
        let text = |k: &str| config.get(k).and_then(Value::as_str).map(str::to_string);
        let path = text("path").ok_or_else(|| resource_error("`path` is required: the collection path, e.g. \"/orgs\"."))?;
        if path.contains("://") {
            return Err(resource_error("`path` is relative to the provider's `base_url`, e.g. \"/orgs\", not a full URL."));
        }
        let item_path = text("item_path").unwrap_or_else(|| "{path}/{id}".to_string());
        if !item_path.contains("{id}") && !item_path.contains("{path}") {
            return Err(resource_error("`item_path` must contain `{id}` (or `{path}` when the collection path is the object's own), e.g. \"/orgs/{id}\"."));
        }
        let id_pointer = text("id_pointer").unwrap_or_else(|| "/id".to_string());
        let read_pointer = text("read_pointer");
        let list_path = text("list_path").filter(|s| !s.is_empty());
        if list_path.as_deref().is_some_and(|p| p.contains("://")) {
            return Err(resource_error("`list_path` is relative to the provider's `base_url`, e.g. \"/orgs\", not a full URL."));
        }
        let list_items_pointer = text("list_items_pointer").unwrap_or_default();
        let ignore: Vec<String> = match config.get("ignore_fields").map(Value::peel) {
            Some(Value::List(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
            _ => vec![],
        };
        for p in std::iter::once(&id_pointer).chain(read_pointer.iter()).chain(ignore.iter()).chain(std::iter::once(&list_items_pointer)) {
            if !pointer_ok(p) {
                return Err(resource_error(format!("{p:?} is not a JSON pointer; pointers start with \"/\", e.g. \"/id\" or \"/data/name\".")));
            }
        }
        let expected: Vec<u16> = match config.get("expected_status").map(Value::peel) {
            Some(Value::List(items)) => items
                .iter()
                .map(|v| v.as_i64().filter(|n| (100..=599).contains(n)).map(|n| n as u16))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| resource_error("`expected_status` must list HTTP status codes (100 to 599)."))?,
            _ => vec![],
        };
        let body = config.get("body").filter(|v| !matches!(v.peel(), Value::Null)).map(Value::to_json);
        Ok(Spec {
            path,
            item_path,
            body,
            object_id: text("object_id").filter(|s| !s.is_empty()),
            id_pointer,
            create_method: method(config, "create_method", "POST", &["POST", "PUT", "PATCH", "GET"])?.unwrap_or(reqwest::Method::POST),
            update_method: method(config, "update_method", "PATCH", &["PATCH", "PUT", "POST"])?.unwrap_or(reqwest::Method::PATCH),
            read_method: method(config, "read_method", "GET", &["GET", "NONE"])?,
            delete_method: method(config, "delete_method", "DELETE", &["DELETE", "POST", "NONE"])?,
            read_pointer,
            headers: string_map(config.get("headers")),
            expected,
            ignore,
            list_path,
            list_items_pointer,
        })
    }

    fn item(&self, id: &str) -> String {
        self.item_path.replace("{path}", self.path.trim_end_matches('/')).replace("{id}", &encode_id(id))
    }

    fn success(&self, status: u16) -> bool {
        if self.expected.is_empty() {
            (200..300).contains(&status)
        } else {
            self.expected.contains(&status)
        }
    }
}

/// Percent-encodes an id for a path, keeping `/` (ids such as "owner/repo").
fn encode_id(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/:@!$&'()*+,;=".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// What the server holds, restricted to the shape of what was sent: the
/// fields of `want` (recursively) with the server's values; fields under an
/// ignored pointer keep the wanted value, missing fields become null.
fn project(want: &J, got: &J, ignore: &[String], at: &str) -> J {
    if ignore.iter().any(|p| p == at) {
        return want.clone();
    }
    match (want, got) {
        (J::Object(w), J::Object(g)) => J::Object(
            w.iter()
                .map(|(k, wv)| {
                    let p = format!("{at}/{}", escape_pointer(k));
                    let v = if ignore.contains(&p) { wv.clone() } else { g.get(k).map_or(J::Null, |gv| project(wv, gv, ignore, &p)) };
                    (k.clone(), v)
                })
                .collect(),
        ),
        (J::Array(w), J::Array(g)) if w.len() == g.len() => {
            J::Array(w.iter().zip(g).enumerate().map(|(i, (wv, gv))| project(wv, gv, ignore, &format!("{at}/{i}"))).collect())
        }
        _ => got.clone(),
    }
}

fn id_text(v: &J) -> Option<String> {
    match v {
        J::String(s) if !s.is_empty() => Some(s.clone()),
        J::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let v = resp.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<f64>().ok().filter(|s| *s >= 0.0).map(|s| Duration::from_secs_f64(s).min(MAX_DELAY))
}

fn backoff(attempt: u32) -> Duration {
    let base = BASE_DELAY_MS.saturating_mul(1 << attempt.min(8));
    let jitter = rand::thread_rng().gen_range(0..=base / 2);
    Duration::from_millis(base / 2 + jitter).min(MAX_DELAY)
}

impl HttpProvider {
    fn url(&self, path: &str) -> String {
        if path.starts_with('/') {
            format!("{}{path}", self.base)
        } else {
            format!("{}/{path}", self.base)
        }
    }

    fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            out = out.replace(s.as_str(), "(redacted)");
        }
        crate::redact::text(&out)
    }

    fn excerpt(&self, text: &str) -> String {
        let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut cut: String = flat.chars().take(200).collect();
        if flat.chars().count() > 200 {
            cut.push('…');
        }
        let cut = self.redact(&cut);
        if cut.is_empty() {
            "(empty body)".into()
        } else {
            cut
        }
    }

    /// Sends one request, retrying 429, 5xx and connection errors with
    /// backoff. Errors only when the transient failures are exhausted.
    async fn send(&self, method: &reqwest::Method, path: &str, body: Option<&J>, extra: &[(String, String)]) -> Result<Reply, Diagnostic> {
        let url = self.url(path);
        let shown = self.redact(&url);
        let mut last = String::new();
        let mut last_status = None;
        for attempt in 0..self.attempts {
            let mut req = self.client.request(method.clone(), &url).header(reqwest::header::ACCEPT, "application/json");
            for (k, v) in self.headers.iter().filter(|(k, _)| !extra.iter().any(|(e, _)| e.eq_ignore_ascii_case(k))).chain(extra) {
                req = req.header(k.as_str(), v.as_str());
            }
            req = match &self.auth {
                Auth::None => req,
                Auth::Bearer(t) => req.bearer_auth(t),
                Auth::Basic(u, p) => req.basic_auth(u, p.as_ref()),
            };
            if let Some(b) = body {
                req = req.json(b);
            }
            let mut wait = backoff(attempt);
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let after = retry_after(&resp);
                    let text = resp.text().await.unwrap_or_default();
                    if status == 429 || status >= 500 {
                        last = format!("HTTP {status}: {}", self.excerpt(&text));
                        last_status = Some(status);
                        if let Some(a) = after {
                            wait = a;
                        }
                    } else {
                        return Ok(Reply { status, text });
                    }
                }
                Err(e) => {
                    // reqwest's error text may hold the URL: show ours instead.
                    let kind = if e.is_timeout() {
                        "the request timed out"
                    } else if e.is_connect() {
                        "the connection failed"
                    } else {
                        "the request failed"
                    };
                    let e = e.without_url();
                    let mut why = e.to_string();
                    let mut source = std::error::Error::source(&e);
                    while let Some(s) = source {
                        why = format!("{why}: {s}");
                        source = s.source();
                    }
                    last = format!("{kind} ({})", self.redact(&why));
                    last_status = None;
                }
            }
            if attempt + 1 < self.attempts {
                tokio::time::sleep(wait).await;
            }
        }
        let n = self.attempts;
        Err(match last_status {
            Some(status) => provider_error(
                "P6605",
                format!("{method} {shown} answered {status} after {n} attempts"),
                format!("The server kept failing or limiting requests (last: {last}). This is transient: try again later, or raise `attempts` / `max_retries` in the provider block."),
            ),
            None => provider_error(
                "P6602",
                format!("{method} {shown} could not be sent after {n} attempts"),
                format!("No answer from the server: {last}. Check that `base_url` is right and the server is reachable."),
            ),
        }
        .retryable())
    }

    /// The diagnostic for an answer that is not a success.
    fn refused(&self, method: &reqwest::Method, path: &str, reply: &Reply) -> Diagnostic {
        let shown = self.redact(&self.url(path));
        let status = reply.status;
        let body = self.excerpt(&reply.text);
        if status == 401 || status == 403 {
            let what = if status == 401 { "rejected the credentials" } else { "refused access" };
            provider_error(
                "P6603",
                format!("{method} {shown}: the server {what} (HTTP {status})"),
                format!("Check the provider's `bearer_token` (or `username`/`password`) and the permissions (scopes) it carries. The server said: {body}"),
            )
        } else {
            provider_error(
                "P6604",
                format!("{method} {shown} answered HTTP {status}"),
                format!("The server refused the request; its answer: {body}. Check `path`, `body` and `expected_status` against the API's documentation."),
            )
        }
    }

    fn observe(&self, base: Map, id: &str, response: Option<J>, body: Option<J>) -> Observed {
        let mut observed = base;
        observed.insert("id".into(), Value::String(id.to_string()));
        if let Some(b) = body {
            observed.insert("body".into(), Value::from_json(&b));
        }
        let response = response.map(|r| Value::from_json(&r)).or_else(|| observed.get("response").cloned()).unwrap_or(Value::Null);
        observed.insert("response".into(), response);
        observed
    }

    /// The ids of the items the collection at `list_path` answers.
    async fn list_ids(&self, spec: &Spec, list_path: &str) -> Result<Vec<String>, Diagnostic> {
        let get = reqwest::Method::GET;
        let reply = self.send(&get, list_path, None, &spec.headers).await?;
        if !(200..300).contains(&reply.status) {
            return Err(self.refused(&get, list_path, &reply));
        }
        let shown = self.redact(&self.url(list_path));
        let bad = |what: String, help: &str| {
            provider_error("P6608", format!("the answer to GET {shown} {what}"), format!("{help} The server said: {}", self.excerpt(&reply.text)))
        };
        let json = reply.json().unwrap_or(J::Null);
        let Some(J::Array(items)) = json.pointer(&spec.list_items_pointer) else {
            let at = if spec.list_items_pointer.is_empty() { "as a whole".to_string() } else { format!("at {:?}", spec.list_items_pointer) };
            return Err(bad(
                format!("is not a list of objects {at}"),
                "Set `list_items_pointer` to the JSON pointer of the array of items (e.g. \"/data\"), or `list_path` to a collection the API lists.",
            ));
        };
        items
            .iter()
            .map(|item| {
                item.pointer(&spec.id_pointer).and_then(id_text).ok_or_else(|| {
                    bad(
                        format!("has an item without an id at {:?}", spec.id_pointer),
                        "Each listed item needs its id where `id_pointer` points; point `list_items_pointer` at the items themselves.",
                    )
                })
            })
            .collect()
    }

    async fn write(&self, spec: &Spec, method: &reqwest::Method, path: &str) -> Result<Reply, Diagnostic> {
        let reply = self.send(method, path, spec.body.as_ref(), &spec.headers).await?;
        if !spec.success(reply.status) {
            return Err(self.refused(method, path, &reply));
        }
        Ok(reply)
    }
}

#[async_trait]
impl Provider for HttpProvider {
    fn schema_of(&self, rtype: &str) -> Option<&ResourceSchema> {
        self.schema.resources.get(rtype)
    }

    async fn read(&self, req: ReadRequest) -> Result<Option<Observed>, Diagnostic> {
        let spec = Spec::from(&req.inputs)?;
        let id = req.prior.as_ref().and_then(|p| p.get("id")).and_then(Value::as_str).map(str::to_string).or_else(|| spec.object_id.clone());
        // An unfinished create without a known id cannot be found again.
        let Some(id) = id else { return Ok(None) };
        let base = req.prior.clone().unwrap_or_else(|| req.inputs.clone());
        let Some(get) = &spec.read_method else {
            // Write-only API: trust what was recorded.
            return Ok(req.prior.map(|p| self.observe(p, &id, None, None)));
        };
        let path = spec.item(&id);
        let reply = self.send(get, &path, None, &spec.headers).await?;
        if reply.status == 404 || reply.status == 410 {
            return Ok(None);
        }
        if !(200..300).contains(&reply.status) {
            return Err(self.refused(get, &path, &reply));
        }
        let json = reply.json().unwrap_or(J::Null);
        let seen = match &spec.read_pointer {
            Some(p) => json.pointer(p).cloned().ok_or_else(|| {
                provider_error(
                    "P6607",
                    format!("the answer to GET {} has nothing at {p:?}", self.redact(&self.url(&path))),
                    format!("`read_pointer` must point into the read response; the server said: {}", self.excerpt(&reply.text)),
                )
            })?,
            None => json.clone(),
        };
        let body = spec.body.as_ref().map(|want| project(want, &seen, &spec.ignore, ""));
        Ok(Some(self.observe(base, &id, Some(json), body)))
    }

    async fn create(&self, req: CreateRequest) -> Result<Observed, Diagnostic> {
        let spec = Spec::from(&req.config)?;
        let reply = self.write(&spec, &spec.create_method, &spec.path).await?;
        let json = reply.json();
        let id = match &spec.object_id {
            Some(id) => id.clone(),
            None => json.as_ref().and_then(|j| j.pointer(&spec.id_pointer)).and_then(id_text).ok_or_else(|| {
                provider_error(
                    "P6606",
                    format!("{} {} created an object but its answer has no id at {:?}", spec.create_method, self.redact(&self.url(&spec.path)), spec.id_pointer),
                    format!(
                        "Set `id_pointer` to where the create response holds the id (or `object_id` when it is known beforehand); the server said: {}. The object may exist on the server without being recorded.",
                        self.excerpt(&reply.text)
                    ),
                )
            })?,
        };
        Ok(self.observe(req.config, &id, json, None))
    }

    async fn update(&self, req: UpdateRequest) -> Result<Observed, Diagnostic> {
        let spec = Spec::from(&req.config)?;
        let id = req.prior.get("id").and_then(Value::as_str).map(str::to_string).or_else(|| spec.object_id.clone()).ok_or_else(|| {
            provider_error(
                "P6606",
                "the recorded object has no id",
                "Plinth cannot address this object; run `plinth state rm` on it and import or recreate it.",
            )
        })?;
        let path = spec.item(&id);
        let reply = self.write(&spec, &spec.update_method, &path).await?;
        let json = reply.json();
        // A rename (the id is a name) moves the object: follow it.
        let id = match (&spec.object_id, &json) {
            (None, Some(j)) => j.pointer(&spec.id_pointer).and_then(id_text).unwrap_or(id),
            _ => id,
        };
        let mut base = req.config;
        if let Some(r) = req.prior.get("response") {
            base.insert("response".into(), r.clone());
        }
        Ok(self.observe(base, &id, json.filter(|j| !j.is_null()), None))
    }

    /// With `list_path`: one GET per distinct `list_path` among the managed
    /// objects; every item whose object path (`item_path` with the item's
    /// id at `id_pointer`) is not a managed object's is reported by that path.
    async fn list(&self, req: ListRequest) -> Result<Vec<String>, Diagnostic> {
        // Every managed object's own path, whichever `list_path` it has.
        let mut managed = std::collections::BTreeSet::new();
        let mut collections: std::collections::BTreeMap<String, Spec> = std::collections::BTreeMap::new();
        for (i, inputs) in req.managed.iter().enumerate() {
            let Ok(spec) = Spec::from(inputs) else { continue };
            let id = req.recorded.get(i).and_then(|r| r.get("id")).and_then(Value::as_str).map(str::to_string).or_else(|| spec.object_id.clone());
            if let Some(id) = id {
                managed.insert(spec.item(&id));
            }
            if let Some(lp) = spec.list_path.clone() {
                collections.entry(lp).or_insert(spec);
            }
        }
        let mut out = Vec::new();
        for (list_path, spec) in &collections {
            for id in self.list_ids(spec, list_path).await? {
                let item = spec.item(&id);
                if !managed.contains(&item) {
                    out.push(item);
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    async fn delete(&self, req: DeleteRequest) -> Result<(), Diagnostic> {
        let spec = Spec::from(&req.prior)?;
        let Some(del) = &spec.delete_method else { return Ok(()) };
        let Some(id) = req.prior.get("id").and_then(Value::as_str).map(str::to_string).or_else(|| spec.object_id.clone()) else {
            return Ok(());
        };
        let path = spec.item(&id);
        let reply = self.send(del, &path, None, &spec.headers).await?;
        if reply.status == 404 || reply.status == 410 || spec.success(reply.status) {
            return Ok(());
        }
        Err(self.refused(del, &path, &reply))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn projection_keeps_only_the_fields_sent() {
        let want = json!({"name": "a", "meta": {"x": 1}, "tags": ["t"]});
        let got = json!({"id": 3, "name": "a", "created_at": "now", "meta": {"x": 1, "y": 2}, "tags": ["t"]});
        assert_eq!(project(&want, &got, &[], ""), want);
        let changed = json!({"name": "b", "meta": {"x": 1}, "tags": []});
        assert_eq!(project(&want, &changed, &[], ""), json!({"name": "b", "meta": {"x": 1}, "tags": []}));
        assert_eq!(project(&want, &json!({}), &["/name".to_string()], ""), json!({"name": "a", "meta": null, "tags": null}));
    }

    #[test]
    fn item_paths_and_ids() {
        let spec = |item: Option<&str>| {
            let mut m = Map::default();
            m.insert("path".into(), Value::str("/orgs/"));
            if let Some(i) = item {
                m.insert("item_path".into(), Value::str(i));
            }
            Spec::from(&m).unwrap()
        };
        assert_eq!(spec(None).item("7"), "/orgs/7");
        assert_eq!(spec(Some("/repos/{id}")).item("acme/app x"), "/repos/acme/app%20x");
        assert_eq!(id_text(&json!(12)), Some("12".into()));
        assert!(Spec::from(&[("path".to_string(), Value::str("/x")), ("update_method".to_string(), Value::str("GET"))].into_iter().collect()).is_err());
    }

    #[test]
    fn list_settings_are_validated() {
        let spec = |pairs: &[(&str, &str)]| Spec::from(&pairs.iter().map(|(k, v)| (k.to_string(), Value::str(*v))).collect());
        let s = spec(&[("path", "/orgs"), ("list_path", "/orgs?limit=100"), ("list_items_pointer", "/data")]).unwrap();
        assert_eq!((s.list_path.as_deref(), s.list_items_pointer.as_str()), (Some("/orgs?limit=100"), "/data"));
        assert_eq!(spec(&[("path", "/orgs")]).unwrap().list_path, None);
        assert_eq!(spec(&[("path", "/orgs"), ("list_path", "https://x/orgs")]).err().map(|d| d.code), Some("P6601"));
        assert_eq!(spec(&[("path", "/orgs"), ("list_path", "/orgs"), ("list_items_pointer", "data")]).err().map(|d| d.code), Some("P6601"));
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        assert!(backoff(0) <= Duration::from_millis(BASE_DELAY_MS));
        assert!(backoff(3) >= Duration::from_millis(BASE_DELAY_MS * 4));
        assert!(backoff(30) <= MAX_DELAY);
    }
}
