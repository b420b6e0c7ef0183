//! The page server: tenants, timelines, ingest, reads, compaction, remote storage.
//!
//! Filled by the pageserver issue. Data flows down from `http` to `timeline` to
//! [`layer_format`], never back up.

pub use index_part;
pub use layer_format;
