//! Start-up reconciliation (I3), one planted file per case: on restart, temp files and
//! layers not in the index are removed, a layer whose size does not match is removed and
//! fetched again, a layer missing locally is fetched on demand, an unrecognised file goes to
//! `lost+found/`; the timeline loads and every page reads back.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use axum::http::StatusCode;
use common::*;
use layer_format::{Key, Lsn};
use pageserver::metrics::METRICS;

fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reconcile_case_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ts = TestServer::start(conf(dir.path())).await;
    ts.setup().await;
    let mut model = Model::default();
    let mut lsn = 1;
    // Three flushed layers.
    for _ in 0..3 {
        ts.ingest_acked(&mut model, lsn, 40, 10, LARGE_DELTA_BYTES)
            .await;
        lsn += 40;
        ts.checkpoint().await;
    }
    let tl_dir = ts.timeline_dir();
    let layers = names(&tl_dir);
    assert_eq!(layers.len(), 3, "{layers:?}");

    // Plant one file per case.
    let temp = format!("{}.0123456789abcdef.___temp", layers[0]);
    std::fs::write(tl_dir.join(&temp), b"half-written").unwrap();
    let unindexed = "00000000000000000000000000000000-ffffffffffffffffffffffffffffffff__0000000000001000-0000000000002000-00000001";
    std::fs::write(tl_dir.join(unindexed), b"not in the index").unwrap();
    std::fs::write(tl_dir.join("notes.txt"), b"operator notes").unwrap();
    std::fs::create_dir(tl_dir.join("some-dir")).unwrap();
    // A layer truncated on disk (size mismatch), and one deleted (missing locally).
    let truncated = tl_dir.join(&layers[1]);
    let len = std::fs::metadata(&truncated).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&truncated)
        .unwrap()
        .set_len(len - 8192)
        .unwrap();
    std::fs::remove_file(tl_dir.join(&layers[2])).unwrap();

    let quarantined_before = METRICS.quarantined_files.get();
    let removed_before = METRICS
        .reconcile_actions
        .with_label_values(&["remove_unindexed"])
        .get();
    let ts = ts.restart().await;
    let after = names(&tl_dir);
    assert!(!after.contains(&temp), "temp removed: {after:?}");
    assert!(
        !after.iter().any(|n| n == unindexed),
        "unindexed layer removed: {after:?}"
    );
    assert!(
        !after.contains(&"notes.txt".to_string()) && !after.contains(&"some-dir".to_string()),
        "{after:?}"
    );
    assert!(
        !after.contains(&layers[1]),
        "mismatched layer removed: {after:?}"
    );
    let lf = names(&tl_dir.join("lost+found"));
    assert_eq!(lf.len(), 2, "{lf:?}");
    assert!(
        lf.iter().any(|n| n.starts_with("notes.txt."))
            && lf.iter().any(|n| n.starts_with("some-dir."))
    );
    assert!(METRICS.quarantined_files.get() >= quarantined_before + 2);
    assert!(
        METRICS
            .reconcile_actions
            .with_label_values(&["remove_unindexed"])
            .get()
            > removed_before
    );

    // Every page reads back; the removed and missing layers are fetched on demand.
    check_pages(&ts, &model, 10, &[40, 80, 120]).await;
    let now = names(&tl_dir);
    assert!(
        now.contains(&layers[1]) && now.contains(&layers[2]),
        "fetched again: {now:?}"
    );
    assert_eq!(
        std::fs::metadata(tl_dir.join(&layers[1])).unwrap().len(),
        len
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_local_layer_of_the_right_size_is_fetched_again() {
    let dir = tempfile::tempdir().unwrap();
    let ts = TestServer::start(conf(dir.path())).await;
    ts.setup().await;
    let model = {
        let mut m = Model::default();
        ts.ingest_acked(&mut m, 1, 50, 8, LARGE_DELTA_BYTES).await;
        m
    };
    ts.checkpoint().await;
    let tl_dir = ts.timeline_dir();
    let layer = names(&tl_dir).pop().unwrap();
    let ts = ts.restart().await;
    // Flip a byte inside the blob stream; the size still matches the index.
    let path = tl_dir.join(&layer);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    for k in 0..8 {
        let (s, body) = ts.page(Key::from_u128(k), Lsn(50)).await;
        if let Some(p) = model.page(Key::from_u128(k), Lsn(50)) {
            assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
            assert!(body == p);
        }
    }
    assert_ne!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the damaged file was replaced"
    );
}
