//! Power-loss simulation (I1-I3, I5, I9): the real write path (generation claim, flushes, the
//! compaction batch publish, image layers, index uploads to the local backend, deletions, GC,
//! a reset that drops the local cache) runs on the
//! simulated filesystem of `layer_format::io::sim`, which records every operation and snapshots
//! what is durable at each fsync. Every crash state the persistence model allows (every subset
//! of up to three unsynced operations at each point, torn writes included, plus seeded random
//! larger subsets) is mounted and the real recovery runs on it (`TenantManager::start`: claim a
//! generation, select the authoritative index, reconcile local files). The oracle:
//!
//! * no file under a final name differs from what was published under that name;
//! * recovery succeeds; once the timeline's creation was acknowledged it is there, with
//!   `remote_consistent_lsn` at or above the last one acknowledged before the crash, a GC
//!   cutoff no higher, and every page at that LSN and at each earlier flush boundary not below
//!   the cutoff reads back as the model says;
//! * no temp object of an interrupted put is left in remote storage;
//! * every layer of the authoritative index exists remotely with its size and checksum;
//! * no temp file and no layer outside the index is left locally;
//! * the next ingest, flush (with its upload) and compaction succeed.
//!
//! Crash states that look the same (same names, same bytes) are checked once. The same
//! exploration of deliberately broken variants of the write path must find violations.
//!
//! `POWER_LOSS_SAMPLES` sets the random states per point (default 20), `POWER_LOSS_SEED` the
//! seed, and `POWER_LOSS_DEBUG=1` prints each point's unsynced operations.
#![cfg(feature = "testing")]
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use bytes::Bytes;
use common::{LARGE_DELTA_BYTES, Model, SMALL_DELTA_BYTES, TENANT, TIMELINE, records, with_bases};
use futures::StreamExt;
use index_part::names::{Generation, LocalFile, TenantId, TimelineId, classify_local};
use index_part::{IndexPart, ParseMode, select_authoritative};
use layer_format::io::sim::crash::Explorer;
use layer_format::io::sim::image::Image;
use layer_format::io::sim::{SimEngine, Variant};
use layer_format::name::is_temp_file_name;
use layer_format::{Key, Lsn};
use pageserver::config::{PageServerConf, RemoteStorageConfig};
use pageserver::remote::{PutOutcome, RemoteStorage};
use pageserver::server::PageServer;
use pageserver::tenant::TenantManager;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const KEYS: u128 = 6;
/// Flushes of the recorded workload; a compaction follows the second and the fourth.
const FLUSHES: usize = 5;
const WORKDIR: &str = "/ps";
const REMOTE: &str = "/remote";

fn conf() -> PageServerConf {
    let mut c = PageServerConf::defaults(Path::new(WORKDIR));
    c.remote_storage = RemoteStorageConfig::Local {
        local_path: PathBuf::from(REMOTE),
    };
    c.compaction_threshold = 2;
    // Small outputs: each compaction writes several L1 layers (the recording checks it).
    c.compaction_target_size = 8192;
    // Each compaction writes an image layer at the flushed LSN over the L1 it produced; after
    // the last flush, GC (horizon 0) removes the deltas and images under the newest image.
    c.image_creation_threshold = 1;
    c.gc_horizon = 0;
    c.compaction_period = Duration::from_secs(3600);
    c
}

#[path = "power_loss/checks.rs"]
mod checks;
#[path = "power_loss/stores.rs"]
mod stores;

use checks::*;
use stores::*;

async fn start(
    engine: SimEngine,
    upload: Upload,
    hits: &Arc<AtomicU64>,
) -> anyhow::Result<Arc<TenantManager>> {
    let hits = hits.clone();
    let server = PageServer::start_with(conf(), Arc::new(engine), |inner| match upload {
        Upload::Correct => inner,
        Upload::IndexBeforeLayers => Arc::new(IndexFirst {
            inner,
            held: Mutex::default(),
            hits,
        }),
        Upload::DeletesBeforeIndex => Arc::new(DeletesFirst {
            inner,
            referenced: Mutex::default(),
            hits,
        }),
    })
    .await?;
    Ok(server.tenants.clone())
}

fn ids() -> (TenantId, TimelineId) {
    (TENANT.parse().unwrap(), TIMELINE.parse().unwrap())
}

/// What the workload did: the model of every record and the LSNs it wrote.
struct Recorded {
    engine: SimEngine,
    model: Arc<Model>,
    /// Operations a broken remote-storage wrapper reordered.
    upload_hits: u64,
}

/// The workload, recorded: create tenant and timeline, [`FLUSHES`] flushes with their uploads,
/// a compaction (L1 layers, then an image layer) with its uploads and deletions after the second
/// and the fourth, GC, and a reset that drops the local cache. With `fail_fsync`, the `n`th file
/// fsync fails.
async fn record(variant: Variant, upload: Upload, fail_fsync: Option<u64>) -> Recorded {
    let engine = SimEngine::new(variant);
    let (t, tl) = ids();
    engine.set_label("start and generation claim");
    let hits = Arc::new(AtomicU64::new(0));
    let mgr = start(engine.clone(), upload, &hits).await.unwrap();
    mgr.create_tenant(t).await.unwrap();
    engine.set_label("timeline creation");
    mgr.create_timeline(t, tl).await.unwrap();
    engine.set_acked(1);
    let timeline = mgr.get(t).unwrap().timeline(tl).unwrap();
    if let Some(n) = fail_fsync {
        engine.fail_fsync_in(n);
    }
    let mut model = Model::default();
    let mut lsn = 1;
    for round in 0..FLUSHES {
        engine.set_label(&format!("flush {round}"));
        let recs = with_bases(
            records(
                lsn,
                12,
                KEYS,
                if round % 2 == 1 {
                    LARGE_DELTA_BYTES
                } else {
                    SMALL_DELTA_BYTES
                },
                0,
            ),
            &model,
        );
        timeline.ingest(recs.clone(), None).await.unwrap();
        model.add(&recs);
        lsn += 12;
        // A failed fsync fails this flush; the retry writes the layer again.
        let mut ok = timeline.checkpoint().await.is_ok();
        for _ in 0..3 {
            if ok {
                break;
            }
            ok = timeline.checkpoint().await.is_ok();
        }
        assert!(ok, "the flush succeeds once fsync works again");
        let acked: Lsn = timeline.status().remote_consistent_lsn;
        engine.set_acked(acked.0 + 1);
        if round % 2 == 1 && round < 4 {
            engine.set_label(&format!("compaction after flush {round}"));
            let r = timeline.compact().await.unwrap();
            assert_eq!(r.outcome, "compacted");
            let l1 = timeline.with_layer_map(|m| {
                m.layers()
                    .filter(|h| h.meta.level == Some(index_part::Level::L1))
                    .filter(|h| h.name.lsn_range().end.0 == lsn)
                    .count()
            });
            assert!(
                l1 >= 2,
                "the compaction wrote {l1} L1 layers; several expected"
            );
            assert!(timeline.wait_uploads(Duration::from_secs(30)).await);
        }
    }
    // GC removes the layers under the newest image (written by the last compaction, below the
    // last flush): an index with a raised cutoff, then the deletions.
    engine.set_label("gc");
    assert!(
        timeline.gc().unwrap() > 0,
        "GC removes the layers under the image"
    );
    assert!(timeline.wait_uploads(Duration::from_secs(30)).await);
    // An operator's reset that drops the local cache: local layers removed, the timeline
    // reloaded from its index under the same generation, a new index uploaded.
    engine.set_label("reset dropping the cache");
    let tenant = mgr.reset_tenant(t, true).await.unwrap();
    let timeline = tenant.timeline(tl).unwrap();
    assert!(timeline.wait_uploads(Duration::from_secs(30)).await);
    for k in 0..KEYS {
        let key = Key::from_u128(k);
        let last = Lsn(lsn - 1);
        assert_eq!(
            timeline.get_page(key, last).await.ok(),
            model.page(key, last),
            "page {k} after the reset"
        );
    }
    engine.set_label("end");
    engine.end();
    timeline.stop().await;
    mgr.shutdown();
    Recorded {
        engine,
        model: Arc::new(model),
        upload_hits: hits.load(Ordering::SeqCst),
    }
}

/// Totals of one exploration.
#[derive(Debug, Default)]
struct Report {
    points: usize,
    states: usize,
    exhaustive: usize,
    distinct: usize,
    per_label: BTreeMap<String, (usize, usize)>,
    per_point: Vec<usize>,
    violations: Vec<String>,
}

fn explorer() -> Explorer {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    Explorer {
        exhaustive: 3,
        samples: env("POWER_LOSS_SAMPLES").unwrap_or(20) as usize,
        seed: env("POWER_LOSS_SEED").unwrap_or(0x5eed),
        cap: 20_000,
    }
}

/// Crash states checked at once: each runs its own recovery on its own simulated filesystem,
/// and part of a check is waiting for its upload queue, so a few in flight keep the cores busy.
const CHECKS_IN_FLIGHT: usize = 8;

/// Explores every crash state of a recorded run; with `until`, stops at the first violation
/// that names one of those kinds.
async fn explore(rec: &Recorded, until: Option<&[&str]>) -> Report {
    let ex = explorer();
    let mut published: HashMap<PathBuf, HashSet<u32>> = HashMap::new();
    for (path, bytes) in rec.engine.published() {
        published
            .entry(path)
            .or_default()
            .insert(crc32c::crc32c(&bytes));
    }
    let published = Arc::new(published);
    let mut report = Report::default();
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let points = rec.engine.points();
    report.points = points.len();
    for (i, point) in points.iter().enumerate() {
        if std::env::var("POWER_LOSS_DEBUG").is_ok() {
            let kinds: Vec<String> = point
                .pending
                .iter()
                .map(|op| match op {
                    layer_format::io::sim::image::Op::Write { data, .. } => {
                        format!("W{}", data.len())
                    }
                    other => format!("{:?}", std::mem::discriminant(other)),
                })
                .collect();
            println!("point {i} {}: {kinds:?}", point.label);
        }
        let mut states = Vec::new();
        let n = ex.for_each_state(point, i, |image, exhaustive| {
            states.push((image, exhaustive));
        });
        report.states += n;
        report.per_point.push(n);
        let entry = report.per_label.entry(point.label.clone()).or_default();
        entry.0 += 1;
        entry.1 += n;
        let mut distinct = Vec::new();
        for (image, exhaustive) in states {
            report.exhaustive += usize::from(exhaustive);
            if seen.insert((image.content_hash(), point.acked)) {
                distinct.push(image);
            }
        }
        report.distinct += distinct.len();
        let acked = point.acked;
        // In order, so that the first violations reported are the first found.
        let mut checks = futures::stream::iter(distinct)
            .map(|image| {
                let (model, published) = (rec.model.clone(), published.clone());
                AbortOnDrop(tokio::spawn(async move {
                    check_state(&image, acked, &model, &published).await
                }))
            })
            .buffered(CHECKS_IN_FLIGHT);
        while let Some(found) = checks.next().await {
            for v in found {
                report
                    .violations
                    .push(format!("point {i} ({}): {v}", point.label));
            }
            if let Some(kinds) = until
                && report
                    .violations
                    .iter()
                    .any(|v| kinds.iter().any(|k| v.contains(k)))
            {
                return report;
            }
        }
    }
    report
}

/// A spawned check, aborted if the exploration stops before it is awaited.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> std::future::Future for AbortOnDrop<T> {
    type Output = T;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<T> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.expect("a state check panicked"))
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn print(name: &str, r: &Report) {
    println!(
        "power loss ({name}): {} persistence points, {} distinct crash states checked (of {} enumerated: {} exhaustive, {} sampled), {} violations",
        r.points,
        r.distinct,
        r.states,
        r.exhaustive,
        r.states - r.exhaustive,
        r.violations.len()
    );
    for (label, (points, states)) in &r.per_label {
        println!("  {label}: {points} points, {states} states");
    }
    println!("  states per point: {:?}", r.per_point);
    for v in r.violations.iter().take(5) {
        println!("  violation: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_crash_state_of_the_write_path_recovers() {
    // Each fsync failure must hit what its run is named for: a local layer file, then a remote
    // object of the local backend.
    let runs = [
        ("correct write path", None, ""),
        ("the first layer's fsync fails", Some(0), "/ps/tenants/"),
        (
            "the first remote object's fsync fails",
            Some(1),
            "/remote/tenants/",
        ),
    ];
    let (mut states, mut distinct) = (0, 0);
    for (name, fail, failed_under) in runs {
        let rec = record(Variant::Correct, Upload::Correct, fail).await;
        let failed = rec.engine.fsyncs_failed();
        match fail {
            None => assert!(failed.is_empty(), "{name}: {failed:?}"),
            Some(_) => assert!(
                failed.len() == 1 && failed[0].starts_with(failed_under),
                "{name}: the injected EIO hit {failed:?}"
            ),
        }
        // I2: after the failed fsync the file is never published, uploaded or read back.
        assert!(
            rec.engine.violations().is_empty(),
            "{name}: {:?}",
            rec.engine.violations()
        );
        let r = explore(&rec, None).await;
        print(name, &r);
        assert!(
            r.violations.is_empty(),
            "{name}: {:#?}",
            &r.violations[..r.violations.len().min(20)]
        );
        states += r.states;
        distinct += r.distinct;
    }
    let line = format!(
        "power loss: {distinct} distinct crash states recovered and checked (of {states} enumerated) over 3 recorded runs, 0 violations"
    );
    test_support::report(&line);
    assert!(
        distinct >= 10_000,
        "checked {distinct} distinct crash states"
    );
}

/// A checker that cannot fail is worthless: each broken variant of the write path must yield
/// a crash state that violates the oracle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explorer_finds_a_violation_in_each_broken_variant() {
    // Each variant, the kind of violation it must cause (any one of them), and whether its
    // hook changed anything in the recording.
    let variants: [(&str, Variant, Upload, &[&str]); 4] = [
        (
            "no directory fsync after the rename",
            Variant::NoDirFsyncAfterRename,
            Upload::Correct,
            &[
                "the acknowledged timeline is gone",
                "below the acknowledged",
            ],
        ),
        (
            "rename before the file fsync",
            Variant::RenameBeforeFsync,
            Upload::Correct,
            &["differs from what was published"],
        ),
        (
            "index uploaded before its layers",
            Variant::Correct,
            Upload::IndexBeforeLayers,
            &["references missing"],
        ),
        (
            "layers deleted before the index that drops them",
            Variant::Correct,
            Upload::DeletesBeforeIndex,
            &["differs from the model", "references missing"],
        ),
    ];
    for (name, variant, upload, kinds) in variants {
        let rec = record(variant, upload, None).await;
        let hits = rec.engine.variant_hits() + rec.upload_hits;
        assert!(
            hits > 0,
            "{name}: the broken variant never changed an operation"
        );
        let r = explore(&rec, Some(kinds)).await;
        print(name, &r);
        assert!(
            r.violations
                .iter()
                .any(|v| kinds.iter().any(|k| v.contains(k))),
            "{name}: no crash state violates the oracle as {kinds:?}; found {:?}",
            &r.violations[..r.violations.len().min(5)]
        );
        println!("{name}: the variant changed {hits} operations");
    }
}
