//! The image layer writer.

use super::core::{FinishedLayer, LayerInfo, WriterCore};
use crate::error::Result;
use crate::format::LayerKind;
use crate::io::IoEngine;
use crate::name::Generation;
use crate::value::Value;
use crate::{Key, Lsn};
use bytes::Bytes;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

/// Writes an image layer: one page image per key, strictly ascending, all at one LSN.
#[must_use = "an unfinished writer removes its temp file when dropped"]
#[derive(Debug)]
pub struct ImageLayerWriter {
    core: WriterCore,
    lsn: Lsn,
}

impl ImageLayerWriter {
    /// Starts an image layer in `dir` for keys inside `key_range` at `lsn`.
    pub fn new(
        engine: &Arc<dyn IoEngine>,
        dir: &Path,
        generation: Generation,
        key_range: Range<Key>,
        lsn: Lsn,
    ) -> Result<ImageLayerWriter> {
        assert!(
            lsn < Lsn::MAX,
            "image LSN must leave room for the exclusive end"
        );
        let lsn_range = lsn..Lsn(lsn.0 + 1);
        let core = WriterCore::new(
            engine,
            dir,
            generation,
            LayerKind::Image,
            key_range,
            lsn_range,
        )?;
        Ok(ImageLayerWriter { core, lsn })
    }

    /// Appends the page image of `key`. Panics if the key is not after the previous one, is
    /// outside the range, or the image is not exactly one page.
    pub fn put(&mut self, key: Key, image: Bytes) -> Result<()> {
        self.core.put(key, self.lsn, &Value::Image(image))
    }

    /// Images written so far.
    pub fn record_count(&self) -> u64 {
        self.core.record_count()
    }

    /// Writes index and summary, fsyncs and publishes under the declared range.
    pub fn finish(self) -> Result<LayerInfo> {
        self.core.finish_unpublished(None)?.publish()
    }

    /// Like [`finish`](Self::finish) but ends the key range at `key_end` (above the last key)
    /// and leaves the file under its temp name for a batch publish.
    pub fn finish_unpublished(self, key_end: Option<Key>) -> Result<FinishedLayer> {
        self.core.finish_unpublished(key_end)
    }
}
