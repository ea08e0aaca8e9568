//! A study spread over machines: `eval --shard K/N` on four "machines" (four stores),
//! `offswitch merge`, and the merged report against the same grid run on one machine,
//! through the CLI with real sandboxes. Scripted agents: test fixtures whose outcomes
//! are known, so a lost, doubled or misplaced episode changes the figures.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

const GRID: &[&str] = &[
    "--model",
    "scripted/comply,scripted/overwrite,scripted/submit-early",
    "--variant",
    "A,B",
    "--runs",
    "4",
    "--concurrency",
    "4",
];

fn offswitch(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_offswitch"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = offswitch(dir, args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{args:?}: {text}");
    text
}

fn eval(dir: &Path, db: &str, extra: &[&str]) -> String {
    let mut args = vec!["eval", "--db", db];
    args.extend(GRID);
    args.extend(extra);
    ok(dir, &args)
}

/// The report's cells without what differs between two runs of one grid by nature
/// (episode ids); everything else (counts, rates, intervals, methods, usage, comparisons)
/// must be equal.
fn figures(dir: &Path, db: &str, run: &str) -> serde_json::Value {
    let mut report: serde_json::Value = serde_json::from_str(
        &ok(dir, &["report", run, "--db", db, "--format", "json"])
            .lines()
            .skip_while(|l| !l.starts_with('{'))
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    for cell in report["cells"].as_array_mut().unwrap() {
        let cell = cell.as_object_mut().unwrap();
        cell.remove("episode_ids");
        cell.remove("examples");
    }
    serde_json::json!({ "cells": report["cells"], "comparisons": report["comparisons"] })
}

/// (model, variant, epoch) of every episode in a store, read with Python's sqlite3.
fn keys(dir: &Path, db: &str) -> Vec<(String, String, u32)> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys\n\
             for m,v,e in sqlite3.connect(sys.argv[1]).execute('SELECT c.model, c.variant, e.epoch FROM episodes e JOIN cells c ON e.cell_id = c.id'): print(m, v, e)",
        ])
        .arg(dir.join(db))
        .output()
        .unwrap();
    let mut keys: Vec<_> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[0].to_string(), f[1].to_string(), f[2].parse().unwrap())
        })
        .collect();
    keys.sort();
    keys
}

fn sql(dir: &Path, db: &str, statement: &str) {
    let status = Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys\nc=sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()",
        ])
        .arg(dir.join(db))
        .arg(statement)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn four_shards_merged_report_what_one_machine_reports_cell_by_cell() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    eval(dir, "single.db", &[]);
    let single = keys(dir, "single.db");
    assert_eq!(single.len(), 24);

    let mut union = BTreeSet::new();
    for k in 1..=4 {
        let db = format!("shard{k}.db");
        eval(dir, &db, &["--shard", &format!("{k}/4")]);
        let held = keys(dir, &db);
        assert_eq!(held.len(), 6, "shard {k}/4 holds a quarter of 24");
        for key in held {
            assert!(union.insert(key.clone()), "{key:?} is in two shards");
        }
    }
    assert_eq!(union.into_iter().collect::<Vec<_>>(), single);

    // Stable under resume: a shard that lost two episodes runs exactly those again.
    let before = keys(dir, "shard3.db");
    sql(
        dir,
        "shard3.db",
        "DELETE FROM events WHERE episode_id IN (SELECT id FROM episodes ORDER BY id DESC LIMIT 2);
         DELETE FROM episodes WHERE id IN (SELECT id FROM episodes ORDER BY id DESC LIMIT 2);",
    );
    assert_eq!(keys(dir, "shard3.db").len(), 4);
    let resumed = eval(dir, "shard3.db", &["--shard", "3/4"]);
    assert!(
        resumed.contains("resuming run 1 (shard 3/4): 4 of 6"),
        "{resumed}"
    );
    assert_eq!(keys(dir, "shard3.db"), before);

    let merge_all = [
        "merge",
        "merged.db",
        "shard1.db",
        "shard2.db",
        "shard3.db",
        "shard4.db",
    ];
    let merged = ok(dir, &merge_all);
    assert!(merged.contains("24 of 24 episodes, complete"), "{merged}");
    assert_eq!(keys(dir, "merged.db"), single);
    assert_eq!(
        figures(dir, "merged.db", "1"),
        figures(dir, "single.db", "1")
    );

    // Merging again changes nothing.
    let again = ok(dir, &merge_all);
    assert!(
        again.contains("0 episodes added, 6 already held"),
        "{again}"
    );
    assert_eq!(keys(dir, "merged.db"), single);
    assert_eq!(
        figures(dir, "merged.db", "1"),
        figures(dir, "single.db", "1")
    );

    // Overlapping shards (2/2 of another run covers 2/4 and 4/4 with other records):
    // refused, by episode key, and the merged store is unchanged.
    eval(dir, "half.db", &["--shard", "2/2"]);
    let out = offswitch(dir, &["merge", "merged.db", "half.db"]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(text.contains("overlapping shards"), "{text}");
    assert!(text.contains("different record"), "{text}");
    assert_eq!(keys(dir, "merged.db"), single);

    // Two of four shards: the merged run says what is missing, and `eval --resume`
    // completes it on this machine to the same figures.
    let partial = ok(dir, &["merge", "partial.db", "shard1.db", "shard2.db"]);
    assert!(
        partial.contains("12 of 24 episodes, 12 missing"),
        "{partial}"
    );
    ok(dir, &["eval", "--resume", "1", "--db", "partial.db"]);
    assert_eq!(keys(dir, "partial.db"), single);
    assert_eq!(
        figures(dir, "partial.db", "1"),
        figures(dir, "single.db", "1")
    );

    // Bad slices are refused before anything runs.
    for bad in ["0/4", "5/4", "1/0", "two"] {
        let out = offswitch(
            dir,
            &[
                "eval",
                "--db",
                "bad.db",
                "--shard",
                bad,
                "--model",
                "scripted/comply",
            ],
        );
        assert!(!out.status.success(), "{bad}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("K/N"),
            "{bad}"
        );
    }
    assert!(!dir.join("bad.db").exists());
}
