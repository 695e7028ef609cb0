//! The `http` provider against a real HTTP server on loopback: a small JSON
//! REST service written here (std::net + threads) that keeps organisations
//! in memory, adds server fields (`id`, `created_at`), requires a bearer
//! token, can list them (`GET /orgs`, a bare JSON array), and can be told to
//! answer 429 or 503 for the next requests.

use crate::provider_conformance::{run as conformance, Case};
use crate::*;
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

const TOKEN: &str = "s3cr3t-t0ken-4f9a8b7c";

#[derive(Default)]
struct Store {
    objects: BTreeMap<u64, Json>,
    next: u64,
    /// Answer this status to the next `fail_left` requests.
    fail_status: u16,
    fail_left: u64,
    failures_served: u64,
    requests: u64,
}

struct Server {
    url: String,
    store: Arc<Mutex<Store>>,
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Other",
    }
}

fn respond(stream: &mut TcpStream, status: u16, body: Option<&Json>, extra: &str) {
    let text = body.map(|b| b.to_string()).unwrap_or_default();
    let head =
        format!("HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n", reason(status), text.len());
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(text.as_bytes());
    let _ = stream.flush();
}

/// Method, path, headers (lower-cased names), body.
type Request = (String, String, BTreeMap<String, String>, Vec<u8>);

/// Reads one request.
fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some((method, path, headers, body))
}

fn handle(mut stream: TcpStream, store: &Mutex<Store>) {
    let Some((method, path, headers, body)) = read_request(&stream) else { return };
    let mut s = store.lock().unwrap();
    s.requests += 1;
    if s.fail_left > 0 {
        s.fail_left -= 1;
        s.failures_served += 1;
        let status = s.fail_status;
        drop(s);
        let extra = if status == 429 { "Retry-After: 0\r\n" } else { "" };
        return respond(&mut stream, status, Some(&json!({"message": "try later"})), extra);
    }
    if headers.get("authorization").map(String::as_str) != Some(&format!("Bearer {TOKEN}")) {
        drop(s);
        return respond(&mut stream, 401, Some(&json!({"message": "token is required"})), "");
    }
    let body: Option<Json> = serde_json::from_slice(&body).ok();
    let path = path.split_once('?').map_or(path.as_str(), |(p, _)| p);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (status, answer) = match (method.as_str(), segments.as_slice()) {
        ("POST", ["orgs"]) => match body {
            Some(Json::Object(mut fields)) => {
                s.next += 1;
                let id = s.next;
                fields.insert("id".into(), json!(id));
                fields.insert("created_at".into(), json!("2026-01-01T00:00:00Z"));
                let obj = Json::Object(fields);
                s.objects.insert(id, obj.clone());
                (201, Some(obj))
            }
            _ => (422, Some(json!({"message": "a JSON object is required"}))),
        },
        ("GET", ["orgs"]) => (200, Some(Json::Array(s.objects.values().cloned().collect()))),
        (m, ["orgs", id]) => {
            let id: u64 = id.parse().unwrap_or(0);
            match (m, s.objects.get_mut(&id), body) {
                (_, None, _) => (404, Some(json!({"message": "not found"}))),
                ("GET", Some(obj), _) => (200, Some(obj.clone())),
                ("PATCH", Some(obj), Some(Json::Object(fields))) => {
                    for (k, v) in fields {
                        if k != "id" && k != "created_at" {
                            obj[k] = v;
                        }
                    }
                    (200, Some(obj.clone()))
                }
                ("PUT", Some(obj), Some(Json::Object(mut fields))) => {
                    fields.insert("id".into(), obj["id"].clone());
                    fields.insert("created_at".into(), obj["created_at"].clone());
                    *obj = Json::Object(fields);
                    (200, Some(obj.clone()))
                }
                ("DELETE", Some(_), _) => {
                    s.objects.remove(&id);
                    (204, None)
                }
                _ => (400, Some(json!({"message": "bad request"}))),
            }
        }
        _ => (404, Some(json!({"message": "no such route"}))),
    };
    drop(s);
    respond(&mut stream, status, answer.as_ref(), "");
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let store = Arc::new(Mutex::new(Store::default()));
        let s = store.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || handle(stream, &s));
            }
        });
        Server { url, store }
    }

    fn fail_next(&self, status: u16, count: u64) {
        let mut s = self.store.lock().unwrap();
        s.fail_status = status;
        s.fail_left = count;
    }

    fn ids(&self) -> Vec<u64> {
        self.store.lock().unwrap().objects.keys().copied().collect()
    }

    /// One real request to the server, as a client outside Plinth would send it.
    fn request(&self, method: &str, path: &str, body: Option<Json>) -> (u16, Json) {
        let addr = self.url.trim_start_matches("http://");
        let mut stream = TcpStream::connect(addr).expect("connect");
        let text = body.map(|b| b.to_string()).unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
            text.len()
        );
        stream.write_all(req.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let status = answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        (status, serde_json::from_str(body).unwrap_or(Json::Null))
    }
}

fn config(body: &str) -> String {
    format!(
        r#"param url: string
param token: string {{ sensitive = true }}

provider http {{
  base_url     = url
  bearer_token = token
  max_retries  = 0
}}

resource http.resource org {{
  path = "/orgs"
  body = {{
    name        = "acme"
    description = "{body}"
  }}
}}

output org_id = http.resource.org.id
"#
    )
}

fn vars(server: &Server, token: &str) -> Vec<(String, String)> {
    vec![("PLINTH_VAR_url".into(), server.url.clone()), ("PLINTH_VAR_token".into(), token.into())]
}

fn cmd(dir: &std::path::Path, env: &[(String, String)], args: &[&str]) -> std::process::Output {
    let mut c = plinth();
    c.args(args).current_dir(dir);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run plinth")
}

#[track_caller]
fn assert_no_token(o: &std::process::Output) {
    let all = format!("{}{}", stdout(o), stderr(o));
    assert!(!all.contains(TOKEN), "the token leaked:\n{all}");
}

#[test]
fn the_http_provider_passes() {
    let server = Server::start();
    let exists = |v: Option<&str>| {
        server.ids().iter().any(|id| {
            let (status, obj) = server.request("GET", &format!("/orgs/{id}"), None);
            status == 200 && v.is_none_or(|v| obj["description"] == json!(format!("version {v}")))
        })
    };
    let tamper = || {
        for id in server.ids() {
            let (status, _) = server.request("PATCH", &format!("/orgs/{id}"), Some(json!({"description": "tampered"})));
            assert_eq!(status, 200);
        }
    };
    let config = config("version {V}");
    conformance(&Case { name: "http.resource", config: &config, args: vec![], env: vars(&server, TOKEN), exists: &exists, tamper: &tamper });
}

#[test]
fn server_fields_are_not_drift_but_changed_fields_are() {
    let server = Server::start();
    let env = vars(&server, TOKEN);
    let p = project(&[("main.plinth", &config("the first"))]);
    assert_exit(&cmd(p.path(), &env, &["apply", "--auto-approve"]), 0);
    let id = server.ids()[0];
    // The server adds a field of its own: not drift.
    server.request("PATCH", &format!("/orgs/{id}"), Some(json!({"website": "https://acme.example"})));
    assert_exit(&cmd(p.path(), &env, &["drift"]), 0);
    server.request("PATCH", &format!("/orgs/{id}"), Some(json!({"description": "changed by hand"})));
    let drift = cmd(p.path(), &env, &["drift", "--json"]);
    assert_exit(&drift, 2);
    assert!(stdout(&drift).contains("changed by hand"), "{}", stdout(&drift));
    // Gone behind Plinth's back: the next plan creates it again.
    server.request("DELETE", &format!("/orgs/{id}"), None);
    let plan = cmd(p.path(), &env, &["plan", "--refresh", "--detailed-exitcode"]);
    assert_exit(&plan, 2);
}

#[test]
fn rate_limits_are_retried() {
    let server = Server::start();
    let env = vars(&server, TOKEN);
    let p = project(&[("main.plinth", &config("retried"))]);
    server.fail_next(429, 2);
    let o = cmd(p.path(), &env, &["apply", "--auto-approve"]);
    assert_exit(&o, 0);
    assert_eq!(server.store.lock().unwrap().failures_served, 2);
    assert_eq!(server.ids().len(), 1, "created exactly once");
}

#[test]
fn a_server_that_keeps_failing_gives_a_retryable_diagnostic() {
    let server = Server::start();
    let env = vars(&server, TOKEN);
    let p = project(&[("main.plinth", &config("never"))]);
    server.fail_next(503, u64::MAX);
    let o = cmd(p.path(), &env, &["apply", "--auto-approve"]);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("P6605") && err.contains("503") && err.contains("transient"), "{err}");
    assert!(err.contains(&server.url), "the diagnostic names the URL: {err}");
    assert_no_token(&o);
    assert_eq!(server.store.lock().unwrap().failures_served, 4, "four attempts (max_retries = 0)");
    assert_eq!(stdout(&cmd(p.path(), &env, &["state", "list"])), "");
}

#[test]
fn the_engine_retries_what_the_provider_marks_retryable() {
    let server = Server::start();
    let env = vars(&server, TOKEN);
    let p = project(&[("main.plinth", &config("never").replace("max_retries  = 0", "max_retries  = 1"))]);
    server.fail_next(503, u64::MAX);
    let o = cmd(p.path(), &env, &["apply", "--auto-approve"]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("gave up after 2 attempts"), "{}", stderr(&o));
    assert_eq!(server.store.lock().unwrap().failures_served, 8, "4 requests for each of 2 operations");
    assert_no_token(&o);
}

#[test]
fn a_wrong_token_is_a_clear_error_and_records_nothing() {
    let server = Server::start();
    let env = vars(&server, "not-the-right-token");
    let p = project(&[("main.plinth", &config("denied"))]);
    let o = cmd(p.path(), &env, &["apply", "--auto-approve"]);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("P6603") && err.contains("401") && err.contains("bearer_token"), "{err}");
    assert!(!err.contains("not-the-right-token"), "{err}");
    assert_eq!(stdout(&cmd(p.path(), &env, &["state", "list"])), "");
    assert!(server.ids().is_empty());
    assert_eq!(server.store.lock().unwrap().requests, 1, "a refusal is not retried");
}

#[test]
fn the_token_never_appears_in_any_output() {
    let server = Server::start();
    let env = vars(&server, TOKEN);
    let p = project(&[("main.plinth", &config("secret keeping"))]);
    for args in [
        &["validate"][..],
        &["plan"],
        &["plan", "--json"],
        &["apply", "--auto-approve"],
        &["plan", "--refresh"],
        &["drift"],
        &["drift", "--json"],
        &["state", "show"],
        &["state", "list"],
        &["output", "--json"],
    ] {
        let o = cmd(p.path(), &env, args);
        assert!(o.status.success() || o.status.code() == Some(2), "{args:?}: {}", stderr(&o));
        assert_no_token(&o);
    }
    std::fs::write(p.path().join("main.plinth"), config("changed")).unwrap();
    for args in [&["plan"][..], &["apply", "--auto-approve"], &["destroy", "--auto-approve"]] {
        let o = cmd(p.path(), &env, args);
        assert_exit(&o, 0);
        assert_no_token(&o);
    }
    // Nor in the state file on disk.
    for entry in walk(p.path()) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&bytes).contains(TOKEN), "the token is stored in {}", entry.display());
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Two organisations, listed through `list_path` when `list` is given.
fn listed_config(list: Option<&str>) -> String {
    let list = list.unwrap_or("");
    format!(
        r#"param url: string
param token: string {{ sensitive = true }}

provider http {{
  base_url     = url
  bearer_token = token
  max_retries  = 0
}}

resource http.resource a {{
  path = "/orgs"
  body = {{ name = "a" }}
  {list}
}}

resource http.resource b {{
  path = "/orgs"
  body = {{ name = "b" }}
  {list}
}}
"#
    )
}

fn drift_json(dir: &std::path::Path, env: &[(String, String)]) -> (Option<i32>, Json, std::process::Output) {
    let o = cmd(dir, env, &["drift", "--json"]);
    (o.status.code(), serde_json::from_str(stdout(&o).trim()).unwrap_or(Json::Null), o)
}

#[test]
fn objects_created_beside_the_managed_ones_are_reported_unmanaged() {
    let server = Server::start();
    let env = vars(&server, TOKEN);
    let p = project(&[("main.plinth", &listed_config(Some("list_path = \"/orgs\"")))]);
    assert_exit(&cmd(p.path(), &env, &["apply", "--auto-approve"]), 0);
    assert_eq!(server.ids().len(), 2);
    let (code, v, _) = drift_json(p.path(), &env);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["unmanaged"], json!([]));
    // A third organisation, created behind Plinth's back.
    let (status, created) = server.request("POST", "/orgs", Some(json!({"name": "rogue"})));
    assert_eq!(status, 201);
    let rogue = format!("/orgs/{}", created["id"]);
    let (code, v, o) = drift_json(p.path(), &env);
    assert_eq!(code, Some(2), "{v}");
    assert_eq!(v["unmanaged"], json!([{"type": "http.resource", "object": rogue}]), "{v}");
    assert_eq!(v["drifted"].as_array().map(Vec::len), Some(0), "the managed ones are in sync: {v}");
    assert_no_token(&o);
    let human = cmd(p.path(), &env, &["drift"]);
    assert_exit(&human, 2);
    assert!(stdout(&human).contains(&rogue), "{}", stdout(&human));
    assert_no_token(&human);
    // Without `list_path` nothing is listed: the same server is in sync.
    std::fs::write(p.path().join("main.plinth"), listed_config(None)).unwrap();
    assert_exit(&cmd(p.path(), &env, &["apply", "--auto-approve"]), 0);
    let (code, v, _) = drift_json(p.path(), &env);
    assert_eq!((code, &v["unmanaged"]), (Some(0), &json!([])), "{v}");
}

#[test]
fn a_list_answer_without_items_is_p6608() {
    let server = Server::start();
    let env = vars(&server, TOKEN);
    let p = project(&[("main.plinth", &listed_config(Some("list_path = \"/orgs\"\n  list_items_pointer = \"/data\"")))]);
    assert_exit(&cmd(p.path(), &env, &["apply", "--auto-approve"]), 0);
    let o = cmd(p.path(), &env, &["drift"]);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("P6608") && err.contains("list_items_pointer"), "{err}");
    assert_no_token(&o);
}
