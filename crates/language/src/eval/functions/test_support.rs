//! Helpers for the unit tests of every family: [`FakeHost`], which records
//! what it is asked, short value builders, and `ok`/`err`/`err_has`, which
//! go through the dispatcher [`call`] as the evaluator does.

use super::{call, FnError, FnHost};
use crate::value::Value;
use std::collections::HashMap;

#[derive(Default)]
pub(super) struct FakeHost {
    pub(super) env: HashMap<String, String>,
    pub(super) files: HashMap<String, String>,
    pub(super) filesets: HashMap<(String, String), Vec<String>>,
    pub(super) calls: Vec<String>,
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

pub(super) fn s(x: &str) -> Value {
    Value::str(x)
}
pub(super) fn i(x: i64) -> Value {
    Value::Int(x)
}
pub(super) fn f(x: f64) -> Value {
    Value::Float(x)
}
pub(super) fn list(items: Vec<Value>) -> Value {
    Value::List(items)
}
pub(super) fn slist(items: &[&str]) -> Value {
    Value::List(items.iter().map(|x| s(x)).collect())
}
pub(super) fn map(entries: &[(&str, Value)]) -> Value {
    Value::Map(entries.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
}

pub(super) fn run(name: &str, args: Vec<Value>) -> Result<Value, FnError> {
    call(name, args, &mut FakeHost::default())
}

pub(super) fn ok(name: &str, args: Vec<Value>) -> Value {
    match run(name, args) {
        Ok(v) => v,
        Err(e) => panic!("{name} failed: {}", e.message),
    }
}

pub(super) fn err(name: &str, args: Vec<Value>) -> FnError {
    match run(name, args) {
        Ok(v) => panic!("{name} unexpectedly returned {v}"),
        Err(e) => e,
    }
}

/// Asserts the error is for argument `arg` and its message contains `needle`.
pub(super) fn err_has(name: &str, args: Vec<Value>, arg: Option<usize>, needle: &str) {
    let e = err(name, args);
    assert_eq!(e.arg, arg, "wrong argument index for {name}: {}", e.message);
    assert!(e.message.contains(needle), "message {:?} lacks {needle:?}", e.message);
    let first = e.message.chars().next().unwrap_or('x');
    assert!(!first.is_uppercase(), "message must start lower-case: {}", e.message);
}

pub(super) fn same(a: &Value, b: &Value) {
    assert_eq!(a, b);
    assert_eq!(std::mem::discriminant(a), std::mem::discriminant(b), "{a:?} vs {b:?}");
}
