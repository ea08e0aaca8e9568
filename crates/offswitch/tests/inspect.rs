//! Inspect logs checked with the real thing: inspect_ai (installed by
//! scripts/install-inspect.sh into .venv-inspect) reads every exported log, and each is
//! validated against the schema `inspect log schema` prints.

mod webdriver;

use std::path::PathBuf;
use std::process::{Command, Stdio};

fn venv() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv-inspect")
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
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/validate-inspect-logs.py");
    let path = format!(
        "{}:{}",
        venv().join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(&python)
        .arg(script)
        .arg(dir.path().join("logs"))
        .env("PATH", path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
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
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    venv().join("bin").display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
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
