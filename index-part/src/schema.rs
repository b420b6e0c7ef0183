//! The `IndexPart` schema and its serialization.
//!
//! Version history (the `version` field; every version stays readable):
//!
//! 1. `version`, `generation`, `disk_consistent_lsn`, `metadata { tenant_id, timeline_id,
//!    created_at }`, `deleted_at` (null or RFC 3339), and `layers`: a map from layer name to
//!    `{ file_size, generation, checksum }` (`checksum` is the layer file's whole-file CRC32C).
//! 2. Adds `gc_cutoff_lsn` (optional; absent means GC has never run): reads below it are no
//!    longer served after a restart.
//! 3. Adds `level` to every delta layer: `0` for an L0 layer (written by a flush, covering the
//!    whole key space), `1` for an L1 layer (written by a compaction). Image layers have none.
//!    Compaction chooses its inputs by this recorded level, never by the key range (an L1
//!    compaction with a single output covers the whole key space too). Indexes of versions 1
//!    and 2 get their levels inferred when parsed: a delta that does not cover the whole key
//!    space is L1; one that does is L0, unless a partial-key delta lies at or above its end
//!    (every L0 lies above every L1, so that one was written by a compaction).
//!
//! A field added by a later version is optional and defaults to what the earlier versions
//! meant; a version above [`LATEST_VERSION`] is refused, never read as an older one. LSNs are
//! written `X/Y` and times in RFC 3339 (UTC, whole seconds). Serialization always writes
//! [`LATEST_VERSION`], validates first, and orders layers by key range then LSN range.

use crate::error::IndexError;
use crate::names::{Generation, LayerFileName, LayerName, TenantId, TimelineId};
use layer_format::Lsn;
use serde::Serialize;
use serde::ser::Serializer;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The newest version this build reads, and the one it writes.
pub const LATEST_VERSION: u32 = 3;

/// One timeline's index: which layers exist, and what the timeline is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexPart {
    /// The generation of the attachment that wrote this index.
    pub generation: Generation,
    /// Every layer of the timeline.
    pub layers: BTreeMap<LayerName, LayerMetadata>,
    /// Every record at or below this LSN is in the layers.
    pub disk_consistent_lsn: Lsn,
    /// Reads below this LSN are not served (version 2; `None` before any GC).
    pub gc_cutoff_lsn: Option<Lsn>,
    /// What the timeline is.
    pub metadata: TimelineMetadata,
    /// When the timeline was deleted, if it was.
    pub deleted_at: Option<SystemTime>,
}

/// What the index records of a layer file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerMetadata {
    /// Size of the file in bytes (never zero).
    pub file_size: u64,
    /// The generation that wrote it: part of its file and object name.
    pub generation: Generation,
    /// CRC32C of the whole file.
    pub checksum: u32,
    /// How a delta layer was produced (version 3; inferred for older versions); `None` for an
    /// image layer.
    pub level: Option<Level>,
}

/// How a delta layer was produced, which decides what compaction may do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Written by a flush: covers the whole key space; compacted into L1 layers.
    L0,
    /// Written by a compaction.
    L1,
}

impl Level {
    /// The number written in the index.
    pub fn number(self) -> u8 {
        match self {
            Level::L0 => 0,
            Level::L1 => 1,
        }
    }

    /// The level written as `n` in the index.
    pub fn from_number(n: u8) -> Option<Level> {
        match n {
            0 => Some(Level::L0),
            1 => Some(Level::L1),
            _ => None,
        }
    }
}

/// What a server needs to restart a timeline from its index alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineMetadata {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The timeline.
    pub timeline_id: TimelineId,
    /// When the timeline was created (whole seconds).
    pub created_at: SystemTime,
}

/// `t` truncated to whole seconds, as the index stores times.
pub fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    UNIX_EPOCH + Duration::from_secs(secs)
}

impl LayerMetadata {
    /// Whether a file of `size` bytes with whole-file CRC32C `checksum` is the one recorded.
    pub fn matches(&self, size: u64, checksum: u32) -> bool {
        size == self.file_size && checksum == self.checksum
    }
}

impl IndexPart {
    /// An empty index for a new timeline.
    pub fn new(generation: Generation, metadata: TimelineMetadata) -> IndexPart {
        IndexPart {
            generation,
            layers: BTreeMap::new(),
            disk_consistent_lsn: Lsn(0),
            gc_cutoff_lsn: None,
            metadata,
            deleted_at: None,
        }
    }

    /// The file (and object) name of a layer of this index.
    pub fn file_name(layer: &LayerName, meta: &LayerMetadata) -> LayerFileName {
        LayerFileName {
            layer: layer.clone(),
            generation: meta.generation,
        }
    }

    /// Validates and serializes the index as [`LATEST_VERSION`].
    pub fn to_json(&self) -> Result<Vec<u8>, IndexError> {
        self.validate()?;
        let out = Out {
            version: LATEST_VERSION,
            generation: self.generation.0,
            disk_consistent_lsn: self.disk_consistent_lsn.to_string(),
            gc_cutoff_lsn: self.gc_cutoff_lsn.map(|l| l.to_string()),
            metadata: OutMetadata {
                tenant_id: self.metadata.tenant_id.to_string(),
                timeline_id: self.metadata.timeline_id.to_string(),
                created_at: humantime::format_rfc3339_seconds(self.metadata.created_at).to_string(),
            },
            deleted_at: self
                .deleted_at
                .map(|t| humantime::format_rfc3339_seconds(t).to_string()),
            layers: OutLayers(&self.layers),
        };
        #[expect(
            clippy::expect_used,
            reason = "plain structs with string map keys: serde_json cannot fail on them"
        )]
        let json = serde_json::to_vec(&out).expect("an index serializes");
        Ok(json)
    }
}

#[derive(Serialize)]
struct Out<'a> {
    version: u32,
    generation: u32,
    disk_consistent_lsn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    gc_cutoff_lsn: Option<String>,
    metadata: OutMetadata,
    deleted_at: Option<String>,
    layers: OutLayers<'a>,
}

#[derive(Serialize)]
struct OutMetadata {
    tenant_id: String,
    timeline_id: String,
    created_at: String,
}

#[derive(Serialize)]
struct OutLayer {
    file_size: u64,
    generation: u32,
    checksum: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    level: Option<u8>,
}

struct OutLayers<'a>(&'a BTreeMap<LayerName, LayerMetadata>);

impl Serialize for OutLayers<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(name, m)| {
            (
                name.to_string(),
                OutLayer {
                    file_size: m.file_size,
                    generation: m.generation.0,
                    checksum: m.checksum,
                    level: m.level.map(Level::number),
                },
            )
        }))
    }
}
