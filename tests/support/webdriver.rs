//! Headless Chromium driven through chromedriver over the W3C WebDriver protocol (plain
//! JSON over HTTP, with reqwest): start a session, open a URL, run a script, take a
//! screenshot. The session and the driver process end on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A chromedriver process with one headless Chromium session.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Browser {
    /// Starts chromedriver and a headless session with a `width`×`height` window, or
    /// skips (`None`) / fails under `CI` when chromium or chromedriver is missing.
    pub fn start(width: u32, height: u32) -> Option<Browser> {
        let port = super::free_port();
        let driver = match Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => return super::unavailable("chromedriver", e),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut b = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            rt,
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while b.call("GET", "/status", None).is_err() {
            if Instant::now() > deadline {
                return super::unavailable("chromedriver", "it did not answer within 20s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut options = json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", format!("--window-size={width},{height}")]
        });
        if std::path::Path::new("/usr/bin/chromium").exists() {
            options["binary"] = json!("/usr/bin/chromium");
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": options}}});
        match b.call("POST", "/session", Some(caps)) {
            Ok(v) => b.session = v["sessionId"].as_str().unwrap_or_default().to_owned(),
            Err(e) => return super::unavailable("a chromium session", e),
        }
        Some(b)
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body.unwrap_or(json!({}))),
        };
        self.rt.block_on(async {
            let answer = req
                .timeout(Duration::from_secs(60))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let ok = answer.status().is_success();
            let v: Value = answer.json().await.map_err(|e| e.to_string())?;
            if ok {
                Ok(v["value"].clone())
            } else {
                Err(v.to_string())
            }
        })
    }

    fn in_session(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        self.call(method, &path, body)
            .unwrap_or_else(|e| panic!("webdriver {method} {path}: {e}"))
    }

    /// Opens `url` (a navigation: the page loads).
    pub fn goto(&self, url: &str) {
        self.in_session("POST", "/url", Some(json!({"url": url})));
    }

    /// Runs `script` (a function body) in the page; its `return` value.
    pub fn run(&self, script: &str) -> Value {
        self.in_session(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// A PNG of the window.
    pub fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let v = self.in_session("GET", "/screenshot", None);
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .expect("a base64 screenshot")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
