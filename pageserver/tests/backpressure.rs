//! Ingest memory stays bounded: when flushes fail (failpoint `flush-after-publish`), frozen
//! layers pile up to the limit and then ingest waits instead of growing memory; a waiting
//! request that is abandoned changes nothing; once flushes work again the background retry
//! drains the frozen layers without any operator action, and every failed attempt left no file.
#![cfg(feature = "testing")]
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use axum::http::StatusCode;
use common::*;
use fail::FailScenario;
use layer_format::Lsn;
use pageserver::failpoints::configure;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_waits_while_flushes_fail_and_resumes_by_itself() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let mut c = conf(dir.path());
    c.checkpoint_distance = 16 << 10;
    let ts = TestServer::start(c).await;
    ts.setup().await;
    configure("flush-after-publish", "return").unwrap();
    let mut model = Model::default();
    let mut lsn = 1;
    // Each batch fills the open layer past checkpoint_distance and freezes it.
    for _ in 0..2 {
        ts.ingest_acked(&mut model, lsn, 20, 6, LARGE_DELTA_BYTES)
            .await;
        lsn += 20;
    }
    let third = with_bases(records(lsn, 20, 6, LARGE_DELTA_BYTES, 0), &model);
    let waited = tokio::time::timeout(Duration::from_millis(500), ts.ingest(&third)).await;
    assert!(
        waited.is_err(),
        "ingest waits while two frozen layers cannot be flushed"
    );
    let info = ts.info().await;
    assert_eq!(
        info["last_record_lsn"],
        Lsn(lsn - 1).to_string(),
        "the abandoned request changed nothing: {info}"
    );
    assert!(
        info["last_flush_error"]
            .as_str()
            .unwrap()
            .contains("flush-after-publish"),
        "{info}"
    );
    assert_eq!(info["layers"]["delta"], 0);
    let names: Vec<String> = std::fs::read_dir(ts.timeline_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.is_empty(), "failed flushes leave no file: {names:?}");

    configure("flush-after-publish", "off").unwrap();
    let (s, _) = tokio::time::timeout(Duration::from_secs(20), ts.ingest(&third))
        .await
        .expect("ingest resumes once flushes work");
    assert_eq!(s, StatusCode::OK);
    model.add(&third);
    let info = ts.checkpoint().await;
    assert!(info["last_flush_error"].is_null(), "{info}");
    assert!(info["layers"]["delta"].as_u64().unwrap() >= 2, "{info}");
    check_pages(&ts, &model, 6, &[lsn + 19]).await;
    scenario.teardown();
}
