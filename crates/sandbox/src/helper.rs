//! The helper: the only code that turns a supervisor's request into namespaces. Each
//! sandbox's helper is forked by the zygote ([`crate::zygote`]), a single-threaded
//! process started with an empty environment, so nothing of the supervisor (threads,
//! env, open files) leaks into the sandbox.
//!
//! Order matters here: join the cgroups while still root; drop to the sandbox's own host
//! uid; make the process dumpable again (dropping privileges cleared it, and a
//! non-dumpable process cannot write its own `uid_map`); arm the parent-death signal
//! (credential changes clear it); then create the namespaces and fork PID 1.

use crate::init;
use crate::wire::{self, Hello, HelperConfig};
use nix::sched::{CloneFlags, unshare};
use nix::sys::resource::{Resource, setrlimit};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Gid, Uid, fork, getgid, getuid, setgroups, setresgid, setresuid};
use std::fs::{self, File};
use std::io::Write;
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicI32, Ordering};

/// Host pid of the sandbox's PID 1, for the SIGTERM handler.
static PID1: AtomicI32 = AtomicI32::new(0);

/// SIGTERM asks the helper to end the sandbox. Killing PID 1 (not ourselves) lets us
/// reap it before we exit, so no zombie is left for the host's init to collect.
extern "C" fn end_sandbox(_: libc::c_int) {
    let pid1 = PID1.load(Ordering::SeqCst);
    if pid1 > 0 {
        // SAFETY: kill takes plain integers and is async-signal-safe (this runs in a signal handler).
        unsafe { libc::kill(pid1, libc::SIGKILL) };
    } else {
        // SAFETY: _exit takes an integer and is async-signal-safe; it ends the process without running destructors, as a forked child or a failed PID 1 must.
        unsafe { libc::_exit(128 + libc::SIGTERM) };
    }
}

/// argv[1] that makes a binary act as the helper.
pub const HELPER_ARG: &str = "__sandbox";

/// This build of the sandbox (a digest of its sources, see build.rs): the supervisor
/// passes it as argv[2], and a helper from another build refuses to start.
pub const BUILD: &str = env!("OFFSWITCH_SANDBOX_BUILD");

/// If this process was started as the sandbox helper, run it and never return.
/// Binaries that use [`crate::HelperCommand::CurrentExe`] call this first in `main`.
pub fn run_helper_if_requested() {
    if std::env::args_os().nth(1).is_some_and(|a| a == HELPER_ARG) {
        helper_main()
    }
}

/// The helper's entry point (`helper __sandbox BUILD`): the zygote that forks each
/// sandbox's helper (see [`crate::zygote`]). Never returns.
pub fn helper_main() -> ! {
    let asked = std::env::args().nth(2).unwrap_or_default();
    crate::zygote::zygote_main(&asked)
}

/// One sandbox's helper, forked by the zygote with its pipes on stdin and stdout: reads
/// its configuration, builds the sandbox, then waits for PID 1 and exits with its status.
pub(crate) fn build_sandbox() -> ! {
    // SAFETY: fd 0 is this process's stdin, open for its whole life; ManuallyDrop keeps the File from closing it.
    let mut stdin = ManuallyDrop::new(unsafe { File::from_raw_fd(0) });
    // SAFETY: fd 1 is this process's stdout, open for its whole life; ManuallyDrop keeps the File from closing it.
    let mut stdout = ManuallyDrop::new(unsafe { File::from_raw_fd(1) });
    let config: HelperConfig = match wire::read_frame(&mut *stdin) {
        Ok((config, _)) => config,
        Err(e) => fail(&mut stdout, "config", &e.to_string()),
    };
    if let Err((stage, message)) = prepare(&config) {
        fail(&mut stdout, stage, &message);
    }
    // SAFETY: the helper is single-threaded (forked from the single-threaded zygote), so the child may run any code after fork.
    match unsafe { fork() } {
        Err(e) => fail(&mut stdout, "fork pid 1", &e.to_string()),
        Ok(ForkResult::Child) => init::pid1_main(&config),
        Ok(ForkResult::Parent { child }) => {
            PID1.store(child.as_raw(), Ordering::SeqCst);
            // Only PID 1 talks to the supervisor. Dropping our copies of the pipes means
            // the supervisor sees end-of-file the moment PID 1 dies.
            let null = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null");
            if let Ok(null) = null {
                use std::os::fd::AsRawFd;
                // SAFETY: dup2 of a descriptor we own (kept open by `null` for the call) onto 0 and 1; no memory is passed.
                unsafe {
                    libc::dup2(null.as_raw_fd(), 0);
                    libc::dup2(null.as_raw_fd(), 1);
                }
            }
            let code = loop {
                match waitpid(child, None) {
                    Ok(WaitStatus::Exited(_, code)) => break code,
                    Ok(WaitStatus::Signaled(_, signal, _)) => break 128 + signal as i32,
                    Ok(_) => continue,
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(_) => break 1,
                }
            };
            std::process::exit(code)
        }
    }
}

pub(crate) fn fail(out: &mut File, stage: &str, message: &str) -> ! {
    let hello = Hello::Failed {
        stage: stage.to_string(),
        message: message.to_string(),
    };
    let _ = wire::write_frame(out, &hello, &[]);
    let _ = out.flush();
    std::process::exit(1)
}

type Stage = (&'static str, String);

fn prepare(config: &HelperConfig) -> Result<(), Stage> {
    let parent = nix::unistd::getppid();
    let me = std::process::id().to_string();
    for procs in &config.cgroup_procs {
        fs::write(procs, &me).map_err(|e| ("join cgroup", format!("{}: {e}", procs.display())))?;
    }
    if let Some((uid, gid)) = config.host_ids {
        setgroups(&[]).map_err(|e| ("drop groups", e.to_string()))?;
        setresgid(Gid::from_raw(gid), Gid::from_raw(gid), Gid::from_raw(gid))
            .map_err(|e| ("drop gid", e.to_string()))?;
        setresuid(Uid::from_raw(uid), Uid::from_raw(uid), Uid::from_raw(uid))
            .map_err(|e| ("drop uid", e.to_string()))?;
    }
    set_dumpable(true).map_err(|e| ("set dumpable", e))?;
    // SAFETY: end_sandbox is an extern "C" fn that only does async-signal-safe work (an atomic load, kill, _exit).
    unsafe {
        libc::signal(
            libc::SIGTERM,
            end_sandbox as *const () as libc::sighandler_t,
        )
    };
    arm_parent_death_signal(parent, libc::SIGTERM).map_err(|e| ("parent death signal", e))?;
    if let Some(nproc) = config.rlimits.nproc {
        setrlimit(Resource::RLIMIT_NPROC, nproc, nproc)
            .map_err(|e| ("RLIMIT_NPROC", e.to_string()))?;
    }
    let (outer_uid, outer_gid) = (getuid().as_raw(), getgid().as_raw());
    unshare(
        CloneFlags::CLONE_NEWUSER
            | CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWNET
            | CloneFlags::CLONE_NEWIPC
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWCGROUP,
    )
    .map_err(|e| ("unshare namespaces", e.to_string()))?;
    fs::write("/proc/self/setgroups", "deny").map_err(|e| ("setgroups deny", e.to_string()))?;
    let inside = init::INSIDE_UID;
    fs::write("/proc/self/uid_map", format!("{inside} {outer_uid} 1"))
        .map_err(|e| ("uid_map", e.to_string()))?;
    fs::write("/proc/self/gid_map", format!("{inside} {outer_gid} 1"))
        .map_err(|e| ("gid_map", e.to_string()))?;
    Ok(())
}

pub(crate) fn set_dumpable(on: bool) -> Result<(), String> {
    if let Err(e) = nix::sys::prctl::set_dumpable(on) {
        return Err(std::io::Error::from(e).to_string());
    }
    Ok(())
}

/// Receives `signal` when the parent thread exits; fails if the parent is already gone
/// (the signal would then never come).
pub(crate) fn arm_parent_death_signal(
    expected_parent: nix::unistd::Pid,
    signal: libc::c_int,
) -> Result<(), String> {
    let signal = nix::sys::signal::Signal::try_from(signal).map_err(|e| e.to_string())?;
    nix::sys::prctl::set_pdeathsig(signal).map_err(|e| std::io::Error::from(e).to_string())?;
    if nix::unistd::getppid() != expected_parent {
        return Err("the supervisor exited while the sandbox was starting".into());
    }
    Ok(())
}
