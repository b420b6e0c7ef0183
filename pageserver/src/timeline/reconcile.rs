//! Start-up reconciliation (I3): make a timeline's local directory agree with the
//! authoritative index, and never refuse to load because of a stray file.
//!
//! | found locally | action |
//! |---|---|
//! | a temp file (`*.___temp`) | removed |
//! | a layer file the index lists with this generation and size | kept (checksum checked on first open) |
//! | a layer file of a size the index does not record | removed; fetched again on demand |
//! | a layer file the index does not list (or with another generation) | removed |
//! | anything else (file or directory) | moved to `lost+found/` with a warning (a file named `lost+found` too); if the move fails, left in place with a warning |
//! | a layer the index lists but absent locally | fetched on demand |
//!
//! Every action is counted in `pageserver_reconcile_actions_total{action}`; quarantined files
//! also in `pageserver_quarantined_files_total`. The directory is fsynced after changes.

use crate::metrics::METRICS;
use anyhow::Context;
use index_part::IndexPart;
use index_part::names::{LOST_AND_FOUND, LocalFile, classify_local};
use layer_format::io::IoEngine;
use std::path::Path;
use std::sync::Arc;

/// What reconciliation did, by action.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Temp files removed.
    pub temp_removed: usize,
    /// Layer files removed because the index does not list them.
    pub unindexed_removed: usize,
    /// Layer files removed because their size differs from the index.
    pub mismatched_removed: usize,
    /// Files moved to `lost+found/`.
    pub quarantined: usize,
    /// Unrecognised files that could not be moved (left in place, with a warning).
    pub quarantine_failed: usize,
    /// Layer files kept.
    pub kept: usize,
}

fn count(action: &str) {
    METRICS.reconcile_actions.with_label_values(&[action]).inc();
}

/// Moves `name` of `dir` into `dir/lost+found/`, under a name that does not replace anything
/// (`RENAME_NOREPLACE`, or `link` + `unlink` where the filesystem has no such rename). A file
/// that sits where `lost+found/` should be is itself moved in first.
pub fn quarantine(engine: &Arc<dyn IoEngine>, dir: &Path, name: &str) -> anyhow::Result<()> {
    let lf = dir.join(LOST_AND_FOUND);
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    if engine.stat(&lf).is_ok_and(|s| !s.is_dir) {
        let aside = format!("{LOST_AND_FOUND}.{stamp}.file");
        layer_format::durable::move_noreplace(&**engine, &lf, &dir.join(&aside))
            .with_context(|| format!("move the file {} aside", lf.display()))?;
        engine.fsync_dir(dir)?;
        quarantine(engine, dir, &aside)?;
        if name == LOST_AND_FOUND {
            return Ok(());
        }
    }
    layer_format::durable::create_dir_all_durable(&**engine, &lf)
        .with_context(|| format!("create {}", lf.display()))?;
    let target = lf.join(format!("{name}.{stamp}"));
    layer_format::durable::move_noreplace(&**engine, &dir.join(name), &target)
        .with_context(|| format!("move {name} to {}", target.display()))?;
    engine.fsync_dir(&lf)?;
    engine.fsync_dir(dir)?;
    METRICS.quarantined_files.inc();
    tracing::warn!(file = name, to = %target.display(), "moved an unrecognised file to lost+found");
    Ok(())
}

/// Reconciles `dir` with `index`.
pub fn reconcile(
    engine: &Arc<dyn IoEngine>,
    dir: &Path,
    index: &IndexPart,
) -> anyhow::Result<ReconcileReport> {
    let mut report = ReconcileReport::default();
    let names = engine
        .list_dir(dir)
        .with_context(|| format!("list {}", dir.display()))?;
    for name in names {
        let Some(name) = name.to_str().map(str::to_string) else {
            // Not UTF-8: cannot be ours.
            tracing::warn!(dir = %dir.display(), "file with a non-UTF-8 name left in place");
            continue;
        };
        let path = dir.join(&name);
        let is_dir = engine.stat(&path).map(|s| s.is_dir).unwrap_or(false);
        match classify_local(&name) {
            LocalFile::LostAndFound if is_dir => {}
            LocalFile::Temp if !is_dir => {
                engine
                    .unlink(&path)
                    .with_context(|| format!("remove {}", path.display()))?;
                report.temp_removed += 1;
                count("remove_temp");
            }
            LocalFile::Layer(file) if !is_dir => match index.layers.get(&file.layer) {
                Some(meta) if meta.generation == file.generation => {
                    let size = engine
                        .stat(&path)
                        .map(|s| s.size)
                        .with_context(|| format!("stat {}", path.display()))?;
                    if size == meta.file_size {
                        report.kept += 1;
                    } else {
                        engine
                            .unlink(&path)
                            .with_context(|| format!("remove {}", path.display()))?;
                        report.mismatched_removed += 1;
                        count("remove_mismatched");
                    }
                }
                _ => {
                    engine
                        .unlink(&path)
                        .with_context(|| format!("remove {}", path.display()))?;
                    report.unindexed_removed += 1;
                    count("remove_unindexed");
                }
            },
            _ => match quarantine(engine, dir, &name) {
                Ok(()) => {
                    report.quarantined += 1;
                    count("quarantine");
                }
                // A stray file is never a reason to refuse to load (I3): it stays where it is.
                Err(e) => {
                    report.quarantine_failed += 1;
                    count("quarantine_failed");
                    tracing::warn!(file = name, dir = %dir.display(), "could not move an unrecognised file to lost+found; left in place: {e:#}");
                }
            },
        }
    }
    if report
        != (ReconcileReport {
            kept: report.kept,
            ..Default::default()
        })
    {
        engine
            .fsync_dir(dir)
            .with_context(|| format!("fsync {}", dir.display()))?;
    }
    Ok(report)
}
