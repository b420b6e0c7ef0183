//! Bounded upload-queue memory while remote storage is down (#13): every layer and index put
//! fails (failpoints `upload-layer-before` and `upload-index-before`, `return`) for thousands of
//! flush cycles; the queue holds one entry per layer and one index, not an index per flush.
//! Then storage comes back and everything is acknowledged.
//!
//! Settings per seed (`UPLOAD_MEMORY_SEED`): records per flush and `upload_concurrency`.
//! `UPLOAD_MEMORY_CYCLES` sets the number of flush cycles (default 2,000).
#![cfg(feature = "testing")]
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use common::*;
use fail::FailScenario;
use index_part::names::{TenantId, TimelineId};
use layer_format::value::{Patch, encode_patches};
use layer_format::{Key, Lsn, Value};
use pageserver::failpoints::configure;
use pageserver::timeline::Record;
use std::time::{Duration, Instant};
use test_support::env_u64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_memory_stays_bounded_while_every_put_fails() {
    let scenario = FailScenario::setup();
    let seed = test_support::seed("UPLOAD_MEMORY_SEED");
    let mut rng = test_support::Rng::new(seed);
    let cycles = env_u64("UPLOAD_MEMORY_CYCLES").unwrap_or(2000);
    let per_flush = 1 + rng.below(8);
    let concurrency = 1 + rng.below(16) as usize;
    eprintln!(
        "upload memory seed {seed} (reproduce with UPLOAD_MEMORY_SEED={seed}): {cycles} cycles, {per_flush} records per flush, upload_concurrency {concurrency}"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut c = conf(dir.path());
    c.upload_concurrency = concurrency;
    let ts = TestServer::start(c).await;
    ts.setup().await;
    let tenant: TenantId = TENANT.parse().unwrap();
    let timeline: TimelineId = TIMELINE.parse().unwrap();
    let tl = ts
        .server
        .tenants
        .get(tenant)
        .unwrap()
        .timeline(timeline)
        .unwrap();

    configure("upload-layer-before", "return").unwrap();
    configure("upload-index-before", "return").unwrap();
    let started = Instant::now();
    let mut lsn = 1u64;
    // What a queue holding every index version would hold: the sum of their sizes.
    let mut one_index_per_flush = 0usize;
    let mut peak = 0usize;
    let mut samples = Vec::new();
    for cycle in 1..=cycles {
        let recs: Vec<Record> = (0..per_flush)
            .map(|i| Record {
                key: Key::from_u128(u128::from((lsn + i) % 64)),
                lsn: Lsn(lsn + i),
                value: Value::Delta {
                    will_init: true,
                    record: encode_patches(&[Patch {
                        offset: 0,
                        bytes: &[(lsn + i) as u8],
                    }]),
                },
            })
            .collect();
        lsn += per_flush;
        let (s, v) = ts.ingest(&recs).await;
        assert!(s.is_success(), "{v}");
        tl.flush().await.unwrap();
        one_index_per_flush += tl.with_layer_map(|m| m.index().to_json().unwrap().len());
        let state = tl.upload_state();
        let held = state.queued_bytes();
        peak = peak.max(held);
        if cycle.is_power_of_two() || cycle == cycles {
            samples.push((cycle, held, state.pending()));
        }
    }
    let state = tl.upload_state().clone();
    let layers = tl.with_layer_map(|m| m.len());
    let index_now = tl.with_layer_map(|m| m.index().to_json().unwrap().len());
    assert_eq!(
        state.remote_consistent_lsn(),
        Lsn(0),
        "nothing acknowledged while every put fails"
    );
    // One entry per layer and one index (plus the barrier of a loaded timeline: none here).
    assert_eq!(
        state.pending(),
        layers + 1,
        "every layer and one index pending"
    );
    assert!(
        state.coalesced_indexes() >= cycles - 1,
        "{} of {cycles} indexes coalesced",
        state.coalesced_indexes()
    );
    let bound = layers * 512 + index_now;
    assert!(
        peak <= bound,
        "the queue held {peak} bytes; one entry per layer and one index is at most {bound}"
    );
    for (cycle, held, pending) in &samples {
        eprintln!("  after {cycle} flushes: {held} bytes queued for {pending} operations");
    }
    eprintln!(
        "upload memory: {cycles} flush cycles with every put failing in {:.1} s: peak {peak} bytes queued ({layers} layers, newest index {index_now} bytes); one index per flush would have held {one_index_per_flush} bytes ({:.0}x)",
        started.elapsed().as_secs_f64(),
        one_index_per_flush as f64 / peak.max(1) as f64
    );

    // Storage comes back: everything is acknowledged and the queue empties.
    configure("upload-layer-before", "off").unwrap();
    configure("upload-index-before", "off").unwrap();
    let drained = Instant::now();
    assert!(
        tl.wait_uploads(Duration::from_secs(300)).await,
        "the queue drains"
    );
    assert_eq!(state.remote_consistent_lsn(), Lsn(lsn - 1));
    assert_eq!(state.queued_bytes(), 0);
    eprintln!(
        "  drained {layers} layer uploads and the index in {:.1} s",
        drained.elapsed().as_secs_f64()
    );
    scenario.teardown();
}
