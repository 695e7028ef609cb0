use super::*;
use crate::value::Map;

struct Host;

impl FnHost for Host {
    fn env(&mut self, _name: &str) -> Option<String> {
        None
    }
    fn read_file(&mut self, path: &str) -> Result<String, String> {
        match path {
            "inner.tpl" => Ok("inner {{ name }}".into()),
            "self.tpl" => Ok("{{ template(\"self.tpl\", vars) }}".into()),
            "broken.tpl" => Ok("line one\n  {{ nope }}".into()),
            _ => Err("no such file".into()),
        }
    }
    fn fileset(&mut self, _dir: &str, _pattern: &str) -> Result<Vec<String>, String> {
        Ok(vec![])
    }
}

fn json(text: &str) -> Value {
    Value::from_json(&serde_json::from_str(text).expect("test JSON"))
}

fn vars() -> Value {
    json(
        r#"{"name": "web", "replicas": 3, "ratio": 0.5, "on": true, "off": false, "nothing": null,
             "zones": ["a", "b"], "labels": {"app": "web", "tier": "front"}, "db": {"host": "pg", "port": 5432},
             "empty": []}"#,
    )
}

fn env() -> Value {
    json(r#"{"DOMAIN": "example.org"}"#)
}

fn render_with(text: &str, delims: &Delimiters) -> Result<Value, Diagnostic> {
    render("t.tpl", text, delims, &vars(), &env(), &mut Host)
}

fn ok(text: &str) -> String {
    match render_with(text, &Delimiters::default()) {
        Ok(Value::String(s)) => s,
        other => panic!("expected a string for {text:?}, got {other:?}"),
    }
}

fn fails(text: &str) -> Diagnostic {
    match render_with(text, &Delimiters::default()) {
        Err(d) => d,
        Ok(v) => panic!("expected an error for {text:?}, got {v:?}"),
    }
}

/// The `file:line:column` a diagnostic names.
fn position(d: &Diagnostic) -> String {
    d.help.split(": ").next().unwrap_or("").to_string()
}

#[test]
fn plain_text_is_unchanged() {
    assert_eq!(ok(""), "");
    assert_eq!(ok("no tags here\n{ single } braces }"), "no tags here\n{ single } braces }");
}

#[test]
fn expressions_render_by_type() {
    assert_eq!(ok("{{ name }}-{{ replicas }}-{{ ratio }}-{{ on }}-{{ off }}-[{{ nothing }}]"), "web-3-0.5-true-false-[]");
    assert_eq!(ok("{{ zones }} {{ labels }}"), r#"["a","b"] {"app":"web","tier":"front"}"#);
    assert_eq!(ok("{{ vars.db.host }}:{{ db.port }}"), "pg:5432");
    assert_eq!(ok("{{ upper(name) }} {{ replicas * 2 }} {{ \"${name}-x\" }}"), "WEB 6 web-x");
    assert_eq!(ok("{{ env.DOMAIN }}"), "example.org");
    assert_eq!(ok("{{ labels[\"tier\"] }} {{ zones[1] }}"), "front b");
    assert_eq!(ok("{{ join(\",\", [for z in zones : upper(z)]) }}"), "A,B");
}

#[test]
fn braces_and_delimiters_inside_expressions() {
    assert_eq!(ok("{{ {a = {b = 1}}.a.b }}"), "1");
    assert_eq!(ok("{{ \"}}\" }}"), "}}");
    assert_eq!(ok("{{ jsonencode({x = 1}) }}"), r#"{"x":1}"#);
}

#[test]
fn if_else_if_else() {
    let t = "{{ if replicas > 5 }}big{{ else if replicas > 1 }}medium{{ else }}small{{ end }}";
    assert_eq!(ok(t), "medium");
    assert_eq!(ok("{{ if on }}yes{{ end }}|{{ if off }}yes{{ end }}"), "yes|");
    assert_eq!(ok("{{ if off }}a{{ else }}b{{ end }}"), "b");
    assert_eq!(ok("{{ if !off && on }}a{{ end }}"), "a");
    // The branch not taken is not evaluated: a missing name there is fine.
    assert_eq!(ok("{{ if off }}{{ missing }}{{ end }}ok"), "ok");
}

#[test]
fn for_over_lists_and_maps() {
    assert_eq!(ok("{{ for z in zones }}[{{ z }}]{{ end }}"), "[a][b]");
    assert_eq!(ok("{{ for i, z in zones }}{{ i }}={{ z }};{{ end }}"), "0=a;1=b;");
    assert_eq!(ok("{{ for k, v in labels }}{{ k }}={{ v }};{{ end }}"), "app=web;tier=front;");
    assert_eq!(ok("{{ for v in labels }}{{ v }};{{ end }}"), "web;front;");
    assert_eq!(ok("{{ for x in empty }}never{{ end }}done"), "done");
    assert_eq!(ok("{{ for x in nothing }}never{{ end }}done"), "done");
}

#[test]
fn nested_blocks() {
    let t = "{{ for z in zones }}{{ for k, v in labels }}{{ if k == \"app\" }}{{ z }}:{{ v }} {{ end }}{{ end }}{{ end }}";
    assert_eq!(ok(t), "a:web b:web ");
    // The loop variable shadows a var of the same name and is gone after.
    assert_eq!(ok("{{ for name in zones }}{{ name }}{{ end }} {{ name }}"), "ab web");
}

#[test]
fn trim_markers_remove_whitespace_and_newlines() {
    let t = "items:\n{{- for z in zones }}\n  - {{ z }}\n{{- end }}\n";
    assert_eq!(ok(t), "items:\n  - a\n  - b\n");
    assert_eq!(ok("a   {{- name -}}   \n b"), "awebb");
    assert_eq!(ok("a {{ name -}} \n\t b"), "a webb");
    assert_eq!(ok("a \n{{- name }} b"), "aweb b");
    // `{{-3}}` is an expression (minus three), not a trim marker.
    assert_eq!(ok("x {{-3}}"), "x -3");
}

#[test]
fn gomplate_compatibility() {
    let d = Delimiters::new("{{{", "}}}");
    let text = "host: {{{ .Env.DOMAIN }}}\nname: {{{ .Values.db.host }}}\nbraces: {{ not a tag }}\n";
    assert_eq!(render_with(text, &d), Ok(Value::str("host: example.org\nname: pg\nbraces: {{ not a tag }}\n")));
    assert_eq!(ok("{{ upper(.Env.DOMAIN) }} {{ .Values.zones[0] }}"), "EXAMPLE.ORG a");
    // Inside strings and after a name, `.Env` is left alone.
    assert_eq!(ok("{{ \".Env.DOMAIN\" }}"), ".Env.DOMAIN");
    let d = fails("{{ labels.Env }}");
    assert_eq!(d.code, "P2073");
}

#[test]
fn comments_render_nothing() {
    assert_eq!(ok("a{{/* a comment with {{ braces */}}b"), "ab");
}

#[test]
fn missing_variables_are_errors_with_positions() {
    let d = fails("line one\nline two {{ nope }}");
    assert_eq!(d.code, "P2073");
    assert_eq!(position(&d), "t.tpl:2:13");
    assert!(d.notes.iter().any(|n| n.contains("line 2, column 13")), "{:?}", d.notes);

    let d = fails("x\n\n   {{ db.user }}");
    assert_eq!(d.code, "P2073");
    assert_eq!(position(&d), "t.tpl:3:10", "{}", d.help);

    let d = fails("{{ labels[\"owner\"] }}");
    assert_eq!(d.code, "P2073");
    assert_eq!(position(&d), "t.tpl:1:11", "{}", d.help);

    let d = render_with("a: {{{ .Env.MISSING }}}", &Delimiters::new("{{{", "}}}")).unwrap_err();
    assert_eq!(d.code, "P2073");
    assert_eq!(position(&d), "t.tpl:1:13", "{}", d.help);
    assert!(d.help.contains("MISSING"), "{}", d.help);

    // Inside a loop body, on a later line, after multi-byte characters.
    let d = fails("é{{ for z in zones }}\n  ü {{ z.oops }}{{ end }}");
    assert_eq!(d.code, "P2074", "{}", d.help); // a string has no attributes
    assert_eq!(position(&d), "t.tpl:2:10", "{}", d.help);
}

#[test]
fn block_errors_name_their_position() {
    let d = fails("a\n  {{ end }}");
    assert_eq!((d.code, position(&d).as_str()), ("P2071", "t.tpl:2:6"));
    let d = fails("{{ if on }}\n{{ for z in zones }}x{{ end }}");
    assert_eq!((d.code, position(&d).as_str()), ("P2071", "t.tpl:1:4"));
    assert!(d.help.contains("`if` has no `end`"), "{}", d.help);
    let d = fails("{{ else }}");
    assert_eq!(d.code, "P2071");
    let d = fails("{{ if on }}a{{ else }}b{{ else }}c{{ end }}");
    assert_eq!((d.code, position(&d).as_str()), ("P2071", "t.tpl:1:27"));
    let d = fails("{{ for in zones }}{{ end }}");
    assert_eq!(d.code, "P2071");
    let d = fails("ok\nok {{ name ");
    assert_eq!((d.code, position(&d).as_str()), ("P2070", "t.tpl:2:4"));
    let d = fails("{{ \"unterminated }}");
    assert_eq!(d.code, "P2070");
    let d = fails("\n{{ 1 + }}");
    assert_eq!(d.code, "P2072");
    assert!(position(&d).starts_with("t.tpl:2:"), "{}", d.help);
    let d = fails("{{ }}");
    assert_eq!(d.code, "P2072");
}

#[test]
fn expression_errors_are_template_errors() {
    let d = fails("{{ if name }}x{{ end }}");
    assert_eq!((d.code, position(&d).as_str()), ("P2074", "t.tpl:1:7"));
    let d = fails("{{ for x in name }}{{ end }}");
    assert_eq!(d.code, "P2074");
    let d = fails("\n  {{ name + 1 }}");
    assert_eq!((d.code, position(&d).as_str()), ("P2074", "t.tpl:2:6"));
    let d = fails("{{ nosuchfn(1) }}");
    assert_eq!(d.code, "P2074");
}

#[test]
fn unknown_values_make_the_result_unknown() {
    let mut vars = Map::default();
    vars.insert("id".into(), Value::Unknown);
    vars.insert("name".into(), Value::str("x"));
    let vars = Value::Map(vars);
    let r = |t: &str| render("t.tpl", t, &Delimiters::default(), &vars, &Value::Map(Map::default()), &mut Host);
    assert_eq!(r("{{ name }}"), Ok(Value::str("x")));
    assert!(matches!(r("a {{ id }} b"), Ok(Value::Unknown)));
    assert!(matches!(r("{{ if id == 1 }}a{{ end }}"), Ok(Value::Unknown)));
    assert!(matches!(r("{{ for x in id }}a{{ end }}"), Ok(Value::Unknown)));
    // Errors elsewhere still show while a value is unknown.
    assert_eq!(r("{{ id }} {{ missing }}").map_err(|d| d.code), Err("P2073"));
}

#[test]
fn sensitive_values_mark_the_result() {
    let mut vars = Map::default();
    vars.insert("password".into(), Value::Sensitive(Box::new(Value::str("hunter2"))));
    vars.insert("user".into(), Value::str("app"));
    let vars = Value::Map(vars);
    let r = |t: &str| render("t.tpl", t, &Delimiters::default(), &vars, &Value::Map(Map::default()), &mut Host);
    match r("{{ user }}:{{ password }}") {
        Ok(Value::Sensitive(inner)) => assert_eq!(*inner, Value::str("app:hunter2")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(r("{{ user }}"), Ok(Value::String(_))));
    assert!(matches!(r("{{ vars.password }}"), Ok(Value::Sensitive(_))));
    // A whole sensitive vars map marks everything.
    let all = Value::Sensitive(Box::new(json(r#"{"a": "b"}"#)));
    let v = render("t.tpl", "{{ a }}", &Delimiters::default(), &all, &Value::Map(Map::default()), &mut Host);
    assert!(matches!(v, Ok(Value::Sensitive(_))), "{v:?}");
}

#[test]
fn templates_can_render_templates() {
    assert_eq!(ok("[{{ template(\"inner.tpl\", vars) }}]"), "[inner web]");
    let d = fails("{{ template(\"self.tpl\", vars) }}");
    assert_eq!(d.code, "P2075");
    let d = fails("a\n{{ template(\"broken.tpl\", vars) }}");
    assert_eq!(d.code, "P2073");
    assert_eq!(position(&d), "broken.tpl:2:6", "{}", d.help);
    assert!(d.notes.iter().any(|n| n.contains("rendered from template t.tpl, line 2")), "{:?}", d.notes);
    assert!(d.labels.is_empty());
}

#[test]
fn delimiters_are_validated() {
    assert_eq!(render_with("x", &Delimiters::new("", "}}")).map_err(|d| d.code), Err("P2076"));
    assert_eq!(Delimiters::from_value(&json(r#"["{{{", "}}}"]"#)), Ok(Delimiters::new("{{{", "}}}")));
    assert!(Delimiters::from_value(&json(r#"["{{{"]"#)).is_err());
    assert!(Delimiters::from_value(&json(r#"["{ {", "}}"]"#)).is_err());
}

#[test]
fn nesting_is_capped_and_large_templates_are_linear() {
    let deep = "{{ if on }}".repeat(MAX_NESTING + 1);
    assert_eq!(fails(&deep).code, "P2075");
    let ok_depth = format!("{}x{}", "{{ if on }}".repeat(MAX_NESTING), "{{ end }}".repeat(MAX_NESTING));
    assert_eq!(ok(&ok_depth), "x");
    // 10,000 lines with a tag each.
    let big: String = (0..10_000).map(|i| format!("line {i}: {{{{ name }}}}\n")).collect();
    let out = ok(&big);
    assert_eq!(out.lines().count(), 10_000);
    assert!(out.ends_with("line 9999: web\n"));
    // 10,000 `end`s without opening: an error, not a stack overflow.
    assert_eq!(fails(&"{{ end }}".repeat(10_000)).code, "P2071");
}

#[test]
fn arbitrary_input_never_panics() {
    let samples = [
        "{{",
        "}}",
        "{{-",
        "-}}",
        "{{ - }}",
        "{{- -}}",
        "{{ if }}",
        "{{ for }}",
        "{{ else if }}",
        "{{ \"\\",
        "{{ ( }}",
        "{{ [ }}",
        "{{ é }}",
        "é{{",
        "{{ .Env }}",
        "{{ .Values }}",
        "{{ . }}",
        "{{ .Env. }}",
        "{{ for a, b, c in x }}{{ end }}",
    ];
    for s in samples {
        let _ = render_with(s, &Delimiters::default());
    }
}

/// A host whose `env()` is the process environment would leak it: this one
/// answers every name, and no template may see its answers.
struct LeakyHost;

impl FnHost for LeakyHost {
    fn env(&mut self, name: &str) -> Option<String> {
        Some(format!("process-{name}"))
    }
    fn read_file(&mut self, _path: &str) -> Result<String, String> {
        Err("no files".into())
    }
    fn fileset(&mut self, _dir: &str, _pattern: &str) -> Result<Vec<String>, String> {
        Ok(vec![])
    }
}

#[test]
fn env_calls_read_the_given_env_never_the_host_environment() {
    let d = Delimiters::default();
    let empty = Value::Map(Map::default());
    let given = json(r#"{"REGION": "eu-de"}"#);
    assert_eq!(render("t", "{{ env(\"REGION\") }}", &d, &empty, &given, &mut LeakyHost).ok(), Some(Value::str("eu-de")));
    let e = render("t", "{{ env(\"AWS_SECRET_ACCESS_KEY\") }}", &d, &empty, &given, &mut LeakyHost).expect_err("not given");
    assert!(!format!("{e:?}").contains("process-"), "{e:?}");
    assert_eq!(render("t", "{{ env(\"X\", \"fallback\") }}", &d, &empty, &empty, &mut LeakyHost).ok(), Some(Value::str("fallback")));
    // A sensitive entry read through env() makes the result sensitive.
    let mut secret = Map::default();
    secret.insert("TOKEN".into(), Value::Sensitive(Box::new(Value::str("t0ken"))));
    let out = render("t", "token={{ env(\"TOKEN\") }}", &d, &empty, &Value::Map(secret), &mut LeakyHost).expect("renders");
    assert_eq!(out, Value::Sensitive(Box::new(Value::str("token=t0ken"))));
}
