//! Errors reading, validating or choosing an index. Each says what is wrong and where: the
//! line and column of malformed JSON, the path of an unknown field, the layer at fault.

use crate::names::{Generation, IndexObjectName};
use layer_format::Lsn;

/// Why an `index_part.json` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// Not JSON, or JSON of the wrong shape.
    #[error("malformed index at line {line}, column {column}: {message}")]
    Json {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser expected.
        message: String,
    },
    /// Written by a newer build: never read as if it were an older version.
    #[error("index version {found} is newer than this build reads (at most {latest})")]
    UnsupportedVersion {
        /// The version in the file.
        found: u32,
        /// The newest version this build reads.
        latest: u32,
    },
    /// A field this version does not have (strict mode).
    #[error("unknown field `{path}` in a version {version} index")]
    UnknownField {
        /// Dotted path of the field.
        path: String,
        /// The index's version.
        version: u32,
    },
    /// A field whose value is not of its form.
    #[error("field `{field}`: {value:?} is not {expected}")]
    BadField {
        /// Dotted path of the field.
        field: String,
        /// The value found.
        value: String,
        /// What it must be.
        expected: &'static str,
    },
    /// A layer name that does not parse.
    #[error("layer {name:?}: malformed name: {reason}")]
    MalformedLayerName {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The same layer listed twice.
    #[error("layer {name} is listed more than once")]
    DuplicateLayer {
        /// The layer.
        name: String,
    },
    /// A layer with records above `disk_consistent_lsn`.
    #[error(
        "layer {name} extends to {lsn_end} (exclusive), above disk_consistent_lsn {disk_consistent_lsn}"
    )]
    LayerAboveDiskConsistentLsn {
        /// The layer.
        name: String,
        /// The layer's exclusive LSN end.
        lsn_end: Lsn,
        /// The index's `disk_consistent_lsn`.
        disk_consistent_lsn: Lsn,
    },
    /// A layer written by a generation newer than the index's own.
    #[error("layer {name} has generation {layer}, above the index's generation {index}")]
    GenerationAboveIndex {
        /// The layer.
        name: String,
        /// The layer's generation.
        layer: Generation,
        /// The index's generation.
        index: Generation,
    },
    /// A layer whose recorded size is zero or negative.
    #[error("layer {name} has file_size {size}; a layer file is never empty")]
    BadFileSize {
        /// The layer.
        name: String,
        /// The size recorded.
        size: i64,
    },
    /// A layer's level is missing, on the wrong kind of layer, or breaks its rule.
    #[error("layer {name}: {reason}")]
    BadLevel {
        /// The layer.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A rule between top-level fields is broken.
    #[error("{0}")]
    Inconsistent(String),
    /// The generation inside the index differs from the one in its object name.
    #[error("{object} holds an index of generation {found}")]
    GenerationMismatch {
        /// The object.
        object: IndexObjectName,
        /// The generation the JSON states.
        found: Generation,
    },
}

/// Why no sequence number can be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// Every sequence number of the generation has been used.
    #[error("every index sequence number of generation {0} has been used")]
    SequenceExhausted(Generation),
}
