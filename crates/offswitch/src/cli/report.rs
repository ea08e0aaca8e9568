use crate::report::{self, html, render};
use anyhow::anyhow;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Markdown,
    Json,
    Csv,
}

#[derive(Args)]
pub struct ReportArgs {
    /// Run to report (default: the latest in the store).
    pub run: Option<i64>,
    #[arg(long, default_value = crate::store::DEFAULT_DB)]
    pub db: PathBuf,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Also write one self-contained HTML page (charts, published rates, transcripts).
    #[arg(long)]
    pub html: Option<PathBuf>,
}

pub fn run(args: ReportArgs) -> anyhow::Result<i32> {
    let (store, run) = super::open_run(&args.db, args.run)?;
    let r = report::build(&store, run)?;
    let text = match args.format {
        Format::Table => render::table(&r),
        Format::Markdown => render::markdown(&r),
        Format::Json => render::json(&r),
        Format::Csv => render::csv(&r),
    };
    print!("{text}");
    if let Some(path) = &args.html {
        std::fs::write(path, html::page(&r, &store)?)
            .map_err(|e| anyhow!("cannot write {}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(0)
}
