//! `yamldecode`: YAML text → a value, resolved as Terraform resolves it.
//!
//! Terraform's decoder (go-cty-yaml, from go-yaml v2) follows YAML 1.1 for
//! scalars that are not quoted: `yes`/`no`/`on`/`off`/`y`/`n` (in their
//! listed spellings) are bools, `0o17` and `0x1F` are integers, `017` is 17
//! (leading zeros are decimal), `1_000` and `0b101` stay strings, dates and
//! timestamps become RFC 3339 strings. A YAML 1.2 parser (serde_yaml) gives
//! strings for most of these, so values silently differed. The rules here
//! were checked against `terraform console` (`tests/it/terraform_parity.rs`).
//!
//! Invariants:
//! - Quoted scalars are strings (an explicit `!!null` aside); plain scalars
//!   are resolved; literal and folded ones are resolved and then given back
//!   as strings (`>-` `on` is "true"), as Terraform does.
//! - Aliases are expanded by copying; the copies count towards
//!   [`MAX_NODES`], so an alias bomb is an error, not exhausted memory.
//! - Infinity and NaN are errors (Plinth numbers are finite), as are unknown
//!   tags and more than one document.

use crate::value::{Map, Value};
use rustc_hash::FxHashMap as HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Values (scalars, lists, maps) one decode may produce, aliases expanded.
pub const MAX_NODES: usize = 1_000_000;

enum Frame {
    Seq(Vec<Value>, usize),
    /// Entries, the key awaiting its value, the anchor, merged maps.
    Map(Map, Option<Key>, usize, Vec<Value>),
}

enum Key {
    Plain(String),
    /// The plain `<<` merge key.
    Merge,
}

#[derive(Default)]
struct Loader {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Value>,
    docs: Vec<Value>,
    nodes: usize,
    error: Option<String>,
}

fn count(v: &Value) -> usize {
    match v {
        Value::List(items) => 1 + items.iter().map(count).sum::<usize>(),
        Value::Map(m) => 1 + m.values().map(count).sum::<usize>(),
        _ => 1,
    }
}

impl Loader {
    fn fail(&mut self, message: String) {
        if self.error.is_none() {
            self.error = Some(message);
        }
    }

    /// Places a finished value: into the enclosing list or map, or as a document.
    fn place(&mut self, value: Value, anchor: usize, merge_key: bool) {
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.stack.last_mut() {
            None => self.docs.push(value),
            Some(Frame::Seq(items, _)) => items.push(value),
            Some(Frame::Map(map, pending, _, merges)) => match pending.take() {
                None if merge_key => *pending = Some(Key::Merge),
                None => match key_string(&value) {
                    Some(k) => *pending = Some(Key::Plain(k)),
                    None => self.fail("a mapping key is a list or map; only strings, numbers and bools can be keys".into()),
                },
                Some(Key::Plain(k)) => {
                    map.insert(k, value);
                }
                Some(Key::Merge) => merges.push(value),
            },
        }
    }
}

fn key_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some("null".into()),
        _ => None,
    }
}

impl MarkedEventReceiver for Loader {
    fn on_event(&mut self, ev: Event, _mark: Marker) {
        if self.error.is_some() {
            return;
        }
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                self.nodes += 1;
                let merge_key = style == TScalarStyle::Plain && text == "<<" && tag.is_none() && matches!(self.stack.last(), Some(Frame::Map(_, None, _, _)));
                match resolve(&text, style, tag.as_ref()) {
                    Ok(v) => self.place(v, anchor, merge_key),
                    Err(e) => self.fail(e),
                }
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(v) => {
                    self.nodes += count(&v);
                    if self.nodes > MAX_NODES {
                        self.fail(format!("the document expands to more than {MAX_NODES} values (through aliases)"));
                        return;
                    }
                    self.place(v, 0, false);
                }
                None => self.fail("an alias refers to an unknown anchor".into()),
            },
            Event::SequenceStart(anchor, tag) => {
                if let Some(t) = tag.filter(|t| !is_core(t, "seq")) {
                    self.fail(format!("unsupported tag {}{}", t.handle, t.suffix));
                }
                self.nodes += 1;
                self.stack.push(Frame::Seq(Vec::new(), anchor));
            }
            Event::MappingStart(anchor, tag) => {
                if let Some(t) = tag.filter(|t| !is_core(t, "map")) {
                    self.fail(format!("unsupported tag {}{}", t.handle, t.suffix));
                }
                self.nodes += 1;
                self.stack.push(Frame::Map(Map::default(), None, anchor, Vec::new()));
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq(items, anchor)) = self.stack.pop() {
                    self.place(Value::List(items), anchor, false);
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(mut map, _, anchor, merges)) = self.stack.pop() {
                    // Explicit keys win over merged ones; earlier merged maps
                    // over later ones.
                    for merged in merges {
                        let sources = match merged {
                            Value::List(items) => items,
                            other => vec![other],
                        };
                        for source in sources {
                            match source {
                                Value::Map(m) => {
                                    for (k, v) in m {
                                        map.entry(k).or_insert(v);
                                    }
                                }
                                _ => {
                                    self.fail("a merge key `<<` needs a map or a list of maps".into());
                                    return;
                                }
                            }
                        }
                    }
                    self.place(Value::Map(map), anchor, false);
                }
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentStart | Event::DocumentEnd => {}
        }
        if self.nodes > MAX_NODES {
            self.fail(format!("the document has more than {MAX_NODES} values"));
        }
    }
}

fn is_core(tag: &Tag, suffix: &str) -> bool {
    tag.handle == "tag:yaml.org,2002:" && tag.suffix == suffix
}

/// Decodes one YAML document (an empty text is null).
pub fn decode(text: &str) -> Result<Value, String> {
    let mut loader = Loader::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut loader, true).map_err(|e| e.to_string())?;
    if let Some(e) = loader.error {
        return Err(e);
    }
    match loader.docs.len() {
        0 => Ok(Value::Null),
        1 => Ok(loader.docs.pop().unwrap_or(Value::Null)),
        n => Err(format!("the text holds {n} YAML documents; yamldecode takes exactly one")),
    }
}

fn resolve(text: &str, style: TScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    let quoted = matches!(style, TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted);
    if let Some(tag) = tag {
        if tag.handle != "tag:yaml.org,2002:" {
            return Err(format!("unsupported tag {}{}", tag.handle, tag.suffix));
        }
        return match tag.suffix.as_str() {
            "str" | "binary" => Ok(Value::String(text.to_string())),
            "null" => Ok(Value::Null),
            _ if quoted => Ok(Value::String(text.to_string())),
            "bool" => match bool_word(text) {
                Some(b) => Ok(Value::Bool(b)),
                None => Err(format!("cannot parse {text:?} as !!bool")),
            },
            "int" | "float" => number(text).ok_or_else(|| format!("cannot parse {text:?} as !!{}", tag.suffix))?,
            "timestamp" => timestamp(text).map(Value::String).ok_or_else(|| format!("cannot parse {text:?} as !!timestamp")),
            other => Err(format!("unsupported tag !!{other}")),
        };
    }
    if quoted {
        return Ok(Value::String(text.to_string()));
    }
    if matches!(style, TScalarStyle::Literal | TScalarStyle::Folded) {
        // Block scalars are resolved, but Terraform hands the result back
        // as a string (`>-\n  on` is "true").
        return Ok(match resolve(text, TScalarStyle::Plain, None)? {
            Value::Bool(b) => Value::String(b.to_string()),
            Value::Int(i) => Value::String(i.to_string()),
            Value::Float(f) => Value::String(f.to_string()),
            Value::Null => Value::String(String::new()),
            other => other,
        });
    }
    if let Some(b) = bool_word(text) {
        return Ok(Value::Bool(b));
    }
    if matches!(text, "" | "~" | "null" | "Null" | "NULL") {
        return Ok(Value::Null);
    }
    if let Some(first) = text.bytes().next().filter(|c| c.is_ascii_digit() || matches!(c, b'+' | b'-' | b'.')) {
        if matches!(text, ".nan" | ".NaN" | ".NAN") || text.trim_start_matches(['+', '-']).eq_ignore_ascii_case(".inf") {
            return Err(format!("the number {text} is not finite; Plinth numbers are finite"));
        }
        if first.is_ascii_digit() {
            if let Some(t) = timestamp(text) {
                return Ok(Value::String(t));
            }
        }
        if let Some(n) = number(text) {
            return n;
        }
    }
    Ok(Value::String(text.to_string()))
}

fn bool_word(text: &str) -> Option<bool> {
    match text {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => Some(true),
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

/// A number in the forms Terraform's decoder accepts: decimal integers
/// (leading zeros are decimal), `0x…` and `0o…` (unsigned), and floats
/// (`1.`, `.5`, `1e3`). None when `text` is none of these; Some(Err) when
/// it is one but not a finite 64-bit number.
fn number(text: &str) -> Option<Result<Value, String>> {
    let b = text.as_bytes();
    let digits = |s: &[u8], ok: fn(&u8) -> bool| !s.is_empty() && s.iter().all(ok);
    if let Some(hex) = text.strip_prefix("0x") {
        return digits(hex.as_bytes(), u8::is_ascii_hexdigit)
            .then(|| i64::from_str_radix(hex, 16).map(Value::Int).map_err(|_| format!("the number {text} does not fit in 64 bits")));
    }
    if let Some(oct) = text.strip_prefix("0o") {
        return digits(oct.as_bytes(), |c| (b'0'..=b'7').contains(c))
            .then(|| i64::from_str_radix(oct, 8).map(Value::Int).map_err(|_| format!("the number {text} does not fit in 64 bits")));
    }
    let unsigned = b.strip_prefix(b"+").or_else(|| b.strip_prefix(b"-")).unwrap_or(b);
    if digits(unsigned, u8::is_ascii_digit) {
        let plain = text.strip_prefix('+').unwrap_or(text);
        return Some(match plain.parse::<i64>() {
            Ok(i) => Ok(Value::Int(i)),
            Err(_) => float(plain, text),
        });
    }
    // `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
    let (mantissa, exponent) = match unsigned.iter().position(|c| matches!(c, b'e' | b'E')) {
        Some(p) => (&unsigned[..p], Some(&unsigned[p + 1..])),
        None => (unsigned, None),
    };
    let mantissa_ok = match mantissa.iter().position(|&c| c == b'.') {
        Some(0) => digits(&mantissa[1..], u8::is_ascii_digit),
        Some(p) => digits(&mantissa[..p], u8::is_ascii_digit) && mantissa[p + 1..].iter().all(u8::is_ascii_digit),
        None => digits(mantissa, u8::is_ascii_digit),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(b"+").or_else(|| e.strip_prefix(b"-")).unwrap_or(e), u8::is_ascii_digit));
    (mantissa_ok && exponent_ok).then(|| float(text.strip_prefix('+').unwrap_or(text), text))
}

fn float(plain: &str, text: &str) -> Result<Value, String> {
    let fixed = if plain.ends_with('.') { format!("{plain}0") } else { plain.to_string() };
    match fixed.parse::<f64>() {
        Ok(f) if f.is_finite() => Ok(if f.fract() == 0.0 && f.abs() < 9.0e15 { Value::Int(f as i64) } else { Value::Float(f) }),
        _ => Err(format!("the number {text} is not a finite 64-bit number")),
    }
}

/// A YAML timestamp as Terraform renders it (RFC 3339, whole seconds):
/// `2001-12-14`, `2001-12-14T21:59:43.10-05:00` (`t` too), or
/// `2001-12-14 21:59:43.10` (UTC). Month and day may have one digit.
fn timestamp(text: &str) -> Option<String> {
    let num = |s: &str, min: usize, max: usize| -> Option<u32> {
        (s.len() >= min && s.len() <= max && s.bytes().all(|c| c.is_ascii_digit())).then(|| s.parse().ok()).flatten()
    };
    let (date, rest) = match text.find(['T', 't', ' ']) {
        Some(p) => (&text[..p], Some((text.as_bytes()[p], &text[p + 1..]))),
        None => (text, None),
    };
    let mut parts = date.split('-');
    let (y, m, d) = (num(parts.next()?, 4, 4)?, num(parts.next()?, 1, 2)?, num(parts.next()?, 1, 2)?);
    if parts.next().is_some() || !(1..=12).contains(&m) {
        return None;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][(m - 1) as usize];
    if d < 1 || d > days {
        return None;
    }
    let Some((sep, time)) = rest else {
        return Some(format!("{y:04}-{m:02}-{d:02}T00:00:00Z"));
    };
    // The zone: `Z`, or `±hh:mm`, only after `T`/`t`; none after a space.
    let (clock, zone) = if sep == b' ' {
        (time, String::from("Z"))
    } else if let Some(c) = time.strip_suffix('Z') {
        (c, String::from("Z"))
    } else {
        let p = time.rfind(['+', '-'])?;
        let (c, z) = time.split_at(p);
        let (zh, zm) = z[1..].split_once(':')?;
        let (zh, zm) = (num(zh, 2, 2)?, num(zm, 2, 2)?);
        if zh > 23 || zm > 59 {
            return None;
        }
        (c, if zh == 0 && zm == 0 { "Z".to_string() } else { format!("{}{zh:02}:{zm:02}", &z[..1]) })
    };
    let (whole, frac) = match clock.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (clock, None),
    };
    if frac.is_some_and(|f| num(f, 1, 9).is_none()) {
        return None;
    }
    let mut hms = whole.split(':');
    let (h, mi, s) = (num(hms.next()?, 1, 2)?, num(hms.next()?, 1, 2)?, num(hms.next()?, 1, 2)?);
    if hms.next().is_some() || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    Some(format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}{zone}"))
}
