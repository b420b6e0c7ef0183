//! The JSON answers of the API (http-api.md): what the handlers send, made from the typed
//! status the timelines and tenants report. LSNs and ids are strings here, as the API writes
//! them; nothing below the HTTP layer knows these shapes.

use crate::tenant::TenantStatus;
use crate::timeline::{LayerStatus, TimelineStatus};
use serde::Serialize;

/// Layer counts of [`TimelineInfo`].
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct LayerCounts {
    /// Delta layers.
    pub delta: usize,
    /// Image layers.
    pub image: usize,
}

/// What `GET .../timeline/{id}` answers: [`TimelineStatus`] with LSNs and ids as strings.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineInfo {
    /// [`TimelineStatus::tenant_id`].
    pub tenant_id: String,
    /// [`TimelineStatus::timeline_id`].
    pub timeline_id: String,
    /// [`TimelineStatus::last_record_lsn`].
    pub last_record_lsn: String,
    /// [`TimelineStatus::disk_consistent_lsn`].
    pub disk_consistent_lsn: String,
    /// [`TimelineStatus::remote_consistent_lsn`].
    pub remote_consistent_lsn: String,
    /// [`TimelineStatus::generation`].
    pub generation: u32,
    /// [`TimelineStatus::gc_cutoff_lsn`].
    pub gc_cutoff_lsn: String,
    /// Layers in the layer map.
    pub layers: LayerCounts,
    /// [`TimelineStatus::pending_uploads`].
    pub pending_uploads: usize,
    /// [`TimelineStatus::pending_upload_bytes`].
    pub pending_upload_bytes: usize,
    /// [`TimelineStatus::last_upload_error`].
    pub last_upload_error: Option<String>,
    /// [`TimelineStatus::last_flush_error`].
    pub last_flush_error: Option<String>,
    /// [`TimelineStatus::stale`].
    pub stale: bool,
    /// [`TimelineStatus::incarnation`].
    pub incarnation: u64,
    /// `Active`, or `Broken` after a panic in one of its requests or jobs.
    pub state: &'static str,
    /// [`TimelineStatus::broken_reason`].
    pub broken_reason: Option<String>,
}

impl From<TimelineStatus> for TimelineInfo {
    fn from(s: TimelineStatus) -> TimelineInfo {
        TimelineInfo {
            tenant_id: s.tenant_id.to_string(),
            timeline_id: s.timeline_id.to_string(),
            last_record_lsn: s.last_record_lsn.to_string(),
            disk_consistent_lsn: s.disk_consistent_lsn.to_string(),
            remote_consistent_lsn: s.remote_consistent_lsn.to_string(),
            generation: s.generation.0,
            gc_cutoff_lsn: s.gc_cutoff_lsn.to_string(),
            layers: LayerCounts {
                delta: s.delta_layers,
                image: s.image_layers,
            },
            pending_uploads: s.pending_uploads,
            pending_upload_bytes: s.pending_upload_bytes,
            last_upload_error: s.last_upload_error,
            last_flush_error: s.last_flush_error,
            stale: s.stale,
            incarnation: s.incarnation,
            state: if s.broken_reason.is_some() {
                "Broken"
            } else {
                "Active"
            },
            broken_reason: s.broken_reason,
        }
    }
}

/// One entry of `GET .../layer`.
#[derive(Debug, Clone, Serialize)]
pub struct LayerInfo {
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

impl From<LayerStatus> for LayerInfo {
    fn from(l: LayerStatus) -> LayerInfo {
        let (k, r) = (l.name.key_range(), l.name.lsn_range());
        LayerInfo {
            name: l.name.to_string(),
            kind: if l.name.is_delta() { "delta" } else { "image" },
            key_start: k.start.to_string(),
            key_end: k.end.to_string(),
            lsn_start: r.start.to_string(),
            lsn_end: r.end.to_string(),
            file_size: l.meta.file_size,
            generation: l.meta.generation.0,
            checksum: l.meta.checksum,
            local: l.local,
            remote: l.remote,
        }
    }
}

/// What `GET /v1/tenant/{id}` answers.
#[derive(Debug, Clone, Serialize)]
pub struct TenantInfo {
    /// The tenant.
    pub tenant_id: String,
    /// This attachment's generation.
    pub generation: u32,
    /// `Active`; `Stale` once a newer attachment has been seen; `Broken` if it could not be
    /// loaded.
    pub state: &'static str,
    /// Why it is broken.
    pub broken_reason: Option<String>,
    /// Its timelines.
    pub timelines: Vec<String>,
    /// Those of its timelines that are broken.
    pub broken_timelines: Vec<String>,
}

impl From<TenantStatus> for TenantInfo {
    fn from(s: TenantStatus) -> TenantInfo {
        TenantInfo {
            tenant_id: s.tenant_id.to_string(),
            generation: s.generation.0,
            state: if s.broken_reason.is_some() {
                "Broken"
            } else if s.stale {
                "Stale"
            } else {
                "Active"
            },
            broken_reason: s.broken_reason,
            timelines: s.timelines.iter().map(ToString::to_string).collect(),
            broken_timelines: s.broken_timelines.iter().map(ToString::to_string).collect(),
        }
    }
}
