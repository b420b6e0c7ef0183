//! The HTTP API (brief section 6; documented in docs/http-api.md).
//!
//! Ids in paths are parsed before anything else, so a malformed id (or a path-traversal
//! attempt) is a 400 that never reaches a path or an object key. Request bodies are read as
//! bytes and parsed here, so that every error is the JSON `{"error"}` shape.

pub mod answers;
pub mod auth;
mod error;
mod observe;
mod ops;
mod tenants;
mod timelines;
pub mod wire;

pub use error::ApiError;

use crate::server::PageServer;
use crate::tenant::Tenant;
use crate::timeline::{IngestFailure, ReadError, Timeline};
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post, put};
use axum::{Json, Router};
use index_part::names::{TenantId, TimelineId};
use layer_format::{Key, Lsn};
use ops::metrics;
#[cfg(feature = "testing")]
use ops::{failpoint_pauses, failpoints};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use tenants::{
    attach_tenant, create_tenant, detach_tenant, list_tenants, reset_tenant, tenant_info,
};
use timelines::{
    checkpoint, compact, create_timeline, gc, get_page, ingest, layer_map_svg, layers,
    timeline_info,
};
use tracing::Instrument;

type ApiResult<T> = Result<T, ApiError>;

/// Every route the server serves: method, path template, handler. The OpenAPI document
/// (`openapi.yaml`, served at `GET /v1/openapi.yaml`) describes exactly these; a test checks it.
fn routes() -> Vec<(Method, &'static str, MethodRouter<Arc<PageServer>>)> {
    #[allow(unused_mut)]
    let mut routes = vec![
        (Method::GET, "/v1/status", get(status)),
        (Method::GET, "/v1/openapi.yaml", get(openapi)),
        (Method::POST, "/v1/tenant", post(create_tenant)),
        (Method::GET, "/v1/tenant", get(list_tenants)),
        (Method::GET, "/v1/tenant/{tenant_id}", get(tenant_info)),
        (
            Method::POST,
            "/v1/tenant/{tenant_id}/attach",
            post(attach_tenant),
        ),
        (
            Method::POST,
            "/v1/tenant/{tenant_id}/detach",
            post(detach_tenant),
        ),
        (
            Method::POST,
            "/v1/tenant/{tenant_id}/reset",
            post(reset_tenant),
        ),
        (
            Method::POST,
            "/v1/tenant/{tenant_id}/timeline",
            post(create_timeline),
        ),
        (
            Method::GET,
            "/v1/tenant/{tenant_id}/timeline/{timeline_id}",
            get(timeline_info),
        ),
        (
            Method::POST,
            "/v1/tenant/{tenant_id}/timeline/{timeline_id}/ingest",
            post(ingest).layer(DefaultBodyLimit::disable()),
        ),
        (
            Method::GET,
            "/v1/tenant/{tenant_id}/timeline/{timeline_id}/page",
            get(get_page),
        ),
        (
            Method::PUT,
            "/v1/tenant/{tenant_id}/timeline/{timeline_id}/checkpoint",
            put(checkpoint),
        ),
        (
            Method::PUT,
            "/v1/tenant/{tenant_id}/timeline/{timeline_id}/compact",
            put(compact),
        ),
        (
            Method::GET,
            "/v1/tenant/{tenant_id}/timeline/{timeline_id}/layer",
            get(layers),
        ),
        (
            Method::GET,
            "/v1/tenant/{tenant_id}/timeline/{timeline_id}/layer_map.svg",
            get(layer_map_svg),
        ),
        (
            Method::PUT,
            "/v1/tenant/{tenant_id}/timeline/{timeline_id}/gc",
            put(gc),
        ),
        (Method::GET, "/metrics", get(metrics)),
    ];
    // Failpoints can make the process exit or panic: only builds for tests have the routes.
    #[cfg(feature = "testing")]
    routes.extend([
        (Method::PUT, "/v1/failpoints", put(failpoints)),
        (Method::GET, "/v1/failpoints", get(failpoint_pauses)),
    ]);
    routes
}

/// The (method, path template) pairs the router serves.
pub fn route_table() -> &'static [(Method, &'static str)] {
    static TABLE: std::sync::LazyLock<Vec<(Method, &'static str)>> =
        std::sync::LazyLock::new(|| routes().into_iter().map(|(m, p, _)| (m, p)).collect());
    &TABLE
}

/// The API router: the routes, then (innermost first) the shutdown gate, authentication,
/// the panic and rejection shaper, and the span and latency of every request.
pub fn router(server: Arc<PageServer>) -> Router {
    router_with(server, Router::new())
}

/// [`router`] with `extra` routes served under the same layers: the benchmarks measure what
/// the framework and the layers cost with a route of their own that does no work.
pub fn router_with(server: Arc<PageServer>, extra: Router<Arc<PageServer>>) -> Router {
    let mut router = extra;
    for (_, path, handler) in routes() {
        // Two methods of one path merge into one method router.
        router = router.route(path, handler);
    }
    let mut router = router
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(axum::middleware::from_fn_with_state(
            server.clone(),
            shutdown_gate,
        ));
    if let Some(auth) = &server.auth {
        router = router.layer(axum::middleware::from_fn_with_state(
            auth.clone(),
            auth::require_token,
        ));
    }
    router
        .layer(axum::middleware::from_fn(catch_panics))
        .layer(axum::middleware::from_fn(observe::observe))
        .with_state(server)
}

/// While the server shuts down, a request that changes state (any method but GET and HEAD)
/// answers 503; one admitted before is waited for by the shutdown. The admission is in the
/// request's extensions, so that work a handler hands to a task of its own (detach, reset)
/// keeps it after the client goes away.
async fn shutdown_gate(
    State(s): State<Arc<PageServer>>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let reads = req.method() == Method::GET || req.method() == Method::HEAD;
    // The failpoint routes of test builds stay usable: a test releases a paused upload with
    // them while the server shuts down.
    if reads || req.uri().path() == "/v1/failpoints" {
        return next.run(req).await;
    }
    let Some(admitted) = s.gate.enter() else {
        return ApiError::shutting_down().into_response();
    };
    let admitted = Arc::new(admitted);
    req.extensions_mut().insert(admitted.clone());
    let response = next.run(req).await;
    drop(admitted);
    response
}

/// Every answer's shape (brief section 6): a handler that panics is answered 500 JSON and
/// counted (the connection, the other requests and the shared state are unaffected; a
/// timeline's own work is caught earlier, by [`on_timeline`], which also marks the timeline
/// broken), and a rejection the framework made itself (wrong method, a body it refused) gets
/// the `{"error"}` JSON shape with its status kept.
async fn catch_panics(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use futures::FutureExt;
    let what = format!("{} {}", req.method(), req.uri().path());
    // A rejected request's body may be left unread, and then the connection cannot carry
    // another request: say so, so that the client does not send its next one on it.
    let has_body = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0")
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    let mut response = match std::panic::AssertUnwindSafe(next.run(req))
        .catch_unwind()
        .await
    {
        Ok(response) => response,
        Err(payload) => {
            crate::metrics::METRICS.request_panics.inc();
            let message = crate::timeline::panic_message(&*payload);
            return ApiError::internal(&anyhow::anyhow!("{what} panicked: {message}"))
                .into_response();
        }
    };
    let status = response.status();
    if has_body && (status.is_client_error() || status.is_server_error()) {
        response.headers_mut().insert(
            header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let text = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        format!(
            "{what}: {}",
            status.canonical_reason().unwrap_or("rejected")
        )
    } else {
        format!("{what}: {text}")
    };
    let mut rewritten = ApiError { status, message }.into_response();
    if has_body {
        rewritten.headers_mut().insert(
            header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    rewritten
}

fn tenant_id(s: &str) -> ApiResult<TenantId> {
    s.parse()
        .map_err(|e: index_part::names::ParseNameError| ApiError::bad_request(e.to_string()))
}

fn timeline_id(s: &str) -> ApiResult<TimelineId> {
    s.parse()
        .map_err(|e: index_part::names::ParseNameError| ApiError::bad_request(e.to_string()))
}

/// Reads a request body of at most `limit` bytes (the setting `setting`); a larger one is a
/// 413, refused from its `Content-Length` before it is read when the client sends one.
async fn read_limited(
    headers: axum::http::HeaderMap,
    body: Body,
    limit: u64,
    setting: &str,
) -> ApiResult<Bytes> {
    let too_large = || ApiError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        message: format!("request body over {limit} bytes ({setting})"),
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let limit_usize = usize::try_from(limit).unwrap_or(usize::MAX);
    axum::body::to_bytes(body, limit_usize).await.map_err(|e| {
        let over = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if over {
            too_large()
        } else {
            ApiError::bad_request(format!("request body unreadable: {e}"))
        }
    })
}

fn json_body<T: for<'de> Deserialize<'de>>(body: &Bytes) -> ApiResult<T> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

fn lookup(server: &PageServer, t: &str, tl: &str) -> ApiResult<(Arc<Tenant>, Arc<Timeline>)> {
    let (t, tl) = (tenant_id(t)?, timeline_id(tl)?);
    let tenant = server.tenants.get(t)?;
    if let Some(reason) = tenant.broken_reason() {
        return Err(ApiError::conflict(format!(
            "tenant {t} is broken: {reason}; reset or detach it"
        )));
    }
    let timeline = tenant
        .timeline(tl)
        .ok_or_else(|| ApiError::not_found(format!("timeline {tl} not found")))?;
    Ok((tenant, timeline))
}

/// [`lookup`] for the routes that read or change data: a broken timeline is a 409.
fn lookup_active(server: &PageServer, t: &str, tl: &str) -> ApiResult<Arc<Timeline>> {
    let (_, timeline) = lookup(server, t, tl)?;
    match timeline.broken_reason() {
        None => Ok(timeline),
        Some(reason) => Err(ApiError::conflict(format!(
            "timeline {} is broken: {reason}; reset or detach the tenant",
            timeline.timeline_id
        ))),
    }
}

/// Runs a request's work on `timeline`: a panic inside marks the timeline broken and is a 500,
/// and nothing else of the node is affected.
async fn on_timeline<F: std::future::Future>(
    timeline: &Timeline,
    what: &str,
    span: tracing::Span,
    op: F,
) -> ApiResult<F::Output> {
    timeline
        .guarded(what, op.instrument(span))
        .await
        .map_err(|e| ApiError::internal(&anyhow::Error::new(e)))
}

async fn status(State(s): State<Arc<PageServer>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "id": s.conf.id,
        "version": env!("CARGO_PKG_VERSION"),
        "revision": crate::BUILD_REVISION,
        "shutting_down": s.gate.is_closing(),
    }))
}

/// The OpenAPI 3 document of this API.
pub const OPENAPI_YAML: &str = include_str!("openapi.yaml");

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI_YAML).into_response()
}
