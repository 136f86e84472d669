//! Run records: one job's (`/v1/jobs/{id}/runs`) and across jobs (`/v1/runs`).

use axum::Json;
use axum::extract::State;
use std::collections::HashMap;

use campanile::coordinator::RunQuery;
use campanile::history::{HistoryQuery, HistoryStore, JobHistoryQuery};
use campanile::{Job, JobId, Outcome, RunRecord};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::Caller;
use super::body::{JobPath, Params};
use super::error::{ApiError, ErrorBody};
use super::jobs::{job_id, page_size};
use super::redact;
use super::schema::RunRecordDoc;

/// `GET /v1/jobs/{id}/runs` parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobRunsParams {
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// Only records scheduled strictly before this Unix ms (the previous page's `next_before`).
    pub before: Option<i64>,
    /// Only records scheduled at or after this Unix ms.
    pub from: Option<i64>,
    /// Only records with this outcome (a filtered page may hold fewer than `limit` records: follow
    /// `next_before` until it is absent).
    #[param(value_type = Option<String>, pattern = r"^(|succeeded|failed|timed_out|skipped|misfired|in_doubt)$")]
    #[serde(default, deserialize_with = "super::body::empty_is_none")]
    pub outcome: Option<String>,
}

/// A page of one job's run records, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobRuns {
    /// The records.
    #[schema(value_type = Vec<RunRecordDoc>)]
    pub runs: Vec<RunRecord>,
    /// Pass as `before` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before: Option<i64>,
}

/// `GET /v1/runs` parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunsParams {
    /// Only records with this outcome: succeeded, failed, timed_out, skipped, misfired, in_doubt.
    #[param(value_type = Option<String>, pattern = r"^(|succeeded|failed|timed_out|skipped|misfired|in_doubt)$")]
    #[serde(default, deserialize_with = "super::body::empty_is_none")]
    pub outcome: Option<String>,
    /// Only jobs of this namespace.
    #[serde(default, deserialize_with = "super::body::empty_is_none")]
    pub namespace: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// Continue after this cursor (the previous page's `next`).
    #[param(pattern = r"^$|^-?[0-9]{1,19}:[A-Za-z0-9._-]{1,128}$")]
    #[serde(default, deserialize_with = "super::body::empty_is_none")]
    pub after: Option<String>,
}

/// A page of run records across jobs, newest first (by scheduled instant, then job id).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Runs {
    /// The records.
    #[schema(value_type = Vec<RunRecordDoc>)]
    pub runs: Vec<RunRecord>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

fn outcome(raw: Option<&str>) -> Result<Option<Outcome>, ApiError> {
    raw.map(|s| s.parse::<Outcome>().map_err(ApiError::from))
        .transpose()
}

/// A job's run records, newest first.
#[utoipa::path(get, path = "/v1/jobs/{id}/runs", tag = "jobs",
    params(("id" = String, Path, description = "Job id: 1 to 128 characters of `[A-Za-z0-9._-]`, not `.` or `..`", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$|^\.[A-Za-z0-9_-][A-Za-z0-9._-]{0,126}$|^\.\.[A-Za-z0-9._-]{1,126}$"), JobRunsParams),
    responses((status = 200, body = JobRuns), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn job_runs(
    State(app): State<AppState>,
    caller: Caller,
    JobPath(id): JobPath,
    Params(params): Params<JobRunsParams>,
) -> Result<Json<JobRuns>, ApiError> {
    let id = job_id(&id)?;
    let limit = page_size(params.limit, 100)?;
    let wanted = outcome(params.outcome.as_deref())?;
    let Some(job) = app.scheduler.get(&id).await? else {
        return Err(ApiError::not_found(format!("job {id} not found")));
    };
    let query = RunQuery {
        from_ms: params.from,
        before_ms: params.before,
        limit,
    };
    if let Some(store) = &app.history {
        // The store filters by outcome before the limit: a page is full unless nothing older matches.
        let mut runs = store
            .job_runs(
                &id,
                JobHistoryQuery {
                    runs: query,
                    outcome: wanted,
                },
            )
            .await?;
        let next_before = (runs.len() == limit)
            .then(|| runs.last().map(|r| r.scheduled_ms))
            .flatten();
        redact::runs(caller, &job, &mut runs);
        return Ok(Json(JobRuns { runs, next_before }));
    }
    let raw = app.scheduler.runs(&id, query).await?;
    let next_before = (raw.len() == limit)
        .then(|| raw.last().map(|r| r.scheduled_ms))
        .flatten();
    let mut runs: Vec<RunRecord> = raw
        .into_iter()
        .filter(|r| wanted.is_none_or(|o| r.outcome == o))
        .collect();
    redact::runs(caller, &job, &mut runs);
    Ok(Json(JobRuns { runs, next_before }))
}

/// Most records read per job by `/v1/runs` with an outcome filter.
const SCAN_PER_JOB: usize = 10_000;

/// Run records across jobs, newest first. From a history store (in-process, PostgreSQL): one query on its
/// time index. **Cost** otherwise (reading the coordinator): there is no cross-job index: this reads the job
/// list and then each job's history (one coordinator read per job, up to `limit` records each, or up to
/// 10,000 each with an `outcome` filter). Fine for hundreds of jobs; with many thousands prefer per-job queries,
/// `/metrics` (`campanile_runs_total{outcome}`) or webhooks.
#[utoipa::path(get, path = "/v1/runs", tag = "jobs", params(RunsParams),
    responses((status = 200, body = Runs), (status = 400, body = ErrorBody)))]
pub async fn all_runs(
    State(app): State<AppState>,
    caller: Caller,
    Params(params): Params<RunsParams>,
) -> Result<Json<Runs>, ApiError> {
    let limit = page_size(params.limit, 100)?;
    let wanted = outcome(params.outcome.as_deref())?;
    let cursor = params.after.as_deref().map(parse_cursor).transpose()?;
    let per_job = if wanted.is_some() {
        SCAN_PER_JOB
    } else {
        limit + 1
    };
    if let Some(store) = &app.history {
        return from_store(
            &**store,
            &app,
            caller,
            params.namespace,
            wanted,
            cursor,
            limit,
        )
        .await;
    }
    let mut found: Vec<RunRecord> = Vec::new();
    for job in app.scheduler.list().await? {
        if params
            .namespace
            .as_ref()
            .is_some_and(|ns| job.spec.namespace != *ns)
        {
            continue;
        }
        let query = RunQuery {
            from_ms: None,
            before_ms: cursor.as_ref().map(|(ms, _)| ms.saturating_add(1)),
            limit: per_job,
        };
        let mut records = match app.scheduler.runs(&job.id, query).await {
            Ok(records) => records,
            // Deleted between the list and this read.
            Err(campanile::SchedulerError::NotFound(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        redact::runs(caller, &job, &mut records);
        found.extend(records.into_iter().filter(|r| {
            wanted.is_none_or(|o| r.outcome == o)
                && cursor
                    .as_ref()
                    .is_none_or(|(ms, job)| (r.scheduled_ms, &r.job) < (*ms, job))
        }));
    }
    found.sort_by(|a, b| (b.scheduled_ms, &b.job).cmp(&(a.scheduled_ms, &a.job)));
    Ok(Json(page(found, limit)))
}

/// `/v1/runs` from a history store that holds the whole cluster's history: one query across jobs (a
/// namespace becomes the list of its jobs), then each record redacted for its job.
async fn from_store(
    store: &dyn HistoryStore,
    app: &AppState,
    caller: Caller,
    namespace: Option<String>,
    wanted: Option<Outcome>,
    cursor: Option<(i64, JobId)>,
    limit: usize,
) -> Result<Json<Runs>, ApiError> {
    let jobs: HashMap<JobId, Job> = app
        .scheduler
        .list()
        .await?
        .into_iter()
        .filter(|job| {
            namespace
                .as_ref()
                .is_none_or(|ns| job.spec.namespace == *ns)
        })
        .map(|job| (job.id.clone(), job))
        .collect();
    let query = HistoryQuery {
        after: cursor,
        outcome: wanted,
        jobs: namespace.is_some().then(|| jobs.keys().cloned().collect()),
        limit: limit + 1,
    };
    let mut found = store.runs(query).await?;
    // A job deleted since its records were stored: its history went with it.
    found.retain(|r| jobs.contains_key(&r.job));
    for record in &mut found {
        if let Some(job) = jobs.get(&record.job) {
            redact::runs(caller, job, std::slice::from_mut(record));
        }
    }
    Ok(Json(page(found, limit)))
}

/// The first `limit` of `found` (newest first, one more asked than shown), with the cursor of the next page
/// when there is more.
fn page(mut found: Vec<RunRecord>, limit: usize) -> Runs {
    let next = if found.len() > limit {
        found.truncate(limit);
        found
            .last()
            .map(|r| format!("{}:{}", r.scheduled_ms, r.job))
    } else {
        None
    };
    Runs { runs: found, next }
}

fn parse_cursor(raw: &str) -> Result<(i64, JobId), ApiError> {
    let bad = || {
        ApiError::invalid(
            "after",
            format!("after: {raw:?} is not a cursor from `next`"),
        )
    };
    let (ms, job) = raw.split_once(':').ok_or_else(bad)?;
    Ok((
        ms.parse().map_err(|_| bad())?,
        JobId::new(job).map_err(|_| bad())?,
    ))
}
