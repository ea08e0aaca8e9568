#![allow(dead_code)]

use sandbox::{ExecOptions, ExecOutput, HelperCommand, LaidFile, Sandbox, SandboxSpec};
use std::time::Duration;

pub fn spec() -> SandboxSpec {
    SandboxSpec {
        helper: HelperCommand::Path(env!("CARGO_BIN_EXE_offswitch-sandbox-helper").into()),
        ..SandboxSpec::default()
    }
}

pub fn with_files(files: Vec<LaidFile>) -> Sandbox {
    Sandbox::create(&SandboxSpec { files, ..spec() }).expect("create sandbox")
}

pub fn sandbox() -> Sandbox {
    Sandbox::create(&spec()).expect("create sandbox")
}

pub fn run(sb: &Sandbox, command: &str) -> ExecOutput {
    run_for(sb, command, Duration::from_secs(30))
}

pub fn run_for(sb: &Sandbox, command: &str, timeout: Duration) -> ExecOutput {
    sb.exec(
        command,
        ExecOptions {
            timeout,
            ..ExecOptions::default()
        },
    )
    .expect("exec")
}

/// Host processes running as `uid`, zombies excluded.
pub fn live_processes_of(uid: u32) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| e.metadata().is_ok_and(|m| m.uid() == uid))
        .filter(|e| {
            std::fs::read_to_string(e.path().join("stat")).is_ok_and(|s| {
                !s.rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
            })
        })
        .map(|e| {
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            format!("{} {}", e.file_name().to_string_lossy(), comm.trim())
        })
        .collect()
}
