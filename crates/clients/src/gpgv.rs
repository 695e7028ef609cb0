//! The one `gpgv` runner: checks a detached OpenPGP signature against a
//! given set of ASCII-armored public keys (what a Terraform provider
//! registry serves with each release's `SHA256SUMS`).
//!
//! Invariants:
//! - The keyring `gpgv` reads holds exactly the given keys (de-armored
//!   here into a binary keyring in a private scratch directory), and
//!   `gpgv` runs with its own empty `--homedir` there: no user keyring,
//!   trust database or `GNUPGHOME` takes part. A good signature therefore
//!   means one of the given keys made it.
//! - The verdict is read from `gpgv`'s machine-readable status lines
//!   (`--status-fd 1`): [`verify_detached`] returns a key only when `gpgv`
//!   exits 0 *and* reports `VALIDSIG`.
//! - `gpgv` starts through [`crate::child::command`] (`Kind::Verifier`: the
//!   common allow-list only); its output is small and read whole.

use crate::child::{self, Kind};
use base64::Engine as _;
use std::path::Path;

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// `gpgv` is not installed or could not be started.
    Unavailable(String),
    /// A key is not an ASCII-armored OpenPGP public key block.
    BadKey(String),
    /// The signature does not verify with any of the keys (the reason, from
    /// `gpgv`'s status).
    Bad(String),
    /// The scratch directory could not be written.
    Io(String),
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyError::Unavailable(s) | VerifyError::BadKey(s) | VerifyError::Bad(s) | VerifyError::Io(s) => f.write_str(s),
        }
    }
}

/// The binary packets of an ASCII-armored `PUBLIC KEY BLOCK` (RFC 4880
/// §6.2): the base64 body between the armor lines, after the header lines,
/// without the `=` checksum line.
pub fn dearmor(armored: &str) -> Result<Vec<u8>, String> {
    const BEGIN: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----";
    const END: &str = "-----END PGP PUBLIC KEY BLOCK-----";
    let mut lines = armored.lines().map(str::trim).skip_while(|l| *l != BEGIN);
    if lines.next().is_none() {
        return Err("no `-----BEGIN PGP PUBLIC KEY BLOCK-----` line".into());
    }
    // Armor headers (`Version: …`, `Comment: …`) end at the first blank line;
    // some writers leave the blank line out when there are no headers.
    let rest: Vec<&str> = lines.collect();
    let body_start = if rest.first().is_some_and(|l| l.contains(": ")) { rest.iter().position(|l| l.is_empty()).map(|i| i + 1).unwrap_or(0) } else { 0 };
    let mut body = String::new();
    let mut ended = false;
    for line in &rest[body_start..] {
        if *line == END {
            ended = true;
            break;
        }
        if line.starts_with('=') || line.is_empty() {
            continue;
        }
        body.push_str(line);
    }
    if !ended {
        return Err("no `-----END PGP PUBLIC KEY BLOCK-----` line".into());
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(body.as_bytes()).map_err(|e| format!("the key block is not valid base64 ({e})"))?;
    if bytes.is_empty() {
        return Err("the key block is empty".into());
    }
    Ok(bytes)
}

/// Checks that `signature` (binary or armored, detached) signs `data` with
/// one of `armored_keys`, using `gpgv` and files in `scratch` (an existing,
/// private, empty directory the caller removes). Returns the signing key's
/// fingerprint.
pub fn verify_detached(armored_keys: &[&str], data: &[u8], signature: &[u8], scratch: &Path) -> Result<String, VerifyError> {
    if armored_keys.is_empty() {
        return Err(VerifyError::BadKey("no signing key was given".into()));
    }
    let mut keyring = Vec::new();
    for (i, k) in armored_keys.iter().enumerate() {
        keyring.extend(dearmor(k).map_err(|why| VerifyError::BadKey(format!("key {}: {why}", i + 1)))?);
    }
    let io = |what: &str, e: std::io::Error| VerifyError::Io(format!("cannot write {what} in {}: {e}", scratch.display()));
    let home = scratch.join("gnupg-home");
    std::fs::create_dir(&home).map_err(|e| io("gpgv's home", e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).map_err(|e| io("gpgv's home", e))?;
    }
    let (ring, data_path, sig_path) = (scratch.join("keyring.gpg"), scratch.join("signed-data"), scratch.join("signature"));
    std::fs::write(&ring, &keyring).map_err(|e| io("the keyring", e))?;
    std::fs::write(&data_path, data).map_err(|e| io("the signed data", e))?;
    std::fs::write(&sig_path, signature).map_err(|e| io("the signature", e))?;
    let out = child::command("gpgv", Kind::Verifier, &[])
        .arg("--homedir")
        .arg(&home)
        .arg("--keyring")
        .arg(&ring)
        .args(["--status-fd", "1"])
        .arg(&sig_path)
        .arg(&data_path)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            VerifyError::Unavailable(if e.kind() == std::io::ErrorKind::NotFound { "gpgv is not installed".into() } else { format!("cannot run gpgv: {e}") })
        })?;
    let status = String::from_utf8_lossy(&out.stdout);
    verdict(out.status.success(), &status, &String::from_utf8_lossy(&out.stderr))
}

/// The verdict of `gpgv`'s exit status and status lines.
fn verdict(exited_ok: bool, status: &str, stderr: &str) -> Result<String, VerifyError> {
    let lines: Vec<Vec<&str>> = status.lines().filter_map(|l| l.strip_prefix("[GNUPG:] ")).map(|l| l.split_whitespace().collect()).collect();
    let has = |tag: &str| lines.iter().find(|l| l.first() == Some(&tag));
    if exited_ok && has("BADSIG").is_none() && has("ERRSIG").is_none() {
        if let Some(fpr) = has("VALIDSIG").and_then(|l| l.get(1)) {
            return Ok(fpr.to_string());
        }
    }
    let why = if let Some(l) = has("BADSIG") {
        format!("the signature does not match the signed data (key {})", l.get(1).unwrap_or(&"?"))
    } else if let Some(l) = has("NO_PUBKEY").or_else(|| has("ERRSIG")) {
        format!("the signature was made by key {}, which is not among the given keys", l.get(1).unwrap_or(&"?"))
    } else if has("NODATA").is_some() {
        "the signature file holds no OpenPGP signature".to_string()
    } else {
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no reason given").trim();
        format!("gpgv refused the signature: {last}")
    };
    Err(VerifyError::Bad(why))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn armor_is_removed_with_or_without_headers() {
        let bytes = b"\x99\x00\x01key material";
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        let with = format!(
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\nVersion: x\nComment: y\n\n{}\n{}\n=abcd\n-----END PGP PUBLIC KEY BLOCK-----\n",
            &b64[..8],
            &b64[8..]
        );
        assert_eq!(dearmor(&with).unwrap(), bytes);
        let without = format!("junk before\n-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n{b64}\n-----END PGP PUBLIC KEY BLOCK-----");
        assert_eq!(dearmor(&without).unwrap(), bytes);
        assert!(dearmor("nothing").unwrap_err().contains("BEGIN"));
        assert!(dearmor("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA").unwrap_err().contains("END"));
        assert!(dearmor("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!!\n-----END PGP PUBLIC KEY BLOCK-----").unwrap_err().contains("base64"));
    }

    #[test]
    fn the_verdict_needs_exit_zero_and_validsig() {
        let good = "[GNUPG:] NEWSIG\n[GNUPG:] GOODSIG 0E57 T\n[GNUPG:] VALIDSIG 2D02573D 2026-12-03 0\n";
        assert_eq!(verdict(true, good, ""), Ok("2D02573D".into()));
        assert!(matches!(verdict(false, good, ""), Err(VerifyError::Bad(_))));
        let bad = "[GNUPG:] NEWSIG\n[GNUPG:] BADSIG 0E57 T\n";
        assert!(matches!(verdict(false, bad, ""), Err(VerifyError::Bad(w)) if w.contains("does not match")));
        let unknown = "[GNUPG:] ERRSIG 0E57 22 8 00 1 9 2D02\n[GNUPG:] NO_PUBKEY 0E57\n";
        assert!(matches!(verdict(false, unknown, ""), Err(VerifyError::Bad(w)) if w.contains("not among the given keys")));
        assert!(matches!(verdict(false, "", "gpgv: oops\n"), Err(VerifyError::Bad(w)) if w.contains("oops")));
    }

    #[test]
    fn gpgv_checks_a_real_signature_when_gpg_is_installed() {
        let has = |p: &str| std::process::Command::new(p).arg("--version").output().is_ok_and(|o| o.status.success());
        if !has("gpg") || !has("gpgv") {
            eprintln!("gpg/gpgv not installed: skipping");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir(&home).unwrap();
        let gpg = |args: &[&str], input: Option<&[u8]>| {
            let mut c = std::process::Command::new("gpg");
            c.env("GNUPGHOME", &home).args(["--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", ""]).args(args);
            c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
            let mut p = c.spawn().unwrap();
            if let Some(i) = input {
                use std::io::Write;
                p.stdin.take().unwrap().write_all(i).unwrap();
            } else {
                drop(p.stdin.take());
            }
            let o = p.wait_with_output().unwrap();
            assert!(o.status.success(), "gpg {args:?}: {}", String::from_utf8_lossy(&o.stderr));
            o.stdout
        };
        gpg(&["--quick-gen-key", "Plinth Test <t@example.test>", "ed25519", "sign", "never"], None);
        let key = String::from_utf8(gpg(&["--armor", "--export"], None)).unwrap();
        let data = b"0123  terraform-provider-x_1.0.0_linux_amd64.zip\n";
        let sig = gpg(&["--detach-sign", "--output", "-"], Some(data));
        let scratch = |n: &str| {
            let p = dir.path().join(n);
            std::fs::create_dir(&p).unwrap();
            p
        };
        let fpr = verify_detached(&[&key], data, &sig, &scratch("s1")).unwrap();
        assert_eq!(fpr.len(), 40);
        let e = verify_detached(&[&key], b"other data", &sig, &scratch("s2")).unwrap_err();
        assert!(matches!(&e, VerifyError::Bad(w) if w.contains("does not match")), "{e:?}");
        // A key that did not sign it.
        let other_home = dir.path().join("other");
        std::fs::create_dir(&other_home).unwrap();
        let out = std::process::Command::new("gpg")
            .env("GNUPGHOME", &other_home)
            .args([
                "--batch",
                "--quiet",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                "--quick-gen-key",
                "Other <o@example.test>",
                "ed25519",
                "sign",
                "never",
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
        let other = std::process::Command::new("gpg").env("GNUPGHOME", &other_home).args(["--armor", "--export"]).output().unwrap().stdout;
        let e = verify_detached(&[&String::from_utf8(other).unwrap()], data, &sig, &scratch("s3")).unwrap_err();
        assert!(matches!(&e, VerifyError::Bad(w) if w.contains("not among")), "{e:?}");
        assert!(matches!(verify_detached(&[&key], data, b"garbage", &scratch("s4")), Err(VerifyError::Bad(_))));
    }
}
