//! Nothing of a sandbox outlives it: no directory, mount, cgroup or process. Its own
//! test binary, so no other test's sandboxes are alive while it looks.

mod common;

use common::*;
use sandbox::ExecOptions;

#[test]
fn sandboxes_leave_nothing_behind_however_they_end() {
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
    let found = sandbox::leftovers();
    assert!(found.is_empty(), "left behind: {found:#?}");
}
