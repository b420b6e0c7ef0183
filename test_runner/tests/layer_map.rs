//! Suite 6: reads, compaction and GC agree on one layer map (brief I10), on the real binary.
//!
//! Small compaction outputs (so that every compaction writes several L1 layers), eager image
//! creation and a short GC horizon: a seeded schedule of ingest, checkpoint, compaction and GC
//! over 64 keys of 8 KiB pages. After every compaction and GC, pages at LSNs from the GC cutoff
//! to `last_record_lsn` are read over HTTP and compared with the model; at the end every key is
//! read at several LSNs. Each run draws its settings from the seed (compaction target size,
//! thresholds, GC horizon, checkpoint distance) around the ones that first showed the bug:
//! `compaction_target_size = 65536`, `compaction_threshold = 3`, `image_creation_threshold = 2`,
//! `gc_horizon = 2400`, `checkpoint_distance = 262144`.
//!
//! `LAYER_MAP_SEED` sets the first seed (printed by every run), `LAYER_MAP_RUNS` the number of
//! seeds (default 3), `LAYER_MAP_STEPS` the steps per seed (default 80).
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use layer_format::{Key, Lsn};
use test_runner::server::{Pageserver, lsn_of};
use test_support::Model;
use test_support::Rng;
use test_support::env_u64;
use test_support::workload::workload;

const KEYS: u128 = 64;

/// Reads `(key, lsn)` and compares with the model: the page, or 404 where the model has none.
async fn check(ps: &Pageserver, model: &Model, key: Key, lsn: Lsn, when: &str) {
    test_support::api::check_page(ps, model, key, lsn, when).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_pages_read_back_with_small_outputs_images_and_gc() {
    let first = env_u64("LAYER_MAP_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            % 1_000_000
    });
    let runs = env_u64("LAYER_MAP_RUNS").unwrap_or(3);
    let steps = env_u64("LAYER_MAP_STEPS").unwrap_or(80);
    let mut totals = (0u64, 0u64, 0u64, 0u64);
    for seed in first..first + runs {
        let t = run(seed, steps).await;
        totals = (
            totals.0 + t.0,
            totals.1 + t.1,
            totals.2 + t.2,
            totals.3 + t.3,
        );
    }
    test_support::report(&format!(
        "layer map (real binary): {runs} seeds x {steps} steps, {} compactions with several outputs, {} GC runs that removed layers, {} reads compared",
        totals.0, totals.1, totals.2
    ));
    assert!(totals.0 > 0, "no compaction produced several outputs");
    assert!(totals.1 > 0, "no GC removed a layer");
}

/// One seed; returns (compactions with several outputs, GCs that removed layers, reads
/// compared, steps).
async fn run(seed: u64, steps: u64) -> (u64, u64, u64, u64) {
    let mut rng = Rng::new(seed);
    let target = rng.range(32, 128) * 1024;
    let threshold = rng.range(2, 4);
    let image_threshold = rng.range(1, 3);
    let distance = rng.range(128, 384) * 1024;
    let batch = rng.range(20, 60);
    // A few ingests' worth: GC has something to cut within the run.
    let horizon = rng.range(0, 8) * batch;
    println!(
        "layer map seed {seed} (reproduce with LAYER_MAP_SEED={seed} LAYER_MAP_RUNS=1): target {target}, threshold {threshold}, image threshold {image_threshold}, horizon {horizon}, distance {distance}, batch {batch}"
    );
    let settings = [
        format!("compaction_target_size = {target}"),
        format!("compaction_threshold = {threshold}"),
        format!("image_creation_threshold = {image_threshold}"),
        format!("gc_horizon = {horizon}"),
        format!("checkpoint_distance = {distance}"),
        "compaction_period = \"1h\"".to_string(),
    ];
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    let dir = tempfile::tempdir().unwrap();
    let mut ps = Pageserver::new(dir.path(), &settings);
    ps.start(None).await;
    ps.setup().await.unwrap();
    let mut model = Model::default();
    let mut lsn = 1u64;
    let (mut multi, mut gcs, mut reads) = (0u64, 0u64, 0u64);
    for step in 0..steps {
        let when = format!("seed {seed} step {step}");
        match rng.next() % 10 {
            0..=4 => {
                let recs = workload(&model, lsn, batch, KEYS, rng.next());
                ps.ingest(&recs).await.unwrap();
                model.add(&recs);
                lsn += batch;
            }
            5..=6 => {
                ps.checkpoint().await.unwrap();
            }
            7..=8 => {
                let r = ps.compact().await.unwrap();
                if r["outputs"].as_u64().unwrap() > 1 {
                    multi += 1;
                }
            }
            _ => {
                let r = ps.gc().await.unwrap();
                if r["removed"].as_u64().unwrap() > 0 {
                    gcs += 1;
                }
            }
        }
        // Sampled reads from the cutoff to the last LSN.
        let info = ps.info().await.unwrap();
        let (cutoff, last) = (
            lsn_of(&info, "gc_cutoff_lsn").0.max(1),
            lsn_of(&info, "last_record_lsn").0,
        );
        if last < cutoff {
            continue;
        }
        for _ in 0..8 {
            let key = Key::from_u128(u128::from(rng.next()) % KEYS);
            let at = Lsn(rng.range(cutoff, last));
            check(&ps, &model, key, at, &when).await;
            reads += 1;
        }
    }
    // Every key at the cutoff, in between, and at the last LSN.
    let info = ps.checkpoint().await.unwrap();
    let (cutoff, last) = (
        lsn_of(&info, "gc_cutoff_lsn").0.max(1),
        lsn_of(&info, "last_record_lsn").0,
    );
    for k in 0..KEYS {
        for at in [cutoff, (cutoff + last) / 2, last] {
            check(&ps, &model, Key::from_u128(k), Lsn(at), "end").await;
            reads += 1;
        }
    }
    ps.check_log(&[]).unwrap();
    (multi, gcs, reads, steps)
}
