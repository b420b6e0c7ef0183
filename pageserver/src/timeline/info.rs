//! What a timeline reports, as typed facts: its status, its layers (and their drawing) and
//! the figures of its gauges. The HTTP layer turns them into its answers (`http/answers.rs`).

use super::*;

/// A timeline's state at one moment.
#[derive(Debug, Clone)]
pub struct TimelineStatus {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The timeline.
    pub timeline_id: TimelineId,
    /// The newest LSN ingested.
    pub last_record_lsn: Lsn,
    /// Every record at or below it is in local layer files.
    pub disk_consistent_lsn: Lsn,
    /// Every record at or below it is in an uploaded index and its layers (I9).
    pub remote_consistent_lsn: Lsn,
    /// The attachment's generation.
    pub generation: Generation,
    /// Reads below this LSN are refused: GC may have removed what they need.
    pub gc_cutoff_lsn: Lsn,
    /// Delta layers in the layer map.
    pub delta_layers: usize,
    /// Image layers in the layer map.
    pub image_layers: usize,
    /// Upload operations queued and not yet done.
    pub pending_uploads: usize,
    /// Bytes the upload queue holds for them (bounded: one index, however many flushes).
    pub pending_upload_bytes: usize,
    /// The error of the last failed upload attempt, if the queue is retrying.
    pub last_upload_error: Option<String>,
    /// The error of the last failed flush, if flushes are failing.
    pub last_flush_error: Option<String>,
    /// Whether a newer attachment exists (this one no longer acknowledges uploads).
    pub stale: bool,
    /// Changes whenever the timeline is reloaded (reset, restart, attach).
    pub incarnation: u64,
    /// Why it is broken (a panic in one of its requests or jobs), if it is.
    pub broken_reason: Option<String>,
}

/// One layer of the layer map.
#[derive(Debug, Clone)]
pub struct LayerStatus {
    /// Its name.
    pub name: LayerName,
    /// What the index records of it.
    pub meta: index_part::LayerMetadata,
    /// Whether the file is present locally.
    pub local: bool,
    /// Whether the object is known to be in remote storage.
    pub remote: bool,
}

/// What the per-timeline gauges show.
#[derive(Debug, Clone, Copy)]
pub struct LsnsAndQueue {
    /// The newest LSN ingested.
    pub last_record: Lsn,
    /// Every record at or below it is in local layer files.
    pub disk_consistent: Lsn,
    /// Every record at or below it is in an uploaded index.
    pub remote_consistent: Lsn,
    /// Upload operations queued.
    pub queued_operations: usize,
    /// Bytes the queue holds.
    pub queued_bytes: usize,
}

impl Timeline {
    /// The three LSNs and the upload queue's size, for the gauges of `/metrics` (cheaper than
    /// [`Timeline::status`]).
    pub fn lsns_and_queue(&self) -> LsnsAndQueue {
        let state = self.uploads.state();
        LsnsAndQueue {
            last_record: self.last_record_lsn(),
            disk_consistent: self.disk_consistent_lsn(),
            remote_consistent: state.remote_consistent_lsn(),
            queued_operations: state.pending(),
            queued_bytes: state.queued_bytes(),
        }
    }

    /// The timeline's status.
    pub fn status(&self) -> TimelineStatus {
        let l = self.layers_read();
        let delta = l.map.layers().filter(|h| h.name.is_delta()).count();
        let state = self.uploads.state();
        TimelineStatus {
            tenant_id: self.tenant_id,
            timeline_id: self.timeline_id,
            last_record_lsn: self.last_record_lsn(),
            disk_consistent_lsn: l.map.disk_consistent_lsn(),
            remote_consistent_lsn: state.remote_consistent_lsn(),
            generation: self.generation,
            gc_cutoff_lsn: l.map.gc_cutoff_lsn(),
            delta_layers: delta,
            image_layers: l.map.len() - delta,
            pending_uploads: state.pending(),
            pending_upload_bytes: state.queued_bytes(),
            last_upload_error: state.last_error(),
            last_flush_error: self.flush_error.lock_unpoisoned().clone(),
            stale: state.is_stale(),
            incarnation: self.incarnation,
            broken_reason: self.broken_reason(),
        }
    }

    /// Every layer of the layer map.
    pub fn layer_list(&self) -> Vec<LayerStatus> {
        let handles: Vec<Arc<LayerHandle>> = self.layers_read().map.layers().cloned().collect();
        handles
            .iter()
            .map(|h| LayerStatus {
                name: h.name.clone(),
                meta: h.meta,
                local: self.src.engine.stat(&h.path).is_ok(),
                remote: self.uploads.state().is_uploaded(&h.file_name()),
            })
            .collect()
    }

    /// The layer map drawn as SVG ([`draw`]), with the GC cutoff and `remote_consistent_lsn`.
    pub fn layer_map_svg(&self) -> String {
        let (layers, gc_cutoff) = {
            let l = self.layers_read();
            let layers: Vec<draw::Drawn> = l
                .map
                .layers()
                .map(|h| draw::Drawn {
                    name: h.name.clone(),
                    level: h.meta.level,
                    generation: h.meta.generation,
                })
                .collect();
            (layers, l.map.gc_cutoff_lsn())
        };
        let marks = draw::Marks {
            gc_cutoff: (gc_cutoff > Lsn(0)).then_some(gc_cutoff),
            remote_consistent: Some(self.uploads.state().remote_consistent_lsn()),
        };
        let title = format!("tenant {} timeline {}", self.tenant_id, self.timeline_id);
        draw::svg(&title, &layers, &marks)
    }
}
