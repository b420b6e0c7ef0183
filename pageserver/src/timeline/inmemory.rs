//! The in-memory layer: records not yet in a layer file.
//!
//! The open layer takes every ingested record; at `checkpoint_distance` (or on `checkpoint`)
//! it is frozen, becomes immutable, and a flush writes it to an L0 delta layer covering
//! `[start_lsn, end_lsn)`. Reads consult the open layer and the frozen ones before any file.

use layer_format::{Key, Lsn, Value};
use std::collections::BTreeMap;

/// Records of one LSN range, sorted by key then LSN.
#[derive(Debug)]
pub struct InMemoryLayer {
    /// First LSN this layer may hold.
    pub start_lsn: Lsn,
    records: BTreeMap<(Key, Lsn), Value>,
    size_bytes: u64,
    last_lsn: Option<Lsn>,
}

/// Bytes a record costs in memory beyond its value: key, LSN and map overhead.
const RECORD_OVERHEAD: u64 = 64;

impl InMemoryLayer {
    /// An empty layer starting at `start_lsn`.
    pub fn new(start_lsn: Lsn) -> InMemoryLayer {
        InMemoryLayer {
            start_lsn,
            records: BTreeMap::new(),
            size_bytes: 0,
            last_lsn: None,
        }
    }

    /// Adds a record (LSNs arrive in order; the caller checked that).
    pub fn put(&mut self, key: Key, lsn: Lsn, value: Value) {
        assert!(
            lsn >= self.start_lsn,
            "record {lsn} below the layer's start {}",
            self.start_lsn
        );
        self.size_bytes += value.encoded_len() as u64 + RECORD_OVERHEAD;
        self.last_lsn = Some(self.last_lsn.map_or(lsn, |l| l.max(lsn)));
        let old = self.records.insert((key, lsn), value);
        assert!(old.is_none(), "({key}, {lsn}) ingested twice");
    }

    /// Approximate memory used.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// Exclusive end of the LSNs held: one above the last record.
    pub fn end_lsn(&self) -> Option<Lsn> {
        self.last_lsn
            .map(|l| Lsn(l.0.checked_add(1).expect("ingest refuses Lsn::MAX")))
    }

    /// Appends the values of `key` at or below `lsn`, newest first, stopping at a base value.
    /// Returns whether a base was found.
    pub fn collect(&self, key: Key, lsn: Lsn, out: &mut Vec<(Lsn, Value)>) -> bool {
        for ((_, l), v) in self.records.range((key, Lsn(0))..=(key, lsn)).rev() {
            out.push((*l, v.clone()));
            if v.is_base() {
                return true;
            }
        }
        false
    }

    /// Every record in `(key, lsn)` order.
    pub fn iter(&self) -> impl Iterator<Item = (&(Key, Lsn), &Value)> {
        self.records.iter()
    }
}
