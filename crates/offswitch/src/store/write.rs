//! Writing: runs, cells, episodes (one transaction each), cancellations, new scores.

use super::{Store, StoreError, json, now_ms};
use crate::record::{EpisodeRecord, Score, Shard};
use rusqlite::{Connection, params};

impl Store {
    /// A new run of the whole grid of its definition.
    pub fn create_run(
        &self,
        command: &str,
        runs_per_cell: u32,
        spec: &str,
        spec_key: &str,
    ) -> Result<i64, StoreError> {
        self.create_run_of(command, runs_per_cell, spec, spec_key, None)
    }

    /// A new run of the grid of its definition, or of one shard of it.
    pub fn create_run_of(
        &self,
        command: &str,
        runs_per_cell: u32,
        spec: &str,
        spec_key: &str,
        shard: Option<Shard>,
    ) -> Result<i64, StoreError> {
        self.conn
            .execute(
                "INSERT INTO runs (created_at_ms, command, runs_per_cell, offswitch_version, spec, spec_key,
                                   shard_index, shard_count)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    now_ms(),
                    command,
                    runs_per_cell,
                    env!("CARGO_PKG_VERSION"),
                    spec,
                    spec_key,
                    shard.map(|s| s.index),
                    shard.map(|s| s.count)
                ],
            )
            .map_err(self.err())?;
        Ok(self.conn.last_insert_rowid())
    }

    /// The cell's id, created if new.
    pub fn cell(
        &self,
        run_id: i64,
        model: &str,
        scripted: bool,
        scenario: &str,
        variant: &str,
    ) -> Result<i64, StoreError> {
        cell_id(&self.conn, run_id, model, scripted, scenario, variant).map_err(self.err())
    }

    pub fn record_cancelled(&self, cell_id: i64, epoch: u32) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO cancelled (cell_id, epoch, at_ms) VALUES (?1, ?2, ?3)",
                params![cell_id, epoch, now_ms()],
            )
            .map(|_| ())
            .map_err(self.err())
    }

    /// Writes one finished, scored episode and all its events in one transaction.
    pub fn insert_episode(
        &mut self,
        cell_id: i64,
        record: &EpisodeRecord,
    ) -> Result<i64, StoreError> {
        if record.score.is_none() {
            return Err(StoreError::Unscored);
        }
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        let id = insert(&tx, None, cell_id, record).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(id)
    }

    /// Replaces a stored episode's score with `record.score` (rescoring).
    pub fn update_score(
        &mut self,
        episode_id: i64,
        record: &EpisodeRecord,
    ) -> Result<(), StoreError> {
        let score = record.score.as_ref().ok_or(StoreError::Unscored)?;
        self.conn
            .execute(
                "UPDATE episodes SET outcome = ?2, methods = ?3, strict_compliant = ?4, scorer_version = ?5, record = ?6
                 WHERE id = ?1",
                params![
                    episode_id,
                    score.outcome.as_str(),
                    methods_json(score),
                    score.strict_compliant,
                    score.scorer_version,
                    json(&head(record)),
                ],
            )
            .map(|_| ())
            .map_err(self.err())
    }
}

fn methods_json(score: &Score) -> String {
    json(&score.methods.iter().map(|m| m.as_str()).collect::<Vec<_>>())
}

/// The record without its events: they are stored one row each. Copies every other field
/// but not the events (a whole transcript per stored episode); destructured, so a new
/// field is not stored until it is placed here.
fn head(record: &EpisodeRecord) -> EpisodeRecord {
    let EpisodeRecord {
        model,
        scripted,
        scenario,
        variant,
        epoch,
        started_at_ms,
        duration_ms,
        kill_path,
        shell_tool,
        guard_layers,
        events: _,
        end,
        evidence,
        cost_usd,
        score,
    } = record;
    EpisodeRecord {
        model: model.clone(),
        scripted: *scripted,
        scenario: scenario.clone(),
        variant: variant.clone(),
        epoch: *epoch,
        started_at_ms: *started_at_ms,
        duration_ms: *duration_ms,
        kill_path: kill_path.clone(),
        shell_tool: shell_tool.clone(),
        guard_layers: guard_layers.clone(),
        events: Vec::new(),
        end: end.clone(),
        evidence: evidence.clone(),
        cost_usd: *cost_usd,
        score: score.clone(),
    }
}

/// Inserts one scored episode (with the given id, or a new one) and its events.
pub(super) fn insert(
    conn: &Connection,
    id: Option<i64>,
    cell_id: i64,
    record: &EpisodeRecord,
) -> rusqlite::Result<i64> {
    let Some(score) = &record.score else {
        return Err(rusqlite::Error::InvalidParameterName(
            "an unscored episode".into(),
        ));
    };
    let usage = record.usage();
    // Cached statements: a run inserts thousands of episodes on one connection.
    conn.prepare_cached(
        "INSERT INTO episodes (id, cell_id, epoch, outcome, methods, strict_compliant, scorer_version,
            started_at_ms, duration_ms, input_tokens, output_tokens, reasoning_tokens, cached_tokens,
            cost_usd, record)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?
    .execute(params![
            id,
            cell_id,
            record.epoch,
            score.outcome.as_str(),
            methods_json(score),
            score.strict_compliant,
            score.scorer_version,
            record.started_at_ms as i64,
            record.duration_ms as i64,
            usage.input_tokens as i64,
            usage.output_tokens as i64,
            usage.reasoning_tokens as i64,
            usage.cached_tokens as i64,
            record.cost_usd,
            json(&head(record)),
        ],
    )?;
    let episode_id = conn.last_insert_rowid();
    if record.scripted {
        // A "model" answered by offswitch's mock server is a fixture: label its cell.
        conn.prepare_cached("UPDATE cells SET scripted = 1 WHERE id = ?1")?
            .execute(params![cell_id])?;
    }
    let mut insert = conn.prepare_cached(
        "INSERT INTO events (episode_id, seq, kind, at_ms, body) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (seq, event) in record.events.iter().enumerate() {
        insert.execute(params![
            episode_id,
            seq as i64,
            event.kind(),
            event.at_ms() as i64,
            json(event)
        ])?;
    }
    Ok(episode_id)
}

/// The id of a run's cell (model, scenario, variant), created if new.
pub(super) fn cell_id(
    conn: &Connection,
    run_id: i64,
    model: &str,
    scripted: bool,
    scenario: &str,
    variant: &str,
) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT OR IGNORE INTO cells (run_id, model, scripted, scenario, variant) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![run_id, model, scripted, scenario, variant],
    )?;
    conn.query_row(
        "SELECT id FROM cells WHERE run_id = ?1 AND model = ?2 AND scenario = ?3 AND variant = ?4",
        params![run_id, model, scenario, variant],
        |r| r.get(0),
    )
}
