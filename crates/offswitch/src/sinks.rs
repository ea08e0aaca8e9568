//! What happens to each finished episode: the runner hands it to these sinks in order.
//! [`ScoreAndStore`] scores it and writes it in one transaction; [`Progress`] draws it.

use crate::experiment::runner::{CellPlan, Interrupt, Plan, RunEnd, RunError, Sink, SinkError};
use crate::record::{EpisodeRecord, Outcome};
use crate::store::Store;
use indicatif::ProgressBar;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Scores the record with the current scorer and stores it. A record the store refuses
/// is compacted and stored again; one that still cannot be stored is reported, never
/// allowed to stop the run (an agent must not be able to end a study by making its own
/// record unstorable).
pub struct ScoreAndStore {
    pub store: Arc<Mutex<Store>>,
    /// Episodes that could not be stored at all, with why.
    pub unstored: Mutex<Vec<String>>,
}

impl ScoreAndStore {
    pub fn new(store: Arc<Mutex<Store>>) -> ScoreAndStore {
        ScoreAndStore {
            store,
            unstored: Mutex::new(Vec::new()),
        }
    }
}

impl Sink for ScoreAndStore {
    fn finished(&self, cell: i64, record: &mut EpisodeRecord) -> Result<(), SinkError> {
        record.score = Some(crate::score::score(record));
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        let Err(first) = store.insert_episode(cell, record) else {
            return Ok(());
        };
        record.compact();
        if let Err(second) = store.insert_episode(cell, record) {
            self.unstored
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!(
                    "{} {} epoch {}: {first}; compacted: {second}",
                    record.model, record.variant, record.epoch
                ));
        }
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

/// `eval --follow`: each episode's transcript printed to stderr as it happens (above the
/// bar), then its outcome. With several episodes at once, every line carries its
/// episode's label.
pub struct Follow {
    bar: ProgressBar,
    labelled: bool,
    /// Messages already printed, per episode (model, variant, epoch).
    shown: Mutex<std::collections::HashMap<(String, String, u32), usize>>,
}

impl Follow {
    pub fn new(bar: ProgressBar, labelled: bool) -> Follow {
        Follow {
            bar,
            labelled,
            shown: Mutex::new(Default::default()),
        }
    }

    fn print(&self, record: &EpisodeRecord, text: &str) {
        let text = if self.labelled {
            let label = format!("[{} {}#{}] ", record.model, record.variant, record.epoch);
            text.lines()
                .map(|l| format!("{label}{l}\n"))
                .collect::<String>()
        } else {
            text.to_string()
        };
        self.bar.suspend(|| eprint!("{text}"));
    }
}

impl crate::experiment::runner::Follower for Follow {
    fn follow(&self, record: &EpisodeRecord) {
        let mut shown = self.shown.lock().unwrap_or_else(|e| e.into_inner());
        let from = shown
            .entry((record.model.clone(), record.variant.clone(), record.epoch))
            .or_insert(0);
        let mut text = String::new();
        if *from == 0 {
            text = format!(
                "=== {}{} on {}/{}, epoch {} ===\n",
                record.model,
                if record.scripted {
                    " [scripted fixture: not a model]"
                } else {
                    ""
                },
                record.scenario,
                record.variant,
                record.epoch
            );
        }
        let (new, messages) = crate::report::transcript::live(record, *from);
        text.push_str(&new);
        *from = messages;
        if !text.is_empty() {
            self.print(record, &text);
        }
    }
}

impl Sink for Follow {
    fn finished(&self, _cell: i64, record: &mut EpisodeRecord) -> Result<(), SinkError> {
        self.shown
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(record.model.clone(), record.variant.clone(), record.epoch));
        let outcome = match &record.score {
            Some(score) if score.methods.is_empty() => score.outcome.as_str().to_string(),
            Some(score) => format!(
                "{} ({})",
                score.outcome.as_str(),
                score
                    .methods
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => "not scored".to_string(),
        };
        self.print(
            record,
            &format!(
                "=== outcome: {outcome}; ended: {} ===\n\n",
                record.end.describe()
            ),
        );
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
    let storing = Arc::new(ScoreAndStore::new(store));
    let mut sinks: Vec<Box<dyn Sink>> = vec![Box::new(storing.clone())];
    sinks.extend(extra);
    let end = crate::experiment::runner::run(plan, cells, Arc::new(sinks), interrupt).await?;
    let unstored = std::mem::take(&mut *storing.unstored.lock().unwrap_or_else(|e| e.into_inner()));
    if !unstored.is_empty() {
        return Err(RunError::Unstored(unstored));
    }
    Ok(end)
}

impl<S: Sink> Sink for Arc<S> {
    fn finished(&self, cell: i64, record: &mut EpisodeRecord) -> Result<(), SinkError> {
        (**self).finished(cell, record)
    }

    fn cancelled(&self, cell: i64, epoch: u32) -> Result<(), SinkError> {
        (**self).cancelled(cell, epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Event, Message, Outcome};

    fn storing() -> (tempfile::TempDir, ScoreAndStore, i64) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let run = store.create_run("t", 1, "{}", "k").unwrap();
        let cell = store
            .cell(run, "openai/o3", false, "palisade-paper", "A")
            .unwrap();
        // Small enough that the bloated output below is refused, large enough for the rest.
        store.limit_value_bytes(500_000).unwrap();
        (dir, ScoreAndStore::new(Arc::new(Mutex::new(store))), cell)
    }

    fn bloated(epoch: u32) -> EpisodeRecord {
        let mut record = crate::store::tests::hand_made(Outcome::Sabotaged);
        record.epoch = epoch;
        record.score = None;
        record.events.push(Event::ToolResult {
            at_ms: 300,
            call: 0,
            message: Message::Tool {
                tool_call_id: "call_1".into(),
                name: "bash".into(),
                content: "\u{1}".repeat(300_000),
                error: None,
            },
        });
        record
    }

    #[test]
    fn a_record_too_big_to_store_is_stored_compacted_and_marked() {
        let (_dir, sink, cell) = storing();
        let mut record = bloated(1);
        sink.finished(cell, &mut record).unwrap();
        assert!(sink.unstored.lock().unwrap().is_empty());
        let store = sink.store.lock().unwrap();
        let back = store.episode(1).unwrap().unwrap();
        assert!(back.evidence.compacted);
        // Every event is still there; the score is the real one.
        assert_eq!(back.events.len(), record.events.len());
        assert_eq!(back.score, record.score);
        assert_eq!(back.exchanges().count(), 0);
    }

    #[test]
    fn an_episode_that_cannot_be_stored_at_all_is_reported_and_the_next_one_stored() {
        let (_dir, sink, cell) = storing();
        let mut record = bloated(1);
        // Beyond what compaction keeps: a huge model message.
        record.events.push(Event::Input {
            at_ms: 400,
            message: Message::User {
                content: "x".repeat(600_000),
            },
        });
        sink.finished(cell, &mut record).unwrap();
        let unstored = sink.unstored.lock().unwrap().clone();
        assert_eq!(unstored.len(), 1, "{unstored:?}");
        assert!(unstored[0].contains("openai/o3 A epoch 1"), "{unstored:?}");
        let mut next = bloated(2);
        next.events.pop();
        sink.finished(cell, &mut next).unwrap();
        let store = sink.store.lock().unwrap();
        assert_eq!(store.episode_count(1).unwrap(), 1);
    }
}
