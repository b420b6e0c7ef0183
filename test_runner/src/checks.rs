//! Reads through the API compared with the reference model.

use crate::server::Pageserver;
use layer_format::{Key, Lsn};

/// Parses an LSN field of a JSON answer.
pub fn lsn_of(v: &serde_json::Value, field: &str) -> Lsn {
    v[field]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{field} in {v}"))
}

/// Reads every key below `keys` at every LSN of `lsns` and compares with the model: the page,
/// or 404 where the model has no record.
pub async fn check_pages(ps: &Pageserver, model: &crate::model::Model, keys: u128, lsns: &[u64]) {
    for k in 0..keys {
        for &l in lsns {
            let (key, lsn) = (Key::from_u128(k), Lsn(l));
            match (ps.page(key, lsn).await, model.page(key, lsn)) {
                (Ok(got), Some(want)) => assert!(got == want, "({k}, {l}) differs from the model"),
                (Err(e), None) => assert_eq!(e.status, 404, "({k}, {l}): {e:?}"),
                (got, want) => panic!(
                    "({k}, {l}): server {got:?}, model has a page: {}",
                    want.is_some()
                ),
            }
        }
    }
}

/// Reads every page version the model has at or below `upto` (each key at the LSN of each of
/// its records, and at `upto` itself) and compares with the model. Returns the reads made.
pub async fn check_every_version(
    ps: &Pageserver,
    model: &crate::model::Model,
    keys: u128,
    upto: Lsn,
) -> usize {
    check_versions_between(ps, model, keys, Lsn(0), upto).await
}

/// [`check_every_version`] for the versions at or above `from` (a GC cutoff: reads below it
/// are refused), and every key at `from` too.
pub async fn check_versions_between(
    ps: &Pageserver,
    model: &crate::model::Model,
    keys: u128,
    from: Lsn,
    upto: Lsn,
) -> usize {
    let mut points: Vec<(Key, Lsn)> = model
        .keys_and_lsns()
        .filter(|(_, l)| *l <= upto && *l >= from)
        .collect();
    points.extend((0..keys).map(|k| (Key::from_u128(k), upto)));
    if from.0 > 0 {
        points.extend((0..keys).map(|k| (Key::from_u128(k), from)));
    }
    for &(key, lsn) in &points {
        match (ps.page(key, lsn).await, model.page(key, lsn)) {
            (Ok(got), Some(want)) => assert!(got == want, "({key}, {lsn}) differs from the model"),
            (Err(e), None) => assert_eq!(e.status, 404, "({key}, {lsn}): {e:?}"),
            (got, want) => panic!(
                "({key}, {lsn}): server {:?}, model has a page: {}",
                got.map(|b| b.len()),
                want.is_some()
            ),
        }
    }
    points.len()
}
