//! The ingest wire format (brief section 6): decoding request bodies, strictly, and encoding
//! them (tests and tools). The timeline knows records, not this format.
//!
//! ```text
//! record := key[16] | lsn: u64 BE | kind: u8 (0 image, 1 delta, 2 delta will_init)
//!           | len: u32 BE | payload[len]
//! ```
//!
//! A body is accepted whole or not at all: every rule is checked before anything is applied,
//! and the error names the byte offset of the record (or patch) at fault.

use bytes::Bytes;
use layer_format::value::{PAGE_SIZE, Value, validate_record};
use layer_format::{Key, Lsn, Record};

/// Size of a record header.
pub const RECORD_HEADER_SIZE: usize = 16 + 8 + 1 + 4;
/// The largest delta record accepted.
pub const MAX_DELTA_RECORD: usize = 1 << 20;

/// Why a body was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record at byte {offset}: {message}")]
pub struct IngestError {
    /// Byte offset of the record in the body.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

/// Decodes a whole body of at most `max_records` records. `last_record_lsn` is the timeline's:
/// the first LSN must be above it. Linear in the body's size.
pub fn decode(
    body: &Bytes,
    last_record_lsn: Lsn,
    max_records: u64,
) -> Result<Vec<Record>, IngestError> {
    let mut out: Vec<Record> = Vec::new();
    let mut keys_at_lsn: std::collections::HashSet<Key> = std::collections::HashSet::new();
    let mut at = 0usize;
    if body.is_empty() {
        return Err(IngestError {
            offset: 0,
            message: "empty body: no records".into(),
        });
    }
    while at < body.len() {
        let err = |message: String| IngestError {
            offset: at,
            message,
        };
        if out.len() as u64 >= max_records {
            return Err(err(format!(
                "more than {max_records} records in one request (max_ingest_records)"
            )));
        }
        let left = body.len() - at;
        if left < RECORD_HEADER_SIZE {
            return Err(err(format!(
                "truncated header: {left} bytes left, {RECORD_HEADER_SIZE} needed"
            )));
        }
        let h = &body[at..at + RECORD_HEADER_SIZE];
        let key = Key(h[..16].try_into().expect("16 bytes"));
        let lsn = Lsn(u64::from_be_bytes(h[16..24].try_into().expect("8 bytes")));
        let kind = h[24];
        let len = u32::from_be_bytes(h[25..29].try_into().expect("4 bytes")) as usize;
        if key == Key::MAX {
            return Err(err(
                "key ffff...ff is reserved as the end of the key space".into()
            ));
        }
        if lsn == Lsn::MAX {
            return Err(err(format!(
                "LSN {lsn} is reserved: a layer's LSN range ends one above its last record"
            )));
        }
        match out.last() {
            None if lsn <= last_record_lsn => {
                return Err(err(format!(
                    "LSN {lsn} is not above the timeline's last_record_lsn {last_record_lsn}"
                )));
            }
            Some(prev) if lsn < prev.lsn => {
                return Err(err(format!(
                    "LSN {lsn} is below the previous record's {}",
                    prev.lsn
                )));
            }
            _ => {}
        }
        if left - RECORD_HEADER_SIZE < len {
            return Err(err(format!(
                "payload of {len} bytes runs past the end of the body ({} bytes left)",
                left - RECORD_HEADER_SIZE
            )));
        }
        let payload = body.slice(at + RECORD_HEADER_SIZE..at + RECORD_HEADER_SIZE + len);
        let value = match kind {
            0 => {
                if len != PAGE_SIZE {
                    return Err(err(format!(
                        "image of {len} bytes; an image is exactly {PAGE_SIZE}"
                    )));
                }
                Value::Image(payload)
            }
            1 | 2 => {
                if len > MAX_DELTA_RECORD {
                    return Err(err(format!(
                        "delta record of {len} bytes is over the {MAX_DELTA_RECORD}-byte limit"
                    )));
                }
                if len == 0 {
                    return Err(err("empty delta record".into()));
                }
                validate_record(&payload).map_err(|e| err(format!("delta payload: {e}")))?;
                Value::Delta {
                    will_init: kind == 2,
                    record: payload,
                }
            }
            other => {
                return Err(err(format!(
                    "unknown record kind {other} (0 image, 1 delta, 2 delta will_init)"
                )));
            }
        };
        // Keys seen at the current LSN: linear in the body, however many records share it.
        if out.last().is_some_and(|prev| prev.lsn != lsn) {
            keys_at_lsn.clear();
        }
        if !keys_at_lsn.insert(key) {
            return Err(err(format!("key {key} appears twice at LSN {lsn}")));
        }
        out.push(Record { key, lsn, value });
        at += RECORD_HEADER_SIZE + len;
    }
    Ok(out)
}

/// Encodes records in the wire format (tests and tools).
pub fn encode(records: &[Record]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        let (kind, payload) = match &r.value {
            Value::Image(b) => (0u8, b),
            Value::Delta {
                will_init: false,
                record,
            } => (1, record),
            Value::Delta {
                will_init: true,
                record,
            } => (2, record),
        };
        out.extend_from_slice(&r.key.0);
        out.extend_from_slice(&r.lsn.0.to_be_bytes());
        out.push(kind);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload);
    }
    out
}

/// The body of the decoder's fuzz target (`pageserver/fuzz`), shared with the tests that run
/// it on random input: the first 8 bytes are `last_record_lsn`, the 9th sets the record limit,
/// the rest is the body. Must never panic; whatever decodes keeps every rule (non-empty, within
/// the limit, first LSN above `last_record_lsn`, LSNs non-decreasing, no reserved key or LSN)
/// and encodes back to the very same bytes (one encoding per body).
pub fn decode_arbitrary(data: &[u8]) {
    let Some((head, body)) = data.split_at_checked(9) else {
        return;
    };
    let mut lsn = [0u8; 8];
    lsn.copy_from_slice(&head[..8]);
    let last = Lsn(u64::from_be_bytes(lsn));
    let max = u64::from(head[8]) * 4 + 1;
    let body = Bytes::copy_from_slice(body);
    if let Ok(records) = decode(&body, last, max) {
        assert!(!records.is_empty() && records.len() as u64 <= max);
        assert!(records[0].lsn > last, "first LSN above last_record_lsn");
        assert!(
            records.windows(2).all(|w| w[0].lsn <= w[1].lsn),
            "LSNs in order"
        );
        assert!(
            records
                .iter()
                .all(|r| r.key != Key::MAX && r.lsn != Lsn::MAX)
        );
        assert_eq!(encode(&records), body.to_vec(), "one encoding per body");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use layer_format::value::{Patch, encode_patches};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_fuzz_body_never_panics_on_noise(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            decode_arbitrary(&data);
        }

        #[test]
        fn the_fuzz_body_never_panics_on_mutated_bodies(
            n in 1u64..6,
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            cut in any::<prop::sample::Index>(),
            truncate in any::<bool>(),
        ) {
            let recs: Vec<Record> = (0..n).map(|i| delta(u128::from(i % 3), 5 + i)).collect();
            let mut data = vec![0, 0, 0, 0, 0, 0, 0, 1, 3];
            data.extend(encode(&recs));
            decode_arbitrary(&data);
            for (at, x) in edits {
                let i = at.index(data.len());
                data[i] = x;
            }
            if truncate {
                data.truncate(cut.index(data.len() + 1));
            }
            decode_arbitrary(&data);
        }
    }

    fn delta(k: u128, lsn: u64) -> Record {
        Record {
            key: Key::from_u128(k),
            lsn: Lsn(lsn),
            value: Value::Delta {
                will_init: true,
                record: encode_patches(&[Patch {
                    offset: 10,
                    bytes: b"abc",
                }]),
            },
        }
    }

    proptest! {
        /// The server's decoder reads back what the suites send (test-support's encoder,
        /// written from the brief), and the server's own encoder writes the same bytes.
        #[test]
        fn the_suites_encoder_and_the_servers_agree(
            first in 1u64..1_000_000,
            count in 1u64..60,
            keys in 1u128..20,
            delta_bytes in 1usize..=2000,
            seed in any::<u64>(),
        ) {
            let recs = test_support::workload::records(first, count, keys, delta_bytes, seed);
            let body = test_support::model::ingest_body(&recs);
            prop_assert_eq!(&body, &encode(&recs));
            prop_assert_eq!(decode(&Bytes::from(body), Lsn(first - 1), u64::MAX).unwrap(), recs);
        }
    }

    #[test]
    fn round_trip() {
        let recs = vec![
            delta(1, 5),
            delta(2, 5),
            Record {
                key: Key::from_u128(1),
                lsn: Lsn(6),
                value: Value::Image(Bytes::from(vec![1; PAGE_SIZE])),
            },
        ];
        assert_eq!(
            decode(&Bytes::from(encode(&recs)), Lsn(4), u64::MAX).unwrap(),
            recs
        );
    }

    #[test]
    fn every_malformation_names_its_offset() {
        let good = encode(&[delta(1, 5), delta(2, 6)]);
        let second = RECORD_HEADER_SIZE + 7;
        let check = |body: Vec<u8>, last: u64, offset: usize, needle: &str| {
            let e = decode(&Bytes::from(body), Lsn(last), u64::MAX).unwrap_err();
            assert_eq!(e.offset, offset, "{e}");
            assert!(e.message.contains(needle), "{e}");
        };
        check(Vec::new(), 0, 0, "empty body");
        check(
            good[..good.len() - 1].to_vec(),
            0,
            second,
            "runs past the end",
        );
        check(good[..second + 3].to_vec(), 0, second, "truncated header");
        check(
            good.clone(),
            5,
            0,
            "not above the timeline's last_record_lsn",
        );
        check(
            encode(&[delta(1, 6), delta(2, 5)]),
            0,
            second,
            "below the previous",
        );
        check(
            encode(&[delta(1, 6), delta(1, 6)]),
            0,
            second,
            "appears twice",
        );
        check(
            encode(&[Record {
                key: Key::MAX,
                ..delta(0, 5)
            }]),
            0,
            0,
            "reserved",
        );
        check(
            encode(&[Record {
                lsn: Lsn::MAX,
                ..delta(0, 5)
            }]),
            0,
            0,
            "reserved",
        );
        let mut bad_kind = good.clone();
        bad_kind[24] = 7;
        check(bad_kind, 0, 0, "unknown record kind 7");
        check(
            encode(&[Record {
                value: Value::Image(Bytes::from(vec![0; 100])),
                ..delta(1, 5)
            }]),
            0,
            0,
            "exactly 8192",
        );
        let outside = Value::Delta {
            will_init: false,
            record: Bytes::from_static(&[0x1f, 0xff, 0, 2, 1, 2]),
        };
        check(
            encode(&[
                delta(1, 5),
                Record {
                    value: outside,
                    ..delta(2, 6)
                },
            ]),
            0,
            second,
            "past 8192",
        );
        check(
            encode(&[Record {
                value: Value::Delta {
                    will_init: false,
                    record: Bytes::new(),
                },
                ..delta(1, 5)
            }]),
            0,
            0,
            "empty delta",
        );
    }

    /// Many records at one LSN: all distinct keys pass, and a repeat anywhere among them is
    /// found (the check keeps a set of the LSN's keys, linear in the body).
    #[test]
    fn many_records_at_one_lsn_and_a_repeat_among_them() {
        let mut recs: Vec<Record> = (0..20_000u128).map(|k| delta(k, 9)).collect();
        let body = Bytes::from(encode(&recs));
        assert_eq!(decode(&body, Lsn(1), u64::MAX).unwrap().len(), 20_000);
        recs.push(delta(12_345, 9));
        let err = decode(&Bytes::from(encode(&recs)), Lsn(1), u64::MAX).unwrap_err();
        assert!(err.message.contains("appears twice"), "{err}");
        // The same key at the next LSN is fine.
        recs.pop();
        recs.push(delta(12_345, 10));
        assert_eq!(
            decode(&Bytes::from(encode(&recs)), Lsn(1), u64::MAX)
                .unwrap()
                .len(),
            20_001
        );
    }

    /// The record limit: exactly `max` records pass, one more is refused at its offset.
    #[test]
    fn the_record_limit_is_exact() {
        let recs: Vec<Record> = (0..11u128).map(|k| delta(k, 9 + k as u64)).collect();
        let body = Bytes::from(encode(&recs[..10]));
        assert_eq!(decode(&body, Lsn(1), 10).unwrap().len(), 10);
        let all = Bytes::from(encode(&recs));
        let err = decode(&all, Lsn(1), 10).unwrap_err();
        assert!(err.message.contains("more than 10 records"), "{err}");
        assert_eq!(
            err.offset,
            body.len(),
            "names the first record over the limit"
        );
    }
}
