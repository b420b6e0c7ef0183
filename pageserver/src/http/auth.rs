//! JWT authentication of the HTTP API (brief section 6, Neon's conventions).
//!
//! With `http_auth_type = "JWT"` every request except `GET /v1/status` and `GET /metrics`
//! carries `Authorization: Bearer <JWT>`, signed with EdDSA (Ed25519) by the holder of the
//! private half of `auth_validation_public_key_path`. Claims:
//!
//! * `{"scope": "pageserverapi"}`: every route;
//! * `{"scope": "tenant", "tenant_id": T}`: only `/v1/tenant/T/timeline` and the routes under it.
//!
//! `exp` and `nbf`, when present, are enforced (with the library's leeway of 60 s); a token
//! with an `aud` claim is refused (no audience is configured). The scheme `Bearer` is matched
//! without regard to case. Invariants:
//! * only EdDSA is accepted: a token whose header names another algorithm (`none`, or `HS256`
//!   keyed with the public key) is refused before any signature is checked;
//! * a missing, malformed, unsigned, wrongly signed or expired token is a 401, a valid token
//!   outside its scope a 403; each refusal is counted by reason;
//! * the decision depends on the request's method and path only, never on routing, so an
//!   unknown route needs a token too (nobody learns which routes exist without one).

use super::ApiError;
use axum::http::{Method, StatusCode, header};
use index_part::names::TenantId;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What a token allows (its claims).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// `pageserverapi` or `tenant`.
    pub scope: String,
    /// The tenant of a `tenant` token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Expiry, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
}

/// The verifier of the server's tokens.
pub struct JwtAuth {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtAuth(EdDSA)")
    }
}

fn install_crypto() {
    // Err means a provider is installed already (ours, by an earlier call).
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
}

impl JwtAuth {
    /// Reads the Ed25519 public key (PEM) at `path`.
    pub fn from_pem_file(path: &Path) -> anyhow::Result<JwtAuth> {
        use anyhow::Context;
        install_crypto();
        let pem = std::fs::read(path)
            .with_context(|| format!("read the auth public key {}", path.display()))?;
        let key = DecodingKey::from_ed_pem(&pem).with_context(|| {
            format!(
                "{}: not an Ed25519 public key in PEM (make one with `openssl pkey -in PRIVATE.pem -pubout`)",
                path.display()
            )
        })?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        // `exp` is optional; when present it is checked.
        validation.required_spec_claims.clear();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        Ok(JwtAuth { key, validation })
    }

    /// The claims of the `Authorization` header's token, or why it is refused (401).
    pub fn authenticate(&self, authorization: Option<&[u8]>) -> Result<Claims, ApiError> {
        let unauthorized = |reason: &str, message: String| {
            crate::metrics::METRICS
                .auth_failures
                .with_label_values(&[reason])
                .inc();
            ApiError {
                status: StatusCode::UNAUTHORIZED,
                message,
            }
        };
        let Some(value) = authorization else {
            return Err(unauthorized(
                "missing",
                "missing Authorization: Bearer <JWT>".into(),
            ));
        };
        // The scheme is case-insensitive (RFC 9110 section 11.1).
        let token = std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .ok_or_else(|| {
                unauthorized("malformed", "Authorization is not \"Bearer <JWT>\"".into())
            })?;
        match jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation) {
            Ok(data) => Ok(data.claims),
            Err(e) => {
                use jsonwebtoken::errors::ErrorKind;
                let reason = match e.kind() {
                    ErrorKind::ExpiredSignature => "expired",
                    ErrorKind::InvalidSignature => "signature",
                    ErrorKind::InvalidAlgorithm => "algorithm",
                    _ => "malformed",
                };
                Err(unauthorized(reason, format!("invalid token: {e}")))
            }
        }
    }
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
    let checked = auth
        .authenticate(header)
        .and_then(|claims| authorize(&claims, req.uri().path()));
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

/// Signs `claims` with the Ed25519 private key `pem` (PKCS#8 PEM): what `pagectl token` does.
pub fn sign(claims: &Claims, pem: &[u8]) -> anyhow::Result<String> {
    use anyhow::Context;
    install_crypto();
    let key = EncodingKey::from_ed_pem(pem).context(
        "not an Ed25519 private key in PEM (make one with `openssl genpkey -algorithm ed25519`)",
    )?;
    jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), claims, &key).context("sign the token")
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
