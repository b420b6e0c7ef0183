//! Deferred remote deletions (I8): a removed layer's object is deleted only after an index
//! that no longer references it is uploaded, never while that upload is failing, retried
//! through `deletion-before-execute` failures, and not at all once a newer generation exists.
#![cfg(feature = "testing")]
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use common::*;
use fail::FailScenario;
use index_part::names::{TenantId, TimelineId, layer_object_key};
use pageserver::failpoints::configure;
use pageserver::remote::generation::claim_generation;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_wait_for_the_index_and_respect_generations() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let ts = TestServer::start(conf(dir.path())).await;
    ts.setup().await;
    let mut model = Model::default();
    let mut lsn = 1;
    for _ in 0..3 {
        ts.ingest_acked(&mut model, lsn, 20, 4, SMALL_DELTA_BYTES)
            .await;
        lsn += 20;
        ts.checkpoint().await;
    }
    let (tenant, timeline): (TenantId, TimelineId) =
        (TENANT.parse().unwrap(), TIMELINE.parse().unwrap());
    let tl = ts
        .server
        .tenants
        .get(tenant)
        .unwrap()
        .timeline(timeline)
        .unwrap();
    let storage = ts.server.storage.clone();
    let names = tl.layer_names();
    assert_eq!(names.len(), 3);
    let generation = index_part::names::Generation(1);
    let key_of = |n: &index_part::names::LayerName| {
        layer_object_key(
            tenant,
            timeline,
            &index_part::names::LayerFileName {
                layer: n.clone(),
                generation,
            },
        )
    };
    for n in &names {
        assert!(storage.get(&key_of(n)).await.unwrap().is_some());
    }

    // 1. While the index upload fails, nothing is deleted.
    configure("upload-index-before", "return").unwrap();
    assert_eq!(tl.remove_layers(&names[..1]).unwrap(), 1);
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(
            storage.get(&key_of(&names[0])).await.unwrap().is_some(),
            "deleted before its index was uploaded"
        );
    }
    assert!(
        ts.info().await["last_upload_error"]
            .as_str()
            .unwrap()
            .contains("upload-index-before")
    );
    // 2. Once it succeeds, the deletion runs, through its own failures.
    configure("deletion-before-execute", "2*return").unwrap();
    configure("upload-index-before", "off").unwrap();
    assert!(tl.wait_uploads(Duration::from_secs(30)).await);
    assert!(
        storage.get(&key_of(&names[0])).await.unwrap().is_none(),
        "deleted after the index"
    );
    assert!(
        !ts.timeline_dir()
            .join(format!("{}-00000001", names[0]))
            .exists(),
        "local file removed"
    );
    configure("deletion-before-execute", "off").unwrap();

    // 3. A newer generation exists: the index is uploaded but nothing is deleted.
    let newer = claim_generation(&*storage, tenant).await.unwrap();
    assert!(newer > generation);
    assert_eq!(tl.remove_layers(&names[1..2]).unwrap(), 1);
    assert!(tl.wait_uploads(Duration::from_secs(30)).await);
    assert!(
        storage.get(&key_of(&names[1])).await.unwrap().is_some(),
        "a stale attachment deletes nothing"
    );
    let info = ts.info().await;
    assert_eq!(info["stale"], true, "{info}");
    scenario.teardown();
}
