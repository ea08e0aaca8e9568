//! Google Gemini `generateContent` (`POST /v1beta/models/{model}:generateContent`).
//! Model turns are replayed with their parts as returned, so `thoughtSignature`s go back
//! with the function calls they belong to (Gemini requires them for multi-turn tool use
//! with thinking).

use super::{Options, Protocol, replay, str_of, u64_of, wrap};
use crate::types::{Message, ModelReply, ModelRequest, StopReason, ToolCall, Usage};
use serde_json::{Value, json};

const P: Protocol = Protocol::Gemini;

/// Gemini's schema dialect has no `additionalProperties`.
fn gemini_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| k.as_str() != "additionalProperties")
                .map(|(k, v)| (k.clone(), gemini_schema(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(gemini_schema).collect()),
        other => other.clone(),
    }
}

pub fn build_request(_model: &str, req: &ModelRequest, options: &Options) -> Value {
    let mut system = Vec::new();
    let mut contents: Vec<Value> = Vec::new();
    // Tool results answer calls by name; remember each call id's name.
    let mut names = std::collections::HashMap::new();
    // Ids Gemini gave its function calls.
    let mut ids = std::collections::HashSet::new();
    let push_user = |part: Value, contents: &mut Vec<Value>| match contents.last_mut() {
        Some(last) if last["role"] == "user" => {
            if let Some(parts) = last["parts"].as_array_mut() {
                parts.push(part);
            }
        }
        _ => contents.push(json!({ "role": "user", "parts": [part] })),
    };
    for m in &req.messages {
        match m {
            Message::System { content } => system.push(json!({ "text": content })),
            Message::User { content } => push_user(json!({ "text": content }), &mut contents),
            Message::Assistant {
                content,
                tool_calls,
                provider_data,
                ..
            } => {
                for c in tool_calls {
                    names.insert(c.id.clone(), c.name.clone());
                }
                match replay(P, provider_data) {
                    // A candidate with no content (MALFORMED_FUNCTION_CALL, an empty STOP)
                    // cannot go back: Gemini refuses empty `parts`. Left out.
                    Some(Value::Array(parts)) if parts.is_empty() => {}
                    Some(parts) => {
                        for call in parts
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|p| p.get("functionCall"))
                        {
                            ids.extend(str_of(call, "id"));
                        }
                        contents.push(json!({ "role": "model", "parts": parts }))
                    }
                    None => {
                        let mut parts = Vec::new();
                        if let Some(text) = content.as_ref().filter(|t| !t.is_empty()) {
                            parts.push(json!({ "text": text }));
                        }
                        for c in tool_calls {
                            let args: Value =
                                serde_json::from_str(&c.arguments).unwrap_or_else(|_| json!({}));
                            parts.push(json!({ "functionCall": { "name": c.name, "args": args } }));
                        }
                        if !parts.is_empty() {
                            contents.push(json!({ "role": "model", "parts": parts }));
                        }
                    }
                }
            }
            Message::Tool {
                tool_call_id,
                name,
                content,
                error,
            } => {
                let name = names
                    .get(tool_call_id)
                    .cloned()
                    .unwrap_or_else(|| name.clone());
                let response = match error {
                    Some(e) => json!({ "error": e, "output": content }),
                    None => json!({ "output": content }),
                };
                let mut answer = json!({ "name": name, "response": response });
                // The call's own id goes back with its answer (ids we made up do not).
                if ids.contains(tool_call_id) {
                    answer["id"] = json!(tool_call_id);
                }
                push_user(json!({ "functionResponse": answer }), &mut contents);
            }
        }
    }
    let declarations: Vec<Value> = req
        .tools
        .iter()
        .map(|t| json!({ "name": t.name, "description": t.description, "parameters": gemini_schema(&t.parameters) }))
        .collect();
    let mut body = json!({ "contents": contents });
    if !system.is_empty() {
        body["systemInstruction"] = json!({ "parts": system });
    }
    if !declarations.is_empty() {
        body["tools"] = json!([{ "functionDeclarations": declarations }]);
    }
    // Sampling options belong in `generationConfig`, not at the top level.
    let mut config = json!({});
    super::set_options(
        &mut config,
        options,
        &[
            ("temperature", "temperature"),
            ("max_tokens", "maxOutputTokens"),
            ("top_p", "topP"),
            ("top_k", "topK"),
            ("seed", "seed"),
        ],
    );
    if let Some(b) = options.get("thinking_budget") {
        config["thinkingConfig"] = json!({ "thinkingBudget": b });
    }
    if config.as_object().is_some_and(|c| !c.is_empty()) {
        body["generationConfig"] = config;
    }
    super::options::insert_extra(&mut body, options);
    body
}

pub fn parse_response(body: &Value) -> Result<ModelReply, String> {
    if let Some(reason) = body
        .pointer("/promptFeedback/blockReason")
        .and_then(|r| r.as_str())
    {
        return Ok(ModelReply {
            message: Message::Assistant {
                content: Some(format!("[prompt blocked: {reason}]")),
                reasoning: None,
                tool_calls: vec![],
                provider_data: None,
            },
            usage: Usage::default(),
            stop_reason: StopReason::ContentFilter,
            exchange: None,
        });
    }
    let candidate = body
        .pointer("/candidates/0")
        .ok_or("response has no candidates")?;
    let parts = candidate
        .pointer("/content/parts")
        .and_then(|p| p.as_array())
        .cloned()
        .unwrap_or_default();
    let mut text = Vec::new();
    let mut thoughts = Vec::new();
    let mut calls = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        if let Some(call) = part.get("functionCall") {
            calls.push(ToolCall {
                id: str_of(call, "id").unwrap_or_else(|| {
                    format!(
                        "gemini_call_{i}_{}",
                        str_of(call, "name").unwrap_or_default()
                    )
                }),
                name: str_of(call, "name").ok_or("functionCall without name")?,
                arguments: call
                    .get("args")
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "{}".into()),
            });
        } else if let Some(t) = str_of(part, "text") {
            if part.get("thought").and_then(|t| t.as_bool()) == Some(true) {
                thoughts.push(t);
            } else {
                text.push(t);
            }
        }
    }
    let stop_reason = match candidate.get("finishReason").and_then(|f| f.as_str()) {
        Some("SAFETY")
        | Some("RECITATION")
        | Some("BLOCKLIST")
        | Some("PROHIBITED_CONTENT")
        | Some("SPII") => StopReason::ContentFilter,
        Some("MAX_TOKENS") => StopReason::MaxTokens,
        Some("MALFORMED_FUNCTION_CALL")
        | Some("UNEXPECTED_TOOL_CALL")
        | Some("TOO_MANY_TOOL_CALLS") => StopReason::BadToolCall,
        _ if !calls.is_empty() => StopReason::ToolCalls,
        _ => StopReason::Stop,
    };
    let usage = Usage {
        input_tokens: u64_of(body, &["usageMetadata", "promptTokenCount"]),
        output_tokens: u64_of(body, &["usageMetadata", "candidatesTokenCount"])
            + u64_of(body, &["usageMetadata", "thoughtsTokenCount"]),
        reasoning_tokens: u64_of(body, &["usageMetadata", "thoughtsTokenCount"]),
        cached_tokens: u64_of(body, &["usageMetadata", "cachedContentTokenCount"]),
    };
    Ok(ModelReply {
        message: Message::Assistant {
            content: (!text.is_empty()).then(|| text.join("\n")),
            reasoning: (!thoughts.is_empty()).then(|| thoughts.join("\n")),
            tool_calls: calls,
            provider_data: Some(wrap(P, Value::Array(parts))),
        },
        usage,
        stop_reason,
        exchange: None,
    })
}

pub fn parse_request(body: &Value) -> Result<Vec<Message>, String> {
    let mut out = Vec::new();
    let system: Vec<String> = body
        .pointer("/systemInstruction/parts")
        .and_then(|p| p.as_array())
        .into_iter()
        .flatten()
        .filter_map(|p| str_of(p, "text"))
        .collect();
    if !system.is_empty() {
        out.push(Message::System {
            content: system.join("\n"),
        });
    }
    let mut call_ids: std::collections::VecDeque<String> = Default::default();
    for c in body
        .get("contents")
        .and_then(|c| c.as_array())
        .ok_or("request has no `contents` array")?
    {
        let parts = c
            .get("parts")
            .and_then(|p| p.as_array())
            .cloned()
            .unwrap_or_default();
        if c["role"] == "model" {
            let calls: Vec<ToolCall> = parts
                .iter()
                .enumerate()
                .filter_map(|(i, p)| p.get("functionCall").map(|f| (i, f)))
                .map(|(i, f)| ToolCall {
                    id: str_of(f, "id").unwrap_or_else(|| {
                        format!("gemini_call_{i}_{}", str_of(f, "name").unwrap_or_default())
                    }),
                    name: str_of(f, "name").unwrap_or_default(),
                    arguments: f["args"].to_string(),
                })
                .collect();
            call_ids.extend(calls.iter().map(|c| c.id.clone()));
            out.push(Message::Assistant {
                content: None,
                reasoning: None,
                tool_calls: calls,
                provider_data: Some(wrap(P, Value::Array(parts))),
            });
            continue;
        }
        for p in parts {
            if let Some(r) = p.get("functionResponse") {
                out.push(Message::Tool {
                    tool_call_id: call_ids.pop_front().unwrap_or_default(),
                    name: str_of(r, "name").unwrap_or_default(),
                    content: r
                        .pointer("/response/output")
                        .and_then(|o| o.as_str())
                        .unwrap_or_default()
                        .to_string(),
                    error: None,
                });
            } else {
                out.push(Message::User {
                    content: str_of(&p, "text").unwrap_or_default(),
                });
            }
        }
    }
    Ok(out)
}

pub fn render_response(model: &str, reply: &ModelReply, turn: usize) -> Value {
    let mut parts = Vec::new();
    if let Message::Assistant {
        content,
        tool_calls,
        ..
    } = &reply.message
    {
        if let Some(t) = content {
            parts.push(json!({ "text": t }));
        }
        for (i, c) in tool_calls.iter().enumerate() {
            let args: Value = serde_json::from_str(&c.arguments)
                .unwrap_or_else(|_| json!({ "_raw": c.arguments }));
            let mut part = json!({ "functionCall": { "name": c.name, "args": args } });
            if i == 0 {
                part["thoughtSignature"] = json!(format!("mock-thought-signature-{turn}"));
            }
            parts.push(part);
        }
    }
    let has_calls = parts.iter().any(|p| p.get("functionCall").is_some());
    json!({
        "candidates": [{ "content": { "role": "model", "parts": parts }, "finishReason": "STOP", "index": 0 }],
        "usageMetadata": { "promptTokenCount": 100, "candidatesTokenCount": 20, "thoughtsTokenCount": if has_calls { 10 } else { 0 }, "totalTokenCount": 130 },
        "modelVersion": model,
        "responseId": format!("mock-{turn}"),
    })
}
