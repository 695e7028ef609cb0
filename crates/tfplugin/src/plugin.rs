//! One running provider plugin: started as Terraform starts it (HashiCorp's
//! go-plugin handshake), spoken to over gRPC on its unix socket with mutual
//! TLS, stopped when dropped.
//!
//! Invariants:
//! - The child gets [`plinth_clients::child`]'s environment for
//!   `TerraformProvider` (no credentials unless the provider block's
//!   `pass_env` names them) plus the handshake variables; it dies with
//!   Plinth (`PR_SET_PDEATHSIG`, set from a thread that lives as long as the
//!   process), and is stopped (Stop/StopProvider, then killed) on drop.
//! - Automatic mutual TLS: a fresh client certificate per plugin, given in
//!   `PLUGIN_CLIENT_CERT`; the server must present exactly the certificate
//!   it announced on its handshake line (pinned, not merely "signed by").
//! - The provider's stderr goes to its log file, every line redacted of the
//!   configuration's sensitive values; its last lines are quoted (redacted)
//!   when it dies or fails to start.
//! - Calls run on one runtime of their own, so the synchronous planner and
//!   the asynchronous executor can both use a plugin.

use crate::proto::{v5, v6};
use plinth_base::diagnostic::Diagnostic;
use std::collections::VecDeque;
use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// go-plugin's magic cookie for Terraform providers (a constant of the
/// protocol, not a secret): a provider started without it refuses to run.
const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
const MAGIC_COOKIE_VALUE: &str = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
/// How long a provider may take to print its address.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);
/// Lines of stderr kept for diagnostics.
const TAIL_LINES: usize = 20;

/// The runtime every plugin call runs on.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("plinth-tfplugin")
            // A provider that exits (after Shutdown, or crashing) closes its
            // socket under a write: EPIPE for these threads, not the
            // SIGPIPE that ends Plinth (whose default disposition it keeps
            // for `plinth plan | head`).
            .on_thread_start(block_sigpipe)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot start the provider plugin runtime: {e}"))
    })
}

fn block_sigpipe() {
    // SAFETY: changes only the calling thread's signal mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Runs `fut` on the plugin runtime and waits for it from synchronous code
/// (the planner), inside or outside another runtime.
pub fn block_on<F>(fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    runtime().spawn(async move {
        let _ = tx.send(fut.await);
    });
    match rx.recv() {
        Ok(v) => v,
        Err(_) => panic!("a provider plugin call was dropped by its runtime"),
    }
}

/// Runs `fut` on the plugin runtime and awaits it from any runtime.
pub async fn run<F>(fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match runtime().spawn(fut).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// The gRPC client of the protocol version the plugin chose.
#[derive(Clone)]
pub enum Client {
    V5(v5::provider_client::ProviderClient<Channel>),
    V6(v6::provider_client::ProviderClient<Channel>),
}

/// What to start.
pub struct Launch {
    /// The provider's local name, for messages (`otc`).
    pub name: String,
    pub binary: PathBuf,
    /// Extra environment (the provider block's `pass_env`).
    pub env: Vec<(String, String)>,
    /// Where its stderr goes (appended); None: kept only in memory.
    pub log: Option<PathBuf>,
    /// Texts never to write (the configuration's sensitive values).
    pub secrets: Vec<String>,
    /// The provider's working directory (the project: relative paths in
    /// its configuration resolve there, as under Terraform); None: Plinth's.
    pub cwd: Option<PathBuf>,
}

pub struct Plugin {
    pub name: String,
    pub protocol: u32,
    pub client: Client,
    channel: Channel,
    child: Arc<Mutex<Option<Child>>>,
    tail: Arc<Mutex<VecDeque<String>>>,
}

type Live = (std::sync::Weak<Mutex<Option<Child>>>, Channel);

/// Every plugin started by this process and not yet stopped.
fn live() -> &'static Mutex<Vec<Live>> {
    static LIVE: OnceLock<Mutex<Vec<Live>>> = OnceLock::new();
    LIVE.get_or_init(|| Mutex::new(Vec::new()))
}

/// Stops every provider plugin still running (at the end of a run, and
/// when Plinth is interrupted): each is asked to stop, then ended.
pub fn stop_all() {
    let all: Vec<Live> = live().lock().map(|mut l| std::mem::take(&mut *l)).unwrap_or_default();
    for (child, channel) in all {
        if let Some(child) = child.upgrade() {
            stop_child(&child, channel);
        }
    }
}

/// Ends a plugin as go-plugin's own clients do: the `GRPCController`
/// service's `Shutdown` (every go-plugin server has it), a moment for the
/// process to exit, then SIGKILL.
fn stop_child(child: &Mutex<Option<Child>>, channel: Channel) {
    let Ok(mut guard) = child.lock() else { return };
    let Some(mut child) = guard.take() else { return };
    let asked = block_on(async move {
        let shutdown = async {
            let mut grpc = tonic::client::Grpc::new(channel);
            if grpc.ready().await.is_err() {
                return false;
            }
            let path = tonic::codegen::http::uri::PathAndQuery::from_static("/plugin.GRPCController/Shutdown");
            let codec = tonic_prost::ProstCodec::<(), ()>::default();
            grpc.unary(tonic::Request::new(()), path, codec).await.is_ok()
        };
        tokio::time::timeout(Duration::from_secs(2), shutdown).await.unwrap_or(false)
    });
    if asked {
        for _ in 0..200 {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Plugin {
    /// Starts the provider and connects to it.
    pub fn start(launch: Launch) -> Result<Plugin, Diagnostic> {
        let name = launch.name.clone();
        block_on(async move { start(launch).await }).map_err(|d| d.help_prefix_name(&name))
    }

    /// Recent stderr lines (redacted), for a diagnostic.
    pub fn stderr_tail(&self) -> String {
        self.tail.lock().map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n")).unwrap_or_default()
    }

    /// True while the process runs.
    pub fn alive(&self) -> bool {
        match self.child.lock() {
            Ok(mut c) => c.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None))),
            Err(_) => false,
        }
    }

    /// Asks the provider to stop, then ends the process.
    pub fn stop(&self) {
        stop_child(&self.child, self.channel.clone());
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        self.stop();
    }
}

trait HelpPrefix {
    fn help_prefix_name(self, name: &str) -> Diagnostic;
}
impl HelpPrefix for Diagnostic {
    fn help_prefix_name(self, name: &str) -> Diagnostic {
        let message = format!("provider `{name}`: {}", self.message);
        Diagnostic { message, ..self }
    }
}

fn start_error(message: impl Into<String>, help: impl Into<String>) -> Diagnostic {
    Diagnostic::new("P7001", message).help(help)
}

async fn start(launch: Launch) -> Result<Plugin, Diagnostic> {
    let Launch { name, binary, env, log, secrets, cwd } = launch;
    // Absolute, so that the working directory does not change its meaning.
    let binary = std::path::absolute(&binary).unwrap_or(binary);
    let (cert_pem, key_der, cert_der) = client_certificate()?;
    let mut extra = env;
    // Providers log at trace level unless told otherwise, megabytes a run
    // that cost them CPU: off, unless PLINTH_PROVIDER_LOG names a level
    // (trace, debug, info, warn, error) for their log file.
    let level = std::env::var("PLINTH_PROVIDER_LOG").ok().filter(|l| ["trace", "debug", "info", "warn", "error"].contains(&l.to_ascii_lowercase().as_str()));
    extra.retain(|(k, _)| k != "TF_LOG" && k != "TF_LOG_PROVIDER");
    extra.push(("TF_LOG".into(), level.unwrap_or_else(|| "off".into()).to_ascii_uppercase()));
    extra.push((MAGIC_COOKIE_KEY.into(), MAGIC_COOKIE_VALUE.into()));
    extra.push(("PLUGIN_PROTOCOL_VERSIONS".into(), "5,6".into()));
    extra.push(("PLUGIN_CLIENT_CERT".into(), cert_pem));
    extra.push(("PLUGIN_MIN_PORT".into(), "10000".into()));
    extra.push(("PLUGIN_MAX_PORT".into(), "25000".into()));
    let mut cmd = plinth_clients::child::command(&binary, plinth_clients::child::Kind::TerraformProvider, &extra);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    // SAFETY: prctl is async-signal-safe; it only marks this child to be
    // killed when the thread that spawned it (a runtime worker, which lives
    // as long as Plinth) ends.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| {
        start_error(
            format!("cannot start {}", binary.display()),
            format!("{e}. Run `plinth init` to install the provider, or check the file is an executable for this platform."),
        )
    })?;
    let tail = Arc::new(Mutex::new(VecDeque::new()));
    if let Some(stderr) = child.stderr.take() {
        let tail = tail.clone();
        let secrets = secrets.clone();
        let mut file = log.as_deref().and_then(open_log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                // The same scrubbing as every diagnostic's (escaped forms too).
                let line = if secrets.is_empty() { line } else { Diagnostic::new("P7000", line).redact(&secrets).message };
                if let Some(f) = file.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
                if let Ok(mut t) = tail.lock() {
                    if t.len() == TAIL_LINES {
                        t.pop_front();
                    }
                    t.push_back(line);
                }
            }
        });
    }
    let Some(stdout) = child.stdout.take() else { return Err(start_error("no stdout", "")) };
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let first = reader.read_line(&mut line).map(|_| line.clone());
        let _ = tx.send(first);
        // Keep reading: a plugin that writes to stdout must not block.
        let mut sink = String::new();
        while reader.read_line(&mut sink).is_ok_and(|n| n > 0) {
            sink.clear();
        }
    });
    let line = match tokio::time::timeout(HANDSHAKE_TIMEOUT, rx).await {
        Ok(Ok(Ok(line))) if !line.is_empty() => line,
        other => {
            let _ = child.kill();
            let status = child.wait().ok().map(|s| s.to_string()).unwrap_or_default();
            // Give the stderr reader a moment to catch the last words.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let said = tail.lock().map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n")).unwrap_or_default();
            let why = match other {
                Err(_) => format!("it printed no plugin address within {} s", HANDSHAKE_TIMEOUT.as_secs()),
                _ => format!("it exited ({status}) without printing its plugin address"),
            };
            return Err(start_error(
                format!("{} did not start", binary.display()),
                format!(
                    "{why}. Is it a Terraform provider (terraform-provider-*)?{}",
                    if said.is_empty() { String::new() } else { format!(" It said:\n{said}") }
                ),
            ));
        }
    };
    let hs = match parse_handshake(line.trim_end()) {
        Ok(hs) => hs,
        Err(why) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(start_error(format!("{} spoke an unexpected handshake", binary.display()), why));
        }
    };
    let tls = tls_config(&cert_der, key_der, hs.server_cert.as_deref())?;
    let channel = match connect(&hs, tls).await {
        Ok(c) => c,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(start_error(format!("cannot connect to provider `{name}` at {}", hs.address), e));
        }
    };
    let raw = channel.clone();
    let client = match hs.protocol {
        5 => Client::V5(v5::provider_client::ProviderClient::new(channel).max_decoding_message_size(256 << 20).max_encoding_message_size(256 << 20)),
        _ => Client::V6(v6::provider_client::ProviderClient::new(channel).max_decoding_message_size(256 << 20).max_encoding_message_size(256 << 20)),
    };
    let child = Arc::new(Mutex::new(Some(child)));
    if let Ok(mut l) = live().lock() {
        l.retain(|(c, _)| c.strong_count() > 0);
        l.push((Arc::downgrade(&child), raw.clone()));
    }
    Ok(Plugin { name, protocol: hs.protocol, client, channel: raw, child, tail })
}

fn open_log(path: &Path) -> Option<std::fs::File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ok()?;
    }
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().create(true).append(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(path).ok()
}

/// The handshake line: `CORE-VERSION|APP-VERSION|NETWORK|ADDRESS|PROTOCOL|SERVER-CERT`.
#[derive(Debug, PartialEq)]
pub struct Handshake {
    pub protocol: u32,
    pub network: String,
    pub address: String,
    /// DER of the server's certificate (base64 in the line, unpadded).
    pub server_cert: Option<Vec<u8>>,
}

pub fn parse_handshake(line: &str) -> Result<Handshake, String> {
    let parts: Vec<&str> = line.split('|').collect();
    if parts.len() < 4 {
        return Err(format!("expected `1|<protocol>|<network>|<address>|grpc|<cert>`, got {:?}", truncate(line)));
    }
    if parts[0] != "1" {
        return Err(format!("go-plugin core protocol {} (Plinth speaks 1)", truncate(parts[0])));
    }
    let protocol: u32 = parts[1].parse().map_err(|_| format!("protocol version {:?} is not a number", truncate(parts[1])))?;
    if protocol != 5 && protocol != 6 {
        return Err(format!(
            "plugin protocol {protocol}: Plinth speaks 5 and 6 (Terraform 0.12 and later); this provider is older (protocol 4 is Terraform 0.11's)"
        ));
    }
    let network = parts[2].to_string();
    if network != "unix" && network != "tcp" {
        return Err(format!("network {:?} (expected unix or tcp)", truncate(&network)));
    }
    if parts.get(4).is_some_and(|p| !p.is_empty() && *p != "grpc") {
        return Err(format!("transport {:?} (Plinth speaks grpc)", truncate(parts[4])));
    }
    let server_cert = match parts.get(5).map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => None,
        Some(b64) => {
            use base64::Engine;
            let b64 = b64.trim_end_matches('=');
            Some(base64::engine::general_purpose::STANDARD_NO_PAD.decode(b64).map_err(|_| "the server certificate is not base64".to_string())?)
        }
    };
    Ok(Handshake { protocol, network, address: parts[3].to_string(), server_cert })
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

/// A self-signed client certificate, as go-plugin's AutoMTLS makes one
/// (a CA for itself: the server trusts exactly it).
fn client_certificate() -> Result<(String, rustls::pki_types::PrivateKeyDer<'static>, Vec<u8>), Diagnostic> {
    let fail = |e: rcgen::Error| start_error("cannot make the plugin client certificate", e.to_string());
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(fail)?;
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).map_err(fail)?;
    params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "Plinth");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
        rcgen::KeyUsagePurpose::KeyAgreement,
        rcgen::KeyUsagePurpose::KeyCertSign,
    ];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth, rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = rcgen::date_time_ymd(2000, 1, 1);
    params.not_after = rcgen::date_time_ymd(2999, 1, 1);
    let cert = params.self_signed(&key).map_err(fail)?;
    let der = cert.der().to_vec();
    let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()));
    Ok((cert.pem(), key_der, der))
}

/// Accepts exactly the certificate the plugin announced, and checks the
/// handshake's signatures with it.
#[derive(Debug)]
struct Pinned {
    cert: Vec<u8>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_slice() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("the provider presented a certificate other than the one on its handshake line".into()))
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

fn tls_config(
    cert_der: &[u8],
    key: rustls::pki_types::PrivateKeyDer<'static>,
    server_cert: Option<&[u8]>,
) -> Result<Option<Arc<rustls::ClientConfig>>, Diagnostic> {
    let Some(server_cert) = server_cert else { return Ok(None) };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let algorithms = provider.signature_verification_algorithms;
    let fail = |e: rustls::Error| start_error("cannot set up TLS to the provider", e.to_string());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(fail)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned { cert: server_cert.to_vec(), algorithms }))
        .with_client_auth_cert(vec![rustls::pki_types::CertificateDer::from(cert_der.to_vec())], key)
        .map_err(fail)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Some(Arc::new(config)))
}

async fn connect(hs: &Handshake, tls: Option<Arc<rustls::ClientConfig>>) -> Result<Channel, String> {
    let address = hs.address.clone();
    let unix = hs.network == "unix";
    // The URI is only a name: the connector below dials the plugin.
    let endpoint = Endpoint::from_static("http://localhost").connect_timeout(Duration::from_secs(30)).tcp_nodelay(true);
    let connector = tower::service_fn(move |_: tonic::transport::Uri| {
        let address = address.clone();
        let tls = tls.clone();
        async move {
            let stream: Box<dyn Io> = if unix {
                Box::new(tokio::net::UnixStream::connect(&address).await?)
            } else {
                let s = tokio::net::TcpStream::connect(&address).await?;
                s.set_nodelay(true)?;
                Box::new(s)
            };
            let stream: Box<dyn Io> = match tls {
                None => stream,
                Some(config) => {
                    let name = rustls::pki_types::ServerName::try_from("localhost").map_err(std::io::Error::other)?;
                    Box::new(tokio_rustls::TlsConnector::from(config).connect(name, stream).await?)
                }
            };
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
        }
    });
    endpoint.connect_with_connector(connector).await.map_err(|e| {
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        msg
    })
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_lines_parse_and_bad_ones_are_refused() {
        let hs = parse_handshake("1|6|unix|/tmp/plugin123|grpc|").unwrap();
        assert_eq!((hs.protocol, hs.network.as_str(), hs.address.as_str(), hs.server_cert), (6, "unix", "/tmp/plugin123", None));
        let hs = parse_handshake("1|5|tcp|127.0.0.1:10001|grpc|AQID").unwrap();
        assert_eq!(hs.server_cert, Some(vec![1, 2, 3]));
        for bad in
            ["", "hello", "2|5|unix|/x|grpc|", "1|4|unix|/x|grpc|", "1|x|unix|/x|grpc|", "1|5|pipe|/x|grpc|", "1|5|unix|/x|netrpc|", "1|5|unix|/x|grpc|!!!"]
        {
            assert!(parse_handshake(bad).is_err(), "{bad}");
        }
    }
}
