//! Layer write and read benchmark: `cargo bench -p layer-format`.
//!
//! Measures, in one run and on the same filesystem, for each I/O engine:
//!
//! * the ceiling: `LAYER_BENCH_MIB` (default 256) MiB written in 1 MiB chunks, each followed by
//!   the writer's writeback hint (`sync_file_range`), then fsync;
//! * delta layers of 8 KiB, 100-byte and 256-byte values and an image layer of the
//!   same size, each including index, summary, fsync and publish;
//!
//! and prints MB/s and the ratio to that engine's ceiling: each layer run is paired with a
//! ceiling run just before it, and the medians over `LAYER_BENCH_RUNS` (default 5) pairs are shown. Then warm point-read latency (p50, p99) on the 8 KiB and 100-byte layers.
//! Files go to a temp directory under `LAYER_BENCH_DIR` (default: the system temp dir);
//! `LAYER_BENCH_ENGINE=std` or `uring` measures one engine (default: both), and
//! `LAYER_BENCH_WORKLOADS=delta8k,delta100,delta256,image` a subset of the layers (default: all).
//!
//! With the feature `rocksdb` (`scripts/bench-rocksdb`), the delta workloads are then written
//! again, each layer run paired with a RocksDB `SstFileWriter` run on exactly the same records,
//! and read with the same keys from both (see `rocks/mod.rs`); the ratios are printed beside
//! the ceiling ratios.
#![allow(
    clippy::unwrap_used,
    reason = "benchmark harness: any failure aborts the run"
)]

#[cfg(feature = "rocksdb")]
mod rocks;

use bytes::Bytes;
use layer_format::io::{EngineChoice, IoEngine, open_engine};
use layer_format::name::Generation;
use layer_format::value::{PAGE_SIZE, Patch, encode_patches};
use layer_format::{BlockCache, DeltaLayerWriter, ImageLayerWriter, Key, LayerReader, Lsn, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Deterministic noise, so that no layer of the stack can compress the data.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    test_support::Rng::new(seed).fill(len)
}

fn median_f(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

fn ceiling(engine: &Arc<dyn IoEngine>, dir: &Path, total: usize) -> Duration {
    let chunk = Bytes::from(noise(MIB, 7));
    let path = dir.join("ceiling");
    let start = Instant::now();
    let f = engine.create_exclusive(&path).unwrap();
    for i in 0..total / MIB {
        // The cheapest path each engine has: no copy before the system call or the ring.
        f.write_vectored_all_at(vec![chunk.clone()], (i * MIB) as u64)
            .unwrap();
        // And the writer's writeback hint, so that the fsync waits for the tail only.
        f.start_writeback((i * MIB) as u64, MIB as u64).unwrap();
    }
    f.fsync().unwrap();
    let d = start.elapsed();
    drop(f);
    std::fs::remove_file(&path).unwrap();
    d
}

#[derive(Clone, Copy, Debug)]
enum Workload {
    Delta8k,
    Delta100,
    Delta256,
    Image,
}

impl Workload {
    fn label(self) -> &'static str {
        match self {
            Workload::Delta8k => "delta layer, 8 KiB values",
            Workload::Delta100 => "delta layer, 100-byte values",
            Workload::Delta256 => "delta layer, 256-byte values",
            Workload::Image => "image layer",
        }
    }
}

/// Records in a delta layer of about `total` bytes: on disk a record is a blob (8-byte header +
/// value) and a 32-byte index entry.
fn delta_count(w: Workload, total: usize) -> usize {
    let per = match w {
        Workload::Delta8k => PAGE_SIZE + 1,
        Workload::Delta256 => 257,
        _ => 101,
    };
    total / (per + 8 + 32)
}

/// Record `i` of a delta workload: ten versions per key (LSNs 1 to 10), like a stream of
/// updates; 8 KiB images taken in turn from `images`, or values from `small` (its first 64
/// are of 100 bytes, the next 64 of 256).
fn delta_record<'v>(
    w: Workload,
    i: usize,
    images: &'v [Value],
    small: &'v [Value],
) -> (Key, Lsn, &'v Value) {
    let (k, l) = ((i / 10) as u128, (i % 10) as u64 + 1);
    let v = match w {
        Workload::Delta8k => &images[i % images.len()],
        Workload::Delta256 => &small[64 + i % 64],
        _ => &small[i % 64],
    };
    (Key::from_u128(k), Lsn(l), v)
}

/// Writes one layer of about `total` bytes; returns time, file size and path.
fn write_layer(
    engine: &Arc<dyn IoEngine>,
    dir: &Path,
    w: Workload,
    total: usize,
    pages: &[Bytes],
    small: &[Value],
) -> (Duration, u64, PathBuf) {
    let images: Vec<Value> = pages.iter().map(|p| Value::Image(p.clone())).collect();
    let gen_ = Generation(1);
    let start = Instant::now();
    let info = match w {
        Workload::Delta8k | Workload::Delta100 | Workload::Delta256 => {
            let n = delta_count(w, total);
            // Distinct LSN ranges keep the two delta layers' names apart.
            let lsn_end = match w {
                Workload::Delta8k => 1000,
                Workload::Delta256 => 3000,
                _ => 2000,
            };
            let mut wr =
                DeltaLayerWriter::new(engine, dir, gen_, Key::MIN..Key::MAX, Lsn(1)..Lsn(lsn_end))
                    .unwrap();
            for i in 0..n {
                // By reference, as the server's flush passes the values it holds.
                let (k, l, v) = delta_record(w, i, &images, small);
                wr.put(k, l, v).unwrap();
            }
            wr.finish().unwrap()
        }
        Workload::Image => {
            let n = total / (PAGE_SIZE + 1 + 8 + 32);
            let mut wr =
                ImageLayerWriter::new(engine, dir, gen_, Key::MIN..Key::MAX, Lsn(5)).unwrap();
            for i in 0..n {
                wr.put(Key::from_u128(i as u128), pages[i % pages.len()].clone())
                    .unwrap();
            }
            wr.finish().unwrap()
        }
    };
    (start.elapsed(), info.size_bytes, info.path)
}

/// Point reads per round (one warm-up round, one measured).
const READS: usize = 20_000;

/// Random keys below `keys`, the same sequence for every reader measured.
fn key_stream(keys: u128) -> impl FnMut() -> Key {
    let mut rng = test_support::Rng::new(12345);
    move || Key::from_u128(u128::from(rng.next()) % keys)
}

fn point_reads(
    engine: &Arc<dyn IoEngine>,
    path: &Path,
    keys: u128,
    cache: Option<Arc<BlockCache>>,
) -> (Duration, Duration, usize) {
    let r = match cache {
        Some(c) => LayerReader::open_cached(engine, path, c).unwrap(),
        None => LayerReader::open(engine, path).unwrap(),
    };
    let mut next_key = key_stream(keys);
    let mut lat = Vec::new();
    // Warm up the page cache and the file handle, then measure.
    for round in 0..2 {
        lat.clear();
        for _ in 0..READS {
            let k = next_key();
            let start = Instant::now();
            let v = r.get(k, Lsn(1000)).unwrap();
            lat.push(start.elapsed());
            assert!(!v.is_empty() || round > 2);
        }
    }
    lat.sort();
    (lat[lat.len() / 2], lat[lat.len() * 99 / 100], lat.len())
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        // `cargo test --benches` lists benchmarks; this binary has no test harness.
        return;
    }
    let total = env_usize("LAYER_BENCH_MIB", 256) * MIB;
    let runs = env_usize("LAYER_BENCH_RUNS", 5).max(1);
    let base = std::env::var_os("LAYER_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let pages: Vec<Bytes> = (0..64).map(|s| Bytes::from(noise(PAGE_SIZE, s))).collect();
    let small: Vec<Value> = (0..128)
        .map(|s| {
            // 100-byte values, then 256-byte ones: the patch plus its 4-byte header.
            let n = noise(if s < 64 { 96 } else { 252 }, s + 100);
            Value::Delta {
                will_init: s % 64 == 0,
                record: encode_patches(&[Patch {
                    offset: ((s % 64) * 64) as u16,
                    bytes: &n,
                }]),
            }
        })
        .collect();
    assert!(
        small
            .iter()
            .enumerate()
            .all(|(s, v)| v.encoded_len() == if s < 64 { 101 } else { 257 }),
        "100- and 256-byte records plus the tag"
    );
    println!(
        "layer-format benchmark: {} MiB per file, {runs} runs per figure, in {}",
        total / MIB,
        base.display()
    );

    let choices = match std::env::var("LAYER_BENCH_ENGINE").as_deref() {
        Ok("std") => vec![EngineChoice::Std],
        Ok("uring") => vec![EngineChoice::Uring],
        Ok(other) => panic!("LAYER_BENCH_ENGINE={other}: expected std or uring"),
        Err(_) => vec![EngineChoice::Std, EngineChoice::Uring],
    };
    let workloads: Vec<Workload> = match std::env::var("LAYER_BENCH_WORKLOADS") {
        Ok(list) => list
            .split(',')
            .map(|w| match w {
                "delta8k" => Workload::Delta8k,
                "delta100" => Workload::Delta100,
                "delta256" => Workload::Delta256,
                "image" => Workload::Image,
                other => {
                    panic!("LAYER_BENCH_WORKLOADS: {other}: expected delta8k, delta100, delta256 or image")
                }
            })
            .collect(),
        Err(_) => vec![
            Workload::Delta8k,
            Workload::Delta100,
            Workload::Delta256,
            Workload::Image,
        ],
    };
    for choice in choices {
        let engine = match open_engine(choice) {
            Ok(e) => e,
            Err(e) => {
                println!("\n{choice:?}: not available ({e})");
                continue;
            }
        };
        let dir = tempfile::tempdir_in(&base).unwrap();
        println!("\nengine {:?}", engine.kind());
        // The disk of a shared machine drifts from second to second, so every layer run is
        // paired with a ceiling run just before it and the ratio is taken per pair.
        let mut ceilings = Vec::new();
        let mut kept = Vec::new();
        let mut rows = Vec::new();
        for w in workloads.iter().copied() {
            let (mut rates, mut ratios) = (Vec::new(), Vec::new());
            let mut size = 0;
            for run in 0..runs {
                let ceil = mbps(total as u64, ceiling(&engine, dir.path(), total));
                ceilings.push(ceil);
                let (d, s, path) = write_layer(&engine, dir.path(), w, total, &pages, &small);
                size = s;
                rates.push(mbps(s, d));
                ratios.push(mbps(s, d) / ceil);
                if run + 1 == runs && !matches!(w, Workload::Image) {
                    kept.push((w, path));
                } else {
                    std::fs::remove_file(path).unwrap();
                }
            }
            rows.push((w, median_f(rates), median_f(ratios), size));
        }
        let (lo, hi) = (
            ceilings.iter().copied().fold(f64::MAX, f64::min),
            ceilings.iter().copied().fold(0.0, f64::max),
        );
        println!(
            "  {:<32} {:>9.1} MB/s  (1 MiB writes + fsync; median of {} runs, range {lo:.0}-{hi:.0})",
            "ceiling",
            median_f(ceilings.clone()),
            ceilings.len()
        );
        for (w, rate, ratio, size) in rows {
            println!(
                "  {:<32} {:>9.1} MB/s  ratio {:.2}  ({} MiB file)",
                w.label(),
                rate,
                ratio,
                size / MIB as u64
            );
        }
        for (w, path) in kept {
            let keys = (delta_count(w, total) / 10) as u128;
            // Without the block cache (the OS page cache only), then through a block cache
            // large enough for the layer's hot part (`LAYER_BENCH_CACHE_MIB`, default 512).
            let cache_mib = env_usize("LAYER_BENCH_CACHE_MIB", 512) as u64;
            for cache in [None, Some(Arc::new(BlockCache::new(cache_mib << 20)))] {
                let label = if cache.is_some() {
                    "block cache"
                } else {
                    "no block cache"
                };
                let stats = cache.clone();
                let (p50, p99, n) = point_reads(&engine, &path, keys, cache);
                let hits = stats.map(|c| {
                    let s = c.stats();
                    format!(
                        ", {:.0}% hits",
                        100.0 * s.hits as f64 / (s.hits + s.misses).max(1) as f64
                    )
                });
                println!(
                    "  warm get, {:<22} p50 {:>6.1} us  p99 {:>6.1} us  ({n} reads, {label}{})",
                    w.label(),
                    p50.as_secs_f64() * 1e6,
                    p99.as_secs_f64() * 1e6,
                    hits.unwrap_or_default()
                );
            }
        }
    }
    #[cfg(feature = "rocksdb")]
    compare_rocksdb(&base, total, runs, &workloads, &pages, &small);
}

/// Each delta workload written `runs` times as a layer (std engine) and as a RocksDB table
/// file, alternately, then read warm from both with the same keys.
#[cfg(feature = "rocksdb")]
fn compare_rocksdb(
    base: &Path,
    total: usize,
    runs: usize,
    workloads: &[Workload],
    pages: &[Bytes],
    small: &[Value],
) {
    let engine = open_engine(EngineChoice::Std).unwrap();
    let images: Vec<Value> = pages.iter().map(|p| Value::Image(p.clone())).collect();
    let cache_bytes = env_usize("LAYER_BENCH_CACHE_MIB", 512) << 20;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "
RocksDB (SstFileWriter, no compression) on the same records, std engine for the layers"
    );
    for &w in workloads {
        if matches!(w, Workload::Image) {
            continue;
        }
        let dir = tempfile::tempdir_in(base).unwrap();
        let opts = rocks::options(cache_bytes);
        let n = delta_count(w, total);
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        let (mut layer, mut sst) = (None, None);
        for run in 0..runs {
            // The layer's name is the same every run, and publishing never overwrites.
            if let Some(old) = layer.take() {
                std::fs::remove_file(old).unwrap();
            }
            if let Some(old) = sst.take() {
                std::fs::remove_file(old).unwrap();
            }
            let (d, size, path) = write_layer(&engine, dir.path(), w, total, pages, small);
            ours.push((d, size));
            let sst_path = dir.path().join(format!("rocks-{run}.sst"));
            // The same records in RocksDB's order: a key's versions newest first.
            let newest_first = |i: usize| {
                let group = i / 10 * 10;
                let last = group + (n - group).min(10) - 1;
                delta_record(w, last - (i - group), &images, small)
            };
            let (rd, rsize) = rocks::write(&opts, &sst_path, n, newest_first);
            theirs.push((rd, rsize));
            (layer, sst) = (Some(path), Some(sst_path));
        }
        let median = |v: &mut Vec<(Duration, u64)>| {
            v.sort();
            v[v.len() / 2]
        };
        let ((d, size), (rd, rsize)) = (median(&mut ours), median(&mut theirs));
        println!(
            "  {:<32} {n} records: layer {:.1} ms ({} MiB), RocksDB {:.1} ms ({} MiB); layer write {:.2}x RocksDB's speed",
            w.label(),
            ms(d),
            size / MIB as u64,
            ms(rd),
            rsize / MIB as u64,
            rd.as_secs_f64() / d.as_secs_f64()
        );
        let keys = (n / 10) as u128;
        let cache = Arc::new(BlockCache::new(cache_bytes as u64));
        let (p50, p99, _) = point_reads(&engine, layer.as_ref().unwrap(), keys, Some(cache));
        let r = rocks::reads(
            &opts,
            dir.path(),
            sst.as_ref().unwrap(),
            READS,
            key_stream(keys),
        );
        let (v50, v99) = (
            r.versions[r.versions.len() / 2],
            r.versions[r.versions.len() * 99 / 100],
        );
        let (e50, e99) = (
            r.exact[r.exact.len() / 2],
            r.exact[r.exact.len() * 99 / 100],
        );
        println!(
            "    warm get of a key's versions down to a base: layer p50 {:.1} us p99 {:.1} us; RocksDB (iterator) p50 {:.1} us p99 {:.1} us; layer/RocksDB p50 {:.2}",
            us(p50),
            us(p99),
            us(v50),
            us(v99),
            us(p50) / us(v50)
        );
        println!(
            "    RocksDB get of one exact (key, LSN): p50 {:.1} us p99 {:.1} us; layer get / RocksDB exact get p50 {:.2}",
            us(e50),
            us(e99),
            us(p50) / us(e50)
        );
    }
}
