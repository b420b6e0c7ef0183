//! Values whose bytes identify their key and LSN, so that a read that returns the wrong
//! record, or the right record with the wrong bytes, cannot pass for a right one.

use bytes::Bytes;
use layer_format::value::{PAGE_SIZE, Patch, encode_patches};
use layer_format::{Key, Value};

/// Key number `i`.
pub fn key(i: u128) -> Key {
    Key::from_u128(i)
}

/// A delta value of one patch of `len` bytes (clamped to `1..=PAGE_SIZE`), whose bytes and
/// offset identify `(key, lsn)`.
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

/// A delta that sets `bytes` at `offset`, on top of the page beneath, or (with `will_init`)
/// on a zeroed page.
pub fn patch(offset: u16, bytes: &[u8], will_init: bool) -> Value {
    Value::Delta {
        will_init,
        record: encode_patches(&[Patch { offset, bytes }]),
    }
}
