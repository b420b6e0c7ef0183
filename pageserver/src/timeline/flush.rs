//! Flushes: frozen in-memory layers written to L0 delta layers, oldest first, and
//! `checkpoint`.
//!
//! The write path of a flush (numbered in docs/crash-consistency.md): write the L0 temp file,
//! fsync, publish with `RENAME_NOREPLACE` and a directory fsync; then install it through
//! [`Timeline::install`] ([`Change::Flush`]): under the `layers` lock the layer enters the
//! layer map, the frozen layer is dropped, `disk_consistent_lsn` advances, and the layer upload
//! followed by the upload of the new index version are queued. A flush that fails removes its
//! file: nothing it published outlives the attempt.

use super::inmemory::InMemoryLayer;
use super::layer_map::Change;
use super::publish::{self, remove_files};
use super::{CHECKPOINT_UPLOAD_TIMEOUT, LayerHandle, Timeline};
use crate::lock::MutexExt;
use crate::metrics::METRICS;
use anyhow::{Context, bail};
use index_part::{LayerMetadata, Level};
use layer_format::{DeltaLayerWriter, Key, LayerReader};
use std::sync::Arc;
use std::sync::atomic::Ordering;

impl Timeline {
    /// Starts the background flush of frozen layers unless one is running. It retries with
    /// backoff until every frozen layer is flushed, so that a transient failure cannot leave
    /// ingest waiting on backpressure forever.
    pub(super) fn spawn_flush(self: &Arc<Self>) {
        if self.flush_task_running.swap(true, Ordering::SeqCst) {
            return;
        }
        let tl = self.clone();
        let span = tracing::info_span!("flush", tenant_id = %self.tenant_id, timeline_id = %self.timeline_id);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let mut backoff = crate::retry::Backoff::new(&[&tl.tenant_id.0, &tl.timeline_id.0]);
                loop {
                    match tl.guarded("flush", tl.flush_frozen()).await {
                        Ok(Ok(())) => backoff.reset(),
                        // Broken: nothing more is flushed (ingest waiting on backpressure
                        // is woken and refused).
                        Err(_) => {
                            tl.flush_task_running.store(false, Ordering::SeqCst);
                            break;
                        }
                        Ok(Err(e)) => {
                            let delay = backoff.next_delay();
                            tracing::warn!("flush failed, retrying in {delay:?}: {e:#}");
                            tokio::time::sleep(delay).await;
                        }
                    }
                    if tl.shut_down.load(Ordering::SeqCst) {
                        break;
                    }
                    tl.flush_task_running.store(false, Ordering::SeqCst);
                    // A freeze may have happened after the last look at the queue.
                    if tl.layers_read().frozen.is_empty()
                        || tl.flush_task_running.swap(true, Ordering::SeqCst)
                    {
                        break;
                    }
                }
            },
            span,
        ));
    }

    /// Flushes every frozen layer, oldest first.
    pub async fn flush_frozen(self: &Arc<Self>) -> anyhow::Result<()> {
        let _guard = self.flush_lock.lock().await;
        loop {
            let Some(frozen) = self.layers_read().frozen.front().cloned() else {
                return Ok(());
            };
            match crate::metrics::timed("flush", self.flush_one(&frozen)).await {
                Ok(()) => {
                    METRICS.flushes.with_label_values(&["ok"]).inc();
                    *self.flush_error.lock_unpoisoned() = None;
                }
                Err(e) => {
                    METRICS.flushes.with_label_values(&["error"]).inc();
                    *self.flush_error.lock_unpoisoned() = Some(format!("{e:#}"));
                    return Err(e);
                }
            }
        }
    }

    async fn flush_one(self: &Arc<Self>, frozen: &Arc<InMemoryLayer>) -> anyhow::Result<()> {
        let start = frozen.start_lsn;
        let end = frozen.end_lsn().expect("only non-empty layers are frozen");
        let (engine, dir, generation, layer) = (
            self.src.engine.clone(),
            self.dir.clone(),
            self.generation,
            frozen.clone(),
        );
        let in_map = self.file_names_in_map();
        let stopped = self.shut_down.clone();
        let (info, reader) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let mut w =
                DeltaLayerWriter::new(&engine, &dir, generation, Key::MIN..Key::MAX, start..end)?;
            for ((k, l), v) in layer.iter() {
                w.put(*k, *l, v)?;
            }
            let finished = w.finish_unpublished(None)?;
            let info = finished.info.clone();
            // A stopped timeline's successor may own the directory: publish nothing.
            if stopped.load(Ordering::SeqCst) {
                bail!("timeline stopped during the flush; layer dropped");
            }
            publish::publish_layers(&engine, &dir, vec![finished.file], &in_map)?;
            // Evaluated on this blocking thread, so that `pause` never stalls the runtime.
            if let Err(e) = flush_after_publish() {
                // Not installed: the file must not outlive the attempt.
                remove_files(&engine, &dir, std::slice::from_ref(&info.path), &stopped);
                return Err(e);
            }
            let reader =
                LayerReader::open_cached(&engine, &info.path, crate::page_cache::get().clone())?;
            Ok((info, reader))
        })
        .await
        .context("flush task panicked")?
        .context("write L0 layer")?;

        let name = info.file_name.layer.clone();
        let meta = LayerMetadata {
            file_size: info.size_bytes,
            generation: self.generation,
            checksum: info.checksum,
            level: Some(Level::L0),
        };
        let layer = Arc::new(LayerHandle::with_reader(
            name,
            meta,
            info.path.clone(),
            reader,
        ));
        if let Err(e) = self.install(|_| Some(Change::Flush { layer }), Some(frozen)) {
            // Not installed: the file must not outlive the attempt.
            remove_files(
                &self.src.engine,
                &self.dir,
                std::slice::from_ref(&info.path),
                &self.shut_down,
            );
            return Err(e.context("install the flushed layer"));
        }
        self.frozen_changed.notify_waiters();
        tracing::info!(layer = %info.file_name, records = info.record_count, bytes = info.size_bytes, "flushed");
        Ok(())
    }

    /// Freezes the open in-memory layer and flushes every frozen layer, without waiting for
    /// their upload.
    pub async fn flush(self: &Arc<Self>) -> anyhow::Result<()> {
        {
            let _guard = self.ingest_lock.lock().await;
            self.freeze();
        }
        // A task of its own: a caller that gives up (a dropped HTTP request) must not cancel
        // a flush between its publish and its install.
        let tl = self.clone();
        // A span of its own with the ids, under the caller's (a request's or the shutdown's).
        let span = tracing::info_span!("flush", tenant_id = %self.tenant_id, timeline_id = %self.timeline_id);
        tokio::spawn(tracing::Instrument::instrument(
            async move { tl.guarded("flush", tl.flush_frozen()).await },
            span,
        ))
        .await
        .context("flush task")??
    }

    /// Freezes, flushes, and waits until the index covering the flush is uploaded.
    pub async fn checkpoint(self: &Arc<Self>) -> anyhow::Result<()> {
        self.flush().await?;
        let target = self.disk_consistent_lsn();
        let state = self.uploads.state().clone();
        if tokio::time::timeout(CHECKPOINT_UPLOAD_TIMEOUT, state.wait_for(target))
            .await
            .is_err()
        {
            bail!(
                "the index covering {target} is not uploaded after {CHECKPOINT_UPLOAD_TIMEOUT:?}{}",
                state
                    .last_error()
                    .map(|e| format!("; last upload error: {e}"))
                    .unwrap_or_default()
            );
        }
        if let Some(reason) = state.panic_reason() {
            bail!("the timeline is broken: {reason}");
        }
        if state.is_stale() {
            bail!(
                "a newer attachment of this tenant exists; this one no longer acknowledges uploads"
            );
        }
        Ok(())
    }
}

/// Failpoint `flush-after-publish`.
fn flush_after_publish() -> anyhow::Result<()> {
    fail::fail_point!("flush-after-publish", |_| bail!(
        "failpoint flush-after-publish"
    ));
    Ok(())
}
