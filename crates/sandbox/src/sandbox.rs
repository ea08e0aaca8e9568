//! The supervisor's handle on one sandbox: create, exec, read, snapshot, kill, and the
//! notice of PID 1's death.

use crate::cgroup::{Cgroup, CgroupLayout, CgroupLimits};
use crate::hostfs::{self, ReadError};
use crate::mode::{self, Mode, NoIsolation};
use crate::snapshot::{Entry, Snapshot};
use crate::spec::{ExecOptions, SandboxSpec};
use crate::uid_pool::{self, UidLease};
use crate::wire::{self, ExecReplyHeader, ExecRequest, Hello, HelperConfig, HomeMount, Rlimits};
use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Once, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// How long PID 1 may take to report ready before we give up on it.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Slack beyond a call's own timeout before the supervisor stops waiting for PID 1.
const REPLY_SLACK: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(transparent)]
    NoIsolation(#[from] NoIsolation),
    #[error("cannot prepare the sandbox ({stage}): {source}")]
    Prepare {
        stage: &'static str,
        source: io::Error,
    },
    #[error("the sandbox failed to start at stage '{stage}': {message}")]
    Start { stage: String, message: String },
    #[error("the sandbox's machine is down (PID 1 has exited)")]
    MachineDown,
    #[error("the sandbox stopped answering; it was killed")]
    Unresponsive,
}

fn prep(stage: &'static str) -> impl FnOnce(io::Error) -> SandboxError {
    move |source| SandboxError::Prepare { stage, source }
}

/// Result of one command.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    /// Combined stdout and stderr, at most the output cap.
    pub output: Vec<u8>,
    pub exit_code: Option<i32>,
    /// Signal that ended the command's bash, if one did.
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub truncated: bool,
    /// The memory limit killed a process during this call.
    pub oom_killed: bool,
    pub duration: Duration,
}

impl ExecOutput {
    /// The status a shell would report: 124 on timeout (like `timeout(1)`), 128+N for a
    /// signal.
    pub fn status(&self) -> i32 {
        if self.timed_out {
            124
        } else {
            self.exit_code
                .or(self.signal.map(|s| 128 + s))
                .unwrap_or(-1)
        }
    }

    pub fn output_lossy(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }
}

/// When and how the sandbox's machine ended.
#[derive(Debug, Clone, Copy)]
pub struct Death {
    pub at: Instant,
    pub wall: SystemTime,
    /// PID 1's exit status as the helper relays it (143 = SIGTERM's handler, 137 =
    /// killed).
    pub exit_code: Option<i32>,
    /// The supervisor had asked for the machine's end ([`Sandbox::kill`]) by the time the
    /// death was noticed: with any status but [`EXIT_ON_SIGTERM`] (which the supervisor
    /// never sends PID 1), a death it caused.
    pub by_supervisor: bool,
}

/// PID 1's exit status when SIGTERM (what a shutdown sends) ended it.
pub const EXIT_ON_SIGTERM: i32 = 128 + libc::SIGTERM;

/// A cloneable notice board for PID 1's death: wait on it from any thread.
#[derive(Debug, Clone, Default)]
pub struct DeathWatch(Arc<DeathBoard>);

#[derive(Debug, Default)]
struct DeathBoard {
    death: Mutex<Option<Death>>,
    changed: Condvar,
    kill_requested: std::sync::atomic::AtomicBool,
    /// The sandbox's helper (PID 1's parent), once started: where PID 1 is found.
    helper: OnceLock<HelperProcess>,
    /// When PID 1 exited, if a pidfd of it said so before the notice came.
    exited: Mutex<Option<(Instant, SystemTime)>>,
}

#[derive(Debug)]
struct HelperProcess {
    pid: u32,
    /// Turns readable when the helper exits: until then `pid` is the helper's.
    pidfd: OwnedFd,
}

/// PF_EXITING in /proc/PID/stat's flags: the process is in exit().
const PF_EXITING: u64 = 0x4;

impl DeathWatch {
    pub(crate) fn record(&self, exit_code: Option<i32>) {
        let board = &*self.0;
        let exited = *board.exited.lock().unwrap_or_else(|e| e.into_inner());
        let (at, wall) = exited.unwrap_or_else(|| (Instant::now(), SystemTime::now()));
        let mut slot = board.death.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(Death {
                at,
                wall,
                exit_code,
                by_supervisor: board
                    .kill_requested
                    .load(std::sync::atomic::Ordering::SeqCst),
            });
        }
        board.changed.notify_all();
    }

    fn request_kill(&self) {
        self.0
            .kill_requested
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn get(&self) -> Option<Death> {
        *self.0.death.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// PID 1 exited at `at` (its pidfd says so): the death, when its notice comes, is
    /// dated then.
    pub(crate) fn exited(&self, at: (Instant, SystemTime)) {
        let mut slot = self.0.exited.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(at);
    }

    /// Dates the machine's death by a pidfd of PID 1 (see `pid1_exits`).
    fn watch_pid1(&self) {
        let Some(helper) = self.0.helper.get() else {
            return;
        };
        let Some(pid) = helper.child().ok().flatten() else {
            return;
        };
        if let Ok(pidfd) = crate::pidfd::open(pid)
            && helper.still_parent_of(pid)
        {
            crate::pid1_exits::watch(pidfd, self.clone());
        }
    }

    fn set_helper(&self, pid: u32, pidfd: OwnedFd) {
        let _ = self.0.helper.set(HelperProcess { pid, pidfd });
    }

    /// Sends `signal` to the helper; false if it is gone. A pidfd cannot hit a recycled
    /// pid once the helper has been reaped.
    fn signal_helper(&self, signal: libc::c_int) -> bool {
        self.0
            .helper
            .get()
            .is_some_and(|h| crate::pidfd::signal(h.pidfd.as_fd(), signal))
    }

    /// Whether the machine outlives a shutdown: true unless PID 1 dies within `grace`
    /// or is ending by then. The notice of a death passes through the helper, the zygote
    /// and a reader thread; on a loaded machine that took over a second (p99 1.2 s at
    /// 1000 sandboxes), so a machine that was told to end and is ending must not be
    /// judged by the notice's time alone.
    pub fn outlives(&self, grace: Duration) -> bool {
        self.wait(grace).is_none() && !self.ending()
    }

    /// PID 1 has died, or cannot escape it: a signal it dies of is pending, it is in
    /// exit(), or it is gone. False while it runs on, and where /proc cannot tell.
    pub fn ending(&self) -> bool {
        self.get().is_some()
            || self
                .0
                .helper
                .get()
                .and_then(HelperProcess::pid1_ending)
                .unwrap_or(false)
    }

    /// PID 1's pid on the host while it lives.
    fn pid1(&self) -> Option<u32> {
        let helper = self.0.helper.get()?;
        let pid = helper.child().ok()??;
        helper.still_parent_of(pid).then_some(pid)
    }

    /// Blocks until the machine dies or `timeout` passes.
    pub fn wait(&self, timeout: Duration) -> Option<Death> {
        let board = &*self.0;
        let slot = board.death.lock().unwrap_or_else(|e| e.into_inner());
        let (slot, _) = board
            .changed
            .wait_timeout_while(slot, timeout, |d| d.is_none())
            .unwrap_or_else(|e| e.into_inner());
        *slot
    }
}

impl HelperProcess {
    fn exited(&self) -> bool {
        wire::wait_readable(self.pidfd.as_fd(), Duration::ZERO)
    }

    /// The helper's only child, PID 1; None once it has been reaped. Trust it only while
    /// the helper has not exited (its pid could be another process's after that).
    fn child(&self) -> io::Result<Option<u32>> {
        let list = fs::read_to_string(format!("/proc/{0}/task/{0}/children", self.pid))?;
        Ok(list.split_whitespace().next().and_then(|p| p.parse().ok()))
    }

    /// Whether `pid` is still the helper's child, PID 1: what was read of it before is
    /// then PID 1's (a reaped PID 1's pid may name another process, never the helper's
    /// child, as the helper forks once).
    fn still_parent_of(&self, pid: u32) -> bool {
        !self.exited() && self.child().ok().flatten() == Some(pid)
    }

    /// Some(true) when PID 1 is ending or gone, Some(false) when it runs on, None when
    /// /proc cannot say.
    fn pid1_ending(&self) -> Option<bool> {
        let child = self.child();
        if self.exited() {
            return Some(true);
        }
        let Some(pid) = child.ok()? else {
            // Reaped: the helper is about to report it.
            return Some(true);
        };
        let status = fs::read_to_string(format!("/proc/{pid}/status"));
        let stat = fs::read_to_string(format!("/proc/{pid}/stat"));
        if !self.still_parent_of(pid) {
            return Some(true);
        }
        Some(process_ending(&status.ok()?, &stat.ok()?))
    }
}

/// From a process's /proc status and stat: it is a zombie or dead, in exit(), or has a
/// signal pending that PID 1 dies of.
fn process_ending(status: &str, stat: &str) -> bool {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
    };
    let dying = crate::init::TERMINATING_SIGNALS
        .iter()
        .chain(&[libc::SIGKILL])
        .fold(0u64, |mask, s| mask | 1 << (s - 1));
    let pending = ["SigPnd:", "ShdPnd:"].iter().any(|name| {
        field(name)
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .is_some_and(|set| set & dying != 0)
    });
    let gone = field("State:").is_some_and(|s| s.starts_with('Z') || s.starts_with('X'));
    // stat: "pid (comm) state ppid pgrp session tty_nr tpgid flags ...", where comm may
    // hold spaces and parentheses.
    let exiting = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(6)?.parse::<u64>().ok())
        .is_some_and(|flags| flags & PF_EXITING != 0);
    pending || gone || exiting
}

/// The supervisor's ends of the pipes to PID 1 (through the helper).
pub(crate) struct Channel {
    pub(crate) to_init: fs::File,
    pub(crate) from_init: fs::File,
}

/// Host-side resources of one sandbox, released in order on drop, also when creation
/// fails half-way.
struct HostResources {
    /// The sandbox's own host directory (rootless: its home), if it has one.
    run_dir: Option<PathBuf>,
    cgroup: Option<Cgroup>,
    lease: Option<UidLease>,
}

impl Drop for HostResources {
    fn drop(&mut self) {
        if let Some(cgroup) = self.cgroup.take() {
            cgroup.release();
        }
        if let Some(dir) = &self.run_dir {
            let _ = fs::remove_dir_all(dir);
        }
        self.lease.take();
    }
}

pub struct Sandbox {
    id: String,
    mode: Mode,
    host_uid: u32,
    channel: Mutex<Option<Channel>>,
    death: DeathWatch,
    protections: Vec<String>,
    /// The home's directory, opened once before any command ran (set when PID 1 is
    /// ready): snapshots and reads go through it. In root mode the home's tmpfs exists
    /// only in the sandbox's own mount namespace, and this descriptor keeps it readable
    /// after the machine is gone.
    home: Option<OwnedFd>,
    /// The laid files whose digests the caller gave, as they were laid: snapshots reuse
    /// those digests while the files are untouched.
    laid: Snapshot,
    host: HostResources,
}

static SEQUENCE: AtomicU64 = AtomicU64::new(0);
static STALE_SWEEP: Once = Once::new();

impl Sandbox {
    pub fn create(spec: &SandboxSpec) -> Result<Sandbox, SandboxError> {
        let mode = mode::detect()?;
        let runtime = mode::runtime_dir(mode);
        STALE_SWEEP.call_once(|| crate::cleanup::remove_stale(mode));
        let id = format!(
            "{}-{}",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        );
        let lease = match mode {
            Mode::Root => Some(
                uid_pool::acquire(&runtime.join("uids")).map_err(prep("allocate a host uid"))?,
            ),
            Mode::Rootless => None,
        };
        let (host_uid, host_gid) = match &lease {
            Some(lease) => (lease.uid, lease.uid),
            None => (
                nix::unistd::getuid().as_raw(),
                nix::unistd::getgid().as_raw(),
            ),
        };
        // Rootless, the home is a host directory of the sandbox's own; in root mode a
        // sandbox has nothing on the host's filesystems but its cgroup.
        let run_dir = (mode == Mode::Rootless).then(|| runtime.join("sandboxes").join(&id));
        let host_home = run_dir.as_ref().map(|dir| dir.join("home"));
        let mut host = HostResources {
            run_dir: run_dir.clone(),
            cgroup: None,
            lease,
        };
        // PID 1 assembles the root on this one empty directory, inside its own mount
        // namespace (so every sandbox can use the same). The sandbox's uid must be able to
        // traverse to it (and, rootless, to its home).
        let staging_root = runtime.join("root");
        let sandboxes = runtime.join("sandboxes");
        for dir in [&runtime, &staging_root]
            .into_iter()
            .chain(run_dir.as_ref().map(|_| &sandboxes))
            .chain(&run_dir)
            .chain(&host_home)
        {
            traversable_dir(dir).map_err(prep("runtime directory"))?;
        }
        if let Some(home) = &host_home {
            fs::set_permissions(home, fs::Permissions::from_mode(0o755))
                .map_err(prep("home directory"))?;
        }
        let limits = spec.limits;

        let mut protections = Vec::new();
        if let Some(layout) = CgroupLayout::of_this_process() {
            let wanted = CgroupLimits {
                memory_bytes: limits.memory_bytes,
                processes: limits.processes,
            };
            match Cgroup::create(layout, &id, wanted) {
                Ok(group) => host.cgroup = Some(group),
                Err(e) if mode == Mode::Root => {
                    return Err(SandboxError::Prepare {
                        stage: "create cgroups",
                        source: e,
                    });
                }
                Err(_) => {}
            }
        }
        let cgroup = host.cgroup.as_ref();
        let memory_in_cgroup = cgroup.is_some_and(Cgroup::enforces_memory);
        protections.push(match cgroup {
            Some(c) if c.enforces_memory() => {
                format!("memory: {} MiB (cgroup)", limits.memory_bytes >> 20)
            }
            _ => format!(
                "memory: {} MiB address space per process (RLIMIT_AS; no memory cgroup)",
                limits.memory_bytes >> 20
            ),
        });
        protections.push(match cgroup {
            Some(c) if c.enforces_processes() => format!(
                "processes: {} (cgroup pids.max, RLIMIT_NPROC)",
                limits.processes
            ),
            _ => format!(
                "processes: {} (RLIMIT_NPROC only, charged to the host uid)",
                limits.processes
            ),
        });
        protections.push(match mode {
            Mode::Root => format!(
                "home: {} MiB tmpfs; /tmp: {} MiB tmpfs",
                limits.home_bytes >> 20,
                limits.tmp_bytes >> 20
            ),
            Mode::Rootless => format!(
                "home: host directory, {} MiB per file (RLIMIT_FSIZE); /tmp: {} MiB tmpfs",
                limits.file_size_bytes >> 20,
                limits.tmp_bytes >> 20
            ),
        });

        let nproc = match mode {
            // The pids cgroup is the limit; RLIMIT_NPROC is a looser second line, so
            // that the cgroup (which counts and reports hits) is what a fork bomb meets.
            Mode::Root if cgroup.is_some_and(Cgroup::enforces_processes) => limits.processes * 2,
            Mode::Root => limits.processes,
            // Rootless sandboxes share the user's uid, which already runs processes.
            Mode::Rootless => limits.processes + count_processes_of(host_uid),
        };
        let config = HelperConfig {
            host_ids: lease_ids(mode, host_uid, host_gid),
            cgroup_procs: cgroup.map(Cgroup::procs_files).unwrap_or_default(),
            rlimits: Rlimits {
                nproc: Some(nproc),
                fsize: limits.file_size_bytes,
                nofile: limits.open_files,
                address_space: (!memory_in_cgroup).then_some(limits.memory_bytes),
            },
            root_dir: staging_root,
            home: match &host_home {
                Some(host) => HomeMount::Bind { host: host.clone() },
                None => HomeMount::Tmpfs {
                    size_bytes: limits.home_bytes,
                },
            },
            tmp_size_bytes: limits.tmp_bytes,
            binds: spec.binds.clone(),
            hostname: spec.hostname.clone(),
            seccomp: spec.seccomp,
            landlock: spec.landlock,
            env: spec.env.clone(),
            links: spec.links.clone(),
        };
        let death = DeathWatch::default();
        let helper = crate::zygote::spawn_helper(&spec.helper, death.clone())?;
        death.set_helper(helper.pid, helper.pidfd);
        let mut sandbox = Sandbox {
            id,
            mode,
            host_uid,
            channel: Mutex::new(Some(helper.channel)),
            death,
            protections,
            home: None,
            laid: Snapshot::default(),
            host,
        };
        let mut inner = sandbox.handshake(&config)?;
        sandbox.death.watch_pid1();
        inner.append(&mut sandbox.protections);
        sandbox.protections = inner;
        let home = match &host_home {
            Some(path) => hostfs::open_dir(path).map_err(prep("open the home"))?,
            None => sandbox.open_namespace_home(helper.pid)?,
        };
        sandbox.laid = lay_files(&home, spec, lease_ids(mode, host_uid, host_gid))?;
        sandbox.home = Some(home);
        Ok(sandbox)
    }

    /// Opens the home tmpfs PID 1 mounted in the sandbox's mount namespace, through the
    /// helper's root (PID 1's pivot_root moved it there too). Nothing of the sandbox has
    /// run yet, so the path is the one PID 1 built; the descriptor must be a tmpfs owned
    /// by the sandbox's uid, and the helper still alive after the open (so its pid named
    /// no other process).
    fn open_namespace_home(&self, helper_pid: u32) -> Result<OwnedFd, SandboxError> {
        let path = format!("/proc/{helper_pid}/root{}", crate::init::HOME);
        let fd = hostfs::open_dir(Path::new(&path)).map_err(prep("open the home"))?;
        let st = hostfs::fstat(&fd).map_err(prep("open the home"))?;
        let on = nix::sys::statfs::fstatfs(&fd).map_err(|e| prep("open the home")(e.into()))?;
        if on.filesystem_type() != nix::sys::statfs::TMPFS_MAGIC || st.st_uid != self.host_uid {
            return Err(SandboxError::Prepare {
                stage: "open the home",
                source: io::Error::other(format!(
                    "{path} is not the sandbox's home tmpfs (owner {})",
                    st.st_uid
                )),
            });
        }
        if !self.helper_alive() {
            return Err(SandboxError::MachineDown);
        }
        Ok(fd)
    }

    /// Whether the helper has not exited (signal 0, a check, through its pidfd).
    fn helper_alive(&self) -> bool {
        self.death.signal_helper(0)
    }

    /// A fresh descriptor of the home (its own offset, for one walk or read).
    fn home_dir(&self) -> io::Result<OwnedFd> {
        let home = self
            .home
            .as_ref()
            .ok_or_else(|| io::Error::other("the sandbox has no home yet"))?;
        hostfs::open_at(home, b".", libc::O_RDONLY | libc::O_DIRECTORY)
    }

    fn handshake(&self, config: &HelperConfig) -> Result<Vec<String>, SandboxError> {
        let mut guard = self.channel.lock().unwrap_or_else(|e| e.into_inner());
        let channel = guard.as_mut().ok_or(SandboxError::MachineDown)?;
        let early_exit = |e: io::Error| SandboxError::Start {
            stage: "helper".into(),
            message: format!("the helper exited early: {e}"),
        };
        if let Err(e) = wire::write_frame(&mut channel.to_init, config, &[]) {
            // A helper that failed before reading its configuration said why first.
            return match wire::read_frame::<_, Hello>(&mut channel.from_init) {
                Ok((Hello::Failed { stage, message }, _)) => {
                    Err(SandboxError::Start { stage, message })
                }
                _ => Err(early_exit(e)),
            };
        }
        if !wire::wait_readable(channel.from_init.as_fd(), START_TIMEOUT) {
            return Err(SandboxError::Start {
                stage: "start".into(),
                message: "PID 1 did not report ready in time".into(),
            });
        }
        let (hello, _): (Hello, _) =
            wire::read_frame(&mut channel.from_init).map_err(early_exit)?;
        match hello {
            Hello::Ready { protections } => Ok(protections),
            Hello::Failed { stage, message } => Err(SandboxError::Start { stage, message }),
        }
    }

    /// Runs `command` as a fresh `bash -c` in the sandbox, as uid 1000 in `/home/user`.
    pub fn exec(&self, command: &str, options: ExecOptions) -> Result<ExecOutput, SandboxError> {
        let mut guard = self.channel.lock().unwrap_or_else(|e| e.into_inner());
        let channel = guard.as_mut().ok_or(SandboxError::MachineDown)?;
        let oom_before = self.oom_kills();
        let request = ExecRequest {
            command: command.to_string(),
            timeout_ms: options.timeout.as_millis() as u64,
            output_cap: options.output_cap,
        };
        if wire::write_frame(&mut channel.to_init, &request, &[]).is_err() {
            *guard = None;
            return Err(SandboxError::MachineDown);
        }
        if !wire::wait_readable(channel.from_init.as_fd(), options.timeout + REPLY_SLACK) {
            *guard = None;
            drop(guard);
            self.kill();
            return Err(SandboxError::Unresponsive);
        }
        let (header, output): (ExecReplyHeader, Vec<u8>) =
            match wire::read_frame(&mut channel.from_init) {
                Ok(reply) => reply,
                Err(_) => {
                    *guard = None;
                    return Err(SandboxError::MachineDown);
                }
            };
        Ok(ExecOutput {
            output,
            exit_code: header.exit_code,
            signal: header.signal,
            timed_out: header.timed_out,
            truncated: header.truncated,
            oom_killed: self.oom_kills() > oom_before,
            duration: Duration::from_micros(header.duration_us),
        })
    }

    /// Reads a file of the home from the host, safely (see [`crate::hostfs`]).
    pub fn read_file(&self, rel: impl AsRef<Path>, cap: u64) -> Result<Vec<u8>, ReadError> {
        let home = self.home_dir().map_err(|source| ReadError::Io {
            path: rel.as_ref().display().to_string(),
            source,
        })?;
        hostfs::read_file(home, rel.as_ref(), cap)
    }

    /// Snapshot of the writable home, also possible after the machine died.
    pub fn snapshot(&self) -> io::Result<Snapshot> {
        Snapshot::take_in(self.home_dir()?, &self.laid)
    }

    /// Snapshot reusing the digests of files unchanged since `previous`.
    pub fn snapshot_after(&self, previous: &Snapshot) -> io::Result<Snapshot> {
        Snapshot::take_in(self.home_dir()?, previous)
    }

    pub fn is_alive(&self) -> bool {
        self.death.get().is_none()
    }

    /// When PID 1 died, if it has.
    pub fn death(&self) -> Option<Death> {
        self.death.get()
    }

    /// A handle another thread can block on until PID 1 dies.
    pub fn death_watch(&self) -> DeathWatch {
        self.death.clone()
    }

    /// PID 1's pid on the host while it lives (None once it has died or been reaped).
    pub fn pid1_host_pid(&self) -> Option<u32> {
        self.death.pid1()
    }

    /// Ends the machine now: every process inside is killed. Returns once PID 1 is dead.
    pub fn kill(&self) {
        if self.death.get().is_some() {
            return;
        }
        self.death.request_kill();
        // SIGTERM to the helper makes it SIGKILL PID 1 (which takes the whole PID
        // namespace) and reap it, so the host's init is never left a zombie.
        self.death.signal_helper(libc::SIGTERM);
        if self.death.wait(Duration::from_secs(2)).is_none() {
            if let Some(cgroup) = &self.host.cgroup {
                cgroup.kill();
            }
            self.death.signal_helper(libc::SIGKILL);
            self.death.wait(Duration::from_secs(5));
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The host uid the sandbox's processes run as (to grant it access to a socket).
    pub fn host_uid(&self) -> u32 {
        self.host_uid
    }

    /// The protections in force for this sandbox, in words.
    pub fn protections(&self) -> &[String] {
        &self.protections
    }

    pub fn oom_kills(&self) -> u64 {
        self.host.cgroup.as_ref().map_or(0, Cgroup::oom_kills)
    }

    pub fn process_limit_hits(&self) -> u64 {
        self.host
            .cgroup
            .as_ref()
            .map_or(0, Cgroup::process_limit_hits)
    }

    pub fn process_count(&self) -> u64 {
        self.host.cgroup.as_ref().map_or(0, Cgroup::process_count)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.channel
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        self.kill();
        // HostResources::drop ends the cgroups (kept for reuse once empty) and removes
        // the run directory.
    }
}

fn lease_ids(mode: Mode, uid: u32, gid: u32) -> Option<(u32, u32)> {
    (mode == Mode::Root).then_some((uid, gid))
}

/// Lays the spec's files in the home (through its descriptor, never following a link);
/// returns the entries of those whose digest the spec gave, taken after the last change
/// to each (a later write changes its ctime). With `owner` (root mode), this thread
/// creates them as that uid and gid: the home's tmpfs belongs to the sandbox's user
/// namespace, which maps no other owner.
fn lay_files(
    home: &OwnedFd,
    spec: &SandboxSpec,
    owner: Option<(u32, u32)>,
) -> Result<Snapshot, SandboxError> {
    use nix::fcntl::OFlag;
    use nix::sys::stat::{Mode as Perm, fchmod, mkdirat};
    let lay = |e: nix::Error| prep("lay files")(e.into());
    let _as_owner = owner.map(|(uid, gid)| FsIds::become_(uid, gid));
    let mut laid = Snapshot::default();
    for file in &spec.files {
        let plain = file
            .path
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        let mut names: Vec<Vec<u8>> = file
            .path
            .components()
            .map(|c| c.as_os_str().as_bytes().to_vec())
            .collect();
        let Some(name) = names.pop().filter(|_| plain) else {
            return Err(SandboxError::Prepare {
                stage: "lay files",
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{}: must be a plain relative path", file.path.display()),
                ),
            });
        };
        let mut dir = hostfs::open_at(home, b".", libc::O_RDONLY | libc::O_DIRECTORY)
            .map_err(prep("lay files"))?;
        for parent in &names {
            match mkdirat(&dir, parent.as_slice(), Perm::from_bits_truncate(0o755)) {
                Ok(()) | Err(nix::Error::EEXIST) => {}
                Err(e) => return Err(lay(e)),
            }
            dir = hostfs::open_at(&dir, parent, libc::O_RDONLY | libc::O_DIRECTORY)
                .map_err(prep("lay files"))?;
        }
        let fd = nix::fcntl::openat(
            &dir,
            name.as_slice(),
            OFlag::O_WRONLY
                | OFlag::O_CREAT
                | OFlag::O_TRUNC
                | OFlag::O_NOFOLLOW
                | OFlag::O_CLOEXEC
                | OFlag::O_NOCTTY,
            Perm::from_bits_truncate(0o600),
        )
        .map_err(lay)?;
        let mut out = fs::File::from(fd);
        out.write_all(&file.contents).map_err(prep("lay files"))?;
        fchmod(&out, Perm::from_bits_truncate(file.mode)).map_err(lay)?;
        if let Some(sha256) = &file.sha256 {
            debug_assert_eq!(*sha256, hostfs::sha256_hex(&file.contents));
            let meta = out.metadata().map_err(prep("lay files"))?;
            laid.entries.insert(
                file.path.to_string_lossy().into_owned(),
                Entry::of_file(&meta, sha256.clone()),
            );
        }
    }
    Ok(laid)
}

/// This thread's filesystem uid and gid, set to another user's until dropped (they are
/// per thread on Linux, so nothing else in the supervisor acts as that user meanwhile).
struct FsIds {
    uid: nix::unistd::Uid,
    gid: nix::unistd::Gid,
}

impl FsIds {
    fn become_(uid: u32, gid: u32) -> FsIds {
        // Group first: the fsuid change drops the capabilities a later fsgid change needs.
        let gid = nix::unistd::setfsgid(nix::unistd::Gid::from_raw(gid));
        let uid = nix::unistd::setfsuid(nix::unistd::Uid::from_raw(uid));
        FsIds { uid, gid }
    }
}

impl Drop for FsIds {
    fn drop(&mut self) {
        nix::unistd::setfsuid(self.uid);
        nix::unistd::setfsgid(self.gid);
    }
}

/// Creates `dir` if missing and makes it mode 0711 if it is not (a stat, and no write,
/// when it already is: the runtime directories are shared by every sandbox).
fn traversable_dir(dir: &Path) -> io::Result<()> {
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir)?;
        }
        Err(e) => return Err(e),
    }
    if fs::metadata(dir)?.permissions().mode() & 0o7777 != 0o711 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o711))?;
    }
    Ok(())
}

fn count_processes_of(uid: u32) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
                .filter(|e| e.metadata().is_ok_and(|m| m.uid() == uid))
                .count() as u64
        })
        .unwrap_or(0)
}
