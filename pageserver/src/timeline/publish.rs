//! Publishing new layer files of a timeline (flush, compaction, image layers) as one batch,
//! with the leftover rule of I7.
//!
//! A file already under a new layer's name is either a layer of the map (a duplicate: the
//! publish fails and neither file is touched) or a leftover of an earlier attempt that died
//! before cleaning up (moved to `lost+found/`, counted, and the batch published again).

use super::reconcile;
use crate::metrics::METRICS;
use anyhow::bail;
use layer_format::LayerError;
use layer_format::durable::{SyncedFile, publish_batch};
use layer_format::io::IoEngine;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Publishes `files` (of `dir`) as one batch; `in_map` holds the file names of the layer map.
/// Returns the published paths and the number of leftovers quarantined.
pub(super) fn publish_layers(
    engine: &Arc<dyn IoEngine>,
    dir: &Path,
    files: Vec<SyncedFile>,
    in_map: &HashSet<String>,
) -> anyhow::Result<(Vec<PathBuf>, usize)> {
    let mut batch = files;
    let total = batch.len();
    let attempts = total + 1;
    // Every round either returns or quarantines one leftover: the round number counts them.
    for quarantined in 0..attempts {
        let e = match publish_batch(batch) {
            Ok(paths) => {
                METRICS
                    .layer_publishes
                    .with_label_values(&["ok"])
                    .inc_by(paths.len() as u64);
                return Ok((paths, quarantined));
            }
            Err(e) => e,
        };
        let path = match &e.error {
            // The whole batch must come back: a file that could not be moved back was removed.
            LayerError::AlreadyExists { path } if e.unpublished.len() == total => path.clone(),
            _ => {
                METRICS.layer_publishes.with_label_values(&["error"]).inc();
                return Err(e.into());
            }
        };
        METRICS
            .layer_publishes
            .with_label_values(&["already_exists"])
            .inc();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if in_map.contains(&name) {
            bail!("new layer {name} is already a layer of the layer map; neither file was touched");
        }
        reconcile::quarantine(engine, dir, &name)?;
        METRICS.compaction_leftovers.inc();
        batch = e.unpublished;
    }
    bail!("publishing new layers met more leftovers than layers")
}

/// Deletes `paths` (files of `dir`) durably: unlink each (one already gone is fine), then
/// fsync the directory. The one place a timeline deletes its files: layers that left the map,
/// and new files a failed flush, compaction or image creation published. A stopped timeline
/// (reset, detach) removes nothing: its successor may own the directory by now, and whatever
/// is left is a leftover that reconciliation or the next publish accounts for.
pub(super) fn remove_files(
    engine: &Arc<dyn IoEngine>,
    dir: &Path,
    paths: &[PathBuf],
    stopped: &AtomicBool,
) {
    if stopped.load(Ordering::SeqCst) {
        tracing::info!(
            files = paths.len(),
            "timeline stopped; its files are left for its successor to account for"
        );
        return;
    }
    if paths.is_empty() {
        return;
    }
    for p in paths {
        match engine.unlink(p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                METRICS.local_delete_errors.inc();
                tracing::warn!(path = %p.display(), "remove a layer file: {e}");
            }
        }
    }
    if let Err(e) = engine.fsync_dir(dir) {
        METRICS.local_delete_errors.inc();
        tracing::warn!(dir = %dir.display(), "fsync after removing layer files: {e}");
    }
}
