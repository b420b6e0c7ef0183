//! Layer files of the page server: the immutable, checksummed files that hold a timeline's
//! pages, and the primitives that put them on disk without ever overwriting one.
//!
//! * [`Key`], [`Lsn`] and [`Value`]: what a record is ([`redo`] rebuilds a page from values).
//! * [`DeltaLayerWriter`], [`ImageLayerWriter`] and [`LayerReader`]: the file format of
//!   [`format`](mod@format), written in one pass and read with O(log n) block reads.
//! * [`durable`]: temp files, fsync and publish with `RENAME_NOREPLACE` (invariants I1, I2).
//! * [`io`]: the I/O engine (io_uring or std), the only way this project touches files.
//! * [`name`]: layer names, generations and file names.
//!
//! **Architecture invariant:** this crate knows nothing of tenants, HTTP or object storage, and
//! does no network I/O.

// The style, as lints: no `expect` (an invariant is an `assert!` or `unreachable!` with its
// argument, or a typed error), no lossy `as` casts (`try_from`, or `cast.rs`'s helpers), in
// library code; tests are exempt (clippy.toml, and the `cfg_attr` below).
#![deny(clippy::expect_used)]
#![cfg_attr(
    not(test),
    deny(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_possible_wrap
    )
)]

#[cfg(not(target_pointer_width = "64"))]
compile_error!("layer-format indexes buffers by file offsets: 64-bit targets only (cast.rs)");

mod cast;
pub mod durable;
mod error;
pub mod failpoints;
pub mod format;
/// Fuzz bodies (`testing` builds only).
#[cfg(any(test, feature = "testing"))]
pub mod fuzzing;
pub mod io;
mod key;
pub mod name;
pub mod reader;
pub mod redo;
pub mod value;
pub mod writer;

pub use error::{LayerError, Result};
pub use key::{Key, Lsn, ParseKeyError};
pub use name::{Generation, LayerFileName, LayerName};
pub use reader::{BlockCache, CacheStats, LayerReader};
pub use value::{Record, Value};
pub use writer::{DeltaLayerWriter, FinishedLayer, ImageLayerWriter, LayerInfo};
