//! Terraform providers run unchanged: the real `terraform-provider-workato`
//! 0.16.0 (plugin protocol 6; scripts/services/tfproviders.sh puts it in a
//! filesystem mirror) against tests/fixtures/workato_api.py, a test double
//! of Workato's API on loopback (https, self-signed). The same configuration
//! is applied by the real `terraform` 1.11 against a second, identical
//! server: both must leave the same remote objects and record the same
//! attribute values.

use crate::{assert_exit, project, run, stderr, stdout};
use serde_json::Value as Json;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn mirror() -> Option<PathBuf> {
    crate::test_server("PLINTH_TEST_TF_MIRROR", "the Terraform provider mirror").map(PathBuf::from)
}

/// One running API double; killed on drop.
struct Api {
    child: Child,
    url: String,
    state: PathBuf,
    cert: PathBuf,
    _dir: tempfile::TempDir,
}

impl Api {
    fn start() -> Api {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("objects.json");
        let mut child = Command::new("python3")
            .arg(crate::repo_root().join("tests/fixtures/workato_api.py"))
            .args(["--port", "0", "--state-file"])
            .arg(&state)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the API double");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected first line {line:?}")).to_string();
        let cert = PathBuf::from(format!("{}.cert.pem", state.display()));
        Api { child, url: format!("https://{addr}"), state, cert, _dir: dir }
    }
    fn objects(&self) -> Json {
        serde_json::from_str(&std::fs::read_to_string(&self.state).unwrap_or_else(|_| "{}".into())).unwrap()
    }
    fn requests(&self) -> Vec<Json> {
        std::fs::read_to_string(format!("{}.log", self.state.display())).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const PLINTH_CONFIG: &str = r#"
param base_url: string
param description: string = "made by the round trip"
param region: string = "eu"
param property: string = "region"

provider workato {
  source   = "workato-devs/workato"
  version  = "~> 0.16"
  base_url = base_url
  api_key  = "test-api-key"
}

resource workato.project p {
  name        = "plinth"
  description = description
}

resource workato.folder f {
  name      = "tables"
  folder_id = workato.project.p.folder_id
}

resource workato.data_table t {
  name      = "people"
  folder_id = workato.folder.f.id
  column {
    name = "email"
    type = "string"
  }
  column {
    name     = "age"
    type     = "integer"
    optional = true
    hint     = "in years"
  }
}

resource workato.data_table u {
  name      = "teams"
  folder_id = workato.folder.f.id
  column {
    name = "lead"
    type = "relation"
    relation {
      table_id = workato.data_table.t.id
      field_id = workato.data_table.t.column[0].field_id
    }
  }
}

resource workato.project_property pp {
  project_id = workato.project.p.id
  name       = property
  value      = region
}
"#;

fn terraform_dir(mirror: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rc"), format!("provider_installation {{\n  filesystem_mirror {{ path = \"{}\" }}\n}}\n", mirror.display())).unwrap();
    std::fs::copy(crate::repo_root().join("tests/fixtures/workato/terraform/create.tf"), dir.path().join("main.tf")).unwrap();
    dir
}

fn terraform(dir: &Path, api: &Api, args: &[&str]) -> std::process::Output {
    Command::new("terraform")
        .args(args)
        .current_dir(dir)
        .env("TF_CLI_CONFIG_FILE", dir.join("rc"))
        .env("SSL_CERT_FILE", &api.cert)
        .env("TF_IN_AUTOMATION", "1")
        .env("CHECKPOINT_DISABLE", "1")
        .output()
        .expect("run terraform")
}

fn plinth(dir: &Path, api: &Api, args: &[&str]) -> std::process::Output {
    let var = format!("base_url={}", api.url);
    let mut all: Vec<&str> = args.to_vec();
    if !matches!(args.first(), Some(&"init" | &"state")) {
        all.extend(["--var", &var]);
    }
    crate::plinth().args(&all).current_dir(dir).env("SSL_CERT_FILE", &api.cert).output().expect("run plinth")
}

/// The remote objects with what differs by construction (ids, clock)
/// replaced by their order of appearance.
fn normalised(objects: &Json) -> Json {
    let text = objects.to_string();
    let mut ids: Vec<String> = Vec::new();
    let re_like = |s: &str| s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4;
    fn walk(v: &Json, ids: &mut Vec<String>, re_like: &dyn Fn(&str) -> bool) -> Json {
        match v {
            Json::String(s) if re_like(s) || s.starts_with("2025-01-01T") => {
                if !ids.contains(s) {
                    ids.push(s.clone());
                }
                Json::String(format!("<{}>", if s.starts_with("2025") { "time".to_string() } else { "uuid".to_string() }))
            }
            Json::Array(a) => Json::Array(a.iter().map(|x| walk(x, ids, re_like)).collect()),
            Json::Object(o) => Json::Object(
                o.iter().map(|(k, x)| (k.clone(), if k == "created_at" || k == "updated_at" { Json::from("<time>") } else { walk(x, ids, re_like) })).collect(),
            ),
            other => other.clone(),
        }
    }
    let _ = text;
    walk(objects, &mut ids, &re_like)
}

/// Attribute values of `terraform show -json`, by resource type and name.
fn terraform_values(dir: &Path, api: &Api) -> Vec<(String, Json)> {
    let o = terraform(dir, api, &["show", "-json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Json = serde_json::from_slice(&o.stdout).unwrap();
    let mut out: Vec<(String, Json)> = v["values"]["root_module"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            // What terraform marks sensitive, Plinth shows redacted.
            let mut values = r["values"].clone();
            for (k, v) in r["sensitive_values"].as_object().into_iter().flatten() {
                if v == &Json::Bool(true) {
                    values[k] = Json::from("(sensitive)");
                }
            }
            (format!("{}.{}", r["type"].as_str().unwrap().trim_start_matches("workato_"), r["name"].as_str().unwrap()), values)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Attribute values Plinth recorded, by resource type and name.
fn plinth_values(dir: &Path, api: &Api) -> Vec<(String, Json)> {
    let o = plinth(dir, api, &["state", "show", "--json"]);
    assert_exit(&o, 0);
    let v: Json = serde_json::from_slice(&o.stdout).unwrap();
    let list = v.as_array().cloned().or_else(|| v["instances"].as_array().cloned()).unwrap_or_default();
    let mut out: Vec<(String, Json)> = list
        .iter()
        .map(|r| {
            let address = r["address"].as_str().unwrap().trim_start_matches("workato.").to_string();
            let mut attrs = r["attributes"].clone();
            if let Some(m) = attrs.as_object_mut() {
                m.remove("@tf");
            }
            (address, attrs)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn a_real_provider_creates_updates_replaces_and_destroys_as_terraform_does() {
    let Some(mirror) = mirror() else { return };
    let (ours, theirs) = (Api::start(), Api::start());
    let dir = project(&[("main.plinth", PLINTH_CONFIG)]);
    let tf = terraform_dir(&mirror);
    let mirror_arg = mirror.display().to_string();

    // Install from the mirror, pinned.
    let o = plinth(dir.path(), &ours, &["init", "--provider-mirror", &mirror_arg]);
    assert_exit(&o, 0);
    let lock = std::fs::read_to_string(dir.path().join("plinth.lock")).unwrap();
    assert!(lock.contains("registry.terraform.io/workato-devs/workato") && lock.contains("0.16.0") && lock.contains("h1:"), "{lock}");

    // validate checks against the cached schema: a misspelt attribute.
    let bad = project(&[("main.plinth", &PLINTH_CONFIG.replace("description = description", "descripton = description"))]);
    std::fs::copy(dir.path().join("plinth.lock"), bad.path().join("plinth.lock")).unwrap();
    copy_providers(dir.path(), bad.path());
    let o = run(bad.path(), &["validate"]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("P2004") && stderr(&o).contains("Did you mean `description`"), "{}", stderr(&o));

    // Create, both tools.
    let o = plinth(dir.path(), &ours, &["apply", "--auto-approve", "--parallelism", "1"]);
    assert_exit(&o, 0);
    assert!(!stdout(&o).contains("@tf"), "{}", stdout(&o));
    // The provider process was stopped with the run, not left behind.
    let installed = dir.path().join(".plinth/providers").display().to_string();
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&installed))
        .collect();
    assert!(left.is_empty(), "provider processes left running: {left:?}");
    let o = terraform(tf.path(), &theirs, &["init", "-input=false"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let tf_var = format!("base_url={}", theirs.url);
    let o = terraform(tf.path(), &theirs, &["apply", "-auto-approve", "-input=false", "-parallelism=1", "-var", &tf_var]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(normalised(&ours.objects()), normalised(&theirs.objects()), "the same remote objects");
    let (mine, reference) = (plinth_values(dir.path(), &ours), terraform_values(tf.path(), &theirs));
    assert_eq!(mine.len(), 5);
    assert_eq!(normalised(&serde_json::json!(mine)), normalised(&serde_json::json!(reference)), "the same recorded values");

    // Nothing to do after apply.
    let o = plinth(dir.path(), &ours, &["plan", "--detailed-exitcode"]);
    assert_exit(&o, 0);

    // Drift: a table deleted outside Plinth is found by ReadResource, and
    // `apply --refresh` makes it again.
    let teams = remote_id(&ours, "workato.data_table.u").unwrap();
    let deleted = Command::new("curl")
        .args(["-sf", "-X", "DELETE", "-H", "Authorization: Bearer test-api-key", "--cacert"])
        .arg(&ours.cert)
        .arg(format!("{}/api/data_tables/{teams}", ours.url))
        .output()
        .unwrap();
    assert!(deleted.status.success(), "{}", String::from_utf8_lossy(&deleted.stderr));
    let o = plinth(dir.path(), &ours, &["drift"]);
    assert_exit(&o, 2);
    assert!(stdout(&o).contains("workato.data_table.u"), "{}", stdout(&o));
    let o = plinth(dir.path(), &ours, &["apply", "--auto-approve", "--refresh"]);
    assert_exit(&o, 0);
    assert!(remote_id(&ours, "workato.data_table.u").is_some(), "made again");
    assert_exit(&plinth(dir.path(), &ours, &["plan", "--detailed-exitcode", "--refresh"]), 0);

    // Import: forgotten, then adopted by its id; no second folder is made.
    assert_exit(&plinth(dir.path(), &ours, &["state", "rm", "workato.folder.f"]), 0);
    let folder = remote_id(&ours, "workato.folder.f").unwrap();
    let o = plinth(dir.path(), &ours, &["import", "workato.folder.f", &folder]);
    assert_exit(&o, 0);
    let o = plinth(dir.path(), &ours, &["import", "workato.folder.f", &folder]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("P5013"), "{}", stderr(&o));
    assert_exit(&plinth(dir.path(), &ours, &["apply", "--auto-approve"]), 0);
    assert_exit(&plinth(dir.path(), &ours, &["plan", "--detailed-exitcode"]), 0);
    let folders = ours.objects()["folders"].as_array().unwrap().iter().filter(|f| f["name"] == "tables").count();
    assert_eq!(folders, 1);

    // Update in place.
    let o = plinth(dir.path(), &ours, &["plan", "--detailed-exitcode", "--var", "description=changed", "--var", "region=us"]);
    assert_exit(&o, 2);
    assert!(stdout(&o).contains("workato.project.p will be updated") && !stdout(&o).contains("replaced"), "{}", stdout(&o));
    let o = plinth(dir.path(), &ours, &["apply", "--auto-approve", "--var", "description=changed", "--var", "region=us"]);
    assert_exit(&o, 0);
    let objects = ours.objects();
    assert!(objects.to_string().contains("\"changed\""), "{objects}");

    // A change the provider says forces replacement.
    let o = plinth(dir.path(), &ours, &["plan", "--var", "description=changed", "--var", "region=us", "--var", "property=zone"]);
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("workato.project_property.pp will be replaced (changing `name` forces replacement)"), "{}", stdout(&o));

    // Destroy: the API holds nothing afterwards.
    let o = plinth(dir.path(), &ours, &["destroy", "--auto-approve", "--var", "description=changed", "--var", "region=us"]);
    assert_exit(&o, 0);
    let left = ours.objects();
    for kind in ["projects", "folders", "data_tables"] {
        assert!(left[kind].as_array().map(|a| a.is_empty()).unwrap_or(left[kind].as_object().is_none_or(|m| m.is_empty())), "{kind} left: {left}");
    }
    assert!(ours.requests().iter().all(|r| r["status"].as_i64() != Some(401)), "every request authenticated");
}

fn copy_providers(from: &Path, to: &Path) {
    crate::copy_tree(&from.join(".plinth/providers"), &to.join(".plinth/providers"));
}

/// The provider's id of the object `address` names on the API double, if
/// it exists (what `plinth import` takes).
fn remote_id(api: &Api, address: &str) -> Option<String> {
    let o = api.objects();
    let named = |kind: &str, name: &str| o[kind].as_array().and_then(|a| a.iter().find(|x| x["name"] == name).cloned());
    match address {
        "workato.project.p" => named("projects", "plinth").map(|p| p["id"].to_string()),
        "workato.folder.f" => named("folders", "tables").map(|f| f["id"].to_string()),
        "workato.data_table.t" => named("data_tables", "people").map(|t| t["id"].as_str().unwrap().to_string()),
        "workato.data_table.u" => named("data_tables", "teams").map(|t| t["id"].as_str().unwrap().to_string()),
        "workato.project_property.pp" => {
            let project = named("projects", "plinth")?;
            let pid = project["id"].to_string();
            o["properties"][&pid].get("region").map(|_| format!("{pid}:region"))
        }
        other => panic!("unexpected address {other}"),
    }
}

/// Killed at every write-ahead point of a first apply (after the k-th
/// intent is durable, after the k-th provider answer, after the k-th
/// result is durable), the next runs converge without a second object: an
/// interrupted update or delete is read back; an interrupted create, which
/// a Terraform provider cannot find without the id it never returned,
/// stops with P6901 naming the address, and is settled as its help says —
/// `plinth import` when the object exists, `plinth state rm` when not.
#[test]
fn a_kill_at_any_write_ahead_point_never_makes_a_second_object() {
    let Some(mirror) = mirror() else { return };
    let mirror_arg = mirror.display().to_string();
    let mut p6901 = 0;
    for point in ["intent", "call", "complete"] {
        for k in 1..=5 {
            let api = Api::start();
            let dir = project(&[("main.plinth", PLINTH_CONFIG)]);
            assert_exit(&plinth(dir.path(), &api, &["init", "--provider-mirror", &mirror_arg]), 0);
            let fault = format!("{point}:{k}");
            let var = format!("base_url={}", api.url);
            let killed = crate::plinth()
                .args(["apply", "--auto-approve", "--parallelism", "1", "--var", &var])
                .current_dir(dir.path())
                .env("SSL_CERT_FILE", &api.cert)
                .env("PLINTH_FAULT", &fault)
                .output()
                .unwrap();
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(killed.status.signal(), Some(9), "{fault}: {}", stderr(&killed));
            // Settle, as the diagnostics say, until an apply succeeds.
            let mut settled = false;
            for _ in 0..6 {
                let o = plinth(dir.path(), &api, &["apply", "--auto-approve", "--parallelism", "1"]);
                if o.status.success() {
                    settled = true;
                    break;
                }
                let err = stderr(&o);
                assert!(err.contains("P6901"), "{fault}: only an unfinished create may stop a run: {err}");
                p6901 += 1;
                let address = err.split('`').nth(1).unwrap_or_else(|| panic!("{fault}: no address in {err}")).to_string();
                let flat = err.split_whitespace().collect::<Vec<_>>().join(" ");
                assert!(flat.contains(&format!("plinth import '{address}'")) && flat.contains(&format!("plinth state rm '{address}'")), "{err}");
                let o = match remote_id(&api, &address) {
                    Some(id) => plinth(dir.path(), &api, &["import", &address, &id]),
                    None => plinth(dir.path(), &api, &["state", "rm", &address]),
                };
                assert_exit(&o, 0);
            }
            assert!(settled, "{fault}: never converged");
            assert_exit(&plinth(dir.path(), &api, &["plan", "--detailed-exitcode"]), 0);
            let o = api.objects();
            let count = |kind: &str, name: &str| o[kind].as_array().map(|a| a.iter().filter(|x| x["name"] == name).count()).unwrap_or(0);
            assert_eq!(
                (count("projects", "plinth"), count("folders", "tables"), count("data_tables", "people"), count("data_tables", "teams")),
                (1, 1, 1, 1),
                "{fault}: exactly one of each: {o}"
            );
            let listed = stdout(&run(dir.path(), &["state", "list"]));
            assert_eq!(listed.lines().count(), 5, "{fault}: {listed}");
        }
    }
    assert!(p6901 > 0, "some kill left a create that only import or state rm could settle");
}

/// examples/terraform-providers, installed from the mirror and applied
/// against the API double: nested blocks generated from a collection, a
/// sensitive provider setting, then no changes.
#[test]
fn the_terraform_providers_example_applies_and_converges() {
    let Some(mirror) = mirror() else { return };
    let api = Api::start();
    let tmp = tempfile::tempdir().unwrap();
    crate::copy_tree(&crate::repo_root().join("examples/terraform-providers"), tmp.path());
    let mirror_arg = mirror.display().to_string();
    assert_exit(&plinth(tmp.path(), &api, &["init", "--provider-mirror", &mirror_arg]), 0);
    let o = plinth(tmp.path(), &api, &["apply", "--auto-approve"]);
    assert_exit(&o, 0);
    assert!(!stdout(&o).contains("test-api-key") && !stderr(&o).contains("test-api-key"), "{}", stdout(&o));
    let tables = api.objects()["data_tables"].clone();
    let people = tables.as_array().unwrap().iter().find(|t| t["name"] == "people").expect("people table");
    let columns: Vec<&str> = people["schema"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(columns, ["email", "name", "created"]);
    assert_exit(&plinth(tmp.path(), &api, &["plan", "--detailed-exitcode"]), 0);
    let outputs = stdout(&run(tmp.path(), &["output", "--json"]));
    assert!(outputs.contains("people") && outputs.contains("teams"), "{outputs}");
    // The key the provider block was given never reaches state in clear.
    let db = std::fs::read(tmp.path().join(".plinth/state.db")).unwrap();
    assert!(!db.windows(b"test-api-key".len()).any(|w| w == b"test-api-key"), "the API key is not in the state");
}

/// tests/fixtures/workato/terraform/update.tf in Plinth's language: renames,
/// a new description, a changed column hint and one column more, a new
/// property value; nothing forces replacement.
fn updated_config() -> String {
    PLINTH_CONFIG
        .replace("name        = \"plinth\"", "name        = \"plinth-2\"")
        .replace("param description: string = \"made by the round trip\"", "param description: string = \"updated by the round trip\"")
        .replace("name      = \"tables\"", "name      = \"tables-2\"")
        .replace("name      = \"people\"", "name      = \"persons\"")
        .replace(
            "hint     = \"in years\"\n  }",
            "hint     = \"in whole years\"\n  }\n  column {\n    name       = \"tags\"\n    type       = \"string\"\n    multivalue = true\n  }",
        )
        .replace("param region: string = \"eu\"", "param region: string = \"us\"")
}

/// The same update and then destroy, by Plinth and by terraform on twin
/// servers: the same remote objects and recorded values after each.
#[test]
fn updates_and_destroys_leave_what_terraform_leaves() {
    let Some(mirror) = mirror() else { return };
    let (ours, theirs) = (Api::start(), Api::start());
    let dir = project(&[("main.plinth", PLINTH_CONFIG)]);
    let tf = terraform_dir(&mirror);
    let mirror_arg = mirror.display().to_string();
    let tf_var = format!("base_url={}", theirs.url);
    assert_exit(&plinth(dir.path(), &ours, &["init", "--provider-mirror", &mirror_arg]), 0);
    assert_exit(&plinth(dir.path(), &ours, &["apply", "--auto-approve", "--parallelism", "1"]), 0);
    let o = terraform(tf.path(), &theirs, &["init", "-input=false"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = terraform(tf.path(), &theirs, &["apply", "-auto-approve", "-input=false", "-parallelism=1", "-var", &tf_var]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    std::fs::write(dir.path().join("main.plinth"), updated_config()).unwrap();
    let o = plinth(dir.path(), &ours, &["apply", "--auto-approve", "--parallelism", "1"]);
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("0 replaced"), "{}", stdout(&o));
    std::fs::copy(crate::repo_root().join("tests/fixtures/workato/terraform/update.tf"), tf.path().join("main.tf")).unwrap();
    let o = terraform(tf.path(), &theirs, &["apply", "-auto-approve", "-input=false", "-parallelism=1", "-var", &tf_var]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(normalised(&ours.objects()), normalised(&theirs.objects()), "the same remote objects after the update");
    let (mine, reference) = (plinth_values(dir.path(), &ours), terraform_values(tf.path(), &theirs));
    assert_eq!(normalised(&serde_json::json!(mine)), normalised(&serde_json::json!(reference)), "the same recorded values after the update");
    assert_exit(&plinth(dir.path(), &ours, &["plan", "--detailed-exitcode"]), 0);

    assert_exit(&plinth(dir.path(), &ours, &["destroy", "--auto-approve"]), 0);
    let o = terraform(tf.path(), &theirs, &["destroy", "-auto-approve", "-input=false", "-var", &tf_var]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(normalised(&ours.objects()), normalised(&theirs.objects()), "the same remote objects after destroy");
    assert_eq!(stdout(&run(dir.path(), &["state", "list"])).trim(), "");
}

/// An object recorded under an older schema version of its type is given
/// to the provider's UpgradeResourceState before anything else: the real
/// aws provider (protocol 5) against moto's EC2, a security group (schema
/// version 1) whose record is set back to version 0, as an older provider
/// would have written it. The provider's own log shows the call (and none
/// before the record was changed); the plan, reading the upgraded object
/// back, has no changes.
#[test]
fn an_object_recorded_under_an_older_schema_version_is_upgraded_first() {
    let Some(aws) = crate::test_server("PLINTH_TEST_TF_AWS_MIRROR", "the aws provider mirror") else { return };
    let Some(endpoint) = crate::test_server("PLINTH_TEST_S3_ENDPOINT", "the moto server") else { return };
    let name = format!("plinth-upgrade-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let config = format!(
        r#"provider aws {{
  source                      = "hashicorp/aws"
  version                     = "5.100.0"
  region                      = "us-east-1"
  access_key                  = "test"
  secret_key                  = "test"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  endpoints {{
    ec2 = "{endpoint}"
  }}
}}

resource aws.security_group web {{
  name        = "{name}"
  description = "made by the upgrade test"
}}
"#
    );
    let dir = project(&[("main.plinth", &config)]);
    assert_exit(&run(dir.path(), &["init", "--provider-mirror", &aws]), 0);
    assert_exit(&run(dir.path(), &["apply", "--auto-approve"]), 0);
    let logged = |dir: &Path| std::fs::read_to_string(dir.join(".plinth/logs/provider-aws.log")).unwrap_or_default();
    let plan =
        |dir: &Path| crate::plinth().args(["plan", "--refresh", "--detailed-exitcode"]).env("PLINTH_PROVIDER_LOG", "debug").current_dir(dir).output().unwrap();
    assert_exit(&plan(dir.path()), 0);
    assert!(!logged(dir.path()).contains("UpgradeResourceState"), "no upgrade while the versions agree");

    let db = rusqlite::Connection::open(dir.path().join(".plinth/state.db")).unwrap();
    let attrs: String = db.query_row("SELECT attrs FROM instances WHERE address = 'aws.security_group.web'", [], |r| r.get(0)).unwrap();
    let mut attrs: Json = serde_json::from_str(&attrs).unwrap();
    assert_eq!(attrs["@tf"]["schema_version"], Json::from(1), "{attrs}");
    attrs["@tf"]["schema_version"] = Json::from(0);
    db.execute("UPDATE instances SET attrs = ?1 WHERE address = 'aws.security_group.web'", [attrs.to_string()]).unwrap();
    drop(db);

    assert_exit(&plan(dir.path()), 0);
    assert!(logged(dir.path()).contains("UpgradeResourceState"), "the provider was asked to upgrade the record");
    assert_exit(&run(dir.path(), &["destroy", "--auto-approve"]), 0);
}
