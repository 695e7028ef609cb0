//! SCRAM-SHA-256 password verifiers (RFC 5802 / RFC 7677), computed on the
//! client as `psql \password` and libpq's `PQencryptPasswordConn` do, so a
//! role's password never travels in a statement's text (which the server
//! may log: `log_statement`, `pg_stat_statements`, error reports).
//!
//! Invariants:
//! - [`verifier`] gives `SCRAM-SHA-256$<iterations>:<salt b64>$<StoredKey
//!   b64>:<ServerKey b64>` with a fresh random 16-byte salt and 4096
//!   iterations (PostgreSQL's defaults), over the SASLprep'ed password
//!   (the raw bytes when SASLprep refuses it, as PostgreSQL does).
//! - [`verifies`] checks a password against a stored verifier with the
//!   verifier's own salt and iteration count (never by hashing anew and
//!   comparing texts, which differ with every salt), comparing in constant
//!   time; an `md5…` verifier is checked as PostgreSQL computes it.

use base64::Engine;
use sha2::{Digest, Sha256};

const ITERATIONS: u32 = 4096;
const SALT_LEN: usize = 16;
/// The most iterations accepted from a stored verifier (bounds the work a
/// hostile catalog could ask for).
const MAX_ITERATIONS: u32 = 1 << 20;

fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// `Hi()` of RFC 5802: PBKDF2-HMAC-SHA-256 with one output block.
fn hi(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut first = salt.to_vec();
    first.extend_from_slice(&1u32.to_be_bytes());
    let mut u = hmac(password, &first);
    let mut out = u;
    for _ in 1..iterations {
        u = hmac(password, &u);
        out.iter_mut().zip(u.iter()).for_each(|(o, x)| *o ^= x);
    }
    out
}

fn prepared(password: &str) -> Vec<u8> {
    match stringprep::saslprep(password) {
        Ok(p) => p.into_owned().into_bytes(),
        Err(_) => password.as_bytes().to_vec(),
    }
}

/// (StoredKey, ServerKey) of a password for a salt and iteration count.
fn keys(password: &str, salt: &[u8], iterations: u32) -> ([u8; 32], [u8; 32]) {
    let salted = hi(&prepared(password), salt, iterations);
    let client_key = hmac(&salted, b"Client Key");
    let stored_key: [u8; 32] = Sha256::digest(client_key).into();
    (stored_key, hmac(&salted, b"Server Key"))
}

fn verifier_with(password: &str, salt: &[u8], iterations: u32) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let (stored, server) = keys(password, salt, iterations);
    format!("SCRAM-SHA-256${iterations}:{}${}:{}", b64.encode(salt), b64.encode(stored), b64.encode(server))
}

/// A new verifier of `password` (random salt).
pub fn verifier(password: &str) -> String {
    let salt: [u8; SALT_LEN] = rand::random();
    verifier_with(password, &salt, ITERATIONS)
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `password` is the one `stored` (a role's `rolpassword`) was made
/// from; None when `stored` is in no format this knows.
pub fn verifies(password: &str, role: &str, stored: &str) -> Option<bool> {
    if let Some(hex_digest) = stored.strip_prefix("md5") {
        let mut h = md5::Md5::new();
        h.update(password.as_bytes());
        h.update(role.as_bytes());
        return Some(same(hex::encode(h.finalize()).as_bytes(), hex_digest.as_bytes()));
    }
    let rest = stored.strip_prefix("SCRAM-SHA-256$")?;
    let (params, keys_part) = rest.split_once('$')?;
    let (iterations, salt) = params.split_once(':')?;
    let (stored_key, server_key) = keys_part.split_once(':')?;
    let iterations: u32 = iterations.parse().ok().filter(|i| (1..=MAX_ITERATIONS).contains(i))?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let salt = b64.decode(salt).ok()?;
    let (stored_key, server_key) = (b64.decode(stored_key).ok()?, b64.decode(server_key).ok()?);
    let (mine_stored, mine_server) = keys(password, &salt, iterations);
    Some(same(&mine_stored, &stored_key) && same(&mine_server, &server_key))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test case 2: HMAC-SHA-256.
    #[test]
    fn hmac_matches_rfc_4231() {
        assert_eq!(hex::encode(hmac(b"Jefe", b"what do ya want for nothing?")), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    /// RFC 7677's example: SaltedPassword of "pencil" with its salt and
    /// 4096 iterations gives the ServerSignature key the RFC's exchange
    /// proves (its ClientProof and ServerSignature follow from it).
    #[test]
    fn hi_matches_rfc_7677() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let salt = b64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = hi(b"pencil", &salt, 4096);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key = Sha256::digest(client_key);
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(signature.iter()).map(|(a, b)| a ^ b).collect();
        assert_eq!(b64.encode(proof), "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
        let server_signature = hmac(&hmac(&salted, b"Server Key"), auth_message.as_bytes());
        assert_eq!(b64.encode(server_signature), "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    }

    /// The verifier PostgreSQL's client library computes for "secret" with
    /// the salt 1..=16 (rust-postgres' postgres-protocol test vector).
    #[test]
    fn the_verifier_matches_postgresql() {
        let salt: Vec<u8> = (1..=16).collect();
        let v = verifier_with("secret", &salt, 4096);
        assert_eq!(v, "SCRAM-SHA-256$4096:AQIDBAUGBwgJCgsMDQ4PEA==$8rrDg00OqaiWXJ7p+sCgHEIaBSHY89ZJl3mfIsf32oY=:05L1f+yZbiN8O0AnO40Og85NNRhvzTS57naKRWCcsIA=");
        assert_eq!(verifies("secret", "any", &v), Some(true));
        assert_eq!(verifies("secreT", "any", &v), Some(false));
    }

    #[test]
    fn verifiers_are_salted_and_checked_with_their_own_salt() {
        let (a, b) = (verifier("p4ss word"), verifier("p4ss word"));
        assert_ne!(a, b);
        assert!(!a.contains("p4ss"));
        assert_eq!((verifies("p4ss word", "r", &a), verifies("p4ss word", "r", &b)), (Some(true), Some(true)));
        assert_eq!(verifies("other", "r", &a), Some(false));
        // md5 verifiers: md5(password || role name).
        assert_eq!(verifies("secret", "foo", "md54ab2c5d00339c4b2a4e921d2dc4edec7"), Some(true));
        assert_eq!(verifies("secret", "bar", "md54ab2c5d00339c4b2a4e921d2dc4edec7"), Some(false));
        for bad in ["", "plain", "SCRAM-SHA-256$x:y$z", "SCRAM-SHA-256$4096:!!$a:b", "SCRAM-SHA-256$99999999:AQ==$AQ==:AQ=="] {
            assert_eq!(verifies("p", "r", bad), None, "{bad}");
        }
    }
}
