//! Conversion of values to declared types (params, schema attributes), with
//! the implicit conversions a Terraform user expects (`"3"` → `3`,
//! `true` → `"true"`). Unknown values pass; sensitive marks are kept, and
//! the error for a sensitive value never quotes any part of it.

use crate::types::Type;
use crate::value::{Map, Value};

/// Converts `value` to `ty`; the error names the path of the offending part.
pub fn convert(value: Value, ty: &Type) -> Result<Value, String> {
    convert_at(value, ty, &mut Vec::new())
}

fn describe(path: &[String]) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("at {}: ", path.join(""))
    }
}

fn convert_at(value: Value, ty: &Type, path: &mut Vec<String>) -> Result<Value, String> {
    let mismatch = |v: &Value, path: &Vec<String>| Err(format!("{}expected {}, found {}", describe(path), article(ty), article_of_value(v)));
    match value {
        Value::Unknown | Value::Null => return Ok(value),
        // The error of a sensitive value never shows any part of it.
        Value::Sensitive(inner) => {
            let at = describe(path);
            return convert_at(*inner, ty, path)
                .map(|v| Value::Sensitive(Box::new(v)))
                .map_err(|_| format!("{at}expected {}, found a sensitive value that does not convert to it", article(ty)));
        }
        _ => {}
    }
    match ty {
        Type::Any => Ok(value),
        Type::String => match value {
            Value::String(_) => Ok(value),
            Value::Int(i) => Ok(Value::String(i.to_string())),
            Value::Float(f) => Ok(Value::String(f.to_string())),
            Value::Bool(b) => Ok(Value::String(b.to_string())),
            v => mismatch(&v, path),
        },
        Type::Number => match value {
            Value::Int(_) | Value::Float(_) => Ok(value),
            Value::String(ref s) => match s.trim().parse::<i64>() {
                Ok(i) => Ok(Value::Int(i)),
                Err(_) => match s.trim().parse::<f64>() {
                    Ok(f) if f.is_finite() => Ok(Value::Float(f)),
                    _ => Err(format!("{}expected a number, found the string {:?}", describe(path), s)),
                },
            },
            v => mismatch(&v, path),
        },
        Type::Bool => match value {
            Value::Bool(_) => Ok(value),
            Value::String(ref s) if s == "true" => Ok(Value::Bool(true)),
            Value::String(ref s) if s == "false" => Ok(Value::Bool(false)),
            v => mismatch(&v, path),
        },
        Type::List(elem) | Type::Set(elem) => match value {
            Value::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    path.push(format!("[{i}]"));
                    let converted = convert_at(item, elem, path)?;
                    path.pop();
                    if matches!(ty, Type::Set(_)) && out.contains(&converted) {
                        continue;
                    }
                    out.push(converted);
                }
                Ok(Value::List(out))
            }
            v => mismatch(&v, path),
        },
        Type::Map(elem) => match value {
            Value::Map(map) => {
                let mut out = Map::with_capacity_and_hasher(map.len(), Default::default());
                for (k, v) in map {
                    path.push(format!("[{k:?}]"));
                    let converted = convert_at(v, elem, path)?;
                    path.pop();
                    out.insert(k, converted);
                }
                Ok(Value::Map(out))
            }
            v => mismatch(&v, path),
        },
        Type::Object(fields) => match value {
            Value::Map(mut map) => {
                let mut out = Map::with_capacity_and_hasher(fields.len(), Default::default());
                for (name, fty) in fields {
                    path.push(format!(".{name}"));
                    let v = map.shift_remove(name).unwrap_or(Value::Null);
                    let converted = convert_at(v, fty, path)?;
                    path.pop();
                    out.insert(name.clone(), converted);
                }
                if let Some(extra) = map.keys().next() {
                    return Err(format!(
                        "{}unexpected attribute `{extra}`; the type {ty} has only {}",
                        describe(path),
                        fields.iter().map(|(n, _)| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                    ));
                }
                Ok(Value::Map(out))
            }
            v => mismatch(&v, path),
        },
    }
}

fn article(ty: &Type) -> String {
    match ty {
        Type::Any => "any value".into(),
        Type::String => "a string".into(),
        Type::Number => "a number".into(),
        Type::Bool => "a bool".into(),
        other => format!("a value of type {other}"),
    }
}

pub fn article_of_value(v: &Value) -> &'static str {
    match v.peel() {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Int(_) | Value::Float(_) => "a number",
        Value::String(_) => "a string",
        Value::List(_) => "a list",
        Value::Map(_) => "an object",
        Value::Unknown => "an unknown value",
        Value::Sensitive(_) => "a sensitive value",
    }
}
