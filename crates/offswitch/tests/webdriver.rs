//! A minimal WebDriver client for tests (chromedriver driving Debian's headless
//! Chromium), over real HTTP.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Killed(pub Child);

/// A child started as the leader of its own process group, killed with the whole group
/// (chromedriver and the browser it starts).
pub struct KilledGroup(pub Child);

impl Drop for KilledGroup {
    fn drop(&mut self) {
        unsafe extern "C" {
            fn kill(pid: i32, sig: i32) -> i32;
        }
        // SAFETY: signals our own child's process group.
        unsafe { kill(-(self.0.id() as i32), 9) };
        let _ = self.0.wait();
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Driver {
    pub http: reqwest::Client,
    pub base: String,
    pub session: String,
    // Dropped in this order: the browser is gone before its directory is removed.
    _process: KilledGroup,
    _scratch: tempfile::TempDir,
}

impl Driver {
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        assert!(v["value"].get("error").is_none(), "webdriver {path}: {v}");
        v["value"].clone()
    }

    pub async fn find(&self, session: &str, css: &str) -> String {
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

    pub async fn click(&self, session: &str, css: &str) {
        let el = self.find(session, css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/session/{session}/element/{el}/click"),
            Some(json!({})),
        )
        .await;
    }

    pub async fn source(&self, session: &str) -> String {
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

impl Driver {
    /// Starts chromedriver and a headless Chromium session.
    pub async fn start() -> Driver {
        let chromedriver = std::path::Path::new("/usr/bin/chromedriver");
        assert!(
            chromedriver.exists(),
            "chromium-driver is not installed: run scripts/install-test-deps.sh (./test.sh does)"
        );
        let port = free_port();
        // The browser's profile and its temporary files live in the test's directory,
        // removed with it: a killed Chromium leaves its singleton socket's directory
        // behind in $TMPDIR.
        let scratch = tempfile::tempdir().unwrap();
        let (tmp, profile) = (scratch.path().join("tmp"), scratch.path().join("profile"));
        std::fs::create_dir(&tmp).unwrap();
        use std::os::unix::process::CommandExt;
        let process = KilledGroup(
            Command::new(chromedriver)
                .env("TMPDIR", &tmp)
                .arg(format!("--port={port}"))
                .process_group(0)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        models::http::install_tls_provider();
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({ "capabilities": { "alwaysMatch": { "browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--window-size=1280,1000", format!("--user-data-dir={}", profile.display())]
        }}}});
        let mut driver = Driver {
            http,
            base,
            session: String::new(),
            _process: process,
            _scratch: scratch,
        };
        driver.session = driver
            .call(reqwest::Method::POST, "/session", Some(caps))
            .await["sessionId"]
            .as_str()
            .unwrap()
            .to_string();
        driver
    }

    pub async fn goto(&self, url: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/session/{}/url", self.session),
            Some(json!({ "url": url })),
        )
        .await;
    }

    /// Waits until the page source contains `text` (pages that render with script).
    pub async fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let source = self.source(&self.session).await;
            if source.contains(text) {
                return source;
            }
            assert!(Instant::now() < deadline, "the page never showed {text:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Saves a screenshot under target/test-artifacts.
    pub async fn screenshot(&self, name: &str) {
        use base64::Engine;
        let shot = self
            .call(
                reqwest::Method::GET,
                &format!("/session/{}/screenshot", self.session),
                None,
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/test-artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), &png).unwrap();
    }
}
