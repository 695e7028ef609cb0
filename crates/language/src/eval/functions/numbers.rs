//! Number functions: `abs`, `ceil` and `floor` (both [`f_round`]), `min`
//! and `max` (both [`f_min_max`]).
//!
//! Invariants: pure, no host access; Terraform semantics unless documented
//! here. Numeric strings are accepted where a number is expected; results
//! are Ints when integral.

use super::args::{describe, num_cmp, num_value, to_number, Args};
use super::FnError;
use crate::value::Value;
use std::cmp::Ordering;

pub(super) fn f_abs(a: &Args) -> Result<Value, FnError> {
    match a.number(0)? {
        Value::Int(i) => Ok(i.checked_abs().map_or(Value::Float((i as f64).abs()), Value::Int)),
        other => Ok(num_value(other.as_f64().unwrap_or(0.0).abs())),
    }
}

pub(super) fn f_round(a: &Args, op: fn(f64) -> f64) -> Result<Value, FnError> {
    match a.number(0)? {
        Value::Int(i) => Ok(Value::Int(i)),
        other => Ok(num_value(op(other.as_f64().unwrap_or(0.0)))),
    }
}

/// `min`/`max` over number arguments, or over the elements of a single list
/// argument.
pub(super) fn f_min_max(mut a: Args, want: Ordering) -> Result<Value, FnError> {
    let single_list = a.len() == 1 && matches!(a.get(0)?, Value::List(_));
    let mut nums = Vec::new();
    if single_list {
        let items = a.list(0)?;
        if items.is_empty() {
            return Err(FnError::at(0, "expected at least one number, found an empty list"));
        }
        for (i, item) in items.iter().enumerate() {
            nums.push(to_number(item).ok_or_else(|| {
                FnError::at(0, format!("expected a list of numbers as the first argument, found a list whose element {i} is {}", describe(item)))
            })?);
        }
    } else {
        for i in 0..a.len() {
            nums.push(a.number(i)?);
        }
    }
    let mut best: Option<Value> = None;
    for n in nums {
        best = match best {
            Some(b) if num_cmp(&n, &b) != want => Some(b),
            _ => Some(n),
        };
    }
    match best {
        Some(Value::Float(f)) => Ok(num_value(f)),
        Some(v) => Ok(v),
        None => Err(FnError::new("expected at least one number")),
    }
}

#[cfg(test)]
mod tests {
    use crate::eval::functions::test_support::*;
    use crate::value::Value;

    #[test]
    fn numeric_helpers() {
        same(&ok("abs", vec![i(-5)]), &i(5));
        same(&ok("abs", vec![f(-2.5)]), &f(2.5));
        same(&ok("abs", vec![f(-3.0)]), &i(3));
        same(&ok("abs", vec![i(i64::MIN)]), &f(9.223372036854776e18));
        err_has("abs", vec![s("x")], Some(0), "expected a number");

        same(&ok("ceil", vec![f(1.2)]), &i(2));
        same(&ok("ceil", vec![i(4)]), &i(4));
        same(&ok("floor", vec![f(-1.2)]), &i(-2));
        same(&ok("floor", vec![f(1e300)]), &f(1e300));
        err_has("floor", vec![Value::Null], Some(0), "expected a number as the first argument, found null");

        same(&ok("min", vec![i(12), i(54), i(3)]), &i(3));
        same(&ok("max", vec![i(12), f(54.5), i(3)]), &f(54.5));
        same(&ok("max", vec![list(vec![i(1), i(9), i(4)])]), &i(9));
        same(&ok("min", vec![f(2.0), i(5)]), &i(2));
        same(&ok("min", vec![s("4"), i(5)]), &i(4));
        err_has("min", vec![list(vec![])], Some(0), "empty list");
        err_has("max", vec![list(vec![i(1), s("x")])], Some(0), "element 1 is a string");
        err_has("max", vec![i(1), Value::Bool(true)], Some(1), "expected a number as the second argument, found a bool");
    }
}
