//! Committed layer files of every released format version must keep reading back, and a
//! deliberately corrupted one must keep failing with the right error.
//!
//! `tests/fixtures/v1/` holds a delta layer, an image layer and a copy of the delta layer with
//! one byte of one blob flipped. Regenerate them (only when adding a new version's fixtures)
//! with `LAYER_FORMAT_WRITE_FIXTURES=1 cargo test -p layer-format --test fixtures -- --test-threads=1`.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use layer_format::format::FORMAT_VERSION;
use layer_format::format::blob::BLOB_HEADER_SIZE;
use layer_format::io::IoEngine;
use layer_format::name::Generation;
use layer_format::{ImageLayerWriter, Key, LayerError, LayerInfo, LayerReader, Lsn, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use test_support::layer::*;
use test_support::values::*;

/// Index of the record whose blob the corrupt fixture damages.
const DAMAGED_RECORD: usize = 5;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1")
}

fn delta_records() -> Vec<(Key, Lsn, Value)> {
    let mut out = Vec::new();
    for k in 0..24u128 {
        for (i, l) in [0x10u64, 0x18, 0x30].into_iter().enumerate() {
            let v = match (k % 6, i) {
                (0, 0) => Value::Image(image(k, l)),
                (_, 0) => delta(k, l, true, 24 + k as usize),
                _ => delta(k, l, false, 8 + i),
            };
            out.push((key(k * 3), Lsn(l), v));
        }
    }
    out
}

fn image_records() -> Vec<(Key, bytes::Bytes)> {
    (0..5u128).map(|k| (key(k * 100), image(k, 0x40))).collect()
}

fn write_delta(engine: &Arc<dyn IoEngine>, dir: &Path) -> LayerInfo {
    let mut w = delta_writer(engine, dir, 0..100, 0x10..0x31);
    for (k, l, v) in delta_records() {
        w.put(k, l, &v).unwrap();
    }
    w.finish().unwrap()
}

fn write_image(engine: &Arc<dyn IoEngine>, dir: &Path) -> LayerInfo {
    let mut w =
        ImageLayerWriter::new(engine, dir, Generation(1), key(0)..key(1000), Lsn(0x40)).unwrap();
    for (k, img) in image_records() {
        w.put(k, img).unwrap();
    }
    w.finish().unwrap()
}

/// Offset of the blob of record `i` of [`delta_records`]: blobs are packed from offset 0.
fn blob_offset(i: usize) -> u64 {
    delta_records()[..i]
        .iter()
        .map(|(_, _, v)| (BLOB_HEADER_SIZE + v.encoded_len()) as u64)
        .sum()
}

fn regenerate() {
    let engine = engines().remove(0);
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixture_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let delta = std::fs::read(write_delta(&engine, tmp.path()).path).unwrap();
    std::fs::write(dir.join("delta.layer"), &delta).unwrap();
    let image = std::fs::read(write_image(&engine, tmp.path()).path).unwrap();
    std::fs::write(dir.join("image.layer"), &image).unwrap();
    let mut corrupt = delta;
    corrupt[blob_offset(DAMAGED_RECORD) as usize + BLOB_HEADER_SIZE + 3] ^= 0x40;
    std::fs::write(dir.join("delta-corrupt.layer"), &corrupt).unwrap();
}

fn open(name: &str) -> LayerReader {
    let engine = engines().remove(0);
    LayerReader::open(&engine, &fixture_dir().join(name)).unwrap()
}

#[test]
fn v1_delta_fixture_reads_back() {
    if std::env::var_os("LAYER_FORMAT_WRITE_FIXTURES").is_some() {
        regenerate();
    }
    let r = open("delta.layer");
    let records = delta_records();
    assert_eq!(r.verify().unwrap().record_count, records.len() as u64);
    let got: Vec<_> = r.iter(Key::MIN..Key::MAX).map(Result::unwrap).collect();
    assert_eq!(got, records);
    let model: LayerModel = records.into_iter().map(|(k, l, v)| ((k, l), v)).collect();
    for k in [0u128, 3, 6, 7, 69] {
        for l in [0x0f, 0x10, 0x20, 0x30, 0x99] {
            assert_eq!(
                r.get(key(k), Lsn(l)).unwrap(),
                model_get(&model, key(k), Lsn(l))
            );
        }
    }
}

#[test]
fn v1_image_fixture_reads_back() {
    let r = open("image.layer");
    r.verify().unwrap();
    let got: Vec<_> = r.iter(Key::MIN..Key::MAX).map(Result::unwrap).collect();
    let want: Vec<_> = image_records()
        .into_iter()
        .map(|(k, img)| (k, Lsn(0x40), Value::Image(img)))
        .collect();
    assert_eq!(got, want);
    assert_eq!(r.get(key(200), Lsn(0x3f)).unwrap(), vec![]);
}

/// While this build writes version 1, its writer reproduces the fixtures byte for byte: the
/// format has not drifted. A new version adds new fixtures and keeps reading these.
#[test]
fn current_writer_reproduces_v1_byte_for_byte() {
    if FORMAT_VERSION != 1 {
        return;
    }
    let engine = engines().remove(0);
    let tmp = tempfile::tempdir().unwrap();
    let delta = write_delta(&engine, tmp.path());
    assert_eq!(
        std::fs::read(&delta.path).unwrap(),
        std::fs::read(fixture_dir().join("delta.layer")).unwrap()
    );
    let image = write_image(&engine, tmp.path());
    assert_eq!(
        std::fs::read(&image.path).unwrap(),
        std::fs::read(fixture_dir().join("image.layer")).unwrap()
    );
}

#[test]
fn v1_corrupt_fixture_fails_with_a_blob_checksum_error() {
    let r = open("delta-corrupt.layer");
    let expected_offset = blob_offset(DAMAGED_RECORD);
    match r.verify() {
        Err(LayerError::ChecksumMismatch {
            what: "blob",
            offset,
            path,
            ..
        }) => {
            assert_eq!(offset, expected_offset);
            assert!(path.ends_with("delta-corrupt.layer"));
        }
        other => panic!("expected a blob checksum error, got {other:?}"),
    }
    let (k, l, _) = delta_records()[DAMAGED_RECORD];
    assert!(matches!(
        r.get(k, l),
        Err(LayerError::ChecksumMismatch { what: "blob", .. })
    ));
    // Records elsewhere in the file still read correctly.
    let (k0, l0, v0) = delta_records()[0].clone();
    assert_eq!(r.get(k0, l0).unwrap(), vec![(l0, v0)]);
}
