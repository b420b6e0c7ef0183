//! API errors: JSON `{"error": "..."}` (brief section 6), whatever the status: 400, 401, 403,
//! 404, 405, 409, 413, 500 or 503.

use crate::tenant::TenantError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// The status.
    pub status: StatusCode,
    /// The message.
    pub message: String,
}

impl ApiError {
    /// 400.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }
    /// 409.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::CONFLICT,
            message: message.into(),
        }
    }
    /// 503: the server is shutting down (counted).
    pub fn shutting_down() -> ApiError {
        crate::metrics::METRICS.shutdown_refused.inc();
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the server is shutting down".into(),
        }
    }
    /// 500, logged where it is answered.
    pub fn internal(e: &anyhow::Error) -> ApiError {
        tracing::error!("request failed: {e:#}");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("{e:#}"),
        }
    }
}

impl From<TenantError> for ApiError {
    fn from(e: TenantError) -> ApiError {
        match e {
            TenantError::NotFound(m) => ApiError::not_found(m),
            TenantError::Conflict(m) => ApiError {
                status: StatusCode::CONFLICT,
                message: m,
            },
            TenantError::Internal(e) => ApiError::internal(&e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}
