//! Layer names, generations and the file names built from them (brief section 4).
//!
//! ```text
//! delta layer name   <key_start>-<key_end>__<lsn_start:016X>-<lsn_end:016X>
//! image layer name   <key_start>-<key_end>__<lsn:016X>
//! layer file name    <layer name>-<generation:08x>
//! temp file name     <final file name>.<nonce:016x>.___temp
//! ```
//!
//! Key and LSN ranges are half-open (`key_end` and `lsn_end` exclusive). Parsing is strict and
//! checks `start < end`, so that every name parses to exactly one value and formats back to the
//! same string. The index-part crate builds object names on top of these.

use crate::{Key, Lsn};
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

/// Suffix of every temporary file.
pub const TEMP_SUFFIX: &str = ".___temp";

/// The generation of an attachment: part of every file and object name it writes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Generation(pub u32);

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl FromStr for Generation {
    type Err = ParseNameError;
    fn from_str(s: &str) -> Result<Generation, ParseNameError> {
        parse_hex_fixed(s, 8, false)
            .and_then(|v| u32::try_from(v).ok())
            .map(Generation)
            .ok_or_else(|| ParseNameError::new(s, "generation is not 8 lowercase hex digits"))
    }
}

/// What a layer covers, which is also its name.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum LayerName {
    /// A delta layer: records for `key_range` with LSNs in `lsn_range`.
    Delta {
        /// Keys covered, end exclusive.
        key_range: Range<Key>,
        /// LSNs covered, end exclusive.
        lsn_range: Range<Lsn>,
    },
    /// An image layer: the page of every key of `key_range` at `lsn`.
    Image {
        /// Keys covered, end exclusive.
        key_range: Range<Key>,
        /// The LSN of the images.
        lsn: Lsn,
    },
}

impl LayerName {
    /// The key range, end exclusive.
    pub fn key_range(&self) -> &Range<Key> {
        match self {
            LayerName::Delta { key_range, .. } | LayerName::Image { key_range, .. } => key_range,
        }
    }

    /// The LSN range, end exclusive (`lsn..lsn+1` for an image layer).
    pub fn lsn_range(&self) -> Range<Lsn> {
        match self {
            LayerName::Delta { lsn_range, .. } => lsn_range.clone(),
            LayerName::Image { lsn, .. } => *lsn..Lsn(lsn.0.saturating_add(1)),
        }
    }

    /// Whether this is a delta layer.
    pub fn is_delta(&self) -> bool {
        matches!(self, LayerName::Delta { .. })
    }
}

impl LayerName {
    /// The sort position: key range, then LSN range, deltas before images.
    fn sort_key(&self) -> (Key, Key, Lsn, Lsn, bool) {
        let lsns = self.lsn_range();
        let keys = self.key_range();
        (keys.start, keys.end, lsns.start, lsns.end, !self.is_delta())
    }
}

impl Ord for LayerName {
    fn cmp(&self, other: &LayerName) -> std::cmp::Ordering {
        self.sort_key().cmp(&other.sort_key())
    }
}

impl PartialOrd for LayerName {
    fn partial_cmp(&self, other: &LayerName) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for LayerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerName::Delta {
                key_range,
                lsn_range,
            } => write!(
                f,
                "{}-{}__{:016X}-{:016X}",
                key_range.start, key_range.end, lsn_range.start.0, lsn_range.end.0
            ),
            LayerName::Image { key_range, lsn } => {
                write!(f, "{}-{}__{:016X}", key_range.start, key_range.end, lsn.0)
            }
        }
    }
}

/// A name that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid name {name:?}: {reason}")]
pub struct ParseNameError {
    /// The offending name.
    pub name: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl ParseNameError {
    fn new(name: &str, reason: &'static str) -> ParseNameError {
        ParseNameError {
            name: name.to_string(),
            reason,
        }
    }
}

fn parse_hex_fixed(s: &str, digits: usize, upper: bool) -> Option<u64> {
    let ok = s.len() == digits
        && s.bytes().all(|c| match c {
            b'0'..=b'9' => true,
            b'a'..=b'f' => !upper,
            b'A'..=b'F' => upper,
            _ => false,
        });
    if ok {
        u64::from_str_radix(s, 16).ok()
    } else {
        None
    }
}

impl FromStr for LayerName {
    type Err = ParseNameError;

    fn from_str(s: &str) -> Result<LayerName, ParseNameError> {
        let err = |reason| ParseNameError::new(s, reason);
        let (keys, lsns) = s.split_once("__").ok_or_else(|| err("missing `__`"))?;
        let (k0, k1) = keys
            .split_once('-')
            .ok_or_else(|| err("key range is not START-END"))?;
        let key_range = k0.parse::<Key>().map_err(|_| err("bad start key"))?
            ..k1.parse::<Key>().map_err(|_| err("bad end key"))?;
        if key_range.start >= key_range.end {
            return Err(err("empty key range"));
        }
        let lsn = |p: &str| {
            parse_hex_fixed(p, 16, true)
                .map(Lsn)
                .ok_or_else(|| err("bad LSN"))
        };
        match lsns.split_once('-') {
            Some((l0, l1)) => {
                let lsn_range = lsn(l0)?..lsn(l1)?;
                if lsn_range.start >= lsn_range.end {
                    return Err(err("empty LSN range"));
                }
                Ok(LayerName::Delta {
                    key_range,
                    lsn_range,
                })
            }
            None => Ok(LayerName::Image {
                key_range,
                lsn: lsn(lsns)?,
            }),
        }
    }
}

/// The name of a layer file on disk and of its object in storage: `<layer name>-<generation>`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct LayerFileName {
    /// The layer.
    pub layer: LayerName,
    /// The generation that wrote it.
    pub generation: Generation,
}

impl fmt::Display for LayerFileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.layer, self.generation)
    }
}

impl FromStr for LayerFileName {
    type Err = ParseNameError;

    fn from_str(s: &str) -> Result<LayerFileName, ParseNameError> {
        let (layer, generation) = s
            .rsplit_once('-')
            .ok_or_else(|| ParseNameError::new(s, "no generation suffix"))?;
        let generation: Generation = generation
            .parse()
            .map_err(|_| ParseNameError::new(s, "bad generation suffix"))?;
        let layer = layer
            .parse()
            .map_err(|e: ParseNameError| ParseNameError::new(s, e.reason))?;
        Ok(LayerFileName { layer, generation })
    }
}

/// The temp file name for `final_name` with a caller-chosen nonce.
pub fn temp_file_name(final_name: &str, nonce: u64) -> String {
    format!("{final_name}.{nonce:016x}{TEMP_SUFFIX}")
}

/// Whether a file name is a temp file name (any writer's, from any run).
pub fn is_temp_file_name(name: &str) -> bool {
    name.ends_with(TEMP_SUFFIX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_look_like_the_brief_says() {
        let delta = LayerName::Delta {
            key_range: Key::from_u128(0)..Key::MAX,
            lsn_range: Lsn(0x10)..Lsn(0x1_0000_0000),
        };
        assert_eq!(
            delta.to_string(),
            "00000000000000000000000000000000-ffffffffffffffffffffffffffffffff__0000000000000010-0000000100000000"
        );
        let file = LayerFileName {
            layer: delta,
            generation: Generation(0xab),
        };
        assert!(
            file.to_string()
                .ends_with("__0000000000000010-0000000100000000-000000ab")
        );
        assert_eq!(file.to_string().parse::<LayerFileName>(), Ok(file));
    }

    #[test]
    fn bad_names_are_refused() {
        let k0 = Key::from_u128(1).to_string();
        let k1 = Key::from_u128(2).to_string();
        for s in [
            String::new(),
            format!("{k0}-{k1}"),
            format!("{k1}-{k0}__0000000000000001"),
            format!("{k0}-{k0}__0000000000000001"),
            format!("{k0}-{k1}__0000000000000002-0000000000000002"),
            format!("{k0}-{k1}__000000000000000a"),
            format!("{k0}-{k1}__00000000000001"),
            format!("{k0}-{k1}__0000000000000001-"),
        ] {
            assert!(s.parse::<LayerName>().is_err(), "{s:?}");
        }
        let ok = format!("{k0}-{k1}__0000000000000001");
        for s in [
            ok.clone(),
            format!("{ok}-0000000"),
            format!("{ok}-0000000G"),
            format!("{ok}-000000AB"),
        ] {
            assert!(s.parse::<LayerFileName>().is_err(), "{s:?}");
        }
        assert!(is_temp_file_name(&temp_file_name(&ok, 7)));
        assert!(!is_temp_file_name(&ok));
    }

    fn layer_name() -> impl Strategy<Value = LayerName> {
        (
            any::<u128>(),
            any::<u128>(),
            any::<u64>(),
            any::<u64>(),
            any::<bool>(),
        )
            .prop_filter_map("non-empty ranges", |(a, b, c, d, delta)| {
                let key_range = Key::from_u128(a.min(b))..Key::from_u128(a.max(b));
                if key_range.is_empty() {
                    return None;
                }
                if delta {
                    let lsn_range = Lsn(c.min(d))..Lsn(c.max(d));
                    (!lsn_range.is_empty()).then_some(LayerName::Delta {
                        key_range,
                        lsn_range,
                    })
                } else {
                    Some(LayerName::Image {
                        key_range,
                        lsn: Lsn(c),
                    })
                }
            })
    }

    proptest! {
        #[test]
        fn layer_file_names_round_trip(layer in layer_name(), g: u32) {
            prop_assert_eq!(layer.to_string().parse::<LayerName>(), Ok(layer.clone()));
            let file = LayerFileName { layer, generation: Generation(g) };
            prop_assert_eq!(file.to_string().parse::<LayerFileName>(), Ok(file));
        }
    }
}
