//! The read path: rebuild a page at an LSN from the in-memory layers and the layer map.
//!
//! Values are collected newest first: the open in-memory layer, the frozen ones newest to
//! oldest, then layer files in the order the layer map's one query gives
//! ([`LayerMap::visits`](super::LayerMap::visits)), taking from each only the records in the
//! window the query names, until a base value (image or `will_init`) is found. The GC cutoff
//! check and the query happen under one hold of the `layers` lock, so a read never plans
//! against layers GC removed for a cutoff it passed. `redo::reconstruct` then applies the
//! values oldest first.

use super::Timeline;
use super::layer_map::Visit;
use bytes::Bytes;
use layer_format::redo::{RedoError, reconstruct};
use layer_format::{Key, Lsn, Value};

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
        let data = |source: anyhow::Error| ReadError::Data { key, lsn, source };
        let mut values: Vec<(Lsn, Value)> = Vec::new();
        let visits: Vec<Visit> = {
            let l = self.layers_read();
            let gc_cutoff_lsn = l.map.gc_cutoff_lsn();
            if lsn < gc_cutoff_lsn {
                return Err(ReadError::BelowGcCutoff { lsn, gc_cutoff_lsn });
            }
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
                l.map.visits(key, lsn)
            }
        };
        for visit in visits {
            if values.last().is_some_and(|(_, v)| v.is_base()) {
                break;
            }
            let reader = visit.layer.reader(&self.src).await.map_err(data)?;
            let (floor, top) = (*visit.lsns.start(), *visit.lsns.end());
            // Answered from the block cache in place when it can be (no I/O, no hand-off to
            // a blocking thread); otherwise on a blocking thread, which fills the cache.
            let found = match reader.get_cached(key, top) {
                Some(found) => found.map_err(|e| data(e.into()))?,
                None => tokio::task::spawn_blocking(move || reader.get(key, top))
                    .await
                    .map_err(|e| data(anyhow::anyhow!("read task panicked: {e}")))?
                    .map_err(|e| data(e.into()))?,
            };
            // Newest first: what lies below the window belongs to a later visit.
            values.extend(found.into_iter().take_while(|(l, _)| *l >= floor));
        }
        match reconstruct(key, lsn, &values) {
            Ok(page) => Ok(page),
            Err(RedoError::NoRecords { .. }) => Err(ReadError::NotFound { key, lsn }),
            Err(e) => Err(data(e.into())),
        }
    }
}
