//! Upload ordering under injected failures (I4, I5, I9): while layer and index uploads fail
//! and are retried, ingest goes on, `remote_consistent_lsn` does not advance, the failure is
//! reported, and at no moment does remote storage hold an index whose layers are not all
//! there with the recorded size and checksum.
#![cfg(feature = "testing")]
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use axum::http::StatusCode;
use common::*;
use fail::FailScenario;
use index_part::names::IndexObjectName;
use index_part::{IndexPart, ParseMode};
use pageserver::failpoints::configure;
use pageserver::remote::RemoteStorage;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Checks that every index in remote storage references only layers present with the
/// recorded size and checksum. Returns the number of indexes checked.
async fn check_remote(storage: &dyn RemoteStorage) -> usize {
    let keys = storage.list("tenants/").await.unwrap();
    let mut checked = 0;
    for key in &keys {
        let Ok(object) = key.rsplit('/').next().unwrap().parse::<IndexObjectName>() else {
            continue;
        };
        let bytes = storage.get(key).await.unwrap().unwrap();
        let index = IndexPart::from_json_object(&bytes, object, ParseMode::Strict).unwrap();
        let prefix = &key[..key.rfind('/').unwrap()];
        for (name, meta) in &index.layers {
            let layer_key = format!("{prefix}/{}", IndexPart::file_name(name, meta));
            let data = storage
                .get(&layer_key)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{key} references missing {layer_key}"));
            assert_eq!(data.len() as u64, meta.file_size, "{layer_key}");
            assert_eq!(crc32c::crc32c(&data), meta.checksum, "{layer_key}");
        }
        checked += 1;
    }
    checked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_retry_in_order_and_never_block_ingest() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let ts = Arc::new(TestServer::start(conf(dir.path())).await);
    ts.setup().await;

    // A watcher checks the remote invariant continuously while uploads fail.
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (storage, stop, rounds) = (ts.server.storage.clone(), stop.clone(), rounds.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                check_remote(&*storage).await;
                rounds.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
    };

    let mut model = Model::default();
    let mut lsn = 1;
    for (failpoint, actions) in [
        ("upload-layer-before", "4*return"),
        ("upload-index-before", "4*return"),
        ("upload-layer-after", "2*return"),
        ("upload-index-after", "2*return"),
    ] {
        configure(failpoint, actions).unwrap();
        ts.ingest_acked(&mut model, lsn, 30, 6, SMALL_DELTA_BYTES)
            .await;
        lsn += 30;
        let before = ts.info().await["remote_consistent_lsn"].clone();
        let checkpoint = {
            let ts = ts.clone();
            tokio::spawn(async move { ts.checkpoint().await })
        };
        // The failure shows in timeline info while the queue retries, and ingest goes on.
        let mut seen_error = false;
        for _ in 0..200 {
            let info = ts.info().await;
            if info["last_upload_error"]
                .as_str()
                .is_some_and(|e| e.contains(failpoint))
            {
                seen_error = true;
                if failpoint.ends_with("-before") {
                    assert_eq!(
                        info["remote_consistent_lsn"], before,
                        "not acknowledged while failing"
                    );
                }
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert!(
            seen_error,
            "{failpoint}: the failure is reported in timeline info"
        );
        let more = with_bases(records(lsn, 5, 6, SMALL_DELTA_BYTES, 0), &model);
        assert_eq!(
            ts.ingest(&more).await.0,
            StatusCode::OK,
            "ingest is not blocked by failing uploads"
        );
        model.add(&more);
        lsn += 5;
        let info = checkpoint.await.unwrap();
        assert_eq!(
            info["remote_consistent_lsn"], info["disk_consistent_lsn"],
            "{failpoint}: {info}"
        );
        assert!(
            info["last_upload_error"].is_null(),
            "cleared after success: {info}"
        );
        configure(failpoint, "off").unwrap();
    }
    ts.checkpoint().await;
    stop.store(true, Ordering::SeqCst);
    watcher.await.unwrap();
    assert!(
        rounds.load(Ordering::SeqCst) > 10,
        "the watcher ran while uploads failed"
    );
    assert!(
        check_remote(&*ts.server.storage).await >= 5,
        "indexes were uploaded"
    );
    scenario.teardown();
}
