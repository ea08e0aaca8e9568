//! What this machine lets offswitch enforce, checked rather than assumed: `doctor`.

use crate::cgroup::CgroupLayout;
use crate::confine;
use crate::mode::{self, Mode};
use crate::sandbox::Sandbox;
use crate::spec::{ExecOptions, HelperCommand, SandboxSpec};
use std::time::Duration;

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub checks: Vec<Check>,
    /// The protections a real sandbox reported, when the trial sandbox started.
    pub enforced: Vec<String>,
    /// Whether sandboxes can be built at all.
    pub usable: bool,
}

pub fn probe(helper: HelperCommand) -> Report {
    let mut checks = Vec::new();
    let mut push = |name, ok, detail: String| checks.push(Check { name, ok, detail });
    let uname = nix::sys::utsname::uname().ok();
    push(
        "kernel",
        true,
        uname.map_or("unknown".into(), |u| {
            format!(
                "{} {}",
                u.sysname().to_string_lossy(),
                u.release().to_string_lossy()
            )
        }),
    );
    let mode = mode::detect();
    match &mode {
        Ok(Mode::Root) => push("privileges", true, "root: full isolation, a distinct host uid per sandbox, cgroup limits".into()),
        Ok(Mode::Rootless) => push("privileges", true, "unprivileged user with user namespaces: namespaces, seccomp, Landlock and rlimits; cgroup limits only with v2 delegation; all sandboxes share your uid".into()),
        Err(e) => push("privileges", false, e.to_string()),
    }
    match mode::userns_blocker() {
        None => push("user namespaces", true, "available".into()),
        Some(reason) => push(
            "user namespaces",
            mode.is_ok(),
            format!("unprivileged use blocked: {reason}"),
        ),
    }
    push(
        "seccomp",
        confine::seccomp_available(),
        if confine::seccomp_available() {
            "filters available".into()
        } else {
            "not available: syscalls are not filtered".into()
        },
    );
    let abi = confine::landlock_abi();
    push(
        "landlock",
        abi > 0,
        if abi > 0 {
            format!("ABI {abi}")
        } else {
            "not available (not built or not in the LSM list): writes are confined by read-only mounts only".into()
        },
    );
    match CgroupLayout::detect() {
        Some(layout) if matches!(mode, Ok(Mode::Rootless)) => push(
            "cgroups",
            false,
            format!(
                "{}; a sandbox uses them only where this user may create groups (v2 delegation)",
                layout.describe()
            ),
        ),
        Some(layout) => push("cgroups", true, layout.describe()),
        None => push(
            "cgroups",
            false,
            "no cgroup hierarchy found: memory and process limits fall back to rlimits".into(),
        ),
    }
    let mut enforced = Vec::new();
    let mut usable = false;
    if mode.is_ok() {
        match trial(helper) {
            Ok(protections) => {
                usable = true;
                enforced = protections;
                push(
                    "trial sandbox",
                    true,
                    "created, ran a command, saw no network and no host processes".into(),
                );
            }
            Err(e) => push("trial sandbox", false, e),
        }
        // The trial leaves nothing behind, not even the emptied cgroups a process keeps
        // for its next sandbox.
        crate::cgroup::remove_spare_groups();
    }
    Report {
        checks,
        enforced,
        usable,
    }
}

fn trial(helper: HelperCommand) -> Result<Vec<String>, String> {
    let spec = SandboxSpec {
        helper,
        ..SandboxSpec::default()
    };
    let sandbox = Sandbox::create(&spec).map_err(|e| e.to_string())?;
    let options = ExecOptions {
        timeout: Duration::from_secs(10),
        ..ExecOptions::default()
    };
    let out = sandbox
        .exec("id -u; ls /proc | grep -c '^[0-9]' ; cat /sys/class/net/*/operstate 2>/dev/null | wc -l", options)
        .map_err(|e| e.to_string())?;
    let text = out.output_lossy();
    let lines: Vec<&str> = text.lines().collect();
    if out.status() != 0 || lines.first() != Some(&"1000") {
        return Err(format!(
            "the trial command misbehaved (status {}): {text}",
            out.status()
        ));
    }
    Ok(sandbox.protections().to_vec())
}
