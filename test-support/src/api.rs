//! The calls and checks every suite makes through the HTTP API, whichever way it reaches the
//! server: in process through the router (`pageserver`'s tests) or over loopback to the real
//! binary (`test_runner`). A suite's server type implements [`PageApi`]; everything else here
//! is written once on top of it.
//!
//! Invariant: a check compares the server's answer with the model and nothing else; any
//! answer but the model's page with 200, or 404 where the model has no record, fails it
//! (a 500, a connection failure as status 0, or a wrong page alike).

use crate::model::{Model, ingest_body};
use bytes::Bytes;
use http::Method;
use layer_format::{Key, Lsn, Record};
use std::future::Future;

/// The tenant every suite uses.
pub const TENANT: &str = "0123456789abcdef0123456789abcdef";
/// The timeline every suite uses.
pub const TIMELINE: &str = "fedcba9876543210fedcba9876543210";

/// A page server's HTTP API as a suite reaches it.
pub trait PageApi: Sync {
    /// Sends `method path` with `body`: the answer's status (0 if the connection failed, as
    /// when the process is gone) and body.
    fn send(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> impl Future<Output = (u16, Bytes)> + Send;
}

/// The path of the suites' timeline, plus `rest`.
pub fn timeline_path(rest: &str) -> String {
    format!("/v1/tenant/{TENANT}/timeline/{TIMELINE}{rest}")
}

/// Creates the suites' tenant and timeline; an error names the answer that was not a 201.
pub async fn setup(api: &impl PageApi) -> anyhow::Result<()> {
    let tenant = serde_json::json!({ "tenant_id": TENANT }).to_string();
    let timeline = serde_json::json!({ "timeline_id": TIMELINE }).to_string();
    for (path, body) in [
        ("/v1/tenant".to_string(), tenant),
        (format!("/v1/tenant/{TENANT}/timeline"), timeline),
    ] {
        let (status, answer) = api.send(Method::POST, &path, body.into_bytes()).await;
        if status != 201 {
            anyhow::bail!("POST {path}: {status} {}", String::from_utf8_lossy(&answer));
        }
    }
    Ok(())
}

/// `POST` of `records` to the suites' timeline's ingest (after `query`, empty or `?...`).
pub async fn ingest(api: &impl PageApi, records: &[Record], query: &str) -> (u16, Bytes) {
    api.send(
        Method::POST,
        &timeline_path(&format!("/ingest{query}")),
        ingest_body(records),
    )
    .await
}

/// The page of `key` at `lsn` in the suites' timeline.
pub async fn page(api: &impl PageApi, key: Key, lsn: Lsn) -> (u16, Bytes) {
    api.send(
        Method::GET,
        &timeline_path(&format!("/page?key={key}&lsn={lsn}")),
        Vec::new(),
    )
    .await
}

/// Parses an LSN field of a JSON answer.
pub fn lsn_of(v: &serde_json::Value, field: &str) -> Lsn {
    v[field]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{field} in {v}"))
}

/// Reads `key` at `lsn` and compares with the model: the page, or 404 where the model has
/// no record. A failure names `when` (what the suite was doing; may be empty), the point and
/// the server's answer.
pub async fn check_page(api: &impl PageApi, model: &Model, key: Key, lsn: Lsn, when: &str) {
    let (status, body) = page(api, key, lsn).await;
    let answer = || {
        if status == 200 {
            format!("200 with {} bytes", body.len())
        } else {
            format!("{status} {}", String::from_utf8_lossy(&body))
        }
    };
    match model.page(key, lsn) {
        Some(want) => {
            assert!(
                status == 200 && body == want,
                "{when} ({key}, {lsn}): the model has a page the server does not return: {}",
                answer()
            );
        }
        None => assert!(
            status == 404,
            "{when} ({key}, {lsn}): the model has no record; the server: {}",
            answer()
        ),
    }
}

/// Reads every key below `keys` at every LSN of `lsns` and compares with the model.
pub async fn check_pages(api: &impl PageApi, model: &Model, keys: u128, lsns: &[u64]) {
    for k in 0..keys {
        for &l in lsns {
            check_page(api, model, Key::from_u128(k), Lsn(l), "").await;
        }
    }
}

/// Reads every page version the model has at or below `upto` (each key at the LSN of each of
/// its records, and at `upto` itself) and compares with the model. Returns the reads made.
pub async fn check_every_version(
    api: &impl PageApi,
    model: &Model,
    keys: u128,
    upto: Lsn,
) -> usize {
    check_versions_between(api, model, keys, Lsn(0), upto).await
}

/// [`check_every_version`] for the versions at or above `from` (a GC cutoff: reads below it
/// are refused), and every key at `from` too. Returns the reads made.
pub async fn check_versions_between(
    api: &impl PageApi,
    model: &Model,
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
        check_page(api, model, key, lsn, "").await;
    }
    points.len()
}
