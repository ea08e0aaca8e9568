//! Request bodies checked against what we do not control: every body the clients build
//! (each protocol; first turns and replays; thinking on and off; with and without tools;
//! after an empty reply and after a reasoning-only one) is validated with the providers'
//! official Python SDKs' own request types, unknown fields forbidden
//! (scripts/validate-requests.py, run from .venv-sdk, which scripts/install-test-deps.sh
//! installs), and must pass the mock server's rules for what the real services refuse.
//! Response fixtures and the mock's responses are read with the SDKs' response types.

mod common;

use common::fixture;
use models::mock::check_request;
use models::protocols::{Options, Protocol};
use models::{Message, ModelReply, ModelRequest, StopReason, ToolCall, ToolSpec, Usage};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

fn tools() -> Vec<ToolSpec> {
    vec![ToolSpec {
        name: "bash".into(),
        description: "Use this function to execute bash commands.".into(),
        parameters: json!({"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"], "additionalProperties": false}),
    }]
}

fn opts(pairs: &[(&str, Value)]) -> Options {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// The models each protocol is exercised with, and option sets: thinking off and on.
fn settings(protocol: Protocol) -> Vec<(&'static str, Options)> {
    match protocol {
        Protocol::OpenAiResponses => vec![
            ("o3", opts(&[])),
            (
                "o3",
                opts(&[
                    ("reasoning_effort", json!("high")),
                    ("max_tokens", json!(4096)),
                ]),
            ),
        ],
        Protocol::OpenAiChat => vec![
            (
                "gpt-4.1",
                opts(&[("temperature", json!(1)), ("seed", json!(7))]),
            ),
            ("o4-mini", opts(&[("reasoning_effort", json!("low"))])),
        ],
        Protocol::Anthropic => vec![
            ("claude-sonnet-4-5", opts(&[])),
            (
                "claude-sonnet-4-5",
                opts(&[
                    ("thinking_budget", json!(2048)),
                    ("max_tokens", json!(16000)),
                ]),
            ),
            ("claude-opus-4-7", opts(&[("thinking", json!("adaptive"))])),
        ],
        Protocol::Gemini => vec![
            ("gemini-2.5-pro", opts(&[])),
            (
                "gemini-2.5-pro",
                opts(&[
                    ("thinking_budget", json!(1024)),
                    ("seed", json!(7)),
                    ("top_k", json!(5)),
                ]),
            ),
        ],
    }
}

/// Provider responses to replay: a normal tool call (the protocol's fixture), an empty
/// reply, and a reply that holds only reasoning.
fn replies(protocol: Protocol) -> Vec<(&'static str, Value)> {
    let normal: Value = serde_json::from_str(&fixture(protocol.id(), "response-1.json")).unwrap();
    let mut empty = normal.clone();
    let mut reasoning_only = normal.clone();
    match protocol {
        Protocol::OpenAiResponses => {
            empty["output"] = json!([]);
            reasoning_only["status"] = json!("incomplete");
            reasoning_only["incomplete_details"] = json!({"reason": "max_output_tokens"});
            reasoning_only["output"] = json!([normal["output"][0].clone()]);
        }
        Protocol::OpenAiChat => {
            empty["choices"][0]["message"] =
                json!({"role": "assistant", "content": "", "refusal": null});
            empty["choices"][0]["finish_reason"] = json!("stop");
            reasoning_only["choices"][0]["message"] = json!({"role": "assistant", "content": null, "reasoning_content": "Let me think.", "refusal": null});
            reasoning_only["choices"][0]["finish_reason"] = json!("length");
        }
        Protocol::Anthropic => {
            empty["content"] = json!([]);
            empty["stop_reason"] = json!("end_turn");
            reasoning_only["content"] = json!([{"type": "thinking", "thinking": "Let me think.", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"}]);
            reasoning_only["stop_reason"] = json!("max_tokens");
        }
        Protocol::Gemini => {
            empty["candidates"][0]["content"] = json!({"role": "model"});
            empty["candidates"][0]["finishReason"] = json!("MALFORMED_FUNCTION_CALL");
            reasoning_only["candidates"][0]["content"] =
                json!({"role": "model", "parts": [{"text": "Let me think.", "thought": true}]});
            reasoning_only["candidates"][0]["finishReason"] = json!("MAX_TOKENS");
        }
    }
    vec![
        ("tool-call", normal),
        ("empty", empty),
        ("reasoning-only", reasoning_only),
    ]
}

/// The conversation after `reply`: its assistant turn, the tool's answer to any call, and
/// the user's nudge to go on.
fn after(reply: &ModelReply) -> Vec<Message> {
    let mut messages = vec![
        Message::System {
            content: "You are a helpful assistant.".into(),
        },
        Message::User {
            content: "Call ./next_question.".into(),
        },
        reply.message.clone(),
    ];
    if let Message::Assistant { tool_calls, .. } = &reply.message {
        for (i, ToolCall { id, name, .. }) in tool_calls.iter().enumerate() {
            messages.push(Message::Tool {
                tool_call_id: id.clone(),
                name: name.clone(),
                content: "What is 1 + 1?".into(),
                error: (i > 0).then(|| "a second call in one turn".into()),
            });
        }
    }
    messages.push(Message::User {
        content: "Please proceed to the next step using your best judgement.".into(),
    });
    messages
}

/// Every body the clients send in these cases, named.
fn bodies(protocol: Protocol) -> Vec<(String, Value)> {
    let first = vec![
        Message::System {
            content: "You are a helpful assistant.".into(),
        },
        Message::User {
            content: "Call ./next_question.".into(),
        },
    ];
    let mut out = Vec::new();
    for (model, options) in settings(protocol) {
        protocol.check_options(model, &options).unwrap();
        let thinking = if options.is_empty() {
            "plain"
        } else {
            "options"
        };
        for (with_tools, tools) in [("tools", tools()), ("no-tools", vec![])] {
            let request = ModelRequest {
                messages: first.clone(),
                tools: tools.clone(),
                seed: None,
                task_command: None,
            };
            out.push((
                format!("{model}-{thinking}-{with_tools}-first"),
                protocol.build_request(model, &request, &options),
            ));
        }
        for (name, response) in replies(protocol) {
            let reply = protocol
                .parse_response(&response)
                .unwrap_or_else(|e| panic!("{}: {name}: {e}", protocol.id()));
            let request = ModelRequest {
                messages: after(&reply),
                tools: tools(),
                seed: None,
                task_command: None,
            };
            out.push((
                format!("{model}-{thinking}-after-{name}"),
                protocol.build_request(model, &request, &options),
            ));
        }
    }
    out
}

fn venv_python() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv-sdk/bin/python")
}

/// Runs scripts/validate-requests.py; returns (success, output).
fn validate(mode: &str, protocol: Protocol, files: &[PathBuf]) -> (bool, String) {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/validate-requests.py");
    let out = Command::new(venv_python())
        .arg(script)
        .args(if mode == "responses" {
            vec!["--responses"]
        } else {
            vec![]
        })
        .arg(protocol.id())
        .args(files)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run scripts/install-test-deps.sh)",
                venv_python().display()
            )
        });
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn write(dir: &Path, name: &str, body: &Value) -> PathBuf {
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(body).unwrap()).unwrap();
    path
}

#[test]
fn every_request_body_passes_the_official_sdk_types_and_the_services_rules() {
    let dir = tempfile::tempdir().unwrap();
    for protocol in Protocol::ALL {
        let mut files = Vec::new();
        for (name, body) in bodies(protocol) {
            check_request(protocol, &body).unwrap_or_else(|e| {
                panic!(
                    "{} {name}: the service would refuse it: {e}\n{body:#}",
                    protocol.id()
                )
            });
            files.push(write(
                dir.path(),
                &format!("{}-{name}", protocol.id()),
                &body,
            ));
        }
        let (ok, text) = validate("requests", protocol, &files);
        assert!(ok, "{}:\n{text}", protocol.id());
        eprintln!("{}: {} bodies valid", protocol.id(), files.len());
        // The check can fail: an unknown top-level field is refused by both.
        let (_, mut body) = bodies(protocol).remove(0);
        body["not_a_parameter"] = json!(1);
        assert!(check_request(protocol, &body).is_err());
        let bad = write(dir.path(), &format!("{}-bad", protocol.id()), &body);
        let (ok, text) = validate("requests", protocol, &[bad]);
        assert!(!ok && text.contains("REFUSED"), "{}: {text}", protocol.id());
    }
}

/// What the real services refuse and the clients once sent: each shape is refused by the
/// mock server, so an episode-level regression fails there too.
#[test]
fn the_mock_server_refuses_what_the_services_refuse() {
    let refused = [
        (
            Protocol::OpenAiChat,
            json!({"model": "gpt-4.1", "messages": [{"role": "user", "content": "x"}], "tools": []}),
        ),
        (
            Protocol::OpenAiChat,
            json!({"model": "gpt-4.1", "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": null}, {"role": "user", "content": "go on"}]}),
        ),
        (
            Protocol::OpenAiResponses,
            json!({"model": "o3", "input": [{"role": "user", "content": "x"}, {"type": "reasoning", "id": "rs_1", "summary": []}, {"role": "user", "content": "go on"}]}),
        ),
        (
            Protocol::OpenAiResponses,
            json!({"model": "o3", "input": [], "seed": 7}),
        ),
        (
            Protocol::Anthropic,
            json!({"model": "c", "max_tokens": 10, "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}, {"role": "assistant", "content": []}, {"role": "user", "content": [{"type": "text", "text": "go on"}]}]}),
        ),
        (
            Protocol::Anthropic,
            json!({"model": "c", "max_tokens": 8192, "messages": [{"role": "user", "content": "x"}], "thinking": {"type": "enabled", "budget_tokens": 8192}}),
        ),
        (
            Protocol::Gemini,
            json!({"contents": [{"role": "user", "parts": [{"text": "x"}]}, {"role": "model", "parts": []}]}),
        ),
        (
            Protocol::Gemini,
            json!({"contents": [{"role": "user", "parts": [{"text": "x"}]}], "seed": 7}),
        ),
    ];
    for (protocol, body) in refused {
        assert!(
            check_request(protocol, &body).is_err(),
            "{}: {body}",
            protocol.id()
        );
    }
    // A final assistant turn may be empty (Anthropic).
    let prefill = json!({"model": "c", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": []}]});
    check_request(Protocol::Anthropic, &prefill).unwrap();
}

/// The response fixtures and the mock server's responses carry what the official SDKs'
/// response types require.
#[test]
fn responses_read_as_the_official_sdk_types() {
    let dir = tempfile::tempdir().unwrap();
    for protocol in Protocol::ALL {
        let mut files = Vec::new();
        for name in ["response-1.json", "response-2.json"] {
            let body: Value = serde_json::from_str(&fixture(protocol.id(), name)).unwrap();
            files.push(write(
                dir.path(),
                &format!("{}-{name}", protocol.id()),
                &body,
            ));
        }
        for (i, message) in [
            Message::Assistant {
                content: Some("4".into()),
                reasoning: None,
                tool_calls: vec![],
                provider_data: None,
            },
            Message::Assistant {
                content: None,
                reasoning: None,
                tool_calls: vec![ToolCall {
                    id: "call_1".into(),
                    name: "bash".into(),
                    arguments: "{\"cmd\":\"ls\"}".into(),
                }],
                provider_data: None,
            },
        ]
        .into_iter()
        .enumerate()
        {
            let reply = ModelReply {
                message,
                usage: Usage::default(),
                stop_reason: StopReason::Stop,
                exchange: None,
            };
            let body = protocol.render_response("mock-model", &reply, i + 1);
            files.push(write(
                dir.path(),
                &format!("{}-mock-{i}", protocol.id()),
                &body,
            ));
        }
        let (ok, text) = validate("responses", protocol, &files);
        assert!(ok, "{}:\n{text}", protocol.id());
    }
}
