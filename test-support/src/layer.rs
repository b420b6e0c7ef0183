//! The set-up of the layer-file tests: both I/O engines, a delta layer writer, and the model
//! of what a layer's `get` returns. The engines are both real (no mock): a machine without
//! io_uring fails these tests rather than skipping half of them.

use layer_format::io::{EngineChoice, IoEngine, open_engine};
use layer_format::name::Generation;
use layer_format::{DeltaLayerWriter, Key, Lsn, Value};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use crate::values::key;

/// Both engines: every behaviour is tested on each.
pub fn engines() -> Vec<Arc<dyn IoEngine>> {
    vec![
        open_engine(EngineChoice::Std).unwrap(),
        open_engine(EngineChoice::Uring).expect("io_uring must be available on this machine"),
    ]
}

/// The records of a delta layer, by key and LSN.
pub type LayerModel = BTreeMap<(Key, Lsn), Value>;

/// What a layer's `get(key, lsn)` must return: the records of `k` at or below `lsn`, newest
/// first, down to and including the first base.
pub fn model_get(model: &LayerModel, k: Key, lsn: Lsn) -> Vec<(Lsn, Value)> {
    let mut out = Vec::new();
    for ((_, l), v) in model.range((k, Lsn(0))..=(k, lsn)).rev() {
        out.push((*l, v.clone()));
        if v.is_base() {
            break;
        }
    }
    out
}

/// A delta layer writer of generation 1 in `dir`, over keys `keys` and LSNs `lsns`.
pub fn delta_writer(
    engine: &Arc<dyn IoEngine>,
    dir: &Path,
    keys: Range<u128>,
    lsns: Range<u64>,
) -> DeltaLayerWriter {
    DeltaLayerWriter::new(
        engine,
        dir,
        Generation(1),
        key(keys.start)..key(keys.end),
        Lsn(lsns.start)..Lsn(lsns.end),
    )
    .unwrap()
}
