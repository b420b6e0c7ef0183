//! The layer reader: open (checks the summary), point reads, ordered scans and `verify`.
//!
//! Every block and blob is checked when it is read: block checksums, node layout, that index
//! entries lie inside the summary's ranges and point inside the blob stream, that child links
//! point at the level below, blob checksums, and value encoding. A corrupt, truncated or foreign
//! file therefore yields a [`LayerError`] naming the path and offset, never a panic and never
//! wrong data. `get` touches O(height) index blocks plus one neighbouring leaf at most per
//! leaf of versions walked; nothing reads the whole file except `verify`.

mod cache;
mod iter;
mod run;
mod verify;

pub use cache::{BlockCache, CacheStats};
use cache::{Cached, Region};
pub use iter::LayerIter;
pub use verify::VerifyReport;

use crate::cast::{array, usize_of};
use crate::error::{LayerError, Result};
use crate::format::blob::{BLOB_HEADER_SIZE, MAX_BLOB_PAYLOAD, decode_header};
use crate::format::node::{Node, NodeError, decode_node};
use crate::format::summary::{Summary, SummaryError};
use crate::format::{BLOCK_SIZE, BLOCK_SIZE_U64, FORMAT_VERSION, LayerKind};
use crate::io::{IoEngine, IoFile};
use crate::value::{PAGE_SIZE, Value};
use crate::{Key, Lsn};
use bytes::Bytes;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How much a point read fetches in one go: an 8 KiB page value and its headers.
const POINT_READ_BYTES: usize = BLOB_HEADER_SIZE + 1 + PAGE_SIZE + 64;

/// How a read treats the block cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A scan: around the cache.
    Scan,
    /// A point read: through the cache, reading what is not cached.
    Point,
    /// A point read from the cache alone: no I/O.
    CacheOnly,
}

/// An open layer file.
#[derive(Debug)]
pub struct LayerReader {
    path: PathBuf,
    file: Box<dyn IoFile>,
    summary: Summary,
    /// Unique in the process: the key of this reader's entries in `cache`.
    id: u64,
    /// Point reads keep the nodes and values they checked here.
    cache: Option<Arc<BlockCache>>,
    /// The index root, kept from the first point read on while the layer is open.
    root: std::sync::OnceLock<Arc<Node>>,
}

impl LayerReader {
    /// [`LayerReader::open`], with point reads going through `cache`.
    pub fn open_cached(
        engine: &Arc<dyn IoEngine>,
        path: &Path,
        cache: Arc<BlockCache>,
    ) -> Result<LayerReader> {
        let mut reader = LayerReader::open(engine, path)?;
        reader.cache = Some(cache);
        Ok(reader)
    }

    /// Opens a layer file and checks its summary and size.
    pub fn open(engine: &Arc<dyn IoEngine>, path: &Path) -> Result<LayerReader> {
        let file = engine
            .open_read(path)
            .map_err(|e| LayerError::io("open", path, e))?;
        LayerReader::from_file(path, file)
    }

    /// Opens a layer from an already open file; `path` names it in errors.
    pub fn from_file(path: &Path, file: Box<dyn IoFile>) -> Result<LayerReader> {
        let path = path.to_path_buf();
        let size = file.size().map_err(|e| LayerError::io("stat", &path, e))?;
        if size < BLOCK_SIZE_U64 {
            return Err(LayerError::SizeMismatch {
                path,
                expected: BLOCK_SIZE_U64,
                actual: size,
            });
        }
        if size % BLOCK_SIZE_U64 != 0 {
            return Err(LayerError::Corrupt {
                path,
                offset: size,
                what: "file",
                reason: format!("size {size} is not a whole number of {BLOCK_SIZE}-byte blocks"),
            });
        }
        let offset = size - BLOCK_SIZE_U64;
        let mut block = Box::new([0u8; BLOCK_SIZE]);
        read_exact(&*file, &path, &mut block[..], offset)?;
        let summary = Summary::decode(&block).map_err(|e| match e {
            SummaryError::BadMagic(found) => LayerError::BadMagic {
                path: path.clone(),
                offset,
                found,
            },
            SummaryError::Checksum { expected, actual } => LayerError::ChecksumMismatch {
                path: path.clone(),
                offset,
                what: "summary",
                expected,
                actual,
            },
            SummaryError::Version(version) => LayerError::UnsupportedVersion {
                path: path.clone(),
                version,
                supported: FORMAT_VERSION,
            },
            SummaryError::Invalid(reason) => LayerError::Corrupt {
                path: path.clone(),
                offset,
                what: "summary",
                reason,
            },
        })?;
        if summary.file_size_bytes != size {
            return Err(LayerError::SizeMismatch {
                path,
                expected: summary.file_size_bytes,
                actual: size,
            });
        }
        Ok(LayerReader {
            path,
            file,
            summary,
            id: cache::next_reader_id(),
            cache: None,
            root: std::sync::OnceLock::new(),
        })
    }

    /// The file's summary.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// The path the reader was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The values this layer holds for rebuilding `key` at `lsn`: records of `key` at or below
    /// `lsn`, newest first, ending at the first image or `will_init` record if there is one.
    pub fn get(&self, key: Key, lsn: Lsn) -> Result<Vec<(Lsn, Value)>> {
        match self.get_with(key, lsn, Mode::Point)? {
            Some(values) => Ok(values),
            None => unreachable!("a point read with I/O answered nothing"),
        }
    }

    /// [`LayerReader::get`] answered from the block cache alone, without any I/O (so that a
    /// caller on an async runtime can try it in place); `None` if a block or value it needs is
    /// not cached, or the reader has no cache.
    pub fn get_cached(&self, key: Key, lsn: Lsn) -> Option<Result<Vec<(Lsn, Value)>>> {
        self.cache.as_ref()?;
        self.get_with(key, lsn, Mode::CacheOnly).transpose()
    }

    fn get_with(&self, key: Key, lsn: Lsn, mode: Mode) -> Result<Option<Vec<(Lsn, Value)>>> {
        let mut out = Vec::new();
        if !self.summary.key_range.contains(&key) || self.summary.record_count == 0 {
            return Ok(Some(out));
        }
        let target = (key, lsn);
        let Some((mut block, mut node)) = self.find_leaf(target, mode)? else {
            return Ok(None);
        };
        let Some(mut i) = node.last_at_or_below(target) else {
            return Ok(Some(out));
        };
        // The newest versions read with one read at the first cache miss (`run.rs`), popped
        // newest first as the loop goes.
        let (mut run, mut run_read) = (Vec::new(), false);
        loop {
            let e = node.entries[i];
            if e.key != key {
                break;
            }
            // From the run read at the first miss, else the cache, else a read of its own.
            let value = if let Some((_, v)) = run.pop_if(|(o, _)| *o == e.value) {
                v
            } else if let Some(v) = self.cached_value(e.value) {
                v
            } else if mode == Mode::CacheOnly {
                return Ok(None);
            } else {
                if !run_read {
                    run_read = true;
                    run = self.read_run(block, &node.entries, i)?;
                }
                match run.pop_if(|(o, _)| *o == e.value) {
                    Some((_, v)) => v,
                    None => self.fetch_value(e.value)?,
                }
            };
            let base = value.is_base();
            out.push((e.lsn, value));
            if base {
                break;
            }
            if i > 0 {
                i -= 1;
                continue;
            }
            if block == self.summary.index_start_block {
                break;
            }
            block -= 1;
            let Some(previous) = self.read_node_cached(block, 0, mode)? else {
                return Ok(None);
            };
            node = previous;
            i = node
                .entries
                .len()
                .checked_sub(1)
                .ok_or_else(|| self.empty_leaf(block))?;
        }
        Ok(Some(out))
    }

    /// Iterates over the records with keys in `key_range`, in `(key, lsn)` order.
    pub fn iter(&self, key_range: Range<Key>) -> LayerIter<'_> {
        LayerIter::new(self, key_range)
    }

    /// Descends from the root to the leaf that holds the last entry at or below `pos` (or the
    /// first leaf if `pos` is below every entry); through the cache for a point read, around
    /// it for a scan. `None` only in [`Mode::CacheOnly`], when a node is not cached.
    fn find_leaf(&self, pos: (Key, Lsn), mode: Mode) -> Result<Option<(u32, Arc<Node>)>> {
        let s = &self.summary;
        let mut block = s.index_root_block;
        let mut level = s.index_height - 1;
        loop {
            let node = if mode == Mode::Scan {
                Arc::new(self.read_node(block, level)?)
            } else if block == s.index_root_block {
                match self.root.get() {
                    Some(root) => root.clone(),
                    None if mode == Mode::CacheOnly => return Ok(None),
                    None => {
                        let root = Arc::new(self.read_node(block, level)?);
                        self.root.get_or_init(|| root).clone()
                    }
                }
            } else {
                match self.read_node_cached(block, level, mode)? {
                    Some(node) => node,
                    None => return Ok(None),
                }
            };
            if level == 0 {
                return Ok(Some((block, node)));
            }
            let i = node.last_at_or_below(pos).unwrap_or(0);
            let child = node.entries[i].value;
            let lowest = u64::from(s.index_start_block);
            let below = if level == 1 {
                lowest + u64::from(s.leaf_blocks)
            } else {
                u64::from(block)
            };
            if child < lowest || child >= below {
                return Err(self.corrupt(
                    block_offset(block),
                    "index block",
                    format!("child link {child} outside blocks {lowest}..{below}"),
                ));
            }
            block = u32::try_from(child).map_err(|_| {
                self.corrupt(
                    block_offset(block),
                    "index block",
                    format!("child link {child} above the largest block number"),
                )
            })?;
            level -= 1;
        }
    }

    /// [`LayerReader::read_node`] through the cache, if the reader has one; `None` on a miss
    /// in [`Mode::CacheOnly`].
    fn read_node_cached(&self, block: u32, level: u16, mode: Mode) -> Result<Option<Arc<Node>>> {
        let Some(cache) = &self.cache else {
            return Ok(Some(Arc::new(self.read_node(block, level)?)));
        };
        if let Some(Cached::Node(node)) = cache.get(self.id, Region::Index, u64::from(block)) {
            // Cached for the level it was read at; a link to it from another level is corrupt.
            if u16::from(node.level) == level {
                return Ok(Some(node));
            }
        }
        if mode == Mode::CacheOnly {
            return Ok(None);
        }
        let node = Arc::new(self.read_node(block, level)?);
        cache.insert(
            self.id,
            Region::Index,
            u64::from(block),
            Cached::Node(node.clone()),
        );
        Ok(Some(node))
    }

    /// The value of the blob at `offset` if the block cache holds it (never any I/O).
    fn cached_value(&self, offset: u64) -> Option<Value> {
        match self.cache.as_ref()?.get(self.id, Region::Blob, offset)? {
            Cached::Value(value) => Some(value),
            Cached::Node(_) => None,
        }
    }

    /// Reads and checks the value of the blob at `offset`, and puts it in the cache.
    fn fetch_value(&self, offset: u64) -> Result<Value> {
        let value = self.read_value(offset)?;
        if let Some(cache) = &self.cache {
            cache.insert(self.id, Region::Blob, offset, Cached::Value(value.clone()));
        }
        Ok(value)
    }

    /// Reads and checks index block `block`, which must be a node of `level`.
    fn read_node(&self, block: u32, level: u16) -> Result<Node> {
        let offset = block_offset(block);
        let mut buf = Box::new([0u8; BLOCK_SIZE]);
        read_exact(&*self.file, &self.path, &mut buf[..], offset)?;
        let node = decode_node(&buf).map_err(|e| match e {
            NodeError::Checksum { expected, actual } => LayerError::ChecksumMismatch {
                path: self.path.clone(),
                offset,
                what: "index block",
                expected,
                actual,
            },
            NodeError::Invalid(reason) => self.corrupt(offset, "index block", reason),
        })?;
        if u16::from(node.level) != level {
            return Err(self.corrupt(
                offset,
                "index block",
                format!("level {} where {level} belongs", node.level),
            ));
        }
        let s = &self.summary;
        if node.entries.is_empty() && (level > 0 || s.record_count > 0) {
            return Err(self.empty_leaf(block));
        }
        for e in &node.entries {
            if !s.key_range.contains(&e.key) || !s.lsn_range.contains(&e.lsn) {
                return Err(self.corrupt(
                    offset,
                    "index block",
                    format!("entry ({}, {}) outside the layer's ranges", e.key, e.lsn),
                ));
            }
            if level == 0 && e.value >= s.blob_bytes {
                return Err(self.corrupt(
                    offset,
                    "index block",
                    format!("blob offset {} past the blob stream", e.value),
                ));
            }
        }
        Ok(node)
    }

    fn empty_leaf(&self, block: u32) -> LayerError {
        self.corrupt(
            block_offset(block),
            "index block",
            "empty node in a non-empty index".into(),
        )
    }

    /// Reads the value of the blob at `offset` with one read for page-sized values.
    fn read_value(&self, offset: u64) -> Result<Value> {
        let avail = self.summary.blob_bytes.saturating_sub(offset);
        let mut buf = vec![0u8; POINT_READ_BYTES.min(usize_of(avail))];
        if buf.len() < BLOB_HEADER_SIZE {
            return Err(self.corrupt(
                offset,
                "blob",
                "blob header runs past the blob stream".into(),
            ));
        }
        read_exact(&*self.file, &self.path, &mut buf, offset)?;
        let header = decode_header(&array(&buf));
        let total = self.check_blob_len(offset, header.len)?;
        if buf.len() < total {
            let have = buf.len();
            buf.resize(total, 0);
            read_exact(
                &*self.file,
                &self.path,
                &mut buf[have..],
                offset + have as u64,
            )?;
        }
        buf.truncate(total);
        // A small value read with a page-sized read would keep the whole buffer alive in the
        // value (and in the block cache, which weighs it by its length).
        if buf.capacity() > 2 * total {
            buf.shrink_to_fit();
        }
        self.decode_blob(offset, Bytes::from(buf))
    }

    /// Checks a blob length from a header at `offset`; returns header plus payload size.
    fn check_blob_len(&self, offset: u64, len: usize) -> Result<usize> {
        let total = BLOB_HEADER_SIZE + len;
        if len > MAX_BLOB_PAYLOAD || offset + total as u64 > self.summary.blob_bytes {
            return Err(self.corrupt(
                offset,
                "blob",
                format!("length {len} runs past the blob stream"),
            ));
        }
        Ok(total)
    }

    /// Checks and decodes a whole blob (header and payload).
    fn decode_blob(&self, offset: u64, blob: Bytes) -> Result<Value> {
        let header = decode_header(&array(&blob));
        let payload = blob.slice(BLOB_HEADER_SIZE..);
        let actual = crc32c::crc32c(&payload);
        if actual != header.crc {
            return Err(LayerError::ChecksumMismatch {
                path: self.path.clone(),
                offset,
                what: "blob",
                expected: header.crc,
                actual,
            });
        }
        let value = Value::decode(payload).map_err(|source| LayerError::BadValue {
            path: self.path.clone(),
            offset,
            source,
        })?;
        if self.summary.kind == LayerKind::Image && !matches!(value, Value::Image(_)) {
            return Err(self.corrupt(offset, "blob", "a delta record in an image layer".into()));
        }
        Ok(value)
    }

    fn corrupt(&self, offset: u64, what: &'static str, reason: String) -> LayerError {
        LayerError::Corrupt {
            path: self.path.clone(),
            offset,
            what,
            reason,
        }
    }
}

fn block_offset(block: u32) -> u64 {
    u64::from(block) * BLOCK_SIZE_U64
}

fn read_exact(file: &dyn IoFile, path: &Path, buf: &mut [u8], offset: u64) -> Result<()> {
    file.read_exact_at(buf, offset)
        .map_err(|source| match source.kind() {
            io::ErrorKind::UnexpectedEof => LayerError::Corrupt {
                path: path.to_path_buf(),
                offset,
                what: "file",
                reason: format!("ends before the {} bytes at this offset", buf.len()),
            },
            _ => LayerError::Io {
                op: "read",
                path: path.to_path_buf(),
                offset: Some(offset),
                source,
            },
        })
}
