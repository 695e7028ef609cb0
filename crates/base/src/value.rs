//! Runtime values of the language.
//!
//! Values are JSON-like. Two extra states exist only during planning and
//! evaluation and are never written to state: [`Value::Unknown`] ("known after
//! apply") and sensitivity marks ([`Value::Sensitive`]), which wrap a value so
//! that every output redacts it. Maps keep insertion order for display but
//! compare by content.

use indexmap::IndexMap;
use std::fmt;

/// Insertion-ordered, with the Fx hasher: keys are the project's own names,
/// so resistance to hash flooding buys nothing and SipHash cost ~8% of a plan.
pub type Map = IndexMap<String, Value, rustc_hash::FxBuildHasher>;

/// An insertion-ordered map with the Fx hasher, for the engine's own tables.
pub type FxIndexMap<K, V> = IndexMap<K, V, rustc_hash::FxBuildHasher>;

#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    List(Vec<Value>),
    Map(Map),
    /// A value that a provider computes during apply.
    Unknown,
    /// A value that must never be displayed. Marks are deep-stripped before a
    /// function or operator runs and re-applied to its result.
    Sensitive(Box<Value>),
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        use Value::*;
        match (self, other) {
            (Null, Null) => true,
            (Bool(a), Bool(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (Float(a), Float(b)) => a == b,
            (Int(a), Float(b)) | (Float(b), Int(a)) => (*a as f64) == *b,
            (String(a), String(b)) => a == b,
            (List(a), List(b)) => a == b,
            (Map(a), Map(b)) => a.len() == b.len() && a.iter().all(|(k, v)| b.get(k) == Some(v)),
            (Unknown, Unknown) => true,
            (Sensitive(a), b) => a.as_ref() == b,
            (a, Sensitive(b)) => a == b.as_ref(),
            _ => false,
        }
    }
}

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::Float(_) => "number",
            Value::String(_) => "string",
            Value::List(_) => "list",
            Value::Map(_) => "object",
            Value::Unknown => "unknown",
            Value::Sensitive(v) => v.type_name(),
        }
    }

    /// True when the value, or anything inside it, is unknown.
    pub fn is_unknown_deep(&self) -> bool {
        match self {
            Value::Unknown => true,
            Value::List(items) => items.iter().any(Value::is_unknown_deep),
            Value::Map(map) => map.values().any(Value::is_unknown_deep),
            Value::Sensitive(v) => v.is_unknown_deep(),
            _ => false,
        }
    }

    /// True when the value, or anything inside it, carries a sensitive mark.
    pub fn is_sensitive_deep(&self) -> bool {
        match self {
            Value::Sensitive(_) => true,
            Value::List(items) => items.iter().any(Value::is_sensitive_deep),
            Value::Map(map) => map.values().any(Value::is_sensitive_deep),
            _ => false,
        }
    }

    /// Removes every sensitive mark; returns the plain value and whether any
    /// mark was found.
    pub fn unmark(self) -> (Value, bool) {
        match self {
            Value::Sensitive(inner) => (inner.unmark().0, true),
            Value::List(items) => {
                let mut any = false;
                let items = items
                    .into_iter()
                    .map(|v| {
                        let (v, s) = v.unmark();
                        any |= s;
                        v
                    })
                    .collect();
                (Value::List(items), any)
            }
            Value::Map(map) => {
                let mut any = false;
                let map = map
                    .into_iter()
                    .map(|(k, v)| {
                        let (v, s) = v.unmark();
                        any |= s;
                        (k, v)
                    })
                    .collect();
                (Value::Map(map), any)
            }
            other => (other, false),
        }
    }

    /// The texts of every sensitive part of the value (strings, and numbers
    /// and bools as they print), for redacting messages built from it:
    /// see [`crate::diagnostic::Diagnostic::redact`].
    pub fn sensitive_texts(&self, out: &mut Vec<String>) {
        self.collect_texts(false, out);
    }

    fn collect_texts(&self, inside: bool, out: &mut Vec<String>) {
        match self {
            Value::Sensitive(v) => v.collect_texts(true, out),
            Value::List(items) => items.iter().for_each(|v| v.collect_texts(inside, out)),
            Value::Map(map) => {
                for (k, v) in map {
                    if inside {
                        out.push(k.clone());
                    }
                    v.collect_texts(inside, out);
                }
            }
            Value::String(s) if inside => out.push(s.clone()),
            Value::Int(i) if inside => out.push(i.to_string()),
            Value::Float(f) if inside => out.push(f.to_string()),
            _ => {}
        }
    }

    /// True when a string in the value (or a key) contains one of `texts`:
    /// an attribute built from a secret (a path, a URL) is as secret.
    pub fn contains_any_text(&self, texts: &[String]) -> bool {
        match self.peel() {
            Value::String(s) => texts.iter().any(|t| s.contains(t.as_str())),
            Value::List(items) => items.iter().any(|v| v.contains_any_text(texts)),
            Value::Map(map) => map.iter().any(|(k, v)| texts.iter().any(|t| k.contains(t.as_str())) || v.contains_any_text(texts)),
            _ => false,
        }
    }

    /// Wraps the value in a sensitive mark when `sensitive` is true.
    pub fn mark_if(self, sensitive: bool) -> Value {
        if sensitive && !matches!(self, Value::Sensitive(_)) {
            Value::Sensitive(Box::new(self))
        } else {
            self
        }
    }

    /// The value behind any top-level sensitive mark.
    pub fn peel(&self) -> &Value {
        match self {
            Value::Sensitive(v) => v.peel(),
            v => v,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self.peel() {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self.peel() {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self.peel() {
            Value::Int(i) => Some(*i),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(*f as i64),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.peel() {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Converts to JSON. Unknown becomes null and marks are dropped: callers
    /// that may hold either must check first (state never stores them).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null | Value::Unknown => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map(serde_json::Value::Number).unwrap_or(serde_json::Value::Null),
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::List(items) => serde_json::Value::Array(items.iter().map(Value::to_json).collect()),
            Value::Map(map) => serde_json::Value::Object(map.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
            Value::Sensitive(v) => v.to_json(),
        }
    }

    pub fn from_json(json: &serde_json::Value) -> Value {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(0.0)),
            },
            serde_json::Value::String(s) => Value::String(s.clone()),
            serde_json::Value::Array(items) => Value::List(items.iter().map(Value::from_json).collect()),
            serde_json::Value::Object(map) => Value::Map(map.iter().map(|(k, v)| (k.clone(), Value::from_json(v))).collect()),
        }
    }

    /// Canonical text used to compare and hash values (sorted keys).
    pub fn canonical(&self) -> String {
        let mut out = String::new();
        self.write_canonical(&mut out);
        out
    }

    fn write_canonical(&self, out: &mut String) {
        match self {
            Value::Map(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::String((*k).clone()).to_string());
                    out.push(':');
                    map[*k].write_canonical(out);
                }
                out.push('}');
            }
            Value::List(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write_canonical(out);
                }
                out.push(']');
            }
            Value::Unknown => out.push_str("<unknown>"),
            Value::Sensitive(v) => v.write_canonical(out),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => out.push_str(&(*f as i64).to_string()),
            other => out.push_str(&other.to_json().to_string()),
        }
    }
}

/// Human display in the language's own literal syntax (used by plan output
/// and `output`). Sensitive values print as `(sensitive)`, unknown ones as
/// `(known after apply)`.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => write!(f, "null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::String(s) => f.write_str(&quoted(s)),
            Value::List(items) => {
                write!(f, "[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{v}")?;
                }
                write!(f, "]")
            }
            Value::Map(map) => {
                write!(f, "{{")?;
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        write!(f, ",")?;
                    }
                    write!(f, " {} = {v}", display_key(k))?;
                }
                if map.is_empty() {
                    write!(f, "}}")
                } else {
                    write!(f, " }}")
                }
            }
            Value::Unknown => write!(f, "(known after apply)"),
            Value::Sensitive(_) => write!(f, "(sensitive)"),
        }
    }
}

/// Characters that change how a terminal lays out the text around them
/// without showing themselves: bidirectional overrides, embeddings and
/// isolates, and the direction marks. A plan that printed them raw could show
/// reviewers text in an order other than the bytes applied ("Trojan Source").
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn must_escape(c: char) -> bool {
    c.is_control() || is_bidi_control(c)
}

/// A string as a quoted literal for display: quotes and backslashes escaped,
/// control and bidi characters as `\uXXXX` (newlines as `\n`).
pub fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if must_escape(c) => push_u(&mut out, c),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One line of text shown as is (a line of a multi-line diff or heredoc):
/// tabs stay, other control and bidi characters become `\uXXXX`.
pub fn escape_line(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(|c| c != '\t' && must_escape(c)) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c != '\t' && must_escape(c) {
            push_u(&mut out, c);
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

fn push_u(out: &mut String, c: char) {
    use std::fmt::Write as _;
    let _ = write!(out, "\\u{:04x}", c as u32);
}

pub fn display_key(k: &str) -> String {
    let ident = !k.is_empty()
        && k.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ident {
        k.to_string()
    } else {
        quoted(k)
    }
}

/// A param value given from outside (`-var`, `--var-file`, `PLINTH_VAR_…`).
#[derive(Debug, Clone)]
pub struct VarValue {
    pub value: Value,
    /// Where it came from, for messages: "-var", "PLINTH_VAR_x", a file name.
    pub origin: String,
    pub span: Option<crate::diagnostic::Span>,
}

/// Parses a duration as Plinth writes one, on the command line
/// (`--lock-timeout 2m`) and in provider settings (`timeout = "30s"`): a
/// non-negative decimal number and a unit, `ms`, `s` (the default), `m` or
/// `h`. Too large a value is an error, not a panic.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let s = text.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len()));
    let n: f64 = num.parse().map_err(|_| format!("`{s}` is not a duration; write e.g. 30s, 2m, 1h"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("unknown unit `{unit}`; use ms, s, m or h")),
    };
    std::time::Duration::try_from_secs_f64(secs).map_err(|_| format!("`{s}` is too long a duration"))
}

#[cfg(test)]
mod duration_tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_parse_with_units_and_refuse_nonsense() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration(" 30 "), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1d").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("99999999999999999999999h").unwrap_err().contains("too long"));
    }
}
