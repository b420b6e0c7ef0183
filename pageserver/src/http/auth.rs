//! JWT authentication of the HTTP API (brief section 6): which routes need a token, what each
//! scope opens, and the answers to a refused request. The tokens themselves are
//! [`crate::auth`]'s.
//!
//! With `http_auth_type = "JWT"` every request except `GET /v1/status` and `GET /metrics`
//! carries `Authorization: Bearer <JWT>`:
//!
//! * `{"scope": "pageserverapi"}`: every route;
//! * `{"scope": "tenant", "tenant_id": T}`: only `/v1/tenant/T/timeline` and the routes under it.
//!
//! Invariants:
//! * a missing, malformed, unsigned, wrongly signed or expired token is a 401, a valid token
//!   outside its scope a 403; each refusal is counted by reason;
//! * the decision depends on the request's method and path only, never on routing, so an
//!   unknown route needs a token too (nobody learns which routes exist without one).

use super::ApiError;
pub use crate::auth::{Claims, JwtAuth, sign};
use axum::http::{Method, StatusCode, header};
use index_part::names::TenantId;

/// Authenticates the `Authorization` header's value (401 if refused, counted by reason).
pub fn authenticate(auth: &JwtAuth, authorization: Option<&[u8]>) -> Result<Claims, ApiError> {
    auth.authenticate(authorization).map_err(|r| {
        crate::metrics::METRICS
            .auth_failures
            .with_label_values(&[r.reason])
            .inc();
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: r.message,
        }
    })
}

/// Whether `claims` allow `method` on `path` (403 if not).
pub fn authorize(claims: &Claims, path: &str) -> Result<(), ApiError> {
    let forbidden = |message: String| {
        crate::metrics::METRICS
            .auth_failures
            .with_label_values(&["scope"])
            .inc();
        ApiError {
            status: StatusCode::FORBIDDEN,
            message,
        }
    };
    match (claims.scope.as_str(), claims.tenant_id.as_deref()) {
        ("pageserverapi", _) => Ok(()),
        ("tenant", Some(t)) => {
            let Ok(tenant) = t.parse::<TenantId>() else {
                return Err(forbidden(format!(
                    "the token's tenant_id {t:?} is not a tenant id"
                )));
            };
            let prefix = format!("/v1/tenant/{tenant}/timeline");
            let under = path
                .strip_prefix(&prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
            if under {
                Ok(())
            } else {
                Err(forbidden(format!(
                    "a token of tenant {tenant} allows only {prefix} and the routes under it"
                )))
            }
        }
        ("tenant", None) => Err(forbidden("a tenant token without tenant_id".into())),
        (other, _) => Err(forbidden(format!(
            "scope {other:?} does not allow this API"
        ))),
    }
}

/// The routes any client may call: health and metrics (GET, and HEAD for health checks).
pub fn is_open(method: &Method, path: &str) -> bool {
    (*method == Method::GET || *method == Method::HEAD)
        && (path == "/v1/status" || path == "/metrics")
}

/// The middleware: authenticates and authorizes every request that is not open.
pub async fn require_token(
    axum::extract::State(auth): axum::extract::State<std::sync::Arc<JwtAuth>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if is_open(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    let checked =
        authenticate(&auth, header).and_then(|claims| authorize(&claims, req.uri().path()));
    match checked {
        Ok(()) => next.run(req).await,
        Err(e) => {
            let mut response = e.into_response();
            if response.status() == StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    axum::http::HeaderValue::from_static("Bearer"),
                );
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(scope: &str, tenant: Option<&str>) -> Claims {
        Claims {
            scope: scope.into(),
            tenant_id: tenant.map(str::to_string),
            exp: None,
        }
    }

    const T: &str = "0123456789abcdef0123456789abcdef";
    const U: &str = "00000000000000000000000000000001";

    #[test]
    fn scopes() {
        let api = claims("pageserverapi", None);
        let tenant = claims("tenant", Some(T));
        for path in ["/v1/tenant", "/v1/failpoints", "/nothing"] {
            assert!(authorize(&api, path).is_ok());
            assert_eq!(
                authorize(&tenant, path).unwrap_err().status,
                StatusCode::FORBIDDEN
            );
        }
        for ok in [
            format!("/v1/tenant/{T}/timeline"),
            format!("/v1/tenant/{T}/timeline/x/ingest"),
        ] {
            assert!(authorize(&tenant, &ok).is_ok(), "{ok}");
        }
        for denied in [
            format!("/v1/tenant/{T}"),
            format!("/v1/tenant/{T}/reset"),
            format!("/v1/tenant/{T}/timelinex"),
            format!("/v1/tenant/{U}/timeline"),
            format!("/v1/tenant/{}/timeline", T.to_uppercase()),
        ] {
            assert_eq!(
                authorize(&tenant, &denied).unwrap_err().status,
                StatusCode::FORBIDDEN,
                "{denied}"
            );
        }
        assert!(authorize(&claims("tenant", None), "/v1/tenant/x/timeline").is_err());
        assert!(authorize(&claims("tenant", Some("zz")), "/v1/tenant/zz/timeline").is_err());
        assert!(authorize(&claims("admin", None), "/v1/tenant").is_err());
    }

    #[test]
    fn only_status_and_metrics_are_open() {
        assert!(is_open(&Method::GET, "/v1/status"));
        assert!(is_open(&Method::GET, "/metrics"));
        assert!(is_open(&Method::HEAD, "/v1/status"));
        assert!(!is_open(&Method::POST, "/v1/status"));
        assert!(!is_open(&Method::GET, "/v1/status/"));
        assert!(!is_open(&Method::GET, "/v1/tenant"));
    }
}
