//! Unpacking a provider release zip, safely.
//!
//! A reader of exactly what provider releases are: a zip (no ZIP64, one
//! disk, no encryption) of regular files, stored or deflated. Every entry
//! name is a relative path of plain components (no `..`, `.`, empty part,
//! leading `/`, backslash, colon, NUL or newline); symbolic links and
//! special files are refused; each file's size and CRC-32 are checked
//! against the central directory and the output is capped (a file never
//! grows past its declared size, the whole package past [`MAX_TOTAL`]).
//! Files are created new (a name twice is an error) with mode 0644, or 0755
//! for the provider binary and files the archive marks executable. Every
//! bound is checked: malformed input is an error, never a panic.

use crate::hash::FileDigest;
use miniz_oxide::inflate::stream::{inflate, InflateState};
use miniz_oxide::{DataFormat, MZFlush, MZStatus};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

/// At most this many entries in an archive.
pub const MAX_ENTRIES: usize = 10_000;
/// At most this many bytes unpacked in all.
pub const MAX_TOTAL: u64 = 4 << 30;

struct Entry {
    name: String,
    flags: u16,
    method: u16,
    crc: u32,
    compressed: u64,
    size: u64,
    local: u64,
    /// `st_mode` when the archive was made on Unix.
    unix_mode: Option<u32>,
}

fn u16_at(d: &[u8], at: usize) -> Option<u16> {
    d.get(at..at.checked_add(2)?).map(|b| u16::from_le_bytes([b[0], b[1]]))
}
fn u32_at(d: &[u8], at: usize) -> Option<u32> {
    d.get(at..at.checked_add(4)?).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

const TRUNCATED: &str = "the archive is truncated or its directory is damaged";

fn central_directory(d: &[u8]) -> Result<Vec<Entry>, String> {
    if d.len() < 22 {
        return Err("not a zip archive (too short)".into());
    }
    let lowest = d.len().saturating_sub(22 + 65_535);
    let eocd = (lowest..=d.len() - 22)
        .rev()
        .find(|&i| d.get(i..i + 4) == Some(&[0x50, 0x4b, 0x05, 0x06][..]))
        .ok_or("not a zip archive (no end-of-directory record)")?;
    let field16 = |off: usize| u16_at(d, eocd + off).ok_or(TRUNCATED);
    let field32 = |off: usize| u32_at(d, eocd + off).ok_or(TRUNCATED);
    let (disk, cd_disk, on_disk, count) = (field16(4)?, field16(6)?, field16(8)?, field16(10)?);
    let (cd_size, cd_offset) = (field32(12)?, field32(16)?);
    if count == 0xFFFF || cd_size == u32::MAX || cd_offset == u32::MAX {
        return Err("ZIP64 archives are not supported (provider releases never need them)".into());
    }
    if disk != 0 || cd_disk != 0 || on_disk != count {
        return Err("multi-part archives are not supported".into());
    }
    if usize::from(count) > MAX_ENTRIES {
        return Err(format!("the archive has more than {MAX_ENTRIES} entries"));
    }
    let mut at = cd_offset as usize;
    let mut out = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        if u32_at(d, at) != Some(0x0201_4b50) {
            return Err(TRUNCATED.into());
        }
        let f16 = |off: usize| u16_at(d, at + off).ok_or(TRUNCATED);
        let f32 = |off: usize| u32_at(d, at + off).ok_or(TRUNCATED);
        let made_by = f16(4)?;
        let (flags, method, crc) = (f16(8)?, f16(10)?, f32(16)?);
        let (compressed, size) = (f32(20)?, f32(24)?);
        let (name_len, extra_len, comment_len) = (usize::from(f16(28)?), usize::from(f16(30)?), usize::from(f16(32)?));
        let (external, local) = (f32(38)?, f32(42)?);
        let name_at = at + 46;
        let raw = d.get(name_at..name_at + name_len).ok_or(TRUNCATED)?;
        let name = String::from_utf8(raw.to_vec()).map_err(|_| "an entry name is not UTF-8".to_string())?;
        if compressed == u32::MAX || size == u32::MAX || local == u32::MAX {
            return Err("ZIP64 archives are not supported (provider releases never need them)".into());
        }
        // Host 3 is Unix, 19 macOS: the high half of the external attributes is st_mode.
        let unix_mode = matches!(made_by >> 8, 3 | 19).then_some(external >> 16);
        out.push(Entry { name, flags, method, crc, compressed: compressed.into(), size: size.into(), local: local.into(), unix_mode });
        at = name_at + name_len + extra_len + comment_len;
    }
    Ok(out)
}

/// The components of a safe relative entry name (a trailing `/` marks a
/// directory and is not part of them).
fn safe_components(name: &str) -> Result<Vec<&str>, String> {
    let bad = |why: &str| Err(format!("the entry {name:?} {why}"));
    if name.is_empty() {
        return bad("has an empty name");
    }
    if name.starts_with('/') {
        return bad("is an absolute path");
    }
    if let Some(c) = name.chars().find(|c| matches!(c, '\\' | ':' | '\0' | '\n' | '\r')) {
        return bad(&format!("contains {c:?}"));
    }
    let parts: Vec<&str> = name.strip_suffix('/').unwrap_or(name).split('/').collect();
    if parts.iter().any(|p| p.is_empty() || *p == "." || *p == "..") {
        return bad("has an empty, `.` or `..` part: it would leave the package directory");
    }
    Ok(parts)
}

/// Whether `name` (at the package root) is the provider's executable:
/// `terraform-provider-<type>…`, as Terraform looks for it.
pub fn is_provider_binary(name: &str, ptype: &str) -> bool {
    !name.contains('/') && name.starts_with(&format!("terraform-provider-{ptype}"))
}

/// Unpacks the zip `data` into the empty directory `dest`; returns each
/// file's relative name and SHA-256 (for the `h1:` hash).
pub fn unpack(data: &[u8], dest: &Path, ptype: &str) -> Result<Vec<(String, FileDigest)>, String> {
    let entries = central_directory(data)?;
    let mut files = Vec::new();
    let mut total: u64 = 0;
    for e in &entries {
        let parts = safe_components(&e.name)?;
        let kind = e.unix_mode.map(|m| m & 0o170_000).unwrap_or(0);
        let is_dir = e.name.ends_with('/') || kind == 0o040_000;
        if kind == 0o120_000 {
            return Err(format!("the entry {:?} is a symbolic link; provider packages hold regular files only", e.name));
        }
        if !matches!(kind, 0 | 0o100_000 | 0o040_000) || (is_dir && !matches!(kind, 0 | 0o040_000)) {
            return Err(format!("the entry {:?} is a special file; provider packages hold regular files only", e.name));
        }
        let path = parts.iter().fold(dest.to_path_buf(), |p, c| p.join(c));
        if is_dir {
            std::fs::create_dir_all(&path).map_err(|err| format!("cannot create {:?}: {err}", e.name))?;
            continue;
        }
        if e.flags & 1 != 0 {
            return Err(format!("the entry {:?} is encrypted", e.name));
        }
        total = total.saturating_add(e.size);
        if total > MAX_TOTAL {
            return Err(format!("the archive unpacks to more than {} GiB", MAX_TOTAL >> 30));
        }
        let local = usize::try_from(e.local).map_err(|_| TRUNCATED.to_string())?;
        if u32_at(data, local) != Some(0x0403_4b50) {
            return Err(format!("the entry {:?} has no local header where the directory says", e.name));
        }
        let name_len = usize::from(u16_at(data, local + 26).ok_or(TRUNCATED)?);
        let extra_len = usize::from(u16_at(data, local + 28).ok_or(TRUNCATED)?);
        let start = local + 30 + name_len + extra_len;
        let compressed = usize::try_from(e.compressed).map_err(|_| TRUNCATED.to_string())?;
        let body = data.get(start..start.checked_add(compressed).ok_or(TRUNCATED)?).ok_or(TRUNCATED)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|err| format!("cannot create the directory of {:?}: {err}", e.name))?;
        }
        let executable = is_provider_binary(&e.name, ptype) || e.unix_mode.is_some_and(|m| m & 0o111 != 0);
        let mode = if executable { 0o755 } else { 0o644 };
        let mut out = create_new(&path, mode).map_err(|err| {
            if err.kind() == std::io::ErrorKind::AlreadyExists {
                format!("the entry {:?} appears twice", e.name)
            } else {
                format!("cannot create {:?}: {err}", e.name)
            }
        })?;
        let mut sink = Sink { out: &mut out, sha: Sha256::new(), crc: crc32fast::Hasher::new(), written: 0, limit: e.size, name: &e.name };
        match e.method {
            0 => sink.write(body)?,
            8 => inflate_into(body, &mut sink)?,
            m => return Err(format!("the entry {:?} uses compression method {m}; only stored and deflated entries are supported", e.name)),
        }
        if sink.written != e.size {
            return Err(format!("the entry {:?} is {} bytes, not the {} its directory says", e.name, sink.written, e.size));
        }
        if sink.crc.clone().finalize() != e.crc {
            return Err(format!("the entry {:?} fails its CRC-32 check", e.name));
        }
        let digest: FileDigest = sink.sha.finalize().into();
        out.flush().and_then(|()| out.sync_all()).map_err(|err| format!("cannot write {:?}: {err}", e.name))?;
        set_mode(&path, mode).map_err(|err| format!("cannot set the mode of {:?}: {err}", e.name))?;
        files.push((parts.join("/"), digest));
    }
    Ok(files)
}

/// Where unpacked bytes go: the file, its hashes, and the declared size
/// that it may not exceed.
struct Sink<'a> {
    out: &'a mut std::fs::File,
    sha: Sha256,
    crc: crc32fast::Hasher,
    written: u64,
    limit: u64,
    name: &'a str,
}

impl Sink<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.written = self.written.saturating_add(bytes.len() as u64);
        if self.written > self.limit {
            return Err(format!("the entry {:?} unpacks to more than the {} bytes its directory says", self.name, self.limit));
        }
        self.sha.update(bytes);
        self.crc.update(bytes);
        self.out.write_all(bytes).map_err(|e| format!("cannot write {:?}: {e}", self.name))
    }
}

fn inflate_into(mut input: &[u8], sink: &mut Sink<'_>) -> Result<(), String> {
    let mut state = InflateState::new_boxed(DataFormat::Raw);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let r = inflate(&mut state, input, &mut buf, MZFlush::None);
        input = input.get(r.bytes_consumed..).unwrap_or(&[]);
        sink.write(buf.get(..r.bytes_written).unwrap_or(&[]))?;
        match r.status {
            Ok(MZStatus::StreamEnd) => return Ok(()),
            Ok(_) if r.bytes_consumed > 0 || r.bytes_written > 0 => {}
            _ => return Err(format!("the entry {:?} is not valid deflate data", sink.name)),
        }
    }
}

#[cfg(unix)]
fn create_new(path: &Path, mode: u32) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path)
}
#[cfg(not(unix))]
fn create_new(path: &Path, _mode: u32) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().write(true).create_new(true).open(path)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}
#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

/// Builds zip archives for tests: stored or deflated entries with Unix
/// modes (what provider releases are), and room to damage them.
#[cfg(test)]
pub(crate) mod build {
    pub struct File {
        pub name: String,
        pub data: Vec<u8>,
        pub mode: u32,
        pub deflate: bool,
    }

    pub fn file(name: &str, data: &[u8], mode: u32) -> File {
        File { name: name.into(), data: data.to_vec(), mode, deflate: true }
    }

    pub fn zip(files: &[File]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for f in files {
            let body = if f.deflate { miniz_oxide::deflate::compress_to_vec(&f.data, 6) } else { f.data.clone() };
            let crc = crc32fast::hash(&f.data);
            let offset = out.len() as u32;
            let method: u16 = if f.deflate { 8 } else { 0 };
            out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
            out.extend_from_slice(&20u16.to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(&method.to_le_bytes());
            out.extend_from_slice(&[0; 4]);
            out.extend_from_slice(&crc.to_le_bytes());
            out.extend_from_slice(&(body.len() as u32).to_le_bytes());
            out.extend_from_slice(&(f.data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(f.name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(f.name.as_bytes());
            out.extend_from_slice(&body);
            central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
            central.extend_from_slice(&((3u16 << 8) | 20).to_le_bytes());
            central.extend_from_slice(&20u16.to_le_bytes());
            central.extend_from_slice(&0u16.to_le_bytes());
            central.extend_from_slice(&method.to_le_bytes());
            central.extend_from_slice(&[0; 4]);
            central.extend_from_slice(&crc.to_le_bytes());
            central.extend_from_slice(&(body.len() as u32).to_le_bytes());
            central.extend_from_slice(&(f.data.len() as u32).to_le_bytes());
            central.extend_from_slice(&(f.name.len() as u16).to_le_bytes());
            central.extend_from_slice(&[0; 8]);
            central.extend_from_slice(&(f.mode << 16).to_le_bytes());
            central.extend_from_slice(&offset.to_le_bytes());
            central.extend_from_slice(f.name.as_bytes());
        }
        let cd_offset = out.len() as u32;
        out.extend_from_slice(&central);
        out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&(files.len() as u16).to_le_bytes());
        out.extend_from_slice(&(files.len() as u16).to_le_bytes());
        out.extend_from_slice(&(central.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::build::{file, zip};
    use super::*;
    use crate::hash::{h1_dir, h1_of};

    fn unpack_to(data: &[u8]) -> (tempfile::TempDir, Result<Vec<(String, FileDigest)>, String>) {
        let dir = tempfile::tempdir().unwrap();
        let r = unpack(data, dir.path(), "x");
        (dir, r)
    }

    #[test]
    fn a_release_unpacks_with_the_binary_executable_and_hashes_like_its_directory() {
        let mut stored = file("README.md", b"read me", 0o100_644);
        stored.deflate = false;
        let data =
            zip(&[file("terraform-provider-x_v1.2.3", &vec![7u8; 200_000], 0o100_644), stored, file("docs/", b"", 0o040_755), file("docs/a.txt", b"a", 0)]);
        let (dir, files) = unpack_to(&data);
        let files = files.unwrap();
        assert_eq!(files.len(), 3);
        assert_eq!(std::fs::read(dir.path().join("docs/a.txt")).unwrap(), b"a");
        assert_eq!(h1_of(files).unwrap(), h1_dir(dir.path()).unwrap());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |n: &str| std::fs::metadata(dir.path().join(n)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode("terraform-provider-x_v1.2.3"), 0o755);
            assert_eq!(mode("README.md"), 0o644);
        }
    }

    #[test]
    fn unsafe_entries_are_refused() {
        for (name, mode, why) in [
            ("../evil", 0o100_644, "leave the package"),
            ("a/../../evil", 0o100_644, "leave the package"),
            ("/etc/evil", 0o100_644, "absolute"),
            ("a\\b", 0o100_644, "contains '\\\\'"),
            ("c:evil", 0o100_644, "contains ':'"),
            ("a//b", 0o100_644, "empty"),
            ("./a", 0o100_644, "`.`"),
            ("link", 0o120_777, "symbolic link"),
            ("fifo", 0o010_644, "special file"),
        ] {
            let (dir, r) = unpack_to(&zip(&[file(name, b"x", mode)]));
            let e = r.expect_err(name);
            assert!(e.contains(why), "{name}: {e}");
            assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "{name} left files behind");
        }
        let (_d, r) = unpack_to(&zip(&[file("a", b"1", 0o100_644), file("a", b"2", 0o100_644)]));
        assert!(r.unwrap_err().contains("twice"));
    }

    #[test]
    fn damaged_archives_are_errors_never_panics() {
        let good = zip(&[file("terraform-provider-x", &vec![1u8; 5000], 0o100_755), file("LICENSE", b"text", 0o100_644)]);
        assert!(unpack_to(&good).1.is_ok());
        // Every truncation and every single-byte corruption of the
        // directory, the headers and the start of the data.
        for n in 0..good.len() {
            let _ = unpack_to(&good[..n]).1.expect_err("truncated");
        }
        for i in (0..good.len()).step_by(7) {
            for v in [0x00u8, 0xff, 0x7f] {
                let mut bad = good.clone();
                bad[i] = v;
                let _ = unpack_to(&bad);
            }
        }
        assert!(unpack_to(b"not a zip at all, just some text").1.unwrap_err().contains("not a zip"));
        // A CRC that does not match, a size that lies.
        let mut crc = good.clone();
        let cd = crc.windows(4).position(|w| w == [0x50, 0x4b, 0x01, 0x02]).unwrap();
        crc[cd + 16] ^= 1;
        assert!(unpack_to(&crc).1.unwrap_err().contains("CRC"));
        let mut size = good.clone();
        size[cd + 24] = size[cd + 24].wrapping_sub(1);
        assert!(unpack_to(&size).1.unwrap_err().contains("bytes"));
    }
}
