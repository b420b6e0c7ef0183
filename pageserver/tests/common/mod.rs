//! An in-process page server driven through its HTTP router, workloads, and the shared page
//! model. The tests that use it need the `testing` feature (the model lives there).
#![allow(dead_code, reason = "each test binary uses a different subset")]

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use bytes::Bytes;
use http_body_util::BodyExt;
use layer_format::value::{PAGE_SIZE, Patch, encode_patches};
use layer_format::{Key, Lsn, Value};
use pageserver::config::PageServerConf;
use pageserver::http::wire::encode as encode_ingest;
use pageserver::server::PageServer;
use pageserver::timeline::Record;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tower::ServiceExt;

pub const TENANT: &str = "0123456789abcdef0123456789abcdef";
pub const TIMELINE: &str = "fedcba9876543210fedcba9876543210";

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

    pub async fn setup(&self) {
        let (s, v) = self
            .json(
                Method::POST,
                "/v1/tenant",
                &format!("{{\"tenant_id\":\"{TENANT}\"}}"),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let (s, v) = self
            .json(
                Method::POST,
                &format!("/v1/tenant/{TENANT}/timeline"),
                &format!("{{\"timeline_id\":\"{TIMELINE}\"}}"),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }

    pub fn tl(&self, rest: &str) -> String {
        format!("/v1/tenant/{TENANT}/timeline/{TIMELINE}{rest}")
    }

    pub async fn ingest(&self, records: &[Record]) -> (StatusCode, serde_json::Value) {
        let (s, b) = self
            .call(Method::POST, &self.tl("/ingest"), encode_ingest(records))
            .await;
        (s, serde_json::from_slice(&b).expect("JSON answer"))
    }

    pub async fn page(&self, key: Key, lsn: Lsn) -> (StatusCode, Bytes) {
        self.call(
            Method::GET,
            &self.tl(&format!("/page?key={key}&lsn={lsn}")),
            Body::empty(),
        )
        .await
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

/// Reads every key below `keys` at every LSN of `lsns` and compares with the model: the page,
/// or 404 where the model has no record.
pub async fn check_pages(ts: &TestServer, model: &Model, keys: u128, lsns: &[u64]) {
    for &l in lsns {
        for k in 0..keys {
            let (key, lsn) = (Key::from_u128(k), Lsn(l));
            let (status, body) = ts.page(key, lsn).await;
            match model.page(key, lsn) {
                Some(page) => {
                    assert_eq!(
                        status,
                        StatusCode::OK,
                        "({k}, {l}): {}",
                        String::from_utf8_lossy(&body)
                    );
                    assert!(body == page, "page ({k}, {l}) differs from the model");
                }
                None => assert_eq!(status, StatusCode::NOT_FOUND, "({k}, {l})"),
            }
        }
    }
}

/// The model every suite uses: pages computed from the brief alone.
pub use pageserver::testing::page_model::Model;

/// A deterministic workload: for each LSN, a few keys get an image, a will_init delta or a
/// delta on top of what they have.
pub fn workload(first_lsn: u64, count: u64, keys: u128, big: bool) -> Vec<Record> {
    let mut out = Vec::new();
    let mut x = first_lsn.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for i in 0..count {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let lsn = Lsn(first_lsn + i);
        let key = Key::from_u128(u128::from(x) % keys);
        let value = match (x >> 20) % 10 {
            0 => Value::Image(Bytes::from(vec![(x >> 8) as u8; PAGE_SIZE])),
            1 => Value::Delta {
                will_init: true,
                record: encode_patches(&[Patch {
                    offset: (x % 8000) as u16,
                    bytes: &[(x >> 3) as u8; 100],
                }]),
            },
            _ => {
                let len = if big { 2000 } else { 40 };
                let bytes = vec![(x >> 5) as u8; len];
                Value::Delta {
                    will_init: false,
                    record: encode_patches(&[Patch {
                        offset: (x % 6000) as u16,
                        bytes: &bytes,
                    }]),
                }
            }
        };
        out.push(Record { key, lsn, value });
    }
    out
}

/// The first record of each key is made a base, so that every chain is readable.
pub fn with_bases(records: Vec<Record>, model: &Model) -> Vec<Record> {
    let mut seen = std::collections::HashSet::new();
    records
        .into_iter()
        .map(|mut r| {
            if seen.insert(r.key) && model.page(r.key, r.lsn).is_none() && !r.value.is_base() {
                r.value = Value::Image(Bytes::from(vec![7u8; PAGE_SIZE]));
            }
            r
        })
        .collect()
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
