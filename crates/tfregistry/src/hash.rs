//! Package hashes exactly as Terraform records them in
//! `.terraform.lock.hcl`:
//!
//! - `h1:` — Go's `dirhash.Hash1` over the package's files: for each file,
//!   sorted by its `/`-separated relative name, the line
//!   `hex(sha256(content))  name\n`; the hash is base64(sha256(those
//!   lines)). Computed from an unpacked directory ([`h1_dir`]) or from the
//!   file digests met while unpacking a release zip ([`h1_of`]): the same
//!   value for the same files (a zip's directory entries are not files).
//! - `zh:` — hex(sha256(the release zip)), [`zh`].

use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The SHA-256 digest of one file's content.
pub type FileDigest = [u8; 32];

/// `h1:` of a package given its files' relative names and digests.
pub fn h1_of(mut files: Vec<(String, FileDigest)>) -> Result<String, String> {
    files.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut summary = Sha256::new();
    for (name, digest) in &files {
        if name.contains('\n') {
            return Err(format!("the file name {name:?} contains a newline, which the h1 hash cannot represent"));
        }
        summary.update(format!("{}  {name}\n", hex::encode(digest)).as_bytes());
    }
    Ok(format!("h1:{}", base64::engine::general_purpose::STANDARD.encode(summary.finalize())))
}

/// Why a directory could not be hashed.
#[derive(Debug)]
pub enum DirHashError {
    Io(PathBuf, std::io::Error),
    /// A symbolic link or special file (relative name): installed packages
    /// never contain one, so its presence means the directory was altered.
    NotAFile(String),
    Name(String),
}

impl std::fmt::Display for DirHashError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DirHashError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            DirHashError::NotAFile(n) => write!(f, "`{n}` is a symbolic link or a special file"),
            DirHashError::Name(why) => f.write_str(why),
        }
    }
}

/// `h1:` of the unpacked package in `dir` (Go's `dirhash.HashDir(dir, "",
/// Hash1)`), refusing symbolic links and special files inside it.
pub fn h1_dir(dir: &Path) -> Result<String, DirHashError> {
    let mut files = Vec::new();
    let mut stack: Vec<(PathBuf, String)> = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, rel)) = stack.pop() {
        let entries = std::fs::read_dir(&path).map_err(|e| DirHashError::Io(path.clone(), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| DirHashError::Io(path.clone(), e))?;
            let name = entry.file_name().into_string().map_err(|n| DirHashError::Name(format!("the file name {n:?} is not UTF-8")))?;
            let child_rel = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            let child = entry.path();
            let kind = std::fs::symlink_metadata(&child).map_err(|e| DirHashError::Io(child.clone(), e))?.file_type();
            if kind.is_dir() {
                stack.push((child, child_rel));
            } else if kind.is_file() {
                let digest = file_digest(&child).map_err(|e| DirHashError::Io(child.clone(), e))?;
                files.push((child_rel, digest));
            } else {
                return Err(DirHashError::NotAFile(child_rel));
            }
        }
    }
    h1_of(files).map_err(DirHashError::Name)
}

/// SHA-256 of a file's content, read in blocks.
pub fn file_digest(path: &Path) -> std::io::Result<FileDigest> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().into())
}

/// `zh:` of a release zip's bytes.
pub fn zh(zip_sha256: &FileDigest) -> String {
    format!("zh:{}", hex::encode(zip_sha256))
}

/// Whether `hash` is a well-formed `h1:` (base64 of 32 bytes) or `zh:` (64
/// lower-case hex digits) hash.
pub fn is_valid(hash: &str) -> bool {
    if let Some(b64) = hash.strip_prefix("h1:") {
        return base64::engine::general_purpose::STANDARD.decode(b64).is_ok_and(|d| d.len() == 32);
    }
    if let Some(h) = hash.strip_prefix("zh:") {
        return h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h1_is_gos_dirhash_hash1() {
        // The definition written out: sorted names, two spaces, newline
        // (the real provider's hash is checked against terraform in
        // tests/it/tf_install.rs).
        let d = |s: &str| -> FileDigest { Sha256::digest(s.as_bytes()).into() };
        let h = h1_of(vec![("xyz".into(), d("data for xyz")), ("abc".into(), d("data for abc"))]).unwrap();
        let lines = format!("{:x}  abc\n{:x}  xyz\n", Sha256::digest(b"data for abc"), Sha256::digest(b"data for xyz"));
        let want = format!("h1:{}", base64::engine::general_purpose::STANDARD.encode(Sha256::digest(lines.as_bytes())));
        assert_eq!(h, want);
        assert!(h1_of(vec![("a\nb".into(), d(""))]).is_err());
        assert!(is_valid(&h));
    }

    #[test]
    fn a_directory_hashes_like_its_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("terraform-provider-x_v1.0.0"), b"binary").unwrap();
        std::fs::write(dir.path().join("sub/LICENSE"), b"text").unwrap();
        let d = |s: &[u8]| -> FileDigest { Sha256::digest(s).into() };
        let want = h1_of(vec![("terraform-provider-x_v1.0.0".into(), d(b"binary")), ("sub/LICENSE".into(), d(b"text"))]).unwrap();
        assert_eq!(h1_dir(dir.path()).unwrap(), want);
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/etc/passwd", dir.path().join("sub/link")).unwrap();
            assert!(matches!(h1_dir(dir.path()), Err(DirHashError::NotAFile(n)) if n == "sub/link"));
        }
    }

    #[test]
    fn zh_is_hex_sha256() {
        let z = zh(&Sha256::digest(b"zip").into());
        assert_eq!(z, format!("zh:{:x}", Sha256::digest(b"zip")));
        assert!(is_valid(&z));
        for bad in ["zh:ABC", "h1:abc", "sha256:00", "zh:", &format!("zh:{}", "G".repeat(64))] {
            assert!(!is_valid(bad), "{bad}");
        }
    }
}
