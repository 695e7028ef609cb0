//! TLS for PostgreSQL connections: the `postgres` provider and the PostgreSQL
//! state store both connect through [`connect`].
//!
//! `sslmode` has libpq's meaning; the driver (`tokio-postgres`) knows only
//! `disable`, `prefer` and `require` and no `sslrootcert`, so both are taken
//! out of the URL here ([`split_url`]) and the rest goes to the driver:
//!
//! - `disable`: plain TCP.
//! - `prefer` (the default, as libpq): TLS when the server offers it, without
//!   verifying its certificate; plain TCP when the server refuses TLS or the
//!   handshake fails.
//! - `require`: TLS, certificate not verified (encryption only) — unless
//!   `sslrootcert` is given, then like `verify-ca` (as libpq).
//! - `verify-ca`: TLS, the chain must lead to a CA of `sslrootcert`.
//! - `verify-full`: `verify-ca` and the certificate must name the host
//!   (DNS name or IP address) the connection was made to.
//!
//! `sslrootcert` is a PEM file of one or more CA certificates; `system` uses
//! the operating system's trust store.
//!
//! The TLS stack is rustls with the aws-lc-rs provider, the one reqwest and
//! the AWS SDK already use: no OpenSSL to link against or ship.

use postgres::config::SslMode as DriverMode;
use postgres::{Client, NoTls};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::PathBuf;
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode` values (`allow` is not supported: it only differs from
/// `prefer` for servers that insist on TLS, which `prefer` handles too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub const NAMES: &'static str = "disable, prefer, require, verify-ca or verify-full";

    pub fn parse(text: &str) -> Option<SslMode> {
        Some(match text {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where the trusted CA certificates come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootCert {
    File(PathBuf),
    /// `sslrootcert=system`: the operating system's trust store.
    System,
}

impl RootCert {
    pub fn parse(text: &str) -> RootCert {
        if text == "system" {
            RootCert::System
        } else {
            RootCert::File(PathBuf::from(text))
        }
    }

    pub fn describe(&self) -> String {
        match self {
            RootCert::File(p) => p.display().to_string(),
            RootCert::System => "the system trust store".to_string(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsOptions {
    pub mode: SslMode,
    pub root_cert: Option<RootCert>,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions { mode: SslMode::Prefer, root_cert: None }
    }
}

/// The TLS settings found in a URL's query (each `None` when absent).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UrlTls {
    pub mode: Option<SslMode>,
    pub root_cert: Option<RootCert>,
}

impl UrlTls {
    pub fn options(&self) -> TlsOptions {
        TlsOptions { mode: self.mode.unwrap_or(SslMode::Prefer), root_cert: self.root_cert.clone() }
    }
}

/// Takes `sslmode` and `sslrootcert` out of a URL's query: (the URL for the
/// driver, what they said). Errors never repeat the URL (it may hold a
/// password), only the offending value.
pub fn split_url(url: &str) -> Result<(String, UrlTls), String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), UrlTls::default()));
    };
    let mut tls = UrlTls::default();
    let mut kept = Vec::new();
    for kv in query.split('&').filter(|kv| !kv.is_empty()) {
        let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
        match key {
            "sslmode" => {
                let value = crate::redact::percent_decode(value).ok_or("sslmode is not valid percent-encoded UTF-8")?;
                let mode = SslMode::parse(&value).ok_or_else(|| format!("sslmode `{value}` is not one of {}", SslMode::NAMES))?;
                tls.mode = Some(mode);
            }
            "sslrootcert" => {
                let value = crate::redact::percent_decode(value).ok_or("sslrootcert is not valid percent-encoded UTF-8")?;
                if value.is_empty() {
                    return Err("sslrootcert is empty".into());
                }
                tls.root_cert = Some(RootCert::parse(&value));
            }
            _ => kept.push(kv),
        }
    }
    let url = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    Ok((url, tls))
}

/// Why a connection could not be made.
#[derive(Debug)]
pub enum ConnectError {
    /// The TLS settings cannot be used (the CA file is unreadable or holds
    /// no certificate): nothing was sent.
    Setup(String),
    /// The TLS handshake failed or the server refused TLS: the certificate
    /// did not verify, it names another host, the server has TLS off.
    Tls(String),
    /// Anything else: refused, timed out, authentication, a missing database.
    Pg(postgres::Error),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Setup(s) | ConnectError::Tls(s) => f.write_str(s),
            ConnectError::Pg(e) => write!(f, "{e}"),
        }
    }
}

/// A driver error from the TLS step (`Kind::Tls` in tokio-postgres, which
/// does not expose its kinds: its message is fixed).
fn is_tls_error(e: &postgres::Error) -> bool {
    let text = e.to_string();
    text == "error performing TLS handshake" || text.starts_with("error performing TLS handshake:")
}

/// The TLS failure as a sentence: the driver's message and its cause.
fn tls_reason(e: &postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => {
            let cause = cause.to_string();
            if cause == "server does not support TLS" {
                "the server does not accept TLS connections (ssl = off)".to_string()
            } else {
                format!("the TLS handshake failed: {cause}")
            }
        }
        None => "the TLS handshake failed".to_string(),
    }
}

/// Connects with `config` (its sslmode is overwritten) as `tls` says.
pub fn connect(config: &postgres::Config, tls: &TlsOptions) -> Result<Client, ConnectError> {
    let mut config = config.clone();
    if tls.mode == SslMode::Disable {
        config.ssl_mode(DriverMode::Disable);
        return config.connect(NoTls).map_err(ConnectError::Pg);
    }
    let connector = MakeRustlsConnect::new(client_config(tls)?);
    if tls.mode == SslMode::Prefer {
        config.ssl_mode(DriverMode::Prefer);
        return match config.connect(connector) {
            // As libpq: a failed handshake is retried without TLS.
            Err(e) if is_tls_error(&e) => {
                config.ssl_mode(DriverMode::Disable);
                config.connect(NoTls).map_err(ConnectError::Pg)
            }
            other => other.map_err(ConnectError::Pg),
        };
    }
    config.ssl_mode(DriverMode::Require);
    config.connect(connector).map_err(|e| if is_tls_error(&e) { ConnectError::Tls(tls_reason(&e)) } else { ConnectError::Pg(e) })
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The rustls configuration for a TLS mode (not `disable`).
pub fn client_config(tls: &TlsOptions) -> Result<ClientConfig, ConnectError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectError::Setup(format!("TLS cannot be set up: {e}")))?;
    let verify = match (tls.mode, &tls.root_cert) {
        (SslMode::Disable | SslMode::Prefer, _) | (SslMode::Require, None) => None,
        (SslMode::Require | SslMode::VerifyCa, Some(root)) => Some((root, false)),
        (SslMode::VerifyFull, Some(root)) => Some((root, true)),
        (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
            return Err(ConnectError::Setup(format!(
                "sslmode={} needs sslrootcert, the CA certificate(s) to verify the server against (a PEM file, or `system` for the system trust store)",
                tls.mode.as_str()
            )))
        }
    };
    let config = match verify {
        None => builder.dangerous().with_custom_certificate_verifier(Arc::new(NoVerify(provider))).with_no_client_auth(),
        Some((root, check_name)) => {
            let roots = Arc::new(load_roots(root)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
                .build()
                .map_err(|e| ConnectError::Setup(format!("the CA certificates from {} cannot be used: {e}", root.describe())))?;
            if check_name {
                builder.with_webpki_verifier(webpki).with_no_client_auth()
            } else {
                builder.dangerous().with_custom_certificate_verifier(Arc::new(ChainOnly(webpki))).with_no_client_auth()
            }
        }
    };
    Ok(config)
}

fn load_roots(root: &RootCert) -> Result<RootCertStore, ConnectError> {
    let mut store = RootCertStore::empty();
    match root {
        RootCert::File(path) => {
            let pem = std::fs::read(path).map_err(|e| ConnectError::Setup(format!("the CA file {} (sslrootcert) cannot be read: {e}", path.display())))?;
            let mut found = 0;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| ConnectError::Setup(format!("the CA file {} (sslrootcert) is not valid PEM: {e}", path.display())))?;
                store
                    .add(cert)
                    .map_err(|e| ConnectError::Setup(format!("the CA file {} (sslrootcert) holds a certificate that cannot be used: {e}", path.display())))?;
                found += 1;
            }
            if found == 0 {
                return Err(ConnectError::Setup(format!("the CA file {} (sslrootcert) holds no PEM certificate", path.display())));
            }
        }
        RootCert::System => {
            let loaded = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(loaded.certs);
            if store.is_empty() {
                let why = loaded.errors.first().map(|e| format!(": {e}")).unwrap_or_default();
                return Err(ConnectError::Setup(format!("no CA certificate was found in the system trust store{why}")));
            }
        }
    }
    Ok(store)
}

/// `require` and `prefer`: any certificate (encryption only, as libpq); the
/// handshake's signatures are still checked against the certificate's key.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must verify; the name in the certificate is not
/// compared with the host.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }
    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_takes_out_tls_parameters() {
        let (url, tls) = split_url("postgres://u:pw@h/db?sslmode=verify-full&connect_timeout=3&sslrootcert=%2Ftmp%2Fca.pem").unwrap();
        assert_eq!(url, "postgres://u:pw@h/db?connect_timeout=3");
        assert_eq!(tls.mode, Some(SslMode::VerifyFull));
        assert_eq!(tls.root_cert, Some(RootCert::File("/tmp/ca.pem".into())));
        let (url, tls) = split_url("postgres://h/db?sslmode=disable").unwrap();
        assert_eq!((url.as_str(), tls.mode), ("postgres://h/db", Some(SslMode::Disable)));
        let (url, tls) = split_url("postgres://h/db").unwrap();
        assert_eq!((url.as_str(), tls.options()), ("postgres://h/db", TlsOptions::default()));
        assert_eq!(split_url("postgres://h/db?sslrootcert=system").unwrap().1.root_cert, Some(RootCert::System));
    }

    #[test]
    fn split_errors_name_only_the_value() {
        let e = split_url("postgres://u:hunter2@h/db?sslmode=allow").unwrap_err();
        assert!(e.contains("allow") && !e.contains("hunter2"), "{e}");
        assert!(split_url("postgres://h/db?sslmode=%zz").is_err());
        assert!(split_url("postgres://h/db?sslmode=%").is_err());
        assert!(split_url("postgres://h/db?sslrootcert=").is_err());
        assert!(split_url("postgres://h/db?sslrootcert=%ff").is_err());
    }

    #[test]
    fn verify_modes_need_a_ca() {
        for mode in [SslMode::VerifyCa, SslMode::VerifyFull] {
            let e = client_config(&TlsOptions { mode, root_cert: None }).unwrap_err();
            assert!(matches!(e, ConnectError::Setup(ref s) if s.contains("sslrootcert")), "{e}");
        }
        assert!(client_config(&TlsOptions { mode: SslMode::Require, root_cert: None }).is_ok());
    }

    #[test]
    fn bad_ca_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let missing = TlsOptions { mode: SslMode::VerifyFull, root_cert: Some(RootCert::File(dir.path().join("none.pem"))) };
        assert!(matches!(client_config(&missing), Err(ConnectError::Setup(s)) if s.contains("cannot be read")));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let empty = TlsOptions { mode: SslMode::VerifyCa, root_cert: Some(RootCert::File(empty)) };
        assert!(matches!(client_config(&empty), Err(ConnectError::Setup(s)) if s.contains("no PEM certificate")));
    }
}
