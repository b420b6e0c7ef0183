//! `pagectl layer show|verify|dump`.

use super::{Outcome, Status};
use layer_format::format::LayerKind;
use layer_format::io::{EngineChoice, open_engine};
use layer_format::value::Value;
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

/// One record as a line of `pagectl layer dump`.
fn record_line(key: layer_format::Key, lsn: layer_format::Lsn, value: &Value) -> String {
    match value {
        Value::Image(page) => format!(
            "{key} {lsn} image {} bytes crc32c {:08x}",
            page.len(),
            crc32c::crc32c(page)
        ),
        Value::Delta { will_init, record } => {
            let patches: Vec<String> = layer_format::value::patches(record)
                .map(|p| match p {
                    Ok(p) => format!("{}+{}", p.offset, p.bytes.len()),
                    Err(e) => format!("invalid({e})"),
                })
                .collect();
            format!(
                "{key} {lsn} delta{} {} bytes patches {}",
                if *will_init { " will_init" } else { "" },
                record.len(),
                patches.join(",")
            )
        }
    }
}

/// `pagectl layer dump`: every record of a layer (of key `key` only, at or below LSN `lsn`
/// only), one per line, in `(key, lsn)` order, written to `out` as they are read. The
/// outcome's report is empty on success; a corrupt file ends the dump with its error (exit 1).
pub fn dump_layer(
    path: &Path,
    key: Option<layer_format::Key>,
    lsn: Option<layer_format::Lsn>,
    out: &mut dyn std::io::Write,
) -> Outcome {
    let r = match open(path) {
        Ok(r) => r,
        Err(outcome) => return outcome,
    };
    let range = match key {
        Some(k) => k..k.next().unwrap_or(layer_format::Key::MAX),
        None => layer_format::Key::MIN..layer_format::Key::MAX,
    };
    for item in r.iter(range) {
        let (k, l, value) = match item {
            Ok(record) => record,
            Err(e @ LayerError::Io { .. }) => {
                return Outcome {
                    report: format!("error: {e}\n"),
                    status: Status::Unreadable,
                };
            }
            Err(e) => return Outcome::invalid(format!("invalid: {e}\n")),
        };
        if lsn.is_some_and(|max| l > max) {
            continue;
        }
        if let Err(e) = writeln!(out, "{}", record_line(k, l, &value)) {
            // A closed pipe (`| head`) ends the dump quietly.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                break;
            }
            return Outcome {
                report: format!("error: write the dump: {e}\n"),
                status: Status::Unreadable,
            };
        }
    }
    Outcome::valid(String::new())
}
