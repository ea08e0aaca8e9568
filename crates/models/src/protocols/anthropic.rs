//! Anthropic Messages (`POST /v1/messages`). Assistant turns are replayed as the API
//! returned their `content` blocks, so thinking blocks keep their signatures (the API
//! rejects a tool-use turn whose thinking was altered). Tool results and any text that
//! follows them share one user turn.

use super::options::Thinking;
use super::{Options, Protocol, replay, str_of, u64_of, wrap};
use crate::types::{Message, ModelReply, ModelRequest, StopReason, ToolCall, Usage};
use serde_json::{Value, json};

const P: Protocol = Protocol::Anthropic;
pub const API_VERSION: &str = "2023-06-01";
pub const DEFAULT_MAX_TOKENS: u64 = 8192;

pub fn build_request(model: &str, req: &ModelRequest, options: &Options) -> Value {
    let mut system = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    let push = |role: &str, block: Value, messages: &mut Vec<Value>| match messages.last_mut() {
        Some(last) if last["role"] == role && role == "user" => {
            if let Some(blocks) = last["content"].as_array_mut() {
                blocks.push(block);
            }
        }
        _ => messages.push(json!({ "role": role, "content": [block] })),
    };
    for m in &req.messages {
        match m {
            Message::System { content } => system.push(content.clone()),
            Message::User { content } => push(
                "user",
                json!({ "type": "text", "text": content }),
                &mut messages,
            ),
            Message::Assistant {
                content,
                tool_calls,
                provider_data,
                ..
            } => match replay(P, provider_data) {
                // An empty reply (`content: []`, seen from the live API) cannot go back:
                // the API wants non-empty content in every turn but a final assistant one.
                // Left out, the turns around it merge.
                Some(Value::Array(blocks)) if blocks.is_empty() => {}
                Some(blocks) => messages.push(json!({ "role": "assistant", "content": blocks })),
                None => {
                    let mut blocks = Vec::new();
                    if let Some(text) = content.as_ref().filter(|t| !t.is_empty()) {
                        blocks.push(json!({ "type": "text", "text": text }));
                    }
                    for c in tool_calls {
                        let input: Value =
                            serde_json::from_str(&c.arguments).unwrap_or_else(|_| json!({}));
                        blocks.push(json!({ "type": "tool_use", "id": c.id, "name": c.name, "input": input }));
                    }
                    if !blocks.is_empty() {
                        messages.push(json!({ "role": "assistant", "content": blocks }));
                    }
                }
            },
            Message::Tool {
                tool_call_id,
                content,
                error,
                ..
            } => {
                let text = super::tool_result_text(content, error);
                let mut block =
                    json!({ "type": "tool_result", "tool_use_id": tool_call_id, "content": text });
                if error.is_some() {
                    block["is_error"] = json!(true);
                }
                push("user", block, &mut messages);
            }
        }
    }
    let tools: Vec<Value> =
        req.tools.iter().map(|t| json!({ "name": t.name, "description": t.description, "input_schema": t.parameters })).collect();
    let mut body = json!({
        "model": model,
        "max_tokens": options.get("max_tokens").cloned().unwrap_or(json!(DEFAULT_MAX_TOKENS)),
        "system": system.join("\n\n"),
        "messages": messages,
    });
    if !tools.is_empty() {
        body["tools"] = Value::Array(tools);
    }
    // Checked before the first call (`Protocol::check_options`).
    match super::options::anthropic_thinking(model, options) {
        Ok(Some(Thinking::Enabled)) => {
            body["thinking"] =
                json!({ "type": "enabled", "budget_tokens": options.get("thinking_budget") });
        }
        Ok(Some(Thinking::Adaptive)) => body["thinking"] = json!({ "type": "adaptive" }),
        Ok(Some(Thinking::Disabled)) => body["thinking"] = json!({ "type": "disabled" }),
        Ok(None) | Err(_) => {}
    }
    super::set_options(
        &mut body,
        options,
        &[
            ("temperature", "temperature"),
            ("top_p", "top_p"),
            ("top_k", "top_k"),
        ],
    );
    super::options::insert_extra(&mut body, options);
    body
}

pub fn parse_response(body: &Value) -> Result<ModelReply, String> {
    let blocks = body
        .get("content")
        .and_then(|c| c.as_array())
        .ok_or("response has no `content` array")?;
    let mut text = Vec::new();
    let mut thinking = Vec::new();
    let mut calls = Vec::new();
    for b in blocks {
        match b.get("type").and_then(|t| t.as_str()) {
            Some("text") => text.extend(str_of(b, "text")),
            Some("thinking") => thinking.extend(str_of(b, "thinking")),
            Some("redacted_thinking") => thinking.push("[redacted thinking]".into()),
            Some("tool_use") => calls.push(ToolCall {
                id: str_of(b, "id").ok_or("tool_use without id")?,
                name: str_of(b, "name").ok_or("tool_use without name")?,
                arguments: b
                    .get("input")
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "{}".into()),
            }),
            _ => {}
        }
    }
    let stop_reason = match body.get("stop_reason").and_then(|s| s.as_str()) {
        Some("refusal") => StopReason::Refusal,
        Some("max_tokens") => StopReason::MaxTokens,
        Some("model_context_window_exceeded") => StopReason::ContextWindow,
        Some("pause_turn") => StopReason::Paused,
        Some("tool_use") => StopReason::ToolCalls,
        _ if !calls.is_empty() => StopReason::ToolCalls,
        _ => StopReason::Stop,
    };
    let usage = Usage {
        input_tokens: u64_of(body, &["usage", "input_tokens"])
            + u64_of(body, &["usage", "cache_read_input_tokens"])
            + u64_of(body, &["usage", "cache_creation_input_tokens"]),
        output_tokens: u64_of(body, &["usage", "output_tokens"]),
        reasoning_tokens: 0,
        cached_tokens: u64_of(body, &["usage", "cache_read_input_tokens"]),
    };
    Ok(ModelReply {
        message: Message::Assistant {
            content: (!text.is_empty()).then(|| text.join("\n")),
            reasoning: (!thinking.is_empty()).then(|| thinking.join("\n")),
            tool_calls: calls,
            provider_data: Some(wrap(P, Value::Array(blocks.clone()))),
        },
        usage,
        stop_reason,
        exchange: None,
    })
}

pub fn parse_request(body: &Value) -> Result<Vec<Message>, String> {
    let mut out = Vec::new();
    if let Some(system) = body.get("system") {
        let text = match system {
            Value::String(s) => s.clone(),
            Value::Array(blocks) => blocks
                .iter()
                .filter_map(|b| str_of(b, "text"))
                .collect::<Vec<_>>()
                .join("\n\n"),
            _ => String::new(),
        };
        out.push(Message::System { content: text });
    }
    for m in body
        .get("messages")
        .and_then(|m| m.as_array())
        .ok_or("request has no `messages` array")?
    {
        let role = m.get("role").and_then(|r| r.as_str()).unwrap_or_default();
        let blocks: Vec<Value> = match m.get("content") {
            Some(Value::String(s)) => vec![json!({ "type": "text", "text": s })],
            Some(Value::Array(b)) => b.clone(),
            _ => Vec::new(),
        };
        if role == "assistant" {
            let calls = blocks
                .iter()
                .filter(|b| b["type"] == "tool_use")
                .map(|b| ToolCall {
                    id: str_of(b, "id").unwrap_or_default(),
                    name: str_of(b, "name").unwrap_or_default(),
                    arguments: b["input"].to_string(),
                })
                .collect();
            out.push(Message::Assistant {
                content: None,
                reasoning: None,
                tool_calls: calls,
                provider_data: Some(wrap(P, Value::Array(blocks))),
            });
            continue;
        }
        for b in blocks {
            match b.get("type").and_then(|t| t.as_str()) {
                Some("tool_result") => out.push(Message::Tool {
                    tool_call_id: str_of(&b, "tool_use_id").unwrap_or_default(),
                    name: String::new(),
                    content: match &b["content"] {
                        Value::String(s) => s.clone(),
                        Value::Array(parts) => parts
                            .iter()
                            .filter_map(|p| str_of(p, "text"))
                            .collect::<Vec<_>>()
                            .join("\n"),
                        _ => String::new(),
                    },
                    error: None,
                }),
                _ => out.push(Message::User {
                    content: str_of(&b, "text").unwrap_or_default(),
                }),
            }
        }
    }
    Ok(out)
}

pub fn render_response(model: &str, reply: &ModelReply, turn: usize) -> Value {
    let mut content = vec![json!({
        "type": "thinking",
        "thinking": format!("(mock thinking for turn {turn})"),
        "signature": format!("mock-signature-{turn}"),
    })];
    let mut calls = false;
    if let Message::Assistant {
        content: text,
        tool_calls,
        ..
    } = &reply.message
    {
        if let Some(t) = text {
            content.push(json!({ "type": "text", "text": t }));
        }
        for c in tool_calls {
            calls = true;
            let input: Value = serde_json::from_str(&c.arguments)
                .unwrap_or_else(|_| json!({ "_raw": c.arguments }));
            content.push(json!({ "type": "tool_use", "id": c.id, "name": c.name, "input": input }));
        }
    }
    json!({
        "id": format!("msg_mock_{turn}"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": if calls { "tool_use" } else { "end_turn" },
        "stop_sequence": null,
        "usage": { "input_tokens": 100, "output_tokens": 20, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0 },
    })
}
