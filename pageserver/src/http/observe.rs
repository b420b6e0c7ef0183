//! The span and latency of every request.
//!
//! Every request runs in a `request` span that carries `tenant_id` and `timeline_id` when its
//! path names them, so every log line of its work does too (in JSON logs as fields, in plain
//! logs in the line's prefix). Its duration goes to `pageserver_http_request_seconds` under the
//! route's template; a path that matches no route counts as `other`, and so does a method
//! outside the standard ones, so that a client cannot grow the number of series.

use axum::http::Method;
use axum::response::Response;
use tracing::Instrument;

/// The route template of `path` as `super::route_table` spells it, with the ids of the path
/// in their own slots; `None` if no route has this shape.
pub fn classify<'p>(
    method: &Method,
    path: &'p str,
) -> (Option<&'static str>, Option<&'p str>, Option<&'p str>) {
    let segments: Vec<&str> = path.split('/').collect();
    // ["", "v1", "tenant", T, "timeline", TL, ...]
    let tenant =
        (segments.len() > 3 && segments[1] == "v1" && segments[2] == "tenant").then(|| segments[3]);
    let timeline =
        (tenant.is_some() && segments.len() > 5 && segments[4] == "timeline").then(|| segments[5]);
    let mut shape: Vec<&str> = segments.clone();
    if tenant.is_some() {
        shape[3] = "{tenant_id}";
    }
    if timeline.is_some() {
        shape[5] = "{timeline_id}";
    }
    let shape = shape.join("/");
    let route = super::route_table()
        .iter()
        .find(|(m, p)| m == method && *p == shape)
        .map(|(_, p)| *p);
    (route, tenant, timeline)
}

/// The middleware.
pub async fn observe(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let (route, tenant, timeline) = classify(&method, &path);
    let span = tracing::info_span!(
        "request",
        method = %method,
        route = route.unwrap_or("other"),
        tenant_id = tracing::field::Empty,
        timeline_id = tracing::field::Empty,
    );
    // Only ids of the right shape: a path is the client's text.
    let is_id = |s: &str| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit());
    if let Some(t) = tenant.filter(|t| is_id(t)) {
        span.record("tenant_id", t);
    }
    if let Some(tl) = timeline.filter(|tl| is_id(tl)) {
        span.record("timeline_id", tl);
    }
    let response = next.run(req).instrument(span.clone()).await;
    let status = response.status();
    let elapsed = started.elapsed();
    // The method is the client's text too (any token is a method to HTTP).
    let method_label = match method {
        Method::GET
        | Method::HEAD
        | Method::POST
        | Method::PUT
        | Method::DELETE
        | Method::PATCH
        | Method::OPTIONS => method.as_str(),
        _ => "other",
    };
    crate::metrics::METRICS
        .http_request_seconds
        .with_label_values(&[method_label, route.unwrap_or("other"), status.as_str()])
        .observe(elapsed.as_secs_f64());
    span.in_scope(|| {
        // 503 is the shutdown's expected answer, not a failure.
        if status.is_server_error() && status != axum::http::StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(
                status = status.as_u16(),
                elapsed_ms = elapsed.as_millis() as u64,
                "request failed"
            );
        } else {
            tracing::debug!(
                status = status.as_u16(),
                elapsed_ms = elapsed.as_millis() as u64,
                "request done"
            );
        }
    });
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_classified_by_their_template() {
        let t = "0123456789abcdef0123456789abcdef";
        let tl = "fedcba9876543210fedcba9876543210";
        assert_eq!(
            classify(
                &Method::POST,
                &format!("/v1/tenant/{t}/timeline/{tl}/ingest")
            ),
            (
                Some("/v1/tenant/{tenant_id}/timeline/{timeline_id}/ingest"),
                Some(t),
                Some(tl)
            )
        );
        assert_eq!(
            classify(&Method::POST, &format!("/v1/tenant/{t}/timeline")),
            (Some("/v1/tenant/{tenant_id}/timeline"), Some(t), None)
        );
        assert_eq!(classify(&Method::GET, "/metrics").0, Some("/metrics"));
        assert_eq!(classify(&Method::DELETE, "/metrics").0, None);
        assert_eq!(classify(&Method::GET, "/v1/tenant/x/y/z").0, None);
    }
}
