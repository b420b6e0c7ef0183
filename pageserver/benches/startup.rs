//! Start-up of a timeline with many layers: `cargo bench -p pageserver --bench startup`.
//!
//! Builds an index of `STARTUP_BENCH_LAYERS` layers (default 10,000: one image for every nine
//! L1 deltas, each over a key range of its own) and a local timeline directory holding a file
//! of the indexed name and size for each (sparse: reconciliation checks names and sizes; a
//! layer's checksum is checked when it is first opened, not at start-up), then times, median
//! of `STARTUP_BENCH_RUNS` (default 5):
//!
//! * parsing and validating the index JSON (strict), as a start-up reads it from remote storage;
//! * `Timeline::load`: reconciling the directory with the index (listing it, a `stat` of every
//!   file) and building the layer map;
//!
//! and prints their sum against the target of issue 15 (under 1 s for 10,000 layers).
#![allow(
    clippy::unwrap_used,
    reason = "benchmark harness: any failure aborts the run"
)]

use index_part::names::{
    Generation, LayerFileName, LayerName, TenantId, TimelineId, local_timeline_dir,
};
use index_part::{IndexPart, LayerMetadata, Level, ParseMode, TimelineMetadata};
use layer_format::io::{EngineChoice, open_engine};
use layer_format::{Key, Lsn};
use pageserver::config::PageServerConf;
use pageserver::remote::local::LocalFs;
use pageserver::timeline::Timeline;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

const LAYER_SIZE: u64 = 1 << 20;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap())
        .unwrap_or(default)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = env("STARTUP_BENCH_LAYERS", 10_000);
    let runs = env("STARTUP_BENCH_RUNS", 5).max(1);
    let base = std::env::var_os("PS_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let work = tempfile::tempdir_in(base).unwrap();
    let (tenant, timeline) = (TenantId([7; 16]), TimelineId([9; 16]));
    let mut index = IndexPart::new(
        Generation(3),
        TimelineMetadata {
            tenant_id: tenant,
            timeline_id: timeline,
            created_at: index_part::whole_seconds(SystemTime::now()),
        },
    );
    index.disk_consistent_lsn = Lsn(0x10_0000_0000);
    let dir = local_timeline_dir(work.path(), tenant, timeline);
    std::fs::create_dir_all(&dir).unwrap();
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
            file_size: LAYER_SIZE,
            generation: Generation(1 + (i % 3) as u32),
            checksum: i as u32,
            level: name.is_delta().then_some(Level::L1),
        };
        let file = LayerFileName {
            layer: name.clone(),
            generation: meta.generation,
        };
        std::fs::File::create(dir.join(file.to_string()))
            .unwrap()
            .set_len(LAYER_SIZE)
            .unwrap();
        index.layers.insert(name, meta);
    }
    let json = index.to_json().unwrap();

    let engine = open_engine(EngineChoice::Auto).unwrap();
    let conf = Arc::new(PageServerConf::defaults(work.path()));
    let storage = Arc::new(LocalFs::new(&work.path().join("remote"), engine.clone()).unwrap());
    let (mut parse, mut load) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let t = Instant::now();
        let parsed = IndexPart::from_json(&json, ParseMode::Strict).unwrap();
        parse.push(t.elapsed());
        let t = Instant::now();
        let tl = Timeline::load(
            conf.clone(),
            engine.clone(),
            storage.clone(),
            Generation(4 + run as u32),
            parsed,
            1,
        )
        .await
        .unwrap();
        load.push(t.elapsed());
        assert_eq!(tl.layer_list().len(), n, "every layer loaded");
        // Reconciliation kept every file (each run measures the full directory).
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            n,
            "every file kept"
        );
        tl.shutdown();
    }
    let (parse, load) = (median(parse), median(load));
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "start-up benchmark ({:?} engine): {n} layers, index of {} KiB",
        engine.kind(),
        json.len() / 1024
    );
    println!(
        "  {:<44} {:>8.1} ms",
        "parse and validate the index (strict)",
        ms(parse)
    );
    println!(
        "  {:<44} {:>8.1} ms",
        "reconcile the directory, build the layer map",
        ms(load)
    );
    println!(
        "  {:<44} {:>8.1} ms  (target: under 1000 ms for 10,000 layers)",
        "start-up of the timeline",
        ms(parse + load)
    );
}
