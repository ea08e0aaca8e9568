//! What happens to each finished episode: the runner hands it to these sinks in order.
//! [`ScoreAndStore`] scores it and writes it in one transaction; [`Progress`] draws it.

use crate::experiment::runner::{CellPlan, Interrupt, Plan, RunEnd, RunError, Sink, SinkError};
use crate::record::{EpisodeRecord, Outcome};
use crate::store::Store;
use indicatif::ProgressBar;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Scores the record with the current scorer and stores it.
pub struct ScoreAndStore {
    pub store: Arc<Mutex<Store>>,
}

impl Sink for ScoreAndStore {
    fn finished(&self, cell: i64, record: &mut EpisodeRecord) -> Result<(), SinkError> {
        record.score = Some(crate::score::score(record));
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        store.insert_episode(cell, record)?;
        Ok(())
    }

    fn cancelled(&self, cell: i64, epoch: u32) -> Result<(), SinkError> {
        let store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        Ok(store.record_cancelled(cell, epoch)?)
    }
}

/// Advances a progress bar and shows the outcomes so far.
pub struct Progress {
    pub bar: ProgressBar,
    tally: Mutex<BTreeMap<&'static str, u64>>,
}

impl Progress {
    pub fn new(bar: ProgressBar) -> Progress {
        Progress {
            bar,
            tally: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Sink for Progress {
    fn finished(&self, _cell: i64, record: &mut EpisodeRecord) -> Result<(), SinkError> {
        let outcome = record
            .score
            .as_ref()
            .map_or("unscored", |s| s.outcome.as_str());
        let mut tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        *tally.entry(outcome).or_default() += 1;
        self.bar.set_message(
            Outcome::ALL
                .iter()
                .filter_map(|o| tally.get(o.as_str()).map(|n| format!("{} {n}", o.as_str())))
                .collect::<Vec<_>>()
                .join(", "),
        );
        self.bar.inc(1);
        Ok(())
    }

    fn cancelled(&self, _cell: i64, _epoch: u32) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Calls a function with each finished, scored episode (benchmarks print them).
pub struct OnEpisode<F>(pub F);

impl<F: Fn(&EpisodeRecord) + Send + Sync> Sink for OnEpisode<F> {
    fn finished(&self, _cell: i64, record: &mut EpisodeRecord) -> Result<(), SinkError> {
        (self.0)(record);
        Ok(())
    }

    fn cancelled(&self, _cell: i64, _epoch: u32) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Runs `plan` into run `run_id` of `store`: the run's cells (created if new, their
/// finished epochs skipped, so this resumes), every episode scored and stored, then
/// handed to `extra` sinks.
pub async fn run_into_store(
    plan: &Plan,
    store: Arc<Mutex<Store>>,
    run_id: i64,
    extra: Vec<Box<dyn Sink>>,
    interrupt: Arc<Interrupt>,
) -> Result<RunEnd, RunError> {
    let mut cells = Vec::new();
    {
        let store = store.lock().unwrap_or_else(|e| e.into_inner());
        for model in &plan.models {
            for variant in &plan.variants {
                let key = store
                    .cell(
                        run_id,
                        model.name(),
                        model.is_scripted(),
                        &plan.scenario.id,
                        variant,
                    )
                    .map_err(|e| RunError::Sink(e.into()))?;
                cells.push(CellPlan {
                    key,
                    model: model.clone(),
                    variant: variant.clone(),
                    done: store
                        .done_epochs(key)
                        .map_err(|e| RunError::Sink(e.into()))?,
                });
            }
        }
    }
    let mut sinks: Vec<Box<dyn Sink>> = vec![Box::new(ScoreAndStore { store })];
    sinks.extend(extra);
    crate::experiment::runner::run(plan, cells, Arc::new(sinks), interrupt).await
}
