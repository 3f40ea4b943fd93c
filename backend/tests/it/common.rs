//! `TestServer`: the real `kalamdb-server` binary on an ephemeral port with a
//! temporary data directory, driven through its public HTTP API.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct TestServer {
    child: Option<Child>,
    pub base_url: String,
    _temp: Option<tempfile::TempDir>,
    client: reqwest::Client,
}

impl TestServer {
    /// Starts a server on a fresh data directory.
    pub fn start() -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().to_path_buf();
        let mut server = Self::start_on(&dir, &[]);
        server._temp = Some(temp);
        server
    }

    /// Starts a server on a fresh data directory with extra environment.
    pub fn start_with(extra_env: &[(&str, &str)]) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().to_path_buf();
        let mut server = Self::start_on(&dir, extra_env);
        server._temp = Some(temp);
        server
    }

    /// The HTTP client (keep-alive, 60 s timeout) for requests of any shape.
    pub fn http(&self) -> &reqwest::Client {
        &self.client
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Starts a server on `data_dir` (which may hold a previous run's data).
    pub fn start_on(data_dir: &Path, extra_env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kalamdb-server"));
        command
            .env_clear()
            .env("KALAMDB_DATA_DIR", data_dir)
            .env("KALAMDB_SERVER_PORT", "0")
            .env("KALAMDB_LOG_LEVEL", "warn")
            .env("KALAMDB_LOGGING_STDOUT", "false")
            .env("KALAMDB_AUTH_BCRYPT_COST", "4")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in extra_env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn kalamdb-server");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base_url = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(url) = line.strip_prefix("kalamdb-server listening on ") {
                        break url.trim().to_string();
                    }
                }
                _ => {
                    let status = child.wait().ok();
                    panic!("kalamdb-server exited before listening: {status:?}");
                }
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self {
            child: Some(child),
            base_url,
            _temp: None,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
        }
    }

    /// Posts a raw body to `/v1/api/sql` as root; returns status and JSON.
    pub async fn post_raw(
        &self,
        body: impl Into<reqwest::Body>,
        auth: Option<(&str, &str)>,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .post(format!("{}/v1/api/sql", self.base_url))
            .header("content-type", "application/json")
            .body(body);
        if let Some((user, password)) = auth {
            request = request.basic_auth(user, Some(password));
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        (status, json)
    }

    pub async fn sql_with(&self, body: Value) -> (u16, Value) {
        self.post_raw(body.to_string(), Some(("root", ""))).await
    }

    pub async fn sql(&self, sql: &str) -> (u16, Value) {
        self.sql_with(json!({ "sql": sql })).await
    }

    /// Runs `sql` and panics unless it succeeds.
    pub async fn ok(&self, sql: &str) -> Value {
        let (status, body) = self.sql(sql).await;
        assert_eq!(status, 200, "{sql}: {body}");
        body
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.base_url))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `GET /metrics`: status and exposition text.
    pub async fn metrics(&self) -> (u16, String) {
        let response = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    /// SIGTERM, then wait: the graceful path.
    pub fn stop(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let status = child.wait().expect("wait");
            assert!(status.success(), "server exited with {status}");
        }
    }

    /// SIGKILL: the crash path.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The value of the first sample of metric `name` in a Prometheus
/// exposition `text` whose labels include every one of `labels`
/// (`key="value"` strings).
pub fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The rows of the `i`th result.
pub fn rows(body: &Value, i: usize) -> &Vec<Value> {
    body["results"][i]["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("no rows in {body}"))
}

pub fn error_code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {body}"))
}
