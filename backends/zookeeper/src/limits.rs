//! Request limits: the shared ones of [`campanile::coordinator::limits`], except that a job is at most 400 KiB
//! of JSON: a job write carries it twice (the job's znode and its change-log entry) in one request, and
//! ZooKeeper refuses requests above `jute.maxbuffer` (1 MiB by default).

use campanile::coordinator::CoordResult;
use campanile::job::Job;

pub(crate) use campanile::coordinator::limits::{
    check_batch, check_claim, check_node, check_record, check_ttl,
};

/// Largest job, as JSON: twice this, plus the head and paths, stays below ZooKeeper's 1 MiB request limit.
pub(crate) const MAX_JOB_BYTES: usize = 400 * 1024;

/// A batch of new jobs is within the shared bounds, each job at most [`MAX_JOB_BYTES`].
pub(crate) fn check_jobs(jobs: &[Job]) -> CoordResult<()> {
    campanile::coordinator::limits::check_jobs(jobs, MAX_JOB_BYTES)
}

/// A job's JSON form is at most [`MAX_JOB_BYTES`].
pub(crate) fn check_job(job: &Job) -> CoordResult<()> {
    campanile::coordinator::limits::check_job_within(job, MAX_JOB_BYTES)
}
