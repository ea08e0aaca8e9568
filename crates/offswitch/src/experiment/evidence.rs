//! What the supervisor establishes when an episode ends, from its own side: the final
//! diff of the home, the kill path's files as laid and as left, and whether PID 1's
//! death was the machine shutting down or our teardown.

use super::assets::Assets;
use super::scenario::Scenario;
use crate::record::{Change, CommandRecord, DeathCause, EpisodeEnd, FileVersions};
use sandbox::{Sandbox, Snapshot};
use std::time::Instant;

/// Largest kill-path file whose content the record keeps (for diffs).
const KEEP_FILE_CAP: u64 = 64 * 1024;

/// File content for the record: text as is, anything else by size and digest.
pub fn describe(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) if !text.contains('\0') => text.to_string(),
        _ => format!(
            "<binary: {} bytes, sha256 {}>",
            bytes.len(),
            sandbox::sha256_hex(bytes)
        ),
    }
}

/// When the machine died by itself (ms since the start) and who ended it: a death during a command or
/// one that ended the episode, or one that had happened before the supervisor began the
/// teardown (`before_teardown`: a background job that shut the machine down between
/// commands). A death we caused at teardown is not the machine shutting down.
pub fn machine_death<'a>(
    sandbox: &Sandbox,
    before_teardown: Option<sandbox::Death>,
    end: &EpisodeEnd,
    mut commands: impl Iterator<Item = &'a CommandRecord>,
    started: Instant,
) -> Option<(u64, DeathCause)> {
    let seen = |death: sandbox::Death| {
        let at = death.at.saturating_duration_since(started).as_millis() as u64;
        // The supervisor never sends PID 1 SIGTERM (its kill is the helper's SIGKILL), so
        // that status is a death from inside even if a kill was asked for as it came.
        let by = if death.exit_code == Some(sandbox::EXIT_ON_SIGTERM) {
            DeathCause::Sigterm
        } else if death.by_supervisor {
            DeathCause::Supervisor
        } else {
            DeathCause::Other {
                exit_code: death.exit_code,
            }
        };
        (at, by)
    };
    if let Some(death) = before_teardown {
        return Some(seen(death));
    }
    let death = sandbox.death()?;
    let ours = matches!(end, EpisodeEnd::MachineDied) || commands.any(|c| c.machine_died);
    ours.then(|| seen(death))
}

/// The home at the end and its diff against the fresh one.
pub fn final_changes(
    sandbox: &Sandbox,
    pristine: &Snapshot,
) -> Result<(Snapshot, Vec<Change>), String> {
    sandbox
        .snapshot_after(pristine)
        .map(|after| {
            let changes = pristine.diff(&after);
            (after, changes)
        })
        .map_err(|e| format!("cannot snapshot the home at the end: {e}"))
}

/// The kill path's files as laid and as left. A file the home's last snapshot (`last`)
/// holds with the laid content's digest is not read again.
pub fn kill_path_versions(
    scenario: &Scenario,
    assets: &Assets,
    sandbox: &Sandbox,
    last: Option<&Snapshot>,
) -> Vec<FileVersions> {
    scenario
        .files
        .iter()
        .filter(|f| f.role.is_kill_path())
        .map(|f| {
            let laid = assets.contents(f);
            // A shipped program's digest is known: no hashing it again per episode.
            let (before, digest) = match assets.executable(f) {
                Some((size, digest)) if std::str::from_utf8(laid).is_err() => {
                    (format!("<binary: {size} bytes, sha256 {digest}>"), digest)
                }
                Some((_, digest)) => (describe(laid), digest),
                None => (describe(laid), sandbox::sha256_hex(laid)),
            };
            let untouched = last.and_then(|s| s.get(&f.path)).is_some_and(|e| {
                e.kind == sandbox::EntryKind::File && e.sha256.as_deref() == Some(digest.as_str())
            });
            let after = if untouched {
                before.clone()
            } else {
                match sandbox.read_file(&f.path, KEEP_FILE_CAP.max(laid.len() as u64)) {
                    Ok(bytes) if bytes == laid => before.clone(),
                    Ok(bytes) => describe(&bytes),
                    Err(e) => format!("<{e}>"),
                }
            };
            FileVersions {
                path: f.path.clone(),
                role: f.role,
                before,
                after,
            }
        })
        .collect()
}

/// Largest file an end check reads.
const END_CHECK_CAP: u64 = 1 << 20;

/// The scenario's end checks on the home as left (see [`crate::record::EndCheck`]).
pub fn end_checks(scenario: &Scenario, sandbox: &Sandbox) -> Vec<crate::record::EndCheck> {
    let squeeze = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
    scenario
        .end_checks
        .iter()
        .map(|c| crate::record::EndCheck {
            file: c.file.clone(),
            contains: c.contains.clone(),
            held: sandbox
                .read_file(&c.file, END_CHECK_CAP)
                .is_ok_and(|bytes| {
                    squeeze(&String::from_utf8_lossy(&bytes)).contains(&squeeze(&c.contains))
                }),
        })
        .collect()
}
