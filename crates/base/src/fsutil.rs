//! File-system primitives for writing, reading and removing inside
//! directories others can write to too (a `file.file`'s directory, a
//! `file.tree` target, a `plinth render` destination, the module cache).
//!
//! Invariants:
//! - [`write_atomic`] never writes through a name someone else could have
//!   chosen: its temporary is created exclusively (`O_CREAT|O_EXCL`, and
//!   `O_NOFOLLOW`) under an unpredictable name in the directory of the file
//!   it replaces, gets its final mode on the open descriptor before any byte
//!   is written, is fsynced, then renamed over the file (a rename replaces a
//!   link at the file's name; it never follows it). A killed run leaves the
//!   old or the new file and at most a stray `.<name>.<16 hex>.plinth-tmp`,
//!   which [`sweep_temps`] removes.
//! - [`dir_within`] walks from a root directory down to a subdirectory
//!   without following a symbolic link: a link on the way is reported, never
//!   entered (nor is anything created through it).
//! - [`resolve`] is the path with every existing link resolved (the rest,
//!   which does not exist, normalised lexically): what [`is_within`] and the
//!   confinement of reads compare.
//!
//! A link swapped in between a check and the use is not caught (the checks
//! are path based, not `openat` based): these protect against links planted
//! before a run, which is how such attacks are staged.

use std::ffi::OsStr;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

/// The suffix of every temporary Plinth writes through.
pub const TEMP_SUFFIX: &str = ".plinth-tmp";

/// True for the name of a temporary of [`write_atomic`] (or of an older
/// Plinth, which used `.<name>.plinth-tmp`).
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(TEMP_SUFFIX)
}

/// `.<name>.`, the name cut to keep the temporary's name under the usual
/// 255-byte limit.
fn temp_prefix(name: &OsStr) -> String {
    let name = name.to_string_lossy();
    let mut cut = name.len().min(200);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(".{}.", &name[..cut])
}

/// The directory a path's file lives in (`.` for a bare name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Creates `path` exclusively with `mode`; fails on any existing entry,
/// a symbolic link included.
fn create_exclusive(path: &Path, mode: u32) -> io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode & 0o777).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    }
    #[cfg(not(unix))]
    let _ = mode;
    options.open(path)
}

#[cfg(unix)]
fn set_mode(file: &std::fs::File, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
}
#[cfg(not(unix))]
fn set_mode(_file: &std::fs::File, _mode: u32) -> io::Result<()> {
    Ok(())
}

/// Replaces `path` with `bytes` (permissions exactly `mode`) atomically;
/// see the module documentation.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let name = path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"))?;
    let dir = parent_of(path);
    let prefix = temp_prefix(name);
    let mut attempts = 0;
    let (tmp, mut file) = loop {
        let tmp = dir.join(format!("{prefix}{:016x}{TEMP_SUFFIX}", rand::random::<u64>()));
        match create_exclusive(&tmp, mode) {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 8 => attempts += 1,
            Err(e) => return Err(e),
        }
    };
    let written = set_mode(&file, mode).and_then(|()| file.write_all(bytes)).and_then(|()| file.sync_all());
    drop(file);
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // The rename itself durable (best effort: not every file system can).
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Removes the temporaries an interrupted [`write_atomic`] of `path` left
/// (`.<name>.<16 hex>.plinth-tmp`); unlinking never follows a link.
pub fn sweep_temps(path: &Path) {
    let Some(name) = path.file_name() else { return };
    let prefix = temp_prefix(name);
    let Ok(entries) = std::fs::read_dir(parent_of(path)) else { return };
    for entry in entries.flatten() {
        let entry_name = entry.file_name();
        let Some(entry_name) = entry_name.to_str() else { continue };
        let random = entry_name.strip_prefix(prefix.as_str()).and_then(|r| r.strip_suffix(TEMP_SUFFIX));
        if random.is_some_and(|r| r.len() == 16 && r.bytes().all(|b| b.is_ascii_hexdigit())) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Reads a file without following a symbolic link at its name: `Ok(None)`
/// when it does not exist, an error (`ELOOP`) when it is a link.
pub fn read_nofollow(path: &Path) -> io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    }
    let mut file = match options.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

/// Where [`dir_within`] ended.
#[derive(Debug, PartialEq)]
pub enum Within {
    /// The directory exists (or was created) and no link leads to it.
    Dir(PathBuf),
    /// Some directory on the way does not exist (and was not to be created).
    Missing,
    /// A symbolic link on the way: this one.
    Link(PathBuf),
}

/// Walks from `root` down `rel` (a relative path of plain names) without
/// following a symbolic link, creating missing directories when `create`.
/// `root` itself is taken as it is (the configuration names it).
pub fn dir_within(root: &Path, rel: &Path, create: bool) -> io::Result<Within> {
    let mut cur = root.to_path_buf();
    for c in rel.components() {
        let Component::Normal(name) = c else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{} is not a plain relative path", rel.display())));
        };
        cur.push(name);
        let mut meta = std::fs::symlink_metadata(&cur);
        if create && matches!(&meta, Err(e) if e.kind() == io::ErrorKind::NotFound) {
            match std::fs::create_dir(&cur) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            meta = std::fs::symlink_metadata(&cur);
        }
        match meta {
            Ok(m) if m.file_type().is_symlink() => return Ok(Within::Link(cur)),
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(io::Error::other(format!("{} is not a directory", cur.display()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Within::Missing),
            Err(e) => return Err(e),
        }
    }
    Ok(Within::Dir(cur))
}

/// `path` absolute, with every link in its existing part resolved and the
/// rest normalised lexically (`.` dropped, `..` removing the name before).
pub fn resolve(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    let mut exists = true;
    for c in abs.components() {
        match c {
            Component::Prefix(_) | Component::RootDir => out.push(c.as_os_str()),
            Component::CurDir => {}
            Component::ParentDir => {
                // `out` has no links in it: lexical is right.
                out.pop();
            }
            Component::Normal(name) => {
                out.push(name);
                if exists {
                    match std::fs::canonicalize(&out) {
                        Ok(real) => out = real,
                        Err(_) => exists = false,
                    }
                }
            }
        }
    }
    out
}

/// True when `path` (resolved) is `dir` (resolved) or lies under it.
pub fn is_within(path: &Path, dir: &Path) -> bool {
    resolve(path).starts_with(resolve(dir))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    #[test]
    fn write_atomic_never_follows_a_planted_link_and_sets_the_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").expect("write");
        let target = dir.path().join("out.txt");
        symlink(&victim, dir.path().join(".out.txt.plinth-tmp")).expect("symlink");
        write_atomic(&target, b"new", 0o600).expect("write");
        assert_eq!(std::fs::read_to_string(&victim).expect("read"), "precious");
        assert_eq!(std::fs::read_to_string(&target).expect("read"), "new");
        assert_eq!(std::fs::metadata(&target).expect("stat").permissions().mode() & 0o7777, 0o600);
        // A link at the file's own name is replaced, not written through.
        std::fs::remove_file(&target).expect("rm");
        symlink(&victim, &target).expect("symlink");
        write_atomic(&target, b"newer", 0o755).expect("write");
        assert_eq!(std::fs::read_to_string(&victim).expect("read"), "precious");
        assert!(!std::fs::symlink_metadata(&target).expect("stat").file_type().is_symlink());
        assert_eq!(std::fs::metadata(&target).expect("stat").permissions().mode() & 0o7777, 0o755);
        // Stray temporaries of this name go; others' files stay.
        std::fs::write(dir.path().join(".out.txt.0123456789abcdef.plinth-tmp"), "x").expect("write");
        sweep_temps(&target);
        assert!(!dir.path().join(".out.txt.0123456789abcdef.plinth-tmp").exists());
        assert!(std::fs::symlink_metadata(dir.path().join(".out.txt.plinth-tmp")).is_ok());
        assert!(victim.exists());
    }

    #[test]
    fn dir_within_stops_at_links_and_resolve_follows_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("a")).expect("mkdir");
        symlink(outside.path(), root.join("a/link")).expect("symlink");
        assert_eq!(dir_within(&root, Path::new("a/link/b"), true).expect("walk"), Within::Link(root.join("a/link")));
        assert!(!outside.path().join("b").exists(), "nothing is created through a link");
        assert_eq!(dir_within(&root, Path::new("a/new/b"), false).expect("walk"), Within::Missing);
        assert_eq!(dir_within(&root, Path::new("a/new/b"), true).expect("walk"), Within::Dir(root.join("a/new/b")));
        assert!(dir_within(&root, Path::new("../x"), true).is_err());

        assert!(!is_within(&root.join("a/link/secret"), &root));
        assert!(is_within(&root.join("a/../a/none/../x"), &root));
        assert!(!is_within(&root.join("a/none/../../.."), &root));
        assert!(is_within(&root, &root));
    }
}

/// Why [`walk_files`] stopped.
#[derive(Debug)]
pub enum WalkError {
    /// `action` ("read the directory", "inspect") failed on `path`.
    Io { action: &'static str, path: PathBuf, error: io::Error },
    /// More than [`MAX_WALK_FILES`] files.
    TooMany,
}

impl std::fmt::Display for WalkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WalkError::Io { action, path, error } => write!(f, "cannot {action} {}: {error}", path.display()),
            WalkError::TooMany => write!(f, "the directory holds more than {MAX_WALK_FILES} files"),
        }
    }
}

/// The most files [`walk_files`] lists: what a `file.tree` source and a
/// `fileset` may hold (a guard against pointing either at `/`).
pub const MAX_WALK_FILES: usize = 100_000;

/// Every regular file under `dir` (relative, '/'-separated, sorted),
/// skipping `skip` and temporary files of an interrupted write ([`is_temp_name`]),
/// at most [`MAX_WALK_FILES`] of them. Iterative: deep trees cannot exhaust the stack;
/// symbolic links to directories are not followed (a link loop cannot make
/// it run forever), links to files are listed.
pub fn walk_files(dir: &Path, skip: Option<&Path>) -> Result<Vec<String>, WalkError> {
    let mut out = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, rel)) = pending.pop() {
        for entry in std::fs::read_dir(&path).map_err(|error| WalkError::Io { action: "read the directory", path: path.clone(), error })? {
            let entry = entry.map_err(|error| WalkError::Io { action: "read the directory", path: path.clone(), error })?;
            let child = entry.path();
            if skip.is_some_and(|s| s == child) {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let child_rel = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
            let file_type = entry.file_type().map_err(|error| WalkError::Io { action: "inspect", path: child.clone(), error })?;
            if file_type.is_dir() {
                pending.push((child, child_rel));
            } else if is_temp_name(&name) {
                continue;
            } else if file_type.is_file() || (file_type.is_symlink() && child.is_file()) {
                out.push(child_rel);
                if out.len() > MAX_WALK_FILES {
                    return Err(WalkError::TooMany);
                }
            }
        }
    }
    out.sort();
    Ok(out)
}
