//! `plinth render SRC DST`: standalone hydration of a template directory
//! (gomplate's `--input-dir`/`--output-dir`). The rendering itself is the
//! `file.tree` code (`providers::file::tree`); this only gathers values
//! from the command line and reports.

use super::Failure;
use crate::diagnostic::{Diagnostic, Sources};
use crate::providers::file::tree;
use crate::value::{Map, Value};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct RenderArgs {
    /// The template directory: every file under it is rendered.
    pub src: PathBuf,
    /// The output directory: each file lands at the same relative path.
    pub dst: PathBuf,
    /// The tag markers, opening then closing (default: {{ }}).
    #[arg(long, num_args = 2, value_names = ["OPEN", "CLOSE"], allow_hyphen_values = true)]
    pub delimiters: Option<Vec<String>>,
    /// A template variable, `key=value` (a string); `a.b=v` sets a nested
    /// key. Repeatable; wins over --values.
    #[arg(long = "var", value_name = "KEY=VALUE")]
    pub vars: Vec<String>,
    /// A JSON or YAML file holding an object of template variables.
    #[arg(long, value_name = "FILE")]
    pub values: Option<PathBuf>,
    /// Pass the process environment as `env` (`.Env.X`, `env.X`, `env("X")`);
    /// without it `env` is empty.
    #[arg(long)]
    pub process_env: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

fn fail(d: Diagnostic, json: bool) -> Failure {
    Failure { sources: Sources::default(), diags: vec![d], json }
}

fn invalid_var(arg: &str) -> Diagnostic {
    Diagnostic::new("P2076", "invalid --var")
        .help(format!("`--var {arg}` is not of the form `key=value`; write e.g. `--var domain=example.org` or `--var db.host=pg`."))
}

/// Sets `value` at the dotted `key` (`a.b.c`), creating objects on the way.
fn set_path(vars: &mut Map, key: &str, value: Value) -> Result<(), ()> {
    let mut parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(());
    }
    let last = parts.pop().ok_or(())?;
    let mut cur = vars;
    for part in parts {
        let slot = cur.entry(part.to_string()).or_insert_with(|| Value::Map(Map::default()));
        if !matches!(slot, Value::Map(_)) {
            *slot = Value::Map(Map::default());
        }
        let Value::Map(next) = slot else { return Err(()) };
        cur = next;
    }
    cur.insert(last.to_string(), value);
    Ok(())
}

/// The template variables: the --values file, then every --var.
pub fn collect_vars(values: Option<&PathBuf>, vars: &[String]) -> Result<Map, Diagnostic> {
    let mut out = Map::default();
    if let Some(path) = values {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Diagnostic::new("P2077", "cannot read the values file").help(format!("{}: {e}. Check the path given to --values.", path.display())))?;
        let parsed: serde_json::Value = serde_yaml::from_str(&text).map_err(|e| {
            Diagnostic::new("P2076", "invalid values file")
                .help(format!("{} is not valid JSON or YAML: {e}. It must hold one object of variables.", path.display()))
        })?;
        match Value::from_json(&parsed) {
            Value::Map(m) => out = m,
            Value::Null => {}
            _ => {
                return Err(Diagnostic::new("P2076", "invalid values file")
                    .help(format!("{} must hold an object of variables, such as `domain: example.org`.", path.display())))
            }
        }
    }
    for arg in vars {
        let Some((key, value)) = arg.split_once('=') else { return Err(invalid_var(arg)) };
        set_path(&mut out, key.trim(), Value::str(value)).map_err(|_| invalid_var(arg))?;
    }
    Ok(out)
}

pub fn render_cmd(args: RenderArgs) -> Result<i32, Failure> {
    let json = args.json;
    let vars = collect_vars(args.values.as_ref(), &args.vars).map_err(|d| fail(d, json))?;
    let env: Map = if args.process_env {
        std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, Value::String(v.into_string().ok()?)))).collect()
    } else {
        Map::default()
    };
    let delimiters = match &args.delimiters {
        Some(d) => Value::List(d.iter().map(|s| Value::str(s.clone())).collect()),
        None => Value::List(vec![Value::str("{{"), Value::str("}}")]),
    };
    let base = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let mut config = Map::default();
    config.insert("source".into(), Value::str(args.src.to_string_lossy()));
    config.insert("target".into(), Value::str(args.dst.to_string_lossy()));
    config.insert("vars".into(), Value::Map(vars));
    config.insert("env".into(), Value::Map(env));
    config.insert("delimiters".into(), delimiters);
    // In a project directory the destination may not hold the project.
    let kind = if tree::is_project(&base) { tree::Base::Project } else { tree::Base::Directory };
    let rendered = tree::render_tree_in(&base, kind, &config).map_err(|d| fail(d, json))?;
    let target = tree::target_dir(&base, &config).map_err(|d| fail(d, json))?;
    tree::write_files(&target, &rendered).map_err(|d| fail(d, json))?;
    let n = rendered.files.len();
    if json {
        let files: Vec<&String> = rendered.files.keys().collect();
        println!("{}", serde_json::json!({ "rendered": n, "source": args.src, "target": args.dst, "files": files }));
    } else {
        println!("Rendered {n} file{} from {} into {}.", if n == 1 { "" } else { "s" }, args.src.display(), args.dst.display());
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vars_nest_and_override_the_values_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("values.yaml");
        std::fs::write(&file, "db:\n  host: pg\n  port: 5432\nname: a\n").expect("write");
        let vars = collect_vars(Some(&file), &["db.host=other".into(), "name=b".into(), "x.y.z=1".into()]).expect("vars");
        let v = Value::Map(vars);
        assert_eq!(v.to_json(), serde_json::json!({"db": {"host": "other", "port": 5432}, "name": "b", "x": {"y": {"z": "1"}}}));
        assert_eq!(collect_vars(None, &["novalue".into()]).map_err(|d| d.code), Err("P2076"));
        assert_eq!(collect_vars(None, &["a..b=1".into()]).map_err(|d| d.code), Err("P2076"));
    }
}
