//! The process's one rustls crypto provider.
//!
//! Invariants:
//! - The binary links exactly one rustls 0.23 crypto back end, aws-lc-rs
//!   (reqwest, the AWS SDK's HTTP client, PostgreSQL TLS and kube all build
//!   on it; `cargo tree -i ring` shows ring only under the AWS SDK's legacy
//!   rustls 0.21 client, which has its own, separate crypto).
//! - [`install_crypto_provider`] makes it the process default before any
//!   TLS client is built: `main` calls it first, and every library entry
//!   that builds a client whose TLS asks rustls for the process default
//!   (`kube::Client`) calls it again, so tests and library users never meet
//!   "no process-level CryptoProvider" — even if a later dependency turns
//!   on a second back end and rustls can no longer pick one by itself.
//! - It never replaces a provider someone else installed first (a program
//!   embedding the library may have chosen its own).

use std::sync::Once;

/// Installs aws-lc-rs as rustls's process-level default crypto provider,
/// once; a no-op when a default is already installed.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Err only when another thread installed one in between: that
            // one is the process default then, which is all this promises.
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        }
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_default_provider_is_installed_and_it_is_aws_lc_rs() {
        super::install_crypto_provider();
        super::install_crypto_provider();
        let p = rustls::crypto::CryptoProvider::get_default().expect("a process default");
        let ours = rustls::crypto::aws_lc_rs::default_provider();
        let names = |p: &rustls::crypto::CryptoProvider| p.cipher_suites.iter().map(|s| format!("{:?}", s.suite())).collect::<Vec<_>>();
        assert_eq!(names(p), names(&ours));
        // TLS client configurations build from the default without a panic.
        let _ = rustls::ClientConfig::builder().with_root_certificates(rustls::RootCertStore::empty()).with_no_client_auth();
    }
}
