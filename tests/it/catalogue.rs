//! The catalogue (`catalogue/`): every stack and the Forgejo runner fleet is
//! instantiated from a small project in a temporary directory (with the
//! repository's `catalogue/` copied into it, where a `catalogue/…` source
//! resolves, and `modules/` beside it, which the entries are built from),
//! rendered by the real binary with `plinth apply --only
//! '<kind>.<name>.file.tree.manifests'` (the kubernetes and postgres
//! resources of the modules need servers these machines do not have), and
//! the rendered directory is checked by `scripts/validate-manifests.py`:
//! built-in kinds against the Kubernetes schemas (`kubernetes-validate
//! --strict`), custom resources against `tests/schemas/`.
//!
//! The validator is installed by scripts/services/kubevalidate.sh, which
//! exports PLINTH_KUBE_VALIDATE; without it these tests note the skip (and
//! fail under CI).

use crate::*;
use std::path::{Path, PathBuf};

/// The root project's provider blocks: modules use the root's providers.
/// Nothing here is contacted, since only file.tree resources are applied.
const PROVIDERS: &str = r#"
provider kubernetes {
  host  = "http://127.0.0.1:9"
  token = "not-used-by-these-tests"
}
"#;

const COMMON: &str = r#"
  domain       = "example.test"
  repo_url     = "https://forgejo.example.test/platform/stacks-instances.git"
  organisation = "platform"
  cluster_name = "edp"
  output_dir   = "out"
"#;

/// A project with `main` as its configuration and the repository's
/// catalogue beside it, with the `modules/` its entries are built from
/// (they name them as `../../../modules/<name>`).
pub(crate) fn catalogue_project(main: &str) -> tempfile::TempDir {
    let dir = project(&[("main.plinth", main)]);
    copy_tree(&repo_root().join("catalogue"), &dir.path().join("catalogue"));
    copy_tree(&repo_root().join("modules"), &dir.path().join("modules"));
    dir
}

/// Runs scripts/validate-manifests.py on `dir` with the validator's venv;
/// asserts that every manifest is valid.
#[track_caller]
pub(crate) fn assert_valid_manifests(validator: &Path, dir: &Path) -> String {
    let python = venv_python(validator);
    let out = std::process::Command::new(&python)
        .arg(repo_root().join("scripts/validate-manifests.py"))
        .arg(dir)
        .env("PLINTH_KUBE_VALIDATE", validator)
        .output()
        .unwrap_or_else(|e| panic!("run {} scripts/validate-manifests.py: {e}", python.display()));
    assert_exit(&out, 0);
    stdout(&out)
}

/// Renders one catalogue entry and checks the result: the expected files,
/// each containing the expected text (chart names and versions), all valid.
#[track_caller]
fn render_and_validate(address: &str, main: &str, rendered: &str, expect: &[(&str, &[&str])]) -> Option<tempfile::TempDir> {
    let validator = kube_validator()?;
    let dir = catalogue_project(main);
    let apply = run(dir.path(), &["apply", "--auto-approve", "--only", &format!("{address}.file.tree.manifests")]);
    assert_exit(&apply, 0);
    let out = dir.path().join(rendered);
    for (file, needles) in expect {
        let path = out.join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{} was not rendered: {e}", path.display()));
        for needle in *needles {
            assert!(text.contains(needle), "{} lacks {needle:?}:\n{text}", path.display());
        }
        assert!(!text.contains("{{{") && !text.contains("}}}"), "{} has unrendered delimiters:\n{text}", path.display());
    }
    let report = assert_valid_manifests(&validator, &out);
    assert!(report.contains("valid"), "{report}");
    Some(dir)
}

#[test]
fn stack_core_renders_valid_argocd_applications() {
    let main = format!(
        r#"{PROVIDERS}
stack core from "catalogue/stacks/core" {{
{COMMON}
  stacks = ["core", "otc", "forgejo", "observability"]
}}

output argocd = stack.core.url
"#
    );
    render_and_validate(
        "stack.core",
        &main,
        "out/core",
        &[
            (
                "argo-cd.yaml",
                &[
                    "kind: Application",
                    "repoURL: https://argoproj.github.io/argo-helm",
                    "chart: argo-cd",
                    "targetRevision: 9.1.5",
                    "argocd.example.test",
                    "CreateNamespace=true",
                ],
            ),
            ("cloudnative-pg.yaml", &["chart: cloudnative-pg", "targetRevision: 0.26.1"]),
            ("dex.yaml", &["chart: dex", "targetRevision: 0.23.0", "issuer: https://dex.example.test"]),
            (
                "stacks.yaml",
                &[
                    "name: stack-core",
                    "name: stack-observability",
                    "repoURL: https://forgejo.example.test/platform/stacks-instances.git",
                    "path: stacks/forgejo",
                ],
            ),
        ],
    );
}

#[test]
fn stack_otc_renders_cert_manager_issuer_ingress_and_storage_class() {
    let main = format!(
        r#"{PROVIDERS}
stack otc from "catalogue/stacks/otc" {{
{COMMON}
  acme_email      = "platform@example.test"
  elb_id          = "5a1c3c1e-0000-4000-8000-000000000001"
  elb_annotations = {{ "kubernetes.io/elb.lb-algorithm" = "ROUND_ROBIN" }}
}}
"#
    );
    render_and_validate(
        "stack.otc",
        &main,
        "out/otc",
        &[
            ("cert-manager.yaml", &["chart: cert-manager", "targetRevision: v1.17.2"]),
            ("cluster-issuer.yaml", &["kind: ClusterIssuer", "name: main", "platform@example.test", "ingressClassName: nginx"]),
            (
                "ingress-nginx.yaml",
                &[
                    "chart: ingress-nginx",
                    "targetRevision: 4.12.1",
                    "kubernetes.io/elb.id",
                    "5a1c3c1e-0000-4000-8000-000000000001",
                    "kubernetes.io/elb.class",
                    "ROUND_ROBIN",
                ],
            ),
            ("storage-class.yaml", &["kind: StorageClass", "storageclass.kubernetes.io/is-default-class", "everest.io/disk-volume-type: SSD"]),
        ],
    );
}

#[test]
fn stack_forgejo_renders_forgejo_database_and_runner_without_secrets() {
    let main = format!(
        r#"{PROVIDERS}
stack forgejo from "catalogue/stacks/forgejo" {{
{COMMON}
}}

# Where the test reads the generated admin password from.
resource file.file probe {{
  path    = "probe/admin-password"
  content = stack.forgejo.admin_password
}}
"#
    );
    let Some(dir) = render_and_validate(
        "stack.forgejo",
        &main,
        "out/forgejo",
        &[
            (
                "forgejo.yaml",
                &[
                    "repoURL: code.forgejo.org/forgejo-helm",
                    "chart: forgejo",
                    "targetRevision: 12.0.0",
                    "host: forgejo.example.test",
                    "existingSecret: forgejo-admin",
                ],
            ),
            ("database.yaml", &["kind: Cluster", "postgresql.cnpg.io/v1", "database: forgejo"]),
            ("runner.yaml", &["kind: Deployment", "image: docker:dind", "privileged: true", "tcp://localhost:2376", "code.forgejo.org/forgejo/runner:6.3.1"]),
        ],
    ) else {
        return;
    };
    // The generated admin password exists (state, and the probe file) but
    // appears in no rendered file.
    let secrets = run(dir.path(), &["apply", "--auto-approve", "--only", "file.file.probe"]);
    assert_exit(&secrets, 0);
    let password = std::fs::read_to_string(dir.path().join("probe/admin-password")).expect("probe file");
    assert_eq!(password.len(), 32, "admin password: {password:?}");
    for file in rendered_files(&dir.path().join("out/forgejo")) {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(!text.contains(&password), "{} contains the generated admin password", file.display());
    }
}

#[test]
fn stack_observability_renders_grafana_operator_and_victoria_metrics() {
    let main = format!(
        r#"{PROVIDERS}
stack observability from "catalogue/stacks/observability" {{
{COMMON}
}}
"#
    );
    render_and_validate(
        "stack.observability",
        &main,
        "out/observability",
        &[
            ("grafana-operator.yaml", &["repoURL: ghcr.io/grafana/helm-charts", "chart: grafana-operator", "targetRevision: v5.18.0"]),
            ("victoria-metrics.yaml", &["chart: victoria-metrics-k8s-stack", "targetRevision: 0.48.1", "metrics.example.test"]),
            ("grafana.yaml", &["kind: Grafana", "kind: GrafanaDatasource", "grafana.example.test"]),
        ],
    );
}

#[test]
fn stack_observability_client_renders_agents_writing_to_the_central_endpoint() {
    let main = format!(
        r#"{PROVIDERS}
stack observability-client from "catalogue/stacks/observability-client" {{
{COMMON}
  remote_write_url      = "https://metrics.central.example.test/api/v1/write"
  remote_write_password = "not-rendered-anywhere"
  logs_endpoint         = "https://logs.central.example.test/insert/elasticsearch/"
}}
"#
    );
    let Some(dir) = render_and_validate(
        "stack.observability-client",
        &main,
        "out/observability-client",
        &[
            ("metrics-server.yaml", &["chart: metrics-server", "targetRevision: 3.12.2"]),
            ("vector.yaml", &["chart: vector", "targetRevision: 0.43.0", "https://logs.central.example.test/insert/elasticsearch/"]),
            (
                "victoria-metrics-agent.yaml",
                &["chart: victoria-metrics-k8s-stack", "targetRevision: 0.48.1", "https://metrics.central.example.test/api/v1/write"],
            ),
        ],
    ) else {
        return;
    };
    for file in rendered_files(&dir.path().join("out/observability-client")) {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(!text.contains("not-rendered-anywhere"), "{} contains the remote-write password", file.display());
    }
}

#[test]
fn stack_coder_renders_coder_and_its_cloudnativepg_cluster() {
    let main = format!(
        r#"{PROVIDERS}
stack coder from "catalogue/stacks/coder" {{
{COMMON}
}}
"#
    );
    render_and_validate(
        "stack.coder",
        &main,
        "out/coder",
        &[
            ("coder.yaml", &["repoURL: https://helm.coder.com/v2", "chart: coder", "targetRevision: 2.28.3", "https://coder.example.test"]),
            ("database.yaml", &["kind: Cluster", "postgresql.cnpg.io/v1", "name: coder-db"]),
            ("namespace.yaml", &["kind: Namespace", "name: coder"]),
        ],
    );
}

#[test]
fn stack_terralist_renders_terralist_with_its_volume_and_database() {
    let main = format!(
        r#"{PROVIDERS}
stack terralist from "catalogue/stacks/terralist" {{
{COMMON}
}}
"#
    );
    render_and_validate(
        "stack.terralist",
        &main,
        "out/terralist",
        &[
            ("terralist.yaml", &["repoURL: ghcr.io/terralist/helm-charts", "chart: terralist", "targetRevision: 0.8.1", "terralist.example.test"]),
            ("storage.yaml", &["kind: PersistentVolumeClaim", "kind: Cluster", "name: terralist-db"]),
        ],
    );
}

#[test]
fn runner_fleet_renders_sized_runners_with_docker_in_docker() {
    let main = format!(
        r#"{PROVIDERS}
runner_fleet large from "catalogue/runner_fleet/forgejo" {{
  name        = "large"
  forgejo_url = "https://forgejo.example.test"
  replicas    = 3
  size        = "large"
  labels      = ["docker:docker://node:20-bookworm", "ubuntu-22.04:docker://ghcr.io/catthehacker/ubuntu:act-22.04"]
  output_dir  = "out"
}}

output runner_labels = runner_fleet.large.labels
"#
    );
    render_and_validate(
        "runner_fleet.large",
        &main,
        "out/large",
        &[
            (
                "config.yaml",
                &[
                    "kind: ConfigMap",
                    "name: large-config",
                    r#"["docker:docker://node:20-bookworm","ubuntu-22.04:docker://ghcr.io/catthehacker/ubuntu:act-22.04"]"#,
                ],
            ),
            (
                "deployment.yaml",
                &[
                    "kind: Deployment",
                    "replicas: 3",
                    "image: docker:dind",
                    "privileged: true",
                    "tcp://localhost:2376",
                    "/certs/client",
                    r#""cpu":"2""#,
                    r#""memory":"4Gi""#,
                    "name: large-registration",
                ],
            ),
        ],
    );
}

/// The stacks-instances pattern end to end: two stacks rendered and
/// committed with `git.commit` into a local bare repository; a clone of it
/// holds valid manifests at the paths the core stack's per-stack
/// Applications sync.
#[test]
fn rendered_stacks_committed_to_an_instances_repository_are_what_argocd_syncs() {
    let Some(validator) = kube_validator() else { return };
    let main = format!(
        r#"{PROVIDERS}
stack core from "catalogue/stacks/core" {{
{COMMON}
  stacks = ["core", "otc"]
}}

stack otc from "catalogue/stacks/otc" {{
{COMMON}
  acme_email = "platform@example.test"
  elb_id     = "5a1c3c1e-0000-4000-8000-000000000001"
}}

resource git.commit instances {{
  repository = "instances.git"
  branch     = "main"
  path       = "stacks"
  source     = "out"
  message    = "Render the stacks of edp"
  triggers   = [stack.core.hash, stack.otc.hash]
}}
"#
    );
    let dir = catalogue_project(&main);
    let git = |args: &[&str], cwd: &Path| {
        let out = std::process::Command::new("git").args(args).current_dir(cwd).output().expect("run git");
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    git(&["init", "--quiet", "--bare", "instances.git"], dir.path());
    let apply = run(dir.path(), &["apply", "--auto-approve", "--only", "stack.core.file.tree.manifests,stack.otc.file.tree.manifests,git.commit.instances"]);
    assert_exit(&apply, 0);
    git(&["clone", "--quiet", "--branch", "main", "instances.git", "checkout"], dir.path());
    let checkout = dir.path().join("checkout");
    // Argo CD's stack Applications sync <repo_path>/<stack>: those paths exist.
    let apps = std::fs::read_to_string(checkout.join("stacks/core/stacks.yaml")).expect("stacks.yaml committed");
    for stack in ["core", "otc"] {
        assert!(apps.contains(&format!("path: stacks/{stack}")), "{apps}");
        assert!(checkout.join("stacks").join(stack).is_dir(), "stacks/{stack} is not in the instances repository");
    }
    assert_valid_manifests(&validator, &checkout.join("stacks"));
    // Nothing changed: applying again commits nothing.
    let again =
        run(dir.path(), &["plan", "--detailed-exitcode", "--only", "stack.core.file.tree.manifests,stack.otc.file.tree.manifests,git.commit.instances"]);
    assert_exit(&again, 0);
}

#[test]
fn runner_fleet_rejects_an_unknown_size() {
    let main = format!(
        r#"{PROVIDERS}
runner_fleet huge from "catalogue/runner_fleet/forgejo" {{
  forgejo_url = "https://forgejo.example.test"
  size        = "huge"
}}
"#
    );
    let dir = catalogue_project(&main);
    let out = run(dir.path(), &["validate"]);
    assert_exit(&out, 1);
    assert!(stderr(&out).contains("size is one of small, medium, large, xlarge"), "{}", stderr(&out));
}

/// Every catalogue entry parses, resolves and type-checks as a module, with
/// no server (`plinth validate`).
#[test]
fn every_catalogue_entry_validates() {
    let main = format!(
        r#"{PROVIDERS}
provider postgres {{
  url = "postgres://postgres@127.0.0.1:9/postgres"
}}

cluster edp from "catalogue/cluster/existing" {{
  name           = "edp"
  api_server     = "https://10.0.0.1:6443"
  ingress_domain = "example.test"
}}

database forgejo from "catalogue/database/postgres" {{
  name = "forgejo"
  host = "db.example.test"
}}

stack core from "catalogue/stacks/core" {{
  domain       = cluster.edp.domain
  repo_url     = "https://forgejo.example.test/platform/stacks-instances.git"
  organisation = "platform"
  cluster_name = cluster.edp.name
}}

stack otc from "catalogue/stacks/otc" {{
  domain       = cluster.edp.domain
  repo_url     = "https://forgejo.example.test/platform/stacks-instances.git"
  organisation = "platform"
  cluster_name = cluster.edp.name
  acme_email   = "platform@example.test"
  elb_id       = "elb"
}}

stack forgejo from "catalogue/stacks/forgejo" {{
  domain       = cluster.edp.domain
  repo_url     = "https://forgejo.example.test/platform/stacks-instances.git"
  organisation = "platform"
  cluster_name = cluster.edp.name
}}

stack observability from "catalogue/stacks/observability" {{
  domain       = cluster.edp.domain
  repo_url     = "https://forgejo.example.test/platform/stacks-instances.git"
  organisation = "platform"
  cluster_name = cluster.edp.name
}}

stack observability-client from "catalogue/stacks/observability-client" {{
  domain                = cluster.edp.domain
  repo_url              = "https://forgejo.example.test/platform/stacks-instances.git"
  organisation          = "platform"
  cluster_name          = cluster.edp.name
  remote_write_url      = stack.observability.remote_write_url
  remote_write_user     = stack.observability.remote_write_user
  remote_write_password = stack.observability.remote_write_password
}}

stack coder from "catalogue/stacks/coder" {{
  domain       = cluster.edp.domain
  repo_url     = "https://forgejo.example.test/platform/stacks-instances.git"
  organisation = "platform"
  cluster_name = cluster.edp.name
}}

stack terralist from "catalogue/stacks/terralist" {{
  domain       = cluster.edp.domain
  repo_url     = "https://forgejo.example.test/platform/stacks-instances.git"
  organisation = "platform"
  cluster_name = cluster.edp.name
}}

runner_fleet default from "catalogue/runner_fleet/forgejo" {{
  forgejo_url = stack.forgejo.url
}}

output database_url = database.forgejo.url {{
  sensitive = true
}}
"#
    );
    let dir = catalogue_project(&main);
    assert_exit(&run(dir.path(), &["validate"]), 0);
}

/// The YAML files under `dir`, recursively, sorted.
fn rendered_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("read {}: {e}", d.display())).flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    assert!(!files.is_empty(), "nothing rendered under {}", dir.display());
    files
}

/// What the catalogue renders and outputs, byte for byte: every stack (core
/// deploying all of them) and a runner fleet with non-default inputs, plus
/// observability-client without a logs endpoint, rendered into one project;
/// one insta snapshot per rendered directory and one of the root outputs
/// (`tests/fixtures/snapshots/catalogue__*.snap`). A change of the
/// catalogue's internals (such as moving blocks into `modules/`) that changes
/// one rendered byte or one output value fails here with the diff. Needs no
/// validator and no server: only the file.tree resources are applied.
#[test]
fn every_entry_renders_and_outputs_what_its_snapshot_holds() {
    let all = r#"["core", "otc", "forgejo", "observability", "observability-client", "coder", "terralist"]"#;
    let quiet = COMMON.replace(r#"output_dir   = "out""#, r#"output_dir   = "out-quiet""#);
    let main = format!(
        r#"{PROVIDERS}
stack core from "catalogue/stacks/core" {{
{COMMON}
  stacks         = {all}
  repo_revision  = "main"
  chart_versions = {{ dex = "0.24.0" }}
}}

stack otc from "catalogue/stacks/otc" {{
{COMMON}
  acme_email      = "platform@example.test"
  elb_id          = "5a1c3c1e-0000-4000-8000-000000000001"
  elb_annotations = {{ "kubernetes.io/elb.lb-algorithm" = "ROUND_ROBIN" }}
}}

stack forgejo from "catalogue/stacks/forgejo" {{
{COMMON}
  admin_email = "admin@example.test"
}}

stack observability from "catalogue/stacks/observability" {{
{COMMON}
  retention = "12w"
}}

stack observability-client from "catalogue/stacks/observability-client" {{
{COMMON}
  remote_write_url      = "https://metrics.central.example.test/api/v1/write"
  remote_write_password = "not-rendered-anywhere"
  logs_endpoint         = "https://logs.central.example.test/insert/elasticsearch/"
}}

stack quiet-client from "catalogue/stacks/observability-client" {{
{quiet}
  remote_write_url      = "https://metrics.central.example.test/api/v1/write"
  remote_write_password = "not-rendered-anywhere"
}}

stack coder from "catalogue/stacks/coder" {{
{COMMON}
  replicas = 2
}}

stack terralist from "catalogue/stacks/terralist" {{
{COMMON}
  oidc_issuer = "https://sso.example.test"
}}

runner_fleet large from "catalogue/runner_fleet/forgejo" {{
  name         = "large"
  forgejo_url  = "https://forgejo.example.test"
  replicas     = 3
  size         = "large"
  capacity     = 2
  cluster_name = "edp"
  output_dir   = "out"
}}

output core = stack.core
output otc = stack.otc
output forgejo = {{ for k in ["dir", "files", "hash", "charts", "url", "api_url", "namespace", "admin_user", "admin_secret", "runner_labels"] : k => stack.forgejo[k] }}
output observability = {{ for k in ["dir", "files", "hash", "charts", "url", "grafana_url", "remote_write_url", "remote_write_user"] : k => stack.observability[k] }}
output observability-client = stack.observability-client
output quiet-client = stack.quiet-client
output coder = stack.coder
output terralist = stack.terralist
output runner_fleet = {{ for k in ["dir", "files", "hash", "labels", "namespace", "secret_name", "resources"] : k => runner_fleet.large[k] }}
"#
    );
    let dir = catalogue_project(&main);
    let apply = run(dir.path(), &["apply", "--auto-approve", "--only", "stack.*.file.tree.*,runner_fleet.*.file.tree.*"]);
    assert_exit(&apply, 0);
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(repo_root().join("tests/fixtures/snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    for (out, entry) in [
        ("out", "core"),
        ("out", "otc"),
        ("out", "forgejo"),
        ("out", "observability"),
        ("out", "observability-client"),
        ("out-quiet", "observability-client"),
        ("out", "coder"),
        ("out", "terralist"),
        ("out", "large"),
    ] {
        let root = dir.path().join(out).join(entry);
        let mut text = String::new();
        for file in rendered_files(&root) {
            let rel = file.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
            let content = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
            text.push_str(&format!("===== {rel}\n{content}"));
        }
        let name = format!("catalogue__{}", format!("{out}_{entry}").replace('-', "_"));
        settings.bind(|| insta::assert_snapshot!(name, text));
    }
    // What the whole configuration plans (nothing is contacted at plan):
    // the outputs' values, and the objects the kubernetes and random
    // resources would manage, by content (addresses are internal).
    let plan = run(dir.path(), &["plan", "--json"]);
    assert_exit(&plan, 0);
    let plan: serde_json::Value = serde_json::from_str(stdout(&plan).trim()).expect("plan --json is JSON");
    let outputs = serde_json::Value::Array(plan["outputs"].as_array().expect("outputs").iter().map(canonical).collect());
    settings.bind(|| insta::assert_snapshot!("catalogue__outputs", serde_json::to_string_pretty(&outputs).unwrap()));
    let mut objects: Vec<String> = plan["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|c| c["type"] != "file.tree")
        .map(|c| format!("{} {}", c["type"].as_str().unwrap_or("?"), canonical(&c["after"])))
        .collect();
    objects.sort();
    settings.bind(|| insta::assert_snapshot!("catalogue__objects", objects.join("\n")));
}

/// `v` with every object's keys sorted (labels merged in another order are
/// the same labels).
fn canonical(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            serde_json::Value::Object(keys.into_iter().map(|k| (k.clone(), canonical(&m[k]))).collect())
        }
        serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}
