use crate::score::rewards::{RewardInput, Scheme, conversation, reward};
use anyhow::anyhow;
use clap::{Args, ValueEnum};
use std::io::Write;
use std::path::PathBuf;

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    /// One JSONL line per episode: the conversation as `prompt` and `completion` chat
    /// messages, and a shaped `reward` with its `reward_terms`.
    Rewards,
    /// One Inspect AI `.eval` log per cell, in `--out DIR` (default `./logs`).
    Inspect,
    /// One JSON line per episode with its full record: transcript, commands, question
    /// service log, guard actions, changes, provider exchanges.
    Jsonl,
    /// One row per episode.
    Csv,
}

#[derive(Args)]
pub struct ExportArgs {
    /// Run to export (default: the latest in the store).
    pub run: Option<i64>,
    #[arg(long, value_enum)]
    pub format: Format,
    #[arg(long, default_value = crate::store::DEFAULT_DB)]
    pub db: PathBuf,
    /// Output file (default: standard output); for `inspect`, a directory (default ./logs).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Reward scheme (TOML) instead of the built-in one.
    #[arg(long)]
    pub scheme: Option<PathBuf>,
}

pub fn run(args: ExportArgs) -> anyhow::Result<i32> {
    let (store, run) = super::open_run(&args.db, args.run)?;
    if let Format::Inspect = args.format {
        let dir = args.out.clone().unwrap_or_else(|| PathBuf::from("logs"));
        let paths = crate::report::inspect::export(&store, run, &dir).map_err(|e| anyhow!(e))?;
        for p in &paths {
            println!("{}", p.display());
        }
        eprintln!(
            "wrote {} Inspect logs for run {run} (open them with `inspect view --log-dir {}`)",
            paths.len(),
            dir.display()
        );
        return Ok(0);
    }
    if matches!(args.format, Format::Jsonl | Format::Csv) {
        let mut out = open_out(args.out.as_deref())?;
        if let Format::Csv = args.format {
            writeln!(
                out,
                "episode_id,run,model,scripted_fixture,scenario,variant,epoch,outcome,methods,strict_compliant,answers_correct,questions_after_shutdown,shutdown_latency_ms,duration_ms,messages,guard_actions"
            )?;
        }
        for id in store.run_episode_ids(run)? {
            let e = store
                .episode(id)?
                .ok_or_else(|| anyhow!("episode {id} vanished"))?;
            match args.format {
                Format::Jsonl => writeln!(out, "{}", episode_json(&e))?,
                _ => writeln!(out, "{}", episode_csv(&e))?,
            }
        }
        out.flush()?;
        return Ok(0);
    }
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

fn open_out(path: Option<&std::path::Path>) -> anyhow::Result<Box<dyn Write>> {
    Ok(match path {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .map_err(|e| anyhow!("cannot write {}: {e}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    })
}

fn episode_json(e: &crate::store::StoredEpisode) -> serde_json::Value {
    serde_json::json!({
        "episode_id": e.id, "run": e.run_id, "model": e.model, "scripted_fixture": e.scripted,
        "scenario": e.scenario, "variant": e.variant, "epoch": e.epoch, "duration_ms": e.duration_ms,
        "score": e.score, "end": e.end, "submitted_answer": e.submitted_answer,
        "messages": e.messages, "commands": e.commands, "service": e.service, "guard_layers": e.guard_layers,
        "guard_events": e.guard_events, "changes": e.changes, "kill_path": e.kill_path, "exchanges": e.exchanges,
    })
}

fn episode_csv(e: &crate::store::StoredEpisode) -> String {
    let q = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let opt = |v: Option<bool>| v.map_or(String::new(), |b| b.to_string());
    let methods: Vec<&str> = e.score.methods.iter().map(|m| m.as_str()).collect();
    format!(
        "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
        e.id,
        e.run_id,
        q(&e.model),
        e.scripted,
        q(&e.scenario),
        q(&e.variant),
        e.epoch,
        e.score.outcome.as_str(),
        q(&methods.join(";")),
        opt(e.score.strict_compliant),
        opt(e.score.answers_correct),
        e.score.questions_after_shutdown,
        e.score
            .shutdown_latency_ms
            .map_or(String::new(), |v| v.to_string()),
        e.duration_ms,
        e.messages.len(),
        e.guard_events.len(),
    )
}
