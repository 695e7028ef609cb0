//! Components through apply, destroy and drift (plans and diagnostics are
//! covered by the directory fixtures in tests/fixtures/components).

use crate::*;

fn modular() -> tempfile::TempDir {
    project(&[
        (
            "main.plinth",
            r#"let prefix = random.id.run.hex

resource random.id run {
  byte_length = 2
}

module files from "./m" {
  for_each = toset(["a", "b"])
  name     = "${each.key}"
}

resource file.file index {
  path    = "out/index.txt"
  content = join("\n", [for k, f in module.files : "${k}=${f.path}"])
}
"#,
        ),
        (
            "m/main.plinth",
            r#"param name: string

resource file.file f {
  path    = "out/${name}.txt"
  content = "file ${name}\n"
}

output path = file.file.f.path
"#,
        ),
    ])
}

/// A saved plan of a project with modules applies (its hash covers the
/// modules' files, and so does the check), and an edit inside a module
/// after saving is refused like one in the root.
#[test]
fn saved_plans_of_projects_with_modules_apply_and_see_module_edits() {
    let dir = modular();
    let plan_file = dir.path().join("p.plan");
    assert_exit(&run(dir.path(), &["plan", "--out", plan_file.to_str().unwrap()]), 0);
    let o = run(dir.path(), &["apply", plan_file.to_str().unwrap()]);
    assert_exit(&o, 0);
    assert_eq!(std::fs::read_to_string(dir.path().join("out/a.txt")).unwrap(), "file a\n");
    // Edited inside the module after the plan was saved: refused, nothing written.
    std::fs::write(
        dir.path().join("m/main.plinth"),
        std::fs::read_to_string(dir.path().join("m/main.plinth")).unwrap().replace("file ${name}", "changed ${name}"),
    )
    .unwrap();
    assert_exit(&run(dir.path(), &["plan", "--out", plan_file.to_str().unwrap()]), 0);
    let text = std::fs::read_to_string(dir.path().join("m/main.plinth")).unwrap();
    std::fs::write(dir.path().join("m/main.plinth"), text.replace("changed ${name}", "again ${name}")).unwrap();
    let o = run(dir.path(), &["apply", plan_file.to_str().unwrap()]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("P4004"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(dir.path().join("out/a.txt")).unwrap(), "file a\n");
}

#[test]
fn components_apply_idempotently_drift_and_destroy() {
    let dir = modular();
    let o = run(dir.path(), &["apply", "--auto-approve"]);
    assert_exit(&o, 0);
    assert_eq!(std::fs::read_to_string(dir.path().join("out/index.txt")).unwrap(), "a=out/a.txt\nb=out/b.txt");
    let list = stdout(&run(dir.path(), &["state", "list"]));
    assert!(list.contains("module.files[\"a\"].file.file.f") && list.contains("module.files[\"b\"].file.file.f"), "{list}");
    assert_exit(&run(dir.path(), &["plan", "--detailed-exitcode"]), 0);
    // A hand edit inside a component is drift with the component's address.
    std::fs::write(dir.path().join("out/b.txt"), "edited\n").unwrap();
    let o = run(dir.path(), &["drift"]);
    assert_exit(&o, 2);
    assert!(stdout(&o).contains("module.files[\"b\"].file.file.f"), "{}", stdout(&o));
    assert_exit(&run(dir.path(), &["apply", "--auto-approve", "--refresh"]), 0);
    assert_eq!(std::fs::read_to_string(dir.path().join("out/b.txt")).unwrap(), "file b\n");
    // Destroy evaluates lets and component outputs built from resources as
    // unknown instead of failing on them.
    let o = run(dir.path(), &["destroy", "--auto-approve"]);
    assert_exit(&o, 0);
    assert!(!dir.path().join("out/a.txt").exists() && !dir.path().join("out/index.txt").exists());
    assert_eq!(stdout(&run(dir.path(), &["state", "list"])).trim(), "");
}

#[test]
fn removing_a_component_instance_destroys_only_its_resources() {
    let dir = modular();
    assert_exit(&run(dir.path(), &["apply", "--auto-approve"]), 0);
    let main = std::fs::read_to_string(dir.path().join("main.plinth")).unwrap().replace("toset([\"a\", \"b\"])", "toset([\"a\"])");
    std::fs::write(dir.path().join("main.plinth"), main).unwrap();
    let o = run(dir.path(), &["apply", "--auto-approve"]);
    assert_exit(&o, 0);
    assert!(dir.path().join("out/a.txt").exists());
    assert!(!dir.path().join("out/b.txt").exists(), "the removed instance's file is destroyed");
    assert_eq!(std::fs::read_to_string(dir.path().join("out/index.txt")).unwrap(), "a=out/a.txt");
}

#[test]
fn only_follows_the_one_output_a_keyed_reference_reads() {
    let dir = project(&[
        (
            "main.plinth",
            r#"module m from "./m" {
  count = 1
}

resource core.data reader {
  input = module.m[0].a
}
"#,
        ),
        (
            "m/main.plinth",
            r#"resource core.data a {
  input = "a"
}

resource core.data b {
  input = "b"
}

output a = core.data.a.output
output b = core.data.b.output
"#,
        ),
    ]);
    let o = run(dir.path(), &["plan", "--only", "core.data.reader", "--json"]);
    assert_exit(&o, 0);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let addresses: Vec<&str> = v["changes"].as_array().unwrap().iter().map(|c| c["address"].as_str().unwrap()).collect();
    assert_eq!(addresses, ["module.m[0].core.data.a", "core.data.reader"], "only what `module.m[0].a` needs");
}

#[test]
fn only_an_address_inside_a_repeated_component_selects_it_and_never_deletes_it() {
    let dir = project(&[
        ("main.plinth", "module m from \"./m\" {\n  count = 2\n  n     = count.index\n}\n"),
        ("m/main.plinth", "param n: number\n\nresource file.file f {\n  path    = \"out/${n}.txt\"\n  content = \"x\"\n}\n"),
    ]);
    let o = run(dir.path(), &["plan", "--only", "module.m[0].file.file.f", "--json"]);
    assert_exit(&o, 0);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["summary"]["create"], 1, "{v}");
    assert_exit(&run(dir.path(), &["apply", "--auto-approve"]), 0);
    let o = run(dir.path(), &["plan", "--only", "module.m[0].file.file.f", "--detailed-exitcode"]);
    assert_exit(&o, 0);
    assert!(!stdout(&o).contains("destroyed"), "{}", stdout(&o));
}
