//! Disk full: every layer write fails with `ENOSPC` (failpoint `layer-write`) in the middle of
//! a compaction and of the flushes around it. Nothing is left behind (no temp file, no
//! output); once space returns, flushes and compaction complete without intervention and
//! reads match.
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

const KEYS: u128 = 16;

fn files(ts: &TestServer) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(ts.timeline_dir())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enospc_mid_compaction_then_space_returns() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let mut c = conf(dir.path());
    c.compaction_threshold = 4;
    c.compaction_target_size = 1 << 20;
    c.image_creation_threshold = 1000;
    c.checkpoint_distance = 64 << 10;
    let ts = TestServer::start(c).await;
    ts.setup().await;
    let (mut model, mut lsn) = (Model::default(), 1u64);
    for _ in 0..4 {
        ts.ingest_acked(&mut model, lsn, 40, KEYS, LARGE_DELTA_BYTES)
            .await;
        lsn += 40;
        ts.checkpoint().await;
    }
    let before = files(&ts);
    assert_eq!(before.len(), 4);

    configure("layer-write", "return").unwrap();
    let (s, v) = ts.compact().await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("No space left on device"),
        "{v}"
    );
    assert_eq!(files(&ts), before, "no output and no temp file left");
    // Ingest goes on into memory while flushes fail for lack of space.
    ts.ingest_acked(&mut model, lsn, 40, KEYS, LARGE_DELTA_BYTES)
        .await;
    lsn += 40;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        ts.info().await["last_flush_error"]
            .as_str()
            .is_some_and(|e| e.contains("No space left"))
    );
    assert_eq!(files(&ts), before);

    // Space returns: the background flush retry and the next compaction complete by themselves.
    configure("layer-write", "off").unwrap();
    let info = ts.checkpoint().await;
    assert_eq!(info["remote_consistent_lsn"], Lsn(lsn - 1).to_string());
    let (s, v) = ts.compact().await;
    assert_eq!(
        (s, v["outcome"].as_str()),
        (StatusCode::OK, Some("compacted")),
        "{v}"
    );
    check_pages(&ts, &model, KEYS, &[40, lsn - 1]).await;
    scenario.teardown();
}
