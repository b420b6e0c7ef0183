//! Suite 5, end to end with the real binary: tenant reset under load (a writer keeps ingesting
//! and resends whatever a reset dropped, as a storage node does), and a full disk that is freed
//! again (every layer write fails with ENOSPC through the `layer-write` failpoint).
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use layer_format::Lsn;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use test_runner::remote::Remote;
use test_runner::server::{Pageserver, TENANT, lsn_of};
use test_support::Model;
use test_support::workload::workload;
use tokio::sync::Mutex;

const KEYS: u128 = 16;

async fn check_pages(ps: &Pageserver, model: &Model, lsns: &[u64]) {
    test_runner::server::check_pages(ps, model, KEYS, lsns).await;
}

/// Brings the server level with the model: resends every record above its `last_record_lsn`
/// to the current incarnation; returns that incarnation.
async fn resend(ps: &Pageserver, model: &Model) -> Result<u64, test_runner::server::HttpError> {
    let info = ps.info().await?;
    let (last, incarnation) = (
        lsn_of(&info, "last_record_lsn"),
        info["incarnation"].as_u64().unwrap(),
    );
    let missing = model.records_above(last);
    if !missing.is_empty() {
        ps.ingest_at(&missing, incarnation).await?;
    }
    Ok(incarnation)
}

async fn check_integrity(ps: &Pageserver) {
    let remote = Remote::local(&ps.remote_root());
    ps.check_integrity(&remote).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let mut ps = Pageserver::new(
        dir.path(),
        &[
            "checkpoint_distance = 131072",
            "compaction_threshold = 3",
            "compaction_period = \"1h\"",
        ],
    );
    ps.start(None).await;
    ps.setup().await.unwrap();
    let ps = Arc::new(ps);
    let model = Arc::new(Mutex::new(Model::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn({
        let (ps, model, stop) = (ps.clone(), model.clone(), stop.clone());
        async move {
            let (mut lsn, mut batches, mut resends) = (1u64, 0, 0);
            let mut incarnation = ps.info().await.unwrap()["incarnation"].as_u64().unwrap();
            while !stop.load(Ordering::SeqCst) {
                let mut m = model.lock().await;
                let recs = workload(&m, lsn, 20, KEYS, lsn);
                m.add(&recs);
                lsn += 20;
                if ps.ingest_at(&recs, incarnation).await.is_err() {
                    // The timeline was reset (a new incarnation) or was stopping: what it had not
                    // acknowledged may be gone; resend from its last_record_lsn, as a storage
                    // node does after a reconnect.
                    loop {
                        match resend(&ps, &m).await {
                            Ok(i) => {
                                incarnation = i;
                                break;
                            }
                            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                        }
                    }
                    resends += 1;
                }
                batches += 1;
            }
            (batches, resends)
        }
    });
    let mut resets = 0;
    for i in 0..6 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        if i % 2 == 0 {
            let _ = ps.checkpoint().await;
        }
        let path = format!(
            "/v1/tenant/{TENANT}/reset{}",
            if i == 3 { "?drop_cache=true" } else { "" }
        );
        ps.json(reqwest::Method::POST, &path, "").await.unwrap();
        resets += 1;
    }
    stop.store(true, Ordering::SeqCst);
    let (batches, resends) = writer.await.unwrap();
    let m = model.lock().await;
    resend(&ps, &m).await.unwrap();
    let info = ps.checkpoint().await.unwrap();
    let last = lsn_of(&info, "remote_consistent_lsn");
    assert_eq!(lsn_of(&info, "last_record_lsn"), last);
    check_pages(&ps, &m, &[last.0 / 3, last.0 / 2, last.0]).await;
    ps.compact().await.unwrap();
    check_pages(&ps, &m, &[last.0 / 2, last.0]).await;
    check_integrity(&ps).await;
    ps.check_log(&[
        "retrying",
        "request failed",
        "stopped",
        "moved an unrecognised file",
        "flush failed",
    ])
    .unwrap();
    test_support::report(&format!(
        "suite 5, reset under load: {resets} resets, {batches} batches, {resends} resends, final LSN {last}"
    ));
    assert!(batches > resets, "the writer kept going");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_then_freed() {
    let dir = tempfile::tempdir().unwrap();
    let mut ps = Pageserver::new(
        dir.path(),
        &[
            "compaction_threshold = 2",
            "image_creation_threshold = 1000",
            "compaction_period = \"1h\"",
        ],
    );
    ps.start(None).await;
    ps.setup().await.unwrap();
    let mut model = Model::default();
    let mut lsn = 1u64;
    for round in 0..2 {
        let recs = workload(&model, lsn, 40, KEYS, round);
        ps.ingest(&recs).await.unwrap();
        model.add(&recs);
        lsn += 40;
        ps.checkpoint().await.unwrap();
    }
    ps.failpoint("layer-write", "return").await.unwrap();
    let recs = workload(&model, lsn, 40, KEYS, 5);
    ps.ingest(&recs).await.unwrap();
    model.add(&recs);
    lsn += 40;
    let err = ps.compact().await.unwrap_err();
    assert!(err.body.contains("No space left on device"), "{err:?}");
    let checkpoint = tokio::time::timeout(Duration::from_millis(800), ps.checkpoint()).await;
    assert!(
        !matches!(checkpoint, Ok(Ok(_))),
        "no flush can finish while the disk is full"
    );
    let info = ps.info().await.unwrap();
    assert!(
        info["last_flush_error"]
            .as_str()
            .is_some_and(|e| e.contains("No space left")),
        "{info}"
    );

    ps.failpoint("layer-write", "off").await.unwrap();
    let info = ps.checkpoint().await.unwrap();
    assert_eq!(lsn_of(&info, "remote_consistent_lsn"), Lsn(lsn - 1));
    let v = ps.compact().await.unwrap();
    assert_eq!(v["outcome"], "compacted", "{v}");
    check_pages(&ps, &model, &[40, lsn - 1]).await;
    check_integrity(&ps).await;
    ps.check_log(&[
        "flush failed",
        "compaction failed",
        "request failed",
        "retrying",
    ])
    .unwrap();
    test_support::report(&format!(
        "suite 5, disk full then freed: compaction and flush failed with ENOSPC and left no file; once freed, acknowledged up to {} and compacted",
        Lsn(lsn - 1)
    ));
}
