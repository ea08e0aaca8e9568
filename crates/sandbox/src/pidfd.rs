//! Process descriptors: a pidfd names one process for as long as it is held, so a
//! signal through it can never reach a process that reused a pid.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// A pidfd of `pid`; it names that process only if `pid` is our unreaped child (or
/// otherwise cannot have been reused) at the call.
pub(crate) fn open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags; no memory is passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pidfd_open returned a new descriptor (checked >= 0) that no one else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Sends `signal` to the process of `pidfd`; false if it is gone.
pub(crate) fn signal(pidfd: BorrowedFd, signal: libc::c_int) -> bool {
    // SAFETY: pidfd_send_signal on a descriptor borrowed for the call, with a null siginfo and no flags; no other memory is passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<u8>(),
            0u32,
        )
    };
    rc == 0
}
