//! The standard library against Terraform itself: each expression is
//! evaluated by `terraform console` (the oracle, on PATH here and in CI) and
//! by `plinth plan`, and the results must be equal. Skipped only when
//! `terraform` is not installed.

use crate::*;
use base64::Engine as _;

fn terraform_available() -> bool {
    Command::new("terraform").arg("version").output().is_ok_and(|o| o.status.success())
}

/// Terraform's JSON encoding of each expression, from one console session.
fn terraform_values(exprs: &[&str]) -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().unwrap();
    let list = exprs.iter().map(|e| format!("jsonencode({e})")).collect::<Vec<_>>().join(", ");
    let out = Command::new("terraform")
        .arg("console")
        .current_dir(dir.path())
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .env("CHECKPOINT_DISABLE", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            writeln!(stdin, "base64encode(jsonencode([{list}]))")?;
            drop(stdin);
            child.wait_with_output()
        })
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let b64 = text.trim().trim_matches('"');
    let bytes =
        base64::engine::general_purpose::STANDARD.decode(b64).unwrap_or_else(|e| panic!("terraform said {text} {}: {e}", String::from_utf8_lossy(&out.stderr)));
    let strings: Vec<String> = serde_json::from_slice(&bytes).unwrap();
    strings.iter().map(|s| serde_json::from_str(s).unwrap()).collect()
}

/// Plinth's values of the same expressions (as outputs of a plan).
fn plinth_values(exprs: &[&str]) -> Vec<serde_json::Value> {
    let src: String = exprs.iter().enumerate().map(|(i, e)| format!("output r{i} = jsonencode({e})\n")).collect();
    let dir = project(&[("main.plinth", &src)]);
    let out = run(dir.path(), &["plan", "--json"]);
    assert_exit(&out, 0);
    let plan: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let outputs = plan["outputs"].as_array().unwrap();
    (0..exprs.len())
        .map(|i| {
            let o = outputs.iter().find(|o| o["name"] == format!("r{i}")).unwrap();
            serde_json::from_str(o["value"].as_str().unwrap()).unwrap()
        })
        .collect()
}

fn compare(exprs: &[&str]) {
    if !terraform_available() {
        eprintln!("terraform is not installed: skipping");
        return;
    }
    let want = terraform_values(exprs);
    let got = plinth_values(exprs);
    let mismatches: Vec<String> =
        exprs.iter().zip(want.iter().zip(&got)).filter(|(_, (w, g))| w != g).map(|(e, (w, g))| format!("{e}\n  terraform: {w}\n  plinth:    {g}")).collect();
    assert!(mismatches.is_empty(), "{} of {} differ:\n{}", mismatches.len(), exprs.len(), mismatches.join("\n"));
}

#[test]
fn regular_expression_classes_are_ascii_as_in_re2() {
    compare(&[
        r#"replace("héllo wörld", "/\\w+/", "X")"#,
        r#"replace("١٢٣ 456", "/\\d+/", "N")"#,
        r#"replace("١٢٣4", "/\\D+/", "N")"#,
        r#"replace("a b\tc", "/\\s/", "_")"#,
        r#"replace("a b c", "/\\S+/", "X")"#,
        r#"replace("a-é", "/\\W/", "_")"#,
        r#"regex("[\\w-]+", "ab-é")"#,
        r#"replace("a1b٢c", "/[^\\d]+/", "_")"#,
        r#"replace("a, b", "/[\\s,]+/", "_")"#,
        r#"replace("a é", "/\\bé/", "X")"#,
        r#"replace("aé a", "/a\\b/", "X")"#,
        r#"replace("é!", "/./", "X")"#,
        r#"replace("aéb", "/[[:alpha:]]+/", "X")"#,
        r#"regex("(?i)É", "é")"#,
        r#"replace("a1٢3", "/\\d/", "N")"#,
        r#"regex("(\\d+)-(\\w+)", "x 12-ab")"#,
        r#"regex("[\\W]+", "ab-é!")"#,
        r#"replace("x_1é", "/[^\\w]/", "?")"#,
    ]);
}

#[test]
fn maps_are_iterated_in_key_order_as_in_terraform() {
    compare(&[
        "[for k, v in {b = 1, a = 2, c = 3} : v]",
        "[for k, v in {b = 1, a = 2} : k]",
        "[for v in {b = 1, a = 2} : v]",
        "zipmap(keys({b = 1, a = 2}), [for k, v in {b = 1, a = 2} : v])",
        "{for k, v in {zeta = \"z\", alpha = \"a\"} : v => k}",
        "[for o in {b = {n = 1}, a = {n = 2}} : o.n]",
        "flatten([for k, v in {b = [1], a = [2]} : v])",
        "join(\",\", [for k, v in {b = 1, a = 2, c = 3} : \"${k}=${v}\"])",
        "values({z = 1, y = 2, x = 3})",
        "keys({z = 1, y = 2, x = 3})",
        "[for k, v in {\"B\" = 1, \"a\" = 2, \"_\" = 3, \"1\" = 4} : k]",
        "[for i, v in [\"x\", \"y\"] : \"${i}${v}\"]",
        "[for k, v in {b = 1, a = 2} : v if k != \"c\"]",
    ]);
}

#[test]
fn whole_number_arithmetic_agrees_within_64_bits() {
    compare(&[
        "9223372036854775807 - 1",
        "(-9223372036854775807 - 1) + 1",
        "-9223372036854775807 / -1",
        "7 / 2",
        "6 / 3",
        "-7 % 3",
        "7 % -3",
        "(-9223372036854775807 - 1) % -1",
        "4611686018427387903 * 2",
        "-(-9223372036854775807)",
    ]);
}

#[test]
fn integer_overflow_is_an_error_where_terraform_is_exact() {
    let cases = [
        "(-9223372036854775807 - 1) / -1",
        "9223372036854775807 + 1",
        "9223372036854775807 * 3",
        "-(-9223372036854775807 - 1)",
        "(-9223372036854775807 - 1) - 1",
    ];
    if terraform_available() {
        // Terraform computes these exactly (arbitrary precision): none fits
        // in 64 bits, which is why Plinth refuses them instead of rounding.
        for (e, v) in cases.iter().zip(terraform_values(&cases)) {
            assert!(v.as_i64().is_none() && v.is_number(), "{e}: terraform gave {v}");
        }
    }
    for e in cases {
        let dir = project(&[("main.plinth", &format!("output x = {e}\n"))]);
        let out = run(dir.path(), &["plan"]);
        assert_exit(&out, 1);
        assert!(stderr(&out).contains("P2140"), "{e}: {}", stderr(&out));
    }
}

#[test]
fn yamldecode_resolves_yaml_1_1_scalars_as_terraform_does() {
    compare(&[
        r#"yamldecode("[yes, no, on, off, y, n, Y, N, YES, Yes, True, TRUE, true, false, Off, ON, NO, No]")"#,
        r#"yamldecode("[\"yes\", 'no', !!str yes, \"on\", 'y']")"#,
        r#"yamldecode("[0o17, 017, 0x1F, 1_000, 0b101, +1, 1.5e3, .5, 1., 0017, 08, 1:20, 190:20:30, 0x_1F, 1_0.5]")"#,
        r#"yamldecode("[-0x1F, +0o17, 0X1F, 0O17, 1e, 1.5.5, -.5, 12e03, 0x, 0xG, 00, -017, 1E3, 0.0, 3.0, 5, -5]")"#,
        r#"yamldecode("[~, null, Null, NULL, \"\", \"null\", =, <<, yes please, nothing]")"#,
        r#"yamldecode("[2001-12-14, 2001-12-14t21:59:43.10-05:00, 2001-12-14 21:59:43.10, 2001-1-2, 2001-12-14T21:59:43Z, 2001-12-14T21:59:43.5+01:00, 2001-12-14x, 2002-13-40, 2001-02-29, \"2001-12-14\"]")"#,
        r#"yamldecode("a: &x {b: 1, c: on}\nd:\n  <<: *x\n  b: 2\ne: *x")"#,
        r#"yamldecode("{yes: 1, 3: 4, off: 5}")"#,
        r#"yamldecode("a: |\n  yes\nb: >-\n  on\nc: 'off'\n")"#,
        r#"yamldecode("[!!bool yes, !!timestamp 2001-12-14, !!null x, !!str 12]")"#,
        r#"yamldecode("enabled: yes\nreplicas: 03\nmode: 0o644\nversion: 1.10\nname: n\n")"#,
        r#"yamldecode("plain text")"#,
    ]);
}
