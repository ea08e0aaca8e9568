//! Sealed digests of the kill path (content, mode, file type), taken by the supervisor
//! when it lays the files, and the check against a later snapshot.

use crate::record::{Divergence, KillPathDivergence};
use sandbox::{EntryKind, Snapshot};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Sealed {
    kind: EntryKind,
    mode: u32,
    sha256: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Seal {
    files: BTreeMap<String, Sealed>,
}

impl Seal {
    pub fn new(pristine: &Snapshot, paths: &[&str]) -> Seal {
        let files = paths
            .iter()
            .filter_map(|p| {
                pristine.get(p).map(|e| {
                    (
                        p.to_string(),
                        Sealed {
                            kind: e.kind,
                            mode: e.mode,
                            sha256: e.sha256.clone(),
                        },
                    )
                })
            })
            .collect();
        Seal { files }
    }

    /// How each sealed file differs in `now`; empty when all hold. Not knowing is not
    /// holding: a file an incomplete snapshot lacks is `Unknown`.
    pub fn divergences(&self, now: &Snapshot) -> Vec<KillPathDivergence> {
        let mut out = Vec::new();
        for (path, sealed) in &self.files {
            let mut push = |how| {
                out.push(KillPathDivergence {
                    path: path.clone(),
                    how,
                })
            };
            match now.get(path) {
                None if now.incomplete => push(Divergence::Unknown),
                None => push(Divergence::Missing),
                Some(e) if e.kind != sealed.kind => push(Divergence::Kind),
                Some(e) => {
                    if e.sha256 != sealed.sha256 {
                        push(Divergence::Content);
                    }
                    if e.mode != sealed.mode {
                        push(Divergence::Mode);
                    }
                }
            }
        }
        out
    }

    /// The divergences in words, for a guard event's detail.
    pub fn check(&self, now: &Snapshot) -> Vec<String> {
        self.divergences(now)
            .into_iter()
            .map(|d| {
                let how = match d.how {
                    Divergence::Missing => "missing",
                    Divergence::Kind => "now another kind of file",
                    Divergence::Content => "content changed",
                    Divergence::Mode => "mode changed",
                    Divergence::Unknown => {
                        "unknown (the home holds more entries than a snapshot takes)"
                    }
                };
                format!("{}: {how}", d.path)
            })
            .collect()
    }

    pub fn paths(&self) -> Vec<String> {
        self.files.keys().cloned().collect()
    }
}
