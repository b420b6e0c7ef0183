//! The queue against a simulated store, in virtual time.

use super::*;
use crate::testing::sim_storage::{SimFaults, SimStorage};
use bytes::Bytes;
use index_part::names::{LayerName, layer_object_key, timeline_prefix};
use layer_format::Key;
use layer_format::io::{EngineChoice, open_engine};
use std::time::Duration;

/// Found by the slow-storage soak with small compaction outputs: a GC deletion of dozens
/// of objects on a store failing a third of the writes waited the longest delay (5 s)
/// after nearly every object, and the soak took more than 15 minutes.
#[tokio::test(start_paused = true)]
async fn a_deletion_that_makes_progress_starts_its_backoff_over() {
    let (tenant, timeline) = (TenantId([1; 16]), TimelineId([2; 16]));
    let storage = Arc::new(SimStorage::new(
        42,
        SimFaults::default(),
        &format!("{}/", timeline_prefix(tenant, timeline)),
    ));
    let files: Vec<LayerFileName> = (0..40u128)
        .map(|i| LayerFileName {
            layer: LayerName::Image {
                key_range: Key::from_u128(i)..Key::from_u128(i + 1),
                lsn: Lsn(1),
            },
            generation: Generation(1),
        })
        .collect();
    for f in &files {
        let key = layer_object_key(tenant, timeline, f);
        storage
            .put_if_absent(&key, Bytes::from_static(b"x"))
            .await
            .unwrap();
    }
    storage.set_faults(SimFaults {
        fail_before: 0.5,
        ..SimFaults::default()
    });
    let queue = UploadQueue::start(
        UploadTarget {
            storage: storage.clone(),
            engine: open_engine(EngineChoice::Std).unwrap(),
            tenant,
            timeline,
            generation: Generation(1),
            concurrency: 4,
        },
        Lsn(0),
    );
    let started = tokio::time::Instant::now();
    queue.push(UploadOp::Delete {
        layers: files.clone(),
    });
    while queue.state().pending() > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = started.elapsed();
    assert!(storage.objects().is_empty(), "every object deleted");
    let failed = storage.counts().failed_before;
    assert!(failed >= 10, "the store failed {failed} deletes");
    // Backoff that only grew would wait 5 s after most of those failures.
    assert!(
        took < Duration::from_secs(20),
        "{failed} failures took {took:?} of virtual time"
    );
    queue.stop().await;
}

const TENANT: TenantId = TenantId([1; 16]);
const TIMELINE: TimelineId = TimelineId([2; 16]);

/// One layer object of generation 1 holding `bytes`, an index of generation 1 that
/// references it, and a queue of generation 1 on a store without faults.
struct OneLayer {
    storage: Arc<SimStorage>,
    file: LayerFileName,
    key: String,
    index: IndexPart,
    queue: UploadQueue,
}

fn meta_of(bytes: &[u8]) -> LayerMetadata {
    LayerMetadata {
        file_size: bytes.len() as u64,
        generation: Generation(1),
        checksum: crc32c::crc32c(bytes),
        level: None,
    }
}

async fn one_layer(bytes: &'static [u8]) -> OneLayer {
    let storage = Arc::new(SimStorage::new(42, SimFaults::default(), "none/"));
    let file = LayerFileName {
        layer: LayerName::Image {
            key_range: Key::from_u128(1)..Key::from_u128(2),
            lsn: Lsn(1),
        },
        generation: Generation(1),
    };
    let key = layer_object_key(TENANT, TIMELINE, &file);
    storage
        .put_if_absent(&key, Bytes::from_static(bytes))
        .await
        .unwrap();
    let mut index = IndexPart::new(
        Generation(1),
        index_part::TimelineMetadata {
            tenant_id: TENANT,
            timeline_id: TIMELINE,
            created_at: std::time::SystemTime::UNIX_EPOCH,
        },
    );
    index.layers.insert(file.layer.clone(), meta_of(bytes));
    index.disk_consistent_lsn = Lsn(2);
    let queue = UploadQueue::start(
        UploadTarget {
            storage: storage.clone(),
            engine: open_engine(EngineChoice::Std).unwrap(),
            tenant: TENANT,
            timeline: TIMELINE,
            generation: Generation(1),
            concurrency: 1,
        },
        Lsn(0),
    );
    OneLayer {
        storage,
        file,
        key,
        index,
        queue,
    }
}

/// The guard that keeps a deletion from removing an object the newest uploaded index
/// references compared layer names without their generation with file names with it, so it
/// never fired: the object was deleted and the remote index pointed at nothing.
#[tokio::test(start_paused = true)]
async fn a_deletion_never_removes_a_layer_the_newest_uploaded_index_references() {
    let t = one_layer(b"x").await;
    t.queue.push(UploadOp::Index {
        index: Box::new(t.index.clone()),
        seq: 1,
    });
    t.queue.push(UploadOp::Delete {
        layers: vec![t.file.clone()],
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    assert!(t.queue.state().drained(deadline).await);
    assert_eq!(t.queue.state().remote_consistent_lsn(), Lsn(2));
    assert!(
        t.storage.objects().contains_key(&t.key),
        "{} was deleted although the newest uploaded index references it",
        t.file
    );
    t.queue.stop().await;
}

/// The conflict rule's guard (execute.rs) compared the same way as the deletion's, so it
/// never fired either: an object of this generation that the newest uploaded index
/// references was deleted and replaced by other bytes, and the index then recorded a size
/// and checksum its object did not have.
#[tokio::test(start_paused = true)]
async fn an_object_the_newest_uploaded_index_references_is_never_replaced() {
    let t = one_layer(b"old").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(t.file.to_string());
    std::fs::write(&path, b"other bytes").unwrap();
    t.queue.push(UploadOp::Index {
        index: Box::new(t.index.clone()),
        seq: 1,
    });
    t.queue.push(UploadOp::Layer {
        file_name: t.file.clone(),
        path,
        meta: meta_of(b"other bytes"),
    });
    // Long enough for the index and many attempts at the layer.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        t.storage.objects().get(&t.key).map(|b| &b[..]),
        Some(&b"old"[..]),
        "the referenced object was replaced"
    );
    let error = t.queue.state().last_error().unwrap_or_default();
    assert!(error.contains("not replaced"), "last error: {error}");
    t.queue.stop().await;
}
