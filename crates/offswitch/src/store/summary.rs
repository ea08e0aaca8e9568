//! Summaries: counts per cell, lists of runs and episodes. Each is one query over the
//! score columns, never a query per episode or per cell.

use super::{Store, StoreError};
use crate::record::{Outcome, Usage};
use rusqlite::params;
use serde::Serialize;
use std::collections::BTreeMap;

/// Counts per cell, as reports need them.
#[derive(Debug, Clone, Serialize)]
pub struct CellSummary {
    pub cell_id: i64,
    pub model: String,
    pub scripted: bool,
    pub scenario: String,
    pub variant: String,
    pub episodes: u64,
    pub outcomes: BTreeMap<String, u64>,
    pub methods: BTreeMap<String, u64>,
    /// Episodes where the warning was given, and of those, strictly compliant ones.
    pub strict_judged: u64,
    pub strict_compliant: u64,
    pub usage: Usage,
    /// Sum over episodes with a known price.
    pub cost_usd: f64,
    /// Episodes whose model had no price in the pricing table.
    pub cost_unknown: u64,
    /// Ids of the cell's episodes with their outcomes, in epoch order.
    pub episode_outcomes: Vec<(i64, Outcome)>,
    /// Episodes per version of the scorer that scored them.
    pub scorer_versions: BTreeMap<u32, u64>,
    /// Model turns that gave nothing usable, by the provider's finish reason (see
    /// [`crate::record::StopReason::is_unusable`]).
    pub unusable_turns: BTreeMap<String, u64>,
}

impl CellSummary {
    pub fn count(&self, outcome: Outcome) -> u64 {
        self.outcomes.get(outcome.as_str()).copied().unwrap_or(0)
    }

    /// Episodes that count in rates (see [`Outcome::counts_in_denominator`]).
    pub fn denominator(&self) -> u64 {
        Outcome::ALL
            .iter()
            .filter(|o| o.counts_in_denominator())
            .map(|o| self.count(*o))
            .sum()
    }

    pub fn episode_ids(&self) -> Vec<i64> {
        self.episode_outcomes.iter().map(|(id, _)| *id).collect()
    }
}

/// One run in the list of runs.
#[derive(Debug, Clone)]
pub struct RunRow {
    pub id: i64,
    pub created_at_ms: i64,
    pub command: String,
    /// Episodes stored, and planned (runs per cell x cells, or a shard's slice of them).
    pub stored: u64,
    pub planned: u64,
    /// The slice of its definition's grid the run is (`None`: all of it).
    pub shard: Option<crate::record::Shard>,
}

/// One episode in a list.
#[derive(Debug, Clone)]
pub struct EpisodeRow {
    pub id: i64,
    pub model: String,
    pub scripted: bool,
    pub variant: String,
    pub epoch: u32,
    pub outcome: String,
    pub methods: Vec<String>,
}

impl Store {
    pub fn cell_summaries(&self, run_id: i64) -> Result<Vec<CellSummary>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT c.id, c.model, c.scripted, c.scenario, c.variant,
                        e.id, e.outcome, e.methods, e.strict_compliant, e.scorer_version,
                        e.input_tokens, e.output_tokens, e.reasoning_tokens, e.cached_tokens, e.cost_usd
                 FROM cells c LEFT JOIN episodes e ON e.cell_id = c.id
                 WHERE c.run_id = ?1 ORDER BY c.id, e.epoch",
            )
            .map_err(self.err())?;
        let mut rows = stmt.query(params![run_id]).map_err(self.err())?;
        let mut out: Vec<CellSummary> = Vec::new();
        while let Some(r) = rows.next().map_err(self.err())? {
            let cell_id: i64 = r.get(0).map_err(self.err())?;
            if out.last().is_none_or(|c| c.cell_id != cell_id) {
                out.push(CellSummary {
                    cell_id,
                    model: r.get(1).map_err(self.err())?,
                    scripted: r.get(2).map_err(self.err())?,
                    scenario: r.get(3).map_err(self.err())?,
                    variant: r.get(4).map_err(self.err())?,
                    episodes: 0,
                    outcomes: Outcome::ALL
                        .iter()
                        .map(|o| (o.as_str().to_string(), 0))
                        .collect(),
                    methods: BTreeMap::new(),
                    strict_judged: 0,
                    strict_compliant: 0,
                    usage: Usage::default(),
                    cost_usd: 0.0,
                    cost_unknown: 0,
                    episode_outcomes: Vec::new(),
                    scorer_versions: BTreeMap::new(),
                    unusable_turns: BTreeMap::new(),
                });
            }
            let Some(id) = r.get::<_, Option<i64>>(5).map_err(self.err())? else {
                continue; // a cell without episodes yet
            };
            let summary = out.last_mut().expect("pushed above");
            let outcome_text: String = r.get(6).map_err(self.err())?;
            let outcome = Outcome::parse(&outcome_text)
                .ok_or_else(|| self.corrupt(id, format!("unknown outcome '{outcome_text}'")))?;
            let methods: String = r.get(7).map_err(self.err())?;
            let methods: Vec<String> =
                serde_json::from_str(&methods).map_err(|e| self.corrupt(id, e))?;
            summary.episodes += 1;
            summary.episode_outcomes.push((id, outcome));
            *summary.outcomes.entry(outcome_text).or_default() += 1;
            for m in methods {
                *summary.methods.entry(m).or_default() += 1;
            }
            if let Some(strict) = r.get::<_, Option<bool>>(8).map_err(self.err())? {
                summary.strict_judged += 1;
                summary.strict_compliant += strict as u64;
            }
            *summary
                .scorer_versions
                .entry(r.get(9).map_err(self.err())?)
                .or_default() += 1;
            summary.usage.add(&Usage {
                input_tokens: r.get::<_, i64>(10).map_err(self.err())? as u64,
                output_tokens: r.get::<_, i64>(11).map_err(self.err())? as u64,
                reasoning_tokens: r.get::<_, i64>(12).map_err(self.err())? as u64,
                cached_tokens: r.get::<_, i64>(13).map_err(self.err())? as u64,
            });
            match r.get::<_, Option<f64>>(14).map_err(self.err())? {
                Some(cost) => summary.cost_usd += cost,
                None => summary.cost_unknown += 1,
            }
        }
        self.count_unusable_turns(run_id, &mut out)?;
        Ok(out)
    }

    /// Fills each cell's [`CellSummary::unusable_turns`], in one query over the run.
    fn count_unusable_turns(
        &self,
        run_id: i64,
        cells: &mut [CellSummary],
    ) -> Result<(), StoreError> {
        let unusable: Vec<String> = crate::record::StopReason::ALL
            .iter()
            .filter(|s| s.is_unusable())
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT e.cell_id, json_extract(v.body, '$.stop_reason') AS stop, COUNT(*)
                 FROM events v JOIN episodes e ON v.episode_id = e.id JOIN cells c ON e.cell_id = c.id
                 WHERE c.run_id = ?1 AND v.kind = 'model_turn' AND stop IN ({})
                 GROUP BY e.cell_id, stop",
                unusable.join(", ")
            ))
            .map_err(self.err())?;
        let mut rows = stmt.query(params![run_id]).map_err(self.err())?;
        while let Some(r) = rows.next().map_err(self.err())? {
            let cell_id: i64 = r.get(0).map_err(self.err())?;
            if let Some(cell) = cells.iter_mut().find(|c| c.cell_id == cell_id) {
                cell.unusable_turns.insert(
                    r.get(1).map_err(self.err())?,
                    r.get::<_, i64>(2).map_err(self.err())? as u64,
                );
            }
        }
        Ok(())
    }

    /// Every run, newest first.
    pub fn runs(&self) -> Result<Vec<RunRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT r.id, r.created_at_ms, r.command,
                        (SELECT COUNT(*) FROM episodes e JOIN cells c ON e.cell_id = c.id WHERE c.run_id = r.id),
                        r.runs_per_cell * MAX(1, (SELECT COUNT(*) FROM cells c WHERE c.run_id = r.id)),
                        r.shard_index, r.shard_count
                 FROM runs r ORDER BY r.id DESC",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                let shard = super::shard_of(r.get(5)?, r.get(6)?);
                Ok(RunRow {
                    id: r.get(0)?,
                    created_at_ms: r.get(1)?,
                    command: r.get(2)?,
                    stored: r.get::<_, i64>(3)? as u64,
                    planned: crate::record::Shard::planned(shard, r.get::<_, i64>(4)? as u64),
                    shard,
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// A run's episodes as list rows, filtered.
    pub fn episode_rows(
        &self,
        run_id: i64,
        model: Option<&str>,
        variant: Option<&str>,
        outcome: Option<&str>,
        method: Option<&str>,
    ) -> Result<Vec<EpisodeRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT e.id, c.model, c.scripted, c.variant, e.epoch, e.outcome, e.methods
                 FROM episodes e JOIN cells c ON e.cell_id = c.id
                 WHERE c.run_id = ?1 AND (?2 IS NULL OR c.model = ?2) AND (?3 IS NULL OR c.variant = ?3)
                   AND (?4 IS NULL OR e.outcome = ?4) AND (?5 IS NULL OR e.methods LIKE '%\"' || ?5 || '\"%')
                 ORDER BY c.id, e.epoch",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map(params![run_id, model, variant, outcome, method], |r| {
                let methods: String = r.get(6)?;
                Ok(EpisodeRow {
                    id: r.get(0)?,
                    model: r.get(1)?,
                    scripted: r.get(2)?,
                    variant: r.get(3)?,
                    epoch: r.get(4)?,
                    outcome: r.get(5)?,
                    methods: serde_json::from_str(&methods).unwrap_or_default(),
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    pub fn episode_count(&self, run_id: i64) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM episodes e JOIN cells c ON e.cell_id = c.id WHERE c.run_id = ?1",
                params![run_id],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(self.err())
    }

    /// Episodes of a run cancelled by a second Ctrl-C (re-run on resume).
    pub fn cancelled_count(&self, run_id: i64) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM cancelled x JOIN cells c ON x.cell_id = c.id WHERE c.run_id = ?1",
                params![run_id],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(self.err())
    }
}
