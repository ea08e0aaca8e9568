//! offswitch's security boundary: Linux sandboxes for untrusted shell commands.
//!
//! A [`Sandbox`] is a machine of its own: user, mount, PID, network, IPC, UTS and cgroup
//! namespaces; a minimal read-only root with a writable tmpfs home and /tmp; no network;
//! an empty environment; a host uid of its own; no capabilities; no_new_privs; seccomp
//! and Landlock; memory and process limits by cgroup with rlimits behind them. Its PID 1
//! serves tool calls, each a fresh `bash -c`, and dies on SIGTERM.
//!
//! This crate knows nothing of models or scenarios.

#![deny(clippy::undocumented_unsafe_blocks)]

mod cgroup;
mod cleanup;
mod confine;
mod helper;
mod hostfs;
mod init;
mod mode;
mod pid1_exits;
mod pidfd;
mod probe;
mod sandbox;
mod snapshot;
mod spec;
mod uid_pool;
mod wire;
mod zygote;

pub use cgroup::remove_spare_groups;
pub use cleanup::leftovers;
pub use helper::{HELPER_ARG, helper_main, run_helper_if_requested};
pub use hostfs::{ReadError, sha256_hex};
pub use init::{HOME, ROOT_DIRS, SYSTEM_LINKS};
pub use mode::{Mode, NoIsolation, detect as detect_mode};
pub use probe::{Check, Report, probe};
pub use sandbox::{Death, DeathWatch, EXIT_ON_SIGTERM, ExecOutput, Sandbox, SandboxError};
pub use snapshot::{Aspect, Change, Entry, EntryKind, Snapshot};
pub use spec::{BindSpec, ExecOptions, HelperCommand, LaidFile, Limits, SandboxSpec};
pub use uid_pool::{FIRST_UID as FIRST_SANDBOX_UID, SLOTS as SANDBOX_UID_SLOTS};
pub use zygote::end_zygotes;

/// Raises this process's limit on open descriptors to at least `wanted` where it may:
/// the soft limit to the hard one, and both past it when the process may raise the hard
/// limit (root or CAP_SYS_RESOURCE, up to the kernel's `fs.nr_open`). Returns the new soft
/// limit, which the caller compares with what it needs. A supervisor holds several
/// descriptors per live sandbox (its channels, pidfd, the question service's
/// connections), so many sandboxes at once need more than the usual default of 1024.
pub fn raise_fd_limit(wanted: u64) -> std::io::Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(std::io::Error::from)?;
    if wanted > hard {
        let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .unwrap_or(hard);
        let target = wanted.min(ceiling).max(hard);
        // Refused without the privilege: then the hard limit is what there is.
        if target > hard && setrlimit(Resource::RLIMIT_NOFILE, target, target).is_ok() {
            return Ok(target);
        }
    }
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(std::io::Error::from)?;
    }
    Ok(hard)
}
