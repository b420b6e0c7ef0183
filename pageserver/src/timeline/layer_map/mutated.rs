//! The broken variants of `timeline::mutation` as the layer map plays them (builds with the
//! `testing` feature only). Each replaces one decision of the real code; the lifecycle
//! simulation must catch every one.

use super::{Change, LayerHandle, LayerMap};
use crate::timeline::mutation::Mutation;
use index_part::names::LayerName;
use layer_format::{Key, Lsn};
use std::sync::Arc;

impl LayerMap {
    /// Plays a deliberately broken variant from now on (`None`: the real code).
    pub fn set_mutation(&mut self, mutation: Option<Mutation>) {
        self.mutation = mutation;
    }

    /// Whether the broken variant `m` is playing.
    pub(super) fn mutated(&self, m: Mutation) -> bool {
        self.mutation == Some(m)
    }

    /// [`Mutation::DuplicateDropsInputs`]: outputs already in the map are dropped from the
    /// change, which goes on.
    pub(super) fn mutate_duplicates(&self, change: Change) -> Change {
        if !self.mutated(Mutation::DuplicateDropsInputs) {
            return change;
        }
        let fresh = |v: Vec<Arc<LayerHandle>>| -> Vec<Arc<LayerHandle>> {
            v.into_iter()
                .filter(|h| !self.layers.contains_key(&h.name))
                .collect()
        };
        match change {
            Change::Compaction { inputs, outputs } => Change::Compaction {
                inputs,
                outputs: fresh(outputs),
            },
            Change::Images { outputs } => Change::Images {
                outputs: fresh(outputs),
            },
            other => other,
        }
    }

    /// [`Mutation::L0ByKeyRange`]: every delta over the whole key space that `usable` allows.
    pub(super) fn l0_by_key_range(
        &self,
        usable: impl Fn(&LayerHandle) -> bool,
    ) -> Vec<Arc<LayerHandle>> {
        let mut l0: Vec<&Arc<LayerHandle>> = self
            .layers
            .values()
            .filter(|h| h.name.is_delta() && *h.name.key_range() == (Key::MIN..Key::MAX))
            .collect();
        l0.sort_by_key(|h| h.name.lsn_range().start);
        l0.into_iter().filter(|h| usable(h)).cloned().collect()
    }

    /// [`Mutation::GcCoverageRule`]: layers below the cutoff that an image at or above their
    /// first LSN covers.
    pub(super) fn gc_by_coverage(
        &self,
        cutoff: Lsn,
        removable: impl Fn(&LayerHandle) -> bool,
    ) -> Vec<Arc<LayerHandle>> {
        let images: Vec<&LayerName> = self
            .layers
            .keys()
            .filter(|n| !n.is_delta() && n.lsn_range().start <= cutoff)
            .collect();
        self.layers
            .values()
            .filter(|h| h.name.lsn_range().end <= cutoff && removable(h))
            .filter(|h| {
                let (keys, start) = (h.name.key_range(), h.name.lsn_range().start);
                images.iter().any(|i| {
                    **i != h.name
                        && i.lsn_range().start >= start
                        && i.key_range().start <= keys.start
                        && i.key_range().end >= keys.end
                })
            })
            .cloned()
            .collect()
    }

    /// [`Mutation::InstallOverSnapshot`]: what installing `snapshot` without `inputs` and with
    /// `outputs` over the map adds and removes: layers flushed since the snapshot are lost,
    /// layers removed since come back.
    pub(super) fn over_snapshot(
        &self,
        snapshot: Vec<Arc<LayerHandle>>,
        inputs: Vec<Arc<LayerHandle>>,
        outputs: Vec<Arc<LayerHandle>>,
    ) -> (Vec<Arc<LayerHandle>>, Vec<Arc<LayerHandle>>) {
        let in_snapshot = |n: &LayerName| snapshot.iter().any(|h| h.name == *n);
        let is_input = |n: &LayerName| inputs.iter().any(|h| h.name == *n);
        let mut removed: Vec<Arc<LayerHandle>> = self
            .layers
            .values()
            .filter(|h| is_input(&h.name) || !in_snapshot(&h.name))
            .cloned()
            .collect();
        removed.dedup_by(|a, b| a.name == b.name);
        let mut added = outputs;
        added.extend(
            snapshot
                .iter()
                .filter(|h| !is_input(&h.name) && !self.layers.contains_key(&h.name))
                .cloned(),
        );
        (added, removed)
    }
}
