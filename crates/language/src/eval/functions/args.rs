//! Argument helpers shared by every family: [`Args`] (typed access to a
//! call's arguments; `take`, `list` and `map` move values out instead of
//! cloning them), the builders of error messages (`type_error`,
//! `arity_message`, `describe`, `ordinal`, `quote`), and number helpers
//! (`num_value`, `to_number`, `parse_number`, `num_cmp`, `value_cmp`).
//!
//! Invariants: pure, no host access. Error messages start lower-case and
//! name the offending argument by index (the evaluator turns it into a
//! span). A number is an Int when it is integral and exactly representable,
//! a Float otherwise, so results print as Terraform prints them.

use super::FnError;
use crate::value::{Map, Value};
use std::cmp::Ordering;

pub(super) struct Args {
    pub(super) v: Vec<Value>,
}

impl Args {
    pub(super) fn len(&self) -> usize {
        self.v.len()
    }

    pub(super) fn get(&self, i: usize) -> Result<&Value, FnError> {
        self.v.get(i).ok_or_else(|| missing(i))
    }

    /// Moves argument `i` out, leaving null behind.
    pub(super) fn take(&mut self, i: usize) -> Result<Value, FnError> {
        match self.v.get_mut(i) {
            Some(slot) => Ok(std::mem::replace(slot, Value::Null)),
            None => Err(missing(i)),
        }
    }

    /// A string argument; numbers and bools convert to their string form.
    pub(super) fn string(&self, i: usize) -> Result<String, FnError> {
        let v = self.get(i)?;
        scalar_to_string(v).ok_or_else(|| type_error(i, "a string", v))
    }

    /// A number argument (Int or Float); numeric strings are converted.
    pub(super) fn number(&self, i: usize) -> Result<Value, FnError> {
        let v = self.get(i)?;
        to_number(v).ok_or_else(|| type_error(i, "a number", v))
    }

    /// A whole-number argument.
    pub(super) fn int(&self, i: usize) -> Result<i64, FnError> {
        let v = self.get(i)?;
        match to_number(v) {
            Some(n) => n.as_i64().ok_or_else(|| {
                FnError::at(
                    i,
                    format!(
                        "expected a whole number as the {} argument, found {}{}",
                        ordinal(i),
                        n,
                        if n.as_f64().is_some_and(|f| f.fract() == 0.0) { ", which is too large" } else { "" }
                    ),
                )
            }),
            None => Err(type_error(i, "a whole number", v)),
        }
    }

    pub(super) fn list(&mut self, i: usize) -> Result<Vec<Value>, FnError> {
        match self.take(i)? {
            Value::List(items) => Ok(items),
            other => Err(type_error(i, "a list", &other)),
        }
    }

    pub(super) fn map(&mut self, i: usize) -> Result<Map, FnError> {
        match self.take(i)? {
            Value::Map(map) => Ok(map),
            other => Err(type_error(i, "a map", &other)),
        }
    }
}

fn missing(i: usize) -> FnError {
    FnError::at(i, format!("the {} argument is missing", ordinal(i)))
}

pub(super) fn type_error(i: usize, expected: &str, found: &Value) -> FnError {
    FnError::at(i, format!("expected {expected} as the {} argument, found {}", ordinal(i), describe(found)))
}

pub(super) fn arity_message(name: &str, min: usize, max: Option<usize>, given: usize) -> String {
    let plural = |n: usize| if n == 1 { "argument" } else { "arguments" };
    let expected = match max {
        Some(max) if max == min => format!("exactly {min} {}", plural(min)),
        Some(max) => format!("{min} to {max} arguments"),
        None => format!("at least {min} {}", plural(min)),
    };
    format!("the function {name} takes {expected}, but {given} {} given", if given == 1 { "was" } else { "were" })
}

/// "a string", "a list", "null", ... for error messages.
pub(super) fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Int(_) | Value::Float(_) => "a number",
        Value::String(_) => "a string",
        Value::List(_) => "a list",
        Value::Map(_) => "a map",
        Value::Unknown => "a value that is not known yet",
        Value::Sensitive(_) => "a sensitive value",
    }
}

pub(super) fn ordinal(i: usize) -> String {
    const WORDS: [&str; 10] = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth"];
    if let Some(word) = WORDS.get(i) {
        return (*word).to_string();
    }
    let n = i.saturating_add(1);
    let suffix = match (n % 10, n % 100) {
        (1, r) if r != 11 => "st",
        (2, r) if r != 12 => "nd",
        (3, r) if r != 13 => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// JSON-style quoting for messages and `%q`.
pub(super) fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

pub(super) fn int_len(n: usize) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// A number as a Value: Int when integral (and exactly representable).
pub(super) fn num_value(f: f64) -> Value {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 {
        Value::Int(f as i64)
    } else {
        Value::Float(f)
    }
}

pub(super) fn format_float(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 {
        (f as i64).to_string()
    } else {
        f.to_string()
    }
}

pub(super) fn scalar_to_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Float(f) => Some(format_float(*f)),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Parses a number the way `tonumber` does: Int when integral.
pub(super) fn parse_number(s: &str) -> Option<Value> {
    if let Ok(i) = s.parse::<i64>() {
        return Some(Value::Int(i));
    }
    // Reject the words Rust accepts ("inf", "NaN", ...).
    if s.is_empty() || !s.chars().all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '.' | 'e' | 'E')) {
        return None;
    }
    let f: f64 = s.parse().ok()?;
    f.is_finite().then(|| num_value(f))
}

pub(super) fn to_number(v: &Value) -> Option<Value> {
    match v {
        Value::Int(i) => Some(Value::Int(*i)),
        Value::Float(f) => Some(Value::Float(*f)),
        Value::String(s) => parse_number(s),
        _ => None,
    }
}

/// Compares two numbers (Int or Float); other values compare equal.
pub(super) fn num_cmp(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        _ => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            _ => Ordering::Equal,
        },
    }
}

/// A total order over values used by `toset`: null < bools < numbers <
/// strings < lists < maps; within a kind the natural order (lists and maps by
/// canonical text).
pub(super) fn value_cmp(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Int(_) | Value::Float(_) => 2,
            Value::String(_) => 3,
            Value::List(_) => 4,
            Value::Map(_) => 5,
            Value::Unknown | Value::Sensitive(_) => 6,
        }
    }
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => num_cmp(a, b),
        _ => rank(a).cmp(&rank(b)).then_with(|| a.canonical().cmp(&b.canonical())),
    }
}
