//! `pagectl layer show|verify`.

use super::{Outcome, Status};
use layer_format::format::LayerKind;
use layer_format::io::{EngineChoice, open_engine};
use layer_format::{LayerError, LayerReader};
use std::fmt::Write as _;
use std::path::Path;

fn open(path: &Path) -> Result<LayerReader, Outcome> {
    let unreadable = |report| Outcome {
        report,
        status: Status::Unreadable,
    };
    let engine = open_engine(EngineChoice::Std)
        .map_err(|e| unreadable(format!("error: open I/O engine: {e}\n")))?;
    LayerReader::open(&engine, path).map_err(|e| match e {
        LayerError::Io { .. } => unreadable(format!("error: {e}\n")),
        e => Outcome::invalid(format!("invalid: {e}\n")),
    })
}

/// `pagectl layer show`: the summary of a layer file.
pub fn show_layer(path: &Path) -> Outcome {
    let r = match open(path) {
        Ok(r) => r,
        Err(outcome) => return outcome,
    };
    let s = r.summary();
    let mut out = String::new();
    let kind = match s.kind {
        LayerKind::Delta => "delta",
        LayerKind::Image => "image",
    };
    let _ = writeln!(out, "layer      {}", path.display());
    let _ = writeln!(out, "kind       {kind}");
    let _ = writeln!(
        out,
        "keys       {} .. {}",
        s.key_range.start, s.key_range.end
    );
    let _ = writeln!(
        out,
        "LSNs       {} .. {}",
        s.lsn_range.start, s.lsn_range.end
    );
    let _ = writeln!(out, "records    {}", s.record_count);
    let _ = writeln!(
        out,
        "size       {} bytes, index of {} levels",
        s.file_size_bytes, s.index_height
    );
    Outcome::valid(out)
}

/// `pagectl layer verify`: every checksum and rule, and the whole-file checksum if given.
pub fn verify_layer(path: &Path, checksum: Option<u32>) -> Outcome {
    let r = match open(path) {
        Ok(r) => r,
        Err(outcome) => return outcome,
    };
    let res = match checksum {
        Some(c) => r.verify_checksum(c),
        None => r.verify(),
    };
    match res {
        Ok(v) => Outcome::valid(format!(
            "ok: {}: {} records, {} blocks, checksum {}\n",
            path.display(),
            v.record_count,
            v.blocks,
            v.checksum
        )),
        Err(e @ LayerError::Io { .. }) => Outcome {
            report: format!("error: {e}\n"),
            status: Status::Unreadable,
        },
        Err(e) => Outcome::invalid(format!("invalid: {e}\n")),
    }
}
