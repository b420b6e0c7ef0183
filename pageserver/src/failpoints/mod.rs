//! Every failpoint of the product in one table: its name (brief section 7, plus `layer-write`
//! and `layer-map-install`), the file where it fires, and what its actions do there.
//!
//! The failpoints themselves are `fail` crate call sites, compiled in only with the `testing`
//! feature; the format crate's four fire inside `layer-format` (which cannot see this table, as
//! it depends on nothing of the server). A test reads the sources and checks that this table
//! names exactly the failpoints that exist, each in its file, and that
//! `docs/crash-consistency.md` names every one. A new failpoint gets its row here.
//!
//! Every failpoint supports `return` (an I/O error where the code can fail with one), `pause`,
//! `panic` and `exit` (the process ends at once, as in a crash), configured with
//! `PUT /v1/failpoints` or `FAILPOINTS="name=actions;..."` at start; `control.rs` configures
//! them.

mod control;
pub use control::{PauseState, configure, configure_all, enabled, paused};

/// One failpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failpoint {
    /// Its name.
    pub name: &'static str,
    /// The source file (from the workspace root) where it fires.
    pub file: &'static str,
    /// Where in the work it fires, and what `return` does there.
    pub fires: &'static str,
}

const fn fp(name: &'static str, file: &'static str, fires: &'static str) -> Failpoint {
    Failpoint { name, file, fires }
}

/// Every failpoint, in the order work meets them.
pub const FAILPOINTS: &[Failpoint] = &[
    fp(
        "layer-write",
        "layer-format/src/writer/flusher.rs",
        "each write of a layer file; `return` fails it with ENOSPC, as a full disk does",
    ),
    fp(
        "layer-writer-before-finish",
        "layer-format/src/writer/core.rs",
        "start of a layer writer's finish; `return` fails it and the temp file is removed",
    ),
    fp(
        "layer-fsync",
        "layer-format/src/durable/temp.rs",
        "in place of a layer file's fsync; `return` acts as a failed fsync (I2)",
    ),
    fp(
        "layer-publish-after-rename",
        "layer-format/src/durable/publish.rs",
        "after the rename(s) of a publish, before the directory fsync",
    ),
    fp(
        "flush-after-publish",
        "pageserver/src/timeline/flush.rs",
        "a flushed layer is published, not yet in the layer map or the index",
    ),
    fp(
        "compaction-after-output",
        "pageserver/src/timeline/compaction.rs",
        "after each finished compaction output (`1*off->return` fails the second)",
    ),
    fp(
        "compaction-after-publish",
        "pageserver/src/timeline/compaction.rs",
        "compaction outputs renamed, not yet installed",
    ),
    fp(
        "layer-map-install",
        "pageserver/src/timeline/install.rs",
        "inside the one install sequence, with the layer-map lock held (`panic`, `pause`, `exit`)",
    ),
    fp(
        "upload-layer-before",
        "pageserver/src/remote/upload_queue/execute.rs",
        "before a layer object's create-only put",
    ),
    fp(
        "upload-layer-after",
        "pageserver/src/remote/upload_queue/execute.rs",
        "after a layer object's put landed, before it counts as uploaded",
    ),
    fp(
        "upload-index-before",
        "pageserver/src/remote/upload_queue/execute.rs",
        "before an index version's create-only put",
    ),
    fp(
        "upload-index-after",
        "pageserver/src/remote/upload_queue/execute.rs",
        "after an index version landed, before the generation check and acknowledgement",
    ),
    fp(
        "deletion-before-execute",
        "pageserver/src/remote/upload_queue/execute.rs",
        "before the remote deletions an uploaded index allows",
    ),
];

/// The failpoint named `name`, if there is one.
pub fn find(name: &str) -> Option<&'static Failpoint> {
    FAILPOINTS.iter().find(|f| f.name == name)
}

#[cfg(test)]
mod tests;
