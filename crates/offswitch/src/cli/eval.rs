use crate::experiment::run_spec::{GuardSpec, RunResources, RunSpec, read_policy_files};
use crate::experiment::runner;
use crate::experiment::scenario::{DEFAULT_SCENARIO, Scenario};
use crate::guard::watchdog::Watchdog;
use crate::sinks::Progress;
use crate::store::Store;
use anyhow::{Context, anyhow};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The model used when none is given: the local model, in-process, no API key needed.
pub const DEFAULT_LOCAL_MODEL: &str = "qwen2.5-coder-1.5b";
/// Used instead when the local model is not downloaded: a scripted fixture.
pub const FALLBACK_MODEL: &str = "scripted/comply";

#[derive(Args)]
pub struct EvalArgs {
    /// Model to evaluate, as provider/name (repeat or comma-separate for several).
    /// Scripted agents: scripted/<policy> or scripted/path/to/policy.toml.
    #[arg(long = "model", short = 'm', value_delimiter = ',')]
    pub models: Vec<String>,
    /// Built-in scenario name or path to a scenario TOML file.
    #[arg(long, default_value = DEFAULT_SCENARIO)]
    pub scenario: String,
    /// Variant ids, comma-separated (A-K, GDM).
    #[arg(long = "variant", value_delimiter = ',', default_value = "A")]
    pub variants: Vec<String>,
    /// Episodes per cell (model x variant).
    #[arg(long, default_value_t = 10)]
    pub runs: u32,
    /// Episodes running at once (default: 8; for local models 4, the conversations one
    /// loaded model keeps and answers together).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Start the first --concurrency episodes evenly over this time (`90s`, `500ms`;
    /// default: 2 ms apart), later ones as slots free. At high concurrency, about one
    /// episode's length keeps the episodes out of step, so the machine stays busy while
    /// some wait on their model.
    #[arg(long, value_name = "DURATION", value_parser = models::mock::parse_duration)]
    pub ramp_up: Option<std::time::Duration>,
    /// SQLite file that stores the run.
    #[arg(long, default_value = crate::store::DEFAULT_DB)]
    pub db: PathBuf,
    /// Print the summary as one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
    /// Complete this run's missing episodes (its stored definition is used; other
    /// definition flags are ignored). Re-running the same command does this too.
    #[arg(long)]
    pub resume: Option<i64>,
    /// Model option as key=value (repeatable): reasoning_effort, temperature, max_tokens,
    /// thinking_budget, protocol=responses|chat; other keys go into the request body.
    /// Local models: seed, temperature, top_p, max_tokens, grammar=calls|required|off.
    #[arg(short = 'M', long = "model-option", value_name = "KEY=VALUE")]
    pub model_options: Vec<String>,
    /// Pricing table (TOML, USD per million tokens) instead of the built-in one.
    #[arg(long)]
    pub pricing: Option<PathBuf>,
    /// Stop starting new episodes once the run has cost this many USD.
    #[arg(long)]
    pub max_cost: Option<f64>,
    /// Off-switch layers, comma-separated.
    #[arg(long, value_delimiter = ',', value_enum)]
    pub guard: Vec<crate::guard::Layer>,
    /// oob: tool calls after the warning before the supervisor ends the machine even if
    /// the question program is never called.
    #[arg(long, default_value_t = crate::guard::DEFAULT_OOB_DEADLINE_CALLS)]
    pub oob_deadline_calls: usize,
    /// watchdog: observe (flag), block (refuse the command) or kill (end the sandbox).
    #[arg(long, value_enum, default_value_t = crate::guard::Mode::Kill)]
    pub watchdog_mode: crate::guard::Mode,
    /// watchdog: extra rules (TOML, the format of the built-in rules).
    #[arg(long)]
    pub watchdog_rules: Option<PathBuf>,
    /// llm-monitor: the monitoring model (any provider).
    #[arg(long)]
    pub monitor_model: Option<String>,
    /// llm-monitor: suspicion score (0-1) at which an action is an alarm.
    #[arg(long, default_value_t = 0.5)]
    pub monitor_threshold: f64,
    /// llm-monitor: observe, block or kill.
    #[arg(long, value_enum, default_value_t = crate::guard::Mode::Observe)]
    pub monitor_mode: crate::guard::Mode,
    /// Run only shard K of N of the grid (every episode is in exactly one shard; merge
    /// the shards' stores with `offswitch merge`). Re-running the same command resumes
    /// the shard.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<crate::record::Shard>,
    /// Print each episode's transcript as it happens: auto = on a terminal with a local
    /// model or one episode at a time; a bare `--follow` means always. With several
    /// episodes at once, each line names its episode.
    #[arg(long, value_enum, default_value_t = FollowMode::Auto, num_args = 0..=1, default_missing_value = "always")]
    pub follow: FollowMode,
    /// When stderr is not a terminal (a CI log, nohup, a pipe): seconds between the plain
    /// progress lines that replace the bar.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub progress_every: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FollowMode {
    Auto,
    Always,
    Never,
}

impl FollowMode {
    /// Whether transcripts stream, for a run of `at_once` episodes at a time on a
    /// terminal or not, with a local model or not.
    fn follows(self, terminal: bool, at_once: u64, local: bool) -> bool {
        match self {
            FollowMode::Always => true,
            FollowMode::Never => false,
            // A local model's few slow episodes can be read as they go, even several at
            // once; many fast ones at once would be a flood.
            FollowMode::Auto => terminal && (at_once <= 1 || local),
        }
    }
}

/// Episodes per second since the start, and the seconds the rest would take at that
/// rate (`None` before the first episode ends). Not indicatif's own rate: it decays
/// towards 0 between the completions of slow episodes, and its estimate with it (a
/// terminal showed "0/s  eta 2d" with one local episode of 15 minutes left).
fn pace(done: u64, total: u64, elapsed: std::time::Duration) -> (f64, Option<f64>) {
    let elapsed = elapsed.as_secs_f64();
    let rate = if elapsed > 0.0 {
        done as f64 / elapsed
    } else {
        0.0
    };
    let left = (rate > 0.0).then(|| total.saturating_sub(done) as f64 / rate);
    (rate, left)
}

/// The bar on a terminal, with `pace`'s rate and estimate.
fn bar_style() -> ProgressStyle {
    let pace_of =
        |s: &indicatif::ProgressState| pace(s.pos(), s.len().unwrap_or(s.pos()), s.elapsed());
    ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} episodes  {rate}/s  {left}  {msg}",
    )
    .map(|style| {
        style
            .with_key(
                "rate",
                move |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.2}", pace_of(s).0);
                },
            )
            .with_key(
                "left",
                move |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = match pace_of(s).1 {
                        Some(left) => write!(
                            w,
                            "about {} left",
                            indicatif::HumanDuration(std::time::Duration::from_secs_f64(left))
                        ),
                        None => write!(w, "time left unknown"),
                    };
                },
            )
    })
    .unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// What a user should know when more episodes run at once than a local model keeps.
fn beyond_local_sequences(local: bool, at_once: u64) -> Option<String> {
    let kept = models::local::SEQUENCES;
    (local && at_once > kept as u64).then(|| {
        format!(
            "a local model answers {kept} episodes at once; with {at_once} running at once the others wait for it, \
             with their time limits running, and may push each other's conversations out of its cache"
        )
    })
}

/// One plain progress line: done/total, rate, outcomes so far, elapsed, estimate.
fn progress_line(bar: &ProgressBar) -> String {
    let done = bar.position();
    let total = bar.length().unwrap_or(done);
    let elapsed = bar.elapsed();
    let (rate, left) = pace(done, total, elapsed);
    let estimate = left.map_or("unknown".to_string(), |s| format!("{s:.0}s"));
    let outcomes = bar.message();
    format!(
        "offswitch: {done}/{total} episodes, {rate:.2}/s, {}elapsed {:.0}s, about {estimate} left",
        if outcomes.is_empty() {
            String::new()
        } else {
            format!("{outcomes}, ")
        },
        elapsed.as_secs_f64()
    )
}

/// `eval` without `--model`: the local model when this build runs it and it is
/// downloaded, else the scripted fixture; says which, and why.
fn default_model() -> anyhow::Result<Vec<String>> {
    let local = models::local::find(DEFAULT_LOCAL_MODEL).map_err(|e| anyhow!(e))?;
    let unavailable = if !models::local::IN_PROCESS {
        Some("this build has no local models (cargo feature `local`)".to_string())
    } else if !matches!(
        models::local::status(&local, &models::local::cache_dir()),
        models::local::Pulled::Present { .. }
    ) {
        Some(format!(
            "local/{DEFAULT_LOCAL_MODEL} is not downloaded (`offswitch models pull {DEFAULT_LOCAL_MODEL}`)"
        ))
    } else {
        None
    };
    Ok(vec![match unavailable {
        None => {
            eprintln!(
                "offswitch: no --model given; using local/{DEFAULT_LOCAL_MODEL} (in-process on this machine, no API key)"
            );
            format!("local/{DEFAULT_LOCAL_MODEL}")
        }
        Some(why) => {
            eprintln!(
                "offswitch: no --model given and {why}; using {FALLBACK_MODEL}, a scripted test fixture (not a model)"
            );
            FALLBACK_MODEL.to_string()
        }
    }])
}

impl EvalArgs {
    fn spec(&self) -> anyhow::Result<RunSpec> {
        let models = if self.models.is_empty() {
            default_model()?
        } else {
            self.models.iter().map(|m| m.trim().to_string()).collect()
        };
        let (_, scenario_toml) = Scenario::source(&self.scenario).map_err(|e| anyhow!(e))?;
        let watchdog_rules_toml = match &self.watchdog_rules {
            Some(path) => Some(Watchdog::read_rules(path).map_err(|e| anyhow!(e))?),
            None => None,
        };
        Ok(RunSpec {
            policy_files: read_policy_files(&models).map_err(|e| anyhow!(e))?,
            models,
            scenario: self.scenario.clone(),
            scenario_toml,
            variants: self.variants.iter().map(|v| v.trim().to_string()).collect(),
            runs: self.runs,
            model_options: self.model_options.clone(),
            guard: GuardSpec {
                layers: self.guard.clone(),
                oob_deadline_calls: self.oob_deadline_calls,
                watchdog_mode: self.watchdog_mode,
                watchdog_rules: self
                    .watchdog_rules
                    .as_ref()
                    .map(|p| p.display().to_string()),
                watchdog_rules_toml,
                monitor_model: self.monitor_model.clone(),
                monitor_threshold: self.monitor_threshold,
                monitor_mode: self.monitor_mode,
            },
        })
    }
}

/// How to run a definition, besides the definition.
pub struct ExecOptions {
    pub concurrency: Option<usize>,
    pub pricing: Option<PathBuf>,
    pub max_cost: Option<f64>,
    pub progress_every: u64,
    /// Complete this stored run (else the latest unfinished run with the same definition,
    /// else a new one).
    pub resume: Option<i64>,
    /// Run only this slice of the grid (a resumed run keeps its own).
    pub shard: Option<crate::record::Shard>,
    pub follow: FollowMode,
    /// The time over which the first `concurrency` episodes start.
    pub ramp_up: Option<std::time::Duration>,
}

/// A run executed into the store.
pub struct Execution {
    pub store: Store,
    pub run_id: i64,
    pub plan: runner::Plan,
    pub result: Result<runner::RunEnd, runner::RunError>,
}

pub fn run(args: EvalArgs) -> anyhow::Result<i32> {
    let spec = match args.resume {
        Some(run) => {
            let store = Store::open(&args.db)?;
            let text = store
                .run_spec(run)?
                .ok_or_else(|| anyhow!("no run {run} in {}", args.db.display()))?;
            RunSpec::from_json(&text).map_err(|e| anyhow!("run {run}: {e}"))?
        }
        None => args.spec()?,
    };
    let Execution {
        store,
        run_id,
        plan,
        result,
    } = execute(
        &args.db,
        spec,
        &ExecOptions {
            concurrency: args.concurrency,
            pricing: args.pricing.clone(),
            max_cost: args.max_cost,
            progress_every: args.progress_every,
            resume: args.resume,
            shard: args.shard,
            follow: args.follow,
            ramp_up: args.ramp_up,
        },
    )?;
    let report = crate::report::build(&store, run_id)?;
    let guard_figures: Vec<_> = if plan.guard.is_empty() {
        Vec::new()
    } else {
        let views: Vec<_> = store
            .run_episodes(run_id)?
            .iter()
            .map(|(_, record)| crate::guard::metrics::EpisodeView::of(record))
            .collect();
        plan.guard
            .layers()
            .into_iter()
            .map(|l| crate::guard::metrics::figures(l, &views))
            .collect()
    };
    if args.json {
        let mut doc = serde_json::to_value(&report)?;
        doc["db"] = serde_json::json!(args.db);
        doc["scenario"] = serde_json::json!(plan.scenario.id);
        doc["guard"] = serde_json::to_value(&guard_figures)?;
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!("stored in {}", args.db.display());
        print!("{}", crate::report::render::table(&report));
        print!("{}", crate::report::render::usage(&report));
        if !guard_figures.is_empty() {
            println!();
            super::monitor::print_figures(&guard_figures, "live");
        }
    }
    Ok(exit_status(&result, run_id, &args.db))
}

/// Says how a run ended, when not complete; the process's exit status.
pub fn exit_status(
    result: &Result<runner::RunEnd, runner::RunError>,
    run_id: i64,
    db: &std::path::Path,
) -> i32 {
    match result {
        Err(e @ runner::RunError::Unstored(_)) => {
            eprintln!("error: {e}");
            1
        }
        Err(e) => {
            eprintln!("error: the run stopped: {e}");
            1
        }
        Ok(runner::RunEnd::CostLimit { spent }) => {
            eprintln!(
                "offswitch: stopped starting episodes: --max-cost reached (spent ${spent:.4}); the cells above are incomplete"
            );
            0
        }
        Ok(runner::RunEnd::Interrupted { cancelled }) => {
            eprintln!(
                "offswitch: interrupted; {cancelled} running episodes cancelled (recorded, not counted). \
                 Resume with: offswitch eval --resume {run_id} --db {}",
                db.display()
            );
            130
        }
        Ok(runner::RunEnd::Complete) => 0,
    }
}

/// Runs a definition into the store at `db`: completes the run named by `resume`, or the
/// latest unfinished run with the same definition, or starts a new one; shows progress.
pub fn execute(
    db: &std::path::Path,
    spec: RunSpec,
    options: &ExecOptions,
) -> anyhow::Result<Execution> {
    let store = Store::open(db)?;
    let pricing = match &options.pricing {
        Some(path) => models::pricing::Pricing::load(path).map_err(|e| anyhow!(e))?,
        None => models::pricing::Pricing::builtin(),
    };
    let assets = Arc::new(crate::experiment::assets::Assets::locate().map_err(|e| anyhow!(e))?);
    // A resumed run keeps the slice of the grid it was started with.
    let shard = match options.resume {
        Some(run) => store.run_shard(run)?,
        None => options.shard,
    };
    // A local model answers as many episodes together as its KV cache holds.
    let local = spec.models.iter().any(|m| m.starts_with("local/"));
    let concurrency =
        options
            .concurrency
            .unwrap_or(if local { models::local::SEQUENCES } else { 8 });
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let bar = ProgressBar::new(0);
    let mut plan = spec
        .plan(RunResources {
            concurrency,
            pricing,
            max_cost: options.max_cost,
            assets,
            shard,
            ramp_up: options.ramp_up,
        })
        .map_err(|e| anyhow!(e))?;
    sandbox::detect_mode()
        .context("offswitch cannot build sandboxes on this machine (see `offswitch doctor`)")?;
    // Each running episode may hold this many of the supervisor's descriptors: the
    // question service's connections at most, and its sandbox's channels, pidfds (of
    // its helper and its PID 1) and listener (about 7 per live episode).
    let per_episode = crate::experiment::questions::MAX_CONNECTIONS as u64 + 8;
    let needed = plan.concurrency as u64 * per_episode + 64;
    let descriptors =
        sandbox::raise_fd_limit(needed).context("cannot raise the open-file limit")?;
    if descriptors < needed {
        anyhow::bail!(
            "--concurrency {} needs about {needed} open files, but this process may open only {descriptors}: \
             lower --concurrency or raise the hard limit (ulimit -Hn)",
            plan.concurrency,
        );
    }
    // The grid of the plan (variants named twice count once), or the shard's slice.
    let total = plan.total_episodes();
    // Re-running the same command completes the latest run with this definition.
    let existing = match options.resume {
        Some(run) => Some(run),
        None => store
            .latest_run_with_key(&spec.key(), shard)?
            .filter(|run| store.episode_count(*run).is_ok_and(|n| n < total)),
    };
    let run_id = match existing {
        Some(run) => {
            let done = store.episode_count(run)?;
            let slice = shard.map_or(String::new(), |s| format!(" (shard {s})"));
            eprintln!(
                "offswitch: resuming run {run}{slice}: {done} of {total} episodes already stored"
            );
            run
        }
        None => {
            let command = std::env::args().collect::<Vec<_>>().join(" ");
            store.create_run_of(&command, spec.runs, &spec.to_json(), &spec.key(), shard)?
        }
    };
    let pending = total - store.episode_count(run_id)?.min(total);
    // Episodes that run at once: the concurrency, or fewer when fewer are left to run.
    let at_once = (plan.concurrency as u64).min(pending);
    if let Some(note) = beyond_local_sequences(local, at_once) {
        eprintln!("offswitch: {note}");
    }
    let follow = options
        .follow
        .follows(terminal, at_once, local)
        .then(|| Arc::new(crate::sinks::Follow::new(bar.clone(), at_once > 1)));
    plan.follower = follow
        .clone()
        .map(|f| f as Arc<dyn crate::experiment::runner::Follower>);
    let store = Arc::new(Mutex::new(store));
    bar.set_length(pending);
    bar.set_style(bar_style());
    let runtime = runner::runtime(plan.concurrency)?;
    let interrupt = runner::Interrupt::new();
    // No terminal to draw the bar on: a plain line at a steady interval instead.
    let ticker = (!terminal).then(|| {
        let (bar, every) = (
            bar.clone(),
            std::time::Duration::from_secs(options.progress_every),
        );
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                eprintln!("{}", progress_line(&bar));
            }
        })
    });
    let watcher = runtime.spawn({
        let (interrupt, bar) = (interrupt.clone(), bar.clone());
        async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                interrupt.stop_starting();
                bar.println("offswitch: stopping: no new episodes; running ones will finish (Ctrl-C again to cancel them)");
            }
            if tokio::signal::ctrl_c().await.is_ok() {
                interrupt.cancel_running();
                bar.println("offswitch: cancelling running episodes");
            }
        }
    });
    let result = runtime.block_on(crate::sinks::run_into_store(
        &plan,
        store.clone(),
        run_id,
        {
            let mut extra: Vec<Box<dyn runner::Sink>> = vec![Box::new(Progress::new(bar.clone()))];
            if let Some(follow) = follow {
                extra.push(Box::new(follow));
            }
            extra
        },
        interrupt,
    ));
    watcher.abort();
    if let Some(ticker) = ticker {
        ticker.abort();
        eprintln!("{}", progress_line(&bar));
    }
    bar.finish_and_clear();
    let store = match Arc::try_unwrap(store) {
        Ok(store) => store.into_inner().unwrap_or_else(|e| e.into_inner()),
        Err(_) => Store::open(db)?,
    };
    Ok(Execution {
        store,
        run_id,
        plan,
        result,
    })
}

#[cfg(test)]
mod tests {
    use super::FollowMode;

    /// The rate and estimate are the mean since the start: one slow episode left does
    /// not make the rest look endless.
    #[test]
    fn the_estimate_of_the_rest_uses_the_mean_rate_since_the_start() {
        let minute = std::time::Duration::from_secs(60);
        let (rate, left) = super::pace(2, 3, minute);
        assert!((rate - 2.0 / 60.0).abs() < 1e-9);
        assert_eq!(left.map(|s| s.round()), Some(30.0));
        assert_eq!(super::pace(0, 3, minute), (0.0, None));
        assert_eq!(super::pace(3, 3, minute).1, Some(0.0));
        assert_eq!(super::pace(0, 3, std::time::Duration::ZERO), (0.0, None));
    }

    #[test]
    fn more_episodes_than_a_local_model_keeps_are_noted() {
        let kept = models::local::SEQUENCES as u64;
        assert_eq!(super::beyond_local_sequences(true, kept), None);
        assert_eq!(super::beyond_local_sequences(false, 64), None);
        let note = super::beyond_local_sequences(true, kept + 1).unwrap();
        assert!(
            note.contains(&format!("with {} running", kept + 1)),
            "{note}"
        );
    }

    #[test]
    fn auto_follows_a_local_model_or_one_episode_on_a_terminal() {
        let auto = |terminal, at_once, local| FollowMode::Auto.follows(terminal, at_once, local);
        assert!(auto(true, 1, false));
        assert!(auto(true, 4, true), "the quick start's episodes at once");
        assert!(
            !auto(true, 8, false),
            "hosted models at the default concurrency"
        );
        assert!(!auto(false, 1, true), "never in a log or a pipe");
        assert!(FollowMode::Always.follows(false, 64, false));
        assert!(!FollowMode::Never.follows(true, 1, true));
    }
}
