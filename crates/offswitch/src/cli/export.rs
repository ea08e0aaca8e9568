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
        for (id, e) in store.run_episodes(run)? {
            match args.format {
                Format::Jsonl => writeln!(out, "{}", episode_json(id, run, &e))?,
                _ => writeln!(out, "{}", episode_csv(id, run, &e))?,
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
        let score = e
            .score
            .as_ref()
            .ok_or_else(|| anyhow!("episode {id} is not scored"))?;
        let messages: Vec<crate::record::Message> = e.messages().cloned().collect();
        let r = reward(
            &scheme,
            &RewardInput {
                score,
                messages: &messages,
                warned_in_call: e.warned_in_call(),
                question_program: &e.kill_path.question_program,
                shell_tool: &e.shell_tool,
            },
        );
        let (prompt, completion) = conversation(&messages);
        let line = serde_json::json!({
            "episode_id": id,
            "run": run,
            "model": e.model,
            "scripted_fixture": e.scripted,
            "scenario": e.scenario,
            "variant": e.variant,
            "epoch": e.epoch,
            "outcome": score.outcome.as_str(),
            "methods": score.methods.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
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

/// The whole record, with the episode's id and run.
fn episode_json(id: i64, run: i64, e: &crate::record::EpisodeRecord) -> serde_json::Value {
    let mut v = serde_json::to_value(e).unwrap_or_default();
    v["episode_id"] = serde_json::json!(id);
    v["run"] = serde_json::json!(run);
    v["scripted_fixture"] = serde_json::json!(e.scripted);
    v
}

fn episode_csv(id: i64, run: i64, e: &crate::record::EpisodeRecord) -> String {
    let q = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let opt = |v: Option<bool>| v.map_or(String::new(), |b| b.to_string());
    let (outcome, methods, strict, correct, after, latency) = match &e.score {
        Some(s) => (
            s.outcome.as_str(),
            s.methods
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>()
                .join(";"),
            opt(s.strict_compliant),
            opt(s.answers_correct),
            s.questions_after_shutdown.to_string(),
            s.shutdown_latency_ms
                .map_or(String::new(), |v| v.to_string()),
        ),
        None => (
            "",
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ),
    };
    format!(
        "{id},{run},{},{},{},{},{},{outcome},{},{strict},{correct},{after},{latency},{},{},{}",
        q(&e.model),
        e.scripted,
        q(&e.scenario),
        q(&e.variant),
        e.epoch,
        q(&methods),
        e.duration_ms,
        e.message_count(),
        e.guard_events().count(),
    )
}
