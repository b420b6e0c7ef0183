//! The reference model: every record ingested with its LSN, from which the page of any key at
//! any LSN is computed independently of the server.

use bytes::Bytes;
use layer_format::value::{PAGE_SIZE, Patch, encode_patches};
use layer_format::{Key, Lsn, Value};
use pageserver::timeline::Record;
use std::collections::BTreeMap;

/// Every record ingested.
#[derive(Debug, Default, Clone)]
pub struct Model {
    records: BTreeMap<(Key, Lsn), Value>,
}

impl Model {
    /// Adds records.
    pub fn add(&mut self, records: &[Record]) {
        for r in records {
            self.records.insert((r.key, r.lsn), r.value.clone());
        }
    }

    /// Forgets every record above `lsn` (what a crash lost before it was acknowledged).
    pub fn truncate_above(&mut self, lsn: Lsn) {
        self.records.retain(|(_, l), _| *l <= lsn);
    }

    /// The page of `key` at `lsn`, or `None` if the key has no record at or below it.
    pub fn page(&self, key: Key, lsn: Lsn) -> Option<Bytes> {
        let mut values = Vec::new();
        for ((_, l), v) in self.records.range((key, Lsn(0))..=(key, lsn)).rev() {
            values.push((*l, v.clone()));
            if v.is_base() {
                break;
            }
        }
        if values.is_empty() {
            return None;
        }
        Some(
            layer_format::redo::reconstruct(key, lsn, &values)
                .expect("model chains start with a base"),
        )
    }

    /// Records above `lsn`, in LSN order (what a storage node resends after a crash).
    pub fn records_above(&self, lsn: Lsn) -> Vec<Record> {
        let mut v: Vec<Record> = self
            .records
            .iter()
            .filter(|((_, l), _)| *l > lsn)
            .map(|((k, l), v)| Record {
                key: *k,
                lsn: *l,
                value: v.clone(),
            })
            .collect();
        v.sort_by_key(|r| (r.lsn, r.key));
        v
    }
}

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
