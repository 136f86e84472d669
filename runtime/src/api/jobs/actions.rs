//! `/v1/jobs/{id}/...` actions: pause, resume, trigger, clone, backfill and the preview of next instants.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{job_id, job_response, load};
use crate::api::AppState;
use crate::api::body::{JobPath, JsonObject, Params};
use crate::api::error::{ApiError, ErrorBody};
use crate::api::schema::JobDoc;

/// `POST /v1/jobs/{id}/clone` body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloneRequest {
    /// Id of the copy; generated if absent.
    #[serde(default)]
    #[schema(
        pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$|^\.[A-Za-z0-9_-][A-Za-z0-9._-]{0,126}$|^\.\.[A-Za-z0-9._-]{1,126}$"
    )]
    pub id: Option<String>,
    /// Name of the copy; the source's if absent.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 256)]
    pub name: Option<String>,
}

/// `POST /v1/jobs/{id}/backfill` body: run every instant of the schedule in `[from, to]` that has no run
/// record (at most 10,000).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackfillRequest {
    /// First instant (RFC 3339), inclusive.
    #[schema(value_type = String, format = DateTime)]
    pub from: DateTime<Utc>,
    /// Last instant (RFC 3339), inclusive.
    #[schema(value_type = String, format = DateTime)]
    pub to: DateTime<Utc>,
}

/// Fires asked for by a trigger or a backfill (the job's owner runs them, whichever node answered).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Fires {
    /// Fire ids (`{job}@{scheduled_unix_ms}`), to find their run records.
    pub fire_ids: Vec<String>,
}

/// `GET /v1/jobs/{id}/next` parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NextParams {
    /// How many instants, 1 to 1000 (default 10).
    #[param(minimum = 1, maximum = 1000)]
    pub n: Option<usize>,
}

/// A job's next instants.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NextFires {
    /// The job.
    pub job: String,
    /// Its time zone.
    pub timezone: String,
    /// Its schedule in plain language (`at 01:30 every day, Europe/London`).
    pub description: String,
    /// The instants, in order (empty when paused or finished).
    pub next: Vec<Instant>,
}

/// One instant.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Instant {
    /// Unix ms.
    pub unix_ms: i64,
    /// RFC 3339, UTC.
    pub utc: String,
    /// RFC 3339, in the job's time zone.
    pub local: String,
}

/// Pause a job: its instants are not run (nor owed) until it is resumed.
#[utoipa::path(post, path = "/v1/jobs/{id}/pause", tag = "jobs", params(("id" = String, Path, description = "Job id: 1 to 128 characters of `[A-Za-z0-9._-]`, not `.` or `..`", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$|^\.[A-Za-z0-9_-][A-Za-z0-9._-]{0,126}$|^\.\.[A-Za-z0-9._-]{1,126}$")),
    responses((status = 200, body = JobDoc), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn pause_job(
    State(app): State<AppState>,
    JobPath(id): JobPath,
) -> Result<Response, ApiError> {
    let id = job_id(&id)?;
    Ok(job_response(
        StatusCode::OK,
        &app.scheduler.pause(&id).await?,
    ))
}

/// Resume a paused job from its next instant.
#[utoipa::path(post, path = "/v1/jobs/{id}/resume", tag = "jobs", params(("id" = String, Path, description = "Job id: 1 to 128 characters of `[A-Za-z0-9._-]`, not `.` or `..`", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$|^\.[A-Za-z0-9_-][A-Za-z0-9._-]{0,126}$|^\.\.[A-Za-z0-9._-]{1,126}$")),
    responses((status = 200, body = JobDoc), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn resume_job(
    State(app): State<AppState>,
    JobPath(id): JobPath,
) -> Result<Response, ApiError> {
    let id = job_id(&id)?;
    Ok(job_response(
        StatusCode::OK,
        &app.scheduler.resume(&id).await?,
    ))
}

/// Run a job now, once, outside its schedule: the job's owner runs it, whichever node answers.
#[utoipa::path(post, path = "/v1/jobs/{id}/trigger", tag = "jobs", params(("id" = String, Path, description = "Job id: 1 to 128 characters of `[A-Za-z0-9._-]`, not `.` or `..`", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$|^\.[A-Za-z0-9_-][A-Za-z0-9._-]{0,126}$|^\.\.[A-Za-z0-9._-]{1,126}$")),
    responses((status = 202, body = Fires), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn trigger_job(
    State(app): State<AppState>,
    JobPath(id): JobPath,
) -> Result<(StatusCode, Json<Fires>), ApiError> {
    let id = job_id(&id)?;
    let fire = app.scheduler.trigger(&id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Fires {
            fire_ids: vec![fire.to_string()],
        }),
    ))
}

/// Copy a job under a new id.
#[utoipa::path(post, path = "/v1/jobs/{id}/clone", tag = "jobs", params(("id" = String, Path, description = "Job id: 1 to 128 characters of `[A-Za-z0-9._-]`, not `.` or `..`", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$|^\.[A-Za-z0-9_-][A-Za-z0-9._-]{0,126}$|^\.\.[A-Za-z0-9._-]{1,126}$")),
    request_body(content = Option<CloneRequest>),
    responses((status = 201, body = JobDoc), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn clone_job(
    State(app): State<AppState>,
    JobPath(id): JobPath,
    body: JsonObject,
) -> Result<Response, ApiError> {
    let id = job_id(&id)?;
    let request: CloneRequest = body.into_typed()?;
    let new_id = request.id.as_deref().map(job_id).transpose()?;
    let job = app.scheduler.clone_job(&id, new_id, request.name).await?;
    Ok(job_response(StatusCode::CREATED, &job))
}

/// Run every instant of the job's schedule in `[from, to]` that has no run record (at most 10,000): the
/// job's owner runs them, whichever node answers.
#[utoipa::path(post, path = "/v1/jobs/{id}/backfill", tag = "jobs", params(("id" = String, Path, description = "Job id: 1 to 128 characters of `[A-Za-z0-9._-]`, not `.` or `..`", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$|^\.[A-Za-z0-9_-][A-Za-z0-9._-]{0,126}$|^\.\.[A-Za-z0-9._-]{1,126}$")),
    request_body = BackfillRequest,
    responses((status = 202, body = Fires), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn backfill_job(
    State(app): State<AppState>,
    JobPath(id): JobPath,
    body: JsonObject,
) -> Result<(StatusCode, Json<Fires>), ApiError> {
    let id = job_id(&id)?;
    let request: BackfillRequest = body.into_typed()?;
    if request.to < request.from {
        return Err(ApiError::invalid(
            "to",
            format!(
                "to: {:?} is before from {:?}",
                request.to.to_rfc3339(),
                request.from.to_rfc3339()
            ),
        ));
    }
    let fires = app
        .scheduler
        .backfill(&id, request.from, request.to)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Fires {
            fire_ids: fires.iter().map(ToString::to_string).collect(),
        }),
    ))
}

/// Preview a job's next instants from now (empty when paused).
#[utoipa::path(get, path = "/v1/jobs/{id}/next", tag = "jobs",
    params(("id" = String, Path, description = "Job id: 1 to 128 characters of `[A-Za-z0-9._-]`, not `.` or `..`", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$|^\.[A-Za-z0-9_-][A-Za-z0-9._-]{0,126}$|^\.\.[A-Za-z0-9._-]{1,126}$"), NextParams),
    responses((status = 200, body = NextFires), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn next_fires(
    State(app): State<AppState>,
    JobPath(id): JobPath,
    Params(params): Params<NextParams>,
) -> Result<Json<NextFires>, ApiError> {
    let id = job_id(&id)?;
    let n = params.n.unwrap_or(10);
    if !(1..=1000).contains(&n) {
        return Err(ApiError::invalid("n", format!("n: {n} must be 1 to 1000")));
    }
    let job = load(&app, &id).await?;
    let tz = job.spec.tz()?;
    let instants = app.scheduler.next_fires(&id, n).await?;
    let next = instants
        .into_iter()
        .map(|utc| Instant {
            unix_ms: utc.timestamp_millis(),
            utc: utc.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            local: utc
                .with_timezone(&tz)
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false),
        })
        .collect();
    Ok(Json(NextFires {
        job: id.to_string(),
        description: crate::describe::describe(job.spec.schedule.as_str(), &job.spec.timezone),
        timezone: job.spec.timezone.clone(),
        next,
    }))
}
