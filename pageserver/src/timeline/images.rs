//! Image layers: where deltas stack up over a key range, the pages of that range are written
//! at a recent LSN so that reads stop walking long chains.
//!
//! Key partitions are the key ranges of the L1 delta layers (the whole key space while there
//! are only L0s). For each partition, the delta layers above the newest image covering it are
//! counted; at `image_creation_threshold` an image layer is written at `disk_consistent_lsn`
//! (every record at or below it is in layers) with the page of every key that has a record in
//! the partition, published, and installed in the current map with its upload queued. Runs
//! under the compaction lock, after the L0 compaction; an image whose name is already in the map
//! is not written again.

use super::compaction::is_l0;
use super::publish::publish_layers;
use super::{LayerHandle, ReadError, Timeline};
use crate::metrics::METRICS;
use crate::remote::upload_queue::UploadOp;
use anyhow::Context;
use bytes::Bytes;
use index_part::LayerMetadata;
use index_part::names::LayerName;
use layer_format::{ImageLayerWriter, Key, Lsn};
use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;

fn overlaps(a: &Range<Key>, b: &Range<Key>) -> bool {
    a.start < b.end && b.start < a.end
}

impl Timeline {
    /// Creates image layers where deltas stack up; returns how many were created.
    pub(super) async fn create_images(self: &Arc<Self>) -> anyhow::Result<usize> {
        let lsn = Lsn(self.disk_consistent_lsn.load(Ordering::SeqCst));
        if lsn.0 == 0 {
            return Ok(0);
        }
        let handles: Vec<Arc<LayerHandle>> = self
            .layers
            .read()
            .expect("not poisoned")
            .map
            .values()
            .cloned()
            .collect();
        let mut partitions: BTreeSet<(Key, Key)> = handles
            .iter()
            .filter(|h| h.name.is_delta() && !is_l0(&h.name))
            .map(|h| (h.name.key_range().start, h.name.key_range().end))
            .collect();
        if partitions.is_empty() {
            partitions.insert((Key::MIN, Key::MAX));
        }
        let mut created = 0;
        for (start, end) in partitions {
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
            if self
                .layers
                .read()
                .expect("not poisoned")
                .map
                .contains_key(&name)
            {
                continue;
            }
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
            for key in keys {
                match self.get_page(key, lsn).await {
                    Ok(page) => pages.push((key, page)),
                    Err(ReadError::NotFound { .. }) => {}
                    Err(e) => {
                        return Err(anyhow::Error::new(e).context("read a page for an image layer"));
                    }
                }
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
            };
            {
                let mut l = self.layers.write().expect("not poisoned");
                if self.shut_down.load(Ordering::SeqCst) {
                    return Ok(created);
                }
                l.map.insert(
                    name.clone(),
                    Arc::new(LayerHandle::new(name.clone(), meta, &self.dir)),
                );
                let mut index = self.index.lock().expect("not poisoned");
                index.layers.insert(name, meta);
                self.uploads.push(UploadOp::Layer {
                    file_name: info.file_name.clone(),
                    path: info.path.clone(),
                    meta,
                });
                self.queue_index_upload(&index);
            }
            METRICS.image_layers_created.inc();
            tracing::info!(layer = %info.file_name, "created image layer");
            created += 1;
        }
        Ok(created)
    }
}
