//! The block cache of point reads (`LayerReader::open_cached`): reads through it are exactly the
//! model's, whatever its capacity (drawn per case, from disabled to larger than the layer); it
//! never holds more than its capacity; a warm read reads nothing again; a file written again
//! under the same name never sees the old file's entries.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use layer_format::name::Generation;
use layer_format::{BlockCache, DeltaLayerWriter, LayerReader, Lsn, Value};
use proptest::prelude::*;
use std::path::Path;
use std::sync::Arc;
use test_support::layer::*;
use test_support::values::*;

fn write(
    engine: &Arc<dyn layer_format::io::IoEngine>,
    dir: &Path,
    model: &LayerModel,
) -> std::path::PathBuf {
    let mut w = DeltaLayerWriter::new(
        engine,
        dir,
        Generation(3),
        key(0)..key(40),
        Lsn(1)..Lsn(300),
    )
    .unwrap();
    for ((k, l), v) in model {
        w.put(*k, *l, v).unwrap();
    }
    w.finish().unwrap().path
}

fn model_of(recs: &[(u128, u64, bool, usize)]) -> LayerModel {
    recs.iter()
        .map(|&(k, l, image_, len)| {
            let v = if image_ {
                Value::Image(image(k, l))
            } else {
                delta(k, l, l % 3 == 0, len)
            };
            ((key(k), Lsn(l)), v)
        })
        .collect()
}

fn recs() -> impl Strategy<Value = Vec<(u128, u64, bool, usize)>> {
    proptest::collection::vec(
        (
            0u128..40,
            1u64..300,
            any::<bool>(),
            prop_oneof![1usize..200, 7000usize..8192],
        ),
        1..1200,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn reads_through_the_cache_are_the_models_at_any_capacity(
        recs in recs(),
        capacity in prop_oneof![Just(0u64), 1u64..65_536, 65_536u64..4_000_000],
        queries in proptest::collection::vec((0u128..42, 0u64..310), 60),
    ) {
        let model = model_of(&recs);
        for engine in engines() {
            let dir = tempfile::tempdir().unwrap();
            let path = write(&engine, dir.path(), &model);
            let cache = Arc::new(BlockCache::new(capacity));
            let r = LayerReader::open_cached(&engine, &path, cache.clone()).unwrap();
            for pass in 0..2 {
                for (k, l) in &queries {
                    let (k, l) = (key(*k), Lsn(*l));
                    // From the cache alone, when it can answer, the same as the model.
                    if let Some(cached) = r.get_cached(k, l) {
                        prop_assert_eq!(cached.unwrap(), model_get(&model, k, l), "cached, pass {}", pass);
                    }
                    prop_assert_eq!(r.get(k, l).unwrap(), model_get(&model, k, l), "pass {}", pass);
                }
                let s = cache.stats();
                prop_assert!(s.bytes <= capacity, "{:?} over {}", s, capacity);
                if capacity == 0 {
                    prop_assert_eq!(s.entries, 0);
                }
            }
            // Scans go around the cache and agree with it.
            let all: Vec<_> = r.iter(key(0)..key(40)).map(Result::unwrap).collect();
            prop_assert_eq!(all.len(), model.len());
        }
    }
}

/// With room for the whole layer, the second pass of the same reads reads nothing.
#[test]
fn a_warm_read_reads_nothing_again() {
    let recs: Vec<_> = (0..40u128)
        .flat_map(|k| (1..20u64).map(move |l| (k, l * 7, l == 1, 300)))
        .collect();
    let model = model_of(&recs);
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&engine, dir.path(), &model);
        let cache = Arc::new(BlockCache::new(64 << 20));
        let r = LayerReader::open_cached(&engine, &path, cache.clone()).unwrap();
        let read_all = || {
            for k in 0..40 {
                for l in [10u64, 70, 140] {
                    assert_eq!(
                        r.get(key(k), Lsn(l)).unwrap(),
                        model_get(&model, key(k), Lsn(l))
                    );
                }
            }
        };
        assert!(
            r.get_cached(key(3), Lsn(70)).is_none(),
            "answered from an empty cache"
        );
        read_all();
        let cold = cache.stats();
        assert!(cold.misses > 0 && cold.entries > 0, "{cold:?}");
        read_all();
        let warm = cache.stats();
        assert_eq!(warm.misses, cold.misses, "a warm read went to the file");
        assert!(warm.hits > cold.hits);
        assert_eq!(warm.evictions, 0);
        // Every warm read can be answered without I/O, and the same.
        for k in 0..40 {
            for l in [10u64, 70, 140] {
                let cached = r.get_cached(key(k), Lsn(l)).expect("all cached").unwrap();
                assert_eq!(cached, model_get(&model, key(k), Lsn(l)));
            }
        }
        let uncached = LayerReader::open(&engine, &path).unwrap();
        assert!(
            uncached.get_cached(key(3), Lsn(70)).is_none(),
            "no cache, no answer"
        );
    }
}

/// A small cache evicts and stays within its bytes.
#[test]
fn a_small_cache_evicts_and_stays_bounded() {
    let recs: Vec<_> = (0..40u128)
        .flat_map(|k| (1..30u64).map(move |l| (k, l * 9, true, 0)))
        .collect();
    let model = model_of(&recs);
    let engine = engines().remove(0);
    let dir = tempfile::tempdir().unwrap();
    let path = write(&engine, dir.path(), &model);
    let cache = Arc::new(BlockCache::new(100_000));
    let r = LayerReader::open_cached(&engine, &path, cache.clone()).unwrap();
    for round in 0..3 {
        for k in 0..40 {
            for l in (9..270u64).step_by(9) {
                assert_eq!(
                    r.get(key(k), Lsn(l)).unwrap(),
                    model_get(&model, key(k), Lsn(l)),
                    "round {round}"
                );
            }
        }
    }
    let s = cache.stats();
    assert!(s.evictions > 0, "{s:?}");
    assert!(s.bytes <= 100_000, "{s:?}");
}

/// A file removed and written again under the same name (as a download after a corrupt local
/// copy does) is read as it is now, not as the cache remembers the old one.
#[test]
fn a_file_written_again_is_never_read_from_old_entries() {
    let engine = engines().remove(0);
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(BlockCache::new(64 << 20));
    let old = model_of(&[(5, 10, true, 0), (6, 10, true, 0)]);
    let path = write(&engine, dir.path(), &old);
    let r = LayerReader::open_cached(&engine, &path, cache.clone()).unwrap();
    assert_eq!(
        r.get(key(5), Lsn(10)).unwrap(),
        model_get(&old, key(5), Lsn(10))
    );
    drop(r);
    std::fs::remove_file(&path).unwrap();
    let new = model_of(&[(5, 10, false, 77), (6, 10, true, 0)]);
    assert_eq!(write(&engine, dir.path(), &new), path, "the same name");
    let r = LayerReader::open_cached(&engine, &path, cache).unwrap();
    assert_eq!(
        r.get(key(5), Lsn(10)).unwrap(),
        model_get(&new, key(5), Lsn(10))
    );
}

/// Twenty keys of ten small versions each (only the oldest a base), in one leaf.
fn small_versions() -> LayerModel {
    (0..20u128)
        .flat_map(|k| (1..=10u64).map(move |l| ((key(k), Lsn(l)), delta(k, l, l == 1, 100))))
        .collect()
}

/// A cold read of a key's small versions reads them with one read (`reader/run.rs`): one
/// lookup misses, the rest come with it; a second read of the same key misses nothing.
#[test]
fn a_keys_small_versions_come_with_one_read() {
    let model = small_versions();
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&engine, dir.path(), &model);
        let cache = Arc::new(BlockCache::new(64 << 20));
        let r = LayerReader::open_cached(&engine, &path, cache.clone()).unwrap();
        for k in [3u128, 19] {
            let before = cache.stats();
            assert_eq!(
                r.get(key(k), Lsn(10)).unwrap(),
                model_get(&model, key(k), Lsn(10))
            );
            let after = cache.stats();
            // The index is one leaf, the root, which the reader keeps: only values are looked up.
            assert_eq!(after.misses - before.misses, 1, "{engine:?}: {after:?}");
            assert_eq!(after.entries - before.entries, 10, "every version cached");
            assert_eq!(
                r.get(key(k), Lsn(10)).unwrap(),
                model_get(&model, key(k), Lsn(10))
            );
            assert_eq!(cache.stats().misses, after.misses, "the warm read missed");
        }
        // Older versions of a key whose newest were read: nothing read again.
        let before = cache.stats().misses;
        assert_eq!(
            r.get(key(3), Lsn(4)).unwrap(),
            model_get(&model, key(3), Lsn(4))
        );
        assert_eq!(cache.stats().misses, before);
        // A read that starts below what is cached reads only what is missing.
        let r = LayerReader::open_cached(&engine, &path, cache.clone()).unwrap();
        assert_eq!(
            r.get(key(5), Lsn(6)).unwrap(),
            model_get(&model, key(5), Lsn(6))
        );
        assert_eq!(
            r.get(key(5), Lsn(10)).unwrap(),
            model_get(&model, key(5), Lsn(10))
        );
    }
}

/// Readers (with and without a block cache, on every engine) of the layer of `model` with the
/// payload of record `damaged` (in model order) flipped; returns them with that record's blob
/// offset. Blobs are back to back in (key, LSN) order: an 8-byte header, then the value.
fn damaged_readers(
    model: &LayerModel,
    damaged: usize,
) -> (Vec<LayerReader>, u64, Vec<tempfile::TempDir>) {
    let offset: u64 = model
        .values()
        .take(damaged)
        .map(|v| 8 + v.encoded_len() as u64)
        .sum();
    let (mut readers, mut dirs) = (Vec::new(), Vec::new());
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&engine, dir.path(), model);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[offset as usize + 20] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        readers.push(LayerReader::open(&engine, &path).unwrap());
        let cache = Arc::new(BlockCache::new(64 << 20));
        readers.push(LayerReader::open_cached(&engine, &path, cache).unwrap());
        dirs.push(dir);
    }
    (readers, offset, dirs)
}

/// A damaged version inside a run is reported at its own offset, as a read of that value
/// alone would report it, with or without a cache.
#[test]
fn a_damaged_version_in_a_run_is_reported_at_its_offset() {
    let model = small_versions();
    let (readers, offset, _dirs) = damaged_readers(&model, 7 * 10 + 6); // key 7, LSN 7
    for r in readers {
        match r.get(key(7), Lsn(10)) {
            Err(layer_format::LayerError::ChecksumMismatch {
                what: "blob",
                offset: at,
                ..
            }) => assert_eq!(at, offset),
            other => panic!("expected a blob checksum error, got {other:?}"),
        }
        // The read still needs the damaged version, and still fails; other keys read.
        assert!(r.get(key(7), Lsn(10)).is_err(), "still damaged");
        assert_eq!(
            r.get(key(8), Lsn(10)).unwrap(),
            model_get(&model, key(8), Lsn(10))
        );
    }
}

/// A damaged version older than the base a read stops at is not needed, so the read succeeds,
/// though the one read of the key's versions covered it; a read that needs it fails at its
/// offset.
#[test]
fn a_damaged_version_below_the_base_is_not_needed() {
    // Ten versions of each key; LSNs 1 and 6 are bases.
    let model: LayerModel = (0..20u128)
        .flat_map(|k| {
            (1..=10u64).map(move |l| ((key(k), Lsn(l)), delta(k, l, l == 1 || l == 6, 100)))
        })
        .collect();
    let (readers, offset, _dirs) = damaged_readers(&model, 4 * 10 + 2); // key 4, LSN 3
    for r in readers {
        assert_eq!(
            r.get(key(4), Lsn(10)).unwrap(),
            model_get(&model, key(4), Lsn(10))
        );
        match r.get(key(4), Lsn(4)) {
            Err(layer_format::LayerError::ChecksumMismatch { offset: at, .. }) => {
                assert_eq!(at, offset)
            }
            other => panic!("expected a blob checksum error, got {other:?}"),
        }
    }
}

/// Index entries whose blob offsets do not rise (a damaged leaf, rewritten with a valid block
/// checksum) never make a point read panic: the one read of a key's versions is skipped and
/// each read answers or fails with an error.
#[test]
fn a_leaf_with_offsets_out_of_order_never_panics_a_read() {
    use layer_format::format::BLOCK_SIZE;
    use layer_format::format::node::{decode_node, encode_node};
    let model = small_versions();
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&engine, dir.path(), &model);
        let good = std::fs::read(&path).unwrap();
        let leaf_at = LayerReader::open(&engine, &path)
            .unwrap()
            .summary()
            .index_start_block as usize
            * BLOCK_SIZE;
        let leaf = decode_node(good[leaf_at..leaf_at + BLOCK_SIZE].try_into().unwrap()).unwrap();
        let n = leaf.entries.len();
        // Each entry in turn gets an offset past its successor's, inside its predecessor's
        // blob, past the blob stream, or 0.
        for (j, bad) in (0..n).flat_map(|j| {
            let next = leaf.entries.get(j + 1).map_or(u64::MAX / 2, |e| e.value);
            let inside = j.checked_sub(1).map_or(1, |p| leaf.entries[p].value + 100);
            [(j, next + 50), (j, inside), (j, 0), (j, u64::MAX / 2)]
        }) {
            let mut entries = leaf.entries.clone();
            entries[j].value = bad;
            let mut bytes = good.clone();
            bytes[leaf_at..leaf_at + BLOCK_SIZE].copy_from_slice(&encode_node(0, &entries)[..]);
            std::fs::write(&path, &bytes).unwrap();
            for cache in [None, Some(Arc::new(BlockCache::new(64 << 20)))] {
                let r = match cache {
                    Some(c) => LayerReader::open_cached(&engine, &path, c).unwrap(),
                    None => LayerReader::open(&engine, &path).unwrap(),
                };
                // The keys of the damaged entry and of the one before it, at every LSN: each
                // read answers or fails with an error; a panic fails the test.
                for e in &entries[j.saturating_sub(1)..=j] {
                    for l in 1..=10 {
                        let _ = r.get(e.key, Lsn(l));
                    }
                }
            }
        }
    }
}
