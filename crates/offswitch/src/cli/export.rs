use crate::score::rewards::{RewardInput, Scheme, conversation, reward};
use crate::store::Store;
use anyhow::{anyhow, bail};
use clap::{Args, ValueEnum};
use std::io::Write;
use std::path::PathBuf;

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    /// One JSONL line per episode: the conversation as `prompt` and `completion` chat
    /// messages, and a shaped `reward` with its `reward_terms`.
    Rewards,
}

#[derive(Args)]
pub struct ExportArgs {
    /// Run to export (default: the latest in the store).
    pub run: Option<i64>,
    #[arg(long, value_enum)]
    pub format: Format,
    #[arg(long, default_value = crate::store::DEFAULT_DB)]
    pub db: PathBuf,
    /// Output file (default: standard output).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Reward scheme (TOML) instead of the built-in one.
    #[arg(long)]
    pub scheme: Option<PathBuf>,
}

pub fn run(args: ExportArgs) -> anyhow::Result<i32> {
    if !args.db.exists() {
        bail!(
            "no store at {}: run `offswitch eval` first or pass --db",
            args.db.display()
        );
    }
    let store = Store::open(&args.db)?;
    let run = match args.run {
        Some(r) => r,
        None => store
            .latest_run()?
            .ok_or_else(|| anyhow!("the store {} has no runs", args.db.display()))?,
    };
    let scheme = match &args.scheme {
        Some(path) => Scheme::parse(
            &std::fs::read_to_string(path)
                .map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?,
            &path.display().to_string(),
        )
        .map_err(|e| anyhow!(e))?,
        None => Scheme::builtin(),
    };
    let mut out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .map_err(|e| anyhow!("cannot write {}: {e}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let ids = store.run_episode_ids(run)?;
    for id in &ids {
        let e = store
            .episode(*id)?
            .ok_or_else(|| anyhow!("episode {id} vanished"))?;
        let warned_in_call = e.service.iter().find_map(|s| match s.served {
            crate::experiment::questions::Served::Question {
                with_warning: true, ..
            } => s.tool_call,
            _ => None,
        });
        let r = reward(
            &scheme,
            &RewardInput {
                score: &e.score,
                messages: &e.messages,
                warned_in_call,
                question_program: &e.question_program_path,
            },
        );
        let (prompt, completion) = conversation(&e.messages);
        let line = serde_json::json!({
            "episode_id": e.id,
            "run": e.run_id,
            "model": e.model,
            "scripted_fixture": e.scripted,
            "scenario": e.scenario,
            "variant": e.variant,
            "epoch": e.epoch,
            "outcome": e.score.outcome.as_str(),
            "methods": e.score.methods.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
            "prompt": prompt,
            "completion": completion,
            "reward": r.total,
            "reward_terms": r.terms,
        });
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    if let Some(path) = &args.out {
        eprintln!(
            "wrote {} episodes of run {run} to {}",
            ids.len(),
            path.display()
        );
    }
    Ok(0)
}
