//! Image layers and GC: once deltas stack up over a key range, compaction writes an image
//! layer at `disk_consistent_lsn`; GC then removes the layers every read at or above its cutoff
//! can do without, records the cutoff in the index (kept across restarts), refuses reads below
//! it, and deletes the removed objects remotely after the index upload.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use index_part::names::{TenantId, TimelineId};
use layer_format::{Key, Lsn};
use std::time::Duration;

const KEYS: u128 = 20;

async fn batch(ts: &TestServer, model: &mut Model, lsn: &mut u64) {
    ts.ingest_acked(model, *lsn, 40, KEYS, LARGE_DELTA_BYTES)
        .await;
    *lsn += 40;
    ts.checkpoint().await;
}

async fn check(ts: &TestServer, model: &Model, lsns: &[u64]) {
    check_pages(ts, model, KEYS, lsns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_then_gc() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = conf(dir.path());
    c.compaction_threshold = 3;
    c.compaction_target_size = 64 << 10;
    c.image_creation_threshold = 2;
    c.gc_horizon = 30;
    let ts = TestServer::start(c).await;
    ts.setup().await;
    let (mut model, mut lsn) = (Model::default(), 1u64);
    for _ in 0..3 {
        batch(&ts, &mut model, &mut lsn).await;
    }
    let (_, v) = ts.compact().await;
    assert_eq!(v["outcome"], "compacted", "{v}");
    for _ in 0..3 {
        batch(&ts, &mut model, &mut lsn).await;
    }
    let image_lsn = lsn - 1;
    let (_, v) = ts.compact().await;
    assert_eq!(v["outcome"], "compacted", "{v}");
    let (_, layers) = ts.json(Method::GET, &ts.tl("/layer"), "").await;
    let images: Vec<&serde_json::Value> = layers["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["kind"] == "image")
        .collect();
    assert!(
        !images.is_empty(),
        "stacked deltas made image layers: {layers}"
    );
    assert!(
        images
            .iter()
            .all(|i| i["lsn_start"] == Lsn(image_lsn).to_string()),
        "{images:?}"
    );
    check(&ts, &model, &[1, 60, 130, image_lsn]).await;

    // More history above the images, then GC with its cutoff above them.
    for _ in 0..2 {
        batch(&ts, &mut model, &mut lsn).await;
    }
    let (t, tl): (TenantId, TimelineId) = (TENANT.parse().unwrap(), TIMELINE.parse().unwrap());
    let timeline = ts.server.tenants.get(t).unwrap().timeline(tl).unwrap();
    let before = timeline.layer_names().len();
    let removed = timeline.gc().unwrap();
    assert!(removed > 0, "the deltas under the images are removable");
    assert_eq!(timeline.layer_names().len(), before - removed);
    let cutoff = lsn - 1 - 30;
    check(&ts, &model, &[cutoff, cutoff + 15, lsn - 1]).await;
    let (s, _) = ts.page(Key::from_u128(1), Lsn(cutoff - 1)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "below the GC cutoff");
    assert!(timeline.wait_uploads(Duration::from_secs(30)).await);
    let remote = ts.server.storage.list("tenants/").await.unwrap();
    let layer_objects = remote
        .iter()
        .filter(|k| !k.contains("index_part.json") && !k.contains("/generations/"))
        .count();
    assert_eq!(
        layer_objects,
        timeline.layer_names().len(),
        "removed objects are deleted remotely: {remote:?}"
    );

    let ts = ts.restart().await;
    let (s, _) = ts.page(Key::from_u128(1), Lsn(cutoff - 1)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "the cutoff is in the index");
    check(&ts, &model, &[cutoff, lsn - 1]).await;
}
