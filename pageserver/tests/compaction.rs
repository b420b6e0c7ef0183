//! Compaction (I6, I7): L0 layers become key-partitioned L1 layers; reads match the model
//! before, after and across a restart; and the regressions of the brief's three stories.
#![cfg(feature = "testing")]
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use axum::http::StatusCode;
use common::*;
use fail::FailScenario;
use index_part::names::{TenantId, TimelineId};
use layer_format::{Key, Lsn};
use pageserver::failpoints::configure;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::Duration;

const KEYS: u128 = 30;

async fn server(dir: &std::path::Path) -> TestServer {
    let mut c = conf(dir);
    c.compaction_threshold = 4;
    c.compaction_target_size = 48 << 10;
    // Image layers have their own test (images_gc.rs); here only L0 compaction acts.
    c.image_creation_threshold = 1000;
    TestServer::start(c).await
}

/// Ingests and checkpoints `n` batches: `n` L0 layers.
async fn make_l0s(ts: &TestServer, model: &mut Model, lsn: &mut u64, n: usize) {
    for _ in 0..n {
        ts.ingest_acked(model, *lsn, 40, KEYS, LARGE_DELTA_BYTES)
            .await;
        *lsn += 40;
        ts.checkpoint().await;
    }
}

async fn check(ts: &TestServer, model: &Model, upto: u64) {
    check_pages(ts, model, KEYS, &[1, upto / 3, upto / 2, upto]).await;
}

/// Every layer file seen so far, by name: inode and bytes. A name seen again must be the same
/// file with the same bytes (published files are never changed or replaced).
#[derive(Default)]
struct FileOracle(HashMap<String, (u64, Vec<u8>)>);

impl FileOracle {
    fn observe(&mut self, dir: &std::path::Path) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            if !e.file_type().unwrap().is_file() || name.ends_with(".___temp") {
                continue;
            }
            let (ino, bytes) = (
                e.metadata().unwrap().ino(),
                std::fs::read(e.path()).unwrap(),
            );
            if let Some((i, b)) = self.0.get(&name) {
                assert_eq!(*i, ino, "{name} was replaced");
                assert!(*b == bytes, "{name} was modified");
            } else {
                self.0.insert(name, (ino, bytes));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l0_layers_become_l1_layers_and_reads_match() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let ts = server(dir.path()).await;
    ts.setup().await;
    let (mut model, mut lsn) = (Model::default(), 1);
    make_l0s(&ts, &mut model, &mut lsn, 3).await;
    let (s, v) = ts.compact().await;
    assert_eq!(
        (s, v["outcome"].as_str()),
        (StatusCode::OK, Some("nothing_to_do")),
        "below the threshold: {v}"
    );
    make_l0s(&ts, &mut model, &mut lsn, 2).await;
    let (s, v) = ts.compact().await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["outcome"], "compacted");
    assert_eq!(v["inputs"], 5);
    assert!(
        v["outputs"].as_u64().unwrap() >= 2,
        "split by key at the target size: {v}"
    );
    assert_eq!(v["leftovers_quarantined"], 0);
    let (_, layers) = ts.json(axum::http::Method::GET, &ts.tl("/layer"), "").await;
    let layers = layers["layers"].as_array().unwrap();
    assert_eq!(layers.len() as u64, v["outputs"].as_u64().unwrap());
    assert!(
        layers
            .iter()
            .all(|l| l["lsn_start"] == "0/1" && l["lsn_end"] == Lsn(lsn).to_string()),
        "{layers:?}"
    );
    check(&ts, &model, lsn - 1).await;
    let info = ts.checkpoint().await;
    assert_eq!(info["remote_consistent_lsn"], Lsn(lsn - 1).to_string());
    let ts = ts.restart().await;
    check(&ts, &model, lsn - 1).await;
    scenario.teardown();
}

/// Neon's future work. A compaction that failed after writing some of its outputs left one of
/// them published; the retry re-created the same file name and overwrote it in place while
/// caches still pointed at the old bytes. After the fix (RENAME_NOREPLACE) the retry met its
/// own earlier output with EEXIST on every attempt, and compaction stayed stuck until an
/// operator reset the tenant. Here: the second output fails; nothing is left behind, the retry
/// succeeds at once, no published file ever changes, and reads match.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_neon_future_work_retry_makes_progress() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let ts = server(dir.path()).await;
    ts.setup().await;
    let (mut model, mut lsn) = (Model::default(), 1);
    make_l0s(&ts, &mut model, &mut lsn, 4).await;
    let mut oracle = FileOracle::default();
    oracle.observe(&ts.timeline_dir());
    configure("compaction-after-output", "1*off->return").unwrap();
    let (s, v) = ts.compact().await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("compaction-after-output"),
        "{v}"
    );
    oracle.observe(&ts.timeline_dir());
    assert_eq!(ts.info().await["layers"]["delta"], 4, "nothing installed");
    configure("compaction-after-output", "off").unwrap();
    let (s, v) = ts.compact().await;
    assert_eq!(s, StatusCode::OK, "the retry succeeds: {v}");
    assert_eq!(v["outcome"], "compacted");
    assert_eq!(
        v["leftovers_quarantined"], 0,
        "the failed attempt left nothing behind"
    );
    oracle.observe(&ts.timeline_dir());
    check(&ts, &model, lsn - 1).await;
    oracle.observe(&ts.timeline_dir());
    scenario.teardown();
}

/// Leftover on disk: a compaction died between publishing its outputs and cleaning them up
/// (a panic at `compaction-after-publish` skips the cleanup, as a failed cleanup would). The
/// next compaction meets files under its outputs' names that are not in the layer map: it
/// moves them to lost+found, counts them, and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftovers_are_quarantined_and_compaction_succeeds() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let ts = server(dir.path()).await;
    ts.setup().await;
    let (mut model, mut lsn) = (Model::default(), 1);
    make_l0s(&ts, &mut model, &mut lsn, 4).await;
    configure("compaction-after-publish", "panic").unwrap();
    let (s, _) = ts.compact().await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    configure("compaction-after-publish", "off").unwrap();
    let on_disk = std::fs::read_dir(ts.timeline_dir()).unwrap().count();
    assert!(on_disk > 4, "the published outputs were left behind");
    let (s, v) = ts.compact().await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["outcome"], "compacted");
    let leftovers = v["leftovers_quarantined"].as_u64().unwrap();
    assert_eq!(leftovers, v["outputs"].as_u64().unwrap(), "{v}");
    assert_eq!(
        std::fs::read_dir(ts.timeline_dir().join("lost+found"))
            .unwrap()
            .count() as u64,
        leftovers
    );
    check(&ts, &model, lsn - 1).await;
    scenario.teardown();
}

/// Reftable's race. Compaction chose its inputs and works; meanwhile new L0 layers are flushed.
/// Installing from its stale snapshot would drop them. Here the install applies to the map as
/// it is: the new L0s stay in the map and in the uploaded index. And if an input disappears
/// meanwhile (GC, another job), the compaction abandons its outputs instead of resurrecting it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_reftable_race_install_uses_the_current_map() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let ts = Arc::new(server(dir.path()).await);
    ts.setup().await;
    let (mut model, mut lsn) = (Model::default(), 1);
    make_l0s(&ts, &mut model, &mut lsn, 4).await;
    let (t, tl): (TenantId, TimelineId) = (TENANT.parse().unwrap(), TIMELINE.parse().unwrap());
    let timeline = ts.server.tenants.get(t).unwrap().timeline(tl).unwrap();

    // 1. Flushes while compaction is paused after its first output.
    configure("compaction-after-output", "1*pause").unwrap();
    let compaction = tokio::spawn({
        let ts = ts.clone();
        async move { ts.compact().await }
    });
    wait_paused("compaction-after-output").await;
    make_l0s(&ts, &mut model, &mut lsn, 2).await;
    configure("compaction-after-output", "off").unwrap();
    let (s, v) = compaction.await.unwrap();
    assert_eq!(
        (s, v["outcome"].as_str()),
        (StatusCode::OK, Some("compacted")),
        "{v}"
    );
    assert_eq!(v["inputs"], 4);
    let names = timeline.layer_names();
    let l0s = names
        .iter()
        .filter(|n| *n.key_range() == (Key::MIN..Key::MAX))
        .count();
    assert_eq!(l0s, 2, "the L0s flushed meanwhile stay: {names:?}");
    ts.checkpoint().await;
    check(&ts, &model, lsn - 1).await;

    // 2. An input removed meanwhile: the compaction abandons rather than resurrect it.
    make_l0s(&ts, &mut model, &mut lsn, 2).await;
    configure("compaction-after-output", "1*pause").unwrap();
    let compaction = tokio::spawn({
        let ts = ts.clone();
        async move { ts.compact().await }
    });
    wait_paused("compaction-after-output").await;
    let newest_l0 = timeline
        .layer_names()
        .into_iter()
        .filter(|n| *n.key_range() == (Key::MIN..Key::MAX))
        .max_by_key(|n| n.lsn_range().start)
        .unwrap();
    assert_eq!(
        timeline
            .remove_layers(std::slice::from_ref(&newest_l0))
            .unwrap(),
        1
    );
    configure("compaction-after-output", "off").unwrap();
    let (s, v) = compaction.await.unwrap();
    assert_eq!(
        (s, v["outcome"].as_str()),
        (StatusCode::OK, Some("abandoned")),
        "{v}"
    );
    assert!(
        !timeline.layer_names().contains(&newest_l0),
        "not resurrected"
    );
    let files: Vec<String> = std::fs::read_dir(ts.timeline_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        files.len(),
        timeline.layer_names().len(),
        "abandoned outputs removed: {files:?}"
    );
    scenario.teardown();
}

/// The other order of reftable's race: a flush is paused between publishing its L0 and
/// installing it while a compaction runs and installs; the flush then installs into the map
/// as it is. Both changes survive, in the map and in the uploaded index, and reads match.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_reftable_race_flush_paused_while_compaction_installs() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let ts = Arc::new(server(dir.path()).await);
    ts.setup().await;
    let (mut model, mut lsn) = (Model::default(), 1);
    make_l0s(&ts, &mut model, &mut lsn, 4).await;
    ts.ingest_acked(&mut model, lsn, 40, KEYS, LARGE_DELTA_BYTES)
        .await;
    lsn += 40;
    configure("flush-after-publish", "1*pause").unwrap();
    let checkpoint = tokio::spawn({
        let ts = ts.clone();
        async move { ts.checkpoint().await }
    });
    wait_paused("flush-after-publish").await;
    let (s, v) = ts.compact().await;
    assert_eq!(
        (s, v["outcome"].as_str()),
        (StatusCode::OK, Some("compacted")),
        "{v}"
    );
    assert_eq!(
        v["inputs"], 4,
        "the paused flush's L0 is not installed yet: {v}"
    );
    configure("flush-after-publish", "off").unwrap();
    let info = checkpoint.await.unwrap();
    assert_eq!(
        info["remote_consistent_lsn"],
        Lsn(lsn - 1).to_string(),
        "{info}"
    );
    let (t, tl): (TenantId, TimelineId) = (TENANT.parse().unwrap(), TIMELINE.parse().unwrap());
    let names = ts
        .server
        .tenants
        .get(t)
        .unwrap()
        .timeline(tl)
        .unwrap()
        .layer_names();
    assert_eq!(
        names
            .iter()
            .filter(|n| *n.key_range() == (Key::MIN..Key::MAX))
            .count(),
        1,
        "the flushed L0 is in the map: {names:?}"
    );
    check(&ts, &model, lsn - 1).await;
    let ts = Arc::try_unwrap(ts).ok().unwrap().restart().await;
    check(&ts, &model, lsn - 1).await;
    scenario.teardown();
}

/// Found in review: compaction took an L0 whose upload was still queued and removed its local
/// file after the install; the queued upload could then never read it and retried forever, so
/// no index was uploaded again. Now a layer is a compaction input only once it is uploaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_compaction_never_takes_a_layer_whose_upload_is_queued() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let ts = server(dir.path()).await;
    ts.setup().await;
    let (mut model, mut lsn) = (Model::default(), 1);
    make_l0s(&ts, &mut model, &mut lsn, 2).await;
    configure("upload-layer-before", "return").unwrap();
    // Two more L0s whose uploads fail and stay queued.
    for _ in 0..2 {
        ts.ingest_acked(&mut model, lsn, 40, KEYS, LARGE_DELTA_BYTES)
            .await;
        lsn += 40;
        // The flush completes; the upload cannot, so the checkpoint is abandoned after a while.
        let checkpoint = tokio::time::timeout(Duration::from_millis(500), ts.checkpoint()).await;
        assert!(checkpoint.is_err(), "the upload cannot finish");
    }
    let (s, v) = ts.compact().await;
    assert_eq!(
        (s, v["outcome"].as_str()),
        (StatusCode::OK, Some("nothing_to_do")),
        "only 2 uploaded L0s: {v}"
    );
    configure("upload-layer-before", "off").unwrap();
    let info = ts.checkpoint().await;
    assert_eq!(
        info["remote_consistent_lsn"],
        Lsn(lsn - 1).to_string(),
        "the queue drained: {info}"
    );
    let (s, v) = ts.compact().await;
    assert_eq!(
        (s, v["outcome"].as_str(), v["inputs"].as_u64()),
        (StatusCode::OK, Some("compacted"), Some(4)),
        "{v}"
    );
    let mut pending = serde_json::Value::Null;
    for _ in 0..500 {
        pending = ts.info().await["pending_uploads"].clone();
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        pending, 0,
        "the outputs, the index and the deletion all went through"
    );
    check(&ts, &model, lsn - 1).await;
    scenario.teardown();
}
