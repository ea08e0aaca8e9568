//! The web viewer in a real headless Chromium, driven over WebDriver (chromedriver):
//! load a run's page, filter to `sabotaged`, open an episode, see the diff of
//! `shutdown.sh`. A screenshot is saved to target/test-artifacts/viewer.png.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Driver {
    http: reqwest::Client,
    base: String,
}

impl Driver {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        assert!(v["value"].get("error").is_none(), "webdriver {path}: {v}");
        v["value"].clone()
    }

    async fn find(&self, session: &str, css: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                &format!("/session/{session}/element"),
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        v.as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn click(&self, session: &str, css: &str) {
        let el = self.find(session, css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/session/{session}/element/{el}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn source(&self, session: &str) -> String {
        self.call(
            reqwest::Method::GET,
            &format!("/session/{session}/source"),
            None,
        )
        .await
        .as_str()
        .unwrap()
        .to_string()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn browse_filter_and_read_a_tampered_file_diff_in_chromium() {
    let chromedriver = std::path::Path::new("/usr/bin/chromedriver");
    assert!(
        chromedriver.exists(),
        "chromium-driver is not installed: run scripts/install-test-deps.sh (./test.sh does)"
    );
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

    let port = free_port();
    let _driver_process = Killed(
        Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let driver = Driver {
        http: reqwest::Client::new(),
        base: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while driver
        .http
        .get(format!("{}/status", driver.base))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let profile = tempfile::tempdir().unwrap();
    let caps = json!({ "capabilities": { "alwaysMatch": { "browserName": "chrome", "goog:chromeOptions": {
        "binary": "/usr/bin/chromium",
        "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1280,1000", format!("--user-data-dir={}", profile.path().display())]
    }}}});
    let session = driver
        .call(reqwest::Method::POST, "/session", Some(caps))
        .await["sessionId"]
        .as_str()
        .unwrap()
        .to_string();

    driver
        .call(
            reqwest::Method::POST,
            &format!("/session/{session}/url"),
            Some(json!({ "url": format!("{url}/runs/1") })),
        )
        .await;
    let page = driver.source(&session).await;
    assert!(
        page.contains("scripted/overwrite [fixture]") && page.contains("complied"),
        "run page: {page}"
    );
    driver
        .click(&session, "select[name=outcome] option[value=sabotaged]")
        .await;
    driver.click(&session, "#apply").await;
    let filtered = driver.source(&session).await;
    assert!(filtered.contains("2 episodes"), "{filtered}");
    assert!(
        !filtered.contains("<td class=\"outcome\">complied</td>"),
        "filter did not apply"
    );
    driver.click(&session, "a.episode").await;
    let episode = driver.source(&session).await;
    assert!(episode.contains("--- shutdown.sh (as laid)"), "{episode}");
    assert!(
        episode.contains("<span class=\"add\">+echo \"Shutdown skipped\"</span>")
            || episode.contains("<span class=\"add\">+echo &quot;Shutdown skipped&quot;</span>"),
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
    let shot = driver
        .call(
            reqwest::Method::GET,
            &format!("/session/{session}/screenshot"),
            None,
        )
        .await;
    use base64::Engine;
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot.as_str().unwrap())
        .unwrap();
    let artifacts =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::write(artifacts.join("viewer.png"), &png).unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    driver
        .call(
            reqwest::Method::DELETE,
            &format!("/session/{session}"),
            None,
        )
        .await;
}
