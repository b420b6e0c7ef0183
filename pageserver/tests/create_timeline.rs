//! Creating a timeline when its first index put failed after the object landed (#13): the
//! retry used to answer 409 forever ("exists in remote storage"). A retry now adopts the empty
//! index of its own generation; a timeline of another generation is still a conflict.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use bytes::Bytes;
use common::{TENANT, TIMELINE};
use futures::future::BoxFuture;
use http_body_util::BodyExt;
use pageserver::remote::{PutOutcome, RemoteStorage};
use pageserver::server::PageServer;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tower::ServiceExt;

/// The first index put lands, then reports a timeout.
#[derive(Debug)]
struct FirstIndexPutTimesOut {
    inner: Arc<dyn RemoteStorage>,
    done: AtomicBool,
}

impl RemoteStorage for FirstIndexPutTimesOut {
    fn put_if_absent<'a>(
        &'a self,
        key: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, anyhow::Result<PutOutcome>> {
        Box::pin(async move {
            let outcome = self.inner.put_if_absent(key, data).await?;
            if key.contains("index_part.json") && !self.done.swap(true, Ordering::SeqCst) {
                anyhow::bail!("injected: {key} timed out after it landed");
            }
            Ok(outcome)
        })
    }
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, anyhow::Result<Option<Bytes>>> {
        self.inner.get(key)
    }
    fn list_sized<'a>(
        &'a self,
        prefix: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Vec<pageserver::remote::ListedObject>>> {
        self.inner.list_sized(prefix)
    }
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        self.inner.delete(key)
    }
    fn remove_leftovers<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, anyhow::Result<usize>> {
        self.inner.remove_leftovers(prefix)
    }
}

async fn call_bytes(
    server: &Arc<PageServer>,
    method: Method,
    uri: &str,
    body: impl Into<Body>,
) -> (StatusCode, Bytes) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .body(body.into())
        .unwrap();
    let resp = pageserver::http::router(server.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

async fn call(
    server: &Arc<PageServer>,
    method: Method,
    uri: &str,
    body: String,
) -> (StatusCode, String) {
    let (s, b) = call_bytes(server, method, uri, body).await;
    (s, String::from_utf8_lossy(&b).into_owned())
}

#[tokio::test]
async fn a_retried_creation_adopts_its_own_landed_index() {
    let dir = tempfile::tempdir().unwrap();
    let conf = common::conf(dir.path());
    let engine = layer_format::io::open_engine(conf.io_engine).unwrap();
    let server = PageServer::start_with(conf, engine, |inner| {
        Arc::new(FirstIndexPutTimesOut {
            inner,
            done: AtomicBool::new(false),
        })
    })
    .await
    .unwrap();
    let (s, b) = call(
        &server,
        Method::POST,
        "/v1/tenant",
        format!("{{\"tenant_id\":\"{TENANT}\"}}"),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let create = format!("{{\"timeline_id\":\"{TIMELINE}\"}}");
    let uri = format!("/v1/tenant/{TENANT}/timeline");
    let (s, b) = call(&server, Method::POST, &uri, create.clone()).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{b}");
    assert!(b.contains("timed out after it landed"), "{b}");
    // The retry: the index that landed is this generation's and empty.
    let (s, b) = call(&server, Method::POST, &uri, create.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    // Now it exists here: a third create is a conflict.
    let (s, _) = call(&server, Method::POST, &uri, create).await;
    assert_eq!(s, StatusCode::CONFLICT);
    // And it works: ingest, checkpoint (uploads an index above the first), read back.
    let recs = common::records(1, 10, 3, common::SMALL_DELTA_BYTES, 0);
    let recs = common::with_bases(recs, &common::Model::default());
    let (s, b) = call_bytes(
        &server,
        Method::POST,
        &format!("/v1/tenant/{TENANT}/timeline/{TIMELINE}/ingest"),
        test_support::model::ingest_body(&recs),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b:?}");
    let (s, b) = call(
        &server,
        Method::PUT,
        &format!("/v1/tenant/{TENANT}/timeline/{TIMELINE}/checkpoint"),
        String::new(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let info: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(info["remote_consistent_lsn"], "0/A");
    let mut model = common::Model::default();
    model.add(&recs);
    for k in 0..3u128 {
        let key = layer_format::Key::from_u128(k);
        let lsn = layer_format::Lsn(10);
        let (s, b) = call_bytes(
            &server,
            Method::GET,
            &format!("/v1/tenant/{TENANT}/timeline/{TIMELINE}/page?key={key}&lsn={lsn}"),
            Body::empty(),
        )
        .await;
        match model.page(key, lsn) {
            Some(page) => assert!(s == StatusCode::OK && b == page, "{k}: {s}"),
            None => assert_eq!(s, StatusCode::NOT_FOUND, "{k}"),
        }
    }
    server.shutdown();
}
