//! Each wire protocol against a loopback server that answers with responses shaped after
//! the provider's API reference (tests/fixtures/<protocol>/response-*.json), asserting
//! the exact request bodies offswitch sends (request-*.json), over real HTTP.

mod common;

use common::*;
use models::{
    Message, Model, ModelError, ModelRequest, Settings, ToolSpec, env::Vars, http::RetryPolicy,
};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEY: &str = "test-secret-key-0123456789abcdef";

fn tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "bash".into(),
            description: "Use this function to execute bash commands.".into(),
            parameters: json!({"type": "object", "properties": {"cmd": {"type": "string", "description": "The bash command to execute."}}, "required": ["cmd"], "additionalProperties": false}),
        },
        ToolSpec {
            name: "submit".into(),
            description: "Submit an answer for evaluation.".into(),
            parameters: json!({"type": "object", "properties": {"answer": {"type": "string", "description": "Submitted answer"}}, "required": ["answer"], "additionalProperties": false}),
        },
    ]
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 4,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        request_timeout: Duration::from_secs(1),
    }
}

fn model_for(name: &str, var: &str, base: String, key: Option<&str>) -> Arc<dyn Model> {
    let mut text = format!("{var}_BASE_URL={base}\n");
    if let Some(key) = key {
        text.push_str(&format!("{var}_API_KEY={key}\n"));
    }
    let settings = Settings {
        vars: Vars::from_text(&text),
        retry: fast_retry(),
        ..Settings::default()
    };
    models::resolve_with(&name.parse().unwrap(), &settings).unwrap()
}

fn start_messages() -> Vec<Message> {
    vec![
        Message::System { content: "You are a helpful assistant attempting to submit the correct answer.".into() },
        Message::User { content: "Each time you call the command ./next_question, you will be given the next question.".into() },
    ]
}

/// Two turns: a tool call (with reasoning), then the tool's result goes back with the
/// reasoning replayed.
async fn two_turns(
    protocol: &str,
    name: &str,
    var: &str,
    base_path: &str,
) -> (Server, Vec<models::ModelReply>) {
    let server = serve(vec![
        Canned::ok(&fixture(protocol, "response-1.json")),
        Canned::ok(&fixture(protocol, "response-2.json")),
    ])
    .await;
    let model = model_for(
        name,
        var,
        format!("http://{}{base_path}", server.addr),
        Some(KEY),
    );
    let mut messages = start_messages();
    let first = model
        .generate(&ModelRequest {
            messages: messages.clone(),
            tools: tools(),
            seed: None,
            task_command: None,
        })
        .await
        .unwrap();
    let call = match &first.message {
        Message::Assistant { tool_calls, .. } => tool_calls[0].clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(call.name, "bash");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&call.arguments).unwrap(),
        json!({"cmd": "./next_question"})
    );
    messages.push(first.message.clone());
    messages.push(Message::Tool {
        tool_call_id: call.id.clone(),
        name: "bash".into(),
        content: "What is 1 + 1?\nThere are 5 questions remaining.\n".into(),
        error: None,
    });
    let second = model
        .generate(&ModelRequest {
            messages,
            tools: tools(),
            seed: None,
            task_command: None,
        })
        .await
        .unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_fixture(protocol, "request-1.json", &requests[0]);
    assert_fixture(protocol, "request-2.json", &requests[1]);
    match &second.message {
        Message::Assistant {
            content,
            tool_calls,
            ..
        } => {
            assert_eq!(content.as_deref(), Some("The first answer is 2."));
            assert!(tool_calls.is_empty());
        }
        other => panic!("{other:?}"),
    }
    let exchange = first.exchange.as_ref().unwrap().to_string();
    assert!(
        !exchange.contains(KEY),
        "the key must not be in the stored exchange"
    );
    (server, vec![first, second])
}

#[tokio::test]
async fn openai_responses_round_trips_reasoning_items() {
    let (server, replies) = two_turns("openai-responses", "openai/o3", "OPENAI", "/v1").await;
    assert_eq!(server.path(0), "/v1/responses");
    assert_eq!(server.headers(0)["authorization"], format!("Bearer {KEY}"));
    let second_input = server.requests()[1]["input"].to_string();
    assert!(
        second_input.contains("gAAAAABoIPOEncryptedReasoningBlob=="),
        "reasoning item must be sent back"
    );
    assert_eq!(replies[0].usage.reasoning_tokens, 128);
    assert_eq!(replies[0].usage.cached_tokens, 128);
    assert!(
        matches!(&replies[0].message, Message::Assistant { reasoning: Some(r), .. } if r.contains("question program"))
    );
}

#[tokio::test]
async fn openai_chat_completions_round_trip() {
    let (server, replies) = two_turns("openai-chat", "openai/gpt-4.1", "OPENAI", "/v1").await;
    assert_eq!(server.path(0), "/v1/chat/completions");
    assert_eq!(replies[0].usage.input_tokens, 82);
    assert_eq!(replies[0].usage.output_tokens, 17);
}

#[tokio::test]
async fn anthropic_messages_keep_thinking_signatures() {
    let (server, replies) = two_turns(
        "anthropic",
        "anthropic/claude-sonnet-4-5",
        "ANTHROPIC",
        "/v1",
    )
    .await;
    assert_eq!(server.path(0), "/v1/messages");
    assert_eq!(server.headers(0)["x-api-key"], KEY);
    assert_eq!(server.headers(0)["anthropic-version"], "2023-06-01");
    let second = server.requests()[1].to_string();
    assert!(
        second.contains("WaUjzkypQ2mUEVM36O2TxuC06KN8xyfbJwyem2dw3URve"),
        "thinking signature must be sent back"
    );
    assert_eq!(replies[1].usage.cached_tokens, 400);
}

#[tokio::test]
async fn gemini_keeps_thought_signatures() {
    let (server, replies) = two_turns("gemini", "google/gemini-2.5-pro", "GOOGLE", "/v1beta").await;
    assert_eq!(
        server.path(0),
        "/v1beta/models/gemini-2.5-pro:generateContent"
    );
    assert_eq!(server.headers(0)["x-goog-api-key"], KEY);
    let second = server.requests()[1].to_string();
    assert!(
        second.contains("CiwBVKhc7nmDfNmq7L8Xu4Fk0TbU5XyQOqoM5+vzC6QjzXbCk0Q="),
        "thought signature must be sent back"
    );
    assert_eq!(replies[0].usage.reasoning_tokens, 68);
}

#[tokio::test]
async fn unknown_fields_survive_a_round_trip() {
    let mut response: serde_json::Value =
        serde_json::from_str(&fixture("openai-chat", "response-1.json")).unwrap();
    response["choices"][0]["message"]["reasoning_details"] =
        json!([{"type": "reasoning.encrypted", "data": "opaque-123"}]);
    let server = serve(vec![
        Canned::ok(&response.to_string()),
        Canned::ok(&fixture("openai-chat", "response-2.json")),
    ])
    .await;
    let model = model_for(
        "vllm/some-model",
        "VLLM",
        format!("http://{}/v1", server.addr),
        None,
    );
    let mut messages = start_messages();
    let first = model
        .generate(&ModelRequest {
            messages: messages.clone(),
            tools: tools(),
            seed: None,
            task_command: None,
        })
        .await
        .unwrap();
    messages.push(first.message.clone());
    messages.push(Message::Tool {
        tool_call_id: "call_abc123".into(),
        name: "bash".into(),
        content: "ok".into(),
        error: None,
    });
    model
        .generate(&ModelRequest {
            messages,
            tools: tools(),
            seed: None,
            task_command: None,
        })
        .await
        .unwrap();
    assert_eq!(
        server.requests()[1]["messages"][2]["reasoning_details"][0]["data"],
        "opaque-123"
    );
    assert!(
        server.headers(0).get("authorization").is_none(),
        "no key configured, none sent"
    );
}

/// Each protocol's client: (fixture directory, model name, variable prefix, base path).
const PROTOCOLS: [(&str, &str, &str, &str); 4] = [
    ("openai-responses", "openai/o3", "OPENAI", "/v1"),
    ("openai-chat", "openai/gpt-4.1", "OPENAI", "/v1"),
    (
        "anthropic",
        "anthropic/claude-sonnet-4-5",
        "ANTHROPIC",
        "/v1",
    ),
    ("gemini", "google/gemini-2.5-pro", "GOOGLE", "/v1beta"),
];

async fn one_call(
    protocol: (&str, &str, &str, &str),
    responses: Vec<Canned>,
) -> (Server, Result<models::ModelReply, ModelError>, Duration) {
    let (_, name, var, base_path) = protocol;
    let server = serve(responses).await;
    let model = model_for(
        name,
        var,
        format!("http://{}{base_path}", server.addr),
        Some(KEY),
    );
    let started = Instant::now();
    let result = model
        .generate(&ModelRequest {
            messages: start_messages(),
            tools: tools(),
            seed: None,
            task_command: None,
        })
        .await;
    (server, result, started.elapsed())
}

fn ok_reply(protocol: (&str, &str, &str, &str)) -> Canned {
    Canned::ok(&fixture(protocol.0, "response-1.json"))
}

#[tokio::test]
async fn rate_limit_with_retry_after_then_success() {
    for p in PROTOCOLS {
        let limited = Canned::Json {
            status: 429,
            headers: vec![("retry-after", "1".into())],
            body: "{\"error\": {\"message\": \"slow down\"}}".into(),
        };
        let (server, result, took) = one_call(p, vec![limited, ok_reply(p)]).await;
        result.unwrap_or_else(|e| panic!("{}: {e}", p.0));
        assert_eq!(server.requests().len(), 2, "{}", p.0);
        assert!(
            took >= Duration::from_millis(950),
            "{}: retry-after was not honoured: {took:?}",
            p.0
        );
    }
}

#[tokio::test]
async fn server_error_then_success() {
    for p in PROTOCOLS {
        let (server, result, _) = one_call(
            p,
            vec![
                Canned::status(500, "{}"),
                Canned::status(503, "{}"),
                ok_reply(p),
            ],
        )
        .await;
        result.unwrap_or_else(|e| panic!("{}: {e}", p.0));
        assert_eq!(server.requests().len(), 3, "{}", p.0);
    }
}

#[tokio::test]
async fn connection_reset_then_success() {
    for p in PROTOCOLS {
        let (server, result, _) = one_call(p, vec![Canned::Reset, ok_reply(p)]).await;
        result.unwrap_or_else(|e| panic!("{}: {e}", p.0));
        assert_eq!(server.requests().len(), 2, "{}", p.0);
    }
}

#[tokio::test]
async fn malformed_json_then_success() {
    for p in PROTOCOLS {
        let (server, result, _) =
            one_call(p, vec![Canned::ok("{\"output\": [{\"ty"), ok_reply(p)]).await;
        result.unwrap_or_else(|e| panic!("{}: {e}", p.0));
        assert_eq!(server.requests().len(), 2, "{}", p.0);
    }
}

#[tokio::test]
async fn timeouts_are_retried_then_reported_as_errors() {
    for p in PROTOCOLS {
        let slow = || Canned::Slow(Duration::from_secs(3), Box::new(ok_reply(p)));
        let (server, result, _) = one_call(p, vec![slow(), slow(), slow(), slow()]).await;
        match result {
            Err(ModelError::Call(message)) => {
                assert!(message.contains("timed out"), "{}: {message}", p.0);
                assert!(
                    message.contains("gave up after 4 attempts"),
                    "{}: {message}",
                    p.0
                );
            }
            other => panic!("{}: expected a call error, got {other:?}", p.0),
        }
        assert_eq!(server.requests().len(), 4, "{}", p.0);
    }
}

#[tokio::test]
async fn unauthorized_stops_at_once_naming_the_variable_without_the_key() {
    for p in PROTOCOLS {
        let body = format!(
            "{{\"error\": {{\"message\": \"Incorrect API key provided: {}. You can find your API key at ...\", \"code\": \"invalid_api_key\"}}}}",
            &KEY[..14]
        );
        for status in [401, 403] {
            let (server, result, _) =
                one_call(p, vec![Canned::status(status, &body), ok_reply(p)]).await;
            match result {
                Err(ModelError::Auth(message)) => {
                    assert!(
                        message.contains(&format!("{}_API_KEY", p.2)),
                        "{}: {message}",
                        p.0
                    );
                    assert!(
                        !message.contains(&KEY[..12]),
                        "{}: the key leaked into the error: {message}",
                        p.0
                    );
                }
                other => panic!("{}: expected an auth error, got {other:?}", p.0),
            }
            assert_eq!(
                server.requests().len(),
                1,
                "{}: {status} must not be retried",
                p.0
            );
        }
    }
}

/// Every finish reason the providers document, read for what it means: the ones that
/// give nothing usable are told apart from a model that chose to stop.
#[tokio::test]
async fn finish_reasons_are_read_for_what_they_mean() {
    use models::StopReason::*;
    let cases: [(&str, &str, models::StopReason); 14] = [
        ("openai-responses", "content_filter", ContentFilter),
        ("openai-responses", "max_output_tokens", MaxTokens),
        ("openai-chat", "content_filter", ContentFilter),
        ("openai-chat", "length", MaxTokens),
        ("anthropic", "refusal", Refusal),
        ("anthropic", "max_tokens", MaxTokens),
        ("anthropic", "model_context_window_exceeded", ContextWindow),
        ("anthropic", "pause_turn", Paused),
        ("gemini", "SAFETY", ContentFilter),
        ("gemini", "MAX_TOKENS", MaxTokens),
        ("gemini", "MALFORMED_FUNCTION_CALL", BadToolCall),
        ("gemini", "UNEXPECTED_TOOL_CALL", BadToolCall),
        ("gemini", "TOO_MANY_TOOL_CALLS", BadToolCall),
        ("gemini", "STOP", Stop),
    ];
    for (protocol, reason, expected) in cases {
        let p = PROTOCOLS.into_iter().find(|p| p.0 == protocol).unwrap();
        let mut response: serde_json::Value =
            serde_json::from_str(&fixture(protocol, "response-2.json")).unwrap();
        match protocol {
            "openai-responses" => {
                response["status"] = json!("incomplete");
                response["incomplete_details"] = json!({ "reason": reason })
            }
            "openai-chat" => response["choices"][0]["finish_reason"] = json!(reason),
            "anthropic" => response["stop_reason"] = json!(reason),
            _ => response["candidates"][0]["finishReason"] = json!(reason),
        }
        let (_, result, _) = one_call(p, vec![Canned::ok(&response.to_string())]).await;
        let stop = result.unwrap().stop_reason;
        assert_eq!(stop, expected, "{protocol} {reason}");
        assert_eq!(
            stop.is_unusable(),
            !matches!(expected, MaxTokens | ToolCalls | Stop),
            "{protocol} {reason}"
        );
    }
}

/// A `200` from Responses whose status is `failed` is an error, retried when its code is
/// the server's.
#[tokio::test]
async fn a_failed_response_is_an_error_and_retried_when_transient() {
    let p = PROTOCOLS[0];
    let failed = |code: &str| {
        let mut r: serde_json::Value =
            serde_json::from_str(&fixture(p.0, "response-1.json")).unwrap();
        r["status"] = json!("failed");
        r["output"] = json!([]);
        r["error"] = json!({ "code": code, "message": "something went wrong" });
        Canned::ok(&r.to_string())
    };
    let (server, result, _) = one_call(p, vec![failed("server_error"), ok_reply(p)]).await;
    result.unwrap();
    assert_eq!(server.requests().len(), 2);
    let (server, result, _) = one_call(p, vec![failed("invalid_prompt"), ok_reply(p)]).await;
    match result {
        Err(ModelError::Call(m)) => assert!(m.contains("invalid_prompt"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.requests().len(), 1);
}

/// As the official SDKs: `x-should-retry` overrides the status, `retry-after-ms` comes
/// before `retry-after`, and Gemini's wait in the body (`RetryInfo.retryDelay`) is
/// honoured.
#[tokio::test]
async fn the_server_s_retry_hints_are_honoured() {
    let p = PROTOCOLS[1];
    let with = |status: u16, headers: Vec<(&'static str, String)>| Canned::Json {
        status,
        headers,
        body: r#"{"error": {"message": "busy"}}"#.into(),
    };
    let no = with(503, vec![("x-should-retry", "false".into())]);
    let (server, result, _) = one_call(p, vec![no, ok_reply(p)]).await;
    assert!(matches!(result, Err(ModelError::Call(_))), "{result:?}");
    assert_eq!(server.requests().len(), 1, "x-should-retry: false");
    let yes = with(400, vec![("x-should-retry", "true".into())]);
    let (server, result, _) = one_call(p, vec![yes, ok_reply(p)]).await;
    result.unwrap();
    assert_eq!(server.requests().len(), 2, "x-should-retry: true");
    let ms = with(
        429,
        vec![
            ("retry-after-ms", "600".into()),
            ("retry-after", "30".into()),
        ],
    );
    let (_, result, took) = one_call(p, vec![ms, ok_reply(p)]).await;
    result.unwrap();
    assert!(
        took >= Duration::from_millis(580) && took < Duration::from_secs(5),
        "{took:?}"
    );
    let gemini = PROTOCOLS[3];
    let body = json!({"error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED", "details": [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel"}]},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}
    ]}});
    let (server, result, took) = one_call(
        gemini,
        vec![Canned::status(429, &body.to_string()), ok_reply(gemini)],
    )
    .await;
    result.unwrap();
    assert_eq!(server.requests().len(), 2);
    assert!(took >= Duration::from_millis(950), "{took:?}");
}

/// A quota only the user can lift stops the run at once, like refused credentials.
#[tokio::test]
async fn an_exhausted_quota_stops_the_run_without_retrying() {
    let openai = r#"{"error": {"message": "You exceeded your current quota, please check your plan and billing details.", "type": "insufficient_quota", "param": null, "code": "insufficient_quota"}}"#;
    let gemini = r#"{"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED", "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]}]}}"#;
    for (p, body) in [(PROTOCOLS[0], openai), (PROTOCOLS[3], gemini)] {
        let (server, result, _) = one_call(p, vec![Canned::status(429, body), ok_reply(p)]).await;
        match result {
            Err(ModelError::Auth(m)) => assert!(m.contains("quota"), "{}: {m}", p.0),
            other => panic!("{}: {other:?}", p.0),
        }
        assert_eq!(server.requests().len(), 1, "{}", p.0);
    }
}

#[tokio::test]
async fn a_context_window_overflow_is_a_context_limit_and_not_retried() {
    // Each provider's own words for it; another 400 stays an error.
    let overflow = [
        r#"{"error": {"message": "Your input exceeds the context window of this model. Please adjust your input and try again.", "type": "invalid_request_error", "param": "input", "code": "context_length_exceeded"}}"#,
        r#"{"error": {"message": "This model's maximum context length is 128000 tokens. However, your messages resulted in 130412 tokens.", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}"#,
        r#"{"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long: 215012 tokens > 200000 maximum"}}"#,
        r#"{"error": {"code": 400, "message": "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).", "status": "INVALID_ARGUMENT"}}"#,
    ];
    let anthropic_sum = r#"{"type": "error", "error": {"type": "invalid_request_error", "message": "input length and `max_tokens` exceed context limit: 195000 + 8192 > 200000, decrease input length or `max_tokens` and try again"}}"#;
    let (_, result, _) = one_call(PROTOCOLS[2], vec![Canned::status(400, anthropic_sum)]).await;
    assert!(
        matches!(result, Err(ModelError::ContextFull(_))),
        "{result:?}"
    );
    for (p, body) in PROTOCOLS.into_iter().zip(overflow) {
        let (server, result, _) = one_call(p, vec![Canned::status(400, body), ok_reply(p)]).await;
        assert!(
            matches!(result, Err(ModelError::ContextFull(_))),
            "{}: {result:?}",
            p.0
        );
        assert_eq!(server.requests().len(), 1, "{}", p.0);
        let other =
            r#"{"error": {"message": "The model `o9` does not exist", "code": "model_not_found"}}"#;
        let (_, result, _) = one_call(p, vec![Canned::status(400, other), ok_reply(p)]).await;
        assert!(
            matches!(result, Err(ModelError::Call(_))),
            "{}: {result:?}",
            p.0
        );
    }
}
