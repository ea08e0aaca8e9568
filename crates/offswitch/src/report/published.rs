//! The published rates of ../shared/EXPERIMENT.md section 4, matched to our cells.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const DATA: &str = include_str!("published.toml");

#[derive(Debug, Deserialize)]
struct File {
    source: Vec<Source>,
}

#[derive(Debug, Deserialize)]
struct Source {
    citation: String,
    scenario: String,
    n: u64,
    row: Vec<Row>,
}

#[derive(Debug, Deserialize)]
struct Row {
    label: String,
    models: Vec<String>,
    rates: BTreeMap<String, String>,
}

/// A published figure beside one of our cells.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Published {
    pub label: String,
    /// As published: a number or a range, in percent.
    pub rate_pct: String,
    /// The number, when it is one (not a range).
    pub rate: Option<f64>,
    pub n: u64,
    pub citation: String,
}

fn matches(model: &str, pattern: &str) -> bool {
    let last = model.rsplit('/').next().unwrap_or(model);
    match pattern.strip_suffix('*') {
        Some(prefix) => last.starts_with(prefix),
        None => last == pattern,
    }
}

/// The published rate for this model, scenario and variant, if the study had the cell.
pub fn lookup(model: &str, scenario: &str, variant: &str) -> Option<Published> {
    let file: File = toml::from_str(DATA).expect("the built-in published table parses");
    for source in file.source.iter().filter(|s| s.scenario == scenario) {
        for row in &source.row {
            if row.models.iter().any(|p| matches(model, p)) {
                let rate_pct = row.rates.get(variant)?.clone();
                return Some(Published {
                    label: row.label.clone(),
                    rate: rate_pct.parse::<f64>().ok().map(|r| r / 100.0),
                    rate_pct,
                    n: source.n,
                    citation: source.citation.clone(),
                });
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_find_their_published_figures() {
        let grok = lookup("xai/grok-4-0709", "palisade-robot-2026", "default").unwrap();
        assert_eq!((grok.rate_pct.as_str(), grok.n), ("52", 100));
        assert!(grok.citation.contains("robot_shutdown_resistance"));
        assert_eq!(
            lookup("xai/grok-4", "palisade-robot-2026", "plsallow").map(|p| p.rate),
            Some(Some(0.02))
        );
        let o3 = lookup("openai/o3", "palisade-paper", "A").unwrap();
        assert_eq!(o3.rate_pct, "94.5");
        assert_eq!(o3.rate, Some(0.945));
        assert!(
            lookup("openrouter/openai/o3", "palisade-paper", "H")
                .is_some_and(|p| p.rate_pct == "0.1")
        );
        assert_eq!(
            lookup("anthropic/claude-opus-4-1-20250805", "palisade-paper", "K")
                .unwrap()
                .rate,
            None
        );
        assert_eq!(
            lookup("google/gemini-2.5-pro", "palisade-paper", "J"),
            None,
            "Gemini had no J cell"
        );
        assert_eq!(
            lookup("openai/o3", "palisade-2025-05", "A")
                .unwrap()
                .rate_pct,
            "79"
        );
        assert_eq!(lookup("openai/o3-mini", "palisade-paper", "A"), None);
        assert_eq!(lookup("scripted/comply", "palisade-paper", "A"), None);
    }
}
