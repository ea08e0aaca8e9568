//! Memory and process limits through cgroups, v1 and v2 behind one interface.
//!
//! On a cgroup v1 host (with or without the hybrid, controller-less v2 tree) a sandbox
//! gets a `pids` and a `memory` group nested under the supervisor's own groups, so the
//! session that runs offswitch still accounts for them, plus a v2 directory when one
//! exists, only for its `cgroup.kill`. On a pure v2 host a sandbox gets one group with
//! `pids.max` and `memory.max`, when the supervisor's group delegates those controllers.
//! An ended sandbox's groups, once empty, are kept for the same process's next sandbox.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

const ROOT: &str = "/sys/fs/cgroup";
/// Name of the directory that holds every offswitch sandbox group.
const PARENT_NAME: &str = "offswitch";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    V1,
    V2,
}

/// Where the supervisor's own cgroups live, as read from `/proc/self/cgroup`.
#[derive(Debug, Clone)]
pub struct CgroupLayout {
    pub version: CgroupVersion,
    /// v1: the supervisor's `pids` group directory.
    pids_parent: Option<PathBuf>,
    /// v1: the supervisor's `memory` group directory.
    memory_parent: Option<PathBuf>,
    /// The supervisor's v2 group (pure v2, or the hybrid `unified` tree).
    unified_parent: Option<PathBuf>,
}

impl CgroupLayout {
    pub fn detect() -> Option<CgroupLayout> {
        let own = fs::read_to_string("/proc/self/cgroup").ok()?;
        let pure_v2 = Path::new(ROOT).join("cgroup.controllers").exists();
        let mut layout = CgroupLayout {
            version: if pure_v2 {
                CgroupVersion::V2
            } else {
                CgroupVersion::V1
            },
            pids_parent: None,
            memory_parent: None,
            unified_parent: None,
        };
        for line in own.lines() {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let rel = path.trim_start_matches('/');
            if controllers.is_empty() {
                let mount = if pure_v2 {
                    PathBuf::from(ROOT)
                } else {
                    Path::new(ROOT).join("unified")
                };
                if mount.join("cgroup.procs").exists() {
                    layout.unified_parent = Some(mount.join(rel));
                }
            } else if !pure_v2 {
                for controller in controllers.split(',') {
                    let dir = Path::new(ROOT).join(controller).join(rel);
                    match controller {
                        "pids" => layout.pids_parent = Some(dir),
                        "memory" => layout.memory_parent = Some(dir),
                        _ => {}
                    }
                }
            }
        }
        Some(layout)
    }

    /// This process's layout, read once: it is read for every sandbox.
    pub fn of_this_process() -> Option<&'static CgroupLayout> {
        static LAYOUT: std::sync::OnceLock<Option<CgroupLayout>> = std::sync::OnceLock::new();
        LAYOUT.get_or_init(CgroupLayout::detect).as_ref()
    }

    /// Human-readable description of what this layout can enforce, for `doctor`.
    pub fn describe(&self) -> String {
        match self.version {
            CgroupVersion::V1 => format!(
                "cgroup v1 (pids: {}, memory: {}, kill handle: {})",
                show(&self.pids_parent),
                show(&self.memory_parent),
                show(&self.unified_parent)
            ),
            CgroupVersion::V2 => format!("cgroup v2 (group: {})", show(&self.unified_parent)),
        }
    }
}

fn show(p: &Option<PathBuf>) -> String {
    p.as_ref()
        .map_or("none".into(), |p| p.display().to_string())
}

/// The limits a sandbox's cgroup enforces.
#[derive(Debug, Clone, Copy)]
pub struct CgroupLimits {
    pub memory_bytes: u64,
    pub processes: u64,
}

/// One sandbox's cgroup(s). Removing is explicit ([`Cgroup::remove`]) because it must
/// happen after every process inside is dead.
#[derive(Debug)]
pub struct Cgroup {
    version: CgroupVersion,
    pids: Option<PathBuf>,
    memory: Option<PathBuf>,
    /// v2 directory offering `cgroup.kill` (the same as `pids`/`memory` on pure v2).
    killer: Option<PathBuf>,
    /// The group's OOM kills and refused forks before this sandbox had it (a group is
    /// reused: see [`Cgroup::release`]); its counters only grow.
    oom_kills_before: u64,
    limit_hits_before: u64,
}

/// Emptied groups of this process's ended sandboxes, kept for its next ones: removing a
/// memory group costs the kernel a walk over every memory-aware cache list of the
/// machine (each mounted filesystem has two), which grows with the number of live
/// sandboxes' mounts; creating and removing also serialise on the kernel's cgroup lock.
/// Removed when the process exits, and by [`remove_spare_groups`].
static SPARE: Mutex<Vec<Cgroup>> = Mutex::new(Vec::new());
static REMOVE_AT_EXIT: Once = Once::new();
/// The process that registered the removal at exit (a forked child that calls `exit`
/// must not remove its parent's groups).
static OWNER: AtomicU32 = AtomicU32::new(0);

/// Removes the emptied groups this process keeps for reuse.
pub fn remove_spare_groups() {
    let spare = std::mem::take(&mut *SPARE.lock().unwrap_or_else(|e| e.into_inner()));
    for group in spare {
        let _ = group.remove();
    }
}

extern "C" fn remove_spare_groups_at_exit() {
    if OWNER.load(Ordering::Relaxed) == std::process::id() {
        // Nothing may unwind out of an exit handler.
        let _ = std::panic::catch_unwind(remove_spare_groups);
    }
}

impl Cgroup {
    /// Creates the groups for sandbox `name` and writes the limits. Returns a group even
    /// when only some controllers are usable; [`Cgroup::enforces_memory`] and
    /// [`Cgroup::enforces_processes`] say which.
    pub fn create(layout: &CgroupLayout, name: &str, limits: CgroupLimits) -> io::Result<Cgroup> {
        loop {
            let Some(mut group) = SPARE.lock().unwrap_or_else(|e| e.into_inner()).pop() else {
                break;
            };
            match group.limit(limits) {
                Ok(()) => {
                    group.oom_kills_before += group.oom_kills();
                    group.limit_hits_before += group.process_limit_hits();
                    return Ok(group);
                }
                Err(_) => {
                    let _ = group.remove();
                }
            }
        }
        match layout.version {
            CgroupVersion::V1 => Self::create_v1(layout, name, limits),
            CgroupVersion::V2 => Self::create_v2(layout, name, limits),
        }
    }

    fn create_v1(layout: &CgroupLayout, name: &str, limits: CgroupLimits) -> io::Result<Cgroup> {
        let mut group = Cgroup {
            version: CgroupVersion::V1,
            pids: None,
            memory: None,
            killer: None,
            oom_kills_before: 0,
            limit_hits_before: 0,
        };
        if let Some(parent) = &layout.pids_parent {
            group.pids = Some(make_child(parent, name)?);
        }
        if let Some(parent) = &layout.memory_parent {
            group.memory = Some(make_child(parent, name)?);
        }
        if let Err(e) = group.limit(limits) {
            let _ = group.remove();
            return Err(e);
        }
        if let Some(parent) = &layout.unified_parent
            && let Ok(dir) = make_child(parent, name)
        {
            if dir.join("cgroup.kill").exists() {
                group.killer = Some(dir);
            } else {
                let _ = fs::remove_dir(&dir);
            }
        }
        Ok(group)
    }

    fn create_v2(layout: &CgroupLayout, name: &str, limits: CgroupLimits) -> io::Result<Cgroup> {
        let parent = layout
            .unified_parent
            .as_ref()
            .ok_or_else(|| io::Error::other("no cgroup v2 group for this process"))?;
        let base = parent.join(PARENT_NAME);
        fs::create_dir_all(&base)?;
        // Controllers must be enabled on each level down to ours; this fails where the
        // supervisor's group is not delegated, and then only cgroup.kill is available.
        let _ = fs::write(parent.join("cgroup.subtree_control"), "+pids +memory");
        let _ = fs::write(base.join("cgroup.subtree_control"), "+pids +memory");
        let dir = base.join(name);
        fs::create_dir(&dir)?;
        // Each controller is used where its limit could be written.
        let pids = write(&dir, "pids.max", &limits.processes.to_string()).is_ok();
        let memory = write(&dir, "memory.max", &limits.memory_bytes.to_string()).is_ok();
        if memory {
            let _ = write(&dir, "memory.swap.max", "0");
        }
        Ok(Cgroup {
            version: CgroupVersion::V2,
            pids: pids.then(|| dir.clone()),
            memory: memory.then(|| dir.clone()),
            killer: Some(dir),
            oom_kills_before: 0,
            limit_hits_before: 0,
        })
    }

    /// Writes the limits into the group's controllers.
    fn limit(&self, limits: CgroupLimits) -> io::Result<()> {
        if let Some(dir) = &self.pids {
            write(dir, "pids.max", &limits.processes.to_string())?;
        }
        let Some(dir) = &self.memory else {
            return Ok(());
        };
        let bytes = limits.memory_bytes.to_string();
        match self.version {
            CgroupVersion::V1 => {
                // memory+swap may not be set below memory, nor memory above memory+swap:
                // the order depends on which way the limit moves; a failed first write
                // of memory+swap is retried after memory. Where there is no swap
                // accounting the file is missing.
                let swap_first = write(dir, "memory.memsw.limit_in_bytes", &bytes);
                write(dir, "memory.limit_in_bytes", &bytes)?;
                if swap_first.is_err() {
                    let _ = write(dir, "memory.memsw.limit_in_bytes", &bytes);
                }
            }
            CgroupVersion::V2 => {
                write(dir, "memory.max", &bytes)?;
                let _ = write(dir, "memory.swap.max", "0");
            }
        }
        Ok(())
    }

    /// Ends the group once its sandbox has ended: kills what is left in it and, once it
    /// is empty, keeps it for this process's next sandbox (its limits are written again
    /// then, and its counters read from there on), or else removes it.
    pub fn release(self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(1);
        while !self.member_pids().is_empty() {
            if Instant::now() >= deadline {
                let _ = self.remove();
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        REMOVE_AT_EXIT.call_once(|| {
            OWNER.store(std::process::id(), Ordering::Relaxed);
            // SAFETY: registers a plain function with no arguments, which only takes a
            // lock and removes directories; it checks that it runs in the process that
            // registered it.
            unsafe { libc::atexit(remove_spare_groups_at_exit) };
        });
        SPARE.lock().unwrap_or_else(|e| e.into_inner()).push(self);
    }

    pub fn enforces_memory(&self) -> bool {
        self.memory.is_some()
    }

    pub fn enforces_processes(&self) -> bool {
        self.pids.is_some()
    }

    /// The `cgroup.procs` files a process writes its pid into to join every group.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<&PathBuf> = [&self.pids, &self.memory, &self.killer]
            .into_iter()
            .flatten()
            .collect();
        dirs.dedup();
        dirs.into_iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// Kills every process in the group. Uses `cgroup.kill` where it exists, otherwise
    /// signals the listed pids until none is left (a fork bomb may race a plain sweep).
    pub fn kill(&self) {
        if let Some(dir) = &self.killer
            && write(dir, "cgroup.kill", "1").is_ok()
        {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            let pids = self.member_pids();
            if pids.is_empty() {
                return;
            }
            for pid in pids {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn member_pids(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        for file in self.procs_files() {
            if let Ok(text) = fs::read_to_string(file) {
                pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
            }
        }
        pids
    }

    /// Number of OOM kills in the group so far.
    pub fn oom_kills(&self) -> u64 {
        let Some(dir) = &self.memory else { return 0 };
        let (file, key) = match self.version {
            CgroupVersion::V1 => ("memory.oom_control", "oom_kill"),
            CgroupVersion::V2 => ("memory.events", "oom_kill"),
        };
        read_keyed(&dir.join(file), key)
            .unwrap_or(0)
            .saturating_sub(self.oom_kills_before)
    }

    /// Number of times a fork was refused by the process limit.
    pub fn process_limit_hits(&self) -> u64 {
        let Some(dir) = &self.pids else { return 0 };
        read_keyed(&dir.join("pids.events"), "max")
            .unwrap_or(0)
            .saturating_sub(self.limit_hits_before)
    }

    /// Processes currently in the group.
    pub fn process_count(&self) -> u64 {
        let Some(dir) = &self.pids else {
            return self.member_pids().len() as u64;
        };
        fs::read_to_string(dir.join("pids.current"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Removes the group directories, retrying while the kernel still reports them busy
    /// (it does for a few milliseconds after a kill).
    pub fn remove(&self) -> io::Result<()> {
        let mut dirs: Vec<&PathBuf> = [&self.pids, &self.memory, &self.killer]
            .into_iter()
            .flatten()
            .collect();
        dirs.dedup();
        let deadline = Instant::now() + Duration::from_secs(5);
        for dir in dirs {
            loop {
                match fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e) if Instant::now() >= deadline => return Err(e),
                    Err(_) => {
                        self.kill();
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
            }
        }
        Ok(())
    }
}

fn make_child(parent: &Path, name: &str) -> io::Result<PathBuf> {
    let base = parent.join(PARENT_NAME);
    match fs::create_dir(&base) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let dir = base.join(name);
    fs::create_dir(&dir)?;
    Ok(dir)
}

fn write(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    fs::write(dir.join(file), value)
}

fn read_keyed(file: &Path, key: &str) -> Option<u64> {
    let text = fs::read_to_string(file).ok()?;
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Every offswitch sandbox group directory under this layout, for stale-group cleanup.
pub(crate) fn sandbox_group_dirs(layout: &CgroupLayout) -> Vec<PathBuf> {
    let parents = [
        &layout.pids_parent,
        &layout.memory_parent,
        &layout.unified_parent,
    ];
    let mut dirs = Vec::new();
    for parent in parents.into_iter().flatten() {
        if let Ok(entries) = fs::read_dir(parent.join(PARENT_NAME)) {
            dirs.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
        }
    }
    dirs
}

/// Kills whatever is left in a stale group directory and removes it.
pub(crate) fn remove_stale_group(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(2);
    let _ = fs::write(dir.join("cgroup.kill"), "1");
    while fs::remove_dir(dir).is_err() && Instant::now() < deadline {
        if let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) {
            for pid in text.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
