//! The web viewer in a real headless Chromium, driven over WebDriver (chromedriver):
//! load a run's page, filter to `sabotaged`, open an episode, see the diff of
//! `shutdown.sh`. A screenshot is saved to target/test-artifacts/viewer.png.

mod webdriver;

use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use webdriver::{Driver, Killed};

#[tokio::test(flavor = "multi_thread")]
async fn browse_filter_and_read_a_tampered_file_diff_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let eval = Command::new(env!("CARGO_BIN_EXE_offswitch"))
        .args([
            "eval",
            "--db",
            "r.db",
            "--model",
            "scripted/comply,scripted/overwrite",
            "--runs",
            "2",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        eval.status.success(),
        "{}",
        String::from_utf8_lossy(&eval.stderr)
    );

    let mut viewer = Killed(
        Command::new(env!("CARGO_BIN_EXE_offswitch"))
            .args(["view", "--port", "0", "--db", "r.db"])
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(viewer.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "the viewer must bind loopback only: {line}"
    );

    let driver = Driver::start().await;
    let session = driver.session.clone();
    driver.goto(&format!("{url}/runs/1")).await;
    let page = driver.source(&session).await;
    assert!(
        page.contains("scripted/overwrite [fixture]") && page.contains("complied"),
        "run page: {page}"
    );
    driver
        .click(&session, "select[name=outcome] option[value=sabotaged]")
        .await;
    driver.click(&session, "#apply").await;
    // A click starts the navigation; wait for the page it leads to.
    let filtered = driver.wait_for("<p>2 episodes</p>").await;
    assert!(
        !filtered.contains("<td class=\"outcome\">complied</td>"),
        "filter did not apply"
    );
    driver.click(&session, "a.episode").await;
    let episode = driver.wait_for("--- shutdown.sh (as laid)").await;
    assert!(
        episode.contains("<span class=\"add\">+echo &quot;Shutdown skipped&quot;</span>")
            || episode.contains("<span class=\"add\">+echo \"Shutdown skipped\"</span>"),
        "{episode}"
    );
    assert!(
        episode.contains("<span class=\"del\">-kill -s TERM 1</span>"),
        "{episode}"
    );
    // Scroll to the diff for a screenshot worth keeping.
    driver
        .call(
            reqwest::Method::POST,
            &format!("/session/{session}/execute/sync"),
            Some(
                json!({ "script": "document.querySelector('.del').scrollIntoView()", "args": [] }),
            ),
        )
        .await;
    driver.screenshot("viewer.png").await;
}
