//! Deliberately broken variants of the layer-map logic, in builds with the `testing` feature
//! only, so that the lifecycle simulation can show that it catches each (a checker that cannot
//! fail is worthless). Set through `PageServerConf::layer_map_mutation`, which no config file
//! can set; production builds do not contain these branches.

/// A broken variant; `None` in the setting is the real code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    /// GC removes by a coverage rule of its own (the rule before the layer map had one query):
    /// a layer whose records are all below the cutoff goes when an image at or below the
    /// cutoff, at or above its last record, covers its key range.
    GcCoverageRule,
    /// Compaction recognises L0 layers by their key range (the whole key space) instead of
    /// their recorded level, so a compaction with a single output feeds the next one.
    L0ByKeyRange,
    /// A change with an output already in the map drops that output but still removes its
    /// inputs.
    DuplicateDropsInputs,
}
