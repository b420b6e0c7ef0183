//! Compaction throughput: `cargo bench -p pageserver --bench compaction`.
//!
//! Builds 10 L0 layers of `PS_COMPACT_MIB` MiB (default 64) of 8 KiB page images through the
//! timeline's ingest and checkpoint, waits for their uploads, measures the disk ceiling in the
//! same directory (the same number of bytes written in 1 MiB chunks through the same I/O engine,
//! each with the writers' writeback hint, then fsync), then times one compaction (merge, write, fsync and publish of the L1 outputs,
//! install). Prints MB/s of input and its ratio to the ceiling.
#![allow(
    clippy::unwrap_used,
    reason = "benchmark harness: any failure aborts the run"
)]

use bytes::Bytes;
use index_part::names::{TenantId, TimelineId};
use layer_format::value::PAGE_SIZE;
use layer_format::{Key, Lsn, Value};
use pageserver::config::PageServerConf;
use pageserver::server::PageServer;
use pageserver::timeline::{Record, encode_ingest};
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;

fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let l0_mib: usize = std::env::var("PS_COMPACT_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let base = std::env::var_os("PS_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(base).unwrap();
    let mut conf = PageServerConf::defaults(dir.path());
    conf.checkpoint_distance = 1 << 40; // flushes only on checkpoint
    conf.compaction_threshold = 10;
    conf.compaction_period = Duration::from_secs(3600);
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
            timeline
                .ingest(&Bytes::from(encode_ingest(&sorted)), None)
                .await
                .unwrap();
        }
        timeline.checkpoint().await.unwrap();
    }
    assert!(timeline.wait_uploads(Duration::from_secs(600)).await);
    let input_bytes: u64 = timeline.layer_list().iter().map(|l| l.file_size).sum();
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

    let start = Instant::now();
    let result = timeline.compact().await.unwrap();
    let d = start.elapsed();
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
    server.shutdown();
}
