//! Image layers: where deltas stack up over a key range, the pages of that range are written
//! at a recent LSN so that reads stop walking long chains.
//!
//! Key partitions are the key ranges of the newest L1 layers (the outputs of the latest
//! compaction still in the map, which tile the key space), or the whole key space while there
//! are none. For each partition, the delta layers above the newest image covering it are
//! counted; at `image_creation_threshold` an image layer is written at `disk_consistent_lsn`
//! (every record at or below it is in layers) with the page of every key that has a record in
//! the partition, published, and installed through [`Change::Images`]. A partition that an
//! image at that LSN already meets is skipped: images that meet in keys are at different LSNs
//! (the layer map's structural invariant). Runs under the compaction lock, after the L0
//! compaction.

use super::compaction::STOP_CHECK_EVERY;
use super::install::Stopped;
use super::layer_map::Change;
use super::publish::{publish_layers, remove_files};
use super::{LayerHandle, ReadError, Timeline};
use crate::metrics::METRICS;
use anyhow::Context;
use bytes::Bytes;
use index_part::names::LayerName;
use index_part::{LayerMetadata, Level};
use layer_format::{ImageLayerWriter, Key};
use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Whether a read failed because a delta chain has no base beneath it.
fn no_base(e: &ReadError) -> bool {
    matches!(e, ReadError::Data { source, .. }
        if matches!(source.downcast_ref::<layer_format::redo::RedoError>(), Some(layer_format::redo::RedoError::NoBase { .. })))
}

fn overlaps(a: &Range<Key>, b: &Range<Key>) -> bool {
    a.start < b.end && b.start < a.end
}

impl Timeline {
    /// Creates image layers where deltas stack up; returns how many were created.
    pub(super) async fn create_images(self: &Arc<Self>) -> anyhow::Result<usize> {
        let (lsn, handles) = self.with_layer_map(|m| {
            (
                m.disk_consistent_lsn(),
                m.layers().cloned().collect::<Vec<Arc<LayerHandle>>>(),
            )
        });
        if lsn.0 == 0 {
            return Ok(0);
        }
        let newest_l1 = handles
            .iter()
            .filter(|h| h.meta.level == Some(Level::L1))
            .map(|h| h.name.lsn_range().end)
            .max();
        let mut partitions: BTreeSet<(Key, Key)> = handles
            .iter()
            .filter(|h| {
                h.meta.level == Some(Level::L1) && Some(h.name.lsn_range().end) == newest_l1
            })
            .map(|h| (h.name.key_range().start, h.name.key_range().end))
            .collect();
        if partitions.is_empty() {
            partitions.insert((Key::MIN, Key::MAX));
        }
        let mut created = 0;
        for (start, end) in partitions {
            // A stop waits for this job: it ends at the next partition.
            if self.shut_down.load(Ordering::SeqCst) {
                return Ok(created);
            }
            let range = start..end;
            let newest_image = handles
                .iter()
                .filter(|h| {
                    !h.name.is_delta()
                        && h.name.key_range().start <= start
                        && h.name.key_range().end >= end
                })
                .map(|h| h.name.lsn_range().start)
                .max();
            if newest_image.is_some_and(|i| i >= lsn) {
                continue;
            }
            let image_meets_at_lsn = handles.iter().any(|h| {
                !h.name.is_delta()
                    && h.name.lsn_range().start == lsn
                    && overlaps(h.name.key_range(), &range)
            });
            if image_meets_at_lsn {
                continue;
            }
            let stacked = handles
                .iter()
                .filter(|h| h.name.is_delta() && overlaps(h.name.key_range(), &range))
                .filter(|h| newest_image.is_none_or(|i| h.name.lsn_range().end.0 > i.0 + 1))
                .count();
            if stacked < self.conf.image_creation_threshold {
                continue;
            }
            let name = LayerName::Image {
                key_range: range.clone(),
                lsn,
            };
            // Every key with a record in the partition.
            let mut keys = BTreeSet::new();
            for h in handles
                .iter()
                .filter(|h| overlaps(h.name.key_range(), &range))
            {
                let reader = h.reader(&self.src).await?;
                let r = range.clone();
                let found: Vec<Key> = tokio::task::spawn_blocking(move || {
                    reader
                        .iter(r)
                        .map(|item| item.map(|(k, _, _)| k))
                        .collect::<Result<Vec<Key>, _>>()
                })
                .await
                .context("key scan panicked")??;
                keys.extend(found);
            }
            let mut pages: Vec<(Key, Bytes)> = Vec::with_capacity(keys.len());
            let mut unreadable = None;
            for (n, key) in keys.into_iter().enumerate() {
                if (n as u64).is_multiple_of(STOP_CHECK_EVERY)
                    && self.shut_down.load(Ordering::SeqCst)
                {
                    return Ok(created);
                }
                match self.get_page(key, lsn).await {
                    Ok(page) => pages.push((key, page)),
                    Err(ReadError::NotFound { .. }) => {}
                    // A key whose records cannot make a page (a delta chain with no base, as
                    // ingested): an image would have to drop it or make one up. The range
                    // gets no image; its reads stay what they are, and compaction goes on.
                    Err(e @ ReadError::Data { .. }) if no_base(&e) => {
                        unreadable = Some(e);
                        break;
                    }
                    Err(e) => {
                        return Err(anyhow::Error::new(e).context("read a page for an image layer"));
                    }
                }
            }
            if let Some(e) = unreadable {
                METRICS.image_ranges_skipped.inc();
                tracing::warn!(key_start = %start, key_end = %end, "no image layer for this key range: {e}");
                continue;
            }
            if pages.is_empty() {
                continue;
            }
            let (engine, dir, generation, r) = (
                self.src.engine.clone(),
                self.dir.clone(),
                self.generation,
                range.clone(),
            );
            let in_map = self.file_names_in_map();
            let info =
                tokio::task::spawn_blocking(move || -> anyhow::Result<layer_format::LayerInfo> {
                    let mut w = ImageLayerWriter::new(&engine, &dir, generation, r, lsn)?;
                    for (k, p) in pages {
                        w.put(k, p)?;
                    }
                    let f = w.finish_unpublished(None)?;
                    let info = f.info.clone();
                    publish_layers(&engine, &dir, vec![f.file], &in_map)?;
                    Ok(info)
                })
                .await
                .context("image task panicked")??;
            let meta = LayerMetadata {
                file_size: info.size_bytes,
                generation: self.generation,
                checksum: info.checksum,
                level: None,
            };
            let layer = Arc::new(LayerHandle::new(name, meta, &self.dir));
            if let Err(e) = self.install(
                |_| {
                    Some(Change::Images {
                        outputs: vec![layer],
                    })
                },
                None,
            ) {
                remove_files(
                    &self.src.engine,
                    &self.dir,
                    std::slice::from_ref(&info.path),
                    &self.shut_down,
                );
                if e.is::<Stopped>() {
                    return Ok(created);
                }
                return Err(e.context("install an image layer"));
            }
            METRICS.image_layers_created.inc();
            tracing::info!(layer = %info.file_name, "created image layer");
            created += 1;
        }
        Ok(created)
    }
}
