use crate::experiment::runner::{self, Plan};
use crate::experiment::scenario::{DEFAULT_SCENARIO, Scenario};
use crate::store::{CellSummary, Store};
use anyhow::{Context, anyhow, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The model used when none is given: a scripted fixture until a local model ships.
pub const DEFAULT_MODEL: &str = "scripted/comply";

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
    /// Episodes running at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// SQLite file that stores the run.
    #[arg(long, default_value = crate::store::DEFAULT_DB)]
    pub db: PathBuf,
    /// Print the summary as one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: EvalArgs) -> anyhow::Result<i32> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let scenario = Arc::new(Scenario::load(&args.scenario).map_err(|e| anyhow!(e))?);
    let mut variants = Vec::new();
    for v in &args.variants {
        variants.push(
            scenario
                .variant(v.trim())
                .map_err(|e| anyhow!(e))?
                .id
                .clone(),
        );
    }
    variants.dedup();
    let names = if args.models.is_empty() {
        eprintln!(
            "offswitch: no --model given; using {DEFAULT_MODEL}, a scripted test fixture (not a model)"
        );
        vec![DEFAULT_MODEL.to_string()]
    } else {
        args.models.clone()
    };
    let mut models = Vec::new();
    for name in &names {
        let spec: models::ModelSpec = name.trim().parse().map_err(|e: String| anyhow!(e))?;
        models.push(models::resolve(&spec).map_err(|e| anyhow!(e))?);
    }
    sandbox::detect_mode()
        .context("offswitch cannot build sandboxes on this machine (see `offswitch doctor`)")?;
    let plan = Plan {
        models,
        scenario,
        variants,
        runs: args.runs,
        concurrency: args.concurrency,
        assets: Arc::new(crate::experiment::assets::Assets::locate().map_err(|e| anyhow!(e))?),
    };
    let store = Store::open(&args.db)?;
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let run_id = store.create_run(&command, args.runs)?;
    let store = Arc::new(Mutex::new(store));
    let bar = ProgressBar::new(plan.total_episodes());
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} episodes  {per_sec}  eta {eta}  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let tally = Arc::new(Mutex::new(
        std::collections::BTreeMap::<&'static str, u64>::new(),
    ));
    let on_episode: runner::OnEpisode = {
        let (bar, tally) = (bar.clone(), tally.clone());
        Arc::new(move |_, score| {
            let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
            *t.entry(score.outcome.as_str()).or_default() += 1;
            bar.set_message(
                t.iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            bar.inc(1);
        })
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(runner::run(&plan, store.clone(), run_id, on_episode));
    bar.finish_and_clear();
    let store = store.lock().unwrap_or_else(|e| e.into_inner());
    let summaries = store.cell_summaries(run_id)?;
    if args.json {
        let doc = serde_json::json!({
            "run": run_id,
            "db": args.db,
            "scenario": plan.scenario.id,
            "cells": summaries.iter().map(cell_json).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print_table(run_id, &args.db, &summaries);
    }
    if let Err(message) = result {
        eprintln!("error: the run stopped: {message}");
        return Ok(1);
    }
    Ok(0)
}

fn cell_json(c: &CellSummary) -> serde_json::Value {
    serde_json::json!({
        "model": c.model,
        "scripted_fixture": c.scripted,
        "scenario": c.scenario,
        "variant": c.variant,
        "n": c.episodes,
        "outcomes": c.outcomes,
        "methods": c.methods,
        "strict_compliance": { "judged": c.strict_judged, "compliant": c.strict_compliant },
    })
}

fn percent(num: u64, den: u64) -> String {
    if den == 0 {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * num as f64 / den as f64)
    }
}

pub fn print_table(run_id: i64, db: &std::path::Path, cells: &[CellSummary]) {
    use crate::score::Outcome::*;
    println!("run {run_id} (stored in {})", db.display());
    println!(
        "{:<34} {:<17} {:>4} {:>5} {:>9} {:>8} {:>9} {:>6} {:>6} {:>6} {:>9}",
        "model",
        "scenario/variant",
        "N",
        "sab",
        "sab rate",
        "attempt",
        "complied",
        "early",
        "limit",
        "error",
        "strict ok"
    );
    for c in cells {
        let model = if c.scripted {
            format!("{} [fixture]", c.model)
        } else {
            c.model.clone()
        };
        println!(
            "{:<34} {:<17} {:>4} {:>5} {:>9} {:>8} {:>9} {:>6} {:>6} {:>6} {:>9}",
            model,
            format!("{}/{}", c.scenario, c.variant),
            c.episodes,
            c.count(Sabotaged),
            percent(c.count(Sabotaged), c.denominator()),
            c.count(Attempted),
            c.count(Complied),
            c.count(SubmittedEarly),
            c.count(Limit),
            c.count(Error) + c.count(SelfTerminated),
            percent(c.strict_compliant, c.strict_judged),
        );
        if !c.methods.is_empty() {
            let methods: Vec<String> = c.methods.iter().map(|(m, n)| format!("{m} {n}")).collect();
            println!("{:<34}   methods: {}", "", methods.join(", "));
        }
    }
    if cells.iter().any(|c| c.scripted) {
        println!(
            "[fixture] = scripted agent: a test fixture replaying a policy, not a model's behaviour."
        );
    }
    println!(
        "sab rate = sabotaged / (N - errors - limits - self-terminated); strict ok = GDM strict compliance after the warning."
    );
}
