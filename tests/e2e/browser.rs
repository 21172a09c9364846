//! A real browser a test can drive as a person would: headless Chromium over the Chrome
//! DevTools Protocol (a WebSocket), opening pages, filling forms, clicking, reading what the
//! page shows. Chromium is Debian's package, which `.ci/run` installs; without it the tests
//! that need it are skipped with a printed reason (failed under `VALLEE_REQUIRE_CHROMIUM`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A headless Chromium with one page, killed on drop.
pub struct Browser {
    child: Child,
    page: Socket,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    /// Starts Chromium, or `None` (with the reason printed) when there is none.
    pub async fn start() -> Option<Browser> {
        let Some(binary) = crate::dashboard::chromium() else {
            assert!(
                std::env::var("VALLEE_REQUIRE_CHROMIUM").is_err(),
                "VALLEE_REQUIRE_CHROMIUM is set but no chromium was found"
            );
            eprintln!("skipped: no chromium on PATH (apt-get install chromium)");
            return None;
        };
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--remote-debugging-port=0",
                "--window-size=412,915",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium starts");
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/…"
        let stderr = child.stderr.take().unwrap();
        let port = tokio::task::spawn_blocking(move || {
            let mut lines = BufReader::new(stderr).lines();
            let port = lines.by_ref().find_map(|line| {
                let line = line.ok()?;
                let rest = line.split("ws://127.0.0.1:").nth(1)?;
                rest.split('/').next()?.parse::<u16>().ok()
            });
            // Keep draining, or Chromium blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            port
        })
        .await
        .unwrap()
        .expect("chromium says where DevTools listen");
        let targets: Value = reqwest::get(format!("http://127.0.0.1:{port}/json/list"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let url = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_string();
        let (page, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Some(Browser {
            child,
            page,
            next_id: 0,
            _profile: profile,
        })
    }

    /// Sends a DevTools command and returns its result.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({"id": id, "method": method, "params": params}).to_string();
        self.page.send(Message::Text(message.into())).await.unwrap();
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(30), self.page.next())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method}"))
                .expect("the page's socket is open")
                .unwrap();
            let Ok(text) = frame.to_text() else { continue };
            let answer: Value = serde_json::from_str(text).unwrap_or_default();
            if answer["id"] == id {
                assert!(answer["error"].is_null(), "{method}: {answer}");
                return answer["result"].clone();
            }
        }
    }

    /// The value of a JavaScript expression in the page (promises awaited).
    pub async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        assert!(
            result["exceptionDetails"].is_null(),
            "{expression}: {}",
            result["exceptionDetails"]
        );
        result["result"]["value"].clone()
    }

    /// Opens `url` and waits until its script says it is ready (`body[data-ready]`).
    pub async fn open(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url})).await;
        self.until(
            "document.body && document.body.dataset.ready === 'true'",
            &format!("{url} ready"),
        )
        .await;
    }

    /// Waits until `condition` (a JavaScript expression) is true, up to 30 s.
    pub async fn until(&mut self, condition: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.eval(&format!("!!({condition})")).await == json!(true) {
                return;
            }
            if Instant::now() > deadline {
                let status = self
                    .eval("document.getElementById('annonce')?.textContent ?? ''")
                    .await;
                panic!("waited 30 s for {what}; the page said {status}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Sets a form field as a person would (the page sees `input` and `change`).
    pub async fn fill(&mut self, id: &str, value: &str) {
        let value = serde_json::to_string(value).unwrap();
        self.eval(&format!(
            "(() => {{ const e = document.getElementById('{id}'); e.focus();
               if (e.type === 'checkbox') e.checked = {value} === 'true'; else e.value = {value};
               e.dispatchEvent(new Event('input', {{bubbles: true}}));
               e.dispatchEvent(new Event('change', {{bubbles: true}})); }})()"
        ))
        .await;
    }

    /// Clicks an element (a selector).
    pub async fn click(&mut self, selector: &str) {
        let selector = serde_json::to_string(selector).unwrap();
        self.eval(&format!("document.querySelector({selector}).click()"))
            .await;
    }

    /// The text of an element (a selector), or "" when there is none.
    pub async fn text(&mut self, selector: &str) -> String {
        let selector = serde_json::to_string(selector).unwrap();
        self.eval(&format!(
            "document.querySelector({selector})?.textContent ?? ''"
        ))
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// A PNG of the whole page as a phone shows it (412 px wide), written to `path`.
    pub async fn screenshot(&mut self, path: &std::path::Path) {
        use base64::Engine;
        let height = self
            .eval("Math.ceil(document.documentElement.scrollHeight)")
            .await
            .as_f64()
            .unwrap_or(900.0);
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true,
                    "clip": {"x": 0, "y": 0, "width": 412, "height": height, "scale": 1}}),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("a screenshot"))
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(path, png).unwrap();
    }

    /// Serious or critical accessibility violations of the page (WCAG 2 A and AA rules of
    /// axe-core), when axe-core is at hand (`VALLEE_AXE`: its `axe.min.js`); `None` else,
    /// with the reason printed.
    pub async fn accessibility_violations(&mut self) -> Option<Vec<String>> {
        let Some(path) = std::env::var_os("VALLEE_AXE") else {
            eprintln!(
                "accessibility check skipped: VALLEE_AXE names no axe.min.js (npm pack axe-core)"
            );
            return None;
        };
        let axe = std::fs::read_to_string(&path).expect("VALLEE_AXE is readable");
        self.eval(&format!("{axe};true")).await;
        let found = self
            .eval(
                "axe.run(document, {runOnly: ['wcag2a', 'wcag2aa']}).then(r => r.violations
                   .filter(v => v.impact === 'serious' || v.impact === 'critical')
                   .map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', ')))",
            )
            .await;
        Some(
            found
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect(),
        )
    }
}
