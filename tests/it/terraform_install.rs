//! Terraform provider installation (`plinth init` with provider blocks that
//! name a `source`), against the real provider binary that
//! scripts/services/tfproviders.sh unpacks (workato 0.16.0):
//!
//! - from its filesystem mirrors (PLINTH_TEST_TF_MIRROR, unpacked;
//!   PLINTH_TEST_TF_PACKED, packed), comparing the `h1:` Plinth locks with
//!   the one `terraform providers lock` writes for the same mirror
//!   (terraform, on PATH here and in CI, is the oracle);
//! - from a provider registry written here: the documented protocol over
//!   TLS (a CA made with openssl for the test, trusted through
//!   PLINTH_PROVIDER_REGISTRY_CA, or SSL_CERT_FILE), serving the real release zip with a
//!   SHA256SUMS signed by a key made with gpg in a temporary GNUPGHOME; and
//!   its failures: a wrong shasum, a bad signature, a redirect to http, no
//!   version matching the constraint, a malformed answer;
//! - and `tfregistry::locate` refusing a binary edited after `init`.

use crate::*;
use plinth::tfregistry::{self, codes, LockedProvider, ProviderAddr};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

const ZIP: &str = "terraform-provider-workato_0.16.0_linux_amd64.zip";
const PACKAGE: &str = "registry.terraform.io/workato-devs/workato";

fn mirror() -> Option<PathBuf> {
    test_server("PLINTH_TEST_TF_MIRROR", "the Terraform provider mirror (scripts/services/tfproviders.sh)").map(PathBuf::from)
}

fn packed() -> Option<PathBuf> {
    test_server("PLINTH_TEST_TF_PACKED", "the packed Terraform provider mirror (scripts/services/tfproviders.sh)").map(PathBuf::from)
}

fn tool(name: &str) -> bool {
    let ok = Command::new(name).arg("version").output().is_ok_and(|o| o.status.success())
        || Command::new(name).arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "{name} is not installed: scripts/services/tfproviders.sh installs it");
        eprintln!("note: {name} is not installed; skipping");
    }
    ok
}

/// A project whose one provider block names `source` and `version`.
fn project_with(source: &str, version: &str) -> tempfile::TempDir {
    project(&[(
        "main.plinth",
        &format!("provider workato {{\n  source  = \"{source}\"\n  version = \"{version}\"\n  base_url = \"https://example.test\"\n}}\n"),
    )])
}

fn lock_of(dir: &Path) -> LockedProvider {
    let text = std::fs::read_to_string(dir.join("plinth.lock")).expect("plinth.lock");
    let lock: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(lock["providers"].as_array().map(Vec::len), Some(1), "{text}");
    serde_json::from_value(lock["providers"][0].clone()).unwrap()
}

fn h1(lock: &LockedProvider) -> Vec<&str> {
    lock.hashes.iter().filter(|h| h.starts_with("h1:")).map(String::as_str).collect()
}

/// The hashes `terraform providers lock` writes for `source` (with the
/// extra arguments and environment given), sorted.
fn terraform_lock(source: &str, args: &[&str], env: &[(&str, &Path)]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("main.tf"),
        format!("terraform {{\n  required_providers {{\n    workato = {{\n      source  = \"{source}\"\n      version = \"~> 0.16\"\n    }}\n  }}\n}}\n"),
    )
    .unwrap();
    let mut c = Command::new("terraform");
    c.current_dir(dir.path()).env("TF_CLI_CONFIG_FILE", "/dev/null").env("CHECKPOINT_DISABLE", "1").env("TF_IN_AUTOMATION", "1");
    c.args(["providers", "lock", "-platform=linux_amd64"]).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("run terraform");
    assert!(out.status.success(), "terraform providers lock failed:\n{}\n{}", stdout(&out), stderr(&out));
    let text = std::fs::read_to_string(dir.path().join(".terraform.lock.hcl")).unwrap();
    let mut hashes: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("\"h1:") || l.starts_with("\"zh:"))
        .map(|l| l.trim_end_matches(',').trim_matches('"').to_string())
        .collect();
    hashes.sort();
    assert!(!hashes.is_empty(), "{text}");
    hashes
}

#[test]
fn init_from_the_unpacked_mirror_locks_the_h1_terraform_locks() {
    let Some(mirror) = mirror() else { return };
    let p = project_with("workato-devs/workato", "~> 0.16");
    let o = plinth().args(["init", "--provider-mirror"]).arg(&mirror).arg(p.path()).output().unwrap();
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("registry.terraform.io/workato-devs/workato ~> 0.16 → 0.16.0 (from the mirror"), "{}", stdout(&o));
    let lock = lock_of(p.path());
    assert_eq!((lock.source.as_str(), lock.version.as_str(), lock.constraints.as_str()), (PACKAGE, "0.16.0", "~> 0.16"));
    assert_eq!(lock.hashes.len(), 1, "an unpacked mirror gives no archive hash: {:?}", lock.hashes);
    let binary = p.path().join(".plinth/providers/registry.terraform.io/workato-devs/workato/0.16.0/linux_amd64/terraform-provider-workato_v0.16.0");
    assert!(stdout(&o).contains(&lock.hashes[0]), "init prints the hashes");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&binary).unwrap().permissions().mode() & 0o111, 0o111, "the provider binary is executable");
    }
    if tool("terraform") {
        let want = terraform_lock("workato-devs/workato", &[&format!("-fs-mirror={}", mirror.display())], &[]);
        assert_eq!(lock.hashes, want, "Plinth's lock and terraform's differ");
    }
}

#[test]
fn init_from_the_packed_mirror_locks_terraforms_h1_and_the_archives_zh() {
    let Some(packed) = packed() else { return };
    let p = project_with("workato-devs/workato", ">= 0.10, < 1.0");
    // The mirror from the environment variable this time.
    let o = plinth().arg("init").env("PLINTH_PROVIDER_MIRROR", &packed).arg(p.path()).output().unwrap();
    assert_exit(&o, 0);
    let lock = lock_of(p.path());
    let zip = std::fs::read(packed.join("registry.terraform.io/workato-devs/workato").join(ZIP)).unwrap();
    let zh = format!("zh:{}", hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&zip)));
    assert!(lock.hashes.contains(&zh), "{:?} lacks {zh}", lock.hashes);
    assert_eq!(lock.hashes.len(), 2);
    if tool("terraform") {
        // Terraform records only the h1: for a mirror; it must be Plinth's.
        let want = terraform_lock("workato-devs/workato", &[&format!("-fs-mirror={}", packed.display())], &[]);
        assert_eq!(h1(&lock), want.iter().map(String::as_str).collect::<Vec<_>>());
    }
    // Both layouts give one h1.
    if let Some(mirror) = mirror() {
        let q = project_with("workato-devs/workato", "0.16.0");
        assert_exit(&plinth().args(["init", "--provider-mirror"]).arg(&mirror).arg(q.path()).output().unwrap(), 0);
        assert_eq!(h1(&lock_of(q.path())), h1(&lock));
    }
}

#[test]
fn a_binary_changed_after_init_is_refused_by_locate() {
    let Some(packed) = packed() else { return };
    let p = project_with("workato-devs/workato", "~> 0.16");
    assert_exit(&plinth().args(["init", "--provider-mirror"]).arg(&packed).arg(p.path()).output().unwrap(), 0);
    let lock = lock_of(p.path());
    let addr = ProviderAddr::parse("workato-devs/workato").unwrap();
    let found = tfregistry::locate(p.path(), &addr, &lock).expect("the installed provider");
    assert!(found.binary.ends_with("terraform-provider-workato_v0.16.0"));
    assert_eq!(found.version.to_string(), "0.16.0");
    // One changed byte.
    let mut bytes = std::fs::read(&found.binary).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&found.binary, &bytes).unwrap();
    let e = tfregistry::locate(p.path(), &addr, &lock).unwrap_err();
    assert_eq!(e.code, codes::LOCK_MISMATCH, "{e:?}");
    assert!(e.help.contains("plinth init"), "{}", e.help);
    // A file planted beside it also changes the package.
    assert_exit(&plinth().args(["init", "--provider-mirror"]).arg(&packed).arg(p.path()).output().unwrap(), 0);
    assert!(tfregistry::locate(p.path(), &addr, &lock).is_ok(), "init put the locked package back");
    std::fs::write(found.dir.join("extra"), b"x").unwrap();
    assert_eq!(tfregistry::locate(p.path(), &addr, &lock).unwrap_err().code, codes::LOCK_MISMATCH);
    // Gone entirely.
    std::fs::remove_dir_all(p.path().join(".plinth/providers")).unwrap();
    assert_eq!(tfregistry::locate(p.path(), &addr, &lock).unwrap_err().code, codes::NOT_INSTALLED);
}

#[test]
fn provider_blocks_are_checked_before_anything_is_installed() {
    let cases = [
        ("provider a {\n  source = \"workato-devs/${\"x\"}\"\n}\n", codes::NOT_LITERAL),
        ("provider a {\n  source = \"workato-devs/workato\"\n  version = 1\n}\n", codes::NOT_LITERAL),
        ("provider a {\n  source = \"a/b/c/d\"\n}\n", codes::INVALID_SOURCE),
        ("provider a {\n  source = \"workato-devs/workato\"\n  version = \"=> 1.0\"\n}\n", codes::INVALID_CONSTRAINT),
        (
            "provider a {\n  source = \"workato-devs/workato\"\n  version = \"~> 0.16\"\n}\nprovider b {\n  source = \"workato-devs/workato\"\n  version = \"~> 0.15\"\n}\n",
            codes::CONFLICT,
        ),
        ("provider a {\n  source = \"x/one\"\n}\nprovider a second {\n  source = \"x/two\"\n}\n", codes::CONFLICT),
    ];
    for (text, code) in cases {
        let p = project(&[("main.plinth", text)]);
        let o = plinth().args(["init", "--json", "--provider-mirror", "/nonexistent"]).arg(p.path()).output().unwrap();
        assert_exit(&o, 1);
        let out: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)));
        let d = &out["diagnostics"][0];
        assert_eq!(d["code"], code, "{text}\n{out}");
        assert!(d["labels"][0]["line"].as_u64().is_some(), "a span: {out}");
        assert!(!d["help"].as_str().unwrap_or("").is_empty());
        assert!(!p.path().join("plinth.lock").exists() && !p.path().join(".plinth/providers").exists());
    }
    // Blocks without `source` are built-in providers: nothing to install;
    // an alias that repeats the source without a version joins the first.
    let p = project(&[("main.plinth", "provider random {\n}\n")]);
    let o = plinth().arg("init").arg(p.path()).output().unwrap();
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("0 providers"), "{}", stdout(&o));
    assert!(!p.path().join("plinth.lock").exists());
    if let Some(packed) = packed() {
        let p = project(&[(
            "main.plinth",
            "provider w {\n  source = \"workato-devs/workato\"\n  version = \"~> 0.16\"\n}\nprovider w eu {\n  source = \"WORKATO-DEVS/workato\"\n}\n",
        )]);
        assert_exit(&plinth().args(["init", "--provider-mirror"]).arg(&packed).arg(p.path()).output().unwrap(), 0);
        assert_eq!(lock_of(p.path()).constraints, "~> 0.16");
    }
}

// --- a provider registry ------------------------------------------------------

/// What the test registry gets wrong, if anything.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Fault {
    None,
    WrongShasum,
    /// SHA256SUMS is signed by a key the registry does not list.
    ForeignSignature,
    /// The download URL redirects to plain http.
    RedirectToHttp,
    /// The download document is not JSON.
    MalformedJson,
}

/// A provider registry on 127.0.0.1 speaking TLS with a certificate from a
/// CA made for the test, serving workato 0.16.0 (and listing 0.15.0, which
/// it has no package of).
struct Registry {
    port: u16,
    ca: PathBuf,
    _dir: tempfile::TempDir,
    /// The SHA256SUMS it serves.
    sums: String,
}

fn sh(dir: &Path, program: &str, args: &[&str], env: &[(&str, &Path)], input: Option<&[u8]>) -> Vec<u8> {
    let mut c = Command::new(program);
    c.current_dir(dir).args(args).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap_or_else(|e| panic!("{program}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    if let Some(i) = input {
        stdin.write_all(i).unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// A signing key in its own GNUPGHOME: (home, armored public key).
fn gpg_key(dir: &Path, name: &str) -> (PathBuf, String) {
    let home = dir.join(name);
    std::fs::create_dir(&home).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let env = [("GNUPGHOME", home.as_path())];
    let batch = ["--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", ""];
    let uid = format!("{name} <{name}@example.test>");
    sh(dir, "gpg", &[&batch[..], &["--quick-gen-key", &uid, "rsa2048", "sign", "never"]].concat(), &env, None);
    let armored = String::from_utf8(sh(dir, "gpg", &["--batch", "--armor", "--export"], &env, None)).unwrap();
    (home, armored)
}

fn tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (ca, ca_key, key, csr, cert, ext) = ("ca.pem", "ca.key", "server.key", "server.csr", "server.pem", "server.ext");
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    sh(
        dir,
        "openssl",
        &[&["req", "-x509"][..], &ec, &["-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=Plinth test registry CA"]].concat(),
        &[],
        None,
    );
    sh(dir, "openssl", &[&["req"][..], &ec, &["-keyout", key, "-out", csr, "-subj", "/CN=localhost"]].concat(), &[], None);
    std::fs::write(
        dir.join(ext),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    sh(dir, "openssl", &["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext], &[], None);
    (dir.join(ca), dir.join(cert), dir.join(key))
}

impl Registry {
    fn start(fault: Fault) -> Option<Registry> {
        let packed = packed()?;
        if !tool("gpg") || !tool("gpgv") || !tool("openssl") {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let zip = std::fs::read(packed.join("registry.terraform.io/workato-devs/workato").join(ZIP)).unwrap();
        let sha = |b: &[u8]| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b));
        // As a real release: every platform's archive and the manifest.
        let sums = format!(
            "{}  terraform-provider-workato_0.16.0_darwin_arm64.zip\n{}  {ZIP}\n{}  terraform-provider-workato_0.16.0_manifest.json\n",
            sha(b"darwin"),
            sha(&zip),
            sha(b"{\"version\":1}")
        );
        let (home, key) = gpg_key(dir.path(), "registry");
        let signer = if fault == Fault::ForeignSignature { gpg_key(dir.path(), "intruder").0 } else { home };
        let sig = sh(dir.path(), "gpg", &["--batch", "--detach-sign", "--output", "-"], &[("GNUPGHOME", signer.as_path())], Some(sums.as_bytes()));
        let (ca, cert, key_file) = tls_files(dir.path());

        use rustls::pki_types::pem::PemObject;
        let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(&cert).unwrap().map(Result::unwrap).collect();
        let private = rustls::pki_types::PrivateKeyDer::from_pem_file(&key_file).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, private)
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shasum = if fault == Fault::WrongShasum { sha(b"something else") } else { sha(&zip) };
        let download = if fault == Fault::MalformedJson {
            "{\"filename\": ".to_string()
        } else {
            serde_json::json!({
                "protocols": ["6.0"], "os": "linux", "arch": "amd64", "filename": ZIP,
                // Relative, absolute and relative-to-the-host URLs, as registries serve them.
                "download_url": if fault == Fault::RedirectToHttp { "/redirect".to_string() } else { format!("/files/{ZIP}") },
                "shasums_url": format!("https://localhost:{port}/files/SHA256SUMS"),
                "shasums_signature_url": "../../../../../../../files/SHA256SUMS.sig",
                "shasum": shasum,
                "signing_keys": { "gpg_public_keys": [ { "key_id": "0000", "ascii_armor": key } ] },
            })
            .to_string()
        };
        let versions = serde_json::json!({"versions": [
            {"version": "0.16.0", "protocols": ["6.0"], "platforms": [{"os": "linux", "arch": "amd64"}, {"os": "darwin", "arch": "arm64"}]},
            {"version": "0.15.0", "protocols": ["6.0"], "platforms": [{"os": "darwin", "arch": "arm64"}]},
        ]})
        .to_string();
        let sums_bytes = sums.clone().into_bytes();
        let routes = Arc::new(move |path: &str| -> (u16, Vec<u8>, Option<String>) {
            match path {
                "/.well-known/terraform.json" => (200, br#"{"providers.v1": "/v1/providers/"}"#.to_vec(), None),
                "/v1/providers/workato-devs/workato/versions" => (200, versions.clone().into_bytes(), None),
                "/v1/providers/workato-devs/workato/0.16.0/download/linux/amd64" => (200, download.clone().into_bytes(), None),
                "/redirect" => (302, Vec::new(), Some(format!("http://localhost:{port}/files/{ZIP}"))),
                "/files/SHA256SUMS" => (200, sums_bytes.clone(), None),
                "/files/SHA256SUMS.sig" => (200, sig.clone(), None),
                p if p == format!("/files/{ZIP}") => (200, zip.clone(), None),
                _ => (404, b"not found".to_vec(), None),
            }
        });
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (config, routes) = (config.clone(), routes.clone());
                std::thread::spawn(move || {
                    let Ok(conn) = rustls::ServerConnection::new(config) else { return };
                    let mut tls = rustls::StreamOwned::new(conn, stream);
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 65536 {
                        match tls.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&request);
                    let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let (status, body, location) = routes(&path);
                    let kind = if body.starts_with(b"{") { "application/json" } else { "application/octet-stream" };
                    let mut head = format!("HTTP/1.1 {status} X\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
                    if let Some(l) = location {
                        head.push_str(&format!("Location: {l}\r\n"));
                    }
                    head.push_str("\r\n");
                    let _ = tls.write_all(head.as_bytes()).and_then(|()| tls.write_all(&body)).and_then(|()| tls.flush());
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                });
            }
        });
        Some(Registry { port, ca, _dir: dir, sums })
    }

    fn source(&self) -> String {
        format!("localhost:{}/workato-devs/workato", self.port)
    }

    fn init(&self, project: &Path, extra: &[&str]) -> std::process::Output {
        plinth().arg("init").args(extra).arg(project).env("PLINTH_PROVIDER_REGISTRY_CA", &self.ca).env_remove("PLINTH_PROVIDER_MIRROR").output().unwrap()
    }
}

#[test]
fn init_from_a_registry_verifies_and_locks_what_terraform_locks() {
    let Some(reg) = Registry::start(Fault::None) else { return };
    let p = project_with(&reg.source(), "~> 0.16");
    let o = reg.init(p.path(), &[]);
    assert_exit(&o, 0);
    let lock = lock_of(p.path());
    assert_eq!((lock.source.as_str(), lock.version.as_str()), (format!("localhost:{}/workato-devs/workato", reg.port).as_str(), "0.16.0"));
    // The package's h1 and every zh of the signed SHA256SUMS, as Terraform records them.
    let mut want: Vec<String> = reg.sums.lines().map(|l| format!("zh:{}", &l[..64])).collect();
    let h1s = h1(&lock);
    assert_eq!(h1s.len(), 1);
    want.push(h1s[0].to_string());
    want.sort();
    assert_eq!(lock.hashes, want);
    let text = stdout(&o);
    assert!(text.contains(&format!("from https://localhost:{}/files/{ZIP}, signed by key", reg.port)), "{text}");
    // The same h1 as the mirror's, which terraform computes (another test).
    if let Some(mirror) = mirror() {
        let q = project_with("workato-devs/workato", "~> 0.16");
        assert_exit(&plinth().args(["init", "--provider-mirror"]).arg(&mirror).arg(q.path()).output().unwrap(), 0);
        assert_eq!(h1(&lock_of(q.path())), h1s);
    }
    // Terraform, given the same registry (its CA through SSL_CERT_FILE), locks the same hashes.
    if tool("terraform") {
        assert_eq!(terraform_lock(&reg.source(), &[], &[("SSL_CERT_FILE", reg.ca.as_path())]), lock.hashes);
    }
    // Without the CA the registry's certificate is not trusted.
    let q = project_with(&reg.source(), "~> 0.16");
    let o = plinth().arg("init").arg(q.path()).env_remove("PLINTH_PROVIDER_REGISTRY_CA").env_remove("SSL_CERT_FILE").output().unwrap();
    assert_exit(&o, 1);
    assert!(stderr(&o).contains(codes::REGISTRY), "{}", stderr(&o));
    // SSL_CERT_FILE (which replaces the system's certificates) works too.
    let o = plinth().arg("init").arg(q.path()).env_remove("PLINTH_PROVIDER_REGISTRY_CA").env("SSL_CERT_FILE", &reg.ca).output().unwrap();
    assert_exit(&o, 0);
    assert_eq!(lock_of(q.path()).hashes, lock.hashes);
    // A second init is offline: the installed package matches the lock.
    let o = plinth().arg("init").arg(p.path()).env("PLINTH_PROVIDER_REGISTRY_CA", "/nonexistent").output().unwrap();
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("already installed"), "{}", stdout(&o));
    let addr = ProviderAddr::parse(&reg.source()).unwrap();
    assert!(tfregistry::locate(p.path(), &addr, &lock).is_ok());
}

fn refused(fault: Fault, code: &str, says: &str) {
    let Some(reg) = Registry::start(fault) else { return };
    let p = project_with(&reg.source(), "~> 0.16");
    let o = reg.init(p.path(), &["--json"]);
    assert_exit(&o, 1);
    let out: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)));
    let d = &out["diagnostics"][0];
    assert_eq!(d["code"], code, "{fault:?}: {out}");
    assert!(d["help"].as_str().unwrap_or("").contains(says), "{fault:?}: {out}");
    assert!(!p.path().join("plinth.lock").exists(), "{fault:?} wrote a lock");
    let installed = p.path().join(".plinth/providers");
    let left: Vec<_> = std::fs::read_dir(&installed).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "{fault:?} left {left:?} in .plinth/providers");
}

#[test]
fn a_wrong_shasum_is_refused() {
    refused(Fault::WrongShasum, codes::CHECKSUM, "`shasum`");
}

#[test]
fn a_signature_by_a_key_the_registry_does_not_list_is_refused() {
    refused(Fault::ForeignSignature, codes::SIGNATURE, "not among the given keys");
}

#[test]
fn a_redirect_to_http_is_refused() {
    refused(Fault::RedirectToHttp, codes::REGISTRY, "not https");
}

#[test]
fn a_malformed_registry_answer_is_a_diagnostic() {
    refused(Fault::MalformedJson, codes::REGISTRY_ANSWER, "JSON");
}

#[test]
fn no_version_matching_the_constraint_lists_the_available_ones() {
    let Some(reg) = Registry::start(Fault::None) else { return };
    let p = project_with(&reg.source(), "~> 1.0");
    let o = reg.init(p.path(), &[]);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(err.contains(codes::NO_MATCH) && err.contains("0.16.0") && err.contains("\"~> 1.0\""), "{err}");
    assert!(err.contains("main.plinth"), "the diagnostic points at the provider block: {err}");
    // A version published for other platforms only.
    let p = project_with(&reg.source(), "0.15.0");
    let o = reg.init(p.path(), &[]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains(codes::NOT_AVAILABLE) && stderr(&o).contains("linux_amd64"), "{}", stderr(&o));
    // A provider the registry does not know.
    let p = project_with(&format!("localhost:{}/nobody/nothing", reg.port), "~> 1.0");
    let o = reg.init(p.path(), &[]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains(codes::NOT_AVAILABLE) && stderr(&o).contains("404"), "{}", stderr(&o));
}
