//! A timeline: its in-memory layers, its layer map, ingest, flush, reads, and its index.
//!
//! Locking: `layers` (a std `RwLock`, never held across an await) guards the open and frozen
//! in-memory layers and the [`LayerMap`], which holds the layer files and the index fields
//! that describe them; the index is derived from the layer map as it is, and changes only
//! through `Timeline::install` while `layers` is held for writing (I6, I10).
//! `ingest_lock` serializes ingest requests and freezes; `flush_lock` serializes flushes,
//! which take frozen layers oldest first (`flush.rs`); `compaction_lock` serializes
//! compactions and image creation.

mod compaction;
pub mod draw;
mod flush;
mod gc;
mod images;
mod info;
mod inmemory;
mod install;
mod layer;
pub mod layer_map;
pub mod lost_found;
#[cfg(feature = "testing")]
pub mod mutation;
mod open;
mod publish;
mod read;
pub mod reconcile;

pub use compaction::CompactionResult;
pub use install::Stopped;
pub use layer::{LayerHandle, LayerSource};
pub use layer_format::Record;
pub use layer_map::LayerMap;
pub use read::ReadError;

use crate::config::PageServerConf;
use crate::lock::MutexExt;
use crate::metrics::METRICS;
use crate::remote::upload_queue::{UploadOp, UploadQueue, UploadTarget};
use crate::remote::{RemoteStorage, create_once};
use anyhow::Context;
use bytes::Bytes;
use index_part::names::{
    Generation, IndexObjectName, LayerName, TenantId, TimelineId, index_object_key,
    local_timeline_dir,
};
use index_part::{IndexPart, TimelineMetadata};
pub use info::{LayerStatus, LsnsAndQueue, TimelineStatus};
use inmemory::InMemoryLayer;
use layer_format::Lsn;
use layer_format::io::IoEngine;
use layer_map::Change;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::Notify;

/// Why an ingest request was not applied.
#[derive(Debug, thiserror::Error)]
pub enum IngestFailure {
    /// The records (or the body they came in) break the rules of ingest (400): the wire
    /// format's, or the timeline's own (LSNs in order, above `last_record_lsn`).
    #[error(transparent)]
    Malformed(Box<dyn std::error::Error + Send + Sync>),
    /// The timeline is stopping (reset, detach, shutdown); retry against the new one (409).
    #[error("the timeline is stopping (reset or detach); retry")]
    Stopped,
    /// The server is shutting down: this timeline takes no more records (503).
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The timeline is broken (a panic in one of its requests or jobs); reset the tenant (409).
    #[error("the timeline is broken: {0}; reset or detach the tenant")]
    Broken(String),
    /// The caller expected another incarnation: the timeline was reloaded (reset, restart) and
    /// records it had not acknowledged may be gone; resend from `last_record_lsn` (409).
    #[error(
        "the timeline was reloaded (incarnation {current}, expected {expected}); resend from last_record_lsn"
    )]
    Reloaded {
        /// The incarnation the caller expected.
        expected: u64,
        /// The current one.
        current: u64,
    },
}

/// The timeline's own rules for what it ingests, whoever decoded it: records, in LSN order,
/// starting above `last_record_lsn` (the wire decoder checks the same, with byte offsets).
fn check_order(records: Vec<Record>, last_record_lsn: Lsn) -> Result<Vec<Record>, IngestFailure> {
    let refuse = |message: String| IngestFailure::Malformed(message.into());
    let Some(first) = records.first() else {
        return Err(refuse("no records".into()));
    };
    if first.lsn <= last_record_lsn {
        return Err(refuse(format!(
            "LSN {} is not above the timeline's last_record_lsn {last_record_lsn}",
            first.lsn
        )));
    }
    if let Some(w) = records.windows(2).find(|w| w[1].lsn < w[0].lsn) {
        return Err(refuse(format!(
            "LSN {} is below the previous record's {}",
            w[1].lsn, w[0].lsn
        )));
    }
    if let Some(r) = records
        .iter()
        .find(|r| r.lsn == Lsn::MAX || r.key == layer_format::Key::MAX)
    {
        return Err(refuse(format!(
            "record ({}, {}) uses a reserved key or LSN",
            r.key, r.lsn
        )));
    }
    Ok(records)
}

/// A request's or a job's work on a timeline panicked; the timeline is now broken.
#[derive(Debug, thiserror::Error)]
#[error("{0}; the timeline is marked broken")]
pub struct Panicked(pub String);

/// The message of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

/// A number that differs for every timeline object of this process (and, with high
/// probability, across restarts): changes when a timeline is reloaded.
fn next_incarnation() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    base.wrapping_mul(1000)
        .wrapping_add(NEXT.fetch_add(1, Ordering::SeqCst) % 1000)
}

/// Frozen layers allowed to wait for their flush before ingest waits (backpressure).
const MAX_FROZEN: usize = 2;
/// How long `checkpoint` waits for the index covering its flush to be uploaded.
const CHECKPOINT_UPLOAD_TIMEOUT: Duration = Duration::from_secs(60);

struct Layers {
    open: InMemoryLayer,
    frozen: VecDeque<Arc<InMemoryLayer>>,
    map: LayerMap,
}

/// A timeline of a tenant.
pub struct Timeline {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The timeline.
    pub timeline_id: TimelineId,
    /// The generation of this attachment.
    pub generation: Generation,
    /// Where the layer files live.
    pub dir: PathBuf,
    conf: Arc<PageServerConf>,
    src: LayerSource,
    layers: RwLock<Layers>,
    next_seq: AtomicU32,
    last_record_lsn: AtomicU64,
    /// Identifies this loaded instance of the timeline (see [`IngestFailure::Reloaded`]).
    pub incarnation: u64,
    ingest_lock: tokio::sync::Mutex<()>,
    flush_lock: tokio::sync::Mutex<()>,
    compaction_lock: tokio::sync::Mutex<()>,
    frozen_changed: Notify,
    uploads: UploadQueue,
    flush_error: Mutex<Option<String>>,
    flush_task_running: std::sync::atomic::AtomicBool,
    shut_down: Arc<std::sync::atomic::AtomicBool>,
    /// Set by a graceful shutdown under the ingest lock: no record is taken after it, so the
    /// shutdown's flush covers every acknowledged record; background compaction stops too.
    draining: std::sync::atomic::AtomicBool,
    /// Why the timeline is broken (a panic in one of its requests or jobs); set once.
    broken: std::sync::OnceLock<String>,
}

impl std::fmt::Debug for Timeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timeline")
            .field("tenant_id", &self.tenant_id)
            .field("timeline_id", &self.timeline_id)
            .finish()
    }
}

impl Timeline {
    /// The `layers` lock for reading. A poisoned lock (a panic while it was held for a
    /// change) marks the timeline broken; the guard is still returned, for the read-only
    /// views of info and the layer list, and every data path refuses a broken timeline.
    fn layers_read(&self) -> std::sync::RwLockReadGuard<'_, Layers> {
        self.layers.read().unwrap_or_else(|p| {
            self.set_broken("a panic while the layer map was being changed".to_string());
            p.into_inner()
        })
    }

    /// The `layers` lock for writing; see [`Timeline::layers_read`].
    fn layers_write(&self) -> std::sync::RwLockWriteGuard<'_, Layers> {
        self.layers.write().unwrap_or_else(|p| {
            self.set_broken("a panic while the layer map was being changed".to_string());
            p.into_inner()
        })
    }

    /// Why the timeline is broken, if it is.
    pub fn broken_reason(&self) -> Option<String> {
        self.broken
            .get()
            .cloned()
            .or_else(|| self.uploads.state().panic_reason())
    }

    /// Marks the timeline broken (the first reason stays): from now on it refuses ingest,
    /// reads, flushes, compaction and GC, answers its info with the reason, and stops its
    /// background jobs. Only a reset or a detach of the tenant replaces it.
    pub fn set_broken(&self, reason: String) {
        if self.broken.set(reason.clone()).is_ok() {
            tracing::error!(tenant_id = %self.tenant_id, timeline_id = %self.timeline_id, "timeline is broken: {reason}");
            METRICS.broken.with_label_values(&["timeline"]).inc();
            self.frozen_changed.notify_waiters();
        }
    }

    /// Runs `op` (a request's or a job's work on this timeline); a panic inside it marks the
    /// timeline broken and is returned as an error instead of unwinding further, so that it
    /// never reaches a lock or a task that other timelines share.
    pub async fn guarded<F: std::future::Future>(
        &self,
        what: &str,
        op: F,
    ) -> Result<F::Output, Panicked> {
        use futures::FutureExt;
        match std::panic::AssertUnwindSafe(op).catch_unwind().await {
            Ok(out) => Ok(out),
            Err(payload) => {
                let message = panic_message(&*payload);
                let reason = format!("{what} panicked: {message}");
                self.set_broken(reason.clone());
                Err(Panicked(reason))
            }
        }
    }

    /// The newest LSN ingested.
    pub fn last_record_lsn(&self) -> Lsn {
        Lsn(self.last_record_lsn.load(Ordering::SeqCst))
    }

    /// Every record at or below it is in layer files.
    pub fn disk_consistent_lsn(&self) -> Lsn {
        self.layers_read().map.disk_consistent_lsn()
    }

    /// Reads below it are refused: GC may have removed what they need.
    pub fn gc_cutoff_lsn(&self) -> Lsn {
        self.layers_read().map.gc_cutoff_lsn()
    }

    /// Runs `f` on the layer map as it is (for checks and tests; never held across an await).
    pub fn with_layer_map<R>(&self, f: impl FnOnce(&LayerMap) -> R) -> R {
        f(&self.layers_read().map)
    }

    /// Ingests `records` (brief section 6): all or none. They must be non-empty, in LSN order,
    /// and start above `last_record_lsn`.
    pub async fn ingest(
        self: &Arc<Self>,
        records: Vec<Record>,
        expected_incarnation: Option<u64>,
    ) -> Result<Lsn, IngestFailure> {
        self.ingest_decoded(
            |_| Ok::<_, std::convert::Infallible>(records),
            expected_incarnation,
        )
        .await
    }

    /// Ingests the records `decode` makes of a request's body, given `last_record_lsn`: the
    /// HTTP layer decodes its wire format there, under the timeline's ingest lock and after
    /// the state checks, so a body is judged against the LSN it will follow. All or none.
    pub async fn ingest_decoded<E: std::error::Error + Send + Sync + 'static>(
        self: &Arc<Self>,
        decode: impl FnOnce(Lsn) -> Result<Vec<Record>, E>,
        expected_incarnation: Option<u64>,
    ) -> Result<Lsn, IngestFailure> {
        let _guard = self.ingest_lock.lock().await;
        if self.draining.load(Ordering::SeqCst) {
            return Err(IngestFailure::ShuttingDown);
        }
        if self.shut_down.load(Ordering::SeqCst) {
            return Err(IngestFailure::Stopped);
        }
        if let Some(reason) = self.broken_reason() {
            return Err(IngestFailure::Broken(reason));
        }
        if let Some(expected) = expected_incarnation
            && expected != self.incarnation
        {
            return Err(IngestFailure::Reloaded {
                expected,
                current: self.incarnation,
            });
        }
        let last_record_lsn = self.last_record_lsn();
        let records = match decode(last_record_lsn)
            .map_err(|e| IngestFailure::Malformed(Box::new(e)))
            .and_then(|r| check_order(r, last_record_lsn))
        {
            Ok(r) => r,
            Err(e) => {
                METRICS.ingest_rejected.inc();
                return Err(e);
            }
        };
        // Backpressure: wait while too many frozen layers wait for their flush.
        loop {
            let notified = self.frozen_changed.notified();
            if self.layers_read().frozen.len() < MAX_FROZEN {
                break;
            }
            if self.shut_down.load(Ordering::SeqCst) {
                return Err(IngestFailure::Stopped);
            }
            if let Some(reason) = self.broken_reason() {
                return Err(IngestFailure::Broken(reason));
            }
            notified.await;
        }
        let last = records.last().map_or(last_record_lsn, |r| r.lsn);
        let full = {
            let mut l = self.layers_write();
            for r in records.iter() {
                l.open.put(r.key, r.lsn, r.value.clone());
            }
            l.open.size_bytes() >= self.conf.checkpoint_distance
        };
        self.last_record_lsn.store(last.0, Ordering::SeqCst);
        METRICS.ingest_records.inc_by(records.len() as u64);
        if full {
            self.freeze();
            self.spawn_flush();
        }
        Ok(last)
    }

    /// Freezes the open in-memory layer if it holds anything.
    fn freeze(&self) {
        let mut l = self.layers_write();
        if let Some(end) = l.open.end_lsn() {
            let old = std::mem::replace(&mut l.open, InMemoryLayer::new(end));
            l.frozen.push_back(Arc::new(old));
        }
    }

    /// Removes layers from the layer map and the index ([`Change::Remove`], applied to the
    /// current state, I6). The index without them is queued for upload, then the deletion of
    /// their objects (deferred, I8); local files are removed after the install. Layers not in
    /// the map are ignored. Returns how many were removed.
    pub fn remove_layers(&self, names: &[LayerName]) -> anyhow::Result<usize> {
        let names = names.to_vec();
        let applied = self.install(|_| Some(Change::Remove { names }), None)?;
        Ok(applied.map_or(0, |a| a.removed.len()))
    }

    /// Queues the upload of `index` under the next sequence number (never reused). Called with
    /// the `layers` write lock held, after the layer uploads it depends on were queued.
    fn queue_index_upload(&self, index: &IndexPart) {
        let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
        self.uploads.push(UploadOp::Index {
            index: Box::new(index.clone()),
            seq,
        });
    }

    /// The next index sequence number this timeline would use.
    pub fn next_seq(&self) -> u32 {
        self.next_seq.load(Ordering::SeqCst)
    }

    /// The file names of the layers in the layer map.
    fn file_names_in_map(&self) -> std::collections::HashSet<String> {
        self.layers_read()
            .map
            .layers()
            .map(|h| h.file_name().to_string())
            .collect()
    }

    /// The names of the layers in the layer map.
    pub fn layer_names(&self) -> Vec<LayerName> {
        self.layers_read()
            .map
            .layers()
            .map(|h| h.name.clone())
            .collect()
    }

    /// The upload queue's state (what it holds, what it acknowledged).
    pub fn upload_state(&self) -> &Arc<crate::remote::upload_queue::UploadState> {
        self.uploads.state()
    }

    /// Whether the upload queue is in the middle of an attempt (for simulations that must
    /// know when the server is idle).
    pub fn uploads_executing(&self) -> bool {
        self.uploads.state().is_executing()
    }

    /// Waits until every queued upload and deletion is done (or `timeout` passes).
    pub async fn wait_uploads(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        self.uploads.state().drained(deadline).await
    }

    /// The first step of a graceful shutdown: from now on ingest answers
    /// [`IngestFailure::ShuttingDown`] and background compaction stops; an ingest already
    /// holding the ingest lock finishes first (its records are then in the next freeze).
    pub async fn stop_ingest(&self) {
        let _guard = self.ingest_lock.lock().await;
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Stops the timeline's background work.
    pub fn shutdown(&self) {
        self.shut_down.store(true, Ordering::SeqCst);
        self.uploads.shutdown();
        self.frozen_changed.notify_waiters();
    }

    /// Stops the timeline and waits for its ingest, flush, compaction, image creation and
    /// upload work to end, so that nothing of it touches the directory or the remote prefix
    /// once a successor (reset) or nobody (detach) owns them. Compaction and image creation
    /// look at the stop flag every few thousand records and end early.
    pub async fn stop(&self) {
        self.shutdown();
        let _ingest = self.ingest_lock.lock().await;
        let _flush = self.flush_lock.lock().await;
        let _compaction = self.compaction_lock.lock().await;
        self.uploads.stop().await;
    }
}
