//! Parsing `index_part.json`: JSON into raw fields, then into typed values, then validation.
//!
//! Every read goes through here, local or remote, so an index is never used unvalidated.
//! Duplicate layer names are detected (a JSON object with a key twice would otherwise silently
//! keep the last), and in [`ParseMode::Strict`] any field the index's version does not have is
//! an error naming its path.

use crate::error::IndexError;
use crate::names::{Generation, IndexObjectName, LayerName, TenantId, TimelineId};
use crate::schema::{IndexPart, LATEST_VERSION, LayerMetadata, Level, TimelineMetadata};
use layer_format::{Key, Lsn};
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

/// How unknown fields are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseMode {
    /// A field the index's version does not define is an error.
    Strict,
    /// Unknown fields are ignored.
    Lenient,
}

#[derive(Deserialize)]
struct Raw {
    version: u32,
    generation: u32,
    disk_consistent_lsn: String,
    #[serde(default)]
    gc_cutoff_lsn: Option<String>,
    metadata: RawMetadata,
    #[serde(default)]
    deleted_at: Option<String>,
    layers: RawLayers,
}

#[derive(Deserialize)]
struct RawMetadata {
    tenant_id: String,
    timeline_id: String,
    created_at: String,
}

#[derive(Deserialize)]
struct RawLayer {
    file_size: i64,
    generation: u32,
    checksum: u32,
    #[serde(default)]
    level: Option<u8>,
}

/// The layers object as a list, so that a name given twice is seen.
struct RawLayers(Vec<(String, RawLayer)>);

impl<'de> Deserialize<'de> for RawLayers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawLayers, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawLayers;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map from layer name to layer metadata")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawLayers, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(entry) = map.next_entry::<String, RawLayer>()? {
                    out.push(entry);
                }
                Ok(RawLayers(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Deserialize)]
struct VersionOnly {
    version: u32,
}

fn json_error(e: &serde_json::Error) -> IndexError {
    let full = e.to_string();
    let message = match full.rfind(" at line ") {
        Some(at) => full[..at].to_string(),
        None => full,
    };
    IndexError::Json {
        line: e.line(),
        column: e.column(),
        message,
    }
}

fn field<T: std::str::FromStr>(
    field: &str,
    value: &str,
    expected: &'static str,
) -> Result<T, IndexError> {
    value.parse().map_err(|_| IndexError::BadField {
        field: field.to_string(),
        value: value.to_string(),
        expected,
    })
}

fn time(name: &str, value: &str) -> Result<SystemTime, IndexError> {
    humantime::parse_rfc3339(value).map_err(|_| IndexError::BadField {
        field: name.to_string(),
        value: value.to_string(),
        expected: "an RFC 3339 UTC time such as 2026-11-22T01:02:03Z",
    })
}

const LSN: &str = "an LSN written X/Y in upper-case hex";

impl IndexPart {
    /// Parses and validates an index.
    pub fn from_json(bytes: &[u8], mode: ParseMode) -> Result<IndexPart, IndexError> {
        let mut unknown = Vec::new();
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let parsed = serde_ignored::deserialize(&mut de, |path| unknown.push(path.to_string()))
            .and_then(|raw: Raw| de.end().map(|()| raw));
        let raw = match parsed {
            Ok(raw) => raw,
            Err(e) => {
                // A newer version may have changed the shape: say so rather than how.
                if let Ok(v) = serde_json::from_slice::<VersionOnly>(bytes)
                    && v.version > LATEST_VERSION
                {
                    return Err(IndexError::UnsupportedVersion {
                        found: v.version,
                        latest: LATEST_VERSION,
                    });
                }
                return Err(json_error(&e));
            }
        };
        if raw.version > LATEST_VERSION {
            return Err(IndexError::UnsupportedVersion {
                found: raw.version,
                latest: LATEST_VERSION,
            });
        }
        if raw.version == 0 {
            return Err(IndexError::BadField {
                field: "version".into(),
                value: "0".into(),
                expected: "a version from 1",
            });
        }
        if raw.version < 2 && raw.gc_cutoff_lsn.is_some() {
            unknown.push("gc_cutoff_lsn".to_string());
        }
        if raw.version < 3 {
            for (name, layer) in &raw.layers.0 {
                if layer.level.is_some() {
                    unknown.push(format!("layers.{name}.level"));
                }
            }
        }
        if mode == ParseMode::Strict
            && let Some(path) = unknown.into_iter().next()
        {
            return Err(IndexError::UnknownField {
                path,
                version: raw.version,
            });
        }
        let index = convert(raw)?;
        index.validate()?;
        Ok(index)
    }

    /// Parses and validates the index stored as `object`; its generation must match the name.
    pub fn from_json_object(
        bytes: &[u8],
        object: IndexObjectName,
        mode: ParseMode,
    ) -> Result<IndexPart, IndexError> {
        let index = IndexPart::from_json(bytes, mode)?;
        if index.generation != object.generation {
            return Err(IndexError::GenerationMismatch {
                object,
                found: index.generation,
            });
        }
        Ok(index)
    }
}

fn convert(raw: Raw) -> Result<IndexPart, IndexError> {
    let version = raw.version;
    let mut layers = BTreeMap::new();
    for (name, l) in raw.layers.0 {
        let layer: LayerName = name
            .parse()
            .map_err(
                |e: layer_format::name::ParseNameError| IndexError::MalformedLayerName {
                    name: name.clone(),
                    reason: e.reason,
                },
            )?;
        // Positive from here on: `unsigned_abs` below is the value itself.
        if l.file_size <= 0 {
            return Err(IndexError::BadFileSize {
                name,
                size: l.file_size,
            });
        }
        let level = match (version >= 3, l.level, layer.is_delta()) {
            // Read as an older version: inferred below, once every layer is known.
            (false, _, _) => None,
            (true, None, false) => None,
            (true, Some(n), true) => {
                Some(Level::from_number(n).ok_or_else(|| IndexError::BadLevel {
                    name: name.clone(),
                    reason: format!("level {n}; a delta layer is level 0 or 1"),
                })?)
            }
            (true, None, true) => {
                return Err(IndexError::BadLevel {
                    name,
                    reason: format!("a delta layer of a version {version} index needs a level"),
                });
            }
            (true, Some(n), false) => {
                return Err(IndexError::BadLevel {
                    name,
                    reason: format!("level {n} on an image layer, which has none"),
                });
            }
        };
        let meta = LayerMetadata {
            file_size: l.file_size.unsigned_abs(),
            generation: Generation(l.generation),
            checksum: l.checksum,
            level,
        };
        if layers.insert(layer, meta).is_some() {
            return Err(IndexError::DuplicateLayer { name });
        }
    }
    if version < 3 {
        infer_levels(&mut layers);
    }
    Ok(IndexPart {
        generation: Generation(raw.generation),
        layers,
        disk_consistent_lsn: field::<Lsn>("disk_consistent_lsn", &raw.disk_consistent_lsn, LSN)?,
        gc_cutoff_lsn: raw
            .gc_cutoff_lsn
            .map(|v| field::<Lsn>("gc_cutoff_lsn", &v, LSN))
            .transpose()?,
        metadata: TimelineMetadata {
            tenant_id: field::<TenantId>(
                "metadata.tenant_id",
                &raw.metadata.tenant_id,
                "32 lowercase hex digits",
            )?,
            timeline_id: field::<TimelineId>(
                "metadata.timeline_id",
                &raw.metadata.timeline_id,
                "32 lowercase hex digits",
            )?,
            created_at: time("metadata.created_at", &raw.metadata.created_at)?,
        },
        deleted_at: raw.deleted_at.map(|v| time("deleted_at", &v)).transpose()?,
    })
}

/// Levels of an index written before version 3 recorded them (see the version history in
/// `schema.rs`): a partial-key delta is L1; a whole-key-space delta is L0 unless a partial-key
/// delta lies at or above its end.
fn infer_levels(layers: &mut BTreeMap<LayerName, LayerMetadata>) {
    let inference = LevelInference::new(layers.keys());
    for (name, meta) in layers.iter_mut() {
        meta.level = inference.level(name);
    }
}

/// The rule that gives delta layers their level when nothing recorded it (indexes before
/// version 3, and layer files seen without an index): a partial-key delta is L1; a
/// whole-key-space delta is L0 unless a partial-key delta lies at or above its end.
#[derive(Debug, Clone, Copy)]
pub struct LevelInference {
    highest_partial_start: Option<Lsn>,
}

impl LevelInference {
    /// The rule for a timeline whose layers are `names`.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a LayerName>) -> LevelInference {
        let highest_partial_start = names
            .into_iter()
            .filter(|n| n.is_delta() && !whole(n))
            .map(|n| n.lsn_range().start)
            .max();
        LevelInference {
            highest_partial_start,
        }
    }

    /// The level of `name`; `None` for an image layer.
    pub fn level(&self, name: &LayerName) -> Option<Level> {
        if !name.is_delta() {
            return None;
        }
        let l0 = whole(name)
            && self
                .highest_partial_start
                .is_none_or(|s| s < name.lsn_range().end);
        Some(if l0 { Level::L0 } else { Level::L1 })
    }
}

fn whole(n: &LayerName) -> bool {
    n.key_range().start == Key::MIN && n.key_range().end == Key::MAX
}
