//! OpenAI Chat Completions (`POST /v1/chat/completions`): OpenAI's non-reasoning models
//! and every OpenAI-compatible server (vLLM, Ollama, llama.cpp, OpenRouter, xAI).
//! The assistant message is replayed as the server sent it, so fields like
//! `reasoning_content` or `reasoning_details` survive.

use super::{Options, Protocol, replay, str_of, u64_of, wrap};
use crate::types::{Message, ModelReply, ModelRequest, StopReason, ToolCall, Usage};
use serde_json::{Value, json};

const P: Protocol = Protocol::OpenAiChat;

pub fn build_request(model: &str, req: &ModelRequest, options: &Options) -> Value {
    let messages: Vec<Value> = req
        .messages
        .iter()
        .filter(|m| !is_empty_turn(m))
        .map(|m| match m {
            Message::System { content } => json!({ "role": "system", "content": content }),
            Message::User { content } => json!({ "role": "user", "content": content }),
            Message::Assistant {
                content,
                tool_calls,
                provider_data,
                ..
            } => match replay(P, provider_data) {
                Some(message) => replayable(message),
                None => {
                    let mut msg = json!({ "role": "assistant", "content": content });
                    if !tool_calls.is_empty() {
                        msg["tool_calls"] = tool_calls.iter().map(tool_call_json).collect();
                    }
                    msg
                }
            },
            Message::Tool {
                tool_call_id,
                content,
                error,
                ..
            } => {
                let text = super::tool_result_text(content, error);
                json!({ "role": "tool", "tool_call_id": tool_call_id, "content": text })
            }
        })
        .collect();
    let tools: Vec<Value> = req
        .tools
        .iter()
        .map(|t| json!({ "type": "function", "function": { "name": t.name, "description": t.description, "parameters": t.parameters } }))
        .collect();
    let mut body = json!({ "model": model, "messages": messages });
    // OpenAI answers an empty `tools` with a 400 (newer vLLM with a 422): omit it.
    if !tools.is_empty() {
        body["tools"] = Value::Array(tools);
    }
    super::set_options(
        &mut body,
        options,
        &[
            ("max_tokens", "max_completion_tokens"),
            ("reasoning_effort", "reasoning_effort"),
            ("temperature", "temperature"),
            ("top_p", "top_p"),
            ("seed", "seed"),
        ],
    );
    super::options::insert_extra(&mut body, options);
    body
}

/// An assistant turn with neither text nor tool calls (a reply cut off while reasoning,
/// an empty one): OpenAI refuses an assistant message without content or tool calls, so
/// it does not go back.
fn is_empty_turn(m: &Message) -> bool {
    matches!(
        m,
        Message::Assistant { content, tool_calls, .. }
            if tool_calls.is_empty() && content.as_deref().is_none_or(str::is_empty)
    )
}

/// The assistant message as the server sent it, less what exists only in responses
/// (`annotations`, fields set to null): servers accept the rest, and fields such as
/// `reasoning_content` or `reasoning_details` must go back.
fn replayable(message: &Value) -> Value {
    match message {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, v)| {
                    k.as_str() != "annotations" && (!v.is_null() || k.as_str() == "content")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn tool_call_json(c: &ToolCall) -> Value {
    json!({ "id": c.id, "type": "function", "function": { "name": c.name, "arguments": c.arguments } })
}

pub fn parse_response(body: &Value) -> Result<ModelReply, String> {
    let choice = body
        .pointer("/choices/0")
        .ok_or("response has no choices")?;
    let message = choice.get("message").ok_or("choice has no message")?;
    let mut calls = Vec::new();
    for c in message
        .get("tool_calls")
        .and_then(|t| t.as_array())
        .into_iter()
        .flatten()
    {
        calls.push(ToolCall {
            id: str_of(c, "id").ok_or("tool call without id")?,
            name: c
                .pointer("/function/name")
                .and_then(|n| n.as_str())
                .ok_or("tool call without a function name")?
                .to_string(),
            arguments: c
                .pointer("/function/arguments")
                .and_then(|a| a.as_str())
                .unwrap_or_default()
                .to_string(),
        });
    }
    let stop_reason = match choice.get("finish_reason").and_then(|f| f.as_str()) {
        Some("content_filter") => StopReason::ContentFilter,
        Some("length") => StopReason::MaxTokens,
        _ if message.get("refusal").is_some_and(|r| !r.is_null()) => StopReason::ContentFilter,
        _ if !calls.is_empty() => StopReason::ToolCalls,
        _ => StopReason::Stop,
    };
    let reasoning = str_of(message, "reasoning_content").or_else(|| str_of(message, "reasoning"));
    let usage = Usage {
        input_tokens: u64_of(body, &["usage", "prompt_tokens"]),
        output_tokens: u64_of(body, &["usage", "completion_tokens"]),
        reasoning_tokens: u64_of(
            body,
            &["usage", "completion_tokens_details", "reasoning_tokens"],
        ),
        cached_tokens: u64_of(body, &["usage", "prompt_tokens_details", "cached_tokens"]),
    };
    Ok(ModelReply {
        message: Message::Assistant {
            content: str_of(message, "content").or_else(|| str_of(message, "refusal")),
            reasoning,
            tool_calls: calls,
            provider_data: Some(wrap(P, message.clone())),
        },
        usage,
        stop_reason,
        exchange: None,
    })
}

pub fn parse_request(body: &Value) -> Result<Vec<Message>, String> {
    let messages = body
        .get("messages")
        .and_then(|m| m.as_array())
        .ok_or("request has no `messages` array")?;
    messages
        .iter()
        .map(|m| {
            let content = str_of(m, "content").unwrap_or_default();
            Ok(match m.get("role").and_then(|r| r.as_str()) {
                Some("system") | Some("developer") => Message::System { content },
                Some("user") => Message::User { content },
                Some("tool") => Message::Tool {
                    tool_call_id: str_of(m, "tool_call_id").unwrap_or_default(),
                    name: String::new(),
                    content,
                    error: None,
                },
                Some("assistant") => Message::Assistant {
                    content: str_of(m, "content"),
                    reasoning: None,
                    tool_calls: m
                        .get("tool_calls")
                        .and_then(|t| t.as_array())
                        .into_iter()
                        .flatten()
                        .map(|c| ToolCall {
                            id: str_of(c, "id").unwrap_or_default(),
                            name: c
                                .pointer("/function/name")
                                .and_then(|n| n.as_str())
                                .unwrap_or_default()
                                .to_string(),
                            arguments: c
                                .pointer("/function/arguments")
                                .and_then(|a| a.as_str())
                                .unwrap_or_default()
                                .to_string(),
                        })
                        .collect(),
                    provider_data: Some(wrap(P, m.clone())),
                },
                other => return Err(format!("unsupported message role {other:?}")),
            })
        })
        .collect()
}

pub fn render_response(model: &str, reply: &ModelReply, turn: usize) -> Value {
    let (content, calls) = match &reply.message {
        Message::Assistant {
            content,
            tool_calls,
            ..
        } => (content.clone(), tool_calls.clone()),
        _ => (None, Vec::new()),
    };
    let mut message = json!({ "role": "assistant", "content": content, "refusal": null });
    if !calls.is_empty() {
        message["tool_calls"] = calls.iter().map(tool_call_json).collect();
    }
    json!({
        "id": format!("chatcmpl-mock-{turn}"),
        "object": "chat.completion",
        "created": 1_700_000_000 + turn,
        "model": model,
        "choices": [{ "index": 0, "message": message, "logprobs": null, "finish_reason": if calls.is_empty() { "stop" } else { "tool_calls" } }],
        "usage": {
            "prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
            "prompt_tokens_details": { "cached_tokens": 0 }, "completion_tokens_details": { "reasoning_tokens": 0 },
        },
    })
}
