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
//!
//! Each family has a file of its own: `args.rs` (argument helpers and the
//! builders of error messages), `collections.rs`, `strings.rs`, `format.rs`,
//! `conversions.rs`, `encoding.rs` (encoding and hashing), `numbers.rs`,
//! `network.rs`, `host.rs` (the only one that uses [`FnHost`]) and
//! `versions.rs`; their unit tests sit beside them. This file holds what they
//! share and what callers see: [`FnHost`], [`FnError`], the table of names
//! ([`FUNCTION_NAMES`], [`arity`]) and the dispatcher [`call`]. A new
//! function goes in its family's file, with its name in [`FUNCTION_NAMES`],
//! its arity in [`arity`] and its arm in [`call`]; the tests here check that
//! the three agree.

mod args;
mod collections;
mod conversions;
mod encoding;
mod format;
mod host;
mod network;
mod numbers;
mod strings;
#[cfg(test)]
mod test_support;
mod versions;

pub use versions::constraint_matches;

use args::{arity_message, ordinal, quote, Args};
use collections::{
    f_coalesce, f_concat, f_contains, f_distinct, f_element, f_flatten, f_index, f_keys, f_length, f_lookup, f_merge, f_range, f_reverse, f_slice, f_sort,
    f_values, f_zipmap,
};
use conversions::{f_tobool, f_tolist, f_tomap, f_tonumber, f_toset, f_tostring};
use encoding::{f_base64decode, f_base64encode, f_jsondecode, f_jsonencode, f_uuidv5, f_yamldecode, f_yamlencode};
use format::f_format;
use host::{f_env, f_file, f_fileset, f_template};
use network::{f_cidrhost, f_cidrsubnet};
use numbers::{f_abs, f_min_max, f_round};
use strings::{f_join, f_regex, f_replace, f_split, f_substr, f_trim};
use versions::f_semver_match;

use crate::value::Value;
use sha2::Digest as _;
use std::cmp::Ordering;
use std::fmt;

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

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

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
}
