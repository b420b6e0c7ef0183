//! The body of the reader's fuzz target, shared with the tests that run it on random input.

#![allow(
    clippy::expect_used,
    reason = "a fuzz body's assertions: a panic is what the fuzzer reports"
)]

use crate::io::MemFile;
use crate::{Key, LayerReader, Lsn};
use std::path::Path;

/// Opens `bytes` as a layer file and exercises every read path. Must never panic: every
/// failure has to come back as an error.
pub fn read_arbitrary_layer(bytes: &[u8]) {
    let Ok(reader) =
        LayerReader::from_file(Path::new("fuzz-input"), Box::new(MemFile(bytes.to_vec())))
    else {
        return;
    };
    let _ = reader.verify();
    let range = reader.summary().key_range.clone();
    let mut keys = Vec::new();
    for item in reader.iter(range.clone()).take(1000) {
        match item {
            Ok((key, _, _)) => keys.push(key),
            Err(_) => break,
        }
    }
    keys.extend([
        range.start,
        Key::MIN,
        Key::from_u128(range.start.to_u128().saturating_add(1)),
    ]);
    for key in keys.into_iter().take(64) {
        let _ = reader.get(key, Lsn::MAX);
        let _ = reader.get(key, Lsn(reader.summary().lsn_range.start.0));
    }
}
