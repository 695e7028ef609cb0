//! The S3 store: state in any S3-compatible object store, addressed as
//! `s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1&path_style=true`
//! (`endpoint` may be left out for AWS; `region` defaults to `AWS_REGION`,
//! `AWS_DEFAULT_REGION`, then `us-east-1`; `path_style` to false).
//! Credentials come from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
//! `AWS_SESSION_TOKEN`.
//!
//! Layout, per environment under `<prefix>/<env>/`:
//!
//! - `journal/<seq, 20 digits>.json`: one small object per call that changed
//!   something (`begin_run`, `write_intents`, `complete`, …), created with
//!   `If-None-Match: *`, so two writers can never take the same sequence
//!   number. Each call writes O(1) bytes: the entry holds only what the call
//!   records. An intent is durable when `write_intents` returns; a completion
//!   and its instance upserts are one entry, hence one atomic write.
//! - `snapshot.json`: the state after entry `seq` (serial, instances,
//!   outputs, unfinished intents, history). A read is the snapshot plus the
//!   entries after it. Once the journal since the snapshot holds at least
//!   [`COMPACT_MIN_ENTRIES`] entries and either [`COMPACT_RATIO`] times the
//!   snapshot's bytes or [`COMPACT_MAX_ENTRIES`] entries, the writer that
//!   appended the last entry writes a new snapshot (`If-Match` on the ETag it
//!   read, so compactions never go backwards) and deletes the entries before
//!   its own last one. Rewriting the old state thus costs at most 1/4 of the
//!   journal's bytes, so the amortized bytes per operation do not grow with
//!   the state — until the state outweighs [`COMPACT_MAX_ENTRIES`] × 4
//!   entries; from there on a snapshot is written every 512 entries anyway,
//!   which bounds what a cold read fetches (1/512 of the state per operation).
//! - `drift/<unix ms, 15 digits>-<random>.json`: one object per drift report,
//!   outside the snapshot (reports are read only by `drift --history`).
//! - `lock.json`: the lock with its lease, created with `If-None-Match: *`;
//!   an expired lease (or a dead pid on this host) is taken over by
//!   overwriting it with `If-Match: <etag>`, so of two takers only one wins.
//!
//! The newest journal entry is never deleted. That makes a listing after the
//! entry a handle last saw exact: no entry means nothing was written since, a
//! gap means a compaction happened (the handle rereads the snapshot). Every
//! write lists first, so a handle that fell behind catches up before it
//! appends, and a lost race for a sequence number is retried against the
//! new state: each call is applied to the latest state, as a SQLite
//! transaction would be. (Concurrent writers are a mistake the lock
//! prevents; the conditional writes only make sure no entry is lost. The
//! one theoretical hole: a key deleted by a compaction that happened, whole,
//! between a writer's listing and its write could be created again.)
//!
//! `Store` is synchronous. Each SDK future runs on the caller's tokio
//! runtime when there is one (`block_in_place` + `Handle::block_on`), else
//! on a small current-thread runtime the store owns.

mod journal;

use super::model::*;
use super::{now_rfc3339, now_unix, Completion, Intent, LockInfo, Store};
use crate::diagnostic::Diagnostic;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use journal::{CompletionDoc, EntryDoc, EnvState, IntentDoc, Op, OutputDoc, SnapshotDoc, FORMAT};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Entries since the snapshot before a compaction is considered.
pub const COMPACT_MIN_ENTRIES: u64 = 64;
/// Entries since the snapshot after which a compaction happens whatever the
/// sizes (bounds what a cold read fetches).
pub const COMPACT_MAX_ENTRIES: u64 = 512;
/// A compaction is due once the journal since the snapshot outweighs the
/// snapshot this many times.
pub const COMPACT_RATIO: u64 = 4;
/// How many times a write races for a sequence number before giving up.
const WRITE_ATTEMPTS: u32 = 16;
/// Journal entries fetched at once by a read.
const FETCH_CONCURRENCY: usize = 16;

/// Request counters of one store handle (for tests and benchmarks).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct S3Stats {
    pub journal_puts: u64,
    pub journal_bytes: u64,
    pub snapshot_puts: u64,
    pub snapshot_bytes: u64,
    pub lock_puts: u64,
    pub compactions: u64,
    /// Journal entries a write lost to another writer (then retried).
    pub conflicts: u64,
    /// SDK calls (a paginated listing or a batch of reads counts once).
    pub calls: u64,
}

/// What the address names.
#[derive(Debug, Clone, PartialEq)]
struct Address {
    bucket: String,
    prefix: String,
    endpoint: Option<String>,
    region: String,
    path_style: bool,
}

fn address_error(address: &str, why: &str) -> Diagnostic {
    Diagnostic::new("P5001", "invalid S3 state address").help(format!(
        "The state address `{address}` cannot be used: {why}. Write it as s3://BUCKET/PREFIX?endpoint=URL&region=REGION&path_style=true (endpoint, region and path_style are optional)."
    ))
}

fn parse_address(address: &str) -> Result<Address, Diagnostic> {
    let rest = address.strip_prefix("s3://").ok_or_else(|| address_error(address, "it does not start with s3://"))?;
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, q),
        None => (rest, ""),
    };
    let (bucket, prefix) = match path.split_once('/') {
        Some((b, p)) => (b, p.trim_matches('/')),
        None => (path, ""),
    };
    if bucket.is_empty() {
        return Err(address_error(address, "it names no bucket"));
    }
    let mut parsed = Address { bucket: bucket.to_string(), prefix: prefix.to_string(), endpoint: None, region: String::new(), path_style: false };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value =
            crate::redact::percent_decode(value).ok_or_else(|| address_error(address, &format!("the value of `{key}` is not valid percent-encoding")))?;
        match key {
            "endpoint" => {
                if !(value.starts_with("http://") || value.starts_with("https://")) {
                    return Err(address_error(address, "endpoint must be an http:// or https:// URL"));
                }
                parsed.endpoint = Some(value.trim_end_matches('/').to_string());
            }
            "region" => parsed.region = value,
            "path_style" => {
                parsed.path_style = match value.as_str() {
                    "true" | "1" | "yes" | "" => true,
                    "false" | "0" | "no" => false,
                    _ => return Err(address_error(address, "path_style must be true or false")),
                }
            }
            other => return Err(address_error(address, &format!("`{other}` is not a known parameter (endpoint, region, path_style)"))),
        }
    }
    if parsed.region.is_empty() {
        parsed.region = ["AWS_REGION", "AWS_DEFAULT_REGION"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
            .unwrap_or_else(|| "us-east-1".to_string());
    }
    Ok(parsed)
}

/// A failed request, reduced to text without credentials.
type Failure = crate::s3util::SdkFailure;

/// A condition on a write.
#[derive(Debug, Clone)]
enum Cond {
    /// Only if the key does not exist.
    Absent,
    /// Only if the object still has this ETag.
    Etag(String),
}

enum Put {
    Written(Option<String>),
    Conflict,
}

/// An object's bytes and its ETag.
type Object = (Vec<u8>, Option<String>);

async fn get_object(client: Client, bucket: String, key: String) -> Result<Option<Object>, Failure> {
    match client.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => {
            let etag = out.e_tag().map(str::to_string);
            let body = out.body.collect().await.map_err(|e| Failure::other(format!("reading the response: {e}")))?;
            Ok(Some((body.into_bytes().to_vec(), etag)))
        }
        Err(e) => {
            let f = Failure::of(e);
            if f.is_missing_key() {
                Ok(None)
            } else {
                Err(f)
            }
        }
    }
}

async fn put_object(client: Client, bucket: String, key: String, body: Vec<u8>, cond: Cond) -> Result<Put, Failure> {
    let mut req = client.put_object().bucket(bucket).key(key).content_type("application/json").body(ByteStream::from(body));
    req = match cond {
        Cond::Absent => req.if_none_match("*"),
        Cond::Etag(etag) => req.if_match(etag),
    };
    match req.send().await {
        Ok(out) => Ok(Put::Written(out.e_tag().map(str::to_string))),
        Err(e) => {
            let f = Failure::of(e);
            // A conditional write on a key that vanished answers 404.
            if f.is_conflict() || f.is_missing_key() {
                Ok(Put::Conflict)
            } else {
                Err(f)
            }
        }
    }
}

/// Deletes a key, only if it still has `etag` when given. Ok(false): the
/// condition failed or the key is gone.
async fn delete_object(client: Client, bucket: String, key: String, etag: Option<String>) -> Result<bool, Failure> {
    let conditional = etag.is_some();
    match client.delete_object().bucket(&bucket).key(&key).set_if_match(etag).send().await {
        Ok(_) => Ok(true),
        Err(e) => {
            let f = Failure::of(e);
            if f.is_conflict() || f.is_missing_key() {
                Ok(false)
            } else if conditional && matches!(f.status, Some(400) | Some(501)) {
                // A server without conditional deletes: delete unconditionally
                // (the lock was just read as ours).
                client.delete_object().bucket(bucket).key(key).send().await.map_err(Failure::of)?;
                Ok(true)
            } else {
                Err(f)
            }
        }
    }
}

/// Every key under `prefix` after `start_after`, with its size, in key order.
async fn list_keys(client: Client, bucket: String, prefix: String, start_after: Option<String>) -> Result<Vec<(String, i64)>, Failure> {
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = client
            .list_objects_v2()
            .bucket(&bucket)
            .prefix(&prefix)
            .set_start_after(start_after.clone())
            .set_continuation_token(token.take())
            .send()
            .await
            .map_err(Failure::of)?;
        for o in out.contents() {
            if let Some(k) = o.key() {
                keys.push((k.to_string(), o.size().unwrap_or(0)));
            }
        }
        match out.next_continuation_token() {
            Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_string()),
            _ => return Ok(keys),
        }
    }
}

/// Fetches many keys, a few at a time; `None` for a key that is gone.
async fn get_many(client: Client, bucket: String, keys: Vec<String>) -> Result<Vec<Option<Vec<u8>>>, Failure> {
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(FETCH_CONCURRENCY) {
        let mut set = tokio::task::JoinSet::new();
        for (i, key) in chunk.iter().enumerate() {
            let (client, bucket, key) = (client.clone(), bucket.clone(), key.clone());
            set.spawn(async move { (i, get_object(client, bucket, key).await) });
        }
        let mut got: Vec<Option<Vec<u8>>> = vec![None; chunk.len()];
        while let Some(joined) = set.join_next().await {
            let (i, result) = joined.map_err(|e| Failure::other(format!("a read task failed: {e}")))?;
            got[i] = result?.map(|(body, _)| body);
        }
        out.extend(got);
    }
    Ok(out)
}

/// Deletes keys in batches (DeleteObjects), one by one if the server refuses batches.
async fn delete_many(client: Client, bucket: String, keys: Vec<String>) -> Result<(), Failure> {
    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    for chunk in keys.chunks(1000) {
        let ids: Result<Vec<ObjectIdentifier>, _> = chunk.iter().map(|k| ObjectIdentifier::builder().key(k).build()).collect();
        let ids = ids.map_err(|e| Failure::other(e.to_string()))?;
        let delete = Delete::builder().set_objects(Some(ids)).quiet(true).build().map_err(|e| Failure::other(e.to_string()))?;
        if client.delete_objects().bucket(&bucket).delete(delete).send().await.is_err() {
            for key in chunk {
                client.delete_object().bucket(&bucket).key(key).send().await.map_err(Failure::of)?;
            }
        }
    }
    Ok(())
}

/// The lock as stored in `lock.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LockDoc {
    holder: String,
    host: String,
    pid: i64,
    command: String,
    acquired_at: String,
    expires_at: i64,
}

impl LockDoc {
    fn info(&self) -> LockInfo {
        LockInfo {
            holder: self.holder.clone(),
            host: self.host.clone(),
            pid: self.pid,
            command: self.command.clone(),
            acquired_at: self.acquired_at.clone(),
            expires_at: self.expires_at,
        }
    }
}

/// What this handle knows of the environment.
struct View {
    /// False until the snapshot was read, and after a gap in the journal.
    loaded: bool,
    /// The last journal entry folded into `state`.
    seq: u64,
    /// The entry `snapshot.json` covers, its ETag (None: no snapshot) and size.
    snap_seq: u64,
    snap_etag: Option<String>,
    snap_bytes: u64,
    /// Bytes of the journal entries after the snapshot.
    journal_bytes: u64,
    state: EnvState,
}

impl View {
    fn empty() -> View {
        View { loaded: false, seq: 0, snap_seq: 0, snap_etag: None, snap_bytes: 0, journal_bytes: 0, state: EnvState::new() }
    }
}

/// Where SDK futures run when the caller has no multi-thread runtime.
#[derive(Default)]
struct Io {
    own_runtime: Option<Arc<tokio::runtime::Runtime>>,
    /// One client per kind of runtime: a pooled connection belongs to the
    /// runtime that opened it, and the store's own runtime only runs while
    /// the store waits on it.
    own_client: Option<Client>,
    ambient_client: Option<Client>,
}

pub struct S3Store {
    env: String,
    address: Address,
    /// `s3://bucket/prefix`, as shown in messages.
    shown: String,
    /// `<prefix>/<env>/`.
    base: String,
    host: String,
    config: aws_sdk_s3::Config,
    /// Credential strings scrubbed from every message.
    secrets: Vec<String>,
    io: Mutex<Io>,
    view: Mutex<View>,
    stats: Mutex<S3Stats>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Drop for S3Store {
    fn drop(&mut self) {
        // Dropping a runtime inside an async context panics; this does not.
        let io = self.io.get_mut().unwrap_or_else(|p| p.into_inner());
        io.own_client = None;
        if let Some(rt) = io.own_runtime.take().and_then(|rt| Arc::try_unwrap(rt).ok()) {
            rt.shutdown_background();
        }
    }
}

impl S3Store {
    /// Opens the environment `env` of the state at `address`. Nothing is
    /// requested until the first call.
    pub fn open(address: &str, env: &str) -> Result<S3Store, Diagnostic> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        S3Store::open_with(address, env, var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"), var("AWS_SESSION_TOKEN"))
    }

    fn open_with(address: &str, env: &str, key_id: Option<String>, secret: Option<String>, token: Option<String>) -> Result<S3Store, Diagnostic> {
        let parsed = parse_address(address)?;
        let shown = if parsed.prefix.is_empty() { format!("s3://{}", parsed.bucket) } else { format!("s3://{}/{}", parsed.bucket, parsed.prefix) };
        let (Some(key_id), Some(secret)) = (key_id, secret) else {
            return Err(Diagnostic::new("P5001", "no credentials for the S3 state").help(format!(
                "The state {shown} is in S3, and AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not both set; set them (and AWS_SESSION_TOKEN for temporary credentials)."
            )));
        };
        let mut secrets = vec![key_id.clone(), secret.clone()];
        secrets.extend(token.clone());
        let builder = crate::s3util::config(crate::s3util::Access {
            endpoint: parsed.endpoint.as_deref(),
            region: &parsed.region,
            path_style: parsed.path_style,
            key_id,
            secret,
            token,
            source: "plinth-env",
            attempt_timeout: Duration::from_secs(120),
        });
        let base = if parsed.prefix.is_empty() { format!("{env}/") } else { format!("{}/{env}/", parsed.prefix) };
        Ok(S3Store {
            env: env.to_string(),
            shown,
            base,
            host: LockInfo::current("").host,
            config: builder.build(),
            secrets,
            address: parsed,
            io: Mutex::new(Io::default()),
            view: Mutex::new(View::empty()),
            stats: Mutex::new(S3Stats::default()),
        })
    }

    /// Request counters since this handle was opened.
    pub fn stats(&self) -> S3Stats {
        *lock(&self.stats)
    }

    /// The bucket and the key prefix of this environment (`<prefix>/<env>/`).
    pub fn location(&self) -> (&str, &str) {
        (&self.address.bucket, &self.base)
    }

    fn endpoint_shown(&self) -> String {
        match &self.address.endpoint {
            Some(e) => crate::redact::url(e),
            None => format!("AWS S3 in {}", self.address.region),
        }
    }

    fn scrub(&self, text: &str) -> String {
        let mut text = text.to_string();
        for s in &self.secrets {
            if !s.is_empty() {
                text = text.replace(s.as_str(), "***");
            }
        }
        text
    }

    fn error(&self, what: &str, detail: &str) -> Diagnostic {
        Diagnostic::new("P5001", "state store error").help(format!(
            "{what} for environment `{}` in {} (bucket `{}`, endpoint {}) failed: {}. Check that the bucket exists, that the endpoint is reachable and that AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY may read and write it.",
            self.env,
            self.shown,
            self.address.bucket,
            self.endpoint_shown(),
            self.scrub(detail)
        ))
    }

    fn fail(&self, what: &str) -> impl Fn(Failure) -> Diagnostic + '_ {
        let what = what.to_string();
        move |f| self.error(&what, &f.text)
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.base)
    }

    fn journal_prefix(&self) -> String {
        self.key("journal/")
    }

    fn journal_key(&self, seq: u64) -> String {
        format!("{}journal/{seq:020}.json", self.base)
    }

    fn seq_of(&self, key: &str) -> Option<u64> {
        let name = key.strip_prefix(&self.journal_prefix())?.strip_suffix(".json")?;
        if name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit()) {
            name.parse().ok()
        } else {
            None
        }
    }

    /// Runs one SDK future to completion from synchronous code: on the
    /// caller's multi-thread runtime if there is one, else on the store's own.
    fn run<Fut>(&self, make: impl FnOnce(Client) -> Fut) -> Result<Fut::Output, Diagnostic>
    where
        Fut: Future + Send,
        Fut::Output: Send,
    {
        lock(&self.stats).calls += 1;
        let ambient = tokio::runtime::Handle::try_current().ok();
        if let Some(handle) = ambient.as_ref().filter(|h| h.runtime_flavor() != tokio::runtime::RuntimeFlavor::CurrentThread) {
            let client = lock(&self.io).ambient_client.get_or_insert_with(|| Client::from_conf(self.config.clone())).clone();
            let fut = make(client);
            return Ok(tokio::task::block_in_place(|| handle.block_on(fut)));
        }
        let (runtime, client) = {
            let mut io = lock(&self.io);
            if io.own_runtime.is_none() {
                let rt =
                    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| self.error("starting an async runtime", &e.to_string()))?;
                io.own_runtime = Some(Arc::new(rt));
            }
            let client = io.own_client.get_or_insert_with(|| Client::from_conf(self.config.clone())).clone();
            (io.own_runtime.clone().expect("runtime set above"), client)
        };
        let fut = make(client);
        if ambient.is_some() {
            // Inside a current-thread runtime, which cannot be blocked:
            // wait on a helper thread instead.
            std::thread::scope(|s| s.spawn(|| runtime.block_on(fut)).join()).map_err(|_| self.error("waiting for the S3 server", "the request thread panicked"))
        } else {
            Ok(runtime.block_on(fut))
        }
    }

    fn get(&self, what: &str, key: String) -> Result<Option<Object>, Diagnostic> {
        let bucket = self.address.bucket.clone();
        self.run(|c| get_object(c, bucket, key))?.map_err(self.fail(what))
    }

    fn put(&self, what: &str, key: String, body: Vec<u8>, cond: Cond) -> Result<Put, Diagnostic> {
        let bucket = self.address.bucket.clone();
        self.run(|c| put_object(c, bucket, key, body, cond))?.map_err(self.fail(what))
    }

    fn list(&self, what: &str, prefix: String, start_after: Option<String>) -> Result<Vec<(String, i64)>, Diagnostic> {
        let bucket = self.address.bucket.clone();
        self.run(|c| list_keys(c, bucket, prefix, start_after))?.map_err(self.fail(what))
    }

    fn parse<'a, T: Deserialize<'a>>(&self, key: &str, body: &'a [u8]) -> Result<T, Diagnostic> {
        serde_json::from_slice(body).map_err(|e| self.error(&format!("reading {key}"), &format!("it is not a Plinth state document ({e})")))
    }

    fn check_format(&self, key: &str, format: u32) -> Result<(), Diagnostic> {
        if format > FORMAT {
            return Err(Diagnostic::new("P5003", "state written by a newer Plinth")
                .help(format!("{key} in {} has format {format}, this Plinth knows {FORMAT}; upgrade Plinth.", self.shown)));
        }
        Ok(())
    }

    /// Reads `snapshot.json` into the view (an empty state if there is none).
    fn load_snapshot(&self, view: &mut View) -> Result<(), Diagnostic> {
        let key = self.key("snapshot.json");
        *view = View::empty();
        if let Some((body, etag)) = self.get("reading the state snapshot", key.clone())? {
            let doc: SnapshotDoc = self.parse(&key, &body)?;
            self.check_format(&key, doc.format)?;
            doc.check()?;
            view.state = EnvState::from_doc(&doc);
            view.seq = doc.seq;
            view.snap_seq = doc.seq;
            view.snap_etag = etag;
            view.snap_bytes = body.len() as u64;
        }
        view.loaded = true;
        Ok(())
    }

    /// Brings the view up to the newest journal entry.
    fn sync(&self, view: &mut View) -> Result<(), Diagnostic> {
        for _ in 0..10 {
            if !view.loaded {
                self.load_snapshot(view)?;
            }
            let listed = self.list("listing the state journal", self.journal_prefix(), Some(self.journal_key(view.seq)))?;
            let entries: Vec<(u64, String, i64)> = listed.into_iter().filter_map(|(k, size)| self.seq_of(&k).map(|s| (s, k, size))).collect();
            if entries.is_empty() {
                return Ok(());
            }
            // Entries after ours are contiguous unless a compaction removed
            // some since we read: then the snapshot is newer than our view.
            let contiguous = entries.iter().enumerate().all(|(i, (s, _, _))| *s == view.seq + 1 + i as u64);
            if !contiguous {
                view.loaded = false;
                continue;
            }
            let keys: Vec<String> = entries.iter().map(|(_, k, _)| k.clone()).collect();
            let bucket = self.address.bucket.clone();
            let bodies = self.run(|c| get_many(c, bucket, keys))?.map_err(self.fail("reading the state journal"))?;
            let mut complete = true;
            for ((seq, key, size), body) in entries.iter().zip(bodies) {
                let Some(body) = body else {
                    complete = false;
                    break;
                };
                let entry: EntryDoc = self.parse(key, &body)?;
                self.check_format(key, entry.format)?;
                entry.op.check()?;
                view.state.apply(&entry.op);
                view.seq = *seq;
                view.journal_bytes += (*size).max(0) as u64;
            }
            if complete {
                return Ok(());
            }
            view.loaded = false;
        }
        Err(self.error("reading the state", "the journal kept changing while it was read"))
    }

    /// Reads the current state.
    fn read<T>(&self, f: impl FnOnce(&EnvState) -> T) -> Result<T, Diagnostic> {
        let mut view = lock(&self.view);
        self.sync(&mut view)?;
        Ok(f(&view.state))
    }

    /// Appends one journal entry computed from the newest state by `build`
    /// (None: nothing to record) and returns what `build` returned.
    fn commit<R>(&self, what: &str, build: impl Fn(&EnvState) -> Result<(Option<Op>, R), Diagnostic>) -> Result<R, Diagnostic> {
        let mut view = lock(&self.view);
        for attempt in 0..WRITE_ATTEMPTS {
            self.sync(&mut view)?;
            let (op, result) = build(&view.state)?;
            let Some(op) = op else { return Ok(result) };
            let seq = view.seq + 1;
            let entry = EntryDoc { format: FORMAT, seq, writer: uuid::Uuid::new_v4().to_string(), at: now_rfc3339(), op };
            let body = serde_json::to_vec(&entry).map_err(|e| self.error(what, &e.to_string()))?;
            let len = body.len() as u64;
            let key = self.journal_key(seq);
            let written = match self.put(what, key.clone(), body, Cond::Absent)? {
                Put::Written(_) => true,
                // Our own write whose answer was lost and then retried?
                Put::Conflict => match self.get(what, key.clone())? {
                    Some((body, _)) => serde_json::from_slice::<EntryDoc>(&body).map(|e| e.writer == entry.writer).unwrap_or(false),
                    None => false,
                },
            };
            if written {
                {
                    let mut stats = lock(&self.stats);
                    stats.journal_puts += 1;
                    stats.journal_bytes += len;
                }
                view.state.apply(&entry.op);
                view.seq = seq;
                view.journal_bytes += len;
                self.maybe_compact(&mut view);
                return Ok(result);
            }
            // Another writer took the sequence number: catch up, retry
            // after a random pause (exponential, capped at 1 s) so that two
            // writers in lockstep do not keep colliding.
            lock(&self.stats).conflicts += 1;
            let cap_ms = (10u64 << attempt.min(7)).min(1000);
            std::thread::sleep(Duration::from_millis(rand::random::<u64>() % (cap_ms + 1)));
        }
        Err(Diagnostic::new("P5001", "state store error").help(format!(
            "{what} for environment `{}` in {} (bucket `{}`, endpoint {}) lost the race for the next journal entry {WRITE_ATTEMPTS} times: other processes keep writing this environment. Runs that write state hold the environment's lock; check who else runs against it.",
            self.env,
            self.shown,
            self.address.bucket,
            self.endpoint_shown()
        )))
    }

    /// Writes a new snapshot and deletes the journal before it, when due.
    /// Failures are not errors: the journal still holds everything, and the
    /// next write tries again.
    fn maybe_compact(&self, view: &mut View) {
        let pending = view.seq - view.snap_seq;
        if pending < COMPACT_MIN_ENTRIES || (view.journal_bytes < COMPACT_RATIO * view.snap_bytes && pending < COMPACT_MAX_ENTRIES) {
            return;
        }
        let _ = self.compact(view);
    }

    /// Writes the view as the new snapshot and deletes the journal entries
    /// before its newest one. Ok(false): another writer compacted first
    /// (the view is marked to be reread).
    fn compact(&self, view: &mut View) -> Result<bool, Diagnostic> {
        let body = serde_json::to_vec(&view.state.to_doc(&self.env, view.seq)).map_err(|e| self.error("compacting the state", &e.to_string()))?;
        let len = body.len() as u64;
        let cond = match &view.snap_etag {
            Some(etag) => Cond::Etag(etag.clone()),
            None => Cond::Absent,
        };
        match self.put("compacting the state", self.key("snapshot.json"), body, cond)? {
            Put::Written(etag) => {
                {
                    let mut stats = lock(&self.stats);
                    stats.snapshot_puts += 1;
                    stats.snapshot_bytes += len;
                    stats.compactions += 1;
                }
                view.snap_seq = view.seq;
                view.snap_etag = etag;
                view.snap_bytes = len;
                view.journal_bytes = 0;
                if view.snap_etag.is_none() {
                    // Without an ETag the next compaction could not be conditional.
                    view.loaded = false;
                }
                // Everything before the newest entry goes (the newest stays:
                // see the module documentation).
                let listed = self.list("compacting the state", self.journal_prefix(), None)?;
                let old: Vec<String> = listed.into_iter().filter(|(k, _)| self.seq_of(k).is_some_and(|s| s < view.seq)).map(|(k, _)| k).collect();
                if !old.is_empty() {
                    let bucket = self.address.bucket.clone();
                    self.run(|c| delete_many(c, bucket, old))?.map_err(self.fail("compacting the state"))?;
                }
                Ok(true)
            }
            // Someone else compacted: reread their snapshot next time.
            Put::Conflict => {
                view.loaded = false;
                Ok(false)
            }
        }
    }

    /// Reads `lock.json`.
    fn read_lock(&self) -> Result<Option<(LockDoc, Option<String>)>, Diagnostic> {
        let key = self.key("lock.json");
        match self.get("reading the lock", key.clone())? {
            Some((body, etag)) => Ok(Some((self.parse(&key, &body)?, etag))),
            None => Ok(None),
        }
    }

    fn write_lock(&self, doc: &LockDoc, cond: Cond) -> Result<bool, Diagnostic> {
        let body = serde_json::to_vec(doc).map_err(|e| self.error("writing the lock", &e.to_string()))?;
        lock(&self.stats).lock_puts += 1;
        Ok(matches!(self.put("writing the lock", self.key("lock.json"), body, cond)?, Put::Written(_)))
    }

    fn lock_conflict(&self) -> Diagnostic {
        Diagnostic::new("P5002", "the environment is locked").help(format!(
            "The lock of `{}` in {} (bucket `{}`, endpoint {}) kept changing hands while Plinth tried to take it; try again.",
            self.env,
            self.shown,
            self.address.bucket,
            self.endpoint_shown()
        ))
    }
}

impl Store for S3Store {
    fn env(&self) -> &str {
        &self.env
    }

    fn snapshot(&self) -> Result<Snapshot, Diagnostic> {
        self.read(|s| s.to_snapshot(&self.env))
    }

    fn begin_run(&mut self, command: &str) -> Result<i64, Diagnostic> {
        let now = now_rfc3339();
        self.commit("starting a run", |s| {
            let serial = s.serial + 1;
            Ok((Some(Op::BeginRun { serial, started_at: now.clone(), command: command.to_string() }), serial))
        })
    }

    fn finish_run(&mut self, serial: i64, status: &str, counts: [i64; 4]) -> Result<(), Diagnostic> {
        let now = now_rfc3339();
        self.commit("finishing a run", |s| {
            let op = s.history.contains_key(&serial).then(|| Op::FinishRun { serial, finished_at: now.clone(), status: status.to_string(), counts });
            Ok((op, ()))
        })
    }

    fn write_intents(&mut self, serial: i64, intents: &mut [Intent]) -> Result<(), Diagnostic> {
        if intents.is_empty() {
            return Ok(());
        }
        let now = now_rfc3339();
        let shared: &[Intent] = intents;
        let first = self.commit("recording intents", |s| {
            let docs = shared.iter().enumerate().map(|(i, intent)| IntentDoc::new(s.next_intent + i as i64, serial, &now, intent)).collect();
            Ok((Some(Op::WriteIntents { intents: docs }), s.next_intent))
        })?;
        for (i, intent) in intents.iter_mut().enumerate() {
            intent.id = first + i as i64;
        }
        Ok(())
    }

    fn complete(&mut self, serial: i64, completions: &[Completion]) -> Result<(), Diagnostic> {
        if completions.is_empty() {
            return Ok(());
        }
        let now = now_rfc3339();
        let docs: Vec<CompletionDoc> = completions.iter().map(CompletionDoc::new).collect();
        self.commit("recording results", |_| Ok((Some(Op::Complete { serial, completed_at: now.clone(), completions: docs.clone() }), ())))
    }

    fn unfinished_intents(&self) -> Result<Vec<Intent>, Diagnostic> {
        self.read(|s| s.intents.values().map(IntentDoc::to_intent).collect())
    }

    fn set_outputs(&mut self, outputs: &[(String, serde_json::Value, bool)]) -> Result<(), Diagnostic> {
        // Ordered by name and unique, as the SQLite table is.
        let mut by_name = std::collections::BTreeMap::new();
        for (name, value, sensitive) in outputs {
            by_name.insert(name.clone(), OutputDoc { name: name.clone(), value: value.clone(), sensitive: *sensitive });
        }
        let docs: Vec<OutputDoc> = by_name.into_values().collect();
        self.commit("recording outputs", |s| {
            let op = (s.output_docs() != docs).then(|| Op::SetOutputs { outputs: docs.clone() });
            Ok((op, ()))
        })
    }

    fn history(&self) -> Result<Vec<HistoryEntry>, Diagnostic> {
        self.read(|s| s.history.values().cloned().collect())
    }

    fn remove_instance(&mut self, address: &str) -> Result<usize, Diagnostic> {
        self.commit("removing an instance", |s| {
            let n = s.keys_of(address).len();
            Ok(((n > 0).then(|| Op::RemoveInstance { address: address.to_string() }), n))
        })
    }

    fn move_instance(&mut self, from: &str, to: &str, resource: &str) -> Result<usize, Diagnostic> {
        self.commit("moving an instance", |s| {
            if s.get(from, "").is_none() {
                return Ok((None, 0));
            }
            if from != to && s.get(to, "").is_some() {
                return Err(self.error("moving an instance", &format!("`{to}` is already recorded")));
            }
            Ok((Some(Op::MoveInstance { from: from.to_string(), to: to.to_string(), resource: resource.to_string() }), 1))
        })
    }

    fn record_drift(&mut self, report: &DriftRecord) -> Result<(), Diagnostic> {
        let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        let key = self.key(&format!("drift/{millis:015}-{}.json", &uuid::Uuid::new_v4().simple().to_string()[..8]));
        let body = serde_json::to_vec(report).map_err(|e| self.error("recording a drift report", &e.to_string()))?;
        match self.put("recording a drift report", key, body, Cond::Absent)? {
            Put::Written(_) => Ok(()),
            Put::Conflict => Err(self.error("recording a drift report", "a report with the same name already exists")),
        }
    }

    fn drift_history(&self) -> Result<Vec<DriftRecord>, Diagnostic> {
        let keys: Vec<String> =
            self.list("listing drift reports", self.key("drift/"), None)?.into_iter().map(|(k, _)| k).filter(|k| k.ends_with(".json")).collect();
        let bucket = self.address.bucket.clone();
        let bodies = self.run(|c| get_many(c, bucket, keys.clone()))?.map_err(self.fail("reading drift reports"))?;
        let mut reports = Vec::new();
        for (key, body) in keys.iter().zip(bodies) {
            if let Some(body) = body {
                reports.push(self.parse::<DriftRecord>(key, &body)?);
            }
        }
        Ok(reports)
    }

    /// Compacts now: the journal entries that held removed or re-sealed
    /// values (and finished intents' inputs) are deleted; the new snapshot
    /// holds only the current state. Versions kept by a versioned bucket are
    /// the bucket's.
    fn purge(&mut self, _full: bool) -> Result<(), Diagnostic> {
        let mut view = lock(&self.view);
        for _ in 0..WRITE_ATTEMPTS {
            self.sync(&mut view)?;
            if self.compact(&mut view)? {
                return Ok(());
            }
        }
        Err(self.error("compacting the state", "other writers kept compacting it at the same time"))
    }

    fn lock(&mut self, info: &LockInfo, lease_secs: i64) -> Result<Option<LockInfo>, Diagnostic> {
        for _ in 0..10 {
            let now = now_unix();
            let mine = LockDoc {
                holder: info.holder.clone(),
                host: info.host.clone(),
                pid: info.pid,
                command: info.command.clone(),
                acquired_at: info.acquired_at.clone(),
                expires_at: now + lease_secs,
            };
            let taken = match self.read_lock()? {
                None => self.write_lock(&mine, Cond::Absent)?,
                Some((held, etag)) => {
                    let ours = held.pid == info.pid && held.host == info.host;
                    if !ours && !held.info().is_stale(now) {
                        return Ok(Some(held.info()));
                    }
                    match etag {
                        Some(etag) => self.write_lock(&mine, Cond::Etag(etag))?,
                        None => return Err(self.error("taking the lock", "the server returned no ETag for lock.json, so it cannot be replaced safely")),
                    }
                }
            };
            if taken {
                return Ok(None);
            }
            // Another process wrote the lock between our read and our write.
        }
        Err(self.lock_conflict())
    }

    fn renew_lock(&mut self, pid: i64, lease_secs: i64) -> Result<(), Diagnostic> {
        for _ in 0..5 {
            let Some((mut held, etag)) = self.read_lock()? else { return Ok(()) };
            if held.pid != pid || held.host != self.host {
                return Ok(());
            }
            let Some(etag) = etag else { return Ok(()) };
            held.expires_at = now_unix() + lease_secs;
            if self.write_lock(&held, Cond::Etag(etag))? {
                return Ok(());
            }
        }
        Err(self.lock_conflict())
    }

    fn unlock(&mut self, pid: Option<i64>) -> Result<bool, Diagnostic> {
        let key = self.key("lock.json");
        for _ in 0..5 {
            let Some((held, etag)) = self.read_lock()? else { return Ok(false) };
            let condition = match pid {
                Some(pid) if held.pid != pid || held.host != self.host => return Ok(false),
                // Only if it is still the lock we read as ours.
                Some(_) => etag,
                None => None,
            };
            let forced = condition.is_none();
            let (bucket, key) = (self.address.bucket.clone(), key.clone());
            if self.run(|c| delete_object(c, bucket, key, condition))?.map_err(self.fail("releasing the lock"))? || forced {
                return Ok(true);
            }
        }
        Err(self.lock_conflict())
    }
}

/// The address an `s3` backend block forms (the syntax [`parse_address`]
/// reads back): `s3://bucket[/prefix][?endpoint=…&region=…&path_style=…]`,
/// settings checked with [`check_bucket`], [`check_prefix`] and
/// [`check_endpoint`] first.
pub fn backend_address(bucket: &str, prefix: &str, endpoint: Option<&str>, region: Option<&str>, path_style: Option<bool>) -> String {
    let mut address = if prefix.is_empty() { format!("s3://{bucket}") } else { format!("s3://{bucket}/{prefix}") };
    let mut query = Vec::new();
    if let Some(endpoint) = endpoint {
        query.push(format!("endpoint={}", crate::redact::percent_encode(endpoint)));
    }
    if let Some(region) = region {
        query.push(format!("region={}", crate::redact::percent_encode(region)));
    }
    if let Some(b) = path_style {
        query.push(format!("path_style={b}"));
    }
    if !query.is_empty() {
        address.push('?');
        address.push_str(&query.join("&"));
    }
    address
}

pub fn check_bucket(bucket: &str) -> Result<(), String> {
    if bucket.is_empty() {
        return Err("`bucket` is empty".into());
    }
    if bucket.contains(['/', '?', '#']) || bucket.chars().any(char::is_whitespace) {
        return Err(format!("`bucket` must be a bucket name, not `{bucket}` (no `/`, `?`, `#` or spaces; put key paths in `prefix`)"));
    }
    Ok(())
}

pub fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.contains('?') {
        return Err(format!("`prefix` cannot contain `?` (`{prefix}`)"));
    }
    Ok(())
}

pub fn check_endpoint(endpoint: &str) -> Result<(), String> {
    if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
        Ok(())
    } else {
        Err(format!("`endpoint` must be an http:// or https:// URL, not `{}`", crate::redact::url(endpoint)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backend_blocks_address_reads_back_as_its_settings() {
        let a = backend_address("b", "envs/prod", Some("http://127.0.0.1:9000/x?y=1&z"), Some("eu-de"), Some(true));
        let parsed = parse_address(&a).expect("the formed address parses");
        assert_eq!(
            (parsed.bucket.as_str(), parsed.prefix.as_str(), parsed.endpoint.as_deref(), parsed.region.as_str(), parsed.path_style),
            ("b", "envs/prod", Some("http://127.0.0.1:9000/x?y=1&z"), "eu-de", true)
        );
        assert_eq!(backend_address("b", "", None, None, None), "s3://b");
        assert!(check_bucket("a/b").is_err() && check_prefix("p?q").is_err() && check_endpoint("ftp://x").is_err());
    }

    fn open(address: &str) -> S3Store {
        S3Store::open_with(address, "default", Some("AKIDEXAMPLE1234".into()), Some("wJalrXUtnFEMIsecret".into()), None).unwrap()
    }

    #[test]
    fn missing_credentials_are_a_p5001_before_any_request() {
        let d = S3Store::open_with("s3://b", "default", None, Some("x".into()), None).err().unwrap();
        assert_eq!(d.code, "P5001");
        assert!(d.help.contains("AWS_ACCESS_KEY_ID"), "{}", d.help);
    }

    #[test]
    fn addresses_parse_with_defaults_and_percent_encoding() {
        let a = parse_address("s3://b/p/q?endpoint=http%3A%2F%2F127.0.0.1%3A9000/&region=eu-west-1&path_style=true").unwrap();
        assert_eq!(
            a,
            Address { bucket: "b".into(), prefix: "p/q".into(), endpoint: Some("http://127.0.0.1:9000".into()), region: "eu-west-1".into(), path_style: true }
        );
        let a = parse_address("s3://bucket?region=us-west-2").unwrap();
        assert_eq!((a.prefix.as_str(), a.endpoint, a.path_style), ("", None, false));
        let a = parse_address("s3://bucket/state/").unwrap();
        assert_eq!(a.prefix, "state");
    }

    #[test]
    fn bad_addresses_are_p5001_and_say_why() {
        for (address, why) in [
            ("s3:///prefix", "no bucket"),
            ("s3://b?endpoint=ftp://x", "http"),
            ("s3://b?path_style=maybe", "path_style"),
            ("s3://b?bucket=x", "`bucket` is not a known parameter"),
        ] {
            let d = parse_address(address).unwrap_err();
            assert_eq!(d.code, "P5001");
            assert!(d.help.contains(why), "{address}: {}", d.help);
        }
    }

    #[test]
    fn errors_name_bucket_and_endpoint_but_never_credentials() {
        let store = open("s3://my-bucket/pre?endpoint=http://127.0.0.1:1&path_style=true");
        let d = store.error("reading", "denied for AKIDEXAMPLE1234 with wJalrXUtnFEMIsecret");
        assert_eq!(d.code, "P5001");
        assert!(d.help.contains("my-bucket") && d.help.contains("http://127.0.0.1:1"), "{}", d.help);
        assert!(!d.help.contains("AKIDEXAMPLE1234") && !d.help.contains("wJalrXUtnFEMIsecret"), "{}", d.help);
        assert_eq!(store.journal_key(7), "pre/default/journal/00000000000000000007.json");
        assert_eq!(store.seq_of("pre/default/journal/00000000000000000007.json"), Some(7));
        assert_eq!(store.seq_of("pre/default/journal/x.json"), None);
    }

    #[test]
    fn an_unreachable_endpoint_is_a_p5001_naming_it() {
        // Port 1 on loopback: connection refused at once.
        let store = open("s3://my-bucket?endpoint=http://127.0.0.1:1&path_style=true");
        let d = store.snapshot().unwrap_err();
        assert_eq!(d.code, "P5001");
        assert!(d.help.contains("bucket `my-bucket`") && d.help.contains("endpoint http://127.0.0.1:1"), "{}", d.help);
    }
}
