//! The timeline routes: create, info, ingest, page, checkpoint, compaction, GC, layers and
//! their drawing.

use super::*;
use crate::http::answers::{LayerInfo, TimelineInfo};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTimeline {
    timeline_id: String,
}

pub(super) async fn create_timeline(
    State(s): State<Arc<PageServer>>,
    Path(t): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let t = tenant_id(&t)?;
    let req: CreateTimeline = json_body(&body)?;
    let tl = timeline_id(&req.timeline_id)?;
    let span = tracing::info_span!("create_timeline", tenant_id = %t, timeline_id = %tl);
    let timeline = s.tenants.create_timeline(t, tl).instrument(span).await?;
    Ok((
        StatusCode::CREATED,
        Json(TimelineInfo::from(timeline.status())),
    )
        .into_response())
}

pub(super) async fn timeline_info(
    State(s): State<Arc<PageServer>>,
    Path((t, tl)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (_, timeline) = lookup(&s, &t, &tl)?;
    Ok(Json(TimelineInfo::from(timeline.status())).into_response())
}

pub(super) async fn ingest(
    State(s): State<Arc<PageServer>>,
    Path((t, tl)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let timeline = lookup_active(&s, &t, &tl)?;
    let incarnation = match q.get("incarnation") {
        None => None,
        Some(v) => Some(
            v.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("incarnation={v:?} is not a number")))?,
        ),
    };
    let body = read_limited(headers, body, s.conf.max_ingest_body, "max_ingest_body").await?;
    let span = tracing::debug_span!("ingest", tenant_id = %timeline.tenant_id, timeline_id = %timeline.timeline_id);
    let lsn = on_timeline(
        &timeline,
        "ingest",
        span,
        crate::metrics::timed(
            "ingest",
            timeline.ingest_decoded(
                |last| super::wire::decode(&body, last, s.conf.max_ingest_records),
                incarnation,
            ),
        ),
    )
    .await?
    .map_err(|e| match e {
        IngestFailure::Malformed(e) => ApiError::bad_request(e.to_string()),
        IngestFailure::ShuttingDown => ApiError::shutting_down(),
        IngestFailure::Stopped | IngestFailure::Reloaded { .. } | IngestFailure::Broken(_) => {
            ApiError::conflict(e.to_string())
        }
    })?;
    crate::metrics::METRICS
        .ingest_bytes
        .inc_by(body.len() as u64);
    Ok(Json(serde_json::json!({ "last_record_lsn": lsn.to_string(), "incarnation": timeline.incarnation })).into_response())
}

pub(super) async fn get_page(
    State(s): State<Arc<PageServer>>,
    Path((t, tl)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let timeline = lookup_active(&s, &t, &tl)?;
    let key: Key = q
        .get("key")
        .ok_or_else(|| ApiError::bad_request("missing query parameter key"))?
        .parse()
        .map_err(|e: layer_format::ParseKeyError| ApiError::bad_request(e.to_string()))?;
    if key == Key::MAX {
        return Err(ApiError::bad_request("key ffff...ff is reserved"));
    }
    let lsn: Lsn = q
        .get("lsn")
        .ok_or_else(|| ApiError::bad_request("missing query parameter lsn"))?
        .parse()
        .map_err(|e: layer_format::ParseKeyError| ApiError::bad_request(e.to_string()))?;
    let span = tracing::debug_span!("get_page", tenant_id = %timeline.tenant_id, timeline_id = %timeline.timeline_id);
    let read = crate::metrics::timed("get_page", timeline.get_page(key, lsn));
    match on_timeline(&timeline, "get_page", span, read).await? {
        Ok(page) => {
            Ok(([(header::CONTENT_TYPE, "application/octet-stream")], page).into_response())
        }
        Err(e @ (ReadError::LsnAhead { .. } | ReadError::BelowGcCutoff { .. })) => {
            Err(ApiError::bad_request(e.to_string()))
        }
        Err(e @ ReadError::NotFound { .. }) => Err(ApiError::not_found(e.to_string())),
        Err(e) => Err(ApiError::internal(&anyhow::Error::new(e))),
    }
}

pub(super) async fn checkpoint(
    State(s): State<Arc<PageServer>>,
    Path((t, tl)): Path<(String, String)>,
) -> ApiResult<Response> {
    let timeline = lookup_active(&s, &t, &tl)?;
    let span = tracing::info_span!("checkpoint", tenant_id = %timeline.tenant_id, timeline_id = %timeline.timeline_id);
    on_timeline(&timeline, "checkpoint", span, timeline.checkpoint())
        .await?
        .map_err(|e| ApiError::internal(&e))?;
    Ok(Json(TimelineInfo::from(timeline.status())).into_response())
}

pub(super) async fn compact(
    State(s): State<Arc<PageServer>>,
    Path((t, tl)): Path<(String, String)>,
) -> ApiResult<Response> {
    let timeline = lookup_active(&s, &t, &tl)?;
    let span = tracing::info_span!("compact", tenant_id = %timeline.tenant_id, timeline_id = %timeline.timeline_id);
    let result = on_timeline(&timeline, "compaction", span, timeline.compact())
        .await?
        .map_err(|e| ApiError::internal(&e))?;
    Ok(Json(result).into_response())
}

pub(super) async fn gc(
    State(s): State<Arc<PageServer>>,
    Path((t, tl)): Path<(String, String)>,
) -> ApiResult<Response> {
    let timeline = lookup_active(&s, &t, &tl)?;
    let span = tracing::info_span!("gc", tenant_id = %timeline.tenant_id, timeline_id = %timeline.timeline_id);
    let removed = on_timeline(&timeline, "gc", span, async { timeline.gc() })
        .await?
        .map_err(|e| ApiError::internal(&e))?;
    Ok(Json(serde_json::json!({
        "removed": removed,
        "gc_cutoff_lsn": timeline.gc_cutoff_lsn().to_string(),
    }))
    .into_response())
}

pub(super) async fn layers(
    State(s): State<Arc<PageServer>>,
    Path((t, tl)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (_, timeline) = lookup(&s, &t, &tl)?;
    Ok(Json(serde_json::json!({ "layers": timeline.layer_list().into_iter().map(LayerInfo::from).collect::<Vec<_>>() })).into_response())
}

pub(super) async fn layer_map_svg(
    State(s): State<Arc<PageServer>>,
    Path((t, tl)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (_, timeline) = lookup(&s, &t, &tl)?;
    let svg = timeline.layer_map_svg();
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}
