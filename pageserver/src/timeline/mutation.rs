//! Deliberately broken variants of the layer-map logic, in builds with the `testing` feature
//! only, so that the lifecycle simulation and the race suite can show that they catch each (a
//! checker that cannot fail is worthless). Set through `PageServerConf::layer_map_mutation`
//! (`layer_map_mutation = "InstallOverSnapshot"` in the config, refused by other builds);
//! production builds do not contain these branches.

/// A broken variant; `None` in the setting is the real code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    /// GC removes by a coverage rule of its own instead of the read query: a layer whose
    /// records are all below the cutoff goes when an image at or below the cutoff, at or
    /// above the layer's first LSN, covers its key range. Blind to a delta that straddles the
    /// image (records above the image that reads still need). The rule before the layer map
    /// compared with the layer's last LSN instead, which is sound under this read path (never
    /// removes what the query visits) and so no broken variant of it.
    GcCoverageRule,
    /// Reads by a rule of their own (the read path before the layer map): a delta layer is
    /// read whole down to its start even when an image lies inside its LSN range, and the read
    /// goes on below it. GC still follows the query, so reads visit layers GC removed.
    ReadsIgnoreImagesInsideDeltas,
    /// Compaction chooses its inputs as before the layer map: every delta layer over the
    /// whole key space (taken for an L0 by its key range, so a compaction with a single
    /// output feeds the next one) that is already uploaded, whether or not an older one is
    /// still pending, instead of the oldest L0 layers by recorded level up to the first one
    /// not uploaded.
    L0ByKeyRange,
    /// A change with an output already in the map drops that output but still removes its
    /// inputs.
    DuplicateDropsInputs,
    /// Reftable's bug: a compaction installs the layer list of the snapshot it took before
    /// its work (minus its inputs, plus its outputs) over the map as it is now, so layers
    /// flushed meanwhile are lost and layers removed meanwhile come back.
    InstallOverSnapshot,
}

impl std::str::FromStr for Mutation {
    type Err = String;
    fn from_str(s: &str) -> Result<Mutation, String> {
        Ok(match s {
            "GcCoverageRule" => Mutation::GcCoverageRule,
            "ReadsIgnoreImagesInsideDeltas" => Mutation::ReadsIgnoreImagesInsideDeltas,
            "L0ByKeyRange" => Mutation::L0ByKeyRange,
            "DuplicateDropsInputs" => Mutation::DuplicateDropsInputs,
            "InstallOverSnapshot" => Mutation::InstallOverSnapshot,
            other => return Err(format!("unknown broken variant {other:?}")),
        })
    }
}
