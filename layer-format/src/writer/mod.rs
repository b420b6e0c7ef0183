//! Layer writers: [`DeltaLayerWriter`] and [`ImageLayerWriter`].
//!
//! Both stream records into a temp file (blob stream first, in 1 MiB vectored writes done by a
//! flusher thread while the next chunk fills; values of 1 KiB and more are written from the
//! caller's buffers without a copy), build the index
//! leaves in memory as records arrive (8 KiB per 255 records), and on `finish` append the
//! leaves, the levels above them and the summary, fsync and publish through [`crate::durable`]. Memory is bounded by the record count,
//! not the value sizes.
//!
//! Contract (asserted: breaking it is a programmer error): records arrive strictly ascending by
//! `(key, lsn)`, inside the declared key range (and LSN range); nothing is written after
//! `finish`, which consumes the writer. Dropping an unfinished writer removes its temp file.

mod chunk;
mod core;
mod delta;
mod flusher;
mod image;
mod leaves;

pub use self::core::{FinishedLayer, LayerInfo};
pub use delta::DeltaLayerWriter;
pub use image::ImageLayerWriter;
