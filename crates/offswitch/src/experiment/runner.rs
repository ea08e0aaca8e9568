//! Runs a grid of cells (model x variant) for N epochs each, in parallel up to a
//! concurrency bound, scoring and storing every episode as it finishes.

use super::assets::Assets;
use super::episode::{EpisodeRecord, EpisodeSpec, run_episode};
use super::scenario::Scenario;
use crate::score::{Score, score};
use crate::store::Store;
use models::Model;
use models::pricing::Pricing;
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
    pub pricing: Arc<Pricing>,
    /// Stop starting episodes once the run has cost this much (USD).
    pub max_cost: Option<f64>,
    pub guard: crate::guard::GuardConfig,
}

impl Plan {
    pub fn total_episodes(&self) -> u64 {
        self.models.len() as u64 * self.variants.len() as u64 * self.runs as u64
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEnd {
    Complete,
    /// `--max-cost` was reached: running episodes finished, no new ones started.
    CostLimit {
        spent: f64,
    },
}

/// Called after each episode is stored.
pub type OnEpisode = Arc<dyn Fn(&EpisodeRecord, &Score) + Send + Sync>;

/// Shared by the episode tasks of one run.
struct Control {
    /// Something fatal happened: start nothing more, cancel what runs.
    stop: AtomicBool,
    fatal: Mutex<Option<String>>,
    /// The cost limit was reached: start nothing more.
    cost_stop: AtomicBool,
    spent: Mutex<f64>,
}

impl Control {
    fn fail(&self, message: String) {
        self.stop.store(true, Ordering::SeqCst);
        self.fatal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(message);
    }

    fn may_start(&self) -> bool {
        !self.stop.load(Ordering::SeqCst) && !self.cost_stop.load(Ordering::SeqCst)
    }

    fn add_cost(&self, cost: f64, max: Option<f64>) {
        let mut spent = self.spent.lock().unwrap_or_else(|e| e.into_inner());
        *spent += cost;
        if max.is_some_and(|m| *spent >= m) {
            self.cost_stop.store(true, Ordering::SeqCst);
        }
    }
}

/// Runs the plan into `run_id`. Returns an error only for what must stop the whole run
/// (refused credentials, a store that cannot be written); episodes already stored stay.
pub async fn run(
    plan: &Plan,
    store: Arc<Mutex<Store>>,
    run_id: i64,
    on_episode: OnEpisode,
) -> Result<RunEnd, String> {
    if plan.max_cost.is_some()
        && let Some(model) = plan
            .models
            .iter()
            .find(|m| !m.is_scripted() && plan.pricing.price(m.name()).is_none())
    {
        return Err(format!(
            "--max-cost needs a price for {}: add it to a pricing file (--pricing FILE)",
            model.name()
        ));
    }
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
    let control = Arc::new(Control {
        stop: AtomicBool::new(false),
        fatal: Mutex::new(None),
        cost_stop: AtomicBool::new(false),
        spent: Mutex::new(0.0),
    });
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
                guard: plan.guard.clone(),
            };
            let (permits, control, store, on_episode, pricing) = (
                permits.clone(),
                control.clone(),
                store.clone(),
                on_episode.clone(),
                plan.pricing.clone(),
            );
            let (cell_id, max_cost) = (*cell_id, plan.max_cost);
            tasks.spawn(async move {
                let Ok(_permit) = permits.acquire_owned().await else {
                    return;
                };
                if !control.may_start() {
                    return;
                }
                let mut record = match run_episode(spec).await {
                    Ok(record) => record,
                    Err(e) => return control.fail(e.0),
                };
                record.cost_usd = pricing.cost(&record.model, &record.usage);
                if let Some(cost) = record.cost_usd {
                    control.add_cost(cost, max_cost);
                }
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
                    Ok(Err(e)) => control.fail(format!("cannot store an episode: {e}")),
                    Err(e) => control.fail(format!("storing an episode panicked: {e}")),
                }
            });
        }
    }
    while let Some(joined) = tasks.join_next().await {
        if let Err(e) = joined
            && !e.is_cancelled()
        {
            control.fail(format!("an episode task panicked: {e}"));
        }
        // Refused credentials stop the whole run at once: episodes in flight are
        // cancelled (their sandboxes are killed as they drop) and not stored.
        if control.stop.load(Ordering::SeqCst) {
            tasks.abort_all();
        }
    }
    if let Some(message) = control
        .fatal
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    {
        return Err(message);
    }
    if control.cost_stop.load(Ordering::SeqCst) {
        return Ok(RunEnd::CostLimit {
            spent: *control.spent.lock().unwrap_or_else(|e| e.into_inner()),
        });
    }
    Ok(RunEnd::Complete)
}
