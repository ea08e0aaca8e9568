//! What the C library's start costs on this machine in `cpuid` instructions, which a
//! virtual machine traps to its hypervisor: the time one takes here, and how many one start
//! of a dynamically linked program runs (glibc's loader probes the CPU's features and
//! caches before `main`), counted by single-stepping the program under ptrace.
//! The study's shell pays this at every start, and an episode starts it five times.
//! Usage: `bench/run.sh cpuid [PROGRAM [ARGS...]]` (default `/bin/true`: the same loader
//! and C library as bash, and a count in seconds instead of minutes).
//! The last line is for scripts: `cpuid US_EACH COUNT MS_PER_START`.

use nix::sys::ptrace;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, execv, fork};
use std::ffi::CString;
use std::time::Instant;

/// `cpuid` is two bytes, 0F A2, with no prefix that changes it.
const CPUID: [u8; 2] = [0x0f, 0xa2];

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        args.push("/bin/true".into());
    }
    let Some(each_us) = time_cpuid(20_000) else {
        println!("cpuid: this machine is not x86_64; nothing to measure");
        return;
    };
    println!("cpuid: {each_us:.2} us each on this machine (20000 runs)");
    match count_in_start(&args) {
        Ok((cpuids, steps)) => {
            let ms = cpuids as f64 * each_us / 1000.0;
            println!(
                "one start of `{}`: {cpuids} cpuid instructions among {steps} instructions \
                 = {ms:.2} ms at that cost",
                args.join(" ")
            );
            println!("cpuid {each_us:.2} {cpuids} {ms:.3}");
        }
        Err(e) => {
            eprintln!("cannot count the instructions of `{}`: {e}", args.join(" "));
            std::process::exit(1);
        }
    }
}

/// Microseconds per `cpuid`, over the leaves glibc's start asks (features, extended
/// features, and the cache descriptors of leaf 4, subleaf by subleaf).
#[cfg(target_arch = "x86_64")]
fn time_cpuid(runs: u32) -> Option<f64> {
    use std::arch::x86_64::__cpuid_count;
    let leaves = [(1, 0), (7, 0), (4, 0), (4, 1), (4, 2), (4, 3)];
    let start = Instant::now();
    let mut sink = 0u32;
    for i in 0..runs {
        let (leaf, sub) = leaves[i as usize % leaves.len()];
        let r = __cpuid_count(leaf, sub);
        sink = sink.wrapping_add(r.eax);
    }
    std::hint::black_box(sink);
    Some(start.elapsed().as_secs_f64() * 1e6 / f64::from(runs))
}

#[cfg(not(target_arch = "x86_64"))]
fn time_cpuid(_runs: u32) -> Option<f64> {
    None
}

/// Runs `argv` to its end one instruction at a time; returns (cpuid instructions,
/// instructions).
fn count_in_start(argv: &[String]) -> Result<(u64, u64), String> {
    let c_args: Vec<CString> = argv
        .iter()
        .map(|a| CString::new(a.as_str()).map_err(|_| format!("{a:?} holds a NUL byte")))
        .collect::<Result<_, _>>()?;
    // SAFETY: this program has one thread here, and the child calls only ptrace, execv
    // and _exit (async-signal-safe) before it becomes the program.
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => {
            let _ = ptrace::traceme();
            let _ = execv(&c_args[0], &c_args);
            // SAFETY: _exit ends the child without running the parent's exit handlers.
            unsafe { nix::libc::_exit(127) }
        }
        ForkResult::Parent { child } => {
            // The child stops with SIGTRAP once execv has loaded the program.
            match waitpid(child, None).map_err(|e| format!("wait: {e}"))? {
                WaitStatus::Stopped(_, _) => {}
                other => return Err(format!("the program did not start: {other:?}")),
            }
            let (mut cpuids, mut steps) = (0u64, 0u64);
            loop {
                let rip = ptrace::getregs(child)
                    .map_err(|e| format!("read registers: {e}"))?
                    .rip;
                let word = ptrace::read(child, rip as ptrace::AddressType)
                    .map_err(|e| format!("read the instruction at {rip:#x}: {e}"))?;
                if word.to_le_bytes()[..2] == CPUID {
                    cpuids += 1;
                }
                ptrace::step(child, None).map_err(|e| format!("step: {e}"))?;
                steps += 1;
                match waitpid(child, None).map_err(|e| format!("wait: {e}"))? {
                    WaitStatus::Exited(_, 0) => return Ok((cpuids, steps)),
                    WaitStatus::Exited(_, code) => {
                        return Err(format!("the program exited with status {code}"));
                    }
                    WaitStatus::Signaled(_, signal, _) => {
                        return Err(format!("the program was killed by {signal}"));
                    }
                    _ => {}
                }
            }
        }
    }
}
