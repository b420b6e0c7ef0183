//! The suites' record streams. Every stream is a function of its arguments (a seed among
//! them), so a printed seed replays it.

use crate::model::Model;
use crate::values::{image, patch};
use bytes::Bytes;
use layer_format::value::PAGE_SIZE;
use layer_format::{Key, Lsn, Record, Value};

/// The bytes of the deltas of [`workload`].
pub const DELTA_BYTES: usize = 1500;
/// Small deltas: many records per layer.
pub const SMALL_DELTA_BYTES: usize = 40;
/// Large deltas: layers fill after few records.
pub const LARGE_DELTA_BYTES: usize = 2000;

/// `count` records from `first_lsn`, one per LSN, over keys `0..keys`: a page image one time
/// in ten, a `will_init` delta of 100 bytes one time in ten, else a delta of `delta_bytes` bytes
/// on top of the page. A key's first record may not be a base: see [`with_bases`].
pub fn records(
    first_lsn: u64,
    count: u64,
    keys: u128,
    delta_bytes: usize,
    seed: u64,
) -> Vec<Record> {
    assert!(
        keys > 0 && delta_bytes <= LARGE_DELTA_BYTES,
        "keys {keys}, delta_bytes {delta_bytes}"
    );
    let mut x = (first_lsn ^ seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..count)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let value = match (x >> 20) % 10 {
                0 => Value::Image(Bytes::from(vec![(x >> 8) as u8; PAGE_SIZE])),
                1 => patch((x % 8000) as u16, &[(x >> 3) as u8; 100], true),
                _ => patch((x % 6000) as u16, &vec![(x >> 5) as u8; delta_bytes], false),
            };
            Record {
                key: Key::from_u128(u128::from(x) % keys),
                lsn: Lsn(first_lsn + i),
                value,
            }
        })
        .collect()
}

/// `records` with every chain given a base: the first record of each key that `model` does
/// not know yet, unless it is a base already (an image or a `will_init` delta), becomes a page
/// image that identifies its key and LSN.
pub fn with_bases(records: Vec<Record>, model: &Model) -> Vec<Record> {
    let mut seen = std::collections::HashSet::new();
    records
        .into_iter()
        .map(|mut r| {
            if seen.insert(r.key) && model.page(r.key, r.lsn).is_none() && !r.value.is_base() {
                r.value = Value::Image(image(u128::from_be_bytes(r.key.0), r.lsn.0));
            }
            r
        })
        .collect()
}

/// The suites' workload: [`records`] with deltas of [`DELTA_BYTES`] bytes, every chain starting
/// with a base.
pub fn workload(model: &Model, first_lsn: u64, count: u64, keys: u128, seed: u64) -> Vec<Record> {
    with_bases(records(first_lsn, count, keys, DELTA_BYTES, seed), model)
}

/// `n` `will_init` deltas from `first_lsn`, one per LSN, over keys `0..keys` in turn, each
/// setting the page's first byte to `byte`: pages whose value a test knows without a model.
pub fn byte_deltas(first_lsn: u64, n: u64, keys: u64, byte: u8) -> Vec<Record> {
    (0..n)
        .map(|i| Record {
            key: Key::from_u128(u128::from(i % keys)),
            lsn: Lsn(first_lsn + i),
            value: patch(0, &[byte], true),
        })
        .collect()
}
