//! A store written by offswitch before the episode record (schema version 0, kept as a
//! fixture: `fixtures/store-v0.db`, made with that release's `eval` over scripted
//! fixtures, and the `report --format json` it printed then, `fixtures/store-v0-report.json`)
//! opens, migrates, and reports the same figures. No sandbox needed.

use offswitch::record::{EpisodeEnd, Event, LimitKind, Outcome};
use offswitch::store::Store;
use std::path::Path;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/store-v0.db");
const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/store-v0-report.json"
);

fn migrated_copy(dir: &Path) -> Store {
    let path = dir.join("old.db");
    std::fs::copy(FIXTURE, &path).unwrap();
    let raw = rusqlite_version(&path);
    assert_eq!(raw, 0, "the fixture must be a version-0 store");
    Store::open(&path).unwrap()
}

fn rusqlite_version(path: &Path) -> i64 {
    // Read without offswitch, so the check does not depend on the code under test.
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('PRAGMA user_version').fetchone()[0])",
        ])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn a_version_0_store_migrates_and_reports_the_same_figures() {
    let dir = tempfile::tempdir().unwrap();
    let store = migrated_copy(dir.path());
    assert_eq!(store.schema_version().unwrap(), 2);
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(GOLDEN).unwrap()).unwrap();
    let golden = golden.as_object().unwrap();
    assert_eq!(golden.len(), 3);
    for (run, cells) in golden {
        let run: i64 = run.parse().unwrap();
        let report = offswitch::report::build(&store, run).unwrap();
        let cells = cells.as_array().unwrap();
        assert_eq!(report.cells.len(), cells.len(), "run {run}");
        for (now, then) in report.cells.iter().zip(cells) {
            let label = format!("run {run} {} {}", now.model, now.variant);
            assert_eq!(now.model, then["model"].as_str().unwrap(), "{label}");
            assert_eq!(now.variant, then["variant"].as_str().unwrap(), "{label}");
            assert_eq!(
                serde_json::to_value(&now.outcomes).unwrap(),
                then["outcomes"],
                "{label}"
            );
            assert_eq!(
                serde_json::to_value(&now.methods).unwrap(),
                then["methods"],
                "{label}"
            );
            for (field, value) in [
                ("episodes", now.episodes),
                ("sabotaged", now.sabotaged),
                ("attempted", now.attempted),
                ("strict_judged", now.strict_judged),
                ("strict_compliant", now.strict_compliant),
            ] {
                assert_eq!(Some(value), then[field].as_u64(), "{label}: {field}");
            }
            // The one figure that changes: the old release counted guard stops in N
            // although its legend said they were excluded.
            let guard_stops = then["outcomes"]["stopped_by_guard"].as_u64().unwrap();
            assert_eq!(
                now.n,
                then["n"].as_u64().unwrap() - guard_stops,
                "{label}: N"
            );
        }
    }
    // The guard run's two tampering fixtures were all stopped by the guard: no N.
    let guarded = offswitch::report::build(&store, 2).unwrap();
    assert!(
        guarded
            .cells
            .iter()
            .filter(|c| c.model != "scripted/comply")
            .all(|c| c.n == 0 && c.sabotage_rate.is_none())
    );
}

#[test]
fn migrated_episodes_are_whole_records_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = migrated_copy(dir.path());
    let mut seen = 0;
    for run in 1..=3 {
        for (id, e) in store.run_episodes(run).unwrap() {
            seen += 1;
            let times: Vec<u64> = e.events.iter().map(Event::at_ms).collect();
            assert!(times.is_sorted(), "episode {id}: {times:?}");
            assert!(
                matches!(e.events.first(), Some(Event::Input { .. })),
                "episode {id}"
            );
            assert!(e.score.is_some(), "episode {id}");
            assert_eq!(e.score.as_ref().unwrap().scorer_version, 0);
            // Every tool call has its answer, a bash call's after its command.
            for (call, _) in e.tool_calls() {
                let answered = e
                    .events
                    .iter()
                    .position(|ev| matches!(ev, Event::ToolResult { call: c, .. } if *c == call));
                if let Some(cmd) = e
                    .events
                    .iter()
                    .position(|ev| matches!(ev, Event::Command(c) if c.tool_call == call))
                {
                    assert!(answered.is_none_or(|a| a > cmd), "episode {id} call {call}");
                }
            }
            if e.model == "scripted/stall" {
                assert!(
                    matches!(
                        e.end,
                        EpisodeEnd::Limit {
                            limit: LimitKind::Messages,
                            value: Some(_),
                            ..
                        }
                    ),
                    "{:?}",
                    e.end
                );
            }
            // The stored score is the one the current scorer gives (the rules did not
            // change between the versions, only the stamp).
            let now = offswitch::score::score(&e);
            assert_eq!(
                now.outcome,
                e.score.as_ref().unwrap().outcome,
                "episode {id}"
            );
            let text = offswitch::report::transcript::render(id, run, &e);
            assert!(text.contains("--- transcript ---"));
        }
    }
    assert_eq!(seen, 21);
    // Opening again changes nothing.
    drop(store);
    let again = Store::open(&dir.path().join("old.db")).unwrap();
    assert_eq!(again.episode_count(1).unwrap(), 12);
}

#[test]
fn rescoring_a_migrated_store_restamps_and_reports_say_so_until_then() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = migrated_copy(dir.path());
    let before = offswitch::report::render::table(&offswitch::report::build(&store, 1).unwrap());
    assert!(
        before.contains("scorer version 0 (12 episodes)"),
        "{before}"
    );
    let dry = offswitch::rescore::rescore(&mut store, &[1], true).unwrap();
    assert_eq!((dry.examined, dry.restamped), (12, 12));
    assert!(dry.changed.is_empty(), "{:?}", dry.changed);
    let done = offswitch::rescore::rescore(&mut store, &[1], false).unwrap();
    assert_eq!(done.restamped, 12);
    let again = offswitch::rescore::rescore(&mut store, &[1], false).unwrap();
    assert_eq!((again.restamped, again.changed.len()), (0, 0));
    let after = offswitch::report::render::table(&offswitch::report::build(&store, 1).unwrap());
    assert!(!after.contains("scorer version"), "{after}");
    let cells = store.cell_summaries(1).unwrap();
    assert_eq!(cells[0].count(Outcome::Complied), 2);
}

/// A store written by offswitch 0.1 with schema version 1 (before shards), kept as a
/// fixture (`fixtures/store-v1.db`, made with that release's `eval --model
/// scripted/comply,scripted/overwrite --variant A,B --runs 2`, and the `report --format
/// json` it printed, `fixtures/store-v1-report.json`): it opens, becomes version 2 with
/// its run whole, and reports exactly what it reported.
#[test]
fn a_version_1_store_migrates_to_whole_runs_and_reports_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/store-v1.db"),
        &path,
    )
    .unwrap();
    assert_eq!(
        rusqlite_version(&path),
        1,
        "the fixture must be a version-1 store"
    );
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), 2);
    assert_eq!(store.run_shard(1).unwrap(), None);
    let runs = store.runs().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].stored, runs[0].planned, runs[0].shard),
        (8, 8, None)
    );
    let then: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/store-v1-report.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let now: serde_json::Value = serde_json::from_str(&offswitch::report::render::json(
        &offswitch::report::build(&store, 1).unwrap(),
    ))
    .unwrap();
    assert_eq!(now, then);
}
