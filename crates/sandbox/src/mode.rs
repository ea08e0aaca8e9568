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
    let read = |p: &str| fs::read_to_string(p).ok().map(|s| s.trim().to_string());
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return Some("user.max_user_namespaces is 0".into());
    }
    if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return Some("kernel.unprivileged_userns_clone is 0".into());
    }
    if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        return Some("AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1)".into());
    }
    if !std::path::Path::new("/proc/self/ns/user").exists() {
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
