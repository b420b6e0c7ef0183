//! An in-process page server driven through its HTTP router. The page model, workloads and
//! the checks of reads against the model are `test-support`'s, shared with every crate's
//! tests; this module adds what needs the server in process.
#![allow(
    dead_code,
    unused_imports,
    reason = "each test binary uses a different subset"
)]

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use bytes::Bytes;
use http_body_util::BodyExt;
use layer_format::{Key, Lsn, Record};
use pageserver::config::PageServerConf;
use pageserver::server::PageServer;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use test_support::api::PageApi;
use tower::ServiceExt;

pub use test_support::Model;
pub use test_support::api::{TENANT, TIMELINE, check_pages};
pub use test_support::workload::{LARGE_DELTA_BYTES, SMALL_DELTA_BYTES, records, with_bases};

pub struct TestServer {
    pub server: Arc<PageServer>,
    pub workdir: PathBuf,
}

pub fn conf(workdir: &Path) -> PageServerConf {
    let mut c = PageServerConf::defaults(workdir);
    c.io_engine = layer_format::io::EngineChoice::Std;
    // Tests run compaction themselves.
    c.compaction_period = std::time::Duration::from_secs(3600);
    c
}

impl TestServer {
    pub async fn start(conf: PageServerConf) -> TestServer {
        let workdir = conf.workdir.clone();
        TestServer {
            server: PageServer::start(conf).await.expect("server starts"),
            workdir,
        }
    }

    /// Stops this server and starts a new one on the same work directory.
    pub async fn restart(self) -> TestServer {
        let conf = (*self.server.conf).clone();
        self.server.shutdown();
        drop(self);
        TestServer::start(conf).await
    }

    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        body: impl Into<Body>,
    ) -> (StatusCode, Bytes) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .body(body.into())
            .expect("request");
        let resp = pageserver::http::router(self.server.clone())
            .oneshot(req)
            .await
            .expect("router answers");
        let status = resp.status();
        (
            status,
            resp.into_body().collect().await.expect("body").to_bytes(),
        )
    }

    pub async fn json(
        &self,
        method: Method,
        uri: &str,
        body: &str,
    ) -> (StatusCode, serde_json::Value) {
        let (s, b) = self.call(method, uri, body.to_string()).await;
        let v = serde_json::from_slice(&b)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&b).into()));
        (s, v)
    }

    /// Creates the suites' tenant and timeline.
    pub async fn setup(&self) {
        test_support::api::setup(self)
            .await
            .expect("tenant and timeline created");
    }

    pub fn tl(&self, rest: &str) -> String {
        test_support::api::timeline_path(rest)
    }

    pub async fn ingest(&self, records: &[Record]) -> (StatusCode, serde_json::Value) {
        let (s, b) = test_support::api::ingest(self, records, "").await;
        let status = StatusCode::from_u16(s).expect("an HTTP status");
        (status, serde_json::from_slice(&b).expect("JSON answer"))
    }

    /// Ingests `count` records from `first_lsn` over `keys` keys, with deltas of `delta_bytes`
    /// bytes and every chain starting with a base; asserts they are acknowledged and adds them
    /// to `model`.
    pub async fn ingest_acked(
        &self,
        model: &mut Model,
        first_lsn: u64,
        count: u64,
        keys: u128,
        delta_bytes: usize,
    ) -> Vec<Record> {
        let recs = with_bases(records(first_lsn, count, keys, delta_bytes, 0), model);
        let (status, answer) = self.ingest(&recs).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        model.add(&recs);
        recs
    }

    pub async fn page(&self, key: Key, lsn: Lsn) -> (StatusCode, Bytes) {
        let (s, b) = test_support::api::page(self, key, lsn).await;
        (StatusCode::from_u16(s).expect("an HTTP status"), b)
    }

    pub async fn info(&self) -> serde_json::Value {
        let (s, v) = self.json(Method::GET, &self.tl(""), "").await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    pub async fn checkpoint(&self) -> serde_json::Value {
        let (s, v) = self.json(Method::PUT, &self.tl("/checkpoint"), "").await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    pub async fn compact(&self) -> (StatusCode, serde_json::Value) {
        self.json(Method::PUT, &self.tl("/compact"), "").await
    }

    pub fn timeline_dir(&self) -> PathBuf {
        self.workdir
            .join("tenants")
            .join(TENANT)
            .join("timelines")
            .join(TIMELINE)
    }
}

impl PageApi for TestServer {
    async fn send(&self, method: Method, path: &str, body: Vec<u8>) -> (u16, Bytes) {
        let (status, body) = self.call(method, path, body).await;
        (status.as_u16(), body)
    }
}

/// Waits until a thread is paused at failpoint `name` (configured with `pause` or `N*pause`).
#[allow(dead_code, reason = "not every test binary pauses")]
pub async fn wait_paused(name: &str) {
    for _ in 0..4000 {
        if pageserver::failpoints::paused()
            .iter()
            .any(|p| p.name == name && p.waiting > 0)
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("nothing paused at {name} within 20 s");
}
