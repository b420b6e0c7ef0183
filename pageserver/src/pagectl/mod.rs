//! `pagectl`: tools for operators, on files copied out of a work directory, and on the bucket.
//!
//! * `pagectl index-part show FILE`: what an index holds (layer counts by kind, LSN bounds,
//!   total size, generations).
//! * `pagectl index-part validate FILE`: exit code 0 and `ok: ...` if the index is valid,
//!   1 and the error if not.
//! * `pagectl layer show FILE` / `pagectl layer verify FILE [--checksum CRC]`: a layer file's
//!   summary, and a check of every byte.
//! * `pagectl layer dump FILE [--key K] [--lsn L]`: the records, one per line (key, LSN, kind,
//!   size; an image's CRC32C, a delta's patches as offset+length), of key K only and at or
//!   below LSN L only.
//!
//! * `pagectl scrub` / `pagectl purge-garbage`: remote storage checked against the indexes,
//!   and what they prove unreferenced deleted ([`scrub`]; runbook in docs/operations.md).
//! * `pagectl timeline draw T TL [--remote]`: the layer map as SVG, from the local directory or
//!   the authoritative index (also served at `GET .../layer_map.svg`).
//! * `pagectl lost-found list|clean --older-than D`: the files the server quarantined in the
//!   timelines of a work directory, and their removal once old enough.
//!
//! Exit codes: 0 valid, 1 invalid or corrupt (problems found), 2 the input could not be read
//! (or bad usage).

mod draw_cmd;
mod index_cmd;
mod layer_cmd;
mod lost_found_cmd;
pub mod scrub;

pub use draw_cmd::{draw_local, draw_remote};
pub use index_cmd::{show_index, validate_index};
pub use layer_cmd::{dump_layer, show_layer, verify_layer};
pub use lost_found_cmd::{clean_lost_found, list_lost_found};

/// What a command found: its report, and whether the input was valid.
#[derive(Debug)]
pub struct Outcome {
    /// Text for standard output (valid) or standard error (otherwise).
    pub report: String,
    /// The verdict.
    pub status: Status,
}

/// The verdict of a command, and its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The input passed (exit 0).
    Valid,
    /// The input is invalid or corrupt (exit 1).
    Invalid,
    /// The input could not be read (exit 2).
    Unreadable,
}

impl Status {
    /// The process exit code for this verdict.
    pub fn exit_code(self) -> u8 {
        match self {
            Status::Valid => 0,
            Status::Invalid => 1,
            Status::Unreadable => 2,
        }
    }
}

impl Outcome {
    pub(crate) fn valid(report: String) -> Outcome {
        Outcome {
            report,
            status: Status::Valid,
        }
    }
    pub(crate) fn invalid(report: String) -> Outcome {
        Outcome {
            report,
            status: Status::Invalid,
        }
    }
}
