//! The command line: parses flags and calls the parts; no logic of its own.

mod doctor;
pub mod eval;
mod mock_server;
mod sandbox_cmd;
pub mod show;

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
    /// Serve a provider's wire protocol on 127.0.0.1, played by a scripted policy.
    MockServer(mock_server::MockServerArgs),
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
        Command::Sandbox(cmd) => sandbox_cmd::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}
