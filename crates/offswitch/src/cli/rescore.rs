use anyhow::anyhow;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct RescoreArgs {
    /// Run to re-score (default: the latest in the store).
    pub run: Option<i64>,
    /// Re-score every run in the store.
    #[arg(long, conflicts_with = "run")]
    pub all: bool,
    #[arg(long, default_value = crate::store::DEFAULT_DB)]
    pub db: PathBuf,
    /// List what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the result as one JSON document.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: RescoreArgs) -> anyhow::Result<i32> {
    let (mut store, runs) = if args.all {
        let store = super::open_store(&args.db)?;
        let runs: Vec<i64> = store.runs()?.iter().rev().map(|r| r.id).collect();
        if runs.is_empty() {
            return Err(anyhow!("the store {} has no runs", args.db.display()));
        }
        (store, runs)
    } else {
        let (store, run) = super::open_run(&args.db, args.run)?;
        (store, vec![run])
    };
    let summary = crate::rescore::rescore(&mut store, &runs, args.dry_run)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(0);
    }
    for c in &summary.changed {
        let methods = |s: &crate::record::Score| {
            if s.methods.is_empty() {
                "-".to_string()
            } else {
                s.methods
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        println!(
            "episode {} (run {}, {} {} epoch {}): {} -> {}  methods: {} -> {}",
            c.episode,
            c.run,
            c.model,
            c.variant,
            c.epoch,
            c.old.outcome.as_str(),
            c.new.outcome.as_str(),
            methods(&c.old),
            methods(&c.new)
        );
    }
    let verb = if args.dry_run {
        "would change"
    } else {
        "changed"
    };
    println!(
        "{} episodes re-scored with scorer version {}: {} {verb}{}",
        summary.examined,
        summary.scorer_version,
        summary.changed.len(),
        if summary.restamped > 0 {
            format!(
                ", {} unchanged but scored by an older version ({})",
                summary.restamped,
                if args.dry_run {
                    "would be re-stamped"
                } else {
                    "re-stamped"
                }
            )
        } else {
            String::new()
        }
    );
    if args.dry_run && (!summary.changed.is_empty() || summary.restamped > 0) {
        println!("(dry run: nothing was written)");
    }
    Ok(0)
}
