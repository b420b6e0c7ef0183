//! The page server: tenants, timelines, ingest, reads, remote storage, and the offline tools
//! of `pagectl`.
//!
//! Data flows down from [`http`] to [`tenant`] and [`timeline`] to [`layer_format`], never
//! back up; [`remote`] is used by timelines and tenants.
#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod failpoints;
pub mod http;
pub mod lock;
pub mod metrics;
pub mod page_cache;
pub mod pagectl;
pub mod remote;
pub mod retry;
pub mod server;
pub mod shutdown;
pub mod tenant;
#[cfg(feature = "testing")]
pub mod testing;
pub mod timeline;

/// The git revision this binary was built from (`unknown` outside a git checkout).
pub const BUILD_REVISION: &str = env!("PAGESERVER_BUILD_REVISION");

pub use index_part;
pub use layer_format;
