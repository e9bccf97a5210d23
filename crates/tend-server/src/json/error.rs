//! Errors as HTTP responses: a status code and `{"error": "message"}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::api::ErrorResponse;

/// An error answer of the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The message put in `{"error": ...}`.
    pub message: String,
}

impl ApiError {
    /// An error with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404 Not Found.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<tend_core::Error> for ApiError {
    fn from(e: tend_core::Error) -> Self {
        use tend_core::Error as E;
        let status = match &e {
            E::UnknownProcess(_) | E::NoMatch(_) => StatusCode::NOT_FOUND,
            E::Duplicate(_) => StatusCode::CONFLICT,
            E::InvalidSpec(_) | E::InvalidName(_) | E::InvalidPattern(_) => StatusCode::BAD_REQUEST,
            E::NotRunning(_) | E::Interrupted { .. } => StatusCode::CONFLICT,
            E::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<crate::access::Denied> for ApiError {
    fn from(d: crate::access::Denied) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, d.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorResponse {
                error: self.message,
            }),
        )
            .into_response()
    }
}
