//! The routes for operations: metrics, and the failpoints of builds for tests.

use super::*;

#[cfg(feature = "testing")]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FailpointConfig {
    name: String,
    actions: String,
}

#[cfg(feature = "testing")]
pub(super) async fn failpoints(body: Bytes) -> ApiResult<Response> {
    if !crate::failpoints::enabled() {
        return Err(ApiError::not_found(
            "failpoints are only available in builds with the testing feature",
        ));
    }
    let list: Vec<FailpointConfig> = json_body(&body)?;
    for fp in list {
        crate::failpoints::configure(&fp.name, &fp.actions)
            .map_err(|e| ApiError::bad_request(format!("failpoint {}: {e}", fp.name)))?;
        tracing::info!(name = fp.name, actions = fp.actions, "failpoint configured");
    }
    Ok(Json(serde_json::json!({})).into_response())
}

/// The failpoints configured with `pause`: evaluations and threads waiting at each.
#[cfg(feature = "testing")]
pub(super) async fn failpoint_pauses() -> ApiResult<Response> {
    if !crate::failpoints::enabled() {
        return Err(ApiError::not_found(
            "failpoints are only available in builds with the testing feature",
        ));
    }
    let list: Vec<serde_json::Value> = crate::failpoints::paused()
        .into_iter()
        .map(|p| serde_json::json!({ "name": p.name, "hits": p.hits, "waiting": p.waiting }))
        .collect();
    Ok(Json(serde_json::json!({ "paused": list })).into_response())
}

pub(super) async fn metrics(State(s): State<Arc<PageServer>>) -> Response {
    use crate::lock::MutexExt;
    // lost+found/ of the live timelines: one directory read each, off the async threads.
    let dirs: Vec<std::path::PathBuf> = s
        .tenants
        .list()
        .iter()
        .flat_map(|t| t.timelines())
        .map(|tl| tl.dir.clone())
        .collect();
    let scanned = tokio::task::spawn_blocking(move || {
        let (mut files, mut bytes) = (0u64, 0u64);
        for d in dirs {
            match crate::timeline::lost_found::list(&d) {
                Ok(entries) => {
                    files += entries.len() as u64;
                    bytes += entries.iter().map(|e| e.size).sum::<u64>();
                }
                Err(e) => tracing::warn!(dir = %d.display(), "read lost+found: {e}"),
            }
        }
        (files, bytes)
    })
    .await;
    let m = &crate::metrics::METRICS;
    let _scrape = m.scrape.lock_unpoisoned();
    if let Ok((files, bytes)) = scanned {
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        m.lost_found
            .with_label_values(&["files"])
            .set(as_i64(files));
        m.lost_found
            .with_label_values(&["bytes"])
            .set(as_i64(bytes));
    }
    let tenants = s.tenants.list();
    // The page cache's counters live in the cache; bring the metrics up to them.
    let cache = crate::page_cache::get().stats();
    let catch_up = |c: &prometheus::IntCounter, now: u64| c.inc_by(now.saturating_sub(c.get()));
    catch_up(
        &m.page_cache_lookups.with_label_values(&["hit"]),
        cache.hits,
    );
    catch_up(
        &m.page_cache_lookups.with_label_values(&["miss"]),
        cache.misses,
    );
    catch_up(&m.page_cache_evictions, cache.evictions);
    m.page_cache_bytes
        .set(i64::try_from(cache.bytes).unwrap_or(i64::MAX));
    // Per-timeline gauges from the live timelines only: a detached one has none.
    m.timeline_lsn.reset();
    m.upload_queue_operations.reset();
    m.upload_queue_bytes.reset();
    for tl in tenants.iter().flat_map(|t| t.timelines()) {
        let (t, id) = (tl.tenant_id.to_string(), tl.timeline_id.to_string());
        let info = tl.lsns_and_queue();
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        for (kind, lsn) in [
            ("last_record", info.last_record),
            ("disk_consistent", info.disk_consistent),
            ("remote_consistent", info.remote_consistent),
        ] {
            m.timeline_lsn
                .with_label_values(&[t.as_str(), id.as_str(), kind])
                .set(as_i64(lsn.0));
        }
        m.upload_queue_operations
            .with_label_values(&[t.as_str(), id.as_str()])
            .set(as_i64(info.queued_operations as u64));
        m.upload_queue_bytes
            .with_label_values(&[t.as_str(), id.as_str()])
            .set(as_i64(info.queued_bytes as u64));
    }
    let broken_tenants = tenants
        .iter()
        .filter(|t| t.broken_reason().is_some())
        .count();
    let broken_timelines: usize = tenants
        .iter()
        .map(|t| {
            t.timelines()
                .iter()
                .filter(|tl| tl.broken_reason().is_some())
                .count()
        })
        .sum();
    m.broken_now
        .with_label_values(&["tenant"])
        .set(i64::try_from(broken_tenants).unwrap_or(i64::MAX));
    m.broken_now
        .with_label_values(&["timeline"])
        .set(i64::try_from(broken_timelines).unwrap_or(i64::MAX));
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        m.encode(),
    )
        .into_response()
}
