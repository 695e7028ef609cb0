//! Terraform/OpenTofu provider installation: a provider block's `source`
//! and `version` → a verified package in the project, pinned in
//! `plinth.lock` (`plinth init`), and found again offline by every later
//! command ([`locate`]).
//!
//! Input: a [`ProviderAddr`] (`hostname/namespace/type`), [`Constraints`]
//! (`~> 1.36`), the lock's entry if any, and [`Settings`] (a filesystem
//! mirror, or the provider registry of the source's hostname). Output: the
//! package unpacked in `.plinth/providers/HOST/NAMESPACE/TYPE/VERSION/OS_ARCH/`
//! and its [`LockedProvider`] entry (version, constraints as written,
//! hashes exactly as Terraform records them: [`hash`]).
//!
//! Invariants:
//! - Nothing is installed unverified: a registry package must match its
//!   `shasum`, the signed `SHA256SUMS` and a signature by one of the
//!   registry's keys ([`registry`]); a package of the version the lock pins
//!   must match one of the lock's hashes. Archives are unpacked by
//!   [`zip`], which refuses `..`, absolute paths, links and special files.
//! - A package is unpacked into a private staging directory under
//!   `.plinth/providers/` and renamed into place only once complete and
//!   verified: the install directory never holds a partial package.
//! - [`locate`] never touches the network: it hashes the installed package
//!   (`h1:`) on every call and refuses one whose hash the lock does not
//!   list, so a binary edited after `init` is never started.
//! - Registries are spoken to over https only (redirects included); the
//!   only extra trust is the CA file of [`Settings::registry_ca`].
//! - Every failure, whatever the input (malformed JSON, a damaged zip, a
//!   404, a redirect), is a [`Diagnostic`] with a `P71xx` code
//!   ([`codes`]) and a help sentence: never a panic.
//! - Depends only on `plinth-base` and `plinth-clients` (`gpgv`, TLS); it
//!   knows no syntax tree and no lock file format beyond [`LockedProvider`].

pub mod addr;
pub mod hash;
mod mirror;
mod registry;
pub mod version;
pub mod zip;

pub use addr::{Platform, ProviderAddr, DEFAULT_REGISTRY};
pub use version::{Constraints, Version};

use plinth_base::diagnostic::Diagnostic;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The diagnostics of provider installation.
pub mod codes {
    /// A provider `source` is not a valid address.
    pub const INVALID_SOURCE: &str = "P7100";
    /// `source` or `version` is not a literal string.
    pub const NOT_LITERAL: &str = "P7101";
    /// A `version` is not a valid constraint.
    pub const INVALID_CONSTRAINT: &str = "P7102";
    /// One source with two versions, or one provider name with two sources.
    pub const CONFLICT: &str = "P7103";
    /// No available version matches the constraint.
    pub const NO_MATCH: &str = "P7110";
    /// The provider, the version or the platform is not available.
    pub const NOT_AVAILABLE: &str = "P7111";
    /// The package speaks a plugin protocol Plinth does not.
    pub const PROTOCOL: &str = "P7112";
    /// The registry cannot be reached or refused a request.
    pub const REGISTRY: &str = "P7120";
    /// The registry's answer is malformed.
    pub const REGISTRY_ANSWER: &str = "P7121";
    /// The mirror or CA settings are unusable.
    pub const SETTINGS: &str = "P7122";
    /// A checksum does not match (`shasum`, `SHA256SUMS`).
    pub const CHECKSUM: &str = "P7130";
    /// The signature of `SHA256SUMS` does not verify.
    pub const SIGNATURE: &str = "P7131";
    /// `gpgv` cannot be run.
    pub const GPGV: &str = "P7132";
    /// The package archive is damaged or unsafe.
    pub const ARCHIVE: &str = "P7133";
    /// The package does not match the hashes in `plinth.lock`.
    pub const LOCK_MISMATCH: &str = "P7140";
    /// The provider is not installed or not locked.
    pub const NOT_INSTALLED: &str = "P7141";
    /// The provider directory cannot be read or written.
    pub const IO: &str = "P7142";
}

/// Where installed providers live, relative to the project.
pub const PROVIDERS_DIR: &str = ".plinth/providers";

/// One provider pinned in `plinth.lock`, like an entry of Terraform's
/// `.terraform.lock.hcl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedProvider {
    /// `registry.terraform.io/namespace/type`.
    pub source: String,
    /// The installed version: `1.36.2`.
    pub version: String,
    /// The constraints as written in the provider block ("" for none).
    #[serde(default)]
    pub constraints: String,
    /// `h1:` of the installed package and `zh:` of archives, sorted.
    pub hashes: Vec<String>,
}

impl LockedProvider {
    /// Checks an entry read from a lock file: a canonical source, a
    /// version, a constraint that parses, well-formed hashes (an `h1:`
    /// among them).
    pub fn validate(&self) -> Result<(ProviderAddr, Version), String> {
        let addr = ProviderAddr::parse(&self.source).map_err(|why| format!("the provider source `{}`: {why}", self.source))?;
        if addr.to_string() != self.source {
            return Err(format!("the provider source `{}` is not written in full as `{addr}`", self.source));
        }
        let version = Version::parse(&self.version).map_err(|why| format!("the version of `{}`: {why}", self.source))?;
        if !self.constraints.is_empty() {
            Constraints::parse(&self.constraints).map_err(|why| format!("the constraints of `{}`: {why}", self.source))?;
        }
        if let Some(bad) = self.hashes.iter().find(|h| !hash::is_valid(h)) {
            return Err(format!("`{bad}` in the hashes of `{}` is not an `h1:` or `zh:` hash", self.source));
        }
        if !self.hashes.iter().any(|h| h.starts_with("h1:")) {
            return Err(format!("the hashes of `{}` have no `h1:` hash", self.source));
        }
        Ok((addr, version))
    }
}

/// An installed, verified provider package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub addr: ProviderAddr,
    pub version: Version,
    /// The package directory (absolute when the project directory is).
    pub dir: PathBuf,
    /// The provider's executable in `dir`.
    pub binary: PathBuf,
    /// The lock's hashes for this package.
    pub hashes: Vec<String>,
}

/// Where packages come from.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// A filesystem mirror (`--provider-mirror`, `PLINTH_PROVIDER_MIRROR`):
    /// when set, the only source.
    pub mirror: Option<PathBuf>,
    /// A PEM file of CA certificates trusted for registries besides the
    /// system's (`PLINTH_PROVIDER_REGISTRY_CA`).
    pub registry_ca: Option<PathBuf>,
    /// The platform to install for (None: this machine's).
    pub platform: Option<Platform>,
}

/// Where an installed package came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// It was installed already and matches the lock: nothing was fetched.
    AlreadyInstalled,
    /// Copied or unpacked from a filesystem mirror (the package's path).
    Mirror { path: PathBuf },
    /// Downloaded from a registry (the archive's URL, redacted) and signed
    /// by the key with this fingerprint.
    Registry { url: String, key: String },
}

/// What `install` did for one provider.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub installed: Installed,
    /// The entry for `plinth.lock`.
    pub lock: LockedProvider,
    pub origin: Origin,
}

/// A fetched package in staging, with its hashes.
pub(crate) struct Fetched {
    pub h1: String,
    /// `zh:` of the archive it came from, if it came from one.
    pub archive_zh: Option<String>,
    /// Every `zh:` the source vouches for (a registry's signed
    /// `SHA256SUMS`; a packed mirror's own archive).
    pub signed_zh: Vec<String>,
    pub origin: Origin,
}

pub(crate) fn bad_archive(why: &str, from: &str) -> Diagnostic {
    Diagnostic::new(codes::ARCHIVE, "invalid or unsafe provider package")
        .help(format!("{from}: {why}. Nothing was installed; use a package as the provider's release publishes it."))
}

/// The install directory of a package.
pub fn package_dir(project_dir: &Path, addr: &ProviderAddr, version: &Version, platform: &Platform) -> PathBuf {
    project_dir.join(PROVIDERS_DIR).join(addr.rel_dir()).join(version.to_string()).join(platform.to_string())
}

/// The provider's executable in an installed package: the regular file at
/// its root named `terraform-provider-<type>…` (as Terraform looks for it).
fn find_binary(dir: &Path, addr: &ProviderAddr) -> Result<PathBuf, Diagnostic> {
    let entries = std::fs::read_dir(dir).map_err(|e| mirror::io_error("cannot read the provider directory", dir, &e))?;
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| zip::is_provider_binary(n, &addr.ptype)))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .collect();
    found.sort();
    found.into_iter().next().ok_or_else(|| {
        Diagnostic::new(codes::ARCHIVE, "the provider package has no executable").help(format!(
            "{} holds no file named `terraform-provider-{}…`. Use the package as the provider's release publishes it.",
            dir.display(),
            addr.ptype
        ))
    })
}

/// The installed package of a locked provider, verified: its `h1:` hash
/// must be among the lock's hashes. Never uses the network.
pub fn locate(project_dir: &Path, addr: &ProviderAddr, locked: &LockedProvider) -> Result<Installed, Diagnostic> {
    locate_for(project_dir, addr, locked, &Platform::current())
}

/// [`locate`] for a given platform.
pub fn locate_for(project_dir: &Path, addr: &ProviderAddr, locked: &LockedProvider, platform: &Platform) -> Result<Installed, Diagnostic> {
    let not_locked =
        |why: String| Diagnostic::new(codes::NOT_INSTALLED, "provider not locked").help(format!("{why}. Run `plinth init` and commit plinth.lock."));
    let (locked_addr, version) = locked.validate().map_err(&not_locked)?;
    if &locked_addr != addr {
        return Err(not_locked(format!("the lock entry is for {locked_addr}, not {addr}")));
    }
    let dir = package_dir(project_dir, addr, &version, platform);
    match std::fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(mismatch(addr, &version, &dir, "the package directory is not a directory")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Diagnostic::new(codes::NOT_INSTALLED, "provider not installed").help(format!(
                "{addr} {version} for {platform} is locked but not installed in {}. Run `plinth init` (it installs the locked version).",
                dir.display()
            )))
        }
        Err(e) => return Err(mirror::io_error("cannot read the provider directory", &dir, &e)),
    }
    let h1 = hash::h1_dir(&dir).map_err(|e| match e {
        hash::DirHashError::Io(p, e) => mirror::io_error("cannot read the provider directory", &p, &e),
        other => mismatch(addr, &version, &dir, &other.to_string()),
    })?;
    if !locked.hashes.contains(&h1) {
        return Err(mismatch(addr, &version, &dir, &format!("it hashes to {h1}, which plinth.lock does not list")));
    }
    let binary = find_binary(&dir, addr)?;
    Ok(Installed { addr: addr.clone(), version, dir, binary, hashes: locked.hashes.clone() })
}

fn mismatch(addr: &ProviderAddr, version: &Version, dir: &Path, why: &str) -> Diagnostic {
    Diagnostic::new(codes::LOCK_MISMATCH, "the installed provider does not match plinth.lock").help(format!(
        "{addr} {version} in {}: {why}. The package was changed after it was installed, or plinth.lock was edited: delete the directory and run `plinth init` to install the locked package again.",
        dir.display()
    ))
}

/// Removes the staging directory however `install` ends.
struct Staging(PathBuf);

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs a future to completion on its own thread and runtime: `install` is
/// called from synchronous code that may itself run inside a runtime.
fn block_on<F>(f: F) -> Result<F::Output, Diagnostic>
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    let failed = |why: String| {
        Diagnostic::new(codes::REGISTRY, "cannot start the registry client").help(format!("{why}. This is a bug in Plinth, or the system is out of resources."))
    };
    std::thread::scope(|s| {
        s.spawn(|| tokio::runtime::Builder::new_current_thread().enable_all().build().map(|rt| rt.block_on(f)))
            .join()
            .map_err(|_| failed("the download thread stopped unexpectedly".into()))?
            .map_err(|e| failed(format!("cannot start an async runtime: {e}")))
    })
}

/// Chooses the version to install: the locked one when it is kept,
/// otherwise the newest the constraints allow.
fn choose(addr: &ProviderAddr, constraints: &Constraints, keep: Option<&Version>, offered: &[Version], from: &str) -> Result<Version, Diagnostic> {
    if let Some(v) = keep {
        if offered.contains(v) {
            return Ok(v.clone());
        }
        return Err(Diagnostic::new(codes::NOT_AVAILABLE, "the locked version is not available")
            .help(format!("plinth.lock pins {addr} {v}, which {from} does not offer. Run `plinth init --upgrade` to choose another version.")));
    }
    if let Some(v) = constraints.newest(offered) {
        return Ok(v.clone());
    }
    let mut all: Vec<&Version> = offered.iter().collect();
    all.sort();
    all.reverse();
    let listed = if all.is_empty() {
        "none".to_string()
    } else {
        let shown: Vec<String> = all.iter().take(20).map(|v| v.to_string()).collect();
        format!("{}{}", shown.join(", "), if all.len() > 20 { format!(" (and {} older)", all.len() - 20) } else { String::new() })
    };
    let wanted = if constraints.as_str().is_empty() { "any released version".to_string() } else { format!("\"{constraints}\"") };
    Err(Diagnostic::new(codes::NO_MATCH, "no version of the provider matches the constraint")
        .help(format!("{from} offers {addr} versions: {listed}; none is {wanted}. Change `version` to match one of them.")))
}

/// Installs one provider: the locked version when `locked` pins one the
/// constraints allow (unless `upgrade`), otherwise the newest version the
/// source offers that they allow; reuses an installed package that
/// matches the lock without fetching anything.
pub fn install(
    project_dir: &Path,
    settings: &Settings,
    addr: &ProviderAddr,
    constraints: &Constraints,
    locked: Option<&LockedProvider>,
    upgrade: bool,
) -> Result<Outcome, Diagnostic> {
    let platform = settings.platform.clone().unwrap_or_else(Platform::current);
    let locked_version = locked.and_then(|l| l.validate().ok()).filter(|(a, _)| a == addr).map(|(_, v)| v);
    let keep = locked_version.clone().filter(|v| !upgrade && constraints.allows(v));
    // A package that is installed and matches the lock: nothing to fetch.
    if let (Some(v), Some(l)) = (&keep, locked) {
        if let Ok(installed) = locate_for(project_dir, addr, l, &platform) {
            let lock =
                LockedProvider { source: addr.to_string(), version: v.to_string(), constraints: constraints.as_str().to_string(), hashes: l.hashes.clone() };
            return Ok(Outcome { installed, lock, origin: Origin::AlreadyInstalled });
        }
    }
    let root = project_dir.join(PROVIDERS_DIR);
    std::fs::create_dir_all(&root).map_err(|e| mirror::io_error("cannot create the provider directory", &root, &e))?;
    let staging = Staging(root.join(format!(".staging-{:016x}", rand::random::<u64>())));
    std::fs::create_dir(&staging.0).map_err(|e| mirror::io_error("cannot create the provider directory", &staging.0, &e))?;
    let pkg = staging.0.join("package");
    std::fs::create_dir(&pkg).map_err(|e| mirror::io_error("cannot create the provider directory", &pkg, &e))?;

    let (version, fetched) = match &settings.mirror {
        Some(mirror_root) => {
            mirror::check_root(mirror_root)?;
            let scan = mirror::scan(mirror_root, addr, &platform)?;
            let from = format!("the mirror {}", mirror_root.display());
            let offered: Vec<Version> = scan.packages.keys().cloned().collect();
            let version = match choose(addr, constraints, keep.as_ref(), &offered, &from) {
                Ok(v) => v,
                Err(d) if offered.is_empty() && !scan.all.is_empty() => {
                    let others: Vec<String> = scan.all.iter().map(|(v, ps)| format!("{v} ({})", ps.iter().cloned().collect::<Vec<_>>().join(", "))).collect();
                    return Err(Diagnostic::new(codes::NOT_AVAILABLE, "no package of the provider for this platform")
                        .help(format!("{from} holds {addr} only for other platforms: {}. Add a package for {platform}.", others.join("; ")))
                        .note(d.help));
                }
                Err(d) => return Err(d),
            };
            let package = scan.packages.get(&version).cloned().ok_or_else(|| Diagnostic::new(codes::NOT_AVAILABLE, "provider not found in the mirror"))?;
            let fetched = mirror::fetch(&package, addr, &pkg)?;
            (version, fetched)
        }
        None => {
            let ca = settings.registry_ca.clone();
            block_on(async {
                let mut reg = registry::Registry::new(&addr.hostname, ca.as_deref())?;
                let offered = reg.versions(addr).await?;
                let from = format!("the registry {}", addr.hostname);
                let for_platform: Vec<Version> =
                    offered.iter().filter(|(_, ps)| ps.as_ref().is_none_or(|ps| ps.contains(&platform.to_string()))).map(|(v, _)| v.clone()).collect();
                let version = match choose(addr, constraints, keep.as_ref(), &for_platform, &from) {
                    Err(d)
                        if for_platform.len() < offered.len()
                            && choose(addr, constraints, keep.as_ref(), &offered.iter().map(|(v, _)| v.clone()).collect::<Vec<_>>(), &from).is_ok() =>
                    {
                        return Err(Diagnostic::new(codes::NOT_AVAILABLE, "no package of the provider for this platform")
                            .help(format!("{from} publishes the versions of {addr} that match for other platforms only, not for {platform}. Choose a version published for {platform}."))
                            .note(d.help));
                    }
                    other => other?,
                };
                let fetched = reg.fetch(addr, &version, &platform, &pkg, &staging.0).await?;
                Ok::<_, Diagnostic>((version, fetched))
            })??
        }
    };

    // The version the lock pins must be the package the lock hashed.
    let same_version = locked_version.as_ref() == Some(&version);
    if let (true, Some(l)) = (same_version, locked) {
        let known = l.hashes.contains(&fetched.h1) || fetched.archive_zh.as_ref().is_some_and(|z| l.hashes.contains(z));
        if !known {
            return Err(Diagnostic::new(codes::LOCK_MISMATCH, "the provider package does not match plinth.lock").help(format!(
                "{addr} {version} from {} hashes to {}, which plinth.lock does not list: the source now serves a different package for the locked version. Nothing was installed; if the change is expected, run `plinth init --upgrade`.",
                origin_text(&fetched.origin),
                fetched.h1
            )));
        }
    }
    let binary_name = find_binary(&pkg, addr)?.file_name().map(PathBuf::from).unwrap_or_default();

    let dir = package_dir(project_dir, addr, &version, &platform);
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(|e| mirror::io_error("cannot create the provider directory", parent, &e))?;
    }
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(mirror::io_error("cannot replace the provider directory", &dir, &e)),
        _ => {}
    }
    std::fs::rename(&pkg, &dir).map_err(|e| mirror::io_error("cannot move the provider into place", &dir, &e))?;

    let mut hashes: Vec<String> = if same_version { locked.map(|l| l.hashes.clone()).unwrap_or_default() } else { Vec::new() };
    hashes.push(fetched.h1.clone());
    hashes.extend(fetched.archive_zh.iter().cloned());
    hashes.extend(fetched.signed_zh.iter().cloned());
    hashes.sort();
    hashes.dedup();
    let lock = LockedProvider { source: addr.to_string(), version: version.to_string(), constraints: constraints.as_str().to_string(), hashes: hashes.clone() };
    let installed = Installed { addr: addr.clone(), version, binary: dir.join(binary_name), dir, hashes };
    Ok(Outcome { installed, lock, origin: fetched.origin })
}

fn origin_text(o: &Origin) -> String {
    match o {
        Origin::AlreadyInstalled => "the installed package".into(),
        Origin::Mirror { path } => path.display().to_string(),
        Origin::Registry { url, .. } => url.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zip::build::{file, zip};

    fn linux() -> Platform {
        Platform { os: "linux".into(), arch: "amd64".into() }
    }

    fn settings(mirror: &Path) -> Settings {
        Settings { mirror: Some(mirror.to_path_buf()), registry_ca: None, platform: Some(linux()) }
    }

    /// A packed mirror with versions of `example.com/acme/thing`.
    fn packed_mirror(versions: &[&str]) -> tempfile::TempDir {
        let m = tempfile::tempdir().unwrap();
        let dir = m.path().join("example.com/acme/thing");
        std::fs::create_dir_all(&dir).unwrap();
        for v in versions {
            let data = zip(&[file(&format!("terraform-provider-thing_v{v}"), format!("binary {v}").as_bytes(), 0o100_755)]);
            std::fs::write(dir.join(format!("terraform-provider-thing_{v}_linux_amd64.zip")), data).unwrap();
        }
        m
    }

    fn addr() -> ProviderAddr {
        ProviderAddr::parse("example.com/acme/thing").unwrap()
    }

    #[test]
    fn install_then_locate_and_refuse_a_tampered_binary() {
        let mirror = packed_mirror(&["1.0.0", "1.1.0", "2.0.0"]);
        let project = tempfile::tempdir().unwrap();
        let c = Constraints::parse("~> 1.0").unwrap();
        let out = install(project.path(), &settings(mirror.path()), &addr(), &c, None, false).unwrap();
        assert_eq!(out.lock.version, "1.1.0");
        assert_eq!(out.lock.constraints, "~> 1.0");
        assert!(out.lock.hashes.iter().any(|h| h.starts_with("h1:")) && out.lock.hashes.iter().any(|h| h.starts_with("zh:")));
        assert!(matches!(out.origin, Origin::Mirror { .. }));
        assert_eq!(out.installed.dir, project.path().join(".plinth/providers/example.com/acme/thing/1.1.0/linux_amd64"));
        let found = locate_for(project.path(), &addr(), &out.lock, &linux()).unwrap();
        assert_eq!(found.binary, out.installed.binary);
        assert_eq!(std::fs::read(&found.binary).unwrap(), b"binary 1.1.0");
        // No staging directory is left behind.
        let left: Vec<_> = std::fs::read_dir(project.path().join(PROVIDERS_DIR)).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("example.com")]);
        // A second init reuses it; --upgrade within the constraint changes nothing else.
        let again = install(project.path(), &settings(mirror.path()), &addr(), &c, Some(&out.lock), false).unwrap();
        assert_eq!(again.origin, Origin::AlreadyInstalled);
        assert_eq!(again.lock, out.lock);
        // Tampering is refused, with the lock's code.
        std::fs::write(&found.binary, b"evil").unwrap();
        let e = locate_for(project.path(), &addr(), &out.lock, &linux()).unwrap_err();
        assert_eq!(e.code, codes::LOCK_MISMATCH);
        // init puts the locked package back.
        let fixed = install(project.path(), &settings(mirror.path()), &addr(), &c, Some(&out.lock), false).unwrap();
        assert!(matches!(fixed.origin, Origin::Mirror { .. }));
        assert!(locate_for(project.path(), &addr(), &fixed.lock, &linux()).is_ok());
    }

    #[test]
    fn the_lock_keeps_its_version_until_upgrade_or_a_new_constraint() {
        let mirror = packed_mirror(&["1.0.0"]);
        let project = tempfile::tempdir().unwrap();
        let any = Constraints::any();
        let first = install(project.path(), &settings(mirror.path()), &addr(), &any, None, false).unwrap();
        let dir = mirror.path().join("example.com/acme/thing");
        std::fs::write(dir.join("terraform-provider-thing_1.2.0_linux_amd64.zip"), zip(&[file("terraform-provider-thing_v1.2.0", b"new", 0o100_755)])).unwrap();
        let kept = install(project.path(), &settings(mirror.path()), &addr(), &any, Some(&first.lock), false).unwrap();
        assert_eq!(kept.lock.version, "1.0.0");
        let upgraded = install(project.path(), &settings(mirror.path()), &addr(), &any, Some(&first.lock), true).unwrap();
        assert_eq!(upgraded.lock.version, "1.2.0");
        let moved = install(project.path(), &settings(mirror.path()), &addr(), &Constraints::parse(">= 1.1").unwrap(), Some(&first.lock), false).unwrap();
        assert_eq!(moved.lock.version, "1.2.0");
        // A locked version whose package changed in the source is refused.
        std::fs::remove_dir_all(project.path().join(PROVIDERS_DIR)).unwrap();
        std::fs::write(dir.join("terraform-provider-thing_1.0.0_linux_amd64.zip"), zip(&[file("terraform-provider-thing_v1.0.0", b"swapped", 0o100_755)]))
            .unwrap();
        let e = install(project.path(), &settings(mirror.path()), &addr(), &any, Some(&first.lock), false).unwrap_err();
        assert_eq!(e.code, codes::LOCK_MISMATCH, "{e:?}");
        assert!(!project.path().join(".plinth/providers/example.com/acme/thing/1.0.0").exists());
    }

    #[test]
    fn no_matching_version_lists_the_available_ones() {
        let mirror = packed_mirror(&["1.0.0", "1.1.0"]);
        let project = tempfile::tempdir().unwrap();
        let e = install(project.path(), &settings(mirror.path()), &addr(), &Constraints::parse("~> 2.0").unwrap(), None, false).unwrap_err();
        assert_eq!(e.code, codes::NO_MATCH);
        assert!(e.help.contains("1.1.0, 1.0.0") && e.help.contains("\"~> 2.0\""), "{}", e.help);
        let other = Settings { platform: Some(Platform { os: "darwin".into(), arch: "arm64".into() }), ..settings(mirror.path()) };
        let e = install(project.path(), &other, &addr(), &Constraints::any(), None, false).unwrap_err();
        assert_eq!(e.code, codes::NOT_AVAILABLE);
        assert!(e.help.contains("linux_amd64"), "{}", e.help);
        let e = install(project.path(), &settings(mirror.path()), &ProviderAddr::parse("example.com/acme/other").unwrap(), &Constraints::any(), None, false)
            .unwrap_err();
        assert_eq!(e.code, codes::NOT_AVAILABLE);
        let e = install(project.path(), &settings(&mirror.path().join("nope")), &addr(), &Constraints::any(), None, false).unwrap_err();
        assert_eq!(e.code, codes::SETTINGS);
    }

    #[test]
    fn unsafe_mirror_packages_are_refused_and_leave_nothing() {
        let mirror = tempfile::tempdir().unwrap();
        let dir = mirror.path().join("example.com/acme/thing");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("terraform-provider-thing_1.0.0_linux_amd64.zip"), zip(&[file("../../escape", b"x", 0o100_644)])).unwrap();
        let project = tempfile::tempdir().unwrap();
        let e = install(project.path(), &settings(mirror.path()), &addr(), &Constraints::any(), None, false).unwrap_err();
        assert_eq!(e.code, codes::ARCHIVE);
        assert!(std::fs::read_dir(project.path().join(PROVIDERS_DIR)).unwrap().next().is_none());
        std::fs::write(dir.join("terraform-provider-thing_1.0.0_linux_amd64.zip"), zip(&[file("README", b"x", 0o100_644)])).unwrap();
        let e = install(project.path(), &settings(mirror.path()), &addr(), &Constraints::any(), None, false).unwrap_err();
        assert_eq!(e.code, codes::ARCHIVE);
        assert!(e.help.contains("terraform-provider-thing"), "{}", e.help);
    }

    #[test]
    fn an_unpacked_mirror_gives_the_same_h1_as_the_packed_one() {
        let packed = packed_mirror(&["1.0.0"]);
        let unpacked = tempfile::tempdir().unwrap();
        let d = unpacked.path().join("example.com/acme/thing/1.0.0/linux_amd64");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("terraform-provider-thing_v1.0.0"), b"binary 1.0.0").unwrap();
        let (p1, p2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = install(p1.path(), &settings(packed.path()), &addr(), &Constraints::any(), None, false).unwrap();
        let b = install(p2.path(), &settings(unpacked.path()), &addr(), &Constraints::any(), None, false).unwrap();
        let h1 = |l: &LockedProvider| l.hashes.iter().find(|h| h.starts_with("h1:")).cloned();
        assert_eq!(h1(&a.lock), h1(&b.lock));
        assert_eq!(b.lock.hashes.len(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&b.installed.binary).unwrap().permissions().mode() & 0o777, 0o755);
        }
    }

    #[test]
    fn lock_entries_are_validated() {
        let h1 = hash::h1_of(vec![]).unwrap();
        let ok = LockedProvider { source: "registry.terraform.io/a/b".into(), version: "1.0.0".into(), constraints: "~> 1.0".into(), hashes: vec![h1.clone()] };
        assert!(ok.validate().is_ok());
        for (bad, why) in [
            (LockedProvider { source: "a/b".into(), ..ok.clone() }, "in full"),
            (LockedProvider { version: "1.0".into(), ..ok.clone() }, "version"),
            (LockedProvider { constraints: "=> 1".into(), ..ok.clone() }, "constraints"),
            (LockedProvider { hashes: vec!["zh:00".into()], ..ok.clone() }, "not an `h1:`"),
            (LockedProvider { hashes: vec![], ..ok.clone() }, "no `h1:`"),
        ] {
            let e = bad.validate().unwrap_err();
            assert!(e.contains(why), "{e}");
        }
        let project = tempfile::tempdir().unwrap();
        let e = locate_for(project.path(), &ProviderAddr::parse("a/b").unwrap(), &ok, &linux()).unwrap_err();
        assert_eq!(e.code, codes::NOT_INSTALLED);
        assert!(e.help.contains("plinth init"));
    }
}
