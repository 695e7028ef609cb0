//! The stage table, enforced: each module of `src/` belongs to one layer of
//! the architecture (`docs/architecture.md`), and its code may name only the
//! layers that table allows. These layers are the crates the workspace is
//! being split into; until then this test is what makes a wrong import fail
//! (as rust-analyzer's tidy tests do), and after the split the compiler does.
//!
//! What is checked: every `crate::<module>` path in non-test code (comments
//! and `#[cfg(test)] mod tests` blocks are skipped: unit tests may reach
//! higher layers until they move with the split), grouped imports
//! (`crate::{a, b::C}`) included; in the provider SDK files, a path into a
//! built-in provider's module (`git::…`, `super::s3::…`).

use std::collections::BTreeMap;
use std::path::Path;

/// Layers bottom-up, with what each may name besides itself.
const LAYERS: &[(&str, &[&str])] = &[
    // Values, types, diagnostics, URL coding and redaction, file primitives.
    ("base", &[]),
    // The provider trait, requests, schemas, registry, retry/rate-limit policy.
    ("sdk", &["base"]),
    // Grammar, syntax tree, evaluation, functions, templates. It reads
    // providers' schemas through the SDK's registry (no provider, no IO).
    ("language", &["base", "sdk"]),
    // Hardened child processes (git), PostgreSQL TLS, S3 plumbing, the
    // process's rustls crypto provider.
    ("clients", &["base"]),
    // The only layer with SQL and the state's S3 layout.
    ("state", &["base", "clients"]),
    // The built-in providers: the only layer that names one.
    ("providers", &["base", "sdk", "language", "clients"]),
    // Graph, plan, apply, reconcile, refresh, drift: never names a provider.
    ("engine", &["base", "sdk", "language", "state"]),
    // Loading a project: module sources and the lock, environments.
    ("project", &["base", "sdk", "language", "clients", "state", "engine"]),
    // Arguments, stages, rendering, exit codes.
    ("binary", &["base", "sdk", "language", "clients", "state", "providers", "engine", "project"]),
];

/// Top-level modules (and the two SDK files of `providers/`) to layers.
const MODULES: &[(&str, &str)] = &[
    ("value", "base"),
    ("types", "base"),
    ("diagnostic", "base"),
    ("redact", "base"),
    ("fsutil", "base"),
    ("providers/mod.rs", "sdk"),
    ("providers/governed.rs", "sdk"),
    ("syntax", "language"),
    ("eval", "language"),
    ("template", "language"),
    ("child", "clients"),
    ("pgtls", "clients"),
    ("s3util", "clients"),
    ("tls", "clients"),
    ("state", "state"),
    ("providers", "providers"),
    ("graph", "engine"),
    ("plan", "engine"),
    ("exec", "engine"),
    ("project", "project"),
    ("envs", "project"),
    ("sources", "project"),
    ("cli", "binary"),
    ("lib.rs", "binary"),
    ("main.rs", "binary"),
];

/// The modules under `providers/` that are built-in providers (not SDK).
const PROVIDER_MODULES: &[&str] = &["builtin", "core", "exec", "file", "file_tree", "git", "http", "kubernetes", "pg_scram", "postgres", "random", "s3"];

/// The layer of a file, by its path relative to `src/`.
fn layer_of_file(rel: &str) -> Option<&'static str> {
    if let Some((_, l)) = MODULES.iter().find(|(m, _)| m.ends_with(".rs") && *m == rel) {
        return Some(l);
    }
    let top = rel.split('/').next()?.trim_end_matches(".rs");
    MODULES.iter().find(|(m, _)| *m == top).map(|(_, l)| *l)
}

/// The layer a `crate::` path names (`providers::Registry` is the SDK,
/// `providers::git::…` a provider).
fn layer_of_path(path: &str) -> Option<&'static str> {
    let mut parts = path.split("::");
    let top = parts.next()?;
    if top == "providers" {
        return Some(match parts.next() {
            Some(m) if PROVIDER_MODULES.contains(&m) => "providers",
            _ => "sdk",
        });
    }
    MODULES.iter().find(|(m, _)| *m == top).map(|(_, l)| *l)
}

/// The code of a file without comments and without its `#[cfg(test)]` test
/// module, line numbers kept (removed text becomes empty lines).
fn code_only(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut skipping_depth: Option<i64> = None;
    let mut pending_cfg_test = false;
    for line in text.lines() {
        let code = match line.find("//") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        };
        if let Some(depth) = skipping_depth.as_mut() {
            *depth += code.matches('{').count() as i64 - code.matches('}').count() as i64;
            if *depth <= 0 {
                skipping_depth = None;
            }
            out.push(String::new());
            continue;
        }
        let trimmed = code.trim();
        if trimmed == "#[cfg(test)]" {
            pending_cfg_test = true;
            out.push(String::new());
            continue;
        }
        if pending_cfg_test && trimmed.starts_with("mod ") && trimmed.ends_with('{') {
            skipping_depth = Some(1);
            pending_cfg_test = false;
            out.push(String::new());
            continue;
        }
        pending_cfg_test = false;
        out.push(code.to_string());
    }
    out
}

/// Every `crate::a::b` path of a line, grouped imports expanded.
fn crate_paths(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().last();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `plinth_crate::…`, not ours
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                out.push(ident_path(item.trim()));
            }
        } else {
            out.push(ident_path(rest));
        }
    }
    out.retain(|p| !p.is_empty());
    out
}

/// The leading `a::b` of a path (two segments at most).
fn ident_path(text: &str) -> String {
    let segs: Vec<&str> =
        text.split("::").take(2).map(|s| s.split(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap_or("")).take_while(|s| !s.is_empty()).collect();
    segs.join("::")
}

/// The violations in one file's text: `rel:line: what`.
fn violations(rel: &str, text: &str) -> Vec<String> {
    let Some(layer) = layer_of_file(rel) else {
        return vec![format!("{rel}: not in the layer table of tests/it/architecture.rs; add it to MODULES")];
    };
    let allowed = LAYERS.iter().find(|(l, _)| *l == layer).map(|(_, a)| *a).unwrap_or(&[]);
    let mut out = Vec::new();
    for (n, line) in code_only(text).iter().enumerate() {
        for path in crate_paths(line) {
            match layer_of_path(&path) {
                Some(l) if l == layer || allowed.contains(&l) => {}
                Some(l) => out.push(format!("src/{rel}:{}: `crate::{path}` is layer `{l}`; layer `{layer}` may use only {allowed:?}", n + 1)),
                None => out.push(format!("src/{rel}:{}: `crate::{path}` is in no layer; add its module to MODULES", n + 1)),
            }
        }
        if layer == "sdk" {
            for m in PROVIDER_MODULES.iter().filter(|m| **m != "core") {
                let needle = format!("{m}::");
                for (i, _) in line.match_indices(&needle) {
                    let before = line[..i].chars().last();
                    let qualified_ok = line[..i].ends_with("crate::") || line[..i].ends_with("std::");
                    if !qualified_ok && !before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        out.push(format!("src/{rel}:{}: the provider SDK names the built-in provider `{m}`", n + 1));
                    }
                }
            }
        }
    }
    out
}

fn rust_files(dir: &Path, rel: &str, out: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
        if entry.file_type().unwrap().is_dir() {
            rust_files(&entry.path(), &rel, out);
        } else if name.ends_with(".rs") {
            out.insert(rel, std::fs::read_to_string(entry.path()).unwrap());
        }
    }
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let mut files = BTreeMap::new();
    rust_files(&crate::repo_root().join("src"), "", &mut files);
    assert!(files.len() > 50, "found only {} files under src/", files.len());
    let all: Vec<String> = files.iter().flat_map(|(rel, text)| violations(rel, text)).collect();
    assert!(all.is_empty(), "imports the architecture forbids (docs/architecture.md):\n{}", all.join("\n"));
}

#[test]
fn the_check_sees_what_it_must_refuse() {
    // The engine naming a provider, the base reaching up, a grouped import,
    // the SDK naming a provider module, a module outside the table.
    assert_eq!(violations("plan/mod.rs", "use crate::providers::git::GitFactory;\n").len(), 1);
    assert_eq!(violations("value.rs", "fn f() { crate::plan::x() }\n").len(), 1);
    assert_eq!(violations("eval/expr.rs", "use crate::{value::Value, state::Store};\n").len(), 1);
    assert_eq!(violations("providers/mod.rs", "r.register(Arc::new(git::GitFactory::new()));\n").len(), 1);
    assert_eq!(violations("nowhere.rs", "").len(), 1);
    // … and lets pass what is allowed, comments and unit tests.
    assert!(violations("plan/mod.rs", "use crate::providers::Registry;\nuse crate::eval::Config;\n").is_empty());
    assert!(violations("value.rs", "// crate::plan::x\n#[cfg(test)]\nmod tests {\n    use crate::plan::Plan;\n}\n").is_empty());
    assert!(violations("providers/git.rs", "use crate::eval::functions::FnHost;\nuse crate::child::Child;\n").is_empty());
}
