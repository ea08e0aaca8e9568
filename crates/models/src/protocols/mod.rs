//! One module per wire protocol. Each turns the neutral conversation into the provider's
//! request body and the provider's response into a reply, keeping the provider's own
//! JSON for the assistant turn (`provider_data`) so that it is replayed verbatim on the
//! next turn: reasoning items, thinking signatures and thought signatures survive, and
//! so does any field we do not know. Each also has the server side the mock server uses.

pub mod anthropic;
pub mod gemini;
pub mod openai_chat;
pub mod openai_responses;
pub mod options;

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

    /// An error reported inside a successful HTTP response.
    pub fn error_in_body(self, body: &Value) -> Option<crate::http::CallError> {
        match self {
            Protocol::OpenAiResponses => openai_responses::error_in_body(body),
            Protocol::OpenAiChat | Protocol::Anthropic | Protocol::Gemini => None,
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

/// Copies the options named in `map` (option, body field) into `body`: the options a
/// protocol takes under its API's own names.
pub(crate) fn set_options(body: &mut Value, options: &Options, map: &[(&str, &str)]) {
    for (option, field) in map {
        if let Some(v) = options.get(*option) {
            body[*field] = v.clone();
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

/// Options from pairs, for tests.
#[cfg(test)]
pub(crate) fn opts(pairs: &[(&str, Value)]) -> Options {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
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
            task_command: None,
        }
    }

    /// Each option lands where its protocol's API takes it, and the options each
    /// protocol accepts pass its check.
    #[test]
    fn model_options_reach_each_request_body() {
        let build = |p: Protocol, model: &str, o: &Options| {
            p.check_options(model, o).unwrap();
            p.build_request(model, &request(), o)
        };
        let o = opts(&[
            ("reasoning_effort", json!("high")),
            ("max_tokens", json!(4096)),
            ("temperature", json!(1)),
            ("top_p", json!(0.9)),
            ("extra.service_tier", json!("flex")),
        ]);
        let r = build(Protocol::OpenAiResponses, "o3", &o);
        assert_eq!(
            (
                &r["reasoning"]["effort"],
                &r["max_output_tokens"],
                &r["temperature"],
                &r["top_p"],
                &r["service_tier"]
            ),
            (
                &json!("high"),
                &json!(4096),
                &json!(1),
                &json!(0.9),
                &json!("flex")
            )
        );
        let mut o = o.clone();
        o.insert("seed".into(), json!(7));
        let c = build(Protocol::OpenAiChat, "gpt-4.1", &o);
        assert_eq!(
            (
                &c["max_completion_tokens"],
                &c["temperature"],
                &c["reasoning_effort"],
                &c["seed"]
            ),
            (&json!(4096), &json!(1), &json!("high"), &json!(7))
        );
        assert!(c.get("tools").is_none(), "no empty tools: {c}");
        let o = opts(&[
            ("max_tokens", json!(16000)),
            ("temperature", json!(1)),
            ("thinking_budget", json!(2048)),
            ("top_k", json!(5)),
        ]);
        let a = build(Protocol::Anthropic, "claude-sonnet-4-5", &o);
        assert_eq!(
            (
                &a["max_tokens"],
                &a["thinking"],
                &a["temperature"],
                &a["top_k"]
            ),
            (
                &json!(16000),
                &json!({ "type": "enabled", "budget_tokens": 2048 }),
                &json!(1),
                &json!(5)
            )
        );
        let adaptive = opts(&[("thinking", json!("adaptive"))]);
        let a = build(Protocol::Anthropic, "claude-opus-4-7", &adaptive);
        assert_eq!(a["thinking"], json!({ "type": "adaptive" }));
        let o = opts(&[
            ("max_tokens", json!(4096)),
            ("temperature", json!(1)),
            ("thinking_budget", json!(2048)),
            ("seed", json!(7)),
            ("top_p", json!(0.9)),
            ("top_k", json!(5)),
        ]);
        let g = build(Protocol::Gemini, "gemini-2.5-pro", &o);
        assert_eq!(
            g["generationConfig"],
            json!({ "temperature": 1, "maxOutputTokens": 4096, "seed": 7, "topP": 0.9, "topK": 5, "thinkingConfig": { "thinkingBudget": 2048 } })
        );
        for field in ["seed", "temperature", "top_p", "top_k", "tools"] {
            assert!(g.get(field).is_none(), "{field} at Gemini's top level: {g}");
        }
    }

    /// Gemini: a function call's own id goes back with its answer; an id offswitch made up
    /// (the call had none) does not.
    #[test]
    fn gemini_answers_a_call_by_its_id() {
        let turn = |call: Value| {
            let reply = gemini::parse_response(&json!({"candidates": [{"content": {"role": "model", "parts": [{"functionCall": call}]}, "finishReason": "STOP"}]})).unwrap();
            let Message::Assistant { tool_calls, .. } = &reply.message else {
                unreachable!()
            };
            let id = tool_calls[0].id.clone();
            let mut r = request();
            r.messages.push(reply.message.clone());
            r.messages.push(Message::Tool {
                tool_call_id: id,
                name: "bash".into(),
                content: "ok".into(),
                error: None,
            });
            let body = Protocol::Gemini.build_request("gemini-2.5-pro", &r, &Options::new());
            body["contents"][2]["parts"][0]["functionResponse"].clone()
        };
        let answer = turn(json!({"id": "fc_1", "name": "bash", "args": {"cmd": "ls"}}));
        assert_eq!(answer["id"], json!("fc_1"));
        let answer = turn(json!({"name": "bash", "args": {"cmd": "ls"}}));
        assert!(answer.get("id").is_none(), "{answer}");
        assert_eq!(answer["name"], json!("bash"));
    }
}
