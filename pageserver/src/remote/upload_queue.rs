//! The per-timeline upload queue (I4, I5, I8, I9).
//!
//! One task per timeline executes operations strictly in the order they were queued: a flush
//! queues its layer and then the index that references it, so no index is uploaded before its
//! layers. Each operation is retried with exponential backoff until it succeeds or the
//! timeline shuts down; a failure is logged, counted and reported in timeline info, and never
//! blocks ingest (flushes only queue work).
//!
//! After an index upload the task checks that no higher generation has been claimed, and only
//! then advances `remote_consistent_lsn` (I8, I9). If one has, the attachment is stale: it
//! stops acknowledging.
//!
//! Retries back off exponentially from 50 ms to 5 s; an attempt that made progress (a deletion
//! that removed some of its objects before failing) starts the backoff over.
//!
//! Deletions are deferred the same way: a removal queues the index that no longer references
//! the layers, then their deletion; the deletion runs only after that index upload succeeded
//! (never while its outcome is unknown), and only if no higher generation has been claimed
//! (I8, failpoint `deletion-before-execute`).
//!
//! Before a layer is uploaded its bytes are checked against the size and checksum the index
//! will record, so a file damaged on local disk is never uploaded.

use super::generation::highest_generation;
use super::{RemoteStorage, create_once};
use crate::lock::MutexExt;
use crate::metrics::METRICS;
use anyhow::{Context, bail};
use bytes::Bytes;
use index_part::names::{
    Generation, IndexObjectName, LayerFileName, TenantId, TimelineId, index_object_key,
    layer_object_key,
};
use index_part::{IndexPart, LayerMetadata};
use layer_format::Lsn;
use layer_format::io::IoEngine;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// First retry delay.
const BACKOFF_START: Duration = Duration::from_millis(50);
/// Longest retry delay.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// One queued upload.
#[derive(Debug)]
pub enum UploadOp {
    /// Upload a local layer file.
    Layer {
        /// Its file and object name.
        file_name: LayerFileName,
        /// The local file.
        path: PathBuf,
        /// What the index records of it.
        meta: LayerMetadata,
    },
    /// Upload an index version.
    Index {
        /// The index.
        index: Box<IndexPart>,
        /// Its sequence number within the generation.
        seq: u32,
    },
    /// Delete layer objects that the index uploaded just before no longer references.
    Delete {
        /// The layer files.
        layers: Vec<LayerFileName>,
    },
}

/// What the queue reports.
#[derive(Debug)]
pub struct UploadState {
    remote_consistent_lsn: watch::Sender<Lsn>,
    last_error: Mutex<Option<String>>,
    stale: AtomicBool,
    pending: AtomicUsize,
    executing: AtomicBool,
    uploaded: Mutex<std::collections::HashSet<String>>,
    /// Set if the queue's task panicked: the timeline is broken, nothing more is uploaded.
    panicked: Mutex<Option<String>>,
}

impl UploadState {
    /// Whether the layer file `name` is known to be in remote storage.
    pub fn is_uploaded(&self, name: &LayerFileName) -> bool {
        self.uploaded.lock_unpoisoned().contains(&name.to_string())
    }
    /// Records layer files known to be in remote storage (those of a loaded index).
    pub fn mark_uploaded(&self, names: impl IntoIterator<Item = LayerFileName>) {
        self.uploaded
            .lock_unpoisoned()
            .extend(names.into_iter().map(|n| n.to_string()));
    }
    /// The `disk_consistent_lsn` of the newest index known durable remotely.
    pub fn remote_consistent_lsn(&self) -> Lsn {
        *self.remote_consistent_lsn.borrow()
    }
    /// The error of the last failed attempt, cleared by the next success.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock_unpoisoned().clone()
    }
    /// Whether a newer attachment (higher generation) was seen.
    pub fn is_stale(&self) -> bool {
        self.stale.load(Ordering::SeqCst)
    }
    /// Operations queued and not yet done.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }
    /// Whether an attempt is under way (not waiting for an operation or backing off).
    pub fn is_executing(&self) -> bool {
        self.executing.load(Ordering::SeqCst)
    }
    /// Waits until `remote_consistent_lsn` reaches `lsn`, or the attachment turns out stale
    /// (it will never acknowledge again).
    pub async fn wait_for(&self, lsn: Lsn) {
        let mut rx = self.remote_consistent_lsn.subscribe();
        let _ = rx
            .wait_for(|l| {
                *l >= lsn || self.stale.load(Ordering::SeqCst) || self.panic_reason().is_some()
            })
            .await;
    }

    /// Why the queue's task stopped by panicking, if it did.
    pub fn panic_reason(&self) -> Option<String> {
        self.panicked.lock_unpoisoned().clone()
    }

    /// Marks the attachment stale and wakes every waiter.
    fn mark_stale(&self) -> bool {
        let first = !self.stale.swap(true, Ordering::SeqCst);
        self.remote_consistent_lsn.send_modify(|_| {});
        first
    }
}

/// The queue of one timeline.
#[derive(Debug)]
pub struct UploadQueue {
    tx: mpsc::UnboundedSender<UploadOp>,
    state: Arc<UploadState>,
    cancel: watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Where a queue uploads.
#[derive(Debug, Clone)]
pub struct UploadTarget {
    /// The store.
    pub storage: Arc<dyn RemoteStorage>,
    /// For reading local layer files.
    pub engine: Arc<dyn IoEngine>,
    /// The tenant.
    pub tenant: TenantId,
    /// The timeline.
    pub timeline: TimelineId,
    /// This attachment's generation.
    pub generation: Generation,
}

impl UploadQueue {
    /// Starts the queue's task; `remote_consistent_lsn` starts at `start_lsn`.
    pub fn start(target: UploadTarget, start_lsn: Lsn) -> UploadQueue {
        let (tx, rx) = mpsc::unbounded_channel();
        let state = Arc::new(UploadState {
            remote_consistent_lsn: watch::Sender::new(start_lsn),
            last_error: Mutex::new(None),
            stale: AtomicBool::new(false),
            pending: AtomicUsize::new(0),
            executing: AtomicBool::new(false),
            uploaded: Mutex::new(Default::default()),
            panicked: Mutex::new(None),
        });
        let (cancel, cancelled) = watch::channel(false);
        let span = tracing::info_span!("upload_queue", tenant_id = %target.tenant, timeline_id = %target.timeline);
        let task_state = state.clone();
        let task = tokio::spawn(tracing::Instrument::instrument(
            async move {
                use futures::FutureExt;
                let run = run(target, rx, task_state.clone(), cancelled);
                if let Err(payload) = std::panic::AssertUnwindSafe(run).catch_unwind().await {
                    let message = crate::timeline::panic_message(&*payload);
                    tracing::error!("upload queue panicked; the timeline is broken: {message}");
                    METRICS.broken.with_label_values(&["timeline"]).inc();
                    *task_state.panicked.lock_unpoisoned() =
                        Some(format!("the upload queue panicked: {message}"));
                    // Waiters for an acknowledgement that will never come.
                    task_state.remote_consistent_lsn.send_modify(|_| {});
                }
            },
            span,
        ));
        UploadQueue {
            tx,
            state,
            cancel,
            task: Mutex::new(Some(task)),
        }
    }

    /// Queues an operation.
    pub fn push(&self, op: UploadOp) {
        self.state.pending.fetch_add(1, Ordering::SeqCst);
        if self.tx.send(op).is_err() {
            self.state.pending.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!("upload queue has stopped; operation dropped");
        }
    }

    /// The queue's state.
    pub fn state(&self) -> &Arc<UploadState> {
        &self.state
    }

    /// Stops the task after its current attempt.
    pub fn shutdown(&self) {
        self.cancel.send_replace(true);
    }

    /// Stops the task and waits until it has ended, so that nothing it started can land
    /// afterwards under a name (an index sequence number) someone else may then choose.
    pub async fn stop(&self) {
        self.shutdown();
        let task = self.task.lock_unpoisoned().take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for UploadQueue {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn run(
    target: UploadTarget,
    mut rx: mpsc::UnboundedReceiver<UploadOp>,
    state: Arc<UploadState>,
    mut cancelled: watch::Receiver<bool>,
) {
    loop {
        // Cancellation first: a stopped queue starts no new operation (and the choice never
        // depends on the runtime's random branch order).
        let mut op = tokio::select! {
            biased;
            _ = cancelled.wait_for(|c| *c) => return,
            op = rx.recv() => match op { Some(op) => op, None => return },
        };
        let mut backoff = BACKOFF_START;
        loop {
            let before = remaining(&op);
            state.executing.store(true, Ordering::SeqCst);
            let attempt = execute(&target, &mut op, &state).await;
            state.executing.store(false, Ordering::SeqCst);
            match attempt {
                Ok(()) => {
                    *state.last_error.lock_unpoisoned() = None;
                    break;
                }
                Err(e) => {
                    let kind = match &op {
                        UploadOp::Layer { .. } => "upload_layer",
                        UploadOp::Index { .. } => "upload_index",
                        UploadOp::Delete { .. } => "delete",
                    };
                    METRICS.remote_retries.with_label_values(&[kind]).inc();
                    tracing::warn!("{kind} failed, retrying in {backoff:?}: {e:#}");
                    *state.last_error.lock_unpoisoned() = Some(format!("{e:#}"));
                    // An attempt that made progress (objects deleted) starts the backoff over:
                    // a long deletion on a flaky store must not wait the longest delay per
                    // object.
                    if remaining(&op) < before {
                        backoff = BACKOFF_START;
                    }
                    tokio::select! {
                        biased;
                        _ = cancelled.wait_for(|c| *c) => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
        state.pending.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Work left in an operation: objects still to delete, or 1.
fn remaining(op: &UploadOp) -> usize {
    match op {
        UploadOp::Delete { layers } => layers.len(),
        UploadOp::Layer { .. } | UploadOp::Index { .. } => 1,
    }
}

async fn execute(t: &UploadTarget, op: &mut UploadOp, state: &UploadState) -> anyhow::Result<()> {
    match op {
        UploadOp::Layer {
            file_name,
            path,
            meta,
        } => {
            fail::fail_point!("upload-layer-before", |_| bail!(
                "failpoint upload-layer-before"
            ));
            let data = read_checked(&t.engine, path, meta).await?;
            let key = layer_object_key(t.tenant, t.timeline, file_name);
            create_once(&*t.storage, "upload_layer", &key, data).await?;
            state.mark_uploaded([file_name.clone()]);
            fail::fail_point!("upload-layer-after", |_| bail!(
                "failpoint upload-layer-after"
            ));
            Ok(())
        }
        UploadOp::Index { index, seq } => {
            fail::fail_point!("upload-index-before", |_| bail!(
                "failpoint upload-index-before"
            ));
            let object = IndexObjectName {
                generation: t.generation,
                seq: *seq,
            };
            let json = index.to_json().context("serialize index")?;
            create_once(
                &*t.storage,
                "upload_index",
                &index_object_key(t.tenant, t.timeline, object),
                Bytes::from(json),
            )
            .await?;
            fail::fail_point!("upload-index-after", |_| bail!(
                "failpoint upload-index-after"
            ));
            // Acknowledge only if no newer attachment exists (I8).
            match highest_generation(&*t.storage, t.tenant).await? {
                Some(g) if g > t.generation => {
                    if state.mark_stale() {
                        tracing::warn!(
                            newer = g.0,
                            "a newer generation exists; this attachment is stale and stops acknowledging uploads"
                        );
                    }
                }
                _ => {
                    state.remote_consistent_lsn.send_if_modified(|l| {
                        let advance = index.disk_consistent_lsn > *l;
                        if advance {
                            *l = index.disk_consistent_lsn;
                        }
                        advance
                    });
                }
            }
            Ok(())
        }
        UploadOp::Delete { layers } => {
            fail::fail_point!("deletion-before-execute", |_| bail!(
                "failpoint deletion-before-execute"
            ));
            if state.is_stale() {
                tracing::info!(count = layers.len(), "stale attachment: deletions skipped");
                return Ok(());
            }
            if let Some(g) = highest_generation(&*t.storage, t.tenant).await?
                && g > t.generation
            {
                state.mark_stale();
                tracing::warn!(
                    newer = g.0,
                    count = layers.len(),
                    "a newer generation exists; deletions skipped"
                );
                return Ok(());
            }
            // Objects already deleted leave the operation, so that a retry makes progress
            // even when every attempt has some failure.
            while let Some(file) = layers.first().cloned() {
                let key = layer_object_key(t.tenant, t.timeline, &file);
                if let Err(e) = t.storage.delete(&key).await {
                    METRICS
                        .remote_ops
                        .with_label_values(&["delete", "error"])
                        .inc();
                    return Err(e);
                }
                METRICS
                    .remote_ops
                    .with_label_values(&["delete", "ok"])
                    .inc();
                state.uploaded.lock_unpoisoned().remove(&file.to_string());
                layers.remove(0);
            }
            Ok(())
        }
    }
}

/// Reads a local layer file and checks it against what the index records.
async fn read_checked(
    engine: &Arc<dyn IoEngine>,
    path: &std::path::Path,
    meta: &LayerMetadata,
) -> anyhow::Result<Bytes> {
    let (engine, path2, meta) = (engine.clone(), path.to_path_buf(), *meta);
    tokio::task::spawn_blocking(move || -> anyhow::Result<Bytes> {
        let f = engine
            .open_read(&path2)
            .with_context(|| format!("open {}", path2.display()))?;
        let size = f.size()?;
        if size != meta.file_size {
            bail!(
                "{} is {size} bytes, the index records {}",
                path2.display(),
                meta.file_size
            );
        }
        let mut buf = vec![0u8; size as usize];
        f.read_exact_at(&mut buf, 0)
            .with_context(|| format!("read {}", path2.display()))?;
        let crc = crc32c::crc32c(&buf);
        if crc != meta.checksum {
            bail!(
                "{} has checksum {crc:08x}, the index records {:08x}",
                path2.display(),
                meta.checksum
            );
        }
        Ok(Bytes::from(buf))
    })
    .await
    .context("read task panicked")?
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::testing::sim_storage::{SimFaults, SimStorage};
    use index_part::names::{LayerName, timeline_prefix};
    use layer_format::Key;
    use layer_format::io::{EngineChoice, open_engine};

    /// Found by the slow-storage soak with small compaction outputs: a GC deletion of dozens
    /// of objects on a store failing a third of the writes waited the longest delay (5 s)
    /// after nearly every object, and the soak took more than 15 minutes.
    #[tokio::test(start_paused = true)]
    async fn a_deletion_that_makes_progress_starts_its_backoff_over() {
        let (tenant, timeline) = (TenantId([1; 16]), TimelineId([2; 16]));
        let storage = Arc::new(SimStorage::new(
            42,
            SimFaults::default(),
            &format!("{}/", timeline_prefix(tenant, timeline)),
        ));
        let files: Vec<LayerFileName> = (0..40u128)
            .map(|i| LayerFileName {
                layer: LayerName::Image {
                    key_range: Key::from_u128(i)..Key::from_u128(i + 1),
                    lsn: Lsn(1),
                },
                generation: Generation(1),
            })
            .collect();
        for f in &files {
            let key = layer_object_key(tenant, timeline, f);
            storage
                .put_if_absent(&key, Bytes::from_static(b"x"))
                .await
                .unwrap();
        }
        storage.set_faults(SimFaults {
            fail_before: 0.5,
            ..SimFaults::default()
        });
        let queue = UploadQueue::start(
            UploadTarget {
                storage: storage.clone(),
                engine: open_engine(EngineChoice::Std).unwrap(),
                tenant,
                timeline,
                generation: Generation(1),
            },
            Lsn(0),
        );
        let started = tokio::time::Instant::now();
        queue.push(UploadOp::Delete {
            layers: files.clone(),
        });
        while queue.state().pending() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let took = started.elapsed();
        assert!(storage.objects().is_empty(), "every object deleted");
        let failed = storage.counts().failed_before;
        assert!(failed >= 10, "the store failed {failed} deletes");
        // Backoff that only grew would wait 5 s after most of those failures.
        assert!(
            took < Duration::from_secs(20),
            "{failed} failures took {took:?} of virtual time"
        );
        queue.stop().await;
    }
}
