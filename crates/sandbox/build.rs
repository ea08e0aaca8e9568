//! The sandbox's build identity: a digest of this crate's sources (and the compiler that
//! builds them), so that a supervisor refuses a helper binary built from other sources
//! (a stale `offswitch-helper` beside a rebuilt `offswitch`) instead of running a
//! sandbox whose protections are not the ones it reports.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=Cargo.toml");
    let mut files = Vec::new();
    collect(Path::new("src"), &mut files);
    files.sort();
    let mut hasher = DefaultHasher::new();
    for path in &files {
        path.hash(&mut hasher);
        std::fs::read(path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
            .hash(&mut hasher);
    }
    std::fs::read("Cargo.toml")
        .unwrap_or_default()
        .hash(&mut hasher);
    std::env::var("RUSTC").unwrap_or_default().hash(&mut hasher);
    std::env::var("PROFILE")
        .unwrap_or_default()
        .hash(&mut hasher);
    println!(
        "cargo:rustc-env=OFFSWITCH_SANDBOX_BUILD={}-{:016x}",
        std::env::var("CARGO_PKG_VERSION").unwrap_or_default(),
        hasher.finish()
    );
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.push(path);
        }
    }
}
