//! Index blocks: the nodes of a B-tree over `(key, lsn)` built bottom-up by the writer.
//!
//! ```text
//! offset  size  field
//! 0       1     node kind: 1 leaf, 2 internal              (0 is invalid)
//! 1       1     level: 0 for leaves, child level + 1 above
//! 2       2     entry count (0 only in the root leaf of an empty layer)
//! 4       4     reserved, zero
//! 8       32*n  entries, strictly ascending by (key, lsn)
//!   +0    16    key
//!   +16   8     lsn
//!   +24   8     leaf: offset of the record's blob; internal: block number of the child
//! ...           zero
//! 8188    4     crc32c of bytes 0..8188
//! ```
//!
//! An internal entry holds the first `(key, lsn)` of its child. Leaves occupy consecutive
//! blocks in key order, so a scan moves to the neighbouring leaf by block number.

use super::{BLOCK_SIZE, CRC_SIZE, be_u16, be_u32, be_u64};
use crate::{Key, Lsn};

/// Size of the node header.
pub const NODE_HEADER_SIZE: usize = 8;
/// Size of one entry.
pub const ENTRY_SIZE: usize = Key::SIZE + 8 + 8;
/// Offset of the block checksum.
pub const CRC_OFFSET: usize = BLOCK_SIZE - CRC_SIZE;
/// Entries per node.
pub const NODE_CAPACITY: usize = (CRC_OFFSET - NODE_HEADER_SIZE) / ENTRY_SIZE;

const _: () = assert!(ENTRY_SIZE == 32);
const _: () = assert!(NODE_CAPACITY == 255);
const _: () = assert!(NODE_HEADER_SIZE + NODE_CAPACITY * ENTRY_SIZE <= CRC_OFFSET);

const KIND_LEAF: u8 = 1;
const KIND_INTERNAL: u8 = 2;

/// One index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Key of the record (leaf) or of the child's first record (internal).
    pub key: Key,
    /// LSN of the same.
    pub lsn: Lsn,
    /// Blob offset (leaf) or child block number (internal).
    pub value: u64,
}

impl Entry {
    /// The `(key, lsn)` sort position.
    pub fn pos(&self) -> (Key, Lsn) {
        (self.key, self.lsn)
    }
}

/// A decoded index block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// 0 for a leaf.
    pub level: u8,
    /// Entries, strictly ascending.
    pub entries: Vec<Entry>,
}

/// Encodes a node into a block. Asserts the writer's side of the format's rules.
pub fn encode_node(level: u8, entries: &[Entry]) -> Box<[u8; BLOCK_SIZE]> {
    assert!(
        entries.windows(2).all(|w| w[0].pos() < w[1].pos()),
        "node entries out of order"
    );
    let mut b = Box::new([0u8; BLOCK_SIZE]);
    for (i, e) in entries.iter().enumerate() {
        put_entry(&mut b, i, e);
    }
    seal_node(&mut b, level, entries.len());
    b
}

/// Writes entry `i` of a node built in place (the writer fills a leaf record by record and
/// keeps the entries in order).
pub fn put_entry(b: &mut [u8; BLOCK_SIZE], i: usize, e: &Entry) {
    assert!(i < NODE_CAPACITY, "node overfull");
    let at = NODE_HEADER_SIZE + i * ENTRY_SIZE;
    let slot = &mut b[at..at + ENTRY_SIZE];
    slot[..16].copy_from_slice(&e.key.0);
    slot[16..24].copy_from_slice(&e.lsn.0.to_be_bytes());
    slot[24..].copy_from_slice(&e.value.to_be_bytes());
}

/// Writes the header and checksum of a node whose `count` entries are in place and whose
/// other bytes are zero.
pub fn seal_node(b: &mut [u8; BLOCK_SIZE], level: u8, count: usize) {
    assert!(count <= NODE_CAPACITY, "node overfull");
    b[0] = if level == 0 { KIND_LEAF } else { KIND_INTERNAL };
    b[1] = level;
    // At most NODE_CAPACITY (asserted above), far below u16::MAX.
    let count = u16::try_from(count).unwrap_or(u16::MAX);
    b[2..4].copy_from_slice(&count.to_be_bytes());
    let crc = crc32c::crc32c(&b[..CRC_OFFSET]);
    b[CRC_OFFSET..].copy_from_slice(&crc.to_be_bytes());
}

/// Why a block is not a valid node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeError {
    /// Stored and computed checksum differ.
    Checksum {
        /// Stored.
        expected: u32,
        /// Computed.
        actual: u32,
    },
    /// The checksum matches but a rule of the layout is broken.
    Invalid(String),
}

/// Decodes and checks an index block: checksum, kind and level, count, order, zero padding.
pub fn decode_node(b: &[u8; BLOCK_SIZE]) -> Result<Node, NodeError> {
    let expected = be_u32(b, CRC_OFFSET);
    let actual = crc32c::crc32c(&b[..CRC_OFFSET]);
    if expected != actual {
        return Err(NodeError::Checksum { expected, actual });
    }
    let invalid = |s: String| Err(NodeError::Invalid(s));
    let (kind, level, count) = (b[0], b[1], usize::from(be_u16(b, 2)));
    match (kind, level) {
        (KIND_LEAF, 0) => {}
        (KIND_INTERNAL, 1..) => {}
        _ => return invalid(format!("node kind {kind} at level {level}")),
    }
    if count > NODE_CAPACITY {
        return invalid(format!("{count} entries, capacity {NODE_CAPACITY}"));
    }
    if b[4..8] != [0; 4] {
        return invalid("reserved header bytes are not zero".into());
    }
    let end = NODE_HEADER_SIZE + count * ENTRY_SIZE;
    if b[end..CRC_OFFSET].iter().any(|&x| x != 0) {
        return invalid("bytes after the last entry are not zero".into());
    }
    let entries: Vec<Entry> = (0..count)
        .map(|i| {
            let at = NODE_HEADER_SIZE + i * ENTRY_SIZE;
            Entry {
                key: Key(crate::cast::array(&b[at..])),
                lsn: Lsn(be_u64(b, at + 16)),
                value: be_u64(b, at + 24),
            }
        })
        .collect();
    if let Some(i) = entries.windows(2).position(|w| w[0].pos() >= w[1].pos()) {
        return invalid(format!("entries {i} and {} are out of order", i + 1));
    }
    Ok(Node { level, entries })
}

impl Node {
    /// Index of the last entry at or below `pos`, if any.
    pub fn last_at_or_below(&self, pos: (Key, Lsn)) -> Option<usize> {
        self.entries
            .partition_point(|e| e.pos() <= pos)
            .checked_sub(1)
    }

    /// Index of the first entry at or above `pos` (`entries.len()` if none).
    pub fn first_at_or_above(&self, pos: (Key, Lsn)) -> usize {
        self.entries.partition_point(|e| e.pos() < pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(n: usize) -> Vec<Entry> {
        (0..n)
            .map(|i| Entry {
                key: Key::from_u128(i as u128 / 3),
                lsn: Lsn(i as u64),
                value: i as u64 * 10,
            })
            .collect()
    }

    #[test]
    fn round_trip_full_and_empty() {
        for (level, n) in [(0, NODE_CAPACITY), (0, 0), (3, 17)] {
            let e = entries(n);
            let b = encode_node(level, &e);
            assert_eq!(decode_node(&b), Ok(Node { level, entries: e }));
        }
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let b = encode_node(0, &entries(40));
        for at in 0..BLOCK_SIZE {
            let mut c = b.clone();
            c[at] ^= 0x10;
            assert!(decode_node(&c).is_err(), "flip at {at} undetected");
        }
    }

    #[test]
    fn checksummed_but_invalid_blocks_are_refused() {
        let reseal = |b: &mut [u8; BLOCK_SIZE]| {
            let crc = crc32c::crc32c(&b[..CRC_OFFSET]);
            b[CRC_OFFSET..].copy_from_slice(&crc.to_be_bytes());
        };
        let mut b = encode_node(0, &entries(3));
        b[1] = 1; // a leaf claiming level 1
        reseal(&mut b);
        assert!(matches!(decode_node(&b), Err(NodeError::Invalid(_))));
        let mut b = encode_node(0, &entries(3));
        b[2..4].copy_from_slice(&300u16.to_be_bytes());
        reseal(&mut b);
        assert!(matches!(decode_node(&b), Err(NodeError::Invalid(_))));
        let mut b = encode_node(0, &entries(3));
        b[NODE_HEADER_SIZE..NODE_HEADER_SIZE + 16].copy_from_slice(&[0xff; 16]);
        reseal(&mut b);
        assert!(matches!(decode_node(&b), Err(NodeError::Invalid(_))));
    }

    #[test]
    fn search_helpers() {
        let n = Node {
            level: 0,
            entries: entries(9),
        };
        let k1 = Key::from_u128(1);
        assert_eq!(n.last_at_or_below((k1, Lsn(4))), Some(4));
        assert_eq!(n.last_at_or_below((k1, Lsn(100))), Some(5));
        assert_eq!(n.last_at_or_below((Key::from_u128(0), Lsn(0))), Some(0));
        assert_eq!(
            Node {
                level: 0,
                entries: entries(9)[1..].to_vec()
            }
            .last_at_or_below((Key::MIN, Lsn(0))),
            None
        );
        assert_eq!(n.first_at_or_above((k1, Lsn(0))), 3);
        assert_eq!(n.first_at_or_above((Key::MAX, Lsn(0))), 9);
    }
}
