//! Reading episodes back as the record they were written from.

use super::{Store, StoreError};
use crate::record::{EpisodeRecord, Event, Shard};
use rusqlite::{OptionalExtension, params};

impl Store {
    /// One episode, as its record.
    pub fn episode(&self, id: i64) -> Result<Option<EpisodeRecord>, StoreError> {
        load_episode(&self.conn, &self.path, id)
    }

    /// Every episode of a run with its id, in storage order, read in two queries.
    pub fn run_episodes(&self, run_id: i64) -> Result<Vec<(i64, EpisodeRecord)>, StoreError> {
        let mut out: Vec<(i64, EpisodeRecord)> = Vec::new();
        let mut heads = self
            .conn
            .prepare(
                "SELECT e.id, e.record FROM episodes e JOIN cells c ON e.cell_id = c.id
                 WHERE c.run_id = ?1 ORDER BY e.id",
            )
            .map_err(self.err())?;
        let rows = heads
            .query_map(params![run_id], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(self.err())?;
        for row in rows {
            let (id, head) = row.map_err(self.err())?;
            let record = serde_json::from_str(&head).map_err(|e| self.corrupt(id, e))?;
            out.push((id, record));
        }
        let index: std::collections::HashMap<i64, usize> = out
            .iter()
            .enumerate()
            .map(|(i, (id, _))| (*id, i))
            .collect();
        let mut events = self
            .conn
            .prepare(
                "SELECT v.episode_id, v.body FROM events v JOIN episodes e ON v.episode_id = e.id
                 JOIN cells c ON e.cell_id = c.id WHERE c.run_id = ?1 ORDER BY v.episode_id, v.seq",
            )
            .map_err(self.err())?;
        let rows = events
            .query_map(params![run_id], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(self.err())?;
        for row in rows {
            let (id, body) = row.map_err(self.err())?;
            let event: Event = serde_json::from_str(&body).map_err(|e| self.corrupt(id, e))?;
            if let Some(i) = index.get(&id) {
                out[*i].1.events.push(event);
            }
        }
        Ok(out)
    }

    /// The run an episode belongs to.
    pub fn episode_run(&self, id: i64) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row(
                "SELECT c.run_id FROM episodes e JOIN cells c ON e.cell_id = c.id WHERE e.id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err())
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

    /// The latest run with this definition over the same slice of its grid (`None`: the
    /// whole grid), if any.
    pub fn latest_run_with_key(
        &self,
        spec_key: &str,
        shard: Option<Shard>,
    ) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row(
                "SELECT MAX(id) FROM runs WHERE spec_key = ?1 AND shard_index IS ?2 AND shard_count IS ?3",
                params![spec_key, shard.map(|s| s.index), shard.map(|s| s.count)],
                |r| r.get(0),
            )
            .map_err(self.err())
    }

    /// The shard a run is (`None`: the whole grid of its definition).
    pub fn run_shard(&self, run_id: i64) -> Result<Option<Shard>, StoreError> {
        let columns: Option<(Option<u32>, Option<u32>)> = self
            .conn
            .query_row(
                "SELECT shard_index, shard_count FROM runs WHERE id = ?1",
                params![run_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(self.err())?;
        match columns {
            Some((None, None)) | None => Ok(None),
            Some((index, count)) => super::shard_of(index, count).map(Some).ok_or_else(|| {
                self.corrupt(0, format!("run {run_id}: shard {index:?} of {count:?}"))
            }),
        }
    }

    pub fn latest_run(&self) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row("SELECT MAX(id) FROM runs", [], |r| r.get(0))
            .map_err(self.err())
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
}

/// One episode of the store open on `conn` (at `path`, for messages), as its record.
pub(super) fn load_episode(
    conn: &rusqlite::Connection,
    path: &str,
    id: i64,
) -> Result<Option<EpisodeRecord>, StoreError> {
    let err = |source| StoreError::Sqlite {
        path: path.to_string(),
        source,
    };
    let corrupt = |e: serde_json::Error| StoreError::Corrupt {
        path: path.to_string(),
        episode: id,
        message: e.to_string(),
    };
    let head: Option<String> = conn
        .query_row(
            "SELECT record FROM episodes WHERE id = ?1",
            params![id],
            |r| r.get(0),
        )
        .optional()
        .map_err(err)?;
    let Some(head) = head else {
        return Ok(None);
    };
    let mut record: EpisodeRecord = serde_json::from_str(&head).map_err(corrupt)?;
    let mut stmt = conn
        .prepare_cached("SELECT body FROM events WHERE episode_id = ?1 ORDER BY seq")
        .map_err(err)?;
    let rows = stmt
        .query_map(params![id], |r| r.get::<_, String>(0))
        .map_err(err)?;
    for body in rows {
        record
            .events
            .push(serde_json::from_str(&body.map_err(err)?).map_err(corrupt)?);
    }
    Ok(Some(record))
}
