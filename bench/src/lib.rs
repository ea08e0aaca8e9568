//! Shared helpers for the benchmarks: timing summaries printed the same way everywhere.

use std::time::Duration;

pub struct Summary {
    pub median_ms: f64,
    pub p95_ms: f64,
    pub n: usize,
}

pub fn summarize(mut samples: Vec<Duration>) -> Summary {
    samples.sort();
    let at = |q: f64| {
        samples[((samples.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0
    };
    Summary {
        median_ms: at(0.5),
        p95_ms: at(0.95),
        n: samples.len(),
    }
}

pub fn print(label: &str, s: &Summary) {
    println!(
        "{label:<48} median {:>7.2} ms   p95 {:>7.2} ms   (n={})",
        s.median_ms, s.p95_ms, s.n
    );
}

/// Like [`print`], in microseconds, for checks far below a millisecond.
pub fn print_us(label: &str, s: &Summary) {
    println!(
        "{label:<48} median {:>7.1} us   p95 {:>7.1} us   (n={})",
        s.median_ms * 1000.0,
        s.p95_ms * 1000.0,
        s.n
    );
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split(' ')
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The whole machine's busy CPU time so far (/proc/stat's first line: user, nice, system,
/// irq, softirq and steal), so that a difference over a phase also holds what the kernel's
/// own threads did for it (a sandbox's network namespace and cgroups are torn down by
/// kernel workers, which no process's rusage counts). None where /proc/stat is unreadable.
pub fn machine_busy() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let busy: u64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .map(|&i| fields.get(i).copied())
        .sum::<Option<u64>>()?;
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    Some(Duration::from_secs_f64(busy as f64 / ticks as f64))
}

/// Machine CPU per run over a phase of `runs` runs that began at `before` (from
/// [`machine_busy`]), after a pause for the kernel's deferred teardown; in ms.
pub fn machine_ms_per_run(before: Option<Duration>, runs: usize) -> Option<f64> {
    std::thread::sleep(Duration::from_millis(300));
    let spent = machine_busy()?.checked_sub(before?)?;
    Some(spent.as_secs_f64() * 1000.0 / runs.max(1) as f64)
}

/// This process's peak resident memory (VmHWM), in MB.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// A plan over the built-in `palisade-paper` scenario with the default pricing, assets and
/// no guard; benches adjust what they measure.
pub fn plan(
    models: Vec<std::sync::Arc<dyn models::Model>>,
    variants: &[&str],
    runs: u32,
    concurrency: usize,
) -> offswitch::experiment::runner::Plan {
    use std::sync::Arc;
    offswitch::experiment::runner::Plan {
        models,
        scenario: Arc::new(
            offswitch::experiment::scenario::Scenario::load("palisade-paper")
                .expect("built-in scenario"),
        ),
        variants: variants.iter().map(|v| v.to_string()).collect(),
        runs,
        concurrency,
        assets: Arc::new(
            offswitch::experiment::assets::Assets::locate()
                .expect("the sandbox helper is built next to the bench"),
        ),
        pricing: Arc::new(models::pricing::Pricing::builtin()),
        max_cost: None,
        guard: Default::default(),
        shard: None,
        follower: None,
        ramp_up: None,
    }
}

/// A finished bench run: its store (in a temporary directory) and wall time.
pub struct BenchRun {
    pub store: offswitch::store::Store,
    pub run_id: i64,
    pub wall: Duration,
    _dir: tempfile::TempDir,
}

/// Runs `plan` into a fresh temporary store.
pub async fn run(
    plan: &offswitch::experiment::runner::Plan,
    on_episode: Vec<Box<dyn offswitch::experiment::runner::Sink>>,
) -> BenchRun {
    use offswitch::experiment::runner;
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let store = offswitch::store::Store::open(&dir.path().join("bench.db")).unwrap();
    let run_id = store.create_run("bench", plan.runs, "{}", "bench").unwrap();
    let store = Arc::new(Mutex::new(store));
    let started = std::time::Instant::now();
    offswitch::sinks::run_into_store(
        plan,
        store.clone(),
        run_id,
        on_episode,
        runner::Interrupt::new(),
    )
    .await
    .unwrap();
    let wall = started.elapsed();
    let store = Arc::try_unwrap(store)
        .ok()
        .expect("the runner released the store")
        .into_inner()
        .unwrap();
    BenchRun {
        store,
        run_id,
        wall,
        _dir: dir,
    }
}
