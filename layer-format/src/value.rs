//! `Value`: what a record holds, and its encoding inside a blob.
//!
//! ```text
//! value   := tag:u8 body
//! tag     := 1 image | 2 delta | 3 delta will_init      (0 is invalid)
//! image   := page[8192]
//! delta   := patch*                                     (the record, as on the ingest wire)
//! patch   := offset:u16 BE | len:u16 BE | bytes[len]    (offset + len <= 8192)
//! ```
//!
//! An image is exactly one page. A delta record is a list of patches applied to the page; a
//! `will_init` delta starts from a zeroed page instead of an older version. The decoder checks the
//! framing and the page bounds of every patch, so a [`Value`] that came out of a file can be
//! applied without further checks.

use bytes::Bytes;

/// Size of a page in bytes.
pub const PAGE_SIZE: usize = 8192;

/// Tag byte of an image value.
const TAG_IMAGE: u8 = 1;
/// Tag byte of a delta value.
const TAG_DELTA: u8 = 2;
/// Tag byte of a `will_init` delta value.
const TAG_DELTA_WILL_INIT: u8 = 3;
/// Size of a patch header: offset and length.
const PATCH_HEADER_SIZE: usize = 4;

/// One record's value.
#[derive(Clone, PartialEq, Eq)]
pub enum Value {
    /// A full page image ([`PAGE_SIZE`] bytes) that replaces the page.
    Image(Bytes),
    /// A list of patches applied to the page.
    Delta {
        /// Start from a zeroed page rather than from an older version.
        will_init: bool,
        /// The encoded patches (see the module doc); checked by [`validate_record`].
        record: Bytes,
    },
}

/// One record: a page's value at an LSN, what ingest carries and a layer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The page.
    pub key: crate::Key,
    /// Its LSN.
    pub lsn: crate::Lsn,
    /// What it holds.
    pub value: Value,
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Image(b) => write!(f, "Image({} bytes)", b.len()),
            Value::Delta { will_init, record } => {
                write!(
                    f,
                    "Delta {{ will_init: {will_init}, record: {} bytes }}",
                    record.len()
                )
            }
        }
    }
}

/// A malformed value or patch list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// The value is empty or starts with an unknown tag.
    #[error("unknown value tag {0:?}")]
    BadTag(Option<u8>),
    /// An image that is not exactly one page.
    #[error("image of {0} bytes, expected {PAGE_SIZE}")]
    BadImageSize(usize),
    /// A patch header or body runs past the end of the record.
    #[error("patch at byte {at} of the record is truncated")]
    TruncatedPatch {
        /// Byte offset of the patch inside the record.
        at: usize,
    },
    /// A patch writes outside the page.
    #[error(
        "patch at byte {at} of the record writes {len} bytes at page offset {offset}, past {PAGE_SIZE}"
    )]
    PatchOutsidePage {
        /// Byte offset of the patch inside the record.
        at: usize,
        /// Page offset the patch writes at.
        offset: u16,
        /// Number of bytes the patch writes.
        len: u16,
    },
}

/// One decoded patch: write `bytes` at `offset` of the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patch<'a> {
    /// Page offset of the first byte written.
    pub offset: u16,
    /// The bytes written.
    pub bytes: &'a [u8],
}

/// Encodes patches into a delta record. Panics if a patch lies outside the page: building
/// an invalid record is a programmer error (ingest checks its input with [`validate_record`]).
pub fn encode_patches(patches: &[Patch<'_>]) -> Bytes {
    let mut out = Vec::with_capacity(
        patches
            .iter()
            .map(|p| PATCH_HEADER_SIZE + p.bytes.len())
            .sum(),
    );
    for p in patches {
        assert!(
            usize::from(p.offset) + p.bytes.len() <= PAGE_SIZE,
            "patch outside the page"
        );
        // Inside the page (asserted above), so below u16::MAX.
        let len = u16::try_from(p.bytes.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&p.offset.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(p.bytes);
    }
    Bytes::from(out)
}

/// Iterates over the patches of a record, checking framing and page bounds.
pub fn patches(record: &[u8]) -> impl Iterator<Item = Result<Patch<'_>, ValueError>> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        if at >= record.len() {
            return None;
        }
        let start = at;
        let Some(header) = record.get(at..at + PATCH_HEADER_SIZE) else {
            at = record.len();
            return Some(Err(ValueError::TruncatedPatch { at: start }));
        };
        let offset = u16::from_be_bytes([header[0], header[1]]);
        let len = u16::from_be_bytes([header[2], header[3]]);
        if usize::from(offset) + usize::from(len) > PAGE_SIZE {
            at = record.len();
            return Some(Err(ValueError::PatchOutsidePage {
                at: start,
                offset,
                len,
            }));
        }
        let body_start = at + PATCH_HEADER_SIZE;
        let Some(bytes) = record.get(body_start..body_start + usize::from(len)) else {
            at = record.len();
            return Some(Err(ValueError::TruncatedPatch { at: start }));
        };
        at = body_start + usize::from(len);
        Some(Ok(Patch { offset, bytes }))
    })
}

/// Checks that a record is a well-formed list of patches inside the page.
pub fn validate_record(record: &[u8]) -> Result<(), ValueError> {
    patches(record).try_for_each(|p| p.map(|_| ()))
}

impl Value {
    /// Whether this value starts a page from scratch (an image or a `will_init` delta): a read
    /// needs nothing older.
    pub fn is_base(&self) -> bool {
        match self {
            Value::Image(_) => true,
            Value::Delta { will_init, .. } => *will_init,
        }
    }

    /// Size of the encoded value in bytes.
    pub fn encoded_len(&self) -> usize {
        1 + match self {
            Value::Image(b) => b.len(),
            Value::Delta { record, .. } => record.len(),
        }
    }

    /// The tag byte and the body of the encoding (the encoding is the tag followed by the body).
    pub fn encoded_parts(&self) -> (u8, &Bytes) {
        match self {
            Value::Image(b) => (TAG_IMAGE, b),
            Value::Delta {
                will_init: false,
                record,
            } => (TAG_DELTA, record),
            Value::Delta {
                will_init: true,
                record,
            } => (TAG_DELTA_WILL_INIT, record),
        }
    }

    /// Appends the encoding of the value to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Value::Image(b) => {
                out.push(TAG_IMAGE);
                out.extend_from_slice(b);
            }
            Value::Delta { will_init, record } => {
                out.push(if *will_init {
                    TAG_DELTA_WILL_INIT
                } else {
                    TAG_DELTA
                });
                out.extend_from_slice(record);
            }
        }
    }

    /// Checks the value as [`decode`](Value::decode) would; writers assert it.
    pub fn validate(&self) -> Result<(), ValueError> {
        match self {
            Value::Image(b) if b.len() != PAGE_SIZE => Err(ValueError::BadImageSize(b.len())),
            Value::Image(_) => Ok(()),
            Value::Delta { record, .. } => validate_record(record),
        }
    }

    /// Decodes a value, checking tag, image size and every patch.
    pub fn decode(encoded: Bytes) -> Result<Value, ValueError> {
        let value = match encoded.first() {
            Some(&TAG_IMAGE) => Value::Image(encoded.slice(1..)),
            Some(&TAG_DELTA) => Value::Delta {
                will_init: false,
                record: encoded.slice(1..),
            },
            Some(&TAG_DELTA_WILL_INIT) => Value::Delta {
                will_init: true,
                record: encoded.slice(1..),
            },
            other => return Err(ValueError::BadTag(other.copied())),
        };
        value.validate()?;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(v: &Value) -> Bytes {
        let mut out = Vec::new();
        v.encode_into(&mut out);
        assert_eq!(out.len(), v.encoded_len());
        Bytes::from(out)
    }

    #[test]
    fn image_round_trips_and_must_be_a_page() {
        let v = Value::Image(Bytes::from(vec![7u8; PAGE_SIZE]));
        assert_eq!(Value::decode(encode(&v)), Ok(v));
        let short = Value::Image(Bytes::from(vec![7u8; 100]));
        assert_eq!(
            Value::decode(encode(&short)),
            Err(ValueError::BadImageSize(100))
        );
    }

    #[test]
    fn corrupt_values_are_typed_errors() {
        assert_eq!(Value::decode(Bytes::new()), Err(ValueError::BadTag(None)));
        assert_eq!(
            Value::decode(Bytes::from_static(&[0])),
            Err(ValueError::BadTag(Some(0)))
        );
        // A patch header cut short.
        assert_eq!(
            Value::decode(Bytes::from_static(&[2, 0, 1, 0])),
            Err(ValueError::TruncatedPatch { at: 0 })
        );
        // A body cut short.
        assert_eq!(
            Value::decode(Bytes::from_static(&[2, 0, 1, 0, 3, 9, 9])),
            Err(ValueError::TruncatedPatch { at: 0 })
        );
        // Offset 8190 + 4 bytes > 8192.
        assert_eq!(
            Value::decode(Bytes::from_static(&[3, 0x1f, 0xfe, 0, 4, 1, 2, 3, 4])),
            Err(ValueError::PatchOutsidePage {
                at: 0,
                offset: 8190,
                len: 4
            })
        );
    }

    proptest! {
        #[test]
        fn delta_round_trips(
            will_init: bool,
            raw in proptest::collection::vec((0u16..8192, proptest::collection::vec(any::<u8>(), 0..64)), 0..8)
        ) {
            let ps: Vec<Patch<'_>> = raw
                .iter()
                .map(|(o, b)| Patch { offset: (*o).min((PAGE_SIZE - b.len()) as u16), bytes: b })
                .collect();
            let v = Value::Delta { will_init, record: encode_patches(&ps) };
            let decoded = Value::decode(encode(&v)).unwrap();
            let Value::Delta { record, .. } = &decoded else { panic!("not a delta") };
            let back: Vec<Patch<'_>> = patches(record).map(Result::unwrap).collect();
            prop_assert_eq!(back, ps);
            prop_assert_eq!(decoded, v);
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Value::decode(Bytes::from(bytes));
        }
    }
}
