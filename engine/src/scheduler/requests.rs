//! `trigger` and `backfill`: runs asked for outside the schedule. The node that answers writes them into the
//! job (under its revision, so concurrent requests on any nodes each get their own instants); the job's
//! owner takes them and runs them (`node::timer`'s `requests`), so node labels and the overlap policy hold
//! for them as for scheduled runs, and a request outlives a change of owner.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::{MAX_BACKFILL, MODIFY_ATTEMPTS, Scheduler, SchedulerError};
use crate::coordinator::{CoordError, Precondition, RunQuery};
use crate::job::{FireId, Job, JobId, MAX_PENDING_REQUESTS, RunRequest, ValidationError};

impl Scheduler {
    /// Asks for a run of a job now, once, outside its schedule; returns its fire id (`job@ms`, `ms` about
    /// now). The job's owner runs it, as soon as the request reaches it, under the job's node labels and
    /// overlap policy (behind a run of the job that is going on, unless the policy is `allow`).
    ///
    /// Every trigger is a run of its own, with its own fire id (a fire id has one run and one record): `ms` is
    /// the first millisecond at or after now, and after the job's previous trigger, that is not an instant
    /// of the job's schedule (that fire id is the scheduled run's).
    pub async fn trigger(&self, id: &JobId) -> Result<FireId, SchedulerError> {
        let now = self.inner.clock.now_ms();
        let mut given = 0;
        self.request(id, "id", |job| {
            let tz = job.spec.tz()?;
            let taken: BTreeSet<i64> = job.requests.iter().map(|r| r.ms).collect();
            let mut at = now.max(job.last_trigger_ms.saturating_add(1));
            while taken.contains(&at)
                || job
                    .spec
                    .schedule
                    .next_after(at - 1, tz, job.spec.dst_handling())
                    == Some(at)
            {
                at += 1;
            }
            job.last_trigger_ms = at;
            given = at;
            Ok(vec![RunRequest::new(at, false)])
        })
        .await?;
        Ok(FireId::new(id.clone(), given))
    }

    /// Asks for a run of every instant of the job's schedule in `[from, to]` that has passed and has no run
    /// record (at most [`MAX_BACKFILL`]); returns their fire ids, in the order they will run. The job's owner
    /// runs them, as it runs a trigger (see [`Scheduler::trigger`]).
    ///
    /// They run one after another, oldest first, whatever the job's overlap policy (only `allow` runs them
    /// side by side): a backfill is asked for, and none of its instants is skipped. Instants after now are
    /// left out: they are the schedule's to run.
    ///
    /// An instant is run at most once, so repeating a backfill runs only what is still missing. Left out are
    /// instants that have a run record (run, skipped or misfired: a fire id has one record), instants the
    /// job's owner holds a claim on and has not settled (it runs or accounts for them itself), and instants
    /// an earlier request still waits to run.
    pub async fn backfill(
        &self,
        id: &JobId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<FireId>, SchedulerError> {
        if to < from {
            return Err(ValidationError::new(
                "to",
                to.to_rfc3339(),
                format!("is before from ({})", from.to_rfc3339()),
            )
            .into());
        }
        let job = self
            .get(id)
            .await?
            .ok_or_else(|| SchedulerError::NotFound(id.clone()))?;
        let (from_ms, to_ms) = (from.timestamp_millis(), to.timestamp_millis());
        let to_ms = to_ms.min(self.inner.clock.now_ms());
        let tz = job.spec.tz()?;
        let mut instants = Vec::new();
        let mut cursor = from_ms - 1;
        while let Some(t) = job
            .spec
            .schedule
            .next_after(cursor, tz, job.spec.dst_handling())
        {
            if t > to_ms {
                break;
            }
            if instants.len() == MAX_BACKFILL {
                return Err(ValidationError::new(
                    "to",
                    to_ms,
                    format!("the range holds more than {MAX_BACKFILL} instants; backfill a shorter range"),
                )
                .into());
            }
            instants.push(t);
            cursor = t;
        }
        let query = RunQuery {
            from_ms: Some(from_ms),
            before_ms: Some(to_ms + 1),
            limit: MAX_BACKFILL * 2,
        };
        let recorded: BTreeSet<i64> = self
            .inner
            .coordinator
            .runs(id, query)
            .await?
            .iter()
            .map(|r| r.scheduled_ms)
            .collect();
        // The owner's claimed, unsettled window: its instants are the owner's to run or account for.
        let owners = self
            .inner
            .coordinator
            .claim_of(id)
            .await?
            .map(|claim| (claim.settled_ms, claim.through_ms));
        instants.retain(|t| {
            !recorded.contains(t)
                && owners.is_none_or(|(settled, through)| *t <= settled || *t > through)
        });
        let requested = self
            .request(id, "to", |job| {
                let pending: BTreeSet<i64> = job.requests.iter().map(|r| r.ms).collect();
                Ok(instants
                    .iter()
                    .filter(|t| !pending.contains(t))
                    .map(|&t| RunRequest::new(t, true))
                    .collect())
            })
            .await?;
        Ok(requested
            .into_iter()
            .map(|t| FireId::new(id.clone(), t))
            .collect())
    }

    /// Adds the requests `make` returns to the job, under its revision (again on a concurrent write, up to
    /// [`MODIFY_ATTEMPTS`] times); first drops the requests whose runs are recorded. Returns the instants
    /// added. A job that would hold more than [`MAX_PENDING_REQUESTS`] is refused, naming `field`.
    async fn request(
        &self,
        id: &JobId,
        field: &str,
        mut make: impl FnMut(&mut Job) -> Result<Vec<RunRequest>, SchedulerError>,
    ) -> Result<Vec<i64>, SchedulerError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut job = self
                .get(id)
                .await?
                .ok_or_else(|| SchedulerError::NotFound(id.clone()))?;
            self.drop_recorded(&mut job).await?;
            let added = make(&mut job)?;
            if added.is_empty() {
                return Ok(Vec::new());
            }
            if job.requests.len() + added.len() > MAX_PENDING_REQUESTS {
                return Err(ValidationError::new(
                    field,
                    id.as_str(),
                    format!(
                        "has {} requested runs waiting; at most {MAX_PENDING_REQUESTS} may wait at once",
                        job.requests.len()
                    ),
                )
                .into());
            }
            let instants = added.iter().map(|r| r.ms).collect();
            job.requests.extend(added);
            match self
                .inner
                .coordinator
                .put_job(job.clone(), Precondition::Revision(job.revision))
                .await
            {
                Ok(_) => return Ok(instants),
                Err(CoordError::Conflict { .. }) if attempt < MODIFY_ATTEMPTS => continue,
                Err(CoordError::NotFound { .. }) => {
                    return Err(SchedulerError::NotFound(id.clone()));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Drops from `job` the requests that have a run record (their runs are done).
    async fn drop_recorded(&self, job: &mut Job) -> Result<(), SchedulerError> {
        let (Some(first), Some(last)) = (
            job.requests.iter().map(|r| r.ms).min(),
            job.requests.iter().map(|r| r.ms).max(),
        ) else {
            return Ok(());
        };
        let query = RunQuery {
            from_ms: Some(first),
            before_ms: Some(last.saturating_add(1)),
            limit: MAX_PENDING_REQUESTS * 2,
        };
        let recorded: BTreeSet<i64> = self
            .inner
            .coordinator
            .runs(&job.id, query)
            .await?
            .iter()
            .map(|r| r.scheduled_ms)
            .collect();
        job.requests.retain(|r| !recorded.contains(&r.ms));
        Ok(())
    }
}
