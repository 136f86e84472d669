//! API errors: every error answer is `{"error": {"code", "message", "field"?}}` with a 4xx status for bad
//! input, 5xx only when the node or its coordinator failed.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use campanile::{CoordError, SchedulerError, ValidationError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An error answer, as sent.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code: `bad_json`, `invalid`, `not_found`, `conflict`, `precondition_failed`,
    /// `unauthorized`, `forbidden`, `payload_too_large`, `unsupported_media_type`, `no_route`,
    /// `method_not_allowed`, `unavailable`, `internal`.
    pub code: String,
    /// Human-readable explanation, naming the value when there is one.
    pub message: String,
    /// The offending input field (dotted path: `target.argv`, `misfire.max_count`), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// An error to answer with.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// See [`ErrorDetail::code`].
    pub code: &'static str,
    /// See [`ErrorDetail::message`].
    pub message: String,
    /// See [`ErrorDetail::field`].
    pub field: Option<String>,
}

impl ApiError {
    /// An error without a field.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// The same error, naming `field`.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 400 `invalid`, naming the field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message).with_field(field)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 500 `internal`: a fault of this node, never of the input.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The body sent.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message.clone(),
                field: self.field.clone(),
            },
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(error: ValidationError) -> Self {
        let field = error.field.clone();
        Self::invalid(field, error.to_string())
    }
}

impl From<SchedulerError> for ApiError {
    fn from(error: SchedulerError) -> Self {
        match error {
            SchedulerError::Invalid(e) => e.into(),
            SchedulerError::NotFound(id) => Self::not_found(format!("job {id} not found")),
            SchedulerError::Conflict { job, detail } => Self::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("job {job} changed or exists: {detail}"),
            ),
            SchedulerError::Coordinator(e) => e.into(),
            SchedulerError::Stopped => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the node is shutting down",
            ),
            other => Self::internal(other.to_string()),
        }
    }
}

impl From<CoordError> for ApiError {
    fn from(error: CoordError) -> Self {
        match error {
            CoordError::NotFound { key } => Self::not_found(format!("{key} not found")),
            CoordError::Conflict { .. } => {
                Self::new(StatusCode::CONFLICT, "conflict", error.to_string())
            }
            // The store refused the request itself (too large, bad key): the input's fault.
            CoordError::Invalid(message) => Self::new(StatusCode::BAD_REQUEST, "invalid", message),
            CoordError::Unavailable { .. } | CoordError::SessionExpired { .. } => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                error.to_string(),
            ),
            other => Self::internal(other.to_string()),
        }
    }
}

impl From<campanile::history::HistoryError> for ApiError {
    fn from(error: campanile::history::HistoryError) -> Self {
        use campanile::history::HistoryError;
        match &error {
            HistoryError::Invalid { field, .. } => {
                Self::new(StatusCode::BAD_REQUEST, "invalid", error.to_string()).with_field(*field)
            }
            HistoryError::Unavailable { .. } => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                error.to_string(),
            ),
            _ => Self::internal(error.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
