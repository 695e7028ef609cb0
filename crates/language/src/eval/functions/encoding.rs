//! Encoding and hashing: `base64encode`, `base64decode`, `jsonencode`,
//! `jsondecode`, `yamlencode`, `yamldecode`, `uuidv5`. `md5` and `sha256`
//! are one-line arms of the dispatcher in `mod.rs` (their tests are here).
//!
//! Invariants: pure, no host access; Terraform semantics unless documented
//! here. Integral numbers encode as integers (`jsonencode(3.0)` is `3`) and
//! decode as Ints; YAML scalars resolve as Terraform resolves them (YAML
//! 1.1, see `eval::yaml`).

use super::args::{num_value, quote, Args};
use super::FnError;
use crate::value::Value;
use base64::Engine as _;

/// Turns integral floats (such as JSON's `3.0`) into Ints, deeply.
fn integral_numbers(v: Value) -> Value {
    match v {
        Value::Float(f) => num_value(f),
        Value::List(items) => Value::List(items.into_iter().map(integral_numbers).collect()),
        Value::Map(map) => Value::Map(map.into_iter().map(|(k, v)| (k, integral_numbers(v))).collect()),
        other => other,
    }
}

/// Like [`Value::to_json`], but integral floats become integers so that
/// `jsonencode(3.0)` is `3` (as in Terraform) rather than `3.0`.
pub(super) fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Float(f) => match num_value(*f) {
            Value::Int(i) => serde_json::Value::from(i),
            _ => v.to_json(),
        },
        Value::List(items) => serde_json::Value::Array(items.iter().map(to_json).collect()),
        Value::Map(map) => serde_json::Value::Object(map.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
        Value::Sensitive(inner) => to_json(inner),
        other => other.to_json(),
    }
}

pub(super) fn f_base64encode(a: &Args) -> Result<Value, FnError> {
    let s = a.string(0)?;
    Ok(Value::String(base64::engine::general_purpose::STANDARD.encode(s.as_bytes())))
}

pub(super) fn f_base64decode(a: &Args) -> Result<Value, FnError> {
    let s = a.string(0)?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(s.as_bytes()).map_err(|e| FnError::at(0, format!("the string is not valid base64: {e}")))?;
    String::from_utf8(bytes).map(Value::String).map_err(|_| FnError::at(0, "the decoded bytes are not valid UTF-8 text"))
}

pub(super) fn f_jsonencode(a: &Args) -> Result<Value, FnError> {
    serde_json::to_string(&to_json(a.get(0)?)).map(Value::String).map_err(|e| FnError::at(0, format!("the value cannot be encoded as JSON: {e}")))
}

pub(super) fn f_jsondecode(a: &Args) -> Result<Value, FnError> {
    let s = a.string(0)?;
    let json: serde_json::Value = serde_json::from_str(&s).map_err(|e| FnError::at(0, format!("the string is not valid JSON: {e}")))?;
    Ok(integral_numbers(Value::from_json(&json)))
}

pub(super) fn f_yamlencode(a: &Args) -> Result<Value, FnError> {
    serde_yaml::to_string(&to_json(a.get(0)?)).map(Value::String).map_err(|e| FnError::at(0, format!("the value cannot be encoded as YAML: {e}")))
}

/// YAML 1.1 scalars resolved as Terraform resolves them (see `eval::yaml`).
pub(super) fn f_yamldecode(a: &Args) -> Result<Value, FnError> {
    let s = a.string(0)?;
    crate::eval::yaml::decode(&s).map_err(|e| FnError::at(0, format!("the string is not valid YAML: {e}")))
}

pub(super) fn f_uuidv5(a: &Args) -> Result<Value, FnError> {
    let namespace = a.string(0)?;
    let name = a.string(1)?;
    let ns = match namespace.as_str() {
        "dns" => uuid::Uuid::NAMESPACE_DNS,
        "url" => uuid::Uuid::NAMESPACE_URL,
        "oid" => uuid::Uuid::NAMESPACE_OID,
        "x500" => uuid::Uuid::NAMESPACE_X500,
        other => uuid::Uuid::parse_str(other)
            .map_err(|_| FnError::at(0, format!("expected \"dns\", \"url\", \"oid\", \"x500\" or a UUID as the namespace, found {}", quote(other))))?,
    };
    Ok(Value::String(uuid::Uuid::new_v5(&ns, name.as_bytes()).to_string()))
}

#[cfg(test)]
mod tests {
    use crate::eval::functions::test_support::*;
    use crate::value::Value;

    #[test]
    fn base64_round_trip() {
        same(&ok("base64encode", vec![s("Hello World")]), &s("SGVsbG8gV29ybGQ="));
        same(&ok("base64decode", vec![s("SGVsbG8gV29ybGQ=")]), &s("Hello World"));
        same(&ok("base64decode", vec![s("")]), &s(""));
        err_has("base64decode", vec![s("not base64!")], Some(0), "is not valid base64");
        err_has("base64decode", vec![s("/w==")], Some(0), "not valid UTF-8");
        err_has("base64encode", vec![list(vec![])], Some(0), "expected a string");
    }

    #[test]
    fn json_round_trip() {
        let v = map(&[("z", i(1)), ("a", list(vec![Value::Bool(true), Value::Null, f(1.5), s("x")]))]);
        same(&ok("jsonencode", vec![v.clone()]), &s("{\"z\":1,\"a\":[true,null,1.5,\"x\"]}"));
        same(&ok("jsonencode", vec![s("a\"b")]), &s("\"a\\\"b\""));
        same(&ok("jsonencode", vec![Value::Null]), &s("null"));
        same(&ok("jsonencode", vec![list(vec![f(3.0), f(-0.5), i(2)])]), &s("[3,-0.5,2]"));
        same(&ok("yamlencode", vec![f(3.0)]), &s("3\n"));
        same(&ok("format", vec![s("%v"), list(vec![f(3.0)])]), &s("[3]"));
        let back = ok("jsondecode", vec![s("{\"z\":1,\"a\":[true,null,1.5,\"x\"]}")]);
        assert_eq!(back, v);
        if let Value::Map(m) = &back {
            assert_eq!(m.keys().collect::<Vec<_>>(), ["z", "a"]);
        }
        same(&ok("jsondecode", vec![s("42")]), &i(42));
        same(&ok("jsondecode", vec![s("3.0")]), &i(3));
        same(&ok("jsondecode", vec![s("3.5")]), &f(3.5));
        same(&ok("jsondecode", vec![s("1e300")]), &f(1e300));
        assert_eq!(ok("jsondecode", vec![s("{\"a\":[2.0]}")]), map(&[("a", list(vec![i(2)]))]));
        same(&ok("yamldecode", vec![s("2.0")]), &i(2));
        same(&ok("yamldecode", vec![s("2.25")]), &f(2.25));
        err_has("jsondecode", vec![s("{nope")], Some(0), "the string is not valid JSON");
        err_has("jsondecode", vec![list(vec![])], Some(0), "expected a string");
        let deep = "[".repeat(10_000);
        err_has("jsondecode", vec![s(&deep)], Some(0), "not valid JSON");
    }

    #[test]
    fn yaml_round_trip() {
        let v = map(&[("name", s("web")), ("ports", list(vec![i(80), i(443)])), ("ratio", f(0.5))]);
        let text = ok("yamlencode", vec![v.clone()]);
        same(&text, &s("name: web\nports:\n- 80\n- 443\nratio: 0.5\n"));
        assert_eq!(ok("yamldecode", vec![text]), v);
        let decoded = ok("yamldecode", vec![s("b: 1\na: [x, y]\n1: one\ntrue: yes\nn: ~\n")]);
        // YAML 1.1 scalars as Terraform resolves them: `y`, `yes` are true
        // and the key `n` is false (tests/it/terraform_parity.rs checks
        // these against `terraform console`).
        assert_eq!(
            decoded,
            map(&[("b", i(1)), ("a", list(vec![s("x"), Value::Bool(true)])), ("1", s("one")), ("true", Value::Bool(true)), ("false", Value::Null)])
        );
        if let Value::Map(m) = &decoded {
            assert_eq!(m.keys().collect::<Vec<_>>(), ["b", "a", "1", "true", "false"]);
        }
        assert_eq!(
            ok("yamldecode", vec![s("base: &b {x: 1}\nderived:\n  <<: *b\n  z: 2\n")]),
            map(&[("base", map(&[("x", i(1))])), ("derived", map(&[("x", i(1)), ("z", i(2))]))])
        );
        // Terraform: `unsupported tag "!custom"`.
        err_has("yamldecode", vec![s("!custom 5")], Some(0), "unsupported tag");
        same(&ok("yamldecode", vec![s("")]), &Value::Null);
        err_has("yamldecode", vec![s("a: [1, 2")], Some(0), "the string is not valid YAML");
        err_has("yamldecode", vec![s("? [1, 2]\n: x\n")], Some(0), "mapping key is a list or map");
        err_has("yamldecode", vec![s("x: .inf\n")], Some(0), "not finite");
        err_has("yamldecode", vec![s("a: 1\n---\nb: 2\n")], Some(0), "not valid YAML");
    }

    #[test]
    fn hashes_and_uuid() {
        same(&ok("sha256", vec![s("hello world")]), &s("b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"));
        same(&ok("md5", vec![s("hello world")]), &s("5eb63bbbe01eeed093cb22bb8f5acdc3"));
        same(&ok("sha256", vec![s("")]), &s("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
        err_has("md5", vec![map(&[])], Some(0), "expected a string");

        same(&ok("uuidv5", vec![s("dns"), s("www.terraform.io")]), &s("a5008fae-b28c-5ba5-96cd-82b4c53552d6"));
        same(&ok("uuidv5", vec![s("url"), s("https://www.terraform.io/")]), &s("9db6f67c-dd95-5ea0-aa5b-e70e5c5f7cf5"));
        same(&ok("uuidv5", vec![s("6ba7b810-9dad-11d1-80b4-00c04fd430c8"), s("www.terraform.io")]), &s("a5008fae-b28c-5ba5-96cd-82b4c53552d6"));
        assert!(matches!(ok("uuidv5", vec![s("oid"), s("x")]), Value::String(_)));
        assert!(matches!(ok("uuidv5", vec![s("x500"), s("x")]), Value::String(_)));
        err_has("uuidv5", vec![s("bogus"), s("x")], Some(0), "\"dns\", \"url\", \"oid\", \"x500\" or a UUID");
    }
}
