//! Encryption at rest, for any [`Store`]: a wrapper that seals every stored
//! value (instance inputs and attributes, outputs, intent inputs) with
//! XChaCha20-Poly1305 before it reaches the backend, and opens it on the way
//! back. Addresses, types and dependency lists stay readable (they are not
//! secrets and `state list` needs no key); values do not.
//!
//! A sealed value is a one-key object `{"$plinth_sealed": "v2.<key id>.<base64>"}`
//! where the base64 holds a random 24-byte nonce and the ciphertext, and the
//! associated data binds it to its environment, address and field, so a
//! sealed value moved elsewhere does not open, and (`v2`) to the names of
//! the record's sensitive attributes (an output's `sensitive` flag), which
//! are stored beside it in clear: clearing a flag makes the value fail to
//! open (P5006) instead of printing it. `v1` values (sealed before the flags
//! were bound) still open; `plinth state rekey` rewrites them as `v2`. The
//! version is part of what is authenticated: a `v2` value relabelled `v1`
//! does not open. The key id (8 hex digits of
//! SHA-256 of the key) picks the key among the current one and the previous
//! ones, which is how keys rotate: set the new key, keep the old one in
//! `PLINTH_STATE_KEY_PREVIOUS`, run `plinth state rekey`.

use super::model::*;
use super::{Completion, Intent, LockInfo, Store};
use crate::diagnostic::Diagnostic;
use crate::value::{Map, Value};
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

const SEALED: &str = "$plinth_sealed";

/// What a sealed value is bound to: its place (`base`) and, from `v2` on,
/// the sensitive flags stored beside it.
struct Aad {
    base: String,
    flags: String,
}

impl Aad {
    /// `flags`: the names of the sensitive attributes (order and repeats do not matter).
    fn new(base: String, flags: &[String]) -> Aad {
        let mut names: Vec<&str> = flags.iter().map(String::as_str).collect();
        names.sort_unstable();
        names.dedup();
        Aad { base, flags: serde_json::to_string(&names).unwrap_or_default() }
    }

    fn for_version(&self, version: &str) -> String {
        match version {
            "v1" => self.base.clone(),
            _ => format!("{}\u{1f}sensitive={}", self.base, self.flags),
        }
    }
}

/// A 32-byte key and its id.
#[derive(Clone)]
pub struct Key {
    id: String,
    cipher: XChaCha20Poly1305,
}

impl Key {
    /// A key is 32 random bytes, given base64-encoded (`openssl rand -base64 32`).
    pub fn parse(text: &str, origin: &str) -> Result<Key, Diagnostic> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(text.trim()).ok().filter(|b| b.len() == 32).ok_or_else(|| {
            Diagnostic::new("P5009", "invalid state key").help(format!(
                "{origin} must hold 32 random bytes in base64 (44 characters), e.g. from `openssl rand -base64 32`. The value itself is not shown."
            ))
        })?;
        let id = hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(&bytes)[..4]);
        let cipher = XChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| Diagnostic::new("P5009", "invalid state key").help("The key must be 32 bytes."))?;
        Ok(Key { id, cipher })
    }
}

/// The current key (used to seal; none: values are written in clear) and
/// older ones (still accepted to open).
#[derive(Clone)]
pub struct Keys {
    pub current: Option<Key>,
    pub previous: Vec<Key>,
}

impl Keys {
    /// From `PLINTH_STATE_KEY` (or the file named by `PLINTH_STATE_KEY_FILE`)
    /// and `PLINTH_STATE_KEY_PREVIOUS` (comma-separated); None without a key.
    pub fn from_env() -> Result<Option<Keys>, Diagnostic> {
        let current = match (std::env::var("PLINTH_STATE_KEY"), std::env::var("PLINTH_STATE_KEY_FILE")) {
            (Ok(k), _) if !k.trim().is_empty() => Some(Key::parse(&k, "PLINTH_STATE_KEY")?),
            (_, Ok(path)) if !path.trim().is_empty() => {
                let text = std::fs::read_to_string(path.trim()).map_err(|e| {
                    Diagnostic::new("P5009", "cannot read the state key file").help(format!("PLINTH_STATE_KEY_FILE names {path}, which cannot be read: {e}."))
                })?;
                Some(Key::parse(&text, "the file named by PLINTH_STATE_KEY_FILE")?)
            }
            _ => None,
        };
        let previous = std::env::var("PLINTH_STATE_KEY_PREVIOUS")
            .unwrap_or_default()
            .split(',')
            .filter(|k| !k.trim().is_empty())
            .map(|k| Key::parse(k, "PLINTH_STATE_KEY_PREVIOUS"))
            .collect::<Result<Vec<_>, _>>()?;
        if current.is_none() && previous.is_empty() {
            return Ok(None);
        }
        // Only previous keys: open what is sealed, write in clear (`state
        // rekey` with no current key decrypts a state).
        Ok(Some(Keys { current, previous }))
    }

    fn sealing(&self) -> bool {
        self.current.is_some()
    }

    fn seal(&self, plain: &Map, aad: &Aad) -> Map {
        let Some(current) = &self.current else { return plain.clone() };
        let json = Value::Map(plain.clone()).to_json().to_string();
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        // Encrypting an in-memory buffer cannot fail for this cipher; if it
        // ever did, an empty ciphertext is stored (it fails to open, P5006),
        // never the value in clear.
        let bound = aad.for_version("v2");
        let sealed = current.cipher.encrypt(XNonce::from_slice(&nonce), Payload { msg: json.as_bytes(), aad: bound.as_bytes() }).unwrap_or_default();
        let mut blob = nonce.to_vec();
        blob.extend(sealed);
        let mut out = Map::default();
        out.insert(SEALED.into(), Value::String(format!("v2.{}.{}", current.id, base64::engine::general_purpose::STANDARD.encode(blob))));
        out
    }

    fn open(&self, stored: &Map, aad: &Aad) -> Result<Map, Diagnostic> {
        let Some(Value::String(text)) = stored.get(SEALED) else { return Ok(stored.clone()) };
        let mut parts = text.splitn(3, '.');
        let (Some(version @ ("v1" | "v2")), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(corrupt(&aad.base));
        };
        let key = self.current.iter().chain(self.previous.iter()).find(|k| k.id == id).ok_or_else(|| {
            Diagnostic::new("P5006", "the state was encrypted with another key").help(format!(
                "Values in this state were sealed with key {id}, and neither PLINTH_STATE_KEY ({}) nor PLINTH_STATE_KEY_PREVIOUS holds it. Set the key the state was written with (after a rotation: the old one in PLINTH_STATE_KEY_PREVIOUS).",
                self.current.as_ref().map_or("not set", |k| k.id.as_str())
            ))
        })?;
        let blob = base64::engine::general_purpose::STANDARD.decode(body).map_err(|_| corrupt(&aad.base))?;
        if blob.len() < 24 {
            return Err(corrupt(&aad.base));
        }
        let bound = aad.for_version(version);
        let plain = key.cipher.decrypt(XNonce::from_slice(&blob[..24]), Payload { msg: &blob[24..], aad: bound.as_bytes() }).map_err(|_| corrupt(&aad.base))?;
        match serde_json::from_slice::<serde_json::Value>(&plain).map(|j| Value::from_json(&j)) {
            Ok(Value::Map(m)) => Ok(m),
            _ => Err(corrupt(&aad.base)),
        }
    }
}

fn corrupt(aad: &str) -> Diagnostic {
    Diagnostic::new("P5006", "a sealed state value does not open")
        .help(format!("The value for {aad} fails authentication: it, or the list of its sensitive attributes stored beside it, was altered or moved, or it was sealed with a different key of the same id. Nothing is shown from it; restore the state from its history or backup."))
}

fn locked_without_key() -> Diagnostic {
    Diagnostic::new("P5006", "the state is encrypted")
        .help("This state holds sealed values; set PLINTH_STATE_KEY (or PLINTH_STATE_KEY_FILE) to the key it was written with.")
}

/// True when a stored map is sealed.
fn is_sealed(m: &Map) -> bool {
    m.len() == 1 && m.contains_key(SEALED)
}

/// A store that never sees a value in clear when keys are set, and refuses
/// (P5006) to hand out sealed values when they are not.
pub struct Encrypted {
    inner: Box<dyn Store>,
    keys: Option<Keys>,
}

impl Encrypted {
    pub fn new(inner: Box<dyn Store>, keys: Option<Keys>) -> Encrypted {
        Encrypted { inner, keys }
    }

    /// Associated data: environment, address and field. Not the deposed
    /// token: deposing keeps the same object under a new key.
    fn aad(&self, address: &str, _deposed: &str, field: &str, sensitive: &[String]) -> Aad {
        Aad::new(format!("plinth:v1:{}:{address}:{field}", self.inner.env()), sensitive)
    }

    /// An output's value is bound to its `sensitive` flag.
    fn output_aad(&self, name: &str, sensitive: bool) -> Aad {
        let flags = if sensitive { vec!["value".to_string()] } else { Vec::new() };
        self.aad(&format!("output.{name}"), "", "value", &flags)
    }

    fn seal_map(&self, m: &Map, aad: Aad) -> Map {
        match &self.keys {
            Some(k) => k.seal(m, &aad),
            None => m.clone(),
        }
    }

    fn open_map(&self, m: &Map, aad: Aad) -> Result<Map, Diagnostic> {
        match &self.keys {
            Some(k) => k.open(m, &aad),
            None if is_sealed(m) => Err(locked_without_key()),
            None => Ok(m.clone()),
        }
    }

    /// State surgery (`state mv`, `state rm`) on a state that holds sealed
    /// values needs the current key: a moved row must be sealed again for its
    /// new address (with only a previous key, or none, it could not be, and
    /// its secrets would never open again). Refused (`P5020`) before anything
    /// is written.
    fn surgery_needs_current_key(&self, verb: &str) -> Result<(), Diagnostic> {
        if self.keys.as_ref().is_some_and(Keys::sealing) {
            return Ok(());
        }
        let snap = self.inner.snapshot()?;
        if !snap.instances.values().any(|r| is_sealed(&r.inputs) || is_sealed(&r.attrs)) {
            return Ok(());
        }
        let why = if self.keys.is_some() { "only PLINTH_STATE_KEY_PREVIOUS is set" } else { "PLINTH_STATE_KEY is not set" };
        Err(Diagnostic::new("P5020", "state surgery needs the current state key").help(format!(
            "This state holds sealed values and {why}. `plinth {verb}` re-seals the rows it touches with the current key: set PLINTH_STATE_KEY (or PLINTH_STATE_KEY_FILE) to it, keeping older keys in PLINTH_STATE_KEY_PREVIOUS. Nothing was changed."
        )))
    }

    fn seal_record(&self, r: &InstanceRecord) -> InstanceRecord {
        InstanceRecord {
            inputs: self.seal_map(&r.inputs, self.aad(&r.address, &r.deposed, "inputs", &r.sensitive)),
            attrs: self.seal_map(&r.attrs, self.aad(&r.address, &r.deposed, "attrs", &r.sensitive)),
            ..r.clone()
        }
    }
}

fn output_map(value: &serde_json::Value) -> Map {
    let mut m = Map::default();
    m.insert("value".into(), Value::from_json(value));
    m
}

impl Store for Encrypted {
    fn env(&self) -> &str {
        self.inner.env()
    }
    fn snapshot(&self) -> Result<Snapshot, Diagnostic> {
        let mut snap = self.inner.snapshot()?;
        for rec in snap.instances.values_mut() {
            // Only sealed values are touched: a state in clear is passed on as read.
            if is_sealed(&rec.inputs) {
                rec.inputs = self.open_map(&rec.inputs, self.aad(&rec.address, &rec.deposed, "inputs", &rec.sensitive))?;
            }
            if is_sealed(&rec.attrs) {
                rec.attrs = self.open_map(&rec.attrs, self.aad(&rec.address, &rec.deposed, "attrs", &rec.sensitive))?;
            }
        }
        for (name, out) in snap.outputs.iter_mut() {
            if let serde_json::Value::Object(_) = &out.value {
                let stored = match Value::from_json(&out.value) {
                    Value::Map(m) => m,
                    _ => continue,
                };
                if is_sealed(&stored) {
                    let opened = self.open_map(&stored, self.output_aad(name, out.sensitive))?;
                    out.value = opened.get("value").map(Value::to_json).unwrap_or(serde_json::Value::Null);
                }
            }
        }
        Ok(snap)
    }
    fn addresses(&self) -> Result<Vec<(String, String)>, Diagnostic> {
        self.inner.addresses()
    }
    fn begin_run(&mut self, command: &str) -> Result<i64, Diagnostic> {
        self.inner.begin_run(command)
    }
    fn finish_run(&mut self, serial: i64, status: &str, counts: [i64; 4]) -> Result<(), Diagnostic> {
        self.inner.finish_run(serial, status, counts)
    }
    fn write_intents(&mut self, serial: i64, intents: &mut [Intent]) -> Result<(), Diagnostic> {
        let mut sealed: Vec<Intent> = intents
            .iter()
            .map(|i| Intent { inputs: self.seal_map(&i.inputs, self.aad(&i.address, &i.deposed, "intent", &i.sensitive)), ..i.clone() })
            .collect();
        self.inner.write_intents(serial, &mut sealed)?;
        for (i, s) in intents.iter_mut().zip(sealed) {
            i.id = s.id;
        }
        Ok(())
    }
    fn complete(&mut self, serial: i64, completions: &[Completion]) -> Result<(), Diagnostic> {
        let sealed: Vec<Completion> = completions
            .iter()
            .map(|c| match c {
                Completion::Upsert { intent, record } => Completion::Upsert { intent: *intent, record: self.seal_record(record) },
                other => other.clone(),
            })
            .collect();
        self.inner.complete(serial, &sealed)
    }
    fn unfinished_intents(&self) -> Result<Vec<Intent>, Diagnostic> {
        self.inner
            .unfinished_intents()?
            .into_iter()
            .map(|i| Ok(Intent { inputs: self.open_map(&i.inputs, self.aad(&i.address, &i.deposed, "intent", &i.sensitive))?, ..i }))
            .collect()
    }
    fn set_outputs(&mut self, outputs: &[(String, serde_json::Value, bool)]) -> Result<(), Diagnostic> {
        let sealed: Vec<(String, serde_json::Value, bool)> = outputs
            .iter()
            .map(|(name, value, sensitive)| match &self.keys {
                Some(k) if k.sealing() => {
                    (name.clone(), Value::Map(self.seal_map(&output_map(value), self.output_aad(name, *sensitive))).to_json(), *sensitive)
                }
                _ => (name.clone(), value.clone(), *sensitive),
            })
            .collect();
        self.inner.set_outputs(&sealed)
    }
    fn history(&self) -> Result<Vec<HistoryEntry>, Diagnostic> {
        self.inner.history()
    }
    fn remove_instance(&mut self, address: &str) -> Result<usize, Diagnostic> {
        self.surgery_needs_current_key("state rm")?;
        self.inner.remove_instance(address)
    }
    fn move_instance(&mut self, from: &str, to: &str, resource: &str) -> Result<usize, Diagnostic> {
        self.surgery_needs_current_key("state mv")?;
        if !self.keys.as_ref().is_some_and(Keys::sealing) {
            // Nothing is sealed (checked above): the backend moves the row.
            return self.inner.move_instance(from, to, resource);
        }
        // The sealed values are bound to their address: open them, and move
        // the row and seal it again for its new address in one transaction,
        // so that a kill leaves it, readable, at one address or the other.
        let snap = self.snapshot()?;
        let Some(rec) = snap.get(from) else { return Ok(0) };
        if from != to && snap.get(to).is_some() {
            return Err(Diagnostic::new("P5005", "destination already recorded")
                .help(format!("`{to}` is already in the state; remove it first with `plinth state rm`.")));
        }
        let rec = InstanceRecord { address: to.to_string(), resource: resource.to_string(), ..rec.clone() };
        let remove = Completion::Remove { intent: None, address: from.to_string(), deposed: String::new() };
        self.inner.complete(snap.serial.max(1), &[remove, Completion::Upsert { intent: None, record: self.seal_record(&rec) }])?;
        Ok(1)
    }
    fn purge(&mut self, full: bool) -> Result<(), Diagnostic> {
        self.inner.purge(full)
    }
    fn lock(&mut self, info: &LockInfo, lease_secs: i64) -> Result<Option<LockInfo>, Diagnostic> {
        self.inner.lock(info, lease_secs)
    }
    fn renew_lock(&mut self, pid: i64, lease_secs: i64) -> Result<(), Diagnostic> {
        self.inner.renew_lock(pid, lease_secs)
    }
    fn unlock(&mut self, pid: Option<i64>) -> Result<bool, Diagnostic> {
        self.inner.unlock(pid)
    }
    fn record_drift(&mut self, report: &DriftRecord) -> Result<(), Diagnostic> {
        if !self.keys.as_ref().is_some_and(Keys::sealing) {
            return self.inner.record_drift(report);
        }
        let sealed = DriftRecord {
            report: Value::Map(self.seal_map(&output_map(&report.report), self.aad(&format!("drift.{}", report.at), "", "report", &[]))).to_json(),
            ..report.clone()
        };
        self.inner.record_drift(&sealed)
    }
    fn drift_history(&self) -> Result<Vec<DriftRecord>, Diagnostic> {
        self.inner
            .drift_history()?
            .into_iter()
            .map(|r| {
                let stored = match Value::from_json(&r.report) {
                    Value::Map(m) if is_sealed(&m) => m,
                    _ => return Ok(r),
                };
                let opened = self.open_map(&stored, self.aad(&format!("drift.{}", r.at), "", "report", &[]))?;
                Ok(DriftRecord { report: opened.get("value").map(Value::to_json).unwrap_or(serde_json::Value::Null), ..r })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Key {
        Key::parse(&base64::engine::general_purpose::STANDARD.encode([byte; 32]), "test").unwrap()
    }

    #[test]
    fn sealed_values_round_trip_and_bind_to_their_place() {
        let keys = Keys { current: Some(key(1)), previous: vec![] };
        let at = |place: &str| Aad::new(place.to_string(), &["result".to_string()]);
        let mut m = Map::default();
        m.insert("result".into(), Value::str("hunter2-secret"));
        let sealed = keys.seal(&m, &at("a"));
        assert!(!Value::Map(sealed.clone()).to_json().to_string().contains("hunter2"));
        assert_eq!(keys.open(&sealed, &at("a")).unwrap(), m);
        assert_eq!(keys.open(&sealed, &at("b")).unwrap_err().code, "P5006", "moved values do not open");
        let other = Keys { current: Some(key(2)), previous: vec![] };
        assert_eq!(other.open(&sealed, &at("a")).unwrap_err().code, "P5006");
        let rotated = Keys { current: Some(key(2)), previous: vec![key(1)] };
        assert_eq!(rotated.open(&sealed, &at("a")).unwrap(), m, "the previous key still opens");
    }

    #[test]
    fn sensitive_flags_are_bound_and_cannot_be_downgraded() {
        let keys = Keys { current: Some(key(1)), previous: vec![] };
        let flags = |names: &[&str]| Aad::new("p".to_string(), &names.iter().map(|n| n.to_string()).collect::<Vec<_>>());
        let mut m = Map::default();
        m.insert("result".into(), Value::str("hunter2-secret"));
        let sealed = keys.seal(&m, &flags(&["result", "x"]));
        assert_eq!(keys.open(&sealed, &flags(&["x", "result", "x"])).unwrap(), m, "order and repeats do not matter");
        let err = keys.open(&sealed, &flags(&[])).unwrap_err();
        assert_eq!(err.code, "P5006", "cleared flags: the value does not open");
        assert!(!err.help.contains("hunter2"));
        assert_eq!(keys.open(&sealed, &flags(&["x"])).unwrap_err().code, "P5006");
        // Relabelled as a v1 value (bound to its place only): still refused.
        let Some(Value::String(text)) = sealed.get(SEALED) else { panic!("sealed") };
        let mut downgraded = Map::default();
        downgraded.insert(SEALED.into(), Value::String(text.replacen("v2.", "v1.", 1)));
        assert_eq!(keys.open(&downgraded, &flags(&[])).unwrap_err().code, "P5006");
        // A genuine v1 value (sealed before flags were bound) still opens.
        let current = keys.current.as_ref().unwrap();
        let nonce = [7u8; 24];
        let body = current.cipher.encrypt(XNonce::from_slice(&nonce), Payload { msg: br#"{"result":"old"}"#, aad: b"p" }).unwrap();
        let mut v1 = Map::default();
        v1.insert(
            SEALED.into(),
            Value::String(format!("v1.{}.{}", current.id, base64::engine::general_purpose::STANDARD.encode([nonce.to_vec(), body].concat()))),
        );
        assert_eq!(keys.open(&v1, &flags(&[])).unwrap()["result"], Value::str("old"));
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert_eq!(Key::parse("short", "PLINTH_STATE_KEY").err().unwrap().code, "P5009");
        assert!(Key::parse(&base64::engine::general_purpose::STANDARD.encode([7u8; 32]), "k").is_ok());
    }

    #[test]
    fn the_encrypted_sqlite_store_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        crate::conformance::run(&mut |env| {
            let inner = Box::new(crate::sqlite::SqliteStore::open(&path, env).unwrap());
            Box::new(Encrypted::new(inner, Some(Keys { current: Some(key(9)), previous: vec![] })))
        });
    }
}
