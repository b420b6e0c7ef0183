//! The process's block cache of layer files (issue 15): every layer reader of every timeline
//! keeps the index nodes and values its point reads checked in this one cache, bounded by the
//! `page_cache_size` setting. Scans (compaction, image creation) go around it.

use layer_format::BlockCache;
use std::sync::{Arc, OnceLock};

/// The default `page_cache_size`: 128 MiB.
pub const DEFAULT_PAGE_CACHE_SIZE: u64 = 128 << 20;

static CACHE: OnceLock<Arc<BlockCache>> = OnceLock::new();

/// Sizes the cache; the first call wins (a process runs one server; tests that start several
/// in one process share the first one's cache).
pub fn init(capacity_bytes: u64) {
    if CACHE
        .set(Arc::new(BlockCache::new(capacity_bytes)))
        .is_err()
        && get().capacity() != capacity_bytes
    {
        tracing::warn!(
            capacity = get().capacity(),
            requested = capacity_bytes,
            "the page cache was sized already; keeping its size"
        );
    }
}

/// The cache (of the default size if [`init`] was not called).
pub fn get() -> &'static Arc<BlockCache> {
    CACHE.get_or_init(|| Arc::new(BlockCache::new(DEFAULT_PAGE_CACHE_SIZE)))
}
