//! `kubernetes`: objects in a Kubernetes cluster, written by server-side
//! apply (`PATCH` with `application/apply-patch+yaml`, `fieldManager=plinth`,
//! `force=true`). Types: `kubernetes.namespace`, `kubernetes.secret`,
//! `kubernetes.config_map` and `kubernetes.manifest` (any object).
//!
//! The transport is plain `reqwest` (see [`Connection`] for why not
//! `kube::Client`) against URL paths this module resolves itself; bodies
//! stay `serde_json::Value`, so any kind (custom resources included) goes
//! through one code path. The connection is built lazily on the first call,
//! so a cluster created in the same run is only contacted once it exists.
//!
//! Drift is judged only on what Plinth manages: `read` projects the live
//! object onto the shape of the desired one (labels, annotations and data
//! keys Plinth set; manifest fields present in the configuration), so
//! server-added fields (status, managedFields, defaults…) never drift.
//! Tokens never appear in diagnostics.
//!
//! `list` (drift's unmanaged objects): objects of a managed kind, in the
//! namespaces where managed ones live, that carry Plinth's mark (the
//! `plinth` field manager in `metadata.managedFields`, or the label
//! `app.kubernetes.io/managed-by=plinth`) but are not managed by this state;
//! with `list_unmanaged = true`, also every namespace not managed.

use super::*;
use base64::Engine as _;
use serde_json::{json, Value as Json};
use std::collections::HashMap;
use std::time::Duration;

const FIELD_MANAGER: &str = "plinth";
/// The label that marks an object as Plinth's even without its field manager.
const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Items per page when listing.
const LIST_PAGE: usize = 500;

pub struct KubernetesFactory {
    schema: ProviderSchema,
}

fn string_map() -> Type {
    Type::Map(Box::new(Type::String))
}

impl KubernetesFactory {
    pub fn new() -> Self {
        let mut schema = ProviderSchema::default();
        schema.config.insert("kubeconfig", AttrSchema::optional(Type::String, "path of a kubeconfig file (default: $KUBECONFIG or ~/.kube/config)"));
        schema.config.insert("context", AttrSchema::optional(Type::String, "context of the kubeconfig to use (default: its current context)"));
        schema.config.insert("host", AttrSchema::optional(Type::String, "API server URL, e.g. https://10.0.0.1:6443 (instead of a kubeconfig)"));
        schema.config.insert("token", AttrSchema::optional(Type::String, "bearer token (with `host`)").sensitive());
        schema.config.insert("ca_cert", AttrSchema::optional(Type::String, "PEM of the cluster's CA, or a path to it (with `host`)"));
        schema.config.insert("insecure", AttrSchema::optional(Type::Bool, "skip TLS verification (with `host`)").default(Value::Bool(false)));
        schema.config.insert(
            "list_unmanaged",
            AttrSchema::optional(Type::Bool, "drift lists every namespace Plinth does not manage (kube-* and default excepted)").default(Value::Bool(false)),
        );
        let meta = |r: ResourceSchema| {
            r.attr("labels", AttrSchema::optional(string_map(), "labels Plinth manages (others are left alone)"))
                .attr("annotations", AttrSchema::optional(string_map(), "annotations Plinth manages (others are left alone)"))
        };
        let ns = meta(ResourceSchema::new("A namespace.").attr("name", AttrSchema::required(Type::String, "the namespace's name").forces_replacement()))
            .attr("uid", AttrSchema::computed(Type::String, "metadata.uid"));
        let secret = meta(
            ResourceSchema::new("A secret; `data` holds plain strings (base64 on the wire).")
                .attr("name", AttrSchema::required(Type::String, "the secret's name").forces_replacement())
                .attr("namespace", AttrSchema::optional(Type::String, "its namespace").default(Value::str("default")).forces_replacement())
                .attr("type", AttrSchema::optional(Type::String, "the secret's type").default(Value::str("Opaque")).forces_replacement())
                .attr("data", AttrSchema::optional(string_map(), "keys and plain-text values").sensitive()),
        )
        .attr("uid", AttrSchema::computed(Type::String, "metadata.uid"));
        let config_map = meta(
            ResourceSchema::new("A config map.")
                .attr("name", AttrSchema::required(Type::String, "the config map's name").forces_replacement())
                .attr("namespace", AttrSchema::optional(Type::String, "its namespace").default(Value::str("default")).forces_replacement())
                .attr("data", AttrSchema::optional(string_map(), "keys and values")),
        )
        .attr("uid", AttrSchema::computed(Type::String, "metadata.uid"));
        let manifest = ResourceSchema::new("Any object, applied server-side (e.g. an ArgoCD Application, a CloudNativePG Cluster).")
            .attr("manifest", AttrSchema::required(Type::Any, "the full object: apiVersion, kind, metadata.name[, metadata.namespace], …"))
            .attr("wait_for", AttrSchema::optional(Type::Any, "{ condition = \"Ready\", timeout = \"5m\" }: wait until status.conditions has it True"))
            .attr("uid", AttrSchema::computed(Type::String, "metadata.uid"))
            .attr("object", AttrSchema::computed(Type::Any, "the live object as last written or read (without managedFields)").derived());
        schema.resources.insert("namespace", ns);
        schema.resources.insert("secret", secret);
        schema.resources.insert("config_map", config_map);
        schema.resources.insert("manifest", manifest);
        KubernetesFactory { schema }
    }
}

impl Default for KubernetesFactory {
    fn default() -> Self {
        Self::new()
    }
}

impl ProviderFactory for KubernetesFactory {
    fn name(&self) -> &'static str {
        "kubernetes"
    }
    fn schema(&self) -> &ProviderSchema {
        &self.schema
    }
    fn plan(&self, rtype: &str, prior: Option<&Map>, config: &Map) -> Map {
        let mut planned = default_plan(self.schema.resources.get(rtype), prior, config);
        if rtype == "manifest" {
            // The live object changes with every write: unknown until applied.
            let same = prior.is_some_and(|p| p.get("manifest") == config.get("manifest"));
            if !same {
                planned.insert("object".into(), Value::Unknown);
                let same_identity =
                    prior.and_then(|p| p.get("manifest")).map(|m| identity_of(&m.to_json())) == config.get("manifest").map(|m| identity_of(&m.to_json()));
                if !same_identity {
                    planned.insert("uid".into(), Value::Unknown);
                }
            }
            // A Secret written as a manifest is as secret as kubernetes.secret:
            // its manifest and live object never show in plans or state.
            let is_secret = config.get("manifest").map(|m| m.to_json()).is_some_and(|m| m.get("kind").and_then(|k| k.as_str()) == Some("Secret"));
            if is_secret {
                for name in ["manifest", "object"] {
                    if let Some(v) = planned.get_mut(name) {
                        let inner = std::mem::replace(v, Value::Null);
                        *v = inner.mark_if(true);
                    }
                }
            }
        }
        planned
    }
    fn configure(&self, config: &Map, ctx: &ProviderContext) -> Result<Arc<dyn Provider>, Diagnostic> {
        let get = |k: &str| config.get(k).and_then(Value::as_str).map(str::to_string);
        let settings = Settings {
            kubeconfig: get("kubeconfig"),
            // "" is how a module passes "the current context" along.
            context: get("context").filter(|c| !c.is_empty()),
            host: get("host"),
            token: get("token"),
            ca_cert: get("ca_cert"),
            insecure: matches!(config.get("insecure").map(Value::peel), Some(Value::Bool(true))),
            list_unmanaged: matches!(config.get("list_unmanaged").map(Value::peel), Some(Value::Bool(true))),
            project_dir: ctx.project_dir.clone(),
        };
        if let Some(host) = &settings.host {
            if !(host.starts_with("https://") || host.starts_with("http://")) {
                return Err(config_error(format!("invalid host {host:?}"), "Give `host` as a URL such as \"https://10.0.0.1:6443\"."));
            }
        }
        Ok(Arc::new(KubernetesProvider {
            schema: self.schema.clone(),
            settings,
            client: tokio::sync::OnceCell::new(),
            kinds: std::sync::Mutex::new(HashMap::new()),
        }))
    }
}

struct Settings {
    kubeconfig: Option<String>,
    context: Option<String>,
    host: Option<String>,
    token: Option<String>,
    ca_cert: Option<String>,
    insecure: bool,
    /// List unmanaged namespaces (secrets, config maps and manifests are
    /// listed only when they carry Plinth's mark).
    list_unmanaged: bool,
    project_dir: std::path::PathBuf,
}

struct KubernetesProvider {
    schema: ProviderSchema,
    settings: Settings,
    client: tokio::sync::OnceCell<Connection>,
    /// (apiVersion, kind) → (plural, namespaced), from discovery.
    kinds: std::sync::Mutex<HashMap<(String, String), (String, bool)>>,
}

// ---------------------------------------------------------------- errors

fn config_error(message: impl Into<String>, help: impl Into<String>) -> Diagnostic {
    provider_error("P6500", message, help)
}

fn object_error(message: impl Into<String>, help: impl Into<String>) -> Diagnostic {
    provider_error("P6508", message, help)
}

/// A failed request: the server's answer, or no answer at all.
#[derive(Debug)]
pub enum ApiError {
    /// HTTP status and the message of the `Status` object (or the body).
    Status(u16, String),
    /// Connection refused, TLS, timeout…: nothing was answered.
    Transport(String),
    /// An answer that is not JSON.
    Decode(String),
}

/// Maps a failed request to a diagnostic. Server messages are included (they
/// never carry credentials); the token is never formatted anywhere.
fn api_error(action: &str, what: &str, e: ApiError) -> Diagnostic {
    match e {
        ApiError::Status(code, msg) => {
            let base = format!("cannot {action} {what}: HTTP {code}: {msg}");
            match code {
                401 | 403 => provider_error("P6502", base, "The API server refused the credentials or their permissions. Check the token or kubeconfig user, and that its RBAC role allows this verb on this resource."),
                404 => provider_error("P6503", base, "The API server does not know this path: the kind's CustomResourceDefinition may not be installed yet, or the namespace does not exist. Install the CRD / create the namespace first (e.g. with `depends_on`)."),
                409 => provider_error("P6505", base, "Another writer changed the object at the same time. This is retried (`max_retries` in the provider block); if it persists, check which controller fights over these fields.").retryable(),
                429 => provider_error("P6506", base, "The API server is throttling requests. This is retried; lower `max_requests_per_second` in the provider block if it persists.").retryable(),
                400 | 422 => provider_error("P6504", base, "The API server refused the object as invalid. Fix the fields its message names."),
                c if c >= 500 => provider_error("P6507", base, "The API server failed. This is retried; if it persists, check the cluster's health (the API server or a webhook).").retryable(),
                _ => provider_error("P6510", base, "The API server answered unexpectedly. Check the object and the cluster."),
            }
        }
        ApiError::Transport(msg) => provider_error(
            "P6501",
            format!("cannot {action} {what}: cannot reach the Kubernetes API server: {msg}"),
            "Check `host` (or the kubeconfig's server), the network, the TLS settings, and that the cluster is up. This is retried.",
        )
        .retryable(),
        ApiError::Decode(msg) => provider_error(
            "P6510",
            format!("cannot {action} {what}: the answer is not a Kubernetes object: {msg}"),
            "Check that `host` points at a Kubernetes API server and not a proxy or web page.",
        ),
    }
}

// ---------------------------------------------------------------- client

/// A connection to one API server: base URL, HTTP client (TLS settings
/// baked in) and bearer token. Plain `reqwest`: `kube::Client` panics at
/// first use in this binary because rustls finds two crypto back ends
/// (ring through kube, aws-lc-rs through reqwest) and no process default.
pub struct Connection {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("base", &self.base).field("token", &self.token.as_ref().map(|_| "[redacted]")).finish()
    }
}

/// What a connection is made of, from the provider block or a kubeconfig.
#[derive(Default)]
pub struct ConnectionSettings {
    pub host: String,
    pub token: Option<String>,
    pub ca_pem: Option<Vec<u8>>,
    pub insecure: bool,
    /// Client certificate and key, PEM, concatenated.
    pub identity_pem: Option<Vec<u8>>,
}

/// Runs a kubeconfig `exec` credential plugin (client.authentication.k8s.io
/// `ExecCredential`): its token, or its client certificate and key. Runs
/// once when the provider is configured (a run is shorter than the
/// credentials' lifetime). Never interactive: stdin is closed.
fn exec_credential(exec: &Json, kubeconfig_dir: &std::path::Path) -> Result<(Option<String>, Option<Vec<u8>>), String> {
    let command = exec["command"].as_str().filter(|c| !c.is_empty()).ok_or("the exec entry has no `command`")?;
    // A relative path with a separator is relative to the kubeconfig's directory.
    let program =
        if command.contains('/') && std::path::Path::new(command).is_relative() { kubeconfig_dir.join(command) } else { std::path::PathBuf::from(command) };
    let api_version = exec["apiVersion"].as_str().unwrap_or("client.authentication.k8s.io/v1");
    // The plugin gets the allow-list of crate::child, the kubeconfig's
    // `env` entries and KUBERNETES_EXEC_INFO: never Plinth's own secrets.
    let mut env: Vec<(String, String)> = Vec::new();
    for e in exec["env"].as_array().into_iter().flatten() {
        if let (Some(k), Some(v)) = (e["name"].as_str(), e["value"].as_str()) {
            env.push((k.to_string(), v.to_string()));
        }
    }
    let info = json!({ "apiVersion": api_version, "kind": "ExecCredential", "spec": { "interactive": false } });
    env.push(("KUBERNETES_EXEC_INFO".into(), info.to_string()));
    let mut cmd = crate::child::command(&program, crate::child::Kind::CredentialPlugin, &env);
    for a in exec["args"].as_array().into_iter().flatten() {
        cmd.arg(a.as_str().unwrap_or_default());
    }
    cmd.stdin(std::process::Stdio::null());
    let out = cmd.output().map_err(|e| format!("cannot run `{}`: {e}", program.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err.lines().next().unwrap_or("").chars().take(300).collect::<String>();
        return Err(format!("`{}` exited with {} ({first})", program.display(), out.status));
    }
    let cred: Json = serde_json::from_slice(&out.stdout).map_err(|e| format!("`{}` did not print an ExecCredential as JSON: {e}", program.display()))?;
    let status = &cred["status"];
    if let Some(t) = status["token"].as_str().filter(|t| !t.is_empty()) {
        return Ok((Some(t.to_string()), None));
    }
    match (status["clientCertificateData"].as_str(), status["clientKeyData"].as_str()) {
        (Some(c), Some(k)) => Ok((None, Some(format!("{c}\n{k}").into_bytes()))),
        _ => Err(format!("`{}` printed an ExecCredential without `status.token` or a client certificate", program.display())),
    }
}

impl Connection {
    pub fn new(s: ConnectionSettings) -> Result<Connection, Diagnostic> {
        let mut b =
            reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).timeout(Duration::from_secs(60)).danger_accept_invalid_certs(s.insecure);
        if let Some(pem) = &s.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| config_error("invalid CA certificate", format!("{e}. Give `ca_cert` (or the kubeconfig's certificate-authority) as PEM.")))?;
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        if let Some(pem) = &s.identity_pem {
            let id = reqwest::Identity::from_pem(pem).map_err(|e| {
                config_error("invalid client certificate or key", format!("{e}. The kubeconfig user's client-certificate and client-key must be PEM."))
            })?;
            b = b.identity(id);
        }
        let http = b.build().map_err(|e| config_error("cannot create the HTTP client", format!("{e}. Check the TLS settings.")))?;
        Ok(Connection { base: s.host.trim_end_matches('/').to_string(), http, token: s.token })
    }

    /// Reads a kubeconfig file: the given context (or the current one), its
    /// cluster's server and CA, its user's token or client certificate.
    pub fn settings_from_kubeconfig(path: &std::path::Path, context: Option<&str>) -> Result<ConnectionSettings, Diagnostic> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            config_error(
                format!("cannot read kubeconfig {shown}"),
                format!("The file system said: {e}. Check `kubeconfig` in the `provider kubernetes` block."),
            )
        })?;
        let kc: Json = serde_yaml::from_str(&text).map_err(|e| config_error(format!("kubeconfig {shown} is not valid YAML"), format!("{e}.")))?;
        let dir = path.parent().unwrap_or(std::path::Path::new("."));
        let find = |list: &str, name: &str, field: &str| -> Option<Json> { kc[list].as_array()?.iter().find(|e| e["name"] == name).map(|e| e[field].clone()) };
        let ctx_name = context
            .map(str::to_string)
            .or_else(|| kc["current-context"].as_str().map(str::to_string))
            .ok_or_else(|| config_error(format!("kubeconfig {shown} has no current context"), "Set `context` in the `provider kubernetes` block."))?;
        let ctx = find("contexts", &ctx_name, "context").ok_or_else(|| {
            let names: Vec<String> =
                kc["contexts"].as_array().map(|a| a.iter().filter_map(|c| c["name"].as_str().map(str::to_string)).collect()).unwrap_or_default();
            config_error(format!("kubeconfig {shown} has no context {ctx_name:?}"), format!("Its contexts are: {}.", names.join(", ")))
        })?;
        let cluster = find("clusters", ctx["cluster"].as_str().unwrap_or(""), "cluster")
            .ok_or_else(|| config_error(format!("context {ctx_name:?} names no known cluster"), "Fix the kubeconfig's context entry."))?;
        let user = find("users", ctx["user"].as_str().unwrap_or(""), "user").unwrap_or(Json::Null);
        let b64 = |v: &Json, what: &str| -> Result<Option<Vec<u8>>, Diagnostic> {
            v.as_str()
                .map(|s| {
                    base64::engine::general_purpose::STANDARD
                        .decode(s.trim())
                        .map_err(|_| config_error(format!("kubeconfig {shown}: {what} is not base64"), "Fix the kubeconfig."))
                })
                .transpose()
        };
        let file = |v: &Json| -> Result<Option<Vec<u8>>, Diagnostic> {
            v.as_str()
                .map(|p| {
                    let p = dir.join(p);
                    std::fs::read(&p).map_err(|e| {
                        config_error(format!("cannot read {}", p.display()), format!("The file system said: {e}. The kubeconfig {shown} names it."))
                    })
                })
                .transpose()
        };
        let ca_pem = match b64(&cluster["certificate-authority-data"], "certificate-authority-data")? {
            Some(v) => Some(v),
            None => file(&cluster["certificate-authority"])?,
        };
        let cert = match b64(&user["client-certificate-data"], "client-certificate-data")? {
            Some(v) => Some(v),
            None => file(&user["client-certificate"])?,
        };
        let key = match b64(&user["client-key-data"], "client-key-data")? {
            Some(v) => Some(v),
            None => file(&user["client-key"])?,
        };
        let identity_pem = match (cert, key) {
            (Some(mut c), Some(k)) => {
                c.push(b'\n');
                c.extend(k);
                Some(c)
            }
            _ => None,
        };
        let mut token = match user["token"].as_str() {
            Some(t) => Some(t.to_string()),
            None => file(&user["tokenFile"])?.map(|b| String::from_utf8_lossy(&b).trim().to_string()),
        };
        let mut identity_pem = identity_pem;
        if token.is_none() && identity_pem.is_none() && !user["exec"].is_null() {
            let credential = exec_credential(&user["exec"], dir).map_err(|why| {
                config_error(
                    format!("kubeconfig {shown}: the exec credential plugin of context {ctx_name:?} failed"),
                    format!("{why}. Run the plugin by hand to check it (e.g. that you are logged in to the cloud's CLI)."),
                )
            })?;
            token = credential.0;
            identity_pem = credential.1;
        }
        let host = cluster["server"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| config_error(format!("kubeconfig {shown}: the cluster of context {ctx_name:?} has no server"), "Fix the kubeconfig."))?;
        Ok(ConnectionSettings { host: host.to_string(), token, ca_pem, insecure: cluster["insecure-skip-tls-verify"].as_bool().unwrap_or(false), identity_pem })
    }

    /// One request; `path` includes the query. Answers the JSON body of a
    /// 2xx response, or an [`ApiError`].
    pub async fn send(&self, method: reqwest::Method, path: &str, content_type: Option<&str>, body: Option<Vec<u8>>) -> Result<Json, ApiError> {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).header("accept", "application/json");
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let res = req.send().await.map_err(|e| ApiError::Transport(transport_message(&e)))?;
        let code = res.status().as_u16();
        let text = res.text().await.map_err(|e| ApiError::Transport(transport_message(&e)))?;
        if (200..300).contains(&code) {
            return serde_json::from_str(&text).map_err(|e| ApiError::Decode(e.to_string()));
        }
        let msg = serde_json::from_str::<Json>(&text)
            .ok()
            .and_then(|v| v["message"].as_str().filter(|m| !m.is_empty()).or(v["reason"].as_str()).map(str::to_string))
            .unwrap_or_else(|| text.trim().chars().take(300).collect());
        Err(ApiError::Status(code, msg))
    }
}

/// reqwest's message with its causes (URL included, never headers).
fn transport_message(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

impl KubernetesProvider {
    async fn client(&self) -> Result<&Connection, Diagnostic> {
        self.client.get_or_try_init(|| async { self.build_client() }).await
    }

    fn build_client(&self) -> Result<Connection, Diagnostic> {
        let s = &self.settings;
        let settings = if let Some(host) = &s.host {
            let ca_pem = match &s.ca_cert {
                Some(ca) if ca.contains("-----BEGIN") => Some(ca.clone().into_bytes()),
                Some(ca) => {
                    let path = self.resolve_path(ca);
                    Some(std::fs::read(&path).map_err(|e| {
                        config_error(
                            format!("cannot read ca_cert {}", path.display()),
                            format!("The file system said: {e}. Give `ca_cert` as PEM text or the path of a PEM file."),
                        )
                    })?)
                }
                None => None,
            };
            ConnectionSettings { host: host.clone(), token: s.token.clone(), ca_pem, insecure: s.insecure, identity_pem: None }
        } else {
            let path = match &s.kubeconfig {
                Some(p) => Some(self.resolve_path(p)),
                None => std::env::var_os("KUBECONFIG")
                    .and_then(|v| std::env::split_paths(&v).next())
                    .or_else(|| home().map(|h| h.join(".kube/config")))
                    .filter(|p| p.exists()),
            };
            match path {
                Some(path) => Connection::settings_from_kubeconfig(&path, s.context.as_deref())?,
                None => in_cluster()?,
            }
        };
        Connection::new(settings)
    }

    fn resolve_path(&self, p: &str) -> std::path::PathBuf {
        let expanded = match p.strip_prefix("~/") {
            Some(rest) => home().map(|h| h.join(rest)).unwrap_or_else(|| p.into()),
            None => p.into(),
        };
        if expanded.is_absolute() {
            expanded
        } else {
            self.settings.project_dir.join(expanded)
        }
    }
}

/// The service account of a pod, when Plinth runs inside the cluster.
fn in_cluster() -> Result<ConnectionSettings, Diagnostic> {
    let none = || {
        config_error("no Kubernetes cluster configured", "Set `kubeconfig` (and `context`) or `host` and `token` in the `provider kubernetes` block; no kubeconfig was found and Plinth is not running in a cluster.")
    };
    let host = std::env::var("KUBERNETES_SERVICE_HOST").map_err(|_| none())?;
    let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
    let dir = std::path::Path::new("/var/run/secrets/kubernetes.io/serviceaccount");
    let token = std::fs::read_to_string(dir.join("token")).map_err(|_| none())?;
    let host = if host.contains(':') { format!("https://[{host}]:{port}") } else { format!("https://{host}:{port}") };
    Ok(ConnectionSettings { host, token: Some(token.trim().to_string()), ca_pem: std::fs::read(dir.join("ca.crt")).ok(), insecure: false, identity_pem: None })
}

fn home() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME").map(std::path::PathBuf::from)
}

// ---------------------------------------------------------------- paths

/// Where one object lives in the API.
#[derive(Debug, Clone, PartialEq)]
struct Target {
    /// The collection URL path, e.g. `/api/v1/namespaces/default/secrets`.
    collection: String,
    name: String,
    /// For messages: `Secret default/db`.
    display: String,
}

/// apiVersion, kind, namespace, name: what makes two manifests the same object.
fn identity_of(m: &Json) -> (String, String, String, String) {
    let s = |v: &Json| v.as_str().unwrap_or("").to_string();
    (s(&m["apiVersion"]), s(&m["kind"]), s(&m["metadata"]["namespace"]), s(&m["metadata"]["name"]))
}

/// Kinds whose plural and scope are known without asking the server.
fn builtin_kind(group: &str, kind: &str) -> Option<(&'static str, bool)> {
    Some(match (group, kind) {
        ("", "Namespace") => ("namespaces", false),
        ("", "Node") => ("nodes", false),
        ("", "PersistentVolume") => ("persistentvolumes", false),
        ("", "Secret") => ("secrets", true),
        ("", "ConfigMap") => ("configmaps", true),
        ("", "Service") => ("services", true),
        ("", "ServiceAccount") => ("serviceaccounts", true),
        ("", "Pod") => ("pods", true),
        ("", "PersistentVolumeClaim") => ("persistentvolumeclaims", true),
        ("", "Endpoints") => ("endpoints", true),
        ("", "LimitRange") => ("limitranges", true),
        ("", "ResourceQuota") => ("resourcequotas", true),
        ("apps", "Deployment") => ("deployments", true),
        ("apps", "StatefulSet") => ("statefulsets", true),
        ("apps", "DaemonSet") => ("daemonsets", true),
        ("apps", "ReplicaSet") => ("replicasets", true),
        ("batch", "Job") => ("jobs", true),
        ("batch", "CronJob") => ("cronjobs", true),
        ("networking.k8s.io", "Ingress") => ("ingresses", true),
        ("networking.k8s.io", "NetworkPolicy") => ("networkpolicies", true),
        ("networking.k8s.io", "IngressClass") => ("ingressclasses", false),
        ("rbac.authorization.k8s.io", "Role") => ("roles", true),
        ("rbac.authorization.k8s.io", "RoleBinding") => ("rolebindings", true),
        ("rbac.authorization.k8s.io", "ClusterRole") => ("clusterroles", false),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => ("clusterrolebindings", false),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => ("customresourcedefinitions", false),
        ("storage.k8s.io", "StorageClass") => ("storageclasses", false),
        ("policy", "PodDisruptionBudget") => ("poddisruptionbudgets", true),
        ("autoscaling", "HorizontalPodAutoscaler") => ("horizontalpodautoscalers", true),
        _ => return None,
    })
}

/// The usual English plural of a kind, as Kubernetes spells resources.
pub fn plural_of(kind: &str) -> String {
    let k = kind.to_lowercase();
    if k == "endpoints" {
        return k;
    }
    if let Some(stem) = k.strip_suffix('y') {
        if !stem.ends_with(['a', 'e', 'i', 'o', 'u']) {
            return format!("{stem}ies");
        }
    }
    if k.ends_with('s') || k.ends_with('x') || k.ends_with("ch") || k.ends_with("sh") {
        return format!("{k}es");
    }
    format!("{k}s")
}

fn group_version_path(api_version: &str) -> String {
    if api_version.contains('/') {
        format!("/apis/{api_version}")
    } else {
        format!("/api/{api_version}")
    }
}

impl KubernetesProvider {
    /// Resolves the URL of a full object (apiVersion/kind/metadata): built-in
    /// kinds from a table, others by discovery (`GET /apis/{group}/{version}`),
    /// falling back to the usual plural when discovery does not know the kind.
    async fn target(&self, obj: &Json) -> Result<Target, Diagnostic> {
        let api_version = obj["apiVersion"].as_str().filter(|s| !s.is_empty());
        let kind = obj["kind"].as_str().filter(|s| !s.is_empty());
        let name = obj["metadata"]["name"].as_str().filter(|s| !s.is_empty());
        let (Some(api_version), Some(kind), Some(name)) = (api_version, kind, name) else {
            return Err(object_error(
                "the manifest lacks apiVersion, kind or metadata.name",
                "A manifest is a full Kubernetes object: `apiVersion`, `kind` and `metadata = { name = … }` (and `namespace` for namespaced kinds).",
            ));
        };
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let namespace = obj["metadata"]["namespace"].as_str().filter(|s| !s.is_empty());
        let (plural, namespaced) = match builtin_kind(group, kind) {
            Some((p, n)) => (p.to_string(), n),
            None => self.discover(api_version, kind, namespace.is_some()).await?,
        };
        let mut collection = group_version_path(api_version);
        let mut display = kind.to_string();
        if namespaced {
            let ns = namespace.unwrap_or("default");
            collection.push_str(&format!("/namespaces/{ns}"));
            display.push_str(&format!(" {ns}/{name}"));
        } else {
            display.push_str(&format!(" {name}"));
        }
        collection.push('/');
        collection.push_str(&plural);
        Ok(Target { collection, name: name.to_string(), display })
    }

    async fn discover(&self, api_version: &str, kind: &str, has_namespace: bool) -> Result<(String, bool), Diagnostic> {
        let key = (api_version.to_string(), kind.to_string());
        if let Some(hit) = self.kinds.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(hit.clone());
        }
        let client = self.client().await?;
        let found = match client.send(reqwest::Method::GET, &group_version_path(api_version), None, None).await {
            Ok(list) => list["resources"].as_array().and_then(|rs| {
                rs.iter()
                    .find(|r| r["kind"] == kind && r["name"].as_str().is_some_and(|n| !n.contains('/')))
                    .map(|r| (r["name"].as_str().unwrap_or_default().to_string(), r["namespaced"].as_bool().unwrap_or(has_namespace)))
            }),
            Err(ApiError::Status(404, _)) => None,
            Err(e) => return Err(api_error("discover", api_version, e)),
        };
        match found {
            Some(hit) => {
                self.kinds.lock().unwrap_or_else(|p| p.into_inner()).insert(key, hit.clone());
                Ok(hit)
            }
            None => Ok((plural_of(kind), has_namespace)),
        }
    }

    // ------------------------------------------------------------ verbs

    async fn get(&self, t: &Target) -> Result<Option<Json>, Diagnostic> {
        let client = self.client().await?;
        match client.send(reqwest::Method::GET, &format!("{}/{}", t.collection, t.name), None, None).await {
            // An object being deleted (a namespace terminating…) is gone for Plinth.
            Ok(v) if !v["metadata"]["deletionTimestamp"].is_null() => Ok(None),
            Ok(v) => Ok(Some(v)),
            Err(ApiError::Status(404, _)) => Ok(None),
            Err(e) => Err(api_error("read", &t.display, e)),
        }
    }

    async fn apply(&self, t: &Target, body: &Json) -> Result<Json, Diagnostic> {
        let client = self.client().await?;
        // JSON is YAML: the apply body is the object as JSON.
        let path = format!("{}/{}?fieldManager={FIELD_MANAGER}&force=true", t.collection, t.name);
        let body = serde_json::to_vec(body).map_err(|e| object_error(format!("cannot encode {}: {e}", t.display), "Check the manifest."))?;
        client.send(reqwest::Method::PATCH, &path, Some("application/apply-patch+yaml"), Some(body)).await.map_err(|e| api_error("apply", &t.display, e))
    }

    async fn remove(&self, t: &Target) -> Result<(), Diagnostic> {
        let client = self.client().await?;
        let body = serde_json::to_vec(&json!({ "kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background" })).unwrap_or_default();
        match client.send(reqwest::Method::DELETE, &format!("{}/{}", t.collection, t.name), Some("application/json"), Some(body)).await {
            Ok(_) => Ok(()),
            Err(ApiError::Status(404, _)) => Ok(()),
            Err(e) => Err(api_error("delete", &t.display, e)),
        }
    }

    /// Every live object of a collection (following `continue` pages);
    /// a collection the server does not know (a CRD removed, a namespace
    /// gone) holds nothing.
    async fn list_collection(&self, collection: &str, what: &str) -> Result<Vec<Json>, Diagnostic> {
        let client = self.client().await?;
        let mut items = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let mut path = format!("{collection}?limit={LIST_PAGE}");
            if let Some(c) = &next {
                path.push_str("&continue=");
                path.push_str(&crate::redact::percent_encode(c));
            }
            let page = match client.send(reqwest::Method::GET, &path, None, None).await {
                Ok(p) => p,
                Err(ApiError::Status(404, _)) => return Ok(items),
                Err(e) => return Err(api_error("list", what, e)),
            };
            match page["items"].as_array() {
                Some(a) => items.extend(a.iter().cloned()),
                None => return Err(api_error("list", what, ApiError::Decode("the answer has no `items` list".into()))),
            }
            match page["metadata"]["continue"].as_str().filter(|c| !c.is_empty()) {
                // A server that repeats its token would loop forever: stop.
                Some(c) if next.as_deref() != Some(c) => next = Some(c.to_string()),
                _ => return Ok(items),
            }
        }
    }

    async fn wait_for(&self, t: &Target, spec: &Json) -> Result<Json, Diagnostic> {
        let condition = spec["condition"].as_str().unwrap_or("Ready").to_string();
        let timeout = match &spec["timeout"] {
            Json::Null => Duration::from_secs(300),
            v => governed::parse_duration(&Value::from_json(v))
                .ok_or_else(|| object_error(format!("invalid wait_for.timeout {v}"), "Give the timeout as \"30s\", \"5m\" or a number of seconds."))?,
        };
        let start = std::time::Instant::now();
        loop {
            if let Some(live) = self.get(t).await? {
                let ok = live["status"]["conditions"].as_array().is_some_and(|cs| cs.iter().any(|c| c["type"] == condition.as_str() && c["status"] == "True"));
                if ok {
                    return Ok(live);
                }
            }
            if start.elapsed() >= timeout {
                return Err(provider_error(
                    "P6509",
                    format!("{} did not become {condition} within {timeout:?}", t.display),
                    "The object was applied but its status.conditions never reported the condition as True. Check the controller that owns the kind (its logs, the object's events), or raise `wait_for.timeout`.",
                ));
            }
            tokio::time::sleep(Duration::from_millis(500).min(timeout.saturating_sub(start.elapsed()).max(Duration::from_millis(10)))).await;
        }
    }
}

// ---------------------------------------------------------------- objects

fn input_json(m: &Map, key: &str) -> Json {
    m.get(key).map(Value::to_json).unwrap_or(Json::Null)
}

fn input_str(m: &Map, key: &str, default: &str) -> String {
    m.get(key).and_then(Value::as_str).unwrap_or(default).to_string()
}

/// Plain strings of a map(string) attribute, or an error naming the key.
fn string_entries(v: &Json, attr: &str) -> Result<serde_json::Map<String, Json>, Diagnostic> {
    let mut out = serde_json::Map::new();
    if let Json::Object(m) = v {
        for (k, v) in m {
            match v {
                Json::String(_) => {
                    out.insert(k.clone(), v.clone());
                }
                Json::Null => {}
                other => {
                    return Err(object_error(
                        format!("`{attr}.{k}` must be a string, not {other}"),
                        format!("Kubernetes {attr} values are strings: quote them or use tostring()."),
                    ))
                }
            }
        }
    }
    Ok(out)
}

/// The object Plinth applies for a resource of type `rtype`.
fn desired(rtype: &str, m: &Map) -> Result<Json, Diagnostic> {
    let mut metadata = serde_json::Map::new();
    metadata.insert("name".into(), Json::String(input_str(m, "name", "")));
    if rtype != "manifest" && rtype != "namespace" {
        metadata.insert("namespace".into(), Json::String(input_str(m, "namespace", "default")));
    }
    for key in ["labels", "annotations"] {
        let entries = string_entries(&input_json(m, key), key)?;
        if !entries.is_empty() {
            metadata.insert(key.into(), Json::Object(entries));
        }
    }
    Ok(match rtype {
        "namespace" => json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": metadata }),
        "secret" => {
            let data: serde_json::Map<String, Json> = string_entries(&input_json(m, "data"), "data")?
                .into_iter()
                .map(|(k, v)| (k, Json::String(base64::engine::general_purpose::STANDARD.encode(v.as_str().unwrap_or("")))))
                .collect();
            json!({ "apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": input_str(m, "type", "Opaque"), "data": data })
        }
        "config_map" => json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": string_entries(&input_json(m, "data"), "data")? }),
        "manifest" => {
            let manifest = input_json(m, "manifest");
            if !manifest.is_object() {
                return Err(object_error("`manifest` must be an object", "Give the full object: `manifest = { apiVersion = \"…\", kind = \"…\", metadata = { name = \"…\" }, spec = { … } }` (or yamldecode(file(\"x.yaml\")))."));
            }
            manifest
        }
        other => {
            return Err(object_error(
                format!("unknown resource type kubernetes.{other}"),
                "The kubernetes provider has namespace, secret, config_map and manifest.",
            ))
        }
    })
}

/// The live value seen through the shape of the desired one: keys the
/// desired object sets, recursively; lists element by element when the
/// lengths agree. Whatever the server added elsewhere is left out, so it
/// can never drift.
pub fn project(desired: &Json, live: &Json) -> Json {
    match (desired, live) {
        (Json::Null, _) => Json::Null,
        (Json::Object(d), Json::Object(l)) => Json::Object(d.iter().filter_map(|(k, dv)| l.get(k).map(|lv| (k.clone(), project(dv, lv)))).collect()),
        (Json::Array(d), Json::Array(l)) if d.len() == l.len() => Json::Array(d.iter().zip(l).map(|(d, l)| project(d, l)).collect()),
        _ => live.clone(),
    }
}

/// The live object without bookkeeping nobody should record.
fn cleaned(live: &Json) -> Json {
    let mut v = live.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Json::as_object_mut) {
        meta.remove("managedFields");
    }
    v
}

fn decode_data(live: &Json) -> Json {
    let Some(m) = live["data"].as_object() else { return json!({}) };
    Json::Object(
        m.iter()
            .map(|(k, v)| {
                let bytes = base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or("")).unwrap_or_default();
                (k.clone(), Json::String(String::from_utf8_lossy(&bytes).into_owned()))
            })
            .collect(),
    )
}

/// What Plinth observes of a live object, in the attributes of `rtype`.
fn observe(rtype: &str, inputs: &Map, live: &Json) -> Observed {
    let mut o = inputs.clone();
    let set = |o: &mut Observed, k: &str, v: Json| {
        o.insert(k.to_string(), Value::from_json(&v));
    };
    let meta = &live["metadata"];
    set(&mut o, "uid", meta["uid"].clone());
    match rtype {
        "manifest" => {
            set(&mut o, "manifest", project(&input_json(inputs, "manifest"), live));
            set(&mut o, "object", cleaned(live));
        }
        _ => {
            if let Some(name) = meta["name"].as_str() {
                set(&mut o, "name", Json::String(name.to_string()));
            }
            if rtype != "namespace" {
                if let Some(ns) = meta["namespace"].as_str() {
                    set(&mut o, "namespace", Json::String(ns.to_string()));
                }
            }
            for key in ["labels", "annotations"] {
                let d = input_json(inputs, key);
                if !d.is_null() {
                    set(&mut o, key, project(&d, &meta[key]));
                }
            }
            let data = input_json(inputs, "data");
            match rtype {
                "secret" => {
                    if let Some(t) = live["type"].as_str() {
                        set(&mut o, "type", Json::String(t.to_string()));
                    }
                    if !data.is_null() {
                        set(&mut o, "data", project(&data, &decode_data(live)));
                    }
                }
                "config_map" if !data.is_null() => set(&mut o, "data", project(&data, &live["data"])),
                _ => {}
            }
        }
    }
    o
}

// ---------------------------------------------------------------- provider

impl KubernetesProvider {
    async fn write(&self, rtype: &str, config: Map) -> Result<(Observed, Target), Diagnostic> {
        let body = desired(rtype, &config)?;
        let t = self.target(&body).await?;
        let mut live = self.apply(&t, &body).await?;
        if rtype == "manifest" {
            let spec = input_json(&config, "wait_for");
            if !spec.is_null() {
                live = self.wait_for(&t, &spec).await?;
            }
        }
        let mut observed = config;
        observed.insert("uid".into(), Value::from_json(&live["metadata"]["uid"]));
        if rtype == "manifest" {
            observed.insert("object".into(), Value::from_json(&cleaned(&live)));
        }
        Ok((observed, t))
    }
}

#[async_trait]
impl Provider for KubernetesProvider {
    fn schema_of(&self, rtype: &str) -> Option<&ResourceSchema> {
        self.schema.resources.get(rtype)
    }
    async fn read(&self, req: ReadRequest) -> Result<Option<Observed>, Diagnostic> {
        let rtype = req.object.rtype.as_str();
        let t = self.target(&desired(rtype, &req.inputs)?).await?;
        let Some(live) = self.get(&t).await? else { return Ok(None) };
        let base = req.prior.as_ref().map_or_else(
            || req.inputs.clone(),
            |p| {
                let mut b = p.clone();
                for (k, v) in &req.inputs {
                    b.insert(k.clone(), v.clone());
                }
                b
            },
        );
        Ok(Some(observe(rtype, &base, &live)))
    }
    async fn create(&self, req: CreateRequest) -> Result<Observed, Diagnostic> {
        Ok(self.write(&req.object.rtype, req.config).await?.0)
    }
    async fn update(&self, req: UpdateRequest) -> Result<Observed, Diagnostic> {
        let rtype = req.object.rtype.as_str();
        let (observed, t) = self.write(rtype, req.config).await?;
        // A manifest whose identity changed is a new object: remove the old one.
        if let Ok(old) = desired(rtype, &req.prior) {
            if let Ok(old_t) = self.target(&old).await {
                if old_t != t {
                    self.remove(&old_t).await?;
                }
            }
        }
        Ok(observed)
    }
    async fn delete(&self, req: DeleteRequest) -> Result<(), Diagnostic> {
        let t = self.target(&desired(&req.object.rtype, &req.prior)?).await?;
        self.remove(&t).await
    }
    /// Namespaces (with `list_unmanaged`): every one not managed, `kube-*`
    /// and `default` excepted, by name. Secrets, config maps, manifests:
    /// the objects of the same kind in the namespaces of managed ones that
    /// carry Plinth's mark but are not managed here (orphans of a lost state
    /// or of another environment), as `namespace/name` (manifests:
    /// `Kind namespace/name`). Objects managed as another type (a Secret
    /// applied as a manifest) are not unmanaged, and a manifest does not
    /// list a collection a dedicated type of the state lists.
    async fn list(&self, req: ListRequest) -> Result<Vec<String>, Diagnostic> {
        let rtype = req.rtype.as_str();
        if !matches!(rtype, "namespace" | "secret" | "config_map" | "manifest") || (rtype == "namespace" && !self.settings.list_unmanaged) {
            return Ok(vec![]);
        }
        let mut managed: std::collections::BTreeSet<(String, String)> = std::collections::BTreeSet::new();
        // collection → what its items are shown as (`Kind ns/` for manifests, `ns/` for the others).
        let mut collections: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
        for m in &req.managed {
            let Ok(obj) = desired(rtype, m) else { continue };
            let Ok(t) = self.target(&obj).await else { continue };
            let shown = t.display.strip_suffix(t.name.as_str()).unwrap_or("").to_string();
            let shown = if rtype == "manifest" { shown } else { shown.split_once(' ').map_or(String::new(), |(_, rest)| rest.to_string()) };
            collections.entry(t.collection.clone()).or_insert(shown);
            managed.insert((t.collection, t.name));
        }
        for (other, m) in &req.others {
            let Ok(obj) = desired(other, m) else { continue };
            if let Ok(t) = self.target(&obj).await {
                // A collection a dedicated type lists too (Secrets of a
                // namespace where a `kubernetes.secret` lives) is that type's
                // to report: a manifest does not report the same object again.
                let listed_there = other == "secret" || other == "config_map" || (other == "namespace" && self.settings.list_unmanaged);
                if rtype == "manifest" && listed_there {
                    collections.remove(&t.collection);
                }
                managed.insert((t.collection, t.name));
            }
        }
        let mut out = Vec::new();
        for (collection, shown) in &collections {
            let what = format!("the objects of {collection}");
            for item in self.list_collection(collection, &what).await? {
                let meta = &item["metadata"];
                let Some(name) = meta["name"].as_str().filter(|n| !n.is_empty()) else { continue };
                if !meta["deletionTimestamp"].is_null() || managed.contains(&(collection.clone(), name.to_string())) {
                    continue;
                }
                let keep = if rtype == "namespace" { name != "default" && !name.starts_with("kube-") } else { carries_plinth_mark(meta) };
                if keep {
                    out.push(format!("{shown}{name}"));
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

/// True when Plinth applied the object (its field manager owns fields) or
/// it is labelled `app.kubernetes.io/managed-by=plinth`.
fn carries_plinth_mark(meta: &Json) -> bool {
    let by_manager = meta["managedFields"].as_array().is_some_and(|fs| fs.iter().any(|f| f["manager"] == FIELD_MANAGER));
    by_manager || meta["labels"][MANAGED_BY_LABEL] == FIELD_MANAGER
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_credential_plugins_give_a_token() {
        let dir = tempfile::tempdir().unwrap();
        let plugin = dir.path().join("get-token.sh");
        // The plugin sees its args, env and KUBERNETES_EXEC_INFO.
        std::fs::write(
            &plugin,
            "#!/bin/sh\ncase \"$KUBERNETES_EXEC_INFO\" in *ExecCredential*) ;; *) exit 3 ;; esac\nprintf '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\"%s-%s\"}}' \"$1\" \"$REGION\"\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let kubeconfig = dir.path().join("config");
        std::fs::write(
            &kubeconfig,
            "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\nclusters:\n- name: k\n  cluster: {server: \"https://127.0.0.1:6443\"}\nusers:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: ./get-token.sh\n      args: [\"cce\"]\n      env: [{name: REGION, value: eu-de}]\n",
        )
        .unwrap();
        let settings = Connection::settings_from_kubeconfig(&kubeconfig, None).expect("exec plugin");
        assert_eq!(settings.token.as_deref(), Some("cce-eu-de"));
        // A failing plugin is a diagnostic naming the plugin, not a panic.
        std::fs::write(&plugin, "#!/bin/sh\necho 'not logged in' >&2\nexit 1\n").unwrap();
        let err = Connection::settings_from_kubeconfig(&kubeconfig, None).err().expect("failing plugin");
        assert!(err.help.contains("not logged in") && err.help.contains("get-token.sh"), "{}", err.help);
    }

    #[test]
    fn plurals() {
        assert_eq!(plural_of("Application"), "applications");
        assert_eq!(plural_of("Cluster"), "clusters");
        assert_eq!(plural_of("Policy"), "policies");
        assert_eq!(plural_of("Gateway"), "gateways");
        assert_eq!(plural_of("Ingress"), "ingresses");
        assert_eq!(plural_of("Endpoints"), "endpoints");
        assert_eq!(plural_of("Box"), "boxes");
    }

    #[test]
    fn projection_ignores_server_fields() {
        let d = json!({"spec": {"a": 1, "list": [{"x": 1}]}, "metadata": {"name": "n"}});
        let l = json!({"spec": {"a": 1, "b": 2, "list": [{"x": 1, "y": 2}]}, "metadata": {"name": "n", "uid": "u"}, "status": {}});
        assert_eq!(project(&d, &l), d);
        let l2 = json!({"spec": {"a": 3}, "metadata": {"name": "n"}});
        assert_eq!(project(&d, &l2), json!({"spec": {"a": 3}, "metadata": {"name": "n"}}));
    }

    #[test]
    fn plinths_mark_is_its_field_manager_or_the_managed_by_label() {
        assert!(carries_plinth_mark(&json!({"managedFields": [{"manager": "kubectl"}, {"manager": "plinth", "operation": "Apply"}]})));
        assert!(carries_plinth_mark(&json!({"labels": {"app.kubernetes.io/managed-by": "plinth"}})));
        assert!(!carries_plinth_mark(&json!({"labels": {"app.kubernetes.io/managed-by": "Helm"}, "managedFields": [{"manager": "helm"}]})));
        assert!(!carries_plinth_mark(&json!({})));
        assert!(!carries_plinth_mark(&json!({"managedFields": "not a list", "labels": 3})));
        assert_eq!(crate::redact::percent_encode("eyJ2Ijoi+/="), "eyJ2Ijoi%2B%2F%3D");
    }

    #[test]
    fn errors_are_retryable_where_a_retry_can_help() {
        let st = |code| ApiError::Status(code, "m".into());
        assert!(api_error("apply", "x", st(409)).retryable);
        assert!(api_error("apply", "x", st(429)).retryable);
        assert!(api_error("apply", "x", st(503)).retryable);
        assert!(!api_error("apply", "x", st(422)).retryable);
        assert_eq!(api_error("apply", "x", st(403)).code, "P6502");
    }
}
