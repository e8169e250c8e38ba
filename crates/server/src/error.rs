//! One error type for every handler, mapped to HTTP status and body in one place. Bodies keep
//! SGLang's shapes: flat `{"object": "error", ...}` on OpenAI routes, `{"error": {...}}` on
//! `/generate`, `{"error": "Unauthorized"}` for auth, plain text where SGLang answers text.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Which route family an error belongs to: it decides the body shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    OpenAi,
    Native,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Bad input. `param` names the offending field (dotted path) when there is one.
    #[error("{message}")]
    BadRequest {
        surface: Surface,
        param: Option<String>,
        message: String,
    },
    #[error("Unauthorized")]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
    #[error("The request queue is full.")]
    QueueFull(Surface),
    #[error("{0}")]
    Unavailable(String),
    /// A plain-text 400 (e.g. `/flush_cache` while busy), as SGLang answers.
    #[error("{0}")]
    PlainBadRequest(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad(surface: Surface, param: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            surface,
            param: Some(param.into()),
            message: message.into(),
        }
    }

    pub fn from_submit(surface: Surface, e: loupe_engine::SubmitError) -> Self {
        match e {
            loupe_engine::SubmitError::Invalid { field, message } => {
                ApiError::bad(surface, field, message)
            }
            loupe_engine::SubmitError::QueueFull => ApiError::QueueFull(surface),
            loupe_engine::SubmitError::Engine(e) => ApiError::Unavailable(e.to_string()),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } | ApiError::PlainBadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::QueueFull(_) | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The nested error object used inside SSE streams and on `/generate`.
    pub fn stream_body(&self) -> serde_json::Value {
        let param = match self {
            ApiError::BadRequest { param, .. } => param.clone(),
            _ => None,
        };
        json!({"error": {
            "message": self.to_string(),
            "type": "invalid_request_error",
            "param": param,
            "code": self.status().as_u16(),
            "retryable": matches!(self, ApiError::QueueFull(_) | ApiError::Unavailable(_)),
        }})
    }
}

fn flat(status: StatusCode, type_: &str, param: Option<&str>, message: &str) -> serde_json::Value {
    json!({
        "object": "error",
        "message": message,
        "type": type_,
        "param": param,
        "code": status.as_u16(),
    })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            ApiError::Unauthorized => json!({"error": "Unauthorized"}),
            ApiError::PlainBadRequest(m) => return (status, m.clone()).into_response(),
            ApiError::BadRequest {
                surface: Surface::OpenAi,
                param,
                message,
            } => flat(status, "BadRequestError", param.as_deref(), message),
            ApiError::BadRequest {
                surface: Surface::Native,
                ..
            }
            | ApiError::QueueFull(Surface::Native) => self.stream_body(),
            ApiError::NotFound(m) => flat(status, "NotFoundError", None, m),
            ApiError::QueueFull(Surface::OpenAi) => {
                flat(status, "ServiceUnavailableError", None, &self.to_string())
            }
            ApiError::Unavailable(m) => flat(status, "ServiceUnavailableError", None, m),
            ApiError::Internal(m) => flat(status, "InternalServerError", None, m),
        };
        (status, axum::Json(body)).into_response()
    }
}
