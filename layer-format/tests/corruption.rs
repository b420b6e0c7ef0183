//! A corrupt, truncated or foreign file gives a typed error naming the path and offset: never a
//! panic, never wrong data.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use layer_format::format::BLOCK_SIZE;
use layer_format::fuzzing::read_arbitrary_layer;
use layer_format::io::MemFile;
use layer_format::{Key, LayerError, LayerReader, Lsn, Value};
use proptest::prelude::*;
use std::path::Path;
use test_support::layer::*;
use test_support::values::*;

/// A small delta layer (a few blocks, values crossing block boundaries) and its model.
fn sample() -> (Vec<u8>, LayerModel) {
    let engine = engines().remove(0);
    let dir = tempfile::tempdir().unwrap();
    let mut w = delta_writer(&engine, dir.path(), 0..30, 1..50);
    let mut model = LayerModel::new();
    for k in 0..30u128 {
        for l in [1u64, 7, 20] {
            let v = if l == 1 && k % 10 == 0 {
                Value::Image(image(k, l))
            } else {
                delta(k, l, l == 1, 40)
            };
            w.put(key(k), Lsn(l), &v).unwrap();
            model.insert((key(k), Lsn(l)), v);
        }
    }
    let info = w.finish().unwrap();
    (std::fs::read(&info.path).unwrap(), model)
}

fn open(bytes: Vec<u8>) -> Result<LayerReader, LayerError> {
    LayerReader::from_file(Path::new("mangled"), Box::new(MemFile(bytes)))
}

/// Every read either fails or returns exactly what was written.
fn reads_are_right_or_errors(r: &LayerReader, model: &LayerModel) {
    for k in 0..31u128 {
        for l in [0u64, 1, 8, 49] {
            if let Ok(got) = r.get(key(k), Lsn(l)) {
                assert_eq!(
                    got,
                    model_get(model, key(k), Lsn(l)),
                    "wrong data for ({k}, {l})"
                );
            }
        }
    }
    let mut want = model.iter();
    for item in r.iter(Key::MIN..Key::MAX) {
        let Ok((k, l, v)) = item else { break };
        let ((wk, wl), wv) = want.next().expect("no extra records");
        assert_eq!((k, l, &v), (*wk, *wl, wv));
    }
}

#[test]
fn every_flipped_byte_is_caught_by_verify() {
    let (bytes, model) = sample();
    assert!(bytes.len() >= 4 * BLOCK_SIZE, "sample spans several blocks");
    for at in 0..bytes.len() {
        let mut b = bytes.clone();
        b[at] ^= 0x20;
        let Ok(r) = open(b) else { continue };
        let err = r
            .verify()
            .expect_err(&format!("flip at {at} passed verify"));
        assert!(err.is_corruption(), "flip at {at}: {err}");
        if at % 61 == 0 {
            reads_are_right_or_errors(&r, &model);
        }
    }
}

#[test]
fn truncation_at_every_block_boundary_is_refused() {
    let (bytes, _) = sample();
    let blocks = bytes.len() / BLOCK_SIZE;
    for cut in (0..blocks)
        .map(|b| b * BLOCK_SIZE)
        .chain([1, BLOCK_SIZE + 17, bytes.len() - 1])
    {
        let err = open(bytes[..cut].to_vec()).expect_err(&format!("truncated at {cut} opened"));
        assert!(err.is_corruption(), "cut at {cut}: {err}");
        assert!(
            err.to_string().contains("mangled"),
            "error names the file: {err}"
        );
    }
    // On a real file too, through both engines.
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("layer");
        std::fs::write(&path, &bytes[..bytes.len() - BLOCK_SIZE]).unwrap();
        let err = LayerReader::open(&engine, &path).unwrap_err();
        assert!(
            matches!(err, LayerError::BadMagic { offset, .. } if offset as usize == bytes.len() - 2 * BLOCK_SIZE),
            "{err}"
        );
    }
}

#[test]
fn foreign_files_are_refused() {
    assert!(matches!(
        open(Vec::new()),
        Err(LayerError::SizeMismatch { actual: 0, .. })
    ));
    assert!(matches!(
        open(vec![b'x'; 3 * BLOCK_SIZE]),
        Err(LayerError::BadMagic { .. })
    ));
    // A layer with a block of garbage appended: the summary is no longer last.
    let (mut bytes, _) = sample();
    bytes.extend_from_slice(&[0u8; BLOCK_SIZE]);
    assert!(matches!(open(bytes), Err(LayerError::BadMagic { .. })));
    // A layer with a block missing from the middle but the summary intact.
    let (bytes, _) = sample();
    let mut cut = bytes[..BLOCK_SIZE].to_vec();
    cut.extend_from_slice(&bytes[2 * BLOCK_SIZE..]);
    assert!(matches!(open(cut), Err(LayerError::SizeMismatch { .. })));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The body of the fuzz target never panics, on mutated layers or on noise.
    #[test]
    fn reader_never_panics_on_mutations(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let (mut bytes, _) = SAMPLE.with(|s| s.clone());
        for (at, x) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= x | 1;
        }
        read_arbitrary_layer(&bytes);
    }

    #[test]
    fn reader_never_panics_on_noise(mut bytes in proptest::collection::vec(any::<u8>(), 0..3 * BLOCK_SIZE), magic: bool) {
        if magic && bytes.len() >= BLOCK_SIZE {
            let at = bytes.len() - BLOCK_SIZE;
            bytes[at..at + 8].copy_from_slice(&layer_format::format::summary::MAGIC);
        }
        read_arbitrary_layer(&bytes);
    }
}

thread_local! {
    static SAMPLE: (Vec<u8>, LayerModel) = sample();
}
