//! Which isolation this process can set up: as root (everything), as an unprivileged
//! user with user namespaces (namespaces, seccomp, Landlock, rlimits; cgroups only where
//! v2 delegates them), or none at all, which is an error that says how to fix it.

use std::fs;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Root,
    Rootless,
}

#[derive(Debug, thiserror::Error)]
#[error("{reason}\n  fix: {fix}")]
pub struct NoIsolation {
    pub reason: String,
    pub fix: String,
}

pub fn detect() -> Result<Mode, NoIsolation> {
    if nix::unistd::geteuid().is_root() {
        return Ok(Mode::Root);
    }
    if let Some(reason) = userns_blocker() {
        return Err(NoIsolation {
            reason: format!("offswitch is not running as root and {reason}, so it cannot build a sandbox"),
            fix: "run offswitch as root (e.g. `sudo offswitch ...`), or allow unprivileged user namespaces: \
                  `sudo sysctl -w kernel.unprivileged_userns_clone=1` (Debian), \
                  `sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0` (Ubuntu 24.04+), \
                  `sudo sysctl -w user.max_user_namespaces=15000`"
                .into(),
        });
    }
    Ok(Mode::Rootless)
}

/// Why unprivileged user namespaces are unavailable, if a sysctl says so.
pub fn userns_blocker() -> Option<String> {
    userns_blocker_in(std::path::Path::new("/proc"))
}

/// [`userns_blocker`] reading the sysctls under `proc` (a fake tree in tests).
pub fn userns_blocker_in(proc: &std::path::Path) -> Option<String> {
    let read = |p: &str| {
        fs::read_to_string(proc.join(p))
            .ok()
            .map(|s| s.trim().to_string())
    };
    if read("sys/user/max_user_namespaces").as_deref() == Some("0") {
        return Some("user.max_user_namespaces is 0".into());
    }
    if read("sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return Some("kernel.unprivileged_userns_clone is 0".into());
    }
    if read("sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        return Some("AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1)".into());
    }
    if !proc.join("self/ns/user").exists() && proc == std::path::Path::new("/proc") {
        return Some("the kernel has no user namespaces".into());
    }
    None
}

/// Where this mode keeps sandbox homes, staging roots and uid locks.
pub fn runtime_dir(mode: Mode) -> PathBuf {
    match mode {
        Mode::Root => PathBuf::from("/run/offswitch"),
        Mode::Rootless => match std::env::var_os("XDG_RUNTIME_DIR") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("offswitch"),
            _ => PathBuf::from(format!("/tmp/offswitch-{}", nix::unistd::getuid())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_sysctl_that_blocks_user_namespaces_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let proc = dir.path();
        fs::create_dir_all(proc.join("sys/user")).unwrap();
        fs::create_dir_all(proc.join("sys/kernel")).unwrap();
        assert_eq!(userns_blocker_in(proc), None);
        fs::write(
            proc.join("sys/kernel/apparmor_restrict_unprivileged_userns"),
            "1\n",
        )
        .unwrap();
        assert!(userns_blocker_in(proc).unwrap().contains("AppArmor"));
        fs::write(proc.join("sys/kernel/unprivileged_userns_clone"), "0\n").unwrap();
        assert!(
            userns_blocker_in(proc)
                .unwrap()
                .contains("unprivileged_userns_clone is 0")
        );
        fs::write(proc.join("sys/user/max_user_namespaces"), "0\n").unwrap();
        assert!(
            userns_blocker_in(proc)
                .unwrap()
                .contains("max_user_namespaces is 0")
        );
        let err = NoIsolation {
            reason: "x".into(),
            fix: "y".into(),
        }
        .to_string();
        assert_eq!(err, "x\n  fix: y");
    }
}
