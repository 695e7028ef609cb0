//! The provider registry protocol (Terraform's `providers.v1`), over https
//! only:
//!
//! 1. service discovery: `GET https://HOST/.well-known/terraform.json` →
//!    `providers.v1`, the base URL (absolute, or relative to the document);
//! 2. `GET <base>NAMESPACE/TYPE/versions` → the versions and their
//!    platforms;
//! 3. `GET <base>NAMESPACE/TYPE/VERSION/download/OS/ARCH` → `filename`,
//!    `download_url`, `shasums_url`, `shasums_signature_url`, `shasum`,
//!    `signing_keys.gpg_public_keys[].ascii_armor` (URLs may be relative to
//!    this document).
//!
//! A package is accepted only when the zip's SHA-256 is `shasum`, the
//! `SHA256SUMS` document lists that same hash for `filename`, and the
//! detached signature of `SHA256SUMS` verifies with one of the given keys
//! (`plinth_clients::gpgv`). Its `zh:` hashes (every line of the signed
//! document, as Terraform records them) go to the lock.
//!
//! Every URL must be https, redirects included (at most 5); answers are
//! size-capped; a malformed answer is a diagnostic. Extra CA certificates
//! come from `Settings::registry_ca` (`PLINTH_PROVIDER_REGISTRY_CA`);
//! reqwest's platform verifier also honours `SSL_CERT_FILE`/`SSL_CERT_DIR`.

use crate::addr::{Platform, ProviderAddr};
use crate::hash::{self, FileDigest};
use crate::version::Version;
use crate::{codes, Fetched, Origin};
use plinth_base::diagnostic::Diagnostic;
use plinth_base::redact;
use reqwest::Url;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// Cap of a JSON document or `SHA256SUMS`.
const MAX_DOC: usize = 4 << 20;
/// Cap of a release archive.
const MAX_ARCHIVE: u64 = 2 << 30;
const MAX_REDIRECTS: usize = 5;

/// The client for one registry host.
pub(crate) struct Registry {
    http: reqwest::Client,
    host: String,
    /// `providers.v1`, ending in `/`.
    base: Option<Url>,
}

#[derive(Deserialize)]
struct VersionsDoc {
    #[serde(default)]
    versions: Vec<VersionEntry>,
}

#[derive(Deserialize)]
struct VersionEntry {
    version: String,
    #[serde(default)]
    platforms: Option<Vec<PlatformEntry>>,
}

#[derive(Deserialize)]
struct PlatformEntry {
    os: String,
    arch: String,
}

#[derive(Deserialize)]
struct DownloadDoc {
    #[serde(default)]
    protocols: Vec<String>,
    filename: String,
    download_url: String,
    shasums_url: String,
    shasums_signature_url: String,
    shasum: String,
    signing_keys: SigningKeys,
}

#[derive(Deserialize)]
struct SigningKeys {
    #[serde(default)]
    gpg_public_keys: Vec<GpgKey>,
}

#[derive(Deserialize)]
struct GpgKey {
    ascii_armor: String,
}

/// Versions a registry offers, with the platforms of each (`None`: the
/// registry did not say).
pub(crate) type Offered = Vec<(Version, Option<Vec<String>>)>;

fn unreachable(summary: &str, help: String) -> Diagnostic {
    Diagnostic::new(codes::REGISTRY, summary.to_string()).help(help)
}

fn invalid(url: &Url, why: &str) -> Diagnostic {
    Diagnostic::new(codes::REGISTRY_ANSWER, "invalid answer from the provider registry").help(format!(
        "{} answered something Plinth cannot use: {why}. Check that the host is a Terraform provider registry (or use `--provider-mirror`).",
        shown(url)
    ))
}

fn shown(url: &Url) -> String {
    redact::url(url.as_str())
}

/// A reqwest error with its causes (the TLS reason sits in a source).
fn chain(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(c) = cur {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    redact::text(&out)
}

impl Registry {
    pub(crate) fn new(host: &str, ca: Option<&Path>) -> Result<Registry, Diagnostic> {
        plinth_clients::tls::install_crypto_provider();
        let policy = reqwest::redirect::Policy::custom(|attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
            } else if attempt.url().scheme() != "https" {
                let to = redact::url(attempt.url().as_str());
                attempt.error(format!("a redirect to {to}, which is not https"))
            } else {
                attempt.follow()
            }
        });
        let mut builder = reqwest::Client::builder()
            .https_only(true)
            .redirect(policy)
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(120))
            .user_agent(concat!("plinth/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = ca {
            let bad = |why: String| {
                Diagnostic::new(codes::SETTINGS, "cannot use the registry CA file")
                    .help(format!("{}: {why}. PLINTH_PROVIDER_REGISTRY_CA (or --provider-registry-ca) names a PEM file of CA certificates.", ca.display()))
            };
            let pem = std::fs::read(ca).map_err(|e| bad(e.to_string()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(e.to_string()))?;
            if certs.is_empty() {
                return Err(bad("it holds no PEM certificate".into()));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder
            .build()
            .map_err(|e| unreachable("cannot set up the registry client", format!("{}. This is a bug in Plinth; please report it.", chain(&e))))?;
        Ok(Registry { http, host: host.to_string(), base: None })
    }

    /// GETs `url`: `Ok(None)` on 404, the body (at most `limit` bytes)
    /// on 200.
    async fn get(&self, url: &Url, limit: usize) -> Result<Option<Vec<u8>>, Diagnostic> {
        let resp = self.http.get(url.clone()).timeout(Duration::from_secs(120)).send().await.map_err(|e| {
            unreachable(
                "cannot reach the provider registry",
                format!("GET {}: {}. Check the network and the registry's TLS certificate (extra CA: PLINTH_PROVIDER_REGISTRY_CA), or install from a mirror with `--provider-mirror`.", shown(url), chain(&e)),
            )
        })?;
        match resp.status().as_u16() {
            200 => {}
            404 => return Ok(None),
            s => {
                let d = unreachable(
                    "the provider registry refused a request",
                    format!("GET {} answered HTTP {s}. Check the provider's `source`, or try again later.", shown(url)),
                );
                return Err(if s == 429 || s >= 500 { d.retryable() } else { d });
            }
        }
        let mut body = Vec::new();
        let mut resp = resp;
        while let Some(chunk) =
            resp.chunk().await.map_err(|e| unreachable("cannot reach the provider registry", format!("reading {}: {}", shown(url), chain(&e))))?
        {
            if body.len() + chunk.len() > limit {
                return Err(invalid(url, &format!("the answer is larger than {limit} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Some(body))
    }

    async fn json<T: serde::de::DeserializeOwned>(&self, url: &Url) -> Result<Option<T>, Diagnostic> {
        let Some(body) = self.get(url, MAX_DOC).await? else { return Ok(None) };
        serde_json::from_slice(&body).map(Some).map_err(|e| invalid(url, &format!("the JSON does not parse as expected ({e})")))
    }

    /// `providers.v1` of the host, from its discovery document.
    async fn base(&mut self) -> Result<Url, Diagnostic> {
        if let Some(b) = &self.base {
            return Ok(b.clone());
        }
        let doc_url = Url::parse(&format!("https://{}/.well-known/terraform.json", self.host))
            .map_err(|e| Diagnostic::new(codes::INVALID_SOURCE, "invalid provider source").help(format!("`{}` is not a usable hostname ({e}).", self.host)))?;
        let doc: serde_json::Value = self.json(&doc_url).await?.ok_or_else(|| {
            Diagnostic::new(codes::REGISTRY_ANSWER, "the host is not a provider registry").help(format!(
                "{} has no service discovery document ({} answered 404). Check the hostname of the provider's `source`.",
                self.host,
                shown(&doc_url)
            ))
        })?;
        let Some(v1) = doc.get("providers.v1").and_then(|v| v.as_str()) else {
            return Err(Diagnostic::new(codes::REGISTRY_ANSWER, "the host is not a provider registry").help(format!(
                "{}'s discovery document ({}) has no `providers.v1` string: it offers no provider registry. Check the hostname of the provider's `source`.",
                self.host,
                shown(&doc_url)
            )));
        };
        let mut base = doc_url.join(v1).map_err(|e| invalid(&doc_url, &format!("`providers.v1` is not a URL ({e})")))?;
        if base.scheme() != "https" {
            return Err(invalid(&doc_url, &format!("`providers.v1` is {}, which is not https", redact::url(base.as_str()))));
        }
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        self.base = Some(base.clone());
        Ok(base)
    }

    /// The versions the registry offers for `addr`.
    pub(crate) async fn versions(&mut self, addr: &ProviderAddr) -> Result<Offered, Diagnostic> {
        let base = self.base().await?;
        let url = base.join(&format!("{}/{}/versions", addr.namespace, addr.ptype)).map_err(|e| invalid(&base, &e.to_string()))?;
        let doc: VersionsDoc = self.json(&url).await?.ok_or_else(|| {
            Diagnostic::new(codes::NOT_AVAILABLE, "provider not found in the registry").help(format!(
                "{} does not know {addr} ({} answered 404). Check the provider's `source` (namespace and type).",
                self.host,
                shown(&url)
            ))
        })?;
        // A version that does not parse makes the whole answer invalid, as
        // in Terraform.
        let mut out = Vec::with_capacity(doc.versions.len());
        for v in doc.versions {
            let version = Version::parse(&v.version).map_err(|why| invalid(&url, &format!("it lists the version {why}")))?;
            out.push((version, v.platforms.map(|ps| ps.into_iter().map(|p| format!("{}_{}", p.os, p.arch)).collect())));
        }
        Ok(out)
    }

    /// Downloads, verifies and unpacks `version` for `platform` into the
    /// empty directory `dest`, using `scratch` for the archive and `gpgv`.
    pub(crate) async fn fetch(
        &mut self,
        addr: &ProviderAddr,
        version: &Version,
        platform: &Platform,
        dest: &Path,
        scratch: &Path,
    ) -> Result<Fetched, Diagnostic> {
        let base = self.base().await?;
        let url = base
            .join(&format!("{}/{}/{version}/download/{}/{}", addr.namespace, addr.ptype, platform.os, platform.arch))
            .map_err(|e| invalid(&base, &e.to_string()))?;
        let doc: DownloadDoc = self.json(&url).await?.ok_or_else(|| {
            Diagnostic::new(codes::NOT_AVAILABLE, "no package of the provider for this platform")
                .help(format!("{addr} {version} has no package for {platform} ({} answered 404). Choose a version published for {platform}.", shown(&url)))
        })?;
        if !doc.protocols.is_empty() && !doc.protocols.iter().any(|p| ["5", "6"].contains(&p.split('.').next().unwrap_or(""))) {
            return Err(Diagnostic::new(codes::PROTOCOL, "incompatible provider plugin protocol").help(format!(
                "{addr} {version} speaks plugin protocol {}; Plinth speaks versions 5 and 6. Choose another version of the provider.",
                doc.protocols.join(", ")
            )));
        }
        if doc.filename.is_empty() || doc.filename.contains(['/', '\\']) || doc.filename.starts_with('.') || !doc.filename.ends_with(".zip") {
            return Err(invalid(&url, &format!("the filename {:?} is not a plain `.zip` file name", doc.filename)));
        }
        let want = doc.shasum.to_ascii_lowercase();
        if want.len() != 64 || !want.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(&url, "`shasum` is not a SHA-256 in hex"));
        }
        let resolve = |field: &str, value: &str| -> Result<Url, Diagnostic> {
            let u = url.join(value).map_err(|e| invalid(&url, &format!("`{field}` is not a URL ({e})")))?;
            if u.scheme() != "https" {
                return Err(invalid(&url, &format!("`{field}` is {}, which is not https", redact::url(u.as_str()))));
            }
            Ok(u)
        };
        let (zip_url, sums_url, sig_url) = (
            resolve("download_url", &doc.download_url)?,
            resolve("shasums_url", &doc.shasums_url)?,
            resolve("shasums_signature_url", &doc.shasums_signature_url)?,
        );

        // The archive, hashed as it arrives.
        let archive = scratch.join("package.zip");
        let got = self.download(&zip_url, &archive).await?;
        if hex::encode(got) != want {
            return Err(Diagnostic::new(codes::CHECKSUM, "the provider archive does not match its checksum").help(format!(
                "{} has SHA-256 {}, but the registry says `shasum` is {want}. The download was altered or the registry is wrong; nothing was installed.",
                shown(&zip_url),
                hex::encode(got)
            )));
        }
        let missing = |what: &str, u: &Url| invalid(u, &format!("the {what} is missing (404)"));
        let sums = self.get(&sums_url, MAX_DOC).await?.ok_or_else(|| missing("SHA256SUMS document", &sums_url))?;
        let sig = self.get(&sig_url, MAX_DOC).await?.ok_or_else(|| missing("SHA256SUMS signature", &sig_url))?;
        let listed = sums_lines(&sums).ok_or_else(|| invalid(&sums_url, "it is not a SHA256SUMS document (`<sha256>  <file name>` lines)"))?;
        match listed.iter().find(|(_, name)| *name == doc.filename) {
            Some((h, _)) if *h == want => {}
            Some((h, _)) => {
                return Err(Diagnostic::new(codes::CHECKSUM, "the provider archive does not match SHA256SUMS").help(format!(
                    "SHA256SUMS lists {h} for {}, but the registry's `shasum` (and the archive) is {want}. Nothing was installed.",
                    doc.filename
                )))
            }
            None => {
                return Err(Diagnostic::new(codes::CHECKSUM, "the provider archive is not in SHA256SUMS").help(format!(
                    "{} does not list {}. Nothing was installed.",
                    shown(&sums_url),
                    doc.filename
                )))
            }
        }
        let keys: Vec<&str> = doc.signing_keys.gpg_public_keys.iter().map(|k| k.ascii_armor.as_str()).collect();
        let gpg_dir = scratch.join("gpgv");
        std::fs::create_dir(&gpg_dir).map_err(|e| crate::mirror::io_error("cannot write the provider directory", &gpg_dir, &e))?;
        let key = plinth_clients::gpgv::verify_detached(&keys, &sums, &sig, &gpg_dir).map_err(|e| match e {
            plinth_clients::gpgv::VerifyError::Unavailable(why) => Diagnostic::new(codes::GPGV, "cannot check the provider's signature").help(format!(
                "{why}. Plinth checks registry signatures with GnuPG's `gpgv` (Debian/Ubuntu: `apt-get install gpgv`), or install from a mirror with `--provider-mirror`."
            )),
            other => Diagnostic::new(codes::SIGNATURE, "the provider's signature does not verify").help(format!(
                "The signature {} of {}: {other}. The checksums may have been altered; nothing was installed.",
                shown(&sig_url),
                shown(&sums_url)
            )),
        })?;

        let data = std::fs::read(&archive).map_err(|e| crate::mirror::io_error("cannot read the downloaded archive", &archive, &e))?;
        let files = crate::zip::unpack(&data, dest, &addr.ptype).map_err(|why| crate::bad_archive(&why, &shown(&zip_url)))?;
        let h1 = hash::h1_of(files).map_err(|why| crate::bad_archive(&why, &shown(&zip_url)))?;
        let sha: FileDigest = got;
        Ok(Fetched {
            h1,
            archive_zh: Some(hash::zh(&sha)),
            signed_zh: listed.iter().map(|(h, _)| format!("zh:{h}")).collect(),
            origin: Origin::Registry { url: shown(&zip_url), key },
        })
    }

    /// Streams `url` into the new file `to`; its SHA-256.
    async fn download(&self, url: &Url, to: &Path) -> Result<FileDigest, Diagnostic> {
        let mut resp = self.http.get(url.clone()).send().await.map_err(|e| {
            unreachable(
                "cannot download the provider",
                format!("GET {}: {}. Check the network, or install from a mirror with `--provider-mirror`.", shown(url), chain(&e)),
            )
        })?;
        if resp.status().as_u16() != 200 {
            let s = resp.status().as_u16();
            let d = unreachable("cannot download the provider", format!("GET {} answered HTTP {s}.", shown(url)));
            return Err(if s == 429 || s >= 500 { d.retryable() } else { d });
        }
        let io = |e: std::io::Error| crate::mirror::io_error("cannot write the downloaded archive", to, &e);
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(to).map_err(io)?;
        let mut sha = Sha256::new();
        let mut total: u64 = 0;
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| unreachable("cannot download the provider", format!("reading {}: {}. Check the network and try again.", shown(url), chain(&e))))?
        {
            total += chunk.len() as u64;
            if total > MAX_ARCHIVE {
                return Err(invalid(url, &format!("the archive is larger than {} GiB", MAX_ARCHIVE >> 30)));
            }
            sha.update(&chunk);
            file.write_all(&chunk).map_err(io)?;
        }
        file.sync_all().map_err(io)?;
        Ok(sha.finalize().into())
    }
}

/// The `(sha256 hex, file name)` lines of a SHA256SUMS document (`<hex>
/// <name>` or `<hex> *<name>`), or None when it is not one.
fn sums_lines(doc: &[u8]) -> Option<Vec<(String, String)>> {
    let text = std::str::from_utf8(doc).ok()?;
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut parts = line.split_whitespace();
        let (h, name) = (parts.next()?, parts.next()?);
        if parts.next().is_some() || h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        out.push((h.to_ascii_lowercase(), name.trim_start_matches('*').to_string()));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256sums_documents_parse() {
        let a = "a".repeat(64);
        let doc = format!("{a}  terraform-provider-x_1.0.0_linux_amd64.zip\n{}  terraform-provider-x_1.0.0_manifest.json\n\n", "B".repeat(64));
        let lines = sums_lines(doc.as_bytes()).unwrap();
        assert_eq!(lines[0], (a.clone(), "terraform-provider-x_1.0.0_linux_amd64.zip".to_string()));
        assert_eq!(lines[1].0, "b".repeat(64));
        assert_eq!(sums_lines(format!("{a} *x.zip").as_bytes()).unwrap()[0].1, "x.zip");
        for bad in ["not sums", "abc  x.zip", a.as_str(), &format!("{a}  x  y")] {
            assert!(sums_lines(bad.as_bytes()).is_none(), "{bad}");
        }
        assert!(sums_lines(&[0xff, 0xfe]).is_none());
    }
}
