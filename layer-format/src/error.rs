//! The one error type of this crate. Every variant names the file and, where it applies, the
//! byte offset, so that an operator can find what is wrong without a debugger.

use crate::value::ValueError;
use std::io;
use std::path::PathBuf;

/// An error reading, writing or publishing a layer file.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// An I/O operation failed.
    #[error("{op} {path}{}: {source}", at(*offset))]
    Io {
        /// What was being done (`"write"`, `"fsync"`, `"rename"`, ...).
        op: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The byte offset, for reads and writes.
        offset: Option<u64>,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Publishing found a file under the final name; neither file was changed.
    #[error("{path} already exists; it was left untouched")]
    AlreadyExists {
        /// The final name that is taken.
        path: PathBuf,
    },
    /// The file does not start a layer summary where one must be: a foreign or mangled file.
    #[error("{path} at offset {offset}: not a layer file (magic {found:02x?})")]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// Offset of the summary block.
        offset: u64,
        /// The bytes found in place of the magic.
        found: [u8; 8],
    },
    /// The file was written by a format version this build does not read.
    #[error(
        "{path}: layer format version {version} is not supported (this build reads {supported})"
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version found.
        version: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// The file is shorter or longer than its summary says, or too short to hold a summary.
    #[error("{path}: file is {actual} bytes, expected {expected}")]
    SizeMismatch {
        /// The file.
        path: PathBuf,
        /// The size the summary (or the format) requires.
        expected: u64,
        /// The size on disk.
        actual: u64,
    },
    /// A stored checksum does not match the bytes it covers.
    #[error(
        "{path} at offset {offset}: {what} checksum mismatch (stored {expected:08x}, computed {actual:08x})"
    )]
    ChecksumMismatch {
        /// The file.
        path: PathBuf,
        /// Offset of the block or blob whose checksum failed.
        offset: u64,
        /// Which structure (`"summary"`, `"index block"`, `"blob"`, `"file"`).
        what: &'static str,
        /// The stored checksum.
        expected: u32,
        /// The checksum of the bytes read.
        actual: u32,
    },
    /// A structure passed its checksum but breaks a rule of the format.
    #[error("{path} at offset {offset}: corrupt {what}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Offset of the structure.
        offset: u64,
        /// Which structure.
        what: &'static str,
        /// The rule it breaks.
        reason: String,
    },
    /// A value inside a blob is malformed.
    #[error("{path} at offset {offset}: bad value: {source}")]
    BadValue {
        /// The file.
        path: PathBuf,
        /// Offset of the blob.
        offset: u64,
        /// What is wrong.
        #[source]
        source: ValueError,
    },
}

fn at(offset: Option<u64>) -> String {
    offset
        .map(|o| format!(" at offset {o}"))
        .unwrap_or_default()
}

impl LayerError {
    /// Builds an [`LayerError::Io`] without an offset.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> LayerError {
        LayerError::Io {
            op,
            path: path.into(),
            offset: None,
            source,
        }
    }

    /// Whether this error is a checksum or structure failure of the file's content, as opposed
    /// to an I/O failure or a refused publish.
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            LayerError::BadMagic { .. }
                | LayerError::UnsupportedVersion { .. }
                | LayerError::SizeMismatch { .. }
                | LayerError::ChecksumMismatch { .. }
                | LayerError::Corrupt { .. }
                | LayerError::BadValue { .. }
        )
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = LayerError> = std::result::Result<T, E>;
