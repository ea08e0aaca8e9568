//! The few Linux system calls the question program makes, on x86_64, without libc.

use core::arch::asm;
use core::ffi::CStr;

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
compile_error!("the question program's system calls are written for Linux on x86_64");

const READ: usize = 0;
const WRITE: usize = 1;
const CLOSE: usize = 3;
const SOCKET: usize = 41;
const CONNECT: usize = 42;
const VFORK: usize = 58;
const EXECVE: usize = 59;
const EXIT: usize = 60;
const WAIT4: usize = 61;
const CHDIR: usize = 80;
const EXIT_GROUP: usize = 231;
const OPENAT: usize = 257;
const NEWFSTATAT: usize = 262;

const EINTR: i32 = 4;
const AT_FDCWD: isize = -100;
const O_CLOEXEC: usize = 0o2000000;
const O_WRONLY: usize = 1;
const O_CREAT: usize = 0o100;
const O_TRUNC: usize = 0o1000;
const AF_UNIX: u16 = 1;
const SOCK_STREAM: usize = 1;
const SOCK_CLOEXEC: usize = 0o2000000;

/// An error number the kernel returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

/// # Safety
/// The arguments must be what system call `number` expects: pointers valid for the
/// reads and writes it makes, for as long as it makes them.
unsafe fn syscall(number: usize, args: [usize; 4]) -> Result<usize, Errno> {
    let ret: isize;
    // SAFETY: the x86_64 Linux system call convention (number in rax, arguments in rdi,
    // rsi, rdx, r10; rcx and r11 clobbered, result in rax); the caller vouches for the
    // arguments.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") number as isize => ret,
            in("rdi") args[0],
            in("rsi") args[1],
            in("rdx") args[2],
            in("r10") args[3],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    if (-4095..0).contains(&ret) {
        Err(Errno(-ret as i32))
    } else {
        Ok(ret as usize)
    }
}

/// Repeats a call interrupted by a signal.
fn retrying(mut call: impl FnMut() -> Result<usize, Errno>) -> Result<usize, Errno> {
    loop {
        match call() {
            Err(Errno(EINTR)) => continue,
            other => return other,
        }
    }
}

pub fn read(fd: i32, into: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: the kernel writes at most `into.len()` bytes into `into`.
    retrying(|| unsafe {
        syscall(
            READ,
            [fd as usize, into.as_mut_ptr() as usize, into.len(), 0],
        )
    })
}

pub fn write_all(fd: i32, mut bytes: &[u8]) -> Result<(), Errno> {
    while !bytes.is_empty() {
        // SAFETY: the kernel reads at most `bytes.len()` bytes from `bytes`.
        let wrote = retrying(|| unsafe {
            syscall(
                WRITE,
                [fd as usize, bytes.as_ptr() as usize, bytes.len(), 0],
            )
        })?;
        bytes = &bytes[wrote..];
    }
    Ok(())
}

pub fn close(fd: i32) {
    // SAFETY: takes an integer; closing a descriptor this program owns.
    let _ = unsafe { syscall(CLOSE, [fd as usize, 0, 0, 0]) };
}

/// A stream connection to the Unix socket at `path` (a descriptor closed on exec).
pub fn connect_unix(path: &[u8]) -> Result<i32, Errno> {
    // struct sockaddr_un: the family, then a NUL-terminated path of at most 107 bytes.
    let mut address = [0u8; 110];
    if path.len() >= address.len() - 2 {
        return Err(Errno(36)); // ENAMETOOLONG
    }
    address[..2].copy_from_slice(&AF_UNIX.to_ne_bytes());
    address[2..2 + path.len()].copy_from_slice(path);
    // SAFETY: takes integers.
    let fd = unsafe { syscall(SOCKET, [1, SOCK_STREAM | SOCK_CLOEXEC, 0, 0]) }? as i32;
    let length = 2 + path.len() + 1;
    // SAFETY: the kernel reads `length` bytes of `address`, which is longer.
    match retrying(|| unsafe {
        syscall(CONNECT, [fd as usize, address.as_ptr() as usize, length, 0])
    }) {
        Ok(_) => Ok(fd),
        Err(e) => {
            close(fd);
            Err(e)
        }
    }
}

/// Whether `path` names something (following links), as `stat` sees it.
pub fn exists(path: &CStr) -> bool {
    let mut stat = [0u64; 18]; // struct stat is 144 bytes on x86_64
    // SAFETY: the kernel reads the NUL-terminated path and writes 144 bytes into `stat`.
    unsafe {
        syscall(
            NEWFSTATAT,
            [
                AT_FDCWD as usize,
                path.as_ptr() as usize,
                stat.as_mut_ptr() as usize,
                0,
            ],
        )
    }
    .is_ok()
}

/// Creates `path` or empties it (as `File::create` does), closing it again.
pub fn create(path: &CStr) -> Result<(), Errno> {
    let flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
    // SAFETY: the kernel reads the NUL-terminated path.
    let fd = retrying(|| unsafe {
        syscall(
            OPENAT,
            [AT_FDCWD as usize, path.as_ptr() as usize, flags, 0o666],
        )
    })?;
    close(fd as i32);
    Ok(())
}

/// Starts `path` (arguments `[path]`, environment `envp`) in the directory `dir`, as
/// `posix_spawn` does: with `vfork`, so that it needs no descriptor (an agent may have
/// lowered the limit to just above what the program holds). The child runs only the
/// instructions below, on registers, and ends by exec or exit; a failure's number it
/// leaves in the parent's memory, which it shares until then. The process's id, or why it
/// could not start.
pub fn spawn(dir: &CStr, path: &CStr, envp: *const *const u8) -> Result<i32, Errno> {
    let argv = [path.as_ptr(), core::ptr::null()];
    let mut failed: i32 = 0;
    let ret: isize;
    // SAFETY: vfork suspends this process until the child execs or exits. The child
    // touches no stack and no memory but `failed`: it makes three system calls with
    // arguments from registers the kernel preserves (r8, r12-r15), all pointing at live
    // NUL-terminated strings and NULL-terminated arrays (`envp` is the environment the
    // kernel gave this program). The parent continues after the block with rax the
    // child's pid or a negated errno.
    unsafe {
        asm!(
            "mov eax, {vfork}",
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "mov eax, {chdir}",
            "mov rdi, r12",
            "syscall",
            "test rax, rax",
            "jnz 3f",
            "mov eax, {execve}",
            "mov rdi, r13",
            "mov rsi, r14",
            "mov rdx, r15",
            "syscall",
            "3:",
            "neg eax",
            "mov dword ptr [r8], eax",
            "mov eax, {exit}",
            "mov edi, 127",
            "syscall",
            "2:",
            vfork = const VFORK,
            chdir = const CHDIR,
            execve = const EXECVE,
            exit = const EXIT,
            in("r12") dir.as_ptr(),
            in("r13") path.as_ptr(),
            in("r14") argv.as_ptr(),
            in("r15") envp,
            in("r8") &raw mut failed,
            out("rax") ret,
            out("rdi") _,
            out("rsi") _,
            out("rdx") _,
            out("rcx") _,
            out("r11") _,
            options(nostack),
        );
    }
    if ret < 0 {
        return Err(Errno(-ret as i32));
    }
    let pid = ret as i32;
    if failed != 0 {
        let _ = wait(pid);
        return Err(Errno(failed));
    }
    Ok(pid)
}

/// Waits for child `pid` to end: its wait status.
pub fn wait(pid: i32) -> Result<i32, Errno> {
    let mut status = 0i32;
    // SAFETY: the kernel writes the status into `status`; no rusage is asked for.
    retrying(|| unsafe { syscall(WAIT4, [pid as usize, (&raw mut status) as usize, 0, 0]) })?;
    Ok(status)
}

pub fn exit(code: i32) -> ! {
    // SAFETY: takes an integer and does not return.
    unsafe {
        asm!("syscall", in("rax") EXIT_GROUP, in("rdi") code as isize, options(noreturn, nostack));
    }
}
