//! Tenant reset: during ingest, during a paused compaction, and with `drop_cache`: the
//! tenant reloads from its authoritative index with the same generation, everything
//! acknowledged reads back, and ingest and compaction work afterwards.
#![cfg(feature = "testing")]
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::*;
use fail::FailScenario;
use layer_format::Lsn;
use pageserver::failpoints::configure;
use std::sync::Arc;
use std::time::Duration;

const KEYS: u128 = 12;

async fn check(ts: &TestServer, model: &Model, lsns: &[u64]) {
    check_pages(ts, model, KEYS, lsns).await;
}

async fn reset(ts: &TestServer, query: &str) -> serde_json::Value {
    let (s, b) = ts
        .call(
            Method::POST,
            &format!("/v1/tenant/{TENANT}/reset{query}"),
            Body::empty(),
        )
        .await;
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_during_ingest_and_paused_compaction() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let mut c = conf(dir.path());
    c.compaction_threshold = 3;
    c.compaction_target_size = 32 << 10;
    let ts = Arc::new(TestServer::start(c).await);
    ts.setup().await;
    let (mut model, mut lsn) = (Model::default(), 1u64);
    for _ in 0..3 {
        ts.ingest_acked(&mut model, lsn, 30, KEYS, LARGE_DELTA_BYTES)
            .await;
        lsn += 30;
        ts.checkpoint().await;
    }
    let acked = lsn - 1;

    // 1. Reset while a writer keeps ingesting records that are not acknowledged yet.
    let writer = tokio::spawn({
        let ts = ts.clone();
        async move {
            let mut answers = Vec::new();
            for i in 0..20u64 {
                let recs = records(10_000 + i * 10, 10, KEYS, SMALL_DELTA_BYTES, 0);
                answers.push(ts.ingest(&recs).await.0);
            }
            answers
        }
    });
    tokio::time::sleep(Duration::from_millis(5)).await;
    let info = reset(&ts, "").await;
    assert_eq!(info["generation"], 1, "same generation");
    let answers = writer.await.unwrap();
    assert!(
        answers.iter().all(|s| [
            StatusCode::OK,
            StatusCode::CONFLICT,
            StatusCode::BAD_REQUEST
        ]
        .contains(s)),
        "{answers:?}"
    );
    // Requests after the reset went to the new timeline and are not acknowledged either: a
    // second reset, with no writer, drops them too.
    let tl = ts.info().await;
    assert_eq!(tl["disk_consistent_lsn"], Lsn(acked).to_string(), "{tl}");
    assert_eq!(tl["remote_consistent_lsn"], Lsn(acked).to_string(), "{tl}");
    reset(&ts, "").await;
    let tl = ts.info().await;
    for f in [
        "last_record_lsn",
        "disk_consistent_lsn",
        "remote_consistent_lsn",
    ] {
        assert_eq!(tl[f], Lsn(acked).to_string(), "{f} after reset: {tl}");
    }
    check(&ts, &model, &[10, 45, acked]).await;

    // 2. Reset while a compaction is paused after its first output.
    configure("compaction-after-output", "1*pause").unwrap();
    let compaction = tokio::spawn({
        let ts = ts.clone();
        async move { ts.compact().await }
    });
    wait_paused("compaction-after-output").await;
    // The reset waits for the running compaction (it ends early once released).
    let resetting = tokio::spawn({
        let ts = ts.clone();
        async move { reset(&ts, "").await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !resetting.is_finished(),
        "the reset waits for the compaction"
    );
    configure("compaction-after-output", "off").unwrap();
    resetting.await.unwrap();
    let (s, v) = compaction.await.unwrap();
    assert!(
        s == StatusCode::OK && v["outcome"] == "abandoned"
            || s == StatusCode::INTERNAL_SERVER_ERROR,
        "the old compaction installs nothing: {s} {v}"
    );
    check(&ts, &model, &[10, 45, acked]).await;
    let (s, v) = ts.compact().await;
    assert_eq!(
        (s, v["outcome"].as_str()),
        (StatusCode::OK, Some("compacted")),
        "compaction works after reset: {v}"
    );
    check(&ts, &model, &[10, 45, acked]).await;

    // Ingest resumes from the acknowledged LSN.
    ts.ingest_acked(&mut model, acked + 1, 20, KEYS, SMALL_DELTA_BYTES)
        .await;
    ts.checkpoint().await;

    // 3. drop_cache: every local layer goes, and comes back on demand.
    reset(&ts, "?drop_cache=true").await;
    let layer_files = std::fs::read_dir(ts.timeline_dir())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_type().unwrap().is_file())
        .count();
    assert_eq!(layer_files, 0, "no local layer after drop_cache");
    check(&ts, &model, &[10, acked, acked + 20]).await;
    let (s, _) = ts
        .call(
            Method::POST,
            &format!("/v1/tenant/{TENANT}/reset?drop_cache=maybe"),
            Body::empty(),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    scenario.teardown();
}
