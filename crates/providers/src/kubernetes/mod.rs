//! `kubernetes`: objects in a Kubernetes cluster, written by server-side
//! apply (`fieldManager=plinth`, `force=true`). Types: `kubernetes.namespace`,
//! `kubernetes.secret`, `kubernetes.config_map` and `kubernetes.manifest`
//! (any object).
//!
//! The client is `kube::Client` ([`connection`]: kubeconfig and contexts,
//! in-cluster config, exec and OIDC credentials, one rustls crypto provider
//! for the whole binary). Every kind goes through one code path: dynamic
//! objects (`kube::api::DynamicObject` through `Api::namespaced_with` /
//! `Api::all_with`) whose `ApiResource` comes from a table of built-in kinds
//! or from discovery (`kube::discovery::pinned_kind`, one
//! `GET /apis/{group}/{version}` per kind and run), falling back to the
//! usual plural when the server does not list the kind; bodies are handled
//! as `serde_json::Value`. The connection is built lazily on the first
//! call, so a cluster created in the same run is only contacted once it
//! exists.
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

mod connection;

pub use connection::{ApiError, Connection, ConnectionSettings, HostSettings};

use super::*;
use base64::Engine as _;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::Resource as _;
use serde_json::{json, Value as Json};
use std::collections::HashMap;
use std::time::Duration;

const FIELD_MANAGER: &str = "plinth";
/// The label that marks an object as Plinth's even without its field manager.
const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Items per page when listing.
const LIST_PAGE: u32 = 500;

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
        ApiError::Request(msg) => object_error(
            format!("cannot {action} {what}: no request can be made for it: {msg}"),
            "Check the object's name and namespace: Kubernetes names are DNS labels or subdomains (lower-case letters, digits, `-` and `.`).",
        ),
        ApiError::Credentials(msg) => provider_error(
            "P6500",
            format!("cannot {action} {what}: the kubeconfig user's credentials could not be renewed: {msg}"),
            "Run the credential plugin by hand to check it (e.g. that you are still logged in to the cloud's CLI), or log in again.",
        ),
    }
}

// ---------------------------------------------------------------- client

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
            ConnectionSettings::from_host(HostSettings { host: host.clone(), token: s.token.clone(), ca_pem, insecure: s.insecure })?
        } else {
            let path = match &s.kubeconfig {
                Some(p) => Some(self.resolve_path(p)),
                None => Connection::default_kubeconfig(),
            };
            match path {
                Some(path) => Connection::settings_from_kubeconfig(&path, s.context.as_deref())?,
                None => ConnectionSettings::in_cluster()?,
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

fn home() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME").map(std::path::PathBuf::from)
}

// ---------------------------------------------------------------- paths

/// Where one object lives in the API.
#[derive(Debug, Clone, PartialEq)]
struct Target {
    /// Group, version, kind and plural of the object's resource.
    resource: ApiResource,
    /// Its namespace, for namespaced kinds.
    namespace: Option<String>,
    /// The collection URL path, e.g. `/api/v1/namespaces/default/secrets`
    /// (what identifies the collection in `list`).
    collection: String,
    name: String,
    /// For messages: `Secret default/db`.
    display: String,
}

impl Target {
    fn api(&self, client: kube::Client) -> Api<DynamicObject> {
        match &self.namespace {
            Some(ns) => Api::namespaced_with(client, ns, &self.resource),
            None => Api::all_with(client, &self.resource),
        }
    }
}

/// A live object as JSON, the form every projection works on.
fn json_of(o: &DynamicObject) -> Result<Json, ApiError> {
    serde_json::to_value(o).map_err(|e| ApiError::Decode(e.to_string()))
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

impl KubernetesProvider {
    /// Resolves where a full object (apiVersion/kind/metadata) lives:
    /// built-in kinds from a table, others by discovery, falling back to the
    /// usual plural when discovery does not know the kind.
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
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let namespace = obj["metadata"]["namespace"].as_str().filter(|s| !s.is_empty());
        let (plural, namespaced) = match builtin_kind(group, kind) {
            Some((p, n)) => (p.to_string(), n),
            None => self.discover(&gvk, namespace.is_some()).await?,
        };
        let resource = ApiResource::from_gvk_with_plural(&gvk, &plural);
        let namespace = namespaced.then(|| namespace.unwrap_or("default").to_string());
        let collection = DynamicObject::url_path(&resource, namespace.as_deref());
        let display = match &namespace {
            Some(ns) => format!("{kind} {ns}/{name}"),
            None => format!("{kind} {name}"),
        };
        Ok(Target { resource, namespace, collection, name: name.to_string(), display })
    }

    /// The plural and scope of a kind the table does not know, from the
    /// server's list of its group version (cached for the run).
    async fn discover(&self, gvk: &GroupVersionKind, has_namespace: bool) -> Result<(String, bool), Diagnostic> {
        let key = (gvk.api_version(), gvk.kind.clone());
        if let Some(hit) = self.kinds.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(hit.clone());
        }
        let conn = self.client().await?;
        let client = conn.client();
        let lookup = async {
            match kube::discovery::pinned_kind(&client, gvk).await {
                Ok((resource, caps)) => Ok(Some((resource.plural, matches!(caps.scope, kube::discovery::Scope::Namespaced)))),
                // The group version is served but does not list the kind.
                Err(kube::Error::Discovery(_)) => Ok(None),
                Err(e) => Err(e),
            }
        };
        let found = match conn.call(lookup).await {
            Ok(found) => found,
            Err(ApiError::Status(404, _)) => None,
            Err(e) => return Err(api_error("discover", &key.0, e)),
        };
        match found {
            Some(hit) => {
                self.kinds.lock().unwrap_or_else(|p| p.into_inner()).insert(key, hit.clone());
                Ok(hit)
            }
            None => Ok((plural_of(&gvk.kind), has_namespace)),
        }
    }

    // ------------------------------------------------------------ verbs

    async fn get(&self, t: &Target) -> Result<Option<Json>, Diagnostic> {
        let conn = self.client().await?;
        let api = t.api(conn.client());
        match conn.call(api.get(&t.name)).await.and_then(|o| json_of(&o)) {
            // An object being deleted (a namespace terminating…) is gone for Plinth.
            Ok(v) if !v["metadata"]["deletionTimestamp"].is_null() => Ok(None),
            Ok(v) => Ok(Some(v)),
            Err(ApiError::Status(404, _)) => Ok(None),
            Err(e) => Err(api_error("read", &t.display, e)),
        }
    }

    /// Server-side apply of the whole object, owned by Plinth's field
    /// manager, forced (Plinth's configuration is the truth for its fields).
    async fn apply(&self, t: &Target, body: &Json) -> Result<Json, Diagnostic> {
        let conn = self.client().await?;
        let api = t.api(conn.client());
        let params = PatchParams::apply(FIELD_MANAGER).force();
        conn.call(api.patch(&t.name, &params, &Patch::Apply(body))).await.and_then(|o| json_of(&o)).map_err(|e| api_error("apply", &t.display, e))
    }

    async fn remove(&self, t: &Target) -> Result<(), Diagnostic> {
        let conn = self.client().await?;
        let api = t.api(conn.client());
        match conn.call(api.delete(&t.name, &DeleteParams::background())).await {
            Ok(_) => Ok(()),
            Err(ApiError::Status(404, _)) => Ok(()),
            Err(e) => Err(api_error("delete", &t.display, e)),
        }
    }

    /// Every live object of a target's collection (following `continue`
    /// pages); a collection the server does not know (a CRD removed, a
    /// namespace gone) holds nothing.
    async fn list_collection(&self, t: &Target, what: &str) -> Result<Vec<Json>, Diagnostic> {
        let conn = self.client().await?;
        let api = t.api(conn.client());
        let mut items = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let mut params = ListParams::default().limit(LIST_PAGE);
            if let Some(c) = &next {
                params = params.continue_token(c);
            }
            let page = match conn.call(api.list(&params)).await {
                Ok(p) => p,
                Err(ApiError::Status(404, _)) => return Ok(items),
                Err(e) => return Err(api_error("list", what, e)),
            };
            for o in &page.items {
                items.push(json_of(o).map_err(|e| api_error("list", what, e))?);
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                // A server that repeats its token would loop forever: stop.
                Some(c) if next.as_deref() != Some(c.as_str()) => next = Some(c),
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
        // collection → one managed object's target in it, and what its items
        // are shown as (`Kind ns/` for manifests, `ns/` for the others).
        let mut collections: std::collections::BTreeMap<String, (Target, String)> = std::collections::BTreeMap::new();
        for m in &req.managed {
            let Ok(obj) = desired(rtype, m) else { continue };
            let Ok(t) = self.target(&obj).await else { continue };
            let shown = t.display.strip_suffix(t.name.as_str()).unwrap_or("").to_string();
            let shown = if rtype == "manifest" { shown } else { shown.split_once(' ').map_or(String::new(), |(_, rest)| rest.to_string()) };
            managed.insert((t.collection.clone(), t.name.clone()));
            collections.entry(t.collection.clone()).or_insert((t, shown));
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
        for (collection, (t, shown)) in &collections {
            let what = format!("the objects of {collection}");
            for item in self.list_collection(t, &what).await? {
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

    /// A one-request HTTP server on 127.0.0.1 that answers with an empty
    /// resource list and hands back the request's `Authorization` header.
    fn recording_server() -> (String, std::sync::mpsc::Receiver<String>) {
        serve_once("200 OK", r#"{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"v1","resources":[]}"#)
    }

    /// A one-request HTTP server on 127.0.0.1 answering `status` and `body`.
    fn serve_once(status: &'static str, body: &'static str) -> (String, std::sync::mpsc::Receiver<String>) {
        use std::io::{BufRead, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let Ok((stream, _)) = listener.accept() else { return };
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut auth = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                if let Some(v) = line.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("authorization")).map(|(_, v)| v.trim().to_string()) {
                    auth = v;
                }
            }
            let _ = tx.send(auth);
            let mut out = stream;
            let _ = write!(out, "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len());
        });
        (url, rx)
    }

    #[tokio::test]
    async fn exec_credential_plugins_give_a_token() {
        let dir = tempfile::tempdir().unwrap();
        let plugin = dir.path().join("get-token.sh");
        // The plugin sees its args, env and KUBERNETES_EXEC_INFO (never interactive).
        std::fs::write(
            &plugin,
            "#!/bin/sh\ncase \"$KUBERNETES_EXEC_INFO\" in *ExecCredential*'\"interactive\":false'*) ;; *) exit 3 ;; esac\nprintf '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\"%s-%s\"}}' \"$1\" \"$REGION\"\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let (server, auth) = recording_server();
        let kubeconfig = dir.path().join("config");
        std::fs::write(
            &kubeconfig,
            format!("apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts:\n- name: c\n  context: {{cluster: k, user: u}}\nclusters:\n- name: k\n  cluster: {{server: \"{server}\"}}\nusers:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: ./get-token.sh\n      args: [\"cce\"]\n      env: [{{name: REGION, value: eu-de}}]\n"),
        )
        .unwrap();
        let settings = Connection::settings_from_kubeconfig(&kubeconfig, None).expect("kubeconfig");
        let conn = Connection::new(settings).expect("exec plugin");
        conn.send(::http::Method::GET, "/api/v1", None, None).await.expect("request");
        assert_eq!(auth.recv().unwrap(), "Bearer cce-eu-de");
        // A failing plugin is a diagnostic naming the plugin, not a panic.
        std::fs::write(&plugin, "#!/bin/sh\necho 'not logged in' >&2\nexit 1\n").unwrap();
        let settings = Connection::settings_from_kubeconfig(&kubeconfig, None).expect("kubeconfig");
        let err = Connection::new(settings).expect_err("failing plugin");
        assert_eq!(err.code, "P6500");
        assert!(err.help.contains("not logged in") && err.help.contains("get-token.sh"), "{}", err.help);
    }

    /// What the server answered reaches the classification whole: the HTTP
    /// status (also of a body that is no `Status`), the `Status` message,
    /// a body that is no JSON.
    #[tokio::test]
    async fn answers_are_classified_by_their_http_status() {
        let connect = |url: String| {
            let settings = ConnectionSettings::from_host(HostSettings { host: url, token: Some("tok-unit-secret".into()), ca_pem: None, insecure: false });
            Connection::new(settings.expect("settings")).expect("client")
        };
        type Expected = fn(ApiError) -> bool;
        let cases: [(&'static str, &'static str, Expected); 4] = [
            (
                "409 Conflict",
                r#"{"kind":"Status","code":409,"reason":"Conflict","message":"the object has been modified"}"#,
                |e| matches!(e, ApiError::Status(409, m) if m == "the object has been modified"),
            ),
            ("502 Bad Gateway", "<html>bad gateway</html>", |e| matches!(e, ApiError::Status(502, m) if m.contains("bad gateway"))),
            ("404 Not Found", r#"{"kind":"Status","code":404,"reason":"NotFound"}"#, |e| matches!(e, ApiError::Status(404, m) if m == "NotFound")),
            ("200 OK", "<html>a login page</html>", |e| matches!(e, ApiError::Decode(_))),
        ];
        for (status, body, expected) in cases {
            let (url, _) = serve_once(status, body);
            let e = connect(url).send(::http::Method::GET, "/api/v1/namespaces/x", None, None).await.expect_err(status);
            let shown = format!("{e:?}");
            assert!(!shown.contains("tok-unit-secret"), "{shown}");
            assert!(expected(e), "{status}: {shown}");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let e = connect(format!("http://127.0.0.1:{port}")).send(::http::Method::GET, "/api/v1", None, None).await.expect_err("nothing listens");
        assert!(matches!(&e, ApiError::Transport(m) if m.starts_with(&format!("http://127.0.0.1:{port}: "))), "{e:?}");
    }

    #[test]
    fn kubeconfig_contexts_are_checked_before_anything_runs() {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("config");
        std::fs::write(
            &kubeconfig,
            "apiVersion: v1\nkind: Config\ncontexts:\n- name: a\n  context: {cluster: k}\n- name: b\n  context: {cluster: gone}\nclusters:\n- name: k\n  cluster: {server: \"https://127.0.0.1:6443\"}\n",
        )
        .unwrap();
        let err = |ctx: Option<&str>| Connection::settings_from_kubeconfig(&kubeconfig, ctx).expect_err("an error");
        assert!(err(None).message.contains("has no current context"));
        let e = err(Some("prod"));
        assert!(e.message.contains("has no context \"prod\"") && e.help.contains("a, b"), "{e:?}");
        assert!(err(Some("b")).message.contains("names no known cluster"));
        assert!(Connection::settings_from_kubeconfig(&kubeconfig, Some("a")).is_ok());
        let missing = Connection::settings_from_kubeconfig(&dir.path().join("nope"), None).expect_err("missing file");
        assert_eq!((missing.code, missing.message.starts_with("cannot read kubeconfig")), ("P6500", true), "{missing:?}");
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
        // The `continue` token of a page is percent-encoded on the next request.
        let req = kube::core::Request::new("/api/v1/configmaps").list(&ListParams::default().limit(LIST_PAGE).continue_token("eyJ2Ijoi+/=")).unwrap();
        assert!(req.uri().to_string().contains("continue=eyJ2Ijoi%2B%2F%3D"), "{}", req.uri());
    }

    #[test]
    fn errors_are_retryable_where_a_retry_can_help() {
        let st = |code| ApiError::Status(code, "m".into());
        assert!(api_error("apply", "x", st(409)).retryable);
        assert!(api_error("apply", "x", st(429)).retryable);
        assert!(api_error("apply", "x", st(503)).retryable);
        assert!(!api_error("apply", "x", st(422)).retryable);
        assert_eq!(api_error("apply", "x", st(403)).code, "P6502");
        assert!(api_error("apply", "x", ApiError::Transport("refused".into())).retryable);
        assert!(!api_error("apply", "x", ApiError::Decode("html".into())).retryable);
        assert!(!api_error("apply", "x", ApiError::Request("bad name".into())).retryable);
        assert!(!api_error("read", "x", ApiError::Credentials("plugin failed".into())).retryable);
    }
}
