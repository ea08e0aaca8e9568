//! One unprivileged host uid per concurrent sandbox, across every offswitch process on
//! the machine.
//!
//! `RLIMIT_NPROC` is charged to the host uid across user namespaces, and a shared uid
//! would let one sandbox signal or read another's files; so each live sandbox holds an
//! exclusive `flock` on its slot's lock file. The kernel drops the lock when the holder
//! dies, so a crashed supervisor never leaks a slot.

use nix::fcntl::{Flock, FlockArg};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

/// First host uid handed to sandboxes; far above the ranges distributions give to
/// users (1000+) and to rootless containers (`/etc/subuid`, usually 100000-165535).
pub const FIRST_UID: u32 = 1_100_000;
/// How many slots exist, which bounds how many sandboxes can be alive at once.
pub const SLOTS: u32 = 4096;

/// A held slot: the uid is ours until this is dropped.
#[derive(Debug)]
pub struct UidLease {
    pub uid: u32,
    _lock: Flock<File>,
}

pub fn acquire(lock_dir: &Path) -> io::Result<UidLease> {
    fs::create_dir_all(lock_dir)?;
    // Start at a per-process offset so concurrent processes rarely contend for slot 0.
    let start = std::process::id() % SLOTS;
    for i in 0..SLOTS {
        let slot = (start + i) % SLOTS;
        let path = lock_dir.join(format!("{slot}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        if let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            return Ok(UidLease {
                uid: FIRST_UID + slot,
                _lock: lock,
            });
        }
    }
    Err(io::Error::other(format!(
        "all {SLOTS} sandbox uid slots in {} are in use",
        lock_dir.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_leases_get_distinct_uids_and_slots_are_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = acquire(dir.path()).unwrap();
        let b = acquire(dir.path()).unwrap();
        assert_ne!(a.uid, b.uid);
        let freed = a.uid;
        drop(a);
        let c = acquire(dir.path()).unwrap();
        assert_eq!(c.uid, freed);
        assert!(c.uid >= FIRST_UID && c.uid < FIRST_UID + SLOTS);
    }
}
