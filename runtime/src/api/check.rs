//! `POST /v1/jobs:validate`: a job checked exactly as a create would check it, without creating it, so that a
//! form (the console's) can show the API's own errors at the field they name while the user types.

use axum::Json;
use campanile::JobSpec;
use serde_json::Value;

use super::body::JsonObject;
use super::error::{ApiError, ErrorBody};
use super::jobs::{job_id, runnable_here};
use super::schema::{JobSpecDoc, NewJobDoc};

/// Check a job without creating it: 200 with the job as the server reads it (defaults filled in), or the 400
/// a create would answer, naming the field.
#[utoipa::path(post, path = "/v1/jobs:validate", tag = "jobs", request_body = NewJobDoc,
    responses((status = 200, body = JobSpecDoc, description = "Valid; the job as it would be stored"),
        (status = 400, body = ErrorBody)))]
pub async fn validate_job(mut body: JsonObject) -> Result<Json<JobSpec>, ApiError> {
    match body.take("id") {
        None | Some(Value::Null) => {}
        Some(Value::String(id)) => {
            job_id(&id)?;
        }
        Some(other) => {
            return Err(ApiError::invalid(
                "id",
                format!("id: {other} is not a string"),
            ));
        }
    }
    let spec = runnable_here(body.into_typed()?)?;
    spec.validate()?;
    Ok(Json(spec))
}
