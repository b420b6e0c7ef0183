//! Suite 2: slow and adversarial object storage (sunlight's bug). An upload of object A timed
//! out; the retry wrote A2; then the first request landed and replaced A2 with A1 while the
//! index already promised A2. Here every object is written once (create-only), so a request
//! that lands late cannot replace anything.
//!
//! A seeded soak of ingest, flush, compaction and GC runs, on the local backend and on a
//! SeaweedFS bucket, against remote storage that delays
//! requests, fails writes before or after they persist, reports writes as timed out while they
//! still land later, and sends hedged duplicates (`remote_storage_faults`). The history oracle
//! (no remote object ever changes) and the integrity checker hold throughout and after a
//! `kill -9` and restart, and every acknowledged page reads back.
//!
//! `SOAK_OPS` sets the number of operations (default 400 locally, 250 on S3) and `SOAK_SEED`
//! the seed (printed by every run, so that a failure reproduces from it).
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use layer_format::Lsn;
use std::time::Duration;
use test_runner::integrity::History;
use test_runner::remote::{Backend, Remote};
use test_runner::server::{Pageserver, lsn_of};
use test_support::Model;
use test_support::env_u64;
use test_support::workload::workload;

const KEYS: u128 = 32;

async fn check_pages(ps: &Pageserver, model: &Model, lsns: &[u64]) {
    test_runner::server::check_pages(ps, model, KEYS, lsns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_against_adversarial_local_storage() {
    soak(Backend::Local, 400).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_against_adversarial_s3() {
    soak(Backend::S3, 250).await;
}

async fn soak(backend: Backend, default_ops: u64) {
    let seed = env_u64("SOAK_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            % 1_000_000
    });
    let ops = env_u64("SOAK_OPS").unwrap_or(default_ops);
    println!(
        "slow storage soak ({backend:?}): seed {seed} (reproduce with SOAK_SEED={seed}), {ops} operations"
    );
    let faults = format!(
        "remote_storage_faults = {{ seed = {seed}, max_delay_ms = 15, fail_before = 0.1, fail_after = 0.1, late = 0.1, duplicate = 0.1 }}"
    );
    let dir = tempfile::tempdir().unwrap();
    let remote = Remote::new(backend, dir.path(), "slow-storage-soak");
    // Settings from the seed: small compaction outputs (several per compaction), eager image
    // creation and a short GC horizon, so that the soak also mixes L1 layers of several
    // compactions, images inside their LSN ranges and GC.
    let mut rng = test_support::Rng::new(seed);
    let settings = [
        format!("checkpoint_distance = {}", rng.range(32, 96) * 1024),
        format!("compaction_threshold = {}", rng.range(2, 4)),
        format!("compaction_target_size = {}", rng.range(16, 64) * 1024),
        format!("image_creation_threshold = {}", rng.range(1, 3)),
        format!("gc_horizon = {}", rng.range(0, 400)),
        "compaction_period = \"1h\"".to_string(),
    ];
    println!("settings: {settings:?}");
    let base: Vec<&str> = settings.iter().map(String::as_str).collect();
    // The tenant and timeline are created on a well-behaved store; the soak runs on the bad one.
    let mut ps = Pageserver::with_remote(dir.path(), &remote, &base);
    ps.start(None).await;
    ps.setup().await.unwrap();
    ps.kill9();
    let mut cfg: Vec<&str> = base.clone();
    cfg.push(&faults);
    let mut ps = Pageserver::with_remote(dir.path(), &remote, &cfg);
    ps.start(None).await;

    let mut model = Model::default();
    let mut history = History::default();
    let (mut lsn, mut acked) = (1u64, Lsn(0));
    // The operations' stream, apart from the settings' stream.
    let mut ops_rng = test_support::Rng::new(seed ^ 0x2545_f491_4f6c_dd1d);
    // Counted when they did something: checkpoints that were acknowledged (and those that
    // gave up, apart), compactions that compacted, GCs that removed layers.
    let (mut ingests, mut checkpoints, mut compactions, mut gcs, mut observed) = (0, 0, 0, 0, 0);
    let (mut checkpoints_gave_up, mut idle_compactions, mut idle_gcs) = (0, 0, 0);
    let (mut single, mut several, mut removed) = (0, 0, 0);
    for _ in 0..ops {
        let x = ops_rng.next();
        match x % 20 {
            0..=11 => {
                let recs = workload(&model, lsn, 25, KEYS, x);
                ps.ingest(&recs).await.unwrap();
                model.add(&recs);
                lsn += 25;
                ingests += 1;
            }
            12..=14 => {
                if let Ok(Ok(info)) =
                    tokio::time::timeout(Duration::from_secs(30), ps.checkpoint()).await
                {
                    acked = acked.max(lsn_of(&info, "remote_consistent_lsn"));
                    checkpoints += 1;
                } else {
                    checkpoints_gave_up += 1;
                }
            }
            15..=16 => {
                let before = ps.layer_names().await.unwrap();
                let r = ps.compact().await.unwrap();
                if r["outcome"] == "compacted" {
                    compactions += 1;
                } else {
                    idle_compactions += 1;
                }
                if r["outcome"] == "compacted" && r["inputs"].as_u64().unwrap() > 0 {
                    // The L1 layers it wrote: new delta layers (a delta name has an LSN range).
                    let l1 = ps
                        .layer_names()
                        .await
                        .unwrap()
                        .into_iter()
                        .filter(|n| !before.contains(n))
                        .filter(|n| n.split("__").nth(1).is_some_and(|l| l.contains('-')))
                        .count();
                    if l1 > 1 {
                        several += 1;
                    } else {
                        single += 1;
                    }
                }
            }
            17 => {
                let r = ps.gc().await.unwrap();
                let n = r["removed"].as_u64().unwrap();
                removed += n;
                if n > 0 {
                    gcs += 1;
                } else {
                    idle_gcs += 1;
                }
                // Pages from the new cutoff up read back (they are in layers or in memory).
                let cutoff = lsn_of(&r, "gc_cutoff_lsn").0.max(1);
                if lsn > cutoff {
                    let lsns: Vec<u64> = (0..2)
                        .map(|i| cutoff + (x >> (8 * i)) % (lsn - cutoff))
                        .collect();
                    check_pages(&ps, &model, &lsns).await;
                }
            }
            _ => {
                observed += history.observe(&remote).await.unwrap();
            }
        }
    }
    // Drain: a checkpoint eventually succeeds despite the faults.
    let mut drained = None;
    for _ in 0..20 {
        if let Ok(info) = ps.checkpoint().await {
            drained = Some(info);
            break;
        }
    }
    let info = drained.expect("a checkpoint succeeds once retries get through");
    acked = acked.max(lsn_of(&info, "remote_consistent_lsn"));
    assert_eq!(acked, Lsn(lsn - 1));
    // Compaction outputs may still wait for their index upload: let the queue drain before
    // comparing local files with the uploaded index.
    for _ in 0..1200 {
        if ps.info().await.unwrap()["pending_uploads"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    history.observe(&remote).await.unwrap();
    ps.check_integrity(&remote).await.unwrap();
    check_pages(&ps, &model, &[lsn - 1]).await;

    // Every fault kind the soak enables fired, and some late puts landed after their retry
    // had written the object (sunlight's order), not only before it.
    let metrics = String::from_utf8(
        ps.request(reqwest::Method::GET, "/metrics", "")
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    let fired = |kind: &str| -> u64 {
        let label = format!("pageserver_injected_faults_total{{kind=\"{kind}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&label))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    let faults: Vec<(&str, u64)> = [
        "fail_before",
        "fail_after",
        "late",
        "duplicate",
        "late_put_first",
        "late_put_after_retry",
    ]
    .into_iter()
    .map(|k| (k, fired(k)))
    .collect();
    for (kind, n) in &faults {
        assert!(*n > 0, "fault {kind} never fired: {faults:?}");
    }

    // kill -9 and restart on the same faulty store.
    ps.kill9();
    tokio::time::sleep(Duration::from_millis(100)).await;
    ps.start(None).await;
    let info = ps.info().await.unwrap();
    assert!(lsn_of(&info, "remote_consistent_lsn") >= acked, "{info}");
    check_pages(&ps, &model, &[acked.0]).await;
    ps.check_integrity(&remote).await.unwrap();
    history.observe(&remote).await.unwrap();
    ps.check_log(&[
        "injected fault",
        "retrying",
        "request failed",
        "compaction failed",
    ])
    .unwrap();
    test_support::report(&format!(
        "suite 2, slow storage soak ({backend:?}): seed {seed}: {ingests} ingests, {checkpoints} checkpoints acknowledged ({checkpoints_gave_up} gave up), {compactions} compactions that compacted ({several} of L0 layers with several L1 outputs, {single} with one; {idle_compactions} found nothing to do), {gcs} GCs that removed layers ({removed} layers; {idle_gcs} removed none), {observed} object observations; faults fired: {}; final LSN {acked}",
        faults
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    assert!(
        several > 0 && single == 0,
        "compactions with several outputs: {several}, with one: {single}"
    );
}
