//! The schema, its version and the migrations from every older version.
//!
//! - version 0 (offswitch 0.1 before the episode record): messages, commands, service
//!   and guard events and exchanges stored as separate lists, the rest of the episode in
//!   a `details` JSON value, limits as free text.
//! - version 1: the episode record, events in the order they happened, the score with
//!   the version of the scorer that produced it.
//! - version 2: a run may be one shard of its definition's grid (`shard_index`,
//!   `shard_count`; NULL for a whole run).

use super::{Store, StoreError};

/// The version this build writes.
pub const CURRENT: i64 = 2;

const TABLES: &str = r#"
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    created_at_ms INTEGER NOT NULL,
    command TEXT NOT NULL,
    runs_per_cell INTEGER NOT NULL,
    offswitch_version TEXT NOT NULL,
    -- the run's definition (JSON), enough to resume it exactly; and its digest
    spec TEXT NOT NULL,
    spec_key TEXT NOT NULL
);
CREATE TABLE cells (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    model TEXT NOT NULL,
    scripted INTEGER NOT NULL,
    scenario TEXT NOT NULL,
    variant TEXT NOT NULL,
    UNIQUE (run_id, model, scenario, variant)
);
-- Episodes cancelled by a second Ctrl-C: not results, re-run on resume.
CREATE TABLE cancelled (
    cell_id INTEGER NOT NULL REFERENCES cells(id),
    epoch INTEGER NOT NULL,
    at_ms INTEGER NOT NULL
);
"#;

/// Episodes and events as of version 1 (also the target of the 0 -> 1 migration).
const EPISODES_V1: &str = r#"
CREATE TABLE episodes (
    id INTEGER PRIMARY KEY,
    cell_id INTEGER NOT NULL REFERENCES cells(id),
    epoch INTEGER NOT NULL,
    -- the score's columns, for summaries and filters
    outcome TEXT NOT NULL,
    methods TEXT NOT NULL,
    strict_compliant INTEGER,
    scorer_version INTEGER NOT NULL,
    started_at_ms INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    cost_usd REAL,
    -- the episode record without its events (JSON)
    record TEXT NOT NULL,
    UNIQUE (cell_id, epoch)
);
CREATE TABLE events (
    episode_id INTEGER NOT NULL REFERENCES episodes(id),
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (episode_id, seq)
);
"#;

/// Version 1 -> 2: the shard a run is (NULL: the whole grid).
const V1_TO_V2: &str = r#"
ALTER TABLE runs ADD COLUMN shard_index INTEGER;
ALTER TABLE runs ADD COLUMN shard_count INTEGER;
"#;

/// Brings the open file to [`CURRENT`]: creates a new one, migrates an older one (in
/// one transaction), refuses a newer one.
pub(super) fn migrate(store: &mut Store) -> Result<(), StoreError> {
    // The usual case, read only: readers (reports, the viewer) open a store while a run
    // writes to it.
    if state(&store.conn, &store.path)? == (true, CURRENT) {
        return Ok(());
    }
    let path = store.path.clone();
    let err = |source| StoreError::Sqlite {
        path: path.clone(),
        source,
    };
    // Decide under the write lock: two processes opening a new file at once must not
    // both create the tables.
    let tx = store
        .conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(err)?;
    match state(&tx, &path)? {
        (true, CURRENT) => return Ok(()),
        (false, _) => {
            tx.execute_batch(TABLES).map_err(err)?;
            tx.execute_batch(EPISODES_V1).map_err(err)?;
            tx.execute_batch(V1_TO_V2).map_err(err)?;
        }
        (true, 0) => {
            super::legacy::migrate_v0(&tx, &path)?;
            tx.execute_batch(V1_TO_V2).map_err(err)?;
        }
        (true, 1) => tx.execute_batch(V1_TO_V2).map_err(err)?,
        (true, version) => {
            return Err(StoreError::TooNew {
                path: path.clone(),
                found: version,
                known: CURRENT,
            });
        }
    }
    tx.pragma_update(None, "user_version", CURRENT)
        .map_err(err)?;
    tx.commit().map_err(err)
}

/// Whether the file has tables, and its schema version; a version newer than this build
/// knows is an error.
fn state(conn: &rusqlite::Connection, path: &str) -> Result<(bool, i64), StoreError> {
    let err = |source| StoreError::Sqlite {
        path: path.to_string(),
        source,
    };
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err)?;
    if version > CURRENT {
        return Err(StoreError::TooNew {
            path: path.to_string(),
            found: version,
            known: CURRENT,
        });
    }
    let has_tables: bool = conn
        .query_row(
            "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'runs'",
            [],
            |r| r.get(0),
        )
        .map_err(err)?;
    Ok((has_tables, version))
}

/// Version 0 -> 1: builds each episode's record from the old tables, then swaps the
/// tables. Called inside the migration's transaction.
pub(super) fn episodes_v1_tables() -> &'static str {
    EPISODES_V1
}
