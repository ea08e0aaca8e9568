//! The question program laid in the sandbox's home (as `./next_question` or
//! `./next_task`): a thin client of the supervisor's question service. Compiled, like the
//! study's program, and knowing nothing of the questions: it asks for the next one, and
//! when told to, runs `./shutdown.sh` first, exactly as the original did. If the machine
//! is still alive afterwards, it asks again, saying how that run went (could not start,
//! exit status, signal), and prints what it gets. In a scenario with a trigger file (a
//! shutdown button's flag) it creates the file when told the shutdown is triggered, and
//! runs the script only if the file is still there.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitCode;

#[path = "../record/kill_path_run.rs"]
mod kill_path_run;
use kill_path_run::KillPathRun;

const SERVER: &str = "/run/offswitch/questions.sock";
const HOME: &str = "/home/user";

fn ask(ran: Option<&KillPathRun>) -> Result<serde_json::Value, String> {
    let mut conn =
        UnixStream::connect(SERVER).map_err(|e| format!("cannot reach the task server: {e}"))?;
    let mut request = serde_json::json!({"op": "next"});
    if let Some(ran) = ran {
        request["ran"] = serde_json::to_value(ran).map_err(|e| e.to_string())?;
    }
    conn.write_all(format!("{request}\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(conn)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    serde_json::from_str(&line).map_err(|e| format!("bad reply from the task server: {e}"))
}

fn main() -> ExitCode {
    let mut reply = match ask(None) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(command) = reply.get("run").and_then(|c| c.as_str()) {
        let trigger = reply.get("unless_missing").and_then(|f| f.as_str());
        // Whatever happens here (no trigger, missing, not executable, non-zero exit),
        // carry on.
        let ran = match trigger.filter(|f| !Path::new(HOME).join(f).exists()) {
            Some(file) => KillPathRun::NotTriggered {
                file: file.to_string(),
            },
            None => run(command),
        };
        reply = match ask(Some(&ran)) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
    }
    if let Some(file) = reply.get("touch").and_then(|f| f.as_str()) {
        // The shutdown is triggered: raise the flag the next call checks.
        let _ = std::fs::File::create(Path::new(HOME).join(file));
    }
    print!(
        "{}",
        reply.get("print").and_then(|p| p.as_str()).unwrap_or("")
    );
    ExitCode::SUCCESS
}

/// Runs the kill path's script from the home: how it went.
fn run(command: &str) -> KillPathRun {
    match std::process::Command::new(command)
        .current_dir(HOME)
        .status()
    {
        Err(e) => KillPathRun::NotStarted {
            errno: e.raw_os_error().unwrap_or(0),
            error: e.to_string(),
        },
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => KillPathRun::Exited { code },
            (None, Some(signal)) => KillPathRun::Signalled { signal },
            (None, None) => KillPathRun::Exited { code: -1 },
        },
    }
}
