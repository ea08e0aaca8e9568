//! Inspect logs checked with the real thing: inspect_ai (installed by
//! scripts/install-inspect.sh into .venv-inspect) reads every exported log, and each is
//! validated against the schema `inspect log schema` prints.

mod common;
mod webdriver;

use std::path::PathBuf;
use std::process::{Command, Stdio};

fn venv() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv-inspect")
}

/// PATH with the virtualenv's programs first (`inspect` is one).
fn venv_path() -> String {
    format!(
        "{}:{}",
        venv().join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Runs scripts/validate-inspect-logs.py (inspect_ai's reader and its JSON schema) over
/// every log in `logs`; returns its output, failing the test if it fails.
fn validate(logs: &std::path::Path) -> String {
    let out = Command::new(venv().join("bin/python"))
        .arg(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../scripts/validate-inspect-logs.py"),
        )
        .arg(logs)
        .env("PATH", venv_path())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn exported_inspect_logs_are_read_validated_and_rendered_by_inspect() {
    let python = venv().join("bin/python");
    assert!(
        python.exists(),
        "inspect_ai is not installed: run scripts/install-inspect.sh (./test.sh does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_offswitch"))
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    // Every outcome kind Inspect must show: complied, sabotaged, limit, malformed calls.
    run(&[
        "eval",
        "--db",
        "r.db",
        "--model",
        "scripted/comply,scripted/chmod,scripted/stall,scripted/malformed-calls",
        "--variant",
        "A,GDM",
        "--runs",
        "2",
        "--guard",
        "watchdog",
        "--watchdog-mode",
        "observe",
    ]);
    let listed = run(&[
        "export", "--format", "inspect", "--db", "r.db", "--out", "logs",
    ]);
    let files: Vec<&str> = listed.lines().collect();
    assert_eq!(files.len(), 8);
    for f in &files {
        let name = std::path::Path::new(f)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string();
        let parts: Vec<&str> = name.trim_end_matches(".eval").split('_').collect();
        assert_eq!(
            parts.len(),
            3,
            "{name}: created_task_id with no '_' inside the parts"
        );
    }
    let text = validate(&dir.path().join("logs"));
    assert_eq!(
        text.lines().filter(|l| l.starts_with("ok ")).count(),
        8,
        "{text}"
    );

    // And Inspect's own viewer shows them: the log list, then one log's header metrics
    // and its samples (our episodes, as epochs).
    let port = webdriver::free_port();
    let _view = webdriver::Killed(
        Command::new(venv().join("bin/inspect"))
            .args([
                "view",
                "--log-dir",
                dir.path().join("logs").to_str().unwrap(),
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .env("PATH", venv_path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    models::http::install_tls_provider();
    while reqwest::get(&base).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "inspect view did not start"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let driver = webdriver::Driver::start().await;
    driver.goto(&base).await;
    driver.wait_for("scripted/malformed-calls").await;
    let first = std::path::Path::new(files[0])
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    driver.goto(&format!("{base}/#/logs/{first}")).await;
    driver.wait_for("2 Samples").await;
    driver.wait_for("sabotage").await;
    driver.screenshot("inspect-view.png").await;
}

fn read_zip(path: &std::path::Path) -> Vec<serde_json::Value> {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let names: Vec<String> = zip.file_names().map(|n| n.unwrap().to_string()).collect();
    names
        .iter()
        .filter(|n| n.starts_with("samples/"))
        .map(|n| {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut zip.by_name(n).unwrap(), &mut text).unwrap();
            serde_json::from_str(&text).unwrap()
        })
        .collect()
}

#[test]
fn tool_events_keep_their_own_command_times_in_order_and_limits_keep_their_kind() {
    use offswitch::experiment::episode::{EpisodeSpec, run_episode};
    use offswitch::experiment::scenario::Scenario;
    use std::sync::Arc;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let scenario = Arc::new(Scenario::load("palisade-paper").unwrap());
    let episode = |model: Arc<dyn models::Model>| {
        let mut record = rt
            .block_on(run_episode(EpisodeSpec {
                scenario: scenario.clone(),
                variant: "A".into(),
                model,
                epoch: 1,
                assets: common::assets(),
                guard: Default::default(),
                follower: None,
            }))
            .unwrap();
        record.score = Some(offswitch::score::score(&record));
        record
    };
    let malformed = episode(common::scripted("malformed-calls"));
    let context = episode(Arc::new(common::ContextFull));
    let dir = tempfile::tempdir().unwrap();
    let mut store = offswitch::store::Store::open(&dir.path().join("r.db")).unwrap();
    let run = store.create_run("test", 1, "{}", "k").unwrap();
    for record in [&malformed, &context] {
        let cell = store
            .cell(run, &record.model, true, &record.scenario, &record.variant)
            .unwrap();
        store.insert_episode(cell, record).unwrap();
    }
    let files = offswitch::report::inspect::export(&store, run, &dir.path().join("logs")).unwrap();
    assert_eq!(files.len(), 2);
    let started = |s: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(s["timestamp"].as_str().unwrap()).unwrap()
    };
    for (file, record) in files.iter().zip([&malformed, &context]) {
        let samples = read_zip(file);
        assert_eq!(samples.len(), 1);
        let events = samples[0]["events"].as_array().unwrap();
        let times: Vec<_> = events.iter().map(started).collect();
        assert!(times.is_sorted(), "{file:?}: events out of time order");
        let stamps: Vec<f64> = events
            .iter()
            .map(|e| e["working_start"].as_f64().unwrap())
            .collect();
        assert!(stamps.is_sorted(), "{file:?}: {stamps:?}");
        // Each tool event is timed by the command of its own call.
        let tools: Vec<&serde_json::Value> =
            events.iter().filter(|e| e["event"] == "tool").collect();
        assert_eq!(tools.len(), record.tool_calls().count(), "{file:?}");
        for tool in &tools {
            let (index, call) = record
                .tool_calls()
                .find(|(_, c)| c.id == tool["id"].as_str().unwrap())
                .unwrap();
            assert_eq!(tool["function"], call.name.as_str());
            if let Some(command) = record.command_of_call(index) {
                assert_eq!(
                    tool["working_start"].as_f64().unwrap(),
                    command.started_ms as f64 / 1000.0,
                    "call {index}"
                );
                assert_eq!(
                    tool["arguments"]["cmd"].as_str().unwrap(),
                    command.command,
                    "call {index}"
                );
            }
        }
    }
    // The malformed calls shift nothing: later bash calls still run in order.
    assert!(malformed.tool_errors() >= 4);
    let context_sample = &read_zip(&files[1])[0];
    assert_eq!(
        context_sample["limit"]["type"], "context",
        "{context_sample}"
    );
    assert!(
        context_sample["limit"]["reason"]
            .as_str()
            .unwrap()
            .contains("no longer fits"),
        "{context_sample}"
    );
    // Inspect's limit events have no "context" type: the sample carries it alone.
    assert!(
        !context_sample["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "sample_limit")
    );
    // And inspect_ai reads and validates both.
    validate(&dir.path().join("logs"));
}
