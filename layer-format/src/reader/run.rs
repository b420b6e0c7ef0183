//! A point read's values with one read: the newest versions of a key that fit in one
//! page-sized read, taken from the blobs that lie back to back on disk.
//!
//! The writer appends each record's blob right after the previous record's, in `(key, lsn)`
//! order, so the blobs of consecutive index entries are adjacent: entry `k`'s blob ends where
//! entry `k + 1`'s begins. A key's versions in one leaf are consecutive entries, so reading
//! from the oldest wanted version's offset to the next entry's offset fetches them all with one
//! system call (a key with ten 100-byte versions: one read of about 1.1 KiB instead of ten of
//! 8 KiB; the file's last record ends the blob stream). Each blob is still checked on its own (length, CRC32C, value) exactly as a single
//! read would check it.
//!
//! The run is an optimisation only: when the offsets do not rise (a damaged index), nothing is
//! read here; when a blob in the read does not fill its gap or fails its checks, the run ends
//! before it. Either way the caller reads the rest value by value, which reports the damage
//! with its usual error if the read needs that value. The block cache counts one miss for the
//! run: the values that came with it are not looked up.

use super::cache::{Cached, Region};
use super::{LayerReader, POINT_READ_BYTES, read_exact};
use crate::cast::{array, usize_of};
use crate::error::Result;
use crate::format::blob::{BLOB_HEADER_SIZE, decode_header};
use crate::format::node::Entry;
use crate::value::Value;
use bytes::Bytes;

impl LayerReader {
    /// Values of leaf `block`'s entries from `newest` down: the newest versions of one key
    /// whose blobs fit in one page-sized read and are not in the block cache already, read
    /// with one read, then checked newest first down to the first base value, each put in the
    /// cache; `(offset, value)` ascending. Stops before the first blob that does not check
    /// (the caller reads that one alone, and reports it if it needs it). Empty when there is
    /// no such run: `newest` is the last entry of a leaf other than the last (where its blob
    /// ends is in the next leaf), or the offsets do not rise.
    pub(super) fn read_run(
        &self,
        block: u32,
        entries: &[Entry],
        newest: usize,
    ) -> Result<Vec<(u64, Value)>> {
        let s = &self.summary;
        let last_leaf =
            u64::from(block) + 1 == u64::from(s.index_start_block) + u64::from(s.leaf_blocks);
        let end = match entries.get(newest + 1) {
            Some(next) => next.value,
            // The last record of the file: its blob ends the blob stream.
            None if last_leaf => s.blob_bytes,
            None => return Ok(Vec::new()),
        };
        // Offsets must rise to `end`: anything else is a damaged index, for the value-by-value
        // path to report.
        if entries[newest].value >= end || end > s.blob_bytes {
            return Ok(Vec::new());
        }
        let key = entries[newest].key;
        let mut lo = newest;
        // Each step keeps `entries[lo..=newest]` strictly rising and below `end`.
        while lo > 0
            && entries[lo - 1].key == key
            && entries[lo - 1].value < entries[lo].value
            && end - entries[lo - 1].value <= POINT_READ_BYTES as u64
            && !self
                .cache
                .as_ref()
                .is_some_and(|c| c.contains(self.id, Region::Blob, entries[lo - 1].value))
        {
            lo -= 1;
        }
        let start = entries[lo].value;
        if end - start > POINT_READ_BYTES as u64 {
            return Ok(Vec::new());
        }
        let len = usize_of(end - start);
        let mut buf = vec![0u8; len];
        read_exact(&*self.file, &self.path, &mut buf, start)?;
        let run = &entries[lo..=newest];
        // Newest first, as the read wants them: stop at the first base value (older versions
        // are not needed), and at the first blob that does not fill its gap exactly or fails
        // its checks (the value-by-value path reads it again, and reports it only if the read
        // needs it).
        let mut out = Vec::with_capacity(run.len());
        for (k, e) in run.iter().enumerate().rev() {
            let next = run.get(k + 1).map_or(end, |n| n.value);
            let at = usize_of(e.value - start);
            let to = usize_of(next - start);
            if to - at < BLOB_HEADER_SIZE {
                break;
            }
            let header = decode_header(&array(&buf[at..]));
            if BLOB_HEADER_SIZE + header.len != to - at {
                break;
            }
            // A copy of its own, so a cached value never keeps the whole read alive.
            let Ok(value) = self.decode_blob(e.value, Bytes::copy_from_slice(&buf[at..to])) else {
                break;
            };
            if let Some(cache) = &self.cache {
                cache.insert(self.id, Region::Blob, e.value, Cached::Value(value.clone()));
            }
            let base = value.is_base();
            out.push((e.value, value));
            if base {
                break;
            }
        }
        out.reverse();
        Ok(out)
    }
}
