//! The block cache: index nodes and values of open layer files, kept after they were read and
//! checked, so that a warm point read neither reads nor verifies them again.
//!
//! Invariants:
//! * only what passed every check of the reader is cached (a node after its checksum, layout,
//!   level and range checks; a value after its blob checksum and decoding), so a hit is as
//!   trustworthy as a read;
//! * entries are keyed by a reader id that is never reused in the process (not by path): a file
//!   removed and written again under the same name (a download after a corrupt copy) is a new
//!   reader and never sees the old file's entries;
//! * the cache is bounded by its capacity in bytes (each entry weighs its payload plus a fixed
//!   overhead); a capacity of 0 disables it;
//! * scans (compaction, image creation) and `verify` bypass it: they read each block once, and
//!   must not evict what point reads use.

use super::super::format::node::Node;
use crate::value::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a cache entry holds.
#[derive(Debug, Clone)]
pub(crate) enum Cached {
    /// A checked index node.
    Node(Arc<Node>),
    /// A checked, decoded value.
    Value(Value),
}

/// Which region of the file an entry's offset is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Region {
    /// An index block (its number).
    Index,
    /// A blob (its offset in the blob stream).
    Blob,
}

type Key = (u64, Region, u64);

/// Fixed bookkeeping per entry, counted into its weight.
const ENTRY_OVERHEAD: u64 = 64;

#[derive(Debug, Clone)]
struct Weight;

impl quick_cache::Weighter<Key, Cached> for Weight {
    fn weight(&self, _key: &Key, val: &Cached) -> u64 {
        let payload = match val {
            Cached::Node(n) => {
                (n.entries.len() * std::mem::size_of::<super::super::format::node::Entry>()) as u64
            }
            Cached::Value(v) => v.encoded_len() as u64,
        };
        payload + ENTRY_OVERHEAD
    }
}

/// Counts evictions.
#[derive(Debug, Clone, Default)]
struct Evictions(Arc<AtomicU64>);

impl quick_cache::Lifecycle<Key, Cached> for Evictions {
    type RequestState = ();
    fn begin_request(&self) -> Self::RequestState {}
    fn on_evict(&self, _state: &mut Self::RequestState, _key: Key, _val: Cached) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

type Inner =
    quick_cache::sync::Cache<Key, Cached, Weight, quick_cache::DefaultHashBuilder, Evictions>;

/// A cache shared by every layer reader given it (a page server has one).
pub struct BlockCache {
    inner: Option<Inner>,
    capacity: u64,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: Evictions,
}

impl std::fmt::Debug for BlockCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockCache")
            .field("capacity", &self.capacity)
            .field("stats", &self.stats())
            .finish()
    }
}

/// The cache's counters and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that read the file.
    pub misses: u64,
    /// Entries evicted to stay within the capacity.
    pub evictions: u64,
    /// Bytes held (by the entries' weights).
    pub bytes: u64,
    /// Entries held.
    pub entries: u64,
}

/// A reader id, unique in the process.
pub(crate) fn next_reader_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl BlockCache {
    /// A cache of at most `capacity_bytes`; 0 makes a cache that holds nothing.
    pub fn new(capacity_bytes: u64) -> BlockCache {
        let evictions = Evictions::default();
        let inner = (capacity_bytes > 0).then(|| {
            // About one 8 KiB value or index block per entry.
            let items = usize::try_from(capacity_bytes / 8192)
                .unwrap_or(usize::MAX)
                .max(16);
            Inner::with(
                items,
                capacity_bytes,
                Weight,
                quick_cache::DefaultHashBuilder::default(),
                evictions.clone(),
            )
        });
        BlockCache {
            inner,
            capacity: capacity_bytes,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions,
        }
    }

    /// The capacity in bytes.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Counters and size now.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.0.load(Ordering::Relaxed),
            bytes: self.inner.as_ref().map_or(0, Inner::weight),
            entries: self.inner.as_ref().map_or(0, |c| c.len() as u64),
        }
    }

    pub(crate) fn get(&self, reader: u64, region: Region, offset: u64) -> Option<Cached> {
        let inner = self.inner.as_ref()?;
        let found = inner.get(&(reader, region, offset));
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Whether an entry is present, without counting a lookup or refreshing it.
    pub(crate) fn contains(&self, reader: u64, region: Region, offset: u64) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|c| c.contains_key(&(reader, region, offset)))
    }

    pub(crate) fn insert(&self, reader: u64, region: Region, offset: u64, value: Cached) {
        if let Some(inner) = &self.inner {
            inner.insert((reader, region, offset), value);
        }
    }
}
