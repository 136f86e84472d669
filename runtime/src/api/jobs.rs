//! `/v1/jobs`: create (one, or up to 10,000 at `/v1/jobs:batch`), list, read, replace (PUT), merge-patch
//! (PATCH), delete, pause, resume, trigger, clone, backfill and preview.
//!
//! Optimistic concurrency: every job answer carries `ETag: "<revision>"`; PUT, PATCH and DELETE honour
//! `If-Match: "<revision>"` (412 when the job moved on) and PUT also a body `revision` (409 when it moved on).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use campanile::{Job, JobId, JobSpec, Outcome, RunQuery, SchedulerError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::Caller;
use super::body::{JobPath, JsonBytes, JsonObject, Params, lenient, typed, typed_from};
use super::error::{ApiError, ErrorBody};
use super::redact;
use serde_json::value::RawValue;
pub mod actions;

use super::schema::{BatchRequestDoc, JobDoc, JobPatchDoc, JobReplacementDoc, NewJobDoc};

/// Most items one page holds.
pub const MAX_PAGE: usize = 1000;

/// Most jobs one `POST /v1/jobs:batch` creates.
pub const MAX_BATCH: usize = campanile::coordinator::limits::MAX_CREATE_BATCH;

/// `POST /v1/jobs:batch` answer: the created jobs' ids and revisions, in the order sent (the jobs themselves
/// are as sent; `GET /v1/jobs/{id}` reads one).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BatchCreated {
    /// How many jobs were created (all of the request's).
    pub created: usize,
    /// Each job's id (generated where the request named none) and revision, in request order.
    pub jobs: Vec<CreatedJob>,
}

/// One created job.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedJob {
    /// Its id.
    pub id: String,
    /// Its store revision (`ETag` of later reads).
    pub revision: u64,
}

/// Most bytes of jobs one page of `GET /v1/jobs` holds (a job may be 1 MiB: a full page of large jobs would
/// be a gigabyte built in memory). A page that reaches it ends early, with `next_after`.
pub const MAX_PAGE_BYTES: usize = 4 << 20;

/// Most jobs whose newest record one `GET /v1/jobs?last_outcome=` page reads.
pub const MAX_OUTCOME_SCAN: usize = 1_000;

/// `GET /v1/jobs` filters and page.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only jobs of this namespace.
    #[serde(default, deserialize_with = "super::body::empty_is_none")]
    pub namespace: Option<String>,
    /// Only jobs carrying these labels: `key=value[,key=value...]` (a bare `key` matches any value).
    #[serde(default, deserialize_with = "super::body::empty_is_none")]
    pub label: Option<String>,
    /// Only paused (`true`) or only active (`false`) jobs.
    pub paused: Option<bool>,
    /// Only jobs whose id or name contains this text, ignoring case (at most 256 characters).
    #[param(max_length = 256)]
    #[serde(default, deserialize_with = "super::body::empty_is_none")]
    pub q: Option<String>,
    /// Only jobs whose newest run record has this outcome (succeeded, failed, timed_out, skipped, misfired,
    /// in_doubt), or `none` for jobs without one. Each page looks at most 1,000 jobs' records: a page may
    /// hold fewer than `limit` jobs and still have a `next_after` to go on from.
    #[param(value_type = Option<String>, pattern = r"^(|none|succeeded|failed|timed_out|skipped|misfired|in_doubt)$")]
    #[serde(default, deserialize_with = "super::body::empty_is_none")]
    pub last_outcome: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// Continue after this job id (the previous page's `next_after`).
    #[param(
        pattern = r"^$|^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$|^\.[A-Za-z0-9_-][A-Za-z0-9._-]{0,126}$|^\.\.[A-Za-z0-9._-]{1,126}$"
    )]
    #[serde(default, deserialize_with = "super::body::empty_is_none")]
    pub after: Option<String>,
}

/// A page of jobs, sorted by id.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobList {
    /// The jobs.
    #[schema(value_type = Vec<JobDoc>)]
    pub jobs: Vec<Job>,
    /// Pass as `after` for the next page; absent on the last page. A page ends early when its jobs reach
    /// 4 MiB of JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

/// A job id from the path.
pub fn job_id(raw: &str) -> Result<JobId, ApiError> {
    Ok(JobId::new(raw)?)
}

/// A job answer: the job JSON with `ETag: "<revision>"`.
pub fn job_response(status: StatusCode, job: &Job) -> Response {
    let mut response = (status, Json(job)).into_response();
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", job.revision)) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

/// Refuses a `handler` target on the node itself: this binary registers no handler, so such a job could never
/// run here (an application that embeds the engine registers handlers and creates such jobs through its own
/// `Scheduler`). With an executor group it is fine: embedded workers (`campanile::Worker`) offer handlers.
pub(crate) fn runnable_here(spec: JobSpec) -> Result<JobSpec, ApiError> {
    if let campanile::Target::Handler(handler) = &spec.target
        && spec.executor.is_none()
    {
        return Err(ApiError::invalid(
            "target.type",
            format!(
                "target.type: \"handler\" ({:?}) cannot run on this server, which registers no handlers: \
                 use a \"command\" or \"http\" target, or an \"executor\" group whose embedded workers offer \
                 the handler (handlers belong to applications that embed campanile)",
                handler.name
            ),
        ));
    }
    Ok(spec)
}

/// The revision an `If-Match` header requires: `None` without the header or for `*`.
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("").trim();
    if text == "*" {
        return Ok(None);
    }
    let bare = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    bare.parse().map(Some).map_err(|_| {
        ApiError::invalid(
            "If-Match",
            format!("If-Match: {text:?} is not a job revision like \"12\""),
        )
    })
}

/// Maps a conflict to 412 when the expectation came from `If-Match`.
fn precondition(error: SchedulerError, from_header: bool) -> ApiError {
    match error {
        SchedulerError::Conflict { job, detail } if from_header => ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            format!("job {job} does not match If-Match: {detail}"),
        ),
        other => other.into(),
    }
}

/// Reads a job or answers 404.
async fn load(app: &AppState, id: &JobId) -> Result<Job, ApiError> {
    app.scheduler
        .get(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job {id} not found")))
}

fn label_filter(spec: &str) -> Result<Vec<(String, Option<String>)>, ApiError> {
    spec.split(',')
        .filter(|s| !s.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some(("", _)) => Err(ApiError::invalid(
                "label",
                format!("label: {pair:?} has an empty key"),
            )),
            Some((k, v)) => Ok((k.to_owned(), Some(v.to_owned()))),
            None => Ok((pair.to_owned(), None)),
        })
        .collect()
}

/// Checks a page size.
pub fn page_size(limit: Option<usize>, default: usize) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(default);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("limit: {limit} must be 1 to {MAX_PAGE}"),
        ));
    }
    Ok(limit)
}

/// List jobs, filtered and paginated by id. Filtering reads every job from the coordinator (one read),
/// then filters in memory.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(ListParams),
    responses((status = 200, body = JobList), (status = 400, body = ErrorBody)))]
pub async fn list_jobs(
    State(app): State<AppState>,
    caller: Caller,
    Params(params): Params<ListParams>,
) -> Result<Json<JobList>, ApiError> {
    let limit = page_size(params.limit, 100)?;
    let labels = label_filter(params.label.as_deref().unwrap_or(""))?;
    let after = params
        .after
        .as_deref()
        .map(|a| JobId::new(a).map_err(|e| ApiError::invalid("after", format!("after: {e}"))))
        .transpose()?;
    let q = params.q.as_deref().map(str::to_lowercase);
    if let Some(q) = &q
        && q.chars().count() > 256
    {
        return Err(ApiError::invalid("q", "q: is longer than 256 characters"));
    }
    // `None`: any; `Some(None)`: never ran; `Some(Some(o))`: newest record's outcome is `o`.
    let last_outcome: Option<Option<Outcome>> = match params.last_outcome.as_deref() {
        None => None,
        Some("none") => Some(None),
        Some(name) => Some(Some(name.parse().map_err(|_| {
            ApiError::invalid(
                "last_outcome",
                format!(
                    "last_outcome: {name:?} is not none, succeeded, failed, timed_out, skipped, misfired or in_doubt"
                ),
            )
        })?)),
    };
    let jobs = app.scheduler.list().await?;
    let matching = jobs
        .into_iter()
        .filter(|j| after.as_ref().is_none_or(|a| j.id > *a))
        .filter(|j| {
            params
                .namespace
                .as_ref()
                .is_none_or(|ns| j.spec.namespace == *ns)
        })
        .filter(|j| params.paused.is_none_or(|p| j.spec.paused == p))
        .filter(|j| {
            q.as_ref().is_none_or(|q| {
                j.id.as_str().to_lowercase().contains(q.as_str())
                    || j.spec.name.to_lowercase().contains(q.as_str())
            })
        })
        .filter(|j| {
            labels.iter().all(|(k, v)| match (j.spec.labels.get(k), v) {
                (Some(have), Some(want)) => have == want,
                (Some(_), None) => true,
                (None, _) => false,
            })
        });
    let (page, mut next_after): (Vec<Job>, Option<String>) = match last_outcome {
        None => {
            let mut page: Vec<Job> = matching.take(limit + 1).collect();
            let next = (page.len() > limit).then(|| {
                page.truncate(limit);
                page.last().map(|j| j.id.to_string())
            });
            (page, next.flatten())
        }
        Some(wanted) => {
            // One record read per job looked at, at most `MAX_OUTCOME_SCAN` per page: a page cut by the cap
            // goes on after the last job looked at.
            let mut page = Vec::new();
            let mut next = None;
            let mut scanned = 0;
            let mut matching = matching.peekable();
            while let Some(job) = matching.next() {
                let newest = app
                    .scheduler
                    .runs(
                        &job.id,
                        RunQuery {
                            limit: 1,
                            ..RunQuery::default()
                        },
                    )
                    .await?;
                scanned += 1;
                let id = job.id.to_string();
                if newest.first().map(|r| r.outcome) == wanted {
                    page.push(job);
                }
                if page.len() == limit || scanned == MAX_OUTCOME_SCAN {
                    if matching.peek().is_some() {
                        next = Some(id);
                    }
                    break;
                }
            }
            (page, next)
        }
    };
    let mut jobs = Vec::with_capacity(page.len());
    let mut bytes = 0;
    for job in &page {
        let job = redact::job(caller, job).into_owned();
        bytes += serde_json::to_vec(&job).map_or(0, |json| json.len());
        if bytes > MAX_PAGE_BYTES && !jobs.is_empty() {
            next_after = jobs.last().map(|j: &Job| j.id.to_string());
            break;
        }
        jobs.push(job);
    }
    Ok(Json(JobList { jobs, next_after }))
}

/// Create a job (its id is generated unless the body names one).
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", request_body = NewJobDoc,
    responses((status = 201, body = JobDoc, description = "Created; `ETag` holds the revision"),
        (status = 400, body = ErrorBody), (status = 409, body = ErrorBody, description = "The id exists"),
        (status = 413, body = ErrorBody)))]
pub async fn create_job(
    State(app): State<AppState>,
    mut body: JsonObject,
) -> Result<Response, ApiError> {
    let id = match body.take("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(job_id(&id)?),
        Some(other) => {
            return Err(ApiError::invalid(
                "id",
                format!("id: {other} is not a string"),
            ));
        }
    };
    let spec = runnable_here(body.into_typed()?)?;
    let job = match id {
        Some(id) => app.scheduler.create_with_id(id, spec).await?,
        None => app.scheduler.create(spec).await?,
    };
    let mut response = job_response(StatusCode::CREATED, &job);
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/jobs/{}", job.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Create up to 10,000 jobs in one request, all or none: every job is validated first (an error names its
/// index and field: `jobs[3].target.argv`), two jobs with one id are refused, and if any id exists nothing is
/// created (409). Bodies may be up to `http.max_batch_body_bytes` (16 MiB by default).
#[utoipa::path(post, path = "/v1/jobs:batch", tag = "jobs", request_body = BatchRequestDoc,
    responses((status = 201, body = BatchCreated, description = "Every job was created"),
        (status = 400, body = ErrorBody, description = "A job is invalid (the field names its index), an id is \
            repeated, or there are more than 10,000 jobs; nothing was created"),
        (status = 409, body = ErrorBody, description = "A job with one of the ids exists; nothing was created"),
        (status = 413, body = ErrorBody, description = "The body is larger than http.max_batch_body_bytes"),
        (status = 415, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn create_batch(
    State(app): State<AppState>,
    JsonBytes(body): JsonBytes,
) -> Result<(StatusCode, Json<BatchCreated>), ApiError> {
    let batch = parse_batch(&body)?;
    let ids: Vec<Option<JobId>> = batch.iter().map(|(id, _)| id.clone()).collect();
    let jobs =
        app.scheduler
            .create_many(batch)
            .await
            .map_err(|e| match e {
                SchedulerError::Conflict { job, .. } => {
                    let i = ids
                        .iter()
                        .position(|id| id.as_ref() == Some(&job))
                        .unwrap_or(0);
                    ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("jobs[{i}].id: \"{job}\": a job with this id exists; nothing was created"),
            )
            .with_field(format!("jobs[{i}].id"))
                }
                // The store refused a job itself (too large for it): its message starts with the index.
                SchedulerError::Coordinator(campanile::CoordError::Invalid(message)) => {
                    let field = message
                        .strip_prefix("jobs[")
                        .and_then(|rest| rest.split_once(']'))
                        .map(|(index, _)| format!("jobs[{index}]"));
                    let error = ApiError::new(StatusCode::BAD_REQUEST, "invalid", message);
                    match field {
                        Some(field) => error.with_field(field),
                        None => error,
                    }
                }
                other => other.into(),
            })?;
    let created = BatchCreated {
        created: jobs.len(),
        jobs: jobs
            .into_iter()
            .map(|(id, revision)| CreatedJob {
                id: id.to_string(),
                revision,
            })
            .collect(),
    };
    Ok((StatusCode::CREATED, Json(created)))
}

/// The jobs of a `POST /v1/jobs:batch` body, each with its id if it names one; errors name the index and the
/// field (`jobs[3].target.argv`). Checks what the request can tell alone; the scheduler checks the rest (ids
/// repeated, jobs that would never fire) before it writes.
///
/// Each job is read from the body's text straight into its `JobSpec` ([`lenient`]: `null` members absent, as
/// on every route), without a `serde_json::Value` tree of the body in between.
pub fn parse_batch(body: &[u8]) -> Result<Vec<(Option<JobId>, JobSpec)>, ApiError> {
    let missing = || ApiError::invalid("jobs", "jobs: missing: send {\"jobs\": [job, ...]}");
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(missing());
    }
    let bad_json = |message: String| ApiError::new(StatusCode::BAD_REQUEST, "bad_json", message);
    let raw: &RawValue = serde_json::from_slice(body)
        .map_err(|e| bad_json(format!("the body is not valid JSON: {e}")))?;
    if raw.get() == "null" {
        return Err(missing());
    }
    let not_json = |e: serde_json::Error| bad_json(format!("the body is not valid JSON: {e}"));
    let Some(members) = lenient::members(raw).map_err(not_json)? else {
        let kind = match raw.get().as_bytes().first() {
            Some(b'"') => "a string",
            Some(b'[') => "an array",
            Some(b't' | b'f') => "a boolean",
            _ => "a number",
        };
        return Err(bad_json(format!(
            "the body must be a JSON object, not {kind}"
        )));
    };
    let mut jobs = None;
    for (key, value) in members {
        if key.0 == "jobs" {
            jobs = Some(value);
        } else {
            return Err(ApiError::invalid(
                key.0.to_string(),
                format!("{}: unknown field, expected `jobs`", key.0),
            ));
        }
    }
    let jobs = jobs.ok_or_else(missing)?;
    let Some(items) = lenient::elements(jobs).map_err(not_json)? else {
        return Err(ApiError::invalid(
            "jobs",
            format!("jobs: {} is not an array of jobs", short_raw(jobs)),
        ));
    };
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(ApiError::invalid(
            "jobs",
            format!(
                "jobs: {} jobs: a batch holds 1 to {MAX_BATCH} jobs; send the rest in further requests",
                items.len()
            ),
        ));
    }
    let mut batch = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let Some(mut members) = lenient::members(item).map_err(not_json)? else {
            return Err(ApiError::invalid(
                format!("jobs[{i}]"),
                format!("jobs[{i}]: {} is not a job object", short_raw(item)),
            ));
        };
        // The last `id` member counts, as when the object is read whole.
        let id = match members.iter().rposition(|(key, _)| key.0 == "id") {
            None => None,
            Some(at) => {
                let (_, raw) = members.remove(at);
                members.retain(|(key, _)| key.0 != "id");
                let id: String = serde_json::from_str(raw.get()).map_err(|_| {
                    ApiError::invalid(
                        format!("jobs[{i}].id"),
                        format!("jobs[{i}].id: {} is not a string", short_raw(raw)),
                    )
                })?;
                Some(JobId::new(&id).map_err(|e| ApiError::from(e.within(&format!("jobs[{i}]"))))?)
            }
        };
        let spec: JobSpec = typed_from(lenient::Object(members), &format!("jobs[{i}]"))?;
        let spec = runnable_here(spec).map_err(|e| {
            let field = format!("jobs[{i}].{}", e.field.as_deref().unwrap_or("target.type"));
            ApiError::invalid(field, format!("jobs[{i}].{}", e.message))
        })?;
        batch.push((id, spec));
    }
    Ok(batch)
}

/// A value's text for an error message, cut to 100 characters.
fn short_raw(raw: &RawValue) -> String {
    let text = raw.get();
    match text.char_indices().nth(100) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Read a job.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = String, Path, description = "Job id: 1 to 128 characters of `[A-Za-z0-9._-]`, not `.` or `..`", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$|^\.[A-Za-z0-9_-][A-Za-z0-9._-]{0,126}$|^\.\.[A-Za-z0-9._-]{1,126}$")),
    responses((status = 200, body = JobDoc, description = "`ETag` holds the revision"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_job(
    State(app): State<AppState>,
    caller: Caller,
    JobPath(id): JobPath,
) -> Result<Response, ApiError> {
    let id = job_id(&id)?;
    let job = load(&app, &id).await?;
    Ok(job_response(StatusCode::OK, &redact::job(caller, &job)))
}

/// Replace a job's spec (or create it under this id if it does not exist and no revision is required).
/// Takes effect from the next instant.
#[utoipa::path(put, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "Job id: 1 to 128 characters of `[A-Za-z0-9._-]`, not `.` or `..`", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$|^\.[A-Za-z0-9_-][A-Za-z0-9._-]{0,126}$|^\.\.[A-Za-z0-9._-]{1,126}$"),
        ("If-Match" = Option<String>, Header, description = "Required revision, like \"12\"", pattern = r#"^(\*|(W/)?"?[0-9]{1,19}"?)$"#)),
    request_body = JobReplacementDoc,
    responses((status = 200, body = JobDoc), (status = 201, body = JobDoc, description = "Created"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The body's revision is stale"),
        (status = 412, body = ErrorBody, description = "If-Match is stale"), (status = 413, body = ErrorBody)))]
pub async fn replace_job(
    State(app): State<AppState>,
    JobPath(id): JobPath,
    headers: HeaderMap,
    mut body: JsonObject,
) -> Result<Response, ApiError> {
    let id = job_id(&id)?;
    match body.take("id") {
        None | Some(Value::Null) => {}
        Some(Value::String(given)) if given == id.as_str() => {}
        Some(other) => {
            return Err(ApiError::invalid(
                "id",
                format!("id: {other} differs from the path's id \"{id}\""),
            ));
        }
    }
    let body_revision: Option<u64> = match body.take("revision") {
        None | Some(Value::Null) => None,
        Some(v) => typed(v, "revision")?,
    };
    for read_only in [
        "created_ms",
        "updated_ms",
        "past_schedules",
        "requests",
        "last_trigger_ms",
    ] {
        body.take(read_only);
    }
    let header_revision = if_match(&headers)?;
    if let (Some(h), Some(b)) = (header_revision, body_revision)
        && h != b
    {
        return Err(ApiError::invalid(
            "revision",
            format!("revision: {b} disagrees with If-Match {h}"),
        ));
    }
    let spec = runnable_here(body.into_typed()?)?;
    let expected = header_revision.or(body_revision);
    let has_if_match = headers.contains_key(header::IF_MATCH);
    let exists_required = expected.is_some() || has_if_match;
    if !exists_required && app.scheduler.get(&id).await?.is_none() {
        match app.scheduler.create_with_id(id.clone(), spec.clone()).await {
            Ok(job) => return Ok(job_response(StatusCode::CREATED, &job)),
            // Another writer created it meanwhile: this PUT replaces what it wrote, as it would have a
            // moment later.
            Err(SchedulerError::Conflict { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let job = match app.scheduler.update(&id, spec, expected).await {
        Ok(job) => job,
        // RFC 9110 13.1.1: If-Match (even `*`) on a missing resource is a failed precondition.
        Err(SchedulerError::NotFound(_)) if has_if_match => {
            return Err(ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                format!("job {id} does not exist, so it matches no If-Match"),
            ));
        }
        Err(e) => return Err(precondition(e, header_revision.is_some())),
    };
    Ok(job_response(StatusCode::OK, &job))
}

/// Change some fields of a job: a JSON merge patch (RFC 7396) of the job JSON (`null` resets a field to its
/// default). A `revision` in the patch or `If-Match` makes it conditional; otherwise it is retried on a
/// concurrent change.
#[utoipa::path(patch, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "Job id: 1 to 128 characters of `[A-Za-z0-9._-]`, not `.` or `..`", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$|^\.[A-Za-z0-9_-][A-Za-z0-9._-]{0,126}$|^\.\.[A-Za-z0-9._-]{1,126}$"),
        ("If-Match" = Option<String>, Header, description = "Required revision, like \"12\"", pattern = r#"^(\*|(W/)?"?[0-9]{1,19}"?)$"#)),
    request_body(content = Option<JobPatchDoc>, description = "Merge patch of the job JSON, e.g. {\"schedule\": \"0 * * * *\", \"paused\": true}; no body changes nothing",
        content_type = "application/merge-patch+json"),
    responses((status = 200, body = JobDoc), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 412, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn patch_job(
    State(app): State<AppState>,
    JobPath(id): JobPath,
    headers: HeaderMap,
    mut body: JsonObject,
) -> Result<Response, ApiError> {
    let id = job_id(&id)?;
    for read_only in [
        "id",
        "created_ms",
        "updated_ms",
        "past_schedules",
        "requests",
        "last_trigger_ms",
    ] {
        if body.take(read_only).is_some() {
            return Err(ApiError::invalid(
                read_only,
                format!("{read_only}: is read-only"),
            ));
        }
    }
    let body_revision: Option<u64> = match body.take("revision") {
        None | Some(Value::Null) => None,
        Some(v) => typed(v, "revision")?,
    };
    let header_revision = if_match(&headers)?;
    let expected = header_revision.or(body_revision);
    let patch = Value::Object(body.0);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let job = load(&app, &id).await?;
        let mut merged =
            serde_json::to_value(&job.spec).map_err(|e| ApiError::internal(e.to_string()))?;
        merge_patch(&mut merged, &patch);
        let spec: JobSpec = typed(merged, "")?;
        let spec = if patch.get("target").is_some() {
            runnable_here(spec)?
        } else {
            spec
        };
        match app
            .scheduler
            .update(&id, spec, Some(expected.unwrap_or(job.revision)))
            .await
        {
            Ok(job) => return Ok(job_response(StatusCode::OK, &job)),
            // Unconditional patches retry on a concurrent write, a few times.
            Err(SchedulerError::Conflict { .. }) if expected.is_none() && attempts < 5 => continue,
            Err(e) => return Err(precondition(e, header_revision.is_some())),
        }
    }
}

/// RFC 7396.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let map = target.as_object_mut().expect("made an object above");
    for (key, value) in patch {
        if value.is_null() {
            map.remove(key);
        } else {
            merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// Delete a job and its history.
#[utoipa::path(delete, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "Job id: 1 to 128 characters of `[A-Za-z0-9._-]`, not `.` or `..`", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$|^\.[A-Za-z0-9_-][A-Za-z0-9._-]{0,126}$|^\.\.[A-Za-z0-9._-]{1,126}$"),
        ("If-Match" = Option<String>, Header, description = "Required revision, like \"12\"", pattern = r#"^(\*|(W/)?"?[0-9]{1,19}"?)$"#)),
    responses((status = 204, description = "Deleted"), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 412, body = ErrorBody)))]
pub async fn delete_job(
    State(app): State<AppState>,
    JobPath(id): JobPath,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let id = job_id(&id)?;
    let expected = if_match(&headers)?;
    app.scheduler
        .delete(&id, expected)
        .await
        .map_err(|e| precondition(e, expected.is_some()))?;
    // The history goes with the job. The job is gone already: a store that fails here keeps its records
    // until retention drops them, and queries leave out records of jobs that do not exist.
    if let Some(store) = app.scheduler.history()
        && let Err(error) = store.forget_job(&id).await
    {
        tracing::warn!(job = %id, %error, "the history store kept the records of a deleted job");
    }
    Ok(StatusCode::NO_CONTENT)
}
