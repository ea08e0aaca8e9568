//! Merging stores (`offswitch merge`): the shards of a study run on several machines
//! become one run again.
//!
//! Each run of the input joins the output's whole run of the same definition (same
//! `spec_key`), created if the output has none; cells are matched by model, scenario and
//! variant, episodes by their key (cell and epoch). An episode the output already holds
//! with the same record is skipped, so merging a file twice changes nothing; one it holds
//! with a different record (overlapping shards, or two separate runs of one definition)
//! refuses the whole input: one input is merged in one transaction, all or nothing.

use super::read::load_episode;
use super::{Store, StoreError, write};
use crate::record::Shard;
use rusqlite::{OptionalExtension, Transaction, params};

/// What merging one input did to one of its runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedRun {
    pub from_run: i64,
    pub from_shard: Option<Shard>,
    /// The output's whole run it joined.
    pub into_run: i64,
    /// Whether the output's run was created by this merge.
    pub created: bool,
    pub added: u64,
    /// Episodes the output already held with the same record.
    pub present: u64,
}

struct InputRun {
    id: i64,
    created_at_ms: i64,
    command: String,
    runs_per_cell: i64,
    version: String,
    spec: String,
    spec_key: String,
    shard: Option<Shard>,
}

impl Store {
    /// Merges every run of `input` into this store (see the module's description).
    pub fn merge_from(&mut self, input: &Store) -> Result<Vec<MergedRun>, StoreError> {
        let runs = input.input_runs()?;
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let mut merged = Vec::new();
        for run in runs {
            merged.push(merge_run(&tx, &path, input, &run)?);
        }
        tx.commit().map_err(err)?;
        Ok(merged)
    }

    fn input_runs(&self) -> Result<Vec<InputRun>, StoreError> {
        self.rows(
            "SELECT id, created_at_ms, command, runs_per_cell, offswitch_version, spec, spec_key,
                    shard_index, shard_count FROM runs ORDER BY id",
            [],
            |r| {
                Ok(InputRun {
                    id: r.get(0)?,
                    created_at_ms: r.get(1)?,
                    command: r.get(2)?,
                    runs_per_cell: r.get(3)?,
                    version: r.get(4)?,
                    spec: r.get(5)?,
                    spec_key: r.get(6)?,
                    shard: super::shard_of(r.get(7)?, r.get(8)?),
                })
            },
        )
    }

    /// Every row of a query, each mapped by `f`.
    fn rows<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, StoreError> {
        let mut stmt = self.conn.prepare(sql).map_err(self.err())?;
        let rows = stmt.query_map(params, f).map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }
}

fn merge_run(
    tx: &Transaction,
    path: &str,
    input: &Store,
    run: &InputRun,
) -> Result<MergedRun, StoreError> {
    let err = |source| StoreError::Sqlite {
        path: path.to_string(),
        source,
    };
    let existing: Option<i64> = tx
        .query_row(
            "SELECT MAX(id) FROM runs WHERE spec_key = ?1 AND shard_index IS NULL",
            params![run.spec_key],
            |r| r.get(0),
        )
        .map_err(err)?;
    let (into_run, created) = match existing {
        Some(id) => (id, false),
        None => {
            let command = match run.shard {
                Some(shard) => format!("merged from shards (shard {shard} ran: {})", run.command),
                None => run.command.clone(),
            };
            tx.execute(
                "INSERT INTO runs (created_at_ms, command, runs_per_cell, offswitch_version, spec, spec_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![run.created_at_ms, command, run.runs_per_cell, run.version, run.spec, run.spec_key],
            )
            .map_err(err)?;
            (tx.last_insert_rowid(), true)
        }
    };
    let mut result = MergedRun {
        from_run: run.id,
        from_shard: run.shard,
        into_run,
        created,
        added: 0,
        present: 0,
    };
    let cells: Vec<(i64, String, bool, String, String)> = input.rows(
        "SELECT id, model, scripted, scenario, variant FROM cells WHERE run_id = ?1 ORDER BY id",
        params![run.id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )?;
    for (from_cell, model, scripted, scenario, variant) in cells {
        let into_cell =
            write::cell_id(tx, into_run, &model, scripted, &scenario, &variant).map_err(err)?;
        let episodes: Vec<(i64, u32)> = input.rows(
            "SELECT id, epoch FROM episodes WHERE cell_id = ?1 ORDER BY epoch",
            params![from_cell],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        for (from_episode, epoch) in episodes {
            let Some(record) = input.episode(from_episode)? else {
                continue;
            };
            let held: Option<i64> = tx
                .query_row(
                    "SELECT id FROM episodes WHERE cell_id = ?1 AND epoch = ?2",
                    params![into_cell, epoch],
                    |r| r.get(0),
                )
                .optional()
                .map_err(err)?;
            match held {
                Some(id) if load_episode(tx, path, id)?.as_ref() == Some(&record) => {
                    result.present += 1;
                }
                Some(id) => {
                    return Err(StoreError::Conflict {
                        path: path.to_string(),
                        message: format!(
                            "episode {epoch} of cell ({model}, {scenario}, {variant}) of run {} ({}) is already \
                             held as episode {id} of run {into_run} with a different record: overlapping shards, \
                             or another run of the same definition; nothing of {} was merged (merge into a new file \
                             to keep both)",
                            run.id,
                            run.shard
                                .map_or("the whole grid".to_string(), |s| format!("shard {s}")),
                            input.path,
                        ),
                    });
                }
                None => {
                    write::insert(tx, None, into_cell, &record).map_err(err)?;
                    result.added += 1;
                }
            }
        }
        let cancelled: Vec<(u32, i64)> = input.rows(
            "SELECT epoch, at_ms FROM cancelled WHERE cell_id = ?1",
            params![from_cell],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        for (epoch, at_ms) in cancelled {
            tx.execute(
                "INSERT INTO cancelled (cell_id, epoch, at_ms) SELECT ?1, ?2, ?3
                 WHERE NOT EXISTS (SELECT 1 FROM cancelled WHERE cell_id = ?1 AND epoch = ?2 AND at_ms = ?3)",
                params![into_cell, epoch, at_ms],
            )
            .map_err(err)?;
        }
    }
    Ok(result)
}
