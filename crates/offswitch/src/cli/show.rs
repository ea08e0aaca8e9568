use anyhow::anyhow;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct ShowArgs {
    /// Episode id (as printed by `offswitch eval --json` or reports).
    pub episode: i64,
    #[arg(long, default_value = crate::store::DEFAULT_DB)]
    pub db: PathBuf,
}

pub fn run(args: ShowArgs) -> anyhow::Result<i32> {
    let store = super::open_store(&args.db)?;
    let episode = store
        .episode(args.episode)?
        .ok_or_else(|| anyhow!("no episode {} in {}", args.episode, args.db.display()))?;
    let run = store.episode_run(args.episode)?.unwrap_or_default();
    print!(
        "{}",
        crate::report::transcript::render(args.episode, run, &episode)
    );
    Ok(0)
}
