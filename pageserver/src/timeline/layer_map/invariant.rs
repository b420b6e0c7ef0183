//! The structural invariant of the layer map (numbered as in the module doc of `mod.rs`), in
//! O(n log n) plus the overlaps found: deltas are swept in LSN order against those still open,
//! images grouped by LSN and swept in key order.

use super::LayerHandle;
use index_part::Level;
use index_part::names::LayerName;
use layer_format::{Key, Lsn};
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

fn keys_meet(a: &Range<Key>, b: &Range<Key>) -> bool {
    a.start < b.end && b.start < a.end
}

/// `Ok` if the layers, `disk_consistent_lsn` and the GC cutoff obey the invariant; otherwise
/// what breaks it, naming the layers.
pub(super) fn check(
    layers: &BTreeMap<LayerName, Arc<LayerHandle>>,
    disk_consistent_lsn: Lsn,
    gc_cutoff: Option<Lsn>,
) -> Result<(), String> {
    // 5. Nothing above disk_consistent_lsn; the cutoff not above it.
    let limit = Lsn(disk_consistent_lsn.0.saturating_add(1));
    if let Some(h) = layers.values().find(|h| h.name.lsn_range().end > limit) {
        return Err(format!(
            "{} holds records above disk_consistent_lsn {disk_consistent_lsn}",
            h.name
        ));
    }
    if let Some(c) = gc_cutoff
        && c > disk_consistent_lsn
    {
        return Err(format!(
            "gc cutoff {c} is above disk_consistent_lsn {disk_consistent_lsn}"
        ));
    }
    // 1. Levels.
    for h in layers.values() {
        match (h.name.is_delta(), h.meta.level) {
            (true, None) => return Err(format!("delta layer {} has no level", h.name)),
            (false, Some(_)) => return Err(format!("image layer {} has a level", h.name)),
            (true, Some(Level::L0)) if *h.name.key_range() != (Key::MIN..Key::MAX) => {
                return Err(format!(
                    "L0 layer {} does not cover the whole key space",
                    h.name
                ));
            }
            _ => {}
        }
    }
    // 2. Deltas that meet in keys are disjoint in LSNs: sweep by start, against the open ones.
    let mut deltas: Vec<&LayerName> = layers
        .values()
        .filter(|h| h.name.is_delta())
        .map(|h| &h.name)
        .collect();
    deltas.sort_by_key(|n| n.lsn_range().start);
    let mut open: Vec<&LayerName> = Vec::new();
    for d in &deltas {
        let start = d.lsn_range().start;
        open.retain(|o| o.lsn_range().end > start);
        if let Some(o) = open
            .iter()
            .find(|o| keys_meet(o.key_range(), d.key_range()))
        {
            return Err(format!("delta layers {o} and {d} overlap in keys and LSNs"));
        }
        open.push(d);
    }
    // 3. Every L1 below every L0.
    let lowest_l0 = layers
        .values()
        .filter(|h| h.meta.level == Some(Level::L0))
        .min_by_key(|h| h.name.lsn_range().start);
    let highest_l1 = layers
        .values()
        .filter(|h| h.meta.level == Some(Level::L1))
        .max_by_key(|h| h.name.lsn_range().end);
    if let (Some(l0), Some(l1)) = (lowest_l0, highest_l1)
        && l1.name.lsn_range().end > l0.name.lsn_range().start
    {
        return Err(format!(
            "L1 layer {} is not below L0 layer {}",
            l1.name, l0.name
        ));
    }
    // 4. Images that meet in keys are at different LSNs.
    let mut by_lsn: BTreeMap<Lsn, Vec<&LayerName>> = BTreeMap::new();
    for h in layers.values().filter(|h| !h.name.is_delta()) {
        by_lsn
            .entry(h.name.lsn_range().start)
            .or_default()
            .push(&h.name);
    }
    for images in by_lsn.values_mut() {
        images.sort_by_key(|n| n.key_range().start);
        for pair in images.windows(2) {
            if keys_meet(pair[0].key_range(), pair[1].key_range()) {
                return Err(format!(
                    "image layers {} and {} overlap in keys at one LSN",
                    pair[0], pair[1]
                ));
            }
        }
    }
    Ok(())
}
