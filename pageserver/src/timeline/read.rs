//! The read path: rebuild a page at an LSN from the in-memory layers and the layer map.
//!
//! Values are collected newest first: the open in-memory layer, the frozen ones newest to
//! oldest, then layer files. Among the files, the search keeps a continuation LSN `cont`
//! (inclusive): it takes the layer covering the key with `lsn_start <= cont` and the highest
//! `lsn_end`, reads its values at or below `cont`, and continues below that layer's start,
//! until a base value (image or `will_init`) is found. `redo::reconstruct` then applies the
//! values oldest first.

use super::{LayerHandle, Timeline};
use bytes::Bytes;
use layer_format::redo::{RedoError, reconstruct};
use layer_format::{Key, Lsn, Value};
use std::sync::Arc;

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The LSN is above what was ingested (400).
    #[error("LSN {lsn} is above last_record_lsn {last_record_lsn}")]
    LsnAhead {
        /// Requested.
        lsn: Lsn,
        /// Newest ingested.
        last_record_lsn: Lsn,
    },
    /// The LSN is below the GC cutoff: what it needs may be gone (400).
    #[error("LSN {lsn} is below the GC cutoff {gc_cutoff_lsn}")]
    BelowGcCutoff {
        /// Requested.
        lsn: Lsn,
        /// The cutoff.
        gc_cutoff_lsn: Lsn,
    },
    /// No record of the key at or below the LSN (404).
    #[error("key {key} has no record at or below {lsn}")]
    NotFound {
        /// The key.
        key: Key,
        /// The LSN.
        lsn: Lsn,
    },
    /// The stored records cannot rebuild the page, or a layer could not be read (500).
    #[error("cannot rebuild key {key} at {lsn}: {source:#}")]
    Data {
        /// The key.
        key: Key,
        /// The LSN.
        lsn: Lsn,
        /// What went wrong.
        source: anyhow::Error,
    },
}

impl Timeline {
    /// The page of `key` at `lsn`.
    pub async fn get_page(&self, key: Key, lsn: Lsn) -> Result<Bytes, ReadError> {
        let last_record_lsn = self.last_record_lsn();
        if lsn > last_record_lsn {
            return Err(ReadError::LsnAhead {
                lsn,
                last_record_lsn,
            });
        }
        let gc_cutoff_lsn = Lsn(self.gc_cutoff_lsn.load(std::sync::atomic::Ordering::SeqCst));
        if lsn < gc_cutoff_lsn {
            return Err(ReadError::BelowGcCutoff { lsn, gc_cutoff_lsn });
        }
        let data = |source: anyhow::Error| ReadError::Data { key, lsn, source };
        let mut values: Vec<(Lsn, Value)> = Vec::new();
        let candidates: Vec<Arc<LayerHandle>> = {
            let l = self.layers.read().expect("not poisoned");
            let mut done = l.open.collect(key, lsn, &mut values);
            for frozen in l.frozen.iter().rev() {
                if done {
                    break;
                }
                done = frozen.collect(key, lsn, &mut values);
            }
            if done {
                Vec::new()
            } else {
                l.map
                    .values()
                    .filter(|h| h.name.key_range().contains(&key))
                    .cloned()
                    .collect()
            }
        };
        let mut remaining = candidates;
        let mut cont = Some(lsn);
        while let Some(c) = cont {
            if values.last().is_some_and(|(_, v)| v.is_base()) {
                break;
            }
            let Some(pos) = remaining
                .iter()
                .enumerate()
                .filter(|(_, h)| h.name.lsn_range().start <= c)
                .max_by_key(|(_, h)| (h.name.lsn_range().end, !h.name.is_delta()))
                .map(|(i, _)| i)
            else {
                break;
            };
            let layer = remaining.swap_remove(pos);
            let range = layer.name.lsn_range();
            let reader = layer.reader(&self.src).await.map_err(data)?;
            let at = Lsn(c.0.min(range.end.0 - 1));
            let found = tokio::task::spawn_blocking(move || reader.get(key, at))
                .await
                .map_err(|e| data(anyhow::anyhow!("read task panicked: {e}")))?
                .map_err(|e| data(e.into()))?;
            values.extend(found);
            cont = range.start.0.checked_sub(1).map(Lsn);
        }
        match reconstruct(key, lsn, &values) {
            Ok(page) => Ok(page),
            Err(RedoError::NoRecords { .. }) => Err(ReadError::NotFound { key, lsn }),
            Err(e) => Err(data(e.into())),
        }
    }
}
