//! The page server: tenants, timelines, ingest, reads, compaction, remote storage (the
//! pageserver issue), and the offline tools of `pagectl`.
//!
//! Data flows down from `http` to `timeline` to [`layer_format`], never back up.

pub mod pagectl;

pub use index_part;
pub use layer_format;
