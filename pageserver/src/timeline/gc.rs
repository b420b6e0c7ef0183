//! GC: layers no read at or above the GC cutoff can need are removed (I8).
//!
//! The cutoff is `last_record_lsn - gc_horizon`, clamped to `disk_consistent_lsn`. A layer is
//! removed when all its records are below the cutoff (`lsn_end <= cutoff`) and an image layer at
//! or below the cutoff, at or above its last record, covers its whole key range: every read at or
//! above the cutoff finds that image first. The removal goes through
//! [`Timeline::remove_layers`]-style installation (current map, I6) and raises the index's
//! `gc_cutoff_lsn`; the objects are deleted only after that index is uploaded and the
//! generation check passes. Reads below the cutoff are refused from then on.

use super::Timeline;
use index_part::names::LayerName;
use layer_format::Lsn;
use std::sync::atomic::Ordering;

impl Timeline {
    /// Runs GC once; returns the number of layers removed.
    pub fn gc(&self) -> usize {
        let last = self.last_record_lsn.load(Ordering::SeqCst);
        let dcl = self.disk_consistent_lsn.load(Ordering::SeqCst);
        let cutoff = Lsn(last.saturating_sub(self.conf.gc_horizon).min(dcl));
        if cutoff.0 == 0 {
            return 0;
        }
        let removable: Vec<LayerName> = {
            let l = self.layers.read().expect("not poisoned");
            let images: Vec<&LayerName> = l
                .map
                .keys()
                .filter(|n| !n.is_delta() && n.lsn_range().start <= cutoff)
                .collect();
            let uploads = self.uploads.state();
            l.map
                .values()
                // Only layers already in remote storage (a queued upload still reads the file).
                .filter(|h| uploads.is_uploaded(&h.file_name()))
                .map(|h| &h.name)
                .filter(|n| n.lsn_range().end <= cutoff)
                .filter(|n| {
                    let (keys, end) = (n.key_range(), n.lsn_range().end);
                    images.iter().any(|i| {
                        *i != *n
                            // The image is at or above the layer's last record.
                            && i.lsn_range().start.0 + 1 >= end.0
                            && i.key_range().start <= keys.start
                            && i.key_range().end >= keys.end
                    })
                })
                .cloned()
                .collect()
        };
        if removable.is_empty() {
            return 0;
        }
        let removed = self.remove_layers_with_cutoff(&removable, Some(cutoff));
        crate::metrics::METRICS
            .gc_removed_layers
            .inc_by(removed as u64);
        tracing::info!(removed, cutoff = %cutoff, "gc");
        removed
    }
}
