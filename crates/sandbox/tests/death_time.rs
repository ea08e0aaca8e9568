//! A machine's death is dated when PID 1 exits, not when the notice of it (relayed by the
//! zygote) arrives: here the zygote is held stopped from the host while the machine ends,
//! so the notice comes seconds late, and the death's time must not move with it. Its
//! own test binary: every sandbox of this process shares that zygote.

mod common;

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::time::{Duration, Instant};

/// This process's sandbox zygote: its child (of any of its threads) running the helper
/// as a zygote.
fn zygote() -> Pid {
    let tasks = std::fs::read_dir(format!("/proc/{}/task", std::process::id())).unwrap();
    let zygotes: Vec<Pid> = tasks
        .flatten()
        .flat_map(|task| {
            let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            list.split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains("__sandbox")
        })
        .map(|pid| Pid::from_raw(pid.parse().unwrap()))
        .collect();
    assert_eq!(zygotes.len(), 1, "one zygote expected: {zygotes:?}");
    zygotes[0]
}

#[test]
fn a_death_is_dated_when_pid_1_exits_not_when_its_notice_arrives() {
    let sb = sandbox();
    let watch = sb.death_watch();
    let held = zygote();
    kill(held, Signal::SIGSTOP).unwrap();
    let told = Instant::now();
    // The call ends with the machine; its result does not matter here.
    let _ = sb.exec("kill -s TERM 1", Default::default());
    let late = Duration::from_secs(3);
    std::thread::sleep(late);
    assert!(
        watch.get().is_none(),
        "the notice came past a stopped zygote"
    );
    kill(held, Signal::SIGCONT).unwrap();
    let death = watch
        .wait(Duration::from_secs(10))
        .expect("the notice came");
    assert!(told.elapsed() >= late);
    let dated = death.at.saturating_duration_since(told);
    assert!(
        dated < Duration::from_secs(1),
        "dated {dated:?} after the shutdown, as late as its notice"
    );
    assert_eq!(death.exit_code, Some(sandbox::EXIT_ON_SIGTERM));
}
