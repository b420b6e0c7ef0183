//! The rules every index obeys, checked on every read and before every write.

use crate::error::IndexError;
use crate::schema::{IndexPart, Level};
use layer_format::{Key, Lsn};

impl IndexPart {
    /// Checks the rules between fields: generations from 1 and no layer's above the index's,
    /// sizes above zero, a level on every delta layer and on no image layer (L0 layers cover
    /// the whole key space), no layer above `disk_consistent_lsn`, GC cutoff at or below it.
    /// How layers relate to each other (the layer map's structural invariant) is the
    /// pageserver's to check.
    pub fn validate(&self) -> Result<(), IndexError> {
        if self.generation.0 == 0 {
            return Err(IndexError::Inconsistent(
                "index generation 0 is invalid; generations start at 1".into(),
            ));
        }
        // A layer's records are all at or below disk_consistent_lsn: its exclusive end is at
        // most one above it.
        let lsn_limit = Lsn(self.disk_consistent_lsn.0.saturating_add(1));
        for (layer, meta) in &self.layers {
            let name = || layer.to_string();
            if meta.generation.0 == 0 || meta.generation > self.generation {
                return Err(IndexError::GenerationAboveIndex {
                    name: name(),
                    layer: meta.generation,
                    index: self.generation,
                });
            }
            if meta.file_size == 0 {
                return Err(IndexError::BadFileSize {
                    name: name(),
                    size: 0,
                });
            }
            match (layer.is_delta(), meta.level) {
                (true, None) => {
                    return Err(IndexError::BadLevel {
                        name: name(),
                        reason: "a delta layer needs a level".into(),
                    });
                }
                (false, Some(_)) => {
                    return Err(IndexError::BadLevel {
                        name: name(),
                        reason: "an image layer has no level".into(),
                    });
                }
                (true, Some(Level::L0)) if *layer.key_range() != (Key::MIN..Key::MAX) => {
                    return Err(IndexError::BadLevel {
                        name: name(),
                        reason: "an L0 layer covers the whole key space".into(),
                    });
                }
                _ => {}
            }
            let lsn_end = layer.lsn_range().end;
            if lsn_end > lsn_limit {
                return Err(IndexError::LayerAboveDiskConsistentLsn {
                    name: name(),
                    lsn_end,
                    disk_consistent_lsn: self.disk_consistent_lsn,
                });
            }
        }
        if let Some(cutoff) = self.gc_cutoff_lsn
            && cutoff > self.disk_consistent_lsn
        {
            return Err(IndexError::Inconsistent(format!(
                "gc_cutoff_lsn {cutoff} is above disk_consistent_lsn {}",
                self.disk_consistent_lsn
            )));
        }
        Ok(())
    }
}
