//! The layer map of a timeline: its layer files and the index fields that describe them, kept
//! together under the timeline's `layers` lock (brief I6, I10).
//!
//! Reads, compaction and GC agree on this one structure:
//! * [`LayerMap::visits`] is the one query: which layers a read of `(key, lsn)` visits, in order,
//!   and which of each layer's records it takes (`query.rs`). The read path follows it.
//! * [`LayerMap::gc_plan`] removes a layer only if no read at any key and any LSN at or above
//!   the cutoff visits it, decided by that same query.
//! * [`LayerMap::l0_run`] chooses compaction inputs by recorded level ([`Level`]), oldest first
//!   and without gaps in the L0 sequence, so that the outputs' LSN range overlaps no other delta.
//! * [`LayerMap::apply`] is the only way the map changes: flush, compaction, image creation, GC,
//!   removal, and load (which is also how a reset rebuilds the map). It checks the change
//!   against the current map (inputs still present, no output already present), checks the
//!   structural invariant on the result (`invariant.rs`), and derives the next `IndexPart`.
//!
//! **Structural invariant** (stated in docs/architecture.md too):
//! 1. every delta layer has a level, and an L0 layer covers the whole key space;
//! 2. delta layers whose key ranges intersect have disjoint LSN ranges;
//! 3. every L1 layer lies below every L0 layer (`l1.lsn_end <= l0.lsn_start`);
//! 4. image layers whose key ranges intersect are at different LSNs;
//! 5. no layer holds a record above `disk_consistent_lsn`, and the GC cutoff is not above it.
//!
//! With 2 and 4, each step of the read query has exactly one candidate: the read path's choice
//! is unambiguous, without a tie-break. A change that would break the invariant is a bug of
//! its caller: it panics in test builds and is refused with an error in release builds; an
//! index that breaks it (written by an older build) is refused at load with an error.

mod invariant;
#[cfg(feature = "testing")]
mod mutated;
mod query;

pub use query::Visit;

use super::LayerHandle;
use crate::metrics::METRICS;
#[cfg(feature = "testing")]
use crate::timeline::mutation::Mutation;
use index_part::names::{Generation, LayerName};
use index_part::{IndexPart, Level, TimelineMetadata};
use layer_format::Lsn;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

/// A change to the layer map; [`LayerMap::apply`] is the only way to make one.
#[derive(Debug)]
pub enum Change {
    /// Every layer of an index, into an empty map (load, attach, reset).
    Load {
        /// The layers.
        layers: Vec<Arc<LayerHandle>>,
    },
    /// A flush: one new L0 layer; `disk_consistent_lsn` becomes its last LSN.
    Flush {
        /// The new L0 layer.
        layer: Arc<LayerHandle>,
    },
    /// A compaction: `inputs` (the oldest L0 layers, as [`LayerMap::l0_run`] chose them) are
    /// replaced by L1 `outputs` over the same LSN range.
    Compaction {
        /// The L0 layers merged, as they were in the map when chosen.
        inputs: Vec<Arc<LayerHandle>>,
        /// The L1 layers written.
        outputs: Vec<Arc<LayerHandle>>,
    },
    /// New image layers.
    Images {
        /// The image layers written.
        outputs: Vec<Arc<LayerHandle>>,
    },
    /// GC: `remove` leaves the map (as [`LayerMap::gc_plan`] chose it) and the GC cutoff rises
    /// to `cutoff`.
    Gc {
        /// The new cutoff (never lowered).
        cutoff: Lsn,
        /// The layers to remove.
        remove: Vec<Arc<LayerHandle>>,
    },
    /// Layers removed by name (names not in the map are ignored).
    Remove {
        /// The layers.
        names: Vec<LayerName>,
    },
    /// The broken variant `InstallOverSnapshot` (tests only): the map becomes `snapshot`
    /// without `inputs`, with `outputs`.
    #[cfg(feature = "testing")]
    OverSnapshot {
        /// The layers when the compaction chose its inputs.
        snapshot: Vec<Arc<LayerHandle>>,
        /// Its inputs.
        inputs: Vec<Arc<LayerHandle>>,
        /// Its outputs.
        outputs: Vec<Arc<LayerHandle>>,
    },
}

impl Change {
    /// The layers the change adds.
    fn added(&self) -> &[Arc<LayerHandle>] {
        match self {
            Change::Load { layers } => layers,
            Change::Flush { layer } => std::slice::from_ref(layer),
            Change::Compaction { outputs, .. } | Change::Images { outputs } => outputs,
            Change::Gc { .. } | Change::Remove { .. } => &[],
            #[cfg(feature = "testing")]
            Change::OverSnapshot { outputs, .. } => outputs,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Change::Load { .. } => "load",
            Change::Flush { .. } => "flush",
            Change::Compaction { .. } => "compaction",
            Change::Images { .. } => "images",
            Change::Gc { .. } => "gc",
            Change::Remove { .. } => "remove",
            #[cfg(feature = "testing")]
            Change::OverSnapshot { .. } => "compaction",
        }
    }
}

/// Why [`LayerMap::apply`] refused a change. A refused change changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// An input is no longer in the map (another job or GC removed it, or a reset replaced
    /// the map): the work was done against a state that is gone.
    #[error("input layer {0} is no longer in the layer map")]
    InputGone(LayerName),
    /// A new layer's name is already in the map: the change is a duplicate; its inputs stay.
    #[error("new layer {0} is already in the layer map (a duplicate); nothing changed")]
    Duplicate(LayerName),
    /// The change (or a loaded index) would break the structural invariant.
    #[error("layer map {change}: {reason}")]
    Invariant {
        /// Which change.
        change: &'static str,
        /// What would break.
        reason: String,
    },
}

impl ApplyError {
    fn label(&self) -> &'static str {
        match self {
            ApplyError::InputGone(_) => "input_gone",
            ApplyError::Duplicate(_) => "duplicate",
            ApplyError::Invariant { .. } => "invariant",
        }
    }
}

/// What a change did: the caller queues the uploads of `added`, then `index`, then the
/// deletion of `removed` (I5, I8), and removes the local files of `removed`.
#[derive(Debug)]
pub struct Applied {
    /// Layers that entered the map.
    pub added: Vec<Arc<LayerHandle>>,
    /// Layers that left the map.
    pub removed: Vec<Arc<LayerHandle>>,
    /// The index of the map as it is now.
    pub index: IndexPart,
}

/// The layer files of a timeline and the index fields that describe them.
#[derive(Debug)]
pub struct LayerMap {
    layers: BTreeMap<LayerName, Arc<LayerHandle>>,
    generation: Generation,
    disk_consistent_lsn: Lsn,
    gc_cutoff_lsn: Option<Lsn>,
    metadata: TimelineMetadata,
    deleted_at: Option<SystemTime>,
    #[cfg(feature = "testing")]
    mutation: Option<Mutation>,
}

impl LayerMap {
    /// The map of `index` for an attachment of `generation`, with layer files in `dir`; goes
    /// through [`Change::Load`]. An index that breaks the structural invariant is refused.
    pub fn load(
        index: &IndexPart,
        generation: Generation,
        dir: &Path,
    ) -> Result<(LayerMap, Applied), ApplyError> {
        let mut map = LayerMap {
            layers: BTreeMap::new(),
            generation,
            disk_consistent_lsn: index.disk_consistent_lsn,
            gc_cutoff_lsn: index.gc_cutoff_lsn,
            metadata: index.metadata,
            deleted_at: index.deleted_at,
            #[cfg(feature = "testing")]
            mutation: None,
        };
        let layers = index
            .layers
            .iter()
            .map(|(name, meta)| Arc::new(LayerHandle::new(name.clone(), *meta, dir)))
            .collect();
        let applied = map.apply(Change::Load { layers })?;
        Ok((map, applied))
    }

    /// The layers, by name.
    pub fn layers(&self) -> impl Iterator<Item = &Arc<LayerHandle>> {
        self.layers.values()
    }

    /// A layer by name.
    pub fn get(&self, name: &LayerName) -> Option<&Arc<LayerHandle>> {
        self.layers.get(name)
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether the map has no layer.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Every record at or below it is in the layers.
    pub fn disk_consistent_lsn(&self) -> Lsn {
        self.disk_consistent_lsn
    }

    /// Reads below it are refused (0 before any GC).
    pub fn gc_cutoff_lsn(&self) -> Lsn {
        self.gc_cutoff_lsn.unwrap_or(Lsn(0))
    }

    /// The index of the map as it is now.
    pub fn index(&self) -> IndexPart {
        IndexPart {
            generation: self.generation,
            layers: self
                .layers
                .iter()
                .map(|(n, h)| (n.clone(), h.meta))
                .collect(),
            disk_consistent_lsn: self.disk_consistent_lsn,
            gc_cutoff_lsn: self.gc_cutoff_lsn,
            metadata: self.metadata,
            deleted_at: self.deleted_at,
        }
    }

    /// The oldest L0 layers in LSN order, stopping at the first one `usable` refuses: the
    /// only inputs a compaction may take (a prefix of the L0 sequence, so that the outputs'
    /// LSN range is disjoint from every other delta layer's).
    pub fn l0_run(&self, usable: impl Fn(&LayerHandle) -> bool) -> Vec<Arc<LayerHandle>> {
        #[cfg(feature = "testing")]
        if self.mutated(Mutation::L0ByKeyRange) {
            return self.l0_by_key_range(usable);
        }
        let mut l0: Vec<&Arc<LayerHandle>> = self
            .layers
            .values()
            .filter(|h| h.meta.level == Some(Level::L0))
            .collect();
        l0.sort_by_key(|h| h.name.lsn_range().start);
        l0.into_iter().take_while(|h| usable(h)).cloned().collect()
    }

    /// Applies `change` to the map as it is now, or refuses it and changes nothing.
    pub fn apply(&mut self, change: Change) -> Result<Applied, ApplyError> {
        let kind = change.kind();
        match self.apply_inner(change) {
            Ok(applied) => Ok(applied),
            Err(e) => {
                METRICS
                    .layer_map_rejected
                    .with_label_values(&[kind, e.label()])
                    .inc();
                Err(e)
            }
        }
    }

    fn apply_inner(&mut self, change: Change) -> Result<Applied, ApplyError> {
        let kind = change.kind();
        #[cfg(feature = "testing")]
        let change = self.mutate_duplicates(change);
        // A duplicate changes nothing (I10): checked before anything else.
        let mut seen = HashSet::new();
        for a in change.added() {
            if self.layers.contains_key(&a.name) || !seen.insert(&a.name) {
                return Err(ApplyError::Duplicate(a.name.clone()));
            }
        }
        let (added, removed, dcl, cutoff) = match change {
            Change::Load { layers } => {
                if !self.layers.is_empty() {
                    return Err(self.violation(kind, "load into a map that has layers".into()));
                }
                (layers, Vec::new(), None, None)
            }
            Change::Flush { layer } => {
                if layer.meta.level != Some(Level::L0) {
                    return Err(self.violation(kind, format!("{} is not an L0 layer", layer.name)));
                }
                let range = layer.name.lsn_range();
                if range.start <= self.disk_consistent_lsn && self.disk_consistent_lsn.0 > 0 {
                    return Err(self.violation(
                        kind,
                        format!(
                            "{} starts at or below disk_consistent_lsn {}",
                            layer.name, self.disk_consistent_lsn
                        ),
                    ));
                }
                (vec![layer], Vec::new(), Some(Lsn(range.end.0 - 1)), None)
            }
            Change::Compaction { inputs, outputs } => {
                self.check_present(&inputs)?;
                let run = self.l0_run(|_| true);
                let is_prefix = inputs.len() <= run.len()
                    && inputs.iter().zip(&run).all(|(i, r)| Arc::ptr_eq(i, r));
                if !is_prefix {
                    return Err(self.violation(
                        kind,
                        "inputs are not the oldest L0 layers in LSN order".into(),
                    ));
                }
                if let Some(o) = outputs.iter().find(|o| o.meta.level != Some(Level::L1)) {
                    return Err(self.violation(kind, format!("output {} is not L1", o.name)));
                }
                (outputs, inputs, None, None)
            }
            Change::Images { outputs } => {
                if let Some(o) = outputs.iter().find(|o| o.name.is_delta()) {
                    return Err(self.violation(kind, format!("{} is not an image", o.name)));
                }
                (outputs, Vec::new(), None, None)
            }
            Change::Gc { cutoff, remove } => {
                self.check_present(&remove)?;
                (Vec::new(), remove, None, Some(cutoff))
            }
            Change::Remove { names } => {
                let remove = names
                    .iter()
                    .filter_map(|n| self.layers.get(n).cloned())
                    .collect();
                (Vec::new(), remove, None, None)
            }
            #[cfg(feature = "testing")]
            Change::OverSnapshot {
                snapshot,
                inputs,
                outputs,
            } => {
                let (added, removed) = self.over_snapshot(snapshot, inputs, outputs);
                (added, removed, None, None)
            }
        };
        // The result, checked before it replaces the map.
        let mut layers = self.layers.clone();
        for r in &removed {
            layers.remove(&r.name);
        }
        for a in &added {
            layers.insert(a.name.clone(), a.clone());
        }
        let dcl = dcl.map_or(self.disk_consistent_lsn, |d| {
            d.max(self.disk_consistent_lsn)
        });
        let cutoff = match (cutoff, self.gc_cutoff_lsn) {
            (Some(c), Some(old)) => Some(c.max(old)),
            (c, old) => c.or(old),
        };
        if let Err(reason) = invariant::check(&layers, dcl, cutoff) {
            return Err(self.violation(kind, reason));
        }
        self.layers = layers;
        self.disk_consistent_lsn = dcl;
        self.gc_cutoff_lsn = cutoff;
        Ok(Applied {
            added,
            removed,
            index: self.index(),
        })
    }

    /// Every layer of `inputs` is in the map as the same object.
    fn check_present(&self, inputs: &[Arc<LayerHandle>]) -> Result<(), ApplyError> {
        match inputs
            .iter()
            .find(|h| !self.layers.get(&h.name).is_some_and(|m| Arc::ptr_eq(m, h)))
        {
            Some(h) => Err(ApplyError::InputGone(h.name.clone())),
            None => Ok(()),
        }
    }

    /// A change that would break the structural invariant: a bug of the caller (a panic in
    /// test builds), except at load, where an index written by an older build is refused.
    fn violation(&self, change: &'static str, reason: String) -> ApplyError {
        if cfg!(any(test, feature = "testing")) && change != "load" {
            panic!("layer map invariant: {change}: {reason}");
        }
        tracing::error!(
            change,
            reason,
            "refused a change that breaks the layer map invariant"
        );
        ApplyError::Invariant { change, reason }
    }

    /// Checks the structural invariant of the map as it is (for tests and simulations).
    pub fn check_invariant(&self) -> Result<(), String> {
        invariant::check(&self.layers, self.disk_consistent_lsn, self.gc_cutoff_lsn)
    }
}

#[cfg(test)]
mod tests;
