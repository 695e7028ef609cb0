//! The plugin client against real provider binaries (scripts/services/
//! tfproviders.sh): terraform-provider-workato 0.16.0 (protocol 6, the
//! plugin framework) and, where the machine has it, terraform-provider-aws
//! 5.100.0 (protocol 5, the SDK). No API is called here: handshake, mutual
//! TLS, schema, configuration, validation and planning.

use plinth_base::value::{Map, Value};
use plinth_tfplugin::plugin::{Launch, Plugin};
use std::path::PathBuf;

fn env_dir(var: &str) -> Option<PathBuf> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(PathBuf::from(v)),
        _ if std::env::var_os("CI").is_some() => panic!("{var} is not set: scripts/test sets it (scripts/services/tfproviders.sh)"),
        _ => {
            eprintln!("note: {var} is not set; skipping (scripts/test sets it)");
            None
        }
    }
}

fn workato() -> Option<PathBuf> {
    Some(env_dir("PLINTH_TEST_TF_MIRROR")?.join("registry.terraform.io/workato-devs/workato/0.16.0/linux_amd64/terraform-provider-workato_v0.16.0"))
}

fn launch(binary: PathBuf, secrets: Vec<String>) -> Launch {
    Launch { name: "workato".into(), binary, env: vec![], log: None, secrets, cwd: None }
}

fn obj(pairs: &[(&str, Value)]) -> Value {
    Value::Map(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect::<Map>())
}

#[test]
fn a_protocol_6_provider_starts_over_mutual_tls_and_gives_its_schema() {
    let Some(bin) = workato() else { return };
    let plugin = Plugin::start(launch(bin, vec![])).unwrap();
    assert_eq!(plugin.protocol, 6);
    let schemas = plinth_tfplugin::plugin::block_on({
        let p = std::sync::Arc::new(plugin);
        let q = p.clone();
        async move { (q.schema().await, p) }
    });
    let (schemas, plugin) = schemas;
    let schemas = schemas.unwrap();
    assert!(schemas.resources.contains_key("workato_folder"), "{:?}", schemas.resources.keys().collect::<Vec<_>>());
    let api_key = schemas.provider.block.attributes.iter().find(|a| a.name == "api_key").unwrap();
    assert!(api_key.sensitive && api_key.required);
    assert!(plugin.alive());
    plugin.stop();
    assert!(!plugin.alive(), "stopped plugins exit");
}

#[test]
fn configuration_errors_come_back_as_coded_diagnostics_without_the_secret() {
    let Some(bin) = workato() else { return };
    let secret = "wrk-secret-api-key-123".to_string();
    let plugin = std::sync::Arc::new(Plugin::start(launch(bin, vec![secret.clone()])).unwrap());
    let p = plugin.clone();
    let result = plinth_tfplugin::plugin::block_on(async move {
        let schemas = p.schema().await.unwrap();
        let ty = schemas.provider.block.cty().unwrap();
        // A base URL that is not a URL, and a timeout of the wrong sign.
        let config = obj(&[("api_key", Value::String(secret.clone())), ("base_url", Value::String("not a url".into())), ("timeout_seconds", Value::Int(-5))]);
        p.configure(&config, &ty).await
    });
    match result {
        Ok(()) => eprintln!("note: the provider accepted the configuration"),
        Err(d) => {
            assert!(d.code.starts_with("P70"), "{d:?}");
            let shown = format!("{} {}", d.message, d.help);
            assert!(!shown.contains("wrk-secret-api-key-123"), "{shown}");
        }
    }
}

#[test]
fn a_protocol_5_sdk_provider_starts_and_gives_its_schema() {
    let Some(mirror) = env_dir("PLINTH_TEST_TF_AWS_MIRROR") else { return };
    let bin = mirror.join("registry.terraform.io/hashicorp/aws/5.100.0/linux_amd64/terraform-provider-aws_v5.100.0_x5");
    let plugin = std::sync::Arc::new(Plugin::start(Launch { name: "aws".into(), binary: bin, env: vec![], log: None, secrets: vec![], cwd: None }).unwrap());
    assert_eq!(plugin.protocol, 5);
    let p = plugin.clone();
    let schemas = plinth_tfplugin::plugin::block_on(async move { p.schema().await }).unwrap();
    let bucket = &schemas.resources["aws_s3_bucket"];
    assert!(bucket.block.attributes.iter().any(|a| a.name == "bucket"));
    assert!(bucket.block.cty().is_ok());
    assert!(schemas.resources.len() > 1000);
}

#[test]
fn a_binary_that_is_not_a_provider_is_refused_with_what_it_said() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("terraform-provider-fake");
    std::fs::write(&bin, "#!/bin/sh\necho 'I am not a plugin' >&2\nexit 3\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = Plugin::start(launch(bin.clone(), vec![])).err().expect("refused");
    assert_eq!(err.code, "P7001");
    assert!(err.help.contains("I am not a plugin"), "{}", err.help);
    std::fs::write(&bin, "#!/bin/sh\necho '1|4|unix|/tmp/x|netrpc|'\nsleep 5\n").unwrap();
    let err = Plugin::start(launch(bin, vec![])).err().expect("refused");
    assert!(err.help.contains("protocol 4"), "{}", err.help);
}

#[test]
fn what_a_provider_writes_to_stderr_is_logged_and_quoted_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("terraform-provider-leaky");
    std::fs::write(&bin, "#!/bin/sh\necho \"connecting with token s3cr3t-t0ken-value\" >&2\nexit 1\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = dir.path().join("logs/provider-leaky.log");
    let err =
        Plugin::start(Launch { name: "leaky".into(), binary: bin, env: vec![], log: Some(log.clone()), secrets: vec!["s3cr3t-t0ken-value".into()], cwd: None })
            .err()
            .expect("refused");
    assert!(err.help.contains("connecting with token (sensitive)"), "{}", err.help);
    assert!(!err.help.contains("s3cr3t"), "{}", err.help);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("connecting with token (sensitive)") && !logged.contains("s3cr3t"), "{logged}");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&log).unwrap().mode() & 0o777, 0o600);
}
