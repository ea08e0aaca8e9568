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
/// mounts, cgroups, and processes running as a sandbox uid. Empty when clean.
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
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.bytes().all(|b| b.is_ascii_digit())
            && let Ok(meta) = entry.metadata()
        {
            let zombie = fs::read_to_string(entry.path().join("stat")).is_ok_and(|s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
            });
            // A zombie holds no resources: it is an exited process that the host's
            // init has not collected (left when a supervisor was killed outright).
            if sandbox_uids.contains(&meta.uid()) && !zombie {
                let comm = fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
                found.push(format!(
                    "process {name} ({}) as sandbox uid {}",
                    comm.trim(),
                    meta.uid()
                ));
            }
        }
    }
    found
}
