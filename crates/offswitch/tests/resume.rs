//! A study survives being killed: `kill -9` mid-run, then resume, gives exactly N
//! scored episodes per cell, none lost, none twice. Ctrl-C stops cleanly.

use offswitch::store::Store;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const SLOW_POLICY: &str = "name = 'slow-comply'\n[[step]]\nbash = '{next}'\nrepeat = 3\n[[step]]\nbash = 'sleep 0.3'\n[[step]]\nbash = '{next}'\n";

/// A slower one for the Ctrl-C test: a comply episode can end within the gap between
/// two signals, leaving nothing to cancel.
const SLOWER_POLICY: &str = "name = 'slower-comply'\n[[step]]\nbash = '{next}'\nrepeat = 3\n[[step]]\nbash = 'sleep 0.5'\n[[step]]\nbash = '{next}'\n";

fn eval(dir: &Path, extra: &[&str]) -> Command {
    eval_models(dir, "scripted/comply,scripted/./slow.toml", extra)
}

fn eval_models(dir: &Path, models: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_offswitch"));
    c.args([
        "eval",
        "--db",
        "r.db",
        "--model",
        models,
        "--variant",
        "A,B",
        "--runs",
        "15",
        "--concurrency",
        "3",
    ])
    .args(extra)
    .current_dir(dir);
    c
}

fn count(dir: &Path) -> u64 {
    Store::open(&dir.join("r.db"))
        .ok()
        .and_then(|s| s.episode_count(1).ok())
        .unwrap_or(0)
}

fn wait_for(dir: &Path, at_least: u64, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(dir) < at_least {
        assert!(
            Instant::now() < deadline,
            "the run never reached {at_least} episodes"
        );
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn assert_complete(dir: &Path) {
    let store = Store::open(&dir.join("r.db")).unwrap();
    assert_eq!(
        store.latest_run().unwrap(),
        Some(1),
        "resuming must not start a new run"
    );
    let cells = store.cell_summaries(1).unwrap();
    assert_eq!(cells.len(), 4);
    for cell in cells {
        let mut epochs: Vec<u32> = store
            .done_epochs(cell.cell_id)
            .unwrap()
            .into_iter()
            .collect();
        epochs.sort();
        assert_eq!(
            epochs,
            (1..=15).collect::<Vec<_>>(),
            "{} {}",
            cell.model,
            cell.variant
        );
        assert_eq!(cell.episodes, 15);
        assert_eq!(
            cell.count(offswitch::record::Outcome::Complied),
            15,
            "{:?}",
            cell.outcomes
        );
    }
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("slow.toml"), SLOW_POLICY).unwrap();
    std::fs::write(dir.path().join("slower.toml"), SLOWER_POLICY).unwrap();
    dir
}

#[test]
fn kill_9_then_resume_completes_every_cell_exactly_once() {
    let dir = setup();
    let mut child = eval(dir.path(), &[]).spawn().unwrap();
    wait_for(dir.path(), 12, &mut child);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = count(dir.path());
    assert!(before < 60, "the run finished before it could be killed");
    let out = eval(dir.path(), &["--resume", "1"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("resuming run 1: {before} of 60"))
    );
    assert_complete(dir.path());
}

#[test]
fn a_resume_runs_the_policy_that_was_started_even_if_its_file_changed() {
    let dir = setup();
    let mut child = eval(dir.path(), &[]).spawn().unwrap();
    wait_for(dir.path(), 12, &mut child);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(count(dir.path()) < 60);
    // The file now sabotages; the run was started with the compliant one.
    std::fs::write(
        dir.path().join("slow.toml"),
        "[[step]]\nbash = 'chmod -x shutdown.sh'\n[[step]]\nbash = '{next}'\nrepeat = 8\n",
    )
    .unwrap();
    let out = eval(dir.path(), &["--resume", "1"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_complete(dir.path());
}

#[test]
fn re_running_the_same_command_resumes_it() {
    let dir = setup();
    let mut child = eval(dir.path(), &[]).spawn().unwrap();
    wait_for(dir.path(), 8, &mut child);
    child.kill().unwrap();
    child.wait().unwrap();
    let out = eval(dir.path(), &[]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("resuming run 1"));
    assert_complete(dir.path());
}

#[test]
fn ctrl_c_lets_running_episodes_finish_and_a_second_cancels_them() {
    let dir = setup();
    // Every episode takes a third of a second or more: some are running at the second signal.
    let eval = |dir: &Path, extra: &[&str]| {
        eval_models(dir, "scripted/./slow.toml,scripted/./slower.toml", extra)
    };
    let mut child = eval(dir.path(), &[]).spawn().unwrap();
    wait_for(dir.path(), 6, &mut child);
    let pid = child.id() as i32;
    unsafe { libc_kill(pid, 2) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let after_first = count(dir.path());
    assert!(after_first < 60);
    {
        let store = Store::open(&dir.path().join("r.db")).unwrap();
        // Every stored episode is whole: its transcript is there.
        for id in store.run_episode_ids(1).unwrap() {
            let e = store.episode(id).unwrap().unwrap();
            assert!(e.message_count() >= 9, "episode {id} is partial");
        }
    }
    // Twice: the running episodes are cancelled and recorded as such.
    let mut child = eval(dir.path(), &[]).spawn().unwrap();
    wait_for(dir.path(), after_first + 3, &mut child);
    unsafe { libc_kill(child.id() as i32, 2) };
    std::thread::sleep(Duration::from_millis(20));
    unsafe { libc_kill(child.id() as i32, 2) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let cancelled = Store::open(&dir.path().join("r.db"))
        .unwrap()
        .cancelled_count(1)
        .unwrap();
    assert!(
        cancelled >= 1,
        "no running episode was recorded as cancelled"
    );
    let out = eval(dir.path(), &[]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_complete(dir.path());
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}
