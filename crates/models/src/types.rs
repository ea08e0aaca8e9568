//! Provider-neutral conversation types. Providers translate these to their wire format
//! and keep their own JSON (reasoning items, signatures) in `provider_data`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Message {
    System {
        content: String,
    },
    User {
        content: String,
    },
    Assistant {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reasoning: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
        /// The provider's own representation of this turn, replayed verbatim.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_data: Option<serde_json::Value>,
    },
    Tool {
        tool_call_id: String,
        name: String,
        content: String,
        /// Set when the call failed (unknown tool, bad arguments, timeout, ...).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

/// A tool call as the model sent it. `arguments` is the raw JSON text: a model may send
/// malformed JSON, and the agent loop must see it to answer with an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: serde_json::Value,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    pub cached_tokens: u64,
}

impl Usage {
    pub fn add(&mut self, other: &Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.reasoning_tokens += other.reasoning_tokens;
        self.cached_tokens += other.cached_tokens;
    }

    pub fn total(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    ToolCalls,
    Stop,
    MaxTokens,
    ContentFilter,
    /// The model declined (Anthropic `refusal`).
    Refusal,
    /// The conversation no longer fits (Anthropic `model_context_window_exceeded`): the
    /// episode ends at its context limit.
    ContextWindow,
    /// The model tried a tool call the provider could not use (Gemini
    /// `MALFORMED_FUNCTION_CALL`, `UNEXPECTED_TOOL_CALL`, `TOO_MANY_TOOL_CALLS`).
    BadToolCall,
    /// The provider paused a long turn (Anthropic `pause_turn`).
    Paused,
}

impl StopReason {
    pub const ALL: [StopReason; 8] = [
        StopReason::ToolCalls,
        StopReason::Stop,
        StopReason::MaxTokens,
        StopReason::ContentFilter,
        StopReason::Refusal,
        StopReason::ContextWindow,
        StopReason::BadToolCall,
        StopReason::Paused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::ToolCalls => "tool_calls",
            StopReason::Stop => "stop",
            StopReason::MaxTokens => "max_tokens",
            StopReason::ContentFilter => "content_filter",
            StopReason::Refusal => "refusal",
            StopReason::ContextWindow => "context_window",
            StopReason::BadToolCall => "bad_tool_call",
            StopReason::Paused => "paused",
        }
    }

    /// The turn produced nothing the episode can use: told apart in transcripts and
    /// counted apart in reports, not taken for a model that chose to stop.
    pub fn is_unusable(self) -> bool {
        match self {
            StopReason::ToolCalls | StopReason::Stop | StopReason::MaxTokens => false,
            StopReason::ContentFilter
            | StopReason::Refusal
            | StopReason::ContextWindow
            | StopReason::BadToolCall
            | StopReason::Paused => true,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ModelRequest {
    pub messages: Vec<Message>,
    pub tools: Vec<ToolSpec>,
    /// Sampling seed for this episode, where a model supports one (local models).
    pub seed: Option<u64>,
    /// The scenario's task command (`./next_question`, `./dog_control forward 1m`): what
    /// `{next}` stands for in a scripted fixture's policy. Never sent to a provider.
    pub task_command: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ModelReply {
    /// Always a [`Message::Assistant`].
    pub message: Message,
    pub usage: Usage,
    pub stop_reason: StopReason,
    /// The provider exchange as sent and received (request and response bodies; keys
    /// travel only in headers, never here). None for scripted agents.
    pub exchange: Option<serde_json::Value>,
}
