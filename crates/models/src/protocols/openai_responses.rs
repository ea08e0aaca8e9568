//! OpenAI Responses API (`POST /v1/responses`), the default for OpenAI's reasoning
//! models. Runs stateless (`store: false`) and asks for `reasoning.encrypted_content`,
//! so reasoning items go back to the model on every later turn, as OpenAI recommends for
//! tool use with reasoning models.

use super::{Options, Protocol, replay, str_of, u64_of, wrap};
use crate::http::CallError;
use crate::types::{Message, ModelReply, ModelRequest, StopReason, ToolCall, Usage};
use serde_json::{Value, json};

const P: Protocol = Protocol::OpenAiResponses;

pub fn build_request(model: &str, req: &ModelRequest, options: &Options) -> Value {
    let mut input = Vec::new();
    for m in &req.messages {
        match m {
            Message::System { content } => {
                input.push(json!({ "role": "developer", "content": content }))
            }
            Message::User { content } => input.push(json!({ "role": "user", "content": content })),
            Message::Assistant {
                content,
                tool_calls,
                provider_data,
                ..
            } => match replay(P, provider_data) {
                Some(Value::Array(items)) => input.extend(replayable(items).cloned()),
                _ => {
                    if let Some(text) = content.as_ref().filter(|t| !t.is_empty()) {
                        input.push(json!({ "role": "assistant", "content": text }));
                    }
                    for c in tool_calls {
                        input.push(json!({ "type": "function_call", "call_id": c.id, "name": c.name, "arguments": c.arguments }));
                    }
                }
            },
            Message::Tool {
                tool_call_id,
                content,
                error,
                ..
            } => {
                let output = super::tool_result_text(content, error);
                input.push(json!({ "type": "function_call_output", "call_id": tool_call_id, "output": output }));
            }
        }
    }
    let tools: Vec<Value> = req
        .tools
        .iter()
        .map(|t| json!({ "type": "function", "name": t.name, "description": t.description, "parameters": t.parameters, "strict": false }))
        .collect();
    let mut body = json!({
        "model": model,
        "input": input,
        "store": false,
        "include": ["reasoning.encrypted_content"],
    });
    if !tools.is_empty() {
        body["tools"] = Value::Array(tools);
    }
    if let Some(effort) = options.get("reasoning_effort") {
        body["reasoning"] = json!({ "effort": effort });
    }
    super::set_options(
        &mut body,
        options,
        &[
            ("max_tokens", "max_output_tokens"),
            ("temperature", "temperature"),
            ("top_p", "top_p"),
        ],
    );
    super::options::insert_extra(&mut body, options);
    body
}

/// A `200` whose `status` is `failed` carries its error in the body: not a stop. Retried
/// when the error code is the server's or a rate limit (what the API documents as
/// transient), otherwise the call fails.
pub fn error_in_body(body: &Value) -> Option<CallError> {
    if body.get("status").and_then(|s| s.as_str()) != Some("failed") {
        return None;
    }
    let code = body
        .pointer("/error/code")
        .and_then(|c| c.as_str())
        .unwrap_or("unknown");
    let message = format!(
        "the response failed ({code}): {}",
        body.pointer("/error/message")
            .and_then(|m| m.as_str())
            .unwrap_or("no message")
    );
    Some(match code {
        "server_error" | "rate_limit_exceeded" => CallError::Transient {
            message,
            retry_after: None,
            throttled: code == "rate_limit_exceeded",
        },
        _ => CallError::Fatal { message },
    })
}

/// The turn's output items as they can go back: a reasoning item must be followed by the
/// item it led to, so trailing reasoning items (a reply cut off by `max_output_tokens`
/// after reasoning only) are left out of the replay; the API rejects them.
fn replayable(items: &[Value]) -> impl Iterator<Item = &Value> {
    let is_reasoning = |i: &Value| i.get("type").and_then(|t| t.as_str()) == Some("reasoning");
    let end = items
        .iter()
        .rposition(|i| !is_reasoning(i))
        .map_or(0, |last| last + 1);
    items[..end].iter()
}

pub fn parse_response(body: &Value) -> Result<ModelReply, String> {
    let output = body
        .get("output")
        .and_then(|o| o.as_array())
        .ok_or("response has no `output` array")?;
    let mut text = Vec::new();
    let mut reasoning = Vec::new();
    let mut calls = Vec::new();
    for item in output {
        match item.get("type").and_then(|t| t.as_str()) {
            Some("message") => {
                for part in item
                    .get("content")
                    .and_then(|c| c.as_array())
                    .into_iter()
                    .flatten()
                {
                    match part.get("type").and_then(|t| t.as_str()) {
                        Some("output_text") => text.extend(str_of(part, "text")),
                        Some("refusal") => text.extend(str_of(part, "refusal")),
                        _ => {}
                    }
                }
            }
            Some("reasoning") => {
                for s in item
                    .get("summary")
                    .and_then(|s| s.as_array())
                    .into_iter()
                    .flatten()
                {
                    reasoning.extend(str_of(s, "text"));
                }
            }
            Some("function_call") => calls.push(ToolCall {
                id: str_of(item, "call_id").ok_or("function_call without call_id")?,
                name: str_of(item, "name").ok_or("function_call without name")?,
                arguments: str_of(item, "arguments").unwrap_or_default(),
            }),
            _ => {}
        }
    }
    let refused = output
        .iter()
        .any(|i| i.pointer("/content/0/type").and_then(|t| t.as_str()) == Some("refusal"));
    let incomplete = body
        .pointer("/incomplete_details/reason")
        .and_then(|r| r.as_str());
    let stop_reason = match incomplete {
        Some("content_filter") => StopReason::ContentFilter,
        Some("max_output_tokens") => StopReason::MaxTokens,
        _ if refused => StopReason::ContentFilter,
        _ if !calls.is_empty() => StopReason::ToolCalls,
        _ => StopReason::Stop,
    };
    let usage = Usage {
        input_tokens: u64_of(body, &["usage", "input_tokens"]),
        output_tokens: u64_of(body, &["usage", "output_tokens"]),
        reasoning_tokens: u64_of(
            body,
            &["usage", "output_tokens_details", "reasoning_tokens"],
        ),
        cached_tokens: u64_of(body, &["usage", "input_tokens_details", "cached_tokens"]),
    };
    Ok(ModelReply {
        message: Message::Assistant {
            content: (!text.is_empty()).then(|| text.join("\n")),
            reasoning: (!reasoning.is_empty()).then(|| reasoning.join("\n")),
            tool_calls: calls,
            provider_data: Some(wrap(P, Value::Array(output.clone()))),
        },
        usage,
        stop_reason,
        exchange: None,
    })
}

pub fn parse_request(body: &Value) -> Result<Vec<Message>, String> {
    let input = body
        .get("input")
        .and_then(|i| i.as_array())
        .ok_or("request has no `input` array")?;
    let mut messages = Vec::new();
    let mut pending: Option<(Vec<Value>, Vec<ToolCall>)> = None;
    let flush = |pending: &mut Option<(Vec<Value>, Vec<ToolCall>)>, messages: &mut Vec<Message>| {
        if let Some((items, calls)) = pending.take() {
            messages.push(Message::Assistant {
                content: None,
                reasoning: None,
                tool_calls: calls,
                provider_data: Some(wrap(P, Value::Array(items))),
            });
        }
    };
    for item in input {
        let kind = item.get("type").and_then(|t| t.as_str());
        let role = item.get("role").and_then(|r| r.as_str());
        match (kind, role) {
            (Some("reasoning") | Some("function_call"), _)
            | (Some("message"), Some("assistant"))
            | (None, Some("assistant")) => {
                let entry = pending.get_or_insert_with(Default::default);
                entry.0.push(item.clone());
                if kind == Some("function_call") {
                    entry.1.push(ToolCall {
                        id: str_of(item, "call_id").unwrap_or_default(),
                        name: str_of(item, "name").unwrap_or_default(),
                        arguments: str_of(item, "arguments").unwrap_or_default(),
                    });
                }
            }
            (Some("function_call_output"), _) => {
                flush(&mut pending, &mut messages);
                messages.push(Message::Tool {
                    tool_call_id: str_of(item, "call_id").unwrap_or_default(),
                    name: String::new(),
                    content: str_of(item, "output").unwrap_or_default(),
                    error: None,
                });
            }
            (_, Some("system") | Some("developer")) => {
                flush(&mut pending, &mut messages);
                messages.push(Message::System {
                    content: text_content(item),
                });
            }
            (_, Some("user")) => {
                flush(&mut pending, &mut messages);
                messages.push(Message::User {
                    content: text_content(item),
                });
            }
            _ => return Err(format!("unsupported input item: {item}")),
        }
    }
    flush(&mut pending, &mut messages);
    Ok(messages)
}

fn text_content(item: &Value) -> String {
    match item.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| str_of(p, "text"))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

pub fn render_response(model: &str, reply: &ModelReply, turn: usize) -> Value {
    let mut output = vec![json!({
        "type": "reasoning",
        "id": format!("rs_mock_{turn}"),
        "summary": [],
        "encrypted_content": format!("mock-encrypted-reasoning-{turn}"),
    })];
    if let Message::Assistant {
        content,
        tool_calls,
        ..
    } = &reply.message
    {
        if let Some(text) = content {
            output.push(json!({
                "type": "message", "id": format!("msg_mock_{turn}"), "status": "completed", "role": "assistant",
                "content": [{ "type": "output_text", "text": text, "annotations": [], "logprobs": [] }],
            }));
        }
        for c in tool_calls {
            output.push(json!({
                "type": "function_call", "id": format!("fc_mock_{turn}"), "call_id": c.id, "name": c.name,
                "arguments": c.arguments, "status": "completed",
            }));
        }
    }
    json!({
        "id": format!("resp_mock_{turn}"),
        "object": "response",
        "created_at": 1_700_000_000 + turn,
        "status": "completed",
        "model": model,
        "output": output,
        "parallel_tool_calls": true,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": 100, "input_tokens_details": { "cached_tokens": 0, "cache_write_tokens": 0 },
            "output_tokens": 20, "output_tokens_details": { "reasoning_tokens": 10 }, "total_tokens": 120,
        },
    })
}
