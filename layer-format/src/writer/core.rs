//! What the two writers share: blob stream, index leaves built in memory as records arrive,
//! upper index levels and summary, whole-file checksum, fsync and publish.

use super::chunk::Chunk;
use super::flusher::Flusher;
use super::leaves::{LeafBuilder, Leaves};
use crate::durable::{self, SyncedFile, TempFile};
use crate::error::Result;
use crate::failpoints::io_failpoint;
use crate::format::blob::{BLOB_HEADER_SIZE, MAX_BLOB_PAYLOAD};
use crate::format::node::{Entry, NODE_CAPACITY, encode_node};
use crate::format::summary::{Summary, index_shape};
use crate::format::{BLOCK_SIZE, BLOCK_SIZE_U64, LayerKind};
use crate::io::IoEngine;
use crate::name::{Generation, LayerFileName, LayerName};
use crate::value::Value;
use crate::{Key, LayerError, Lsn};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Size of one write to the file.
const WRITE_CHUNK: usize = 1 << 20;
/// Capacity of the scratch buffer of a chunk: a chunk plus a block that can overflow it.
const SCRATCH_CAPACITY: usize = WRITE_CHUNK + BLOCK_SIZE;

/// What a published (or ready to publish) layer file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// Layer name and generation: the file name.
    pub file_name: LayerFileName,
    /// Full path of the file under its final name.
    pub path: PathBuf,
    /// Size of the file in bytes.
    pub size_bytes: u64,
    /// CRC32C of the whole file, for the index to record.
    pub checksum: u32,
    /// Number of records.
    pub record_count: u64,
}

/// A finished layer still under its temp name, fsynced: publish it alone with
/// [`FinishedLayer::publish`] or with others through [`durable::publish_batch`].
/// Dropping it removes the temp file.
#[must_use = "a finished layer is removed when dropped unless published"]
#[derive(Debug)]
pub struct FinishedLayer {
    /// What the layer is.
    pub info: LayerInfo,
    /// The synced temp file.
    pub file: SyncedFile,
}

impl FinishedLayer {
    /// Publishes the layer under its final name (never overwriting).
    pub fn publish(self) -> Result<LayerInfo> {
        durable::publish(self.file)?;
        Ok(self.info)
    }
}

pub(super) struct WriterCore {
    kind: LayerKind,
    /// Declared before `temp`: dropped (joined) before the temp file is removed.
    flusher: Flusher,
    temp: TempFile,
    dir: PathBuf,
    generation: Generation,
    key_range: Range<Key>,
    lsn_range: Range<Lsn>,
    /// The bytes of the next write, and the length and CRC of the file so far.
    chunk: Chunk,
    leaves: LeafBuilder,
    last: Option<(Key, Lsn)>,
}

impl std::fmt::Debug for WriterCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerWriter")
            .field("temp", &self.temp.temp_path())
            .field("records", &self.leaves.records())
            .finish_non_exhaustive()
    }
}

fn layer_name(kind: LayerKind, key_range: Range<Key>, lsn_range: Range<Lsn>) -> LayerName {
    match kind {
        LayerKind::Delta => LayerName::Delta {
            key_range,
            lsn_range,
        },
        LayerKind::Image => LayerName::Image {
            key_range,
            lsn: lsn_range.start,
        },
    }
}

impl WriterCore {
    pub(super) fn new(
        engine: &Arc<dyn IoEngine>,
        dir: &Path,
        generation: Generation,
        kind: LayerKind,
        key_range: Range<Key>,
        lsn_range: Range<Lsn>,
    ) -> Result<WriterCore> {
        assert!(
            key_range.start < key_range.end,
            "empty key range {key_range:?}"
        );
        assert!(
            lsn_range.start < lsn_range.end,
            "empty LSN range {lsn_range:?}"
        );
        let name = LayerFileName {
            layer: layer_name(kind, key_range.clone(), lsn_range.clone()),
            generation,
        };
        let temp = TempFile::create(engine, &dir.join(name.to_string()))?;
        let flusher = Flusher::start(
            temp.shared_file(),
            temp.temp_path().to_path_buf(),
            SCRATCH_CAPACITY,
        )?;
        Ok(WriterCore {
            kind,
            temp,
            dir: dir.to_path_buf(),
            generation,
            key_range,
            lsn_range,
            chunk: Chunk::new(SCRATCH_CAPACITY),
            flusher,
            leaves: LeafBuilder::new(),
            last: None,
        })
    }

    pub(super) fn record_count(&self) -> u64 {
        self.leaves.records()
    }

    pub(super) fn put(&mut self, key: Key, lsn: Lsn, value: &Value) -> Result<()> {
        assert!(
            self.key_range.contains(&key),
            "key {key} outside {:?}",
            self.key_range
        );
        assert!(
            self.lsn_range.contains(&lsn),
            "LSN {lsn} outside {:?}",
            self.lsn_range
        );
        if let Some(last) = self.last {
            assert!(
                last < (key, lsn),
                "record ({key}, {lsn}) is not after {last:?}"
            );
        }
        if let Err(e) = value.validate() {
            panic!("invalid value for ({key}, {lsn}): {e}");
        }
        let len = value.encoded_len();
        assert!(len <= MAX_BLOB_PAYLOAD, "value of {len} bytes is too large");
        let offset = self.chunk.position();
        let (tag, body) = value.encoded_parts();
        let crc = crc32c::crc32c_append(tag_crc(tag), body);
        let mut header = [0u8; BLOB_HEADER_SIZE + 1];
        // At most MAX_BLOB_PAYLOAD (asserted above), below u32::MAX.
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        header[..4].copy_from_slice(&len.to_be_bytes());
        header[4..8].copy_from_slice(&crc.to_be_bytes());
        header[8] = tag;
        self.chunk.copy(&header);
        self.chunk.share(body);
        self.leaves.push(key, lsn, offset);
        self.last = Some((key, lsn));
        if self.chunk.len() >= WRITE_CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.chunk.len() == 0 {
            return Ok(());
        }
        let spare = self.flusher.spare();
        self.flusher.submit(self.chunk.take(spare))
    }

    fn append_block(&mut self, block: &[u8; BLOCK_SIZE]) -> Result<()> {
        self.chunk.copy(block);
        if self.chunk.len() >= WRITE_CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    /// Appends whole blocks by reference.
    fn append_shared(&mut self, blocks: &bytes::Bytes) -> Result<()> {
        assert_eq!(blocks.len() % BLOCK_SIZE, 0, "whole blocks");
        self.chunk.share(blocks);
        if self.chunk.len() >= WRITE_CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes index and summary and fsyncs; the file stays under its temp name.
    pub(super) fn finish_unpublished(mut self, key_end: Option<Key>) -> Result<FinishedLayer> {
        before_finish().map_err(|e| LayerError::io("finish", self.temp.temp_path(), e))?;
        if let Some(end) = key_end {
            assert!(
                end > self.key_range.start && end <= self.key_range.end,
                "key end {end} outside {:?}",
                self.key_range
            );
            if let Some((last, _)) = self.last {
                assert!(last < end, "key end {end} is not above the last key {last}");
            }
            self.key_range.end = end;
        }
        let blob_bytes = self.chunk.position();
        let pad = blob_bytes.next_multiple_of(BLOCK_SIZE_U64) - blob_bytes;
        self.chunk
            .copy(&[0u8; BLOCK_SIZE][..crate::cast::usize_of(pad)]);
        let index_start_block = blob_bytes.div_ceil(BLOCK_SIZE_U64);

        // Leaves, built as records came, then each level above, bottom-up; each level indexes
        // the one below it.
        let leaves = std::mem::replace(&mut self.leaves, LeafBuilder::new());
        let record_count = leaves.records();
        let Leaves {
            buffers,
            firsts,
            blocks: leaf_blocks,
        } = leaves.finish();
        for buffer in &buffers {
            self.append_shared(buffer)?;
        }
        let mut next_block = index_start_block + leaf_blocks;
        let mut level_entries: Vec<Entry> = (index_start_block..)
            .zip(firsts)
            .map(|(block, (key, lsn))| Entry {
                key,
                lsn,
                value: block,
            })
            .collect();
        let mut level = 1u8;
        while level_entries.len() > 1 {
            let mut parents = Vec::with_capacity(level_entries.len().div_ceil(NODE_CAPACITY));
            for chunk in level_entries.chunks(NODE_CAPACITY) {
                parents.push(Entry {
                    value: next_block,
                    ..chunk[0]
                });
                self.append_block(&encode_node(level, chunk))?;
                next_block += 1;
            }
            level_entries = parents;
            level += 1;
        }
        let index_root_block = next_block - 1;
        let (index_blocks, index_height) = index_shape(leaf_blocks);
        assert_eq!(index_start_block + index_blocks, next_block, "index shape");

        // The summary records block numbers as u32: a layer of 16 TiB or more cannot be
        // described, and is refused rather than written wrong.
        let path = self.temp.temp_path().to_path_buf();
        let block_number = |b: u64| {
            u32::try_from(b).map_err(|_| {
                let e = std::io::Error::other(format!(
                    "block {b} is beyond the format's u32 block numbers (a layer of 16 TiB or more)"
                ));
                LayerError::io("finish", path.clone(), e)
            })
        };
        let summary = Summary {
            kind: self.kind,
            key_range: self.key_range.clone(),
            lsn_range: self.lsn_range.clone(),
            record_count,
            blob_bytes,
            index_start_block: block_number(index_start_block)?,
            leaf_blocks: block_number(leaf_blocks)?,
            index_root_block: block_number(index_root_block)?,
            index_height,
            file_size_bytes: (index_root_block + 2) * BLOCK_SIZE_U64,
        };
        self.append_block(&summary.encode())?;
        self.flush()?;
        let flushed = self.flusher.finish()?;
        let (size_bytes, checksum) = (flushed.size, flushed.crc);
        assert_eq!(size_bytes, summary.file_size_bytes, "file size");
        assert_eq!(
            size_bytes,
            self.chunk.position(),
            "everything appended was written"
        );

        let file_name = LayerFileName {
            layer: layer_name(self.kind, self.key_range.clone(), self.lsn_range.clone()),
            generation: self.generation,
        };
        let path = self.dir.join(file_name.to_string());
        self.temp.retarget(&path);
        let info = LayerInfo {
            file_name,
            path,
            size_bytes,
            checksum,
            record_count,
        };
        let file = self.temp.sync()?;
        Ok(FinishedLayer { info, file })
    }
}

/// The CRC32C of the one-byte slice `[tag]`, from a table built once: the blob checksum
/// starts from it instead of a call per record.
fn tag_crc(tag: u8) -> u32 {
    static TABLE: std::sync::LazyLock<[u32; 256]> = std::sync::LazyLock::new(|| {
        let mut table = [0u32; 256];
        for (tag, crc) in (0..=u8::MAX).zip(table.iter_mut()) {
            *crc = crc32c::crc32c(&[tag]);
        }
        table
    });
    TABLE[usize::from(tag)]
}

/// Failpoint `layer-writer-before-finish`.
fn before_finish() -> std::io::Result<()> {
    io_failpoint!("layer-writer-before-finish");
    Ok(())
}
