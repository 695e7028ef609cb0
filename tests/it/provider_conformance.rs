//! The conformance suite every provider passes, through the real CLI:
//! create → read back (no drift) → apply again (no changes) → change outside
//! Plinth (drift, exit 2) → `apply --refresh` repairs it → update in place or
//! replace → destroy → the object is gone. Each provider's test module calls
//! [`run`] with its own configuration and probes of the real system.

use crate::*;
use std::path::Path;

/// One provider's case. The configuration is the text of `main.plinth`;
/// `{V}` in it is replaced by "1" for the first version and "2" for the
/// changed one (an in-place update or a replacement, as the provider does it).
pub struct Case<'a> {
    pub name: &'a str,
    pub config: &'a str,
    /// Extra arguments for every command (e.g. `-var url=…`).
    pub args: Vec<String>,
    /// Environment variables for every command.
    pub env: Vec<(String, String)>,
    /// True when the real object exists, and (when given) holds version `v`.
    pub exists: &'a dyn Fn(Option<&str>) -> bool,
    /// Changes the real object behind Plinth's back.
    pub tamper: &'a dyn Fn(),
}

fn cmd(dir: &Path, case: &Case<'_>, args: &[&str]) -> std::process::Output {
    let mut c = plinth();
    c.args(args).args(&case.args).current_dir(dir);
    for (k, v) in &case.env {
        c.env(k, v);
    }
    c.output().expect("run plinth")
}

pub fn run(case: &Case<'_>) {
    let p = project(&[("main.plinth", &case.config.replace("{V}", "1"))]);
    let dir = p.path();
    let name = case.name;
    assert_exit(&cmd(dir, case, &["validate"]), 0);
    let created = cmd(dir, case, &["apply", "--auto-approve"]);
    assert_exit(&created, 0);
    assert!((case.exists)(Some("1")), "{name}: the object exists after apply");
    let again = cmd(dir, case, &["apply", "--auto-approve"]);
    assert_exit(&again, 0);
    assert!(stdout(&again).contains("No changes"), "{name}: second apply changes nothing: {}", stdout(&again));
    assert_exit(&cmd(dir, case, &["drift"]), 0);
    (case.tamper)();
    let drift = cmd(dir, case, &["drift", "--json"]);
    assert_exit(&drift, 2);
    assert_exit(&cmd(dir, case, &["apply", "--auto-approve", "--refresh"]), 0);
    assert_exit(&cmd(dir, case, &["drift"]), 0);
    assert!((case.exists)(Some("1")), "{name}: repaired");
    std::fs::write(dir.join("main.plinth"), case.config.replace("{V}", "2")).expect("write");
    let changed = cmd(dir, case, &["apply", "--auto-approve"]);
    assert_exit(&changed, 0);
    assert!((case.exists)(Some("2")), "{name}: the change reached the real object");
    assert_exit(&cmd(dir, case, &["plan", "--detailed-exitcode", "--refresh"]), 0);
    assert_exit(&cmd(dir, case, &["destroy", "--auto-approve"]), 0);
    assert!(!(case.exists)(None), "{name}: the object is gone after destroy");
    assert_eq!(stdout(&cmd(dir, case, &["state", "list"])), "", "{name}: nothing recorded after destroy");
}

#[test]
fn the_file_provider_passes() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("conf.txt");
    let t = target.clone();
    let exists = move |v: Option<&str>| match std::fs::read_to_string(&t) {
        Ok(text) => v.is_none_or(|v| text == format!("version {v}")),
        Err(_) => false,
    };
    let t2 = target.clone();
    let tamper = move || std::fs::write(&t2, "tampered").unwrap();
    let config = format!("resource file.file f {{\n  path    = \"{}\"\n  content = \"version {{V}}\"\n}}\n", target.display());
    run(&Case { name: "file.file", config: &config, args: vec![], env: vec![], exists: &exists, tamper: &tamper });
}
