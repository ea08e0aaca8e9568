//! Runs a grid of cells (model x variant) for N epochs each, in parallel up to a
//! concurrency bound, handing every episode to the sinks as it finishes.

use super::assets::Assets;
use super::episode::{EpisodeSpec, run_episode};
use super::scenario::Scenario;
use crate::record::EpisodeRecord;
use models::Model;
use models::pricing::Pricing;
use std::collections::HashSet;
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
    /// Run only this slice of the grid (see [`crate::record::Shard`]).
    pub shard: Option<crate::record::Shard>,
    /// Shown every episode's record as it goes (`eval --follow`).
    pub follower: Option<Arc<dyn Follower>>,
    /// The time over which the first `concurrency` episodes start (see [`ramp_spacing`]);
    /// `None`: [`START_SPACING`] apart.
    pub ramp_up: Option<std::time::Duration>,
}

/// Sees an episode's record as it grows (after each model turn and each round of tool
/// results, and once more at its end, before it is scored); tells the episodes apart by
/// model, variant and epoch.
pub trait Follower: Send + Sync {
    fn follow(&self, record: &EpisodeRecord);
}

impl Plan {
    /// The episodes this plan runs: the grid, or the shard's slice of it.
    pub fn total_episodes(&self) -> u64 {
        let grid = self.models.len() as u64 * self.variants.len() as u64 * self.runs as u64;
        crate::record::Shard::planned(self.shard, grid)
    }
}

/// The runtime a run at `concurrency` needs: room on the blocking pool for every
/// episode's blocking work at once. An episode can hold up to three blocking threads at a
/// time (its tool call, for as long as the call runs; the question service's liveness
/// check; a guard's kill or snapshot), then one for its teardown and one for the store
/// write; none may wait behind another episode's. Tokio's default cap, 512 threads, made
/// 800 episodes whose agents each ran a 10-s command take 19.6 s at p90 instead of 13.0 s
/// (their calls queued behind others'), and would hold a guard's kill behind sleeping
/// calls. Threads are made only when needed.
pub fn runtime(concurrency: usize) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads((4 * concurrency + 64).max(512))
        .build()
}

/// The least time between two of the first `concurrency` episodes' starts (at most 500
/// starts a second while a run fills its slots).
pub const START_SPACING: std::time::Duration = std::time::Duration::from_millis(2);

/// The time between two of a run's first `concurrency` starts: `ramp_up` spread evenly
/// over them, and at least [`START_SPACING`]. Later episodes start as soon as a slot
/// frees, keeping the spread of phases the first ones had. Sandboxes created in one
/// instant keep every episode's turns in step; a ramp much shorter than an episode still
/// leaves one cohort, which waits on its model at once while the cores idle, then wants
/// them all at once (README, Benchmarks: 70-71% of the ideal rate at 1000 episodes on two
/// cores, against 83-90% with a ramp of one episode's length).
pub fn ramp_spacing(
    concurrency: usize,
    ramp_up: Option<std::time::Duration>,
) -> std::time::Duration {
    let slots = u32::try_from(concurrency.max(1)).unwrap_or(u32::MAX);
    ramp_up.map_or(START_SPACING, |ramp| (ramp / slots).max(START_SPACING))
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEnd {
    Complete,
    /// `--max-cost` was reached: running episodes finished, no new ones started.
    CostLimit {
        spent: f64,
    },
    /// Ctrl-C: no new episodes; `cancelled` running ones were cancelled (a second Ctrl-C)
    /// and recorded as such. Resuming completes the run.
    Interrupted {
        cancelled: u64,
    },
}

/// The user's wish to stop: first stop starting episodes, then cancel running ones.
#[derive(Default)]
pub struct Interrupt {
    stop_new: AtomicBool,
    cancel: AtomicBool,
    notify: tokio::sync::Notify,
}

impl Interrupt {
    pub fn new() -> Arc<Interrupt> {
        Arc::new(Interrupt::default())
    }

    pub fn stop_starting(&self) {
        self.stop_new.store(true, Ordering::SeqCst);
    }

    pub fn cancel_running(&self) {
        self.stop_new.store(true, Ordering::SeqCst);
        self.cancel.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    fn stopping(&self) -> bool {
        self.stop_new.load(Ordering::SeqCst)
    }

    async fn cancelled(&self) {
        loop {
            let notified = self.notify.notified();
            if self.cancel.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}

/// One cell of the grid as the runner sees it: the model and variant, the sink's key for
/// it, and the epochs already finished (resume).
pub struct CellPlan {
    pub key: i64,
    pub model: Arc<dyn Model>,
    pub variant: String,
    pub done: HashSet<u32>,
}

/// Where finished episodes go. The runner does not score, store or draw: its sinks do
/// (one scores and stores, one shows progress), each seeing every episode once.
pub trait Sink: Send + Sync {
    /// A finished episode (priced, not scored) of the cell with this key. Called from a
    /// blocking thread. An error stops the run.
    fn finished(&self, cell: i64, record: &mut EpisodeRecord) -> Result<(), SinkError>;
    /// An episode cancelled by the user (a second Ctrl-C): not a result.
    fn cancelled(&self, cell: i64, epoch: u32) -> Result<(), SinkError>;
}

/// What a sink could not do (its own error type, boxed).
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// Why a whole run stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The provider refused the credentials: no episode can succeed.
    #[error("{0}")]
    Credentials(String),
    #[error("--max-cost needs a price for {0}: add it to a pricing file (--pricing FILE)")]
    NoPrice(String),
    #[error("cannot hand an episode to a sink: {0}")]
    Sink(SinkError),
    #[error("an episode task panicked: {0}")]
    Panicked(String),
    /// The run finished, but these episodes could not be stored.
    #[error("{} episodes could not be stored (the run went on without them): {}", .0.len(), .0.join("; "))]
    Unstored(Vec<String>),
}

/// Shared by the episode tasks of one run.
struct Control {
    /// Something fatal happened: start nothing more, cancel what runs.
    stop: AtomicBool,
    fatal: Mutex<Option<RunError>>,
    /// The cost limit was reached: start nothing more.
    cost_stop: AtomicBool,
    spent: Mutex<f64>,
}

impl Control {
    fn fail(&self, message: RunError) {
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

/// Runs the plan's missing episodes (the cells' `done` epochs are skipped, so the same
/// call resumes an interrupted run) and hands each one to the sinks in order. Returns an
/// error only for what must stop the whole run (refused credentials, a failing sink).
pub async fn run(
    plan: &Plan,
    cells: Vec<CellPlan>,
    sinks: Arc<Vec<Box<dyn Sink>>>,
    interrupt: Arc<Interrupt>,
) -> Result<RunEnd, RunError> {
    if plan.max_cost.is_some()
        && let Some(model) = plan
            .models
            .iter()
            .find(|m| !m.is_scripted() && plan.pricing.price(m.name()).is_none())
    {
        return Err(RunError::NoPrice(model.name().to_string()));
    }
    let cancelled = Arc::new(std::sync::atomic::AtomicU64::new(0));
    super::environment::remove_stale_service_dirs();
    let permits = Arc::new(Semaphore::new(plan.concurrency.max(1)));
    let control = Arc::new(Control {
        stop: AtomicBool::new(false),
        fatal: Mutex::new(None),
        cost_stop: AtomicBool::new(false),
        spent: Mutex::new(0.0),
    });
    // The first `concurrency` episodes start `spacing` apart; the rest as slots free.
    let spacing = ramp_spacing(plan.concurrency, plan.ramp_up);
    let mut ramping = plan.concurrency;
    let mut next_start = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    // Epoch-major order, so a run stopped early has every cell equally far along. An
    // episode's task is made only once it has a slot, so a run of any length holds the
    // state of at most `concurrency` episodes (not a waiting task per planned episode).
    'grid: for epoch in 1..=plan.runs {
        for (position, cell) in cells.iter().enumerate() {
            let elsewhere = plan
                .shard
                .is_some_and(|s| !s.holds(epoch, position, cells.len()));
            if elsewhere || cell.done.contains(&epoch) {
                continue;
            }
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break 'grid;
            };
            while let Some(joined) = tasks.try_join_next() {
                note_join(joined, &control);
            }
            if ramping > 0 {
                ramping -= 1;
                tokio::time::sleep_until(next_start).await;
                next_start = tokio::time::Instant::now() + spacing;
            }
            if !control.may_start() || interrupt.stopping() {
                break 'grid;
            }
            let spec = EpisodeSpec {
                scenario: plan.scenario.clone(),
                variant: cell.variant.clone(),
                model: cell.model.clone(),
                epoch,
                assets: plan.assets.clone(),
                guard: plan.guard.clone(),
                follower: plan.follower.clone(),
            };
            let (control, sinks, pricing) = (control.clone(), sinks.clone(), plan.pricing.clone());
            let (cell_key, max_cost) = (cell.key, plan.max_cost);
            let (interrupt, cancelled) = (interrupt.clone(), cancelled.clone());
            tasks.spawn(async move {
                // The slot is held until the sinks have the episode.
                let _permit = permit;
                let result = tokio::select! {
                    biased;
                    _ = interrupt.cancelled() => {
                        // The episode's sandbox is killed as its future drops.
                        cancelled.fetch_add(1, Ordering::SeqCst);
                        for sink in sinks.iter() {
                            if let Err(e) = sink.cancelled(cell_key, epoch) {
                                control.fail(RunError::Sink(e));
                            }
                        }
                        return;
                    }
                    result = run_episode(spec) => result,
                };
                let mut record = match result {
                    Ok(record) => record,
                    Err(e) => return control.fail(RunError::Credentials(e.0)),
                };
                record.cost_usd = pricing.cost(&record.model, &record.usage());
                if let Some(cost) = record.cost_usd {
                    control.add_cost(cost, max_cost);
                }
                let handed = tokio::task::spawn_blocking(move || {
                    sinks
                        .iter()
                        .try_for_each(|sink| sink.finished(cell_key, &mut record))
                })
                .await;
                match handed {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => control.fail(RunError::Sink(e)),
                    Err(e) => control.fail(RunError::Panicked(e.to_string())),
                }
            });
        }
    }
    if control.stop.load(Ordering::SeqCst) {
        tasks.abort_all();
    }
    while let Some(joined) = tasks.join_next().await {
        note_join(joined, &control);
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
    if interrupt.stopping() {
        return Ok(RunEnd::Interrupted {
            cancelled: cancelled.load(Ordering::SeqCst),
        });
    }
    if control.cost_stop.load(Ordering::SeqCst) {
        return Ok(RunEnd::CostLimit {
            spent: *control.spent.lock().unwrap_or_else(|e| e.into_inner()),
        });
    }
    Ok(RunEnd::Complete)
}

/// An ended episode task: a panic stops the run.
fn note_join(joined: Result<(), tokio::task::JoinError>, control: &Control) {
    if let Err(e) = joined
        && !e.is_cancelled()
    {
        control.fail(RunError::Panicked(e.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, RwLock};
    use std::time::{Duration, Instant};

    #[test]
    fn the_first_episodes_start_spread_over_the_ramp_and_never_closer_than_the_spacing() {
        use super::{START_SPACING, ramp_spacing};
        assert_eq!(ramp_spacing(1000, None), START_SPACING);
        assert_eq!(
            ramp_spacing(1000, Some(Duration::from_secs(9))),
            Duration::from_millis(9)
        );
        assert_eq!(
            ramp_spacing(4, Some(Duration::from_secs(2))),
            Duration::from_millis(500)
        );
        assert_eq!(ramp_spacing(1000, Some(Duration::ZERO)), START_SPACING);
        assert_eq!(
            ramp_spacing(0, Some(Duration::from_secs(1))),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn a_runs_blocking_pool_has_room_for_every_episodes_blocking_work_at_once() {
        let concurrency = 200;
        let runtime = super::runtime(concurrency).unwrap();
        // Every episode holding four blocking threads at once (more than the three an
        // episode can hold): 800, past tokio's default cap of 512.
        let gate = Arc::new(RwLock::new(()));
        let held = gate.write().unwrap();
        let started = Arc::new(AtomicUsize::new(0));
        for _ in 0..4 * concurrency {
            let (gate, started) = (gate.clone(), started.clone());
            runtime.spawn_blocking(move || {
                started.fetch_add(1, Ordering::SeqCst);
                drop(gate.read());
            });
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while started.load(Ordering::SeqCst) < 4 * concurrency && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            started.load(Ordering::SeqCst),
            4 * concurrency,
            "blocking work waited behind other blocked work"
        );
        // And one more (a guard's kill, say) still runs at once.
        let (tx, rx) = std::sync::mpsc::channel();
        runtime.spawn_blocking(move || tx.send(()));
        assert!(rx.recv_timeout(Duration::from_secs(5)).is_ok());
        drop(held);
        runtime.shutdown_timeout(Duration::from_secs(10));
    }
}
