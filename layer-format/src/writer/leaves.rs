//! Index leaves built as records arrive.
//!
//! Blobs come first in a layer file and the index after them, so the leaves wait in memory
//! until the last record. The builder writes each record's entry straight into its leaf block
//! and seals the block (header and checksum) as soon as it is full, instead of keeping an
//! entry per record and encoding every leaf at `finish`: that was a serial pass of about 30 ms
//! per 256 MiB of 100-byte values, during which the flusher had nothing to write. At `finish`
//! the sealed blocks go to the flusher by reference, in buffers of [`LEAF_BUFFER`] bytes.
//! Memory is what the entries took before: one 8 KiB block per [`NODE_CAPACITY`] records.
//!
//! Invariants: every block in `sealed` and `open` is a sealed leaf except the last block of
//! `open` while `in_leaf > 0`, which holds `in_leaf` entries and zeros after them;
//! `firsts[i]` is the first `(key, lsn)` of leaf `i`.

use crate::format::BLOCK_SIZE;
use crate::format::node::{Entry, NODE_CAPACITY, put_entry, seal_node};
use crate::{Key, Lsn};
use bytes::{Bytes, BytesMut};

/// Bytes of leaf blocks per buffer handed to the flusher.
const LEAF_BUFFER: usize = 128 * BLOCK_SIZE;

pub(super) struct LeafBuilder {
    sealed: Vec<Bytes>,
    open: BytesMut,
    /// Entries in the last block of `open`; 0 when that block is sealed (or there is none).
    in_leaf: usize,
    firsts: Vec<(Key, Lsn)>,
    records: u64,
}

/// The leaves of a finished layer.
pub(super) struct Leaves {
    /// Sealed leaf blocks, in order; at least one (an empty layer has one empty leaf).
    pub(super) buffers: Vec<Bytes>,
    /// The first `(key, lsn)` of each leaf; empty for an empty layer.
    pub(super) firsts: Vec<(Key, Lsn)>,
    /// Number of leaf blocks.
    pub(super) blocks: u64,
}

impl LeafBuilder {
    pub(super) fn new() -> LeafBuilder {
        LeafBuilder {
            sealed: Vec::new(),
            open: BytesMut::new(),
            in_leaf: 0,
            firsts: Vec::new(),
            records: 0,
        }
    }

    /// Records added so far.
    pub(super) fn records(&self) -> u64 {
        self.records
    }

    /// Adds the entry of the next record; the caller keeps records in ascending order.
    pub(super) fn push(&mut self, key: Key, lsn: Lsn, blob_offset: u64) {
        if self.in_leaf == 0 {
            self.start_leaf();
            self.firsts.push((key, lsn));
        }
        let entry = Entry {
            key,
            lsn,
            value: blob_offset,
        };
        let at = self.in_leaf;
        put_entry(self.last_block(), at, &entry);
        self.in_leaf += 1;
        self.records += 1;
        if self.in_leaf == NODE_CAPACITY {
            self.seal();
        }
    }

    fn start_leaf(&mut self) {
        if self.open.len() == LEAF_BUFFER {
            let full = std::mem::replace(&mut self.open, BytesMut::with_capacity(LEAF_BUFFER));
            self.sealed.push(full.freeze());
        }
        self.open.resize(self.open.len() + BLOCK_SIZE, 0);
    }

    fn last_block(&mut self) -> &mut [u8; BLOCK_SIZE] {
        let at = self.open.len() - BLOCK_SIZE;
        match (&mut self.open[at..]).try_into() {
            Ok(block) => block,
            Err(_) => unreachable!("the open tail is one block"),
        }
    }

    fn seal(&mut self) {
        let count = self.in_leaf;
        seal_node(self.last_block(), 0, count);
        self.in_leaf = 0;
    }

    pub(super) fn finish(mut self) -> Leaves {
        if self.in_leaf > 0 {
            self.seal();
        }
        if self.firsts.is_empty() {
            // The root of an empty layer is one empty leaf.
            self.start_leaf();
            self.seal();
        }
        self.sealed.push(self.open.freeze());
        let blocks = self.firsts.len().max(1) as u64;
        let bytes: usize = self.sealed.iter().map(Bytes::len).sum();
        assert_eq!(
            bytes as u64,
            blocks * BLOCK_SIZE as u64,
            "one block per leaf"
        );
        Leaves {
            buffers: self.sealed,
            firsts: self.firsts,
            blocks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::node::{Node, decode_node};

    /// Leaves built record by record decode to the entries pushed, in order, across buffer
    /// boundaries; an empty builder gives one empty leaf.
    #[test]
    fn leaves_hold_every_entry_in_order() {
        for records in [
            0usize,
            1,
            NODE_CAPACITY,
            NODE_CAPACITY + 1,
            129 * NODE_CAPACITY + 7,
        ] {
            let mut b = LeafBuilder::new();
            let entry = |i: usize| Entry {
                key: Key::from_u128((i / 3) as u128),
                lsn: Lsn((i % 3) as u64 + 1),
                value: i as u64 * 9,
            };
            for i in 0..records {
                let e = entry(i);
                b.push(e.key, e.lsn, e.value);
            }
            assert_eq!(b.records(), records as u64);
            let leaves = b.finish();
            assert_eq!(leaves.blocks, records.div_ceil(NODE_CAPACITY).max(1) as u64);
            assert!(leaves.buffers.iter().all(|buf| buf.len() <= LEAF_BUFFER));
            let all: Vec<u8> = leaves.buffers.iter().flat_map(|s| s.to_vec()).collect();
            let mut seen = Vec::new();
            for (i, block) in all.chunks(BLOCK_SIZE).enumerate() {
                let Node { level, entries } =
                    decode_node(block.try_into().expect("block")).expect("a valid leaf");
                assert_eq!(level, 0);
                if let Some(first) = entries.first() {
                    assert_eq!(leaves.firsts[i], first.pos(), "first of leaf {i}");
                }
                seen.extend(entries);
            }
            assert_eq!(seen, (0..records).map(entry).collect::<Vec<_>>());
            assert_eq!(leaves.firsts.len(), records.div_ceil(NODE_CAPACITY));
        }
    }
}
