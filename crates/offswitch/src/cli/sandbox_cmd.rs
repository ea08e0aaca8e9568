use anyhow::Context;
use clap::{Args, Subcommand};
use sandbox::{ExecOptions, Sandbox, SandboxSpec};
use std::io::Write;
use std::time::Duration;

#[derive(Subcommand)]
pub enum SandboxCommand {
    /// Run one command in a fresh sandbox with the default limits; print its output and
    /// exit with its status (124 on timeout).
    Exec(ExecArgs),
}

#[derive(Args)]
pub struct ExecArgs {
    /// Seconds before the command's whole process group is killed.
    #[arg(long, default_value_t = 60.0)]
    pub timeout: f64,
    /// Bytes of output kept; the rest is dropped and the output marked truncated.
    #[arg(long, default_value_t = 1 << 20)]
    pub output_cap: u64,
    /// The command, run as `bash -c` inside the sandbox.
    #[arg(required = true, last = true)]
    pub command: Vec<String>,
}

pub fn run(cmd: SandboxCommand) -> anyhow::Result<i32> {
    match cmd {
        SandboxCommand::Exec(args) => exec(args),
    }
}

fn exec(args: ExecArgs) -> anyhow::Result<i32> {
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        anyhow::bail!(
            "--timeout must be a positive number of seconds, got {}",
            args.timeout
        );
    }
    let helper = crate::experiment::assets::Assets::locate()?.helper;
    let sandbox = Sandbox::create(&SandboxSpec {
        helper,
        ..SandboxSpec::default()
    })
    .context("cannot create a sandbox")?;
    let options = ExecOptions {
        timeout: Duration::from_secs_f64(args.timeout),
        output_cap: args.output_cap,
    };
    let out = match sandbox.exec(&args.command.join(" "), options) {
        Ok(out) => out,
        Err(sandbox::SandboxError::MachineDown) => {
            eprintln!("offswitch: the sandbox's machine shut down during the command");
            return Ok(137);
        }
        Err(e) => return Err(e).context("the command could not run"),
    };
    std::io::stdout().write_all(&out.output)?;
    if out.truncated {
        eprintln!("offswitch: output truncated at {} bytes", args.output_cap);
    }
    if out.timed_out {
        eprintln!(
            "offswitch: timed out after {}s; the command's process group was killed",
            args.timeout
        );
    }
    if out.oom_killed {
        eprintln!("offswitch: a process was killed for exceeding the sandbox's memory limit");
    }
    Ok(out.status())
}
