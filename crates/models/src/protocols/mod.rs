//! One module per wire protocol. Each turns the neutral conversation into the provider's
//! request body and the provider's response into a reply, keeping the provider's own
//! JSON for the assistant turn (`provider_data`) so that it is replayed verbatim on the
//! next turn: reasoning items, thinking signatures and thought signatures survive, and
//! so does any field we do not know. Each also has the server side the mock server uses.

pub mod anthropic;
pub mod gemini;
pub mod openai_chat;
pub mod openai_responses;

use crate::types::{Message, ModelReply, ModelRequest};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Per-model options from `-M key=value`.
pub type Options = BTreeMap<String, Value>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    OpenAiResponses,
    OpenAiChat,
    Anthropic,
    Gemini,
}

impl Protocol {
    pub const ALL: [Protocol; 4] = [
        Protocol::OpenAiResponses,
        Protocol::OpenAiChat,
        Protocol::Anthropic,
        Protocol::Gemini,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Protocol::OpenAiResponses => "openai-responses",
            Protocol::OpenAiChat => "openai-chat",
            Protocol::Anthropic => "anthropic",
            Protocol::Gemini => "gemini",
        }
    }

    pub fn parse(s: &str) -> Option<Protocol> {
        Protocol::ALL.into_iter().find(|p| p.id() == s)
    }

    /// Path appended to the base URL.
    pub fn path(self, model: &str) -> String {
        match self {
            Protocol::OpenAiResponses => "/responses".into(),
            Protocol::OpenAiChat => "/chat/completions".into(),
            Protocol::Anthropic => "/messages".into(),
            Protocol::Gemini => format!("/models/{model}:generateContent"),
        }
    }

    pub fn build_request(self, model: &str, req: &ModelRequest, options: &Options) -> Value {
        match self {
            Protocol::OpenAiResponses => openai_responses::build_request(model, req, options),
            Protocol::OpenAiChat => openai_chat::build_request(model, req, options),
            Protocol::Anthropic => anthropic::build_request(model, req, options),
            Protocol::Gemini => gemini::build_request(model, req, options),
        }
    }

    pub fn parse_response(self, body: &Value) -> Result<ModelReply, String> {
        match self {
            Protocol::OpenAiResponses => openai_responses::parse_response(body),
            Protocol::OpenAiChat => openai_chat::parse_response(body),
            Protocol::Anthropic => anthropic::parse_response(body),
            Protocol::Gemini => gemini::parse_response(body),
        }
    }

    /// Server side (mock server): the conversation a request carries.
    pub fn parse_request(self, body: &Value) -> Result<Vec<Message>, String> {
        match self {
            Protocol::OpenAiResponses => openai_responses::parse_request(body),
            Protocol::OpenAiChat => openai_chat::parse_request(body),
            Protocol::Anthropic => anthropic::parse_request(body),
            Protocol::Gemini => gemini::parse_request(body),
        }
    }

    /// Server side (mock server): a response body for `reply`; `turn` numbers the ids.
    pub fn render_response(self, model: &str, reply: &ModelReply, turn: usize) -> Value {
        match self {
            Protocol::OpenAiResponses => openai_responses::render_response(model, reply, turn),
            Protocol::OpenAiChat => openai_chat::render_response(model, reply, turn),
            Protocol::Anthropic => anthropic::render_response(model, reply, turn),
            Protocol::Gemini => gemini::render_response(model, reply, turn),
        }
    }
}

/// The provider JSON stored with an assistant turn, when it came from `protocol`.
pub(crate) fn replay(protocol: Protocol, provider_data: &Option<Value>) -> Option<&Value> {
    let data = provider_data.as_ref()?;
    (data.get("protocol")?.as_str()? == protocol.id())
        .then(|| data.get("data"))
        .flatten()
}

pub(crate) fn wrap(protocol: Protocol, data: Value) -> Value {
    json!({ "protocol": protocol.id(), "data": data })
}

/// Options offswitch knows; each protocol maps those its API has and ignores the rest
/// (`thinking_budget` means nothing to Chat Completions, for instance).
pub const KNOWN_OPTIONS: [&str; 5] = [
    "reasoning_effort",
    "max_tokens",
    "temperature",
    "thinking_budget",
    "protocol",
];

/// Unknown options go into the body verbatim, for provider features offswitch does not
/// name; `temperature` goes where every protocol but Gemini has it, at the top level.
pub(crate) fn merge_options(body: &mut Value, options: &Options, top_level_temperature: bool) {
    if let Value::Object(map) = body {
        for (k, v) in options {
            if !KNOWN_OPTIONS.contains(&k.as_str()) || (k == "temperature" && top_level_temperature)
            {
                map.insert(k.clone(), v.clone());
            }
        }
    }
}

/// A tool result as the model reads it: the error, if any, before the output.
pub fn tool_result_text(content: &str, error: &Option<String>) -> String {
    match error {
        Some(e) => format!("{e}\n{content}").trim_end().to_string(),
        None => content.to_string(),
    }
}

pub(crate) fn str_of(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(|x| x.as_str()).map(str::to_string)
}

pub(crate) fn u64_of(v: &Value, path: &[&str]) -> u64 {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(next) => cur = next,
            None => return 0,
        }
    }
    cur.as_u64().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Message;

    fn request() -> ModelRequest {
        ModelRequest {
            messages: vec![
                Message::System {
                    content: "s".into(),
                },
                Message::User {
                    content: "u".into(),
                },
            ],
            tools: vec![],
            seed: None,
        }
    }

    #[test]
    fn model_options_reach_each_request_body() {
        let options: Options = [
            ("reasoning_effort".to_string(), json!("high")),
            ("max_tokens".to_string(), json!(4096)),
            ("temperature".to_string(), json!(1)),
            ("thinking_budget".to_string(), json!(2048)),
            ("seed".to_string(), json!(7)),
        ]
        .into_iter()
        .collect();
        let r = Protocol::OpenAiResponses.build_request("o3", &request(), &options);
        assert_eq!(
            (
                &r["reasoning"]["effort"],
                &r["max_output_tokens"],
                &r["temperature"],
                &r["seed"]
            ),
            (&json!("high"), &json!(4096), &json!(1), &json!(7))
        );
        let c = Protocol::OpenAiChat.build_request("gpt", &request(), &options);
        assert_eq!(
            (
                &c["max_completion_tokens"],
                &c["temperature"],
                &c["reasoning_effort"]
            ),
            (&json!(4096), &json!(1), &json!("high"))
        );
        assert!(c.get("thinking_budget").is_none());
        let a = Protocol::Anthropic.build_request("claude", &request(), &options);
        assert_eq!(
            (
                &a["max_tokens"],
                &a["thinking"]["budget_tokens"],
                &a["temperature"]
            ),
            (&json!(4096), &json!(2048), &json!(1))
        );
        let g = Protocol::Gemini.build_request("gemini", &request(), &options);
        assert_eq!(
            g["generationConfig"],
            json!({ "temperature": 1, "maxOutputTokens": 4096, "thinkingConfig": { "thinkingBudget": 2048 } })
        );
        assert!(g.get("reasoning_effort").is_none() && g.get("temperature").is_none());
        assert_eq!(g["seed"], json!(7), "unknown options pass through");
        assert!(a.get("reasoning_effort").is_none());
    }
}
