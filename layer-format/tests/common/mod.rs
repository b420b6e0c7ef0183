//! Helpers shared by the integration tests: both engines, a record model, value builders.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use bytes::Bytes;
use layer_format::io::{EngineChoice, IoEngine, open_engine};
use layer_format::name::Generation;
use layer_format::value::{PAGE_SIZE, Patch, encode_patches};
use layer_format::{DeltaLayerWriter, Key, Lsn, Value};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

/// Both engines: every behaviour is tested on each.
pub fn engines() -> Vec<Arc<dyn IoEngine>> {
    vec![
        open_engine(EngineChoice::Std).unwrap(),
        open_engine(EngineChoice::Uring).expect("io_uring must be available on this machine"),
    ]
}

pub fn key(i: u128) -> Key {
    Key::from_u128(i)
}

/// A delta value whose bytes identify `(key, lsn)`.
pub fn delta(k: u128, lsn: u64, will_init: bool, len: usize) -> Value {
    let mut bytes = vec![0u8; len.clamp(1, PAGE_SIZE)];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = (k as u64 ^ lsn ^ i as u64) as u8;
    }
    let offset = ((k as usize * 7 + lsn as usize) % (PAGE_SIZE - bytes.len() + 1)) as u16;
    Value::Delta {
        will_init,
        record: encode_patches(&[Patch {
            offset,
            bytes: &bytes,
        }]),
    }
}

/// A page image whose bytes identify `(key, lsn)`.
pub fn image(k: u128, lsn: u64) -> Bytes {
    let mut page = vec![0u8; PAGE_SIZE];
    for (i, b) in page.iter_mut().enumerate() {
        *b = (k as u64)
            .wrapping_mul(31)
            .wrapping_add(lsn)
            .wrapping_add(i as u64 / 64) as u8;
    }
    Bytes::from(page)
}

/// Reference model of a delta layer's contents.
pub type Model = BTreeMap<(Key, Lsn), Value>;

/// What `get(key, lsn)` must return according to the model.
pub fn model_get(model: &Model, k: Key, lsn: Lsn) -> Vec<(Lsn, Value)> {
    let mut out = Vec::new();
    for ((_, l), v) in model.range((k, Lsn(0))..=(k, lsn)).rev() {
        out.push((*l, v.clone()));
        if v.is_base() {
            break;
        }
    }
    out
}

/// A delta layer writer of generation 1 in `dir`, over keys `keys` and LSNs `lsns`.
pub fn delta_writer(
    engine: &Arc<dyn IoEngine>,
    dir: &Path,
    keys: Range<u128>,
    lsns: Range<u64>,
) -> DeltaLayerWriter {
    DeltaLayerWriter::new(
        engine,
        dir,
        Generation(1),
        key(keys.start)..key(keys.end),
        Lsn(lsns.start)..Lsn(lsns.end),
    )
    .unwrap()
}
