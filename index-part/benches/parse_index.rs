//! `cargo bench -p index-part`: parse and validate an index of 100,000 layers
//! (`INDEX_BENCH_LAYERS` changes the count), against the floor for that JSON: tokenizing it
//! with serde_json into `IgnoredAny`, measured in the same run. Median of 11 runs each.
#![allow(
    clippy::unwrap_used,
    reason = "benchmark harness: any failure aborts the run"
)]

use index_part::names::{Generation, LayerName, TenantId, TimelineId};
use index_part::{IndexPart, LayerMetadata, Level, ParseMode, TimelineMetadata};
use layer_format::{Key, Lsn};
use std::time::{Duration, Instant, SystemTime};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: usize = std::env::var("INDEX_BENCH_LAYERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let created_at = index_part::whole_seconds(SystemTime::now());
    let mut index = IndexPart::new(
        Generation(12),
        TimelineMetadata {
            tenant_id: TenantId([7; 16]),
            timeline_id: TimelineId([9; 16]),
            created_at,
        },
    );
    index.disk_consistent_lsn = Lsn(0x10_0000_0000);
    // A realistic mix: nine key-partitioned deltas per image layer, ranges tiling the key space.
    for i in 0..n as u128 {
        let key_range = Key::from_u128(i << 64)..Key::from_u128((i + 1) << 64);
        let lsn = (i as u64 % 1000) * 0x10_0000;
        let name = if i % 10 == 0 {
            LayerName::Image {
                key_range,
                lsn: Lsn(lsn + 1),
            }
        } else {
            LayerName::Delta {
                key_range,
                lsn_range: Lsn(lsn + 1)..Lsn(lsn + 0x10_0000),
            }
        };
        let meta = LayerMetadata {
            file_size: 128 << 20,
            generation: Generation(1 + (i % 12) as u32),
            checksum: i as u32,
            level: name.is_delta().then_some(Level::L1),
        };
        index.layers.insert(name, meta);
    }
    let json = index.to_json().unwrap();
    let runs = 11;
    let floor = median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                let _: serde::de::IgnoredAny = serde_json::from_slice(&json).unwrap();
                t.elapsed()
            })
            .collect(),
    );
    let parse = median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                let back = IndexPart::from_json(&json, ParseMode::Strict).unwrap();
                let d = t.elapsed();
                assert_eq!(back.layers.len(), n);
                d
            })
            .collect(),
    );
    let write = median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                let out = index.to_json().unwrap();
                let d = t.elapsed();
                assert_eq!(out.len(), json.len());
                d
            })
            .collect(),
    );
    println!(
        "index-part benchmark: {n} layers, {:.1} MiB of JSON, median of {runs} runs",
        json.len() as f64 / (1 << 20) as f64
    );
    println!(
        "  tokenize only (serde_json IgnoredAny) {:>8.1} ms",
        floor.as_secs_f64() * 1e3
    );
    println!(
        "  parse + validate (strict)             {:>8.1} ms  ratio {:.2} to tokenizing",
        parse.as_secs_f64() * 1e3,
        parse.as_secs_f64() / floor.as_secs_f64()
    );
    println!(
        "  validate + serialize                  {:>8.1} ms",
        write.as_secs_f64() * 1e3
    );
}
