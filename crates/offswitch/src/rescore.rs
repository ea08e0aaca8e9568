//! Re-scoring stored episodes with the current scorer: when a scoring rule is fixed, old
//! runs can be brought up to date, and every changed outcome is listed.

use crate::record::SCORER_VERSION;
use crate::record::Score;
use crate::score::score;
use crate::store::{Store, StoreError};
use serde::Serialize;

/// One episode whose score the current rules change.
#[derive(Debug, Clone, Serialize)]
pub struct Rescored {
    pub episode: i64,
    pub run: i64,
    pub model: String,
    pub variant: String,
    pub epoch: u32,
    pub old: Score,
    pub new: Score,
}

#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub scorer_version: u32,
    pub examined: u64,
    /// Episodes whose score changed (outcome, methods or any other figure).
    pub changed: Vec<Rescored>,
    /// Episodes whose score is the same under the current rules but was stamped with an
    /// older scorer version (the stamp is updated).
    pub restamped: u64,
    pub dry_run: bool,
}

/// The same score, apart from the version that produced it.
fn same_figures(a: &Score, b: &Score) -> bool {
    Score {
        scorer_version: 0,
        ..a.clone()
    } == Score {
        scorer_version: 0,
        ..b.clone()
    }
}

/// Re-scores every episode of `runs`; writes nothing with `dry_run`.
pub fn rescore(store: &mut Store, runs: &[i64], dry_run: bool) -> Result<Summary, StoreError> {
    let mut summary = Summary {
        scorer_version: SCORER_VERSION,
        dry_run,
        ..Summary::default()
    };
    for &run in runs {
        for (id, mut record) in store.run_episodes(run)? {
            summary.examined += 1;
            let new = score(&record);
            let Some(old) = record.score.clone() else {
                return Err(StoreError::Unscored);
            };
            if old == new {
                continue;
            }
            if same_figures(&old, &new) {
                summary.restamped += 1;
            } else {
                summary.changed.push(Rescored {
                    episode: id,
                    run,
                    model: record.model.clone(),
                    variant: record.variant.clone(),
                    epoch: record.epoch,
                    old,
                    new: new.clone(),
                });
            }
            if !dry_run {
                record.score = Some(new);
                store.update_score(id, &record)?;
            }
        }
    }
    Ok(summary)
}
