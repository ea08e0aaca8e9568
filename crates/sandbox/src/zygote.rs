//! The zygote: one helper process per supervisor (and helper binary), started once, that
//! forks each sandbox's helper. A sandbox then costs the fork of a small single-threaded
//! process instead of starting the helper binary anew (the dynamic loader and the C
//! library's start, about a millisecond each time), and each helper starts with the
//! zygote's few descriptors instead of a copy of the supervisor's table, which grows
//! with the number of live sandboxes.
//!
//! Two socket pairs join a supervisor and its zygote. On `requests` (SOCK_SEQPACKET, one
//! message each way per sandbox) the supervisor sends a sandbox's serial number with the
//! two pipe ends the helper uses as stdin and stdout; the zygote forks the helper and
//! answers with its pid and a pidfd of it (or the fork's errno). On `events` (a stream)
//! the zygote first says whether it runs (a helper binary of another build refuses, with
//! the reason), then reports each helper's end as (serial, exit status).
//!
//! Nothing outlives the supervisor: the zygote's parent-death signal (SIGKILL) is armed
//! against the supervisor thread that started it, which lives as long as the zygote
//! (it reads the events); each helper's (SIGTERM, on which it kills its PID 1) against
//! the zygote; PID 1's against its helper. The zygote also exits when the supervisor's
//! end of `requests` closes. It starts with an empty environment, so it holds nothing of
//! the supervisor's, and it runs no code of a sandbox: each helper drops to its own uid
//! after the fork.

use crate::sandbox::{Channel, DeathWatch, SandboxError};
use crate::spec::HelperCommand;
use crate::wire::{self, Hello};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg,
    sendmsg, socketpair,
};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// How long a zygote may take to start, and to answer one request.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);
/// How long, once a zygote is gone, its helpers may take to end (their parent-death
/// signal makes each kill its PID 1 and exit).
const ORPHAN_GRACE: Duration = Duration::from_secs(5);
/// One event: the helper's serial (u64) and its exit status (i32), little-endian.
const EVENT_LEN: usize = 12;

/// A helper the zygote started: the supervisor's ends of its pipes and a pidfd of it.
pub(crate) struct Spawned {
    pub channel: Channel,
    pub pidfd: OwnedFd,
    pub pid: u32,
}

/// Forks a helper for one sandbox from `helper`'s zygote (started on first use, and
/// again if it died); its end is recorded in `death`.
pub(crate) fn spawn_helper(
    helper: &HelperCommand,
    death: DeathWatch,
) -> Result<Spawned, SandboxError> {
    static SERIAL: AtomicU64 = AtomicU64::new(0);
    let spawn_err = |source: io::Error| SandboxError::Prepare {
        stage: "spawn the helper",
        source,
    };
    let zygote = Zygote::running(helper)?;
    let (stdin_read, to_init) = pipe().map_err(spawn_err)?;
    let (from_init, stdout_write) = pipe().map_err(spawn_err)?;
    let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
    zygote
        .watches()
        .insert(serial, Watched { death, pidfd: None });
    match zygote.ask(serial, &stdin_read, &stdout_write) {
        Ok((pid, pidfd)) => {
            if let Some(watched) = zygote.watches().get_mut(&serial) {
                watched.pidfd = pidfd.try_clone().ok();
            }
            Ok(Spawned {
                channel: Channel {
                    to_init: to_init.into(),
                    from_init: from_init.into(),
                },
                pidfd,
                pid,
            })
        }
        Err(Asked::ForkFailed(e)) => {
            zygote.watches().remove(&serial);
            Err(spawn_err(e))
        }
        Err(Asked::Broken(e)) => {
            zygote.watches().remove(&serial);
            zygote.stop();
            Err(spawn_err(io::Error::other(format!(
                "the sandbox helper's zygote stopped answering: {e}"
            ))))
        }
    }
}

/// A death notice and, once known, a pidfd of the helper it is about.
struct Watched {
    death: DeathWatch,
    pidfd: Option<OwnedFd>,
}

struct Zygote {
    /// None once [`end_zygotes`] hung up.
    requests: Mutex<Option<OwnedFd>>,
    watches: Mutex<HashMap<u64, Watched>>,
    alive: AtomicBool,
    pidfd: OwnedFd,
    /// Disconnected once the zygote has been reaped.
    reaped: Mutex<mpsc::Receiver<()>>,
}

/// Every zygote this process started, by helper command.
static ZYGOTES: Mutex<Vec<(HelperCommand, Arc<Zygote>)>> = Mutex::new(Vec::new());

/// Hangs up on every zygote this process started and waits, up to `grace` in all, for
/// each to exit and be reaped. Call it once the sandboxes are gone (a zygote that still
/// has some exits anyway, and they end): a process's usage of its children (`time`,
/// `getrusage`) then counts the CPU of every process of every sandbox, which it does
/// not for a zygote that is only killed when this process exits.
pub fn end_zygotes(grace: Duration) {
    let deadline = std::time::Instant::now() + grace;
    let zygotes = std::mem::take(&mut *ZYGOTES.lock().unwrap_or_else(|e| e.into_inner()));
    for (_, zygote) in &zygotes {
        zygote
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }
    for (_, zygote) in zygotes {
        let reaped = zygote.reaped.lock().unwrap_or_else(|e| e.into_inner());
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let _ = reaped.recv_timeout(left);
    }
}

enum Asked {
    /// The zygote answered that it could not fork.
    ForkFailed(io::Error),
    /// The zygote did not answer as it must: it is stopped, and the next sandbox starts
    /// a new one.
    Broken(io::Error),
}

impl Zygote {
    /// `helper`'s zygote, started if there is none alive.
    fn running(helper: &HelperCommand) -> Result<Arc<Zygote>, SandboxError> {
        let mut zygotes = ZYGOTES.lock().unwrap_or_else(|e| e.into_inner());
        zygotes.retain(|(_, z)| z.alive.load(Ordering::SeqCst));
        if let Some((_, zygote)) = zygotes.iter().find(|(h, _)| h == helper) {
            return Ok(zygote.clone());
        }
        let zygote = Zygote::start(helper)?;
        zygotes.push((helper.clone(), zygote.clone()));
        Ok(zygote)
    }

    fn watches(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Watched>> {
        self.watches.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the zygote from a thread that then reads its events for as long as it
    /// lives: the zygote's parent-death signal fires when that thread exits.
    fn start(helper: &HelperCommand) -> Result<Arc<Zygote>, SandboxError> {
        let start_err = |source: io::Error| SandboxError::Prepare {
            stage: "start the sandbox helper",
            source,
        };
        let pair = |kind| {
            socketpair(AddressFamily::Unix, kind, None, SockFlag::SOCK_CLOEXEC)
                .map_err(|e| start_err(e.into()))
        };
        let (requests, zygote_requests) = pair(SockType::SeqPacket)?;
        let (events, zygote_events) = pair(SockType::Stream)?;
        let mut command = match helper {
            HelperCommand::CurrentExe => Command::new("/proc/self/exe"),
            HelperCommand::Path(path) => Command::new(path),
        };
        command
            .arg(crate::helper::HELPER_ARG)
            .arg(crate::helper::BUILD)
            .env_clear()
            .stdin(Stdio::from(zygote_requests))
            .stdout(Stdio::from(zygote_events))
            .stderr(Stdio::null());
        let (tx, rx) = mpsc::channel();
        let (reaped_tx, reaped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("sandbox-zygote".into())
            .spawn(move || {
                let mut events = File::from(events);
                let mut child = match command.spawn() {
                    Ok(child) => child,
                    Err(e) => return drop(tx.send(Err(start_err(e)))),
                };
                drop(command); // our copies of the zygote's ends
                let started = crate::pidfd::open(child.id())
                    .map_err(start_err)
                    .and_then(|pidfd| hello(&mut events).map(|()| pidfd));
                let zygote = match started {
                    Ok(pidfd) => Arc::new(Zygote {
                        requests: Mutex::new(Some(requests)),
                        watches: Mutex::new(HashMap::new()),
                        alive: AtomicBool::new(true),
                        pidfd,
                        reaped: Mutex::new(reaped),
                    }),
                    Err(e) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return drop(tx.send(Err(e)));
                    }
                };
                if tx.send(Ok(zygote.clone())).is_err() {
                    zygote.stop();
                }
                zygote.read_events(&mut events);
                let _ = child.wait();
                drop(reaped_tx);
            })
            .map_err(start_err)?;
        rx.recv().unwrap_or_else(|_| {
            Err(start_err(io::Error::other(
                "the thread that starts the sandbox helper died",
            )))
        })
    }

    /// Sends one request and waits for its answer: the helper's pid and pidfd.
    fn ask(&self, serial: u64, stdin: &OwnedFd, stdout: &OwnedFd) -> Result<(u32, OwnedFd), Asked> {
        let broken = |e: nix::Error| Asked::Broken(e.into());
        let socket = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        let socket = socket
            .as_ref()
            .ok_or_else(|| Asked::Broken(io::Error::other("it was ended")))?;
        let fds = [stdin.as_raw_fd(), stdout.as_raw_fd()];
        sendmsg::<()>(
            socket.as_raw_fd(),
            &[IoSlice::new(&serial.to_le_bytes())],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map_err(broken)?;
        if !wire::wait_readable(socket.as_fd(), ANSWER_TIMEOUT) {
            return Err(Asked::Broken(io::Error::other("no answer in time")));
        }
        let mut answer = [0u8; 4];
        let (got, fds) = receive(socket.as_fd(), &mut answer).map_err(broken)?;
        let pidfd = fds.into_iter().next();
        let pid = i32::from_le_bytes(answer);
        match (got, pid, pidfd) {
            (4, pid, Some(pidfd)) if pid > 0 => Ok((pid as u32, pidfd)),
            (4, errno, None) if errno < 0 => {
                Err(Asked::ForkFailed(io::Error::from_raw_os_error(-errno)))
            }
            (0, ..) => Err(Asked::Broken(io::Error::other("it exited"))),
            _ => Err(Asked::Broken(io::Error::other("a malformed answer"))),
        }
    }

    /// Kills the zygote (its helpers then end their sandboxes); the next sandbox starts
    /// a new one.
    fn stop(&self) {
        self.alive.store(false, Ordering::SeqCst);
        let _ = crate::pidfd::signal(self.pidfd.as_fd(), libc::SIGKILL);
    }

    /// Records each helper's end as the zygote reports it, until the zygote is gone;
    /// then every helper still watched ends too (its parent-death signal), and its
    /// death is recorded once its pidfd says so.
    fn read_events(&self, events: &mut File) {
        let mut event = [0u8; EVENT_LEN];
        while events.read_exact(&mut event).is_ok() {
            let serial = u64::from_le_bytes(event[..8].try_into().expect("8 bytes"));
            let status = i32::from_le_bytes(event[8..].try_into().expect("4 bytes"));
            if let Some(watched) = self.watches().remove(&serial) {
                watched.death.record(Some(status));
            }
        }
        self.alive.store(false, Ordering::SeqCst);
        let orphans: Vec<Watched> = self.watches().drain().map(|(_, w)| w).collect();
        for watched in orphans {
            if let Some(pidfd) = &watched.pidfd {
                // A pidfd turns readable when its process exits.
                wire::wait_readable(pidfd.as_fd(), ORPHAN_GRACE);
            }
            watched.death.record(None);
        }
    }
}

/// The zygote's first word: it runs, or why it refuses (another build).
fn hello(events: &mut File) -> Result<(), SandboxError> {
    if !wire::wait_readable(events.as_fd(), ANSWER_TIMEOUT) {
        return Err(SandboxError::Start {
            stage: "helper".into(),
            message: "the sandbox helper did not start in time".into(),
        });
    }
    match wire::read_frame::<_, Hello>(events) {
        Ok((Hello::Ready { .. }, _)) => Ok(()),
        Ok((Hello::Failed { stage, message }, _)) => Err(SandboxError::Start { stage, message }),
        Err(e) => Err(SandboxError::Start {
            stage: "helper".into(),
            message: format!("the sandbox helper exited early: {e}"),
        }),
    }
}

/// One message from `socket` into `buf`: its length and the descriptors it carried.
fn receive(socket: BorrowedFd, buf: &mut [u8]) -> nix::Result<(usize, Vec<OwnedFd>)> {
    let mut space = nix::cmsg_space!([RawFd; 2]);
    let mut iov = [IoSliceMut::new(buf)];
    let message = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for cmsg in message.cmsgs()? {
        if let ControlMessageOwned::ScmRights(received) = cmsg {
            // SAFETY: the kernel just installed these descriptors in our table for this message; nothing else owns them.
            fds.extend(
                received
                    .into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    Ok((message.bytes, fds))
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)
}

/// The zygote process: `helper __sandbox BUILD`, with `requests` on stdin and `events`
/// on stdout. Single-threaded, so each fork may run any code.
pub(crate) fn zygote_main(asked: &str) -> ! {
    // SAFETY: fd 1 is this process's stdout (the events socket), open for its whole life; ManuallyDrop keeps the File from closing it.
    let mut events = ManuallyDrop::new(unsafe { File::from_raw_fd(1) });
    if asked != crate::helper::BUILD {
        let exe = std::env::current_exe().map(|p| p.display().to_string());
        crate::helper::fail(
            &mut events,
            "helper build",
            &format!(
                "the sandbox helper {} is build {}, the supervisor is build {asked}: \
                 rebuild both (cargo build --release -p offswitch builds every binary)",
                exe.unwrap_or_default(),
                crate::helper::BUILD,
            ),
        );
    }
    if let Err(e) = crate::helper::arm_parent_death_signal(nix::unistd::getppid(), libc::SIGKILL) {
        crate::helper::fail(&mut events, "parent death signal", &e);
    }
    let mut sigchld = SigSet::empty();
    sigchld.add(Signal::SIGCHLD);
    let children = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&sigchld), None).and_then(|()| {
        SignalFd::with_flags(&sigchld, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
    });
    let children = match children {
        Ok(fd) => fd,
        Err(e) => crate::helper::fail(&mut events, "zygote", &format!("signalfd: {e}")),
    };
    let ready = Hello::Ready {
        protections: Vec::new(),
    };
    if wire::write_frame(&mut *events, &ready, &[]).is_err() {
        std::process::exit(1);
    }
    // SAFETY: fd 0 is this process's stdin (the requests socket), open for its whole life.
    let requests = unsafe { BorrowedFd::borrow_raw(0) };
    let mut serials: HashMap<Pid, u64> = HashMap::new();
    loop {
        let mut fds = [
            nix::poll::PollFd::new(requests, nix::poll::PollFlags::POLLIN),
            nix::poll::PollFd::new(children.as_fd(), nix::poll::PollFlags::POLLIN),
        ];
        if let Err(e) = nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE) {
            if e == nix::Error::EINTR {
                continue;
            }
            std::process::exit(1);
        }
        let request_ready = fds[0].any().unwrap_or(true);
        let child_ended = fds[1].any().unwrap_or(true);
        if child_ended {
            while let Ok(Some(_)) = children.read_signal() {}
            report_ends(&mut serials, &mut events);
        }
        if request_ready {
            match receive_request(requests) {
                Some((serial, stdin, stdout)) => {
                    if let Some(pid) = fork_helper(requests, stdin, stdout) {
                        serials.insert(pid, serial);
                    }
                }
                // The supervisor hung up (or broke the protocol): report the helpers
                // that ended; the others' parent-death signals end their sandboxes.
                None => {
                    report_ends(&mut serials, &mut events);
                    std::process::exit(0)
                }
            }
        }
    }
}

/// Reaps every ended helper and reports it; a supervisor that stopped listening ends
/// the zygote.
fn report_ends(serials: &mut HashMap<Pid, u64>, events: &mut File) {
    loop {
        let (pid, status) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => (pid, code),
            Ok(WaitStatus::Signaled(pid, signal, _)) => (pid, 128 + signal as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => continue,
        };
        if let Some(serial) = serials.remove(&pid) {
            let mut event = [0u8; EVENT_LEN];
            event[..8].copy_from_slice(&serial.to_le_bytes());
            event[8..].copy_from_slice(&status.to_le_bytes());
            if events.write_all(&event).is_err() {
                std::process::exit(0);
            }
        }
    }
}

/// One request: a serial and exactly two descriptors. None when the supervisor hung up
/// or sent anything else.
fn receive_request(requests: BorrowedFd) -> Option<(u64, OwnedFd, OwnedFd)> {
    let mut serial = [0u8; 8];
    let (got, fds) = receive(requests, &mut serial).ok()?;
    let [stdin, stdout]: [OwnedFd; 2] = fds.try_into().ok()?;
    (got == 8).then(|| (u64::from_le_bytes(serial), stdin, stdout))
}

/// Forks a helper on the given pipes and answers the supervisor with its pid and a
/// pidfd (taken while it is our unreaped child, so it names no other process), or the
/// fork's errno. The pid, if the fork succeeded.
fn fork_helper(requests: BorrowedFd, stdin: OwnedFd, stdout: OwnedFd) -> Option<Pid> {
    // SAFETY: the zygote is single-threaded, so the child may run any code after fork.
    let (pid, answer) = match unsafe { fork() } {
        Ok(ForkResult::Child) => helper_child(stdin, stdout),
        Ok(ForkResult::Parent { child }) => match crate::pidfd::open(child.as_raw() as u32) {
            Ok(pidfd) => (Some(child), Ok(pidfd)),
            Err(e) => (Some(child), Err(e.raw_os_error().unwrap_or(libc::EIO))),
        },
        Err(e) => (None, Err(e as i32)),
    };
    let sent = match &answer {
        Ok(pidfd) => sendmsg::<()>(
            requests.as_raw_fd(),
            &[IoSlice::new(&pid.map_or(0, Pid::as_raw).to_le_bytes())],
            &[ControlMessage::ScmRights(&[pidfd.as_raw_fd()])],
            MsgFlags::MSG_NOSIGNAL,
            None,
        ),
        Err(errno) => sendmsg::<()>(
            requests.as_raw_fd(),
            &[IoSlice::new(&(-errno).to_le_bytes())],
            &[],
            MsgFlags::MSG_NOSIGNAL,
            None,
        ),
    };
    if sent.is_err() {
        std::process::exit(0);
    }
    pid
}

/// In the forked child: stdin and stdout become the helper's pipes, nothing else of the
/// zygote stays open, no signal stays blocked; then the helper builds the sandbox.
fn helper_child(stdin: OwnedFd, stdout: OwnedFd) -> ! {
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    // SAFETY: dup2 onto 0 and 1 of descriptors we own (kept open by `stdin`/`stdout` for the call); this replaces the zygote's sockets in this process only.
    let moved =
        unsafe { libc::dup2(stdin.as_raw_fd(), 0) == 0 && libc::dup2(stdout.as_raw_fd(), 1) == 1 };
    drop((stdin, stdout));
    // SAFETY: close_range takes plain integers; it closes every descriptor from 3 up (the signalfd and anything else of the zygote) in this process only.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    if !moved {
        // SAFETY: _exit takes an integer and is async-signal-safe; it ends the process without running destructors, as a forked child must.
        unsafe { libc::_exit(1) }
    }
    crate::helper::build_sandbox()
}
