//! `/start_profile`, `/stop_profile` (and `/end_profile`), `/profile_status`: SGLang's
//! profiling endpoints over `loupe_profiler`. Bodies are loupe-client's wire types: the start
//! body is read as `loupe_client::StartProfile` (through `StartRequest::parse`), the status is
//! served as `loupe_client::ProfileStatus`. Success bodies are SGLang's plain text; failures
//! carry SGLang's message in a JSON error with a 4xx status (upstream answers a bare 500).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use loupe_profiler::{ProfileError, ProfileStatus, StartRequest};
use serde_json::json;

use crate::state::AppState;

fn error(e: ProfileError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({
        "object": "error",
        "message": e.to_string(),
        "type": match e {
            ProfileError::BadRequest(_) => "BadRequestError",
            ProfileError::Conflict(_) => "ConflictError",
            ProfileError::Forbidden(_) => "PermissionDeniedError",
            ProfileError::Export(_) => "InternalServerError",
        },
        "param": null,
        "code": status.as_u16(),
    });
    (status, axum::Json(body)).into_response()
}

pub async fn start(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let result = StartRequest::parse(&body).and_then(|req| st.profiler.start(req));
    match result {
        Ok(_) => (StatusCode::OK, "Start profiling.\n").into_response(),
        Err(e) => error(e),
    }
}

/// Returns once every file of the profile is complete (as SGLang's does).
pub async fn stop(State(st): State<Arc<AppState>>) -> Response {
    match st.profiler.stop().await {
        Ok(outcome) if outcome.errors.is_empty() => (
            StatusCode::OK,
            "Stop profiling. This will take some time.\n",
        )
            .into_response(),
        Ok(outcome) => error(ProfileError::Export(outcome.errors.join("; "))),
        Err(e) => error(e),
    }
}

pub async fn status(State(st): State<Arc<AppState>>) -> Response {
    let status: ProfileStatus = st.profiler.status();
    axum::Json(status).into_response()
}
