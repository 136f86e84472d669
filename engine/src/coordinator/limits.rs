//! Request limits every backend applies: what it rejects as an oversized or malformed request
//! ([`CoordError::Invalid`]), naming the field and the value.
//!
//! A backend runs these checks before it plans or sends anything, so a rejected call writes nothing. The bounds
//! are generous: they exist so that a hostile or buggy caller gets an error instead of exhausting memory or the
//! store, not to shape normal use. They are shared so that every backend refuses the same requests.

use std::io;
use std::time::Duration;

use super::{CoordError, CoordResult, FireClaim, NodeInfo};
use crate::job::Job;
use crate::run::RunRecord;

mod bound;

/// Most items (claims, releases, run records) in one call.
pub const MAX_BATCH: usize = 1 << 20;
/// Most entries in one published assignment.
pub const MAX_ASSIGNMENT: usize = 1 << 24;
/// Largest job, as JSON, unless a backend needs less (see [`check_job_within`]).
pub const MAX_JOB_BYTES: usize = 1 << 20;
/// Longest session TTL (longer ones cannot be told apart from "never expires" in practice).
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// Most labels a node may carry.
pub const MAX_NODE_LABELS: usize = 256;
/// Longest node label or address.
pub const MAX_NODE_TEXT: usize = 256;
/// Longest `reason` and `node` of a run record (`output` is bounded by `RunRecord::MAX_OUTPUT`).
pub const MAX_RECORD_TEXT: usize = 4096;

fn invalid(message: String) -> CoordError {
    CoordError::Invalid(message)
}

/// A batch of `len` items named `what` is not too large.
pub fn check_batch(what: &str, len: usize) -> CoordResult<()> {
    if len > MAX_BATCH {
        return Err(invalid(format!(
            "{what}: {len} items in one call, at most {MAX_BATCH} allowed"
        )));
    }
    Ok(())
}

/// A requested session TTL is positive and at most [`MAX_TTL`].
pub fn check_ttl(ttl: Duration) -> CoordResult<()> {
    if ttl.is_zero() || ttl > MAX_TTL {
        return Err(invalid(format!(
            "ttl: {ttl:?}: must be positive and at most {MAX_TTL:?}"
        )));
    }
    Ok(())
}

/// What a node says about itself is of reasonable size.
pub fn check_node(node: &NodeInfo) -> CoordResult<()> {
    if node.labels.len() > MAX_NODE_LABELS {
        return Err(invalid(format!(
            "node {}: labels: {} labels, at most {MAX_NODE_LABELS} allowed",
            node.id,
            node.labels.len()
        )));
    }
    if let Some(label) = node.labels.iter().find(|l| l.len() > MAX_NODE_TEXT) {
        return Err(invalid(format!(
            "node {}: labels: a label of {} bytes, at most {MAX_NODE_TEXT} allowed",
            node.id,
            label.len()
        )));
    }
    for (field, value) in [
        ("address", &node.address),
        ("cluster_address", &node.cluster_address),
    ] {
        if let Some(address) = value.as_ref().filter(|a| a.len() > MAX_NODE_TEXT) {
            return Err(invalid(format!(
                "node {}: {field}: {} bytes, at most {MAX_NODE_TEXT} allowed",
                node.id,
                address.len()
            )));
        }
    }
    Ok(())
}

/// A job's JSON form is at most [`MAX_JOB_BYTES`] (measured without building it).
pub fn check_job(job: &Job) -> CoordResult<()> {
    check_job_within(job, MAX_JOB_BYTES)
}

/// A job's JSON form is at most `max_bytes`: for a backend whose store takes less than [`MAX_JOB_BYTES`].
///
/// A job whose size cannot reach the limit (an upper bound from a walk of its fields, without formatting
/// them: `limits/bound.rs`) passes without being encoded; only a job that might be larger is measured exactly.
pub fn check_job_within(job: &Job, max_bytes: usize) -> CoordResult<()> {
    if bound::json_bound(job).is_some_and(|bound| bound <= max_bytes) {
        return Ok(());
    }
    let mut size = ByteCount(0);
    serde_json::to_writer(&mut size, job)
        .map_err(|e| invalid(format!("job {}: cannot be encoded: {e}", job.id)))?;
    if size.0 > max_bytes {
        return Err(invalid(format!(
            "job {}: {} bytes as JSON, at most {max_bytes} allowed",
            job.id, size.0
        )));
    }
    Ok(())
}

/// Most jobs one [`Coordinator::put_jobs`](super::Coordinator::put_jobs) call may create.
pub const MAX_CREATE_BATCH: usize = 10_000;

/// A batch of new jobs (for `put_jobs`) is within [`MAX_CREATE_BATCH`], each job's JSON form is at most
/// `max_job_bytes`, and no id appears twice. Errors name the index: `jobs[3]: ...`,
/// `jobs[7].id: "a": repeats jobs[2].id`.
pub fn check_jobs(jobs: &[Job], max_job_bytes: usize) -> CoordResult<()> {
    if jobs.len() > MAX_CREATE_BATCH {
        return Err(invalid(format!(
            "jobs: {} jobs in one call, at most {MAX_CREATE_BATCH} allowed",
            jobs.len()
        )));
    }
    let mut seen = rustc_hash::FxHashMap::default();
    seen.reserve(jobs.len());
    for (i, job) in jobs.iter().enumerate() {
        check_job_within(job, max_job_bytes).map_err(|e| match e {
            CoordError::Invalid(message) => invalid(format!("jobs[{i}]: {message}")),
            other => other,
        })?;
        if let Some(first) = seen.insert(&job.id, i) {
            return Err(invalid(format!(
                "jobs[{i}].id: {:?}: repeats jobs[{first}].id",
                job.id.as_str()
            )));
        }
    }
    Ok(())
}

/// A claim's range leaves room for a successor: `through_ms + 1` must exist.
pub fn check_claim(claim: &FireClaim) -> CoordResult<()> {
    if claim.through_ms == i64::MAX {
        return Err(invalid(format!(
            "claim of job {}: through_ms: {}: must be less than i64::MAX",
            claim.job, claim.through_ms
        )));
    }
    Ok(())
}

/// A run record is well formed and of bounded size.
pub fn check_record(record: &RunRecord) -> CoordResult<()> {
    let fire = record.fire_id();
    if record.output.len() > RunRecord::MAX_OUTPUT {
        return Err(invalid(format!(
            "run record {fire}: output: {} bytes, at most {} allowed",
            record.output.len(),
            RunRecord::MAX_OUTPUT
        )));
    }
    let reason = record.reason.as_deref().unwrap_or_default();
    if reason.len() > MAX_RECORD_TEXT || record.node.as_str().len() > MAX_RECORD_TEXT {
        return Err(invalid(format!(
            "run record {fire}: reason or node longer than {MAX_RECORD_TEXT} bytes"
        )));
    }
    if record.last_ms() < record.scheduled_ms {
        return Err(invalid(format!(
            "run record {fire}: last_scheduled_ms: {}: before scheduled_ms",
            record.last_ms()
        )));
    }
    Ok(())
}

/// A writer that only counts bytes.
struct ByteCount(usize);

impl io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 = self.0.saturating_add(buf.len());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
