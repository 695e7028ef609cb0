//! The `kubernetes` provider, driven through the real CLI against
//! [`KubeApiTestDouble`]: an in-process HTTP **test double** of the subset of
//! the Kubernetes API the provider uses. It is not a Kubernetes API server
//! (none can be installed on these machines): no admission, no controllers,
//! no real managed-fields bookkeeping. It serves plain HTTP on 127.0.0.1 and
//! implements GET / server-side-apply PATCH / DELETE / LIST on core
//! (`/api/v1/…`) and group (`/apis/{group}/{version}/…`) paths, discovery
//! (`GET /apis/{group}/{version}`) for the custom kinds below, bearer-token
//! auth, 404s as `Status` objects, and a switch that answers the next
//! PATCHes with 409 Conflict. On every apply it bumps `resourceVersion` and
//! `generation`, sets `uid`/`creationTimestamp`/`managedFields`, a `status`
//! with a `Ready` condition, and server defaults (a namespace's
//! `kubernetes.io/metadata.name` label and `spec.finalizers`, a
//! `spec.revisionHistoryLimit` on objects with a spec) — so the tests
//! exercise "drift only on the fields Plinth manages".
//!
//! The opt-in suite at the end runs the conformance cases against a real
//! cluster when `PLINTH_TEST_KUBECONFIG` names a kubeconfig; without it those
//! tests return at once.

use crate::provider_conformance::{run as conformance, Case};
use crate::*;
use plinth::providers::kubernetes::{ApiError, Connection};
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

// ------------------------------------------------------------------ the double

/// In-process HTTP test double of the Kubernetes API (see the module docs).
pub struct KubeApiTestDouble {
    pub port: u16,
    pub token: String,
    inner: Arc<Inner>,
}

struct Inner {
    token: String,
    /// Objects by their URL path, e.g. `/api/v1/namespaces/default/secrets/db`.
    objects: Mutex<BTreeMap<String, Json>>,
    /// The next this-many PATCHes are answered 409 Conflict.
    conflicts: AtomicU64,
    patches: AtomicU64,
    counter: AtomicU64,
    /// Every request line seen, e.g. `PATCH /api/v1/namespaces/x?fieldManager=plinth&force=true`.
    log: Mutex<Vec<String>>,
}

fn status(code: u16, reason: &str, message: &str) -> (u16, Json) {
    (
        code,
        json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": if code < 300 { "Success" } else { "Failure" }, "message": message, "reason": reason, "code": code }),
    )
}

fn merge(into: &mut Json, from: &Json) {
    match (into, from) {
        (Json::Object(a), Json::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(k) {
                    Some(slot) if slot.is_object() && v.is_object() => merge(slot, v),
                    _ => {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

impl KubeApiTestDouble {
    pub fn start() -> KubeApiTestDouble {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let token = format!("tok-k8s-{port}-do-not-print");
        let inner = Arc::new(Inner {
            token: token.clone(),
            objects: Mutex::new(BTreeMap::new()),
            conflicts: AtomicU64::new(0),
            patches: AtomicU64::new(0),
            counter: AtomicU64::new(100),
            log: Mutex::new(vec![]),
        });
        let i = inner.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let i = i.clone();
                std::thread::spawn(move || serve(&i, stream));
            }
        });
        KubeApiTestDouble { port, token, inner }
    }
    pub fn host(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    pub fn get(&self, path: &str) -> Option<Json> {
        self.inner.objects.lock().unwrap().get(path).cloned()
    }
    /// Changes an object behind Plinth's back.
    pub fn edit(&self, path: &str, f: impl FnOnce(&mut Json)) {
        let mut objects = self.inner.objects.lock().unwrap();
        let obj = objects.get_mut(path).unwrap_or_else(|| panic!("no object at {path}"));
        f(obj);
    }
    /// Creates an object behind Plinth's back (as kubectl or another tool would).
    pub fn put(&self, path: &str, obj: Json) {
        self.inner.objects.lock().unwrap().insert(path.to_string(), obj);
    }
    pub fn conflict_next(&self, n: u64) {
        self.inner.conflicts.store(n, Ordering::SeqCst);
    }
    pub fn patches(&self) -> u64 {
        self.inner.patches.load(Ordering::SeqCst)
    }
    pub fn log(&self) -> Vec<String> {
        self.inner.log.lock().unwrap().clone()
    }
}

fn serve(inner: &Inner, stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
        let mut headers = BTreeMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        inner.log.lock().unwrap().push(format!("{method} {target}"));
        let (code, json) = handle(inner, &method, &target, &headers, &body);
        let text = json.to_string();
        let reply = format!("HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}", text.len());
        if out.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// Kinds the double discovers under `/apis/{group}/{version}`.
fn discovery(gv: &str) -> Option<Json> {
    let resources = match gv {
        "argoproj.io/v1alpha1" => {
            json!([{ "name": "applications", "kind": "Application", "namespaced": true }, { "name": "applications/status", "kind": "Application", "namespaced": true }])
        }
        "postgresql.cnpg.io/v1" => json!([{ "name": "clusters", "kind": "Cluster", "namespaced": true }]),
        _ => return None,
    };
    Some(json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources }))
}

fn handle(inner: &Inner, method: &str, target: &str, headers: &BTreeMap<String, String>, body: &[u8]) -> (u16, Json) {
    if headers.get("authorization").map(String::as_str) != Some(&format!("Bearer {}", inner.token)) {
        return status(401, "Unauthorized", "Unauthorized");
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (gv, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => (v.to_string(), rest),
        ["apis", g, v, rest @ ..] => (format!("{g}/{v}"), rest),
        _ => return status(404, "NotFound", "the server could not find the requested resource"),
    };
    let (is_object, namespace, name) = match rest {
        [] => {
            return match (method, discovery(&gv)) {
                ("GET", Some(d)) => (200, d),
                _ => status(404, "NotFound", "the server could not find the requested resource"),
            }
        }
        [_plural] => (false, "", ""),
        [_plural, name] => (true, "", *name),
        ["namespaces", ns, _plural] => (false, *ns, ""),
        ["namespaces", ns, _plural, name] => (true, *ns, *name),
        _ => return status(404, "NotFound", "the server could not find the requested resource"),
    };
    let mut objects = inner.objects.lock().unwrap();
    match (method, is_object) {
        ("GET", false) => {
            let prefix = format!("{path}/");
            let items: Vec<Json> = objects.iter().filter(|(k, _)| k.starts_with(&prefix) && !k[prefix.len()..].contains('/')).map(|(_, v)| v.clone()).collect();
            (
                200,
                json!({ "apiVersion": "v1", "kind": "List", "metadata": { "resourceVersion": inner.counter.load(Ordering::SeqCst).to_string() }, "items": items }),
            )
        }
        ("GET", true) => match objects.get(path) {
            Some(o) => (200, o.clone()),
            None => status(404, "NotFound", &format!("\"{name}\" not found")),
        },
        ("DELETE", true) => match objects.remove(path) {
            Some(_) => status(200, "", ""),
            None => status(404, "NotFound", &format!("\"{name}\" not found")),
        },
        ("PATCH", true) => {
            inner.patches.fetch_add(1, Ordering::SeqCst);
            if headers.get("content-type").map(String::as_str) != Some("application/apply-patch+yaml") {
                return status(415, "UnsupportedMediaType", "only server-side apply is implemented by the test double");
            }
            if !(query.contains("fieldManager=plinth") && query.contains("force=true")) {
                return status(400, "BadRequest", "fieldManager=plinth and force=true expected");
            }
            if inner.conflicts.load(Ordering::SeqCst) > 0 {
                inner.conflicts.fetch_sub(1, Ordering::SeqCst);
                return status(409, "Conflict", "Operation cannot be fulfilled: the object has been modified");
            }
            let desired: Json = match serde_yaml::from_slice(body) {
                Ok(v) => v,
                Err(e) => return status(400, "BadRequest", &format!("invalid YAML: {e}")),
            };
            if desired["metadata"]["name"] != name || (!namespace.is_empty() && desired["metadata"]["namespace"].as_str().is_some_and(|n| n != namespace)) {
                return status(400, "BadRequest", "the name or namespace of the object does not match the URL");
            }
            let n = inner.counter.fetch_add(1, Ordering::SeqCst) + 1;
            let created = !objects.contains_key(path);
            let obj = objects.entry(path.to_string()).or_insert_with(
                || json!({ "metadata": { "uid": format!("00000000-0000-4000-8000-{n:012}"), "creationTimestamp": "2026-11-21T00:00:00Z", "generation": 0 } }),
            );
            merge(obj, &desired);
            let generation = obj["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            obj["metadata"]["generation"] = json!(generation);
            obj["metadata"]["resourceVersion"] = json!(n.to_string());
            obj["metadata"]["managedFields"] = json!([{ "manager": "plinth", "operation": "Apply", "apiVersion": desired["apiVersion"] }]);
            if !namespace.is_empty() {
                obj["metadata"]["namespace"] = json!(namespace);
            }
            // Server defaults Plinth never set.
            if desired["kind"] == "Namespace" {
                obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
                obj["spec"] = json!({ "finalizers": ["kubernetes"] });
                obj["status"] = json!({ "phase": "Active" });
            } else if desired["kind"] == "Secret" || desired["kind"] == "ConfigMap" {
                // no status
            } else {
                if obj["spec"].is_object() && obj["spec"].get("revisionHistoryLimit").is_none() {
                    obj["spec"]["revisionHistoryLimit"] = json!(10);
                }
                obj["status"] = json!({ "observedGeneration": generation, "conditions": [{ "type": "Ready", "status": "True", "reason": "TestDouble" }] });
            }
            (if created { 201 } else { 200 }, obj.clone())
        }
        _ => status(405, "MethodNotAllowed", "not implemented by the test double"),
    }
}

// ------------------------------------------------------------------ helpers

fn provider_block(k: &KubeApiTestDouble) -> String {
    format!("provider kubernetes {{\n  host  = \"{}\"\n  token = \"{}\"\n}}\n", k.host(), k.token)
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}
fn unb64(v: &Json) -> String {
    use base64::Engine as _;
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or("")).unwrap_or_default()).unwrap_or_default()
}

const NAMESPACE: &str = r#"
resource kubernetes.namespace team {
  name   = "team-a"
  labels = { team = "a", version = "{V}" }
}
"#;

const SECRET: &str = r#"
resource kubernetes.secret db {
  name      = "db-credentials"
  namespace = "default"
  data      = { password = "pw-s3cr3t-{V}-value", user = "app" }
  labels    = { app = "db" }
}
"#;

const APPLICATION: &str = r#"
resource kubernetes.manifest guestbook {
  manifest = {
    apiVersion = "argoproj.io/v1alpha1"
    kind       = "Application"
    metadata   = { name = "guestbook", namespace = "argocd", labels = { team = "a" } }
    spec = {
      project = "default"
      source = {
        repoURL        = "https://github.com/argoproj/argocd-example-apps.git"
        path           = "guestbook"
        targetRevision = "v{V}"
      }
      destination = { server = "https://kubernetes.default.svc", namespace = "guestbook" }
    }
  }
  wait_for = { condition = "Ready", timeout = "20s" }
}
"#;

const NS_PATH: &str = "/api/v1/namespaces/team-a";
const SECRET_PATH: &str = "/api/v1/namespaces/default/secrets/db-credentials";
const APP_PATH: &str = "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/guestbook";

// ------------------------------------------------------------------ conformance against the double

#[test]
fn namespace_passes_conformance_against_the_test_double() {
    let k = KubeApiTestDouble::start();
    let config = provider_block(&k) + NAMESPACE;
    let exists = |v: Option<&str>| k.get(NS_PATH).is_some_and(|o| v.is_none_or(|v| o["metadata"]["labels"]["version"] == v));
    let tamper = || k.edit(NS_PATH, |o| o["metadata"]["labels"]["version"] = json!("changed-by-hand"));
    conformance(&Case { name: "kubernetes.namespace", config: &config, args: vec![], env: vec![], exists: &exists, tamper: &tamper });
    assert!(k.log().iter().all(|l| !l.starts_with("PUT") && !l.starts_with("POST")), "writes are server-side apply only");
}

#[test]
fn secret_passes_conformance_against_the_test_double() {
    let k = KubeApiTestDouble::start();
    let config = provider_block(&k) + SECRET;
    let exists = |v: Option<&str>| {
        k.get(SECRET_PATH).is_some_and(|o| v.is_none_or(|v| unb64(&o["data"]["password"]) == format!("pw-s3cr3t-{v}-value") && o["type"] == "Opaque"))
    };
    let tamper = || k.edit(SECRET_PATH, |o| o["data"]["password"] = json!(b64("tampered")));
    conformance(&Case { name: "kubernetes.secret", config: &config, args: vec![], env: vec![], exists: &exists, tamper: &tamper });
}

#[test]
fn argocd_application_manifest_passes_conformance_against_the_test_double() {
    let k = KubeApiTestDouble::start();
    let config = provider_block(&k) + APPLICATION;
    let exists = |v: Option<&str>| k.get(APP_PATH).is_some_and(|o| v.is_none_or(|v| o["spec"]["source"]["targetRevision"] == format!("v{v}")));
    let tamper = || k.edit(APP_PATH, |o| o["spec"]["source"]["targetRevision"] = json!("HEAD"));
    conformance(&Case { name: "kubernetes.manifest", config: &config, args: vec![], env: vec![], exists: &exists, tamper: &tamper });
    // The plural came from discovery.
    assert!(k.log().iter().any(|l| l == "GET /apis/argoproj.io/v1alpha1"), "{:?}", k.log());
}

// ------------------------------------------------------------------ behaviour

#[test]
fn secret_values_and_the_token_never_reach_the_output() {
    let k = KubeApiTestDouble::start();
    let p = project(&[("main.plinth", &(provider_block(&k) + &SECRET.replace("{V}", "1")))]);
    let mut outputs = vec![run(p.path(), &["plan"]), run(p.path(), &["apply", "--auto-approve"])];
    k.edit(SECRET_PATH, |o| o["data"]["password"] = json!(b64("pw-s3cr3t-hand-edited")));
    outputs.push(run(p.path(), &["drift", "--json"]));
    outputs.push(run(p.path(), &["drift"]));
    outputs.push(run(p.path(), &["plan", "--refresh"]));
    std::fs::write(p.path().join("main.plinth"), provider_block(&k) + &SECRET.replace("{V}", "2")).unwrap();
    outputs.push(run(p.path(), &["apply", "--auto-approve"]));
    assert_exit(&outputs[1], 0);
    assert_exit(&outputs[2], 2);
    for o in &outputs {
        let all = stdout(o) + &stderr(o);
        assert!(!all.contains("s3cr3t"), "a secret value was printed:\n{all}");
        assert!(!all.contains(&k.token), "the token was printed:\n{all}");
    }
}

#[test]
fn server_added_fields_do_not_drift_but_managed_ones_do() {
    let k = KubeApiTestDouble::start();
    let p = project(&[("main.plinth", &(provider_block(&k) + &APPLICATION.replace("{V}", "1") + &NAMESPACE.replace("{V}", "1")))]);
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    // The double added status, managedFields, defaults; now others add more.
    k.edit(APP_PATH, |o| {
        o["status"]["sync"] = json!({ "status": "Synced" });
        o["spec"]["source"]["helm"] = json!({ "valueFiles": ["values.yaml"] });
        o["metadata"]["labels"]["added-by-argocd"] = json!("yes");
        o["metadata"]["annotations"] = json!({ "kubectl.kubernetes.io/last-applied-configuration": "{}" });
        o["metadata"]["resourceVersion"] = json!("999999");
    });
    k.edit(NS_PATH, |o| o["metadata"]["labels"]["istio-injection"] = json!("enabled"));
    let o = run(p.path(), &["drift", "--json"]);
    assert_exit(&o, 0);
    assert!(k.get(APP_PATH).unwrap()["spec"]["revisionHistoryLimit"] == 10, "the double defaulted a field");
    // A field Plinth set, changed by hand: drift on `manifest` only.
    k.edit(APP_PATH, |o| o["spec"]["destination"]["namespace"] = json!("elsewhere"));
    let o = run(p.path(), &["drift", "--json"]);
    assert_exit(&o, 2);
    let v: Json = serde_json::from_str(stdout(&o).trim()).unwrap();
    let drifted = v["drifted"].as_array().unwrap();
    assert_eq!(drifted.len(), 1, "{v}");
    assert_eq!(drifted[0]["address"], "kubernetes.manifest.guestbook", "{v}");
    // Deleted by hand: reported as deleted, recreated by apply --refresh.
    k.inner.objects.lock().unwrap().remove(NS_PATH);
    let o = run(p.path(), &["drift", "--json"]);
    assert_exit(&o, 2);
    assert!(stdout(&o).contains("deleted"), "{}", stdout(&o));
    assert_exit(&run(p.path(), &["apply", "--auto-approve", "--refresh"]), 0);
    assert_eq!(k.get(APP_PATH).unwrap()["spec"]["destination"]["namespace"], "guestbook");
    assert!(k.get(NS_PATH).is_some());
    assert_exit(&run(p.path(), &["drift"]), 0);
}

#[test]
fn a_conflict_is_retryable_and_retried_by_the_engine() {
    let k = KubeApiTestDouble::start();
    let p = project(&[("main.plinth", &(provider_block(&k) + &NAMESPACE.replace("{V}", "1")))]);
    k.conflict_next(1);
    let o = run(p.path(), &["apply", "--auto-approve"]);
    assert_exit(&o, 0);
    assert_eq!(k.patches(), 2, "one 409, then success: {:?}", k.log());
    assert!(k.get(NS_PATH).is_some());
}

#[test]
fn persistent_conflicts_fail_with_p6505_after_the_retries() {
    let k = KubeApiTestDouble::start();
    let block = format!("provider kubernetes {{\n  host        = \"{}\"\n  token       = \"{}\"\n  max_retries = 1\n}}\n", k.host(), k.token);
    let p = project(&[("main.plinth", &(block + &NAMESPACE.replace("{V}", "1")))]);
    k.conflict_next(100);
    let o = run(p.path(), &["apply", "--auto-approve"]);
    assert_exit(&o, 1);
    let all = stdout(&o) + &stderr(&o);
    assert!(all.contains("P6505"), "{all}");
    assert!(!all.contains(&k.token), "{all}");
    assert_eq!(k.patches(), 2, "tried once, retried once");
}

#[test]
fn a_wrong_token_is_p6502_and_is_not_printed() {
    let k = KubeApiTestDouble::start();
    let block = format!("provider kubernetes {{\n  host  = \"{}\"\n  token = \"wrong-token-xyz\"\n}}\n", k.host());
    let p = project(&[("main.plinth", &(block + &NAMESPACE.replace("{V}", "1")))]);
    let o = run(p.path(), &["apply", "--auto-approve"]);
    assert_exit(&o, 1);
    let all = stdout(&o) + &stderr(&o);
    assert!(all.contains("P6502"), "{all}");
    assert!(!all.contains("wrong-token-xyz"), "{all}");
}

#[test]
fn an_unreachable_server_is_p6501() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let block = format!("provider kubernetes {{\n  host        = \"http://127.0.0.1:{port}\"\n  token       = \"t\"\n  max_retries = 0\n}}\n");
    let p = project(&[("main.plinth", &(block + &NAMESPACE.replace("{V}", "1")))]);
    let o = run(p.path(), &["apply", "--auto-approve"]);
    assert_exit(&o, 1);
    assert!((stdout(&o) + &stderr(&o)).contains("P6501"), "{}", stderr(&o));
}

#[test]
fn config_maps_and_secrets_with_an_unknown_crd_path() {
    let k = KubeApiTestDouble::start();
    let src = provider_block(&k)
        + r#"
resource kubernetes.config_map settings {
  name      = "settings"
  namespace = "apps"
  data      = { "app.yaml" = "replicas: 2\n" }
}
resource kubernetes.manifest pg {
  manifest = {
    apiVersion = "postgresql.cnpg.io/v1"
    kind       = "Cluster"
    metadata   = { name = "pg", namespace = "apps" }
    spec       = { instances = 3, storage = { size = "1Gi" } }
  }
}
"#;
    let p = project(&[("main.plinth", &src)]);
    let o = run(p.path(), &["apply", "--auto-approve"]);
    assert_exit(&o, 0);
    assert_eq!(k.get("/api/v1/namespaces/apps/configmaps/settings").unwrap()["data"]["app.yaml"], "replicas: 2\n");
    assert_eq!(k.get("/apis/postgresql.cnpg.io/v1/namespaces/apps/clusters/pg").unwrap()["spec"]["instances"], 3);
    assert_exit(&run(p.path(), &["drift"]), 0);
    assert_exit(&run(p.path(), &["destroy", "--auto-approve"]), 0);
    assert!(k.get("/api/v1/namespaces/apps/configmaps/settings").is_none());
    assert!(k.get("/apis/postgresql.cnpg.io/v1/namespaces/apps/clusters/pg").is_none());
}

// ------------------------------------------------------------------ opt-in: a real cluster

/// A real cluster named by `PLINTH_TEST_KUBECONFIG` (and optionally
/// `PLINTH_TEST_KUBE_CONTEXT`), probed with the provider's own [`Connection`].
struct RealCluster {
    kubeconfig: String,
    context: Option<String>,
    rt: tokio::runtime::Runtime,
    conn: Connection,
}

impl RealCluster {
    fn from_env() -> Option<RealCluster> {
        let kubeconfig = std::env::var("PLINTH_TEST_KUBECONFIG").ok().filter(|s| !s.is_empty())?;
        let context = std::env::var("PLINTH_TEST_KUBE_CONTEXT").ok().filter(|s| !s.is_empty());
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
        let settings = Connection::settings_from_kubeconfig(std::path::Path::new(&kubeconfig), context.as_deref()).expect("PLINTH_TEST_KUBECONFIG");
        // kube's client starts its worker on the runtime it is built in.
        let conn = rt.block_on(async { Connection::new(settings) }).expect("connection");
        Some(RealCluster { kubeconfig, context, rt, conn })
    }
    fn provider_block(&self) -> String {
        let ctx = self.context.as_ref().map(|c| format!("  context    = \"{c}\"\n")).unwrap_or_default();
        format!("provider kubernetes {{\n  kubeconfig = \"{}\"\n{ctx}}}\n", self.kubeconfig)
    }
    fn get(&self, path: &str) -> Option<Json> {
        match self.rt.block_on(self.conn.send(reqwest::Method::GET, path, None, None)) {
            Ok(v) if v["metadata"]["deletionTimestamp"].is_null() => Some(v),
            Ok(_) => None,
            Err(ApiError::Status(404, _)) => None,
            Err(e) => panic!("GET {path}: {e:?}"),
        }
    }
    /// A merge patch under another field manager, as a person with kubectl would.
    fn edit(&self, path: &str, patch: Json) {
        let body = serde_json::to_vec(&patch).unwrap();
        let path = format!("{path}?fieldManager=kubectl-edit");
        self.rt.block_on(self.conn.send(reqwest::Method::PATCH, &path, Some("application/merge-patch+json"), Some(body))).expect("patch");
    }
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

#[test]
fn opt_in_real_cluster_namespace() {
    let Some(c) = RealCluster::from_env() else { return };
    let name = unique("plinth-it-ns");
    let path = format!("/api/v1/namespaces/{name}");
    let config = c.provider_block() + &NAMESPACE.replace("team-a", &name);
    let exists = |v: Option<&str>| c.get(&path).is_some_and(|o| v.is_none_or(|v| o["metadata"]["labels"]["version"] == v));
    let tamper = || c.edit(&path, json!({ "metadata": { "labels": { "version": "changed-by-hand" } } }));
    conformance(&Case { name: "kubernetes.namespace (real cluster)", config: &config, args: vec![], env: vec![], exists: &exists, tamper: &tamper });
}

#[test]
fn opt_in_real_cluster_secret() {
    let Some(c) = RealCluster::from_env() else { return };
    let name = unique("plinth-it-secret");
    let path = format!("/api/v1/namespaces/default/secrets/{name}");
    let config = c.provider_block() + &SECRET.replace("db-credentials", &name);
    let exists = |v: Option<&str>| c.get(&path).is_some_and(|o| v.is_none_or(|v| unb64(&o["data"]["password"]) == format!("pw-s3cr3t-{v}-value")));
    let tamper = || c.edit(&path, json!({ "data": { "password": b64("tampered") } }));
    conformance(&Case { name: "kubernetes.secret (real cluster)", config: &config, args: vec![], env: vec![], exists: &exists, tamper: &tamper });
}

#[test]
fn opt_in_real_cluster_config_map() {
    let Some(c) = RealCluster::from_env() else { return };
    let name = unique("plinth-it-cm");
    let path = format!("/api/v1/namespaces/default/configmaps/{name}");
    let config = c.provider_block() + &format!("resource kubernetes.config_map cm {{\n  name = \"{name}\"\n  data = {{ version = \"{{V}}\" }}\n}}\n");
    let exists = |v: Option<&str>| c.get(&path).is_some_and(|o| v.is_none_or(|v| o["data"]["version"] == v));
    let tamper = || c.edit(&path, json!({ "data": { "version": "changed-by-hand" } }));
    conformance(&Case { name: "kubernetes.config_map (real cluster)", config: &config, args: vec![], env: vec![], exists: &exists, tamper: &tamper });
}

#[test]
fn a_kubeconfig_context_selects_the_cluster_and_token() {
    let k = KubeApiTestDouble::start();
    let kc = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: other\nclusters:\n- name: double\n  cluster:\n    server: {}\n- name: nowhere\n  cluster:\n    server: http://127.0.0.1:1\nusers:\n- name: u\n  user:\n    token: {}\ncontexts:\n- name: test\n  context:\n    cluster: double\n    user: u\n- name: other\n  context:\n    cluster: nowhere\n    user: u\n",
        k.host(),
        k.token
    );
    let src = "provider kubernetes {\n  kubeconfig = \"kube/config.yaml\"\n  context    = \"test\"\n}\n".to_string() + &NAMESPACE.replace("{V}", "1");
    let p = project(&[("main.plinth", &src), ("kube/config.yaml", &kc)]);
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    assert!(k.get(NS_PATH).is_some());
    // A context that does not exist is P6500, naming the ones that do.
    std::fs::write(p.path().join("main.plinth"), src.replace("\"test\"", "\"prod\"")).unwrap();
    let o = run(p.path(), &["apply", "--auto-approve", "--refresh"]);
    assert_exit(&o, 1);
    let all = stdout(&o) + &stderr(&o);
    assert!(all.contains("P6500") && (all.contains("other, test") || all.contains("test, other")), "{all}");
    assert!(!all.contains(&k.token), "{all}");
}

#[test]
fn a_secret_written_as_a_manifest_stays_secret() {
    let k = KubeApiTestDouble::start();
    let config = |v: &str| {
        provider_block(&k)
            + &format!(
                "resource kubernetes.manifest s {{\n  manifest = {{\n    apiVersion = \"v1\"\n    kind       = \"Secret\"\n    metadata   = {{ name = \"via-manifest\", namespace = \"default\" }}\n    stringData = {{ password = \"mf-s3cr3t-{v}\" }}\n  }}\n}}\n"
            )
    };
    let p = project(&[("main.plinth", &config("1"))]);
    let mut outputs = vec![run(p.path(), &["plan"]), run(p.path(), &["plan", "--json"]), run(p.path(), &["apply", "--auto-approve"])];
    assert_exit(&outputs[2], 0);
    outputs.push(run(p.path(), &["state", "show"]));
    outputs.push(run(p.path(), &["state", "show", "--json"]));
    outputs.push(run(p.path(), &["drift", "--json"]));
    std::fs::write(p.path().join("main.plinth"), config("2")).unwrap();
    outputs.push(run(p.path(), &["plan"]));
    outputs.push(run(p.path(), &["apply", "--auto-approve"]));
    for o in &outputs {
        let all = stdout(o) + &stderr(o);
        assert!(!all.contains("mf-s3cr3t"), "a secret value was printed:\n{all}");
    }
    assert!(stdout(&outputs[0]).contains("(sensitive)"), "{}", stdout(&outputs[0]));
}

// ------------------------------------------------------------------ unmanaged objects (drift's list)

fn unmanaged_of(dir: &std::path::Path) -> (Option<i32>, Json) {
    let o = run(dir, &["drift", "--json"]);
    let v: Json = serde_json::from_str(stdout(&o).trim()).unwrap_or(Json::Null);
    (o.status.code(), v)
}

#[test]
fn unmanaged_namespaces_are_listed_only_with_list_unmanaged() {
    let k = KubeApiTestDouble::start();
    // What every cluster has: never reported.
    for ns in ["default", "kube-system", "kube-public"] {
        k.put(&format!("/api/v1/namespaces/{ns}"), json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": ns } }));
    }
    let block =
        |on: bool| format!("provider kubernetes {{\n  host           = \"{}\"\n  token          = \"{}\"\n  list_unmanaged = {on}\n}}\n", k.host(), k.token);
    let src = |on: bool| block(on) + "resource kubernetes.namespace a {\n  name = \"team-a\"\n}\nresource kubernetes.namespace b {\n  name = \"team-b\"\n}\n";
    let p = project(&[("main.plinth", &src(true))]);
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    let (code, v) = unmanaged_of(p.path());
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["unmanaged"], json!([]));
    k.put("/api/v1/namespaces/stray", json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "stray", "uid": "u-stray" } }));
    // A namespace being deleted is gone already.
    k.put(
        "/api/v1/namespaces/leaving",
        json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "leaving", "deletionTimestamp": "2026-11-21T00:00:00Z" } }),
    );
    let (code, v) = unmanaged_of(p.path());
    assert_eq!(code, Some(2), "{v}");
    assert_eq!(v["unmanaged"], json!([{ "type": "kubernetes.namespace", "object": "stray" }]), "{v}");
    let human = run(p.path(), &["drift"]);
    assert_exit(&human, 2);
    assert!(stdout(&human).contains("stray"), "{}", stdout(&human));
    assert!(!(stdout(&human) + &stderr(&human)).contains(&k.token));
    // Off by default: the same cluster is in sync.
    std::fs::write(p.path().join("main.plinth"), src(false)).unwrap();
    let (code, v) = unmanaged_of(p.path());
    assert_eq!((code, &v["unmanaged"]), (Some(0), &json!([])), "{v}");
}

#[test]
fn config_maps_carrying_plinths_mark_that_this_state_does_not_manage_are_unmanaged() {
    let k = KubeApiTestDouble::start();
    let src = provider_block(&k)
        + r#"
resource kubernetes.config_map a {
  name      = "a"
  namespace = "apps"
  data      = { k = "1" }
}
resource kubernetes.config_map b {
  name      = "b"
  namespace = "apps"
  data      = { k = "2" }
}
resource kubernetes.manifest c {
  manifest = {
    apiVersion = "v1"
    kind       = "ConfigMap"
    metadata   = { name = "via-manifest", namespace = "apps" }
    data       = { k = "3" }
  }
}
"#;
    let p = project(&[("main.plinth", &src)]);
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    // Config maps of others: the one every namespace has, one of Helm's;
    // and one of Plinth's in a namespace where this state manages nothing.
    k.put("/api/v1/namespaces/apps/configmaps/kube-root-ca.crt", json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "kube-root-ca.crt", "namespace": "apps", "managedFields": [{ "manager": "kube-controller-manager" }] } }));
    k.put("/api/v1/namespaces/apps/configmaps/chart", json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "chart", "namespace": "apps", "labels": { "app.kubernetes.io/managed-by": "Helm" } } }));
    k.put("/api/v1/namespaces/elsewhere/configmaps/x", json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "x", "namespace": "elsewhere", "labels": { "app.kubernetes.io/managed-by": "plinth" } } }));
    let (code, v) = unmanaged_of(p.path());
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["unmanaged"], json!([]), "a config map applied as a manifest is managed: {v}");
    // One labelled as Plinth's, created directly on the cluster.
    k.put("/api/v1/namespaces/apps/configmaps/orphan", json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "orphan", "namespace": "apps", "labels": { "app.kubernetes.io/managed-by": "plinth" } }, "data": { "k": "0" } }));
    let (code, v) = unmanaged_of(p.path());
    assert_eq!(code, Some(2), "{v}");
    assert_eq!(v["unmanaged"], json!([{ "type": "kubernetes.config_map", "object": "apps/orphan" }]), "{v}");
    // One Plinth applied whose state was lost: it keeps the `plinth` field manager.
    assert_exit(&run(p.path(), &["state", "rm", "kubernetes.config_map.b"]), 0);
    assert!(k.get("/api/v1/namespaces/apps/configmaps/b").is_some());
    let (code, v) = unmanaged_of(p.path());
    assert_eq!(code, Some(2), "{v}");
    assert_eq!(
        v["unmanaged"],
        json!([{ "type": "kubernetes.config_map", "object": "apps/b" }, { "type": "kubernetes.config_map", "object": "apps/orphan" }]),
        "{v}"
    );
}

#[test]
fn manifest_orphans_are_named_by_kind_namespace_and_name() {
    let k = KubeApiTestDouble::start();
    let p = project(&[("main.plinth", &(provider_block(&k) + &APPLICATION.replace("{V}", "1")))]);
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    let app = |name: &str, manager: &str| json!({ "apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": { "name": name, "namespace": "argocd", "managedFields": [{ "manager": manager }] } });
    k.put("/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/by-hand", app("by-hand", "kubectl-client-side-apply"));
    let (code, v) = unmanaged_of(p.path());
    assert_eq!((code, &v["unmanaged"]), (Some(0), &json!([])), "{v}");
    k.put("/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/other-env", app("other-env", "plinth"));
    let (code, v) = unmanaged_of(p.path());
    assert_eq!(code, Some(2), "{v}");
    assert_eq!(v["unmanaged"], json!([{ "type": "kubernetes.manifest", "object": "Application argocd/other-env" }]), "{v}");
}
