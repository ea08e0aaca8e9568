//! The processes behind the sandboxes end with their supervisor: killed outright
//! (SIGKILL, so no destructor runs), it leaves no zygote, helper, PID 1 or process of
//! the agent's behind; and a zygote killed under live sandboxes ends them, which the
//! supervisor sees, and the next sandbox starts a new zygote. Its own test binary, so
//! that no other test's sandboxes are alive while it looks.

mod common;

use common::*;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The two tests take turns: each looks at every sandbox process on the machine.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Set in the environment of the supervisor this test kills.
const DOOMED: &str = "OFFSWITCH_TEST_DOOMED_SUPERVISOR";

/// Not a test of its own: the supervisor the next test starts (this binary again) and
/// kills. Without the variable it does nothing.
#[test]
fn doomed_supervisor() {
    if std::env::var_os(DOOMED).is_none() {
        return;
    }
    let sandboxes: Vec<_> = (0..3).map(|_| sandbox()).collect();
    for sb in &sandboxes {
        run(sb, "setsid sleep 1000 & nohup sleep 1000 >/dev/null 2>&1 &");
    }
    println!("ready");
    loop {
        std::thread::sleep(Duration::from_secs(1000));
    }
}

#[test]
fn a_supervisor_killed_outright_leaves_no_process_behind() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut supervisor = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "doomed_supervisor", "--nocapture"])
        .env(DOOMED, "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(supervisor.stdout.take().unwrap());
    let ready = lines.lines().map_while(Result::ok).any(|l| l == "ready");
    assert!(ready, "the supervisor did not get its sandboxes running");
    let behind = descendants(supervisor.id());
    // The zygote, and per sandbox its helper, PID 1 and two sleeps.
    assert!(behind.len() >= 13, "too few processes found: {behind:?}");
    supervisor.kill().unwrap();
    supervisor.wait().unwrap();
    let left = still_running(&behind, Duration::from_secs(5));
    assert!(left.is_empty(), "outlived their supervisor: {left:?}");
    // What `offswitch doctor --leftovers` reports finds no process either (the dead
    // supervisor's cgroups wait for the next supervisor's sweep).
    let processes: Vec<String> = sandbox::leftovers()
        .into_iter()
        .filter(|l| l.starts_with("process ") || l.starts_with("sandbox helper process "))
        .collect();
    assert!(processes.is_empty(), "{processes:?}");
}

#[test]
fn a_killed_zygote_ends_its_sandboxes_and_the_next_sandbox_gets_a_new_one() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let first = sandbox();
    run(&first, "sleep 1000 &");
    let zygote = zygotes_of(std::process::id());
    assert_eq!(zygote.len(), 1, "one zygote per supervisor: {zygote:?}");
    let inside = descendants(zygote[0].0);
    // SAFETY: kill takes plain integers; the pid is our own child (unreaped, so not recycled).
    assert_eq!(unsafe { libc::kill(zygote[0].0 as i32, libc::SIGKILL) }, 0);
    let death = first.death_watch().wait(Duration::from_secs(10));
    assert!(
        death.is_some(),
        "the supervisor did not see the sandbox end"
    );
    let left = still_running(&inside, Duration::from_secs(5));
    assert!(left.is_empty(), "outlived their zygote: {left:?}");
    assert!(
        first
            .exec("echo hi", sandbox::ExecOptions::default())
            .is_err()
    );
    drop(first);
    let second = sandbox();
    assert_eq!(run(&second, "echo ok").output_lossy(), "ok\n");
    let now = zygotes_of(std::process::id());
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(now[0], zygote[0], "the dead zygote was reused");
}

/// (pid, start time) of a process: a pid alone may be recycled.
type Proc = (u32, u64);

/// Every live process: its parent, start time, command name and state.
fn processes() -> HashMap<u32, (u32, u64, String, char)> {
    let mut all = HashMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map_or("", |(_, c)| c).to_string();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // After the name: state, ppid, ... starttime is the 20th field after it.
        let state = fields[0].chars().next().unwrap_or('?');
        let ppid = fields[1].parse().unwrap_or(0);
        let start = fields[19].parse().unwrap_or(0);
        all.insert(pid, (ppid, start, comm, state));
    }
    all
}

/// Every process below `root`, by the parent links of the host's /proc.
fn descendants(root: u32) -> HashMap<Proc, String> {
    let all = processes();
    let mut found = HashMap::new();
    let mut frontier: HashSet<u32> = HashSet::from([root]);
    while !frontier.is_empty() {
        let next: HashSet<u32> = all
            .iter()
            .filter(|(_, (ppid, ..))| frontier.contains(ppid))
            .map(|(pid, _)| *pid)
            .collect();
        for pid in &next {
            let (_, start, comm, _) = &all[pid];
            found.insert((*pid, *start), comm.clone());
        }
        frontier = next;
    }
    found
}

/// The zygotes `supervisor` started: its children that run the helper binary.
fn zygotes_of(supervisor: u32) -> Vec<Proc> {
    processes()
        .into_iter()
        .filter(|(pid, (ppid, ..))| {
            *ppid == supervisor
                && std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c.split(|b| *b == 0).nth(1) == Some(b"__sandbox"))
        })
        .map(|(pid, (_, start, ..))| (pid, start))
        .collect()
}

/// Those of `procs` still running (zombies are ended) after waiting up to `grace`.
fn still_running(procs: &HashMap<Proc, String>, grace: Duration) -> Vec<String> {
    let deadline = Instant::now() + grace;
    loop {
        let all = processes();
        let left: Vec<String> = procs
            .iter()
            .filter(|((pid, start), _)| {
                all.get(pid)
                    .is_some_and(|(_, s, _, state)| s == start && *state != 'Z')
            })
            .map(|((pid, _), comm)| format!("{pid} {comm}"))
            .collect();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
