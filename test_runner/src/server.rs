//! Pageserver processes: the real binary, on a free loopback port, with its own work
//! directory and log file; start, `kill -9`, restart; an HTTP client for the API.

use anyhow::{Context, bail};
use bytes::Bytes;
use layer_format::Record;
use layer_format::{Key, Lsn};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use test_support::api::PageApi;
use test_support::model::ingest_body;

pub use crate::binaries::{pagectl_bin, pageserver_bin, run_pagectl};
pub use test_support::api::{
    TENANT, TIMELINE, check_every_version, check_pages, check_versions_between, lsn_of,
};

/// One pageserver: a work directory, a port, settings; the process may be running or not.
#[derive(Debug)]
pub struct Pageserver {
    /// The work directory (remote storage is `<workdir>/remote_storage`).
    pub workdir: PathBuf,
    /// The HTTP port.
    pub port: u16,
    config: Vec<String>,
    env: Vec<(String, String)>,
    child: Option<Child>,
    client: reqwest::Client,
    token: Option<String>,
}

/// An answer that was not a success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// The status, or 0 if the connection failed (the process is gone).
    pub status: u16,
    /// The body.
    pub body: String,
}

impl Pageserver {
    /// A pageserver in `workdir` with `-c` settings, not started.
    pub fn new(workdir: &Path, config: &[&str]) -> Pageserver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        Pageserver {
            workdir: workdir.to_path_buf(),
            port,
            config: config.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            child: None,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .expect("client"),
            token: None,
        }
    }

    /// A pageserver in `workdir` on remote storage `remote`, with more `-c` settings.
    pub fn with_remote(
        workdir: &Path,
        remote: &crate::remote::Remote,
        config: &[&str],
    ) -> Pageserver {
        let mut all = vec![remote.config.as_str()];
        all.extend_from_slice(config);
        let mut ps = Pageserver::new(workdir, &all);
        ps.env.clone_from(&remote.env);
        ps
    }

    /// The log file (every run appends).
    pub fn log_path(&self) -> PathBuf {
        self.workdir.join("pageserver.log")
    }

    /// The remote storage root.
    pub fn remote_root(&self) -> PathBuf {
        self.workdir.join("remote_storage")
    }

    /// The local directory of the suites' timeline.
    pub fn timeline_dir(&self) -> PathBuf {
        self.workdir
            .join("tenants")
            .join(TENANT)
            .join("timelines")
            .join(TIMELINE)
    }

    /// Starts the process (with `FAILPOINTS` if given) and waits until it answers.
    pub async fn start(&mut self, failpoints: Option<&str>) {
        assert!(self.child.is_none(), "already running");
        std::fs::create_dir_all(&self.workdir).expect("workdir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let mut cmd = Command::new(pageserver_bin());
        cmd.arg("--workdir")
            .arg(&self.workdir)
            .arg("--listen-http")
            .arg(format!("127.0.0.1:{}", self.port));
        cmd.args(["-c", "io_engine = \"std\""]);
        for c in &self.config {
            cmd.args(["-c", c]);
        }
        cmd.stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null());
        if let Some(f) = failpoints {
            cmd.env("FAILPOINTS", f);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let mut child = cmd.spawn().expect("spawn pageserver");
        // Start-up proves create-only on remote storage first: a few operations, each slow on
        // a slow store.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if self.client.get(self.url("/v1/status")).send().await.is_ok() {
                self.child = Some(child);
                return;
            }
            if matches!(child.try_wait(), Ok(Some(_))) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "pageserver did not start; log:\n{}",
            std::fs::read_to_string(self.log_path()).unwrap_or_default()
        );
    }

    /// `kill -9`: the process ends at once, as in a crash.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends `signal` (`TERM`, `INT`, ...) to the process.
    pub fn signal(&mut self, signal: &str) {
        let child = self.child.as_ref().expect("running");
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Sends every later request with `Authorization: Bearer <token>` (or none).
    pub fn set_token(&mut self, token: Option<String>) {
        self.token = token;
    }

    /// Waits for the process to exit by itself (a failpoint's `exit`); its exit code.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return status.code();
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The path of the suites' timeline plus `rest`.
    pub fn tl(&self, rest: &str) -> String {
        test_support::api::timeline_path(rest)
    }

    /// Sends a request; the body of a success, or the error.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> Result<Bytes, HttpError> {
        let (status, bytes) = self.exchange(method, path, body).await?;
        if (200..300).contains(&status) {
            Ok(bytes)
        } else {
            Err(HttpError {
                status,
                body: String::from_utf8_lossy(&bytes).into_owned(),
            })
        }
    }

    /// Sends a request; the status and body of the answer, or the connection's failure.
    async fn exchange(
        &self,
        method: reqwest::Method,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> Result<(u16, Bytes), HttpError> {
        let mut builder = self.client.request(method, self.url(path)).body(body);
        if let Some(t) = &self.token {
            builder = builder.bearer_auth(t);
        }
        let r = match builder.send().await {
            Ok(r) => r,
            Err(e) => {
                return Err(HttpError {
                    status: 0,
                    body: error_chain(&e),
                });
            }
        };
        let status = r.status();
        let bytes = r.bytes().await.map_err(|e| HttpError {
            status: 0,
            body: error_chain(&e),
        })?;
        Ok((status.as_u16(), bytes))
    }

    /// A request whose answer is JSON.
    pub async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> Result<serde_json::Value, HttpError> {
        let bytes = self.request(method, path, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| HttpError {
            status: 200,
            body: format!("not JSON: {e}"),
        })
    }

    /// Creates the suites' tenant and timeline.
    pub async fn setup(&self) -> anyhow::Result<()> {
        test_support::api::setup(self).await
    }

    /// Ingests records.
    pub async fn ingest(&self, records: &[Record]) -> Result<serde_json::Value, HttpError> {
        self.json(
            reqwest::Method::POST,
            &self.tl("/ingest"),
            ingest_body(records),
        )
        .await
    }

    /// Ingests records into the timeline incarnation the caller knows; 409 if it was reloaded.
    pub async fn ingest_at(
        &self,
        records: &[Record],
        incarnation: u64,
    ) -> Result<serde_json::Value, HttpError> {
        self.json(
            reqwest::Method::POST,
            &self.tl(&format!("/ingest?incarnation={incarnation}")),
            ingest_body(records),
        )
        .await
    }

    /// Timeline info.
    pub async fn info(&self) -> Result<serde_json::Value, HttpError> {
        self.json(reqwest::Method::GET, &self.tl(""), "").await
    }

    /// `PUT .../checkpoint`.
    pub async fn checkpoint(&self) -> Result<serde_json::Value, HttpError> {
        self.json(reqwest::Method::PUT, &self.tl("/checkpoint"), "")
            .await
    }

    /// `PUT .../compact`.
    pub async fn compact(&self) -> Result<serde_json::Value, HttpError> {
        self.json(reqwest::Method::PUT, &self.tl("/compact"), "")
            .await
    }

    /// Configures a failpoint.
    pub async fn failpoint(
        &self,
        name: &str,
        actions: &str,
    ) -> Result<serde_json::Value, HttpError> {
        let body = serde_json::json!([{ "name": name, "actions": actions }]).to_string();
        self.json(reqwest::Method::PUT, "/v1/failpoints", body)
            .await
    }

    /// `PUT .../gc`.
    pub async fn gc(&self) -> Result<serde_json::Value, HttpError> {
        self.json(reqwest::Method::PUT, &self.tl("/gc"), "").await
    }

    /// The layer map: every layer's name.
    pub async fn layer_names(&self) -> Result<Vec<String>, HttpError> {
        let v = self
            .json(reqwest::Method::GET, &self.tl("/layer"), "")
            .await?;
        let mut names: Vec<String> = v["layers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|l| l["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        Ok(names)
    }

    /// Threads waiting now at failpoint `name` (configured with `pause` or `N*pause`).
    pub async fn paused_at(&self, name: &str) -> Result<u64, HttpError> {
        let v = self
            .json(reqwest::Method::GET, "/v1/failpoints", "")
            .await?;
        Ok(v["paused"]
            .as_array()
            .and_then(|a| a.iter().find(|p| p["name"] == name))
            .and_then(|p| p["waiting"].as_u64())
            .unwrap_or(0))
    }

    /// Waits until a thread is paused at failpoint `name`; false if none is after `timeout`.
    pub async fn wait_paused(&self, name: &str, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if self.paused_at(name).await.is_ok_and(|n| n > 0) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        false
    }

    /// Waits until the timeline's upload queue is empty; false if it is not after `timeout`.
    pub async fn wait_uploads_idle(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if self
                .info()
                .await
                .is_ok_and(|i| i["pending_uploads"].as_u64() == Some(0))
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        false
    }

    /// Runs the integrity checker on this server's timeline once its upload queue is idle.
    /// The checker reads a snapshot (list, then index, then layers); a queue still uploading
    /// a newer index and deleting what it supersedes would move the state under it.
    pub async fn check_integrity(
        &self,
        remote: &crate::remote::Remote,
    ) -> anyhow::Result<crate::integrity::Integrity> {
        if !self.wait_uploads_idle(Duration::from_secs(60)).await {
            bail!(
                "the upload queue is not idle after 60 s: {:?}",
                self.info().await
            );
        }
        crate::integrity::check(remote, &self.workdir, TENANT, TIMELINE).await
    }

    /// The page of `key` at `lsn`.
    pub async fn page(&self, key: Key, lsn: Lsn) -> Result<Bytes, HttpError> {
        self.request(
            reqwest::Method::GET,
            &self.tl(&format!("/page?key={key}&lsn={lsn}")),
            "",
        )
        .await
    }

    /// `POST /v1/tenant/{tenant}/{action}` (`attach`, `detach`, `reset`, `reset?drop_cache=true`).
    pub async fn tenant_action(
        &self,
        tenant: &str,
        action: &str,
    ) -> Result<serde_json::Value, HttpError> {
        self.json(
            reqwest::Method::POST,
            &format!("/v1/tenant/{tenant}/{action}"),
            "",
        )
        .await
    }

    /// The value of the first metric line of `/metrics` that starts with `line_start` (a name
    /// with its labels); 0 if there is none.
    pub async fn metric(&self, line_start: &str) -> f64 {
        self.metrics_text()
            .await
            .lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .map_or(0.0, |v| v.parse().expect("a metric value"))
    }

    /// The Prometheus text of `GET /metrics`.
    pub async fn metrics_text(&self) -> String {
        let text = self
            .request(reqwest::Method::GET, "/metrics", "")
            .await
            .expect("GET /metrics");
        String::from_utf8_lossy(&text).into_owned()
    }

    /// Fails if the log has an `ERROR` or `WARN` line that matches none of `allowed`.
    pub fn check_log(&self, allowed: &[&str]) -> anyhow::Result<()> {
        let log = std::fs::read_to_string(self.log_path()).context("read the log")?;
        let bad: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(" ERROR ") || l.contains(" WARN "))
            .filter(|l| !allowed.iter().any(|a| l.contains(a)))
            .collect();
        if !bad.is_empty() {
            bail!(
                "unexpected ERROR/WARN lines in {}:\n{}",
                self.log_path().display(),
                bad.join("\n")
            );
        }
        Ok(())
    }
}

impl PageApi for Pageserver {
    async fn send(&self, method: reqwest::Method, path: &str, body: Vec<u8>) -> (u16, Bytes) {
        self.exchange(method, path, body)
            .await
            .unwrap_or_else(|e| (e.status, Bytes::from(e.body)))
    }
}

impl Drop for Pageserver {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// An error and its sources, for a connection failure's message.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(&format!(": {s}"));
        source = s.source();
    }
    out
}
