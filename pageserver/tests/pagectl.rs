//! `pagectl` as an operator runs it: output, exit codes (0 valid, 1 invalid, 2 unreadable).
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn pagectl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pagectl"))
        .args(args)
        .output()
        .unwrap();
    let s = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (out.status.code().unwrap(), s(out.stdout), s(out.stderr))
}

/// Copies an index fixture into a temp dir under `name`.
fn index_as(dir: &Path, fixture: &str, name: &str) -> String {
    let to = dir.join(name);
    std::fs::copy(repo(&format!("index-part/tests/fixtures/{fixture}")), &to).unwrap();
    to.to_str().unwrap().to_string()
}

#[test]
fn index_part_validate_and_show() {
    let dir = tempfile::tempdir().unwrap();
    let good = index_as(dir.path(), "v2.json", "index_part.json-00000007-00000001");
    let (code, out, _) = pagectl(&["index-part", "validate", &good]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("ok: ") && out.contains("2 layers, generation 7"),
        "{out}"
    );

    // The same bytes under another generation's name are refused.
    let misnamed = index_as(dir.path(), "v2.json", "index_part.json-00000008-00000001");
    let (code, _, err) = pagectl(&["index-part", "validate", &misnamed]);
    assert_eq!(code, 1);
    assert!(
        err.contains("holds an index of generation 00000007"),
        "{err}"
    );

    let v1 = index_as(dir.path(), "v1.json", "v1.json");
    let (code, out, _) = pagectl(&["index-part", "show", &v1]);
    assert_eq!(code, 0);
    assert!(
        out.contains("layers         3 (2 delta: 2 L0, 0 L1; 1 image), 122880 bytes"),
        "{out}"
    );
    assert!(out.contains("layer LSNs     0/1 .. 0/1A1"), "{out}");
    assert!(out.contains("generations    2 .. 3"), "{out}");

    // Version 3 records the levels: an L1 layer over the whole key space is L1.
    let v3 = index_as(dir.path(), "v3.json", "v3.json");
    let (code, out, _) = pagectl(&["index-part", "show", &v3]);
    assert_eq!(code, 0);
    assert!(
        out.contains("layers         5 (4 delta: 1 L0, 3 L1; 1 image), 737280 bytes"),
        "{out}"
    );
}

#[test]
fn index_part_validate_rejects_and_explains() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.json");
    let text = std::fs::read_to_string(repo("index-part/tests/fixtures/v2.json")).unwrap();
    std::fs::write(
        &path,
        text.replace("\"deleted_at\"", "\"surprise\": 1, \"deleted_at\""),
    )
    .unwrap();
    let (code, _, err) = pagectl(&["index-part", "validate", path.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown field `surprise`"), "{err}");
    // `show` is lenient about unknown fields.
    assert_eq!(
        pagectl(&["index-part", "show", path.to_str().unwrap()]).0,
        0
    );

    let (code, _, err) = pagectl(&["index-part", "validate", "/nonexistent/index_part.json"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn layer_show_and_verify() {
    let delta = repo("layer-format/tests/fixtures/v1/delta.layer");
    let (code, out, _) = pagectl(&["layer", "show", delta.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        out.contains("kind       delta") && out.contains("records    72"),
        "{out}"
    );
    let (code, out, _) = pagectl(&["layer", "verify", delta.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    // The checksum it prints is the file's CRC32C, computed here from the bytes.
    let checksum = crc32c::crc32c(&std::fs::read(&delta).unwrap());
    let printed: u32 = out.trim().rsplit(' ').next().unwrap().parse().unwrap();
    assert_eq!(printed, checksum, "{out}");
    assert_eq!(
        pagectl(&[
            "layer",
            "verify",
            delta.to_str().unwrap(),
            "--checksum",
            &checksum.to_string()
        ])
        .0,
        0
    );
    let (code, _, err) = pagectl(&[
        "layer",
        "verify",
        delta.to_str().unwrap(),
        "--checksum",
        &(checksum ^ 1).to_string(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("file checksum mismatch"), "{err}");

    let corrupt = repo("layer-format/tests/fixtures/v1/delta-corrupt.layer");
    let (code, _, err) = pagectl(&["layer", "verify", corrupt.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("blob checksum mismatch"), "{err}");
    assert_eq!(pagectl(&["layer", "verify", "/nonexistent/layer"]).0, 2);
}

/// `layer dump` prints every record once, in order, with its kind and size; `--key` and
/// `--lsn` select; a corrupt file ends with exit 1 and the error. Records drawn per seed
/// (`DUMP_SEED` replays).
#[test]
fn layer_dump_lists_records() {
    use bytes::Bytes;
    use layer_format::value::{PAGE_SIZE, Patch, encode_patches};
    use layer_format::{DeltaLayerWriter, Generation, Key, Lsn, Value};
    let seed = test_support::seed("DUMP_SEED");
    let mut rng = test_support::Rng::new(seed);
    let (keys, versions) = (rng.next() % 50 + 1, rng.next() % 6 + 1);
    eprintln!("seed {seed}: {keys} keys, {versions} versions each");
    let dir = tempfile::tempdir().unwrap();
    let engine = layer_format::io::open_engine(layer_format::io::EngineChoice::Std).unwrap();
    let mut w = DeltaLayerWriter::new(
        &engine,
        dir.path(),
        Generation(1),
        Key::MIN..Key::MAX,
        Lsn(1)..Lsn(versions + 1),
    )
    .unwrap();
    let mut expected = Vec::new();
    for k in 0..keys {
        for l in 1..=versions {
            let (key, lsn) = (Key::from_u128(u128::from(k * 7)), Lsn(l));
            let value = if rng.below(3) == 0 {
                Value::Image(Bytes::from(vec![l as u8; PAGE_SIZE]))
            } else {
                let len = (rng.next() % 200 + 1) as usize;
                Value::Delta {
                    will_init: l == 1,
                    record: encode_patches(&[Patch {
                        offset: (rng.next() % 4000) as u16,
                        bytes: &vec![7u8; len],
                    }]),
                }
            };
            w.put(key, lsn, &value).unwrap();
            let kind = match &value {
                Value::Image(_) => format!("{key} {lsn} image {PAGE_SIZE} bytes"),
                Value::Delta { will_init, record } => format!(
                    "{key} {lsn} delta{} {} bytes",
                    if *will_init { " will_init" } else { "" },
                    record.len()
                ),
            };
            expected.push((key, lsn, kind));
        }
    }
    let path = w.finish().unwrap().path;
    let file = path.to_str().unwrap();
    let dump = |extra: &[&str]| {
        let mut args = vec!["layer", "dump", file];
        args.extend_from_slice(extra);
        let (code, out, err) = pagectl(&args);
        assert_eq!(code, 0, "{err}");
        out.lines().map(str::to_string).collect::<Vec<_>>()
    };
    let check = |lines: Vec<String>, want: Vec<&(Key, Lsn, String)>| {
        assert_eq!(lines.len(), want.len(), "{lines:?}");
        for (line, (_, _, prefix)) in lines.iter().zip(want) {
            assert!(
                line.starts_with(prefix.as_str()),
                "{line} is not {prefix}..."
            );
        }
    };
    check(dump(&[]), expected.iter().collect());
    let key = Key::from_u128(u128::from((rng.next() % keys) * 7));
    let lsn = Lsn(rng.next() % versions + 1);
    check(
        dump(&["--key", &key.to_string()]),
        expected.iter().filter(|(k, _, _)| *k == key).collect(),
    );
    check(
        dump(&["--key", &key.to_string(), "--lsn", &lsn.to_string()]),
        expected
            .iter()
            .filter(|(k, l, _)| *k == key && *l <= lsn)
            .collect(),
    );
    assert_eq!(pagectl(&["layer", "dump", file, "--key", "xyz"]).0, 2);

    let corrupt = repo("layer-format/tests/fixtures/v1/delta-corrupt.layer");
    let (code, _, err) = pagectl(&["layer", "dump", corrupt.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("blob checksum mismatch"), "{err}");
}
