//! S3-compatible client plumbing shared by the S3 state backend
//! (`state::s3`) and the `s3` provider: building a client by hand (no
//! aws-config: credentials come from the caller) and reducing SDK errors to
//! text without credentials.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{BehaviorVersion, Builder, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use std::time::Duration;

/// Where and how to reach an S3-compatible server.
pub struct Access<'a> {
    pub endpoint: Option<&'a str>,
    pub region: &'a str,
    pub path_style: bool,
    pub key_id: String,
    pub secret: String,
    pub token: Option<String>,
    /// Names the credentials' origin in SDK logs.
    pub source: &'static str,
    /// The longest one request attempt may take.
    pub attempt_timeout: Duration,
}

/// A client configuration builder for `access`; callers may add to it.
pub fn config(access: Access<'_>) -> Builder {
    let timeouts = aws_sdk_s3::config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(10))
        .operation_attempt_timeout(access.attempt_timeout)
        .build();
    let mut builder = Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(access.region.to_string()))
        .credentials_provider(Credentials::new(access.key_id, access.secret, access.token, None, access.source))
        .force_path_style(access.path_style)
        .timeout_config(timeouts)
        // Checksums only where S3 requires them: S3-compatible servers differ
        // in the flexible checksums they accept.
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
    if let Some(endpoint) = access.endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    builder
}

/// A failed request, reduced to text (`HTTP 412 PreconditionFailed: …`).
#[derive(Debug)]
pub struct SdkFailure {
    pub status: Option<u16>,
    pub code: Option<String>,
    pub text: String,
    /// Throttling, 5xx (but 501) and network errors: worth retrying.
    pub transient: bool,
}

impl SdkFailure {
    pub fn of<E>(e: SdkError<E, HttpResponse>) -> SdkFailure
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match &e {
            SdkError::ServiceError(se) => {
                let status = se.raw().status().as_u16();
                let code = se.err().code().map(str::to_string);
                let message = se.err().message().unwrap_or("");
                let text = match (&code, message.is_empty()) {
                    (Some(c), false) => format!("HTTP {status} {c}: {message}"),
                    (Some(c), true) => format!("HTTP {status} {c}"),
                    (None, false) => format!("HTTP {status}: {message}"),
                    (None, true) => format!("HTTP {status}"),
                };
                let throttled = matches!(
                    code.as_deref(),
                    Some("SlowDown" | "Throttling" | "ThrottlingException" | "RequestTimeout" | "InternalError" | "ServiceUnavailable")
                );
                let transient = throttled || status == 429 || (status >= 500 && status != 501);
                SdkFailure { status: Some(status), code, text, transient }
            }
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
                SdkFailure { status: e.raw_response().map(|r| r.status().as_u16()), code: None, text: DisplayErrorContext(&e).to_string(), transient: true }
            }
            _ => SdkFailure { status: e.raw_response().map(|r| r.status().as_u16()), code: None, text: DisplayErrorContext(&e).to_string(), transient: false },
        }
    }

    /// Another writer won a conditional write (`If-Match`/`If-None-Match`).
    pub fn is_conflict(&self) -> bool {
        matches!(self.status, Some(412) | Some(409))
    }

    /// The key does not exist (but the bucket does).
    pub fn is_missing_key(&self) -> bool {
        self.status == Some(404) && self.code.as_deref() != Some("NoSuchBucket")
    }

    /// The service's error code is one of `codes`.
    pub fn code_is(&self, codes: &[&str]) -> bool {
        self.code.as_deref().is_some_and(|c| codes.contains(&c))
    }

    /// The bucket or the key does not exist.
    pub fn not_found(&self) -> bool {
        self.status == Some(404) || self.code_is(&["NoSuchBucket", "NoSuchKey", "NotFound"])
    }

    /// The server does not implement the call (an S3-compatible store
    /// without versioning, tagging or policies).
    pub fn not_implemented(&self) -> bool {
        matches!(self.status, Some(501)) || self.code_is(&["NotImplemented", "MethodNotAllowed", "UnsupportedOperation"])
    }

    pub fn other(text: impl Into<String>) -> SdkFailure {
        SdkFailure { status: None, code: None, text: text.into(), transient: false }
    }
}
