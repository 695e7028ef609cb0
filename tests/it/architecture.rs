//! The stage table, enforced. Each layer of `docs/architecture.md` is a crate
//! of the workspace, and a crate may depend only on the crates below it: the
//! compiler then refuses a wrong import, and this test refuses a manifest
//! that adds a dependency the table forbids (as rust-analyzer's tidy tests
//! do). It also keeps heavy clients in their rooms: SQL only in the state
//! crate, HTTP only in the providers and the provider registry client, and a language crate whose whole
//! dependency tree (tests included) has no tokio, rusqlite, reqwest or AWS
//! SDK.

use std::collections::BTreeMap;

/// Workspace crates bottom-up, with the workspace crates each may depend on.
const CRATES: &[(&str, &[&str])] = &[
    // Values, types, diagnostics, URL coding and redaction, file primitives.
    ("plinth-base", &[]),
    // The provider trait, requests, schemas, registry, retry/rate-limit policy.
    ("plinth-sdk", &["plinth-base"]),
    // Grammar, syntax tree, evaluation, functions, templates; provider
    // schemas through the SDK's registry (no provider, no IO).
    ("plinth-language", &["plinth-base", "plinth-sdk"]),
    // Hardened child processes (git), PostgreSQL TLS, S3 plumbing.
    ("plinth-clients", &["plinth-base"]),
    // Terraform/OpenTofu provider installation: addresses, constraints,
    // h1/zh hashes, mirrors, the registry protocol (https, gpgv).
    ("plinth-tfregistry", &["plinth-base", "plinth-clients"]),
    // The only crate with SQL and the state's S3 layout.
    ("plinth-state", &["plinth-base", "plinth-clients"]),
    // The built-in providers: the only crate that names one.
    ("plinth-providers", &["plinth-base", "plinth-sdk", "plinth-language", "plinth-clients"]),
    // Terraform/OpenTofu providers: the plugin protocol client, as a Plinth
    // provider (names no built-in provider).
    ("plinth-tfplugin", &["plinth-base", "plinth-sdk", "plinth-clients"]),
    // Graph, plan, apply, reconcile, refresh, drift: never names a provider.
    ("plinth-engine", &["plinth-base", "plinth-sdk", "plinth-language", "plinth-state"]),
    // Loading a project: module sources and the lock, environments.
    // (`plinth.lock` pins providers with plinth-tfregistry's entries.)
    ("plinth-project", &["plinth-base", "plinth-sdk", "plinth-language", "plinth-clients", "plinth-tfregistry", "plinth-state", "plinth-engine"]),
    // What the commands do: one resolved operation in, an outcome out
    // (plans, saved plans, locking, drift, state surgery); never prints.
    (
        "plinth-operations",
        &[
            "plinth-base",
            "plinth-sdk",
            "plinth-language",
            "plinth-clients",
            "plinth-tfregistry",
            "plinth-state",
            "plinth-providers",
            "plinth-tfplugin",
            "plinth-engine",
            "plinth-project",
        ],
    ),
    // The binary: arguments, rendering, exit codes.
    (
        "plinth",
        &[
            "plinth-base",
            "plinth-sdk",
            "plinth-language",
            "plinth-clients",
            "plinth-tfregistry",
            "plinth-state",
            "plinth-providers",
            "plinth-tfplugin",
            "plinth-engine",
            "plinth-project",
            "plinth-operations",
        ],
    ),
];

/// External crates confined to some workspace crates (normal dependencies;
/// tests may use them anywhere).
const CONFINED: &[(&str, &[&str])] = &[
    ("rusqlite", &["plinth-state"]),
    ("chacha20poly1305", &["plinth-state"]),
    // … and the provider registry client (registries speak HTTPS).
    ("reqwest", &["plinth-providers", "plinth-tfregistry"]),
    ("kube", &["plinth-providers"]),
    ("k8s-openapi", &["plinth-providers"]),
    ("postgres", &["plinth-clients", "plinth-state", "plinth-providers"]),
    ("aws-sdk-s3", &["plinth-clients", "plinth-state", "plinth-providers"]),
    ("pest", &["plinth-language"]),
    ("pest_derive", &["plinth-language"]),
    ("petgraph", &["plinth-engine"]),
    ("tonic", &["plinth-tfplugin"]),
    ("prost", &["plinth-tfplugin"]),
    ("clap", &["plinth"]),
    ("indicatif", &["plinth"]),
];

/// What the language crate's dependency tree must not contain.
const NOT_IN_LANGUAGE: &[&str] = &["tokio", "rusqlite", "reqwest", "aws-sdk-s3", "postgres", "hyper"];

/// A manifest's package name and the names in its `[dependencies]` table.
fn manifest(text: &str) -> (String, Vec<String>) {
    let mut name = String::new();
    let mut deps = Vec::new();
    let mut section = "";
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
            continue;
        }
        let Some((key, value)) = line.split_once('=') else { continue };
        let key = key.trim();
        if section == "[package]" && key == "name" {
            name = value.trim().trim_matches('"').to_string();
        } else if section == "[dependencies]" && !line.starts_with('#') {
            deps.push(key.split('.').next().unwrap_or(key).trim().to_string());
        }
    }
    (name, deps)
}

/// What the table forbids in one manifest.
fn violations(name: &str, deps: &[String]) -> Vec<String> {
    let Some((_, allowed)) = CRATES.iter().find(|(c, _)| *c == name) else {
        return vec![format!("crate `{name}` is not in the table of tests/it/architecture.rs (and docs/architecture.md)")];
    };
    let mut out = Vec::new();
    for dep in deps {
        if dep.starts_with("plinth") && dep != name && !allowed.contains(&dep.as_str()) {
            out.push(format!("`{name}` depends on `{dep}`; it may depend only on {allowed:?}"));
        }
        if let Some((_, owners)) = CONFINED.iter().find(|(d, _)| d == dep) {
            if !owners.contains(&name) {
                out.push(format!("`{name}` depends on `{dep}`, which only {owners:?} may use"));
            }
        }
    }
    out
}

fn manifests() -> BTreeMap<String, Vec<String>> {
    let root = crate::repo_root();
    let mut paths = vec![root.join("Cargo.toml")];
    for entry in std::fs::read_dir(root.join("crates")).unwrap() {
        paths.push(entry.unwrap().path().join("Cargo.toml"));
    }
    paths.iter().map(|p| manifest(&std::fs::read_to_string(p).unwrap())).collect()
}

#[test]
fn every_crate_depends_only_on_the_layers_below_it() {
    let all = manifests();
    let names: Vec<&str> = all.keys().map(String::as_str).collect();
    let table: Vec<&str> = {
        let mut t: Vec<&str> = CRATES.iter().map(|(c, _)| *c).collect();
        t.sort();
        t
    };
    assert_eq!(names, table, "the workspace's crates and the table differ");
    let bad: Vec<String> = all.iter().flat_map(|(name, deps)| violations(name, deps)).collect();
    assert!(bad.is_empty(), "dependencies the architecture forbids (docs/architecture.md):\n{}", bad.join("\n"));
}

/// The operations crate returns outcomes and diagnostics; only the binary
/// prints (it alone knows `--json`, colours and exit codes).
#[test]
fn the_operations_never_print() {
    let dir = crate::repo_root().join("crates/operations/src");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            if ["print!(", "println!(", "eprint!(", "eprintln!(", "dbg!(", "stdout()", "stderr()"].iter().any(|p| line.contains(p)) {
                found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "the operations crate prints:\n{}", found.join("\n"));
}

#[test]
fn the_language_builds_and_tests_without_a_runtime_or_a_client() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["tree", "-p", "plinth-language", "-e", "normal,build,dev", "--prefix", "none", "--offline", "--locked"])
        .current_dir(crate::repo_root())
        .output()
        .expect("cargo tree runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("plinth-language"), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    let found: Vec<&str> = text.lines().filter_map(|l| l.split_whitespace().next()).filter(|c| NOT_IN_LANGUAGE.contains(c)).collect();
    assert!(found.is_empty(), "the language crate's dependency tree has {found:?}");
}

/// The Rust files under `dir`, recursively.
fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn git_runs_only_through_the_clients_runner() {
    // `Kind::Git` is the allow-list of git's environment: only the one
    // runner (plinth_clients::git) may start git with it; everything else
    // asks that runner, which adds the rest of the hardening.
    let root = crate::repo_root();
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    for entry in std::fs::read_dir(root.join("crates")).unwrap() {
        rust_files(&entry.unwrap().path().join("src"), &mut files);
    }
    let allowed = [root.join("crates/clients/src/git.rs"), root.join("crates/clients/src/child.rs")];
    let bad: Vec<String> = files
        .iter()
        .filter(|f| !allowed.contains(f) && std::fs::read_to_string(f).unwrap().contains("Kind::Git"))
        .map(|f| f.strip_prefix(&root).unwrap_or(f).display().to_string())
        .collect();
    assert!(bad.is_empty(), "these start git themselves instead of through plinth_clients::git::Git: {bad:?}");
    assert!(files.len() > 20, "the walk found the sources");
}

#[test]
fn the_check_sees_what_it_must_refuse() {
    let deps = |d: &[&str]| d.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // The engine naming the providers, the base reaching up, SQL outside the
    // state, a crate outside the table.
    assert_eq!(violations("plinth-engine", &deps(&["plinth-providers", "plinth-state"])).len(), 1);
    assert_eq!(violations("plinth-base", &deps(&["plinth-language"])).len(), 1);
    assert_eq!(violations("plinth-providers", &deps(&["rusqlite", "plinth-sdk"])).len(), 1);
    assert_eq!(violations("plinth-nowhere", &deps(&[])).len(), 1);
    // … and lets pass what is allowed.
    assert!(violations("plinth-engine", &deps(&["plinth-sdk", "plinth-state", "petgraph"])).is_empty());
    assert!(violations("plinth", &deps(&["plinth-providers", "clap"])).is_empty());
    let (name, found) = manifest(
        "[package]\nname = \"plinth-x\"\n[dependencies]\nfoo.workspace = true\nbar = { version = \"1\" }\n# baz = 1\n[dev-dependencies]\nqux = \"1\"\n",
    );
    assert_eq!((name.as_str(), found), ("plinth-x", deps(&["foo", "bar"])));
}
