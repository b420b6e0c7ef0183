//! The per-timeline upload queue (I4, I5, I8, I9, I11).
//!
//! One task per timeline executes what `pending.rs` hands it: the barrier index first, then
//! layer uploads (up to `upload_concurrency` at once, and at most [`MAX_BYTES_IN_FLIGHT`] of
//! them), then the newest queued index, then deletions (order rules in `pending.rs`). While
//! remote storage is down, the queue holds one entry per layer and one index, however many
//! flushes happen: a newer index replaces one not yet uploaded (`pageserver_index_uploads_
//! coalesced_total`). Every failed attempt is retried with exponential backoff until it
//! succeeds or the timeline shuts down; a failure is logged, counted and reported in timeline
//! info, and never blocks ingest (flushes only queue work).
//!
//! After an index upload the task checks that no higher generation has been claimed, and only
//! then advances `remote_consistent_lsn` (I8, I9). If one has, the attachment is stale: it
//! stops acknowledging.
//!
//! Retries back off exponentially with jitter ([`crate::retry`]); an attempt that made progress
//! (some layers uploaded, some objects deleted) starts the backoff over.
//!
//! Before a layer is uploaded its bytes are checked against the size and checksum the index
//! will record, so a file damaged on local disk is never uploaded. A layer object of this
//! generation found with other bytes is handled by the conflict rule of `execute.rs` (I11).

mod execute;
mod pending;

use crate::lock::MutexExt;
use crate::metrics::METRICS;
use index_part::names::{Generation, LayerFileName, TenantId, TimelineId};
use index_part::{IndexPart, LayerMetadata};
use layer_format::Lsn;
use layer_format::io::IoEngine;
use pending::{LayerJob, Pending, Work};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, watch};

use super::RemoteStorage;
use crate::retry::Backoff;

/// Bytes of layer files uploaded at once (at least one layer). The local backend copies a
/// file in chunks of [`crate::remote::file_source::UPLOAD_CHUNK`]; S3's create-only put is one
/// request, so there this is the memory that uploads hold.
pub const MAX_BYTES_IN_FLIGHT: u64 = 256 << 20;

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
    /// Delete layer objects that the index queued just before no longer references.
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
    executing: AtomicBool,
    /// Layer files known to be in remote storage.
    uploaded: Mutex<HashSet<LayerFileName>>,
    /// Set if the queue's task panicked: the timeline is broken, nothing more is uploaded.
    panicked: Mutex<Option<String>>,
    pending: Mutex<Pending>,
    /// The layers the newest index this queue uploaded references.
    last_uploaded_refs: Mutex<HashSet<LayerFileName>>,
    work: Notify,
    /// Notified after every attempt (the only time `pending` shrinks), for those who wait for
    /// the queue to drain.
    attempted: Notify,
}

impl UploadState {
    /// Whether the layer file `name` is known to be in remote storage.
    pub fn is_uploaded(&self, name: &LayerFileName) -> bool {
        self.uploaded.lock_unpoisoned().contains(name)
    }
    /// Records layer files known to be in remote storage (those of a loaded index).
    pub fn mark_uploaded(&self, names: impl IntoIterator<Item = LayerFileName>) {
        self.uploaded.lock_unpoisoned().extend(names);
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
    /// Operations queued and not yet done (each layer upload, the index, the deletion).
    pub fn pending(&self) -> usize {
        self.pending.lock_unpoisoned().count()
    }
    /// Waits until nothing is pending, or `deadline`; whether the queue drained. Woken by each
    /// finished attempt, not by polling.
    pub async fn drained(&self, deadline: tokio::time::Instant) -> bool {
        loop {
            let attempted = self.attempted.notified();
            tokio::pin!(attempted);
            // Registered before the check, so that an attempt ending in between still wakes us.
            attempted.as_mut().enable();
            if self.pending() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, attempted).await.is_err() {
                return self.pending() == 0;
            }
        }
    }
    /// Bytes the queue holds for work not yet done (the entries, and the queued indexes as
    /// JSON; layer files stay on disk until they are uploaded).
    pub fn queued_bytes(&self) -> usize {
        self.pending.lock_unpoisoned().held_bytes()
    }
    /// Indexes replaced by a newer one before they were uploaded.
    pub fn coalesced_indexes(&self) -> u64 {
        self.pending.lock_unpoisoned().coalesced
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

/// The file names of the layers `index` references.
fn file_names(index: &IndexPart) -> HashSet<LayerFileName> {
    index
        .layers
        .iter()
        .map(|(layer, meta)| IndexPart::file_name(layer, meta))
        .collect()
}

/// The queue of one timeline.
#[derive(Debug)]
pub struct UploadQueue {
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
    /// Layer uploads run at once (`upload_concurrency`).
    pub concurrency: usize,
}

impl UploadQueue {
    /// Starts the queue's task; `remote_consistent_lsn` starts at `start_lsn`. The first
    /// index queued is the barrier (`pending.rs`) unless [`UploadQueue::first_index_landed`]
    /// says one is in remote storage already.
    pub fn start(target: UploadTarget, start_lsn: Lsn) -> UploadQueue {
        let state = Arc::new(UploadState {
            remote_consistent_lsn: watch::Sender::new(start_lsn),
            last_error: Mutex::new(None),
            stale: AtomicBool::new(false),
            executing: AtomicBool::new(false),
            uploaded: Mutex::new(Default::default()),
            panicked: Mutex::new(None),
            pending: Mutex::new(Pending::default()),
            last_uploaded_refs: Mutex::new(Default::default()),
            work: Notify::new(),
            attempted: Notify::new(),
        });
        let (cancel, cancelled) = watch::channel(false);
        let span = tracing::info_span!("upload_queue", tenant_id = %target.tenant, timeline_id = %target.timeline);
        let task_state = state.clone();
        let task = tokio::spawn(tracing::Instrument::instrument(
            async move {
                use futures::FutureExt;
                let run = run(target, task_state.clone(), cancelled);
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
            state,
            cancel,
            task: Mutex::new(Some(task)),
        }
    }

    /// Says that an index of this attachment is in remote storage already (a timeline
    /// created by uploading its first index itself): no barrier is needed.
    pub fn first_index_landed(&self, index: &IndexPart) {
        self.state.pending.lock_unpoisoned().index_landed = true;
        *self.state.last_uploaded_refs.lock_unpoisoned() = file_names(index);
    }

    /// Queues an operation.
    pub fn push(&self, op: UploadOp) {
        {
            let mut p = self.state.pending.lock_unpoisoned();
            match op {
                UploadOp::Layer {
                    file_name,
                    path,
                    meta,
                } => p.push_layer(LayerJob {
                    file_name,
                    path,
                    meta,
                }),
                UploadOp::Index { index, seq } => {
                    if p.push_index(index, seq) {
                        METRICS.index_uploads_coalesced.inc();
                    }
                }
                UploadOp::Delete { layers } => p.push_delete(layers),
            }
        }
        self.state.work.notify_one();
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

async fn run(target: UploadTarget, state: Arc<UploadState>, mut cancelled: watch::Receiver<bool>) {
    let mut backoff = Backoff::new(&[&target.tenant.0, &target.timeline.0]);
    loop {
        // Cancellation first: a stopped queue starts no new attempt (and the choice never
        // depends on the runtime's random branch order).
        let work = loop {
            if *cancelled.borrow() {
                return;
            }
            let next = state
                .pending
                .lock_unpoisoned()
                .next(target.concurrency, MAX_BYTES_IN_FLIGHT);
            if let Some(w) = next {
                break w;
            }
            tokio::select! {
                biased;
                _ = cancelled.wait_for(|c| *c) => return,
                _ = state.work.notified() => {}
            }
        };
        let kind = match &work {
            Work::Layers(_) => "upload_layer",
            Work::Index(..) => "upload_index",
            Work::Delete(_) => "delete",
        };
        state.executing.store(true, Ordering::SeqCst);
        let (progress, attempt) = execute::execute(&target, work, &state).await;
        state.executing.store(false, Ordering::SeqCst);
        state.attempted.notify_waiters();
        match attempt {
            Ok(()) => {
                *state.last_error.lock_unpoisoned() = None;
                backoff.reset();
            }
            Err(e) => {
                METRICS.remote_retries.with_label_values(&[kind]).inc();
                // An attempt that made progress starts the backoff over: a long deletion or
                // a batch of uploads on a flaky store must not wait the longest delay per
                // object.
                if progress {
                    backoff.reset();
                }
                let delay = backoff.next_delay();
                tracing::warn!("{kind} failed, retrying in {delay:?}: {e:#}");
                *state.last_error.lock_unpoisoned() = Some(format!("{e:#}"));
                tokio::select! {
                    biased;
                    _ = cancelled.wait_for(|c| *c) => return,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

#[cfg(test)]
#[cfg(feature = "testing")]
mod tests;
