//! A page model written from the brief alone (section 5 for values and reads, section 6 for
//! the ingest wire format), sharing no code with the server: not its value decoding, its
//! redo, its read path or its ingest encoder. A bug in any of those shows as a difference.
//! Every suite computes expected pages here ([`Model`] for suites that send the server's
//! `Record`s, [`PageModel`] for those that build records themselves).
//!
//! Records are kept as the test made them (patches as offset and bytes, images as pages), or
//! decoded from the wire bytes by the model's own decoder ([`ModelValue::from_wire`]).
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

use bytes::Bytes;
use layer_format::{Key, Lsn, Record, Value};
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
    /// Decodes a record's payload as the ingest wire carries it: `kind` 0 is an image (a
    /// whole page), 1 a delta, 2 a `will_init` delta, whose payload is patches
    /// `offset:u16 BE | len:u16 BE | bytes[len]`, each inside the page.
    pub fn from_wire(kind: u8, payload: &[u8]) -> Result<ModelValue, String> {
        if kind == 0 {
            if payload.len() != PAGE {
                return Err(format!("an image of {} bytes", payload.len()));
            }
            return Ok(ModelValue::Image(payload.to_vec()));
        }
        if kind > 2 {
            return Err(format!("kind {kind}"));
        }
        let mut patches = Vec::new();
        let mut rest = payload;
        while !rest.is_empty() {
            if rest.len() < 4 {
                return Err(format!("a patch header of {} bytes", rest.len()));
            }
            let offset = u16::from_be_bytes([rest[0], rest[1]]);
            let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
            if rest.len() < 4 + len || usize::from(offset) + len > PAGE {
                return Err(format!("a patch of {len} bytes at offset {offset}"));
            }
            patches.push((offset, rest[4..4 + len].to_vec()));
            rest = &rest[4 + len..];
        }
        Ok(ModelValue::Delta {
            will_init: kind == 2,
            patches,
        })
    }

    /// The value of a server `Value` (only its kind and bytes are used).
    pub fn of(value: &Value) -> Result<ModelValue, String> {
        match value {
            Value::Image(page) => ModelValue::from_wire(0, page),
            Value::Delta { will_init, record } => {
                ModelValue::from_wire(if *will_init { 2 } else { 1 }, record)
            }
        }
    }

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

/// Every record a suite sent, as sent (to send again after a crash), with every page computed
/// by [`PageModel`].
#[derive(Debug, Default, Clone)]
pub struct Model {
    records: BTreeMap<(Key, Lsn), Value>,
    pages: PageModel,
}

impl Model {
    /// Adds records. Panics on a value the brief does not allow: suites send valid records.
    pub fn add(&mut self, records: &[Record]) {
        for r in records {
            let v = ModelValue::of(&r.value)
                .unwrap_or_else(|e| panic!("the model refuses {} at {}: {e}", r.key, r.lsn));
            self.pages.add(r.key.0, r.lsn.0, v);
            self.records.insert((r.key, r.lsn), r.value.clone());
        }
    }

    /// Forgets every record above `lsn` (what a crash lost before it was acknowledged).
    pub fn truncate_above(&mut self, lsn: Lsn) {
        self.records.retain(|(_, l), _| *l <= lsn);
        self.pages.truncate_above(lsn.0);
    }

    /// The records at or below `lsn`: what a server that has everything up to `lsn` holds.
    pub fn upto(&self, lsn: Lsn) -> Model {
        let mut m = self.clone();
        m.truncate_above(lsn);
        m
    }

    /// The page of `key` at `lsn`, or `None` if the key has no record at or below it. Panics
    /// if its records have no base: suites make every chain start with one.
    pub fn page(&self, key: Key, lsn: Lsn) -> Option<Bytes> {
        match self.pages.page(key.0, lsn.0) {
            ModelPage::Page(p) => Some(Bytes::from(p)),
            ModelPage::NotFound => None,
            ModelPage::NoBase => panic!("the model's chain of {key} at {lsn} has no base"),
        }
    }

    /// Records above `lsn`, in LSN order (what a storage node resends after a crash).
    pub fn records_above(&self, lsn: Lsn) -> Vec<Record> {
        let mut v: Vec<Record> = self
            .records
            .iter()
            .filter(|((_, l), _)| *l > lsn)
            .map(|((k, l), v)| Record {
                key: *k,
                lsn: *l,
                value: v.clone(),
            })
            .collect();
        v.sort_by_key(|r| (r.lsn, r.key));
        v
    }

    /// Every key and LSN with a record, in key then LSN order.
    pub fn keys_and_lsns(&self) -> impl Iterator<Item = (Key, Lsn)> + '_ {
        self.records.keys().copied()
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
    encode_wire(body, key, lsn, kind, &payload);
}

/// Appends one record of `kind` (0 image, 1 delta, 2 `will_init` delta) with `payload` as it
/// is, valid or not, to an ingest body.
pub fn encode_wire(body: &mut Vec<u8>, key: [u8; 16], lsn: u64, kind: u8, payload: &[u8]) {
    body.extend_from_slice(&key);
    body.extend_from_slice(&lsn.to_be_bytes());
    body.push(kind);
    let len = u32::try_from(payload.len()).expect("a payload below 4 GiB");
    body.extend_from_slice(&len.to_be_bytes());
    body.extend_from_slice(payload);
}

/// An ingest body of `records`, each value's bytes sent as they are (valid or not).
pub fn ingest_body(records: &[Record]) -> Vec<u8> {
    let mut body = Vec::new();
    for r in records {
        let (kind, payload) = match &r.value {
            Value::Image(page) => (0, page),
            Value::Delta { will_init, record } => (if *will_init { 2 } else { 1 }, record),
        };
        encode_wire(&mut body, r.key.0, r.lsn.0, kind, payload);
    }
    body
}

#[cfg(test)]
mod tests;
