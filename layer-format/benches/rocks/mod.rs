//! The layer benchmark's records through RocksDB (feature `rocksdb`, off by default): in the
//! same run, `SstFileWriter` writes exactly the records of a delta layer into one table file,
//! then the file is ingested into a database and read with the same random keys.
//!
//! Built against Debian's RocksDB, so that the default build needs nothing extra:
//! `scripts/bench-rocksdb` installs `librocksdb-dev` and `libclang-dev` and runs
//! `ROCKSDB_LIB_DIR=/usr/lib/x86_64-linux-gnu cargo bench -p layer-format --features rocksdb`.
//!
//! A RocksDB key is the 16-byte page key followed by the LSN inverted (big-endian
//! `u64::MAX - lsn`), so that a key's versions sort newest first, the order a layer's `get`
//! returns them in; the value is the record's encoded value (tag and body), the bytes a layer's
//! blob holds. No compression; a block cache of the same size as the layer's.

use bytes::Bytes;
use layer_format::{Key, Lsn, Value};
use rocksdb::{
    BlockBasedOptions, Cache, DB, DBCompressionType, IngestExternalFileOptions, Options,
    SstFileWriter,
};
use std::path::Path;
use std::time::{Duration, Instant};

/// The RocksDB key of a record.
fn rkey(key: Key, lsn: Lsn) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..16].copy_from_slice(&key.0);
    k[16..].copy_from_slice(&(u64::MAX - lsn.0).to_be_bytes());
    k
}

/// Options for both the writer and the database: no compression, a block cache of
/// `cache_bytes`.
pub fn options(cache_bytes: usize) -> Options {
    let mut o = Options::default();
    o.create_if_missing(true);
    o.set_compression_type(DBCompressionType::None);
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(&Cache::new_lru_cache(cache_bytes));
    o.set_block_based_table_factory(&table);
    o
}

/// Writes records `0..n` of `record` into a table file at `path`, durable; returns the time
/// and the file's size.
pub fn write<'v>(
    opts: &Options,
    path: &Path,
    n: usize,
    record: impl Fn(usize) -> (Key, Lsn, &'v Value),
) -> (Duration, u64) {
    let start = Instant::now();
    let mut w = SstFileWriter::create(opts);
    w.open(path).unwrap();
    let mut buf = Vec::new();
    for i in 0..n {
        let (key, lsn, value) = record(i);
        let (tag, body) = value.encoded_parts();
        buf.clear();
        buf.push(tag);
        buf.extend_from_slice(body);
        w.put(rkey(key, lsn), &buf).unwrap();
    }
    // `finish` syncs the file itself; the fsync here makes sure the time includes one.
    w.finish().unwrap();
    std::fs::File::open(path).unwrap().sync_all().unwrap();
    (start.elapsed(), std::fs::metadata(path).unwrap().len())
}

/// Latencies of the warm reads, sorted.
pub struct Reads {
    /// A key's versions at or below an LSN, newest first, down to the first base value: what a
    /// layer's `get` answers.
    pub versions: Vec<Duration>,
    /// One exact (key, LSN) with `get`.
    pub exact: Vec<Duration>,
}

/// Ingests the table file at `sst` into a new database under `dir` and times `reads` reads of
/// each kind with keys from `next_key`, after as many unmeasured ones (warm).
pub fn reads(
    opts: &Options,
    dir: &Path,
    sst: &Path,
    reads: usize,
    mut next_key: impl FnMut() -> Key,
) -> Reads {
    let db = DB::open(opts, dir.join("rocksdb")).unwrap();
    let mut ingest = IngestExternalFileOptions::default();
    ingest.set_move_files(true);
    db.ingest_external_file_opts(&ingest, vec![sst]).unwrap();
    let mut out = Reads {
        versions: Vec::new(),
        exact: Vec::new(),
    };
    for _round in 0..2 {
        out.versions.clear();
        out.exact.clear();
        for i in 0..reads {
            let key = next_key();
            let start = Instant::now();
            let mut it = db.raw_iterator();
            it.seek(rkey(key, Lsn(1000)));
            let mut values: Vec<Value> = Vec::new();
            while let (Some(k), Some(v)) = (it.key(), it.value()) {
                if k[..16] != key.0 {
                    break;
                }
                // Decoded and checked as a layer's read decodes its values; stops at the first
                // base value, as a layer's `get` does.
                let value = Value::decode(Bytes::copy_from_slice(v)).unwrap();
                let base = value.is_base();
                values.push(value);
                if base {
                    break;
                }
                it.next();
            }
            out.versions.push(start.elapsed());
            assert!(!values.is_empty(), "every key has versions");
            let lsn = Lsn(i as u64 % 10 + 1);
            let start = Instant::now();
            let v = db.get_pinned(rkey(key, lsn)).unwrap();
            out.exact.push(start.elapsed());
            assert!(v.is_some(), "every version is present");
        }
    }
    out.versions.sort();
    out.exact.sort();
    out
}
