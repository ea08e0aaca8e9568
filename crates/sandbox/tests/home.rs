//! Each sandbox's home exists only in its own mount namespace (root mode): the host's
//! mount table never lists it, so creating one sandbox copies no other's home, and the
//! supervisor still reads it (through the descriptor it opened), also after the machine
//! is gone.

mod common;

use common::*;
use sandbox::{LaidFile, Mode};

/// Host mount points of this process's sandboxes (their ids start with our pid) or on
/// the staging root they all share (other supervisors on the machine are not ours).
fn our_host_mounts() -> Vec<String> {
    let ours = format!("/run/offswitch/sandboxes/{}-", std::process::id());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|point| point.starts_with(&ours) || point.starts_with("/run/offswitch/root"))
        .map(str::to_string)
        .collect()
}

#[test]
fn homes_are_in_no_other_namespace_and_stay_readable_after_the_machine_dies() {
    let a = with_files(vec![LaidFile::new("note", "laid\n", 0o644)]);
    let b = sandbox();
    if a.mode() == Mode::Root {
        let mounts = our_host_mounts();
        assert!(mounts.is_empty(), "sandbox mounts on the host: {mounts:?}");
        // A sandbox's home is a tmpfs of its own, owned by its user, with the laid file.
        let out = run(&a, "stat -f -c %T ~; stat -c %U ~ note; cat note");
        assert_eq!(out.output_lossy(), "tmpfs\nuser\nuser\nlaid\n");
    }
    assert_eq!(run(&a, "echo from-a > mine").status(), 0);
    // The other sandbox sees nothing of it.
    assert_eq!(run(&b, "ls -A ~").output_lossy(), "");
    assert!(b.snapshot().unwrap().get("mine").is_none());
    a.kill();
    assert!(!a.is_alive());
    assert_eq!(a.read_file("mine", 100).unwrap(), b"from-a\n");
    let after = a.snapshot().unwrap();
    assert!(after.get("mine").is_some() && after.get("note").is_some());
}
