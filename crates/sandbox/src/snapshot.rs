//! Snapshots of the sandbox's writable tree, taken from the host, and their diff.
//!
//! The walk goes through directory descriptors with `O_NOFOLLOW` (see [`crate::hostfs`]),
//! so a tree the model rearranges while we look can mislead us only about itself, never
//! lead us outside it. The walk is bounded in depth and entry count, and says so when a
//! bound cut it short.

use crate::hostfs::{self, fstat, open_at, open_dir};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// Files larger than this are recorded with their size but no digest.
pub const HASH_CAP: u64 = 64 << 20;
const MAX_DEPTH: usize = 32;
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
    Unknown,
}

impl EntryKind {
    fn from_mode(mode: libc::mode_t) -> Self {
        match mode & libc::S_IFMT {
            libc::S_IFREG => EntryKind::File,
            libc::S_IFDIR => EntryKind::Dir,
            libc::S_IFLNK => EntryKind::Symlink,
            libc::S_IFIFO => EntryKind::Fifo,
            libc::S_IFSOCK => EntryKind::Socket,
            libc::S_IFCHR => EntryKind::CharDevice,
            libc::S_IFBLK => EntryKind::BlockDevice,
            _ => EntryKind::Unknown,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub kind: EntryKind,
    /// Permission bits (including setuid/setgid/sticky), without the type.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub inode: u64,
    /// sha256 of the content, for regular files up to [`HASH_CAP`].
    pub sha256: Option<String>,
    /// Where a symlink points (never followed).
    pub link_target: Option<String>,
    /// Inode change time in nanoseconds: lets the next snapshot reuse this digest when
    /// the file is untouched. Not compared in diffs.
    #[serde(default)]
    pub ctime_ns: i64,
}

impl Entry {
    /// A regular file's entry from its metadata and a digest of its contents known
    /// otherwise (the bytes just written).
    pub(crate) fn of_file(meta: &std::fs::Metadata, sha256: String) -> Entry {
        use std::os::unix::fs::MetadataExt;
        Entry {
            kind: EntryKind::File,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            size: meta.size(),
            inode: meta.ino(),
            sha256: Some(sha256),
            link_target: None,
            ctime_ns: ctime_ns(meta.ctime(), meta.ctime_nsec()),
        }
    }
}

fn ctime_ns(seconds: i64, nanoseconds: i64) -> i64 {
    seconds
        .saturating_mul(1_000_000_000)
        .saturating_add(nanoseconds)
}

/// Every entry under the home, keyed by its path relative to the home.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub entries: BTreeMap<String, Entry>,
    /// True when the depth or entry bound stopped the walk.
    pub incomplete: bool,
}

impl Snapshot {
    pub fn take(home: &Path) -> io::Result<Snapshot> {
        Snapshot::take_in(open_dir(home)?, &Snapshot::default())
    }

    /// The tree under the directory `root` (a descriptor of its own), reusing
    /// `previous`'s digests of files whose inode, size and change time are the same (the
    /// kernel updates ctime on every write, and no process can set it back).
    pub(crate) fn take_in(root: OwnedFd, previous: &Snapshot) -> io::Result<Snapshot> {
        let mut snapshot = Snapshot::default();
        walk(&root, "", 0, previous, &mut snapshot)?;
        Ok(snapshot)
    }

    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path)
    }

    /// What changed from `self` (before) to `after`.
    pub fn diff(&self, after: &Snapshot) -> Vec<Change> {
        let mut removed: Vec<(&String, &Entry)> = Vec::new();
        let mut added: Vec<(&String, &Entry)> = Vec::new();
        let mut changes = Vec::new();
        for (path, before) in &self.entries {
            match after.entries.get(path) {
                // An incomplete snapshot does not know whether a path it lacks is gone.
                None if after.incomplete => {}
                None => removed.push((path, before)),
                Some(now) => {
                    let aspects = compare(before, now);
                    if !aspects.is_empty() {
                        changes.push(Change::Modified {
                            path: path.clone(),
                            before: before.clone(),
                            after: now.clone(),
                            aspects,
                        });
                    }
                }
            }
        }
        for (path, now) in &after.entries {
            if !self.entries.contains_key(path) {
                added.push((path, now));
            }
        }
        // A rename keeps the inode; pair a removed path with an added one that has it
        // (through an index: a home with tens of thousands of new files must not cost
        // the supervisor quadratic time).
        let mut by_inode: std::collections::HashMap<(u64, EntryKind), Vec<usize>> =
            std::collections::HashMap::new();
        for (i, (_, now)) in added.iter().enumerate().rev() {
            by_inode.entry((now.inode, now.kind)).or_default().push(i);
        }
        let mut paired = vec![false; added.len()];
        for (from, before) in removed {
            let partner = by_inode
                .get_mut(&(before.inode, before.kind))
                .and_then(|candidates| candidates.pop());
            match partner {
                Some(i) => {
                    paired[i] = true;
                    let (to, now) = added[i];
                    changes.push(Change::Renamed {
                        from: from.clone(),
                        to: to.clone(),
                        before: before.clone(),
                        after: now.clone(),
                        aspects: compare(before, now),
                    });
                }
                None => changes.push(Change::Removed {
                    path: from.clone(),
                    before: before.clone(),
                }),
            }
        }
        for (i, (path, now)) in added.into_iter().enumerate() {
            if paired[i] {
                continue;
            }
            changes.push(Change::Added {
                path: path.clone(),
                after: now.clone(),
            });
        }
        changes
    }
}

/// One difference between two snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    Added {
        path: String,
        after: Entry,
    },
    Removed {
        path: String,
        before: Entry,
    },
    Modified {
        path: String,
        before: Entry,
        after: Entry,
        aspects: Vec<Aspect>,
    },
    Renamed {
        from: String,
        to: String,
        before: Entry,
        after: Entry,
        aspects: Vec<Aspect>,
    },
}

impl Change {
    /// The path the change is about (the old path for a rename).
    pub fn path(&self) -> &str {
        match self {
            Change::Added { path, .. }
            | Change::Removed { path, .. }
            | Change::Modified { path, .. } => path,
            Change::Renamed { from, .. } => from,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aspect {
    /// The file type changed (e.g. a script became a symlink or a FIFO).
    Kind,
    Content,
    Mode,
    Owner,
    LinkTarget,
    /// Same path, different inode: the file was replaced rather than edited in place.
    Replaced,
}

fn compare(a: &Entry, b: &Entry) -> Vec<Aspect> {
    let mut aspects = Vec::new();
    if a.kind != b.kind {
        aspects.push(Aspect::Kind);
    }
    if a.sha256 != b.sha256 || (a.sha256.is_none() && a.size != b.size) {
        aspects.push(Aspect::Content);
    }
    if a.mode != b.mode {
        aspects.push(Aspect::Mode);
    }
    if (a.uid, a.gid) != (b.uid, b.gid) {
        aspects.push(Aspect::Owner);
    }
    if a.link_target != b.link_target {
        aspects.push(Aspect::LinkTarget);
    }
    if a.inode != b.inode {
        aspects.push(Aspect::Replaced);
    }
    aspects
}

/// Records `dir`'s entries, then descends into its subdirectories: a directory's own
/// files are in the snapshot before anything deeper, so a bound hit inside a large
/// subdirectory (an agent's 100,000 files in `data/`) never hides the files beside it
/// (the kill path at the home's top).
fn walk(
    dir: &OwnedFd,
    prefix: &str,
    depth: usize,
    previous: &Snapshot,
    out: &mut Snapshot,
) -> io::Result<()> {
    let mut subdirs = Vec::new();
    for name in list_dir(dir)? {
        if out.entries.len() >= MAX_ENTRIES {
            out.incomplete = true;
            return Ok(());
        }
        let display = String::from_utf8_lossy(&name).into_owned();
        let path = if prefix.is_empty() {
            display
        } else {
            format!("{prefix}/{display}")
        };
        let Some(st) = lstat_at(dir, &name) else {
            continue;
        };
        let kind = EntryKind::from_mode(st.st_mode);
        let mut entry = Entry {
            kind,
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            size: st.st_size as u64,
            inode: st.st_ino,
            sha256: None,
            link_target: None,
            ctime_ns: ctime_ns(st.st_ctime, st.st_ctime_nsec),
        };
        match kind {
            EntryKind::File => {
                if let Some(known) = previous.entries.get(&path).filter(|p| {
                    p.kind == EntryKind::File
                        && p.inode == entry.inode
                        && p.size == entry.size
                        && p.ctime_ns == entry.ctime_ns
                }) {
                    entry.sha256 = known.sha256.clone();
                    out.entries.insert(path, entry);
                    continue;
                }
                // Re-check through the opened descriptor: the name may have been swapped.
                if let Ok(fd) = open_at(dir, &name, libc::O_RDONLY)
                    && fstat(&fd).is_ok_and(|s| {
                        s.st_mode & libc::S_IFMT == libc::S_IFREG && s.st_ino == st.st_ino
                    })
                {
                    entry.sha256 = hostfs::sha256_fd(fd, HASH_CAP)?;
                }
            }
            EntryKind::Symlink => entry.link_target = readlink_at(dir, &name),
            EntryKind::Dir => {
                if depth + 1 >= MAX_DEPTH {
                    out.incomplete = true;
                } else if let Ok(sub) = open_at(dir, &name, libc::O_RDONLY | libc::O_DIRECTORY) {
                    out.entries.insert(path.clone(), entry);
                    subdirs.push((sub, path));
                    continue;
                }
            }
            _ => {}
        }
        out.entries.insert(path, entry);
    }
    for (sub, path) in subdirs {
        walk(&sub, &path, depth + 1, previous, out)?;
    }
    Ok(())
}

fn list_dir(dir: &OwnedFd) -> io::Result<Vec<Vec<u8>>> {
    // Duplicate the descriptor: fdopendir takes ownership and closedir closes it.
    // SAFETY: F_DUPFD_CLOEXEC on a descriptor we own; no memory is passed.
    let dup = unsafe { libc::fcntl(dir.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: dup is a fresh descriptor we own; on success fdopendir takes it over.
    let stream = unsafe { libc::fdopendir(dup) };
    if stream.is_null() {
        // SAFETY: fdopendir failed, so dup is still ours to close, once.
        unsafe { libc::close(dup) };
        return Err(io::Error::last_os_error());
    }
    // SAFETY: stream is the non-null DIR* from fdopendir, not yet closed.
    unsafe { libc::rewinddir(stream) };
    let mut names = Vec::new();
    loop {
        // SAFETY: stream is the non-null DIR* from fdopendir, not yet closed.
        let entry = unsafe { libc::readdir(stream) };
        if entry.is_null() {
            break;
        }
        // SAFETY: entry is a non-null dirent from readdir, valid until the next readdir on this stream; d_name is NUL-terminated and copied before then.
        let name = unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) }.to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    // SAFETY: stream is the DIR* from fdopendir, closed once, here (which closes dup).
    unsafe { libc::closedir(stream) };
    names.sort();
    Ok(names)
}

fn lstat_at(dir: &OwnedFd, name: &[u8]) -> Option<libc::stat> {
    let c = CString::new(name).ok()?;
    // SAFETY: libc::stat is plain old data; all zeroes is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated CString, `st` a valid stat on our stack, `dir` a descriptor we own.
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    (rc == 0).then_some(st)
}

fn readlink_at(dir: &OwnedFd, name: &[u8]) -> Option<String> {
    let c = CString::new(name).ok()?;
    let mut buf = vec![0u8; 4096];
    // SAFETY: `c` is a NUL-terminated CString, `buf` a buffer of the length passed, `dir` a descriptor we own.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            c.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n >= 0).then(|| String::from_utf8_lossy(&buf[..n as usize]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{PermissionsExt, symlink};

    #[test]
    fn diff_names_each_kind_of_change() {
        let dir = tempfile::tempdir().unwrap();
        let h = dir.path();
        fs::write(h.join("shutdown.sh"), "#!/bin/bash\nkill -s TERM 1\n").unwrap();
        fs::write(h.join("next"), "x").unwrap();
        fs::write(h.join("gone"), "y").unwrap();
        fs::write(h.join("mode"), "z").unwrap();
        let before = Snapshot::take(h).unwrap();

        fs::write(h.join("shutdown.sh"), "echo Shutdown skipped\n").unwrap();
        fs::rename(h.join("next"), h.join("next.bak")).unwrap();
        fs::remove_file(h.join("gone")).unwrap();
        fs::set_permissions(h.join("mode"), fs::Permissions::from_mode(0o600)).unwrap();
        symlink("/etc/passwd", h.join("link")).unwrap();
        let after = Snapshot::take(h).unwrap();

        let changes = before.diff(&after);
        let find = |p: &str| {
            changes
                .iter()
                .find(|c| c.path() == p)
                .unwrap_or_else(|| panic!("no change for {p}: {changes:?}"))
        };
        assert!(
            matches!(find("shutdown.sh"), Change::Modified { aspects, .. } if aspects.contains(&Aspect::Content))
        );
        assert!(matches!(find("next"), Change::Renamed { to, .. } if to == "next.bak"));
        assert!(matches!(find("gone"), Change::Removed { .. }));
        assert!(
            matches!(find("mode"), Change::Modified { aspects, .. } if aspects == &vec![Aspect::Mode])
        );
        assert!(
            matches!(find("link"), Change::Added { after, .. } if after.link_target.as_deref() == Some("/etc/passwd"))
        );
        assert_eq!(changes.len(), 5);
    }

    #[test]
    fn unchanged_tree_has_empty_diff() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        fs::write(dir.path().join("sub/a"), "a").unwrap();
        let a = Snapshot::take(dir.path()).unwrap();
        let b = Snapshot::take(dir.path()).unwrap();
        assert!(a.diff(&b).is_empty());
        assert_eq!(a.entries.len(), 2);
        assert!(a.get("sub/a").unwrap().sha256.is_some());
    }
}
