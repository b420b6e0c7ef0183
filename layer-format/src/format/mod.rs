//! The on-disk structures of a layer file, one file each, with the byte layout at the top.
//!
//! A layer file is a sequence of 8 KiB blocks. All integers are big-endian, everywhere.
//!
//! ```text
//! block 0 ..                blob stream: one blob per record, in record order   (blob.rs)
//!                           zero padding to the next block boundary
//! index_start_block ..      index leaves, in key order, then each upper level   (node.rs)
//!                           of the index; the root is the last index block
//! last block                summary                                             (summary.rs)
//! ```
//!
//! Checksums: every blob carries the CRC32C of its payload, every index block and the summary
//! carry the CRC32C of their contents, and the writer returns the CRC32C of the whole file for
//! the index to record. The reader checks the summary when it opens a file, the blocks and blobs
//! it touches on every read, and everything on `verify()`.

pub mod blob;
pub mod node;
pub mod summary;

/// Size of a block in bytes.
pub const BLOCK_SIZE: usize = 8192;
/// [`BLOCK_SIZE`] as a `u64`, for offsets.
pub const BLOCK_SIZE_U64: u64 = BLOCK_SIZE as u64;
/// Size of a CRC32C in bytes.
pub const CRC_SIZE: usize = 4;

/// The format version this build writes and reads. History:
///
/// * 1: the first version (this one).
pub const FORMAT_VERSION: u32 = 1;

/// The kind of a layer file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// `(key, lsn) -> value` records for a key range and an LSN range.
    Delta,
    /// `key -> page image` at one LSN.
    Image,
}

impl LayerKind {
    /// The tag stored in the summary (0 is invalid).
    pub const fn tag(self) -> u8 {
        match self {
            LayerKind::Delta => 1,
            LayerKind::Image => 2,
        }
    }

    /// The kind for a summary tag.
    pub const fn from_tag(tag: u8) -> Option<LayerKind> {
        match tag {
            1 => Some(LayerKind::Delta),
            2 => Some(LayerKind::Image),
            _ => None,
        }
    }
}

/// Reads a big-endian `u16` at `at`.
pub(crate) fn be_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Reads a big-endian `u32` at `at`.
pub(crate) fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(crate::cast::array(&b[at..]))
}

/// Reads a big-endian `u64` at `at`.
pub(crate) fn be_u64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(crate::cast::array(&b[at..]))
}
