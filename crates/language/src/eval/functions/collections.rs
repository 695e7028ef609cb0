//! Collection functions: `length`, `keys`, `values`, `merge`, `concat`,
//! `contains`, `lookup`, `flatten`, `distinct`, `range`, `sort`, `reverse`,
//! `zipmap`, `coalesce`, `element`, `index`, `slice`.
//!
//! Invariants: pure, no host access; Terraform semantics unless a
//! function's documentation here says otherwise. Maps keep their insertion
//! order except where Terraform sorts (`keys`, `values`). `range` builds at
//! most [`MAX_RANGE`] elements.

use super::args::{arity_message, describe, format_float, int_len, num_cmp, num_value, quote, scalar_to_string, type_error, Args};
use super::FnError;
use crate::value::{Map, Value};
use std::cmp::Ordering;
use std::collections::HashSet;

/// Largest list `range` may build.
const MAX_RANGE: usize = 1_000_000;

pub(super) fn f_length(a: &Args) -> Result<Value, FnError> {
    match a.get(0)? {
        Value::String(s) => Ok(int_len(s.chars().count())),
        Value::List(items) => Ok(int_len(items.len())),
        Value::Map(map) => Ok(int_len(map.len())),
        other => Err(type_error(0, "a string, list or map", other)),
    }
}

/// Keys sorted lexically.
pub(super) fn f_keys(mut a: Args) -> Result<Value, FnError> {
    let mut keys: Vec<String> = a.map(0)?.into_keys().collect();
    keys.sort();
    Ok(Value::List(keys.into_iter().map(Value::String).collect()))
}

/// Values in the order of their sorted keys.
pub(super) fn f_values(mut a: Args) -> Result<Value, FnError> {
    let mut entries: Vec<(String, Value)> = a.map(0)?.into_iter().collect();
    entries.sort_by(|x, y| x.0.cmp(&y.0));
    Ok(Value::List(entries.into_iter().map(|(_, v)| v).collect()))
}

/// Shallow merge; later arguments win; null arguments are skipped.
pub(super) fn f_merge(mut a: Args) -> Result<Value, FnError> {
    let mut out = Map::default();
    for i in 0..a.len() {
        match a.take(i)? {
            Value::Null => {}
            Value::Map(map) => out.extend(map),
            other => return Err(type_error(i, "a map", &other)),
        }
    }
    Ok(Value::Map(out))
}

pub(super) fn f_concat(mut a: Args) -> Result<Value, FnError> {
    let mut out = Vec::new();
    for i in 0..a.len() {
        out.extend(a.list(i)?);
    }
    Ok(Value::List(out))
}

pub(super) fn f_contains(mut a: Args) -> Result<Value, FnError> {
    let list = a.list(0)?;
    let needle = a.take(1)?;
    Ok(Value::Bool(list.contains(&needle)))
}

pub(super) fn f_lookup(mut a: Args) -> Result<Value, FnError> {
    let mut map = a.map(0)?;
    let key = a.string(1)?;
    if let Some(v) = map.swap_remove(&key) {
        return Ok(v);
    }
    if a.len() >= 3 {
        return a.take(2);
    }
    Err(FnError::at(1, format!("the map has no key {}; pass a default as the third argument to use when the key is missing", quote(&key))))
}

fn flatten_into(items: Vec<Value>, out: &mut Vec<Value>) {
    for item in items {
        match item {
            Value::List(inner) => flatten_into(inner, out),
            other => out.push(other),
        }
    }
}

pub(super) fn f_flatten(mut a: Args) -> Result<Value, FnError> {
    let mut out = Vec::new();
    flatten_into(a.list(0)?, &mut out);
    Ok(Value::List(out))
}

pub(super) fn distinct(items: Vec<Value>) -> Vec<Value> {
    let mut seen = HashSet::new();
    items.into_iter().filter(|v| seen.insert(v.canonical())).collect()
}

pub(super) fn f_distinct(mut a: Args) -> Result<Value, FnError> {
    Ok(Value::List(distinct(a.list(0)?)))
}

pub(super) fn f_range(a: &Args) -> Result<Value, FnError> {
    let nums = (0..a.len()).map(|i| a.number(i)).collect::<Result<Vec<_>, _>>()?;
    let (start, limit, step) = match nums.as_slice() {
        [limit] => (Value::Int(0), limit.clone(), None),
        [start, limit] => (start.clone(), limit.clone(), None),
        [start, limit, step] => (start.clone(), limit.clone(), Some(step.clone())),
        _ => return Err(FnError::new(arity_message("range", 1, Some(3), nums.len()))),
    };
    let too_long = |count: String| FnError::new(format!("the range would have {count} elements, but at most {MAX_RANGE} are allowed"));
    let whole = |v: &Value| match v {
        Value::Int(i) => Some(*i),
        _ => None,
    };
    if let (Some(start), Some(limit), Some(step)) =
        (whole(&start), whole(&limit), step.as_ref().map_or(Some(if limit_ge(&limit, &start) { 1 } else { -1 }), whole))
    {
        if step == 0 {
            return Err(FnError::at(2, "the step must not be zero"));
        }
        let (start, limit, step) = (i128::from(start), i128::from(limit), i128::from(step));
        let span = if step > 0 { limit - start } else { start - limit };
        let count = if span <= 0 { 0 } else { (span + step.abs() - 1) / step.abs() };
        if count > MAX_RANGE as i128 {
            return Err(too_long(count.to_string()));
        }
        let mut out = Vec::new();
        let mut n = start;
        for _ in 0..count {
            out.push(Value::Int(i64::try_from(n).map_err(|_| FnError::new("the range overflows"))?));
            n += step;
        }
        return Ok(Value::List(out));
    }
    // Fractional arguments: a list of numbers built in floating point.
    let start_f = start.as_f64().unwrap_or(0.0);
    let limit_f = limit.as_f64().unwrap_or(0.0);
    let step_f = match &step {
        Some(s) => s.as_f64().unwrap_or(0.0),
        None if limit_f >= start_f => 1.0,
        None => -1.0,
    };
    if !(start_f.is_finite() && limit_f.is_finite() && step_f.is_finite()) {
        return Err(FnError::new("the arguments of range must be finite numbers"));
    }
    if step_f == 0.0 {
        return Err(FnError::at(2, "the step must not be zero"));
    }
    let estimate = ((limit_f - start_f) / step_f).ceil();
    if estimate > MAX_RANGE as f64 {
        return Err(too_long(if estimate.is_finite() { format_float(estimate) } else { format!("more than {MAX_RANGE}") }));
    }
    let mut out = Vec::new();
    let mut k = 0.0_f64;
    loop {
        let n = start_f + k * step_f;
        let inside = if step_f > 0.0 { n < limit_f } else { n > limit_f };
        if !inside {
            break;
        }
        if out.len() >= MAX_RANGE {
            return Err(too_long(format!("more than {MAX_RANGE}")));
        }
        out.push(num_value(n));
        k += 1.0;
    }
    Ok(Value::List(out))
}

fn limit_ge(limit: &Value, start: &Value) -> bool {
    num_cmp(limit, start) != Ordering::Less
}

/// Strings sort lexically (by code point), numbers numerically.
pub(super) fn f_sort(mut a: Args) -> Result<Value, FnError> {
    let mut items = a.list(0)?;
    let all_strings = items.iter().all(|v| matches!(v, Value::String(_)));
    let all_numbers = items.iter().all(|v| matches!(v, Value::Int(_) | Value::Float(_)));
    if all_strings {
        items.sort_by(|x, y| match (x, y) {
            (Value::String(x), Value::String(y)) => x.cmp(y),
            _ => Ordering::Equal,
        });
    } else if all_numbers {
        items.sort_by(num_cmp);
    } else {
        let offender = items.iter().enumerate().find(|(_, v)| !matches!(v, Value::String(_) | Value::Int(_) | Value::Float(_)));
        let message = match offender {
            Some((i, v)) => format!("expected a list of strings or a list of numbers as the first argument, found a list whose element {i} is {}", describe(v)),
            None => "expected a list of strings or a list of numbers as the first argument, found a list that mixes strings and numbers".to_string(),
        };
        return Err(FnError::at(0, message));
    }
    Ok(Value::List(items))
}

pub(super) fn f_reverse(mut a: Args) -> Result<Value, FnError> {
    let mut items = a.list(0)?;
    items.reverse();
    Ok(Value::List(items))
}

/// A map key made from a string, number or bool.
fn key_string(v: &Value, what: impl Fn() -> String) -> Result<String, String> {
    scalar_to_string(v).ok_or_else(|| format!("{} is {}, but map keys must be strings", what(), describe(v)))
}

pub(super) fn f_zipmap(mut a: Args) -> Result<Value, FnError> {
    let keys = a.list(0)?;
    let values = a.list(1)?;
    if keys.len() != values.len() {
        return Err(FnError::at(1, format!("expected as many values as keys, found {} keys and {} values", keys.len(), values.len())));
    }
    let mut out = Map::default();
    for (i, (k, v)) in keys.iter().zip(values).enumerate() {
        let key = key_string(k, || format!("element {i} of the keys list")).map_err(|m| FnError::at(0, m))?;
        out.insert(key, v);
    }
    Ok(Value::Map(out))
}

/// First argument that is neither null nor an empty string.
pub(super) fn f_coalesce(a: Args) -> Result<Value, FnError> {
    for v in a.v {
        match &v {
            Value::Null => {}
            Value::String(s) if s.is_empty() => {}
            _ => return Ok(v),
        }
    }
    Err(FnError::new("every argument is null or an empty string; expected at least one non-null, non-empty value"))
}

pub(super) fn f_element(mut a: Args) -> Result<Value, FnError> {
    let items = a.list(0)?;
    let index = a.int(1)?;
    if items.is_empty() {
        return Err(FnError::at(0, "cannot take an element of an empty list"));
    }
    let Ok(index) = usize::try_from(index) else {
        return Err(FnError::at(1, format!("expected a non-negative index as the second argument, found {index}")));
    };
    let len = items.len();
    items.into_iter().nth(index % len).ok_or_else(|| FnError::at(1, "the index is out of range"))
}

pub(super) fn f_index(mut a: Args) -> Result<Value, FnError> {
    let items = a.list(0)?;
    let needle = a.take(1)?;
    match items.iter().position(|v| *v == needle) {
        Some(i) => Ok(int_len(i)),
        None => Err(FnError::at(1, format!("the list does not contain the value {needle}"))),
    }
}

pub(super) fn f_slice(mut a: Args) -> Result<Value, FnError> {
    let items = a.list(0)?;
    let start = a.int(1)?;
    let end = a.int(2)?;
    let len = items.len();
    let Ok(start_u) = usize::try_from(start) else {
        return Err(FnError::at(1, format!("expected a non-negative start index as the second argument, found {start}")));
    };
    let end_u = match usize::try_from(end) {
        Ok(e) if e <= len => e,
        _ => return Err(FnError::at(2, format!("expected an end index from 0 to {len} (the length of the list) as the third argument, found {end}"))),
    };
    if start_u > end_u {
        return Err(FnError::at(1, format!("the start index {start} is greater than the end index {end}")));
    }
    Ok(Value::List(items.get(start_u..end_u).unwrap_or_default().to_vec()))
}

#[cfg(test)]
mod tests {
    use crate::eval::functions::test_support::*;
    use crate::value::Value;

    #[test]
    fn length_counts() {
        same(&ok("length", vec![s("héllo")]), &i(5));
        same(&ok("length", vec![list(vec![i(1), i(2)])]), &i(2));
        same(&ok("length", vec![map(&[("a", i(1))])]), &i(1));
        same(&ok("length", vec![s("")]), &i(0));
        err_has("length", vec![i(3)], Some(0), "expected a string, list or map as the first argument, found a number");
        err_has("length", vec![Value::Null], Some(0), "found null");
    }

    #[test]
    fn keys_and_values_sorted() {
        let m = map(&[("b", i(2)), ("a", i(1)), ("c", i(3))]);
        assert_eq!(ok("keys", vec![m.clone()]), slist(&["a", "b", "c"]));
        assert_eq!(ok("values", vec![m]), list(vec![i(1), i(2), i(3)]));
        assert_eq!(ok("keys", vec![map(&[])]), list(vec![]));
        err_has("keys", vec![list(vec![])], Some(0), "expected a map as the first argument, found a list");
        err_has("values", vec![s("x")], Some(0), "expected a map as the first argument, found a string");
    }

    #[test]
    fn merge_later_wins() {
        let out = ok("merge", vec![map(&[("a", i(1)), ("b", i(2))]), Value::Null, map(&[("b", i(3)), ("c", i(4))])]);
        assert_eq!(out, map(&[("a", i(1)), ("b", i(3)), ("c", i(4))]));
        if let Value::Map(m) = &out {
            assert_eq!(m.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
        }
        assert_eq!(ok("merge", vec![]), map(&[]));
        err_has("merge", vec![map(&[]), list(vec![])], Some(1), "expected a map as the second argument, found a list");
    }

    #[test]
    fn concat_lists() {
        assert_eq!(ok("concat", vec![slist(&["a"]), slist(&[]), slist(&["b", "c"])]), slist(&["a", "b", "c"]));
        assert_eq!(ok("concat", vec![]), list(vec![]));
        err_has("concat", vec![slist(&["a"]), map(&[])], Some(1), "found a map");
    }

    #[test]
    fn contains_values() {
        assert_eq!(ok("contains", vec![slist(&["a", "b"]), s("b")]), Value::Bool(true));
        assert_eq!(ok("contains", vec![slist(&["a", "b"]), s("c")]), Value::Bool(false));
        assert_eq!(ok("contains", vec![list(vec![i(1)]), f(1.0)]), Value::Bool(true));
        assert_eq!(ok("contains", vec![list(vec![i(1)]), s("1")]), Value::Bool(false));
        err_has("contains", vec![s("abc"), s("a")], Some(0), "expected a list as the first argument");
    }

    #[test]
    fn lookup_with_and_without_default() {
        let m = map(&[("a", i(1))]);
        same(&ok("lookup", vec![m.clone(), s("a")]), &i(1));
        same(&ok("lookup", vec![m.clone(), s("b"), s("dflt")]), &s("dflt"));
        same(&ok("lookup", vec![m.clone(), s("b"), Value::Null]), &Value::Null);
        err_has("lookup", vec![m.clone(), s("b")], Some(1), "the map has no key \"b\"; pass a default");
        err_has("lookup", vec![list(vec![]), s("b")], Some(0), "expected a map as the first argument");
        err_has("lookup", vec![m, list(vec![])], Some(1), "expected a string as the second argument, found a list");
    }

    #[test]
    fn flatten_deep() {
        let nested = list(vec![s("a"), list(vec![s("b"), list(vec![s("c"), list(vec![])])]), Value::Null, map(&[("k", list(vec![i(1)]))])]);
        assert_eq!(ok("flatten", vec![nested]), list(vec![s("a"), s("b"), s("c"), Value::Null, map(&[("k", list(vec![i(1)]))])]));
        err_has("flatten", vec![s("a")], Some(0), "expected a list");
    }

    #[test]
    fn distinct_keeps_first() {
        assert_eq!(ok("distinct", vec![slist(&["b", "a", "b", "c", "a"])]), slist(&["b", "a", "c"]));
        assert_eq!(ok("distinct", vec![list(vec![i(1), f(1.0), s("1")])]), list(vec![i(1), s("1")]));
        assert_eq!(
            ok("distinct", vec![list(vec![map(&[("a", i(1)), ("b", i(2))]), map(&[("b", i(2)), ("a", i(1))])])]),
            list(vec![map(&[("a", i(1)), ("b", i(2))])])
        );
        err_has("distinct", vec![map(&[])], Some(0), "expected a list");
    }

    #[test]
    fn range_forms() {
        assert_eq!(ok("range", vec![i(3)]), list(vec![i(0), i(1), i(2)]));
        assert_eq!(ok("range", vec![i(1), i(4)]), list(vec![i(1), i(2), i(3)]));
        assert_eq!(ok("range", vec![i(1), i(8), i(2)]), list(vec![i(1), i(3), i(5), i(7)]));
        assert_eq!(ok("range", vec![i(4), i(1)]), list(vec![i(4), i(3), i(2)]));
        assert_eq!(ok("range", vec![i(10), i(5), i(-2)]), list(vec![i(10), i(8), i(6)]));
        assert_eq!(ok("range", vec![i(-3)]), list(vec![i(0), i(-1), i(-2)]));
        assert_eq!(ok("range", vec![i(0)]), list(vec![]));
        assert_eq!(ok("range", vec![i(1), i(5), i(-1)]), list(vec![]));
        assert_eq!(ok("range", vec![s("2")]), list(vec![i(0), i(1)]));
        let halves = ok("range", vec![i(1), i(3), f(0.5)]);
        assert_eq!(halves, list(vec![i(1), f(1.5), i(2), f(2.5)]));
        if let Value::List(items) = &halves {
            same(&items[0], &i(1));
        }
        assert_eq!(ok("range", vec![f(0.5)]), list(vec![i(0)]));
        assert_eq!(ok("range", vec![i(i64::MAX - 1), i(i64::MAX)]), list(vec![i(i64::MAX - 1)]));
        match ok("range", vec![i(1_000_000)]) {
            Value::List(items) => assert_eq!(items.len(), 1_000_000),
            other => panic!("unexpected {other}"),
        }
        err_has("range", vec![i(1_000_001)], None, "at most 1000000");
        err_has("range", vec![i(i64::MIN), i(i64::MAX)], None, "at most 1000000");
        err_has("range", vec![f(0.0), f(1e9), f(0.5)], None, "at most 1000000");
        err_has("range", vec![i(0), i(5), i(0)], Some(2), "the step must not be zero");
        err_has("range", vec![i(0), f(5.5), f(0.0)], Some(2), "the step must not be zero");
        err_has("range", vec![s("x")], Some(0), "expected a number as the first argument, found a string");
        err_has("range", vec![i(1), list(vec![])], Some(1), "expected a number as the second argument");
    }

    #[test]
    fn sort_strings_and_numbers() {
        assert_eq!(ok("sort", vec![slist(&["b", "a", "C", "aa"])]), slist(&["C", "a", "aa", "b"]));
        assert_eq!(ok("sort", vec![list(vec![i(10), f(2.5), i(-1)])]), list(vec![i(-1), f(2.5), i(10)]));
        assert_eq!(ok("sort", vec![list(vec![])]), list(vec![]));
        err_has("sort", vec![list(vec![s("a"), i(1)])], Some(0), "mixes strings and numbers");
        err_has("sort", vec![list(vec![s("a"), Value::Null])], Some(0), "element 1 is null");
        err_has("sort", vec![s("a")], Some(0), "expected a list");
    }

    #[test]
    fn reverse_list() {
        assert_eq!(ok("reverse", vec![slist(&["a", "b", "c"])]), slist(&["c", "b", "a"]));
        err_has("reverse", vec![s("abc")], Some(0), "expected a list as the first argument, found a string");
    }

    #[test]
    fn zipmap_pairs() {
        assert_eq!(ok("zipmap", vec![slist(&["a", "b"]), list(vec![i(1), list(vec![])])]), map(&[("a", i(1)), ("b", list(vec![]))]));
        assert_eq!(ok("zipmap", vec![list(vec![i(1), s("1")]), slist(&["x", "y"])]), map(&[("1", s("y"))]));
        err_has("zipmap", vec![slist(&["a"]), list(vec![])], Some(1), "found 1 keys and 0 values");
        err_has("zipmap", vec![list(vec![Value::Null]), list(vec![i(1)])], Some(0), "element 0 of the keys list is null");
        err_has("zipmap", vec![s("a"), list(vec![])], Some(0), "expected a list");
    }

    #[test]
    fn coalesce_first_present() {
        same(&ok("coalesce", vec![Value::Null, s(""), s("b"), s("c")]), &s("b"));
        same(&ok("coalesce", vec![Value::Null, i(0)]), &i(0));
        same(&ok("coalesce", vec![Value::Bool(false)]), &Value::Bool(false));
        err_has("coalesce", vec![Value::Null, s("")], None, "every argument is null or an empty string");
    }

    #[test]
    fn element_index_slice() {
        err_has("element", vec![slist(&["a"]), f(1e20)], Some(1), "found 100000000000000000000, which is too large");
        let l = slist(&["a", "b", "c"]);
        same(&ok("element", vec![l.clone(), i(1)]), &s("b"));
        same(&ok("element", vec![l.clone(), i(4)]), &s("b"));
        err_has("element", vec![l.clone(), i(-1)], Some(1), "non-negative index");
        err_has("element", vec![list(vec![]), i(0)], Some(0), "empty list");
        err_has("element", vec![l.clone(), f(1.5)], Some(1), "expected a whole number as the second argument, found 1.5");

        same(&ok("index", vec![l.clone(), s("c")]), &i(2));
        err_has("index", vec![l.clone(), s("z")], Some(1), "does not contain the value \"z\"");
        err_has("index", vec![map(&[]), s("z")], Some(0), "expected a list");

        assert_eq!(ok("slice", vec![l.clone(), i(1), i(3)]), slist(&["b", "c"]));
        assert_eq!(ok("slice", vec![l.clone(), i(1), i(1)]), slist(&[]));
        assert_eq!(ok("slice", vec![l.clone(), i(0), i(3)]), l);
        err_has("slice", vec![l.clone(), i(-1), i(2)], Some(1), "non-negative start index");
        err_has("slice", vec![l.clone(), i(0), i(4)], Some(2), "from 0 to 3");
        err_has("slice", vec![l.clone(), i(0), i(-4)], Some(2), "from 0 to 3");
        err_has("slice", vec![l, i(2), i(1)], Some(1), "greater than the end index");
    }
}
