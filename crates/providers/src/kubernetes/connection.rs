//! The connection to one API server: a [`kube::Client`] built from the
//! provider block (`host`/`token`/`ca_cert`/`insecure`), a kubeconfig
//! (`kubeconfig`/`context`, else `$KUBECONFIG`'s first file or
//! `~/.kube/config`), or the pod's service account (in-cluster).
//!
//! Invariants:
//! - Every way in goes through kube's own loading (`Kubeconfig` →
//!   `kube::Config`; `host` settings become a one-context kubeconfig, so
//!   proxies, CA parsing and TLS are kube's in every case) and one TLS
//!   stack: rustls on the process's aws-lc-rs provider
//!   ([`crate::tls::install_crypto_provider`], installed before a client is
//!   built).
//! - Credentials are kube's: tokens, token files (re-read as they rotate),
//!   client certificates, `exec` credential plugins (refreshed when their
//!   `expirationTimestamp` passes) and the `oidc` auth provider. A plugin
//!   is never interactive (stdin is not Plinth's), and its environment is
//!   [`crate::child`]'s allow-list for credential plugins: kube starts it
//!   from Plinth's environment, so every other name is handed to kube to
//!   remove ([`crate::child::withheld`]).
//! - kube retries nothing (`default_retry` off): retries are the engine's
//!   (`max_retries`), and each try is one request. A request gets 10 s to
//!   connect and 60 s in all.
//! - Tokens never reach a message: errors are rebuilt from their parts (a
//!   plugin's exit status and the first line of its stderr, the server's
//!   `Status` message, transport causes), never from `Debug` output.

use super::{config_error, Diagnostic};
use crate::child;
use kube::config::{AuthInfo, Cluster, Context, ExecInteractiveMode, Kubeconfig, KubeconfigError, LoadDataError, NamedAuthInfo, NamedCluster, NamedContext};
use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Time to open a connection to the API server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time for one request, answer included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A failed request: the server's answer, or no answer at all.
#[derive(Debug)]
pub enum ApiError {
    /// HTTP status and the message of the `Status` object (or the body).
    Status(u16, String),
    /// Connection refused, TLS, timeout…: nothing was answered.
    Transport(String),
    /// An answer that is not JSON (or not the object asked for).
    Decode(String),
    /// The request could not be made from the object (a name that is no
    /// URL path segment…): nothing was sent.
    Request(String),
    /// The credentials could not be had (an `exec` plugin or the OIDC
    /// provider failed when the token was refreshed).
    Credentials(String),
}

/// Where the settings came from, for messages.
#[derive(Debug, Clone)]
enum Origin {
    Host,
    Kubeconfig { shown: String, context: String },
    InCluster,
}

/// What a connection is made of: kube's configuration, and what messages
/// need to name (where it came from, the credential plugin).
pub struct ConnectionSettings {
    config: kube::Config,
    origin: Origin,
    /// The `exec` command of the kubeconfig user, as kube runs it.
    plugin: Option<String>,
}

impl std::fmt::Debug for ConnectionSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionSettings").field("server", &self.config.cluster_url.to_string()).field("origin", &self.origin).finish()
    }
}

/// A client of one API server.
pub struct Connection {
    client: kube::Client,
    /// The server's URL, for messages.
    server: String,
    plugin: Option<String>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("server", &self.server).finish()
    }
}

/// The settings a provider block gives instead of a kubeconfig.
pub struct HostSettings {
    pub host: String,
    pub token: Option<String>,
    /// PEM of the cluster's CA.
    pub ca_pem: Option<Vec<u8>>,
    pub insecure: bool,
}

impl ConnectionSettings {
    /// The provider block's `host`, `token`, `ca_cert` and `insecure`, as a
    /// kubeconfig of one context.
    pub fn from_host(s: HostSettings) -> Result<ConnectionSettings, Diagnostic> {
        use base64::Engine as _;
        const NAME: &str = "plinth";
        let kc = Kubeconfig {
            clusters: vec![NamedCluster {
                name: NAME.into(),
                cluster: Some(Cluster {
                    server: Some(s.host),
                    insecure_skip_tls_verify: Some(s.insecure),
                    certificate_authority_data: s.ca_pem.map(|pem| base64::engine::general_purpose::STANDARD.encode(pem)),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            auth_infos: vec![NamedAuthInfo {
                name: NAME.into(),
                auth_info: Some(AuthInfo { token: s.token.map(Into::into), ..Default::default() }),
                ..Default::default()
            }],
            contexts: vec![NamedContext {
                name: NAME.into(),
                context: Some(Context { cluster: NAME.into(), user: Some(NAME.into()), ..Default::default() }),
                ..Default::default()
            }],
            current_context: Some(NAME.into()),
            ..Default::default()
        };
        let config = kube::Config::try_from(kc)
            .map_err(|e| kubeconfig_error(e, "the provider block", "Check `host` and `ca_cert` in the `provider kubernetes` block."))?;
        Ok(ConnectionSettings { config: tuned(config), origin: Origin::Host, plugin: None })
    }

    /// The service account of a pod, when Plinth runs inside the cluster.
    pub fn in_cluster() -> Result<ConnectionSettings, Diagnostic> {
        let config = kube::Config::incluster().map_err(|_| no_cluster())?;
        Ok(ConnectionSettings { config: tuned(config), origin: Origin::InCluster, plugin: None })
    }
}

fn no_cluster() -> Diagnostic {
    config_error(
        "no Kubernetes cluster configured",
        "Set `kubeconfig` (and `context`) or `host` and `token` in the `provider kubernetes` block; no kubeconfig was found and Plinth is not running in a cluster.",
    )
}

/// What kube leaves to the caller: no retries of its own, Plinth's timeouts.
fn tuned(mut config: kube::Config) -> kube::Config {
    config.default_retry = false;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(REQUEST_TIMEOUT);
    config.write_timeout = Some(REQUEST_TIMEOUT);
    config
}

/// A kubeconfig that kube refused, as a P6500 naming `shown`.
fn kubeconfig_error(e: KubeconfigError, shown: &str, help: &str) -> Diagnostic {
    let unreadable = |what: &str, e: &LoadDataError| match e {
        LoadDataError::ReadFile(io, path) => {
            Some(config_error(format!("cannot read {}", path.display()), format!("The file system said: {io}. The {what} of {shown} names it.")))
        }
        LoadDataError::DecodeBase64(_) => Some(config_error(format!("{shown}: the {what} data is not base64"), "Fix the kubeconfig.")),
        LoadDataError::NoBase64DataOrFile => None,
    };
    let specific = match &e {
        KubeconfigError::LoadCertificateAuthority(d) => unreadable("certificate-authority", d),
        KubeconfigError::LoadClientCertificate(d) => unreadable("client-certificate", d),
        KubeconfigError::LoadClientKey(d) => unreadable("client-key", d),
        KubeconfigError::ParseCertificates(p) => {
            Some(config_error("invalid CA certificate", format!("{p}. Give `ca_cert` (or the kubeconfig's certificate-authority) as PEM.")))
        }
        _ => None,
    };
    specific.unwrap_or_else(|| config_error(format!("{shown}: {}", causes(&e)), help.to_string()))
}

impl Connection {
    /// Reads a kubeconfig file: the given context (or the current one), its
    /// cluster's server and CA, its user's credentials (a plugin runs when
    /// the client is built, [`Connection::new`]).
    pub fn settings_from_kubeconfig(path: &Path, context: Option<&str>) -> Result<ConnectionSettings, Diagnostic> {
        let shown = path.display().to_string();
        let mut kc = Kubeconfig::read_from(path).map_err(|e| match e {
            KubeconfigError::ReadConfig(io, _) => config_error(
                format!("cannot read kubeconfig {shown}"),
                format!("The file system said: {io}. Check `kubeconfig` in the `provider kubernetes` block."),
            ),
            KubeconfigError::Parse(p) => config_error(format!("kubeconfig {shown} is not valid YAML"), format!("{p}.")),
            other => config_error(format!("kubeconfig {shown} is not a valid kubeconfig"), format!("{}.", causes(&other))),
        })?;
        let ctx_name = context
            .map(str::to_string)
            .or_else(|| kc.current_context.clone().filter(|c| !c.is_empty()))
            .ok_or_else(|| config_error(format!("kubeconfig {shown} has no current context"), "Set `context` in the `provider kubernetes` block."))?;
        let Some(ctx) = kc.contexts.iter().find(|c| c.name == ctx_name).and_then(|c| c.context.clone()) else {
            let names: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
            return Err(config_error(format!("kubeconfig {shown} has no context {ctx_name:?}"), format!("Its contexts are: {}.", names.join(", "))));
        };
        let Some(cluster) = kc.clusters.iter().find(|c| c.name == ctx.cluster).and_then(|c| c.cluster.as_ref()) else {
            return Err(config_error(format!("context {ctx_name:?} names no known cluster"), "Fix the kubeconfig's context entry."));
        };
        if cluster.server.as_deref().is_none_or(str::is_empty) {
            return Err(config_error(format!("kubeconfig {shown}: the cluster of context {ctx_name:?} has no server"), "Fix the kubeconfig."));
        }
        let user = ctx.user.as_deref().and_then(|u| kc.auth_infos.iter().find(|a| a.name == u)).and_then(|a| a.auth_info.as_ref());
        let plugin = user.and_then(|u| u.exec.as_ref()).and_then(|e| e.command.clone());
        for named in &mut kc.auth_infos {
            if let Some(auth) = &mut named.auth_info {
                harden(auth);
            }
        }
        kc.current_context = Some(ctx_name.clone());
        let config = kube::Config::try_from(kc).map_err(|e| kubeconfig_error(e, &format!("kubeconfig {shown}"), "Fix the kubeconfig."))?;
        Ok(ConnectionSettings { config: tuned(config), origin: Origin::Kubeconfig { shown, context: ctx_name }, plugin })
    }

    /// The kubeconfig Plinth finds without being told: `$KUBECONFIG`'s first
    /// file, else `~/.kube/config` when it exists.
    pub fn default_kubeconfig() -> Option<PathBuf> {
        std::env::var_os("KUBECONFIG")
            .and_then(|v| std::env::split_paths(&v).next())
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube/config")))
            .filter(|p| p.exists())
    }

    /// Builds the client; credential plugins run now (and again when their
    /// token expires). Must be called inside a Tokio runtime.
    pub fn new(s: ConnectionSettings) -> Result<Connection, Diagnostic> {
        crate::tls::install_crypto_provider();
        let server = s.config.cluster_url.to_string().trim_end_matches('/').to_string();
        let client = kube::Client::try_from(s.config).map_err(|e| build_error(e, &s.origin, s.plugin.as_deref()))?;
        Ok(Connection { client, server, plugin: s.plugin })
    }

    /// kube's client, for `kube::Api` and discovery.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// Runs one request of `kube` within the request timeout, its error
    /// classified.
    pub async fn call<T>(&self, request: impl std::future::Future<Output = kube::Result<T>>) -> Result<T, ApiError> {
        match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.classify(e)),
            Err(_) => Err(ApiError::Transport(format!("{}: no answer within {REQUEST_TIMEOUT:?}", self.server))),
        }
    }

    /// One raw request (`path` includes the query), for probes and tests.
    /// Answers the JSON body of a 2xx response, or an [`ApiError`].
    pub async fn send(&self, method: http::Method, path: &str, content_type: Option<&str>, body: Option<Vec<u8>>) -> Result<Json, ApiError> {
        let mut req = http::Request::builder().method(method).uri(path).header(http::header::ACCEPT, "application/json");
        if let Some(ct) = content_type {
            req = req.header(http::header::CONTENT_TYPE, ct);
        }
        let req = req.body(body.unwrap_or_default()).map_err(|e| ApiError::Request(format!("{path}: {e}")))?;
        let text = self.call(self.client.request_text(req)).await?;
        serde_json::from_str(&text).map_err(|e| ApiError::Decode(e.to_string()))
    }

    fn classify(&self, e: kube::Error) -> ApiError {
        match e {
            kube::Error::Api(s) => {
                let msg = if s.message.is_empty() { s.reason.clone() } else { s.message.clone() };
                // A body that was not a `Status` (a proxy's page): its text, shortened.
                let msg = if s.reason == "Failed to parse error data" { msg.chars().take(300).collect() } else { msg };
                ApiError::Status(s.code, msg)
            }
            kube::Error::SerdeError(e) => ApiError::Decode(e.to_string()),
            kube::Error::FromUtf8(e) => ApiError::Decode(e.to_string()),
            kube::Error::Auth(a) => ApiError::Credentials(auth_reason(&a, self.plugin.as_deref())),
            kube::Error::BuildRequest(e) => ApiError::Request(causes(&e)),
            kube::Error::HttpError(e) => ApiError::Request(causes(&e)),
            // Hyper's and the service stack's causes, without kube's prefix.
            kube::Error::Service(e) => ApiError::Transport(format!("{}: {}", self.server, causes(&*e))),
            kube::Error::HyperError(e) => ApiError::Transport(format!("{}: {}", self.server, causes(&e))),
            other => ApiError::Transport(format!("{}: {}", self.server, causes(&other))),
        }
    }
}

/// What kube runs for a kubeconfig user, made safe for Plinth: a plugin is
/// never interactive and gets only the credential plugins' allow-list of
/// Plinth's environment (plus the kubeconfig's `env`).
fn harden(auth: &mut AuthInfo) {
    if let Some(exec) = &mut auth.exec {
        let extra: Vec<String> = exec.env.iter().flatten().filter_map(|e| e.get("name").cloned()).collect();
        exec.interactive_mode = Some(ExecInteractiveMode::Never);
        exec.drop_env = Some(child::withheld(child::Kind::CredentialPlugin, std::env::vars_os().map(|(k, _)| k), &extra));
    }
    // The `gcp` auth provider's `cmd-path` is a plugin too.
    if let Some(provider) = &mut auth.auth_provider {
        if provider.name == "gcp" {
            let drop = child::withheld(child::Kind::CredentialPlugin, std::env::vars_os().map(|(k, _)| k), &[]);
            provider.config.insert("cmd-drop-env".into(), drop.join(" "));
        }
    }
}

/// Why kube could not have the credentials, from the error's parts (never
/// its `Debug`, which would show the plugin's whole command and output).
fn auth_reason(e: &kube::client::AuthError, plugin: Option<&str>) -> String {
    use kube::client::AuthError as A;
    let program = plugin.unwrap_or("the credential plugin");
    match e {
        A::AuthExecStart(io) => format!("cannot run `{program}`: {io}"),
        A::AuthExecRun { out, .. } => {
            let err = String::from_utf8_lossy(&out.stderr);
            let first = err.lines().next().unwrap_or("").chars().take(300).collect::<String>();
            format!("`{program}` exited with {} ({first})", out.status)
        }
        A::AuthExecParse(p) => format!("`{program}` did not print an ExecCredential as JSON: {p}"),
        A::ExecPluginFailed => format!("`{program}` printed an ExecCredential without `status`"),
        A::MalformedTokenExpirationDate(d) => format!("`{program}` printed an invalid `status.expirationTimestamp`: {d}"),
        A::MissingCommand => "the exec entry has no `command`".to_string(),
        A::ReadTokenFile(io, path) => format!("cannot read the token file {}: {io}", path.display()),
        other => causes(other),
    }
}

/// A client kube could not build, as a P6500.
fn build_error(e: kube::Error, origin: &Origin, plugin: Option<&str>) -> Diagnostic {
    let shown = match origin {
        Origin::Host => "the provider block".to_string(),
        Origin::Kubeconfig { shown, .. } => format!("kubeconfig {shown}"),
        Origin::InCluster => "the in-cluster configuration".to_string(),
    };
    match e {
        kube::Error::Auth(kube::client::AuthError::ReadTokenFile(..)) if matches!(origin, Origin::InCluster) => no_cluster(),
        kube::Error::Auth(a) => {
            let why = auth_reason(&a, plugin);
            match origin {
                Origin::Kubeconfig { context, .. } if plugin.is_some() => config_error(
                    format!("{shown}: the exec credential plugin of context {context:?} failed"),
                    format!("{why}. Run the plugin by hand to check it (e.g. that you are logged in to the cloud's CLI)."),
                ),
                Origin::Kubeconfig { context, .. } => config_error(
                    format!("{shown}: the credentials of context {context:?} failed"),
                    format!("{why}. Fix the kubeconfig's user entry or log in again."),
                ),
                _ => config_error("cannot use the configured credentials", format!("{why}. Check `token` in the `provider kubernetes` block.")),
            }
        }
        kube::Error::InferKubeconfig(k) => kubeconfig_error(k, &shown, "Fix the kubeconfig."),
        kube::Error::RustlsTls(t) => {
            use kube::client::RustlsTlsError as T;
            match t {
                T::AddRootCertificate(_) | T::NoValidNativeRootCA(_) => {
                    config_error("invalid CA certificate", format!("{}. Give `ca_cert` (or the kubeconfig's certificate-authority) as PEM.", causes(&t)))
                }
                _ => config_error(
                    "invalid client certificate or key",
                    format!("{}. The kubeconfig user's client-certificate and client-key must be PEM.", causes(&t)),
                ),
            }
        }
        other => config_error("cannot create the Kubernetes client", format!("{}. Check the TLS and proxy settings of {shown}.", causes(&other))),
    }
}

/// An error's message with its causes, `: `-separated.
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        // thiserror variants often repeat their source in their own text.
        if !msg.ends_with(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        src = s.source();
    }
    msg
}
