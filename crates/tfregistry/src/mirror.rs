//! A filesystem mirror in either of Terraform's layouts:
//!
//! - unpacked: `HOST/NAMESPACE/TYPE/VERSION/OS_ARCH/` holding the package's
//!   files (the provider binary `terraform-provider-TYPE…` among them);
//! - packed: `HOST/NAMESPACE/TYPE/terraform-provider-TYPE_VERSION_OS_ARCH.zip`,
//!   the release archive a registry serves.
//!
//! Installing from a mirror copies the package into the project (a packed
//! one is unpacked with [`crate::zip::unpack`]); the mirror is only read.

use crate::addr::{Platform, ProviderAddr};
use crate::hash::{self, FileDigest};
use crate::version::Version;
use crate::{codes, Fetched, Origin};
use plinth_base::diagnostic::Diagnostic;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub(crate) enum Package {
    Unpacked(PathBuf),
    Packed(PathBuf),
}

/// What a mirror holds for one provider.
pub(crate) struct Scan {
    /// Packages for the wanted platform, by version.
    pub packages: BTreeMap<Version, Package>,
    /// Every version with any package, and its platforms (for messages).
    pub all: BTreeMap<Version, BTreeSet<String>>,
}

pub(crate) fn check_root(root: &Path) -> Result<(), Diagnostic> {
    match std::fs::metadata(root) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Diagnostic::new(codes::SETTINGS, "the provider mirror is not a directory").help(format!(
            "{} is a file. Give `--provider-mirror` (or PLINTH_PROVIDER_MIRROR) a directory in Terraform's mirror layout (HOST/NAMESPACE/TYPE/…).",
            root.display()
        ))),
        Err(e) => Err(Diagnostic::new(codes::SETTINGS, "cannot read the provider mirror").help(format!(
            "{}: {e}. Give `--provider-mirror` (or PLINTH_PROVIDER_MIRROR) an existing directory in Terraform's mirror layout (HOST/NAMESPACE/TYPE/…).",
            root.display()
        ))),
    }
}

/// The packages of `addr` in the mirror at `root`.
pub(crate) fn scan(root: &Path, addr: &ProviderAddr, platform: &Platform) -> Result<Scan, Diagnostic> {
    let dir = root.join(addr.rel_dir());
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Diagnostic::new(codes::NOT_AVAILABLE, "provider not found in the mirror").help(format!(
                "The mirror {} has no directory {}/ for {addr}. Add the provider to the mirror (`terraform providers mirror` writes this layout), or check the provider's `source`.",
                root.display(),
                addr.rel_dir().display()
            )))
        }
        Err(e) => return Err(io_error("cannot read the provider mirror", &dir, &e)),
    };
    let mut out = Scan { packages: BTreeMap::new(), all: BTreeMap::new() };
    let zip_prefix = format!("terraform-provider-{}_", addr.ptype);
    for entry in entries {
        let entry = entry.map_err(|e| io_error("cannot read the provider mirror", &dir, &e))?;
        let Ok(name) = entry.file_name().into_string() else { continue };
        let path = entry.path();
        let Ok(meta) = std::fs::metadata(&path) else { continue };
        if meta.is_dir() {
            let Ok(version) = Version::parse(&name) else { continue };
            let Ok(platforms) = std::fs::read_dir(&path) else { continue };
            for p in platforms.flatten() {
                let Ok(pname) = p.file_name().into_string() else { continue };
                if !p.path().is_dir() {
                    continue;
                }
                if pname == platform.to_string() {
                    out.packages.insert(version.clone(), Package::Unpacked(p.path()));
                }
                out.all.entry(version.clone()).or_default().insert(pname);
            }
        } else if meta.is_file() {
            let Some(rest) = name.strip_prefix(&zip_prefix).and_then(|r| r.strip_suffix(".zip")) else { continue };
            // VERSION_OS_ARCH: the version may not contain `_`, OS and ARCH do not.
            let mut parts = rest.rsplitn(3, '_');
            let (Some(arch), Some(os), Some(v)) = (parts.next(), parts.next(), parts.next()) else { continue };
            let Ok(version) = Version::parse(v) else { continue };
            if os == platform.os && arch == platform.arch {
                // Packed wins over unpacked: it also gives the archive's zh: hash.
                out.packages.insert(version.clone(), Package::Packed(path));
            }
            out.all.entry(version).or_default().insert(format!("{os}_{arch}"));
        }
    }
    Ok(out)
}

/// Copies or unpacks `package` into the empty directory `dest`.
pub(crate) fn fetch(package: &Package, addr: &ProviderAddr, dest: &Path) -> Result<Fetched, Diagnostic> {
    match package {
        Package::Packed(zip) => {
            let data = std::fs::read(zip).map_err(|e| io_error("cannot read the provider archive", zip, &e))?;
            let sha: FileDigest = Sha256::digest(&data).into();
            let files = crate::zip::unpack(&data, dest, &addr.ptype).map_err(|why| crate::bad_archive(&why, &zip.display().to_string()))?;
            let h1 = hash::h1_of(files).map_err(|why| crate::bad_archive(&why, &zip.display().to_string()))?;
            let zh = hash::zh(&sha);
            Ok(Fetched { h1, archive_zh: Some(zh.clone()), signed_zh: vec![zh], origin: Origin::Mirror { path: zip.clone() } })
        }
        Package::Unpacked(dir) => {
            let mut files = Vec::new();
            copy_tree(dir, dest, "", &addr.ptype, &mut files)?;
            let h1 = hash::h1_of(files).map_err(|why| crate::bad_archive(&why, &dir.display().to_string()))?;
            Ok(Fetched { h1, archive_zh: None, signed_zh: Vec::new(), origin: Origin::Mirror { path: dir.clone() } })
        }
    }
}

/// Copies the regular files under `from` to `to`, hashing them as it goes;
/// a symbolic link or special file inside the package is refused.
fn copy_tree(from: &Path, to: &Path, rel: &str, ptype: &str, files: &mut Vec<(String, FileDigest)>) -> Result<(), Diagnostic> {
    let entries = std::fs::read_dir(from).map_err(|e| io_error("cannot read the provider mirror", from, &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error("cannot read the provider mirror", from, &e))?;
        let name =
            entry.file_name().into_string().map_err(|n| crate::bad_archive(&format!("the file name {n:?} is not UTF-8"), &from.display().to_string()))?;
        let child_rel = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
        let src = entry.path();
        let dst = to.join(&name);
        let kind = std::fs::symlink_metadata(&src).map_err(|e| io_error("cannot read the provider mirror", &src, &e))?.file_type();
        if kind.is_dir() {
            std::fs::create_dir(&dst).map_err(|e| io_error("cannot write the provider directory", &dst, &e))?;
            copy_tree(&src, &dst, &child_rel, ptype, files)?;
        } else if kind.is_file() {
            let executable = crate::zip::is_provider_binary(&child_rel, ptype) || is_executable(&src);
            let digest = copy_file(&src, &dst, if executable { 0o755 } else { 0o644 })?;
            files.push((child_rel, digest));
        } else {
            return Err(crate::bad_archive(
                &format!("`{child_rel}` is a symbolic link or a special file; a package holds regular files only"),
                &from.display().to_string(),
            ));
        }
    }
    Ok(())
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}
#[cfg(not(unix))]
fn is_executable(_path: &Path) -> bool {
    false
}

fn copy_file(src: &Path, dst: &Path, mode: u32) -> Result<FileDigest, Diagnostic> {
    let mut input = std::fs::File::open(src).map_err(|e| io_error("cannot read the provider mirror", src, &e))?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    let mut output = opts.open(dst).map_err(|e| io_error("cannot write the provider directory", dst, &e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = input.read(&mut buf).map_err(|e| io_error("cannot read the provider mirror", src, &e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        output.write_all(&buf[..n]).map_err(|e| io_error("cannot write the provider directory", dst, &e))?;
    }
    output.sync_all().map_err(|e| io_error("cannot write the provider directory", dst, &e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(mode)).map_err(|e| io_error("cannot write the provider directory", dst, &e))?;
    }
    Ok(hasher.finalize().into())
}

pub(crate) fn io_error(summary: &str, path: &Path, e: &std::io::Error) -> Diagnostic {
    Diagnostic::new(codes::IO, summary.to_string()).help(format!("{}: {e}. Check the permissions of the directory and the free disk space.", path.display()))
}
