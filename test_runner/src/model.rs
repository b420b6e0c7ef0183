//! The reference model and the suites' workloads. The model is the one every suite uses,
//! [`pageserver::testing::page_model::Model`]: pages computed from the brief alone, sharing no
//! code with the server's decoding, redo or read path.

use bytes::Bytes;
use layer_format::value::{PAGE_SIZE, Patch, encode_patches};
use layer_format::{Key, Lsn, Value};
use pageserver::timeline::Record;

pub use pageserver::testing::page_model::Model;

/// A deterministic workload of `count` records from `first_lsn` over `keys` keys: page images,
/// `will_init` deltas and deltas. The first record of a key the model does not know yet is
/// made an image, so every chain has a base.
pub fn workload(model: &Model, first_lsn: u64, count: u64, keys: u128, seed: u64) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::new();
    let mut x = (first_lsn ^ seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for i in 0..count {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let lsn = Lsn(first_lsn + i);
        let key = Key::from_u128(u128::from(x) % keys);
        let fresh = model.page(key, lsn).is_none() && !out.iter().any(|r| r.key == key);
        let value = match (fresh, (x >> 20) % 10) {
            (true, _) | (false, 0) => Value::Image(Bytes::from(vec![(x >> 8) as u8; PAGE_SIZE])),
            (false, 1) => Value::Delta {
                will_init: true,
                record: encode_patches(&[Patch {
                    offset: (x % 8000) as u16,
                    bytes: &[(x >> 3) as u8; 100],
                }]),
            },
            _ => Value::Delta {
                will_init: false,
                record: encode_patches(&[Patch {
                    offset: (x % 6000) as u16,
                    bytes: &vec![(x >> 5) as u8; 1500],
                }]),
            },
        };
        out.push(Record { key, lsn, value });
    }
    out
}

/// `n` `will_init` deltas from `first_lsn`, one per LSN, over keys `0..keys` in turn, each
/// setting the page's first byte to `byte`: pages whose value a test knows without a model.
pub fn byte_deltas(first_lsn: u64, n: u64, keys: u64, byte: u8) -> Vec<Record> {
    (0..n)
        .map(|i| Record {
            key: Key::from_u128(u128::from(i % keys)),
            lsn: Lsn(first_lsn + i),
            value: Value::Delta {
                will_init: true,
                record: encode_patches(&[Patch {
                    offset: 0,
                    bytes: &[byte],
                }]),
            },
        })
        .collect()
}
