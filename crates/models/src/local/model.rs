//! `local/<name>`: a catalogued model run in-process through llama.cpp.

use super::engine::{Engine, GenerateError, Sampling};
use super::grammar::{self, ToolGrammar};
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
    grammar: ToolGrammar,
}

/// The `-M` options a local model understands.
const OPTIONS: [&str; 5] = ["temperature", "top_p", "max_tokens", "seed", "grammar"];

impl LocalModelClient {
    /// Loads `local/<name>` from the cache, or says exactly how to get it, with a KV
    /// cache for `sequences` conversations at once (at most [`super::SEQUENCES`]).
    pub fn load(
        name: &str,
        options: &Options,
        sequences: usize,
    ) -> Result<LocalModelClient, String> {
        LocalModelClient::load_from(&cache_dir(), name, options, sequences)
    }

    pub fn load_from(
        cache: &std::path::Path,
        name: &str,
        options: &Options,
        sequences: usize,
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
        if let Some(unknown) = options.keys().find(|k| !OPTIONS.contains(&k.as_str())) {
            return Err(format!(
                "local models take no option '{unknown}': known are {}",
                OPTIONS.join(", ")
            ));
        }
        let number = |k: &str, default: f64| match options.get(k) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .filter(|n| n.is_finite() && *n >= 0.0)
                .ok_or_else(|| format!("-M {k}= must be a non-negative number, not {v}")),
        };
        let grammar = match options.get("grammar") {
            None => ToolGrammar::Calls,
            Some(v) => ToolGrammar::parse(v.as_str().unwrap_or(&v.to_string()))?,
        };
        Ok(LocalModelClient {
            // Forced tool calls change the model's behaviour, so results say so by name.
            name: match grammar {
                ToolGrammar::Required => format!("local/{name}+tools-required"),
                _ => format!("local/{name}"),
            },
            engine: Engine::shared(&path, CONTEXT_TOKENS, sequences)?,
            temperature: number("temperature", 0.7)? as f32,
            top_p: number("top_p", 0.9)? as f32,
            max_tokens: (number("max_tokens", 512.0)? as u32).max(1),
            seed: number("seed", 1234.0)? as u64,
            grammar,
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
            grammar: grammar::constraint(self.grammar, &request.tools),
        };
        let generated = self
            .engine
            .generate(prompt, sampling)
            .await
            .map_err(|e| match e {
                GenerateError::ContextFull { .. } => ModelError::ContextFull(e.to_string()),
                GenerateError::Failed(_) => ModelError::Call(format!("{}: {e}", self.name)),
            })?;
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
                json!({ "local": self.name, "seed": seed, "grammar": self.grammar.as_str(), "batched_with": generated.batched_with, "raw_output": generated.text }),
            ),
        })
    }
}
