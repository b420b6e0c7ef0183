//! Rebuilding a page from the values a read collected.
//!
//! A read at `(key, lsn)` collects values newest first and stops at the first *base*: an image
//! or a `will_init` delta. [`reconstruct`] applies them oldest first. A chain that never reaches
//! a base is an error, never a made-up page.

use crate::value::{PAGE_SIZE, Value, ValueError, patches};
use crate::{Key, Lsn};
use bytes::Bytes;

/// Why a page could not be rebuilt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedoError {
    /// No record at all.
    #[error("no record for key {key} at or below {lsn}")]
    NoRecords {
        /// The key read.
        key: Key,
        /// The LSN read.
        lsn: Lsn,
    },
    /// The oldest value is a delta that needs an older page.
    #[error(
        "delta chain for key {key} at {lsn} has no image or will_init record beneath it (oldest record at {oldest})"
    )]
    NoBase {
        /// The key read.
        key: Key,
        /// The LSN read.
        lsn: Lsn,
        /// LSN of the oldest record found.
        oldest: Lsn,
    },
    /// A value could not be applied.
    #[error("record for key {key} at {at} is malformed: {source}")]
    BadValue {
        /// The key read.
        key: Key,
        /// LSN of the malformed record.
        at: Lsn,
        /// What is wrong.
        source: ValueError,
    },
}

/// Rebuilds the page of `key` at `lsn` from `values`, newest first, whose last element must be a
/// base (image or `will_init` delta). Values after the first base are ignored.
pub fn reconstruct(key: Key, lsn: Lsn, values: &[(Lsn, Value)]) -> Result<Bytes, RedoError> {
    let base_at = values
        .iter()
        .position(|(_, v)| v.is_base())
        .ok_or_else(|| match values.last() {
            None => RedoError::NoRecords { key, lsn },
            Some((oldest, _)) => RedoError::NoBase {
                key,
                lsn,
                oldest: *oldest,
            },
        })?;
    let mut page = vec![0u8; PAGE_SIZE];
    for (at, value) in values[..=base_at].iter().rev() {
        let bad = |source| RedoError::BadValue {
            key,
            at: *at,
            source,
        };
        match value {
            Value::Image(img) => {
                if img.len() != PAGE_SIZE {
                    return Err(bad(ValueError::BadImageSize(img.len())));
                }
                page.copy_from_slice(img);
            }
            Value::Delta { will_init, record } => {
                if *will_init {
                    page.fill(0);
                }
                for patch in patches(record) {
                    let p = patch.map_err(bad)?;
                    let start = usize::from(p.offset);
                    page[start..start + p.bytes.len()].copy_from_slice(p.bytes);
                }
            }
        }
    }
    Ok(Bytes::from(page))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{Patch, encode_patches};

    fn delta(will_init: bool, offset: u16, bytes: &[u8]) -> Value {
        Value::Delta {
            will_init,
            record: encode_patches(&[Patch { offset, bytes }]),
        }
    }

    #[test]
    fn applies_oldest_first_on_top_of_the_base() {
        let key = Key::from_u128(1);
        let mut img = vec![1u8; PAGE_SIZE];
        img[0] = 9;
        let values = vec![
            (Lsn(30), delta(false, 0, b"cc")),
            (Lsn(20), delta(false, 1, b"bbb")),
            (Lsn(10), Value::Image(Bytes::from(img))),
            (Lsn(5), delta(false, 0, b"ignored")),
        ];
        let page = reconstruct(key, Lsn(30), &values).unwrap();
        assert_eq!(&page[..5], b"ccbb\x01");
        assert_eq!(page.len(), PAGE_SIZE);
    }

    #[test]
    fn will_init_starts_from_zeroes() {
        let key = Key::from_u128(1);
        let values = vec![
            (Lsn(2), delta(false, 2, b"x")),
            (Lsn(1), delta(true, 0, b"ab")),
        ];
        let page = reconstruct(key, Lsn(2), &values).unwrap();
        assert_eq!(&page[..4], b"abx\0");
        assert!(page[4..].iter().all(|b| *b == 0));
    }

    #[test]
    fn a_chain_without_base_is_an_error() {
        let key = Key::from_u128(1);
        assert_eq!(
            reconstruct(key, Lsn(3), &[]),
            Err(RedoError::NoRecords { key, lsn: Lsn(3) })
        );
        let values = vec![
            (Lsn(3), delta(false, 0, b"a")),
            (Lsn(2), delta(false, 0, b"b")),
        ];
        assert_eq!(
            reconstruct(key, Lsn(3), &values),
            Err(RedoError::NoBase {
                key,
                lsn: Lsn(3),
                oldest: Lsn(2)
            })
        );
    }
}
