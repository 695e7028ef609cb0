//! cty, the type system of Terraform providers, and the msgpack wire format
//! of its values (Terraform's docs/plugin-protocol/object-wire-format.md).
//!
//! Invariants:
//! - Every value crosses the wire typed by the schema: [`encode`] writes
//!   exactly the shape of its type (every attribute of an object, nulls
//!   included; a dynamic value as `[type JSON, value]`), and [`decode`]
//!   reads only that shape; anything else is an error, never a panic.
//! - Unknown values are msgpack extension values (cty writes extension type
//!   0; newer cty writes type 12 with refinements): any extension decodes as
//!   unknown, and unknown encodes as type 0.
//! - Sensitive marks never reach the wire: values are unmarked first.
//! - Numbers: integers as msgpack integers, others as float64; a number
//!   that arrives as a string (cty's form for values beyond float64) is read
//!   back as the number it spells.

use plinth_base::types::Type;
use plinth_base::value::{Map, Value};
use serde_json::Value as Json;

/// A cty type, as a provider's schema names it (JSON: `"string"`,
/// `["list","number"]`, `["object",{"a":"bool"}]`, …).
#[derive(Debug, Clone, PartialEq)]
pub enum Cty {
    String,
    Number,
    Bool,
    /// Any type, chosen by the value (`"dynamic"`).
    Dynamic,
    List(Box<Cty>),
    Set(Box<Cty>),
    Map(Box<Cty>),
    /// Attributes in name order; the names listed as optional (in a type
    /// constraint) may be left out of a value, which then has null there.
    Object(Vec<(String, Cty)>),
    Tuple(Vec<Cty>),
}

impl Cty {
    /// Parses cty's JSON type notation.
    pub fn from_json(j: &Json) -> Result<Cty, String> {
        match j {
            Json::String(s) => match s.as_str() {
                "string" => Ok(Cty::String),
                "number" => Ok(Cty::Number),
                "bool" => Ok(Cty::Bool),
                "dynamic" => Ok(Cty::Dynamic),
                other => Err(format!("unknown primitive type `{other}`")),
            },
            Json::Array(items) => {
                let kind = items.first().and_then(Json::as_str).ok_or("a type list must start with its kind")?;
                let arg = items.get(1).ok_or_else(|| format!("`{kind}` needs an element type"))?;
                match kind {
                    "list" => Ok(Cty::List(Box::new(Cty::from_json(arg)?))),
                    "set" => Ok(Cty::Set(Box::new(Cty::from_json(arg)?))),
                    "map" => Ok(Cty::Map(Box::new(Cty::from_json(arg)?))),
                    "object" => {
                        let fields = arg.as_object().ok_or("an object type needs a map of attribute types")?;
                        let mut out = Vec::with_capacity(fields.len());
                        for (k, v) in fields {
                            out.push((k.clone(), Cty::from_json(v)?));
                        }
                        out.sort_by(|a, b| a.0.cmp(&b.0));
                        Ok(Cty::Object(out))
                    }
                    "tuple" => {
                        let elems = arg.as_array().ok_or("a tuple type needs a list of element types")?;
                        Ok(Cty::Tuple(elems.iter().map(Cty::from_json).collect::<Result<_, _>>()?))
                    }
                    other => Err(format!("unknown type kind `{other}`")),
                }
            }
            _ => Err("a type is a string or a list".into()),
        }
    }

    /// The JSON notation of this type (for dynamic values on the wire).
    pub fn to_json(&self) -> Json {
        match self {
            Cty::String => Json::from("string"),
            Cty::Number => Json::from("number"),
            Cty::Bool => Json::from("bool"),
            Cty::Dynamic => Json::from("dynamic"),
            Cty::List(e) => Json::Array(vec!["list".into(), e.to_json()]),
            Cty::Set(e) => Json::Array(vec!["set".into(), e.to_json()]),
            Cty::Map(e) => Json::Array(vec!["map".into(), e.to_json()]),
            Cty::Object(fields) => {
                let mut m = serde_json::Map::new();
                for (k, t) in fields {
                    m.insert(k.clone(), t.to_json());
                }
                Json::Array(vec!["object".into(), Json::Object(m)])
            }
            Cty::Tuple(elems) => Json::Array(vec!["tuple".into(), Json::Array(elems.iter().map(Cty::to_json).collect())]),
        }
    }

    /// The Plinth type values of this type convert to.
    pub fn to_type(&self) -> Type {
        match self {
            Cty::String => Type::String,
            Cty::Number => Type::Number,
            Cty::Bool => Type::Bool,
            Cty::Dynamic | Cty::Tuple(_) => Type::Any,
            Cty::List(e) => Type::List(Box::new(e.to_type())),
            Cty::Set(e) => Type::Set(Box::new(e.to_type())),
            Cty::Map(e) => Type::Map(Box::new(e.to_type())),
            Cty::Object(fields) => Type::Object(fields.iter().map(|(k, t)| (k.clone(), t.to_type())).collect()),
        }
    }

    /// The type a value has, for a dynamic attribute (cty's inference:
    /// lists are tuples, maps are objects).
    fn of_value(v: &Value) -> Cty {
        match v {
            Value::Null | Value::Unknown => Cty::Dynamic,
            Value::Bool(_) => Cty::Bool,
            Value::Int(_) | Value::Float(_) => Cty::Number,
            Value::String(_) => Cty::String,
            Value::List(items) => Cty::Tuple(items.iter().map(Cty::of_value).collect()),
            Value::Map(m) => {
                let mut fields: Vec<(String, Cty)> = m.iter().map(|(k, v)| (k.clone(), Cty::of_value(v))).collect();
                fields.sort_by(|a, b| a.0.cmp(&b.0));
                Cty::Object(fields)
            }
            Value::Sensitive(inner) => Cty::of_value(inner),
        }
    }
}

/// Encodes `value` as msgpack of type `ty`. The error names the path of the
/// part that does not fit.
pub fn encode(value: &Value, ty: &Cty) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(64);
    enc(&mut out, value, ty, &mut String::new())?;
    Ok(out)
}

fn enc(out: &mut Vec<u8>, value: &Value, ty: &Cty, path: &mut String) -> Result<(), String> {
    use rmp::encode as e;
    let io = |r: Result<(), rmp::encode::ValueWriteError>| r.map_err(|_| "msgpack write failed".to_string());
    let value = value.peel();
    match value {
        Value::Unknown => {
            out.extend_from_slice(&[0xd4, 0, 0]);
            return Ok(());
        }
        Value::Null => {
            out.push(0xc0);
            return Ok(());
        }
        _ => {}
    }
    let mismatch = |what: &str, path: &str| Err(format!("{}expected {what}", if path.is_empty() { String::new() } else { format!("at {path}: ") }));
    match ty {
        Cty::Dynamic => {
            let actual = Cty::of_value(value);
            let tj = serde_json::to_vec(&actual.to_json()).map_err(|e| e.to_string())?;
            io(e::write_array_len(out, 2).map(|_| ()))?;
            io(e::write_bin(out, &tj))?;
            enc(out, value, &actual, path)
        }
        Cty::String => match value {
            Value::String(s) => io(e::write_str(out, s)),
            Value::Int(i) => io(e::write_str(out, &i.to_string())),
            Value::Float(f) => io(e::write_str(out, &f.to_string())),
            Value::Bool(b) => io(e::write_str(out, if *b { "true" } else { "false" })),
            _ => mismatch("a string", path),
        },
        Cty::Number => match value {
            Value::Int(i) => {
                e::write_sint(out, *i).map_err(|_| "msgpack write failed".to_string())?;
                Ok(())
            }
            Value::Float(f) => {
                if f.fract() == 0.0 && f.abs() < 9.0e15 {
                    e::write_sint(out, *f as i64).map_err(|_| "msgpack write failed".to_string())?;
                    Ok(())
                } else {
                    e::write_f64(out, *f).map_err(|_| "msgpack write failed".to_string())
                }
            }
            Value::String(s) => match s.trim().parse::<i64>() {
                Ok(i) => e::write_sint(out, i).map(|_| ()).map_err(|_| "msgpack write failed".to_string()),
                Err(_) => match s.trim().parse::<f64>() {
                    Ok(f) if f.is_finite() => e::write_f64(out, f).map_err(|_| "msgpack write failed".to_string()),
                    _ => mismatch("a number", path),
                },
            },
            _ => mismatch("a number", path),
        },
        Cty::Bool => match value {
            Value::Bool(b) => e::write_bool(out, *b).map_err(|_| "msgpack write failed".to_string()),
            Value::String(s) if s == "true" || s == "false" => e::write_bool(out, s == "true").map_err(|_| "msgpack write failed".to_string()),
            _ => mismatch("a bool", path),
        },
        Cty::List(elem) | Cty::Set(elem) => match value {
            Value::List(items) => {
                io(e::write_array_len(out, items.len() as u32).map(|_| ()))?;
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    enc(out, item, elem, path)?;
                    path.truncate(len);
                }
                Ok(())
            }
            _ => mismatch("a list", path),
        },
        Cty::Tuple(elems) => match value {
            Value::List(items) if items.len() == elems.len() => {
                io(e::write_array_len(out, items.len() as u32).map(|_| ()))?;
                for (i, (item, t)) in items.iter().zip(elems).enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    enc(out, item, t, path)?;
                    path.truncate(len);
                }
                Ok(())
            }
            _ => mismatch(&format!("a list of {} elements", elems.len()), path),
        },
        Cty::Map(elem) => match value {
            Value::Map(m) => {
                io(e::write_map_len(out, m.len() as u32).map(|_| ()))?;
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                for k in keys {
                    io(e::write_str(out, k))?;
                    let len = path.len();
                    path.push_str(&format!("[{k:?}]"));
                    enc(out, &m[k], elem, path)?;
                    path.truncate(len);
                }
                Ok(())
            }
            _ => mismatch("a map", path),
        },
        Cty::Object(fields) => match value {
            Value::Map(m) => {
                if let Some(extra) = m.keys().find(|k| !fields.iter().any(|(n, _)| n == *k)) {
                    return Err(format!("{}unexpected attribute `{extra}`", if path.is_empty() { String::new() } else { format!("at {path}: ") }));
                }
                io(e::write_map_len(out, fields.len() as u32).map(|_| ()))?;
                for (name, t) in fields {
                    io(e::write_str(out, name))?;
                    let len = path.len();
                    path.push('.');
                    path.push_str(name);
                    enc(out, m.get(name).unwrap_or(&Value::Null), t, path)?;
                    path.truncate(len);
                }
                Ok(())
            }
            _ => mismatch("an object", path),
        },
    }
}

/// Decodes msgpack `bytes` as a value of type `ty`.
pub fn decode(bytes: &[u8], ty: &Cty) -> Result<Value, String> {
    let mut rd = bytes;
    let v = dec(&mut rd, ty, 0)?;
    if !rd.is_empty() {
        return Err(format!("{} bytes after the value", rd.len()));
    }
    Ok(v)
}

const MAX_DEPTH: usize = 128;

fn take<'a>(rd: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if rd.len() < n {
        return Err("truncated value".into());
    }
    let (head, tail) = rd.split_at(n);
    *rd = tail;
    Ok(head)
}

fn dec(rd: &mut &[u8], ty: &Cty, depth: usize) -> Result<Value, String> {
    use rmp::Marker;
    if depth > MAX_DEPTH {
        return Err("value nested too deeply".into());
    }
    let marker = Marker::from_u8(*rd.first().ok_or("truncated value")?);
    *rd = &rd[1..];
    let be = |b: &[u8]| -> u64 { b.iter().fold(0u64, |acc, x| (acc << 8) | *x as u64) };
    let ext_skip = |rd: &mut &[u8], len: usize| -> Result<Value, String> {
        take(rd, 1 + len)?;
        Ok(Value::Unknown)
    };
    // Extension values are unknowns whatever the type.
    match marker {
        Marker::FixExt1 => return ext_skip(rd, 1),
        Marker::FixExt2 => return ext_skip(rd, 2),
        Marker::FixExt4 => return ext_skip(rd, 4),
        Marker::FixExt8 => return ext_skip(rd, 8),
        Marker::FixExt16 => return ext_skip(rd, 16),
        Marker::Ext8 => {
            let n = be(take(rd, 1)?) as usize;
            return ext_skip(rd, n);
        }
        Marker::Ext16 => {
            let n = be(take(rd, 2)?) as usize;
            return ext_skip(rd, n);
        }
        Marker::Ext32 => {
            let n = be(take(rd, 4)?) as usize;
            return ext_skip(rd, n);
        }
        Marker::Null => return Ok(Value::Null),
        _ => {}
    }
    if let Cty::Dynamic = ty {
        // [type JSON, value]
        let n = match marker {
            Marker::FixArray(n) => n as usize,
            Marker::Array16 => be(take(rd, 2)?) as usize,
            _ => return Err("a dynamic value is a [type, value] pair".into()),
        };
        if n != 2 {
            return Err("a dynamic value is a [type, value] pair".into());
        }
        let tj = read_bytes(rd)?;
        let json: Json = serde_json::from_slice(&tj).map_err(|e| format!("the type of a dynamic value is not JSON: {e}"))?;
        let actual = Cty::from_json(&json)?;
        return dec(rd, &actual, depth + 1);
    }
    let int = |marker: Marker, rd: &mut &[u8]| -> Result<Option<Value>, String> {
        Ok(Some(match marker {
            Marker::FixPos(n) => Value::Int(n as i64),
            Marker::FixNeg(n) => Value::Int(n as i64),
            Marker::U8 => Value::Int(be(take(rd, 1)?) as i64),
            Marker::U16 => Value::Int(be(take(rd, 2)?) as i64),
            Marker::U32 => Value::Int(be(take(rd, 4)?) as i64),
            Marker::U64 => {
                let u = be(take(rd, 8)?);
                if u > i64::MAX as u64 {
                    Value::Float(u as f64)
                } else {
                    Value::Int(u as i64)
                }
            }
            Marker::I8 => Value::Int(take(rd, 1)?[0] as i8 as i64),
            Marker::I16 => Value::Int(be(take(rd, 2)?) as u16 as i16 as i64),
            Marker::I32 => Value::Int(be(take(rd, 4)?) as u32 as i32 as i64),
            Marker::I64 => Value::Int(be(take(rd, 8)?) as i64),
            Marker::F32 => Value::Float(f32::from_bits(be(take(rd, 4)?) as u32) as f64),
            Marker::F64 => Value::Float(f64::from_bits(be(take(rd, 8)?))),
            _ => return Ok(None),
        }))
    };
    match ty {
        Cty::Dynamic => unreachable_dynamic(),
        Cty::Number => {
            if let Some(v) = int(marker, rd)? {
                return Ok(match v {
                    Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::Int(f as i64),
                    v => v,
                });
            }
            let s = read_str_after(marker, rd)?.ok_or("expected a number")?;
            match s.parse::<i64>() {
                Ok(i) => Ok(Value::Int(i)),
                Err(_) => s.parse::<f64>().map(Value::Float).map_err(|_| format!("expected a number, found {s:?}")),
            }
        }
        Cty::String => read_str_after(marker, rd)?.map(Value::String).ok_or_else(|| "expected a string".to_string()),
        Cty::Bool => match marker {
            Marker::True => Ok(Value::Bool(true)),
            Marker::False => Ok(Value::Bool(false)),
            _ => Err("expected a bool".into()),
        },
        Cty::List(elem) | Cty::Set(elem) => {
            let n = array_len(marker, rd)?.ok_or("expected a list")?;
            let mut out = Vec::with_capacity(n.min(4096));
            for _ in 0..n {
                out.push(dec(rd, elem, depth + 1)?);
            }
            Ok(Value::List(out))
        }
        Cty::Tuple(elems) => {
            let n = array_len(marker, rd)?.ok_or("expected a tuple")?;
            if n != elems.len() {
                return Err(format!("expected a tuple of {} elements, found {n}", elems.len()));
            }
            let mut out = Vec::with_capacity(n);
            for t in elems {
                out.push(dec(rd, t, depth + 1)?);
            }
            Ok(Value::List(out))
        }
        Cty::Map(elem) => {
            let n = map_len(marker, rd)?.ok_or("expected a map")?;
            let mut out = Map::default();
            for _ in 0..n {
                let k = read_key(rd)?;
                let v = dec(rd, elem, depth + 1)?;
                out.insert(k, v);
            }
            Ok(Value::Map(out))
        }
        Cty::Object(fields) => {
            let n = map_len(marker, rd)?.ok_or("expected an object")?;
            let mut got = Map::default();
            for _ in 0..n {
                let k = read_key(rd)?;
                let Some((_, t)) = fields.iter().find(|(name, _)| *name == k) else {
                    return Err(format!("unexpected attribute `{k}`"));
                };
                let v = dec(rd, t, depth + 1)?;
                got.insert(k, v);
            }
            let mut out = Map::with_capacity_and_hasher(fields.len(), Default::default());
            for (name, _) in fields {
                out.insert(name.clone(), got.shift_remove(name).unwrap_or(Value::Null));
            }
            Ok(Value::Map(out))
        }
    }
}

fn unreachable_dynamic() -> Result<Value, String> {
    Err("dynamic value in a typed position".into())
}

fn array_len(marker: rmp::Marker, rd: &mut &[u8]) -> Result<Option<usize>, String> {
    use rmp::Marker;
    Ok(match marker {
        Marker::FixArray(n) => Some(n as usize),
        Marker::Array16 => Some(u16::from_be_bytes(take(rd, 2)?.try_into().map_err(|_| "truncated")?) as usize),
        Marker::Array32 => Some(u32::from_be_bytes(take(rd, 4)?.try_into().map_err(|_| "truncated")?) as usize),
        _ => None,
    })
}

fn map_len(marker: rmp::Marker, rd: &mut &[u8]) -> Result<Option<usize>, String> {
    use rmp::Marker;
    Ok(match marker {
        Marker::FixMap(n) => Some(n as usize),
        Marker::Map16 => Some(u16::from_be_bytes(take(rd, 2)?.try_into().map_err(|_| "truncated")?) as usize),
        Marker::Map32 => Some(u32::from_be_bytes(take(rd, 4)?.try_into().map_err(|_| "truncated")?) as usize),
        _ => None,
    })
}

fn read_str_after(marker: rmp::Marker, rd: &mut &[u8]) -> Result<Option<String>, String> {
    use rmp::Marker;
    let n = match marker {
        Marker::FixStr(n) => n as usize,
        Marker::Str8 | Marker::Bin8 => take(rd, 1)?[0] as usize,
        Marker::Str16 | Marker::Bin16 => u16::from_be_bytes(take(rd, 2)?.try_into().map_err(|_| "truncated")?) as usize,
        Marker::Str32 | Marker::Bin32 => u32::from_be_bytes(take(rd, 4)?.try_into().map_err(|_| "truncated")?) as usize,
        _ => return Ok(None),
    };
    let bytes = take(rd, n)?;
    String::from_utf8(bytes.to_vec()).map(Some).map_err(|_| "a string is not UTF-8".to_string())
}

fn read_key(rd: &mut &[u8]) -> Result<String, String> {
    let marker = rmp::Marker::from_u8(*rd.first().ok_or("truncated value")?);
    *rd = &rd[1..];
    read_str_after(marker, rd)?.ok_or_else(|| "an object key is not a string".to_string())
}

fn read_bytes(rd: &mut &[u8]) -> Result<Vec<u8>, String> {
    let marker = rmp::Marker::from_u8(*rd.first().ok_or("truncated value")?);
    *rd = &rd[1..];
    read_str_after(marker, rd)?.map(String::into_bytes).ok_or_else(|| "expected bytes".to_string())
}

/// Converts a JSON value (a provider's upgraded or imported state in JSON,
/// a schema-cache default) to a Plinth value.
pub fn from_json(j: &Json) -> Value {
    match j {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(0.0)),
        },
        Json::String(s) => Value::String(s.clone()),
        Json::Array(a) => Value::List(a.iter().map(from_json).collect()),
        Json::Object(o) => Value::Map(o.iter().map(|(k, v)| (k.clone(), from_json(v))).collect()),
    }
}

/// A known value as JSON (raw state for UpgradeResourceState).
pub fn to_json(v: &Value) -> Json {
    match v.peel() {
        Value::Null | Value::Unknown => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map(Json::Number).unwrap_or(Json::Null),
        Value::String(s) => Json::String(s.clone()),
        Value::List(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Map(m) => Json::Object(m.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
        Value::Sensitive(inner) => to_json(inner),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(pairs: &[(&str, Value)]) -> Value {
        Value::Map(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    }

    #[test]
    fn types_parse_from_the_schema_notation_and_back() {
        let j: Json =
            serde_json::from_str(r#"["object",{"b":["list","string"],"a":["map",["set","number"]],"d":"dynamic","t":["tuple",["bool","string"]]}]"#).unwrap();
        let t = Cty::from_json(&j).unwrap();
        let Cty::Object(fields) = &t else { panic!("an object") };
        assert_eq!(fields.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["a", "b", "d", "t"]);
        assert_eq!(Cty::from_json(&t.to_json()).unwrap(), t);
        assert!(Cty::from_json(&serde_json::json!(["list"])).is_err());
        assert!(Cty::from_json(&serde_json::json!("strin")).is_err());
        assert!(Cty::from_json(&serde_json::json!(7)).is_err());
    }

    #[test]
    fn values_round_trip_through_msgpack_by_type() {
        let ty = Cty::from_json(&serde_json::json!(["object", {"id": "string", "n": "number", "f": "number", "ok": "bool", "tags": ["map", "string"], "items": ["list", ["object", {"k": "string"}]], "dyn": "dynamic", "gone": "string", "later": "string"}])).unwrap();
        let v = obj(&[
            ("id", Value::String("abc".into())),
            ("n", Value::Int(-70000)),
            ("f", Value::Float(1.5)),
            ("ok", Value::Bool(true)),
            ("tags", obj(&[("z", Value::String("1".into())), ("a", Value::String("2".into()))])),
            ("items", Value::List(vec![obj(&[("k", Value::String("x".into()))])])),
            ("dyn", Value::List(vec![Value::Int(1), Value::String("two".into())])),
            ("later", Value::Unknown),
        ]);
        let bytes = encode(&v, &ty).unwrap();
        let back = decode(&bytes, &ty).unwrap();
        let Value::Map(m) = back else { panic!("an object") };
        assert_eq!(m["id"], Value::String("abc".into()));
        assert_eq!(m["n"], Value::Int(-70000));
        assert_eq!(m["f"], Value::Float(1.5));
        assert_eq!(m["ok"], Value::Bool(true));
        assert_eq!(m["gone"], Value::Null, "attributes left out are null on the wire");
        assert!(matches!(m["later"], Value::Unknown));
        assert_eq!(m["dyn"], Value::List(vec![Value::Int(1), Value::String("two".into())]));
        assert_eq!(m["items"], Value::List(vec![obj(&[("k", Value::String("x".into()))])]));
    }

    #[test]
    fn unknown_is_extension_zero_and_any_extension_reads_as_unknown() {
        assert_eq!(encode(&Value::Unknown, &Cty::String).unwrap(), vec![0xd4, 0, 0]);
        // cty's refined unknown: ext type 12 with a payload.
        assert!(matches!(decode(&[0xc7, 2, 12, 0x81, 0x01], &Cty::String).unwrap(), Value::Unknown));
        assert!(matches!(decode(&[0xc0], &Cty::Number).unwrap(), Value::Null));
    }

    #[test]
    fn sensitive_marks_do_not_reach_the_wire() {
        let v = Value::Sensitive(Box::new(Value::String("hunter2".into())));
        assert_eq!(decode(&encode(&v, &Cty::String).unwrap(), &Cty::String).unwrap(), Value::String("hunter2".into()));
    }

    #[test]
    fn malformed_input_is_an_error_never_a_panic() {
        let ty = Cty::from_json(&serde_json::json!(["object", {"a": ["list", "string"], "d": "dynamic"}])).unwrap();
        for bytes in [
            &[][..],
            &[0x81],
            &[0x81, 0xa1, b'a', 0xdd, 0xff, 0xff, 0xff, 0xff],
            &[0x81, 0xa1, b'q', 0xc0],
            &[0x81, 0xa1, b'd', 0x92, 0xc4, 1, b'{', 0xc0],
            &[0xc7],
        ] {
            assert!(decode(bytes, &ty).is_err(), "{bytes:?}");
        }
        assert!(encode(&obj(&[("zz", Value::Null)]), &ty).is_err());
        assert!(encode(&Value::String("x".into()), &ty).is_err());
        // Numbers beyond float64 arrive as strings.
        let mut s = Vec::new();
        rmp::encode::write_str(&mut s, "12345").unwrap();
        assert_eq!(decode(&s, &Cty::Number).unwrap(), Value::Int(12345));
    }
}
