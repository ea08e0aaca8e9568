//! A model behind an HTTP API: one of the wire protocols over one endpoint.

use crate::http::{CallError, Endpoint};
use crate::model::{Model, ModelError};
use crate::protocols::{Options, Protocol};
use crate::types::{ModelReply, ModelRequest};
use serde_json::json;

pub struct HttpModel {
    pub name: String,
    pub protocol: Protocol,
    pub model_id: String,
    pub endpoint: Endpoint,
    pub options: Options,
    /// The variable the key came from, to name it when the key is refused.
    pub key_var: Option<String>,
}

#[async_trait::async_trait]
impl Model for HttpModel {
    fn name(&self) -> &str {
        &self.name
    }

    fn is_scripted(&self) -> bool {
        false
    }

    async fn generate(&self, request: &ModelRequest) -> Result<ModelReply, ModelError> {
        let body = self
            .protocol
            .build_request(&self.model_id, request, &self.options);
        let protocol = self.protocol;
        match self
            .endpoint
            .post(&body, |reply| protocol.error_in_body(reply))
            .await
        {
            Ok(exchange) => {
                let mut reply = self.protocol.parse_response(&exchange.body).map_err(|e| {
                    ModelError::Call(format!(
                        "{}: unexpected {} response: {e}",
                        self.name,
                        self.protocol.id()
                    ))
                })?;
                reply.exchange = Some(json!({
                    "protocol": self.protocol.id(),
                    "url": self.endpoint.url,
                    "attempts": exchange.attempts,
                    "mock_policy": exchange.mock_policy,
                    "request": body,
                    "response": exchange.body,
                }));
                Ok(reply)
            }
            Err(CallError::Auth { status, message }) => Err(ModelError::Auth(format!(
                "{}: the provider refused the credentials (HTTP {status}); check {}. {message}",
                self.name,
                self.key_var.as_deref().unwrap_or("the API key")
            ))),
            Err(CallError::Account { status, message }) => Err(ModelError::Auth(format!(
                "{}: the provider's account needs attention (HTTP {status}); retrying cannot help. {message}",
                self.name
            ))),
            Err(CallError::Fatal { message }) if is_context_overflow(&message) => {
                Err(ModelError::ContextFull(format!("{}: {message}", self.name)))
            }
            Err(e) => Err(ModelError::Call(format!("{}: {e}", self.name))),
        }
    }
}

/// How each provider says the conversation no longer fits the model's context window
/// (OpenAI's error code and messages, vLLM's, Anthropic's, Gemini's).
fn is_context_overflow(message: &str) -> bool {
    const SIGNS: [&str; 6] = [
        "context_length_exceeded",
        "maximum context length",
        "exceeds the context window",
        "prompt is too long",
        "exceeds the maximum number of tokens",
        // Anthropic: "input length and `max_tokens` exceed context limit: X + Y > Z".
        "exceed context limit",
    ];
    message.starts_with("HTTP 400") && SIGNS.iter().any(|s| message.contains(s))
}
