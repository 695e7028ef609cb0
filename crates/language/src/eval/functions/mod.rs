//! The language's standard function library.
//!
//! Functions behave like Terraform's functions of the same names unless the
//! documentation of a function here says otherwise. They are pure: anything
//! that touches the outside world (environment variables, files) goes through
//! [`FnHost`], which the CLI implements and records.
//!
//! The evaluator strips unknown values and sensitivity marks before calling
//! [`call`] and re-applies them to the result; [`call`] still refuses such
//! arguments with an error instead of misbehaving.

use crate::value::{Map, Value};
use base64::Engine as _;
use sha2::Digest as _;
use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// What the function needs from the outside world. The evaluator does no IO
/// itself; the CLI implements this and records what it returned.
pub trait FnHost {
    /// Value of an environment variable, None if unset.
    fn env(&mut self, name: &str) -> Option<String>;
    /// Contents of a UTF-8 text file; `path` is relative to the module
    /// directory or absolute. Err(message) when unreadable.
    fn read_file(&mut self, path: &str) -> Result<String, String>;
    /// Paths (relative to `dir`, '/'-separated, sorted) of files under `dir`
    /// matching glob `pattern` (e.g. "**/*.yaml").
    fn fileset(&mut self, dir: &str, pattern: &str) -> Result<Vec<String>, String>;
    /// Err(why) when `path` (as `read_file` and `fileset` take it) leaves
    /// the directories expressions may read: `file`, `fileset` and
    /// `template` then fail with [`OUTSIDE_CODE`] before reading anything.
    fn confine(&mut self, _path: &str) -> Result<(), String> {
        Ok(())
    }
}

/// The code of a file function refused a path outside the project.
pub const OUTSIDE_CODE: &str = "P2100";

/// Checks `path` (argument 0 of `function`) with [`FnHost::confine`].
fn confined(host: &mut dyn FnHost, function: &str, path: &str) -> Result<(), FnError> {
    host.confine(path).map_err(|why| FnError {
        message: why.clone(),
        arg: Some(0),
        diagnostic: Some(Box::new(
            crate::diagnostic::Diagnostic::new(OUTSIDE_CODE, format!("`{function}` may not read outside the project"))
                .help(format!(
                    "{why}. `file`, `fileset` and `template` read only inside the project directory (and a module's own directory, and a `file.tree`'s template directory), with symbolic links resolved. Copy what is needed into the project."
                )),
        )),
    })
}

/// A failed function call.
#[derive(Debug, Clone, PartialEq)]
pub struct FnError {
    pub message: String,
    /// Index of the offending argument, for source spans.
    pub arg: Option<usize>,
    /// A complete diagnostic to report instead of the generic `P2022`
    /// (`template` reports its template errors, with their own codes and
    /// template positions, this way).
    pub diagnostic: Option<Box<crate::diagnostic::Diagnostic>>,
}

impl FnError {
    fn new(message: impl Into<String>) -> FnError {
        FnError { message: message.into(), arg: None, diagnostic: None }
    }

    fn at(arg: usize, message: impl Into<String>) -> FnError {
        FnError { message: message.into(), arg: Some(arg), diagnostic: None }
    }
}

impl fmt::Display for FnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FnError {}

/// Every function name, sorted (used for "did you mean" and validation).
pub const FUNCTION_NAMES: &[&str] = &[
    "abs",
    "base64decode",
    "base64encode",
    "ceil",
    "cidrhost",
    "cidrsubnet",
    "coalesce",
    "concat",
    "contains",
    "distinct",
    "element",
    "endswith",
    "env",
    "file",
    "fileset",
    "flatten",
    "floor",
    "format",
    "index",
    "join",
    "jsondecode",
    "jsonencode",
    "keys",
    "length",
    "lookup",
    "lower",
    "max",
    "md5",
    "merge",
    "min",
    "range",
    "regex",
    "replace",
    "reverse",
    "semver_match",
    "sha256",
    "slice",
    "sort",
    "split",
    "startswith",
    "substr",
    "template",
    "tobool",
    "tolist",
    "tomap",
    "tonumber",
    "toset",
    "tostring",
    "trim",
    "trimprefix",
    "trimspace",
    "trimsuffix",
    "upper",
    "uuidv5",
    "values",
    "yamldecode",
    "yamlencode",
    "zipmap",
];

/// (min_args, max_args) where max None = variadic; None if the function does
/// not exist.
pub fn arity(name: &str) -> Option<(usize, Option<usize>)> {
    let fixed = |n: usize| Some((n, Some(n)));
    match name {
        "abs" | "base64decode" | "base64encode" | "ceil" | "distinct" | "file" | "flatten" | "floor" | "jsondecode" | "jsonencode" | "keys" | "length"
        | "lower" | "md5" | "reverse" | "sha256" | "sort" | "tobool" | "tolist" | "tomap" | "tonumber" | "toset" | "tostring" | "trimspace" | "upper"
        | "values" | "yamldecode" | "yamlencode" => fixed(1),
        "cidrhost" | "contains" | "element" | "endswith" | "fileset" | "index" | "join" | "regex" | "semver_match" | "split" | "startswith" | "trim"
        | "trimprefix" | "trimsuffix" | "uuidv5" | "zipmap" => fixed(2),
        "cidrsubnet" | "replace" | "slice" | "substr" => fixed(3),
        "env" => Some((1, Some(2))),
        "template" => Some((2, Some(4))),
        "lookup" => Some((2, Some(3))),
        "range" => Some((1, Some(3))),
        "coalesce" | "format" | "max" | "min" => Some((1, None)),
        "concat" | "merge" => Some((0, None)),
        _ => None,
    }
}

/// Calls a function. The caller guarantees: `args` contain no Value::Unknown
/// and no Value::Sensitive anywhere (it strips them and re-marks the result),
/// and arity was already checked. Still, never panic if violated: return an
/// FnError.
pub fn call(name: &str, args: Vec<Value>, host: &mut dyn FnHost) -> Result<Value, FnError> {
    let Some((min, max)) = arity(name) else {
        return Err(FnError::new(format!("there is no function named {}", quote(name))));
    };
    if args.len() < min || max.is_some_and(|max| args.len() > max) {
        return Err(FnError::new(arity_message(name, min, max, args.len())));
    }
    for (i, arg) in args.iter().enumerate() {
        if arg.is_unknown_deep() {
            return Err(FnError::at(
                i,
                format!("the {} argument contains a value that is not known yet; functions can only be called with known values", ordinal(i)),
            ));
        }
        if arg.is_sensitive_deep() {
            return Err(FnError::at(
                i,
                format!("the {} argument still carries a sensitive mark; marks must be removed before a function is called", ordinal(i)),
            ));
        }
    }
    let a = Args { v: args };
    match name {
        "abs" => f_abs(&a),
        "base64decode" => f_base64decode(&a),
        "base64encode" => f_base64encode(&a),
        "ceil" => f_round(&a, f64::ceil),
        "cidrhost" => f_cidrhost(&a),
        "cidrsubnet" => f_cidrsubnet(&a),
        "coalesce" => f_coalesce(a),
        "concat" => f_concat(a),
        "contains" => f_contains(a),
        "distinct" => f_distinct(a),
        "element" => f_element(a),
        "endswith" => Ok(Value::Bool(a.string(0)?.ends_with(&a.string(1)?))),
        "env" => f_env(a, host),
        "file" => f_file(&a, host),
        "fileset" => f_fileset(&a, host),
        "flatten" => f_flatten(a),
        "floor" => f_round(&a, f64::floor),
        "format" => f_format(&a),
        "index" => f_index(a),
        "join" => f_join(a),
        "jsondecode" => f_jsondecode(&a),
        "jsonencode" => f_jsonencode(&a),
        "keys" => f_keys(a),
        "length" => f_length(&a),
        "lookup" => f_lookup(a),
        "lower" => Ok(Value::String(a.string(0)?.to_lowercase())),
        "max" => f_min_max(a, Ordering::Greater),
        "md5" => Ok(Value::String(hex::encode(md5::Md5::digest(a.string(0)?.as_bytes())))),
        "merge" => f_merge(a),
        "min" => f_min_max(a, Ordering::Less),
        "range" => f_range(&a),
        "regex" => f_regex(&a),
        "replace" => f_replace(&a),
        "reverse" => f_reverse(a),
        "semver_match" => f_semver_match(&a),
        "sha256" => Ok(Value::String(hex::encode(sha2::Sha256::digest(a.string(0)?.as_bytes())))),
        "slice" => f_slice(a),
        "sort" => f_sort(a),
        "split" => f_split(&a),
        "startswith" => Ok(Value::Bool(a.string(0)?.starts_with(&a.string(1)?))),
        "substr" => f_substr(&a),
        "template" => f_template(&a, host),
        "tobool" => f_tobool(a),
        "tolist" => f_tolist(a),
        "tomap" => f_tomap(a),
        "tonumber" => f_tonumber(a),
        "toset" => f_toset(a),
        "tostring" => f_tostring(a),
        "trim" => f_trim(&a),
        "trimprefix" => {
            let s = a.string(0)?;
            let prefix = a.string(1)?;
            Ok(Value::String(s.strip_prefix(prefix.as_str()).unwrap_or(&s).to_string()))
        }
        "trimspace" => Ok(Value::String(a.string(0)?.trim().to_string())),
        "trimsuffix" => {
            let s = a.string(0)?;
            let suffix = a.string(1)?;
            Ok(Value::String(s.strip_suffix(suffix.as_str()).unwrap_or(&s).to_string()))
        }
        "upper" => Ok(Value::String(a.string(0)?.to_uppercase())),
        "uuidv5" => f_uuidv5(&a),
        "values" => f_values(a),
        "yamldecode" => f_yamldecode(&a),
        "yamlencode" => f_yamlencode(&a),
        "zipmap" => f_zipmap(a),
        _ => Err(FnError::new(format!("there is no function named {}", quote(name)))),
    }
}

// ---------------------------------------------------------------------------
// Argument helpers
// ---------------------------------------------------------------------------

/// Largest list `range` may build.
const MAX_RANGE: usize = 1_000_000;
/// Largest width or precision accepted in a `format` verb.
const MAX_FORMAT_WIDTH: usize = 10_000;

struct Args {
    v: Vec<Value>,
}

impl Args {
    fn len(&self) -> usize {
        self.v.len()
    }

    fn get(&self, i: usize) -> Result<&Value, FnError> {
        self.v.get(i).ok_or_else(|| missing(i))
    }

    /// Moves argument `i` out, leaving null behind.
    fn take(&mut self, i: usize) -> Result<Value, FnError> {
        match self.v.get_mut(i) {
            Some(slot) => Ok(std::mem::replace(slot, Value::Null)),
            None => Err(missing(i)),
        }
    }

    /// A string argument; numbers and bools convert to their string form.
    fn string(&self, i: usize) -> Result<String, FnError> {
        let v = self.get(i)?;
        scalar_to_string(v).ok_or_else(|| type_error(i, "a string", v))
    }

    /// A number argument (Int or Float); numeric strings are converted.
    fn number(&self, i: usize) -> Result<Value, FnError> {
        let v = self.get(i)?;
        to_number(v).ok_or_else(|| type_error(i, "a number", v))
    }

    /// A whole-number argument.
    fn int(&self, i: usize) -> Result<i64, FnError> {
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

    fn list(&mut self, i: usize) -> Result<Vec<Value>, FnError> {
        match self.take(i)? {
            Value::List(items) => Ok(items),
            other => Err(type_error(i, "a list", &other)),
        }
    }

    fn map(&mut self, i: usize) -> Result<Map, FnError> {
        match self.take(i)? {
            Value::Map(map) => Ok(map),
            other => Err(type_error(i, "a map", &other)),
        }
    }
}

fn missing(i: usize) -> FnError {
    FnError::at(i, format!("the {} argument is missing", ordinal(i)))
}

fn type_error(i: usize, expected: &str, found: &Value) -> FnError {
    FnError::at(i, format!("expected {expected} as the {} argument, found {}", ordinal(i), describe(found)))
}

fn arity_message(name: &str, min: usize, max: Option<usize>, given: usize) -> String {
    let plural = |n: usize| if n == 1 { "argument" } else { "arguments" };
    let expected = match max {
        Some(max) if max == min => format!("exactly {min} {}", plural(min)),
        Some(max) => format!("{min} to {max} arguments"),
        None => format!("at least {min} {}", plural(min)),
    };
    format!("the function {name} takes {expected}, but {given} {} given", if given == 1 { "was" } else { "were" })
}

/// "a string", "a list", "null", ... for error messages.
fn describe(v: &Value) -> &'static str {
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

fn ordinal(i: usize) -> String {
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
fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn int_len(n: usize) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// A number as a Value: Int when integral (and exactly representable).
fn num_value(f: f64) -> Value {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 {
        Value::Int(f as i64)
    } else {
        Value::Float(f)
    }
}

fn format_float(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 {
        (f as i64).to_string()
    } else {
        f.to_string()
    }
}

fn scalar_to_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Float(f) => Some(format_float(*f)),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Parses a number the way `tonumber` does: Int when integral.
fn parse_number(s: &str) -> Option<Value> {
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

fn to_number(v: &Value) -> Option<Value> {
    match v {
        Value::Int(i) => Some(Value::Int(*i)),
        Value::Float(f) => Some(Value::Float(*f)),
        Value::String(s) => parse_number(s),
        _ => None,
    }
}

/// Compares two numbers (Int or Float); other values compare equal.
fn num_cmp(a: &Value, b: &Value) -> Ordering {
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
fn value_cmp(a: &Value, b: &Value) -> Ordering {
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

// ---------------------------------------------------------------------------
// Collections
// ---------------------------------------------------------------------------

fn f_length(a: &Args) -> Result<Value, FnError> {
    match a.get(0)? {
        Value::String(s) => Ok(int_len(s.chars().count())),
        Value::List(items) => Ok(int_len(items.len())),
        Value::Map(map) => Ok(int_len(map.len())),
        other => Err(type_error(0, "a string, list or map", other)),
    }
}

/// Keys sorted lexically.
fn f_keys(mut a: Args) -> Result<Value, FnError> {
    let mut keys: Vec<String> = a.map(0)?.into_keys().collect();
    keys.sort();
    Ok(Value::List(keys.into_iter().map(Value::String).collect()))
}

/// Values in the order of their sorted keys.
fn f_values(mut a: Args) -> Result<Value, FnError> {
    let mut entries: Vec<(String, Value)> = a.map(0)?.into_iter().collect();
    entries.sort_by(|x, y| x.0.cmp(&y.0));
    Ok(Value::List(entries.into_iter().map(|(_, v)| v).collect()))
}

/// Shallow merge; later arguments win; null arguments are skipped.
fn f_merge(mut a: Args) -> Result<Value, FnError> {
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

fn f_concat(mut a: Args) -> Result<Value, FnError> {
    let mut out = Vec::new();
    for i in 0..a.len() {
        out.extend(a.list(i)?);
    }
    Ok(Value::List(out))
}

fn f_contains(mut a: Args) -> Result<Value, FnError> {
    let list = a.list(0)?;
    let needle = a.take(1)?;
    Ok(Value::Bool(list.contains(&needle)))
}

fn f_lookup(mut a: Args) -> Result<Value, FnError> {
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

fn f_flatten(mut a: Args) -> Result<Value, FnError> {
    let mut out = Vec::new();
    flatten_into(a.list(0)?, &mut out);
    Ok(Value::List(out))
}

fn distinct(items: Vec<Value>) -> Vec<Value> {
    let mut seen = HashSet::new();
    items.into_iter().filter(|v| seen.insert(v.canonical())).collect()
}

fn f_distinct(mut a: Args) -> Result<Value, FnError> {
    Ok(Value::List(distinct(a.list(0)?)))
}

fn f_range(a: &Args) -> Result<Value, FnError> {
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
fn f_sort(mut a: Args) -> Result<Value, FnError> {
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

fn f_reverse(mut a: Args) -> Result<Value, FnError> {
    let mut items = a.list(0)?;
    items.reverse();
    Ok(Value::List(items))
}

/// A map key made from a string, number or bool.
fn key_string(v: &Value, what: impl Fn() -> String) -> Result<String, String> {
    scalar_to_string(v).ok_or_else(|| format!("{} is {}, but map keys must be strings", what(), describe(v)))
}

fn f_zipmap(mut a: Args) -> Result<Value, FnError> {
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
fn f_coalesce(a: Args) -> Result<Value, FnError> {
    for v in a.v {
        match &v {
            Value::Null => {}
            Value::String(s) if s.is_empty() => {}
            _ => return Ok(v),
        }
    }
    Err(FnError::new("every argument is null or an empty string; expected at least one non-null, non-empty value"))
}

fn f_element(mut a: Args) -> Result<Value, FnError> {
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

fn f_index(mut a: Args) -> Result<Value, FnError> {
    let items = a.list(0)?;
    let needle = a.take(1)?;
    match items.iter().position(|v| *v == needle) {
        Some(i) => Ok(int_len(i)),
        None => Err(FnError::at(1, format!("the list does not contain the value {needle}"))),
    }
}

fn f_slice(mut a: Args) -> Result<Value, FnError> {
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

// ---------------------------------------------------------------------------
// Strings
// ---------------------------------------------------------------------------

fn f_trim(a: &Args) -> Result<Value, FnError> {
    let s = a.string(0)?;
    let cutset = a.string(1)?;
    Ok(Value::String(s.trim_matches(|c| cutset.contains(c)).to_string()))
}

fn compile_regex(pattern: &str, arg: usize) -> Result<regex::Regex, FnError> {
    regex::Regex::new(&re2_classes(pattern)).map_err(|e| FnError::at(arg, format!("{} is not a valid regular expression: {e}", quote(pattern))))
}

/// Rewrites the Perl classes of a pattern to their RE2 (Terraform) meaning:
/// `\w`, `\d`, `\s` and `\b` are ASCII-only there, while the regex crate
/// makes them Unicode-aware (`\d` would match Arabic-Indic digits, `\w`
/// accented letters). Literals and everything else keep full UTF-8
/// matching. Inside a bracket class the positive classes become ranges
/// and the negated ones POSIX classes (ASCII by definition).
fn re2_classes(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars().peekable();
    // Inside `[...]`; `class_start` while `]` would still be a literal.
    let mut in_class = false;
    let mut class_start = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(e) = chars.next() else {
                    out.push('\\');
                    break;
                };
                let replacement = match (in_class, e) {
                    (false, 'w') => Some("[0-9A-Za-z_]"),
                    (false, 'W') => Some("[^0-9A-Za-z_]"),
                    (false, 'd') => Some("[0-9]"),
                    (false, 'D') => Some("[^0-9]"),
                    (false, 's') => Some("[\\t\\n\\f\\r ]"),
                    (false, 'S') => Some("[^\\t\\n\\f\\r ]"),
                    (false, 'b') => Some("(?-u:\\b)"),
                    (false, 'B') => Some("(?-u:\\B)"),
                    (true, 'w') => Some("0-9A-Za-z_"),
                    (true, 'W') => Some("[:^word:]"),
                    (true, 'd') => Some("0-9"),
                    (true, 'D') => Some("[:^digit:]"),
                    (true, 's') => Some("\\t\\n\\f\\r "),
                    (true, 'S') => Some("[:^space:]"),
                    _ => None,
                };
                match replacement {
                    Some(r) => out.push_str(r),
                    None => {
                        out.push('\\');
                        out.push(e);
                    }
                }
                class_start = false;
            }
            '[' if !in_class => {
                out.push('[');
                in_class = true;
                class_start = true;
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
            }
            '[' if chars.peek() == Some(&':') => {
                // A POSIX class `[:name:]` inside a bracket class.
                out.push('[');
                for d in chars.by_ref() {
                    out.push(d);
                    if d == ']' {
                        break;
                    }
                }
                class_start = false;
            }
            ']' if in_class && !class_start => {
                out.push(']');
                in_class = false;
            }
            c => {
                out.push(c);
                class_start = false;
            }
        }
    }
    out
}

/// `replace(s, substr, replacement)`; a `substr` wrapped in slashes is a
/// regular expression and the replacement may use `$1` / `${name}`.
fn f_replace(a: &Args) -> Result<Value, FnError> {
    let s = a.string(0)?;
    let substr = a.string(1)?;
    let replacement = a.string(2)?;
    let pattern = if substr.len() >= 2 { substr.strip_prefix('/').and_then(|p| p.strip_suffix('/')) } else { None };
    match pattern {
        Some(pattern) => {
            let re = compile_regex(pattern, 1)?;
            Ok(Value::String(re.replace_all(&s, replacement.as_str()).into_owned()))
        }
        None => Ok(Value::String(s.replace(&substr, &replacement))),
    }
}

/// `split(separator, s)` like Go's strings.Split: an empty separator splits
/// into characters.
fn f_split(a: &Args) -> Result<Value, FnError> {
    let sep = a.string(0)?;
    let s = a.string(1)?;
    let parts: Vec<Value> =
        if sep.is_empty() { s.chars().map(|c| Value::String(c.to_string())).collect() } else { s.split(sep.as_str()).map(Value::str).collect() };
    Ok(Value::List(parts))
}

fn f_join(mut a: Args) -> Result<Value, FnError> {
    let sep = a.string(0)?;
    let items = a.list(1)?;
    let mut parts = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match scalar_to_string(item) {
            Some(s) => parts.push(s),
            None => {
                return Err(FnError::at(1, format!("expected a list of strings as the second argument, found a list whose element {i} is {}", describe(item))))
            }
        }
    }
    Ok(Value::String(parts.join(&sep)))
}

/// `substr(s, offset, length)` on characters. A negative offset counts from
/// the end; a length of -1 means "to the end".
fn f_substr(a: &Args) -> Result<Value, FnError> {
    let s = a.string(0)?;
    let offset = a.int(1)?;
    let length = a.int(2)?;
    if length < -1 {
        return Err(FnError::at(2, format!("expected a length of -1 (meaning \"to the end\") or more as the third argument, found {length}")));
    }
    let chars: Vec<char> = s.chars().collect();
    let total = i64::try_from(chars.len()).unwrap_or(i64::MAX);
    let start = if offset < 0 { total.saturating_add(offset).max(0) } else { offset };
    if start >= total {
        return Ok(Value::String(String::new()));
    }
    let end = if length < 0 { total } else { start.saturating_add(length).min(total) };
    let (Ok(start), Ok(end)) = (usize::try_from(start), usize::try_from(end)) else {
        return Ok(Value::String(String::new()));
    };
    Ok(Value::String(chars.get(start..end).unwrap_or_default().iter().collect()))
}

/// First match of `pattern` in `s`: the matched text when the pattern has no
/// capture groups, a list of the captures for unnamed groups, a map for named
/// groups. Groups that did not take part in the match are null.
fn f_regex(a: &Args) -> Result<Value, FnError> {
    let pattern = a.string(0)?;
    let s = a.string(1)?;
    let re = compile_regex(&pattern, 0)?;
    let groups = re.captures_len().saturating_sub(1);
    let named: Vec<Option<&str>> = re.capture_names().skip(1).collect();
    let named_count = named.iter().filter(|n| n.is_some()).count();
    if named_count > 0 && named_count < groups {
        return Err(FnError::at(0, "the pattern mixes named and unnamed capture groups; use only one kind"));
    }
    let Some(caps) = re.captures(&s) else {
        return Err(FnError::at(1, format!("the pattern {} does not match any part of the string", quote(&pattern))));
    };
    let text = |i: usize| caps.get(i).map_or(Value::Null, |m| Value::str(m.as_str()));
    if groups == 0 {
        return Ok(text(0));
    }
    if named_count == 0 {
        return Ok(Value::List((1..=groups).map(text).collect()));
    }
    let mut out = Map::default();
    for (i, name) in named.iter().enumerate() {
        if let Some(name) = name {
            out.insert((*name).to_string(), text(i + 1));
        }
    }
    Ok(Value::Map(out))
}

// --- format ----------------------------------------------------------------

#[derive(Default)]
struct Spec {
    minus: bool,
    plus: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    precision: Option<usize>,
}

fn format_error(message: impl Into<String>) -> FnError {
    FnError::at(0, message)
}

fn read_digits(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<Option<usize>, FnError> {
    let mut n: Option<usize> = None;
    while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
        chars.next();
        let next = n.unwrap_or(0).saturating_mul(10).saturating_add(d as usize);
        if next > MAX_FORMAT_WIDTH {
            return Err(format_error(format!("a width or precision in the format string is larger than {MAX_FORMAT_WIDTH}")));
        }
        n = Some(next);
    }
    Ok(n)
}

/// Reads an explicit argument index `[n]` (1-based) if one follows.
fn read_arg_index(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<Option<usize>, FnError> {
    if chars.peek() != Some(&'[') {
        return Ok(None);
    }
    chars.next();
    let n = read_digits(chars)?;
    if chars.next() != Some(']') {
        return Err(format_error("an argument index in the format string is not closed with \"]\""));
    }
    match n {
        Some(n) if n >= 1 => Ok(Some(n - 1)),
        _ => Err(format_error("argument indexes in the format string start at 1, as in %[1]s")),
    }
}

fn pad(body: String, spec: &Spec, numeric: bool) -> String {
    let Some(width) = spec.width else { return body };
    let len = body.chars().count();
    if len >= width {
        return body;
    }
    let fill = width - len;
    if spec.minus {
        body + &" ".repeat(fill)
    } else if spec.zero && numeric {
        let (sign, digits) = if body.starts_with(['-', '+', ' ']) { body.split_at_checked(1).unwrap_or(("", body.as_str())) } else { ("", body.as_str()) };
        format!("{sign}{}{digits}", "0".repeat(fill))
    } else {
        " ".repeat(fill) + &body
    }
}

fn signed(body: String, negative: bool, spec: &Spec) -> String {
    if negative {
        format!("-{body}")
    } else if spec.plus {
        format!("+{body}")
    } else if spec.space {
        format!(" {body}")
    } else {
        body
    }
}

/// Formats one argument for one verb; errors carry the argument's index.
fn format_one(verb: char, v: &Value, spec: &Spec, arg: usize) -> Result<String, FnError> {
    let bad = |what: &str| FnError::at(arg, format!("the verb %{verb} expects {what}, but the {} argument is {}", ordinal(arg), describe(v)));
    match verb {
        'v' => {
            let body = match v {
                Value::List(_) | Value::Map(_) => to_json(v).to_string(),
                Value::Null => "null".to_string(),
                other => scalar_to_string(other).ok_or_else(|| bad("a value"))?,
            };
            Ok(pad(body, spec, false))
        }
        's' => {
            let s = scalar_to_string(v).ok_or_else(|| bad("a string, number or bool"))?;
            let s = match spec.precision {
                Some(p) => s.chars().take(p).collect(),
                None => s,
            };
            Ok(pad(s, spec, false))
        }
        'q' => {
            let s = scalar_to_string(v).ok_or_else(|| bad("a string, number or bool"))?;
            Ok(pad(quote(&s), spec, false))
        }
        't' => {
            let b = match v {
                Value::Bool(b) => *b,
                Value::String(s) if s == "true" => true,
                Value::String(s) if s == "false" => false,
                _ => return Err(bad("a bool")),
            };
            Ok(pad(b.to_string(), spec, false))
        }
        'd' | 'x' | 'X' | 'o' | 'b' => {
            let n = to_number(v).ok_or_else(|| bad("a whole number"))?;
            let n = n.as_i64().ok_or_else(|| FnError::at(arg, format!("the verb %{verb} expects a whole number, but the {} argument is {n}", ordinal(arg))))?;
            let magnitude = n.unsigned_abs();
            let body = match verb {
                'x' => format!("{magnitude:x}"),
                'X' => format!("{magnitude:X}"),
                'o' => format!("{magnitude:o}"),
                'b' => format!("{magnitude:b}"),
                _ => magnitude.to_string(),
            };
            Ok(pad(signed(body, n < 0, spec), spec, true))
        }
        'f' => {
            let n = to_number(v).and_then(|n| n.as_f64()).ok_or_else(|| bad("a number"))?;
            let body = format!("{:.*}", spec.precision.unwrap_or(6), n.abs());
            Ok(pad(signed(body, n.is_sign_negative() && n != 0.0, spec), spec, true))
        }
        other => Err(format_error(format!(
            "the format string uses the unsupported verb %{other}; supported verbs are %v, %s, %q, %t, %d, %f, %x, %X, %o, %b and %%"
        ))),
    }
}

/// `format(fmt, args...)` with Go/Terraform-style verbs, flags (`-+ 0`),
/// width, precision and explicit argument indexes (`%[2]s`).
fn f_format(a: &Args) -> Result<Value, FnError> {
    let fmt = a.string(0)?;
    let args = a.v.get(1..).unwrap_or_default();
    let mut out = String::new();
    let mut chars = fmt.chars().peekable();
    let mut next = 0usize;
    let mut used = 0usize;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'%') {
            chars.next();
            out.push('%');
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&flag) = chars.peek() {
            match flag {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                ' ' => spec.space = true,
                '0' => spec.zero = true,
                '#' => {}
                _ => break,
            }
            chars.next();
        }
        if let Some(i) = read_arg_index(&mut chars)? {
            next = i;
        }
        spec.width = read_digits(&mut chars)?;
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.precision = Some(read_digits(&mut chars)?.unwrap_or(0));
        }
        if let Some(i) = read_arg_index(&mut chars)? {
            next = i;
        }
        let Some(verb) = chars.next() else {
            return Err(format_error("the format string ends in the middle of a verb"));
        };
        if verb == '%' {
            out.push_str(&pad("%".to_string(), &spec, false));
            continue;
        }
        let Some(value) = args.get(next) else {
            return Err(FnError::at(0, format!("the format string needs at least {} arguments after it, but only {} were given", next + 1, args.len())));
        };
        out.push_str(&format_one(verb, value, &spec, next + 1)?);
        next += 1;
        used = used.max(next);
    }
    if used < args.len() {
        return Err(FnError::at(used + 1, format!("too many arguments for the format string: it uses {used} but {} were given", args.len())));
    }
    Ok(Value::String(out))
}

// ---------------------------------------------------------------------------
// Conversions
// ---------------------------------------------------------------------------

fn f_tostring(mut a: Args) -> Result<Value, FnError> {
    let v = a.take(0)?;
    match &v {
        Value::Null => Ok(Value::Null),
        other => match scalar_to_string(other) {
            Some(s) => Ok(Value::String(s)),
            None => Err(type_error(0, "a string, number or bool", other)),
        },
    }
}

fn f_tonumber(mut a: Args) -> Result<Value, FnError> {
    match a.take(0)? {
        Value::Null => Ok(Value::Null),
        Value::Int(i) => Ok(Value::Int(i)),
        Value::Float(f) => Ok(num_value(f)),
        Value::String(s) => parse_number(&s)
            .ok_or_else(|| FnError::at(0, format!("expected a number or a string holding a number as the first argument, found the string {}", quote(&s)))),
        other => Err(type_error(0, "a number or a string holding a number", &other)),
    }
}

fn f_tobool(mut a: Args) -> Result<Value, FnError> {
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

fn f_tolist(mut a: Args) -> Result<Value, FnError> {
    match a.take(0)? {
        v @ (Value::Null | Value::List(_)) => Ok(v),
        other => Err(type_error(0, "a list", &other)),
    }
}

/// `toset`: distinct elements, sorted (see [`value_cmp`]).
fn f_toset(mut a: Args) -> Result<Value, FnError> {
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

fn f_tomap(mut a: Args) -> Result<Value, FnError> {
    match a.take(0)? {
        v @ (Value::Null | Value::Map(_)) => Ok(v),
        other => Err(type_error(0, "a map", &other)),
    }
}

// ---------------------------------------------------------------------------
// Encoding and hashing
// ---------------------------------------------------------------------------

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
fn to_json(v: &Value) -> serde_json::Value {
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

fn f_base64encode(a: &Args) -> Result<Value, FnError> {
    let s = a.string(0)?;
    Ok(Value::String(base64::engine::general_purpose::STANDARD.encode(s.as_bytes())))
}

fn f_base64decode(a: &Args) -> Result<Value, FnError> {
    let s = a.string(0)?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(s.as_bytes()).map_err(|e| FnError::at(0, format!("the string is not valid base64: {e}")))?;
    String::from_utf8(bytes).map(Value::String).map_err(|_| FnError::at(0, "the decoded bytes are not valid UTF-8 text"))
}

fn f_jsonencode(a: &Args) -> Result<Value, FnError> {
    serde_json::to_string(&to_json(a.get(0)?)).map(Value::String).map_err(|e| FnError::at(0, format!("the value cannot be encoded as JSON: {e}")))
}

fn f_jsondecode(a: &Args) -> Result<Value, FnError> {
    let s = a.string(0)?;
    let json: serde_json::Value = serde_json::from_str(&s).map_err(|e| FnError::at(0, format!("the string is not valid JSON: {e}")))?;
    Ok(integral_numbers(Value::from_json(&json)))
}

fn f_yamlencode(a: &Args) -> Result<Value, FnError> {
    serde_yaml::to_string(&to_json(a.get(0)?)).map(Value::String).map_err(|e| FnError::at(0, format!("the value cannot be encoded as YAML: {e}")))
}

/// YAML 1.1 scalars resolved as Terraform resolves them (see `eval::yaml`).
fn f_yamldecode(a: &Args) -> Result<Value, FnError> {
    let s = a.string(0)?;
    crate::eval::yaml::decode(&s).map_err(|e| FnError::at(0, format!("the string is not valid YAML: {e}")))
}

fn f_uuidv5(a: &Args) -> Result<Value, FnError> {
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

// ---------------------------------------------------------------------------
// Numbers
// ---------------------------------------------------------------------------

fn f_abs(a: &Args) -> Result<Value, FnError> {
    match a.number(0)? {
        Value::Int(i) => Ok(i.checked_abs().map_or(Value::Float((i as f64).abs()), Value::Int)),
        other => Ok(num_value(other.as_f64().unwrap_or(0.0).abs())),
    }
}

fn f_round(a: &Args, op: fn(f64) -> f64) -> Result<Value, FnError> {
    match a.number(0)? {
        Value::Int(i) => Ok(Value::Int(i)),
        other => Ok(num_value(op(other.as_f64().unwrap_or(0.0)))),
    }
}

/// `min`/`max` over number arguments, or over the elements of a single list
/// argument.
fn f_min_max(mut a: Args, want: Ordering) -> Result<Value, FnError> {
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

// ---------------------------------------------------------------------------
// Networking
// ---------------------------------------------------------------------------

struct Cidr {
    /// 32 for IPv4, 128 for IPv6.
    bits: u32,
    /// Network address (host bits cleared).
    addr: u128,
    prefix: u32,
}

fn low_ones(n: u32) -> u128 {
    if n >= 128 {
        u128::MAX
    } else {
        (1u128 << n) - 1
    }
}

fn parse_cidr(s: &str) -> Result<Cidr, String> {
    let Some((ip, len)) = s.split_once('/') else {
        return Err(format!("{} is not in CIDR notation; expected an address and a prefix length such as \"10.0.0.0/16\"", quote(s)));
    };
    let (bits, addr) = if let Ok(v4) = ip.parse::<Ipv4Addr>() {
        (32, u128::from(u32::from(v4)))
    } else if let Ok(v6) = ip.parse::<Ipv6Addr>() {
        (128, u128::from(v6))
    } else {
        return Err(format!("{} is not a valid IPv4 or IPv6 address", quote(ip)));
    };
    let prefix = if !len.is_empty() && len.len() <= 3 && len.bytes().all(|b| b.is_ascii_digit()) { len.parse::<u32>().ok() } else { None };
    match prefix {
        Some(prefix) if prefix <= bits => Ok(Cidr { bits, addr: addr & !low_ones(bits - prefix), prefix }),
        _ => {
            Err(format!("{} is not a valid prefix length for an IPv{} address; expected a number from 0 to {bits}", quote(len), if bits == 32 { 4 } else { 6 }))
        }
    }
}

fn format_addr(bits: u32, addr: u128) -> String {
    if bits == 32 {
        Ipv4Addr::from((addr & 0xffff_ffff) as u32).to_string()
    } else {
        Ipv6Addr::from(addr).to_string()
    }
}

fn f_cidrsubnet(a: &Args) -> Result<Value, FnError> {
    let prefix = a.string(0)?;
    let cidr = parse_cidr(&prefix).map_err(|m| FnError::at(0, m))?;
    let newbits = a.int(1)?;
    let netnum = a.int(2)?;
    let room = cidr.bits - cidr.prefix;
    let newbits_u = match u32::try_from(newbits) {
        Ok(n) if n <= room => n,
        Ok(_) => {
            return Err(FnError::at(
                1,
                format!("insufficient address space to extend prefix of {} by {newbits} bits; at most {room} new bits fit", cidr.prefix),
            ))
        }
        Err(_) => return Err(FnError::at(1, format!("expected a non-negative number of new bits as the second argument, found {newbits}"))),
    };
    let Ok(net) = u64::try_from(netnum) else {
        return Err(FnError::at(2, format!("expected a non-negative subnet number as the third argument, found {netnum}")));
    };
    if u128::from(net) > low_ones(newbits_u) {
        return Err(FnError::at(2, format!("prefix extension of {newbits} bits does not accommodate a subnet numbered {netnum}")));
    }
    let new_prefix = cidr.prefix + newbits_u;
    let shift = cidr.bits - new_prefix;
    let addr = cidr.addr | u128::from(net).checked_shl(shift).unwrap_or(0);
    Ok(Value::String(format!("{}/{new_prefix}", format_addr(cidr.bits, addr))))
}

fn f_cidrhost(a: &Args) -> Result<Value, FnError> {
    let prefix = a.string(0)?;
    let cidr = parse_cidr(&prefix).map_err(|m| FnError::at(0, m))?;
    let hostnum = a.int(1)?;
    let max = low_ones(cidr.bits - cidr.prefix);
    let magnitude = u128::from(hostnum.unsigned_abs());
    let offset = if hostnum >= 0 {
        (magnitude <= max).then_some(magnitude)
    } else {
        // -1 is the last address of the range.
        let back = magnitude - 1;
        (back <= max).then(|| max - back)
    };
    let Some(offset) = offset else {
        return Err(FnError::at(1, format!("prefix of {} does not accommodate a host numbered {hostnum}", cidr.prefix)));
    };
    Ok(Value::String(format_addr(cidr.bits, cidr.addr | offset)))
}

// ---------------------------------------------------------------------------
// Host access
// ---------------------------------------------------------------------------

fn f_env(mut a: Args, host: &mut dyn FnHost) -> Result<Value, FnError> {
    let name = a.string(0)?;
    if name.is_empty() {
        return Err(FnError::at(0, "expected the name of an environment variable as the first argument, found an empty string"));
    }
    match host.env(&name) {
        Some(value) => Ok(Value::String(value)),
        None if a.len() >= 2 => a.take(1),
        None => Err(FnError::at(
            0,
            format!("environment variable {} is not set; pass a default as the second argument, for example env({}, \"\")", quote(&name), quote(&name)),
        )),
    }
}

fn f_file(a: &Args, host: &mut dyn FnHost) -> Result<Value, FnError> {
    let path = a.string(0)?;
    confined(host, "file", &path)?;
    host.read_file(&path).map(Value::String).map_err(|m| FnError::at(0, format!("could not read the file {}: {m}", quote(&path))))
}

/// `template(path, vars[, env[, delimiters]])`: renders the template file
/// at `path` (read through the host) with `vars`, `env` (default `{}`) and
/// `delimiters` (default `["{{", "}}"]`). Template errors keep their own
/// codes (`P207x`) and name the template's file, line and column.
fn f_template(a: &Args, host: &mut dyn FnHost) -> Result<Value, FnError> {
    let path = a.string(0)?;
    let vars = a.get(1)?;
    if !matches!(vars, Value::Map(_) | Value::Null) {
        return Err(type_error(1, "a map of template variables", vars));
    }
    let empty = Value::Map(Map::default());
    let env = match a.v.get(2) {
        None | Some(Value::Null) => &empty,
        Some(v @ Value::Map(_)) => v,
        Some(other) => return Err(type_error(2, "a map of environment values", other)),
    };
    let delims = match a.v.get(3) {
        None | Some(Value::Null) => crate::template::Delimiters::default(),
        Some(v) => crate::template::Delimiters::from_value(v)
            .map_err(|_| FnError::at(3, "expected the delimiters as a list of two strings without whitespace, such as [\"{{{\", \"}}}\"]"))?,
    };
    confined(host, "template", &path)?;
    let text = host.read_file(&path).map_err(|m| FnError::at(0, format!("could not read the template {}: {m}", quote(&path))))?;
    crate::template::render(&path, &text, &delims, vars, env, host).map_err(|d| FnError { message: d.help.clone(), arg: None, diagnostic: Some(Box::new(d)) })
}

fn f_fileset(a: &Args, host: &mut dyn FnHost) -> Result<Value, FnError> {
    let dir = a.string(0)?;
    let pattern = a.string(1)?;
    glob::Pattern::new(&pattern).map_err(|e| FnError::at(1, format!("{} is not a valid glob pattern: {e}", quote(&pattern))))?;
    confined(host, "fileset", &dir)?;
    let paths = host.fileset(&dir, &pattern).map_err(|m| FnError::at(0, format!("could not list the files in {}: {m}", quote(&dir))))?;
    Ok(Value::List(paths.into_iter().map(Value::String).collect()))
}

// ---------------------------------------------------------------------------
// Versions
// ---------------------------------------------------------------------------

fn strip_v(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix(['v', 'V']).unwrap_or(s)
}

/// Splits "1.2.3-pre+build" into ("1.2.3", "-pre+build").
fn split_core(s: &str) -> (&str, &str) {
    let at = s.find(['-', '+']).unwrap_or(s.len());
    s.split_at_checked(at).unwrap_or((s, ""))
}

/// Numeric components of a version core such as "1.4"; None if malformed.
fn core_numbers(core: &str) -> Option<Vec<u64>> {
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty() || parts.len() > 3 {
        return None;
    }
    parts.iter().map(|p| if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) { p.parse::<u64>().ok() } else { None }).collect()
}

/// Parses a version, accepting a leading "v" and a missing minor or patch.
fn parse_version(text: &str) -> Result<semver::Version, String> {
    let t = strip_v(text);
    if let Ok(v) = semver::Version::parse(t) {
        return Ok(v);
    }
    let (core, rest) = split_core(t);
    if let Some(nums) = core_numbers(core) {
        let mut padded = core.to_string();
        for _ in nums.len()..3 {
            padded.push_str(".0");
        }
        padded.push_str(rest);
        if let Ok(v) = semver::Version::parse(&padded) {
            return Ok(v);
        }
    }
    match semver::Version::parse(t) {
        Ok(v) => Ok(v),
        Err(e) => Err(format!("{} is not a valid semantic version: {e}", quote(text))),
    }
}

/// Translates a Terraform pessimistic constraint ("~> 1.4") into semver
/// comparators. Like Terraform, only the last given component may grow:
/// "~> 1.4" is ">=1.4.0, <2.0.0", "~> 1.4.2" is ">=1.4.2, <1.5.0" and "~> 1"
/// is ">=1.0.0".
fn pessimistic(text: &str) -> Result<Vec<String>, String> {
    let t = strip_v(text);
    let (core, rest) = split_core(t);
    let pre = rest.split('+').next().unwrap_or("");
    let invalid = || format!("{} is not a valid version for the \"~>\" operator", quote(text.trim()));
    let nums = core_numbers(core).ok_or_else(invalid)?;
    let major = nums.first().copied().ok_or_else(invalid)?;
    let minor = nums.get(1).copied().unwrap_or(0);
    let patch = nums.get(2).copied().unwrap_or(0);
    let mut out = vec![format!(">={major}.{minor}.{patch}{pre}")];
    match nums.len() {
        2 => out.push(format!("<{}.0.0", major.checked_add(1).ok_or_else(invalid)?)),
        3 => out.push(format!("<{major}.{}.0", minor.checked_add(1).ok_or_else(invalid)?)),
        _ => {}
    }
    Ok(out)
}

/// Evaluates a comma-separated constraint. Parts may use Terraform's
/// operators (`=`, `!=`, `>`, `>=`, `<`, `<=`, `~>`; a bare version means
/// exactly that version) or the semver crate's (`^`, `~`, wildcards).
/// Pre-releases match only a constraint that names a pre-release of the same
/// `major.minor.patch` (the semver crate's rule). Shared with `sources`,
/// which picks git tags with it, so that `semver_match` and module versions
/// agree on what a constraint means.
pub fn constraint_matches(version: &semver::Version, constraint: &str) -> Result<bool, String> {
    let mut comparators = Vec::new();
    let mut excluded = Vec::new();
    if constraint.trim().is_empty() {
        return Err("the version constraint is empty; expected something like \">= 1.2, < 2\" or \"~> 1.4\"".to_string());
    }
    for raw in constraint.split(',') {
        let part = raw.trim();
        if part.is_empty() {
            return Err(format!("{} has an empty part; separate constraints with single commas", quote(constraint)));
        }
        if let Some(rest) = part.strip_prefix("~>") {
            comparators.extend(pessimistic(rest)?);
        } else if let Some(rest) = part.strip_prefix("!=") {
            excluded.push(parse_version(rest)?);
        } else {
            let op_len = part.find(|c: char| !matches!(c, '=' | '<' | '>' | '^' | '~')).unwrap_or(part.len());
            let (op, rest) = part.split_at_checked(op_len).unwrap_or(("", part));
            let rest = strip_v(rest);
            let wildcard = rest.split('.').any(|c| matches!(c, "*" | "x" | "X"));
            if (op.is_empty() || op == "=") && !wildcard {
                // Terraform: a bare or "=" version means exactly that
                // version ("1.2" is 1.2.0).
                comparators.push(format!("={}", parse_version(rest)?));
            } else {
                comparators.push(format!("{op}{rest}"));
            }
        }
    }
    let req_text = if comparators.is_empty() { "*".to_string() } else { comparators.join(", ") };
    let req = semver::VersionReq::parse(&req_text).map_err(|e| format!("{} is not a valid version constraint: {e}", quote(constraint)))?;
    Ok(req.matches(version) && excluded.iter().all(|x| x != version))
}

fn f_semver_match(a: &Args) -> Result<Value, FnError> {
    let version_text = a.string(0)?;
    let constraint = a.string(1)?;
    let version = parse_version(&version_text).map_err(|m| FnError::at(0, m))?;
    constraint_matches(&version, &constraint).map(Value::Bool).map_err(|m| FnError::at(1, m))
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct FakeHost {
        env: HashMap<String, String>,
        files: HashMap<String, String>,
        filesets: HashMap<(String, String), Vec<String>>,
        calls: Vec<String>,
    }

    impl FnHost for FakeHost {
        fn env(&mut self, name: &str) -> Option<String> {
            self.calls.push(format!("env {name}"));
            self.env.get(name).cloned()
        }
        fn read_file(&mut self, path: &str) -> Result<String, String> {
            self.calls.push(format!("read_file {path}"));
            self.files.get(path).cloned().ok_or_else(|| "no such file".to_string())
        }
        fn fileset(&mut self, dir: &str, pattern: &str) -> Result<Vec<String>, String> {
            self.calls.push(format!("fileset {dir} {pattern}"));
            self.filesets.get(&(dir.to_string(), pattern.to_string())).cloned().ok_or_else(|| "no such directory".to_string())
        }
    }

    fn s(x: &str) -> Value {
        Value::str(x)
    }
    fn i(x: i64) -> Value {
        Value::Int(x)
    }
    fn f(x: f64) -> Value {
        Value::Float(x)
    }
    fn list(items: Vec<Value>) -> Value {
        Value::List(items)
    }
    fn slist(items: &[&str]) -> Value {
        Value::List(items.iter().map(|x| s(x)).collect())
    }
    fn map(entries: &[(&str, Value)]) -> Value {
        Value::Map(entries.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    }

    fn run(name: &str, args: Vec<Value>) -> Result<Value, FnError> {
        call(name, args, &mut FakeHost::default())
    }

    fn ok(name: &str, args: Vec<Value>) -> Value {
        match run(name, args) {
            Ok(v) => v,
            Err(e) => panic!("{name} failed: {}", e.message),
        }
    }

    fn err(name: &str, args: Vec<Value>) -> FnError {
        match run(name, args) {
            Ok(v) => panic!("{name} unexpectedly returned {v}"),
            Err(e) => e,
        }
    }

    /// Asserts the error is for argument `arg` and its message contains `needle`.
    fn err_has(name: &str, args: Vec<Value>, arg: Option<usize>, needle: &str) {
        let e = err(name, args);
        assert_eq!(e.arg, arg, "wrong argument index for {name}: {}", e.message);
        assert!(e.message.contains(needle), "message {:?} lacks {needle:?}", e.message);
        let first = e.message.chars().next().unwrap_or('x');
        assert!(!first.is_uppercase(), "message must start lower-case: {}", e.message);
    }

    fn same(a: &Value, b: &Value) {
        assert_eq!(a, b);
        assert_eq!(std::mem::discriminant(a), std::mem::discriminant(b), "{a:?} vs {b:?}");
    }

    // --- registry ---------------------------------------------------------

    #[test]
    fn names_are_sorted_unique_and_have_arity() {
        let mut sorted = FUNCTION_NAMES.to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, FUNCTION_NAMES);
        for name in FUNCTION_NAMES {
            assert!(arity(name).is_some(), "{name} has no arity");
        }
        assert_eq!(arity("nope"), None);
        assert_eq!(arity("lookup"), Some((2, Some(3))));
        assert_eq!(arity("concat"), Some((0, None)));
    }

    #[test]
    fn every_name_is_dispatched() {
        for name in FUNCTION_NAMES {
            let Some((min, _)) = arity(name) else {
                continue;
            };
            if let Err(e) = run(name, vec![Value::Null; min]) {
                assert!(!e.message.contains("there is no function"), "{name} is not dispatched");
            }
        }
    }

    #[test]
    fn every_function_survives_odd_arguments() {
        let samples =
            vec![Value::Null, Value::Bool(true), i(-3), f(2.5), s(""), s("x"), list(vec![]), list(vec![i(1), s("a"), Value::Null]), map(&[("a", i(1))])];
        for name in FUNCTION_NAMES {
            let Some((min, max)) = arity(name) else {
                continue;
            };
            let top = max.unwrap_or(min + 2).min(3);
            for n in min..=top {
                for sample in &samples {
                    for other in &samples {
                        let mut args = vec![sample.clone(); n];
                        if let Some(last) = args.last_mut() {
                            *last = other.clone();
                        }
                        let _ = run(name, args);
                    }
                }
            }
        }
    }

    #[test]
    fn call_rejects_unknown_function_and_bad_arity() {
        err_has("nope", vec![], None, "there is no function named \"nope\"");
        err_has("length", vec![], None, "takes exactly 1 argument, but 0 were given");
        err_has("lookup", vec![i(1)], None, "takes 2 to 3 arguments");
        err_has("coalesce", vec![], None, "at least 1 argument");
        err_has("upper", vec![s("a"), s("b")], None, "but 2 were given");
    }

    #[test]
    fn call_rejects_unknown_and_sensitive_arguments() {
        err_has("length", vec![Value::Unknown], Some(0), "not known yet");
        err_has("concat", vec![list(vec![]), list(vec![Value::Unknown])], Some(1), "not known yet");
        err_has("upper", vec![Value::Sensitive(Box::new(s("x")))], Some(0), "sensitive");
        err_has("keys", vec![map(&[("a", Value::Sensitive(Box::new(i(1))))])], Some(0), "sensitive");
    }

    #[test]
    fn error_type_message_shape() {
        let e = err("concat", vec![s("a")]);
        assert_eq!(e.message, "expected a list as the first argument, found a string");
        assert_eq!(e.arg, Some(0));
        assert_eq!(ordinal(10), "11th");
        assert_eq!(ordinal(20), "21st");
        assert_eq!(ordinal(21), "22nd");
        assert_eq!(ordinal(22), "23rd");
        assert_eq!(ordinal(11), "12th");
        let e = FnError::new("boom");
        assert_eq!(e.to_string(), "boom");
    }

    // --- collections ------------------------------------------------------

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

    // --- strings ----------------------------------------------------------

    #[test]
    fn case_and_trimming() {
        same(&ok("upper", vec![s("héllo")]), &s("HÉLLO"));
        same(&ok("lower", vec![s("HeLLo")]), &s("hello"));
        same(&ok("upper", vec![i(5)]), &s("5"));
        err_has("upper", vec![list(vec![])], Some(0), "expected a string as the first argument, found a list");
        same(&ok("trim", vec![s("?!hello?!"), s("!?")]), &s("hello"));
        same(&ok("trim", vec![s("xx"), s("x")]), &s(""));
        same(&ok("trimprefix", vec![s("helloworld"), s("hello")]), &s("world"));
        same(&ok("trimprefix", vec![s("hellohello"), s("hello")]), &s("hello"));
        same(&ok("trimprefix", vec![s("world"), s("hello")]), &s("world"));
        same(&ok("trimsuffix", vec![s("helloworld"), s("world")]), &s("hello"));
        same(&ok("trimsuffix", vec![s("hello"), s("world")]), &s("hello"));
        same(&ok("trimspace", vec![s(" \n\thi there\u{a0} \n")]), &s("hi there"));
        err_has("trimspace", vec![Value::Null], Some(0), "found null");
        err_has("trim", vec![s("a"), map(&[])], Some(1), "expected a string as the second argument, found a map");
    }

    #[test]
    fn replace_plain_and_regex() {
        same(&ok("replace", vec![s("1 + 2 + 3"), s("+"), s("-")]), &s("1 - 2 - 3"));
        same(&ok("replace", vec![s("abc"), s(""), s("-")]), &s("-a-b-c-"));
        same(&ok("replace", vec![s("hello world"), s("/w.*d/"), s("everybody")]), &s("hello everybody"));
        same(&ok("replace", vec![s("a1b22"), s("/([a-z])(\\d+)/"), s("${2}$1")]), &s("1a22b"));
        same(&ok("replace", vec![s("a/b"), s("/"), s("|")]), &s("a|b"));
        err_has("replace", vec![s("x"), s("/(/"), s("y")], Some(1), "is not a valid regular expression");
        err_has("replace", vec![s("x"), s("y"), list(vec![])], Some(2), "third argument");
    }

    #[test]
    fn split_and_join() {
        assert_eq!(ok("split", vec![s(","), s("a,b,,c")]), slist(&["a", "b", "", "c"]));
        assert_eq!(ok("split", vec![s(","), s("")]), slist(&[""]));
        assert_eq!(ok("split", vec![s(""), s("añb")]), slist(&["a", "ñ", "b"]));
        assert_eq!(ok("split", vec![s("::"), s("a::b")]), slist(&["a", "b"]));
        err_has("split", vec![s(","), list(vec![])], Some(1), "expected a string as the second argument");

        same(&ok("join", vec![s(", "), slist(&["a", "b", "c"])]), &s("a, b, c"));
        same(&ok("join", vec![s("-"), list(vec![i(1), Value::Bool(true), f(1.5)])]), &s("1-true-1.5"));
        same(&ok("join", vec![s("-"), list(vec![])]), &s(""));
        err_has("join", vec![s("-"), list(vec![s("a"), Value::Null])], Some(1), "element 1 is null");
        err_has("join", vec![s("-"), s("abc")], Some(1), "expected a list as the second argument, found a string");
    }

    #[test]
    fn format_verbs() {
        let fmt = |args: Vec<Value>| ok("format", args);
        same(&fmt(vec![s("Hello, %s!"), s("Ander")]), &s("Hello, Ander!"));
        same(&fmt(vec![s("There are %d lights"), i(4)]), &s("There are 4 lights"));
        same(&fmt(vec![s("%d"), f(4.0)]), &s("4"));
        same(&fmt(vec![s("%d"), s("12")]), &s("12"));
        same(&fmt(vec![s("%f"), f(3.25159)]), &s("3.251590"));
        same(&fmt(vec![s("%.2f"), f(3.25159)]), &s("3.25"));
        same(&fmt(vec![s("%.0f"), i(2)]), &s("2"));
        same(&fmt(vec![s("%.1f"), f(-0.25)]), &s("-0.2"));
        same(&fmt(vec![s("%v %v %v %v"), s("a"), i(1), Value::Bool(true), Value::Null]), &s("a 1 true null"));
        same(&fmt(vec![s("%v"), list(vec![i(1), s("x")])]), &s("[1,\"x\"]"));
        same(&fmt(vec![s("%v"), map(&[("b", i(1)), ("a", i(2))])]), &s("{\"b\":1,\"a\":2}"));
        same(&fmt(vec![s("%q"), s("say \"hi\"")]), &s("\"say \\\"hi\\\"\""));
        same(&fmt(vec![s("100%%")]), &s("100%"));
        same(&fmt(vec![s("[%3%]")]), &s("[  %]"));
        same(&fmt(vec![s("[%5s]"), s("ab")]), &s("[   ab]"));
        same(&fmt(vec![s("[%-5s]"), s("ab")]), &s("[ab   ]"));
        same(&fmt(vec![s("[%.2s]"), s("abcdef")]), &s("[ab]"));
        same(&fmt(vec![s("[%05d]"), i(-42)]), &s("[-0042]"));
        same(&fmt(vec![s("[%+d]"), i(42)]), &s("[+42]"));
        same(&fmt(vec![s("[%8.3f]"), f(3.25159)]), &s("[   3.252]"));
        same(&fmt(vec![s("%x %X %o %b"), i(255), i(255), i(8), i(5)]), &s("ff FF 10 101"));
        same(&fmt(vec![s("%t"), Value::Bool(false)]), &s("false"));
        same(&fmt(vec![s("%[2]s-%[1]s"), s("a"), s("b")]), &s("b-a"));
        same(&fmt(vec![s("%s %s"), f(1.5), Value::Bool(true)]), &s("1.5 true"));
        same(&fmt(vec![s("no verbs")]), &s("no verbs"));
        same(&fmt(vec![s("ünï %s"), s("cödé")]), &s("ünï cödé"));
    }

    #[test]
    fn format_errors() {
        err_has("format", vec![s("%s %s"), s("a")], Some(0), "needs at least 2 arguments");
        err_has("format", vec![s("%s"), s("a"), s("b")], Some(2), "too many arguments");
        err_has("format", vec![s("%d"), f(1.5)], Some(1), "the verb %d expects a whole number, but the second argument is 1.5");
        err_has("format", vec![s("%d"), s("abc")], Some(1), "expects a whole number");
        err_has("format", vec![s("%s"), list(vec![])], Some(1), "the verb %s expects a string, number or bool, but the second argument is a list");
        err_has("format", vec![s("%s"), Value::Null], Some(1), "is null");
        err_has("format", vec![s("%t"), i(1)], Some(1), "expects a bool");
        err_has("format", vec![s("%y"), i(1)], Some(0), "unsupported verb %y");
        err_has("format", vec![s("abc %"), i(1)], Some(0), "ends in the middle of a verb");
        err_has("format", vec![s("%99999999s"), s("a")], Some(0), "larger than 10000");
        err_has("format", vec![s("%[0]s"), s("a")], Some(0), "start at 1");
        err_has("format", vec![s("%[1s"), s("a")], Some(0), "not closed");
        err_has("format", vec![list(vec![])], Some(0), "expected a string as the first argument");
    }

    #[test]
    fn substr_on_chars() {
        same(&ok("substr", vec![s("hello world"), i(1), i(4)]), &s("ello"));
        same(&ok("substr", vec![s("héllo"), i(1), i(-1)]), &s("éllo"));
        same(&ok("substr", vec![s("hello"), i(-3), i(2)]), &s("ll"));
        same(&ok("substr", vec![s("hello"), i(-10), i(2)]), &s("he"));
        same(&ok("substr", vec![s("hello"), i(10), i(2)]), &s(""));
        same(&ok("substr", vec![s("hello"), i(2), i(100)]), &s("llo"));
        same(&ok("substr", vec![s("hello"), i(i64::MAX), i(i64::MAX)]), &s(""));
        same(&ok("substr", vec![s("hello"), i(i64::MIN), i(i64::MAX)]), &s("hello"));
        err_has("substr", vec![s("hello"), i(0), i(-2)], Some(2), "a length of -1");
        err_has("substr", vec![s("hello"), s("x"), i(1)], Some(1), "expected a whole number as the second argument, found a string");
    }

    #[test]
    fn startswith_endswith() {
        same(&ok("startswith", vec![s("hello"), s("he")]), &Value::Bool(true));
        same(&ok("startswith", vec![s("hello"), s("lo")]), &Value::Bool(false));
        same(&ok("endswith", vec![s("hello"), s("lo")]), &Value::Bool(true));
        same(&ok("endswith", vec![s("hello"), s("he")]), &Value::Bool(false));
        same(&ok("startswith", vec![s("hello"), s("")]), &Value::Bool(true));
        err_has("endswith", vec![list(vec![]), s("x")], Some(0), "expected a string");
    }

    #[test]
    fn regex_results() {
        same(&ok("regex", vec![s("[a-z]+"), s("53453453.345345aaabbbccc23454")]), &s("aaabbbccc"));
        assert_eq!(ok("regex", vec![s("(\\d\\d\\d\\d)-(\\d\\d)-(\\d\\d)"), s("2019-02-01")]), slist(&["2019", "02", "01"]));
        assert_eq!(
            ok("regex", vec![s("^(?:(?P<scheme>[^:/?#]+):)?(?://(?P<authority>[^/?#]*))?"), s("https://terraform.io/docs/")]),
            map(&[("scheme", s("https")), ("authority", s("terraform.io"))])
        );
        assert_eq!(ok("regex", vec![s("a(x)?(b)"), s("ab")]), list(vec![Value::Null, s("b")]));
        err_has("regex", vec![s("[a-z]+"), s("123")], Some(1), "does not match any part of the string");
        err_has("regex", vec![s("(?P<a>x)(y)"), s("xy")], Some(0), "mixes named and unnamed");
        err_has("regex", vec![s("(")], None, "takes exactly 2 arguments");
        err_has("regex", vec![s("("), s("x")], Some(0), "is not a valid regular expression");
    }

    // --- conversions ------------------------------------------------------

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

    // --- encoding ---------------------------------------------------------

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

    // --- numbers ----------------------------------------------------------

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

    // --- networking -------------------------------------------------------

    #[test]
    fn cidrsubnet_ipv4_and_ipv6() {
        let sub = |p: &str, nb: i64, n: i64| ok("cidrsubnet", vec![s(p), i(nb), i(n)]);
        same(&sub("172.16.0.0/12", 4, 2), &s("172.18.0.0/16"));
        same(&sub("10.1.2.0/24", 4, 15), &s("10.1.2.240/28"));
        same(&sub("10.1.2.3/16", 8, 1), &s("10.1.1.0/24"));
        same(&sub("10.0.0.0/8", 0, 0), &s("10.0.0.0/8"));
        same(&sub("0.0.0.0/0", 32, 5), &s("0.0.0.5/32"));
        same(&sub("fd00:fd12:3456:7890::/56", 16, 162), &s("fd00:fd12:3456:7800:a200::/72"));
        same(&sub("::/0", 0, 0), &s("::/0"));
        same(&sub("::/0", 64, 1), &s("0:0:0:1::/64"));
        same(&sub("2001:db8::/32", 96, 7), &s("2001:db8::7/128"));
        err_has("cidrsubnet", vec![s("10.0.0.0/30"), i(3), i(0)], Some(1), "insufficient address space to extend prefix of 30 by 3");
        err_has("cidrsubnet", vec![s("10.0.0.0/8"), i(-1), i(0)], Some(1), "non-negative number of new bits");
        err_has("cidrsubnet", vec![s("10.0.0.0/8"), i(8), i(256)], Some(2), "does not accommodate a subnet numbered 256");
        err_has("cidrsubnet", vec![s("10.0.0.0/8"), i(8), i(-1)], Some(2), "non-negative subnet number");
        err_has("cidrsubnet", vec![s("10.0.0.0"), i(8), i(1)], Some(0), "is not in CIDR notation");
        err_has("cidrsubnet", vec![s("10.0.0.300/8"), i(8), i(1)], Some(0), "not a valid IPv4 or IPv6 address");
        err_has("cidrsubnet", vec![s("10.0.0.0/33"), i(1), i(1)], Some(0), "expected a number from 0 to 32");
        err_has("cidrsubnet", vec![s("::/129"), i(1), i(1)], Some(0), "IPv6");
        err_has("cidrsubnet", vec![s("10.0.0.0/+8"), i(1), i(1)], Some(0), "not a valid prefix length");
        err_has("cidrsubnet", vec![s("10.0.0.0/"), i(1), i(1)], Some(0), "not a valid prefix length");
    }

    #[test]
    fn cidrhost_ipv4_and_ipv6() {
        let host = |p: &str, n: i64| ok("cidrhost", vec![s(p), i(n)]);
        same(&host("10.12.112.0/20", 16), &s("10.12.112.16"));
        same(&host("10.12.112.0/20", 268), &s("10.12.113.12"));
        same(&host("10.12.112.0/20", -2), &s("10.12.127.254"));
        same(&host("10.0.0.0/8", -1), &s("10.255.255.255"));
        same(&host("10.0.0.5/32", 0), &s("10.0.0.5"));
        same(&host("10.0.0.5/32", -1), &s("10.0.0.5"));
        same(&host("fd00:fd12:3456:7890:00a2::/72", 34), &s("fd00:fd12:3456:7890::22"));
        same(&host("::/0", -1), &s("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
        same(&host("::/0", i64::MIN), &s("ffff:ffff:ffff:ffff:8000::"));
        same(&host("0.0.0.0/0", -1), &s("255.255.255.255"));
        err_has("cidrhost", vec![s("10.12.112.0/20"), i(4096)], Some(1), "prefix of 20 does not accommodate a host numbered 4096");
        err_has("cidrhost", vec![s("10.12.112.0/20"), i(-4097)], Some(1), "does not accommodate a host numbered -4097");
        same(&host("10.12.112.0/20", -4096), &s("10.12.112.0"));
        err_has("cidrhost", vec![s("10.0.0.5/32"), i(1)], Some(1), "does not accommodate");
        err_has("cidrhost", vec![s("nope/8"), i(1)], Some(0), "not a valid IPv4 or IPv6 address");
        err_has("cidrhost", vec![s("10.0.0.0/8"), f(1.5)], Some(1), "whole number");
    }

    // --- host access ------------------------------------------------------

    #[test]
    fn env_lookup() {
        let mut host = FakeHost::default();
        host.env.insert("HOME".into(), "/root".into());
        same(&call("env", vec![s("HOME")], &mut host).unwrap_or(Value::Null), &s("/root"));
        same(&call("env", vec![s("NOPE"), s("dflt")], &mut host).unwrap_or(Value::Null), &s("dflt"));
        same(&call("env", vec![s("HOME"), s("dflt")], &mut host).unwrap_or(Value::Null), &s("/root"));
        same(&call("env", vec![s("NOPE"), Value::Null], &mut host).unwrap_or(i(0)), &Value::Null);
        assert_eq!(host.calls, ["env HOME", "env NOPE", "env HOME", "env NOPE"]);
        let e = call("env", vec![s("NOPE")], &mut host).err();
        let e = e.unwrap_or_else(|| FnError::new("no error"));
        assert_eq!(e.arg, Some(0));
        assert!(e.message.starts_with("environment variable \"NOPE\" is not set; pass a default"), "{}", e.message);
        assert!(e.message.contains("env(\"NOPE\", \"\")"));
        err_has("env", vec![s("")], Some(0), "found an empty string");
        err_has("env", vec![list(vec![])], Some(0), "expected a string");
    }

    #[test]
    fn file_reads_through_host() {
        let mut host = FakeHost::default();
        host.files.insert("conf/app.txt".into(), "hello\n".into());
        same(&call("file", vec![s("conf/app.txt")], &mut host).unwrap_or(Value::Null), &s("hello\n"));
        let e = call("file", vec![s("missing.txt")], &mut host).err().unwrap_or_else(|| FnError::new(""));
        assert_eq!(e.arg, Some(0));
        assert_eq!(e.message, "could not read the file \"missing.txt\": no such file");
        assert_eq!(host.calls, ["read_file conf/app.txt", "read_file missing.txt"]);
        err_has("file", vec![Value::Null], Some(0), "expected a string as the first argument, found null");
    }

    #[test]
    fn template_renders_a_file_through_the_host() {
        let mut host = FakeHost::default();
        host.files.insert("app.tpl".into(), "{{ name }}@{{ .Env.STAGE }}".into());
        host.files.insert("gomplate.tpl".into(), "{{{ .Env.STAGE }}} {{ kept }}".into());
        host.files.insert("broken.tpl".into(), "a\nb {{ missing }}".into());
        let vars = Value::Map([("name".to_string(), s("web"))].into_iter().collect());
        let env = Value::Map([("STAGE".to_string(), s("prod"))].into_iter().collect());
        same(&call("template", vec![s("app.tpl"), vars.clone(), env.clone()], &mut host).unwrap_or(Value::Null), &s("web@prod"));
        let delims = list(vec![s("{{{"), s("}}}")]);
        same(&call("template", vec![s("gomplate.tpl"), vars.clone(), env.clone(), delims], &mut host).unwrap_or(Value::Null), &s("prod {{ kept }}"));
        // Without env, `.Env.STAGE` is missing: the template's own diagnostic.
        let e = call("template", vec![s("app.tpl"), vars.clone()], &mut host).err().unwrap_or_else(|| FnError::new(""));
        let d = e.diagnostic.unwrap_or_else(|| Box::new(crate::diagnostic::Diagnostic::new("none", "")));
        assert_eq!(d.code, "P2073");
        assert!(d.help.starts_with("app.tpl:1:20"), "{}", d.help);
        let e = call("template", vec![s("broken.tpl"), vars.clone()], &mut host).err().unwrap_or_else(|| FnError::new(""));
        assert!(e.diagnostic.is_some_and(|d| d.help.starts_with("broken.tpl:2:6")));
        err_has("template", vec![s("missing.tpl"), vars.clone()], Some(0), "could not read the template");
        err_has("template", vec![s("app.tpl"), s("x")], Some(1), "expected a map of template variables");
        err_has("template", vec![s("app.tpl"), vars.clone(), env, list(vec![s("{{")])], Some(3), "two strings");
    }

    #[test]
    fn fileset_through_host() {
        let mut host = FakeHost::default();
        host.filesets.insert(("cfg".into(), "**/*.yaml".into()), vec!["a.yaml".into(), "sub/b.yaml".into()]);
        assert_eq!(call("fileset", vec![s("cfg"), s("**/*.yaml")], &mut host).unwrap_or(Value::Null), slist(&["a.yaml", "sub/b.yaml"]));
        let e = call("fileset", vec![s("other"), s("*")], &mut host).err().unwrap_or_else(|| FnError::new(""));
        assert_eq!(e.arg, Some(0));
        assert!(e.message.contains("could not list the files in \"other\": no such directory"));
        let e = call("fileset", vec![s("cfg"), s("[")], &mut host).err().unwrap_or_else(|| FnError::new(""));
        assert_eq!(e.arg, Some(1));
        assert!(e.message.contains("is not a valid glob pattern"));
        assert_eq!(host.calls, ["fileset cfg **/*.yaml", "fileset other *"]);
    }

    // --- versions ---------------------------------------------------------

    fn matches(version: &str, constraint: &str) -> bool {
        match ok("semver_match", vec![s(version), s(constraint)]) {
            Value::Bool(b) => b,
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn semver_pessimistic() {
        assert!(matches("1.4.0", "~> 1.4"));
        assert!(matches("1.9.3", "~> 1.4"));
        assert!(!matches("2.0.0", "~> 1.4"));
        assert!(!matches("1.3.9", "~> 1.4"));
        assert!(matches("1.4.2", "~> 1.4.2"));
        assert!(matches("1.4.9", "~> 1.4.2"));
        assert!(!matches("1.5.0", "~> 1.4.2"));
        assert!(!matches("1.4.1", "~> 1.4.2"));
        assert!(matches("7.0.0", "~> 1"));
        assert!(!matches("0.9.0", "~> 1"));
        assert!(matches("v1.4.5", "~>1.4"));
        assert!(matches("1.4.0-beta.2", "~> 1.4.0-beta.1"));
        assert!(!matches("1.5.0-beta", "~> 1.4"));
    }

    #[test]
    fn semver_other_operators() {
        assert!(matches("1.5.0", ">=1.2, <2"));
        assert!(!matches("2.0.0", ">=1.2, <2"));
        assert!(matches("1.9.0", "^1.4"));
        assert!(!matches("2.0.0", "^1.4"));
        assert!(matches("1.2.3", "1.2.3"));
        assert!(!matches("1.2.4", "1.2.3"));
        assert!(matches("1.2.3", "= 1.2.3"));
        assert!(matches("1.2.3", ">= 1.0.0, != 1.2.4"));
        assert!(!matches("1.2.4", ">= 1.0.0, != 1.2.4"));
        assert!(!matches("1.2.4", "!=1.2.4"));
        assert!(matches("1.2.9", "1.2.*"));
        assert!(matches("1.2.9", "~1.2"));
        assert!(matches("v1.2", ">= 1.2.0"));
        assert!(matches("1", "= 1.0.0"));
        assert!(matches("1.2.0", "1.2"));
        assert!(!matches("1.2.5", "1.2"));
        assert!(!matches("1.2.5", "=1.2"));
        assert!(matches("1.2.5", "=v1.2.5"));
        assert!(matches("1.2.5", "*"));
        assert!(matches("1.2.3+build.5", "1.2.3"));
        assert!(!matches("2.0.0-rc.1", ">= 1.0"));
    }

    #[test]
    fn semver_errors() {
        err_has("semver_match", vec![s("one.two"), s(">= 1")], Some(0), "is not a valid semantic version");
        err_has("semver_match", vec![s(""), s(">= 1")], Some(0), "is not a valid semantic version");
        err_has("semver_match", vec![s("1.0.0"), s(">= 1,")], Some(1), "empty part");
        err_has("semver_match", vec![s("1.0.0"), s("  ")], Some(1), "the version constraint is empty");
        err_has("semver_match", vec![s("1.0.0"), s("1.x.banana")], Some(1), "is not a valid version constraint");
        err_has("semver_match", vec![s("1.0.0"), s("banana")], Some(1), "\"banana\" is not a valid semantic version");
        err_has("semver_match", vec![s("1.0.0"), s("~> x")], Some(1), "not a valid version for the \"~>\" operator");
        err_has("semver_match", vec![s("1.0.0"), s("~> 1.2.3.4")], Some(1), "\"~>\" operator");
        err_has("semver_match", vec![s("1.0.0"), s("~> 18446744073709551615.1")], Some(1), "\"~>\" operator");
        err_has("semver_match", vec![s("1.0.0"), s(">>> 1")], Some(1), "is not a valid version constraint");
        err_has("semver_match", vec![s("1.0.0"), s("!= banana")], Some(1), "is not a valid semantic version");
        err_has("semver_match", vec![list(vec![]), s("1")], Some(0), "expected a string");
    }
}
