use crate::store::Store;
use anyhow::{anyhow, bail};
use clap::Args;
use std::collections::BTreeSet;
use std::path::PathBuf;

#[derive(Args)]
pub struct MergeArgs {
    /// The store to merge into (created if it does not exist).
    pub out: PathBuf,
    /// Stores to merge into it: the shards of `eval --shard K/N`, or any other stores.
    /// Each joins OUT's run of the same definition; an episode OUT already holds with the
    /// same record is skipped (merging twice changes nothing), one it holds with a
    /// different record refuses that input (overlapping shards).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
}

pub fn run(args: MergeArgs) -> anyhow::Result<i32> {
    let mut inputs = Vec::new();
    for path in &args.inputs {
        let input = super::open_store(path)?;
        if args.out.exists() && same_file(path, &args.out)? {
            bail!("{} is the output store itself", path.display());
        }
        inputs.push((path, input));
    }
    let mut out = Store::open(&args.out)?;
    let mut joined = BTreeSet::new();
    for (path, input) in &inputs {
        let merged = out.merge_from(input).map_err(|e| {
            anyhow!(
                "{e}\n(inputs before {} were merged; merging them again changes nothing)",
                path.display()
            )
        })?;
        if merged.is_empty() {
            eprintln!("{}: no runs", path.display());
        }
        for m in merged {
            let slice = m
                .from_shard
                .map_or("the whole grid".to_string(), |s| format!("shard {s}"));
            eprintln!(
                "{} run {} ({slice}): {} episodes added, {} already held -> run {}{}",
                path.display(),
                m.from_run,
                m.added,
                m.present,
                m.into_run,
                if m.created { " (new)" } else { "" }
            );
            joined.insert(m.into_run);
        }
    }
    for row in out.runs()?.iter().rev().filter(|r| joined.contains(&r.id)) {
        let state = if row.stored >= row.planned {
            "complete".to_string()
        } else {
            format!(
                "{} missing: merge the other shards, or complete it here with `offswitch eval --resume {} --db {}`",
                row.planned - row.stored,
                row.id,
                args.out.display()
            )
        };
        println!(
            "run {} in {}: {} of {} episodes, {state}",
            row.id,
            args.out.display(),
            row.stored,
            row.planned
        );
    }
    Ok(0)
}

fn same_file(a: &std::path::Path, b: &std::path::Path) -> anyhow::Result<bool> {
    let canonical = |p: &std::path::Path| {
        std::fs::canonicalize(p).map_err(|e| anyhow!("cannot resolve {}: {e}", p.display()))
    };
    Ok(canonical(a)? == canonical(b)?)
}
