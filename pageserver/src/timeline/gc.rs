//! GC: layers that no read at or above the GC cutoff visits are removed (I8, I10).
//!
//! The cutoff is `last_record_lsn - gc_horizon`, clamped to `disk_consistent_lsn`. Under the
//! `layers` write lock, [`LayerMap::gc_plan`](super::LayerMap::gc_plan) chooses the layers no
//! read at any key and any LSN at or above the cutoff visits, by the read path's own query,
//! among those already in remote storage (a queued upload still reads the file); the removal
//! is installed with the raised cutoff ([`Change::Gc`]) as one change. The index without them
//! is uploaded first; their objects are deleted only after that and the generation check
//! (I8). Reads below the cutoff are refused from then on.

use super::Timeline;
use super::layer_map::Change;
use layer_format::Lsn;
use std::sync::atomic::Ordering;

impl Timeline {
    /// Runs GC once; returns the number of layers removed.
    pub fn gc(&self) -> anyhow::Result<usize> {
        let last = self.last_record_lsn.load(Ordering::SeqCst);
        let horizon = self.conf.gc_horizon;
        let uploads = self.uploads.state().clone();
        let applied = self.install(
            |map| {
                let cutoff = Lsn(last
                    .saturating_sub(horizon)
                    .min(map.disk_consistent_lsn().0));
                if cutoff.0 == 0 {
                    return None;
                }
                let remove = map.gc_plan(cutoff, |h| uploads.is_uploaded(&h.file_name()));
                (!remove.is_empty()).then_some(Change::Gc { cutoff, remove })
            },
            None,
        )?;
        let removed = applied.map_or(0, |a| a.removed.len());
        if removed > 0 {
            crate::metrics::METRICS
                .gc_removed_layers
                .inc_by(removed as u64);
            tracing::info!(removed, cutoff = %self.gc_cutoff_lsn(), "gc");
        }
        Ok(removed)
    }
}
