//! One provider endpoint over HTTP: POST JSON, retry what is worth retrying (timeouts,
//! connection errors, 408/409/429/5xx, malformed bodies) with jittered exponential
//! backoff honouring the server's hints (`retry-after-ms`, `retry-after`, Gemini's
//! `RetryInfo`, `x-should-retry`), and stop at once on 401/403 and on a quota only the
//! user can lift.

use crate::limiter::AdaptiveLimit;
use backon::{ExponentialBuilder, Retryable};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Response header by which offswitch's mock server identifies itself.
pub const MOCK_HEADER: &str = "x-offswitch-mock";

/// Makes ring this process's TLS crypto provider. reqwest is built without one (its
/// default, aws-lc-rs, is a large C build), so every `reqwest::Client` is built after
/// this; calling it again does nothing.
pub fn install_tls_provider() {
    // An error means a provider is installed already, which is what is needed.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub attempts: usize,
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 6,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            request_timeout: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, Clone)]
pub enum CallError {
    /// Worth another try; `retry_after` is the server's hint.
    Transient {
        message: String,
        retry_after: Option<Duration>,
        throttled: bool,
    },
    /// Credentials refused.
    Auth { status: u16, message: String },
    /// A limit only the user can lift (quota exhausted, billing): retrying cannot help.
    Account { status: u16, message: String },
    /// Anything else: bad request, unknown model, ...
    Fatal { message: String },
}

impl CallError {
    fn message(&self) -> &str {
        match self {
            CallError::Transient { message, .. }
            | CallError::Auth { message, .. }
            | CallError::Account { message, .. }
            | CallError::Fatal { message } => message,
        }
    }
}

/// An endpoint with its credentials. The key lives only in `headers`; every error text is
/// scrubbed of it before it leaves this type.
pub struct Endpoint {
    pub client: reqwest::Client,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub secret: Option<String>,
    pub limit: Arc<AdaptiveLimit>,
    pub retry: RetryPolicy,
}

/// A successful exchange: the response body and how many attempts it took.
pub struct Exchange {
    pub body: Value,
    pub attempts: usize,
    /// Set when offswitch's own mock server answered (its `x-offswitch-mock` header
    /// names the scripted policy): the reply is a fixture's, not a model's.
    pub mock_policy: Option<String>,
}

impl Endpoint {
    pub fn redact(&self, text: &str) -> String {
        redact(text, self.secret.as_deref())
    }

    /// Posts `body`; `check` reads a 2xx body for an error the protocol reports inside
    /// it (a `200` whose status is `failed`), retried when it says so.
    pub async fn post(
        &self,
        body: &Value,
        check: impl Fn(&Value) -> Option<CallError>,
    ) -> Result<Exchange, CallError> {
        let attempts = std::sync::atomic::AtomicUsize::new(0);
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.retry.base_delay)
            .with_max_delay(self.retry.max_delay)
            .with_max_times(self.retry.attempts.saturating_sub(1))
            .with_jitter();
        let result = (|| async {
            attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let (reply, mock_policy) = self.attempt(body).await?;
            match check(&reply) {
                Some(error) => Err(error),
                None => Ok((reply, mock_policy)),
            }
        })
        .retry(backoff)
        .when(|e| matches!(e, CallError::Transient { .. }))
        .adjust(|e, delay| match e {
            CallError::Transient {
                retry_after: Some(hint),
                ..
            } => Some((*hint).min(Duration::from_secs(300))),
            _ => delay,
        })
        .await;
        let attempts = attempts.load(std::sync::atomic::Ordering::SeqCst);
        result
            .map(|(body, mock_policy)| Exchange {
                body,
                attempts,
                mock_policy,
            })
            .map_err(|e| match e {
                CallError::Transient {
                    message,
                    retry_after,
                    throttled,
                } => CallError::Transient {
                    message: format!(
                        "{} (gave up after {attempts} attempts)",
                        self.redact(&message)
                    ),
                    retry_after,
                    throttled,
                },
                CallError::Auth { status, message } => CallError::Auth {
                    status,
                    message: self.redact(&message),
                },
                CallError::Account { status, message } => CallError::Account {
                    status,
                    message: self.redact(&message),
                },
                CallError::Fatal { message } => CallError::Fatal {
                    message: self.redact(&message),
                },
            })
    }

    async fn attempt(&self, body: &Value) -> Result<(Value, Option<String>), CallError> {
        let _permit = self.limit.acquire().await;
        let mut request = self
            .client
            .post(&self.url)
            .timeout(self.retry.request_timeout)
            .json(body);
        for (k, v) in &self.headers {
            request = request.header(k, v);
        }
        let transient = |message: String| CallError::Transient {
            message,
            retry_after: None,
            throttled: false,
        };
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Err(transient(format!(
                    "request timed out after {:?}",
                    self.retry.request_timeout
                )));
            }
            Err(e) => return Err(transient(format!("connection failed: {}", error_chain(&e)))),
        };
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        // As the official SDKs: `retry-after-ms` first, then `retry-after`; and the
        // server's `x-should-retry` overrides the status's rule either way.
        let mut retry_after = header("retry-after-ms")
            .and_then(|ms| ms.trim().parse::<f64>().ok())
            .filter(|ms| ms.is_finite() && *ms >= 0.0)
            .map(|ms| Duration::from_secs_f64(ms / 1000.0))
            .or_else(|| header("retry-after").and_then(|v| parse_retry_after(&v)));
        let should_retry = header("x-should-retry").and_then(|v| match v.trim() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        });
        let mock_policy = response
            .headers()
            .get(MOCK_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = match response.text().await {
            Ok(t) => t,
            Err(e) => {
                return Err(transient(format!(
                    "reading the response failed: {}",
                    error_chain(&e)
                )));
            }
        };
        let snippet = || {
            let t: String = text.chars().take(500).collect();
            self.redact(&t)
        };
        let body: Option<Value> = serde_json::from_str(&text).ok();
        if !(200..=299).contains(&status) {
            if let Some(reason) = body.as_ref().and_then(needs_user_action) {
                return Err(CallError::Account {
                    status,
                    message: format!("HTTP {status} ({reason}): {}", snippet()),
                });
            }
            retry_after = retry_after.or_else(|| body.as_ref().and_then(body_retry_delay));
            match should_retry {
                Some(true) if !matches!(status, 401 | 403) => {
                    if status == 429 {
                        self.limit.throttled();
                    }
                    return Err(CallError::Transient {
                        message: format!("HTTP {status}: {}", snippet()),
                        retry_after,
                        throttled: status == 429,
                    });
                }
                Some(false) => {
                    return Err(CallError::Fatal {
                        message: format!(
                            "HTTP {status} (the server says not to retry): {}",
                            snippet()
                        ),
                    });
                }
                _ => {}
            }
        }
        match status {
            200..=299 => match serde_json::from_str(&text) {
                Ok(v) => {
                    self.limit.succeeded();
                    Ok((v, mock_policy))
                }
                Err(e) => Err(transient(format!(
                    "malformed JSON in a {status} response ({e}): {}",
                    snippet()
                ))),
            },
            401 | 403 => Err(CallError::Auth {
                status,
                message: format!("HTTP {status}: {}", snippet()),
            }),
            429 => {
                self.limit.throttled();
                Err(CallError::Transient {
                    message: format!("HTTP 429 (rate limited): {}", snippet()),
                    retry_after,
                    throttled: true,
                })
            }
            408 | 409 | 500..=599 => Err(CallError::Transient {
                message: format!("HTTP {status}: {}", snippet()),
                retry_after,
                throttled: false,
            }),
            _ => Err(CallError::Fatal {
                message: format!("HTTP {status}: {}", snippet()),
            }),
        }
    }
}

/// Why an error body says only the user can help: OpenAI's `insufficient_quota`, a
/// Gemini quota counted per day. None for anything a wait can cure.
fn needs_user_action(body: &Value) -> Option<&'static str> {
    let error = body.get("error")?;
    let is = |key: &str, value: &str| error.get(key).and_then(Value::as_str) == Some(value);
    if is("code", "insufficient_quota") || is("type", "insufficient_quota") {
        return Some("quota exhausted: check the account's plan and billing");
    }
    let per_day = error
        .get("details")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|d| {
            d.get("@type").and_then(Value::as_str)
                == Some("type.googleapis.com/google.rpc.QuotaFailure")
        })
        .flat_map(|d| {
            d.get("violations")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .any(|v| {
            v.get("quotaId")
                .and_then(Value::as_str)
                .is_some_and(|id| id.contains("PerDay"))
        });
    per_day.then_some("daily quota exhausted: it resets tomorrow, or raise the limit")
}

/// The wait a Gemini error body asks for (`google.rpc.RetryInfo.retryDelay`, e.g.
/// `"37s"`), where no header gives one.
fn body_retry_delay(body: &Value) -> Option<Duration> {
    body.pointer("/error/details")?
        .as_array()?
        .iter()
        .filter(|d| {
            d.get("@type").and_then(Value::as_str)
                == Some("type.googleapis.com/google.rpc.RetryInfo")
        })
        .find_map(|d| {
            d.get("retryDelay")?
                .as_str()?
                .strip_suffix('s')?
                .parse::<f64>()
                .ok()
        })
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.join(": ")
}

/// `retry-after` as seconds or as an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    if let Ok(secs) = value.trim().parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when = httpdate_parse(value.trim())?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// IMF-fixdate only (`Sun, 06 Nov 1994 08:49:37 GMT`), the form servers send.
fn httpdate_parse(s: &str) -> Option<std::time::SystemTime> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    if parts.len() != 6 || parts[5] != "GMT" {
        return None;
    }
    let day: i64 = parts[1].parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[2])? as i64
        + 1;
    let year: i64 = parts[3].parse().ok()?;
    let hms: Vec<i64> = parts[4]
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    if hms.len() != 3 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + hms[0] * 3600 + hms[1] * 60 + hms[2];
    Some(std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// Replaces the secret, and the prefix providers echo back (`sk-proj-ABCD...`), with a
/// marker.
pub fn redact(text: &str, secret: Option<&str>) -> String {
    let Some(secret) = secret.filter(|s| s.len() >= 8) else {
        return text.to_string();
    };
    let head = &secret[..secret.len().min(12)];
    text.replace(secret, "[redacted key]")
        .replace(head, "[redacted key]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(
            httpdate_parse("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(std::time::UNIX_EPOCH + Duration::from_secs(784111777))
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn error_bodies_say_when_to_wait_and_when_to_stop() {
        use serde_json::json;
        let openai = json!({"error": {"message": "You exceeded your current quota", "type": "insufficient_quota", "code": "insufficient_quota"}});
        assert!(needs_user_action(&openai).is_some());
        let rate = json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}});
        assert!(needs_user_action(&rate).is_none());
        let gemini = |quota: &str| {
            json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "details": [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests", "quotaId": quota}]},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}
            ]}})
        };
        assert!(
            needs_user_action(&gemini("GenerateRequestsPerDayPerProjectPerModel-FreeTier"))
                .is_some()
        );
        let per_minute = gemini("GenerateRequestsPerMinutePerProjectPerModel-FreeTier");
        assert!(needs_user_action(&per_minute).is_none());
        assert_eq!(body_retry_delay(&per_minute), Some(Duration::from_secs(37)));
        assert_eq!(body_retry_delay(&rate), None);
    }

    #[test]
    fn secrets_are_redacted_whole_and_echoed() {
        let key = "sk-proj-ABCDEFGHIJKLMNOP1234";
        let text = format!("Incorrect API key provided: {key}. Also sk-proj-ABCD***********1234.");
        let out = redact(&text, Some(key));
        assert!(!out.contains(key));
        assert!(!out.contains("ABCDEFGH"));
        assert!(out.contains("[redacted key]"));
    }
}
