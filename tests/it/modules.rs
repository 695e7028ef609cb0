//! The building blocks in `modules/`, each instantiated from a small project
//! in a temporary directory (with the repository's `modules/` copied into
//! it) and applied by the real binary against real things: files, the
//! PostgreSQL test server (PLINTH_TEST_PG_URL), local git repositories, and
//! — for Kubernetes, where no API server can be installed here — the
//! in-process [`KubeApiTestDouble`] of `provider_kubernetes.rs` (a test
//! double, not a cluster). Also: the catalogue's relative sources into
//! `modules/` when the catalogue is imported from git, and the documented
//! move of an environment's state from the catalogue before `modules/`
//! (`tests/fixtures/catalogue_before_modules/`) to the current one.

use crate::provider_kubernetes::KubeApiTestDouble;
use crate::*;
use serde_json::Value as Json;
use std::path::Path;

/// A project with `main` as its configuration and the repository's
/// `modules/` in it (sources `./modules/<name>`).
fn modules_project(main: &str) -> tempfile::TempDir {
    let dir = project(&[("main.plinth", main)]);
    copy_tree(&repo_root().join("modules"), &dir.path().join("modules"));
    dir
}

fn kube_provider(k: &KubeApiTestDouble) -> String {
    format!("provider kubernetes {{\n  host  = \"{}\"\n  token = \"{}\"\n}}\n", k.host(), k.token)
}

fn unb64(v: &Json) -> String {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or_else(|| panic!("not base64 text: {v}"))).expect("base64");
    String::from_utf8(bytes).expect("UTF-8")
}

/// `plinth output --json --show-sensitive`: output name → value.
fn outputs(dir: &Path) -> Json {
    let o = run(dir, &["output", "--json", "--show-sensitive"]);
    assert_exit(&o, 0);
    let v: Json = serde_json::from_str(stdout(&o).trim()).expect("output --json is JSON");
    // `{"name": value}` or `{"name": {"value": …}}`.
    match v {
        Json::Object(m) => Json::Object(m.into_iter().map(|(k, v)| (k, v.get("value").cloned().unwrap_or(v))).collect()),
        other => panic!("output --json: {other}"),
    }
}

#[track_caller]
fn git(cwd: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.test", "-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ------------------------------------------------------------------ namespace

#[test]
fn namespace_module_creates_labelled_namespaces_and_converges() {
    let k = KubeApiTestDouble::start();
    let main = format!(
        r#"{}
module team from "./modules/namespace" {{
  name        = "team-a"
  labels      = {{ team = "a" }}
  annotations = {{ owner = "platform@example.test" }}
}}

module plain from "./modules/namespace" {{
  name = "plain"
}}

output team = module.team.name
output team_labels = module.team.labels
"#,
        kube_provider(&k)
    );
    let p = modules_project(&main);
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);

    let team = k.get("/api/v1/namespaces/team-a").expect("namespace team-a was created");
    assert_eq!(team["metadata"]["labels"]["team"], "a", "{team}");
    assert_eq!(team["metadata"]["labels"]["app.kubernetes.io/managed-by"], "plinth", "{team}");
    assert_eq!(team["metadata"]["annotations"]["owner"], "platform@example.test", "{team}");
    let plain = k.get("/api/v1/namespaces/plain").expect("namespace plain was created");
    assert_eq!(plain["metadata"]["labels"]["app.kubernetes.io/managed-by"], "plinth", "{plain}");
    assert!(plain["metadata"]["annotations"].as_object().is_none_or(|a| a.is_empty()), "no annotations were asked for: {plain}");

    let out = outputs(p.path());
    assert_eq!(out["team"], "team-a");
    assert_eq!(out["team_labels"], serde_json::json!({ "app.kubernetes.io/managed-by": "plinth", "team": "a" }));
    // Converged, and annotations that were never given are not managed
    // (left out, not an empty map that would differ from a plain resource).
    assert_exit(&run(p.path(), &["plan", "--detailed-exitcode"]), 0);
    let show = run(p.path(), &["state", "show", "module.plain.kubernetes.namespace.this", "--json"]);
    assert_exit(&show, 0);
    assert!(stdout(&show).contains(r#""annotations":null"#) || stdout(&show).contains(r#""annotations": null"#), "{}", stdout(&show));

    // A label changed outside Plinth is drift on the module's namespace.
    k.edit("/api/v1/namespaces/team-a", |o| o["metadata"]["labels"]["team"] = serde_json::json!("b"));
    let drift = run(p.path(), &["drift"]);
    assert_exit(&drift, 2);
    assert!(stdout(&drift).contains("module.team.kubernetes.namespace.this"), "{}", stdout(&drift));
}

#[test]
fn namespace_module_refuses_a_name_kubernetes_would_refuse() {
    let p = modules_project("module bad from \"./modules/namespace\" {\n  name = \"Team_A\"\n}\n");
    let out = run(p.path(), &["validate"]);
    assert_exit(&out, 1);
    assert!(stderr(&out).contains("a namespace name is a DNS label"), "{}", stderr(&out));
}

// ------------------------------------------------------------------ generated_secret

#[test]
fn generated_secret_module_writes_generated_values_to_a_secret_and_prints_none() {
    let k = KubeApiTestDouble::start();
    let main = format!(
        r#"{}
module ns from "./modules/namespace" {{
  name = "apps"
}}

module admin from "./modules/generated_secret" {{
  name        = "app-admin"
  namespace   = module.ns.name
  labels      = {{ app = "a" }}
  data        = {{ username = "admin" }}
  passwords   = {{ password = 24, token = 48 }}
  min_numeric = 3
}}

# An htpasswd line around a hexadecimal-safe value of digits only.
module auth from "./modules/generated_secret" {{
  name      = "basic-auth"
  namespace = module.ns.name
  passwords = {{ auth = 40 }}
  prefixes  = {{ auth = "agent:{{PLAIN}}" }}
  suffixes  = {{ auth = "\n" }}
  upper     = false
  lower     = false
}}

output admin_password = module.admin.passwords["password"] {{
  sensitive = true
}}
output auth_value = module.auth.passwords["auth"] {{
  sensitive = true
}}
output admin_keys = module.admin.keys
"#,
        kube_provider(&k)
    );
    let p = modules_project(&main);
    let plan = run(p.path(), &["plan"]);
    assert_exit(&plan, 0);
    let apply = run(p.path(), &["apply", "--auto-approve"]);
    assert_exit(&apply, 0);

    let admin = k.get("/api/v1/namespaces/apps/secrets/app-admin").expect("Secret app-admin was created");
    assert_eq!(admin["metadata"]["labels"]["app"], "a", "{admin}");
    assert_eq!(unb64(&admin["data"]["username"]), "admin");
    let password = unb64(&admin["data"]["password"]);
    assert_eq!(password.len(), 24, "{password:?}");
    assert!(password.chars().all(|c| c.is_ascii_alphanumeric()), "special characters are off by default: {password:?}");
    assert!(password.chars().filter(char::is_ascii_digit).count() >= 3, "min_numeric = 3: {password:?}");
    let token = unb64(&admin["data"]["token"]);
    assert_eq!(token.len(), 48, "{token:?}");
    assert_ne!(token[..24], password, "each key has its own value");

    let auth = unb64(&k.get("/api/v1/namespaces/apps/secrets/basic-auth").expect("Secret basic-auth was created")["data"]["auth"]);
    let digits = auth.strip_prefix("agent:{PLAIN}").and_then(|s| s.strip_suffix('\n')).unwrap_or_else(|| panic!("not an htpasswd line: {auth:?}"));
    assert!(digits.len() == 40 && digits.chars().all(|c| c.is_ascii_digit()), "{digits:?}");

    // The outputs are the generated values, without prefix or suffix.
    let out = outputs(p.path());
    assert_eq!(out["admin_password"], password.as_str());
    assert_eq!(out["auth_value"], digits);
    assert_eq!(out["admin_keys"], serde_json::json!(["password", "token", "username"]));
    for o in [&plan, &apply] {
        let all = stdout(o) + &stderr(o);
        for secret in [&password, &token, &digits.to_string()] {
            assert!(!all.contains(secret.as_str()), "a generated value was printed:\n{all}");
        }
    }

    // Kept in state: applying again changes nothing and regenerates nothing.
    assert_exit(&run(p.path(), &["plan", "--detailed-exitcode"]), 0);
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    assert_eq!(unb64(&k.get("/api/v1/namespaces/apps/secrets/app-admin").unwrap()["data"]["password"]), password);
    // A value changed in the cluster is drift, and --fix writes it back.
    k.edit("/api/v1/namespaces/apps/secrets/app-admin", |o| o["data"]["password"] = serde_json::json!("aGFuZC1lZGl0ZWQ="));
    assert_exit(&run(p.path(), &["drift"]), 2);
    assert_exit(&run(p.path(), &["drift", "--fix", "--auto-approve"]), 0);
    assert_eq!(unb64(&k.get("/api/v1/namespaces/apps/secrets/app-admin").unwrap()["data"]["password"]), password);
}

/// A module that reads a generated value (as the catalogue's stacks read
/// their admin passwords into outputs) still applies with `--only` on
/// something else: the passwords of a secret that is neither selected nor
/// recorded are null there, not an index error (P2020).
#[test]
fn generated_secret_outputs_do_not_fail_an_apply_that_selects_something_else() {
    let wrapper = r#"
module admin from "../modules/generated_secret" {
  name      = "admin"
  namespace = "default"
  passwords = { password = 32 }
}

resource file.file rendered {
  path    = "rendered.txt"
  content = "no secret here\n"
}

output admin_password = module.admin.passwords["password"] {
  sensitive = true
}
"#;
    let p = modules_project("provider kubernetes {\n  host  = \"http://127.0.0.1:9\"\n  token = \"unused\"\n}\n\nstack app from \"./app\" {}\n");
    std::fs::create_dir_all(p.path().join("app")).unwrap();
    std::fs::write(p.path().join("app/main.plinth"), wrapper).unwrap();
    let apply = run(p.path(), &["apply", "--auto-approve", "--only", "stack.app.file.file.rendered"]);
    assert_exit(&apply, 0);
    assert_eq!(std::fs::read_to_string(p.path().join("rendered.txt")).unwrap(), "no secret here\n");
}

// ------------------------------------------------------------------ argocd_application

const CHART_APPLICATION: &str = r#"apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: guestbook
  namespace: argocd
  labels: {"team":"a","app.kubernetes.io/managed-by":"plinth"}
spec:
  project: default
  source:
    # OCI registry; Argo CD knows it (enableOCI).
    repoURL: ghcr.io/example/charts
    chart: guestbook
    targetRevision: 1.2.3
    helm:
      releaseName: gb
      valuesObject:
        replicas: 2
        service:
          type: ClusterIP

        config: |
          a = 1
          b = "{{ .Release.Name }}"
  destination:
    server: https://kubernetes.default.svc
    namespace: guestbook
  syncPolicy:
    automated:
      prune: true
      selfHeal: true
    syncOptions:
      - CreateNamespace=true
      # The CRDs are large.
      - ServerSideApply=true
"#;

const DIRECTORY_APPLICATION: &str = r#"apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: stack-core
  namespace: gitops
  labels: {}
spec:
  project: platform
  source:
    repoURL: https://git.example.test/stacks-instances.git
    targetRevision: main
    path: stacks/core
  destination:
    server: https://10.0.0.1:6443
    namespace: argocd
"#;

#[test]
fn argocd_application_module_renders_chart_and_directory_applications() {
    let k = KubeApiTestDouble::start();
    let main = format!(
        r#"{}
module chart from "./modules/argocd_application" {{
  name                  = "guestbook"
  labels                = {{ team = "a", "app.kubernetes.io/managed-by" = "plinth" }}
  source_comment        = "OCI registry; Argo CD knows it (enableOCI)."
  repo_url              = "ghcr.io/example/charts"
  chart                 = "guestbook"
  target_revision       = "1.2.3"
  release_name          = "gb"
  values                = file("values/guestbook.yaml")
  destination_namespace = "guestbook"
  sync_options          = ["CreateNamespace=true", "ServerSideApply=true"]
  sync_option_comments  = {{ "ServerSideApply=true" = "The CRDs are large." }}
}}

module directory from "./modules/argocd_application" {{
  name                  = "stack-core"
  namespace             = "gitops"
  project               = "platform"
  repo_url              = "https://git.example.test/stacks-instances.git"
  path                  = "stacks/core"
  target_revision       = "main"
  destination_server    = "https://10.0.0.1:6443"
  destination_namespace = "argocd"
  automated             = false
  sync_options          = []
}}

resource file.file chart {{
  path    = "out/guestbook.yaml"
  content = module.chart.manifest
}}

resource file.file directory {{
  path    = "out/stack-core.yaml"
  content = module.directory.manifest
}}

# The same Application applied to a cluster.
resource kubernetes.manifest chart {{
  manifest = module.chart.object
}}
"#,
        kube_provider(&k)
    );
    let p = modules_project(&main);
    std::fs::create_dir_all(p.path().join("values")).unwrap();
    std::fs::write(p.path().join("values/guestbook.yaml"), "replicas: 2\nservice:\n  type: ClusterIP\n\nconfig: |\n  a = 1\n  b = \"{{ .Release.Name }}\"\n")
        .unwrap();
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);

    assert_eq!(std::fs::read_to_string(p.path().join("out/guestbook.yaml")).unwrap(), CHART_APPLICATION);
    assert_eq!(std::fs::read_to_string(p.path().join("out/stack-core.yaml")).unwrap(), DIRECTORY_APPLICATION);

    // `object` is the manifest as an object: the values are a mapping
    // under valuesObject, not text.
    let app = k.get("/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/guestbook").expect("the Application was applied");
    let values = &app["spec"]["source"]["helm"]["valuesObject"];
    assert_eq!(values["replicas"], 2, "{app}");
    assert_eq!(values["service"]["type"], "ClusterIP", "{app}");
    assert_eq!(values["config"], "a = 1\nb = \"{{ .Release.Name }}\"\n", "{app}");
    assert_eq!(app["spec"]["syncPolicy"]["syncOptions"], serde_json::json!(["CreateNamespace=true", "ServerSideApply=true"]), "{app}");
    assert_exit(&run(p.path(), &["plan", "--detailed-exitcode"]), 0);

    if let Some(validator) = kube_validator() {
        let report = crate::catalogue::assert_valid_manifests(&validator, &p.path().join("out"));
        assert!(report.contains("valid"), "{report}");
    }
}

// ------------------------------------------------------------------ helm_values

#[test]
fn helm_values_module_renders_a_template_tree_and_leaves_helm_braces_alone() {
    let main = r#"
module values from "./modules/helm_values" {
  source  = "values"
  target  = "out/values"
  vars    = { domain = "example.test", replicas = 3, hosts = ["a", "b"] }
  exclude = ["*.md"]
}

output dir = module.values.dir
output files = module.values.files
output paths = module.values.paths
output hash = module.values.hash
"#;
    let p = modules_project(main);
    let values = p.path().join("values");
    std::fs::create_dir_all(values.join("nested")).unwrap();
    std::fs::write(
        values.join("app.yaml"),
        "replicas: {{{ replicas }}}\nhost: app.{{{ domain }}}\nhosts: {{{ jsonencode(hosts) }}}\nfullname: \"{{ .Release.Name }}-app\"\n",
    )
    .unwrap();
    std::fs::write(values.join("nested/db.yaml"), "url: postgres://db.{{{ vars.domain }}}/app\n").unwrap();
    std::fs::write(values.join("README.md"), "not rendered\n").unwrap();
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);

    let out = p.path().join("out/values");
    let app = std::fs::read_to_string(out.join("app.yaml")).unwrap();
    assert_eq!(app, "replicas: 3\nhost: app.example.test\nhosts: [\"a\",\"b\"]\nfullname: \"{{ .Release.Name }}-app\"\n");
    assert_eq!(std::fs::read_to_string(out.join("nested/db.yaml")).unwrap(), "url: postgres://db.example.test/app\n");
    assert!(!out.join("README.md").exists(), "an excluded file was rendered");

    let o = outputs(p.path());
    assert_eq!(o["dir"], "out/values");
    assert_eq!(o["paths"], serde_json::json!({ "app.yaml": "out/values/app.yaml", "nested/db.yaml": "out/values/nested/db.yaml" }));
    {
        use sha2::Digest as _;
        assert_eq!(o["files"]["app.yaml"], hex::encode(sha2::Sha256::digest(app.as_bytes())), "files maps a path to the SHA-256 of its rendering");
    }
    assert_exit(&run(p.path(), &["plan", "--detailed-exitcode"]), 0);

    // A changed value renders again.
    std::fs::write(p.path().join("main.plinth"), main.replace("replicas = 3", "replicas = 5")).unwrap();
    let plan = run(p.path(), &["plan", "--detailed-exitcode"]);
    assert_exit(&plan, 2);
    assert!(stdout(&plan).contains("module.values.file.tree.this"), "{}", stdout(&plan));
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    assert!(std::fs::read_to_string(out.join("app.yaml")).unwrap().starts_with("replicas: 5\n"));
}

// ------------------------------------------------------------------ postgres_database

/// Against the PostgreSQL test server: the owner logs in with the generated
/// password and owns the database, the extension is created in it, and
/// destroy leaves neither.
#[test]
fn postgres_database_module_creates_a_database_its_owner_can_use() {
    let Some(url) = test_server("PLINTH_TEST_PG_URL", "PostgreSQL") else { return };
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let name = format!("plinth_t_moddb_{}_{}", std::process::id(), nanos % 1_000_000_000);
    let owner = format!("{name}_owner");
    let main = format!(
        r#"provider postgres {{
  url            = "{url}"
  list_unmanaged = false
}}

module db from "./modules/postgres_database" {{
  name             = "{name}"
  owner            = "{owner}"
  password_length  = 20
  connection_limit = 5
  extensions       = ["hstore"]
}}

output owner = module.db.owner
output name = module.db.name
output password = module.db.password {{
  sensitive = true
}}
"#
    );
    let p = modules_project(&main);
    let apply = run(p.path(), &["apply", "--auto-approve"]);
    assert_exit(&apply, 0);
    let out = outputs(p.path());
    assert_eq!(out["owner"], owner.as_str());
    assert_eq!(out["name"], name.as_str());
    let password = out["password"].as_str().expect("password output").to_string();
    assert_eq!(password.len(), 20);
    assert!(!stdout(&apply).contains(&password), "the password was printed");

    let mut config: postgres::Config = url.parse().unwrap();
    config.user(&owner).password(&password).dbname(&name);
    let mut as_owner = config.connect(postgres::NoTls).expect("the owner logs in with the generated password");
    let row = as_owner.query_one("SELECT pg_get_userbyid(d.datdba), d.datconnlimit FROM pg_database d WHERE d.datname = current_database()", &[]).unwrap();
    assert_eq!(row.get::<_, String>(0), owner, "the owner role owns the database");
    assert_eq!(row.get::<_, i32>(1), 5);
    assert!(as_owner.query_opt("SELECT 1 FROM pg_extension WHERE extname = 'hstore'", &[]).unwrap().is_some(), "hstore was created");
    drop(as_owner);

    assert_exit(&run(p.path(), &["plan", "--refresh", "--detailed-exitcode"]), 0);
    assert_exit(&run(p.path(), &["destroy", "--auto-approve"]), 0);
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    assert!(admin.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name]).unwrap().is_none());
    assert!(admin.query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&owner]).unwrap().is_none());
}

// ------------------------------------------------------------------ the catalogue on modules/

/// A repository laid out as this one (`catalogue/` beside `modules/`),
/// tagged v1.0.0, imported with `//catalogue`: the entries' relative
/// sources `../../../modules/<name>` resolve inside the fetched commit, and
/// a stack renders what it renders from a local copy. A repository holding
/// the catalogue at its root without `modules/` cannot work: the relative
/// source would leave the fetched tree, which Plinth refuses (P2061).
#[test]
fn a_catalogue_imported_from_git_finds_its_modules() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    copy_tree(&repo_root().join("catalogue"), &work.join("catalogue"));
    copy_tree(&repo_root().join("modules"), &work.join("modules"));
    git(&work, &["init", "-q"]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "catalogue v1.0.0"]);
    git(&work, &["tag", "v1.0.0"]);
    git(tmp.path(), &["clone", "-q", "--bare", "work", "platform.git"]);
    let repo = tmp.path().join("platform.git");

    let stack = "stack coder from \"catalogue/stacks/coder\" {\n  domain       = \"example.test\"\n  repo_url     = \"https://forgejo.example.test/platform/stacks-instances.git\"\n  organisation = \"platform\"\n  cluster_name = \"edp\"\n  output_dir   = \"out\"\n}\n\nrunner_fleet small from \"catalogue/runner_fleet/forgejo\" {\n  forgejo_url = \"https://forgejo.example.test\"\n}\n";
    let providers = "provider kubernetes {\n  host  = \"http://127.0.0.1:9\"\n  token = \"unused\"\n}\n";
    let imported =
        project(&[("main.plinth", &format!("import catalogue from \"git+file://{}//catalogue\" version \"^1\"\n\n{providers}\n{stack}", repo.display()))]);
    assert_exit(&run(imported.path(), &["init"]), 0);
    assert_exit(&run(imported.path(), &["validate"]), 0);
    assert_exit(&run(imported.path(), &["apply", "--auto-approve", "--only", "stack.coder.file.tree.manifests"]), 0);
    let plan = run(imported.path(), &["plan"]);
    assert_exit(&plan, 0);
    assert!(stdout(&plan).contains("runner_fleet.small.module.registration.kubernetes.secret.this"), "{}", stdout(&plan));

    let local = crate::catalogue::catalogue_project(&format!("{providers}\n{stack}"));
    assert_exit(&run(local.path(), &["apply", "--auto-approve", "--only", "stack.coder.file.tree.manifests"]), 0);
    for file in ["coder.yaml", "database.yaml", "namespace.yaml"] {
        let from_git = std::fs::read_to_string(imported.path().join("out/coder").join(file)).unwrap();
        assert_eq!(from_git, std::fs::read_to_string(local.path().join("out/coder").join(file)).unwrap(), "{file}");
        assert!(!from_git.contains("{{{"), "{file}");
    }
    assert!(std::fs::read_to_string(imported.path().join("out/coder/coder.yaml")).unwrap().contains("kind: Application"));

    // The catalogue alone at a repository's root: its modules are not there.
    let bare = tmp.path().join("bare");
    copy_tree(&repo_root().join("catalogue"), &bare);
    git(&bare, &["init", "-q"]);
    git(&bare, &["add", "-A"]);
    git(&bare, &["commit", "-q", "-m", "catalogue alone"]);
    git(&bare, &["tag", "v1.0.0"]);
    let alone = project(&[("main.plinth", &format!("import catalogue from \"git+file://{}\" version \"^1\"\n\n{providers}\n{stack}", bare.display()))]);
    let init = run(alone.path(), &["init"]);
    assert_exit(&init, 1);
    assert!(stderr(&init).contains("P2061") && stderr(&init).contains("relative source leaves its repository"), "{}", stderr(&init));
}

/// The migration `catalogue/README.md` documents, for the runner fleet: an
/// environment applied with the entry as it was before `modules/`, moved
/// with `plinth state mv`, plans no change with the current entry — the
/// namespace, the Secret and its generated value stay as they are.
#[test]
fn a_runner_fleet_applied_before_modules_moves_its_state_and_plans_no_change() {
    let k = KubeApiTestDouble::start();
    let main = format!(
        "{}\nrunner_fleet pool from \"catalogue/runner_fleet/forgejo\" {{\n  for_each    = toset([\"small\"])\n  name        = each.key\n  forgejo_url = \"https://forgejo.example.test\"\n  size        = each.key\n}}\n",
        kube_provider(&k)
    );
    let p = project(&[("main.plinth", &main)]);
    let entry = p.path().join("catalogue/runner_fleet/forgejo");
    copy_tree(&repo_root().join("catalogue/runner_fleet/forgejo/templates"), &entry.join("templates"));
    std::fs::copy(repo_root().join("tests/fixtures/catalogue_before_modules/runner_fleet/forgejo/main.plinth"), entry.join("main.plinth")).unwrap();
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    let secret_path = "/api/v1/namespaces/forgejo-runners-small/secrets/small-registration";
    let before = unb64(&k.get(secret_path).expect("registration Secret")["data"]["secret"]);
    assert_eq!(before.len(), 40);

    // The current entry, built on modules/.
    std::fs::copy(repo_root().join("catalogue/runner_fleet/forgejo/main.plinth"), entry.join("main.plinth")).unwrap();
    copy_tree(&repo_root().join("modules"), &p.path().join("modules"));
    // Without the moves: the old addresses destroyed, the new ones created
    // (a new namespace, Secret and registration secret).
    let unmoved = run(p.path(), &["plan", "--json"]);
    assert_exit(&unmoved, 0);
    let unmoved: Json = serde_json::from_str(stdout(&unmoved).trim()).unwrap();
    assert_eq!((&unmoved["summary"]["create"], &unmoved["summary"]["destroy"]), (&Json::from(3), &Json::from(3)), "{}", unmoved["summary"]);

    let pool = r#"runner_fleet.pool["small"]"#;
    for (from, to) in [
        ("random.password.registration", r#"module.registration.random.password.this["secret"]"#),
        ("kubernetes.namespace.fleet[0]", "module.namespace[0].kubernetes.namespace.this"),
        ("kubernetes.secret.registration", "module.registration.kubernetes.secret.this"),
    ] {
        let mv = run(p.path(), &["state", "mv", &format!("{pool}.{from}"), &format!("{pool}.{to}")]);
        assert_exit(&mv, 0);
    }
    let plan = run(p.path(), &["plan", "--detailed-exitcode"]);
    assert_exit(&plan, 0);
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    assert_eq!(unb64(&k.get(secret_path).unwrap()["data"]["secret"]), before, "the registration secret was regenerated");
    let out = run(p.path(), &["drift"]);
    assert_exit(&out, 0);

    // An address that is not one is still refused.
    let bad = run(p.path(), &["state", "mv", &format!("{pool}.random.password.nothing"), "module.x.random.password"]);
    assert_exit(&bad, 1);
    assert!(stderr(&bad).contains("P5005"), "{}", stderr(&bad));
}

/// The same for `database/postgres`, against the PostgreSQL test server:
/// after the moves the role, the database and the password are untouched.
#[test]
fn a_database_applied_before_modules_moves_its_state_and_plans_no_change() {
    let Some(url) = test_server("PLINTH_TEST_PG_URL", "PostgreSQL") else { return };
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let name = format!("plinth_t_movedb_{}_{}", std::process::id(), nanos % 1_000_000_000);
    let main = format!(
        "provider postgres {{\n  url            = \"{url}\"\n  list_unmanaged = false\n}}\n\ndatabase app from \"catalogue/database/postgres\" {{\n  name       = \"{name}\"\n  host       = \"db.example.test\"\n  extensions = [\"hstore\"]\n}}\n\noutput url = database.app.url {{\n  sensitive = true\n}}\n"
    );
    let p = project(&[("main.plinth", &main)]);
    let entry = p.path().join("catalogue/database/postgres");
    std::fs::create_dir_all(&entry).unwrap();
    std::fs::copy(repo_root().join("tests/fixtures/catalogue_before_modules/database/postgres/main.plinth"), entry.join("main.plinth")).unwrap();
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    let url_before = outputs(p.path())["url"].clone();

    std::fs::copy(repo_root().join("catalogue/database/postgres/main.plinth"), entry.join("main.plinth")).unwrap();
    copy_tree(&repo_root().join("modules"), &p.path().join("modules"));
    for (from, to) in [
        ("random.password.owner", "module.db.random.password.owner"),
        ("postgres.role.owner", "module.db.postgres.role.owner"),
        ("postgres.database.db", "module.db.postgres.database.this"),
        (r#"postgres.extension.ext["hstore"]"#, r#"module.db.postgres.extension.this["hstore"]"#),
    ] {
        assert_exit(&run(p.path(), &["state", "mv", &format!("database.app.{from}"), &format!("database.app.{to}")]), 0);
    }
    assert_exit(&run(p.path(), &["plan", "--refresh", "--detailed-exitcode"]), 0);
    assert_exit(&run(p.path(), &["apply", "--auto-approve"]), 0);
    assert_eq!(outputs(p.path())["url"], url_before, "the URL (and its password) changed");
    assert_exit(&run(p.path(), &["destroy", "--auto-approve"]), 0);
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    assert!(admin.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name]).unwrap().is_none());
}
