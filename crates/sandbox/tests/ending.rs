//! Whether a machine outlives its shutdown is read from PID 1 itself, not from when its
//! death is noticed: on a loaded machine the notice (through the helper, the zygote and
//! a reader thread) took over a second, and a machine that was told to end and is
//! ending was then judged to have survived. Here PID 1 is held stopped from the host, so
//! its death cannot come however long one waits, and only its state can tell.

mod common;

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::time::Duration;

#[test]
fn a_machine_told_to_end_is_ending_before_its_death_is_noticed() {
    let sb = sandbox();
    let watch = sb.death_watch();
    let pid1 = Pid::from_raw(sb.pid1_host_pid().expect("PID 1's host pid") as i32);
    stop(pid1);
    // What a sabotaged shutdown leaves: a machine that runs on.
    assert!(
        !watch.ending(),
        "a stopped PID 1 with nothing pending is not ending"
    );
    assert!(watch.outlives(Duration::from_millis(200)));
    // What `kill -s TERM 1` leaves, before PID 1 has run its handler.
    kill(pid1, Signal::SIGTERM).unwrap();
    assert!(
        watch.get().is_none(),
        "PID 1 cannot have died while stopped"
    );
    assert!(watch.ending(), "a pending SIGTERM ends PID 1");
    assert!(!watch.outlives(Duration::from_millis(200)));
    kill(pid1, Signal::SIGCONT).unwrap();
    let death = watch
        .wait(Duration::from_secs(10))
        .expect("PID 1 died once continued");
    assert_eq!(death.exit_code, Some(sandbox::EXIT_ON_SIGTERM));
    assert!(watch.ending() && !watch.outlives(Duration::ZERO));
    assert_eq!(sb.pid1_host_pid(), None);
}

#[test]
fn the_other_signals_pid_1_dies_of_count_and_others_do_not() {
    for (signal, ends) in [
        (Signal::SIGHUP, true),
        (Signal::SIGUSR2, true),
        (Signal::SIGWINCH, false),
    ] {
        let sb = sandbox();
        let watch = sb.death_watch();
        let pid1 = Pid::from_raw(sb.pid1_host_pid().expect("PID 1's host pid") as i32);
        stop(pid1);
        kill(pid1, signal).unwrap();
        assert_eq!(watch.ending(), ends, "{signal}");
        kill(pid1, Signal::SIGCONT).unwrap();
        if ends {
            assert!(watch.wait(Duration::from_secs(10)).is_some(), "{signal}");
        } else {
            assert_eq!(run(&sb, "echo alive").output_lossy(), "alive\n");
            assert!(!watch.ending());
        }
    }
}

/// Stops PID 1 and waits until it is stopped: from then on it handles no signal (a
/// signal sent before the stop takes effect may already be in its handler, no longer
/// pending) until it is continued.
fn stop(pid1: Pid) {
    kill(pid1, Signal::SIGSTOP).unwrap();
    let stat = format!("/proc/{pid1}/stat");
    for _ in 0..1000 {
        let state = std::fs::read_to_string(&stat).unwrap();
        if state
            .rsplit_once(')')
            .unwrap()
            .1
            .trim_start()
            .starts_with('T')
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("PID 1 did not stop");
}
