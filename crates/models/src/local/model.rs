//! `local/<name>`: a catalogued model run in-process through llama.cpp.

use super::engine::{Engine, Sampling};
use super::{Pulled, cache_dir, find, parse, status, template};
use crate::model::{Model, ModelError};
use crate::protocols::Options;
use crate::types::{Message, ModelReply, ModelRequest, StopReason, Usage};
use serde_json::json;
use std::sync::Arc;

/// Context length offered to local models: room for a full episode's conversation.
pub const CONTEXT_TOKENS: u32 = 8192;

pub struct LocalModelClient {
    name: String,
    engine: Arc<Engine>,
    temperature: f32,
    top_p: f32,
    max_tokens: u32,
    seed: u64,
}

impl LocalModelClient {
    /// Loads `local/<name>` from the cache, or says exactly how to get it.
    pub fn load(name: &str, options: &Options) -> Result<LocalModelClient, String> {
        LocalModelClient::load_from(&cache_dir(), name, options)
    }

    pub fn load_from(
        cache: &std::path::Path,
        name: &str,
        options: &Options,
    ) -> Result<LocalModelClient, String> {
        let model = find(name)?;
        let path = match status(&model, cache) {
            Pulled::Present { path, .. } => path,
            Pulled::Absent => {
                return Err(format!(
                    "the local model {name} is not downloaded: run `offswitch models pull {name}`"
                ));
            }
            Pulled::Damaged { path, reason } => {
                return Err(format!(
                    "the local model file {} is damaged ({reason}): run `offswitch models pull {name}`",
                    path.display()
                ));
            }
        };
        let f = |k: &str, d: f64| options.get(k).and_then(|v| v.as_f64()).unwrap_or(d);
        Ok(LocalModelClient {
            name: format!("local/{name}"),
            engine: Engine::shared(&path, CONTEXT_TOKENS)?,
            temperature: f("temperature", 0.7) as f32,
            top_p: f("top_p", 0.9) as f32,
            max_tokens: f("max_tokens", 512.0) as u32,
            seed: f("seed", 1234.0) as u64,
        })
    }
}

#[async_trait::async_trait]
impl Model for LocalModelClient {
    fn name(&self) -> &str {
        &self.name
    }

    fn is_scripted(&self) -> bool {
        false
    }

    async fn generate(&self, request: &ModelRequest) -> Result<ModelReply, ModelError> {
        let turn = request
            .messages
            .iter()
            .filter(|m| matches!(m, Message::Assistant { .. }))
            .count()
            + 1;
        let prompt = template::render(&request.messages, &request.tools);
        // Seeded per episode and turn: a run repeats exactly, episodes differ.
        let episode = request.seed.unwrap_or(0);
        let seed = (self.seed
            ^ episode.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (turn as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9)) as u32;
        let sampling = Sampling {
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            seed,
        };
        let generated = self
            .engine
            .generate(prompt, sampling)
            .await
            .map_err(|e| ModelError::Call(format!("{}: {e}", self.name)))?;
        let (content, tool_calls) = parse::parse_reply(&generated.text, turn);
        let stop_reason = if generated.truncated {
            StopReason::MaxTokens
        } else if tool_calls.is_empty() {
            StopReason::Stop
        } else {
            StopReason::ToolCalls
        };
        Ok(ModelReply {
            message: Message::Assistant {
                content,
                reasoning: None,
                tool_calls,
                provider_data: None,
            },
            usage: Usage {
                input_tokens: generated.prompt_tokens,
                output_tokens: generated.output_tokens,
                reasoning_tokens: 0,
                cached_tokens: generated.reused_tokens,
            },
            stop_reason,
            exchange: Some(
                json!({ "local": self.name, "seed": seed, "raw_output": generated.text }),
            ),
        })
    }
}
