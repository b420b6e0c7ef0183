//! `pagectl index-part show|validate`.

use super::Outcome;
use index_part::names::IndexObjectName;
use index_part::{IndexPart, ParseMode};
use std::fmt::Write as _;
use std::path::Path;

/// Parses the index in `bytes`; if the file is named like an index object, the generation in
/// the name must match the one inside.
fn parse(path: &Path, bytes: &[u8], mode: ParseMode) -> Result<IndexPart, index_part::IndexError> {
    let object = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse::<IndexObjectName>().ok());
    match object {
        Some(object) => IndexPart::from_json_object(bytes, object, mode),
        None => IndexPart::from_json(bytes, mode),
    }
}

/// `pagectl index-part validate`: strict parse and every rule.
pub fn validate_index(path: &Path, bytes: &[u8]) -> Outcome {
    match parse(path, bytes, ParseMode::Strict) {
        Ok(index) => Outcome::valid(format!(
            "ok: {}: {} layers, generation {}, disk_consistent_lsn {}\n",
            path.display(),
            index.layers.len(),
            index.generation.0,
            index.disk_consistent_lsn
        )),
        Err(e) => Outcome::invalid(format!("invalid: {}: {e}\n", path.display())),
    }
}

/// `pagectl index-part show`: a summary for people. Lenient about unknown fields (they are
/// named by `validate`), strict about everything else.
pub fn show_index(path: &Path, bytes: &[u8]) -> Outcome {
    let index = match parse(path, bytes, ParseMode::Lenient) {
        Ok(index) => index,
        Err(e) => return Outcome::invalid(format!("invalid: {}: {e}\n", path.display())),
    };
    let (mut l0, mut l1, mut images, mut total) = (0usize, 0usize, 0usize, 0u64);
    let mut lsn_bounds: Option<(layer_format::Lsn, layer_format::Lsn)> = None;
    let mut generations: Option<(u32, u32)> = None;
    for (name, meta) in &index.layers {
        match meta.level {
            Some(index_part::Level::L0) => l0 += 1,
            Some(index_part::Level::L1) => l1 += 1,
            None => images += 1,
        }
        total += meta.file_size;
        let r = name.lsn_range();
        lsn_bounds = Some(lsn_bounds.map_or((r.start, r.end), |(lo, hi)| {
            (lo.min(r.start), hi.max(r.end))
        }));
        let g = meta.generation.0;
        generations = Some(generations.map_or((g, g), |(lo, hi)| (lo.min(g), hi.max(g))));
    }
    let time = |t: std::time::SystemTime| humantime::format_rfc3339_seconds(t).to_string();
    let mut r = String::new();
    let _ = writeln!(r, "index          {}", path.display());
    let _ = writeln!(r, "tenant         {}", index.metadata.tenant_id);
    let _ = writeln!(r, "timeline       {}", index.metadata.timeline_id);
    let _ = writeln!(r, "generation     {}", index.generation.0);
    let _ = writeln!(r, "created        {}", time(index.metadata.created_at));
    let _ = writeln!(
        r,
        "deleted        {}",
        index.deleted_at.map_or("-".to_string(), time)
    );
    let _ = writeln!(r, "disk_consistent_lsn {}", index.disk_consistent_lsn);
    let _ = writeln!(
        r,
        "gc_cutoff_lsn  {}",
        index
            .gc_cutoff_lsn
            .map_or("-".to_string(), |l| l.to_string())
    );
    let _ = writeln!(
        r,
        "layers         {} ({} delta: {l0} L0, {l1} L1; {images} image), {total} bytes",
        index.layers.len(),
        l0 + l1
    );
    if let (Some((lo, hi)), Some((g0, g1))) = (lsn_bounds, generations) {
        let _ = writeln!(r, "layer LSNs     {lo} .. {hi} (end exclusive)");
        let _ = writeln!(r, "generations    {g0} .. {g1}");
    }
    Outcome::valid(r)
}
