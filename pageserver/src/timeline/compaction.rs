//! Compaction: L0 delta layers merged into key-partitioned L1 delta layers, published as one
//! batch and installed against the current layer map (I6, I7).
//!
//! 1. Inputs: the oldest L0 layers by recorded level, in LSN order, as far as they are in
//!    remote storage ([`LayerMap::l0_run`](super::LayerMap::l0_run)), once there are
//!    `compaction_threshold`. Every L1 layer lies below every L0 layer, so the outputs' LSN
//!    range (first input's start to last input's end) overlaps no other delta layer.
//! 2. A k-way merge streams the inputs in `(key, lsn)` order (a leaf and a 256 KiB read-ahead
//!    window per input) into L1 writers, each cut at a key boundary once it holds
//!    `compaction_target_size` bytes; together the outputs tile the key space. Every output
//!    stays a temp file until all are finished (failpoint `compaction-after-output` after each).
//! 3. Publish all outputs as one batch (one rename each, one directory fsync). A file already
//!    under an output's name: if that name is in the layer map, a duplicate — the compaction
//!    fails and neither file is touched; if not, a leftover of an earlier attempt — moved to
//!    `lost+found/`, counted, and the batch published again. Then failpoint
//!    `compaction-after-publish`; a failure there removes every published output.
//! 4. Install through [`Timeline::install`] ([`Change::Compaction`]), against the layer map as
//!    it is now: if an input has left the map meanwhile (another job, GC, reset), the outputs
//!    are removed and the compaction is abandoned; an output already in the map (a duplicate)
//!    changes nothing, its inputs stay and the compaction fails; otherwise inputs out, outputs
//!    in, the index derived from the map, the uploads (outputs, index, deletion of the inputs'
//!    objects) queued, and the inputs' local files removed.
//!
//! 5. Then image layers where deltas stack up (`images.rs`); they count as outputs.
//!
//! A failed compaction leaves nothing behind, so its retry always makes progress. A compaction
//! of a timeline stopped meanwhile (reset, detach) installs nothing and removes nothing.

use super::install::Stopped;
use super::layer_map::{ApplyError, Change};
use super::publish::{publish_layers, remove_files};
use super::{LayerHandle, Timeline};
use crate::metrics::METRICS;
use anyhow::Context;
use index_part::{LayerMetadata, Level};
use layer_format::io::IoEngine;
use layer_format::{DeltaLayerWriter, FinishedLayer, Key, LayerInfo, LayerReader, Lsn, Value};
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// What `PUT .../compact` answers.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CompactionResult {
    /// `compacted`, `nothing_to_do` or `abandoned` (an input left the layer map meanwhile).
    pub outcome: &'static str,
    /// Input layers.
    pub inputs: usize,
    /// Output layers installed.
    pub outputs: usize,
    /// Leftovers of earlier attempts moved to `lost+found/`.
    pub leftovers_quarantined: usize,
}

/// Bytes a record adds to an output: blob header, value, index entry.
/// Records (or pages) between two looks at the timeline's stop flag in a long job.
pub(super) const STOP_CHECK_EVERY: u64 = 4096;

fn record_cost(v: &Value) -> u64 {
    (8 + v.encoded_len() + 32) as u64
}

/// Merges `readers` into L1 outputs (unpublished).
fn merge(
    engine: &Arc<dyn IoEngine>,
    dir: &Path,
    generation: index_part::names::Generation,
    readers: &[Arc<LayerReader>],
    lsn_range: Range<Lsn>,
    target_size: u64,
    stopped: &std::sync::atomic::AtomicBool,
) -> anyhow::Result<Vec<FinishedLayer>> {
    let mut iters: Vec<_> = readers.iter().map(|r| r.iter(Key::MIN..Key::MAX)).collect();
    let mut heads: Vec<Option<Value>> = vec![None; iters.len()];
    let mut heap = BinaryHeap::new();
    for (i, it) in iters.iter_mut().enumerate() {
        if let Some(item) = it.next() {
            let (k, l, v) = item?;
            heads[i] = Some(v);
            heap.push(Reverse((k, l, i)));
        }
    }
    let mut outputs = Vec::new();
    let mut writer: Option<DeltaLayerWriter> = None;
    let mut key_start = Key::MIN;
    let mut written = 0u64;
    let mut last_key: Option<Key> = None;
    let finish = |w: DeltaLayerWriter,
                  end: Option<Key>,
                  outputs: &mut Vec<FinishedLayer>|
     -> anyhow::Result<()> {
        outputs.push(w.finish_unpublished(end)?);
        fail::fail_point!("compaction-after-output", |_| anyhow::bail!(
            "failpoint compaction-after-output"
        ));
        Ok(())
    };
    let mut merged = 0u64;
    while let Some(Reverse((key, lsn, i))) = heap.pop() {
        // A stop (reset, detach, shutdown) waits for this job: notice it within a few
        // thousand records. Unfinished outputs are temp files, removed when dropped.
        merged += 1;
        if merged.is_multiple_of(STOP_CHECK_EVERY) && stopped.load(Ordering::SeqCst) {
            anyhow::bail!("timeline stopped during compaction; outputs dropped");
        }
        let value = heads[i].take().expect("a head for every heap entry");
        if let Some(item) = iters[i].next() {
            let (k, l, v) = item?;
            heads[i] = Some(v);
            heap.push(Reverse((k, l, i)));
        }
        if writer.is_some() && written >= target_size && last_key != Some(key) {
            let w = writer.take().expect("checked");
            finish(w, Some(key), &mut outputs)?;
            key_start = key;
            written = 0;
        }
        if writer.is_none() {
            writer = Some(DeltaLayerWriter::new(
                engine,
                dir,
                generation,
                key_start..Key::MAX,
                lsn_range.clone(),
            )?);
        }
        let w = writer.as_mut().expect("created above");
        w.put(key, lsn, &value)?;
        written += record_cost(&value);
        last_key = Some(key);
    }
    if let Some(w) = writer {
        finish(w, None, &mut outputs)?;
    }
    Ok(outputs)
}

/// Failpoint `compaction-after-publish`.
fn after_publish() -> anyhow::Result<()> {
    fail::fail_point!("compaction-after-publish", |_| anyhow::bail!(
        "failpoint compaction-after-publish"
    ));
    Ok(())
}

impl Timeline {
    /// Runs one compaction (see the module doc).
    pub async fn compact(self: &Arc<Self>) -> anyhow::Result<CompactionResult> {
        let _guard = self.compaction_lock.lock().await;
        let mut res = crate::metrics::timed("compaction", self.compact_inner()).await;
        if let Ok(r) = &mut res
            && r.outcome != "abandoned"
        {
            match self.create_images().await {
                Ok(0) => {}
                Ok(images) => {
                    r.outputs += images;
                    r.outcome = "compacted";
                }
                Err(e) => res = Err(e.context("create image layers")),
            }
        }
        // Cut short by a stop (reset, detach, shutdown): nothing was installed, and the
        // successor accounts for whatever is left.
        if let Err(e) = &res
            && self.shut_down.load(Ordering::SeqCst)
        {
            tracing::info!("compaction ended by the timeline's stop: {e:#}");
            res = Ok(CompactionResult {
                outcome: "abandoned",
                inputs: 0,
                outputs: 0,
                leftovers_quarantined: 0,
            });
        }
        let outcome = match &res {
            Ok(r) => r.outcome,
            Err(_) => "error",
        };
        METRICS.compactions.with_label_values(&[outcome]).inc();
        res
    }

    async fn compact_inner(self: &Arc<Self>) -> anyhow::Result<CompactionResult> {
        #[cfg(feature = "testing")]
        let snapshot: Vec<Arc<LayerHandle>> =
            self.with_layer_map(|m| m.layers().cloned().collect());
        let (inputs, in_map) = {
            let l = self.layers_read();
            // Only layers already in remote storage: an input's local file is removed after
            // the install, and a queued upload still needs to read it.
            let uploads = self.uploads.state();
            let inputs = l.map.l0_run(|h| uploads.is_uploaded(&h.file_name()));
            let in_map: std::collections::HashSet<String> =
                l.map.layers().map(|h| h.file_name().to_string()).collect();
            (inputs, in_map)
        };
        if inputs.len() < self.conf.compaction_threshold.max(2) {
            return Ok(CompactionResult {
                outcome: "nothing_to_do",
                inputs: 0,
                outputs: 0,
                leftovers_quarantined: 0,
            });
        }
        let mut readers = Vec::with_capacity(inputs.len());
        for h in &inputs {
            readers.push(
                h.reader(&self.src)
                    .await
                    .with_context(|| format!("open input {}", h.name))?,
            );
        }
        let lsn_range = inputs[0].name.lsn_range().start
            ..inputs
                .iter()
                .map(|h| h.name.lsn_range().end)
                .max()
                .expect("inputs");
        let (engine, dir, generation, target) = (
            self.src.engine.clone(),
            self.dir.clone(),
            self.generation,
            self.conf.compaction_target_size,
        );
        let stopped = self.shut_down.clone();
        let (infos, paths, quarantined) = tokio::task::spawn_blocking(
            move || -> anyhow::Result<(Vec<LayerInfo>, Vec<PathBuf>, usize)> {
                let outputs = merge(
                    &engine, &dir, generation, &readers, lsn_range, target, &stopped,
                )?;
                let infos: Vec<LayerInfo> = outputs.iter().map(|o| o.info.clone()).collect();
                if stopped.load(Ordering::SeqCst) {
                    anyhow::bail!("timeline stopped during compaction; outputs dropped");
                }
                let (paths, quarantined) = publish_layers(
                    &engine,
                    &dir,
                    outputs.into_iter().map(|o| o.file).collect(),
                    &in_map,
                )?;
                if let Err(e) = after_publish() {
                    remove_files(&engine, &dir, &paths, &stopped);
                    return Err(e);
                }
                Ok((infos, paths, quarantined))
            },
        )
        .await
        .context("compaction task panicked")??;

        // Install against the layer map as it is now (I6, I10).
        let outputs: Vec<Arc<LayerHandle>> = infos
            .iter()
            .map(|info| {
                let meta = LayerMetadata {
                    file_size: info.size_bytes,
                    generation: self.generation,
                    checksum: info.checksum,
                    level: Some(Level::L1),
                };
                Arc::new(LayerHandle::new(
                    info.file_name.layer.clone(),
                    meta,
                    &self.dir,
                ))
            })
            .collect();
        let change = Change::Compaction {
            inputs: inputs.clone(),
            outputs,
        };
        #[cfg(feature = "testing")]
        let change = match (self.conf.layer_map_mutation, change) {
            (
                Some(crate::timeline::mutation::Mutation::InstallOverSnapshot),
                Change::Compaction { inputs, outputs },
            ) => Change::OverSnapshot {
                snapshot,
                inputs,
                outputs,
            },
            (_, change) => change,
        };
        if let Err(e) = self.install(|_| Some(change), None) {
            remove_files(&self.src.engine, &self.dir, &paths, &self.shut_down);
            let abandoned = e.is::<Stopped>()
                || matches!(
                    e.downcast_ref::<ApplyError>(),
                    Some(ApplyError::InputGone(_))
                );
            if !abandoned {
                return Err(e.context("install the compaction"));
            }
            tracing::info!("an input left the layer map during compaction; outputs abandoned: {e}");
            return Ok(CompactionResult {
                outcome: "abandoned",
                inputs: inputs.len(),
                outputs: 0,
                leftovers_quarantined: quarantined,
            });
        }
        tracing::info!(
            inputs = inputs.len(),
            outputs = infos.len(),
            quarantined,
            "compacted"
        );
        Ok(CompactionResult {
            outcome: "compacted",
            inputs: inputs.len(),
            outputs: infos.len(),
            leftovers_quarantined: quarantined,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use index_part::names::Generation;
    use layer_format::io::{EngineChoice, open_engine};
    use layer_format::value::{Patch, encode_patches};
    use std::collections::HashSet;
    use std::os::unix::fs::MetadataExt;

    fn finished(engine: &Arc<dyn IoEngine>, dir: &Path) -> FinishedLayer {
        let mut w = DeltaLayerWriter::new(
            engine,
            dir,
            Generation(1),
            Key::MIN..Key::MAX,
            Lsn(1)..Lsn(9),
        )
        .unwrap();
        let v = Value::Delta {
            will_init: true,
            record: encode_patches(&[Patch {
                offset: 0,
                bytes: b"x",
            }]),
        };
        w.put(Key::from_u128(1), Lsn(2), &v).unwrap();
        w.finish_unpublished(None).unwrap()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    /// Duplicate: an output whose name is a layer of the map is never published over it.
    #[test]
    fn a_duplicate_output_fails_and_touches_neither_file() {
        let engine = open_engine(EngineChoice::Std).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let f = finished(&engine, dir.path());
        let name = f.info.file_name.to_string();
        std::fs::write(&f.info.path, b"the installed layer").unwrap();
        let ino = std::fs::metadata(&f.info.path).unwrap().ino();
        let in_map: HashSet<String> = [name.clone()].into_iter().collect();
        let err = publish_layers(&engine, dir.path(), vec![f.file], &in_map).unwrap_err();
        assert!(
            format!("{err:#}").contains("already a layer of the layer map"),
            "{err:#}"
        );
        assert_eq!(
            std::fs::read(dir.path().join(&name)).unwrap(),
            b"the installed layer"
        );
        assert_eq!(
            std::fs::metadata(dir.path().join(&name)).unwrap().ino(),
            ino
        );
        assert_eq!(
            names(dir.path()),
            vec![name],
            "the output's temp file is gone too"
        );
    }

    #[test]
    fn a_leftover_is_quarantined_and_the_batch_published() {
        let engine = open_engine(EngineChoice::Std).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let f = finished(&engine, dir.path());
        let (name, path) = (f.info.file_name.to_string(), f.info.path.clone());
        std::fs::write(&path, b"leftover").unwrap();
        let (paths, quarantined) =
            publish_layers(&engine, dir.path(), vec![f.file], &HashSet::new()).unwrap();
        assert_eq!((paths, quarantined), (vec![path.clone()], 1));
        assert_ne!(std::fs::read(&path).unwrap(), b"leftover");
        let lf = names(&dir.path().join("lost+found"));
        assert!(lf.len() == 1 && lf[0].starts_with(&name), "{lf:?}");
        assert_eq!(
            std::fs::read(dir.path().join("lost+found").join(&lf[0])).unwrap(),
            b"leftover"
        );
    }
}
