//! `verify`: checks every byte of a layer file.
//!
//! One sequential pass computes the whole-file CRC32C; a second walks the leaves in order with
//! the blob stream in lockstep (each leaf entry must point at the next blob, every blob's
//! checksum and value must be valid, the stream must end exactly at `blob_bytes` followed by
//! zero padding), then rebuilds each upper index level from the one below and compares it with
//! the blocks on disk, up to the root.

use super::iter::BlobCursor;
use super::{LayerReader, block_offset, read_exact};
use crate::cast::usize_of;
use crate::error::{LayerError, Result};
use crate::format::BLOCK_SIZE_U64;
use crate::format::node::{Entry, NODE_CAPACITY};
use crate::{Key, Lsn};

/// Size of one read of the whole-file checksum pass.
const CHECKSUM_READ: usize = 1 << 20;

/// What `verify` found in a sound file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyReport {
    /// CRC32C of the whole file.
    pub checksum: u32,
    /// Records checked.
    pub record_count: u64,
    /// Blocks in the file.
    pub blocks: u64,
}

impl LayerReader {
    /// Checks every checksum and every structural rule of the file.
    pub fn verify(&self) -> Result<VerifyReport> {
        let s = &self.summary;
        let checksum = self.file_checksum()?;

        let mut cursor = BlobCursor::default();
        let mut next_blob = 0u64;
        let mut prev: Option<(Key, Lsn)> = None;
        let mut records = 0u64;
        let mut children: Vec<Entry> = Vec::new();
        for block in s.index_start_block..s.index_start_block + s.leaf_blocks {
            let node = self.read_node(block, 0)?;
            if let Some(first) = node.entries.first() {
                children.push(Entry {
                    key: first.key,
                    lsn: first.lsn,
                    value: u64::from(block),
                });
            }
            for e in &node.entries {
                if prev.is_some_and(|p| p >= e.pos()) {
                    return Err(self.corrupt(
                        block_offset(block),
                        "index block",
                        "entries out of order across leaves".into(),
                    ));
                }
                prev = Some(e.pos());
                if e.value != next_blob {
                    return Err(self.corrupt(
                        block_offset(block),
                        "index block",
                        format!(
                            "entry ({}, {}) points at offset {}, the next blob is at {next_blob}",
                            e.key, e.lsn, e.value
                        ),
                    ));
                }
                next_blob = cursor.read(self, next_blob)?.1;
                records += 1;
            }
        }
        if next_blob != s.blob_bytes || records != s.record_count {
            return Err(self.corrupt(
                0,
                "blob stream",
                format!(
                    "{records} records ending at {next_blob}; summary says {} ending at {}",
                    s.record_count, s.blob_bytes
                ),
            ));
        }
        let pad_end = u64::from(s.index_start_block) * BLOCK_SIZE_U64;
        let mut pad = vec![0u8; usize_of(pad_end - s.blob_bytes)];
        read_exact(&*self.file, &self.path, &mut pad, s.blob_bytes)?;
        if pad.iter().any(|&b| b != 0) {
            return Err(self.corrupt(s.blob_bytes, "blob stream", "padding is not zero".into()));
        }

        let mut block = s.index_start_block + s.leaf_blocks;
        let mut level = 1u16;
        while children.len() > 1 {
            let mut parents = Vec::with_capacity(children.len().div_ceil(NODE_CAPACITY));
            for chunk in children.chunks(NODE_CAPACITY) {
                if block > s.index_root_block {
                    return Err(self.corrupt(
                        block_offset(block),
                        "index",
                        "more index levels than blocks".into(),
                    ));
                }
                let node = self.read_node(block, level)?;
                if node.entries != chunk {
                    return Err(self.corrupt(
                        block_offset(block),
                        "index block",
                        format!("level {level} node does not match the level below"),
                    ));
                }
                parents.push(Entry {
                    key: chunk[0].key,
                    lsn: chunk[0].lsn,
                    value: u64::from(block),
                });
                block += 1;
            }
            children = parents;
            level += 1;
        }
        if block != s.index_root_block + 1 || level != s.index_height {
            return Err(self.corrupt(
                block_offset(s.index_root_block),
                "index",
                format!("index ends at block {block} with {level} levels; summary says root {} and height {}", s.index_root_block, s.index_height),
            ));
        }
        Ok(VerifyReport {
            checksum,
            record_count: records,
            blocks: s.file_size_bytes / BLOCK_SIZE_U64,
        })
    }

    /// Like [`verify`](Self::verify), and also compares the whole-file checksum with the one
    /// the index recorded.
    pub fn verify_checksum(&self, expected: u32) -> Result<VerifyReport> {
        let report = self.verify()?;
        if report.checksum != expected {
            return Err(LayerError::ChecksumMismatch {
                path: self.path.clone(),
                offset: 0,
                what: "file",
                expected,
                actual: report.checksum,
            });
        }
        Ok(report)
    }

    /// CRC32C of the whole file, read sequentially.
    pub fn file_checksum(&self) -> Result<u32> {
        let size = self.summary.file_size_bytes;
        let mut buf = vec![0u8; CHECKSUM_READ];
        let (mut offset, mut crc) = (0u64, 0u32);
        while offset < size {
            let n = CHECKSUM_READ.min(usize_of(size - offset));
            read_exact(&*self.file, &self.path, &mut buf[..n], offset)?;
            crc = crc32c::crc32c_append(crc, &buf[..n]);
            offset += n as u64;
        }
        Ok(crc)
    }
}
