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
//!
//! Memory: the pages go to the writer in batches of [`PAGES_PER_BATCH`] as they are read, so
//! a partition of any size holds one batch of pages, plus the pages the writer still references
//! in its chunks (the chunk filling, one queued and one being written: about 3 MiB); what grows
//! with the partition is its key set (16 bytes a key) and the writer's index entries (32 bytes
//! a page) until `finish`. Each batch is written by a short blocking task: no
//! blocking thread ever waits for the reads, which need blocking threads themselves. A read
//! that fails, or a stop, drops the unfinished writer, which removes its temp file.

use super::compaction::STOP_CHECK_EVERY;
use super::install::Stopped;
use super::layer_map::Change;
use super::publish::{publish_layers, remove_files};
use super::{LayerHandle, ReadError, Timeline};
use crate::metrics::METRICS;
use anyhow::Context;
use bytes::Bytes;
use index_part::names::Generation;
use index_part::names::LayerName;
use index_part::{LayerMetadata, Level};
use layer_format::io::IoEngine;
use layer_format::{ImageLayerWriter, Key, LayerInfo, Lsn};
use std::collections::{BTreeSet, HashSet};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Whether a read failed because a delta chain has no base beneath it.
fn no_base(e: &ReadError) -> bool {
    matches!(e, ReadError::Data { source, .. }
        if matches!(source.downcast_ref::<layer_format::redo::RedoError>(), Some(layer_format::redo::RedoError::NoBase { .. })))
}

/// Pages handed to the image writer at a time: 64 pages, 512 KiB.
const PAGES_PER_BATCH: usize = 64;

/// An image layer being written: created with the first batch of pages; every write, the
/// finish and the drop of an abandoned writer (which removes its temp file) run on a blocking
/// thread, one short task each.
struct ImageOutput {
    engine: Arc<dyn IoEngine>,
    dir: PathBuf,
    generation: Generation,
    range: Range<Key>,
    lsn: Lsn,
    writer: Option<ImageLayerWriter>,
}

impl ImageOutput {
    /// Writes `pages` (ascending, after every page written before).
    async fn put(mut self, pages: Vec<(Key, Bytes)>) -> anyhow::Result<ImageOutput> {
        tokio::task::spawn_blocking(move || -> anyhow::Result<ImageOutput> {
            let mut w = match self.writer.take() {
                Some(w) => w,
                None => ImageLayerWriter::new(
                    &self.engine,
                    &self.dir,
                    self.generation,
                    self.range.clone(),
                    self.lsn,
                )?,
            };
            for (key, page) in pages {
                w.put(key, page)?;
            }
            self.writer = Some(w);
            Ok(self)
        })
        .await
        .context("image task panicked")?
    }

    /// Writes the last `pages`, finishes and publishes the layer (refusing the names in
    /// `in_map`); `None` if no page was ever given.
    async fn finish(
        self,
        pages: Vec<(Key, Bytes)>,
        in_map: HashSet<String>,
    ) -> anyhow::Result<Option<LayerInfo>> {
        if pages.is_empty() && self.writer.is_none() {
            return Ok(None);
        }
        let mut out = self.put(pages).await?;
        let (engine, dir) = (out.engine.clone(), out.dir.clone());
        let w = out.writer.take().expect("a writer after a put");
        tokio::task::spawn_blocking(move || -> anyhow::Result<Option<LayerInfo>> {
            let f = w.finish_unpublished(None)?;
            let info = f.info.clone();
            publish_layers(&engine, &dir, vec![f.file], &in_map)?;
            Ok(Some(info))
        })
        .await
        .context("image task panicked")?
    }

    /// Drops an unfinished writer, which removes its temp file, and waits for that.
    async fn abandon(mut self) {
        if let Some(w) = self.writer.take() {
            let _ = tokio::task::spawn_blocking(move || drop(w)).await;
        }
    }
}

impl Drop for ImageOutput {
    /// An output dropped without `finish` or `abandon` (the job's future was dropped, or a
    /// panic unwound through it): its writer's drop joins the flusher thread and removes the
    /// temp file, blocking work handed to a blocking thread rather than done here.
    fn drop(&mut self) {
        if let Some(w) = self.writer.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => drop(rt.spawn_blocking(move || drop(w))),
                Err(_) => drop(w),
            }
        }
    }
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
            // Pages go to the writer in batches, each written by a short blocking task (no
            // blocking thread waits on the reads, which need blocking threads themselves), so
            // a partition of any size holds at most one batch of pages in memory.
            let mut out = ImageOutput {
                engine: self.src.engine.clone(),
                dir: self.dir.clone(),
                generation: self.generation,
                range: range.clone(),
                lsn,
                writer: None,
            };
            let mut batch = Vec::with_capacity(PAGES_PER_BATCH);
            let mut unreadable = None;
            let mut stopped = false;
            for (n, key) in keys.into_iter().enumerate() {
                if (n as u64).is_multiple_of(STOP_CHECK_EVERY)
                    && self.shut_down.load(Ordering::SeqCst)
                {
                    stopped = true;
                    break;
                }
                match self.get_page(key, lsn).await {
                    Ok(page) => batch.push((key, page)),
                    Err(ReadError::NotFound { .. }) => continue,
                    // A key whose records cannot make a page (a delta chain with no base, as
                    // ingested): an image would have to drop it or make one up. The range
                    // gets no image; its reads stay what they are, and compaction goes on.
                    Err(e @ ReadError::Data { .. }) if no_base(&e) => {
                        unreadable = Some(e);
                        break;
                    }
                    Err(e) => {
                        out.abandon().await;
                        return Err(anyhow::Error::new(e).context("read a page for an image layer"));
                    }
                }
                if batch.len() == PAGES_PER_BATCH {
                    out = out.put(std::mem::take(&mut batch)).await?;
                }
            }
            if stopped {
                out.abandon().await;
                return Ok(created);
            }
            if let Some(e) = unreadable {
                out.abandon().await;
                METRICS.image_ranges_skipped.inc();
                tracing::warn!(key_start = %start, key_end = %end, "no image layer for this key range: {e}");
                continue;
            }
            let Some(info) = out.finish(batch, self.file_names_in_map()).await? else {
                // No key of the partition had a page.
                continue;
            };
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
