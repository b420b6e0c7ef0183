//! What the page server benchmarks share: the ids they create, and request bodies of records.
#![allow(dead_code, unused_imports, reason = "each benchmark uses part of it")]
#![allow(
    clippy::unwrap_used,
    reason = "benchmark harness: any failure aborts the run"
)]

use bytes::Bytes;
use layer_format::value::{PAGE_SIZE, Patch, encode_patches};
use layer_format::{Key, Lsn, Value};
use pageserver::config::PageServerConf;
use pageserver::http::wire::encode as encode_ingest;
use pageserver::timeline::Record;

pub use test_support::api::{TENANT, TIMELINE};
pub const MIB: usize = 1 << 20;

/// A temp directory under `PS_BENCH_DIR` (default: the system temp dir) and a page server
/// configuration with default settings there, on the engine `PS_BENCH_ENGINE` names, if set.
pub fn bench_conf() -> (tempfile::TempDir, PageServerConf) {
    let base = std::env::var_os("PS_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(base).unwrap();
    let mut conf = PageServerConf::defaults(dir.path());
    if let Ok(engine) = std::env::var("PS_BENCH_ENGINE") {
        conf.io_engine = engine.parse().unwrap();
    }
    (dir, conf)
}

/// `len` bytes of the random stream of `seed`.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    test_support::Rng::new(seed).fill(len)
}

/// 1 MiB request bodies of records, `per_record` payload bytes each, LSNs from `lsn`.
pub fn bodies(total: usize, image: bool, keys: u128, lsn: &mut u64) -> Vec<Bytes> {
    let page = Bytes::from(noise(PAGE_SIZE, 1));
    let patch = noise(96, 2);
    let per = if image { 29 + PAGE_SIZE } else { 29 + 100 };
    let per_body = MIB / per;
    let mut out = Vec::new();
    let mut i = 0u128;
    for _ in 0..total / MIB {
        let recs: Vec<Record> = (0..per_body)
            .map(|_| {
                *lsn += 1;
                i += 1;
                let value = if image {
                    Value::Image(page.clone())
                } else {
                    Value::Delta {
                        will_init: true,
                        record: encode_patches(&[Patch {
                            offset: (i % 64) as u16 * 100,
                            bytes: &patch,
                        }]),
                    }
                };
                Record {
                    key: Key::from_u128(i % keys),
                    lsn: Lsn(*lsn),
                    value,
                }
            })
            .collect();
        out.push(Bytes::from(encode_ingest(&recs)));
    }
    out
}
