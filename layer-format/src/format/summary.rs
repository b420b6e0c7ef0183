//! The summary: the last block of a layer file, which says what the file holds and where.
//!
//! ```text
//! offset  size  field
//! 0       8     magic "PSLAYER\0"
//! 8       4     format version
//! 12      1     kind: 1 delta, 2 image                     (0 is invalid)
//! 13      3     reserved, zero
//! 16      16    key_start
//! 32      16    key_end (exclusive)
//! 48      8     lsn_start
//! 56      8     lsn_end (exclusive; lsn_start + 1 for an image layer)
//! 64      8     record count
//! 72      8     blob_bytes: length of the blob stream
//! 80      4     index_start_block = ceil(blob_bytes / 8192)
//! 84      4     leaf_blocks: number of index leaves (at least 1)
//! 88      4     index_root_block = the block before the summary
//! 92      2     index height: levels of the index, 1 if the root is a leaf
//! 94      2     reserved, zero
//! 96      8     file_size_bytes = (index_root_block + 2) * 8192
//! 104     ...   zero
//! 8188    4     crc32c of bytes 0..8188
//! ```
//!
//! The derived fields are redundant on purpose: [`Summary::decode`] checks them against each
//! other, so a checksummed but inconsistent summary is refused before anything is read through
//! it.

use super::node::NODE_CAPACITY;
use super::{
    BLOCK_SIZE, BLOCK_SIZE_U64, CRC_SIZE, FORMAT_VERSION, LayerKind, be_u16, be_u32, be_u64,
};
use crate::{Key, Lsn};
use std::ops::Range;

/// Magic bytes at the start of the summary.
pub const MAGIC: [u8; 8] = *b"PSLAYER\0";
/// Offset of the checksum.
const CRC_OFFSET: usize = BLOCK_SIZE - CRC_SIZE;
/// Bytes used by fields; the rest up to the checksum is zero.
const FIELDS_END: usize = 104;

const _: () = assert!(FIELDS_END <= CRC_OFFSET);

/// What a layer file holds and where its parts are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Delta or image.
    pub kind: LayerKind,
    /// Keys covered, end exclusive.
    pub key_range: Range<Key>,
    /// LSNs covered, end exclusive.
    pub lsn_range: Range<Lsn>,
    /// Number of records (and of blobs).
    pub record_count: u64,
    /// Length of the blob stream in bytes.
    pub blob_bytes: u64,
    /// First block of the index.
    pub index_start_block: u32,
    /// Number of leaf blocks.
    pub leaf_blocks: u32,
    /// Block of the index root.
    pub index_root_block: u32,
    /// Number of index levels.
    pub index_height: u16,
    /// Size of the whole file.
    pub file_size_bytes: u64,
}

/// Why a summary block is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SummaryError {
    /// Not a layer file.
    BadMagic([u8; 8]),
    /// Stored and computed checksum differ.
    Checksum {
        /// Stored.
        expected: u32,
        /// Computed.
        actual: u32,
    },
    /// Written by another format version.
    Version(u32),
    /// Checksummed but inconsistent.
    Invalid(String),
}

/// Number of leaves for `records` records.
pub fn leaf_blocks_for(records: u64) -> u64 {
    records.div_ceil(NODE_CAPACITY as u64).max(1)
}

/// Total number of index blocks for `leaves` leaves, and the height.
pub fn index_shape(leaves: u64) -> (u64, u16) {
    let (mut total, mut level, mut height) = (leaves, leaves, 1u16);
    while level > 1 {
        level = level.div_ceil(NODE_CAPACITY as u64);
        total += level;
        height += 1;
    }
    (total, height)
}

impl Summary {
    /// Encodes the summary block.
    pub fn encode(&self) -> Box<[u8; BLOCK_SIZE]> {
        let mut b = Box::new([0u8; BLOCK_SIZE]);
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&FORMAT_VERSION.to_be_bytes());
        b[12] = self.kind.tag();
        b[16..32].copy_from_slice(&self.key_range.start.0);
        b[32..48].copy_from_slice(&self.key_range.end.0);
        b[48..56].copy_from_slice(&self.lsn_range.start.0.to_be_bytes());
        b[56..64].copy_from_slice(&self.lsn_range.end.0.to_be_bytes());
        b[64..72].copy_from_slice(&self.record_count.to_be_bytes());
        b[72..80].copy_from_slice(&self.blob_bytes.to_be_bytes());
        b[80..84].copy_from_slice(&self.index_start_block.to_be_bytes());
        b[84..88].copy_from_slice(&self.leaf_blocks.to_be_bytes());
        b[88..92].copy_from_slice(&self.index_root_block.to_be_bytes());
        b[92..94].copy_from_slice(&self.index_height.to_be_bytes());
        b[96..104].copy_from_slice(&self.file_size_bytes.to_be_bytes());
        let crc = crc32c::crc32c(&b[..CRC_OFFSET]);
        b[CRC_OFFSET..].copy_from_slice(&crc.to_be_bytes());
        b
    }

    /// Decodes and checks a summary block.
    pub fn decode(b: &[u8; BLOCK_SIZE]) -> Result<Summary, SummaryError> {
        let magic: [u8; 8] = crate::cast::array(&b[0..]);
        if magic != MAGIC {
            return Err(SummaryError::BadMagic(magic));
        }
        let expected = be_u32(b, CRC_OFFSET);
        let actual = crc32c::crc32c(&b[..CRC_OFFSET]);
        if expected != actual {
            return Err(SummaryError::Checksum { expected, actual });
        }
        let version = be_u32(b, 8);
        if version != FORMAT_VERSION {
            return Err(SummaryError::Version(version));
        }
        let invalid = |s: &str| SummaryError::Invalid(s.to_string());
        let kind = LayerKind::from_tag(b[12]).ok_or_else(|| invalid("unknown layer kind"))?;
        if b[13..16] != [0; 3]
            || b[94..96] != [0; 2]
            || b[FIELDS_END..CRC_OFFSET].iter().any(|&x| x != 0)
        {
            return Err(invalid("reserved bytes are not zero"));
        }
        let s = Summary {
            kind,
            key_range: Key(crate::cast::array(&b[16..]))..Key(crate::cast::array(&b[32..])),
            lsn_range: Lsn(be_u64(b, 48))..Lsn(be_u64(b, 56)),
            record_count: be_u64(b, 64),
            blob_bytes: be_u64(b, 72),
            index_start_block: be_u32(b, 80),
            leaf_blocks: be_u32(b, 84),
            index_root_block: be_u32(b, 88),
            index_height: be_u16(b, 92),
            file_size_bytes: be_u64(b, 96),
        };
        s.check().map_err(SummaryError::Invalid)?;
        Ok(s)
    }

    /// Checks the fields against each other.
    fn check(&self) -> Result<(), String> {
        if self.key_range.start >= self.key_range.end {
            return Err(format!("empty key range {:?}", self.key_range));
        }
        if self.lsn_range.start >= self.lsn_range.end {
            return Err(format!("empty LSN range {:?}", self.lsn_range));
        }
        if self.kind == LayerKind::Image && self.lsn_range.end.0 != self.lsn_range.start.0 + 1 {
            return Err("an image layer covers exactly one LSN".into());
        }
        if u64::from(self.index_start_block) != self.blob_bytes.div_ceil(BLOCK_SIZE_U64) {
            return Err("index does not start after the blob stream".into());
        }
        if u64::from(self.leaf_blocks) != leaf_blocks_for(self.record_count) {
            return Err(format!(
                "{} leaf blocks for {} records",
                self.leaf_blocks, self.record_count
            ));
        }
        let (index_blocks, height) = index_shape(u64::from(self.leaf_blocks));
        if self.index_height != height {
            return Err(format!(
                "index height {} for {} leaves",
                self.index_height, self.leaf_blocks
            ));
        }
        if u64::from(self.index_root_block) + 1 != u64::from(self.index_start_block) + index_blocks
        {
            return Err("index root is not the last index block".into());
        }
        if self.file_size_bytes != (u64::from(self.index_root_block) + 2) * BLOCK_SIZE_U64 {
            return Err("file size does not end after the summary".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(records: u64, blob_bytes: u64) -> Summary {
        let index_start_block = blob_bytes.div_ceil(BLOCK_SIZE_U64) as u32;
        let leaf_blocks = leaf_blocks_for(records);
        let (blocks, height) = index_shape(leaf_blocks);
        let root = u64::from(index_start_block) + blocks - 1;
        Summary {
            kind: LayerKind::Delta,
            key_range: Key::from_u128(5)..Key::MAX,
            lsn_range: Lsn(10)..Lsn(20),
            record_count: records,
            blob_bytes,
            index_start_block,
            leaf_blocks: leaf_blocks as u32,
            index_root_block: root as u32,
            index_height: height,
            file_size_bytes: (root + 2) * BLOCK_SIZE_U64,
        }
    }

    #[test]
    fn round_trips() {
        for (records, bytes) in [
            (0, 0),
            (1, 100),
            (255, 9000),
            (256, 9000),
            (70_000, 1 << 30),
        ] {
            let s = sample(records, bytes);
            assert_eq!(Summary::decode(&s.encode()), Ok(s));
        }
    }

    #[test]
    fn index_shape_matches_the_levels() {
        assert_eq!(index_shape(1), (1, 1));
        assert_eq!(index_shape(255), (256, 2));
        assert_eq!(index_shape(256), (256 + 2 + 1, 3));
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let b = sample(1000, 123_456).encode();
        for at in 0..BLOCK_SIZE {
            let mut c = b.clone();
            c[at] ^= 0x01;
            assert!(Summary::decode(&c).is_err(), "flip at {at} undetected");
        }
    }

    #[test]
    fn inconsistent_summaries_are_refused() {
        let mut s = sample(1000, 123_456);
        s.leaf_blocks += 1;
        assert!(matches!(
            Summary::decode(&s.encode()),
            Err(SummaryError::Invalid(_))
        ));
        let mut s = sample(1000, 123_456);
        s.file_size_bytes += BLOCK_SIZE_U64;
        assert!(matches!(
            Summary::decode(&s.encode()),
            Err(SummaryError::Invalid(_))
        ));
        let mut s = sample(10, 100);
        s.kind = LayerKind::Image;
        assert!(matches!(
            Summary::decode(&s.encode()),
            Err(SummaryError::Invalid(_))
        ));
        let mut b = sample(10, 100).encode();
        b[8..12].copy_from_slice(&2u32.to_be_bytes());
        let crc = crc32c::crc32c(&b[..CRC_OFFSET]);
        b[CRC_OFFSET..].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(Summary::decode(&b), Err(SummaryError::Version(2)));
        let mut b = sample(10, 100).encode();
        b[0] = b'X';
        assert!(matches!(
            Summary::decode(&b),
            Err(SummaryError::BadMagic(_))
        ));
    }
}
