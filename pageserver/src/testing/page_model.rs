//! A page model written from the brief alone (section 5 for values and reads, section 6 for
//! the ingest wire format), sharing no code with the server: not its value decoding, its
//! redo, its read path or its ingest encoder. A bug in any of those shows as a difference.
//!
//! Records are kept as the test made them (patches as offset and bytes, images as pages).
//! A read of `(key, lsn)` starts from the newest image or `will_init` record at or below `lsn`
//! and applies every later record at or below `lsn`, oldest first; no record is "not found";
//! deltas with no base beneath are a data error.
//!
//! ```text
//! ingest body := record*
//! record      := key[16] | lsn:u64 BE | kind:u8 (0 image, 1 delta, 2 delta will_init)
//!                | len:u32 BE | payload[len]
//! delta       := (offset:u16 BE | len:u16 BE | bytes[len])*
//! ```

use std::collections::BTreeMap;

/// Bytes in a page.
pub const PAGE: usize = 8192;

/// One record, as a test made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelValue {
    /// A full page.
    Image(Vec<u8>),
    /// Patches `(offset, bytes)`; with `will_init`, applied to a zeroed page.
    Delta {
        /// Starts from a zeroed page.
        will_init: bool,
        /// `(offset, bytes)`, each inside the page.
        patches: Vec<(u16, Vec<u8>)>,
    },
}

impl ModelValue {
    fn is_base(&self) -> bool {
        matches!(
            self,
            ModelValue::Image(_)
                | ModelValue::Delta {
                    will_init: true,
                    ..
                }
        )
    }
}

/// What a read of the model gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelPage {
    /// No record of the key at or below the LSN (the server answers 404).
    NotFound,
    /// The page.
    Page(Vec<u8>),
    /// Records exist but none beneath is a base (the server answers 500).
    NoBase,
}

/// Every record a test ingested, by key and LSN.
#[derive(Debug, Default, Clone)]
pub struct PageModel {
    records: BTreeMap<([u8; 16], u64), ModelValue>,
}

impl PageModel {
    /// Adds a record.
    pub fn add(&mut self, key: [u8; 16], lsn: u64, value: ModelValue) {
        self.records.insert((key, lsn), value);
    }

    /// Forgets every record above `lsn` (what a reset or restart dropped before it was
    /// acknowledged).
    pub fn truncate_above(&mut self, lsn: u64) {
        self.records.retain(|(_, l), _| *l <= lsn);
    }

    /// Every record above `lsn`, in LSN order (what a storage node resends).
    pub fn records_above(&self, lsn: u64) -> Vec<([u8; 16], u64, ModelValue)> {
        let mut v: Vec<_> = self
            .records
            .iter()
            .filter(|((_, l), _)| *l > lsn)
            .map(|((k, l), v)| (*k, *l, v.clone()))
            .collect();
        v.sort_by_key(|(k, l, _)| (*l, *k));
        v
    }

    /// Whether `key` has a record at or below `lsn`.
    pub fn has_record(&self, key: [u8; 16], lsn: u64) -> bool {
        self.records.range((key, 0)..=(key, lsn)).next().is_some()
    }

    /// The page of `key` at `lsn`.
    pub fn page(&self, key: [u8; 16], lsn: u64) -> ModelPage {
        let chain: Vec<&ModelValue> = self
            .records
            .range((key, 0)..=(key, lsn))
            .map(|(_, v)| v)
            .collect();
        let Some(base) = chain.iter().rposition(|v| v.is_base()) else {
            return if chain.is_empty() {
                ModelPage::NotFound
            } else {
                ModelPage::NoBase
            };
        };
        let mut page = vec![0u8; PAGE];
        for v in &chain[base..] {
            match v {
                ModelValue::Image(img) => page.copy_from_slice(img),
                ModelValue::Delta { will_init, patches } => {
                    if *will_init {
                        page.iter_mut().for_each(|b| *b = 0);
                    }
                    for (offset, bytes) in patches {
                        let at = usize::from(*offset);
                        page[at..at + bytes.len()].copy_from_slice(bytes);
                    }
                }
            }
        }
        ModelPage::Page(page)
    }
}

/// Appends one record to an ingest body in the wire format of the brief.
pub fn encode_record(body: &mut Vec<u8>, key: [u8; 16], lsn: u64, value: &ModelValue) {
    let (kind, payload): (u8, Vec<u8>) = match value {
        ModelValue::Image(page) => (0, page.clone()),
        ModelValue::Delta { will_init, patches } => {
            let mut p = Vec::new();
            for (offset, bytes) in patches {
                assert!(
                    usize::from(*offset) + bytes.len() <= PAGE,
                    "patch outside the page"
                );
                p.extend_from_slice(&offset.to_be_bytes());
                p.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
                p.extend_from_slice(bytes);
            }
            (if *will_init { 2 } else { 1 }, p)
        }
    };
    body.extend_from_slice(&key);
    body.extend_from_slice(&lsn.to_be_bytes());
    body.push(kind);
    body.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    body.extend_from_slice(&payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_the_brief() {
        let k = [7u8; 16];
        let mut m = PageModel::default();
        assert_eq!(m.page(k, 10), ModelPage::NotFound);
        m.add(
            k,
            5,
            ModelValue::Delta {
                will_init: false,
                patches: vec![(0, vec![1])],
            },
        );
        assert_eq!(m.page(k, 10), ModelPage::NoBase);
        m.add(k, 6, ModelValue::Image(vec![9; PAGE]));
        m.add(
            k,
            8,
            ModelValue::Delta {
                will_init: false,
                patches: vec![(1, vec![2, 3]), (PAGE as u16 - 1, vec![4])],
            },
        );
        let ModelPage::Page(p) = m.page(k, 8) else {
            panic!()
        };
        assert_eq!((&p[..4], p[PAGE - 1]), (&[9u8, 2, 3, 9][..], 4));
        assert_eq!(m.page(k, 7), ModelPage::Page(vec![9; PAGE]));
        m.add(
            k,
            9,
            ModelValue::Delta {
                will_init: true,
                patches: vec![(2, vec![5])],
            },
        );
        let ModelPage::Page(p) = m.page(k, 9) else {
            panic!()
        };
        assert_eq!(&p[..4], &[0, 0, 5, 0]);
        m.truncate_above(8);
        assert_eq!(m.records_above(5).len(), 2);
    }
}
