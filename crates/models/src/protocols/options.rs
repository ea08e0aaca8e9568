//! `-M key=value` options for the HTTP protocols: which each protocol takes, where each
//! goes in its request, and what is refused before the first call (an unknown parameter
//! or an invalid thinking budget is a 400 the API never retries; better to say so at
//! once, with what the protocol accepts).
//!
//! `-M extra.KEY=VALUE` puts `KEY` at the top level of every request body verbatim, for
//! provider features offswitch does not name.

use super::{Options, Protocol};
use serde_json::Value;

/// The prefix of options passed through verbatim.
pub const EXTRA: &str = "extra.";

/// Anthropic's two forms of thinking: `enabled` with a token budget (deprecated, the only
/// form up to the Claude 4.5 models, refused by Claude 4.7 and later) and `adaptive` (no
/// budget; from the Claude 4.6 models).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Thinking {
    Enabled,
    Adaptive,
    Disabled,
}

/// Anthropic's smallest thinking budget.
pub const MIN_THINKING_BUDGET: u64 = 1024;

impl Protocol {
    /// The options this protocol takes (besides `extra.*`).
    pub fn options(self) -> &'static [&'static str] {
        match self {
            Protocol::OpenAiResponses => &[
                "protocol",
                "max_tokens",
                "temperature",
                "top_p",
                "reasoning_effort",
            ],
            Protocol::OpenAiChat => &[
                "protocol",
                "max_tokens",
                "temperature",
                "top_p",
                "seed",
                "reasoning_effort",
            ],
            Protocol::Anthropic => &[
                "max_tokens",
                "temperature",
                "top_p",
                "top_k",
                "thinking",
                "thinking_budget",
            ],
            Protocol::Gemini => &[
                "max_tokens",
                "temperature",
                "top_p",
                "top_k",
                "seed",
                "thinking_budget",
            ],
        }
    }

    /// Refuses, before any call, options this protocol does not take and values the API
    /// would reject.
    pub fn check_options(self, model: &str, options: &Options) -> Result<(), String> {
        for key in options.keys() {
            if key.starts_with(EXTRA) {
                if key.len() == EXTRA.len() {
                    return Err("-M extra.KEY=VALUE needs a KEY".into());
                }
                continue;
            }
            if !self.options().contains(&key.as_str()) {
                return Err(format!(
                    "-M {key}: the {} protocol takes {} (or -M extra.KEY=VALUE to send a field as given)",
                    self.id(),
                    self.options().join(", ")
                ));
            }
        }
        if self == Protocol::Anthropic {
            anthropic_thinking(model, options)?;
        }
        Ok(())
    }
}

/// Puts every `extra.KEY` option at the top level of `body`.
pub(crate) fn insert_extra(body: &mut Value, options: &Options) {
    if let Value::Object(map) = body {
        for (k, v) in options {
            if let Some(key) = k.strip_prefix(EXTRA) {
                map.insert(key.to_string(), v.clone());
            }
        }
    }
}

/// The thinking form for an Anthropic model: `-M thinking=enabled|adaptive|disabled`,
/// else by model (see [`default_thinking`]) when `thinking_budget` is given, else none.
/// Checks the budget: enabled needs one, at least 1024 and below `max_tokens`; adaptive
/// takes none.
pub fn anthropic_thinking(model: &str, options: &Options) -> Result<Option<Thinking>, String> {
    let budget = options.get("thinking_budget");
    let mode = match options.get("thinking") {
        Some(v) => match v.as_str() {
            Some("enabled") => Thinking::Enabled,
            Some("adaptive") => Thinking::Adaptive,
            Some("disabled") => Thinking::Disabled,
            _ => {
                return Err(format!(
                    "-M thinking={v}: use enabled (with -M thinking_budget=N), adaptive or disabled"
                ));
            }
        },
        None if budget.is_some() => default_thinking(model),
        None => return Ok(None),
    };
    match (mode, budget) {
        (Thinking::Enabled, None) => Err(
            "-M thinking=enabled needs -M thinking_budget=N (at least 1024, below max_tokens)"
                .into(),
        ),
        (Thinking::Enabled, Some(b)) => {
            let max_tokens = options
                .get("max_tokens")
                .and_then(Value::as_u64)
                .unwrap_or(super::anthropic::DEFAULT_MAX_TOKENS);
            match b.as_u64() {
                Some(n) if (MIN_THINKING_BUDGET..max_tokens).contains(&n) => Ok(Some(mode)),
                _ => Err(format!(
                    "-M thinking_budget={b}: Anthropic takes a whole number of at least {MIN_THINKING_BUDGET} and below max_tokens ({max_tokens}; raise it with -M max_tokens=N)"
                )),
            }
        }
        (Thinking::Adaptive | Thinking::Disabled, Some(_)) => Err(format!(
            "-M thinking_budget: {model} thinks adaptively here, which takes no budget (Claude 4.7 and later refuse budgets); drop it, or force the deprecated form with -M thinking=enabled"
        )),
        (Thinking::Adaptive | Thinking::Disabled, None) => Ok(Some(mode)),
    }
}

/// Which thinking form a model takes by default: adaptive from the Claude 4.6 models on
/// (and for names we cannot read, which are newer), budgeted `enabled` before them.
///
/// | model | form |
/// |---|---|
/// | claude-3-7-sonnet, claude-*-4, claude-*-4-1, claude-*-4-5 | enabled (budget) |
/// | claude-*-4-6 and later, unknown names | adaptive |
pub fn default_thinking(model: &str) -> Thinking {
    // The version is the run of 1-2 digit numbers in the id (a date suffix is 8 digits).
    let numbers: Vec<u32> = model
        .split(['-', '.', '@'])
        .filter(|p| !p.is_empty() && p.len() <= 2)
        .filter_map(|p| p.parse().ok())
        .collect();
    match numbers.as_slice() {
        [major, minor, ..] if (*major, *minor) < (4, 6) => Thinking::Enabled,
        [major] if *major <= 4 => Thinking::Enabled,
        _ => Thinking::Adaptive,
    }
}

#[cfg(test)]
mod tests {
    use super::super::opts as options;
    use super::*;
    use serde_json::json;

    #[test]
    fn each_protocol_refuses_what_its_api_does_not_take() {
        let seed = options(&[("seed", json!(7))]);
        let err = Protocol::OpenAiResponses
            .check_options("o3", &seed)
            .unwrap_err();
        assert!(
            err.contains("-M seed") && err.contains("reasoning_effort"),
            "{err}"
        );
        Protocol::OpenAiChat
            .check_options("gpt-4.1", &seed)
            .unwrap();
        Protocol::Gemini
            .check_options("gemini-2.5-pro", &seed)
            .unwrap();
        let extra = options(&[("extra.seed", json!(7))]);
        Protocol::OpenAiResponses
            .check_options("o3", &extra)
            .unwrap();
        assert!(
            Protocol::OpenAiResponses
                .check_options("o3", &options(&[("extra.", json!(1))]))
                .is_err()
        );
        assert!(
            Protocol::OpenAiChat
                .check_options("gpt", &options(&[("thinking_budget", json!(2048))]))
                .is_err()
        );
    }

    #[test]
    fn anthropic_thinking_takes_the_model_s_form_and_a_valid_budget() {
        let check =
            |model: &str, pairs: &[(&str, Value)]| anthropic_thinking(model, &options(pairs));
        assert_eq!(
            check(
                "claude-sonnet-4-5-20250929",
                &[("thinking_budget", json!(2048))]
            ),
            Ok(Some(Thinking::Enabled))
        );
        assert_eq!(
            check(
                "claude-3-7-sonnet-latest",
                &[("thinking_budget", json!(2048))]
            ),
            Ok(Some(Thinking::Enabled))
        );
        // The budget must sit in [1024, max_tokens): the 8192 default is not below itself.
        assert!(check("claude-sonnet-4-5", &[("thinking_budget", json!(8192))]).is_err());
        assert!(check("claude-sonnet-4-5", &[("thinking_budget", json!(512))]).is_err());
        assert_eq!(
            check(
                "claude-sonnet-4-5",
                &[
                    ("thinking_budget", json!(8192)),
                    ("max_tokens", json!(16000))
                ]
            ),
            Ok(Some(Thinking::Enabled))
        );
        // Newer models think adaptively and take no budget, unless forced.
        assert!(check("claude-opus-4-7", &[("thinking_budget", json!(2048))]).is_err());
        assert_eq!(
            check("claude-opus-4-7", &[("thinking", json!("adaptive"))]),
            Ok(Some(Thinking::Adaptive))
        );
        assert_eq!(
            check(
                "claude-opus-4-6",
                &[
                    ("thinking", json!("enabled")),
                    ("thinking_budget", json!(2048))
                ]
            ),
            Ok(Some(Thinking::Enabled))
        );
        assert!(check("claude-opus-4-7", &[("thinking", json!("enabled"))]).is_err());
        assert!(check("claude-opus-4-7", &[("thinking", json!("lots"))]).is_err());
        assert_eq!(check("claude-opus-4-7", &[]), Ok(None));
        assert_eq!(default_thinking("claude-opus-4-1"), Thinking::Enabled);
        assert_eq!(default_thinking("claude-sonnet-4-6"), Thinking::Adaptive);
        assert_eq!(
            default_thinking("claude-mythos-preview"),
            Thinking::Adaptive
        );
    }
}
