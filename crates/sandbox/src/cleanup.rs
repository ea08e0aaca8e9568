//! Finding and removing what a crashed supervisor left behind: sandbox directories
//! (and the home mounts that earlier versions made on the host) and cgroups whose owning
//! process is gone, and a check that nothing of ours is left at all.

use crate::cgroup::{self, CgroupLayout};
use crate::mode::{self, Mode};
use crate::uid_pool;
use nix::mount::{MntFlags, umount2};
use std::fs;
use std::path::Path;

/// Sandbox ids are `<supervisor pid>-<sequence>`.
fn owner_pid(name: &str) -> Option<u32> {
    name.split_once('-')?.0.parse().ok()
}

fn owner_alive(name: &str) -> bool {
    owner_pid(name).is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
}

/// Removes sandbox directories and cgroups of supervisors that no longer run.
pub fn remove_stale(mode: Mode) {
    let sandboxes = mode::runtime_dir(mode).join("sandboxes");
    for entry in fs::read_dir(&sandboxes).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !owner_alive(&name) {
            let _ = umount2(&entry.path().join("home"), MntFlags::MNT_DETACH);
            let _ = fs::remove_dir_all(entry.path());
        }
    }
    if let Some(layout) = CgroupLayout::detect() {
        for dir in cgroup::sandbox_group_dirs(&layout) {
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !owner_alive(&name) {
                cgroup::remove_stale_group(&dir);
            }
        }
    }
}

/// Everything of offswitch's sandboxes still present on this machine: directories,
/// mounts, cgroups, processes running as a sandbox uid, and sandbox helper processes
/// (zygotes, helpers) that this process did not start. Empty when clean.
pub fn leftovers() -> Vec<String> {
    let mut found = Vec::new();
    let mode = mode::detect().unwrap_or(Mode::Rootless);
    let runtime = mode::runtime_dir(mode);
    for entry in fs::read_dir(runtime.join("sandboxes"))
        .into_iter()
        .flatten()
        .flatten()
    {
        found.push(format!("sandbox directory {}", entry.path().display()));
    }
    if let Ok(mounts) = fs::read_to_string("/proc/self/mountinfo") {
        let runtime = runtime.to_string_lossy().into_owned();
        for line in mounts.lines() {
            if let Some(point) = line.split(' ').nth(4)
                && point.starts_with(&runtime)
            {
                found.push(format!("mount {point}"));
            }
        }
    }
    if let Some(layout) = CgroupLayout::detect() {
        for dir in cgroup::sandbox_group_dirs(&layout) {
            found.push(format!("cgroup {}", dir.display()));
        }
    }
    use std::os::unix::fs::MetadataExt;
    let sandbox_uids = uid_pool::FIRST_UID..uid_pool::FIRST_UID + uid_pool::SLOTS;
    let ours = std::process::id();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(pid) = name.parse::<u32>() else {
            continue;
        };
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        // A zombie holds no resources: it is an exited process that the host's init
        // has not collected (left when a supervisor was killed outright).
        if stat_of(pid).is_none_or(|(state, _)| state == 'Z') {
            continue;
        }
        let comm = fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if sandbox_uids.contains(&meta.uid()) {
            found.push(format!(
                "process {name} ({}) as sandbox uid {}",
                comm.trim(),
                meta.uid()
            ));
        } else if runs_helper(pid) && !descends_from(pid, ours) {
            // A zygote, helper or (rootless) PID 1 that no supervisor here started.
            found.push(format!("sandbox helper process {name} ({})", comm.trim()));
        }
    }
    found
}

/// A process's state and parent, from `/proc/PID/stat`.
fn stat_of(pid: u32) -> Option<(char, u32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    Some((state, fields.next()?.parse().ok()?))
}

/// Whether `pid` runs the sandbox helper's code (`... __sandbox BUILD`).
fn runs_helper(pid: u32) -> bool {
    fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| c.split(|b| *b == 0).nth(1) == Some(crate::helper::HELPER_ARG.as_bytes()))
}

fn descends_from(mut pid: u32, ancestor: u32) -> bool {
    while pid > 1 {
        match stat_of(pid) {
            Some((_, parent)) if parent == ancestor => return true,
            Some((_, parent)) => pid = parent,
            None => return false,
        }
    }
    false
}
