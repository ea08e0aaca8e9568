//! The run store: one SQLite file holding runs, cells (model, scenario, variant) and
//! episodes. An episode is stored as the [`EpisodeRecord`] itself (its events one row
//! each, the rest as one JSON value) plus a few columns that summaries read, and read
//! back as the same type. Each finished episode is written in one transaction.
//!
//! The schema carries a version (`PRAGMA user_version`); [`Store::open`] migrates an
//! older file in place (see `schema.rs`).
//!
//! [`EpisodeRecord`]: crate::record::EpisodeRecord

mod legacy;
mod merge;
mod read;
mod schema;
mod summary;
mod write;

pub use merge::MergedRun;
pub use summary::{CellSummary, EpisodeRow, RunRow};

use rusqlite::Connection;
use std::path::Path;

pub const DEFAULT_DB: &str = "offswitch.db";
/// The default of [`Store::limit_value_bytes`]: 256 MiB.
pub const DEFAULT_VALUE_LIMIT: i32 = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {source}")]
    Sqlite {
        path: String,
        source: rusqlite::Error,
    },
    #[error("store {path}: episode {episode}: {message}")]
    Corrupt {
        path: String,
        episode: i64,
        message: String,
    },
    #[error(
        "store {path} has schema version {found}, newer than this offswitch knows ({known}): use a newer offswitch"
    )]
    TooNew {
        path: String,
        found: i64,
        known: i64,
    },
    #[error("store {path}: {message}")]
    Conflict { path: String, message: String },
    #[error("an episode must be scored before it is stored")]
    Unscored,
}

pub struct Store {
    conn: Connection,
    path: String,
}

impl Store {
    /// Opens (or creates) a store, migrating an older schema to the current one. Another
    /// process creating or migrating the same file at that moment is waited for.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let started = std::time::Instant::now();
        loop {
            match Store::open_once(path) {
                Err(StoreError::Sqlite {
                    source: rusqlite::Error::SqliteFailure(e, _),
                    ..
                }) if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && started.elapsed() < std::time::Duration::from_secs(10) =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                result => return result,
            }
        }
    }

    fn open_once(path: &Path) -> Result<Store, StoreError> {
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
        let mut store = Store { conn, path: shown };
        store.limit_value_bytes(DEFAULT_VALUE_LIMIT)?;
        schema::migrate(&mut store)?;
        Ok(store)
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn corrupt(&self, episode: i64, message: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            episode,
            message: message.to_string(),
        }
    }

    /// The largest value (one record's JSON, one event) this store accepts, in bytes.
    /// SQLite's own ceiling is 1 GB; a lower one turns an agent's attempt to bloat its
    /// record into a refused write that the caller can answer (see `sinks`).
    pub fn limit_value_bytes(&self, bytes: i32) -> Result<(), StoreError> {
        self.conn
            .set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH, bytes)
            .map(|_| ())
            .map_err(self.err())
    }

    /// The schema version of the open file (always the current one after `open`).
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(self.err())
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A run's shard from its two columns (`None`: the whole grid, or columns that do not
/// name a shard).
fn shard_of(index: Option<u32>, count: Option<u32>) -> Option<crate::record::Shard> {
    crate::record::Shard::new(index?, count?)
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    // Our own types always serialize; a failure would be a bug worth seeing in the row.
    serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"serialization_error\": \"{e}\"}}"))
}

#[cfg(test)]
pub(crate) mod tests;
