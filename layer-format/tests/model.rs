//! Property tests against a `BTreeMap` model: whatever records a writer is given, `get` and
//! ordered iteration return exactly what the model says, on both I/O engines.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use layer_format::format::node::NODE_CAPACITY;
use layer_format::name::Generation;
use layer_format::{DeltaLayerWriter, ImageLayerWriter, Key, LayerReader, Lsn, Value, redo};
use proptest::prelude::*;
use std::collections::BTreeMap;
use test_support::layer::*;
use test_support::values::*;

#[derive(Debug, Clone)]
struct Rec {
    key: u128,
    lsn: u64,
    kind: u8,
    len: usize,
}

fn records() -> impl Strategy<Value = Vec<Rec>> {
    let rec = (
        0u128..40,
        1u64..300,
        0u8..10,
        prop_oneof![1usize..200, 7000usize..8192],
    )
        .prop_map(|(key, lsn, kind, len)| Rec {
            key,
            lsn,
            kind,
            len,
        });
    proptest::collection::vec(rec, 0..1500)
}

fn value_of(r: &Rec) -> Value {
    match r.kind {
        0 => Value::Image(image(r.key, r.lsn)),
        1 => delta(r.key, r.lsn, true, r.len),
        _ => delta(r.key, r.lsn, false, r.len),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn delta_layer_matches_model(recs in records(), queries in proptest::collection::vec((0u128..42, 0u64..310), 40)) {
        let model: LayerModel = recs.iter().map(|r| ((key(r.key), Lsn(r.lsn)), value_of(r))).collect();
        for engine in engines() {
            let dir = tempfile::tempdir().unwrap();
            let mut w = DeltaLayerWriter::new(&engine, dir.path(), Generation(3), key(0)..key(40), Lsn(1)..Lsn(300)).unwrap();
            for ((k, l), v) in &model {
                w.put(*k, *l, v).unwrap();
            }
            let info = w.finish().unwrap();
            prop_assert_eq!(info.record_count, model.len() as u64);
            prop_assert_eq!(std::fs::metadata(&info.path).unwrap().len(), info.size_bytes);
            let r = LayerReader::open(&engine, &info.path).unwrap();
            prop_assert_eq!(r.verify().unwrap().checksum, info.checksum);
            for (k, l) in &queries {
                let (k, l) = (key(*k), Lsn(*l));
                let got = r.get(k, l).unwrap();
                prop_assert_eq!(&got, &model_get(&model, k, l));
                // A complete chain rebuilds the same page as the model's chain.
                if got.last().is_some_and(|(_, v)| v.is_base()) {
                    prop_assert_eq!(redo::reconstruct(k, l, &got), redo::reconstruct(k, l, &model_get(&model, k, l)));
                }
            }
            let (a, b) = (key(queries[0].0.min(queries[1].0)), key(queries[0].0.max(queries[1].0)));
            let got: Vec<_> = r.iter(a..b).map(Result::unwrap).collect();
            let want: Vec<_> = model.range((a, Lsn(0))..(b, Lsn(0))).map(|((k, l), v)| (*k, *l, v.clone())).collect();
            prop_assert_eq!(got, want);
            let all: Vec<_> = r.iter(Key::MIN..Key::MAX).map(Result::unwrap).collect();
            prop_assert_eq!(all.len(), model.len());
        }
    }

    #[test]
    fn image_layer_matches_model(keys in proptest::collection::btree_set(0u128..5000, 0..600), lsn in 10u64..20) {
        for engine in engines() {
            let dir = tempfile::tempdir().unwrap();
            let mut w = ImageLayerWriter::new(&engine, dir.path(), Generation(1), key(0)..key(5000), Lsn(lsn)).unwrap();
            for k in &keys {
                w.put(key(*k), image(*k, lsn)).unwrap();
            }
            let info = w.finish().unwrap();
            let r = LayerReader::open(&engine, &info.path).unwrap();
            prop_assert_eq!(r.verify().unwrap().record_count, keys.len() as u64);
            for k in [0u128, 1, 77, 2500, 4999] {
                let present = keys.contains(&k);
                let want = if present { vec![(Lsn(lsn), Value::Image(image(k, lsn)))] } else { vec![] };
                prop_assert_eq!(r.get(key(k), Lsn(lsn + 5)).unwrap(), want);
                prop_assert_eq!(r.get(key(k), Lsn(lsn - 1)).unwrap(), vec![]);
            }
            let got: Vec<u128> = r.iter(Key::MIN..Key::MAX).map(|x| x.unwrap().0.to_u128()).collect();
            prop_assert_eq!(got, keys.iter().copied().collect::<Vec<_>>());
        }
    }
}

/// Enough records for a three-level index; point reads walk version chains across leaves.
#[test]
fn three_level_index() {
    let n_keys = 300u128;
    let versions = (NODE_CAPACITY * NODE_CAPACITY) as u64 / n_keys as u64 + 20;
    let engine = engines().remove(0);
    let dir = tempfile::tempdir().unwrap();
    let mut w = delta_writer(&engine, dir.path(), 0..n_keys, 1..versions + 1);
    let mut model = BTreeMap::new();
    for k in 0..n_keys {
        for l in 1..=versions {
            let v = delta(k, l, l == 1, 4);
            w.put(key(k), Lsn(l), &v).unwrap();
            model.insert((key(k), Lsn(l)), v);
        }
    }
    let info = w.finish().unwrap();
    let r = LayerReader::open(&engine, &info.path).unwrap();
    assert_eq!(r.summary().index_height, 3);
    let report = r.verify().unwrap();
    assert_eq!(report.record_count, n_keys as u64 * versions);
    for (k, l) in [
        (0, versions),
        (150, versions / 2),
        (299, 1),
        (299, versions),
        (7, 3),
    ] {
        let got = r.get(key(k), Lsn(l)).unwrap();
        assert_eq!(got, model_get(&model, key(k), Lsn(l)));
        assert_eq!(
            got.len() as u64,
            l,
            "the whole chain down to the will_init record"
        );
    }
    let n = r.iter(key(100)..key(102)).map(Result::unwrap).count() as u64;
    assert_eq!(n, 2 * versions);
}

#[test]
fn empty_layer_is_valid_and_empty() {
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let w = delta_writer(&engine, dir.path(), 0..9, 1..2);
        let info = w.finish().unwrap();
        let r = LayerReader::open(&engine, &info.path).unwrap();
        assert_eq!(r.verify().unwrap().record_count, 0);
        assert_eq!(r.get(key(1), Lsn(1)).unwrap(), vec![]);
        assert_eq!(r.iter(Key::MIN..Key::MAX).count(), 0);
    }
}

#[test]
fn finish_with_key_end_names_the_narrowed_range() {
    let engine = engines().remove(0);
    let dir = tempfile::tempdir().unwrap();
    let mut w = DeltaLayerWriter::new(
        &engine,
        dir.path(),
        Generation(9),
        Key::MIN..Key::MAX,
        Lsn(1)..Lsn(10),
    )
    .unwrap();
    w.put(key(5), Lsn(2), &delta(5, 2, true, 10)).unwrap();
    let info = w
        .finish_unpublished(Some(key(6)))
        .unwrap()
        .publish()
        .unwrap();
    assert_eq!(info.file_name.layer.key_range(), &(key(5 - 5)..key(6)));
    assert_eq!(
        info.path.file_name().unwrap().to_str().unwrap(),
        info.file_name.to_string()
    );
    let r = LayerReader::open(&engine, &info.path).unwrap();
    assert_eq!(r.summary().key_range, Key::MIN..key(6));
}

#[test]
#[should_panic(expected = "is not after")]
fn out_of_order_put_is_a_programmer_error() {
    let engine = engines().remove(0);
    let dir = tempfile::tempdir().unwrap();
    let mut w = delta_writer(&engine, dir.path(), 0..9, 1..9);
    w.put(key(2), Lsn(3), &delta(2, 3, true, 5)).unwrap();
    let _ = w.put(key(2), Lsn(2), &delta(2, 2, true, 5));
}

#[test]
#[should_panic(expected = "outside")]
fn lsn_outside_declared_range_is_a_programmer_error() {
    let engine = engines().remove(0);
    let dir = tempfile::tempdir().unwrap();
    let mut w = delta_writer(&engine, dir.path(), 0..9, 1..9);
    let _ = w.put(key(2), Lsn(9), &delta(2, 9, true, 5));
}
