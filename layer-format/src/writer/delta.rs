//! The delta layer writer.

use super::core::{FinishedLayer, LayerInfo, WriterCore};
use crate::error::Result;
use crate::format::LayerKind;
use crate::io::IoEngine;
use crate::name::Generation;
use crate::value::Value;
use crate::{Key, Lsn};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

/// Writes a delta layer: `(key, lsn) -> value` records, strictly ascending by key then LSN.
#[must_use = "an unfinished writer removes its temp file when dropped"]
#[derive(Debug)]
pub struct DeltaLayerWriter(WriterCore);

impl DeltaLayerWriter {
    /// Starts a delta layer in `dir` for records inside `key_range` and `lsn_range`.
    pub fn new(
        engine: &Arc<dyn IoEngine>,
        dir: &Path,
        generation: Generation,
        key_range: Range<Key>,
        lsn_range: Range<Lsn>,
    ) -> Result<DeltaLayerWriter> {
        WriterCore::new(
            engine,
            dir,
            generation,
            LayerKind::Delta,
            key_range,
            lsn_range,
        )
        .map(DeltaLayerWriter)
    }

    /// Appends a record. Panics if it is not after the previous one or outside the ranges.
    pub fn put(&mut self, key: Key, lsn: Lsn, value: &Value) -> Result<()> {
        self.0.put(key, lsn, value)
    }

    /// Records written so far.
    pub fn record_count(&self) -> u64 {
        self.0.record_count()
    }

    /// Writes index and summary, fsyncs and publishes under the declared ranges.
    pub fn finish(self) -> Result<LayerInfo> {
        self.0.finish_unpublished(None)?.publish()
    }

    /// Like [`finish`](Self::finish) but ends the key range at `key_end` (above the last key)
    /// and leaves the file under its temp name for a batch publish.
    pub fn finish_unpublished(self, key_end: Option<Key>) -> Result<FinishedLayer> {
        self.0.finish_unpublished(key_end)
    }
}
