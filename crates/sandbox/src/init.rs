//! PID 1 of the sandbox: assembles the minimal root, confines itself, then serves tool
//! calls, each as a fresh `bash -c` in its own session, until the supervisor hangs up or
//! a terminating signal arrives. PID 1 exits on SIGTERM (and the other signals that
//! would end a container's init), so `kill -s TERM 1` really ends the machine.

use crate::confine;
use crate::wire::{self, BindSpec, ExecReplyHeader, ExecRequest, Hello, HelperConfig, HomeMount};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::resource::{Resource, setrlimit};
use nix::sys::signal::{SigSet, Signal, killpg};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;
use nix::unistd::{chdir, pivot_root, sethostname};
use std::ffi::CString;
use std::fs::{self, File};
use std::io::{ErrorKind, Read};
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::time::{Duration, Instant};

/// The sandbox user's uid and gid inside the namespace ("user", like a container's).
pub const INSIDE_UID: u32 = 1000;
/// The sandbox user's home, where every command starts.
pub const HOME: &str = match HOME_C.to_str() {
    Ok(home) => home,
    Err(_) => panic!("the home is ASCII"),
};
const HOME_C: &std::ffi::CStr = c"/home/user";
/// The root's own top-level directories, and the system links (or binds) of a merged
/// or split /usr: a scenario's link may take none of these names (nor `run`, where the
/// supervisor binds its service).
pub const ROOT_DIRS: &[&str] = &["usr", "etc", "home", "tmp", "dev", "proc"];
pub const SYSTEM_LINKS: &[&str] = &["bin", "sbin", "lib", "lib32", "lib64", "libx32"];
/// After the call's main process exits, how long we keep reading output that its
/// background children may still be writing, before returning.
const OUTPUT_GRACE: Duration = Duration::from_millis(20);

/// Signals whose default action ends a process; a container's init (tini, docker-init)
/// ends the container on each, so ours does too.
pub(crate) const TERMINATING_SIGNALS: [libc::c_int; 6] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

pub(crate) fn pid1_main(config: &HelperConfig) -> ! {
    // SAFETY: fd 1 is this process's stdout, open for its whole life; ManuallyDrop keeps the File from closing it.
    let mut stdout = ManuallyDrop::new(unsafe { File::from_raw_fd(1) });
    match setup(config) {
        Ok(protections) => {
            if wire::write_frame(&mut *stdout, &Hello::Ready { protections }, &[]).is_err() {
                // SAFETY: _exit takes an integer and is async-signal-safe; it ends the process without running destructors, as a forked child or a failed PID 1 must.
                unsafe { libc::_exit(1) }
            }
            serve(&mut stdout, &config.env)
        }
        Err((stage, message)) => {
            let _ = wire::write_frame(
                &mut *stdout,
                &Hello::Failed {
                    stage: stage.into(),
                    message,
                },
                &[],
            );
            // SAFETY: _exit takes an integer and is async-signal-safe; it ends the process without running destructors, as a forked child or a failed PID 1 must.
            unsafe { libc::_exit(1) }
        }
    }
}

type Stage = (&'static str, String);

fn at<E: std::fmt::Display>(stage: &'static str) -> impl FnOnce(E) -> Stage {
    move |e| (stage, e.to_string())
}

extern "C" fn die_on_signal(signal: libc::c_int) {
    // SAFETY: _exit takes an integer and is async-signal-safe; it ends the process without running destructors, as a forked child or a failed PID 1 must. Called from a signal handler.
    unsafe { libc::_exit(128 + signal) }
}

fn setup(config: &HelperConfig) -> Result<Vec<String>, Stage> {
    // Our parent (the helper) is outside this PID namespace, so getppid() is 0 here;
    // if the helper is already gone, the supervisor's hang-up ends us on the first read.
    // SAFETY: PR_SET_PDEATHSIG takes plain integers; no memory is passed.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    for signal in TERMINATING_SIGNALS {
        // SAFETY: die_on_signal is an extern "C" fn that only calls _exit, which is async-signal-safe.
        unsafe { libc::signal(signal, die_on_signal as *const () as libc::sighandler_t) };
    }
    let mut protections = vec![
        "namespaces: user, mount, pid, network, ipc, uts, cgroup".to_string(),
        format!("runs as uid {INSIDE_UID} with no capabilities"),
    ];
    build_root(config)?;
    sethostname(&config.hostname).map_err(at("hostname"))?;
    bring_up_loopback().map_err(at("loopback"))?;
    set_rlimits(config)?;
    confine::drop_bounding_set().map_err(at("capability bounding set"))?;
    confine::set_no_new_privs().map_err(at("no_new_privs"))?;
    protections.push("no_new_privs".into());
    if config.landlock {
        protections.push(confine::apply_landlock().map_err(at("landlock"))?);
    }
    if config.seccomp {
        confine::apply_seccomp().map_err(at("seccomp"))?;
        protections.push(
            "seccomp: namespace, mount, ptrace, bpf, keyring and module syscalls denied".into(),
        );
    }
    // Nothing inside may ptrace or read our memory: the channel to the supervisor lives here.
    crate::helper::set_dumpable(false).map_err(at("dumpable"))?;
    Ok(protections)
}

fn build_root(config: &HelperConfig) -> Result<(), Stage> {
    let none: Option<&str> = None;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .map_err(at("make / private"))?;
    let root = &config.root_dir;
    mount(
        Some("tmpfs"),
        root,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("size=1m,mode=0755"),
    )
    .map_err(at("root tmpfs"))?;
    let r = |p: &str| root.join(p.trim_start_matches('/'));
    for dir in ROOT_DIRS {
        fs::create_dir_all(r(dir)).map_err(at("root directories"))?;
    }
    fs::create_dir_all(r(HOME)).map_err(at("root directories"))?;
    bind(Path::new("/usr"), &r("usr"), false).map_err(at("bind /usr"))?;
    // Merged /usr: /bin, /lib, ... are symlinks into /usr on the host; recreate them.
    // On a host without merged /usr they are directories: bind them read-only.
    for link in SYSTEM_LINKS {
        let host = Path::new("/").join(link);
        match fs::read_link(&host) {
            Ok(target) => symlink(target, r(link)).map_err(at("root symlinks"))?,
            Err(_) if host.is_dir() => {
                fs::create_dir_all(r(link)).map_err(at("root directories"))?;
                bind(&host, &r(link), false).map_err(at("bind system directory"))?;
            }
            Err(_) => {}
        }
    }
    write_minimal_etc(&r("etc"))?;
    match &config.home {
        HomeMount::Tmpfs { size_bytes } => {
            // Owned by the sandbox's user (the one this user namespace maps), as the
            // supervisor checks before laying anything in it.
            let opts = format!("size={size_bytes},mode=0755");
            mount(
                Some("tmpfs"),
                &r(HOME),
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some(opts.as_str()),
            )
            .map_err(at("home tmpfs"))?;
        }
        HomeMount::Bind { host } => bind(host, &r(HOME), true).map_err(at("bind home"))?,
    }
    let tmp_opts = format!("size={},mode=1777", config.tmp_size_bytes);
    mount(
        Some("tmpfs"),
        &r("tmp"),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(tmp_opts.as_str()),
    )
    .map_err(at("tmp tmpfs"))?;
    build_dev(&r("dev"), config.tmp_size_bytes)?;
    for BindSpec {
        host,
        inside,
        writable,
    } in &config.binds
    {
        let target = r(&inside.to_string_lossy());
        fs::create_dir_all(&target).map_err(at("bind target"))?;
        bind(host, &target, *writable).map_err(at("extra bind"))?;
    }
    for (inside, target) in &config.links {
        let link = r(&inside.to_string_lossy());
        if link.symlink_metadata().is_ok() {
            return Err((
                "root symlinks",
                format!("{} already exists", inside.display()),
            ));
        }
        symlink(target, link).map_err(at("root symlinks"))?;
    }
    // proc must be mounted while the host's /proc is still visible in this namespace;
    // the kernel refuses a new proc mount in a user namespace otherwise.
    mount(
        Some("proc"),
        &r("proc"),
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        none,
    )
    .map_err(at("mount proc"))?;
    chdir(root).map_err(at("chdir new root"))?;
    pivot_root(".", ".").map_err(at("pivot_root"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(at("detach old root"))?;
    chdir("/").map_err(at("chdir /"))?;
    mount(
        none,
        "/",
        none,
        MsFlags::MS_REMOUNT
            | MsFlags::MS_BIND
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV,
        none,
    )
    .map_err(at("remount / read-only"))?;
    Ok(())
}

fn bind(source: &Path, target: &Path, writable: bool) -> nix::Result<()> {
    bind_with(source, target, writable, MsFlags::MS_NODEV)
}

/// Binds a device node: the mount must allow devices; everything else stays nodev.
fn bind_device(source: &Path, target: &Path) -> nix::Result<()> {
    bind_with(source, target, true, MsFlags::empty())
}

fn bind_with(source: &Path, target: &Path, writable: bool, extra: MsFlags) -> nix::Result<()> {
    let none: Option<&str> = None;
    mount(
        Some(source),
        target,
        none,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        none,
    )?;
    // A bind mount inherits the source mount's locked flags (atime, nosuid, ...); a
    // remount must repeat them or the kernel refuses it inside a user namespace.
    let inherited = nix::sys::statvfs::statvfs(target)
        .map(|s| s.flags())
        .unwrap_or(nix::sys::statvfs::FsFlags::empty());
    let mut flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_NOSUID | extra;
    use nix::sys::statvfs::FsFlags;
    for (have, want) in [
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
    ] {
        if inherited.contains(have) {
            flags |= want;
        }
    }
    if !writable {
        flags |= MsFlags::MS_RDONLY;
    }
    mount(none, target, none, flags, none)
}

fn write_minimal_etc(etc: &Path) -> Result<(), Stage> {
    let files = [
        (
            "passwd",
            format!(
                "root:x:0:0:root:/root:/usr/sbin/nologin\nuser:x:{INSIDE_UID}:{INSIDE_UID}:user:{HOME}:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
            ),
        ),
        (
            "group",
            format!("root:x:0:\nuser:x:{INSIDE_UID}:\nnogroup:x:65534:\n"),
        ),
        (
            "nsswitch.conf",
            "passwd: files\ngroup: files\nhosts: files\n".into(),
        ),
        (
            "hosts",
            "127.0.0.1 localhost sandbox\n::1 localhost\n".into(),
        ),
        ("hostname", "sandbox\n".into()),
    ];
    for (name, text) in files {
        fs::write(etc.join(name), text).map_err(at("minimal /etc"))?;
    }
    // Debian's /usr/bin/awk and friends are symlinks through /etc/alternatives.
    for name in ["ld.so.cache", "alternatives", "localtime"] {
        let host = Path::new("/etc").join(name);
        let Ok(meta) = fs::metadata(&host) else {
            continue;
        };
        let target = etc.join(name);
        if meta.is_dir() {
            fs::create_dir(&target).map_err(at("minimal /etc"))?;
        } else {
            File::create(&target).map_err(at("minimal /etc"))?;
        }
        bind(&host, &target, false).map_err(at("minimal /etc bind"))?;
    }
    Ok(())
}

fn build_dev(dev: &Path, shm_size: u64) -> Result<(), Stage> {
    mount(
        Some("tmpfs"),
        dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("size=64k,mode=0755"),
    )
    .map_err(at("dev tmpfs"))?;
    for node in ["null", "zero", "full", "random", "urandom", "tty"] {
        let target = dev.join(node);
        File::create(&target).map_err(at("dev nodes"))?;
        bind_device(&Path::new("/dev").join(node), &target).map_err(at("dev node bind"))?;
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        symlink(target, dev.join(name)).map_err(at("dev symlinks"))?;
    }
    let shm = dev.join("shm");
    fs::create_dir(&shm).map_err(at("dev/shm"))?;
    let opts = format!("size={shm_size},mode=1777");
    mount(
        Some("tmpfs"),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(opts.as_str()),
    )
    .map_err(at("dev/shm"))?;
    fs::set_permissions(dev, fs::Permissions::from_mode(0o755)).map_err(at("dev mode"))?;
    Ok(())
}

/// Loopback up, as in a container: local servers a task starts can be reached from
/// inside, while nothing of the host's network exists here.
fn bring_up_loopback() -> std::io::Result<()> {
    // SAFETY: socket/ioctl on a descriptor we own, with `req` a zeroed ifreq that lives across both ioctl calls and whose name is NUL-terminated.
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let sock = OwnedFd::from_raw_fd(sock);
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn set_rlimits(config: &HelperConfig) -> Result<(), Stage> {
    let l = &config.rlimits;
    setrlimit(Resource::RLIMIT_CORE, 0, 0).map_err(at("RLIMIT_CORE"))?;
    setrlimit(Resource::RLIMIT_FSIZE, l.fsize, l.fsize).map_err(at("RLIMIT_FSIZE"))?;
    setrlimit(Resource::RLIMIT_NOFILE, l.nofile, l.nofile).map_err(at("RLIMIT_NOFILE"))?;
    if let Some(bytes) = l.address_space {
        setrlimit(Resource::RLIMIT_AS, bytes, bytes).map_err(at("RLIMIT_AS"))?;
    }
    Ok(())
}

/// Everything a call's bash is started with.
struct CallImage {
    argv: [CString; 3],
    env: Vec<CString>,
}

fn call_image(command: &str, extra_env: &[(String, String)]) -> Option<CallImage> {
    let env = [
        "PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
        "HOME=/home/user",
        "USER=user",
        "LOGNAME=user",
        "SHELL=/bin/bash",
        "LANG=C.UTF-8",
        "TERM=dumb",
        "PWD=/home/user",
    ];
    Some(CallImage {
        argv: [
            CString::new("bash").ok()?,
            CString::new("-c").ok()?,
            CString::new(command).ok()?,
        ],
        env: env
            .iter()
            .map(|s| s.to_string())
            .filter(|s| {
                let name = s.split('=').next().unwrap_or_default();
                !extra_env.iter().any(|(n, _)| n == name)
            })
            .chain(extra_env.iter().map(|(n, v)| format!("{n}={v}")))
            .map(CString::new)
            .collect::<Result<_, _>>()
            .ok()?,
    })
}

fn serve(stdout: &mut File, extra_env: &[(String, String)]) -> ! {
    // SAFETY: fd 0 is this process's stdin, open for its whole life; ManuallyDrop keeps the File from closing it.
    let mut stdin = ManuallyDrop::new(unsafe { File::from_raw_fd(0) });
    // Orphans that the model's background jobs leave are reaped as they end: PID 1 sleeps
    // until a request comes or a child ends (SIGCHLD, read from a signalfd; blocked here,
    // and every call starts with no signal blocked), instead of waking on a timer, which
    // at a thousand sandboxes was thousands of wake-ups a second.
    let children = child_ends();
    loop {
        match wait_for_work(stdin.as_fd(), children.as_ref()) {
            Work::Request => {}
            Work::ChildEnded => {
                reap_orphans();
                continue;
            }
        }
        let request: ExecRequest = match wire::read_frame(&mut *stdin) {
            Ok((request, _)) => request,
            // The supervisor hung up: the machine ends.
            // SAFETY: _exit takes an integer and is async-signal-safe; it ends the process without running destructors, as a forked child or a failed PID 1 must.
            Err(_) => unsafe { libc::_exit(0) },
        };
        let (header, output) = run_call(&request, extra_env);
        if wire::write_frame(stdout, &header, &output).is_err() {
            // SAFETY: _exit takes an integer and is async-signal-safe; it ends the process without running destructors, as a forked child or a failed PID 1 must.
            unsafe { libc::_exit(0) }
        }
        reap_orphans();
    }
}

/// A signalfd that becomes readable when a child of PID 1 ends, with SIGCHLD blocked so
/// that it is queued there; `None` if it cannot be made (PID 1 then polls for orphans).
fn child_ends() -> Option<SignalFd> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block().ok()?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).ok()
}

enum Work {
    Request,
    ChildEnded,
}

/// Waits until the supervisor sends (or hangs up: the read that follows sees it) or a
/// child ends (the queued SIGCHLDs are consumed); without a signalfd, a child's end is
/// looked for every half second.
fn wait_for_work(stdin: BorrowedFd, children: Option<&SignalFd>) -> Work {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let Some(children) = children else {
        return if wire::wait_readable(stdin, Duration::from_millis(500)) {
            Work::Request
        } else {
            Work::ChildEnded
        };
    };
    loop {
        let mut fds = [
            PollFd::new(stdin, PollFlags::POLLIN),
            PollFd::new(children.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) if fds[0].any().unwrap_or(true) => return Work::Request,
            Ok(_) if fds[1].any().unwrap_or(false) => {
                while children.read_signal().is_ok_and(|s| s.is_some()) {}
                return Work::ChildEnded;
            }
            Ok(_) | Err(nix::Error::EINTR) => continue,
            // Unreachable with two valid descriptors; the read that follows decides.
            Err(_) => return Work::Request,
        }
    }
}

fn reap_orphans() {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

fn run_call(request: &ExecRequest, extra_env: &[(String, String)]) -> (ExecReplyHeader, Vec<u8>) {
    let started = Instant::now();
    let failed = |message: &str| {
        let header = ExecReplyHeader {
            exit_code: Some(126),
            signal: None,
            timed_out: false,
            truncated: false,
            duration_us: 0,
        };
        (
            header,
            format!("offswitch sandbox: {message}\n").into_bytes(),
        )
    };
    let Some(image) = call_image(&request.command, extra_env) else {
        return failed("the command contains a NUL byte");
    };
    let mut fds = [0; 2];
    // SAFETY: `fds` is a two-int array on our stack, as pipe2 requires.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return failed("cannot create a pipe");
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by no one else.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let pid = match spawn_retrying(&image, write_end.as_raw_fd()) {
        Ok(pid) => pid,
        Err(libc::EAGAIN) => return failed("cannot start the command (process limit reached?)"),
        Err(errno) => {
            return failed(&format!(
                "cannot start the command: {}",
                std::io::Error::from_raw_os_error(errno)
            ));
        }
    };
    drop(write_end);
    let pidfd_owned = crate::pidfd::open(pid as u32).ok();
    let pidfd = pidfd_owned.as_ref().map_or(-1, |fd| fd.as_raw_fd());
    let deadline = started + Duration::from_millis(request.timeout_ms);
    let mut collector = OutputCollector::new(request.output_cap as usize);
    let mut status: Option<libc::c_int> = None;
    let mut timed_out = false;
    let mut eof = false;
    let mut grace_until: Option<Instant> = None;
    loop {
        if status.is_some() && (eof || grace_until.is_some_and(|g| Instant::now() >= g)) {
            break;
        }
        let now = Instant::now();
        if status.is_none() && now >= deadline {
            // The call's whole process group goes, not only bash.
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            timed_out = true;
            status = Some(wait_blocking(pid));
            kill_group_until_empty(pid);
            grace_until = Some(Instant::now() + OUTPUT_GRACE);
            continue;
        }
        let until = match (status, grace_until) {
            (Some(_), Some(g)) => g,
            _ => deadline,
        };
        let wait_ms = until
            .saturating_duration_since(now)
            .as_millis()
            .clamp(1, 1000) as libc::c_int;
        let mut pfds = [
            libc::pollfd {
                fd: if eof { -1 } else { read_end.as_raw_fd() },
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if status.is_some() || pidfd < 0 {
                    -1
                } else {
                    pidfd
                },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `pfds` is an array of two valid pollfds on our stack and the count matches.
        let rc = unsafe {
            libc::poll(
                pfds.as_mut_ptr(),
                2,
                if pidfd < 0 && status.is_none() {
                    wait_ms.min(5)
                } else {
                    wait_ms
                },
            )
        };
        if rc < 0 {
            continue;
        }
        if pfds[0].revents != 0 && !collector.read_from(read_end.as_raw_fd()) {
            eof = true;
        }
        if status.is_none()
            && (pfds[1].revents != 0 || pidfd < 0)
            && let Some(s) = try_wait(pid)
        {
            status = Some(s);
            grace_until = Some(Instant::now() + OUTPUT_GRACE);
        }
    }
    drop(pidfd_owned);
    let status = status.unwrap_or(0);
    let (exit_code, signal) = if libc::WIFEXITED(status) {
        (Some(libc::WEXITSTATUS(status)), None)
    } else if libc::WIFSIGNALED(status) {
        (None, Some(libc::WTERMSIG(status)))
    } else {
        (None, None)
    };
    let header = ExecReplyHeader {
        exit_code,
        signal,
        timed_out,
        truncated: collector.truncated,
        duration_us: started.elapsed().as_micros() as u64,
    };
    (header, collector.output)
}

/// Starts the call's bash with `posix_spawn` (a vfork: nothing of PID 1's memory is
/// copied): in a session of its own, stdin from /dev/null, stdout and stderr to `out`, no
/// other descriptor, every signal's default action, none blocked (PID 1 ignores SIGPIPE
/// and handles the terminating signals), in the home. The pid, or the error number.
fn spawn(image: &CallImage, out: libc::c_int) -> Result<libc::pid_t, libc::c_int> {
    let argv: [*mut libc::c_char; 4] = [
        image.argv[0].as_ptr().cast_mut(),
        image.argv[1].as_ptr().cast_mut(),
        image.argv[2].as_ptr().cast_mut(),
        std::ptr::null_mut(),
    ];
    let envp: Vec<*mut libc::c_char> = image
        .env
        .iter()
        .map(|s| s.as_ptr().cast_mut())
        .chain(std::iter::once(std::ptr::null_mut()))
        .collect();
    // The constants' types differ in the libc crate (c_int and c_short); the values fit.
    let flags = libc::POSIX_SPAWN_SETSID
        | (libc::POSIX_SPAWN_SETSIGDEF | libc::POSIX_SPAWN_SETSIGMASK) as libc::c_short;
    let mut pid = 0;
    let check = |rc: libc::c_int| if rc == 0 { Ok(()) } else { Err(rc) };
    // SAFETY: the actions and attributes are initialised before use and destroyed once;
    // every pointer passed (C string literals, `image`'s strings through argv and envp,
    // both NULL-terminated, the signal sets, `pid`) outlives the calls; PID 1 is
    // single-threaded, and posix_spawn's child (a vfork) only applies these and execs.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigemptyset(&mut none);
        let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        check(libc::posix_spawn_file_actions_init(&mut actions))?;
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        if let Err(rc) = check(libc::posix_spawnattr_init(&mut attr)) {
            libc::posix_spawn_file_actions_destroy(&mut actions);
            return Err(rc);
        }
        let spawned = (|| {
            let null = c"/dev/null".as_ptr();
            check(libc::posix_spawn_file_actions_addopen(
                &mut actions,
                0,
                null,
                libc::O_RDONLY,
                0,
            ))?;
            check(libc::posix_spawn_file_actions_adddup2(&mut actions, out, 1))?;
            check(libc::posix_spawn_file_actions_adddup2(&mut actions, out, 2))?;
            check(libc::posix_spawn_file_actions_addclosefrom_np(
                &mut actions,
                3,
            ))?;
            let home = HOME_C.as_ptr();
            check(libc::posix_spawn_file_actions_addchdir_np(
                &mut actions,
                home,
            ))?;
            check(libc::posix_spawnattr_setsigdefault(&mut attr, &all))?;
            check(libc::posix_spawnattr_setsigmask(&mut attr, &none))?;
            check(libc::posix_spawnattr_setflags(&mut attr, flags))?;
            check(libc::posix_spawn(
                &mut pid,
                c"/bin/bash".as_ptr(),
                &actions,
                &attr,
                argv.as_ptr(),
                envp.as_ptr(),
            ))
        })();
        libc::posix_spawn_file_actions_destroy(&mut actions);
        libc::posix_spawnattr_destroy(&mut attr);
        spawned?;
    }
    Ok(pid)
}

/// A process forking while its group is killed can escape the signal: repeat until the
/// group is empty (or a bound passes), reaping as we go.
fn kill_group_until_empty(pgid: libc::pid_t) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        reap_orphans();
        if killpg(Pid::from_raw(pgid), Signal::SIGKILL).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Spawns, waiting out a transient process limit (processes of an earlier call still
/// being torn down) for up to half a second.
fn spawn_retrying(image: &CallImage, out: libc::c_int) -> Result<libc::pid_t, libc::c_int> {
    let deadline = Instant::now() + Duration::from_millis(500);
    loop {
        match spawn(image, out) {
            Err(libc::EAGAIN) if Instant::now() < deadline => {
                reap_orphans();
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

fn try_wait(pid: libc::pid_t) -> Option<libc::c_int> {
    let mut status = 0;
    // SAFETY: `status` is a valid int on our stack for waitpid to write.
    let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    (rc == pid).then_some(status)
}

fn wait_blocking(pid: libc::pid_t) -> libc::c_int {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid int on our stack for waitpid to write.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid || (rc < 0 && std::io::Error::last_os_error().kind() != ErrorKind::Interrupted)
        {
            return status;
        }
    }
}

/// Keeps the first `cap` bytes of a call's output and drains (and counts) the rest, so
/// a writer never blocks on a full pipe and the supervisor never holds more than `cap`.
struct OutputCollector {
    output: Vec<u8>,
    cap: usize,
    truncated: bool,
}

impl OutputCollector {
    fn new(cap: usize) -> Self {
        OutputCollector {
            output: Vec::new(),
            cap,
            truncated: false,
        }
    }

    /// Reads what is available; false at end of file.
    fn read_from(&mut self, fd: libc::c_int) -> bool {
        let mut buf = [0u8; 65536];
        // SAFETY: fd is a pipe end that the caller owns and keeps open for this call; ManuallyDrop keeps the File from closing it.
        let mut file = ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
        match file.read(&mut buf) {
            Ok(0) => false,
            Ok(n) => {
                let room = self.cap.saturating_sub(self.output.len());
                if n > room {
                    self.truncated = true;
                }
                self.output.extend_from_slice(&buf[..n.min(room)]);
                true
            }
            Err(e) => e.kind() == ErrorKind::Interrupted || e.kind() == ErrorKind::WouldBlock,
        }
    }
}
