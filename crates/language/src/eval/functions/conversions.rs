//! Type conversions: `tostring`, `tonumber`, `tobool`, `tolist`, `toset`,
//! `tomap`.
//!
//! Invariants: pure, no host access; Terraform semantics unless documented
//! here. Null converts to null. A set is a list of distinct elements,
//! sorted by [`value_cmp`] so that its order does not depend on the input's.

use super::args::{num_value, parse_number, quote, scalar_to_string, type_error, value_cmp, Args};
use super::collections::distinct;
use super::FnError;
use crate::value::Value;

pub(super) fn f_tostring(mut a: Args) -> Result<Value, FnError> {
    let v = a.take(0)?;
    match &v {
        Value::Null => Ok(Value::Null),
        other => match scalar_to_string(other) {
            Some(s) => Ok(Value::String(s)),
            None => Err(type_error(0, "a string, number or bool", other)),
        },
    }
}

pub(super) fn f_tonumber(mut a: Args) -> Result<Value, FnError> {
    match a.take(0)? {
        Value::Null => Ok(Value::Null),
        Value::Int(i) => Ok(Value::Int(i)),
        Value::Float(f) => Ok(num_value(f)),
        Value::String(s) => parse_number(&s)
            .ok_or_else(|| FnError::at(0, format!("expected a number or a string holding a number as the first argument, found the string {}", quote(&s)))),
        other => Err(type_error(0, "a number or a string holding a number", &other)),
    }
}

pub(super) fn f_tobool(mut a: Args) -> Result<Value, FnError> {
    match a.take(0)? {
        Value::Null => Ok(Value::Null),
        Value::Bool(b) => Ok(Value::Bool(b)),
        Value::String(s) if s == "true" => Ok(Value::Bool(true)),
        Value::String(s) if s == "false" => Ok(Value::Bool(false)),
        Value::String(s) => {
            Err(FnError::at(0, format!("expected a bool or the string \"true\" or \"false\" as the first argument, found the string {}", quote(&s))))
        }
        other => Err(type_error(0, "a bool or the string \"true\" or \"false\"", &other)),
    }
}

pub(super) fn f_tolist(mut a: Args) -> Result<Value, FnError> {
    match a.take(0)? {
        v @ (Value::Null | Value::List(_)) => Ok(v),
        other => Err(type_error(0, "a list", &other)),
    }
}

/// `toset`: distinct elements, sorted (see [`value_cmp`]).
pub(super) fn f_toset(mut a: Args) -> Result<Value, FnError> {
    match a.take(0)? {
        Value::Null => Ok(Value::Null),
        Value::List(items) => {
            let mut items = distinct(items);
            items.sort_by(value_cmp);
            Ok(Value::List(items))
        }
        other => Err(type_error(0, "a list", &other)),
    }
}

pub(super) fn f_tomap(mut a: Args) -> Result<Value, FnError> {
    match a.take(0)? {
        v @ (Value::Null | Value::Map(_)) => Ok(v),
        other => Err(type_error(0, "a map", &other)),
    }
}

#[cfg(test)]
mod tests {
    use crate::eval::functions::test_support::*;
    use crate::value::Value;

    #[test]
    fn tostring_values() {
        same(&ok("tostring", vec![s("a")]), &s("a"));
        same(&ok("tostring", vec![i(5)]), &s("5"));
        same(&ok("tostring", vec![f(5.0)]), &s("5"));
        same(&ok("tostring", vec![f(1.25)]), &s("1.25"));
        same(&ok("tostring", vec![Value::Bool(true)]), &s("true"));
        same(&ok("tostring", vec![Value::Null]), &Value::Null);
        err_has("tostring", vec![list(vec![])], Some(0), "expected a string, number or bool as the first argument, found a list");
        err_has("tostring", vec![map(&[])], Some(0), "found a map");
    }

    #[test]
    fn tonumber_values() {
        same(&ok("tonumber", vec![s("3")]), &i(3));
        same(&ok("tonumber", vec![s("3.5")]), &f(3.5));
        same(&ok("tonumber", vec![s("3.0")]), &i(3));
        same(&ok("tonumber", vec![s("-1e3")]), &i(-1000));
        same(&ok("tonumber", vec![s("1e300")]), &f(1e300));
        same(&ok("tonumber", vec![i(7)]), &i(7));
        same(&ok("tonumber", vec![f(7.0)]), &i(7));
        same(&ok("tonumber", vec![Value::Null]), &Value::Null);
        err_has("tonumber", vec![s("abc")], Some(0), "found the string \"abc\"");
        err_has("tonumber", vec![s("inf")], Some(0), "found the string");
        err_has("tonumber", vec![s("NaN")], Some(0), "found the string");
        err_has("tonumber", vec![s("1e999")], Some(0), "found the string");
        err_has("tonumber", vec![s("")], Some(0), "found the string");
        err_has("tonumber", vec![Value::Bool(true)], Some(0), "found a bool");
    }

    #[test]
    fn tobool_values() {
        same(&ok("tobool", vec![s("true")]), &Value::Bool(true));
        same(&ok("tobool", vec![s("false")]), &Value::Bool(false));
        same(&ok("tobool", vec![Value::Bool(true)]), &Value::Bool(true));
        same(&ok("tobool", vec![Value::Null]), &Value::Null);
        err_has("tobool", vec![s("yes")], Some(0), "found the string \"yes\"");
        err_has("tobool", vec![i(1)], Some(0), "found a number");
    }

    #[test]
    fn tolist_toset_tomap() {
        assert_eq!(ok("tolist", vec![slist(&["b", "a"])]), slist(&["b", "a"]));
        same(&ok("tolist", vec![Value::Null]), &Value::Null);
        err_has("tolist", vec![map(&[])], Some(0), "expected a list as the first argument, found a map");

        assert_eq!(ok("toset", vec![slist(&["c", "a", "c", "b"])]), slist(&["a", "b", "c"]));
        assert_eq!(ok("toset", vec![list(vec![i(10), i(2), f(2.0), i(-1)])]), list(vec![i(-1), i(2), i(10)]));
        assert_eq!(
            ok("toset", vec![list(vec![s("a"), i(1), Value::Bool(true), Value::Null, s("a")])]),
            list(vec![Value::Null, Value::Bool(true), i(1), s("a")])
        );
        same(&ok("toset", vec![Value::Null]), &Value::Null);
        err_has("toset", vec![s("a")], Some(0), "expected a list");

        assert_eq!(ok("tomap", vec![map(&[("a", i(1))])]), map(&[("a", i(1))]));
        same(&ok("tomap", vec![Value::Null]), &Value::Null);
        err_has("tomap", vec![list(vec![])], Some(0), "expected a map as the first argument, found a list");
    }
}
