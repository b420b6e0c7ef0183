//! The one query of the layer map: which layers a read of `(key, lsn)` visits, in order, and
//! GC's rule written through it.
//!
//! A read walks down the *column* of `key` (the layers whose key range contains it) from a
//! continuation LSN `cont`, first the read's LSN:
//! * the candidate delta is the one with the highest `lsn_end` among those starting at or
//!   below `cont` (it contains `cont`, or is the newest one below it); the candidate image is
//!   the newest at or below `cont`. The structural invariant makes each unique.
//! * An image at or above the last LSN the delta would give (`min(cont, lsn_end - 1)`) holds
//!   every record the delta would: visit the image; the read ends.
//! * An image inside the delta's LSN range (`lsn_start <= image`) ends the delta's part:
//!   visit the delta's records above the image, then the image; the read ends.
//! * Otherwise visit the delta's records from its start to `cont`, and go on below its start.
//!
//! The read path stops earlier when it meets a base record (an image or `will_init` value);
//! this query is structural, so every layer a read might need is in the list.
//!
//! GC ([`LayerMap::gc_plan`]): the visits at or above a cutoff, over every key and every LSN,
//! come from finitely many walks: the key space splits at every layer's key bounds into
//! intervals where the column is the same, and within a column the walk changes only where
//! a layer starts (a delta's `lsn_start`, an image's LSN: which layers are candidates) and one
//! above an image's LSN (where the delta above it starts to contribute records). So walking
//! each interval's column from the cutoff and from every such point above it finds every layer
//! any such read visits.

use super::{LayerHandle, LayerMap};
#[cfg(feature = "testing")]
use crate::timeline::mutation::Mutation;
use index_part::names::LayerName;
use layer_format::{Key, Lsn};
use std::collections::{BTreeSet, HashSet};
use std::ops::RangeInclusive;
use std::sync::Arc;

/// One step of a read: the records of `layer` with LSNs in `lsns` (an image layer's window is
/// its LSN).
#[derive(Debug, Clone)]
pub struct Visit {
    /// The layer.
    pub layer: Arc<LayerHandle>,
    /// The LSNs of the records to take from it, both ends inclusive.
    pub lsns: RangeInclusive<Lsn>,
}

/// Walks `column` (layers whose key range holds the key) from `lsn` down; calls `visit` for
/// each step.
fn walk<'a>(
    column: &[&'a Arc<LayerHandle>],
    lsn: Lsn,
    cut_at_images: bool,
    mut visit: impl FnMut(&'a Arc<LayerHandle>, RangeInclusive<Lsn>),
) {
    let mut cont = lsn;
    loop {
        let image = column
            .iter()
            .filter(|h| !h.name.is_delta() && h.name.lsn_range().start <= cont)
            .max_by_key(|h| h.name.lsn_range().start)
            .copied();
        let delta = column
            .iter()
            .filter(|h| h.name.is_delta() && h.name.lsn_range().start <= cont)
            .max_by_key(|h| h.name.lsn_range().end)
            .copied();
        let image_at = |h: &Arc<LayerHandle>| h.name.lsn_range().start;
        let Some(d) = delta else {
            if let Some(i) = image {
                visit(i, image_at(i)..=image_at(i));
            }
            return;
        };
        let range = d.name.lsn_range();
        let top = Lsn(cont.0.min(range.end.0 - 1));
        match image {
            Some(i) if image_at(i) >= top => {
                visit(i, image_at(i)..=image_at(i));
                return;
            }
            Some(i) if cut_at_images && image_at(i) >= range.start => {
                visit(d, Lsn(image_at(i).0 + 1)..=top);
                visit(i, image_at(i)..=image_at(i));
                return;
            }
            _ => {
                visit(d, range.start..=top);
                match range.start.0.checked_sub(1) {
                    Some(below) => cont = Lsn(below),
                    None => return,
                }
            }
        }
    }
}

impl LayerMap {
    fn column(&self, key: Key) -> Vec<&Arc<LayerHandle>> {
        self.layers
            .values()
            .filter(|h| h.name.key_range().contains(&key))
            .collect()
    }

    /// The layers a read of `key` at `lsn` visits, newest first, with the records it takes
    /// from each (see the module doc).
    pub fn visits(&self, key: Key, lsn: Lsn) -> Vec<Visit> {
        let mut out = Vec::new();
        #[cfg(feature = "testing")]
        let cut = !self.mutated(Mutation::ReadsIgnoreImagesInsideDeltas);
        #[cfg(not(feature = "testing"))]
        let cut = true;
        walk(&self.column(key), lsn, cut, |layer, lsns| {
            out.push(Visit {
                layer: layer.clone(),
                lsns,
            })
        });
        out
    }

    /// The names of every layer that some read at a key and an LSN at or above `cutoff`
    /// visits.
    pub fn visited_at_or_above(&self, cutoff: Lsn) -> HashSet<LayerName> {
        let bounds: BTreeSet<Key> = self
            .layers
            .keys()
            .flat_map(|n| [n.key_range().start, n.key_range().end])
            .collect();
        let mut visited = HashSet::new();
        for key in bounds.into_iter().filter(|k| *k != Key::MAX) {
            let column = self.column(key);
            let starts = column
                .iter()
                .map(|h| h.name.lsn_range().start)
                .flat_map(|s| [s, Lsn(s.0.saturating_add(1))])
                .filter(|s| *s > cutoff);
            let points: BTreeSet<Lsn> = std::iter::once(cutoff).chain(starts).collect();
            for lsn in points {
                walk(&column, lsn, true, |layer, _| {
                    visited.insert(layer.name.clone());
                });
            }
        }
        visited
    }

    /// GC's rule: the layers no read at or above `cutoff` visits, among those `removable`
    /// allows (for example, only layers already in remote storage).
    pub fn gc_plan(
        &self,
        cutoff: Lsn,
        removable: impl Fn(&LayerHandle) -> bool,
    ) -> Vec<Arc<LayerHandle>> {
        #[cfg(feature = "testing")]
        if self.mutated(Mutation::GcCoverageRule) {
            return self.gc_by_coverage(cutoff, removable);
        }
        let visited = self.visited_at_or_above(cutoff);
        self.layers
            .values()
            .filter(|h| !visited.contains(&h.name) && removable(h))
            .cloned()
            .collect()
    }
}
