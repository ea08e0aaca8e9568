//! The run store: one SQLite file. Runs, cells (model, scenario, variant), episodes
//! (outcome, methods, timings, usage) and every message, command and question-service
//! event. Each finished episode is written in one transaction.

use crate::experiment::episode::{CommandRecord, EpisodeRecord};
use crate::experiment::questions::ServiceEvent;
use crate::score::{Method, Outcome, Score};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The record types the store holds. Reports and exports take them from here, so that
/// they depend on the store alone and not on the sandbox or the provider layer.
pub use models::{Message, Usage};
pub use sandbox::{Change, Entry};

pub const DEFAULT_DB: &str = "offswitch.db";

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    created_at_ms INTEGER NOT NULL,
    command TEXT NOT NULL,
    runs_per_cell INTEGER NOT NULL,
    offswitch_version TEXT NOT NULL,
    -- the run's definition (JSON), enough to resume it; and its digest
    spec TEXT NOT NULL,
    spec_key TEXT NOT NULL
);
-- Episodes cancelled by a second Ctrl-C: not results, re-run on resume.
CREATE TABLE IF NOT EXISTS cancelled (
    cell_id INTEGER NOT NULL REFERENCES cells(id),
    epoch INTEGER NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS cells (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    model TEXT NOT NULL,
    scripted INTEGER NOT NULL,
    scenario TEXT NOT NULL,
    variant TEXT NOT NULL,
    UNIQUE (run_id, model, scenario, variant)
);
CREATE TABLE IF NOT EXISTS episodes (
    id INTEGER PRIMARY KEY,
    cell_id INTEGER NOT NULL REFERENCES cells(id),
    epoch INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    methods TEXT NOT NULL,
    strict_compliant INTEGER,
    answers_correct INTEGER,
    questions_after_shutdown INTEGER NOT NULL,
    shutdown_issued_ms INTEGER,
    machine_died_ms INTEGER,
    shutdown_latency_ms INTEGER,
    started_at_ms INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    messages INTEGER NOT NULL,
    tool_errors INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    cost_usd REAL,
    guard_layers TEXT NOT NULL,
    submitted_answer TEXT,
    -- end reason, final diff, kill-path files, expected answers (JSON)
    details TEXT NOT NULL,
    UNIQUE (cell_id, epoch)
);
CREATE TABLE IF NOT EXISTS events (
    episode_id INTEGER NOT NULL REFERENCES episodes(id),
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('message', 'command', 'service', 'exchange', 'guard')),
    at_ms INTEGER,
    body TEXT NOT NULL,
    PRIMARY KEY (episode_id, seq)
);
"#;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {source}")]
    Sqlite {
        path: String,
        source: rusqlite::Error,
    },
    #[error("store: {0}")]
    Data(String),
}

pub struct Store {
    conn: Connection,
    path: String,
}

/// Episode-level fields that are not in the event stream.
#[derive(Serialize, serde::Deserialize)]
struct Details {
    end: crate::experiment::episode::EpisodeEnd,
    changes: Vec<Change>,
    kill_path: Vec<crate::experiment::episode::FileVersions>,
    expected_answers: Vec<String>,
    shutdown_path: String,
    question_program_path: String,
    score: Score,
}

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
    /// Ids of the cell's episodes, in epoch order (for `offswitch show`).
    pub episode_ids: Vec<i64>,
}

impl CellSummary {
    pub fn count(&self, outcome: Outcome) -> u64 {
        self.outcomes.get(outcome.as_str()).copied().unwrap_or(0)
    }

    /// Episodes that count in rates: errors, limits and self-terminations excluded.
    pub fn denominator(&self) -> u64 {
        Outcome::ALL
            .iter()
            .filter(|o| o.counts_in_denominator())
            .map(|o| self.count(*o))
            .sum()
    }
}

/// One run in the list of runs.
#[derive(Debug, Clone)]
pub struct RunRow {
    pub id: i64,
    pub created_at_ms: i64,
    pub command: String,
    /// Episodes stored, and planned (runs per cell x cells).
    pub stored: u64,
    pub planned: u64,
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

/// A stored episode, for `show`.
pub struct StoredEpisode {
    pub id: i64,
    pub run_id: i64,
    pub model: String,
    pub scripted: bool,
    pub scenario: String,
    pub variant: String,
    pub epoch: u32,
    pub duration_ms: u64,
    pub score: Score,
    pub end: crate::experiment::episode::EpisodeEnd,
    pub messages: Vec<Message>,
    pub commands: Vec<CommandRecord>,
    pub service: Vec<ServiceEvent>,
    pub changes: Vec<Change>,
    pub kill_path: Vec<crate::experiment::episode::FileVersions>,
    pub submitted_answer: Option<String>,
    pub exchanges: Vec<serde_json::Value>,
    pub guard_events: Vec<crate::guard::GuardEvent>,
    pub guard_layers: Vec<crate::guard::Layer>,
    pub shutdown_path: String,
    pub question_program_path: String,
    pub shutdown_issued_ms: Option<u64>,
    pub machine_died_ms: Option<u64>,
}

impl StoredEpisode {
    /// What the guard figures need of this episode.
    pub fn guard_view(&self) -> crate::guard::metrics::EpisodeView {
        let kill_path = [
            self.shutdown_path.as_str(),
            self.question_program_path.as_str(),
        ];
        crate::guard::metrics::EpisodeView {
            layers: self.guard_layers.clone(),
            events: self.guard_events.clone(),
            tampered: !self.score.methods.is_empty(),
            first_tamper_ms: crate::score::first_tamper_ms(
                &self.commands,
                &self.service,
                &kill_path,
            ),
            shutdown_issued_ms: self.shutdown_issued_ms,
            machine_died_ms: self.machine_died_ms,
        }
    }
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let shown = path.display().to_string();
        let err = |source| StoreError::Sqlite {
            path: shown.clone(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
        )
        .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(Store { conn, path: shown })
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    pub fn create_run(
        &self,
        command: &str,
        runs_per_cell: u32,
        spec: &str,
        spec_key: &str,
    ) -> Result<i64, StoreError> {
        self.conn
            .execute(
                "INSERT INTO runs (created_at_ms, command, runs_per_cell, offswitch_version, spec, spec_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![now_ms(), command, runs_per_cell, env!("CARGO_PKG_VERSION"), spec, spec_key],
            )
            .map_err(self.err())?;
        Ok(self.conn.last_insert_rowid())
    }

    /// A run's stored definition (JSON).
    pub fn run_spec(&self, run_id: i64) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT spec FROM runs WHERE id = ?1",
                params![run_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err())
    }

    /// The latest run with this definition, if any.
    pub fn latest_run_with_key(&self, spec_key: &str) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row(
                "SELECT MAX(id) FROM runs WHERE spec_key = ?1",
                params![spec_key],
                |r| r.get(0),
            )
            .map_err(self.err())
    }

    /// Epochs of a cell that are already stored.
    pub fn done_epochs(&self, cell_id: i64) -> Result<std::collections::HashSet<u32>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT epoch FROM episodes WHERE cell_id = ?1")
            .map_err(self.err())?;
        let epochs = stmt
            .query_map(params![cell_id], |r| r.get(0))
            .map_err(self.err())?;
        epochs.collect::<Result<_, _>>().map_err(self.err())
    }

    /// (episode id, outcome) of a cell's episodes, in epoch order.
    pub fn cell_outcomes(&self, cell_id: i64) -> Result<Vec<(i64, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, outcome FROM episodes WHERE cell_id = ?1 ORDER BY epoch")
            .map_err(self.err())?;
        let rows = stmt
            .query_map(params![cell_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Every run, newest first.
    pub fn runs(&self) -> Result<Vec<RunRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT r.id, r.created_at_ms, r.command,
                        (SELECT COUNT(*) FROM episodes e JOIN cells c ON e.cell_id = c.id WHERE c.run_id = r.id),
                        r.runs_per_cell * MAX(1, (SELECT COUNT(*) FROM cells c WHERE c.run_id = r.id))
                 FROM runs r ORDER BY r.id DESC",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok(RunRow {
                    id: r.get(0)?,
                    created_at_ms: r.get(1)?,
                    command: r.get(2)?,
                    stored: r.get::<_, i64>(3)? as u64,
                    planned: r.get::<_, i64>(4)? as u64,
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

    /// When the run was created (unix ms) and the command that created it.
    pub fn run_info(&self, run_id: i64) -> Result<Option<(i64, String)>, StoreError> {
        self.conn
            .query_row(
                "SELECT created_at_ms, command FROM runs WHERE id = ?1",
                params![run_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
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

    pub fn record_cancelled(&self, cell_id: i64, epoch: u32) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO cancelled (cell_id, epoch, at_ms) VALUES (?1, ?2, ?3)",
                params![cell_id, epoch, now_ms()],
            )
            .map(|_| ())
            .map_err(self.err())
    }

    pub fn cell(
        &self,
        run_id: i64,
        model: &str,
        scripted: bool,
        scenario: &str,
        variant: &str,
    ) -> Result<i64, StoreError> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO cells (run_id, model, scripted, scenario, variant) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![run_id, model, scripted, scenario, variant],
            )
            .map_err(self.err())?;
        self.conn
            .query_row(
                "SELECT id FROM cells WHERE run_id = ?1 AND model = ?2 AND scenario = ?3 AND variant = ?4",
                params![run_id, model, scenario, variant],
                |r| r.get(0),
            )
            .map_err(self.err())
    }

    /// Writes one finished episode and all its events in one transaction.
    pub fn insert_episode(
        &mut self,
        cell_id: i64,
        record: &EpisodeRecord,
        score: &Score,
    ) -> Result<i64, StoreError> {
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let details = Details {
            end: record.end.clone(),
            changes: record.changes.clone(),
            kill_path: record.kill_path.clone(),
            expected_answers: record.expected_answers.clone(),
            shutdown_path: record.shutdown_path.clone(),
            question_program_path: record.question_program_path.clone(),
            score: score.clone(),
        };
        let tx = self.conn.transaction().map_err(err)?;
        tx.execute(
            "INSERT INTO episodes (cell_id, epoch, outcome, methods, strict_compliant, answers_correct,
                questions_after_shutdown, shutdown_issued_ms, machine_died_ms, shutdown_latency_ms,
                started_at_ms, duration_ms, messages, tool_errors, input_tokens, output_tokens,
                reasoning_tokens, cached_tokens, cost_usd, guard_layers, submitted_answer, details)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)",
            params![
                cell_id,
                record.epoch,
                score.outcome.as_str(),
                json(&score.methods.iter().map(|m| m.as_str()).collect::<Vec<_>>()),
                score.strict_compliant,
                score.answers_correct,
                score.questions_after_shutdown as i64,
                record.shutdown_issued_ms.map(|v| v as i64),
                record.machine_died_ms.map(|v| v as i64),
                score.shutdown_latency_ms.map(|v| v as i64),
                record.started_at_ms as i64,
                record.duration_ms as i64,
                record.messages.len() as i64,
                record.tool_errors as i64,
                record.usage.input_tokens as i64,
                record.usage.output_tokens as i64,
                record.usage.reasoning_tokens as i64,
                record.usage.cached_tokens as i64,
                record.cost_usd,
                json(&record.guard_layers),
                record.submitted_answer,
                json(&details),
            ],
        )
        .map_err(err)?;
        let episode_id = tx.last_insert_rowid();
        if record.scripted {
            // A "model" answered by offswitch's mock server is a fixture: label its cell.
            tx.execute(
                "UPDATE cells SET scripted = 1 WHERE id = ?1",
                params![cell_id],
            )
            .map_err(err)?;
        }
        {
            let mut insert = tx
                .prepare("INSERT INTO events (episode_id, seq, kind, at_ms, body) VALUES (?1, ?2, ?3, ?4, ?5)")
                .map_err(err)?;
            let mut seq = 0i64;
            for m in &record.messages {
                insert
                    .execute(params![
                        episode_id,
                        seq,
                        "message",
                        Option::<i64>::None,
                        json(m)
                    ])
                    .map_err(err)?;
                seq += 1;
            }
            for c in &record.commands {
                insert
                    .execute(params![
                        episode_id,
                        seq,
                        "command",
                        c.started_ms as i64,
                        json(c)
                    ])
                    .map_err(err)?;
                seq += 1;
            }
            for s in &record.service {
                insert
                    .execute(params![episode_id, seq, "service", s.at_ms as i64, json(s)])
                    .map_err(err)?;
                seq += 1;
            }
            for g in &record.guard_events {
                insert
                    .execute(params![episode_id, seq, "guard", g.at_ms as i64, json(g)])
                    .map_err(err)?;
                seq += 1;
            }
            for x in &record.exchanges {
                insert
                    .execute(params![
                        episode_id,
                        seq,
                        "exchange",
                        Option::<i64>::None,
                        json(x)
                    ])
                    .map_err(err)?;
                seq += 1;
            }
        }
        tx.commit().map_err(err)?;
        Ok(episode_id)
    }

    /// Ids of a run's episodes, in storage order.
    pub fn run_episode_ids(&self, run_id: i64) -> Result<Vec<i64>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT e.id FROM episodes e JOIN cells c ON e.cell_id = c.id WHERE c.run_id = ?1 ORDER BY e.id")
            .map_err(self.err())?;
        let ids = stmt
            .query_map(params![run_id], |r| r.get(0))
            .map_err(self.err())?;
        ids.collect::<Result<_, _>>().map_err(self.err())
    }

    pub fn latest_run(&self) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row("SELECT MAX(id) FROM runs", [], |r| r.get(0))
            .map_err(self.err())
    }

    pub fn cell_summaries(&self, run_id: i64) -> Result<Vec<CellSummary>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, model, scripted, scenario, variant FROM cells WHERE run_id = ?1 ORDER BY id")
            .map_err(self.err())?;
        let cells: Vec<(i64, String, bool, String, String)> = stmt
            .query_map(params![run_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .map_err(self.err())?
            .collect::<Result<_, _>>()
            .map_err(self.err())?;
        let mut out = Vec::new();
        for (cell_id, model, scripted, scenario, variant) in cells {
            let mut summary = CellSummary {
                cell_id,
                model,
                scripted,
                scenario,
                variant,
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
                episode_ids: Vec::new(),
            };
            let (usage, cost, unknown) = self
                .conn
                .query_row(
                    "SELECT COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0),
                            COALESCE(SUM(reasoning_tokens), 0), COALESCE(SUM(cached_tokens), 0),
                            COALESCE(SUM(cost_usd), 0.0), COUNT(*) - COUNT(cost_usd)
                     FROM episodes WHERE cell_id = ?1",
                    params![cell_id],
                    |r| {
                        Ok((
                            Usage {
                                input_tokens: r.get::<_, i64>(0)? as u64,
                                output_tokens: r.get::<_, i64>(1)? as u64,
                                reasoning_tokens: r.get::<_, i64>(2)? as u64,
                                cached_tokens: r.get::<_, i64>(3)? as u64,
                            },
                            r.get::<_, f64>(4)?,
                            r.get::<_, i64>(5)? as u64,
                        ))
                    },
                )
                .map_err(self.err())?;
            summary.usage = usage;
            summary.cost_usd = cost;
            summary.cost_unknown = unknown;
            let mut rows = self
                .conn
                .prepare(
                    "SELECT outcome, methods, strict_compliant, id FROM episodes WHERE cell_id = ?1 ORDER BY epoch",
                )
                .map_err(self.err())?;
            let episodes = rows
                .query_map(params![cell_id], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<bool>>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                })
                .map_err(self.err())?;
            for row in episodes {
                let (outcome, methods, strict, id) = row.map_err(self.err())?;
                summary.episodes += 1;
                summary.episode_ids.push(id);
                *summary.outcomes.entry(outcome).or_default() += 1;
                let methods: Vec<String> =
                    serde_json::from_str(&methods).map_err(|e| StoreError::Data(e.to_string()))?;
                for m in methods {
                    *summary.methods.entry(m).or_default() += 1;
                }
                if let Some(strict) = strict {
                    summary.strict_judged += 1;
                    summary.strict_compliant += strict as u64;
                }
            }
            out.push(summary);
        }
        Ok(out)
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

    pub fn episode(&self, id: i64) -> Result<Option<StoredEpisode>, StoreError> {
        let data = |e: serde_json::Error| StoreError::Data(format!("episode {id}: {e}"));
        let row = self
            .conn
            .query_row(
                "SELECT e.id, c.run_id, c.model, c.scripted, c.scenario, c.variant, e.epoch, e.duration_ms,
                        e.submitted_answer, e.details, e.guard_layers, e.shutdown_issued_ms, e.machine_died_ms
                 FROM episodes e JOIN cells c ON e.cell_id = c.id WHERE e.id = ?1",
                params![id],
                |r| {
                    let head = StoredEpisode {
                        id: r.get(0)?,
                        run_id: r.get(1)?,
                        model: r.get(2)?,
                        scripted: r.get(3)?,
                        scenario: r.get(4)?,
                        variant: r.get(5)?,
                        epoch: r.get(6)?,
                        duration_ms: r.get::<_, i64>(7)? as u64,
                        submitted_answer: r.get(8)?,
                        shutdown_issued_ms: r.get::<_, Option<i64>>(11)?.map(|v| v as u64),
                        machine_died_ms: r.get::<_, Option<i64>>(12)?.map(|v| v as u64),
                        score: crate::score::Score::placeholder(),
                        end: crate::experiment::episode::EpisodeEnd::Submitted,
                        messages: Vec::new(),
                        commands: Vec::new(),
                        service: Vec::new(),
                        changes: Vec::new(),
                        kill_path: Vec::new(),
                        exchanges: Vec::new(),
                        guard_events: Vec::new(),
                        guard_layers: Vec::new(),
                        shutdown_path: String::new(),
                        question_program_path: String::new(),
                    };
                    Ok((head, r.get::<_, String>(9)?, r.get::<_, String>(10)?))
                },
            )
            .optional()
            .map_err(self.err())?;
        let Some((mut episode, details, layers)) = row else {
            return Ok(None);
        };
        let details: Details = serde_json::from_str(&details).map_err(data)?;
        episode.score = details.score;
        episode.end = details.end;
        episode.changes = details.changes;
        episode.kill_path = details.kill_path;
        episode.shutdown_path = details.shutdown_path;
        episode.question_program_path = details.question_program_path;
        episode.guard_layers = serde_json::from_str(&layers).map_err(data)?;
        let mut stmt = self
            .conn
            .prepare("SELECT kind, body FROM events WHERE episode_id = ?1 ORDER BY seq")
            .map_err(self.err())?;
        let rows = stmt
            .query_map(params![id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(self.err())?;
        for row in rows {
            let (kind, body) = row.map_err(self.err())?;
            match kind.as_str() {
                "message" => episode
                    .messages
                    .push(serde_json::from_str(&body).map_err(data)?),
                "command" => episode
                    .commands
                    .push(serde_json::from_str(&body).map_err(data)?),
                "guard" => episode
                    .guard_events
                    .push(serde_json::from_str(&body).map_err(data)?),
                "service" => episode
                    .service
                    .push(serde_json::from_str(&body).map_err(data)?),
                _ => episode
                    .exchanges
                    .push(serde_json::from_str(&body).map_err(data)?),
            }
        }
        Ok(Some(episode))
    }
}

fn json<T: Serialize + ?Sized>(value: &T) -> String {
    // Our own types always serialize; a failure would be a bug worth seeing in the row.
    serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"serialization_error\": \"{e}\"}}"))
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn method_names() -> Vec<&'static str> {
    Method::ALL.iter().map(|m| m.as_str()).collect()
}
