//! Compaction throughput: `cargo bench -p pageserver --bench compaction`.
//!
//! Builds 10 L0 layers of `PS_COMPACT_MIB` MiB (default 64) of 8 KiB page images through the
//! timeline's ingest and checkpoint, waits for their uploads, measures the disk ceiling in the
//! same directory (the same number of bytes written in 1 MiB chunks through the same I/O engine,
//! each with the writers' writeback hint, then fsync), then times one compaction (merge,
//! write, fsync and publish of the L1 outputs, install). Prints MB/s of input and its ratio to
//! the ceiling.
//!
//! Then image creation: one more small L0 spanning every key puts a second delta layer over
//! each L1 partition (`image_creation_threshold` 2), and the next compaction writes an image
//! layer of every page of every partition (each page rebuilt by `get_page`). Prints MB/s of
//! image written.
//!
//! For both steps: the peak resident memory above what the process held when the step began
//! (Linux `clear_refs` and `VmHWM`). The block cache is bounded by `PS_PAGE_CACHE_MIB` (default
//! 16) and is part of that figure. `PS_COMPACT_MIB=270` makes the images about 1 GiB.
#![allow(
    clippy::unwrap_used,
    reason = "benchmark harness: any failure aborts the run"
)]

mod common;

use bytes::Bytes;
use common::{MIB, bench_conf, noise};
use index_part::names::{TenantId, TimelineId};
use layer_format::value::PAGE_SIZE;
use layer_format::{Key, Lsn, Value};
use pageserver::server::PageServer;
use pageserver::timeline::Record;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let l0_mib: usize = std::env::var("PS_COMPACT_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let (dir, mut conf) = bench_conf();
    conf.checkpoint_distance = 1 << 40; // flushes only on checkpoint
    conf.compaction_threshold = 10;
    conf.compaction_period = Duration::from_secs(3600);
    conf.image_creation_threshold = 2;
    // The block cache fills with what image creation reads; its bound (`PS_PAGE_CACHE_MIB`,
    // default 16) is part of the memory measured.
    let page_cache_mib: u64 = std::env::var("PS_PAGE_CACHE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    conf.page_cache_size = page_cache_mib << 20;
    let server = PageServer::start(conf).await.unwrap();
    let (t, tl) = (TenantId([1; 16]), TimelineId([2; 16]));
    server.tenants.create_tenant(t).await.unwrap();
    let timeline = server.tenants.create_timeline(t, tl).await.unwrap();
    let pages: Vec<Bytes> = (0..16).map(|s| Bytes::from(noise(PAGE_SIZE, s))).collect();
    let per_l0 = l0_mib * MIB / (PAGE_SIZE + 64);
    let keys = (per_l0 * 4) as u128;
    let mut lsn = 0u64;
    for l0 in 0..10 {
        let mut recs = Vec::with_capacity(per_l0);
        for i in 0..per_l0 {
            lsn += 1;
            let key = Key::from_u128((i as u128 * 7 + l0 as u128 * 13) % keys);
            recs.push(Record {
                key,
                lsn: Lsn(lsn),
                value: Value::Image(pages[i % pages.len()].clone()),
            });
        }
        // Ingest in 1 MiB requests, as the HTTP API would.
        for chunk in recs.chunks(MIB / (PAGE_SIZE + 29)) {
            let mut sorted = chunk.to_vec();
            sorted.sort_by_key(|r| r.lsn);
            timeline.ingest(sorted, None).await.unwrap();
        }
        timeline.checkpoint().await.unwrap();
    }
    assert!(timeline.wait_uploads(Duration::from_secs(600)).await);
    let input_bytes: u64 = timeline.layer_list().iter().map(|l| l.meta.file_size).sum();
    assert_eq!(timeline.layer_list().len(), 10);

    // The ceiling: the same number of bytes, 1 MiB writes through the same engine, each with
    // the writers' writeback hint, then fsync.
    let engine = server.engine.clone();
    let ceiling_path = dir.path().join("ceiling");
    let chunk = Bytes::from(noise(MIB, 99));
    let start = Instant::now();
    let f = engine.create_exclusive(&ceiling_path).unwrap();
    for i in 0..input_bytes.div_ceil(MIB as u64) {
        f.write_vectored_all_at(vec![chunk.clone()], i * MIB as u64)
            .unwrap();
        f.start_writeback(i * MIB as u64, MIB as u64).unwrap();
    }
    f.fsync().unwrap();
    let ceiling = input_bytes as f64 / 1e6 / start.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&ceiling_path).unwrap();

    let rss_before = reset_peak_rss();
    let start = Instant::now();
    let result = timeline.compact().await.unwrap();
    let d = start.elapsed();
    let compaction_peak = peak_rss();
    assert_eq!(result.outcome, "compacted");
    let rate = input_bytes as f64 / 1e6 / d.as_secs_f64();
    println!(
        "compaction benchmark ({:?} engine): 10 L0 layers, {} MiB of input",
        engine.kind(),
        input_bytes / MIB as u64
    );
    println!(
        "  {:<36} {:>8.1} MB/s",
        "disk ceiling (1 MiB writes + fsync)", ceiling
    );
    println!(
        "  {:<36} {:>8.1} MB/s of input  ratio {:.2}  ({} outputs, {:.2} s)",
        "compaction L0 -> L1",
        rate,
        rate / ceiling,
        result.outputs,
        d.as_secs_f64()
    );
    print_memory("compaction", rss_before, compaction_peak, page_cache_mib);

    // Image creation: one more L0 spanning every key puts a second delta over each L1
    // partition (image_creation_threshold 2), so the next compaction (no L0 run to compact)
    // writes an image of every page of every partition.
    lsn += 1;
    let span = [Key::from_u128(0), Key::from_u128(keys - 1)].map(|key| {
        lsn += 1;
        Record {
            key,
            lsn: Lsn(lsn),
            value: Value::Image(pages[0].clone()),
        }
    });
    timeline.ingest(span.to_vec(), None).await.unwrap();
    timeline.checkpoint().await.unwrap();
    assert!(timeline.wait_uploads(Duration::from_secs(600)).await);
    let before = timeline.layer_list().len();
    let rss_before = reset_peak_rss();
    let start = Instant::now();
    let result = timeline.compact().await.unwrap();
    let d = start.elapsed();
    let images_peak = peak_rss();
    let images: Vec<_> = timeline
        .layer_list()
        .into_iter()
        .filter(|l| !l.name.is_delta())
        .collect();
    assert_eq!(images.len(), result.outputs, "one image per partition");
    assert!(timeline.layer_list().len() > before);
    let image_bytes: u64 = images.iter().map(|l| l.meta.file_size).sum();
    println!(
        "  {:<36} {:>8.1} MB/s of image  ({} images, {} MiB, {:.2} s)",
        "image creation (get_page of every key)",
        image_bytes as f64 / 1e6 / d.as_secs_f64(),
        images.len(),
        image_bytes / MIB as u64,
        d.as_secs_f64()
    );
    print_memory("image creation", rss_before, images_peak, page_cache_mib);
    server.shutdown();
}

/// Prints a step's peak memory above what the process held when it began.
fn print_memory(step: &str, before: u64, peak: u64, page_cache_mib: u64) {
    let mib = |b: u64| b as f64 / MIB as f64;
    println!(
        "  {:<36} {:>8.1} MiB (peak RSS {:.1} MiB, {:.1} MiB before; block cache {page_cache_mib} MiB)",
        format!("memory of {step}, peak growth"),
        mib(peak.saturating_sub(before)),
        mib(peak),
        mib(before)
    );
}

/// A field of `/proc/self/status` in bytes (it gives kB).
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    let kib: u64 = line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib * 1024
}

/// Resets the peak RSS to the current RSS (Linux: `5` written to `/proc/self/clear_refs`) and
/// returns it.
fn reset_peak_rss() -> u64 {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    status_bytes("VmRSS:")
}

/// The peak RSS since the last reset.
fn peak_rss() -> u64 {
    status_bytes("VmHWM:")
}
