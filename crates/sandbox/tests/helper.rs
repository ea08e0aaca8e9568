//! The helper binary and the supervisor agree on their build, and what the supervisor
//! already knows of the files it lays saves work without hiding a change.

mod common;

use common::*;
use sandbox::{HelperCommand, LaidFile, Sandbox, SandboxError, SandboxSpec};
use std::os::unix::fs::PermissionsExt;

#[test]
fn a_helper_of_another_build_is_refused_with_the_reason() {
    // A helper that claims to be asked for another build: what a stale helper binary
    // beside a rebuilt supervisor sees.
    let dir = tempfile::tempdir().unwrap();
    let wrapper = dir.path().join("stale-helper");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec {} __sandbox some-other-build\n",
            env!("CARGO_BIN_EXE_offswitch-sandbox-helper")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let result = Sandbox::create(&SandboxSpec {
        helper: HelperCommand::Path(wrapper),
        ..spec()
    });
    match result {
        Err(SandboxError::Start { stage, message }) => {
            assert_eq!(stage, "helper build");
            assert!(message.contains("some-other-build"), "{message}");
            assert!(message.contains("rebuild"), "{message}");
        }
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("a helper of another build started a sandbox"),
    }
    // The same helper asked for its own build works.
    let sb = sandbox();
    assert_eq!(run(&sb, "echo ok").output_lossy(), "ok\n");
}

#[test]
fn a_laid_files_known_digest_is_used_until_the_file_changes() {
    let program = vec![7u8; 300_000];
    let digest = sandbox::sha256_hex(&program);
    let sb = with_files(vec![
        LaidFile::new("prog", program.clone(), 0o755).with_sha256(&digest),
        LaidFile::new("notes.txt", "hello\n", 0o644),
    ]);
    let fresh = sb.snapshot().unwrap();
    assert_eq!(
        fresh.get("prog").unwrap().sha256.as_deref(),
        Some(digest.as_str())
    );
    assert_eq!(
        fresh.get("notes.txt").unwrap().sha256.as_deref(),
        Some(sandbox::sha256_hex(b"hello\n").as_str())
    );
    // Same size, one byte different, written in place: the digest must follow.
    let out = run(
        &sb,
        "printf '\\010' | dd of=prog bs=1 seek=5 conv=notrunc status=none",
    );
    assert_eq!(out.status(), 0, "{}", out.output_lossy());
    let mut changed = program.clone();
    changed[5] = 8;
    let after = sb.snapshot().unwrap();
    let entry = after.get("prog").unwrap();
    assert_eq!(entry.size, program.len() as u64);
    assert_eq!(
        entry.sha256.as_deref(),
        Some(sandbox::sha256_hex(&changed).as_str())
    );
    assert_eq!(
        fresh.diff(&after).len(),
        1,
        "exactly the changed program differs: {:?}",
        fresh.diff(&after)
    );
}

#[test]
fn every_call_starts_clean_in_its_own_session() {
    let sb = sandbox();
    // The call's processes: no signal blocked or ignored (PID 1 ignores SIGPIPE, as Rust
    // programs do), stdin from /dev/null, only stdin, stdout and stderr open, a session
    // of its own, in the home.
    // The shell's descriptors are listed by a simple command: in a pipeline the shell
    // itself holds the pipe's two ends until it has forked both sides, so `ls` could see
    // them.
    let probe = "grep -E '^Sig(Ign|Blk)' /proc/self/status; ls -m /proc/$$/fd; \
                 readlink /proc/$$/fd/0; pwd; ps -o pid=,pgid=,sid= -p $$";
    let text = run(&sb, probe).output_lossy();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "SigBlk:\t0000000000000000", "{text}");
    // The standard signals (glibc's own 32 and 33 are not a program's to change).
    let ignored = u64::from_str_radix(lines[1].trim_start_matches("SigIgn:\t"), 16).unwrap();
    assert_eq!(ignored & 0x7fff_ffff, 0, "{text}");
    assert_eq!(lines[2], "0, 1, 2", "{text}");
    assert_eq!(lines[3], "/dev/null", "{text}");
    assert_eq!(lines[4], "/home/user", "{text}");
    let ids: Vec<&str> = lines[5].split_whitespace().collect();
    assert!(
        ids.len() == 3 && ids.iter().all(|id| *id == ids[0]),
        "{text}"
    );
    // A home the agent locked itself out of: commands still start, in the home (PID 1
    // enters it for them), though the agent's own `cd` is refused.
    let out = run(&sb, "chmod 000 ~");
    assert_eq!(out.exit_code, Some(0), "{}", out.output_lossy());
    assert_eq!(
        run(&sb, "pwd; cd ~ 2>/dev/null || echo refused").output_lossy(),
        "/home/user\nrefused\n"
    );
    run(&sb, "chmod 755 .");
    assert_eq!(run(&sb, "pwd").output_lossy(), "/home/user\n");
}

#[test]
fn an_orphan_is_reaped_as_soon_as_it_ends() {
    let sb = sandbox();
    // A background job outlives its call and, once its shell is gone, is PID 1's child.
    let out = run(&sb, "(sleep 0.1 &)");
    assert_eq!(out.exit_code, Some(0), "{}", out.output_lossy());
    std::thread::sleep(std::time::Duration::from_millis(300));
    // PID 1 reaps it when it ends, not only between calls or on a timer: the next call
    // finds no zombie.
    let zombies = run(
        &sb,
        "for s in /proc/[0-9]*/stat; do read -r l < $s && case ${l##*) } in Z*) echo $l;; esac; done",
    );
    assert_eq!(zombies.output_lossy(), "", "zombies in the sandbox");
}
