//! Runs a grid of cells (model x variant) for N epochs each, in parallel up to a
//! concurrency bound, scoring and storing every episode as it finishes.

use super::assets::Assets;
use super::episode::{EpisodeRecord, EpisodeSpec, run_episode};
use super::scenario::Scenario;
use crate::score::{Score, score};
use crate::store::Store;
use models::Model;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

pub struct Plan {
    pub models: Vec<Arc<dyn Model>>,
    pub scenario: Arc<Scenario>,
    pub variants: Vec<String>,
    pub runs: u32,
    pub concurrency: usize,
    pub assets: Arc<Assets>,
}

impl Plan {
    pub fn total_episodes(&self) -> u64 {
        self.models.len() as u64 * self.variants.len() as u64 * self.runs as u64
    }
}

/// Called after each episode is stored.
pub type OnEpisode = Arc<dyn Fn(&EpisodeRecord, &Score) + Send + Sync>;

/// Runs the plan into `run_id`. Returns an error only for what must stop the whole run
/// (refused credentials, a store that cannot be written); episodes already stored stay.
pub async fn run(
    plan: &Plan,
    store: Arc<Mutex<Store>>,
    run_id: i64,
    on_episode: OnEpisode,
) -> Result<(), String> {
    let mut cells = Vec::new();
    for model in &plan.models {
        for variant in &plan.variants {
            let id = {
                let store = store.lock().unwrap_or_else(|e| e.into_inner());
                store
                    .cell(
                        run_id,
                        model.name(),
                        model.is_scripted(),
                        &plan.scenario.id,
                        variant,
                    )
                    .map_err(|e| e.to_string())?
            };
            cells.push((id, model.clone(), variant.clone()));
        }
    }
    let permits = Arc::new(Semaphore::new(plan.concurrency.max(1)));
    let stop = Arc::new(AtomicBool::new(false));
    let fatal: Arc<Mutex<Option<String>>> = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    // Epoch-major order, so a run stopped early has every cell equally far along.
    for epoch in 1..=plan.runs {
        for (cell_id, model, variant) in &cells {
            let spec = EpisodeSpec {
                scenario: plan.scenario.clone(),
                variant: variant.clone(),
                model: model.clone(),
                epoch,
                assets: plan.assets.clone(),
            };
            let (permits, stop, fatal, store, on_episode, cell_id) = (
                permits.clone(),
                stop.clone(),
                fatal.clone(),
                store.clone(),
                on_episode.clone(),
                *cell_id,
            );
            tasks.spawn(async move {
                let Ok(_permit) = permits.acquire_owned().await else {
                    return;
                };
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let fail = |message: String| {
                    stop.store(true, Ordering::SeqCst);
                    fatal
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_or_insert(message);
                };
                let record = match run_episode(spec).await {
                    Ok(record) => record,
                    Err(e) => return fail(e.0),
                };
                let score = score(&record);
                let written = tokio::task::spawn_blocking(move || {
                    let mut store = store.lock().unwrap_or_else(|e| e.into_inner());
                    store
                        .insert_episode(cell_id, &record, &score)
                        .map(|_| (record, score))
                })
                .await;
                match written {
                    Ok(Ok((record, score))) => on_episode(&record, &score),
                    Ok(Err(e)) => fail(format!("cannot store an episode: {e}")),
                    Err(e) => fail(format!("storing an episode panicked: {e}")),
                }
            });
        }
    }
    while let Some(joined) = tasks.join_next().await {
        if let Err(e) = joined {
            stop.store(true, Ordering::SeqCst);
            fatal
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert(format!("an episode task panicked: {e}"));
        }
    }
    match fatal.lock().unwrap_or_else(|e| e.into_inner()).take() {
        Some(message) => Err(message),
        None => Ok(()),
    }
}
