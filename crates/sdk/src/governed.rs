//! The engine's own settings in every provider block, applied around any
//! provider: `max_retries` (retry operations that failed with a retryable
//! diagnostic, with exponential backoff and jitter), `timeout` (per call, e.g.
//! "30s"), and `max_requests_per_second` (a token bucket shared by every call
//! to that provider configuration, so a large refresh does not trip an API's
//! rate limit).
//!
//! The settings and their parsing are always here (the language checks
//! provider blocks against [`SETTINGS`]); the wrapper that enforces them runs
//! on tokio and is built with the `runtime` feature only.

use super::*;
#[cfg(feature = "runtime")]
use rand::Rng;
use std::time::Duration;
#[cfg(feature = "runtime")]
use tokio::time::Instant;

/// Attribute names every provider block accepts.
pub const SETTINGS: &[&str] = &["max_retries", "timeout", "max_requests_per_second"];

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub max_retries: u32,
    pub timeout: Option<Duration>,
    pub max_requests_per_second: Option<f64>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy { max_retries: 2, timeout: None, max_requests_per_second: None }
    }
}

fn bad(name: &str, what: &str) -> Diagnostic {
    Diagnostic::new("P6002", "invalid provider setting").help(format!("`{name}` {what}."))
}

/// A duration setting: a number of seconds, or a string such as "500ms",
/// "30s", "2m", "1h" ([`crate::value::parse_duration`]).
pub fn parse_duration(v: &Value) -> Option<Duration> {
    if let Some(n) = v.as_f64() {
        return Duration::try_from_secs_f64(n).ok();
    }
    crate::value::parse_duration(v.as_str()?).ok()
}

impl Policy {
    /// Separates the engine's settings from the provider's own configuration.
    pub fn split(config: &Map) -> Result<(Policy, Map), Diagnostic> {
        let mut policy = Policy::default();
        let mut rest = Map::default();
        for (k, v) in config {
            let v = v.peel();
            match k.as_str() {
                "max_retries" => {
                    policy.max_retries = v.as_i64().filter(|n| (0..=20).contains(n)).ok_or_else(|| bad(k, "must be a whole number from 0 to 20"))? as u32;
                }
                "timeout" => policy.timeout = Some(parse_duration(v).ok_or_else(|| bad(k, "must be a duration such as \"30s\" or \"2m\""))?),
                "max_requests_per_second" => {
                    policy.max_requests_per_second = Some(v.as_f64().filter(|n| *n > 0.0).ok_or_else(|| bad(k, "must be a positive number"))?);
                }
                _ => {
                    rest.insert(k.clone(), v.clone());
                }
            }
        }
        Ok((policy, rest))
    }
}

/// A token bucket: at most `rate` calls per second, bursts up to `rate`.
#[cfg(feature = "runtime")]
struct Bucket {
    rate: f64,
    state: tokio::sync::Mutex<(f64, Instant)>,
}

#[cfg(feature = "runtime")]
impl Bucket {
    async fn take(&self) {
        loop {
            let wait = {
                let mut s = self.state.lock().await;
                let now = Instant::now();
                let refill = now.duration_since(s.1).as_secs_f64() * self.rate;
                s.0 = (s.0 + refill).min(self.rate.max(1.0));
                s.1 = now;
                if s.0 >= 1.0 {
                    s.0 -= 1.0;
                    return;
                }
                Duration::from_secs_f64((1.0 - s.0) / self.rate)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(feature = "runtime")]
pub struct Governed {
    inner: Arc<dyn Provider>,
    policy: Policy,
    bucket: Option<Bucket>,
}

#[cfg(feature = "runtime")]
impl Governed {
    pub fn wrap(inner: Arc<dyn Provider>, policy: Policy) -> Arc<dyn Provider> {
        if policy == Policy::default() && policy.max_retries == 0 {
            return inner;
        }
        let bucket = policy.max_requests_per_second.map(|rate| Bucket { rate, state: tokio::sync::Mutex::new((rate.max(1.0), Instant::now())) });
        Arc::new(Governed { inner, policy, bucket })
    }

    /// Runs `call` under the rate limit and timeout, retrying retryable failures.
    async fn run<T, F, Fut>(&self, what: &str, address: &str, call: F) -> Result<T, Diagnostic>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, Diagnostic>>,
    {
        let mut attempt = 0u32;
        loop {
            if let Some(b) = &self.bucket {
                b.take().await;
            }
            let result = match self.policy.timeout {
                Some(t) => match tokio::time::timeout(t, call()).await {
                    Ok(r) => r,
                    Err(_) => Err(Diagnostic::new("P6003", "provider call timed out")
                        .help(format!("{what} of `{address}` took longer than {:?}; raise `timeout` in the provider block if the system is just slow.", t))
                        .retryable()),
                },
                None => call().await,
            };
            match result {
                Err(d) if d.retryable && attempt < self.policy.max_retries => {
                    attempt += 1;
                    let base = 0.2 * 2f64.powi(attempt as i32 - 1);
                    let jitter = rand::thread_rng().gen_range(0.0..base / 2.0);
                    tokio::time::sleep(Duration::from_secs_f64((base + jitter).min(10.0))).await;
                }
                Err(d) if d.retryable && attempt > 0 => {
                    return Err(d.note(format!("gave up after {} attempts (max_retries = {})", attempt + 1, self.policy.max_retries)))
                }
                other => return other,
            }
        }
    }
}

#[cfg(feature = "runtime")]
#[async_trait]
impl Provider for Governed {
    fn schema_of(&self, rtype: &str) -> Option<&ResourceSchema> {
        self.inner.schema_of(rtype)
    }
    async fn read(&self, req: ReadRequest) -> Result<Option<Observed>, Diagnostic> {
        self.run("reading", &req.object.address.clone(), || self.inner.read(req.clone())).await
    }
    async fn create(&self, req: CreateRequest) -> Result<Observed, Diagnostic> {
        self.run("creating", &req.object.address.clone(), || self.inner.create(req.clone())).await
    }
    async fn update(&self, req: UpdateRequest) -> Result<Observed, Diagnostic> {
        self.run("updating", &req.object.address.clone(), || self.inner.update(req.clone())).await
    }
    async fn delete(&self, req: DeleteRequest) -> Result<(), Diagnostic> {
        self.run("deleting", &req.object.address.clone(), || self.inner.delete(req.clone())).await
    }
    async fn list(&self, req: ListRequest) -> Result<Vec<String>, Diagnostic> {
        self.run("listing", &req.rtype.clone(), || self.inner.list(req.clone())).await
    }
    fn claims(&self, rtype: &str, inputs: &Map, attrs: &Map) -> Vec<String> {
        self.inner.claims(rtype, inputs, attrs)
    }
}

#[cfg(all(test, feature = "runtime"))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Flaky {
        calls: AtomicUsize,
        fail_first: usize,
    }

    #[async_trait]
    impl Provider for Flaky {
        fn schema_of(&self, _: &str) -> Option<&ResourceSchema> {
            None
        }
        async fn read(&self, _: ReadRequest) -> Result<Option<Observed>, Diagnostic> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if n < self.fail_first {
                Err(Diagnostic::new("P6003", "busy").retryable())
            } else {
                Ok(None)
            }
        }
        async fn create(&self, _: CreateRequest) -> Result<Observed, Diagnostic> {
            Err(Diagnostic::new("P6002", "permanent"))
        }
        async fn update(&self, _: UpdateRequest) -> Result<Observed, Diagnostic> {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(Map::default())
        }
        async fn delete(&self, _: DeleteRequest) -> Result<(), Diagnostic> {
            Ok(())
        }
    }

    fn object() -> ObjectRef {
        ObjectRef { address: "x.y.z".into(), rtype: "y".into(), token: String::new() }
    }

    fn policy(config: &[(&str, Value)]) -> Policy {
        let map: Map = config.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        Policy::split(&map).unwrap().0
    }

    #[tokio::test(start_paused = true)]
    async fn retryable_failures_are_retried_up_to_max_retries() {
        let inner = Arc::new(Flaky { calls: AtomicUsize::new(0), fail_first: 2 });
        let p = Governed::wrap(inner.clone(), policy(&[("max_retries", Value::Int(3))]));
        assert!(p.read(ReadRequest { object: object(), inputs: Map::default(), prior: None }).await.is_ok());
        assert_eq!(inner.calls.load(Ordering::SeqCst), 3);
        let inner = Arc::new(Flaky { calls: AtomicUsize::new(0), fail_first: 10 });
        let p = Governed::wrap(inner.clone(), policy(&[("max_retries", Value::Int(1))]));
        let err = p.read(ReadRequest { object: object(), inputs: Map::default(), prior: None }).await.unwrap_err();
        assert_eq!(inner.calls.load(Ordering::SeqCst), 2);
        assert!(err.notes.iter().any(|n| n.contains("gave up after 2 attempts")));
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_failures_are_not_retried_and_timeouts_apply() {
        let inner = Arc::new(Flaky { calls: AtomicUsize::new(0), fail_first: 0 });
        let p = Governed::wrap(inner, policy(&[("max_retries", Value::Int(3)), ("timeout", Value::str("1s"))]));
        assert_eq!(p.create(CreateRequest { object: object(), config: Map::default() }).await.unwrap_err().code, "P6002");
        let err = p.update(UpdateRequest { object: object(), prior: Map::default(), config: Map::default() }).await.unwrap_err();
        assert_eq!(err.code, "P6003");
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_limit_spaces_calls() {
        let inner = Arc::new(Flaky { calls: AtomicUsize::new(0), fail_first: 0 });
        let p = Governed::wrap(inner, policy(&[("max_requests_per_second", Value::Int(10))]));
        let start = tokio::time::Instant::now();
        for _ in 0..30 {
            p.read(ReadRequest { object: object(), inputs: Map::default(), prior: None }).await.unwrap();
        }
        // 10 in the first burst, then 20 more at 10 per second: about 2 s of
        // virtual time (the clock is paused: this measures the limiter, not the machine).
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(1900) && elapsed <= Duration::from_millis(2100), "{elapsed:?}");
    }

    #[test]
    fn settings_are_validated() {
        let map: Map = [("timeout".to_string(), Value::str("soon"))].into_iter().collect();
        assert_eq!(Policy::split(&map).unwrap_err().code, "P6002");
        let map: Map = [("max_retries".to_string(), Value::Int(5)), ("url".to_string(), Value::str("x"))].into_iter().collect();
        let (p, rest) = Policy::split(&map).unwrap();
        assert_eq!(p.max_retries, 5);
        assert_eq!(rest.keys().collect::<Vec<_>>(), ["url"]);
    }
}
