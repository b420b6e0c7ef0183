//! Ordered scans: a leaf at a time, values through a read-ahead window over the blob stream.

use super::{LayerReader, read_exact};
use crate::cast::{array, usize_of};
use crate::error::Result;
use crate::format::blob::{BLOB_HEADER_SIZE, decode_header};
use crate::format::node::Node;
use crate::value::Value;
use crate::{Key, Lsn};
use bytes::Bytes;
use std::ops::Range;

/// Size of one read-ahead of the blob stream during a scan.
const READ_AHEAD: usize = 256 << 10;

/// A read-ahead window over the blob stream, for reading blobs in file order.
#[derive(Debug, Default)]
pub(super) struct BlobCursor {
    start: u64,
    data: Bytes,
}

impl BlobCursor {
    /// Makes `[offset, offset + len)` available (`len` already checked against the stream).
    fn ensure(&mut self, r: &LayerReader, offset: u64, len: usize) -> Result<()> {
        let end = self.start + self.data.len() as u64;
        if offset >= self.start && offset + len as u64 <= end {
            return Ok(());
        }
        let avail = usize_of(r.summary.blob_bytes - offset);
        let mut buf = vec![0u8; len.max(READ_AHEAD).min(avail)];
        read_exact(&*r.file, &r.path, &mut buf, offset)?;
        self.start = offset;
        self.data = Bytes::from(buf);
        Ok(())
    }

    /// Reads and checks the blob at `offset`; returns its value and the offset after it.
    pub(super) fn read(&mut self, r: &LayerReader, offset: u64) -> Result<(Value, u64)> {
        if offset + BLOB_HEADER_SIZE as u64 > r.summary.blob_bytes {
            return Err(r.corrupt(
                offset,
                "blob",
                "blob header runs past the blob stream".into(),
            ));
        }
        self.ensure(r, offset, BLOB_HEADER_SIZE)?;
        let at = usize_of(offset - self.start);
        let header = decode_header(&array(&self.data[at..]));
        let total = r.check_blob_len(offset, header.len)?;
        self.ensure(r, offset, total)?;
        let at = usize_of(offset - self.start);
        let value = r.decode_blob(offset, self.data.slice(at..at + total))?;
        Ok((value, offset + total as u64))
    }
}

/// Iterator over `(key, lsn, value)` records of a key range, in order. Yields `Err` once and
/// then ends if the file is corrupt.
#[derive(Debug)]
pub struct LayerIter<'a> {
    reader: &'a LayerReader,
    key_end: Key,
    state: State,
    cursor: BlobCursor,
}

#[derive(Debug)]
enum State {
    Start(Key),
    At {
        block: u32,
        node: std::sync::Arc<Node>,
        i: usize,
    },
    Done,
}

impl<'a> LayerIter<'a> {
    pub(super) fn new(reader: &'a LayerReader, key_range: Range<Key>) -> LayerIter<'a> {
        let s = reader.summary();
        let start = key_range.start.max(s.key_range.start);
        let key_end = key_range.end.min(s.key_range.end);
        let state = if start < key_end && s.record_count > 0 {
            State::Start(start)
        } else {
            State::Done
        };
        LayerIter {
            reader,
            key_end,
            state,
            cursor: BlobCursor::default(),
        }
    }

    fn step(&mut self) -> Result<Option<(Key, Lsn, Value)>> {
        let r = self.reader;
        loop {
            match &mut self.state {
                State::Done => return Ok(None),
                State::Start(key) => {
                    let pos = (*key, Lsn(0));
                    // A scan reads what is not cached, so it always answers.
                    let Some((block, node)) = r.find_leaf(pos, super::Mode::Scan)? else {
                        unreachable!("a scan answered nothing");
                    };
                    let i = node.first_at_or_above(pos);
                    self.state = State::At { block, node, i };
                }
                State::At { block, node, i } => {
                    let Some(e) = node.entries.get(*i).copied() else {
                        let next = *block + 1;
                        if next >= r.summary.index_start_block + r.summary.leaf_blocks {
                            self.state = State::Done;
                            return Ok(None);
                        }
                        let node = std::sync::Arc::new(r.read_node(next, 0)?);
                        if node.entries.is_empty() {
                            return Err(r.empty_leaf(next));
                        }
                        self.state = State::At {
                            block: next,
                            node,
                            i: 0,
                        };
                        continue;
                    };
                    if e.key >= self.key_end {
                        self.state = State::Done;
                        return Ok(None);
                    }
                    *i += 1;
                    let (value, _) = self.cursor.read(r, e.value)?;
                    return Ok(Some((e.key, e.lsn, value)));
                }
            }
        }
    }
}

impl Iterator for LayerIter<'_> {
    type Item = Result<(Key, Lsn, Value)>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.step() {
            Ok(item) => item.map(Ok),
            Err(e) => {
                self.state = State::Done;
                Some(Err(e))
            }
        }
    }
}
