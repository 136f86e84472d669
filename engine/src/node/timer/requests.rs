//! Requested runs (`trigger`, `backfill`) of the jobs this node owns. A request waits in its job (see
//! `crate::job::RunRequest`); the owner takes it by writing its session into the request under the job's
//! revision, so one session takes each, and then runs it like any fire of its own: under its lease, through
//! the dispatcher's overlap policy. A request taken by a session that is gone without a record is in doubt
//! and settled by the job's delivery mode, as a predecessor's claimed instants are. Requests whose runs are
//! recorded leave the job at the next take.
//!
//! Only jobs with a claim and not revoked take requests: the coordinator granted this session the job, so
//! the run happens on the node the assignment chose, under the job's labels.

use std::collections::BTreeSet;
use std::sync::Arc;

use ractor::ActorRef;
use tracing::{debug, warn};

use super::state::{Decisions, State};
use super::{Msg, Shell};
use crate::coordinator::{CoordError, Coordinator, Precondition, RunQuery, SessionId};
use crate::job::{Delivery, Job, JobId, MAX_PENDING_REQUESTS};
use crate::node::fire::{Fire, FireKind};
use crate::run::{Outcome, RunRecord};

/// How often a take is tried against concurrent writers of the job (requests being added meanwhile).
const TAKE_ATTEMPTS: u32 = 16;

/// What one job's take found.
#[derive(Debug, Clone)]
pub struct Taken {
    /// The job as written with the take.
    pub job: Arc<Job>,
    /// Requests this session took: run them.
    pub run: Vec<i64>,
    /// Requests a session that is gone took and left no record of: settle by the delivery mode.
    pub in_doubt: Vec<(i64, SessionId)>,
}

impl State {
    /// Owned jobs (claimed, not revoked) with requests that are not all this session's.
    pub fn requests_due(&self) -> Vec<JobId> {
        let Some(lease) = self.lease else {
            return Vec::new();
        };
        self.slots
            .iter()
            .flatten()
            .filter(|e| e.claim.is_some() && !e.revoked)
            .filter(|e| {
                e.job
                    .requests
                    .iter()
                    .any(|r| r.taken != Some(lease.session))
            })
            .map(|e| e.job.id.clone())
            .collect()
    }

    /// Runs what was taken under this lease: the taken requests, oldest first, and the in-doubt ones by the
    /// job's delivery mode (again, or recorded `in_doubt`).
    pub fn take(&mut self, taken: Vec<Taken>, session: SessionId) -> Decisions {
        let mut fx = Decisions::default();
        if self.lease.is_none_or(|l| l.session != session) {
            return fx; // taken under a session that is over: its successor settles them
        }
        for Taken {
            job,
            mut run,
            in_doubt,
        } in taken
        {
            for (t, gone) in in_doubt {
                match job.spec.delivery {
                    Delivery::AtLeastOnce => run.push(t),
                    Delivery::AtMostOnce => {
                        let mut record =
                            RunRecord::new(&job.fire_id(t), &self.node, Outcome::InDoubt);
                        record.manual = true;
                        record.reason = Some(format!(
                            "requested run taken by session {gone} which left no record"
                        ));
                        fx.records.push(record);
                    }
                }
            }
            run.sort_unstable();
            debug!(job = %job.id, ?run, "requested runs taken");
            fx.fires.extend(run.into_iter().map(|t| Fire {
                job: job.clone(),
                scheduled_ms: t,
                kind: FireKind::Manual,
                session: Some(session),
                start_by_ms: None,
            }));
        }
        fx
    }
}

impl Shell {
    /// Starts a take of the requests of `jobs` in a spawned call, unless one is in flight (then it runs
    /// again once that one has answered).
    pub(super) fn take_requests(&mut self, myself: &ActorRef<Msg>) {
        if self.taking {
            self.take_again = true;
            return;
        }
        let Some(lease) = self.state.lease else {
            return;
        };
        let jobs = self.state.requests_due();
        if jobs.is_empty() {
            return;
        }
        self.taking = true;
        self.take_again = false;
        let coordinator = self.coordinator.clone();
        let myself = myself.clone();
        tokio::spawn(async move {
            let result = take_round_trip(coordinator.as_ref(), lease.session, &jobs).await;
            let _ = myself.cast(Msg::Taken(lease.session, result));
        });
    }

    /// Applies a take's answer, and starts the next take if one was asked for meanwhile.
    pub(super) fn taken(
        &mut self,
        myself: &ActorRef<Msg>,
        session: SessionId,
        result: Result<Vec<Taken>, CoordError>,
    ) {
        self.taking = false;
        match result {
            Ok(taken) => {
                let fx = self.state.take(taken, session);
                self.apply(fx);
            }
            Err(error) => {
                crate::metrics::coordinator_error("take_requests");
                warn!(%error, "taking requested runs failed");
            }
        }
        if self.take_again {
            self.take_requests(myself);
        }
    }
}

/// Takes, for `session`, the requests of `jobs` that nobody live holds, dropping those whose runs are
/// recorded; each job is written under the revision it was read at.
pub async fn take_round_trip(
    coordinator: &dyn Coordinator,
    session: SessionId,
    jobs: &[JobId],
) -> Result<Vec<Taken>, CoordError> {
    let live: BTreeSet<SessionId> = coordinator
        .members()
        .await?
        .members
        .iter()
        .map(|m| m.session)
        .collect();
    let mut out = Vec::new();
    for id in jobs {
        for attempt in 1..=TAKE_ATTEMPTS {
            let Some(mut job) = coordinator.get_job(id).await? else {
                break;
            };
            let (Some(first), Some(last)) = (
                job.requests.iter().map(|r| r.ms).min(),
                job.requests.iter().map(|r| r.ms).max(),
            ) else {
                break;
            };
            let query = RunQuery {
                from_ms: Some(first),
                before_ms: Some(last.saturating_add(1)),
                limit: MAX_PENDING_REQUESTS * 2,
            };
            let recorded: BTreeSet<i64> = coordinator
                .runs(id, query)
                .await?
                .iter()
                .map(|r| r.scheduled_ms)
                .collect();
            let before = job.requests.len();
            job.requests.retain(|r| !recorded.contains(&r.ms));
            let mut changed = job.requests.len() != before;
            let (mut run, mut in_doubt) = (Vec::new(), Vec::new());
            for request in &mut job.requests {
                match request.taken {
                    Some(taker) if taker == session || live.contains(&taker) => {}
                    Some(gone) => in_doubt.push((request.ms, gone)),
                    None => run.push(request.ms),
                }
                if request.taken != Some(session)
                    && !request.taken.is_some_and(|t| live.contains(&t))
                {
                    request.taken = Some(session);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
            match coordinator
                .put_job(job.clone(), Precondition::Revision(job.revision))
                .await
            {
                Ok(revision) => {
                    job.revision = revision;
                    out.push(Taken {
                        job: Arc::new(job),
                        run,
                        in_doubt,
                    });
                    break;
                }
                Err(CoordError::Conflict { .. }) if attempt < TAKE_ATTEMPTS => continue,
                Err(CoordError::NotFound { .. }) => break,
                Err(error) => return Err(error),
            }
        }
    }
    Ok(out)
}
