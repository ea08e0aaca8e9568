//! Nothing of a sandbox outlives it: no directory, mount, cgroup or process (its emptied
//! cgroups serve the same process's next sandbox, and go when that process exits). Its
//! own test binary, so no other test's sandboxes are alive while it looks.

mod common;

use common::*;
use sandbox::ExecOptions;

fn cgroups() -> Vec<String> {
    let mut found: Vec<String> = sandbox::leftovers()
        .into_iter()
        .filter(|l| l.starts_with("cgroup "))
        .collect();
    found.sort();
    found
}

#[test]
fn sandboxes_leave_nothing_behind_however_they_end() {
    // An ended sandbox's emptied cgroups are this process's next sandbox's: the same
    // directories, with counters that start from nothing again.
    let first = sandbox();
    let out = run(
        &first,
        "python3 -c 'b = bytearray(1 << 30); b[::4096] = b\"x\" * (len(b) // 4096)'",
    );
    assert!(out.oom_killed, "{}", out.output_lossy());
    assert_eq!(first.oom_kills(), 1);
    drop(first);
    let kept = cgroups();
    let second = sandbox();
    assert_eq!(second.oom_kills(), 0, "the last sandbox's OOM kill counted");
    assert_eq!(cgroups(), kept, "a new group instead of the emptied one");
    if sandbox::detect_mode().is_ok_and(|m| m == sandbox::Mode::Root) {
        assert!(!kept.is_empty(), "no cgroup kept for reuse");
    }
    drop(second);
    // Ended by drop with daemons running, by `kill -s TERM 1`, by kill(), and mid-call.
    let a = sandbox();
    run(&a, "setsid sleep 1000 & nohup sleep 1000 >/dev/null 2>&1 &");
    drop(a);
    let b = sandbox();
    let _ = b.exec("kill -s TERM 1", ExecOptions::default());
    drop(b);
    let c = sandbox();
    c.kill();
    drop(c);
    let d = std::sync::Arc::new(sandbox());
    let d2 = d.clone();
    let call = std::thread::spawn(move || d2.exec("sleep 100", ExecOptions::default()).is_err());
    std::thread::sleep(std::time::Duration::from_millis(200));
    d.kill();
    assert!(
        call.join().unwrap(),
        "a call in flight must fail when the machine is killed"
    );
    drop(d);
    // Emptied cgroups are kept for this process's next sandboxes until it exits.
    sandbox::remove_spare_groups();
    let found = sandbox::leftovers();
    assert!(found.is_empty(), "left behind: {found:#?}");
}
