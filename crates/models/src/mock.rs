//! A loopback server speaking a provider's real wire protocol, driven by a scripted
//! policy: for tests, benchmarks, and users checking their setup. It binds 127.0.0.1
//! only. Like the real APIs it insists on what matters for multi-turn tool use: a turn
//! after a reasoning model's turn must carry that turn's reasoning item (Responses),
//! thinking signature (Anthropic) or thought signature (Gemini), or it answers 400.
//! It can add latency and inject faults (500, 429 with retry-after, malformed JSON,
//! connection reset).

use crate::model::Model;
use crate::protocols::Protocol;
use crate::scripted::ScriptedModel;
use crate::types::{Message, ModelRequest};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Clone)]
pub struct MockConfig {
    pub protocol: Protocol,
    pub policy: Arc<ScriptedModel>,
    pub latency: Duration,
    /// Fraction of requests answered with a fault, 0.0 to 1.0.
    pub fail_rate: f64,
    /// When set, requests without this key get 401, whose body echoes the key's start as
    /// real providers do (so tests can check that offswitch redacts it).
    pub require_key: Option<String>,
}

/// Counters a test can read.
#[derive(Debug, Default)]
pub struct MockStats {
    pub requests: AtomicU64,
    pub faults: AtomicU64,
    pub rejected: AtomicU64,
}

#[derive(Clone)]
struct AppState {
    config: MockConfig,
    stats: Arc<MockStats>,
}

pub struct RunningMock {
    pub addr: SocketAddr,
    pub protocol: Protocol,
    pub stats: Arc<MockStats>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningMock {
    /// Base URL a client should use (the value for `<PROVIDER>_BASE_URL`).
    pub fn base_url(&self) -> String {
        match self.protocol {
            Protocol::Gemini => format!("http://{}/v1beta", self.addr),
            _ => format!("http://{}/v1", self.addr),
        }
    }
}

impl Drop for RunningMock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds 127.0.0.1:`port` (0 for any free port) and serves in the background.
pub async fn start(config: MockConfig, port: u16) -> std::io::Result<RunningMock> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let stats = Arc::new(MockStats::default());
    let protocol = config.protocol;
    let app = Router::new().fallback(handle).with_state(AppState {
        config,
        stats: stats.clone(),
    });
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(RunningMock {
        addr,
        protocol,
        stats,
        task,
    })
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        json!({ "error": { "message": message, "type": "mock_error" } }).to_string(),
    )
        .into_response()
}

fn presented_key(headers: &HeaderMap) -> Option<String> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    get("authorization")
        .map(|a| a.trim_start_matches("Bearer ").to_string())
        .or_else(|| get("x-api-key"))
        .or_else(|| get("x-goog-api-key"))
}

async fn handle(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let config = &state.config;
    state.stats.requests.fetch_add(1, Ordering::Relaxed);
    if !config.latency.is_zero() {
        tokio::time::sleep(config.latency).await;
    }
    if let Some(required) = &config.require_key {
        let presented = presented_key(&headers).unwrap_or_default();
        if &presented != required {
            state.stats.rejected.fetch_add(1, Ordering::Relaxed);
            let shown: String = presented.chars().take(12).collect();
            return error(
                StatusCode::UNAUTHORIZED,
                &format!(
                    "Incorrect API key provided: {shown}****. You can find your API key in your account settings."
                ),
            );
        }
    }
    if config.fail_rate > 0.0 && rand::random::<f64>() < config.fail_rate {
        state.stats.faults.fetch_add(1, Ordering::Relaxed);
        return fault();
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "request body is not JSON");
    };
    if let Err(e) = check_request(config.protocol, &request) {
        state.stats.rejected.fetch_add(1, Ordering::Relaxed);
        return error(StatusCode::BAD_REQUEST, &e);
    }
    let messages = match config.protocol.parse_request(&request) {
        Ok(m) => m,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    if let Err(e) = check_round_trip(config.protocol, &messages) {
        return error(StatusCode::BAD_REQUEST, &e);
    }
    let turn = messages
        .iter()
        .filter(|m| matches!(m, Message::Assistant { .. }))
        .count()
        + 1;
    let reply = match config
        .policy
        .generate(&ModelRequest {
            messages,
            tools: vec![],
            seed: None,
            task_command: None,
        })
        .await
    {
        Ok(r) => r,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let model = request
        .get("model")
        .and_then(|m| m.as_str())
        .unwrap_or("mock-model");
    let response = config.protocol.render_response(model, &reply, turn);
    // Identify ourselves, so that offswitch labels these answers as a fixture's.
    let headers = [
        ("content-type", "application/json".to_string()),
        (crate::http::MOCK_HEADER, config.policy.name().to_string()),
    ];
    (StatusCode::OK, headers, response.to_string()).into_response()
}

/// The top-level request fields each real API takes (its create-request parameters);
/// the real services answer any other with a 400.
fn known_fields(protocol: Protocol) -> &'static [&'static str] {
    match protocol {
        Protocol::OpenAiResponses => &[
            "model",
            "input",
            "instructions",
            "tools",
            "tool_choice",
            "parallel_tool_calls",
            "max_tool_calls",
            "store",
            "include",
            "reasoning",
            "max_output_tokens",
            "temperature",
            "top_p",
            "top_logprobs",
            "text",
            "truncation",
            "metadata",
            "user",
            "safety_identifier",
            "prompt_cache_key",
            "service_tier",
            "stream",
            "stream_options",
            "background",
            "previous_response_id",
            "conversation",
            "prompt",
        ],
        Protocol::OpenAiChat => &[
            "model",
            "messages",
            "tools",
            "tool_choice",
            "parallel_tool_calls",
            "max_completion_tokens",
            "max_tokens",
            "reasoning_effort",
            "temperature",
            "top_p",
            "seed",
            "n",
            "stop",
            "response_format",
            "logprobs",
            "top_logprobs",
            "presence_penalty",
            "frequency_penalty",
            "logit_bias",
            "metadata",
            "store",
            "user",
            "safety_identifier",
            "prompt_cache_key",
            "service_tier",
            "stream",
            "stream_options",
            "modalities",
            "audio",
            "prediction",
            "verbosity",
            "web_search_options",
        ],
        Protocol::Anthropic => &[
            "model",
            "max_tokens",
            "messages",
            "system",
            "tools",
            "tool_choice",
            "thinking",
            "temperature",
            "top_p",
            "top_k",
            "stop_sequences",
            "stream",
            "metadata",
            "service_tier",
            "container",
            "mcp_servers",
            "context_management",
        ],
        Protocol::Gemini => &[
            "contents",
            "tools",
            "toolConfig",
            "safetySettings",
            "systemInstruction",
            "generationConfig",
            "cachedContent",
        ],
    }
}

/// What the real services refuse with a 400 that no retry cures: unknown fields, an
/// empty `tools` (Chat Completions), a reasoning item without the item it led to
/// (Responses), a turn with empty content (Anthropic, except a final assistant turn),
/// empty `parts` (Gemini), a thinking budget outside [1024, max_tokens) (Anthropic).
pub fn check_request(protocol: Protocol, body: &Value) -> Result<(), String> {
    let Some(fields) = body.as_object() else {
        return Err("the request body must be a JSON object".into());
    };
    if let Some(unknown) = fields
        .keys()
        .find(|k| !known_fields(protocol).contains(&k.as_str()))
    {
        return Err(format!("Unrecognized request argument supplied: {unknown}"));
    }
    let list = |key: &str| body.get(key).and_then(Value::as_array);
    match protocol {
        Protocol::OpenAiChat => {
            if list("tools").is_some_and(|t| t.is_empty()) {
                return Err(
                    "Invalid 'tools': empty array. Expected an array with minimum length 1, but got an empty array instead."
                        .into(),
                );
            }
            for (i, m) in list("messages").into_iter().flatten().enumerate() {
                let assistant = m.get("role").and_then(Value::as_str) == Some("assistant");
                let content = m
                    .get("content")
                    .is_some_and(|c| !c.is_null() && c.as_str() != Some(""));
                let calls = m
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .is_some_and(|c| !c.is_empty());
                if assistant && !content && !calls {
                    return Err(format!(
                        "Invalid value for 'content': messages[{i}]: an assistant message must have content unless tool_calls is specified."
                    ));
                }
            }
        }
        Protocol::OpenAiResponses => {
            let input = list("input").map(Vec::as_slice).unwrap_or_default();
            let kind = |i: &Value| i.get("type").and_then(Value::as_str).map(str::to_string);
            for (i, item) in input.iter().enumerate() {
                if kind(item).as_deref() != Some("reasoning") {
                    continue;
                }
                let follows = input.get(i + 1).is_some_and(|next| {
                    matches!(
                        kind(next).as_deref(),
                        Some("function_call") | Some("message")
                    ) || next.get("role").and_then(Value::as_str) == Some("assistant")
                });
                if !follows {
                    return Err(format!(
                        "Item '{}' of type 'reasoning' was provided without its required following item.",
                        item.get("id").and_then(Value::as_str).unwrap_or("?")
                    ));
                }
            }
        }
        Protocol::Anthropic => {
            let messages = list("messages").map(Vec::as_slice).unwrap_or_default();
            for (i, m) in messages.iter().enumerate() {
                let last_assistant = i + 1 == messages.len()
                    && m.get("role").and_then(Value::as_str) == Some("assistant");
                let empty = match m.get("content") {
                    Some(Value::Array(blocks)) => blocks.is_empty(),
                    Some(Value::String(text)) => text.is_empty(),
                    _ => true,
                };
                if empty && !last_assistant {
                    return Err(format!(
                        "messages.{i}: all messages must have non-empty content except for the optional final assistant message"
                    ));
                }
            }
            if let Some(budget) = body.pointer("/thinking/budget_tokens") {
                let max = body.get("max_tokens").and_then(Value::as_u64).unwrap_or(0);
                if !budget.as_u64().is_some_and(|b| (1024..max).contains(&b)) {
                    return Err(format!(
                        "thinking.budget_tokens: must be at least 1024 and less than max_tokens ({max})"
                    ));
                }
            }
        }
        Protocol::Gemini => {
            for (i, c) in list("contents").into_iter().flatten().enumerate() {
                if c.get("parts")
                    .and_then(Value::as_array)
                    .is_none_or(|p| p.is_empty())
                {
                    return Err(format!("contents[{i}].parts must not be empty"));
                }
            }
        }
    }
    Ok(())
}

/// The earlier assistant turns must come back with what this mock attached to them.
fn check_round_trip(protocol: Protocol, messages: &[Message]) -> Result<(), String> {
    for (i, m) in messages
        .iter()
        .filter(|m| matches!(m, Message::Assistant { .. }))
        .enumerate()
    {
        let turn = i + 1;
        let Message::Assistant {
            provider_data,
            tool_calls,
            ..
        } = m
        else {
            continue;
        };
        let data = provider_data
            .as_ref()
            .and_then(|d| d.get("data"))
            .map(|d| d.to_string())
            .unwrap_or_default();
        let (needed, what) = match protocol {
            Protocol::OpenAiResponses => (
                format!("mock-encrypted-reasoning-{turn}"),
                "the reasoning item (encrypted_content)",
            ),
            Protocol::Anthropic => (
                format!("mock-signature-{turn}"),
                "the thinking block and its signature",
            ),
            Protocol::Gemini if !tool_calls.is_empty() => (
                format!("mock-thought-signature-{turn}"),
                "the thoughtSignature",
            ),
            _ => continue,
        };
        if !data.contains(&needed) {
            return Err(format!(
                "assistant turn {turn} was sent back without {what}"
            ));
        }
    }
    Ok(())
}

fn fault() -> Response {
    match rand::random::<u8>() % 4 {
        0 => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "mock: injected server error",
        ),
        1 => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, "mock: injected rate limit");
            r.headers_mut()
                .insert("retry-after", "0.05".parse().expect("valid header"));
            r
        }
        2 => (
            StatusCode::OK,
            [("content-type", "application/json")],
            "{\"choices\": [{\"message\": ",
        )
            .into_response(),
        _ => {
            // A body that fails mid-stream: the connection is cut.
            let stream = futures_stream();
            Response::builder()
                .status(StatusCode::OK)
                .body(Body::from_stream(stream))
                .expect("valid response")
        }
    }
}

fn futures_stream() -> impl futures_core::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    struct Cut(bool);
    impl futures_core::Stream for Cut {
        type Item = Result<Bytes, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            if self.0 {
                return std::task::Poll::Ready(None);
            }
            self.0 = true;
            std::task::Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "mock: injected reset",
            ))))
        }
    }
    Cut(false)
}

/// Parses `200ms`, `1.5s`, `0`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map_or((s, "ms"), |i| (&s[..i], &s[i..]));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration like 200ms or 1.5s"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        _ => return Err(format!("'{s}': unit must be ms or s")),
    };
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("'{s}' is not a duration like 200ms or 1.5s"))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_parse_in_ms_or_s_and_anything_else_is_an_error() {
        assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in [
            "",
            "-1s",
            "NaN",
            "inf",
            "99999999999999999999999s",
            "2m",
            "fast",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was taken");
        }
    }
}
