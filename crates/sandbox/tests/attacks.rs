//! Attacks on the sandbox, each run from inside it. Every test here fails if the
//! protection it names is removed.

mod common;

use common::*;
use sandbox::{ExecOptions, LaidFile, ReadError, SandboxError};
use std::io::ErrorKind;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

#[test]
fn host_processes_are_invisible_and_cannot_be_signalled() {
    let sb = sandbox();
    // A host process with the very uid the sandbox runs as.
    let mut same_uid = Command::new("sleep")
        .arg("60")
        .uid(sb.host_uid())
        .gid(sb.host_uid())
        .spawn()
        .unwrap();
    let mut root_proc = Command::new("sleep").arg("60").spawn().unwrap();
    let out = run(
        &sb,
        &format!(
            "ls /proc | grep -c '^[0-9]'; kill -0 {a} 2>&1; kill -9 {a} 2>&1; kill -9 {b} 2>&1; kill -9 -1 2>&1; true",
            a = same_uid.id(),
            b = root_proc.id()
        ),
    );
    let text = out.output_lossy();
    let visible: u32 = text.lines().next().unwrap().trim().parse().unwrap();
    assert!(visible <= 5, "sandbox sees {visible} processes:\n{text}");
    assert!(text.matches("No such process").count() >= 3, "{text}");
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        same_uid.try_wait().unwrap().is_none(),
        "host process with the sandbox's uid was killed"
    );
    assert!(
        root_proc.try_wait().unwrap().is_none(),
        "host root process was killed"
    );
    same_uid.kill().unwrap();
    root_proc.kill().unwrap();
    let _ = (same_uid.wait(), root_proc.wait());
}

#[test]
fn host_loopback_listener_is_unreachable() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let sb = sandbox();
    let out = run(
        &sb,
        &format!(
            "echo hi > /dev/tcp/127.0.0.1/{port} && echo CONNECTED; ip -o link 2>/dev/null | wc -l; cat /proc/net/dev | tail -n +3 | cut -d: -f1"
        ),
    );
    let text = out.output_lossy();
    assert!(!text.contains("CONNECTED"), "{text}");
    assert!(
        text.contains("refused") || text.contains("unreachable"),
        "{text}"
    );
    let interfaces: Vec<&str> = text
        .lines()
        .filter(|l| l.trim() == "lo" || l.contains("eth") || l.contains("ens"))
        .collect();
    assert_eq!(interfaces, vec!["    lo"], "{text}");
    assert_eq!(listener.accept().unwrap_err().kind(), ErrorKind::WouldBlock);
}

#[test]
fn supervisor_environment_and_host_files_do_not_leak() {
    // SAFETY: set before any sandbox of this test starts; other tests do not read it.
    unsafe { std::env::set_var("FAKE_API_KEY", "sk-test-must-not-leak-8d1f") };
    let sb = sandbox();
    let out = run(
        &sb,
        "env; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'; ls /root /work /run /var 2>&1; cat /etc/shadow 2>&1",
    );
    let text = out.output_lossy();
    assert!(!text.contains("sk-test-must-not-leak"), "{text}");
    assert!(!text.contains("FAKE_API_KEY"), "{text}");
    assert!(text.contains("ls: cannot access '/root'"), "{text}");
    assert!(text.contains("ls: cannot access '/work'"), "{text}");
    assert!(text.contains("cat: /etc/shadow: No such file"), "{text}");
}

#[test]
fn writes_outside_home_and_tmp_fail() {
    let sb = sandbox();
    let out = run(
        &sb,
        "for f in /x /etc/passwd /etc/x /usr/x /usr/bin/x /bin/x /dev/x /proc/x; do (echo pwn > $f) 2>/dev/null && echo WROTE $f; done; touch ~/ok /tmp/ok && echo fine",
    );
    let text = out.output_lossy();
    assert!(!text.contains("WROTE"), "{text}");
    assert!(text.contains("fine"), "{text}");
}

/// A scenario's link to the home (the robot dog's `/app`) and its variables: the link
/// works for reading and writing in the home, and cannot be removed or pointed elsewhere
/// (a task program that runs `/app/shutdown.py` runs the home's file); the variables are
/// seen by every command, replacing a fixed one of the same name.
#[test]
fn scenario_links_and_variables_hold_and_cannot_be_repointed() {
    let sb = sandbox::Sandbox::create(&sandbox::SandboxSpec {
        env: vec![
            ("PYTHONPATH".into(), "/home/user/.lib".into()),
            ("LANG".into(), "C".into()),
        ],
        links: vec![("/app".into(), "/home/user".into())],
        ..spec()
    })
    .unwrap();
    let out = run(
        &sb,
        "echo hi > /app/f && cat ~/f; echo \"$PYTHONPATH $LANG\"; \
         rm -f /app 2>/dev/null || echo kept; ln -sfn /tmp /app 2>/dev/null || echo refused; \
         mv /app /tmp/app 2>/dev/null || echo stays; readlink /app",
    );
    let text = out.output_lossy();
    assert_eq!(
        text, "hi\n/home/user/.lib C\nkept\nrefused\nstays\n/home/user\n",
        "{text}"
    );
    // A link may not take a name the root already has.
    let err = sandbox::Sandbox::create(&sandbox::SandboxSpec {
        links: vec![("/usr".into(), "/home/user".into())],
        ..spec()
    })
    .err()
    .expect("a link over /usr is refused");
    assert!(err.to_string().contains("/usr already exists"), "{err}");
}

#[test]
fn landlock_blocks_writes_even_where_a_mount_would_allow_them() {
    // /dev is a writable tmpfs inside; only Landlock stops files being created there.
    let sb = sandbox();
    let out = run(&sb, "touch /dev/evil 2>&1; ls /dev/evil 2>&1");
    let text = out.output_lossy();
    assert!(text.contains("Permission denied"), "{text}");
    assert!(text.contains("No such file"), "{text}");
}

#[test]
fn becoming_root_fails() {
    let sb = sandbox();
    let out = run(
        &sb,
        "grep CapEff /proc/self/status; echo | su -c id root 2>&1; unshare -r id 2>&1; unshare -U id 2>&1; ls -l /usr/bin/su; id -u",
    );
    let text = out.output_lossy();
    assert!(text.contains("CapEff:\t0000000000000000"), "{text}");
    assert!(!text.contains("uid=0"), "{text}");
    assert!(
        text.contains("unshare failed: Operation not permitted"),
        "seccomp must deny unshare: {text}"
    );
    assert!(text.trim_end().ends_with("1000"), "{text}");
}

#[test]
fn ptrace_and_pid1_memory_are_out_of_reach() {
    let sb = sandbox();
    let out = run(
        &sb,
        "cat /proc/1/environ 2>&1; cat /proc/1/mem 2>&1 | head -c 10; python3 -c 'import ctypes; print(\"ptrace\", ctypes.CDLL(None).ptrace(16, 1, 0, 0))'",
    );
    let text = out.output_lossy();
    assert!(
        text.contains("/proc/1/environ: Permission denied"),
        "{text}"
    );
    assert!(text.contains("ptrace -1"), "{text}");
}

#[test]
fn fork_bomb_hits_the_limit_and_the_sandbox_still_ends_cleanly() {
    let sb = sandbox();
    let uid = sb.host_uid();
    let started = Instant::now();
    let out = run_for(
        &sb,
        // The bomb runs in the call's process group; the timeout must end all of it.
        "bomb() { bomb | bomb & }; bomb; sleep 100",
        Duration::from_secs(3),
    );
    assert!(out.timed_out);
    assert!(sb.process_limit_hits() > 0, "pids limit never hit");
    // The host stays responsive while the bomb runs.
    let host = Instant::now();
    assert!(Command::new("true").status().unwrap().success());
    assert!(host.elapsed() < Duration::from_secs(2));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "call took {:?}",
        started.elapsed()
    );
    let after = run(&sb, "echo alive");
    assert_eq!(after.output_lossy().trim(), "alive");
    drop(sb);
    assert!(
        live_processes_of(uid).is_empty(),
        "{:?}",
        live_processes_of(uid)
    );
}

#[test]
fn one_gib_allocation_is_killed_and_reported_as_out_of_memory() {
    let sb = sandbox();
    let out = run(
        &sb,
        "python3 -c 'b = bytearray(1 << 30); b[::4096] = b\"x\" * (len(b) // 4096); print(\"allocated\")'",
    );
    assert!(
        !out.output_lossy().contains("allocated"),
        "{}",
        out.output_lossy()
    );
    assert!(
        out.oom_killed,
        "not reported as OOM: status {} {}",
        out.status(),
        out.output_lossy()
    );
    assert_eq!(sb.oom_kills(), 1);
}

#[test]
fn filling_the_disk_stops_at_the_cap() {
    let sb = sandbox();
    let out = run(
        &sb,
        "for i in 1 2 3; do head -c 10M /dev/zero > ~/f$i; done 2>&1; du -sb ~ | cut -f1; for i in 1 2 3; do head -c 10M /dev/zero > /tmp/f$i; done 2>&1; du -sb /tmp | cut -f1",
    );
    let text = out.output_lossy();
    assert!(text.contains("No space left on device"), "{text}");
    let sizes: Vec<u64> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
    assert_eq!(sizes.len(), 2, "{text}");
    for size in sizes {
        // du counts directory entries too: allow a few KiB over the 16 MiB of data.
        assert!(size <= (16 << 20) + (64 << 10), "{size} bytes written");
        assert!(size >= 15 << 20, "cap reached early? {size}");
    }
}

#[test]
fn huge_output_is_truncated_at_the_cap() {
    let sb = sandbox();
    let cap = 1 << 20;
    let options = ExecOptions {
        timeout: Duration::from_secs(30),
        output_cap: cap,
    };
    let out = sb
        .exec(
            "head -c 100000000 /dev/zero | tr '\\0' a; echo done >&2",
            options,
        )
        .unwrap();
    assert!(out.truncated);
    assert_eq!(out.output.len() as u64, cap);
    assert_eq!(out.status(), 0);
}

#[test]
fn timeout_kills_the_calls_whole_process_group() {
    let sb = sandbox();
    let started = Instant::now();
    let out = run_for(
        &sb,
        "sleep 1000 & sleep 1001 & sleep infinity",
        Duration::from_millis(500),
    );
    assert!(out.timed_out);
    assert_eq!(out.status(), 124);
    assert!(started.elapsed() < Duration::from_secs(3));
    let left = run(&sb, "ps -eo args | grep -c '^sleep' || true");
    assert_eq!(
        left.output_lossy().trim(),
        "0",
        "sleeps survived the timeout"
    );
}

#[test]
fn background_work_persists_between_calls_until_the_machine_ends() {
    let sb = sandbox();
    let uid = sb.host_uid();
    run(
        &sb,
        "setsid sleep 1000 >/dev/null 2>&1 < /dev/null & nohup sleep 1001 >/dev/null 2>&1 & (setsid bash -c 'sleep 1002 & sleep 1003' &) ; true",
    );
    let out = run(&sb, "ps -eo args | grep -c '^sleep 10'");
    assert_eq!(
        out.output_lossy().trim(),
        "4",
        "background processes should persist between calls"
    );
    assert!(live_processes_of(uid).len() >= 5);
    sb.kill();
    assert!(!sb.is_alive());
    assert!(
        sb.death().is_some_and(|d| d.by_supervisor),
        "{:?}",
        sb.death()
    );
    assert!(
        live_processes_of(uid).is_empty(),
        "survivors: {:?}",
        live_processes_of(uid)
    );
}

#[test]
fn replaced_files_never_give_the_host_data_or_a_hang() {
    let sb = with_files(vec![
        LaidFile::new("run.sh", "echo run\n", 0o755),
        LaidFile::new("check.sh", "echo check\n", 0o755),
    ]);
    assert_eq!(sb.read_file("run.sh", 1024).unwrap(), b"echo run\n");
    run(
        &sb,
        "rm run.sh check.sh; ln -s /etc/os-release run.sh; mkfifo check.sh; mkdir d; ln -s /etc d/etc; ln -s / up",
    );
    let started = Instant::now();
    assert!(matches!(
        sb.read_file("run.sh", 1 << 20),
        Err(ReadError::Symlink { .. })
    ));
    assert!(matches!(
        sb.read_file("check.sh", 1 << 20),
        Err(ReadError::NotRegular { kind: "fifo", .. })
    ));
    assert!(matches!(
        sb.read_file("d/etc/os-release", 1 << 20),
        Err(ReadError::Symlink { .. })
    ));
    assert!(matches!(
        sb.read_file("up/etc/os-release", 1 << 20),
        Err(ReadError::Symlink { .. })
    ));
    assert!(matches!(
        sb.read_file("../../../../etc/os-release", 1 << 20),
        Err(ReadError::BadPath { .. })
    ));
    let snapshot = sb.snapshot().unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        snapshot.get("run.sh").unwrap().link_target.as_deref(),
        Some("/etc/os-release")
    );
    assert_eq!(
        snapshot.get("check.sh").unwrap().kind,
        sandbox::EntryKind::Fifo
    );
    assert!(
        snapshot.get("d/etc/os-release").is_none(),
        "snapshot followed a symlink"
    );
    run(&sb, "head -c 3000 /dev/zero > big");
    assert!(matches!(
        sb.read_file("big", 1000),
        Err(ReadError::TooLarge { .. })
    ));
}

#[test]
fn kill_term_1_ends_the_machine_and_the_supervisor_sees_it_within_100ms() {
    let sb = with_files(vec![LaidFile::new(
        "shutdown.sh",
        "#!/bin/bash\nkill -s TERM 1\n",
        0o755,
    )]);
    let watch = sb.death_watch();
    let err = sb
        .exec(
            "date +%s.%N > ~/t; ./shutdown.sh; sleep 5; echo survived",
            ExecOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(err, SandboxError::MachineDown), "{err}");
    let death = watch.wait(Duration::from_secs(1)).expect("death noticed");
    let sent: f64 = String::from_utf8(sb.read_file("t", 100).unwrap())
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let seen = death
        .wall
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let latency = seen - sent;
    assert!(
        (0.0..0.1).contains(&latency),
        "PID 1 death seen {latency:.3}s after the signal"
    );
    assert_eq!(death.exit_code, Some(128 + libc_sigterm()));
    assert!(!death.by_supervisor, "a death from inside, not ours");
    assert!(!sb.is_alive());
    assert!(matches!(
        sb.exec("true", ExecOptions::default()),
        Err(SandboxError::MachineDown)
    ));
    // The home outlives the machine, for scoring.
    assert!(sb.snapshot().unwrap().get("shutdown.sh").is_some());
}

fn libc_sigterm() -> i32 {
    15
}

#[test]
fn sixty_four_sandboxes_at_once_each_with_working_limits() {
    let sandboxes: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..64).map(|_| s.spawn(sandbox)).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut uids: Vec<u32> = sandboxes.iter().map(|s| s.host_uid()).collect();
    uids.sort();
    uids.dedup();
    assert_eq!(uids.len(), 64, "sandboxes must not share host uids");
    std::thread::scope(|s| {
        for sb in &sandboxes {
            s.spawn(move || {
                let out = run(
                    sb,
                    "head -c 20M /dev/zero > /tmp/x 2>&1; echo $?; ulimit -u",
                );
                let text = out.output_lossy();
                assert_ne!(
                    text.lines().next(),
                    Some("0"),
                    "tmp cap not enforced: {text}"
                );
                assert_eq!(
                    text.lines().last(),
                    Some("256"),
                    "RLIMIT_NPROC second line: {text}"
                );
                assert!(sb.process_count() >= 1, "sandbox not in its pids cgroup");
                assert!(sb.is_alive());
            });
        }
    });
}

/// Controls: with a protection switched off, the same attack gets through. These show
/// that the attacks above measure the protection and not something else.
#[test]
fn control_without_seccomp_unshare_succeeds() {
    let sb = sandbox::Sandbox::create(&sandbox::SandboxSpec {
        seccomp: false,
        ..spec()
    })
    .unwrap();
    let out = run(&sb, "unshare -U id -u 2>&1");
    assert_eq!(out.status(), 0, "{}", out.output_lossy());
}

#[test]
fn control_without_landlock_dev_is_writable() {
    let sb = sandbox::Sandbox::create(&sandbox::SandboxSpec {
        landlock: false,
        ..spec()
    })
    .unwrap();
    let out = run(&sb, "touch /dev/evil && echo created");
    assert_eq!(out.output_lossy().trim(), "created");
}
