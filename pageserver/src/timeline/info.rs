//! What a timeline reports: its info, its layers (and their drawing) and the figures of its
//! gauges; the answer types of the HTTP API.

use super::*;

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
    /// `Active`, or `Broken` after a panic in one of its requests or jobs.
    pub state: &'static str,
    /// Why it is broken.
    pub broken_reason: Option<String>,
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
    /// The three LSNs and the upload queue's size, for the gauges of `/metrics` (cheaper than
    /// [`Timeline::info`]).
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

    /// The timeline's info.
    pub fn info(&self) -> TimelineInfo {
        let l = self.layers_read();
        let broken_reason = self.broken_reason();
        let delta = l.map.layers().filter(|h| h.name.is_delta()).count();
        let state = self.uploads.state();
        TimelineInfo {
            tenant_id: self.tenant_id.to_string(),
            timeline_id: self.timeline_id.to_string(),
            last_record_lsn: self.last_record_lsn().to_string(),
            disk_consistent_lsn: l.map.disk_consistent_lsn().to_string(),
            remote_consistent_lsn: state.remote_consistent_lsn().to_string(),
            generation: self.generation.0,
            gc_cutoff_lsn: l.map.gc_cutoff_lsn().to_string(),
            layers: LayerCounts {
                delta,
                image: l.map.len() - delta,
            },
            pending_uploads: state.pending(),
            pending_upload_bytes: state.queued_bytes(),
            last_upload_error: state.last_error(),
            last_flush_error: self.flush_error.lock_unpoisoned().clone(),
            stale: state.is_stale(),
            incarnation: self.incarnation,
            state: if broken_reason.is_some() {
                "Broken"
            } else {
                "Active"
            },
            broken_reason,
        }
    }

    /// Every layer of the layer map.
    pub fn layer_list(&self) -> Vec<LayerInfoJson> {
        let handles: Vec<Arc<LayerHandle>> = self.layers_read().map.layers().cloned().collect();
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
