//! Operational endpoints: `/healthz` (the process answers), `/readyz` (the node holds a valid session and
//! is not shutting down), `/metrics` (Prometheus text), and the OpenAPI document.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ErrorBody};

/// A health or readiness answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` or `ready`.
    pub status: String,
    /// This node.
    pub node: String,
}

/// Liveness: 200 while the process serves requests.
#[utoipa::path(get, path = "/healthz", tag = "ops", security(()),
    responses((status = 200, body = Health)))]
pub async fn healthz(State(app): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
        node: app.scheduler.node_id().to_string(),
    })
}

/// Readiness: 200 once the node holds a valid coordinator session; 503 before that, after losing it, and
/// while shutting down.
#[utoipa::path(get, path = "/readyz", tag = "ops", security(()),
    responses((status = 200, body = Health), (status = 503, body = ErrorBody)))]
pub async fn readyz(State(app): State<AppState>) -> Result<Json<Health>, ApiError> {
    let unavailable =
        |message: &str| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message);
    if app.is_shutting_down() {
        return Err(unavailable("the node is shutting down"));
    }
    let status = tokio::time::timeout(Duration::from_secs(2), app.scheduler.status())
        .await
        .map_err(|_| unavailable("the node did not answer within 2s"))?
        .map_err(ApiError::from)?;
    let now = app.clock.now_ms();
    let ready = status.session.is_some() && status.valid_until_ms.is_some_and(|v| v > now);
    metrics::gauge!(crate::telemetry::NODE_READY).set(if ready { 1.0 } else { 0.0 });
    if !ready {
        return Err(unavailable(
            "the node holds no valid coordinator session yet",
        ));
    }
    Ok(Json(Health {
        status: "ready".to_owned(),
        node: status.node.to_string(),
    }))
}

/// Metrics in the Prometheus text format (names in `docs/operations.md`).
#[utoipa::path(get, path = "/metrics", tag = "ops", security(()),
    responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics(State(app): State<AppState>) -> Response {
    let body = app.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "ops",
    responses((status = 200, content_type = "application/json", body = Object)))]
pub async fn openapi(State(app): State<AppState>) -> Response {
    let body = app.openapi.get().cloned().unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Who the caller is to this server.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Me {
    /// `admin` (may change state) or `read-only`; `admin` when the server has no token file.
    pub role: String,
    /// The node that answered.
    pub node: String,
}

/// The caller's role, so that a client (the console) shows only what the token may do.
#[utoipa::path(get, path = "/v1/me", tag = "ops",
    responses((status = 200, body = Me)))]
pub async fn me(State(app): State<AppState>, caller: super::auth::Caller) -> Json<Me> {
    Json(Me {
        role: if caller.sees_secrets() {
            "admin"
        } else {
            "read-only"
        }
        .to_owned(),
        node: app.scheduler.node_id().to_string(),
    })
}
