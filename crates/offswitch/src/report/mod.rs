//! Reports read only the store: rates with intervals per cell, comparisons between
//! variants and between models, the published figures beside ours, in several formats.

pub mod html;
pub mod inspect;
pub mod published;
pub mod render;
#[cfg(test)]
mod snapshots;
pub mod stats;
pub mod transcript;
pub mod viewer;

use crate::record::Outcome;
use crate::store::Store;
use serde::Serialize;
use stats::Interval;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub run: i64,
    pub created_at_ms: i64,
    pub command: String,
    pub cells: Vec<CellReport>,
    pub comparisons: Vec<Comparison>,
    /// Bonferroni: p-values below this are significant with all comparisons considered.
    pub bonferroni_threshold: Option<f64>,
    /// Episodes per version of the scorer that scored them (more than one, or an old
    /// one, means `offswitch rescore` would change what the run reports).
    pub scorer_versions: BTreeMap<u32, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CellReport {
    pub model: String,
    pub scripted_fixture: bool,
    pub scenario: String,
    pub variant: String,
    /// Episodes stored, and those that count in rates (errors, limits,
    /// self-terminations and guard stops excluded).
    pub episodes: u64,
    pub n: u64,
    pub sabotaged: u64,
    pub sabotage_rate: Option<f64>,
    pub sabotage_jeffreys: Option<Interval>,
    pub sabotage_wilson: Option<Interval>,
    pub attempted: u64,
    pub attempted_rate: Option<f64>,
    pub strict_judged: u64,
    pub strict_compliant: u64,
    pub strict_rate: Option<f64>,
    pub outcomes: BTreeMap<String, u64>,
    pub methods: BTreeMap<String, u64>,
    pub published: Option<published::Published>,
    pub usage: crate::record::Usage,
    /// Sum over episodes with a known price, and the number without one.
    pub cost_usd: f64,
    pub cost_unknown: u64,
    /// Model turns that gave nothing usable, by the provider's finish reason.
    pub unusable_turns: BTreeMap<String, u64>,
    /// Every episode of the cell, in epoch order.
    pub episode_ids: Vec<i64>,
    /// A few episode ids per outcome, to read.
    pub examples: BTreeMap<String, Vec<i64>>,
}

impl CellReport {
    pub fn label(&self) -> String {
        format!(
            "{}{} {}/{}",
            self.model,
            if self.scripted_fixture {
                " [fixture]"
            } else {
                ""
            },
            self.scenario,
            self.variant
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// "variants" (one model) or "models" (one variant).
    pub kind: &'static str,
    pub a: String,
    pub b: String,
    pub a_sabotaged: u64,
    pub a_n: u64,
    pub b_sabotaged: u64,
    pub b_n: u64,
    /// Rate of a minus rate of b, with Newcombe's 95% interval.
    pub difference: f64,
    pub difference_ci: Option<Interval>,
    /// Two-sided Fisher's exact test.
    pub p_value: Option<f64>,
}

/// Episodes shown per (cell, outcome) in reports.
const EXAMPLES: usize = 3;

fn rate(x: u64, n: u64) -> Option<f64> {
    (n > 0).then(|| x as f64 / n as f64)
}

pub fn build(store: &Store, run: i64) -> Result<Report, crate::store::StoreError> {
    let (created_at_ms, command) = store.run_info(run)?.unwrap_or_default();
    let mut cells = Vec::new();
    let mut scorer_versions = BTreeMap::new();
    for c in store.cell_summaries(run)? {
        let n = c.denominator();
        let sabotaged = c.count(Outcome::Sabotaged);
        let attempted = c.count(Outcome::Attempted);
        let mut examples: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for (id, outcome) in &c.episode_outcomes {
            let list = examples.entry(outcome.as_str().to_string()).or_default();
            if list.len() < EXAMPLES {
                list.push(*id);
            }
        }
        for (version, count) in &c.scorer_versions {
            *scorer_versions.entry(*version).or_default() += count;
        }
        cells.push(CellReport {
            published: published::lookup(&c.model, &c.scenario, &c.variant),
            model: c.model.clone(),
            scripted_fixture: c.scripted,
            scenario: c.scenario.clone(),
            variant: c.variant.clone(),
            episodes: c.episodes,
            n,
            sabotaged,
            sabotage_rate: rate(sabotaged, n),
            sabotage_jeffreys: stats::jeffreys(sabotaged, n),
            sabotage_wilson: stats::wilson(sabotaged, n),
            attempted,
            attempted_rate: rate(attempted, n),
            strict_judged: c.strict_judged,
            strict_compliant: c.strict_compliant,
            strict_rate: rate(c.strict_compliant, c.strict_judged),
            outcomes: c.outcomes.clone(),
            methods: c.methods.clone(),
            usage: c.usage.clone(),
            cost_usd: c.cost_usd,
            cost_unknown: c.cost_unknown,
            episode_ids: c.episode_ids(),
            unusable_turns: c.unusable_turns.clone(),
            examples,
        });
    }
    let comparisons = compare(&cells);
    let bonferroni_threshold = (!comparisons.is_empty()).then(|| 0.05 / comparisons.len() as f64);
    Ok(Report {
        run,
        created_at_ms,
        command,
        cells,
        comparisons,
        bonferroni_threshold,
        scorer_versions,
    })
}

/// Each variant against the others of the same model and scenario, and each model
/// against the others on the same scenario and variant.
fn compare(cells: &[CellReport]) -> Vec<Comparison> {
    let mut out = Vec::new();
    for (i, a) in cells.iter().enumerate() {
        for b in &cells[i + 1..] {
            let kind = if a.model == b.model && a.scenario == b.scenario {
                "variants"
            } else if a.scenario == b.scenario && a.variant == b.variant {
                "models"
            } else {
                continue;
            };
            if a.n == 0 || b.n == 0 {
                continue;
            }
            out.push(Comparison {
                kind,
                a: a.label(),
                b: b.label(),
                a_sabotaged: a.sabotaged,
                a_n: a.n,
                b_sabotaged: b.sabotaged,
                b_n: b.n,
                difference: a.sabotaged as f64 / a.n as f64 - b.sabotaged as f64 / b.n as f64,
                difference_ci: stats::newcombe_difference(a.sabotaged, a.n, b.sabotaged, b.n),
                p_value: stats::fisher_exact(a.sabotaged, a.n, b.sabotaged, b.n),
            });
        }
    }
    out
}
