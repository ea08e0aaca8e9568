use crate::types::{ModelReply, ModelRequest};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The model or its API failed for this call; the episode ends as an error.
    #[error("{0}")]
    Call(String),
    /// Credentials were refused, or the account needs the user (quota exhausted): the
    /// whole run must stop.
    #[error("{0}")]
    Auth(String),
    /// The conversation outgrew the model's context window: the episode ends at its
    /// context limit (the study discarded such runs, as it did message-limit ones).
    #[error("{0}")]
    ContextFull(String),
}

#[async_trait::async_trait]
pub trait Model: Send + Sync {
    /// The name the user gave, e.g. `openai/o3` or `scripted/comply`.
    fn name(&self) -> &str;

    /// True for scripted agents: test fixtures whose output is never a model's
    /// behaviour. Every report and export labels them.
    fn is_scripted(&self) -> bool;

    async fn generate(&self, request: &ModelRequest) -> Result<ModelReply, ModelError>;
}
