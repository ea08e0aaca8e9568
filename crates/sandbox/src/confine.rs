//! The last lines of defence PID 1 applies to itself (and so to everything it starts):
//! an empty capability bounding set, no_new_privs, Landlock and seccomp.

use landlock::{
    ABI, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
    path_beneath_rules,
};
use seccompiler::sock_filter;

/// Drops every capability from the bounding set, so nothing started inside can ever
/// gain one, even through a file capability.
pub fn drop_bounding_set() -> std::io::Result<()> {
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<libc::c_ulong>().ok())
        .unwrap_or(40);
    for cap in 0..=last {
        // SAFETY: PR_CAPBSET_DROP takes plain integers; no memory is passed.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINVAL) {
                return Err(err);
            }
        }
    }
    Ok(())
}

pub fn set_no_new_privs() -> std::io::Result<()> {
    nix::sys::prctl::set_no_new_privs().map_err(std::io::Error::from)?;
    Ok(())
}

/// The newest Landlock ABI the landlock crate and we both know; older kernels get the
/// best subset (the crate's best-effort mode), and we report what was enforced.
const LANDLOCK_ABI: ABI = ABI::V5;

/// Allows reading and executing everywhere (the root is read-only anyway), writing only
/// under the home, /tmp, /dev/shm and to the device nodes.
pub fn apply_landlock() -> Result<String, String> {
    let abi = LANDLOCK_ABI;
    let read = AccessFs::from_read(abi);
    let all = AccessFs::from_all(abi);
    let status = Ruleset::default()
        .handle_access(all)
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules(["/"], read)))
        .and_then(|r| r.add_rules(path_beneath_rules(["/home/user", "/tmp", "/dev/shm"], all)))
        .and_then(|r| {
            r.add_rules(path_beneath_rules(
                ["/dev"],
                read | AccessFs::WriteFile | AccessFs::Truncate | AccessFs::IoctlDev,
            ))
        })
        .and_then(|r| r.restrict_self())
        .map_err(|e| e.to_string())?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => "landlock: writes confined to /home/user, /tmp, /dev/shm".into(),
        RulesetStatus::PartiallyEnforced => {
            "landlock: partially enforced (older kernel ABI): writes confined to /home/user, /tmp, /dev/shm".into()
        }
        RulesetStatus::NotEnforced => "landlock: not supported by this kernel".into(),
    })
}

/// Syscalls nothing in the sandbox needs and an escape would: new namespaces, mounts,
/// tracing other processes, kernel modules and keyrings, BPF, perf, userfaultfd,
/// handle-based opens.
const DENIED: &[libc::c_long] = &[
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_pidfd_getfd,
    libc::SYS_kcmp,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
    libc::SYS_syslog,
    libc::SYS_acct,
    libc::SYS_quotactl,
    libc::SYS_iopl,
    libc::SYS_ioperm,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
];

/// The namespace flags `clone` may not take (`CLONE_NEWTIME` only works through
/// `unshare` and `clone3`, both refused).
const NAMESPACE_FLAGS: libc::c_int = libc::CLONE_NEWUSER
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWCGROUP;

/// The audit architecture of this build's system calls (`AUDIT_ARCH_*`: the ELF machine
/// with the 64-bit and little-endian bits).
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 62 | 0x8000_0000 | 0x4000_0000;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 183 | 0x8000_0000 | 0x4000_0000;
#[cfg(target_arch = "riscv64")]
const AUDIT_ARCH: u32 = 243 | 0x8000_0000 | 0x4000_0000;

/// On x86-64 the x32 ABI's calls carry the native architecture and this bit in their
/// number: a deny list by number alone would let `unshare` through it.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// `struct seccomp_data`: the call's number, its architecture, the low half of its first
/// argument (little-endian).
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
const DATA_ARG0_LOW: u32 = 16;

const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const RET_KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;
const RET_EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
const RET_ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

/// What the filter does with one of the calls it names.
#[derive(Debug, Clone, Copy)]
enum Verdict {
    /// Fails with EPERM.
    Deny,
    /// Fails with ENOSYS: `clone3`, whose flags sit in memory that seccomp cannot
    /// inspect; libc then falls back to `clone`.
    NoSys,
    /// `clone`: fails with EPERM when its flags ask for a namespace.
    CloneWithoutNamespaces,
}

fn statement(code: u32, k: u32) -> sock_filter {
    sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: usize, jf: usize) -> Result<sock_filter, String> {
    let offset =
        |n: usize| u8::try_from(n).map_err(|_| format!("seccomp jump of {n} instructions"));
    Ok(sock_filter {
        code: (libc::BPF_JMP | code | libc::BPF_K) as u16,
        jt: offset(jt)?,
        jf: offset(jf)?,
        k,
    })
}

fn load(offset: u32) -> sock_filter {
    statement(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, offset)
}

fn ret(action: u32) -> sock_filter {
    statement(libc::BPF_RET | libc::BPF_K, action)
}

/// The instructions for a call the filter names (the call's number is in A); they end
/// in a return.
fn verdict_code(verdict: Verdict) -> Result<Vec<sock_filter>, String> {
    Ok(match verdict {
        Verdict::Deny => vec![ret(RET_EPERM)],
        Verdict::NoSys => vec![ret(RET_ENOSYS)],
        Verdict::CloneWithoutNamespaces => vec![
            load(DATA_ARG0_LOW),
            jump(libc::BPF_JSET, NAMESPACE_FLAGS as u32, 0, 1)?,
            ret(RET_EPERM),
            ret(RET_ALLOW),
        ],
    })
}

/// A binary search over the named calls (sorted by number, the number in A): a few
/// comparisons per call, where a chain of equality tests costs one per named call, both
/// when a call runs and when the kernel works out, as it installs the filter, which
/// calls it always allows (it runs the program for every call number).
fn search(calls: &[(u32, Verdict)]) -> Result<Vec<sock_filter>, String> {
    if calls.len() <= 4 {
        let mut code = Vec::new();
        for &(nr, verdict) in calls {
            let body = verdict_code(verdict)?;
            code.push(jump(libc::BPF_JEQ, nr, 0, body.len())?);
            code.extend(body);
        }
        code.push(ret(RET_ALLOW));
        return Ok(code);
    }
    let (below, from) = calls.split_at(calls.len() / 2);
    let pivot = from[0].0;
    let (below, from) = (search(below)?, search(from)?);
    let mut code = vec![jump(libc::BPF_JGE, pivot, below.len(), 0)?];
    code.extend(below);
    code.extend(from);
    Ok(code)
}

/// The program PID 1 installs: another architecture's calls (and on x86-64 the x32
/// ABI's) kill the process; the deny list answers EPERM, `clone` with a namespace flag
/// EPERM, `clone3` ENOSYS; everything else is allowed.
fn seccomp_program() -> Result<Vec<sock_filter>, String> {
    let mut calls: Vec<(u32, Verdict)> = DENIED
        .iter()
        .map(|&nr| (nr, Verdict::Deny))
        .chain([
            (libc::SYS_clone, Verdict::CloneWithoutNamespaces),
            (libc::SYS_clone3, Verdict::NoSys),
        ])
        .map(|(nr, verdict)| {
            u32::try_from(nr)
                .map(|nr| (nr, verdict))
                .map_err(|_| format!("system call number {nr}"))
        })
        .collect::<Result<_, _>>()?;
    calls.sort_by_key(|&(nr, _)| nr);
    if calls.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err("a system call named twice in the seccomp filter".into());
    }
    let mut program = vec![
        load(DATA_ARCH),
        jump(libc::BPF_JEQ, AUDIT_ARCH, 1, 0)?,
        ret(RET_KILL),
        load(DATA_NR),
    ];
    #[cfg(target_arch = "x86_64")]
    program.extend([jump(libc::BPF_JGE, X32_SYSCALL_BIT, 0, 1)?, ret(RET_KILL)]);
    program.extend(search(&calls)?);
    Ok(program)
}

/// Installs [`seccomp_program`] (one filter).
pub fn apply_seccomp() -> Result<(), String> {
    let program = seccomp_program()?;
    seccompiler::apply_filter(&program).map_err(|e| e.to_string())
}

/// The Landlock ABI this kernel offers (0 when unsupported), for `doctor`.
pub fn landlock_abi() -> i64 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: landlock_create_ruleset with a null attribute pointer, size 0 and the VERSION flag only returns the ABI version; it reads no memory.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    rc.max(0)
}

/// Whether this kernel offers seccomp filters, for `doctor`.
pub fn seccomp_available() -> bool {
    // PR_GET_SECCOMP succeeds (returning the current mode) wherever seccomp is built in.
    // SAFETY: PR_GET_SECCOMP takes no pointers and only returns the current mode.
    let mode = unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) };
    mode >= 0
        && std::fs::read_to_string("/proc/self/status").is_ok_and(|s| s.contains("Seccomp_filters"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use seccompiler::{
        SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    };
    use std::collections::BTreeMap;

    /// A classic-BPF interpreter for the instructions seccomp filters use, run over
    /// `struct seccomp_data` as the kernel lays it out.
    fn run(program: &[sock_filter], nr: u32, arch: u32, arg0: u64) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        data[16..24].copy_from_slice(&arg0.to_le_bytes());
        let (mut a, mut pc) = (0u32, 0usize);
        loop {
            let i = &program[pc];
            let (code, k) = (u32::from(i.code), i.k);
            pc += 1;
            let taken = |cond: bool| {
                if cond {
                    usize::from(i.jt)
                } else {
                    usize::from(i.jf)
                }
            };
            match code {
                c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => {
                    let at = k as usize;
                    a = u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
                }
                c if c == libc::BPF_ALU | libc::BPF_AND | libc::BPF_K => a &= k,
                c if c == libc::BPF_JMP | libc::BPF_JA => pc += k as usize,
                c if c == libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K => pc += taken(a == k),
                c if c == libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K => pc += taken(a > k),
                c if c == libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K => pc += taken(a >= k),
                c if c == libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K => pc += taken(a & k != 0),
                c if c == libc::BPF_RET | libc::BPF_K => return k,
                other => panic!("instruction {other:#x} at {}", pc - 1),
            }
        }
    }

    /// Of several filters' answers the kernel keeps the first action in its order of
    /// precedence (the kill actions first, allow last).
    fn strictest(answers: impl IntoIterator<Item = u32>) -> u32 {
        answers
            .into_iter()
            .min_by_key(|r| (r & libc::SECCOMP_RET_ACTION_FULL) as i32)
            .unwrap()
    }

    /// The filters as seccompiler compiled them before (a chain of equality tests per
    /// call, `clone3` in a second filter): what the search must still decide.
    fn seccompiler_filters() -> Vec<Vec<sock_filter>> {
        let arch: seccompiler::TargetArch = std::env::consts::ARCH.try_into().unwrap();
        let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
            DENIED.iter().map(|&s| (s, vec![])).collect();
        let clone_rules = [
            libc::CLONE_NEWUSER,
            libc::CLONE_NEWNS,
            libc::CLONE_NEWPID,
            libc::CLONE_NEWNET,
            libc::CLONE_NEWIPC,
            libc::CLONE_NEWUTS,
            libc::CLONE_NEWCGROUP,
        ]
        .iter()
        .map(|&flag| {
            let flag = flag as u64;
            let cond = SeccompCondition::new(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(flag),
                flag,
            );
            SeccompRule::new(vec![cond.unwrap()]).unwrap()
        })
        .collect();
        rules.insert(libc::SYS_clone, clone_rules);
        let eperm = SeccompAction::Errno(libc::EPERM as u32);
        let deny = SeccompFilter::new(rules, SeccompAction::Allow, eperm, arch).unwrap();
        let enosys = SeccompAction::Errno(libc::ENOSYS as u32);
        let no_clone3 = [(libc::SYS_clone3, vec![])].into_iter().collect();
        let no_clone3 = SeccompFilter::new(no_clone3, SeccompAction::Allow, enosys, arch).unwrap();
        [deny, no_clone3]
            .into_iter()
            .map(|f| f.try_into().unwrap())
            .collect()
    }
    #[test]
    fn the_search_decides_every_call_as_the_chain_did_and_kills_x32_calls() {
        let program = seccomp_program().unwrap();
        let reference = seccompiler_filters();
        let clone_flags: Vec<u64> = [
            0,
            libc::SIGCHLD as u64,
            (libc::CLONE_VM
                | libc::CLONE_FS
                | libc::CLONE_FILES
                | libc::CLONE_SIGHAND
                | libc::CLONE_THREAD
                | libc::CLONE_SYSVSEM
                | libc::CLONE_SETTLS
                | libc::CLONE_PARENT_SETTID
                | libc::CLONE_CHILD_CLEARTID) as u64,
            1 << 32 | libc::SIGCHLD as u64,
            1 << 40 | libc::CLONE_NEWUSER as u64,
        ]
        .into_iter()
        .chain((0..32).map(|bit| 1u64 << bit | libc::SIGCHLD as u64))
        .collect();
        let (mut denied, mut allowed) = (0, 0);
        for arch in [AUDIT_ARCH, 0x4000_0003, 0] {
            for nr in 0..1024u32 {
                let args: &[u64] = if nr == libc::SYS_clone as u32 {
                    &clone_flags
                } else {
                    &[0, u64::MAX]
                };
                for &arg0 in args {
                    let ours = run(&program, nr, arch, arg0);
                    let theirs = strictest(reference.iter().map(|f| run(f, nr, arch, arg0)));
                    assert_eq!(
                        ours, theirs,
                        "call {nr}, arch {arch:#x}, first argument {arg0:#x}"
                    );
                    match ours {
                        RET_ALLOW => allowed += 1,
                        RET_EPERM | RET_ENOSYS => denied += 1,
                        _ => {}
                    }
                }
            }
        }
        // Every named call was met (each deny-listed call and clone3 with two first
        // arguments, clone with one flag set of its own and the seven namespace flags).
        assert_eq!(denied, 2 * DENIED.len() + 2 + 1 + 7, "denied answers");
        assert!(allowed > 1900, "allowed answers: {allowed}");
        assert_eq!(
            run(&program, libc::SYS_unshare as u32, AUDIT_ARCH, 0),
            RET_EPERM
        );
        #[cfg(target_arch = "x86_64")]
        for nr in [libc::SYS_unshare as u32, libc::SYS_getpid as u32, 0, 600] {
            let x32 = nr | X32_SYSCALL_BIT;
            assert_eq!(run(&program, x32, AUDIT_ARCH, 0), RET_KILL, "x32 call {nr}");
            let theirs = strictest(reference.iter().map(|f| run(f, x32, AUDIT_ARCH, 0)));
            assert_eq!(theirs, RET_ALLOW, "the chain let x32 call {nr} through");
        }
    }

    /// Installs the filter in a forked child, runs `calls` there (which returns the
    /// child's exit code) and gives how the child ended.
    fn in_filtered_child(calls: fn() -> i32) -> nix::sys::wait::WaitStatus {
        let program = seccomp_program().unwrap();
        // SAFETY: the child only makes system calls (prctl, seccomp, the calls under
        // test) and leaves through _exit: nothing that needs another thread's lock.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let code = if seccompiler::apply_filter(&program).is_ok() {
                    calls()
                } else {
                    100
                };
                // SAFETY: _exit ends the child without running the parent's exit handlers.
                unsafe { libc::_exit(code) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                nix::sys::wait::waitpid(child, None).unwrap()
            }
        }
    }

    fn errno_of(rc: libc::c_long) -> i32 {
        if rc == -1 {
            nix::errno::Errno::last_raw()
        } else {
            0
        }
    }

    #[test]
    fn the_installed_filter_refuses_namespaces_and_clone3_and_allows_the_rest() {
        use nix::sys::wait::WaitStatus;
        let status = in_filtered_child(|| {
            // Each call's errno, read before the next call (0: it succeeded).
            // SAFETY: each call takes plain integers or null pointers the kernel checks.
            let errnos = unsafe {
                [
                    errno_of(libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER)),
                    errno_of(libc::syscall(libc::SYS_clone3, 0usize, 0usize)),
                    errno_of(libc::syscall(
                        libc::SYS_clone,
                        libc::CLONE_NEWNET | libc::SIGCHLD,
                        0usize,
                        0usize,
                        0usize,
                        0usize,
                    )),
                    errno_of(libc::syscall(
                        libc::SYS_mount,
                        0usize,
                        0usize,
                        0usize,
                        0usize,
                        0usize,
                    )),
                    errno_of(libc::syscall(libc::SYS_getppid)),
                ]
            };
            let wanted = [libc::EPERM, libc::ENOSYS, libc::EPERM, libc::EPERM, 0];
            errnos
                .iter()
                .zip(wanted)
                .position(|(&got, want)| got != want)
                .map_or(0, |i| i as i32 + 1)
        });
        assert_eq!(
            status,
            WaitStatus::Exited(status.pid().unwrap(), 0),
            "exit n: check n failed"
        );
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn an_x32_call_kills_the_process() {
        let status = in_filtered_child(|| {
            // SAFETY: getpid through the x32 ABI's numbering takes no arguments.
            unsafe { libc::syscall(libc::SYS_getpid | X32_SYSCALL_BIT as libc::c_long) };
            0
        });
        assert!(
            matches!(
                status,
                nix::sys::wait::WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGSYS, _)
            ),
            "{status:?}"
        );
    }
}
