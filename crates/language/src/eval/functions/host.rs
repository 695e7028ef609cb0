//! Host access: `env`, `file`, `template` and `fileset`, and [`confined`],
//! the check the file functions make before reading anything.
//!
//! Invariants: the only family that reaches the outside world, and only
//! through [`FnHost`] (which the CLI implements and records); a path that
//! leaves the directories expressions may read fails with [`OUTSIDE_CODE`]
//! before anything is read. `file` and `fileset` have Terraform's
//! semantics; `env` and `template` are Plinth's own.

use super::args::{quote, type_error, Args};
use super::{FnError, FnHost, OUTSIDE_CODE};
use crate::value::{Map, Value};

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

pub(super) fn f_env(mut a: Args, host: &mut dyn FnHost) -> Result<Value, FnError> {
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

pub(super) fn f_file(a: &Args, host: &mut dyn FnHost) -> Result<Value, FnError> {
    let path = a.string(0)?;
    confined(host, "file", &path)?;
    host.read_file(&path).map(Value::String).map_err(|m| FnError::at(0, format!("could not read the file {}: {m}", quote(&path))))
}

/// `template(path, vars[, env[, delimiters]])`: renders the template file
/// at `path` (read through the host) with `vars`, `env` (default `{}`) and
/// `delimiters` (default `["{{", "}}"]`). Template errors keep their own
/// codes (`P207x`) and name the template's file, line and column.
pub(super) fn f_template(a: &Args, host: &mut dyn FnHost) -> Result<Value, FnError> {
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

pub(super) fn f_fileset(a: &Args, host: &mut dyn FnHost) -> Result<Value, FnError> {
    let dir = a.string(0)?;
    let pattern = a.string(1)?;
    glob::Pattern::new(&pattern).map_err(|e| FnError::at(1, format!("{} is not a valid glob pattern: {e}", quote(&pattern))))?;
    confined(host, "fileset", &dir)?;
    let paths = host.fileset(&dir, &pattern).map_err(|m| FnError::at(0, format!("could not list the files in {}: {m}", quote(&dir))))?;
    Ok(Value::List(paths.into_iter().map(Value::String).collect()))
}

#[cfg(test)]
mod tests {
    use crate::eval::functions::test_support::*;
    use crate::eval::functions::{call, FnError};
    use crate::value::Value;

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
}
