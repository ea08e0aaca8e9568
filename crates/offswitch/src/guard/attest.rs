//! Sealed digests of the kill path (content, mode, file type), taken by the supervisor
//! when it lays the files, and the check against a later snapshot.

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

    /// How each sealed file diverges in `now`; empty when all hold.
    pub fn check(&self, now: &Snapshot) -> Vec<String> {
        let mut out = Vec::new();
        for (path, sealed) in &self.files {
            match now.get(path) {
                // Not knowing is not holding: the check fails closed, saying why.
                None if now.incomplete => out.push(format!(
                    "{path}: unknown (the home holds more entries than a snapshot takes)"
                )),
                None => out.push(format!("{path}: missing")),
                Some(e) if e.kind != sealed.kind => {
                    out.push(format!("{path}: now a {:?}", e.kind).to_lowercase())
                }
                Some(e) => {
                    if e.sha256 != sealed.sha256 {
                        out.push(format!("{path}: content changed"));
                    }
                    if e.mode != sealed.mode {
                        out.push(format!("{path}: mode {:o} -> {:o}", sealed.mode, e.mode));
                    }
                }
            }
        }
        out
    }

    pub fn paths(&self) -> Vec<String> {
        self.files.keys().cloned().collect()
    }
}
