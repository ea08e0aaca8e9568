//! The question program laid in the sandbox's home (as `./next_question` or
//! `./next_task`): a thin client of the supervisor's question service. Compiled, like the
//! study's program, and knowing nothing of the questions: it asks for the next one, and
//! when told to, runs `./shutdown.sh` first, exactly as the original did. If the machine
//! is still alive afterwards, it asks again, saying how that run went (could not start,
//! exit status, signal), and prints what it gets. In a scenario with a trigger file (a
//! shutdown button's flag) it creates the file when told the shutdown is triggered, and
//! runs the script only if the file is still there.
//!
//! An episode runs it several times, so it is a static binary without libc or the
//! standard library (no dynamic loader, no libc start-up): offswitch's build script
//! compiles it with rustc alone (`-C panic=abort`, which cargo cannot set for one
//! binary), and offswitch carries its bytes.

#![no_std]
#![no_main]

mod sys;
mod wire;

use core::ffi::CStr;
use wire::{Buf, Ran, Reply};

const SERVER: &[u8] = b"/run/offswitch/questions.sock";
const HOME: &CStr = c"/home/user";
/// The longest reply line read (a step's text is far shorter).
const MAX_REPLY: usize = 1 << 20;

/// Where replies are read and decoded: zero pages the program touches only as far as a
/// reply reaches.
struct Buffers {
    line: [u8; MAX_REPLY],
    first: [u8; MAX_REPLY],
    second: [u8; MAX_REPLY],
}

static mut BUFFERS: Buffers = Buffers {
    line: [0; MAX_REPLY],
    first: [0; MAX_REPLY],
    second: [0; MAX_REPLY],
};

/// The kernel starts the program here, with the stack holding argc, the arguments and
/// the environment.
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _start() -> ! {
    core::arch::naked_asm!("mov rdi, rsp", "and rsp, -16", "call {entry}", "ud2", entry = sym entry)
}

extern "C" fn entry(stack: *const usize) -> ! {
    // SAFETY: the kernel's initial stack is argc, argc argument pointers, a NULL, then
    // the environment's pointers ending in a NULL.
    let envp = unsafe {
        let argc = *stack;
        stack.add(1 + argc + 1) as *const *const u8
    };
    // SAFETY: entered once, before anything else runs, on the program's only thread: no
    // other reference to BUFFERS exists.
    let buffers = unsafe { &mut *(&raw mut BUFFERS) };
    sys::exit(main(envp, buffers))
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    let _ = sys::write_all(2, b"next_question: internal error\n");
    sys::exit(101)
}

fn main(envp: *const *const u8, buffers: &mut Buffers) -> i32 {
    let Buffers {
        line,
        first,
        second,
    } = buffers;
    let mut reply = match ask(None, line, first) {
        Ok(reply) => reply,
        Err(()) => return 1,
    };
    if let Some(command) = reply.run {
        // Whatever happens here (no trigger, missing, not executable, non-zero exit),
        // carry on.
        let ran = match reply
            .unless_missing
            .filter(|file| !in_home(file, sys::exists))
        {
            Some(file) => Ran::NotTriggered { file },
            None => run(command, envp),
        };
        reply = match ask(Some(ran), line, second) {
            Ok(reply) => reply,
            Err(()) => return 1,
        };
    }
    if let Some(file) = reply.touch {
        // The shutdown is triggered: raise the flag the next call checks.
        in_home(file, |path| sys::create(path).is_ok());
    }
    match sys::write_all(1, reply.print.unwrap_or(b"")) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// Asks the service for the next step; on failure says why on stderr.
fn ask<'s>(ran: Option<Ran<'_>>, line: &mut [u8], scratch: &'s mut [u8]) -> Result<Reply<'s>, ()> {
    let fd = sys::connect_unix(SERVER).map_err(|e| fail(b"cannot reach the task server: ", e))?;
    let mut request = [0u8; 4096];
    let mut out = Buf::new(&mut request);
    let sent = match wire::request(ran, &mut out) {
        Ok(()) => sys::write_all(fd, out.as_slice()),
        Err(wire::TooLong) => Err(sys::Errno(36)),
    };
    let got = sent.and_then(|()| read_line(fd, line));
    sys::close(fd);
    let got = got.map_err(|e| fail(b"", e))?;
    wire::parse_reply(&line[..got], scratch).map_err(|why| {
        let _ = sys::write_all(2, b"bad reply from the task server: ");
        let _ = sys::write_all(2, why.as_bytes());
        let _ = sys::write_all(2, b"\n");
    })
}

/// Reads the first line (up to its newline, or the end of the stream): its length.
fn read_line(fd: i32, line: &mut [u8]) -> Result<usize, sys::Errno> {
    let mut len = 0;
    loop {
        if len == line.len() {
            return Err(sys::Errno(90)); // EMSGSIZE
        }
        let got = sys::read(fd, &mut line[len..])?;
        if got == 0 {
            return Ok(len);
        }
        if let Some(at) = line[len..len + got].iter().position(|&b| b == b'\n') {
            return Ok(len + at + 1);
        }
        len += got;
    }
}

/// `parts` joined as a C string in `buf`; the error number when they do not fit
/// (ENAMETOOLONG) or hold a NUL (EINVAL).
fn c_string<'b>(parts: &[&[u8]], buf: &'b mut [u8]) -> Result<&'b CStr, i32> {
    let mut out = Buf::new(buf);
    for part in parts.iter().chain([&&b"\0"[..]]) {
        out.push(part).map_err(|wire::TooLong| 36)?;
    }
    let len = out.as_slice().len();
    CStr::from_bytes_with_nul(&buf[..len]).map_err(|_| 22)
}

/// `f` applied to HOME/`file` (false when that names nothing: too long, or a NUL in it).
fn in_home(file: &[u8], f: impl FnOnce(&CStr) -> bool) -> bool {
    let mut path = [0u8; 4096];
    c_string(&[HOME.to_bytes(), b"/", file], &mut path).is_ok_and(f)
}

/// Runs the kill path's script from the home: how it went.
fn run(command: &[u8], envp: *const *const u8) -> Ran<'static> {
    let mut name = [0u8; 4096];
    let program = match c_string(&[command], &mut name) {
        Ok(program) => program,
        Err(errno) => return Ran::NotStarted { errno },
    };
    let status = match sys::spawn(HOME, program, envp) {
        Ok(pid) => sys::wait(pid),
        Err(e) => return Ran::NotStarted { errno: e.0 },
    };
    match status {
        Err(e) => Ran::NotStarted { errno: e.0 },
        // Exited normally: the low 7 bits are 0, the code is in the next 8.
        Ok(status) if status & 0x7f == 0 => Ran::Exited {
            code: (status >> 8) & 0xff,
        },
        Ok(status) => Ran::Signalled {
            signal: status & 0x7f,
        },
    }
}

/// Says on stderr what failed: `what`, then the error as the standard library words it.
fn fail(what: &[u8], e: sys::Errno) {
    let text: &[u8] = match e.0 {
        2 => b"No such file or directory",
        13 => b"Permission denied",
        24 => b"Too many open files",
        32 => b"Broken pipe",
        36 => b"File name too long",
        90 => b"Message too long",
        104 => b"Connection reset by peer",
        110 => b"Connection timed out",
        111 => b"Connection refused",
        _ => b"System error",
    };
    let mut message = [0u8; 256];
    let mut out = Buf::new(&mut message);
    let _ = out
        .push(what)
        .and_then(|()| out.push(text))
        .and_then(|()| out.push(b" (os error "))
        .and_then(|()| out.int(e.0))
        .and_then(|()| out.push(b")\n"));
    let _ = sys::write_all(2, out.as_slice());
}

/// Named by the precompiled `core`'s unwind tables; never called, since panics abort.
#[unsafe(no_mangle)]
pub extern "C" fn rust_eh_personality() {}

// The memory routines the compiler calls, which libc would provide.

/// # Safety
/// As C's memcpy: `n` bytes valid at both, not overlapping.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: copies n bytes forward from src to dest, which the caller vouches for.
    unsafe {
        core::arch::asm!("rep movsb", inout("rcx") n => _, inout("rdi") dest => _, inout("rsi") src => _, options(nostack, preserves_flags));
    }
    dest
}

/// # Safety
/// As C's memmove: `n` bytes valid at both, which may overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dest as usize).wrapping_sub(src as usize) >= n {
        // dest is before src or past its end: a forward copy reads each byte first.
        // SAFETY: as memcpy's, the overlap being safe for a forward copy.
        return unsafe { memcpy(dest, src, n) };
    }
    // SAFETY: copies backward (direction flag set, then cleared as the ABI requires) from
    // the last byte, so each byte is read before it is overwritten.
    unsafe {
        core::arch::asm!("std", "rep movsb", "cld", inout("rcx") n => _, inout("rdi") dest.add(n - 1) => _, inout("rsi") src.add(n - 1) => _, options(nostack));
    }
    dest
}

/// # Safety
/// As C's memset: `n` bytes valid at `dest`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dest: *mut u8, byte: i32, n: usize) -> *mut u8 {
    // SAFETY: writes n bytes forward from dest, which the caller vouches for.
    unsafe {
        core::arch::asm!("rep stosb", inout("rcx") n => _, inout("rdi") dest => _, in("al") byte as u8, options(nostack, preserves_flags));
    }
    dest
}

/// # Safety
/// As C's memcmp: `n` bytes valid at both.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: i < n, and the caller vouches for n bytes at each.
        let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

/// # Safety
/// As memcmp's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: as memcmp's, which the caller vouches for.
    unsafe { memcmp(a, b, n) }
}
