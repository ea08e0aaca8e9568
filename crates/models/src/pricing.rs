//! Cost from token usage and a pricing table the user can edit. The built-in table is
//! `pricing.toml`; `--pricing FILE` replaces it. Prices change: check them against the
//! providers' pages before trusting a cost figure.

use crate::types::Usage;
use serde::Deserialize;
use std::collections::BTreeMap;

const BUILTIN: &str = include_str!("../pricing.toml");

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// USD per million input tokens (uncached).
    pub input: f64,
    /// USD per million output tokens (reasoning tokens are billed as output).
    pub output: f64,
    /// USD per million cached input tokens; defaults to the input price.
    pub cached_input: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pricing {
    #[serde(default)]
    pub models: BTreeMap<String, Price>,
}

impl Pricing {
    pub fn builtin() -> Pricing {
        Pricing::parse(BUILTIN, "built-in pricing.toml").expect("the built-in pricing table parses")
    }

    pub fn parse(text: &str, origin: &str) -> Result<Pricing, String> {
        let p: Pricing = toml::from_str(text).map_err(|e| format!("{origin}: {e}"))?;
        for (name, price) in &p.models {
            if ![price.input, price.output, price.cached_input.unwrap_or(0.0)]
                .iter()
                .all(|v| v.is_finite() && *v >= 0.0)
            {
                return Err(format!(
                    "{origin}: model '{name}' has a negative or non-finite price"
                ));
            }
        }
        Ok(p)
    }

    pub fn load(path: &std::path::Path) -> Result<Pricing, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read pricing file {}: {e}", path.display()))?;
        Pricing::parse(&text, &path.display().to_string())
    }

    pub fn price(&self, model: &str) -> Option<Price> {
        self.models.get(model).copied()
    }

    /// Cost in USD, or None when the model has no price.
    pub fn cost(&self, model: &str, usage: &Usage) -> Option<f64> {
        let p = self.price(model)?;
        let cached = usage.cached_tokens.min(usage.input_tokens) as f64;
        let uncached = usage.input_tokens as f64 - cached;
        Some(
            (uncached * p.input
                + cached * p.cached_input.unwrap_or(p.input)
                + usage.output_tokens as f64 * p.output)
                / 1e6,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_counts_cached_input_at_its_own_price() {
        let p = Pricing::parse(
            "[models.\"x/y\"]\ninput = 2.0\noutput = 8.0\ncached_input = 0.5\n",
            "t",
        )
        .unwrap();
        let usage = Usage {
            input_tokens: 1_000_000,
            cached_tokens: 500_000,
            output_tokens: 100_000,
            reasoning_tokens: 50_000,
        };
        let cost = p.cost("x/y", &usage).unwrap();
        assert!((cost - (1.0 + 0.25 + 0.8)).abs() < 1e-9, "{cost}");
        assert_eq!(p.cost("other/model", &usage), None);
        assert!(Pricing::parse("[models.a]\ninput = -1\noutput = 1\n", "t").is_err());
        assert!(!Pricing::builtin().models.is_empty());
    }
}
