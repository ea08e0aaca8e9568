//! One unprivileged host uid per concurrent sandbox, across every offswitch process on
//! the machine.
//!
//! `RLIMIT_NPROC` is charged to the host uid across user namespaces, and a shared uid
//! would let one sandbox signal or read another's files; so each live sandbox holds an
//! exclusive `flock` on its slot's lock file. The kernel drops the lock when the holder
//! dies, so a crashed supervisor never leaks a slot.

use nix::fcntl::{Flock, FlockArg};
use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

/// First host uid handed to sandboxes; far above the ranges distributions give to
/// users (1000+) and to rootless containers (`/etc/subuid`, usually 100000-165535).
pub const FIRST_UID: u32 = 1_100_000;
/// How many slots exist, which bounds how many sandboxes can be alive at once.
pub const SLOTS: u32 = 4096;

/// A held slot: the uid is ours until this is dropped.
#[derive(Debug)]
pub struct UidLease {
    pub uid: u32,
    slot: u32,
    lock_dir: PathBuf,
    _lock: Flock<File>,
}

/// Where this process's next search for a free slot starts, and the slots it holds: a
/// search skips those without a system call and takes the first free slot after the
/// last one taken. (Scanning from a fixed start opened and tried a lock file for every
/// live sandbox before each new one: a thousand tries per sandbox at a thousand.)
struct Cursor {
    next: u32,
    held: HashSet<u32>,
}

/// One cursor per lock directory (one in practice; tests use their own).
static CURSORS: LazyLock<Mutex<HashMap<PathBuf, Cursor>>> = LazyLock::new(Default::default);

pub fn acquire(lock_dir: &Path) -> io::Result<UidLease> {
    acquire_among(lock_dir, SLOTS)
}

fn acquire_among(lock_dir: &Path, slots: u32) -> io::Result<UidLease> {
    fs::create_dir_all(lock_dir)?;
    let mut cursors = CURSORS.lock().unwrap_or_else(|e| e.into_inner());
    // Start at a per-process offset so concurrent processes rarely contend for a slot.
    let cursor = cursors
        .entry(lock_dir.to_path_buf())
        .or_insert_with(|| Cursor {
            next: std::process::id() % slots,
            held: HashSet::new(),
        });
    for i in 0..slots {
        let slot = (cursor.next + i) % slots;
        if cursor.held.contains(&slot) {
            continue;
        }
        let path = lock_dir.join(format!("{slot}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        if let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            cursor.next = (slot + 1) % slots;
            cursor.held.insert(slot);
            return Ok(UidLease {
                uid: FIRST_UID + slot,
                slot,
                lock_dir: lock_dir.to_path_buf(),
                _lock: lock,
            });
        }
    }
    Err(io::Error::other(format!(
        "all {slots} sandbox uid slots in {} are in use",
        lock_dir.display()
    )))
}

impl Drop for UidLease {
    fn drop(&mut self) {
        let mut cursors = CURSORS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cursor) = cursors.get_mut(&self.lock_dir) {
            cursor.held.remove(&self.slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_distinct_rotate_and_skip_slots_locked_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let take = || acquire_among(dir.path(), 3);
        let a = take().unwrap();
        let b = take().unwrap();
        assert_ne!(a.uid, b.uid);
        let freed = a.uid;
        drop(a);
        // The next free slot after the last one taken, not the one just freed.
        let c = take().unwrap();
        assert!(c.uid != freed && c.uid != b.uid);
        assert!((FIRST_UID..FIRST_UID + 3).contains(&c.uid));
        // Every other slot held: the freed one comes round again.
        let d = take().unwrap();
        assert_eq!(d.uid, freed);
        let full = take().unwrap_err();
        assert!(
            full.to_string().contains("all 3 sandbox uid slots"),
            "{full}"
        );
        // A slot whose lock another process holds (another open file description of
        // the lock file, which flock treats alike) is not handed out.
        let slot = b.slot;
        drop(b);
        let file = File::create(dir.path().join(format!("{slot}.lock"))).unwrap();
        let elsewhere = Flock::lock(file, FlockArg::LockExclusiveNonblock).unwrap();
        assert!(take().is_err());
        drop(elsewhere);
        assert_eq!(take().unwrap().slot, slot);
    }
}
