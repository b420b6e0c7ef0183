//! A timeline: its in-memory layers, its layer map, ingest, flush, reads, and its index.
//!
//! Locking: `layers` (a std `RwLock`, never held across an await) guards the open and frozen
//! in-memory layers and the layer map; the current index is changed only while `layers` is
//! held for writing, so the index is always derived from the current layer map (I6).
//! `ingest_lock` serializes ingest requests and freezes; `flush_lock` serializes flushes,
//! which take frozen layers oldest first.
//!
//! The write path of a flush (numbered in docs/crash-consistency.md): write the L0 temp file,
//! fsync, publish with `RENAME_NOREPLACE` and a directory fsync; then, under the `layers`
//! lock, install it in the layer map, drop the frozen layer, advance `disk_consistent_lsn`, and
//! queue the layer upload followed by the upload of the new index version.

mod compaction;
mod gc;
mod images;
mod ingest;
mod inmemory;
mod layer;
mod publish;
mod read;
pub mod reconcile;

pub use compaction::CompactionResult;
pub use ingest::{IngestError, Record, decode as decode_ingest, encode as encode_ingest};
pub use layer::{LayerHandle, LayerSource};
pub use read::ReadError;

use crate::config::PageServerConf;
use crate::metrics::METRICS;
use crate::remote::upload_queue::{UploadOp, UploadQueue, UploadTarget};
use crate::remote::{RemoteStorage, create_once};
use anyhow::{Context, bail};
use bytes::Bytes;
use index_part::names::{
    Generation, IndexObjectName, LayerName, TenantId, TimelineId, index_object_key,
    local_timeline_dir,
};
use index_part::{IndexPart, LayerMetadata, TimelineMetadata};
use inmemory::InMemoryLayer;
use layer_format::io::IoEngine;
use layer_format::{DeltaLayerWriter, Key, LayerReader, Lsn};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::Notify;

/// Why an ingest request was not applied.
#[derive(Debug, thiserror::Error)]
pub enum IngestFailure {
    /// The body breaks the wire format's rules (400).
    #[error(transparent)]
    Malformed(#[from] IngestError),
    /// The timeline is stopping (reset, detach, shutdown); retry against the new one (409).
    #[error("the timeline is stopping (reset or detach); retry")]
    Stopped,
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
    map: BTreeMap<LayerName, Arc<LayerHandle>>,
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
    index: Mutex<IndexPart>,
    next_seq: AtomicU32,
    last_record_lsn: AtomicU64,
    disk_consistent_lsn: AtomicU64,
    /// Reads below this LSN are refused: GC may have removed what they need.
    gc_cutoff_lsn: AtomicU64,
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
}

impl std::fmt::Debug for Timeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timeline")
            .field("tenant_id", &self.tenant_id)
            .field("timeline_id", &self.timeline_id)
            .finish()
    }
}

/// Layer counts of [`TimelineInfo`].
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct LayerCounts {
    /// Delta layers.
    pub delta: usize,
    /// Image layers.
    pub image: usize,
}

/// What `GET .../timeline/{id}` answers.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineInfo {
    /// The tenant.
    pub tenant_id: String,
    /// The timeline.
    pub timeline_id: String,
    /// The newest LSN ingested.
    pub last_record_lsn: String,
    /// Every record at or below it is in local layer files.
    pub disk_consistent_lsn: String,
    /// Every record at or below it is in an uploaded index and its layers (I9).
    pub remote_consistent_lsn: String,
    /// The attachment's generation.
    pub generation: u32,
    /// Reads below this LSN are refused: GC may have removed what they need.
    pub gc_cutoff_lsn: String,
    /// Layers in the layer map.
    pub layers: LayerCounts,
    /// Upload operations queued and not yet done.
    pub pending_uploads: usize,
    /// The error of the last failed upload attempt, if the queue is retrying.
    pub last_upload_error: Option<String>,
    /// The error of the last failed flush, if flushes are failing.
    pub last_flush_error: Option<String>,
    /// Whether a newer attachment exists (this one no longer acknowledges uploads).
    pub stale: bool,
    /// Changes whenever the timeline is reloaded (reset, restart, attach).
    pub incarnation: u64,
}

/// One entry of `GET .../layer`.
#[derive(Debug, Clone, Serialize)]
pub struct LayerInfoJson {
    /// Layer name.
    pub name: String,
    /// `delta` or `image`.
    pub kind: &'static str,
    /// First key.
    pub key_start: String,
    /// End key (exclusive).
    pub key_end: String,
    /// First LSN.
    pub lsn_start: String,
    /// End LSN (exclusive).
    pub lsn_end: String,
    /// File size in bytes.
    pub file_size: u64,
    /// Generation that wrote it.
    pub generation: u32,
    /// Whole-file CRC32C.
    pub checksum: u32,
    /// Whether the file is present locally.
    pub local: bool,
    /// Whether the object is known to be in remote storage.
    pub remote: bool,
}

impl Timeline {
    fn new_internal(
        conf: Arc<PageServerConf>,
        engine: Arc<dyn IoEngine>,
        storage: Arc<dyn RemoteStorage>,
        index: IndexPart,
        next_seq: u32,
        map: BTreeMap<LayerName, Arc<LayerHandle>>,
    ) -> Arc<Timeline> {
        let tenant_id = index.metadata.tenant_id;
        let timeline_id = index.metadata.timeline_id;
        let dcl = index.disk_consistent_lsn;
        let gc_cutoff = index.gc_cutoff_lsn.unwrap_or(Lsn(0));
        let src = LayerSource {
            engine: engine.clone(),
            storage: storage.clone(),
            tenant: tenant_id,
            timeline: timeline_id,
        };
        let uploads = UploadQueue::start(
            UploadTarget {
                storage,
                engine,
                tenant: tenant_id,
                timeline: timeline_id,
                generation: index.generation,
            },
            dcl,
        );
        uploads
            .state()
            .mark_uploaded(index.layers.iter().map(|(n, m)| IndexPart::file_name(n, m)));
        let tl = Arc::new(Timeline {
            tenant_id,
            timeline_id,
            generation: index.generation,
            dir: local_timeline_dir(&conf.workdir, tenant_id, timeline_id),
            conf,
            src,
            layers: RwLock::new(Layers {
                open: InMemoryLayer::new(Lsn(dcl.0 + 1)),
                frozen: VecDeque::new(),
                map,
            }),
            index: Mutex::new(index),
            next_seq: AtomicU32::new(next_seq),
            last_record_lsn: AtomicU64::new(dcl.0),
            disk_consistent_lsn: AtomicU64::new(dcl.0),
            gc_cutoff_lsn: AtomicU64::new(gc_cutoff.0),
            incarnation: next_incarnation(),
            ingest_lock: tokio::sync::Mutex::new(()),
            flush_lock: tokio::sync::Mutex::new(()),
            compaction_lock: tokio::sync::Mutex::new(()),
            frozen_changed: Notify::new(),
            uploads,
            flush_error: Mutex::new(None),
            flush_task_running: std::sync::atomic::AtomicBool::new(false),
            shut_down: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        });
        tl.update_lsn_metrics();
        tl.start_compaction_loop();
        tl
    }

    /// Runs compaction every `compaction_period` until shutdown.
    fn start_compaction_loop(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let period = self.conf.compaction_period;
        let span = tracing::info_span!("compaction", tenant_id = %self.tenant_id, timeline_id = %self.timeline_id);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                loop {
                    tokio::time::sleep(period).await;
                    let Some(tl) = weak.upgrade() else { return };
                    if tl.shut_down.load(Ordering::SeqCst) {
                        return;
                    }
                    if let Err(e) = tl.compact().await {
                        tracing::warn!("compaction failed; it runs again in {period:?}: {e:#}");
                    }
                    tl.gc();
                }
            },
            span,
        ));
    }

    /// Creates a new timeline: local directory, and its first index uploaded before this
    /// returns, so that the timeline exists remotely from the start.
    pub async fn create(
        conf: Arc<PageServerConf>,
        engine: Arc<dyn IoEngine>,
        storage: Arc<dyn RemoteStorage>,
        generation: Generation,
        tenant_id: TenantId,
        timeline_id: TimelineId,
        seq: u32,
    ) -> anyhow::Result<Arc<Timeline>> {
        let created_at = index_part::whole_seconds(std::time::SystemTime::now());
        let index = IndexPart::new(
            generation,
            TimelineMetadata {
                tenant_id,
                timeline_id,
                created_at,
            },
        );
        let dir = local_timeline_dir(&conf.workdir, tenant_id, timeline_id);
        layer_format::durable::create_dir_all_durable(&*engine, &dir)
            .with_context(|| format!("create {}", dir.display()))?;
        let object = IndexObjectName { generation, seq };
        let json = Bytes::from(index.to_json().context("serialize first index")?);
        create_once(
            &*storage,
            "upload_index",
            &index_object_key(tenant_id, timeline_id, object),
            json,
        )
        .await
        .context("upload the first index")?;
        Ok(Timeline::new_internal(
            conf,
            engine,
            storage,
            index,
            seq + 1,
            BTreeMap::new(),
        ))
    }

    /// Loads a timeline from its authoritative index, reconciling the local directory (I3).
    pub async fn load(
        conf: Arc<PageServerConf>,
        engine: Arc<dyn IoEngine>,
        storage: Arc<dyn RemoteStorage>,
        generation: Generation,
        mut index: IndexPart,
        next_seq: u32,
    ) -> anyhow::Result<Arc<Timeline>> {
        let dir = local_timeline_dir(
            &conf.workdir,
            index.metadata.tenant_id,
            index.metadata.timeline_id,
        );
        let (e, d, idx) = (engine.clone(), dir.clone(), index.clone());
        let report =
            tokio::task::spawn_blocking(move || -> anyhow::Result<reconcile::ReconcileReport> {
                layer_format::durable::create_dir_all_durable(&*e, &d)
                    .with_context(|| format!("create {}", d.display()))?;
                reconcile::reconcile(&e, &d, &idx)
            })
            .await
            .context("reconcile task panicked")??;
        tracing::info!(tenant_id = %index.metadata.tenant_id, timeline_id = %index.metadata.timeline_id, ?report, "reconciled local files with the index");
        let map = index
            .layers
            .iter()
            .map(|(name, meta)| {
                (
                    name.clone(),
                    Arc::new(LayerHandle::new(name.clone(), *meta, &dir)),
                )
            })
            .collect();
        // From now on this attachment writes the index. Its first act is to upload the index
        // it loaded under its own generation: from then on, an index a stale attachment still
        // uploads under an older generation can never be chosen as authoritative (I8).
        index.generation = generation;
        let tl = Timeline::new_internal(conf, engine, storage, index.clone(), next_seq, map);
        tl.queue_index_upload(&index);
        Ok(tl)
    }

    fn update_lsn_metrics(&self) {
        let (t, tl) = (self.tenant_id.to_string(), self.timeline_id.to_string());
        let set = |kind: &str, lsn: u64| {
            METRICS
                .timeline_lsn
                .with_label_values(&[t.as_str(), tl.as_str(), kind])
                .set(lsn as i64);
        };
        set("last_record", self.last_record_lsn.load(Ordering::SeqCst));
        set(
            "disk_consistent",
            self.disk_consistent_lsn.load(Ordering::SeqCst),
        );
        set(
            "remote_consistent",
            self.uploads.state().remote_consistent_lsn().0,
        );
    }

    /// The newest LSN ingested.
    pub fn last_record_lsn(&self) -> Lsn {
        Lsn(self.last_record_lsn.load(Ordering::SeqCst))
    }

    /// The timeline's info.
    pub fn info(&self) -> TimelineInfo {
        self.update_lsn_metrics();
        let l = self.layers.read().expect("not poisoned");
        let delta = l.map.keys().filter(|n| n.is_delta()).count();
        let state = self.uploads.state();
        TimelineInfo {
            tenant_id: self.tenant_id.to_string(),
            timeline_id: self.timeline_id.to_string(),
            last_record_lsn: self.last_record_lsn().to_string(),
            disk_consistent_lsn: Lsn(self.disk_consistent_lsn.load(Ordering::SeqCst)).to_string(),
            remote_consistent_lsn: state.remote_consistent_lsn().to_string(),
            generation: self.generation.0,
            gc_cutoff_lsn: Lsn(self.gc_cutoff_lsn.load(Ordering::SeqCst)).to_string(),
            layers: LayerCounts {
                delta,
                image: l.map.len() - delta,
            },
            pending_uploads: state.pending(),
            last_upload_error: state.last_error(),
            last_flush_error: self.flush_error.lock().expect("not poisoned").clone(),
            stale: state.is_stale(),
            incarnation: self.incarnation,
        }
    }

    /// Every layer of the layer map.
    pub fn layer_list(&self) -> Vec<LayerInfoJson> {
        let handles: Vec<Arc<LayerHandle>> = self
            .layers
            .read()
            .expect("not poisoned")
            .map
            .values()
            .cloned()
            .collect();
        handles
            .iter()
            .map(|h| {
                let (k, l) = (h.name.key_range(), h.name.lsn_range());
                LayerInfoJson {
                    name: h.name.to_string(),
                    kind: if h.name.is_delta() { "delta" } else { "image" },
                    key_start: k.start.to_string(),
                    key_end: k.end.to_string(),
                    lsn_start: l.start.to_string(),
                    lsn_end: l.end.to_string(),
                    file_size: h.meta.file_size,
                    generation: h.meta.generation.0,
                    checksum: h.meta.checksum,
                    local: self.src.engine.stat(&h.path).is_ok(),
                    remote: self.uploads.state().is_uploaded(&h.file_name()),
                }
            })
            .collect()
    }

    /// Ingests a request body (brief section 6): all records or none.
    pub async fn ingest(
        self: &Arc<Self>,
        body: &Bytes,
        expected_incarnation: Option<u64>,
    ) -> Result<Lsn, IngestFailure> {
        let _guard = self.ingest_lock.lock().await;
        if self.shut_down.load(Ordering::SeqCst) {
            return Err(IngestFailure::Stopped);
        }
        if let Some(expected) = expected_incarnation
            && expected != self.incarnation
        {
            return Err(IngestFailure::Reloaded {
                expected,
                current: self.incarnation,
            });
        }
        let records = match ingest::decode(body, self.last_record_lsn()) {
            Ok(r) => r,
            Err(e) => {
                METRICS.ingest_rejected.inc();
                return Err(IngestFailure::Malformed(e));
            }
        };
        // Backpressure: wait while too many frozen layers wait for their flush.
        loop {
            let notified = self.frozen_changed.notified();
            if self.layers.read().expect("not poisoned").frozen.len() < MAX_FROZEN {
                break;
            }
            if self.shut_down.load(Ordering::SeqCst) {
                return Err(IngestFailure::Stopped);
            }
            notified.await;
        }
        let last = records.last().expect("decode refuses empty bodies").lsn;
        let full = {
            let mut l = self.layers.write().expect("not poisoned");
            for r in records.iter() {
                l.open.put(r.key, r.lsn, r.value.clone());
            }
            l.open.size_bytes() >= self.conf.checkpoint_distance
        };
        self.last_record_lsn.store(last.0, Ordering::SeqCst);
        METRICS.ingest_records.inc_by(records.len() as u64);
        METRICS.ingest_bytes.inc_by(body.len() as u64);
        if full {
            self.freeze();
            self.spawn_flush();
        }
        Ok(last)
    }

    /// Freezes the open in-memory layer if it holds anything.
    fn freeze(&self) {
        let mut l = self.layers.write().expect("not poisoned");
        if let Some(end) = l.open.end_lsn() {
            let old = std::mem::replace(&mut l.open, InMemoryLayer::new(end));
            l.frozen.push_back(Arc::new(old));
        }
    }

    /// Starts the background flush of frozen layers unless one is running. It retries with
    /// backoff until every frozen layer is flushed, so that a transient failure cannot leave
    /// ingest waiting on backpressure forever.
    fn spawn_flush(self: &Arc<Self>) {
        if self.flush_task_running.swap(true, Ordering::SeqCst) {
            return;
        }
        let tl = self.clone();
        let span = tracing::info_span!("flush", tenant_id = %self.tenant_id, timeline_id = %self.timeline_id);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let mut backoff = Duration::from_millis(50);
                loop {
                    match tl.flush_frozen().await {
                        Ok(()) => {}
                        Err(e) => {
                            tracing::warn!("flush failed, retrying in {backoff:?}: {e:#}");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(5));
                        }
                    }
                    if tl.shut_down.load(Ordering::SeqCst) {
                        break;
                    }
                    tl.flush_task_running.store(false, Ordering::SeqCst);
                    // A freeze may have happened after the last look at the queue.
                    if tl.layers.read().expect("not poisoned").frozen.is_empty()
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
            let Some(frozen) = self
                .layers
                .read()
                .expect("not poisoned")
                .frozen
                .front()
                .cloned()
            else {
                return Ok(());
            };
            match self.flush_one(&frozen).await {
                Ok(()) => {
                    METRICS.flushes.with_label_values(&["ok"]).inc();
                    *self.flush_error.lock().expect("not poisoned") = None;
                }
                Err(e) => {
                    METRICS.flushes.with_label_values(&["error"]).inc();
                    *self.flush_error.lock().expect("not poisoned") = Some(format!("{e:#}"));
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
                if let Err(rm) = engine
                    .unlink(&info.path)
                    .and_then(|()| engine.fsync_dir(&dir))
                {
                    tracing::warn!(path = %info.path.display(), "remove uninstalled layer: {rm}");
                }
                return Err(e);
            }
            let reader = LayerReader::open(&engine, &info.path)?;
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
        };
        {
            let mut l = self.layers.write().expect("not poisoned");
            let front = l
                .frozen
                .pop_front()
                .expect("only the flush removes frozen layers");
            assert!(
                Arc::ptr_eq(&front, frozen),
                "frozen layers are flushed in order"
            );
            l.map.insert(
                name.clone(),
                Arc::new(LayerHandle::with_reader(
                    name.clone(),
                    meta,
                    info.path.clone(),
                    reader,
                )),
            );
            let mut index = self.index.lock().expect("not poisoned");
            index.layers.insert(name, meta);
            index.disk_consistent_lsn = Lsn(end.0 - 1);
            self.disk_consistent_lsn.store(end.0 - 1, Ordering::SeqCst);
            self.uploads.push(UploadOp::Layer {
                file_name: info.file_name.clone(),
                path: info.path.clone(),
                meta,
            });
            self.queue_index_upload(&index);
        }
        self.frozen_changed.notify_waiters();
        self.update_lsn_metrics();
        tracing::info!(layer = %info.file_name, records = info.record_count, bytes = info.size_bytes, "flushed");
        Ok(())
    }

    /// Freezes, flushes, and waits until the index covering the flush is uploaded.
    pub async fn checkpoint(self: &Arc<Self>) -> anyhow::Result<()> {
        {
            let _guard = self.ingest_lock.lock().await;
            self.freeze();
        }
        // A task of its own: a caller that gives up (a dropped HTTP request) must not cancel
        // a flush between its publish and its install.
        let tl = self.clone();
        tokio::spawn(async move { tl.flush_frozen().await })
            .await
            .context("flush task panicked")??;
        let target = Lsn(self.disk_consistent_lsn.load(Ordering::SeqCst));
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
        if state.is_stale() {
            bail!(
                "a newer attachment of this tenant exists; this one no longer acknowledges uploads"
            );
        }
        self.update_lsn_metrics();
        Ok(())
    }

    /// Removes layers from the layer map and the index (I6: applied to the current state).
    /// The index without them is queued for upload, then the deletion of their objects
    /// (deferred, I8); local files are removed after the install. Layers not in the map are
    /// ignored. Returns how many were removed.
    pub fn remove_layers(&self, names: &[LayerName]) -> usize {
        self.remove_layers_with_cutoff(names, None)
    }

    /// [`remove_layers`](Self::remove_layers), also raising the index's `gc_cutoff_lsn`.
    fn remove_layers_with_cutoff(&self, names: &[LayerName], gc_cutoff: Option<Lsn>) -> usize {
        let removed: Vec<Arc<LayerHandle>> = {
            let mut l = self.layers.write().expect("not poisoned");
            let removed: Vec<Arc<LayerHandle>> =
                names.iter().filter_map(|n| l.map.remove(n)).collect();
            if removed.is_empty() {
                return 0;
            }
            let mut index = self.index.lock().expect("not poisoned");
            for h in &removed {
                index.layers.remove(&h.name);
            }
            if let Some(cutoff) = gc_cutoff {
                let cutoff = cutoff.max(index.gc_cutoff_lsn.unwrap_or(Lsn(0)));
                index.gc_cutoff_lsn = Some(cutoff);
                self.gc_cutoff_lsn.fetch_max(cutoff.0, Ordering::SeqCst);
            }
            self.queue_index_upload(&index);
            self.uploads.push(UploadOp::Delete {
                layers: removed.iter().map(|h| h.file_name()).collect(),
            });
            removed
        };
        for h in &removed {
            match self.src.engine.unlink(&h.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %h.path.display(), "remove local file of a removed layer: {e}")
                }
            }
        }
        if let Err(e) = self.src.engine.fsync_dir(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), "fsync after removing layers: {e}");
        }
        removed.len()
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
        self.layers
            .read()
            .expect("not poisoned")
            .map
            .values()
            .map(|h| h.file_name().to_string())
            .collect()
    }

    /// The names of the layers in the layer map.
    pub fn layer_names(&self) -> Vec<LayerName> {
        self.layers
            .read()
            .expect("not poisoned")
            .map
            .keys()
            .cloned()
            .collect()
    }

    /// Waits until every queued upload and deletion is done (or `timeout` passes).
    pub async fn wait_uploads(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.uploads.state().pending() > 0 {
            if tokio::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        true
    }

    /// Stops the timeline's background work.
    pub fn shutdown(&self) {
        self.shut_down.store(true, Ordering::SeqCst);
        self.uploads.shutdown();
        self.frozen_changed.notify_waiters();
    }

    /// Stops the timeline and waits for its ingest, flush and upload work to end.
    pub async fn stop(&self) {
        self.shutdown();
        let _ingest = self.ingest_lock.lock().await;
        let _flush = self.flush_lock.lock().await;
        self.uploads.stop().await;
    }
}

/// Failpoint `flush-after-publish`.
fn flush_after_publish() -> anyhow::Result<()> {
    fail::fail_point!("flush-after-publish", |_| bail!(
        "failpoint flush-after-publish"
    ));
    Ok(())
}
