//! Templates: `plinth render` (standalone hydration), the `file.tree`
//! resource through its whole life (apply, no-op, template edit, removal,
//! drift, repair), and `template()` in a configuration.

use crate::*;
use std::path::Path;

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

#[test]
fn render_hydrates_gomplate_style_templates_from_the_process_environment() {
    let p = project(&[
        ("stacks/core/app.yaml", "host: {{{ .Env.DOMAIN }}}\nliteral: {{ kept as is }}\n"),
        ("stacks/core/nested/values.yaml", "url: https://grafana.{{{ .Env.DOMAIN }}}/{{{ .Values.path }}}\n"),
        ("stacks/README.md", "no tags\n"),
    ]);
    let o = plinth()
        .args(["render", "stacks", "out", "--delimiters", "{{{", "}}}", "--process-env", "--var", "path=login"])
        .env("DOMAIN", "edp.example.org")
        .current_dir(p.path())
        .output()
        .expect("run plinth");
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("Rendered 3 files"), "{}", stdout(&o));
    assert_eq!(read(&p.path().join("out/core/app.yaml")), "host: edp.example.org\nliteral: {{ kept as is }}\n");
    assert_eq!(read(&p.path().join("out/core/nested/values.yaml")), "url: https://grafana.edp.example.org/login\n");
    assert_eq!(read(&p.path().join("out/README.md")), "no tags\n");

    // Without --process-env, `env` is empty: the same template is an error.
    let o = plinth()
        .args(["render", "stacks", "out2", "--delimiters", "{{{", "}}}", "--var", "path=login"])
        .env("DOMAIN", "edp.example.org")
        .current_dir(p.path())
        .output()
        .expect("run plinth");
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("P2073"), "{}", stderr(&o));
}

#[test]
fn render_reports_a_missing_variable_with_file_line_and_column() {
    let p = project(&[("tpl/a.txt", "first line\nname: {{ name }}\nport: {{ port }}\n")]);
    let o = run(p.path(), &["render", "tpl", "out", "--var", "name=web"]);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("P2073"), "{err}");
    assert!(err.contains("tpl/a.txt:3:10"), "{err}");
    assert!(!p.path().join("out/a.txt").exists(), "nothing is written when a template fails");

    let o = run(p.path(), &["render", "tpl", "out", "--var", "name=web", "--var", "port=80", "--json"]);
    assert_exit(&o, 0);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("JSON");
    assert_eq!(v["rendered"], 1);
    assert_eq!(read(&p.path().join("out/a.txt")), "first line\nname: web\nport: 80\n");
}

#[test]
fn render_reads_a_values_file_and_reports_unbalanced_blocks() {
    let p = project(&[
        ("values.yaml", "zones: [a, b]\ndb:\n  host: pg\n"),
        ("tpl/list.txt", "{{- for z in zones }}\nzone {{ z }}\n{{- end }}\ndb={{ .Values.db.host }}\n"),
    ]);
    let o = run(p.path(), &["render", "tpl", "out", "--values", "values.yaml"]);
    assert_exit(&o, 0);
    assert_eq!(read(&p.path().join("out/list.txt")), "\nzone a\nzone b\ndb=pg\n");

    std::fs::write(p.path().join("tpl/list.txt"), "ok\n{{ if true }}never closed\n").expect("write");
    let o = run(p.path(), &["render", "tpl", "out", "--values", "values.yaml"]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("P2071") && stderr(&o).contains("tpl/list.txt:2:4"), "{}", stderr(&o));
}

const TREE: &str = r#"
param domain: string = "example.org"

resource file.tree stacks {
  source     = "templates"
  target     = "rendered"
  vars       = { domain = domain, replicas = 2 }
  env        = { REGION = "eu-de" }
  delimiters = ["{{{", "}}}"]
  exclude    = ["**/*.md"]
}

resource core.data commit {
  input = file.tree.stacks.hash
}
"#;

fn tree_project() -> tempfile::TempDir {
    project(&[
        ("main.plinth", TREE),
        ("templates/app.yaml", "host: {{{ domain }}}\nregion: {{{ .Env.REGION }}}\n"),
        ("templates/sub/deploy.yaml", "replicas: {{{ .Values.replicas }}}\n"),
        ("templates/notes.md", "{{{ not rendered }}}"),
    ])
}

#[test]
fn file_tree_lifecycle() {
    let p = tree_project();
    let dir = p.path();
    let out = dir.join("rendered");

    // The plan renders: it lists the rendered files before anything exists.
    let o = run(dir, &["plan", "--json"]);
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("sub/deploy.yaml"), "{}", stdout(&o));

    assert_exit(&run(dir, &["apply", "--auto-approve"]), 0);
    assert_eq!(read(&out.join("app.yaml")), "host: example.org\nregion: eu-de\n");
    assert_eq!(read(&out.join("sub/deploy.yaml")), "replicas: 2\n");
    assert!(!out.join("notes.md").exists(), "excluded templates are not rendered");
    std::fs::write(out.join("unrelated.txt"), "mine").expect("write");

    // A second run changes nothing.
    assert_exit(&run(dir, &["plan", "--detailed-exitcode"]), 0);

    // Editing a template is a change the plan shows, with the file named.
    std::fs::write(dir.join("templates/app.yaml"), "host: www.{{{ domain }}}\nregion: {{{ .Env.REGION }}}\n").expect("write");
    let o = run(dir, &["plan", "--detailed-exitcode"]);
    assert_exit(&o, 2);
    assert!(stdout(&o).contains("file.tree.stacks will be updated"), "{}", stdout(&o));
    assert!(stdout(&o).contains("app.yaml"), "{}", stdout(&o));
    assert!(stdout(&o).contains("core.data.commit"), "dependents of the hash change too:\n{}", stdout(&o));
    assert_exit(&run(dir, &["apply", "--auto-approve"]), 0);
    assert_eq!(read(&out.join("app.yaml")), "host: www.example.org\nregion: eu-de\n");
    assert_exit(&run(dir, &["plan", "--detailed-exitcode"]), 0);

    // A changed value re-renders too.
    let o = run(dir, &["plan", "--detailed-exitcode", "--var", "domain=other.org"]);
    assert_exit(&o, 2);

    // Removing a template removes its rendered file, and only that.
    std::fs::remove_file(dir.join("templates/sub/deploy.yaml")).expect("rm");
    assert_exit(&run(dir, &["apply", "--auto-approve"]), 0);
    assert!(!out.join("sub/deploy.yaml").exists());
    assert!(!out.join("sub").exists(), "the directory it left empty goes too");
    assert!(out.join("app.yaml").exists());
    assert_eq!(read(&out.join("unrelated.txt")), "mine", "other files in the target are never touched");

    // A hand-edited rendered file is drift; apply --refresh repairs it.
    std::fs::write(out.join("app.yaml"), "host: hacked\n").expect("write");
    let o = run(dir, &["drift"]);
    assert_exit(&o, 2);
    assert!(stdout(&o).contains("file.tree.stacks"), "{}", stdout(&o));
    assert_exit(&run(dir, &["apply", "--auto-approve", "--refresh"]), 0);
    assert_eq!(read(&out.join("app.yaml")), "host: www.example.org\nregion: eu-de\n");
    // The tree owns its target: a file nothing renders there is reported
    // (never touched), and only it.
    let o = run(dir, &["drift"]);
    assert_exit(&o, 2);
    assert!(stdout(&o).contains("rendered/unrelated.txt is not managed by Plinth (file.tree)"), "{}", stdout(&o));
    assert!(stdout(&o).contains("0 drifted"), "{}", stdout(&o));

    // Destroy removes what it rendered and nothing else.
    assert_exit(&run(dir, &["destroy", "--auto-approve"]), 0);
    assert!(!out.join("app.yaml").exists());
    assert_eq!(read(&out.join("unrelated.txt")), "mine");
}

#[test]
fn file_tree_template_errors_are_diagnostics_at_plan_time() {
    let p = tree_project();
    std::fs::write(p.path().join("templates/sub/deploy.yaml"), "a: 1\nreplicas: {{{ .Values.replicaz }}}\n").expect("write");
    let o = run(p.path(), &["plan"]);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("P2073"), "{err}");
    assert!(err.contains("templates/sub/deploy.yaml:2:23"), "{err}");
}

#[test]
fn template_function_renders_one_file() {
    let p = project(&[
        (
            "main.plinth",
            "resource file.file cfg {\n  path    = \"out/cfg.txt\"\n  content = template(\"cfg.tpl\", { name = \"web\", ports = [80, 443] }, { STAGE = \"prod\" })\n}\n",
        ),
        ("cfg.tpl", "{{ name }}@{{ .Env.STAGE }}:{{ for p in ports }} {{ p }}{{ end }}\n"),
    ]);
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    assert_eq!(read(&p.path().join("out/cfg.txt")), "web@prod: 80 443\n");

    std::fs::write(p.path().join("cfg.tpl"), "{{ nope }}").expect("write");
    let o = run(p.path(), &["plan"]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("P2073") && stderr(&o).contains("cfg.tpl:1:4"), "{}", stderr(&o));
}

const READABLE: &str = r#"
param domain: string = "example.org"
param argocd: string = "9.1.0"
param token: string = "old-secret-token" { sensitive = true }
resource file.tree site {
  source = "tpl"
  target = "out/site"
  vars = {
    domain = domain
    charts = { argocd = argocd, forgejo = "1.0.0", observability = "2.3.4", grafana = "10.0.0" }
  }
}
resource file.tree secret {
  source = "secret-tpl"
  target = "out/secret"
  vars   = { token = token }
}
"#;

/// A reviewer sees what changes in the manifests: a `file.tree` update
/// shows each changed rendered file as a line diff (not two hashes), long
/// `vars` print one key per line and nested changes entry by entry, and
/// sensitive renderings show only that they change.
#[test]
fn file_tree_plans_show_line_diffs_of_rendered_files() {
    let p = project(&[
        ("main.plinth", READABLE),
        ("tpl/app.yaml", "kind: Config\nhost: {{ domain }}\nargocd: {{ charts.argocd }}\nfooter: same\n"),
        ("tpl/static.txt", "never changes\n"),
        ("secret-tpl/secret.yaml", "password: {{ token }}\n"),
    ]);
    let dir = p.path();
    let created = run(dir, &["plan"]);
    assert_exit(&created, 0);
    let vars_opens_a_block = stdout(&created).lines().any(|l| l.trim_start().starts_with("+ vars ") && l.trim_end().ends_with("= {"));
    assert!(vars_opens_a_block, "long vars on one line:\n{}", stdout(&created));
    assert!(stdout(&created).contains("\n          domain = \"example.org\"\n"), "{}", stdout(&created));
    assert_exit(&run(dir, &["apply", "--auto-approve"]), 0);
    let old_hash = hex_sha256(&std::fs::read(dir.join("out/site/app.yaml")).unwrap());

    let o = run(dir, &["plan", "--var", "domain=other.org", "--var", "argocd=9.2.0", "--var", "token=new-secret-token"]);
    assert_exit(&o, 0);
    let text = stdout(&o);
    assert!(text.contains("~ files[\"app.yaml\"]:\n"), "{text}");
    assert!(text.contains("- host: example.org") && text.contains("+ host: other.org"), "{text}");
    assert!(text.contains("- argocd: 9.1.0") && text.contains("+ argocd: 9.2.0"), "{text}");
    assert!(text.contains("  kind: Config"), "context lines are shown: {text}");
    assert!(!text.contains(&old_hash), "the rendered file is shown as hashes: {text}");
    assert!(!text.contains("static.txt"), "an unchanged file is listed: {text}");
    assert!(text.contains("~ vars[\"domain\"] = \"example.org\" → \"other.org\""), "{text}");
    assert!(text.contains("~ vars[\"charts\"][\"argocd\"] = \"9.1.0\" → \"9.2.0\""), "{text}");
    assert!(!text.contains("forgejo"), "unchanged nested entries are listed: {text}");
    let files_sensitive = text.lines().any(|l| l.trim_start().starts_with("~ files ") && l.trim_end().ends_with("= (sensitive) → (sensitive)"));
    assert!(files_sensitive, "{text}");
    assert!(!text.contains("password:"), "a sensitive rendering was shown: {text}");
    assert!(!text.contains("secret-token"), "a secret reached the plan: {text}");
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
